"""The model registry: every model a run can name, each entry carrying everything about itself.

A model is declared by the module of this package that builds it (`MODELS = (Model(...), ...)`), so adding one
touches that module and its test (tests/test_models.py), nothing else: the config schema's `model` enum, which
models a dataset kind trains, what a run's width means and the parameter counts the tests check all come from
the entry.

- mnist1d.py        the MLP and residual 1-D CNN of the embedded default (MNIST-1D)
- objectives.py     the synthetic objectives' parameters: linear (ALM), sinusoid (SM), walk (the random walk)
- resnet.py         the papers' ResNets for CIFAR-10 and ImageNet, widened by a multiplier of every stage
- cnn.py            the simple CIFAR-10 CNN of "A mysterious optimization geometry"
- medium_mlp.py     the Medium-MLP on CIFAR-10
- vgg.py            VGG-11/16/19 with batch norm for CIFAR-10
- mobilenet.py      MobileNetV2 for CIFAR-10 and ImageNet
- transformer.py    the word-level Transformer language model
- segmentation.py   SegNet and UNet for Vaihingen

Every model returns raw logits: no softmax or log-softmax inside, the loss (cross-entropy) applies it once. (The
authors' Medium-MLP and Transformer end in `log_softmax`; cross-entropy on top of that is harmless only because
log_softmax is idempotent, and it is the classic "double softmax" trap when it is a softmax, so the
normalisation stays out of the models altogether.)

A model's `input` says what it takes; a dataset kind trains exactly the models whose input it provides
(`DatasetKind.input` in pathgeo.training.data):
- mnist1d        MNIST-1D's signals, 40 values, 10 classes
- image32        3 x 32 x 32 images (CIFAR-10)
- image224       3 x 224 x 224 crops (ImageNet)
- tokens         (N, T) int64 token ids; the number of classes is the vocabulary size
- segmentation   3 x H x W images, a class per pixel
- alm, sm, random_walk   a synthetic objective's own parameter vector, sized by the dataset's `dim`

Besides the registry, a run can name a model that pathgeo does not hold (`plugin`), with its `model_options`
as keyword arguments and the number of classes from its task, built without pretrained weights:
- `torchvision:<name>`   any name in `torchvision.models.list_models()` (`torchvision.models.get_model`)
- `<module>:<callable>`  the user's own builder, `callable(num_classes=..., **model_options)` returning an
                         `nn.Module`, from a module importable from the working directory (pathgeo.plugins)
Such a model has one size (its options size it) and takes any input: the user knows what it fits.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch
from torch import nn

from pathgeo import plugins
from pathgeo.registry import discover, lookup


class Width(enum.Enum):
    """What a run's `width` means for a model."""

    HIDDEN = "hidden units"  # of every hidden layer
    CHANNELS = "channels"  # of the first stage; later stages have multiples of it
    MULTIPLIER = "a multiplier of every stage's channels"  # the stem's too: the papers' ResNet18-2, ResNet152-0.5
    NONE = "none"  # one size: the run's width is 0 in its spec, and the model is built at width 1


@dataclass(frozen=True)
class ParameterCount:
    """The number of trainable parameters of the model built with these arguments and default options."""

    parameters: int
    num_classes: int = 0
    width: float = 1.0
    data: Mapping[str, Any] = field(default_factory=dict)  # the dataset parameters in `Model.reads`


@dataclass(frozen=True)
class Model:
    """A model a run can name.

    `build(num_classes=..., width=..., **reads, **options)` returns a freshly initialised CPU float32 model whose
    initial weights depend only on torch's global RNG; `reads` names the dataset parameters it is sized by,
    `options` are the run's `model_options`. `parameter_counts` are checked exactly by the tests. An `input` of
    None (a plug-in) takes whatever the dataset provides.
    """

    name: str
    build: Callable[..., nn.Module]
    input: str | None
    width: Width
    parameter_counts: tuple[ParameterCount, ...]
    reads: tuple[str, ...] = ()

    def slug(self, width: float) -> str:
        return slug(self.name, width)


