"""The measurements along a path: the point geometry of the replay (RSI, EB, gamma), the measurements
that need no w*, and the probe for a training loop of your own (plain PyTorch or Lightning)."""
