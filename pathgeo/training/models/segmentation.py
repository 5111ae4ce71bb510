"""Segmentation for Vaihingen: SegNet as in Audebert et al. (DeepNetsForEO: VGG-16 encoder, max-unpooling decoder,
BN) and UNet as in Ronneberger et al. (with BN, "same" padding, transposed-conv upsampling)."""

from __future__ import annotations

import torch
from torch import nn

from pathgeo.training.models import Model, ParameterCount, Width, require_unit_width, scaled


def _conv_relu_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    # Audebert's order: 3x3 conv (with bias) -> ReLU -> BatchNorm.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(out_channels)
    )


class SegNet(nn.Module):
    """VGG-16 encoder (13 convs, 5 max-pools with indices), mirrored decoder (max-unpooling, 13 convs); every conv
    but the last is followed by ReLU and BN; the last conv (64 -> num_classes) gives the logits. Trained from
    scratch (PyTorch default initialisation; Audebert's weight_init only touches nn.Linear, of which there is
    none). Input H and W must be multiples of 32."""

    ENCODER = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__()
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, stride=2)

        encoder = []
        channels = in_channels
        for block in self.ENCODER:
            convs = []
            for out in block:
                convs.append(_conv_relu_bn(channels, out))
                channels = out
            encoder.append(nn.Sequential(*convs))
        self.encoder = nn.ModuleList(encoder)

        # Decoder block k mirrors encoder block k: its convs keep the width except the last, which goes to the
        # previous block's width (64 -> num_classes for the first block, a plain conv).
        decoder = []
        for k in reversed(range(len(self.ENCODER))):
            widths = self.ENCODER[k]
            target = self.ENCODER[k - 1][-1] if k > 0 else None
            convs = [_conv_relu_bn(widths[-1], widths[-1]) for _ in widths[:-1]]
            if target is None:
                convs.append(nn.Conv2d(widths[-1], num_classes, 3, padding=1))
            else:
                convs.append(_conv_relu_bn(widths[-1], target))
            decoder.append(nn.Sequential(*convs))
        self.decoder = nn.ModuleList(decoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        indices = []
        for block in self.encoder:
            x, index = self.pool(block(x))
            indices.append(index)
        for block, index in zip(self.decoder, reversed(indices)):
            x = block(self.unpool(x, index))
        return x


class DoubleConv(nn.Sequential):
    """(3x3 conv without bias, BN, ReLU) twice; padding 1 keeps the size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """2x2 transposed conv halving the channels, concatenation with the skip, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """Ronneberger's UNet with BN and padded convs: channels base, 2b, 4b, 8b, 16b down four max-pools and back up
    four transposed convs, 1x1 conv to the logits. Output size = input size for H, W multiples of 16."""

    def __init__(self, num_classes: int, in_channels: int = 3, base: int = 64):
        super().__init__()
        widths = [base * 2**i for i in range(5)]
        self.inc = DoubleConv(in_channels, widths[0])
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), DoubleConv(widths[i], widths[i + 1])) for i in range(4)
        )
        self.ups = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(4)))
        self.outc = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


def segnet(num_classes: int, width: float = 1.0, in_channels: int = 3) -> nn.Module:
    require_unit_width("segnet", width)
    return SegNet(num_classes, in_channels)


def unet(num_classes: int, width: float = 1.0, in_channels: int = 3, base: int = 64) -> nn.Module:
    # base=64 is Ronneberger's; the authors' src/model/unet.py (milesial's UNet) uses base=32.
    return UNet(num_classes, in_channels, scaled(base, width))


MODELS = (
    # Audebert's SegNet (conv biases, 25 BNs) with a 6-class last conv
    Model("segnet", segnet, "segmentation", Width.NONE, (ParameterCount(29_446_470, 6),)),
    Model("unet", unet, "segmentation", Width.NONE, (ParameterCount(31_037_958, 6),)),  # base 64 (base=32: 7_763_206)
)
