"""Training a trajectory: run specs, the training loop, reference training and its checkpoints, the
data kinds, models, optimizers and schedules, and the devices, ranks and randomness a run is computed with."""
