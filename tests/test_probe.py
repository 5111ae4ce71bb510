"""Tests of the probe and of the training/replay engine around it.

Every oracle here is computed independently of pathgeo.engine.probe, in numpy float64: closed forms for gradient
descent on a quadratic, the isotropic random walk regenerated from its seeds, and per-step snapshots of w and
G on a real network. The engine tests (bit-identical trajectories, replay from a middle checkpoint,
multi-reference replay, divergence, fidelity) compare against exact equality wherever the engine promises it.
"""

from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from pathgeo.engine.probe import METRICS, Probe
from pathgeo.jobs.reference import train_reference
from pathgeo.jobs.replay import FidelityError, flat_parameters_of, replay_segment
from pathgeo.training import data
from pathgeo.training.flat import FlatParameters
from pathgeo.training.loop import DivergenceError, build_trainer
from pathgeo.training.randomness import generator
from pathgeo.training.spec import DataSpec, RunSpec

CPU = torch.device("cpu")
MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})
BATCH = 32
STEPS_PER_EPOCH = math.ceil(200 / BATCH)  # 7, the last batch is short (200 = 6·32 + 8)

# Metrics whose value is a dot product divided by norms: their floating-point error is bounded relative to
# the product of the norms, not to the (possibly tiny) value, so they are compared on that scale.
CORRELATIONS = [m for m in METRICS if "corr" in m or m == "sign_flip" or m.startswith("dist_lag")]
GEOMETRY = (
    "rsi",
    "eb",
    "gamma",
    "lolr",
    "grad_norm",
    "dist",
    "rsi_wd",
    "eb_wd",
    "gamma_wd",
    "lolr_wd",
    "grad_norm_wd",
    "upd_norm",
    "upd_rsi",
    "upd_gamma",
)


pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


@pytest.fixture(scope="module")
def mnist() -> dict[str, torch.Tensor]:
    return data.build(MNIST1D)


def mnist_spec(
    model="mlp",
    optimizer="sgd",
    lr=0.05,
    weight_decay=0.0,
    epochs=2,
    width=8,
    schedule="constant",
    warmup_epochs=0,
    precision="float32",
) -> RunSpec:
    return RunSpec(
        data=MNIST1D,
        model=model,
        width=width,
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        schedule=schedule,
        warmup_epochs=warmup_epochs,
        batch_size=BATCH,
        epochs=epochs,
        seed=0,
        data_order_seed=1,
        precision=precision,
    )


# ----------------------------------------------------------------------------------------------------------
# numpy float64 oracle
# ----------------------------------------------------------------------------------------------------------


def numpy_metrics(W: np.ndarray, Gs: np.ndarray, w_star: np.ndarray, lam: float) -> dict[str, np.ndarray]:
    """All metrics for steps 0..T−1 from the iterates W (T+1 rows: w_0..w_T), gradients Gs (T rows) and the
    reference, straight from the definitions (row by row, no Gram matrices)."""
    T = len(Gs)
    out: dict[str, list[float]] = {k: [] for k in GEOMETRY}
    for t in range(T):
        g, w, d, s = Gs[t], W[t], W[t] - w_star, W[t] - W[t + 1]
        gw = g + lam * w
        nd, ng, ngw, ns = (np.linalg.norm(v) for v in (d, g, gw, s))
        out["rsi"].append(g @ d / nd**2)
        out["eb"].append(ng / nd)
        out["gamma"].append(g @ d / (ng * nd))
        out["lolr"].append(g @ d / ng**2)
        out["grad_norm"].append(ng)
        out["dist"].append(nd)
        out["rsi_wd"].append(gw @ d / nd**2)
        out["eb_wd"].append(ngw / nd)
        out["gamma_wd"].append(gw @ d / (ngw * nd))
        out["lolr_wd"].append(gw @ d / ngw**2)
        out["grad_norm_wd"].append(ngw)
        out["upd_norm"].append(ns)
        out["upd_rsi"].append(s @ d / nd**2)
        out["upd_gamma"].append(s @ d / (ns * nd))
    return {k: np.asarray(v) for k, v in out.items()}


