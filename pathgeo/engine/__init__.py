"""The measurement engine: the probe, its passes over each step's gradient (numba on the CPU, Triton on a GPU)
and their record layout."""
