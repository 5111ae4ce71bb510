"""The synthetic objectives' parameters, sized by the dataset's `dim`: the ALM's linear model, and bare parameter
vectors for objectives defined directly on w (SM, the random walk)."""

from __future__ import annotations

import torch
from torch import nn

from pathgeo.training.models import Model, ParameterCount, Width


class Point(nn.Module):
    """A bare parameter vector, for objectives defined directly on w (SM, the random walk)."""

    def __init__(self, initial: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(initial.clone())


def linear(num_classes: int, width: float, dim: int) -> nn.Module:
    return nn.Linear(dim, 1, bias=False)


def sinusoid(num_classes: int, width: float, dim: int, init_scale: float) -> nn.Module:
    return Point(init_scale * torch.randn(dim))


def walk(num_classes: int, width: float, dim: int) -> nn.Module:
    return Point(torch.zeros(dim))


MODELS = (
    Model("linear", linear, "alm", Width.NONE, (ParameterCount(5, data={"dim": 5}),), reads=("dim",)),
    Model(
        "sinusoid",
        sinusoid,
        "sm",
        Width.NONE,
        (ParameterCount(5, data={"dim": 5, "init_scale": 3.0}),),
        reads=("dim", "init_scale"),
    ),
    Model("walk", walk, "random_walk", Width.NONE, (ParameterCount(2000, data={"dim": 2000}),), reads=("dim",)),
)
