"""The simple CIFAR-10 CNN of "A mysterious optimization geometry": three (3x3 conv, ReLU, 2x2 max-pool) blocks
of `channels` (default 32), 2x and 4x channels, then one Linear to the logits; no batch norm."""

from __future__ import annotations

import torch
from torch import nn

from pathgeo.training.models import Model, ParameterCount, Width, scaled


class CifarCNN(nn.Module):
    """The "simple feed-forward CNN with three convolution blocks and one fully-connected block" of "A mysterious
    optimization geometry", in its conventional form: each block is a 3x3 conv (padding 1, with bias), ReLU and a
    2x2 max-pool, with `channels`, 2 * `channels`, 4 * `channels` output channels; then flatten and one Linear to
    the logits. No batch norm (the paper sets this plain CNN against the residual nets, which have BN). PyTorch's
    default initialisation. The input must be 32x32 (three pools leave 4x4)."""

    def __init__(self, num_classes: int, channels: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for cout in (channels, 2 * channels, 4 * channels):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def cifar_cnn(num_classes: int, width: float = 1.0, channels: int = 32) -> nn.Module:
    return CifarCNN(num_classes, scaled(channels, width))


MODELS = (
    # channels 32, 64, 128; Linear(128 * 4 * 4, 10)
    Model("cifar_cnn", cifar_cnn, "image32", Width.NONE, (ParameterCount(113_738, 10),)),
)
