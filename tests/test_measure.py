"""pathgeo.measure on loops written the way users write them: plain optimizer.zero_grad(), torch.optim
optimizers with coupled and decoupled weight decay, batch norm, frozen parameters, a DataLoader.

The oracle is the loop itself: in the measured pass it copies each step's G and w (float32, as torch holds
them) and the first pass's trained weights, and the test recomputes RSI, EB, γ and the update's alignment from
those copies in numpy float64, without pathgeo.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from polars.testing import assert_frame_equal
from torch import nn
from torch.nn import functional as F

import pathgeo
from pathgeo.measurements.own_loop import PassesDiffer, measure

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, SAMPLES, BATCH = 3, 80, 16  # 5 steps an epoch

pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


def batchnorm_model() -> nn.Module:
    """A frozen input layer, batch norm, and a head."""
    model = nn.Sequential(
        nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 24), nn.BatchNorm1d(24), nn.ReLU(), nn.Linear(24, 4)
    )
    model[0].requires_grad_(False)
    return model


def loader(seed: int = 1) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(SAMPLES, 12, generator=generator)
    y = torch.randint(0, 4, (SAMPLES,), generator=generator)
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed + 1),
    )


class Loop:
    """A user's training loop for `measure`, which copies G and w at every step of its last pass (and w after
    every epoch), as a user checking pathgeo would. `make_optimizer` builds the optimizer from the model;
    `zero_grad` zeroes the gradients the user's way; `tamper(pass, model, optimizer)` may change something at
    the end of a pass."""

    def __init__(
        self,
        make_optimizer,
        zero_grad=lambda model, optimizer: optimizer.zero_grad(),
        model=batchnorm_model,
        epochs=EPOCHS,
        tamper=None,
        scheduler=None,
    ):
        self.make_optimizer, self.zero_grad, self.model, self.epochs = make_optimizer, zero_grad, model, epochs
        self.tamper, self.scheduler = tamper, scheduler
        self.passes = 0
        self.grads: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.epoch_ends: list[list[np.ndarray]] = []
        self.lrs: list[float] = []

    def trained(self, model: nn.Module) -> list[nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    def copy(self, tensors) -> np.ndarray:
        return torch.cat([t.detach().reshape(-1) for t in tensors]).numpy().copy()

    def __call__(self, observe):
        self.passes += 1
        self.grads, self.weights, self.lrs = [], [], []
        self.epoch_ends.append([])
        torch.manual_seed(0)
        model = self.model()
        optimizer = self.make_optimizer(model)
        scheduler = self.scheduler(optimizer) if self.scheduler else None
        data = loader()
        for _ in range(self.epochs):
            for x, y in data:
                self.zero_grad(model, optimizer)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                self.grads.append(
                    self.copy(torch.zeros_like(p) if p.grad is None else p.grad for p in self.trained(model))
                )
                self.weights.append(self.copy(self.trained(model)))
                self.lrs.append(optimizer.param_groups[0]["lr"])
                observe(model, loss, optimizer)
                optimizer.step()
            if scheduler:
                scheduler.step()
            observe.end_epoch()
            self.epoch_ends[-1].append(self.copy(self.trained(model)))
        self.weights.append(self.copy(self.trained(model)))
        if self.tamper:
            self.tamper(self.passes, model, optimizer)
        return model


def recomputed(loop: Loop, w_star: np.ndarray, lam: float = 0.0) -> dict[str, np.ndarray]:
    """RSI, EB, γ (plain and with G + λw) and the update's RSI and γ from the loop's own copies, in float64."""
    G = np.asarray(loop.grads, dtype=np.float64)
    W = np.asarray(loop.weights, dtype=np.float64)
    w, d = W[:-1], W[:-1] - w_star.astype(np.float64)
    s = W[:-1] - W[1:]  # pathgeo's step: w_t − w_{t+1}

    def dot(a, b):
        return np.einsum("ij,ij->i", a, b)

    gd, gg, dd = dot(G, d), dot(G, G), dot(d, d)
    g_wd = G + lam * w
    with np.errstate(divide="ignore", invalid="ignore"):  # d = 0 at the step where w is a reference point
        return {
            "rsi": gd / dd,
            "eb": np.sqrt(gg / dd),
            "gamma": gd / np.sqrt(gg * dd),
            "rsi_wd": dot(g_wd, d) / dd,
            "gamma_wd": dot(g_wd, d) / np.sqrt(dot(g_wd, g_wd) * dd),
            "upd_rsi": dot(s, d) / dd,
            "upd_gamma": dot(s, d) / np.sqrt(dot(s, s) * dd),
            "grad_norm": np.sqrt(gg),
        }


def assert_agrees(table, expected: dict[str, np.ndarray], rtol: float = 1e-9) -> None:
    for name, values in expected.items():
        np.testing.assert_allclose(table[name].to_numpy(), values, rtol=rtol, atol=0, err_msg=name)


def adamw(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)


def test_import_pathgeo_imports_no_torch():
    code = (
        "import sys, pathgeo; assert 'torch' not in sys.modules, 'torch imported'; print(pathgeo.__version__); "
        "pathgeo.measure; assert 'torch' in sys.modules; print(pathgeo.Probe.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert out.split() == [version, "Probe"]
    assert pathgeo.measure is measure
    with pytest.raises(AttributeError, match="no attribute 'mesure'"):
        pathgeo.mesure  # noqa: B018


def test_adamw_batch_norm_plain_zero_grad_agrees_with_float64_from_the_loops_own_copies():
    """The acceptance: batch norm, AdamW with weight decay, plain optimizer.zero_grad(), a frozen layer."""
    loop = Loop(adamw)
    result = measure(loop, references=["final", 1])
    assert loop.passes == 2
    first_end, epoch1 = loop.epoch_ends[0][-1], loop.epoch_ends[0][0]
    steps = EPOCHS * SAMPLES // BATCH
    assert result.references == {"final": EPOCHS, "epoch1": 1}
    assert result.steps.columns[:5] == ["reference", "epoch", "step", "lr", "loss"]
    final = result.steps.filter(reference="final")
    assert final["step"].to_list() == list(range(steps))
    assert final["epoch"].to_list() == [t // (SAMPLES // BATCH) for t in range(steps)]
    assert final["lr"].to_list() == loop.lrs
    # The measured pass ended where the first did, so w* is also its own end.
    np.testing.assert_array_equal(loop.weights[-1], first_end)
    # The oracle's vectors leave the frozen layer out: (16·24 + 24) + (24 + 24) + (24·4 + 4) entries.
    assert len(loop.grads[0]) == 556
    expected = recomputed(loop, first_end)
    assert_agrees(final, expected)
    # AdamW's decay is decoupled: the optimizer is fed G alone, and the *_wd columns are the plain ones.
    np.testing.assert_array_equal(final["gamma_wd"].to_numpy(), final["gamma"].to_numpy())
    assert_agrees(result.steps.filter(reference="epoch1"), recomputed(loop, epoch1))
    # The sign of the update's columns: the last step moves toward w* = w_T, so upd_rsi > 0 and upd_gamma = 1.
    assert final["upd_rsi"][-1] > 0 and final["upd_gamma"][-1] == pytest.approx(1.0, rel=1e-9)


def test_coupled_decay_and_a_schedule_give_the_decayed_gradients_geometry():
    lam = 0.01
    loop = Loop(
        lambda model: torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=lam),
        scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, 1, gamma=0.5),
    )
    result = measure(loop)
    assert_agrees(result.steps, recomputed(loop, loop.epoch_ends[0][-1], lam))
    assert result.steps["lr"].to_list() == loop.lrs == [0.05 * 0.5 ** (t // 5) for t in range(15)]
    assert not np.allclose(result.steps["rsi_wd"].to_numpy(), result.steps["rsi"].to_numpy())


def test_parameter_groups_with_different_coupled_decay_leave_the_wd_columns_null():
    def grouped(model):
        return torch.optim.SGD(
            [
                {"params": model[2].parameters(), "weight_decay": 0.0},
                {"params": [*model[3].parameters(), *model[5].parameters()]},
            ],
            lr=0.05,
            weight_decay=0.01,
        )

    result = measure(Loop(grouped, epochs=1))
    assert result.steps["gamma_wd"].null_count() == result.steps.height
    assert result.steps["gamma"].null_count() == 0


@pytest.mark.parametrize(
    "zero_grad",
    [
        lambda model, optimizer: optimizer.zero_grad(set_to_none=False),
        lambda model, optimizer: model.zero_grad(),
        lambda model, optimizer: [setattr(p, "grad", None) for p in model.parameters()],
    ],
    ids=["in_place", "model_zero_grad", "by_hand"],
)
def test_every_way_of_zeroing_gradients_gives_the_same_table(zero_grad):
    plain = measure(Loop(adamw, epochs=2))
    other = measure(Loop(adamw, zero_grad=zero_grad, epochs=2))
    assert_frame_equal(other.steps, plain.steps)
    assert_frame_equal(other.matrices, plain.matrices)


def test_a_parameter_the_loss_does_not_reach_is_skipped_as_without_pathgeo():
    """Gradients set to None stay None where backward gives none, so SGD's weight decay does not touch it."""

    class WithUnused(nn.Module):
        def __init__(self):
            super().__init__()
            self.net, self.unused = batchnorm_model(), nn.Linear(3, 3)

        def forward(self, x):
            return self.net(x)

    loop = Loop(
        lambda model: torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=0.1), model=WithUnused, epochs=1
    )
    result = measure(loop)
    torch.manual_seed(0)
    untouched = WithUnused().unused.weight
    assert torch.equal(result.model.unused.weight, untouched)
    # Its gradient reads as zero.
    assert_agrees(result.steps, recomputed(loop, loop.epoch_ends[0][-1], 0.1))


