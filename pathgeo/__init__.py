"""pathgeo: the geometry of neural-network optimization paths.

`pathgeo.measure` measures a training loop of your own (pathgeo.measurements.own_loop); `pathgeo.Probe` is the probe
itself (pathgeo.engine.probe). Both are imported on first use, so that `import pathgeo` imports no torch: the
workflow's aggregation and figures run without it.
"""

import importlib

# pyproject.toml's version (tests/test_measure.py keeps the two in step).
__version__ = "0.2.0"

_LAZY = {
    "measure": "pathgeo.measurements.own_loop",
    "Measurement": "pathgeo.measurements.own_loop",
    "PassesDiffer": "pathgeo.measurements.own_loop",
    "Probe": "pathgeo.engine.probe",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pathgeo' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
