"""A model of your own, for config/examples/own_model.yaml: a small 1-D convolutional network for signals of 40
values (MNIST-1D's). The config names it `config.examples.my_model:small_convnet`; a module of yours next to your
config in the working directory would be `my_model:small_convnet`.

pathgeo calls the builder with `num_classes` (from the dataset) and the run's `model_options` as keyword
arguments, after seeding torch from the run's seed, so the initial weights are a function of the seed. It must
return a torch.nn.Module that maps a batch of samples to class logits (no softmax: the loss applies it).
"""

import torch
from torch import nn


class SmallConvNet(nn.Module):
    def __init__(self, num_classes: int, channels: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, channels, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(channels, 2 * channels, 5, padding=2),
            nn.ReLU(),
        )
        self.head = nn.Linear(2 * channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.unsqueeze(1)).mean(dim=2))


def small_convnet(num_classes: int, channels: int = 8) -> nn.Module:
    return SmallConvNet(num_classes, channels)
