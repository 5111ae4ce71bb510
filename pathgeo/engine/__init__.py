"""The measurement engine: the probe's passes over each step's gradient (numba on the CPU, Triton on a GPU),
their record layout, and the flat view of a model's parameters they read."""
