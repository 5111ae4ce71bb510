"""Training a trajectory: run specs, the training loop, reference training and its checkpoints, the
data kinds, models, optimizers and schedules, the devices, ranks and randomness a run is computed with, its
parameters as one flat vector, and the fused CPU passes over it (GAWU's)."""
