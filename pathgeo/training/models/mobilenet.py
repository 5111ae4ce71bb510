"""MobileNetV2: torchvision's for ImageNet unchanged, and for CIFAR-10 with the first conv's stride 2 -> 1 and the
second stage's (t=6, c=24) stride 2 -> 1; the CIFAR spatial path is 32 -> 32 -> 32 -> 16 -> 8 -> 4 -> global
average pool.

torchvision is imported when a model is built, not when the registry is read: importing it takes seconds, and
the workflow reads the registry when it parses the Snakefile and in every job.
"""

from __future__ import annotations

from torch import nn

from pathgeo.training.models import Model, ParameterCount, Width

# torchvision's (t, c, n, s) table with the second row's stride 2 -> 1 (the usual CIFAR adaptation).
CIFAR_MOBILENET_V2_SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 1],  # ImageNet: stride 2
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


def cifar_mobilenet_v2(num_classes: int, width: float = 1.0) -> nn.Module:
    """torchvision MobileNetV2 for 32x32 input: first conv stride 1 (ImageNet: 2) and the second stage's stride 1
    (ImageNet: 2); everything else, the 1280-channel last conv, dropout 0.2 and the Linear(1280, num_classes) head
    included, is torchvision's. Strides change no shapes, so the parameter count equals torchvision's
    mobilenet_v2(num_classes=num_classes). Total downsampling 8: 32x32 -> 4x4 before the global average pool.
    (kuangliu/pytorch-cifar's MobileNetV2 makes the same two stride changes but also adds 1x1 projection
    shortcuts where the channel count changes, so it has more parameters than this one.)"""
    from torchvision.models.mobilenetv2 import MobileNetV2

    model = MobileNetV2(num_classes=num_classes, width_mult=width, inverted_residual_setting=CIFAR_MOBILENET_V2_SETTING)
    model.features[0][0].stride = (1, 1)  # the stem conv; a stride changes no parameter and no initialisation
    return model


def imagenet_mobilenet_v2(num_classes: int, width: float = 1.0) -> nn.Module:
    from torchvision.models.mobilenetv2 import mobilenet_v2

    return mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width)


MODELS = (
    Model("cifar_mobilenet_v2", cifar_mobilenet_v2, "image32", Width.NONE, (ParameterCount(2_236_682, 10),)),
    Model("imagenet_mobilenet_v2", imagenet_mobilenet_v2, "image224", Width.NONE, (ParameterCount(3_504_872, 1000),)),
)
