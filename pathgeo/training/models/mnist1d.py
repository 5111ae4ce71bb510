"""The models of the embedded default: MNIST-1D's samples are 40 values, and the MLP and the residual 1-D CNN
are the paper's MLP-versus-ResNet contrast at laptop scale."""

from __future__ import annotations

import torch
from torch import nn

from pathgeo.training.models import Model, ParameterCount, Width

MNIST1D_LENGTH = 40
MNIST1D_CLASSES = 10


class MLP(nn.Module):
    """Three hidden layers with ReLU; logits out (the loss applies the softmax)."""

    def __init__(self, in_features: int, width: int, classes: int, hidden_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_features
        for _ in range(hidden_layers):
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicBlock1d(nn.Module):
    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv1d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm1d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet1d(nn.Module):
    """A small ResNet for 1-D signals: stem, two residual stages (the second halves the length), pooling."""

    def __init__(self, width: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(1, width, 5, padding=2, bias=False), nn.BatchNorm1d(width), nn.ReLU())
        self.stage1 = BasicBlock1d(width, width, stride=1)
        self.stage2 = BasicBlock1d(width, 2 * width, stride=2)
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stage2(self.stage1(self.stem(x.unsqueeze(1))))
        return self.head(out.mean(dim=2))


def mlp(num_classes: int, width: int, hidden_layers: int = 3) -> nn.Module:
    return MLP(MNIST1D_LENGTH, width, num_classes, hidden_layers)


def resnet1d(num_classes: int, width: int) -> nn.Module:
    return ResNet1d(width, num_classes)


MODELS = (
    Model("mlp", mlp, "mnist1d", Width.HIDDEN, (ParameterCount(11_594, MNIST1D_CLASSES, 64),)),
    Model("resnet1d", resnet1d, "mnist1d", Width.CHANNELS, (ParameterCount(28_010, MNIST1D_CLASSES, 32),)),
)
