"""The papers' architectures: Appendix A.3/A.4 and E of "No Wrong Turns", and the CIFAR-10 networks of "A mysterious
optimization geometry" (full-batch GD with a simple CNN, VGG-16, ResNet-18 and ResNet-34).

`build(name, num_classes=..., width=..., **options)` returns a freshly initialised CPU float32 model. Every
builder draws its initial weights only from torch's global generator, so the weights are a pure function of the
seed that pathgeo sets before calling it.

Every model returns raw logits: no softmax / log-softmax inside. The loss (cross-entropy) applies it once. (The
authors' Medium-MLP and Transformer end in `log_softmax`; applying cross-entropy on top of that is harmless only
because log_softmax is idempotent, and it is the classic "double softmax" trap when it is a softmax, so we keep the
normalisation out of the models altogether.)

Names (see `ZOO`):

- cifar_resnet18      ResNet-18 for 32x32 input (3x3 stride-1 stem, no max-pool), torchvision BasicBlocks,
                      every stage's channels (64, 128, 256, 512) times `width`: the paper's ResNet18-1 / ResNet18-2.
- cifar_resnet34      the same with [3, 4, 6, 3] blocks (kuangliu/pytorch-cifar's ResNet34 at width 1).
- cifar_cnn           three (3x3 conv, ReLU, 2x2 max-pool) blocks of `channels` (default 32), 2x, 4x channels, then
                      one Linear to the logits; no batch norm.
- medium_mlp          flatten 3x32x32, `hidden_layers` (default 4) hidden layers of `hidden` (default 4096) units
                      with ReLU, linear logits out.
- cifar_vgg11/16/19   torchvision `vgg.cfgs` 'A' / 'D' / 'E' feature stacks WITH batch norm, then a single
                      Linear(512, num_classes) head (the common CIFAR port, e.g. kuangliu/pytorch-cifar).
- cifar_mobilenet_v2  torchvision MobileNetV2 with the first conv's stride 2 -> 1 and the second stage's (t=6, c=24)
                      stride 2 -> 1; spatial path 32 -> 32 -> 32 -> 16 -> 8 -> 4 -> global average pool.
- imagenet_mobilenet_v2  torchvision mobilenet_v2 unchanged.
- imagenet_resnet18/50/152  torchvision ResNet topology with `width` applied to EVERY stage and the stem.
- transformer_lm      the pytorch/examples word_language_model TransformerModel, batch-first: (N, T) int64 tokens
                      -> (N, T, vocab) logits, causal mask, sinusoidal positions.
- segnet              SegNet as in Audebert et al. (DeepNetsForEO): VGG-16 encoder, max-unpooling decoder, BN.
- unet                UNet as in Ronneberger et al. with BN, "same" padding, transposed-conv upsampling.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn
from torchvision.models import mobilenetv2, resnet, vgg

# ---------------------------------------------------------------------------------------------------------------
# ResNets (CIFAR and ImageNet), built from torchvision's BasicBlock / Bottleneck.
#
# `width` multiplies the stem's 64 channels and each stage's `planes` (64, 128, 256, 512); a Bottleneck's output
# is still planes * 4. This is the authors' "ResNet50-2" / "ResNet152-0.5" (SimCLRv2-style width multiplier).
# It is NOT torchvision's wide_resnet50_2: that one keeps the stem, the block inputs/outputs (planes * 4) and the
# fc unchanged and only doubles the bottleneck's inner 3x3 width (width_per_group=128), giving 68,883,240 parameters
# instead of the 98,004,072 of a ResNet-50 widened everywhere.
# ---------------------------------------------------------------------------------------------------------------

RESNET_STAGE_PLANES = (64, 128, 256, 512)


def _scaled(channels: int, width: float) -> int:
    value = channels * width
    if width <= 0 or value != int(value):
        raise ValueError(f"width {width} does not give a whole number of channels from {channels}")
    return int(value)


class ResNet(nn.Module):
    """torchvision's ResNet with every stage (and the stem) scaled by `width`; same attribute names, so a width-1
    ImageNet instance has exactly torchvision's state_dict keys and shapes.

    `cifar_stem=True` replaces the 7x7/2 conv + 3x3/2 max-pool by a 3x3/1 conv (no max-pool), for 32x32 input.
    """

    def __init__(self, block: type[nn.Module], layers: list[int], num_classes: int, width: float = 1.0,
                 cifar_stem: bool = False):
        super().__init__()
        planes = [_scaled(p, width) for p in RESNET_STAGE_PLANES]
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
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                resnet.conv1x1(self.inplanes, planes * block.expansion, stride),
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
    return ResNet(resnet.BasicBlock, [2, 2, 2, 2], num_classes, width, cifar_stem=True)


def cifar_resnet34(num_classes: int, width: float = 1.0) -> nn.Module:
    return ResNet(resnet.BasicBlock, [3, 4, 6, 3], num_classes, width, cifar_stem=True)


def imagenet_resnet18(num_classes: int, width: float = 1.0) -> nn.Module:
    return ResNet(resnet.BasicBlock, [2, 2, 2, 2], num_classes, width)


def imagenet_resnet50(num_classes: int, width: float = 1.0) -> nn.Module:
    return ResNet(resnet.Bottleneck, [3, 4, 6, 3], num_classes, width)


def imagenet_resnet152(num_classes: int, width: float = 1.0) -> nn.Module:
    return ResNet(resnet.Bottleneck, [3, 8, 36, 3], num_classes, width)


# ---------------------------------------------------------------------------------------------------------------
# Medium-MLP
# ---------------------------------------------------------------------------------------------------------------


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


def medium_mlp(num_classes: int, width: float = 1.0, hidden: int = 4096, hidden_layers: int = 4,
               in_features: int = 3 * 32 * 32) -> nn.Module:
    # The brief's Medium-MLP has 4 hidden layers. The authors' src/model/mlp.py (Medium_MLP, num_dim=4096) has
    # 3 hidden layers (4 Linear layers in all, the paper's "4-layer Perceptron"): pass hidden_layers=3 for it.
    return MediumMLP(num_classes, in_features, _scaled(hidden, width), hidden_layers)


# ---------------------------------------------------------------------------------------------------------------
# VGG for CIFAR
#
# The authors' repository has no VGG; we use the common CIFAR port: torchvision's feature configs WITH batch norm
# (3x3 convs with bias, BN, ReLU; five 2x2 max-pools take 32x32 to 1x1), then ONE Linear(512, num_classes).
# No 4096-wide classifier, no dropout, no adaptive pooling: the input must be 32x32.
# ---------------------------------------------------------------------------------------------------------------


class CifarVGG(nn.Module):
    def __init__(self, cfg: str, num_classes: int, batch_norm: bool = True):
        super().__init__()
        self.features = vgg.make_layers(vgg.cfgs[cfg], batch_norm=batch_norm)
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
    _require_unit_width("cifar_vgg11", width)
    return CifarVGG("A", num_classes, batch_norm)


def cifar_vgg16(num_classes: int, width: float = 1.0, batch_norm: bool = True) -> nn.Module:
    _require_unit_width("cifar_vgg16", width)
    return CifarVGG("D", num_classes, batch_norm)


def cifar_vgg19(num_classes: int, width: float = 1.0, batch_norm: bool = True) -> nn.Module:
    _require_unit_width("cifar_vgg19", width)
    return CifarVGG("E", num_classes, batch_norm)


# ---------------------------------------------------------------------------------------------------------------
# Simple CNN for CIFAR
# ---------------------------------------------------------------------------------------------------------------


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
    return CifarCNN(num_classes, _scaled(channels, width))


# ---------------------------------------------------------------------------------------------------------------
# MobileNetV2
# ---------------------------------------------------------------------------------------------------------------

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
    model = mobilenetv2.MobileNetV2(num_classes=num_classes, width_mult=width,
                                    inverted_residual_setting=CIFAR_MOBILENET_V2_SETTING)
    model.features[0][0].stride = (1, 1)  # the stem conv; a stride changes no parameter and no initialisation
    return model


def imagenet_mobilenet_v2(num_classes: int, width: float = 1.0) -> nn.Module:
    return mobilenetv2.mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width)


# ---------------------------------------------------------------------------------------------------------------
# Transformer language model (pytorch/examples word_language_model TransformerModel), batch-first.
#
# Layout decision: tokens are (N, T) = (batch, time) and logits (N, T, vocab); the encoder layers are built with
# batch_first=True and the positional encoding and causal mask are indexed by the time axis (dim 1). The
# pytorch/examples model is time-first (T, N); feeding it (N, T) data, as the authors' training loop does
# (`model(data[:, :-1])` with a time-first model), makes attention and the causal mask run across the batch.
# ---------------------------------------------------------------------------------------------------------------


class PositionalEncoding(nn.Module):
    """Sinusoidal positions added to (N, T, D) embeddings, then dropout."""

    def __init__(self, d_model: int, dropout: float = 0.0, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe, persistent=False)  # a constant, not a parameter; kept out of checkpoints

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(x + self.pe[: x.size(1)])


class TransformerLM(nn.Module):
    """Embedding * sqrt(ninp) + positions -> causal TransformerEncoder -> Linear to the vocabulary (logits)."""

    def __init__(self, ntoken: int, ninp: int = 128, nhead: int = 2, nhid: int = 128, nlayers: int = 2,
                 dropout: float = 0.0, max_len: int = 5000):
        super().__init__()
        self.ninp = ninp
        self.pos_encoder = PositionalEncoding(ninp, dropout, max_len)
        layer = nn.TransformerEncoderLayer(ninp, nhead, nhid, dropout, batch_first=True)
        # nn.TransformerEncoder deep-copies `layer`, so all layers start from the same weights (as in
        # pytorch/examples and the authors' code).
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.decoder = nn.Linear(ninp, ntoken)
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """src: (N, T) int64 token ids -> (N, T, ntoken) logits; position t sees only positions <= t."""
        if src.dim() != 2:
            raise ValueError(f"expected (batch, time) token ids, got shape {tuple(src.shape)}")
        length = src.size(1)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=src.device, dtype=torch.float32)
        x = self.pos_encoder(self.encoder(src) * math.sqrt(self.ninp))
        x = self.transformer_encoder(x, mask=mask, is_causal=True)
        return self.decoder(x)


def transformer_lm(num_classes: int, width: float = 1.0, heads: int = 2, layers: int = 2, ninp: int = 128,
                   nhid: int = 128, dropout: float = 0.0, max_len: int = 5000) -> nn.Module:
    """`num_classes` is the vocabulary size. Defaults are the authors' command-line defaults (emsize 128, nhid 128,
    nhead 2, nlayers 2, dropout 0); note their build_nlp_model overrode them with nhead=4, nlayers=12."""
    _require_unit_width("transformer_lm", width)
    return TransformerLM(num_classes, ninp, heads, nhid, layers, dropout, max_len)


# ---------------------------------------------------------------------------------------------------------------
# Segmentation: SegNet (Audebert et al., DeepNetsForEO) and UNet (Ronneberger et al.)
# ---------------------------------------------------------------------------------------------------------------


def _conv_relu_bn(in_channels: int, out_channels: int) -> nn.Sequential:
    # Audebert's order: 3x3 conv (with bias) -> ReLU -> BatchNorm.
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
                         nn.BatchNorm2d(out_channels))


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
        self.downs = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), DoubleConv(widths[i], widths[i + 1]))
                                   for i in range(4))
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
    _require_unit_width("segnet", width)
    return SegNet(num_classes, in_channels)


def unet(num_classes: int, width: float = 1.0, in_channels: int = 3, base: int = 64) -> nn.Module:
    # base=64 is Ronneberger's; the authors' src/model/unet.py (milesial's UNet) uses base=32.
    return UNet(num_classes, in_channels, _scaled(base, width))


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


def _require_unit_width(name: str, width: float) -> None:
    if width != 1:
        raise ValueError(f"{name} has no width multiplier (got width={width})")


ZOO: dict[str, Callable[..., nn.Module]] = {
    "cifar_resnet18": cifar_resnet18,
    "cifar_resnet34": cifar_resnet34,
    "cifar_cnn": cifar_cnn,
    "medium_mlp": medium_mlp,
    "cifar_vgg11": cifar_vgg11,
    "cifar_vgg16": cifar_vgg16,
    "cifar_vgg19": cifar_vgg19,
    "cifar_mobilenet_v2": cifar_mobilenet_v2,
    "imagenet_mobilenet_v2": imagenet_mobilenet_v2,
    "imagenet_resnet18": imagenet_resnet18,
    "imagenet_resnet50": imagenet_resnet50,
    "imagenet_resnet152": imagenet_resnet152,
    "transformer_lm": transformer_lm,
    "segnet": segnet,
    "unet": unet,
}

WIKITEXT2_VOCAB = 33278  # pytorch/examples' data.Corpus vocabulary of WikiText-2 (train+valid+test, with <eos>)

# Parameter counts (trainable, i.e. sum of p.numel() over model.parameters()) keyed by (name, num_classes, width)
# with default options; each is asserted in tests/test_zoo.py against an independent computation.
EXPECTED_PARAMETERS: dict[tuple[str, int, float], int] = {
    ("cifar_resnet18", 10, 1.0): 11_173_962,  # ResNet18-1
    ("cifar_resnet18", 10, 2.0): 44_662_922,  # ResNet18-2
    ("cifar_resnet34", 10, 1.0): 21_282_122,  # = kuangliu/pytorch-cifar ResNet34
    ("cifar_resnet34", 10, 2.0): 85_080_714,
    ("cifar_cnn", 10, 1.0): 113_738,  # channels 32, 64, 128; Linear(128 * 4 * 4, 10)
    ("medium_mlp", 10, 1.0): 62_971_914,  # 4 hidden layers of 4096 (hidden_layers=3, the authors': 46_190_602)
    ("cifar_vgg11", 10, 1.0): 9_231_114,  # BN, Linear(512, 10) head
    ("cifar_vgg16", 10, 1.0): 14_728_266,  # BN, Linear(512, 10) head (= kuangliu/pytorch-cifar VGG16)
    ("cifar_vgg19", 10, 1.0): 20_040_522,  # BN, Linear(512, 10) head
    ("cifar_mobilenet_v2", 10, 1.0): 2_236_682,
    ("imagenet_mobilenet_v2", 1000, 1.0): 3_504_872,
    ("imagenet_resnet18", 1000, 1.0): 11_689_512,  # ResNet-18-1 (= torchvision resnet18)
    ("imagenet_resnet18", 1000, 2.0): 45_693_032,  # ResNet-18-2
    ("imagenet_resnet50", 1000, 1.0): 25_557_032,  # ResNet-50-1 (= torchvision resnet50)
    ("imagenet_resnet50", 1000, 2.0): 98_004_072,  # ResNet-50-2 (widened everywhere; not wide_resnet50_2)
    ("imagenet_resnet152", 1000, 0.5): 15_601_160,  # ResNet-152-0.5
    ("imagenet_resnet152", 1000, 1.0): 60_192_808,  # ResNet-152-1 (= torchvision resnet152)
    ("transformer_lm", WIKITEXT2_VOCAB, 1.0): 8_751_614,  # 257 * vocab + 99_584 * layers, 2 heads, 2 layers
    ("segnet", 6, 1.0): 29_446_470,  # Audebert's SegNet (conv biases, 25 BNs) with a 6-class last conv
    ("unet", 6, 1.0): 31_037_958,  # base 64 (base=32, the authors': 7_763_206)
}


def build(name: str, *, num_classes: int, width: float = 1.0, **options) -> nn.Module:
    """A freshly initialised CPU float32 model; initial weights depend only on torch's global RNG state."""
    try:
        builder = ZOO[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {sorted(ZOO)}") from None
    return builder(num_classes=num_classes, width=width, **options)
