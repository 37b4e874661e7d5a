"""Training: fit() and its step, evaluation, the events it emits and their observers, data-parallel
training, and the allocator and speed settings a training process starts with."""
