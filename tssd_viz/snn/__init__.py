"""The spiking network: LIF neurons, the backbones with their weak head, the losses, recording probes
and operation counts."""
