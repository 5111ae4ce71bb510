"""What figures call things: metrics, factors, factor values, runs and experiments, in words (docs/figures.md,
"Names"). No figure shows a run id, a config key or a raw "factor=value" label; everything a reader sees comes
through here."""

from __future__ import annotations

import re

METRIC_SYMBOLS = {
    "gamma": "γ",
    "rsi": "RSI",
    "eb": "EB",
    "lolr": "η*",
    "grad_norm": "|G|",
    "dist": "|w − w*|",
    "loss": "loss",
    "lr": "learning rate",
    "upd_norm": "|Δw|",
    "grad_corr": "cos(G(t−1), G(t))",
    "mean_grad_corr": "μ(t)",
    "sign_flip": "sign flips",
}
METRIC_TITLES = {
    "gamma": "γ = cos(G, w − w*)",
    "rsi": "RSI = G·(w − w*) / |w − w*|²",
    "eb": "EB = |G| / |w − w*|",
    "lolr": "loLR η* = RSI / EB²",
    "grad_norm": "|G| (minibatch gradient norm)",
    "dist": "|w − w*| (parameter-space distance)",
    "loss": "training loss",
    "lr": "learning rate",
    "upd_norm": "|Δw| (optimizer update norm)",
    "grad_corr": "cos(G(t−1), G(t)) (adjacent gradient correlation)",
    "mean_grad_corr": "μ(t) (adjacent gradient correlation, window mean, eq. 3)",
    "sign_flip": "share of gradient entries flipping sign",
}
# cos(G(t−k), G(t)) of the components orthogonal to w − w*: one column per lag k, so matched rather than listed.
PERP_CORR = re.compile(r"perp_corr_lag(\d+)")

FACTOR_TITLES = {
    "batch_size": "batch size",
    "budget": "epoch budget",
    "model": "architecture",
    "peak_lr": "peak learning rate",
    "weight_decay": "weight decay",
    "schedule": "LR schedule",
    "epochs": "epochs trained",
    "warmup_epochs": "warm-up epochs",
    "warmup_growth": "warm-up growth",
    "full_batch": "full batch",
    "data_order_seed": "data-order seed",
    "grad_clip": "gradient norm clipped to",
    "gawu_window": "GAWU window h",
    "sync_batchnorm": "batch norm",
    "devices": "devices",
}
# The learning rate of a run whose schedule keeps it constant is no peak.
CONSTANT_SCHEDULE = "constant"

# Each factor's values in words (a legend says "SGD", "MLP", not "sgd", "mlp"); a value not listed reads as it is.
VALUE_WORDS: dict[str, dict[str, str]] = {
    "optimizer": {
        "sgd": "SGD",
        "momentum": "SGD with momentum",
        "adam": "Adam",
        "adamw": "AdamW",
        "rmsprop": "RMSprop",
        "adagrad": "Adagrad",
    },
    "model": {
        "mlp": "MLP",
        "medium_mlp": "medium MLP",
        "resnet1d": "ResNet-1D",
        "linear": "linear model",
        "sinusoid": "sinusoid",
        "walk": "random walk",
        "cifar_cnn": "CNN",
        "cifar_resnet18": "ResNet-18",
        "cifar_resnet34": "ResNet-34",
        "cifar_vgg11": "VGG-11",
        "cifar_vgg16": "VGG-16",
        "cifar_vgg19": "VGG-19",
        "cifar_mobilenet_v2": "MobileNetV2",
        "imagenet_resnet18": "ResNet-18",
        "imagenet_resnet50": "ResNet-50",
        "imagenet_resnet152": "ResNet-152",
        "imagenet_mobilenet_v2": "MobileNetV2",
        "segnet": "SegNet",
        "unet": "U-Net",
        "transformer_lm": "Transformer",
    },
    "dataset": {
        "mnist1d": "MNIST-1D",
        "alm": "Asymmetric Linear Model (ALM)",
        "sm": "Sinusoidal Mixture (SM)",
        "walk": "random walk",
        "cifar10": "CIFAR-10",
        "imagenet": "ImageNet",
        "wikitext2": "WikiText-2",
        "wikitext103": "WikiText-103",
        "ptb": "Penn Treebank",
        "vaihingen": "Vaihingen",
    },
    "schedule": {
        "gawu": "GAWU",
        "exp_warmup_cosine": "exponential warm-up, cosine decay",
        "warmup_cosine": "linear warm-up, cosine decay",
        "final_drop": "LR ÷ 10 in the last epoch",
        "constant": "constant LR",
    },
    "full_batch": {"True": "full batch", "False": "minibatches", "true": "full batch", "false": "minibatches"},
    "sync_batchnorm": {"True": "synchronized", "False": "per device", "true": "synchronized", "false": "per device"},
    "grad_clip": {"None": "none"},
}
# Factors whose values name themselves: a run reads "Adam", not "optimizer Adam".
NAMED_FACTORS = frozenset({"dataset", "model", "optimizer", "schedule", "full_batch"})
# A run label's "factor=value" pairs (pathgeo.planning.labels).
LABEL_PAIR = re.compile(r"([a-z_]+)=(\S+)")


