"""The Medium-MLP on CIFAR-10: flatten 3x32x32, `hidden_layers` (default 4) hidden layers of `hidden` (default
4096) units with ReLU, linear logits out; `width` multiplies the hidden units."""

from __future__ import annotations

import torch
from torch import nn

from pathgeo.training.models import Model, ParameterCount, Width, scaled


class MediumMLP(nn.Module):
    """Flatten, `hidden_layers` x (Linear, ReLU), Linear to logits. No softmax: the loss applies it."""

    def __init__(self, num_classes: int, in_features: int = 3 * 32 * 32, hidden: int = 4096, hidden_layers: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_features
        for _ in range(hidden_layers):
            layers += [nn.Linear(features, hidden), nn.ReLU(inplace=True)]
            features = hidden
        layers.append(nn.Linear(features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def medium_mlp(
    num_classes: int, width: float = 1.0, hidden: int = 4096, hidden_layers: int = 4, in_features: int = 3 * 32 * 32
) -> nn.Module:
    # The brief's Medium-MLP has 4 hidden layers. The authors' src/model/mlp.py (Medium_MLP, num_dim=4096) has
    # 3 hidden layers (4 Linear layers in all, the paper's "4-layer Perceptron"): pass hidden_layers=3 for it.
    return MediumMLP(num_classes, in_features, scaled(hidden, width), hidden_layers)


MODELS = (
    # 4 hidden layers of 4096 (hidden_layers=3, the authors': 46_190_602)
    Model("medium_mlp", medium_mlp, "image32", Width.NONE, (ParameterCount(62_971_914, 10),)),
)
