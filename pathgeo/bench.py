"""Benchmarks of the measurement engine.

    python -m pathgeo.bench overhead [--models mlp,resnet1d,resnet18] [--steps 50] [--rounds 5]

times, in one process and on the same model and batches:
  (a) plain training steps,
  (b) the same steps with the probe observing (pathgeo's replay, every default measurement on),
  (c) the same steps with the metrics computed as the authors' code does: concatenate every parameter and
      gradient into new tensors each step, then norms and dot products read back with `.item()` (five
      host synchronisations per step: three for RSI/EB/gamma, two more for the weight-decay variant).
Modes are interleaved round by round so drifts in machine speed hit all three alike; the reported time
per step is the median over rounds. Ratios b/a and c/a are what the README quotes. Beside them: the bytes
the probe must move per step (pathgeo.layout.vectors_moved), this machine's read bandwidth (a pass that
reads four float32 vectors of ResNet-18's size, best of several), the floor that gives, (bytes moved) /
(bandwidth), and the probe's added time (b − a) over that floor.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pathgeo.flat import FlatParameters
from pathgeo.models import MLP, MNIST1D_CLASSES, MNIST1D_LENGTH, ResNet1d
from pathgeo.probe import Probe

WEIGHT_DECAY = 1e-5


@dataclass(frozen=True)
class BenchModel:
    name: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    classes: int
    batch_size: int


def _resnet18() -> nn.Module:
    from torchvision.models import resnet18

    return resnet18(num_classes=10)


MODELS = {
    "mlp": BenchModel("mlp", lambda: MLP(MNIST1D_LENGTH, 64, MNIST1D_CLASSES), (MNIST1D_LENGTH,), 10, 32),
    "resnet1d": BenchModel("resnet1d", lambda: ResNet1d(32, MNIST1D_CLASSES), (MNIST1D_LENGTH,), 10, 32),
    "resnet18": BenchModel("resnet18", _resnet18, (3, 32, 32), 10, 32),
}


class AuthorsMetrics:
    """The per-step metric computation of the paper's published code, for comparison."""

    def __init__(self, params: list[nn.Parameter], w_star: torch.Tensor):
        self.params = params
        self.w_star = w_star
        self.rows: list[tuple[float, ...]] = []

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        weights = torch.cat([p.detach().flatten() for p in self.params])
        grads = torch.cat([p.grad.detach().flatten() for p in self.params])
        dist = weights - self.w_star
        norm_dist, norm_grad, dot = torch.norm(dist).item(), torch.norm(grads).item(), torch.dot(dist, grads).item()
        grads_wd = grads + weight_decay * weights
        norm_grad_wd, dot_wd = torch.norm(grads_wd).item(), torch.dot(dist, grads_wd).item()
        self.rows.append((norm_dist, norm_grad, dot, norm_grad_wd, dot_wd))

    def end_epoch(self) -> None:
        pass


class Setup:
    """One model, its optimizer and a fixed list of batches, shared by every mode."""

    def __init__(self, spec: BenchModel, steps: int, seed: int = 0):
        torch.manual_seed(seed)
        self.model = spec.build()
        self.flat = FlatParameters([p for p in self.model.parameters() if p.requires_grad])
        self.optimizer = torch.optim.SGD(self.flat.params, lr=0.01, momentum=0.9, weight_decay=WEIGHT_DECAY)
        generator = torch.Generator().manual_seed(seed)
        self.batches = [
            (
                torch.randn(spec.batch_size, *spec.input_shape, generator=generator),
                torch.randint(0, spec.classes, (spec.batch_size,), generator=generator),
            )
            for _ in range(8)
        ]
        self.w_star = self.flat.weights.detach() + 0.01 * torch.randn(self.flat.numel, generator=generator)
        self.steps = steps

    def observer(self, mode: str):
        if mode == "plain":
            return None
        if mode == "probe":
            return Probe(self.flat, {"final": self.w_star}, WEIGHT_DECAY, steps_per_epoch=self.steps)
        if mode == "authors":
            return AuthorsMetrics(self.flat.params, self.w_star)
        raise ValueError(mode)

    def probe_bytes_per_step(self, probe: Probe) -> float:
        """The floor traffic of a probe epoch of `steps` steps (one observed run, untimed)."""
        self.run_with(probe)
        return probe.vectors_moved / self.steps * self.flat.numel * self.flat.buffer.element_size()

    def run(self, mode: str) -> float:
        """Seconds per step over `steps` steps, including the observer's end-of-epoch work but not its
        construction (once per replay segment, not per step)."""
        return self.run_with(self.observer(mode))

    def run_with(self, observer) -> float:
        self.model.train()
        start = time.perf_counter()
        for i in range(self.steps):
            x, y = self.batches[i % len(self.batches)]
            self.flat.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            if observer is not None:
                observer.after_backward(loss, self.optimizer.param_groups[0]["lr"], WEIGHT_DECAY)
            self.optimizer.step()
        if observer is not None:
            observer.end_epoch()
        return (time.perf_counter() - start) / self.steps


