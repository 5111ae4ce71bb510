"""A run's factors as `RunSpec.factors()` gives them, for the tests that write an aggregation's input by hand: every
factor column comes from the spec, so a new run field needs no edit here."""

from __future__ import annotations

from typing import Any

from pathgeo.training.spec import DataSpec, RunSpec

MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})
RUN = dict(
    data=MNIST1D,
    model="mlp",
    width=8,
    optimizer="sgd",
    lr=0.1,
    weight_decay=0.0,
    schedule="constant",
    warmup_epochs=0,
    batch_size=50,
    epochs=2,
    seed=0,
    data_order_seed=0,
    precision="float32",
)


def factors(**fields: Any) -> dict[str, Any]:
    """The factors of the MNIST-1D MLP run above with these run fields changed."""
    return RunSpec(**{**RUN, **fields}).factors()
