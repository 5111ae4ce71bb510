"""VGG for CIFAR-10: torchvision's `vgg.cfgs` 'A' / 'D' / 'E' feature stacks WITH batch norm, then a single
Linear(512, num_classes) head.

The authors' repository has no VGG; this is the common CIFAR port (e.g. kuangliu/pytorch-cifar): 3x3 convs with
bias, BN, ReLU; five 2x2 max-pools take 32x32 to 1x1, then ONE Linear(512, num_classes). No 4096-wide classifier,
no dropout, no adaptive pooling: the input must be 32x32.

torchvision is imported when a model is built, not when the registry is read: importing it takes seconds, and
the workflow reads the registry when it parses the Snakefile and in every job.
"""

from __future__ import annotations

import torch
from torch import nn

from pathgeo.training.models import Model, ParameterCount, Width, require_unit_width


class CifarVGG(nn.Module):
    def __init__(self, cfg: str, num_classes: int, batch_norm: bool = True):
        from torchvision.models.vgg import cfgs, make_layers

        super().__init__()
        self.features = make_layers(cfgs[cfg], batch_norm=batch_norm)
        self.classifier = nn.Linear(512, num_classes)
        # torchvision's VGG initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def cifar_vgg11(num_classes: int, width: float = 1.0, batch_norm: bool = True) -> nn.Module:
    require_unit_width("cifar_vgg11", width)
    return CifarVGG("A", num_classes, batch_norm)


def cifar_vgg16(num_classes: int, width: float = 1.0, batch_norm: bool = True) -> nn.Module:
    require_unit_width("cifar_vgg16", width)
    return CifarVGG("D", num_classes, batch_norm)


def cifar_vgg19(num_classes: int, width: float = 1.0, batch_norm: bool = True) -> nn.Module:
    require_unit_width("cifar_vgg19", width)
    return CifarVGG("E", num_classes, batch_norm)


MODELS = (
    Model("cifar_vgg11", cifar_vgg11, "image32", Width.NONE, (ParameterCount(9_231_114, 10),)),  # BN, Linear(512, 10)
    # BN, Linear(512, 10) head (= kuangliu/pytorch-cifar VGG16)
    Model("cifar_vgg16", cifar_vgg16, "image32", Width.NONE, (ParameterCount(14_728_266, 10),)),
    Model("cifar_vgg19", cifar_vgg19, "image32", Width.NONE, (ParameterCount(20_040_522, 10),)),  # BN, Linear(512, 10)
)