def error_scales(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The natural magnitude of each metric's rounding error: |x·y| ≤ |x||y|, so e.g. rsi = G·d/|d|² is
    compared on the scale |G|/|d| = eb, gamma on the scale 1, lolr on |d|/|G|."""
    return {
        "rsi": m["eb"],
        "eb": m["eb"],
        "gamma": np.ones_like(m["eb"]),
        "lolr": m["dist"] / m["grad_norm"],
        "grad_norm": m["grad_norm"],
        "dist": m["dist"],
        "rsi_wd": m["eb_wd"],
        "eb_wd": m["eb_wd"],
        "gamma_wd": np.ones_like(m["eb"]),
        "lolr_wd": m["dist"] / m["grad_norm_wd"],
        "grad_norm_wd": m["grad_norm_wd"],
        "upd_norm": m["upd_norm"],
        "upd_rsi": m["upd_norm"] / m["dist"],
        "upd_gamma": np.ones_like(m["eb"]),
    }


def assert_metrics_close(table: pl.DataFrame, expected: dict[str, np.ndarray], tol: float, names=GEOMETRY):
    scales = error_scales(expected)
    for name in names:
        got = table[name].to_numpy()
        assert got.shape == expected[name].shape, name
        assert np.all(np.isfinite(got)), name
        err = np.abs(got - expected[name]) / scales[name]
        assert err.max() <= tol, f"{name}: worst scaled error {err.max():.3g} at step {err.argmax()} > {tol:g}"


# ----------------------------------------------------------------------------------------------------------
# 1. Quadratic, full-batch gradient descent: closed forms
# ----------------------------------------------------------------------------------------------------------

QUAD_DIM, QUAD_LR, QUAD_K, QUAD_EPOCHS = 50, 0.25, 10, 3


def quadratic_closed_form(lam: float):
    """f(w) = ½ wᵀAw, A = diag(a): GD with weight decay λ gives w_t = (1 − η(a+λ))^t ⊙ w_0 exactly."""
    rng = np.random.default_rng(7)
    a = np.linspace(0.1, 2.0, QUAD_DIM)
    w0 = rng.standard_normal(QUAD_DIM)
    T = QUAD_K * QUAD_EPOCHS
    contraction = 1.0 - QUAD_LR * (a + lam)  # in [0.49, 0.97]: every component shrinks, none changes sign
    W = contraction[None, :] ** np.arange(T + 1)[:, None] * w0[None, :]
    G = a[None, :] * W[:T]  # raw gradient A w_t (without the decay term)
    S = QUAD_LR * (a + lam)[None, :] * W[:T]  # the step taken, s_t = η(A + λ)w_t = w_t − w_{t+1}
    return a, W, G, S


def quadratic_oracle(lam: float) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    a, W, G, S = quadratic_closed_form(lam)
    w_star = W[-1]  # the final iterate, as the engine uses it, not the minimum 0
    D = W[:-1] - w_star
    Gw = G + lam * W[:-1]

    def dot(x, y):
        return np.einsum("ij,ij->i", x, y)

    nd, ng, ngw, ns = (np.sqrt(dot(x, x)) for x in (D, G, Gw, S))
    expected = {
        "rsi": dot(G, D) / nd**2,
        "eb": ng / nd,
        "gamma": dot(G, D) / (ng * nd),
        "lolr": dot(G, D) / ng**2,
        "grad_norm": ng,
        "dist": nd,
        "rsi_wd": dot(Gw, D) / nd**2,
        "eb_wd": ngw / nd,
        "gamma_wd": dot(Gw, D) / (ngw * nd),
        "lolr_wd": dot(Gw, D) / ngw**2,
        "grad_norm_wd": ngw,
        "upd_norm": ns,
        "upd_rsi": dot(S, D) / nd**2,
        "upd_gamma": dot(S, D) / (ns * nd),
    }
    loss = 0.5 * (a[None, :] * W[:-1] ** 2).sum(1)
    return expected, loss, W, a


# The fused numba pass (CPU), and the Triton kernels of the GPU path under the interpreter, with one
# program, and with small blocks shared out over a few programs (each then loops over several blocks).
BACKENDS = {
    "fused": {"backend": "fused"},
    "triton": {"backend": "triton", "programs": 1},
    "triton_small_blocks": {"backend": "triton", "block": 16, "programs": 3},
}


def run_quadratic(dtype: torch.dtype, lam: float, backend: str) -> tuple[pl.DataFrame, torch.Tensor]:
    """The probe in a plain torch loop, exactly as its docstring shows."""
    _, _, W, a_np = quadratic_oracle(lam)
    w = torch.nn.Parameter(torch.tensor(W[0], dtype=dtype))
    a = torch.tensor(a_np, dtype=dtype)
    flat = FlatParameters([w])
    optimizer = torch.optim.SGD(flat.params, lr=QUAD_LR, weight_decay=lam)
    probe = Probe(
        flat, {"final": torch.from_numpy(W[-1])}, weight_decay=lam, steps_per_epoch=QUAD_K, **BACKENDS[backend]
    )
    for epoch in range(QUAD_EPOCHS):
        for _ in range(QUAD_K):
            flat.zero_grad()
            loss = 0.5 * (a * w * w).sum()
            loss.backward()
            probe.after_backward(loss, optimizer.param_groups[0]["lr"])
            optimizer.step()
        probe.end_epoch(epoch)
    return probe.finish(), w.detach().clone()


# Tolerances. float64: the torch iterates differ from the closed form by a few ulps per step (≤ ~1e-14
# relative after 30 steps); d_t = w_t − w_T cancels by at most 1/(η·min(a+λ)) = 40 at the last step, so
# 1e-10 leaves four orders of margin. float32: the same argument with ulp 2^-24 ≈ 6e-8 gives ≲ 30 steps ·
# ~3 roundings · 6e-8 ≈ 5e-6 in w_t, times ≤ 40 in d_t near the end ≈ 2e-4 in the worst case; 1e-3 covers
# it and is still far below any formula error (which would be O(1)). The probe's own s = w_prev − w is
# exact here (Sterbenz: consecutive iterates are within a factor 2 of each other, same sign).
QUAD_TOL = {torch.float64: 1e-10, torch.float32: 1e-3}


@pytest.mark.parametrize("lam", [0.0, 0.05], ids=["no_wd", "wd"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_quadratic_gd_matches_closed_forms(dtype, lam, backend):
    expected, loss, W, _ = quadratic_oracle(lam)
    table, w_end = run_quadratic(dtype, lam, backend)
    T = QUAD_K * QUAD_EPOCHS
    tol = QUAD_TOL[dtype]

    assert table.columns[:5] == ["reference", "epoch", "step", "lr", "loss"]
    assert set(METRICS) <= set(table.columns)
    assert table.height == T
    assert table["reference"].to_list() == ["final"] * T
    assert table["step"].to_list() == list(range(T))
    assert table["epoch"].to_list() == [t // QUAD_K for t in range(T)]
    assert table["lr"].to_list() == [QUAD_LR] * T
    np.testing.assert_allclose(w_end.double().numpy(), W[-1], rtol=tol)
    np.testing.assert_allclose(table["loss"].to_numpy(), loss, rtol=tol)
    # All geometric quantities are positive here (G·d = Σ a_i w_i²(1 − c_i^{T−t}) > 0), so plain rtol works.
    for name, values in expected.items():
        assert np.all(values > 0), name
        np.testing.assert_allclose(table[name].to_numpy(), values, rtol=tol, err_msg=name)
    if lam == 0.0:
        for name in ("rsi", "eb", "gamma", "lolr", "grad_norm"):
            np.testing.assert_array_equal(table[f"{name}_wd"].to_numpy(), table[name].to_numpy())
    else:
        # The decay term matters: the *_wd columns are not the plain ones.
        assert np.all(table["grad_norm_wd"].to_numpy() > table["grad_norm"].to_numpy())
    # For plain GD the step is η(G + λw): update alignment equals the decayed gradient's alignment.
    np.testing.assert_allclose(table["upd_gamma"].to_numpy(), table["gamma_wd"].to_numpy(), rtol=tol)
    np.testing.assert_allclose(table["upd_rsi"].to_numpy(), QUAD_LR * table["rsi_wd"].to_numpy(), rtol=tol)
    # The last step lands exactly on the reference: d_{T−1} = s_{T−1}.
    assert table["upd_gamma"][-1] == pytest.approx(1.0, rel=tol)
    assert table["upd_norm"][-1] == pytest.approx(table["dist"][-1], rel=tol)


def test_probe_rejects_wrong_reference_and_too_many_steps():
    w = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    flat = FlatParameters([w])
    with pytest.raises(ValueError, match=r"need a reference point w\*"):
        Probe(flat, {})
    Probe(flat, {}, lagged="off")  # without w*: the gradient's own measurements only
    with pytest.raises(ValueError, match="4 parameters, the model 5"):
        Probe(flat, {"final": torch.zeros(4)})
    probe = Probe(flat, {"final": torch.ones(5)}, steps_per_epoch=1)
    loss = w.sum()
    loss.backward()
    probe.after_backward(loss, 0.1)
    with pytest.raises(RuntimeError, match="steps_per_epoch=1"):
        probe.after_backward(loss, 0.1)


# ----------------------------------------------------------------------------------------------------------
# 2. The isotropic random walk through the real task, reference training and replay
# ----------------------------------------------------------------------------------------------------------

WALK_DIM, WALK_K, WALK_EPOCHS, WALK_SEED = 50_000, 40, 4, 3


def walk_spec() -> RunSpec:
    return RunSpec(
        data=DataSpec("walk", "random_walk", {"dim": WALK_DIM, "steps_per_epoch": WALK_K}),
        model="walk",
        width=0,
        optimizer="sgd",
        lr=1.0,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=1,
        epochs=WALK_EPOCHS,
        seed=WALK_SEED,
        data_order_seed=0,
        precision="float64",
    )


def test_random_walk_gamma_follows_inverse_sqrt_of_remaining_steps():
    spec = walk_spec()
    checkpoints: dict[int, dict] = {}
    train_reference(spec, {}, CPU, (0, WALK_EPOCHS), lambda epoch, state: checkpoints.__setitem__(epoch, state))
    assert sorted(checkpoints) == [0, WALK_EPOCHS]
    final = checkpoints[WALK_EPOCHS]
    table, _, fidelity = replay_segment(spec, {}, CPU, checkpoints[0], final, {"final": (WALK_EPOCHS, final)}, 0.0)
    assert fidelity.relative_drift == 0.0
    T = WALK_K * WALK_EPOCHS
    assert table["step"].to_list() == list(range(T))
    gamma = table["gamma"].to_numpy()
    remaining = T - np.arange(T)  # n = T − t steps from w_t to w_T, the one at t included

    # Law. With unit steps ξ_k and w_T = w_t − Σ_{k≥t} ξ_k, d_t = Σ_{k≥t} ξ_k and
    #   gamma_t·√n = (1 + X)/√(1 + Y/n),  X = Σ_{k>t} ξ_t·ξ_k,  Y = Σ_{j≠k ≥ t} ξ_j·ξ_k.
    # For independent uniform unit vectors ξ_j·ξ_k has mean 0 and variance 1/D, so Var X = (n−1)/D and
    # Var(Y/2n) = (n−1)/(2nD) ≤ 1/(2D): to first order the deviation has s.d. ≤ √(n/D), second-order terms
    # are O(n/D). 6 s.d. plus 2n/D is a bound no seed should ever cross: 0.027 at n = 1, 0.35 at n = T = 160
    # (D = 50000), while an off-by-one in the step count or the reference moves the last steps by ≥ 0.29.
    deviation = np.abs(gamma * np.sqrt(remaining) - 1.0)
    bound = 6.0 * np.sqrt(remaining / WALK_DIM) + 2.0 * remaining / WALK_DIM
    assert np.all(deviation <= bound), f"worst step {np.argmax(deviation - bound)}"
    assert gamma[-1] == pytest.approx(1.0, abs=1e-12)  # the last step points straight at w_T

    # |G| = 1 for every step, and eb·dist = |G|.
    np.testing.assert_allclose(table["grad_norm"].to_numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(table["eb"].to_numpy() * table["dist"].to_numpy(), 1.0, rtol=1e-12)
    # SGD with LR 1: the step is ξ itself.
    np.testing.assert_allclose(table["upd_norm"].to_numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(table["upd_gamma"].to_numpy(), gamma, rtol=1e-10)

    # Independent numpy computation from the same ξ, regenerated the way the task draws them.
    xi = np.empty((T, WALK_DIM))
    for epoch in range(WALK_EPOCHS):
        for step in range(WALK_K):
            v = torch.randn(WALK_DIM, generator=generator(WALK_SEED, "walk", epoch, step), dtype=torch.float64)
            xi[epoch * WALK_K + step] = v.numpy() / np.sqrt(v.numpy() @ v.numpy())
    d = np.cumsum(xi[::-1], axis=0)[::-1]  # d_t = Σ_{k≥t} ξ_k
    d_norm = np.sqrt(np.einsum("ij,ij->i", d, d))
    gd = np.einsum("ij,ij->i", xi, d)
    np.testing.assert_allclose(gamma, gd / d_norm, rtol=1e-10)
    np.testing.assert_allclose(table["rsi"].to_numpy(), gd / d_norm**2, rtol=1e-10)
    np.testing.assert_allclose(table["dist"].to_numpy(), d_norm, rtol=1e-10)
    np.testing.assert_allclose(table["lolr"].to_numpy(), gd, rtol=1e-10)
    # The walk really ended where the oracle says: w_T = −Σ ξ.
    w_T = final["model"]["w"].numpy()
    np.testing.assert_allclose(w_T, -d[0], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------------------
# 3. Bit-identical trajectory with and without the probe
# ----------------------------------------------------------------------------------------------------------

OPTIMIZERS = [("sgd", 0.05, 0.0), ("momentum", 0.05, 1e-3), ("adam", 1e-3, 1e-3)]


@pytest.mark.parametrize("backend", ["fused", "triton"])
@pytest.mark.parametrize("model", ["mlp", "resnet1d"])
@pytest.mark.parametrize("optimizer,lr,weight_decay", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_probe_does_not_change_the_trajectory(mnist, model, optimizer, lr, weight_decay, backend):
    spec = mnist_spec(model=model, optimizer=optimizer, lr=lr, weight_decay=weight_decay, epochs=2)
    plain = build_trainer(spec, mnist, CPU)
    start = plain.flat.weights.clone()
    for _ in range(spec.epochs):
        plain.train_epoch()

    observed = build_trainer(spec, mnist, CPU)
    assert torch.equal(observed.flat.weights, start)
    # The fused kernel and the Triton kernels (several programs); the reference is arbitrary here.
    probe = Probe(
        observed.flat,
        {"far": torch.zeros_like(start)},
        weight_decay=weight_decay,
        steps_per_epoch=observed.task.steps_per_epoch,
        backend=backend,
        block=256,
        programs=3,
    )
    for _ in range(spec.epochs):
        stats = observed.train_epoch(probe)
        probe.end_epoch(stats.epoch)
    table = probe.finish()
    assert table.height == spec.epochs * STEPS_PER_EPOCH  # the probe really saw every step

    assert not torch.equal(plain.flat.weights, start)  # training moved the weights
    assert torch.equal(observed.flat.weights, plain.flat.weights)
    plain_state, observed_state = plain.task.model.state_dict(), observed.task.model.state_dict()
    assert plain_state.keys() == observed_state.keys()
    for name, value in plain_state.items():  # parameters and BN running statistics
        assert torch.equal(observed_state[name], value), name
    if model == "resnet1d":
        assert any("running_mean" in name for name in plain_state)
    plain_opt, observed_opt = plain.optimizer.state_dict()["state"], observed.optimizer.state_dict()["state"]
    assert plain_opt.keys() == observed_opt.keys()
    for key in plain_opt:
        for field, value in plain_opt[key].items():
            assert torch.equal(torch.as_tensor(observed_opt[key][field]), torch.as_tensor(value)), (key, field)


# ----------------------------------------------------------------------------------------------------------
# 4. Engine versus numpy on a real network
# ----------------------------------------------------------------------------------------------------------


class Recorder:
    """An observer that snapshots w and G (as float64) and then hands the step on to the probe."""

    def __init__(self, flat: FlatParameters, probe: Probe):
        self.flat, self.probe = flat, probe
        self.weights: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.losses: list[float] = []
        self.lrs: list[float] = []

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        self.weights.append(self.flat.weights.detach().double().numpy().copy())
        self.grads.append(self.flat.grads.detach().double().numpy().copy())
        self.losses.append(float(loss.item()))
        self.lrs.append(lr)
        self.probe.after_backward(loss, lr, weight_decay)


@pytest.mark.parametrize("backend", BACKENDS)
def test_probe_matches_numpy_on_mlp_momentum_weight_decay(mnist, backend):
    wd = 1e-3
    spec = mnist_spec(
        optimizer="momentum", lr=0.05, weight_decay=wd, epochs=3, schedule="warmup_cosine", warmup_epochs=1
    )
    first = build_trainer(spec, mnist, CPU)
    for _ in range(spec.epochs):
        first.train_epoch()
    w_star = first.flat.weights.clone()

    trainer = build_trainer(spec, mnist, CPU)
    probe = Probe(
        trainer.flat,
        {"final": w_star},
        weight_decay=wd,
        steps_per_epoch=trainer.task.steps_per_epoch,
        **BACKENDS[backend],
    )
    recorder = Recorder(trainer.flat, probe)
    for _ in range(spec.epochs):
        stats = trainer.train_epoch(recorder)
        probe.end_epoch(stats.epoch)
    table = probe.finish()
    assert torch.equal(trainer.flat.weights, w_star)  # the reference really is this run's last iterate

    T = spec.epochs * STEPS_PER_EPOCH
    W = np.stack([*recorder.weights, trainer.flat.weights.double().numpy()])
    Gs = np.stack(recorder.grads)
    assert W.shape == (T + 1, trainer.flat.numel)
    expected = numpy_metrics(W, Gs, W[-1], wd)

    assert table["step"].to_list() == list(range(T))
    assert table["epoch"].to_list() == [t // STEPS_PER_EPOCH for t in range(T)]
    assert table["loss"].to_list() == recorder.losses
    assert table["lr"].to_list() == recorder.lrs
    assert len(set(recorder.lrs)) > 2  # the schedule varies the LR, so the lr column is really checked
    # Everything but s is formed from float32 values in exact float64 products, so the probe and numpy
    # differ only in summation order: ~n·2^-53 ≈ 1e-13 of |x||y|.
    assert_metrics_close(table, expected, 1e-10, [m for m in GEOMETRY if not m.startswith("upd_")])
    # The probe forms s = w_prev − w in float32 (see the report): each component is rounded once, relative
    # error ≤ 2^-24 ≈ 6e-8 of |s_i|, so upd_* are within ~6e-8 of |s||d| (scaled); 1e-6 leaves margin.
    assert_metrics_close(table, expected, 1e-6, [m for m in GEOMETRY if m.startswith("upd_")])
    # The decay term is visible in this run: *_wd and the plain metrics differ.
    assert not np.allclose(table["gamma_wd"].to_numpy(), table["gamma"].to_numpy(), rtol=1e-6, atol=0)
    assert table["upd_gamma"][-1] == pytest.approx(1.0, rel=1e-6)


# ----------------------------------------------------------------------------------------------------------
# 5–8. Replay, multiple references, divergence, fidelity
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference_run(mnist):
    """4 epochs of MLP/momentum/weight decay with a warmup-cosine schedule, checkpoints at 0, 2, 4."""
    spec = mnist_spec(
        optimizer="momentum", lr=0.05, weight_decay=1e-3, epochs=4, schedule="warmup_cosine", warmup_epochs=1
    )
    checkpoints: dict[int, dict] = {}
    log = train_reference(spec, mnist, CPU, (0, 2, 4), lambda epoch, state: checkpoints.__setitem__(epoch, state))
    assert log["epoch"].to_list() == [0, 1, 2, 3]
    assert sorted(checkpoints) == [0, 2, 4]
    assert [checkpoints[e]["step"] for e in (0, 2, 4)] == [0, 2 * STEPS_PER_EPOCH, 4 * STEPS_PER_EPOCH]
    return spec, checkpoints


def replay(spec, tensors, start, end, references, tolerance):
    """replay_segment on private copies of the checkpoints, as the workflow gets them (each one freshly
    loaded from disk). replay_segment mutates its start state's optimizer tensors in place (see
    test_replay_leaves_its_start_checkpoint_untouched), which would corrupt the shared fixture."""
    table, _, fidelity = replay_segment(
        spec,
        tensors,
        CPU,
        copy.deepcopy(start),
        copy.deepcopy(end),
        {name: (epoch, copy.deepcopy(state)) for name, (epoch, state) in references.items()},
        tolerance,
    )
    return table, fidelity


def test_replay_from_a_middle_checkpoint_equals_the_uninterrupted_run(mnist, reference_run):
    spec, ck = reference_run
    final = {"final": (4, ck[4])}
    whole, fid_whole = replay(spec, mnist, ck[0], ck[4], final, 0.0)
    second, fid_second = replay(spec, mnist, ck[2], ck[4], final, 0.0)
    first, fid_first = replay(spec, mnist, ck[0], ck[2], final, 0.0)
    for fid, epoch in ((fid_whole, 4), (fid_second, 4), (fid_first, 2)):
        assert fid.relative_drift == 0.0
        assert fid.max_buffer_difference == 0.0
        assert fid.epoch == epoch
        assert fid.run_id == spec.run_id

    split = 2 * STEPS_PER_EPOCH
    assert whole["step"].to_list() == list(range(4 * STEPS_PER_EPOCH))
    assert second["step"].to_list() == list(range(split, 4 * STEPS_PER_EPOCH))
    assert second["epoch"].to_list() == [t // STEPS_PER_EPOCH for t in range(split, 4 * STEPS_PER_EPOCH)]
    # Exactly the same values: the metrics of a step depend only on w_t, G_t, w_{t+1}, the reference and,
    # for the correlations, earlier steps, which a segment that starts at a checkpoint does not have.
    tail = whole.filter(pl.col("step") >= split)
    assert_frame_equal(second.select(pl.exclude(CORRELATIONS)), tail.select(pl.exclude(CORRELATIONS)), check_exact=True)
    assert_frame_equal(pl.concat([first, second]).drop(CORRELATIONS), whole.drop(CORRELATIONS), check_exact=True)
    for column, needs in [("grad_corr", 1), ("sign_flip", 1), ("mean_grad_corr", 4)]:
        assert second[column].null_count() == needs, column
        assert whole[column].null_count() == needs, column
        assert second[column][needs:].to_list() == tail[column][needs:].to_list(), column
    # The anchored lags: the whole run's only anchor is step 0, so lag k is measured at step k alone; the
    # second segment (steps 14..27) holds no anchor, so nothing.
    for k in (1, 2, 5, 10, 20):
        for column in (f"perp_corr_lag{k}", f"dist_lag{k}"):
            assert whole.filter(pl.col(column).is_not_null())["step"].to_list() == [k], column
            assert second[column].null_count() == second.height, column
    assert whole["lr"].n_unique() > 2


def test_multi_reference_replay(mnist, reference_run):
    spec, ck = reference_run
    both, _ = replay(spec, mnist, ck[0], ck[2], {"epoch2": (2, ck[2]), "final": (4, ck[4])}, 0.0)
    only, _ = replay(spec, mnist, ck[0], ck[2], {"final": (4, ck[4])}, 0.0)
    n = 2 * STEPS_PER_EPOCH
    assert both.height == 2 * n
    assert both["reference"].to_list() == ["epoch2"] * n + ["final"] * n
    assert_frame_equal(both.filter(pl.col("reference") == "final"), only, check_exact=True)

    steps = np.arange(n)
    for name, budget in (("epoch2", 2), ("final", 4)):
        rows = both.filter(pl.col("reference") == name)
        assert rows["budget"].to_list() == [budget] * n
        assert rows["steps_to_reference"].to_list() == list(budget * STEPS_PER_EPOCH - steps)
        assert rows["run_id"].to_list() == [spec.run_id] * n
    # The epoch-2 reference is this segment's own end point: the last step lands on it exactly.
    last = both.filter((pl.col("reference") == "epoch2") & (pl.col("step") == n - 1)).row(0, named=True)
    assert last["upd_gamma"] == pytest.approx(1.0, rel=1e-9)
    assert last["upd_rsi"] == pytest.approx(1.0, rel=1e-9)
    assert last["upd_norm"] == pytest.approx(last["dist"], rel=1e-9)
    # The loss, lr and gradient do not depend on the reference; the distances do.
    e2, fin = (both.filter(pl.col("reference") == r) for r in ("epoch2", "final"))
    for column in ("loss", "lr", "grad_norm", "grad_norm_wd", "upd_norm"):
        assert e2[column].to_list() == fin[column].to_list(), column
    assert not np.allclose(e2["dist"].to_numpy(), fin["dist"].to_numpy())


def test_divergence_names_run_and_epoch(mnist):
    spec = mnist_spec(optimizer="sgd", lr=1e6, epochs=3)
    trainer = build_trainer(spec, mnist, CPU)
    with pytest.raises(DivergenceError) as error:
        while trainer.epoch < spec.epochs:
            trainer.train_epoch()
    failed_epoch = trainer.epoch  # train_epoch raises before it advances the epoch
    assert spec.run_id in str(error.value)
    assert f"epoch {failed_epoch}" in str(error.value)

    saved: dict[int, dict] = {}
    with pytest.raises(DivergenceError, match=rf"run {re.escape(spec.run_id)} diverged in epoch {failed_epoch}:"):
        train_reference(spec, mnist, CPU, (0, 1, 2, 3), lambda epoch, state: saved.__setitem__(epoch, state))
    assert sorted(saved) == [e for e in (0, 1, 2, 3) if e <= failed_epoch]  # nothing after the divergence


def test_divergence_in_a_later_epoch_reports_that_epoch(mnist):
    spec = mnist_spec(optimizer="sgd", lr=0.05, epochs=4)
    trainer = build_trainer(spec, mnist, CPU)
    trainer.train_epoch()
    trainer.train_epoch()
    with torch.no_grad():
        trainer.flat.weights[0] = float("nan")
    with pytest.raises(DivergenceError, match=rf"run {re.escape(spec.run_id)} diverged in epoch 2:"):
        trainer.train_epoch()


def test_fidelity_error_on_a_tampered_end_checkpoint(mnist, reference_run):
    spec, ck = reference_run
    tampered = dict(ck[4])
    tampered["model"] = {k: v.clone() for k, v in ck[4]["model"].items()}
    name = "net.1.weight"
    tampered["model"][name][0, 0] += 1e-3

    trainer = build_trainer(spec, mnist, CPU)
    true_end = flat_parameters_of(trainer, ck[4]["model"]).double().numpy()
    bad_end = flat_parameters_of(trainer, tampered["model"]).double().numpy()
    assert np.count_nonzero(true_end != bad_end) == 1  # one parameter changed, the original untouched
    expected = np.linalg.norm(true_end - bad_end) / np.linalg.norm(bad_end)

    with pytest.raises(FidelityError) as error:
        replay(spec, mnist, ck[2], tampered, {"final": (4, ck[4])}, 1e-6)
    message = str(error.value)
    assert spec.run_id in message
    assert "at epoch 4" in message
    assert f"relative drift {expected:.3g} > tolerance 1e-06" in message

    table, fidelity = replay(spec, mnist, ck[2], tampered, {"final": (4, ck[4])}, 10 * expected)
    assert fidelity.relative_drift == pytest.approx(expected, rel=1e-9)
    assert fidelity.epoch == 4 and fidelity.run_id == spec.run_id
    assert table.height == 2 * STEPS_PER_EPOCH
    # The untampered checkpoint still replays exactly.
    _, clean = replay(spec, mnist, ck[2], ck[4], {"final": (4, ck[4])}, 0.0)
    assert clean.relative_drift == 0.0


def test_replay_leaves_its_start_checkpoint_untouched(mnist, reference_run):
    spec, ck = reference_run
    start = copy.deepcopy(ck[2])
    end = copy.deepcopy(ck[4])
    replay_segment(spec, mnist, CPU, start, end, {"final": (4, end)}, 0.0)
    for key, fields in ck[2]["optimizer"]["state"].items():
        for field, value in fields.items():
            assert torch.equal(start["optimizer"]["state"][key][field], value), (key, field)
    # The same in-memory start state must replay the same trajectory a second time.
    _, _, again = replay_segment(spec, mnist, CPU, start, end, {"final": (4, end)}, float("inf"))
    assert again.relative_drift == 0.0


@pytest.mark.parametrize("threads", [1, 2])
def test_fused_kernel_matches_float64_numpy_on_a_large_vector(threads):
    """The parallel kernel (large vectors, several threads) and the serial one give the geometry block and
    G·G, G·G_{t−1} of the record, equal to numpy float64, independently of the thread count; the entries
    of the window lags this plan does not take stay NaN."""
    from pathgeo.engine import cpu_kernels, record
    from pathgeo.training.fused import PARALLEL_MIN_SIZE

    n = PARALLEL_MIN_SIZE + 12345
    rng = np.random.default_rng(0)
    w = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    w_prev = (w + 1e-3 * rng.standard_normal(n)).astype(np.float32)
    w_star = np.stack([w + 1e-2 * rng.standard_normal(n), w + rng.standard_normal(n)]).astype(np.float32)
    ring_g = rng.standard_normal((5, n)).astype(np.float32)
    ring_w = np.zeros((0, n), dtype=np.float32)
    lay = record.Layout(window=5, refs=2, lags=())
    plan = np.full(record.plan_width(lay), -1, dtype=np.int64)
    plan[[record.PREV_VALID, record.G_WRITE, record.G_SLOTS]] = 1, 4, 3
    prev_before, ring_before = w_prev.copy(), ring_g.copy()
    out = np.full(lay.width, np.nan)
    cpu_kernels.step_pass(
        w, g, w_prev, w_star, ring_g, ring_w, plan, lay.ring_lags, lay.geometry, lay.lag_block, out, threads
    )
    assert np.array_equal(w_prev, w)  # w_prev advanced to the current weights
    assert np.array_equal(ring_g[4], g) and np.array_equal(ring_g[:4], ring_before[:4])

    W, G, S = w.astype(np.float64), g.astype(np.float64), prev_before.astype(np.float64) - w
    P = ring_before[3].astype(np.float64)
    geo = lay.geometry
    expected = {
        0: (G @ G, G, G),
        lay.g_dot(1): (G @ P, G, P),
        geo + record.GEO_WW: (W @ W, W, W),
        geo + record.GEO_GW: (G @ W, G, W),
        geo + record.GEO_SS: (S @ S, S, S),
    }
    for r in range(2):
        D = W - w_star[r].astype(np.float64)
        at = lay.ref(r)
        expected |= {at: (G @ D, G, D), at + 1: (D @ D, D, D), at + 2: (W @ D, W, D), at + 3: (S @ D, S, D)}
    for index, (value, x, y) in expected.items():
        assert out[index] == pytest.approx(value, rel=1e-12, abs=1e-9 * np.linalg.norm(x) * np.linalg.norm(y)), index
    assert out[lay.g_flips(1)] == np.count_nonzero(G * P < 0)
    untaken = [lay.g_dot(k) for k in range(2, 5)] + [lay.g_flips(k) for k in range(2, 5)]
    assert np.isnan(out[untaken]).all()
    assert not np.isnan(np.delete(out, untaken)).any()

    again = np.full(lay.width, np.nan)
    cpu_kernels.step_pass(
        w,
        g,
        prev_before.copy(),
        w_star,
        ring_before.copy(),
        ring_w,
        plan,
        lay.ring_lags,
        lay.geometry,
        lay.lag_block,
        again,
        3 - threads,
    )
    np.testing.assert_array_equal(out, again)  # fixed blocks: the same bits whatever the thread count


def test_the_serial_and_parallel_passes_do_not_share_compiled_code(tmp_path):
    """Numba's on-disk cache keys code by function name, signature and bytecode, not by the `parallel`
    flag. If both variants were one function, the serial pass that a small model compiles first would be
    loaded as the parallel pass of every later large model. Here the serial variant compiles first, into
    an empty cache; the parallel one must then find nothing of it to load."""
    script = (
        "import numpy as np\n"
        "from pathgeo.engine import cpu_kernels\n"
        "from pathgeo.training.fused import PARALLEL_MIN_SIZE\n"
        "small = np.ones(16, dtype=np.float32)\n"
        "cpu_kernels.read_pass(small, small, small, small, np.zeros(1), 2)\n"
        "large = np.ones(PARALLEL_MIN_SIZE, dtype=np.float32)\n"
        "cpu_kernels.read_pass(large, large, large, large, np.zeros(1), 2)\n"
        "print(sum(cpu_kernels.read_pass.serial.stats.cache_misses.values()),\n"
        "      sum(cpu_kernels.read_pass.parallel.stats.cache_hits.values()),\n"
        "      sum(cpu_kernels.read_pass.parallel.stats.cache_misses.values()))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), NUMBA_NUM_THREADS="2")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    serial_compiled, parallel_loaded, parallel_compiled = map(int, done.stdout.split())
    assert (serial_compiled, parallel_loaded, parallel_compiled) == (1, 0, 1)
    assert len(list(tmp_path.rglob("*.nbi"))) == 2


# ----------------------------------------------------------------------------------------------------------
# 5. The probe as a library: reference points in every form, gradients set to None, the order of calls
# ----------------------------------------------------------------------------------------------------------

LIBRARY_STEPS, LIBRARY_EPOCHS = 6, 2


def library_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model[0].bias.requires_grad_(False)  # a frozen tensor between trainable ones
    return model


def library_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (torch.randn(10, 6, generator=generator), torch.randint(0, 3, (10,), generator=generator))
        for _ in range(LIBRARY_STEPS)
    ]


def library_run(references=None, zero="flat", steps_per_epoch=LIBRARY_STEPS, **probe_options):
    """A loop driving the probe by hand, `references` a function of the trained model giving the probe's
    references (None: a model trained without the probe, returned); `zero` how gradients are zeroed."""
    model = library_model()
    flat = FlatParameters.of(model)
    optimizer = torch.optim.SGD(flat.params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    probe = (
        None
        if references is None
        else Probe(flat, references(), weight_decay=1e-3, steps_per_epoch=steps_per_epoch, **probe_options)
    )
    for epoch in range(LIBRARY_EPOCHS):
        for x, y in library_batches():
            if zero == "flat":
                flat.zero_grad()
            else:
                optimizer.zero_grad()  # set_to_none=True, torch's default
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            if probe is not None:
                probe.after_backward(loss, 0.1)
            optimizer.step()
        if probe is not None:
            probe.end_epoch(epoch)
    return model if probe is None else (probe, model)


@pytest.fixture(scope="module")
def trained_library_model() -> torch.nn.Module:
    return library_run()


def test_a_reference_point_may_be_a_module_a_state_dict_a_list_or_a_flat_tensor(trained_library_model):
    trained = trained_library_model
    trainable = [p.detach() for p in trained.parameters() if p.requires_grad]
    forms = {
        "module": trained,
        "state_dict": trained.state_dict(),
        "list": trainable,
        "flat": torch.cat([t.reshape(-1) for t in trainable]),
    }
    tables = {name: library_run(lambda form=form: {"final": form})[0].finish() for name, form in forms.items()}
    for table in tables.values():
        assert_frame_equal(table, tables["flat"], check_exact=True)
    # The reference is the end of this very run: the last step's update points straight at it.
    assert tables["flat"]["upd_gamma"][-1] == pytest.approx(1.0, rel=1e-6)


def test_reference_points_in_a_wrong_form_are_named(trained_library_model):
    model = library_model()
    flat = FlatParameters.of(model)
    state = trained_library_model.state_dict()
    with pytest.raises(
        TypeError,
        match=r"references maps a name to each reference point, e\.g\. \{'final': w_star\}; "
        r"got a Tensor",
    ):
        Probe(flat, flat.weights.clone())
    with pytest.raises(TypeError, match=r"looks like one state_dict: pass \{'final': state_dict\}"):
        Probe(flat, state)
    with pytest.raises(KeyError, match=r"lacks trainable parameter\(s\) \['3.weight'\]"):
        Probe(flat, {"final": {k: v for k, v in state.items() if k != "3.weight"}})
    trainable = [p.detach() for p in trained_library_model.parameters() if p.requires_grad]
    with pytest.raises(
        ValueError,
        match="3 tensors, the model 5 trainable parameters: give them in "
        r"model.parameters\(\) order, frozen ones left out",
    ):
        Probe(flat, {"final": trainable[:3]})
    with pytest.raises(ValueError, match=r"tensor 1 \(1.weight\) has shape \(8, 6\), the model's \(8,\)"):
        Probe(flat, {"final": [trainable[0], trainable[0], *trainable[2:]]})
    unnamed = FlatParameters([p for p in library_model().parameters() if p.requires_grad])
    with pytest.raises(ValueError, match=r"needs the parameters' names: build FlatParameters.of\(model\)"):
        Probe(unnamed, {"final": state})


def test_gradients_set_to_none_are_measured_as_gradients_zeroed_in_place(trained_library_model):
    """optimizer.zero_grad() (set_to_none=True since torch 2.0) gives the table, and the weights, of a loop
    that keeps the gradients views of the flat buffer."""

    def references():
        return {"final": trained_library_model}

    in_place, in_place_model = library_run(references)
    set_to_none, set_to_none_model = library_run(references, zero="optimizer")
    for a, b in zip(in_place_model.state_dict().values(), set_to_none_model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert_frame_equal(set_to_none.finish(), in_place.finish(), check_exact=True)
    assert_frame_equal(set_to_none.correlation_matrices(), in_place.correlation_matrices(), check_exact=True)


@pytest.mark.parametrize("backend", ["fused", "triton"])
def test_finish_twice_gives_the_same_table_and_calls_out_of_order_say_what_comes_first(trained_library_model, backend):
    probe, _ = library_run(lambda: {"final": trained_library_model}, backend=backend)
    with pytest.raises(
        RuntimeError,
        match=r"correlation_matrices\(\) reads the finished measurement: call "
        r"finish\(\) \(or close\(\)\) first",
    ):
        probe.correlation_matrices()
    table = probe.finish()
    assert_frame_equal(probe.finish(), table, check_exact=True)
    assert table["upd_norm"][-1] > 0 and np.isfinite(table["upd_gamma"][-1])
    for call in (lambda: probe.after_backward(torch.tensor(1.0), 0.1), probe.end_epoch):
        with pytest.raises(
            RuntimeError,
            match=r"after finish\(\): this probe has ended; measure another run with a "
            "new Probe",
        ):
            call()


@pytest.mark.parametrize("backend", ["fused", "triton"])
def test_without_steps_per_epoch_the_records_grow_as_epochs_need(trained_library_model, monkeypatch, backend):

    def references():
        return {"final": trained_library_model, "start": library_model()}

    known, _ = library_run(references, backend=backend)
    monkeypatch.setattr("pathgeo.engine.probe.INITIAL_CAPACITY", 2)  # grown twice in each epoch of 6 steps
    grown, _ = library_run(references, steps_per_epoch=None, backend=backend)
    assert grown.capacity == 8
    assert_frame_equal(grown.finish(), known.finish(), check_exact=True)
    assert_frame_equal(grown.correlation_matrices(), known.correlation_matrices(), check_exact=True)


def test_gathering_gradients_is_one_fused_operation_and_none_for_views():
    """Gradients the loop replaced cost one fused copy per step whatever the model's size (ResNet-18: 62
    tensors); gradients still views of the flat buffer cost nothing."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torchvision.models import resnet18

    class Counting(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops: list[str] = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    model = resnet18(num_classes=10)
    flat = FlatParameters.of(model)
    with Counting() as views:
        flat.gather_grads()
    for p in model.parameters():
        p.grad = torch.full_like(p, 2.0)
    with Counting() as replaced:
        flat.gather_grads()
    assert views.ops == [] and replaced.ops == ["aten._foreach_copy_.default"]
    assert torch.equal(flat.grads, torch.full_like(flat.grads, 2.0))
    for p in model.parameters():
        p.grad = None
    with Counting() as missing:
        flat.gather_grads()
    assert missing.ops == ["aten._foreach_zero_.default"] and not flat.grads.any()
