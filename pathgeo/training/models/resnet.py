"""The papers' ResNets: ResNet-18/34 for CIFAR-10 (32 x 32 input: a 3x3 stride-1 stem, no max-pool) and
ResNet-18/50/152 for ImageNet, torchvision's topology and blocks with `width` applied to every stage and the stem.

`width` multiplies the stem's 64 channels and each stage's `planes` (64, 128, 256, 512); a Bottleneck's output
is still planes * 4. This is the authors' "ResNet50-2" / "ResNet152-0.5" (SimCLRv2-style width multiplier), and
the paper's ResNet18-1 / ResNet18-2 on CIFAR-10. It is NOT torchvision's wide_resnet50_2: that one keeps the stem,
the block inputs/outputs (planes * 4) and the fc unchanged and only doubles the bottleneck's inner 3x3 width
(width_per_group=128), giving 68,883,240 parameters instead of the 98,004,072 of a ResNet-50 widened everywhere.

torchvision is imported when a model is built, not when the registry is read: importing it takes seconds, and
the workflow reads the registry when it parses the Snakefile and in every job.
"""

from __future__ import annotations

import torch
from torch import nn

from pathgeo.training.models import Model, ParameterCount, Width, scaled

RESNET_STAGE_PLANES = (64, 128, 256, 512)


class ResNet(nn.Module):
    """torchvision's ResNet with every stage (and the stem) scaled by `width`; same attribute names, so a width-1
    ImageNet instance has exactly torchvision's state_dict keys and shapes.

    `cifar_stem=True` replaces the 7x7/2 conv + 3x3/2 max-pool by a 3x3/1 conv (no max-pool), for 32x32 input.
    """

    def __init__(
        self, block: type[nn.Module], layers: list[int], num_classes: int, width: float = 1.0, cifar_stem: bool = False
    ):
        super().__init__()
        planes = [scaled(p, width) for p in RESNET_STAGE_PLANES]
        self.inplanes = planes[0]
        if cifar_stem:
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, planes[0], layers[0], stride=1)
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)

        # torchvision's initialisation (zero_init_residual=False).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type[nn.Module], planes: int, blocks: int, stride: int) -> nn.Sequential:
        from torchvision.models.resnet import conv1x1

        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def cifar_resnet18(num_classes: int, width: float = 1.0) -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, width, cifar_stem=True)


def cifar_resnet34(num_classes: int, width: float = 1.0) -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, width, cifar_stem=True)


def imagenet_resnet18(num_classes: int, width: float = 1.0) -> nn.Module:
    from torchvision.models.resnet import BasicBlock

    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, width)


def imagenet_resnet50(num_classes: int, width: float = 1.0) -> nn.Module:
    from torchvision.models.resnet import Bottleneck

    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, width)


def imagenet_resnet152(num_classes: int, width: float = 1.0) -> nn.Module:
    from torchvision.models.resnet import Bottleneck

    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, width)


MODELS = (
    Model(
        "cifar_resnet18",
        cifar_resnet18,
        "image32",
        Width.MULTIPLIER,
        (
            ParameterCount(11_173_962, 10, 1.0),  # ResNet18-1
            ParameterCount(44_662_922, 10, 2.0),  # ResNet18-2
        ),
    ),
    Model(
        "cifar_resnet34",
        cifar_resnet34,
        "image32",
        Width.MULTIPLIER,
        (
            ParameterCount(21_282_122, 10, 1.0),  # = kuangliu/pytorch-cifar ResNet34
            ParameterCount(85_080_714, 10, 2.0),
        ),
    ),
    Model(
        "imagenet_resnet18",
        imagenet_resnet18,
        "image224",
        Width.MULTIPLIER,
        (
            ParameterCount(11_689_512, 1000, 1.0),  # ResNet-18-1 (= torchvision resnet18)
            ParameterCount(45_693_032, 1000, 2.0),  # ResNet-18-2
        ),
    ),
    Model(
        "imagenet_resnet50",
        imagenet_resnet50,
        "image224",
        Width.MULTIPLIER,
        (
            ParameterCount(25_557_032, 1000, 1.0),  # ResNet-50-1 (= torchvision resnet50)
            ParameterCount(98_004_072, 1000, 2.0),  # ResNet-50-2 (widened everywhere; not wide_resnet50_2)
        ),
    ),
    Model(
        "imagenet_resnet152",
        imagenet_resnet152,
        "image224",
        Width.MULTIPLIER,
        (
            ParameterCount(15_601_160, 1000, 0.5),  # ResNet-152-0.5
            ParameterCount(60_192_808, 1000, 1.0),  # ResNet-152-1 (= torchvision resnet152)
        ),
    ),
)