@cache
def models() -> dict[str, Model]:
    """Every model, by name, as the modules of this package declare them."""
    return discover(__name__, "MODELS")


def model(name: str) -> Model:
    """The registry's model of this name, or the plug-in it spells; an unknown name or a plug-in that cannot be
    used is a KeyError or a PluginError that says what to do."""
    if name.startswith(TORCHVISION):
        return _torchvision_model(name.removeprefix(TORCHVISION))
    if plugins.is_plugin(name):
        return _user_model(name)
    return lookup(models(), name, "model")


def slug(name: str, width: float) -> str:
    """A model as a run id names it, without importing a plug-in: cifar_resnet18x2 for a multiplier, mlp64 for a
    size, my_model.build for `my_model:build`, else its name."""
    if plugins.is_plugin(name):
        return plugins.slug(name)
    if model(name).width is Width.MULTIPLIER:
        return f"{name}x{width:g}"
    return f"{name}{width:g}" if width else name


TORCHVISION = "torchvision:"


@cache
def _torchvision_model(architecture: str) -> Model:
    import torchvision

    known = torchvision.models.list_models()
    if architecture not in known:
        raise plugins.PluginError(
            f"torchvision {torchvision.__version__} has no model '{architecture}'; use one of "
            "torchvision.models.list_models() (e.g. resnet18, mobilenet_v3_small, vit_b_16)"
        )

    def build(num_classes: int, width: float, **options: Any) -> nn.Module:
        if "weights" in options:
            raise plugins.PluginError(
                f"torchvision:{architecture}: remove model_options.weights; a run starts from its seed's initial "
                "weights (the randomness contract), never from pretrained ones"
            )
        return torchvision.models.get_model(architecture, weights=None, num_classes=num_classes, **options)

    return Model(f"{TORCHVISION}{architecture}", build, None, Width.NONE, ())


@cache
def _user_model(reference: str) -> Model:
    builder = plugins.resolve(reference)
    if not callable(builder):
        raise plugins.PluginError(f"'{reference}' is a {type(builder).__name__}, not a function that builds a model")

    def build(num_classes: int, width: float, **options: Any) -> nn.Module:
        built = builder(num_classes=num_classes, **options)
        if not isinstance(built, nn.Module):
            raise plugins.PluginError(f"'{reference}' returned a {type(built).__name__}, not a torch.nn.Module")
        return built

    return Model(reference, build, None, Width.NONE, ())


def for_input(name: str) -> tuple[str, ...]:
    """The models that take this input: the ones a dataset kind that provides it can train."""
    return tuple(entry.name for entry in models().values() if entry.input == name)


def build(name: str, *, num_classes: int, width: float = 1.0, **arguments: Any) -> nn.Module:
    """A freshly initialised CPU float32 model; `arguments` are its dataset parameters and options. Initial
    weights depend only on torch's global RNG state."""
    return model(name).build(num_classes=num_classes, width=width, **arguments)


def build_model(
    name: str, width: float, data_params: dict, seed: int, num_classes: int = 0, options: dict | None = None
) -> nn.Module:
    """A run's model: initial weights are a pure function of the seed (randomness contract), a width of 0 (a
    model with one size) builds width 1, and the dataset parameters the model reads come from the run's data."""
    entry = model(name)
    reads = {key: data_params[key] for key in entry.reads}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return entry.build(num_classes=num_classes, width=width or 1, **reads, **(options or {}))


def scaled(channels: int, width: float) -> int:
    """`channels` times a width multiplier, which must give a whole number of channels."""
    value = channels * width
    if width <= 0 or value != int(value):
        raise ValueError(f"width {width} does not give a whole number of channels from {channels}")
    return int(value)


def require_unit_width(name: str, width: float) -> None:
    """For builders of models with one size, called directly with another width."""
    if width != 1:
        raise ValueError(f"{name} has no width multiplier (got width={width})")
