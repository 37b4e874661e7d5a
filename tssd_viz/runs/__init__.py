"""Run folders: their files, checkpoints, the trained networks read back from them, and whether a
run's training process is alive."""