def test_without_reference_points_one_pass_measures_what_needs_no_w_star():
    loop = Loop(adamw)
    result = measure(loop, references=[])
    assert loop.passes == 1
    assert result.references == {}
    assert "reference" not in result.steps.columns
    assert result.steps["rsi"].null_count() == result.steps.height
    grads = np.asarray(loop.grads, dtype=np.float64)
    np.testing.assert_allclose(result.steps["grad_norm"].to_numpy(), np.linalg.norm(grads, axis=1), rtol=1e-12)
    adjacent = np.einsum("ij,ij->i", grads[1:], grads[:-1]) / (
        np.linalg.norm(grads[1:], axis=1) * np.linalg.norm(grads[:-1], axis=1)
    )
    np.testing.assert_allclose(result.steps["grad_corr"].to_numpy()[1:], adjacent, rtol=1e-9)
    assert result.matrices.height == EPOCHS * 25


UNSEEDED = torch.Generator()


def unseeded_noise(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """What a loop with a generator seeded outside `run` does: the second pass draws other numbers."""
    optimizer.zero_grad()
    with torch.no_grad():
        model[5].bias.add_(1e-3 * torch.randn(4, generator=UNSEEDED))


def shift_a_batch_norm_buffer(passes: int, model: nn.Module, optimizer) -> None:
    if passes == 2:
        model[3].running_mean[0] += 1e-6


def shift_the_optimizer_state(passes: int, model: nn.Module, optimizer) -> None:
    if passes == 2:
        optimizer.state[model[5].bias]["exp_avg_sq"][0] *= 1.5


@pytest.mark.parametrize(
    "loop",
    [
        Loop(adamw, zero_grad=unseeded_noise, epochs=1),
        Loop(adamw, tamper=shift_a_batch_norm_buffer, epochs=1),
        Loop(adamw, tamper=shift_the_optimizer_state, epochs=1),
    ],
    ids=["unseeded_generator", "buffer", "optimizer_state"],
)
def test_a_second_pass_that_differs_is_refused(loop):
    with pytest.raises(PassesDiffer, match="the two passes differ") as error:
        measure(loop)
    message = str(error.value)
    assert re.search(
        r"relative drift of \S+ from the first's trained weights; .* [1-9]\d* of \d+ entries differ", message
    )
    for cause in ("generator not seeded", "non-deterministic kernel", "DataLoader workers"):
        assert cause in message


def test_a_second_pass_with_other_steps_is_refused():
    epochs = iter([2, 1])

    def run(observe):
        loop = Loop(adamw, epochs=next(epochs))
        return loop(observe)

    with pytest.raises(PassesDiffer, match=r"the first made \[5, 5\] steps per epoch, the second \[5\]"):
        measure(run)


def test_mistakes_in_the_loop_are_named():
    with pytest.raises(RuntimeError, match=r"never called observe\(model, loss, optimizer\)"):
        measure(lambda observe: nn.Linear(2, 2))
    with pytest.raises(TypeError, match="must return the trained torch.nn.Module; it returned NoneType"):
        measure(lambda observe: Loop(adamw, epochs=1)(observe) and None)
    with pytest.raises(
        ValueError,
        match=r"reference points \{'epoch4': 4\} lie past the run's end: run called "
        r"observe.end_epoch\(\) 3 time",
    ):
        measure(Loop(adamw), references=["final", 4])
    with pytest.raises(ValueError, match="a reference point is 'final' or an epoch ≥ 1"):
        measure(Loop(adamw), references=["last"])

    def two_models(observe):
        model = batchnorm_model()
        optimizer = adamw(model)
        for candidate in (model, batchnorm_model()):
            loss = candidate(torch.randn(4, 12)).sum()
            loss.backward()
            observe(candidate, loss, optimizer)
        return model

    with pytest.raises(ValueError, match="another model or optimizer than at its first call"):
        measure(two_models)


def test_measure_reads_the_lr_and_decay_as_the_workflow_does():
    from pathgeo.measurements.own_loop import gradient_decay, learning_rate

    p = nn.Parameter(torch.zeros(2))
    sgd = torch.optim.SGD([p], lr=0.1, weight_decay=0.01)
    assert (learning_rate(sgd), gradient_decay(sgd, sgd.param_groups)) == (0.1, 0.01)
    adam_decoupled = torch.optim.Adam([p], lr=0.1, weight_decay=0.01, decoupled_weight_decay=True)
    assert gradient_decay(adam_decoupled, adam_decoupled.param_groups) == 0.0
    two = torch.optim.SGD(
        [{"params": [p]}, {"params": [nn.Parameter(torch.zeros(1))], "weight_decay": 0.0}], lr=0.1, weight_decay=0.01
    )
    assert math.isnan(gradient_decay(two, two.param_groups))
    assert gradient_decay(two, two.param_groups[:1]) == 0.01