MODES = ("plain", "probe", "authors")
BANDWIDTH_FLOATS = 11_181_642  # torchvision ResNet-18 with 10 classes: a vector far larger than the caches


def read_bandwidth(numel: int = BANDWIDTH_FLOATS, repeats: int = 10) -> float:
    """Bytes per second of the best of `repeats` passes that read four float32 vectors of `numel` entries,
    on torch's thread count."""
    from pathgeo import kernels

    generator = torch.Generator().manual_seed(0)
    vectors = [torch.randn(numel, generator=generator).numpy() for _ in range(4)]
    out = np.zeros(1)
    threads = torch.get_num_threads()
    kernels.read_pass(*vectors, out, threads)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        kernels.read_pass(*vectors, out, threads)
        best = min(best, time.perf_counter() - start)
    return 4 * numel * 4 / best


def overhead(model_names: list[str], steps: int, rounds: int) -> tuple[list[dict], float]:
    bandwidth = read_bandwidth()
    results = []
    for name in model_names:
        setup = Setup(MODELS[name], steps)
        for mode in MODES:
            setup.run(mode)
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(rounds):
            for mode in MODES:
                times[mode].append(setup.run(mode))
        median = {mode: statistics.median(t) for mode, t in times.items()}
        probe = setup.observer("probe")
        moved = setup.probe_bytes_per_step(probe)
        floor = moved / bandwidth
        results.append(
            {
                "model": name,
                "parameters": setup.flat.numel,
                "plain_ms": 1e3 * median["plain"],
                "probe_ms": 1e3 * median["probe"],
                "authors_ms": 1e3 * median["authors"],
                "probe_ratio": median["probe"] / median["plain"],
                "authors_ratio": median["authors"] / median["plain"],
                "probe_mb": moved / 1e6,
                "floor_ms": 1e3 * floor,
                "over_floor": (median["probe"] - median["plain"]) / floor,
            }
        )
    return results, bandwidth


def format_table(results: list[dict], bandwidth: float) -> str:
    lines = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 32, SGD momentum, median over rounds; "
        f"read bandwidth {bandwidth / 1e9:.1f} GB/s",
        (
            f"{'model':<10} {'params':>11} {'(a) plain':>11} {'(b) probe':>11} {'(c) authors':>12} {'b/a':>6} "
            f"{'c/a':>6} {'MB/step':>8} {'floor':>9} {'(b-a)/floor':>12}"
        ),
    ]
    for r in results:
        lines.append(
            f"{r['model']:<10} {r['parameters']:>11,} {r['plain_ms']:>9.2f}ms {r['probe_ms']:>9.2f}ms "
            f"{r['authors_ms']:>10.2f}ms {r['probe_ratio']:>6.3f} {r['authors_ratio']:>6.3f} {r['probe_mb']:>8.2f} "
            f"{r['floor_ms']:>7.3f}ms {r['over_floor']:>12.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pathgeo.bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("overhead", help="probe cost next to a training step")
    cmd.add_argument("--models", default="mlp,resnet1d,resnet18")
    cmd.add_argument("--steps", type=int, default=50, help="steps per timed block (one probe epoch)")
    cmd.add_argument("--rounds", type=int, default=5)
    cmd.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models.split(",")
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {sorted(MODELS)}")
    print(format_table(*overhead(models, args.steps, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
