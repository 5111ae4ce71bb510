"""Benchmarks of the measurement engine.

    python -m pathgeo.tools.bench overhead [--models mlp,resnet1d,resnet18] [--steps 50] [--rounds 11] [--seconds 40]
    python -m pathgeo.tools.bench device [--device cuda] [--models cifar_resnet18,imagenet_resnet50] [--steps 30]

`overhead` times, in one process and on the same model and batches:
  (a) plain training steps,
  (b) the same steps with the probe observing (pathgeo's replay, every default measurement on),
  (c) the same steps with the metrics computed as the authors' code does: concatenate every parameter and
      gradient into new tensors each step, then norms and dot products read back with `.item()` (five
      host synchronisations per step: three for RSI/EB/gamma, two more for the weight-decay variant),
  (d) the steps of a loop written the usual way, on a second copy of the model: optimizer.zero_grad(), which
      sets gradients to None,
  (e) the same loop measured by pathgeo.measure: its observe at every step (the second pass's work: the
      probe, and the copy of the gradients that the loop set to None).
A round is one epoch of each mode, the modes taking turns every 5 steps so that they meet the same
machine (a shared host's speed moves by tens of percent within a second); each model runs at least
`--rounds` rounds, and more until `--seconds` have passed. The reported time per step is the median over
rounds; the ratios b/a and c/a, which the README quotes, and e/d (docs/measure.md) are paired: the median over
rounds of each round's own ratio. Beside them: the bytes the probe must move per step
(pathgeo.engine.record.vectors_moved), this machine's read bandwidth (a pass that reads four float32 vectors of
ResNet-18's size, best of several), the floor that gives, (bytes moved) / (bandwidth), and the probe's added time
(b − a) over that floor.

`device` is the check prepared for a GPU (under 5 minutes on one): under the deterministic settings the runs use,
the same three timings for CIFAR ResNet-18 at batch 128 and ImageNet ResNet-50 at batch 64 on synthetic data on
the device, then the Triton kernels against the fused CPU pass on the same vectors (skipped, saying why, where
numba is missing), then a short replay on the device and its drift from the reference trajectory. It imports
neither polars nor altair nor snakemake (GPU nodes may lack them); `--device cpu` with small models runs the
same code anywhere.
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

from pathgeo.engine.probe import Probe
from pathgeo.measurements.own_loop import Observer
from pathgeo.training.flat import FlatParameters
from pathgeo.training.models import build_model
from pathgeo.training.models.mnist1d import MLP, MNIST1D_CLASSES, MNIST1D_LENGTH, ResNet1d

WEIGHT_DECAY = 1e-5
CPU = torch.device("cpu")


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
    "cifar_resnet18": BenchModel(
        "cifar_resnet18", lambda: build_model("cifar_resnet18", 1, {}, 0, 10), (3, 32, 32), 10, 128
    ),
    "imagenet_resnet50": BenchModel(
        "imagenet_resnet50", lambda: build_model("imagenet_resnet50", 1, {}, 0, 1000), (3, 224, 224), 1000, 64
    ),
}
CPU_MODELS = "mlp,resnet1d,resnet18"
DEVICE_MODELS = "cifar_resnet18,imagenet_resnet50"


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


# The modes that train the second copy of the model, the way a user's loop does.
USER_MODES = ("user", "measure")


class Setup:
    """One model on `device`, its optimizer and a fixed list of batches, shared by every mode; a second copy
    of the model and optimizer for the user-loop modes."""

    def __init__(self, spec: BenchModel, steps: int, device: torch.device = CPU, seed: int = 0):
        torch.manual_seed(seed)
        self.device = device
        self.model = spec.build().to(device)
        self.flat = FlatParameters([p for p in self.model.parameters() if p.requires_grad])
        self.optimizer = torch.optim.SGD(self.flat.params, lr=0.01, momentum=0.9, weight_decay=WEIGHT_DECAY)
        torch.manual_seed(seed)
        self.user_model = spec.build().to(device)
        self.user_optimizer = torch.optim.SGD(
            self.user_model.parameters(), lr=0.01, momentum=0.9, weight_decay=WEIGHT_DECAY
        )
        generator = torch.Generator().manual_seed(seed)
        self.batches = [
            (
                torch.randn(spec.batch_size, *spec.input_shape, generator=generator).to(device),
                torch.randint(0, spec.classes, (spec.batch_size,), generator=generator).to(device),
            )
            for _ in range(8)
        ]
        noise = 0.01 * torch.randn(self.flat.numel, generator=generator).to(device)
        self.w_star = self.flat.weights.detach() + noise
        self.steps = steps
        self._batch = 0

    def observer(self, mode: str):
        if mode == "plain":
            return None
        if mode == "probe":
            return Probe(self.flat, {"final": self.w_star}, WEIGHT_DECAY, steps_per_epoch=self.steps)
        if mode == "authors":
            return AuthorsMetrics(self.flat.params, self.w_star)
        if mode == "user":
            return None
        if mode == "measure":
            observer = Observer(probe=lambda flat, epoch: Probe(flat, {"final": self.w_star}, start_epoch=epoch))
            # Its first call makes the parameters views of its flat buffer and builds the probe: once per pass
            # in measure, so outside the timed steps, as the probe's construction is.
            self.advance("measure", observer, 1)
            return observer
        raise ValueError(mode)

    def probe_bytes_per_step(self) -> float:
        """The floor traffic of a probe epoch of `steps` steps (one observed run, untimed)."""
        probe = self.observer("probe")
        self.advance("probe", probe, self.steps)
        self.end_epoch(probe)
        return probe.vectors_moved / self.steps * self.flat.numel * self.flat.buffer.element_size()

    def advance(self, mode: str, observer, count: int) -> float:
        """Seconds for `count` training steps of `mode` with its `observer` (None: unobserved steps)."""
        user = mode in USER_MODES
        model, optimizer = (self.user_model, self.user_optimizer) if user else (self.model, self.optimizer)
        model.train()
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(count):
            x, y = self.batches[self._batch % len(self.batches)]
            self._batch += 1
            if user:
                optimizer.zero_grad()
            else:
                self.flat.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            if mode == "measure":
                observer(model, loss, optimizer)
            elif observer is not None:
                observer.after_backward(loss, optimizer.param_groups[0]["lr"], WEIGHT_DECAY)
            optimizer.step()
        synchronize(self.device)
        return time.perf_counter() - start

    def end_epoch(self, observer) -> float:
        """Seconds of the observer's end-of-epoch work."""
        if observer is None:
            return 0.0
        start = time.perf_counter()
        observer.end_epoch()
        synchronize(self.device)
        return time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


