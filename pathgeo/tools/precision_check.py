"""One epoch of CIFAR ResNet-18 in each precision on one device: training throughput and the replay's drift.

    python -m pathgeo.tools.precision_check                     # on a GPU: 4 x 3 epochs of 10,240 images
    python -m pathgeo.tools.precision_check --device cpu --images 64 --batch-size 32 --width 0.125   # a CPU smoke run

For each precision (float32, tf32, bf16, float64) it trains the CIFAR-10 task (pathgeo.training.data.cifar10, its data
path on the device: per-sample crops and flips) on synthetic CIFAR-shaped images: one warm-up epoch, then a
timed epoch from a checkpoint, then the replay of that epoch from the same checkpoint with a fresh trainer,
with deterministic algorithms on. It prints images per second of the timed epoch and the replay's relative
drift from the reference weights (0.0 is an exact replay). It imports only torch, numpy and pathgeo's training
code (no polars, altair, snakemake, PyYAML or jsonschema), so it runs on a bare GPU machine from a checkout.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from pathgeo.training.devices import configure_determinism, select_device
from pathgeo.training.flat import relative_drift
from pathgeo.training.loop import build_trainer
from pathgeo.training.precision import PRECISIONS
from pathgeo.training.spec import DataSpec, RunSpec

CIFAR_PARAMS = {"path": "synthetic", "split_seed": 0, "val_fraction": 0.2, "flip": False}


def synthetic_cifar10(images: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """uint8 images and labels in the layout of pathgeo.training.data.cifar10.load_cifar10 (train and validation)."""
    generator = torch.Generator().manual_seed(seed)
    validation = max(1, images // 10)
    x = torch.randint(0, 256, (images + validation, 3, 32, 32), dtype=torch.uint8, generator=generator)
    y = torch.randint(0, 10, (images + validation,), generator=generator)
    return {"x_train": x[:images], "y_train": y[:images], "x_val": x[images:], "y_val": y[images:]}


def run_spec(precision: str, batch_size: int, width: float) -> RunSpec:
    return RunSpec(
        data=DataSpec("synthetic_cifar10", "cifar10", CIFAR_PARAMS),
        model="cifar_resnet18",
        width=width,
        optimizer="momentum",
        lr=0.01,
        weight_decay=5e-4,
        schedule="constant",
        warmup_epochs=0,
        batch_size=batch_size,
        epochs=3,
        seed=0,
        data_order_seed=0,
        precision=precision,
    )


def check(precision: str, data: dict, device: torch.device, batch_size: int, width: float) -> dict[str, object]:
    spec = run_spec(precision, batch_size, width)
    trainer = build_trainer(spec, data, device)
    trainer.train_epoch()  # warm-up: CUDA context, kernels' first calls, allocator
    start = trainer.state()
    stats = trainer.train_epoch()
    replay = build_trainer(spec, data, device)
    replay.load_state(start)
    replay.train_epoch()
    return {
        "precision": precision,
        "images_per_second": stats.samples_per_second,
        "seconds": stats.seconds,
        "train_loss": stats.train_loss,
        "drift": relative_drift(replay.flat.weights, trainer.flat.weights),
        "nondeterministic_ops": sorted(trainer.nondeterministic_ops | replay.nondeterministic_ops),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pathgeo.tools.precision_check", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    parser.add_argument("--images", type=int, default=10_240, help="training images per epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=float, default=1.0, help="the ResNet-18's width multiplier")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    args = parser.parse_args(argv)
    settings = configure_determinism(True)
    device = select_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}; deterministic settings {settings}")
    print(f"CIFAR ResNet-18 (width {args.width:g}), {args.images} synthetic images, batch {args.batch_size}")
    header = f"{'precision':<10} {'img/s':>10} {'epoch s':>9} {'train loss':>11} {'replay drift':>13}"
    print(header + "  nondeterministic ops")
    data = synthetic_cifar10(args.images)
    began, exact = time.perf_counter(), True
    for precision in args.precisions:
        row = check(precision, data, device, args.batch_size, args.width)
        exact &= row["drift"] == 0.0
        print(
            f"{row['precision']:<10} {row['images_per_second']:>10.1f} {row['seconds']:>9.2f} "
            f"{row['train_loss']:>11.4f} {row['drift']:>13.3g}  {', '.join(row['nondeterministic_ops']) or '-'}",
            flush=True,
        )
    print(f"total {time.perf_counter() - began:.1f} s; every replay exact: {exact}")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