def metric_title(metric: str) -> str:
    """Axis title for a metric column stem such as "gamma", "eb_wd" or "upd_rsi"."""
    if metric.endswith("_wd"):
        return f"{metric_title(metric[:-3])}, G incl. weight decay"
    if metric.startswith("upd_") and metric not in METRIC_TITLES:
        return f"{metric_title(metric[4:])}, update Δw in place of G"
    if lag := PERP_CORR.fullmatch(metric):
        return f"cos(G(t−{lag[1]}), G(t)), components orthogonal to w − w*"
    return METRIC_TITLES.get(metric, metric)


def metric_symbol(metric: str) -> str:
    if metric.endswith("_wd"):
        return f"{metric_symbol(metric[:-3])} of G + λw"
    if lag := PERP_CORR.fullmatch(metric):
        return f"lag-{lag[1]} orthogonal gradient correlation"
    return METRIC_SYMBOLS.get(metric, metric)


def factor_title(factor: str, constant_lr: bool = False) -> str:
    """A factor's name in words; the LR of runs whose learning rate is constant is "learning rate", not a peak."""
    if factor == "peak_lr" and constant_lr:
        return "learning rate"
    return FACTOR_TITLES.get(factor, factor.replace("_", " "))


def value_words(factor: str, value: object) -> str:
    """A factor's value in words ("SGD", "MLP", "MNIST-1D"); numbers as they are."""
    return VALUE_WORDS.get(factor, {}).get(str(value), str(value))


def factor_value(factor: str, value: object, constant_lr: bool = False) -> str:
    """A factor's value as a run's name says it: "Adam", "batch size 64", "width 32"."""
    if factor in NAMED_FACTORS:
        return value_words(factor, value)
    return f"{factor_title(factor, constant_lr)} {value_words(factor, value)}"


def run_name(label: str, schedule: str | None = None) -> str:
    """A run label in words: "optimizer=adam peak_lr=0.001 seed=1" reads "Adam, learning rate 0.001, seed 1" (a peak
    learning rate where the run's `schedule` is not constant); "model=mlp width=32" reads "MLP, width 32". A label
    without factor=value pairs (a run's one-line description) is kept as it is."""
    pairs = LABEL_PAIR.findall(label)
    if not pairs or LABEL_PAIR.sub("", label).strip():
        return label
    constant = schedule == CONSTANT_SCHEDULE
    return ", ".join(factor_value(factor, value, constant) for factor, value in pairs)


def without_factors(label: str, factors: set[str]) -> str:
    """A run label without the pairs of these factors (the runs that differ from it only in them share it)."""
    return " ".join(f"{f}={v}" for f, v in LABEL_PAIR.findall(label) if f not in factors)


def experiment_title(experiment: str) -> str:
    """An experiment's config key in words: "batch_sizes" reads "batch sizes"; an experiment named after what it
    runs, as that reads ("sm": "Sinusoidal Mixture (SM)", "gawu": "GAWU")."""
    named = next((words[experiment] for words in VALUE_WORDS.values() if experiment in words), None)
    return named or experiment.replace("_", " ")


def count_words(count: int, thing: str) -> str:
    return f"{count} {thing}" + ("" if count == 1 else "s")


def describe(factors: dict, brief: bool = False) -> str:
    """A run in words from its factors (those it has), for a run whose label is a description ("mnist1d mlp64 momentum
    lr=0.01 …"): "MLP of width 64 on MNIST-1D, SGD with momentum, learning rate 0.01, batch size 64, 30 epochs, seed
    0". `brief`: without the model, dataset and epochs (where a heading says them), "SGD with momentum, learning rate
    0.01, batch size 64, seed 0"."""
    get = factors.get
    parts = []
    if get("model") is not None and not brief:
        model = value_words("model", get("model")) + (f" of width {get('width')}" if get("width_unit") else "")
        parts.append(model + (f" on {value_words('dataset', get('dataset'))}" if get("dataset") is not None else ""))
    if get("optimizer") is not None:
        parts.append(value_words("optimizer", get("optimizer")))
    schedule = get("schedule")
    if get("peak_lr") is not None:
        parts.append(f"{factor_title('peak_lr', schedule in (None, CONSTANT_SCHEDULE))} {get('peak_lr'):g}")
    if schedule not in (None, CONSTANT_SCHEDULE):
        warmup = get("warmup_epochs")
        parts.append(value_words("schedule", schedule) + (f" ({warmup} warm-up epochs)" if warmup else ""))
    if get("full_batch"):
        parts.append("full batch")
    elif get("batch_size") is not None:
        parts.append(f"batch size {get('batch_size')}")
    if get("epochs") is not None and not brief:
        parts.append(count_words(int(get("epochs")), "epoch"))
    if get("seed") is not None:
        parts.append(f"seed {get('seed')}")
    return ", ".join(parts)