MODES = ("plain", "probe", "authors", *USER_MODES)
BANDWIDTH_FLOATS = 11_181_642  # torchvision ResNet-18 with 10 classes: a vector far larger than the caches


def read_bandwidth(numel: int = BANDWIDTH_FLOATS, repeats: int = 10) -> float:
    """Bytes per second of the best of `repeats` passes that read four float32 vectors of `numel` entries,
    on torch's thread count."""
    from pathgeo.engine import cpu_kernels

    generator = torch.Generator().manual_seed(0)
    vectors = [torch.randn(numel, generator=generator).numpy() for _ in range(4)]
    out = np.zeros(1)
    threads = torch.get_num_threads()
    cpu_kernels.read_pass(*vectors, out, threads)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        cpu_kernels.read_pass(*vectors, out, threads)
        best = min(best, time.perf_counter() - start)
    return 4 * numel * 4 / best


@dataclass(frozen=True)
class Timing:
    """Median seconds per step of each mode over `rounds` rounds, and the paired ratios: each round's time
    of a mode over the plain time of the same round, then the median over rounds."""

    seconds: dict[str, float]
    ratios: dict[str, float]
    rounds: int
    measure_over_user: float  # e/d: a round's measured user loop over its unobserved one, the median over rounds


def timings(setup: Setup, rounds: int, seconds: float = 0.0, block: int = 5) -> Timing:
    """At least `rounds` timed rounds, and more until `seconds` have passed (small models: a round takes a
    fraction of a second, and the median of many is steadier). A round is one epoch of `steps` steps of
    every mode, each with a fresh observer whose construction (once per replay segment, not per step) is
    untimed, and its end-of-epoch work. Within a round the modes take turns every `block` steps, in an order
    that reverses from round to round: on a shared host the machine's speed moves by tens of percent within
    a second, and modes that take turns that often meet the same machine. One round before the timed ones
    warms every mode up (compilation, allocation)."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    begun = time.perf_counter()
    r = 0
    while r <= rounds or time.perf_counter() - begun < seconds:
        order = MODES if r % 2 == 0 else MODES[::-1]
        observers = {mode: setup.observer(mode) for mode in order}
        spent = dict.fromkeys(order, 0.0)
        for start in range(0, setup.steps, block):
            count = min(block, setup.steps - start)
            for mode in order:
                spent[mode] += setup.advance(mode, observers[mode], count)
        for mode in order:
            spent[mode] += setup.end_epoch(observers[mode])
            if r:
                times[mode].append(spent[mode] / setup.steps)
        r += 1
    plain = times["plain"]
    return Timing(
        seconds={mode: statistics.median(t) for mode, t in times.items()},
        ratios={mode: statistics.median(x / p for x, p in zip(t, plain, strict=True)) for mode, t in times.items()},
        rounds=len(plain),
        measure_over_user=statistics.median(m / u for m, u in zip(times["measure"], times["user"], strict=True)),
    )


def overhead(model_names: list[str], steps: int, rounds: int, seconds: float) -> tuple[list[dict], float]:
    bandwidth = read_bandwidth()
    results = []
    for name in model_names:
        setup = Setup(MODELS[name], steps)
        timing = timings(setup, rounds, seconds)
        median = timing.seconds
        moved = setup.probe_bytes_per_step()
        floor = moved / bandwidth
        results.append(
            {
                "model": name,
                "parameters": setup.flat.numel,
                "rounds": timing.rounds,
                "plain_ms": 1e3 * median["plain"],
                "probe_ms": 1e3 * median["probe"],
                "authors_ms": 1e3 * median["authors"],
                "user_ms": 1e3 * median["user"],
                "measure_ms": 1e3 * median["measure"],
                "probe_ratio": timing.ratios["probe"],
                "authors_ratio": timing.ratios["authors"],
                "measure_ratio": timing.measure_over_user,
                "probe_mb": moved / 1e6,
                "floor_ms": 1e3 * floor,
                "over_floor": (timing.ratios["probe"] - 1) * median["plain"] / floor,
            }
        )
    return results, bandwidth


def format_table(results: list[dict], bandwidth: float) -> str:
    lines = [
        (
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 32, SGD momentum, medians over "
            f"rounds, ratios paired by round; read bandwidth {bandwidth / 1e9:.1f} GB/s"
        ),
        (
            f"{'model':<10} {'params':>11} {'rounds':>6} {'(a) plain':>11} {'(b) probe':>11} {'(c) authors':>12} "
            f"{'b/a':>6} {'c/a':>6} {'MB/step':>8} {'floor':>9} {'(b-a)/floor':>12} {'(d) user':>11} "
            f"{'(e) measure':>12} {'e/d':>6}"
        ),
    ]
    for r in results:
        lines.append(
            f"{r['model']:<10} {r['parameters']:>11,} {r['rounds']:>6} {r['plain_ms']:>9.2f}ms {r['probe_ms']:>9.2f}ms "
            f"{r['authors_ms']:>10.2f}ms {r['probe_ratio']:>6.3f} {r['authors_ratio']:>6.3f} {r['probe_mb']:>8.2f} "
            f"{r['floor_ms']:>7.3f}ms {r['over_floor']:>12.2f} {r['user_ms']:>9.2f}ms {r['measure_ms']:>10.2f}ms "
            f"{r['measure_ratio']:>6.3f}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# The device check
# ---------------------------------------------------------------------------------------------------------


def device_timings(model_names: list[str], device: torch.device, steps: int, rounds: int) -> list[str]:
    lines = [
        (
            f"{'model':<18} {'batch':>5} {'(a) plain':>11} {'(b) probe':>11} {'(c) authors':>12} {'b/a':>6} "
            f"{'c/a':>6} {'(d) user':>11} {'(e) measure':>12} {'e/d':>6}"
        )
    ]
    for name in model_names:
        spec = MODELS[name]
        timing = timings(Setup(spec, steps, device), rounds)
        median = timing.seconds
        lines.append(
            f"{name:<18} {spec.batch_size:>5} {1e3 * median['plain']:>9.2f}ms {1e3 * median['probe']:>9.2f}ms "
            f"{1e3 * median['authors']:>10.2f}ms {timing.ratios['probe']:>6.3f} {timing.ratios['authors']:>6.3f} "
            f"{1e3 * median['user']:>9.2f}ms {1e3 * median['measure']:>10.2f}ms {timing.measure_over_user:>6.3f}"
        )
    return lines


def fused_pass_missing() -> str | None:
    """Why the fused CPU pass (numba) cannot run here, or None where it can."""
    try:
        from pathgeo.engine import cpu_kernels  # noqa: F401
    except ImportError as error:
        return str(error)
    return None


@dataclass(frozen=True)
class KernelComparison:
    numel: int
    steps: int
    difference: float  # the largest of any record entry, relative to the largest entry of its kind
    same_nan: bool


def compare_kernels(device: torch.device, numel: int, steps: int) -> KernelComparison:
    """The device's probe (Triton) against the fused CPU pass on the same float32 vectors, two references, every
    default measurement. A cosine's rounding is relative to the product of the norms, not to the value, hence
    each difference relative to the largest entry of its kind."""
    generator = torch.Generator().manual_seed(1)
    start = torch.randn(numel, generator=generator)
    references = {"final": torch.randn(numel, generator=generator), "far": torch.zeros(numel)}
    grads = [torch.randn(numel, generator=generator) for _ in range(steps)]
    records = []
    for where, backend in ((device, "triton"), (CPU, "fused")):
        w = nn.Parameter(start.clone().to(where))
        flat = FlatParameters([w])
        probe = Probe(
            flat, {k: v.to(where) for k, v in references.items()}, 1e-4, steps_per_epoch=steps, backend=backend
        )
        for g in grads:
            with torch.no_grad():
                flat.grads.copy_(g)
            probe.after_backward(torch.tensor(1.0, device=where), 0.1)
            with torch.no_grad():
                w.sub_(0.01 * w.grad)
        records.append(probe.close().records)
    device_record, cpu_record = records
    scale = np.nanmax(np.abs(cpu_record), axis=0)
    difference = np.nanmax(np.abs(device_record - cpu_record) / np.where(scale > 0, scale, 1.0))
    same_nan = np.array_equal(np.isnan(device_record), np.isnan(cpu_record))
    return KernelComparison(numel, steps, float(difference), bool(same_nan))


def kernel_check(device: torch.device, numel: int = 1_000_003, steps: int = 60) -> str:
    """compare_kernels as a line of the device check, or why it is skipped."""
    from pathgeo.engine import gpu_kernels

    if device.type == "cpu" and not gpu_kernels.interpreting():
        return "kernel check: skipped (the Triton kernels run on the CPU only under TRITON_INTERPRET=1)"
    missing = fused_pass_missing()
    if missing:
        return (
            f"kernel check: skipped (the fused CPU pass it compares against needs numba, which is not importable "
            f"here: {missing}; pip install numba, the version in requirements.txt)"
        )
    found = compare_kernels(device, numel, steps)
    return (
        f"kernel check: Triton on {device} against the fused CPU pass, {numel:,} parameters, {steps} steps: "
        f"largest scaled difference {found.difference:.2e}, NaN pattern {'equal' if found.same_nan else 'DIFFERENT'}"
    )


REPLAYS = {
    # A CIFAR-10 task on synthetic uint8 images: batch norm, the device's crop, cuDNN convolutions.
    "cifar_resnet18": ("cifar10", "cifar_resnet18", (3, 32, 32), 10, 128),
    # An MNIST-1D-shaped task: the small version that runs anywhere.
    "mlp": ("mnist1d", "mlp", (MNIST1D_LENGTH,), 10, 32),
}


def replay_check(name: str, device: torch.device, epochs: int, samples: int) -> str:
    """A reference run of `epochs` epochs on `device`, then its replay with the probe from the first
    checkpoint: the relative drift of the replayed weights from the reference's (0.0 where every op is
    deterministic, under the settings device_check sets)."""
    from pathgeo.training.loop import build_trainer
    from pathgeo.training.spec import DataSpec, RunSpec

    kind, model, shape, classes, batch = REPLAYS[name]
    generator = torch.Generator().manual_seed(0)
    if kind == "cifar10":
        images = torch.randint(0, 256, (samples, *shape), generator=generator, dtype=torch.uint8)
        data = {"x_train": images, "x_val": images[:batch]}
        params = {"path": "synthetic", "split_seed": 0, "val_fraction": 0.1, "flip": False}
    else:
        data = {"x_train": torch.randn(samples, *shape, generator=generator), "x_test": torch.randn(batch, *shape)}
        params = {"n_train": samples, "n_test": batch, "seed": 0}
    labels = torch.randint(0, classes, (samples,), generator=generator)
    data |= {"y_train": labels, "y_val": labels[:batch], "y_test": labels[:batch]}
    spec = RunSpec(
        data=DataSpec("synthetic", kind, params),
        model=model,
        width=1 if kind == "cifar10" else 16,
        optimizer="momentum",
        lr=0.01,
        weight_decay=5e-4,
        schedule="constant",
        warmup_epochs=0,
        batch_size=batch,
        epochs=epochs,
        seed=0,
        data_order_seed=0,
        precision="float32",
    )
    reference = build_trainer(spec, data, device)
    start_state = reference.state()
    for _ in range(epochs):
        reference.train_epoch()
    replayed = build_trainer(spec, data, device)
    replayed.load_state(start_state)
    probe = Probe(
        replayed.flat,
        {"final": reference.flat.weights.detach().clone()},
        spec.weight_decay,
        steps_per_epoch=replayed.task.steps_per_epoch,
    )
    for _ in range(epochs):
        stats = replayed.train_epoch(probe)
        probe.end_epoch(stats.epoch)
    expected, got = reference.flat.weights.double(), replayed.flat.weights.double()
    drift = (torch.linalg.vector_norm(got - expected) / torch.linalg.vector_norm(expected)).item()
    ops = sorted(reference.nondeterministic_ops | replayed.nondeterministic_ops)
    return (
        f"replay: {model} on {device}, {epochs} epochs of {replayed.task.steps_per_epoch} steps, probe backend "
        f"{probe.backend}: relative drift {drift:.3g}; nondeterministic ops: {', '.join(ops) or 'none'}"
    )


def device_check(
    device: torch.device,
    model_names: list[str],
    steps: int,
    rounds: int,
    kernel_parameters: int,
    replay: str,
    replay_epochs: int,
    replay_samples: int,
) -> list[str]:
    """Every line of the device check, timed and replayed under the deterministic settings the runs use."""
    from pathgeo.training.devices import configure_determinism

    settings = configure_determinism(True)
    if device.type == "cuda":
        header = f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    else:
        header = f"{device}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    lines = [f"{header}; deterministic settings {settings}", *device_timings(model_names, device, steps, rounds)]
    lines.append(kernel_check(device, kernel_parameters))
    lines.append(replay_check(replay, device, replay_epochs, replay_samples))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pathgeo.tools.bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("overhead", help="probe cost next to a training step, on the CPU")
    cmd.add_argument("--models", default=CPU_MODELS)
    cmd.add_argument("--steps", type=int, default=50, help="steps per round (one probe epoch)")
    cmd.add_argument("--rounds", type=int, default=11, help="timed rounds per model, at least")
    cmd.add_argument(
        "--seconds", type=float, default=40.0, help="more rounds per model until this much time has passed"
    )
    cmd.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    dev = sub.add_parser("device", help="the prepared GPU check: timings, kernels against the CPU, a replay")
    dev.add_argument("--device", default="cuda")
    dev.add_argument("--models", default=DEVICE_MODELS)
    dev.add_argument("--steps", type=int, default=30)
    dev.add_argument("--rounds", type=int, default=5)
    dev.add_argument("--kernel-parameters", type=int, default=1_000_003)
    dev.add_argument("--replay", default="cifar_resnet18", choices=sorted(REPLAYS))
    dev.add_argument("--replay-epochs", type=int, default=2)
    dev.add_argument("--replay-samples", type=int, default=1024)
    args = parser.parse_args(argv)
    models = args.models.split(",")
    unknown = set(models) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {sorted(MODELS)}")
    if args.command == "overhead":
        if args.threads:
            torch.set_num_threads(args.threads)
        print(format_table(*overhead(models, args.steps, args.rounds, args.seconds)), flush=True)
        return
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        from pathgeo.training.devices import no_cuda_message

        parser.error(no_cuda_message("--device cuda"))
    for line in device_check(
        device,
        models,
        args.steps,
        args.rounds,
        args.kernel_parameters,
        args.replay,
        args.replay_epochs,
        args.replay_samples,
    ):
        print(line, flush=True)


if __name__ == "__main__":
    main()
