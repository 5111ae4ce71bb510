"""Tests of the probe's gradient correlations: grad_corr, sign_flip, mean_grad_corr, perp_corr_lag{k} and the
h x h matrices of Probe.correlation_matrices().

The oracles are computed independently of pathgeo.engine.probe, in numpy float64, straight from the definitions
(row by row, no Gram matrices, no ring buffer):
  * closed forms for full-batch gradient descent on a diagonal quadratic, G_t = (1 − ηa)^t ⊙ a ⊙ w_0, in a
    regime where every component flips sign each step (η too large) and one where none does (η small);
  * per-step snapshots of w and G of a real network (MLP on MNIST-1D, momentum, weight decay, a schedule),
    with two references.
The orthogonal lags are checked under both protocols: every step, and the authors' anchored one, whose
oracle is their `trainval` loop rewritten in numpy (a base G⊥ and w stored at every step t ≡ 0 mod 51,
cos and distance recorded at t + k). The edge cases (no lags, window too small, unknown lags, chosen matrix
epochs, windows that cross the segment's end, a segment that starts mid-run) are checked against the same
oracles, and the fused CPU kernel against the Triton kernels that GPUs run (here under the interpreter).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from pathgeo.columns import ANCHOR_PERIOD, LAGS
from pathgeo.engine import cpu_kernels
from pathgeo.engine.probe import Probe
from pathgeo.training import data
from pathgeo.training.flat import FlatParameters
from pathgeo.training.loop import build_trainer
from pathgeo.training.spec import DataSpec, RunSpec

CPU = torch.device("cpu")
PERP = [f"perp_corr_lag{k}" for k in LAGS]
DIST = [f"dist_lag{k}" for k in LAGS]
ADJACENT = ["grad_corr", "sign_flip", "mean_grad_corr"]
COLUMNS = ADJACENT + PERP + DIST
MATRIX_COLUMNS = ["epoch", "start_step", "i", "j", "corr", "sign_flip"]


pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


# The fused numba pass (CPU), and the Triton kernels of the GPU path under the interpreter: one program
# over one block, or blocks shared out over two programs that each loop over several (the interpreter is
# slow, so the looping variant runs in a few tests only: the quadratics' closed forms and the MLP runs).
BACKENDS = {
    "fused": {"backend": "fused"},
    "triton": {"backend": "triton", "programs": 1},
    "triton_small_blocks": {"backend": "triton", "block": 16, "programs": 2},
}
QUICK = ["fused", "triton"]
MLP_BACKENDS = {**{b: BACKENDS[b] for b in QUICK}, "triton_loops": {"backend": "triton", "block": 128, "programs": 2}}
PROTOCOLS = ["anchored", "every_step"]
# every_step launches a Triton kernel per lag per step: under the interpreter it runs on the quick backends.
COMBINATIONS = [("fused", "anchored"), ("fused", "every_step"), ("triton", "anchored"), ("triton", "every_step")]


# ----------------------------------------------------------------------------------------------------------
# numpy float64 oracles, from the definitions
# ----------------------------------------------------------------------------------------------------------


def cos(x: np.ndarray, y: np.ndarray) -> float:
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def measured_steps(T: int, k: int, protocol: str, first_step: int) -> list[int]:
    """Rows t (of a segment of T steps starting at global step `first_step`) where lag k is measured."""
    if protocol == "every_step":
        return list(range(k, T))
    # Anchored: the global step is ≡ k (mod 51), and its base t − k lies in the segment.
    return [t for t in range(k, T) if (first_step + t) % ANCHOR_PERIOD == k]


def oracle_columns(
    W: np.ndarray,
    Gs: np.ndarray,
    w_star: np.ndarray,
    window: int,
    lags=LAGS,
    protocol: str = "every_step",
    first_step: int = 0,
):
    """Every correlation column for one reference, NaN where undefined, from the segment's snapshots: W holds
    w_0..w_{T−1} (the weights at which each G was taken), Gs G_0..G_{T−1}. Also the error scale of each perp
    value (see assert_columns_close)."""
    T, n = Gs.shape
    out = {c: np.full(T, np.nan) for c in COLUMNS}
    scale = {c: np.ones(T) for c in COLUMNS}
    for t in range(1, T):
        out["grad_corr"][t] = cos(Gs[t], Gs[t - 1])
        out["sign_flip"][t] = np.count_nonzero(Gs[t] * Gs[t - 1] < 0) / n
    for t in range(window - 1, T):
        out["mean_grad_corr"][t] = np.mean([cos(Gs[j], Gs[j - 1]) for j in range(t - window + 2, t + 1)])
    U = np.empty_like(Gs)
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in range(T):
            d = W[s] - w_star
            U[s] = Gs[s] - (Gs[s] @ d) / (d @ d) * d
        for k in lags:
            for t in measured_steps(T, k, protocol, first_step):
                out[f"perp_corr_lag{k}"][t] = cos(U[t - k], U[t])
                out[f"dist_lag{k}"][t] = np.linalg.norm(W[t - k] - W[t])
                scale[f"dist_lag{k}"][t] = out[f"dist_lag{k}"][t]
                # |G||G'|/(|u||u'|) and |G|²/|u|²: how much the Gram form G⊥ = G − (G·d/d·d)d amplifies the
                # rounding of the dot products (≥ 1; large when G is nearly parallel to d).
                gu = [np.linalg.norm(Gs[s]) / np.linalg.norm(U[s]) for s in (t, t - k)]
                scale[f"perp_corr_lag{k}"][t] = max(gu[0] * gu[1], gu[0] ** 2, gu[1] ** 2)
    return out, scale


def oracle_matrices(Gs: np.ndarray, epochs: np.ndarray, first_step: int, window: int, wanted=None) -> pl.DataFrame:
    """The long matrix table from the definitions: one window per wanted epoch, starting at its first step,
    kept only if its h steps lie inside the segment."""
    T, n = Gs.shape
    rows = []
    for epoch in sorted(set(epochs.tolist())):
        if wanted is not None and epoch not in wanted:
            continue
        s = int(np.flatnonzero(epochs == epoch)[0])
        if s + window > T:
            continue
        for i in range(window):
            for j in range(window):
                flips = np.count_nonzero(Gs[s + i] * Gs[s + j] < 0) / n
                rows.append((epoch, first_step + s, i, j, cos(Gs[s + i], Gs[s + j]), flips))
    return pl.DataFrame(rows, schema=dict(zip(MATRIX_COLUMNS, [pl.Int64] * 4 + [pl.Float64] * 2)), orient="row")


def assert_columns_close(rows: pl.DataFrame, expected: dict, scale: dict, tol: float, columns=COLUMNS):
    """Nulls exactly where the oracle is undefined; elsewhere |got − expected| ≤ tol · scale. Every value is a
    cosine (or a fraction), so its rounding error is bounded on the scale 1 (times the perp amplification),
    not relative to the possibly tiny value; a distance ‖w_b − w_t‖ is summed from exact differences, so its
    scale is its own size. sign_flip counts signs of exact products: it must be exact."""
    for c in columns:
        got = rows[c]
        undefined = np.isnan(expected[c])
        assert got.is_null().to_list() == undefined.tolist(), c
        values = got.to_numpy()[~undefined]
        if c == "sign_flip":
            np.testing.assert_array_equal(values, expected[c][~undefined], err_msg=c)
            continue
        err = np.abs(values - expected[c][~undefined]) / scale[c][~undefined]
        if err.size:
            assert err.max() <= tol, f"{c}: worst scaled error {err.max():.3g} at row {np.argmax(err)} > {tol:g}"


def assert_matrices_close(got: pl.DataFrame, expected: pl.DataFrame, tol: float):
    assert got.columns == MATRIX_COLUMNS
    got, expected = (m.sort("epoch", "i", "j") for m in (got, expected))
    assert got.height == expected.height
    for c in ("epoch", "start_step", "i", "j", "sign_flip"):
        assert got[c].to_list() == expected[c].to_list(), c
    np.testing.assert_allclose(got["corr"].to_numpy(), expected["corr"].to_numpy(), rtol=0, atol=tol)
    diagonal = got.filter(pl.col("i") == pl.col("j"))
    assert diagonal["corr"].to_list() == [1.0] * diagonal.height
    assert diagonal["sign_flip"].to_list() == [0.0] * diagonal.height


# ----------------------------------------------------------------------------------------------------------
# 1. Quadratic, full-batch gradient descent: closed forms
# ----------------------------------------------------------------------------------------------------------

QUAD_DIM, QUAD_K, QUAD_EPOCHS = 50, 10, 6
QUAD_T = QUAD_K * QUAD_EPOCHS  # 60 steps: every lag up to 50 has rows to check
OSCILLATING_LR, SMOOTH_LR = 1.5, 0.1


def quadratic(lr: float):
    """f(w) = ½ wᵀAw, A = diag(a), a in [1, 1.2]: GD gives w_t = c^t ⊙ w_0 and G_t = a ⊙ c^t ⊙ w_0 exactly,
    c = 1 − ηa: in [−0.8, −0.5] for η = 1.5 (every component flips sign each step), in [0.88, 0.9] for
    η = 0.1 (none does)."""
    a = np.linspace(1.0, 1.2, QUAD_DIM)
    w0 = np.random.default_rng(11).standard_normal(QUAD_DIM)
    assert np.all(w0 != 0)  # so that every product G_t,i·G_{t−1},i is strictly signed
    c = 1.0 - lr * a
    W = c[None, :] ** np.arange(QUAD_T + 1)[:, None] * w0[None, :]
    return a, W, a[None, :] * W[:QUAD_T]


def quadratic_references() -> dict[str, np.ndarray]:
    """The minimum, where G ∥ d (G⊥ small: a stringent test of the Gram form), and a point off the path."""
    return {"minimum": np.zeros(QUAD_DIM), "off_path": np.random.default_rng(5).standard_normal(QUAD_DIM)}


def run_quadratic(
    lr: float, dtype: torch.dtype, backend: str, start: int = 0, w_start: np.ndarray | None = None, **probe_args
):
    """The probe in a plain torch loop from w_start (default: the closed form's w at step `start`), as a
    segment that starts at step `start`, epoch start/K; returns the table, the matrices and the float64
    snapshots of w and G the probe saw."""
    a_np, W, _ = quadratic(lr)
    w = torch.nn.Parameter(torch.tensor(W[start] if w_start is None else w_start, dtype=dtype))
    a = torch.tensor(a_np, dtype=dtype)
    flat = FlatParameters([w])
    optimizer = torch.optim.SGD(flat.params, lr=lr)
    references = {name: torch.from_numpy(r) for name, r in quadratic_references().items()}
    probe = Probe(
        flat,
        references,
        steps_per_epoch=QUAD_K,
        start_step=start,
        start_epoch=start // QUAD_K,
        **BACKENDS[backend],
        **probe_args,
    )
    weights, grads = [], []
    for epoch in range(start // QUAD_K, QUAD_EPOCHS):
        for _ in range(QUAD_K):
            flat.zero_grad()
            loss = 0.5 * (a * w * w).sum()
            loss.backward()
            weights.append(flat.weights.double().numpy().copy())
            grads.append(flat.grads.double().numpy().copy())
            probe.after_backward(loss, optimizer.param_groups[0]["lr"])
            optimizer.step()
        probe.end_epoch(epoch)
    table = probe.finish()
    return table, probe.correlation_matrices(), np.stack(weights), np.stack(grads)


# Tolerances for the closed forms. The float32 (float64) iterates of the torch loop differ from c^t ⊙ w_0 by
# a few roundings per step, each relative to the operands: w − η·g with |ηg| ≤ 1.8|w| and a result ≥ 0.5|w|
# loses ≤ ~4 ulp·1.8/0.5 ≈ 15 ulp of the component per step, so after 60 steps every component is within
# ≈ 900 ulp relative: 5e-5 (float32, ulp 6e-8), 1e-13 (float64). A cosine moves by at most ~2× the relative
# perturbation of its vectors: ≤ 1e-4 (float32), 2e-13 (float64); 2e-4 and 1e-10 are safe (typical errors
# are ~1e-6 and ~1e-15) and far below any formula error (O(1) or O(c)). The Gram form of G⊥ amplifies that by
# the perp scale ≈ (|G|/|G⊥|)²: ≈ 2.5 for the off-path reference; for the minimum ≈ 60 at first but up to
# 4e4 late in the oscillating run, where the components with the largest |c| dominate and G ≈ 1.2·d, so there
# the float32 comparison of perp_corr against the minimum is loose and the float64 one (≤ 4e-6) is the test.
QUAD_TOL = {torch.float64: 1e-10, torch.float32: 2e-4}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", QUICK)
def test_too_large_step_oscillates(dtype, backend):
    h = 5
    table, matrices, _, _ = run_quadratic(OSCILLATING_LR, dtype, backend)
    assert table.height == 2 * QUAD_T
    for name, rows in table.group_by("reference", maintain_order=True):
        assert rows["step"].to_list() == list(range(QUAD_T)), name
        assert rows["grad_corr"].null_count() == 1 and rows["sign_flip"].null_count() == 1
        assert rows["grad_corr"][0] is None and rows["sign_flip"][0] is None
        assert rows["mean_grad_corr"].null_count() == h - 1
        assert rows["mean_grad_corr"][: h - 1].is_null().all()
        # Every component flips sign every step: the gradient points backwards.
        assert (rows["grad_corr"][1:] < -0.95).all()
        assert rows["sign_flip"][1:].to_list() == [1.0] * (QUAD_T - 1)
        assert (rows["mean_grad_corr"][h - 1 :] < -0.95).all()
    # One window per epoch (all fit: the last starts at 50, ends at 54 < 60).
    assert matrices["epoch"].unique().sort().to_list() == list(range(QUAD_EPOCHS))
    assert matrices["start_step"].unique().sort().to_list() == [QUAD_K * e for e in range(QUAD_EPOCHS)]
    assert matrices.height == QUAD_EPOCHS * h * h
    lag = (matrices["i"] - matrices["j"]).abs().to_numpy()
    corr = matrices["corr"].to_numpy()
    # Alternating signs: G_{s+i}·G_{s+j} = Σ a² c^{2s+i+j} w0², every term of sign (−1)^(i−j).
    assert np.all(np.sign(corr) == (-1.0) ** lag)
    # Nearly ±1: only the spread of |c| (0.5 to 0.8) decorrelates the steps, most at lag 4 of epoch 0 (0.89).
    assert np.all(np.abs(corr) > 0.85)
    assert matrices["sign_flip"].to_list() == (lag % 2).astype(float).tolist()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", QUICK)
def test_small_step_keeps_direction(dtype, backend):
    table, matrices, _, _ = run_quadratic(SMOOTH_LR, dtype, backend)
    rows = table.filter(pl.col("reference") == "minimum")
    assert (rows["grad_corr"][1:] > 0.99).all()
    assert rows["sign_flip"][1:].to_list() == [0.0] * (QUAD_T - 1)
    assert (rows["mean_grad_corr"][4:] > 0.99).all()
    assert (matrices["corr"] > 0.99).all()
    assert matrices["sign_flip"].to_list() == [0.0] * matrices.height


@pytest.mark.parametrize("lr", [OSCILLATING_LR, SMOOTH_LR], ids=["oscillating", "smooth"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend,protocol", [*COMBINATIONS, ("triton_small_blocks", "anchored")])
def test_quadratic_matches_closed_forms(lr, dtype, backend, protocol):
    h = 5
    a, W, G = quadratic(lr)
    table, matrices, _, _ = run_quadratic(lr, dtype, backend, window=h, lagged=protocol)
    tol = QUAD_TOL[dtype]
    # The closed form of grad_corr itself, as a sum over components (independent of oracle_columns):
    # cos(G_t, G_{t−1}) = Σ a² c^{2t−1} w0² / √(Σ a² c^{2t} w0² · Σ a² c^{2t−2} w0²).
    w0, c = W[0], 1.0 - lr * a
    t = np.arange(1, QUAD_T)[:, None]
    closed = (a**2 * c ** (2 * t - 1) * w0**2).sum(1) / np.sqrt(
        (a**2 * c ** (2 * t) * w0**2).sum(1) * (a**2 * c ** (2 * t - 2) * w0**2).sum(1)
    )
    for name, w_star in quadratic_references().items():
        rows = table.filter(pl.col("reference") == name)
        np.testing.assert_allclose(rows["grad_corr"][1:].to_numpy(), closed, rtol=0, atol=tol)
        expected, scale = oracle_columns(W[:QUAD_T], G, w_star, h, protocol=protocol)
        np.testing.assert_allclose(expected["grad_corr"][1:], closed, rtol=0, atol=1e-14)  # the two oracles agree
        # Every perp value is defined (no d = 0 on these paths): every step from k on (lag 50 is checked on
        # 10 rows), or, anchored, at the steps 51m + k (two for k = 1, 2 and 5, one for 10, 20 and 50).
        measured = {k: QUAD_T - k if protocol == "every_step" else 2 if k <= 5 else 1 for k in LAGS}
        assert all(rows[f"perp_corr_lag{k}"].drop_nulls().len() == measured[k] for k in LAGS)
        assert_columns_close(rows, expected, scale, tol)
    assert_matrices_close(matrices, oracle_matrices(G, np.arange(QUAD_T) // QUAD_K, 0, h), tol)


# ----------------------------------------------------------------------------------------------------------
# 2. The engine against numpy float64 on a real network
# ----------------------------------------------------------------------------------------------------------

MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})
BATCH = 32
STEPS_PER_EPOCH = math.ceil(200 / BATCH)  # 7, the last batch is short (200 = 6·32 + 8)
MLP_EPOCHS, MID_EPOCH = 5, 2
MLP_T = MLP_EPOCHS * STEPS_PER_EPOCH  # 35 steps: lags 10 and 20 have 25 and 15 rows, lag 50 none
WD = 1e-3


def mlp_spec() -> RunSpec:
    return RunSpec(
        data=MNIST1D,
        model="mlp",
        width=8,
        optimizer="momentum",
        lr=0.05,
        weight_decay=WD,
        schedule="warmup_cosine",
        warmup_epochs=1,
        batch_size=BATCH,
        epochs=MLP_EPOCHS,
        seed=0,
        data_order_seed=1,
        precision="float32",
    )


@pytest.fixture(scope="module")
def mnist() -> dict[str, torch.Tensor]:
    return data.build(MNIST1D)


@pytest.fixture(scope="module")
def mlp_references(mnist) -> dict[str, torch.Tensor]:
    """The run's final weights and its weights after epoch 2 (an iterate of the probed path: d = 0 there)."""
    trainer = build_trainer(mlp_spec(), mnist, CPU)
    references = {}
    for epoch in range(MLP_EPOCHS):
        if epoch == MID_EPOCH:
            references["epoch2"] = trainer.flat.weights.clone()
        trainer.train_epoch()
    references["final"] = trainer.flat.weights.clone()
    return references


class Recorder:
    """An observer that snapshots w and G (as float64) and then hands the step on to the probe."""

    def __init__(self, flat: FlatParameters, probe: Probe):
        self.flat, self.probe = flat, probe
        self.weights: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        self.weights.append(self.flat.weights.detach().double().numpy().copy())
        self.grads.append(self.flat.grads.detach().double().numpy().copy())
        self.probe.after_backward(loss, lr, weight_decay)


def run_probe_mlp(mnist, references: dict[str, torch.Tensor], backend: str, window: int, lagged: str):
    spec = mlp_spec()
    trainer = build_trainer(spec, mnist, CPU)
    probe = Probe(
        trainer.flat,
        references,
        weight_decay=WD,
        steps_per_epoch=trainer.task.steps_per_epoch,
        window=window,
        lagged=lagged,
        **MLP_BACKENDS[backend],
    )
    recorder = Recorder(trainer.flat, probe)
    for _ in range(spec.epochs):
        stats = trainer.train_epoch(recorder)
        probe.end_epoch(stats.epoch)
    table = probe.finish()
    assert torch.equal(trainer.flat.weights, references["final"])  # the reference really is the last iterate
    return table, probe.correlation_matrices(), np.stack(recorder.weights), np.stack(recorder.grads)


@pytest.fixture(scope="module")
def probe_mlp(mnist, mlp_references):
    """probe_mlp(backend, window, lagged) -> (table, matrices, W, G); each configuration runs once per module."""
    cache: dict[tuple, tuple] = {}

    def run(backend: str, window: int, lagged: str):
        key = backend, window, lagged
        if key not in cache:
            cache[key] = run_probe_mlp(mnist, mlp_references, backend, window, lagged)
        return cache[key]

    return run


# The probe and numpy both form products of float32 values exactly in float64 (w − w* included: the difference
# of two float32 numbers is exact in float64) and differ only in summation order: ≤ n·2^-53 ≈ 6e-14 of |x||y|
# for n = 562 parameters, i.e. on a cosine's scale (times the perp amplification, ≈ 2 here, for perp_corr);
# typical errors are ~2e-16. 1e-10 leaves three orders of margin over the bound, and catches a d = w − w*
# rounded to float32 (~6e-8 relative per component, ~1e-9 on perp_corr), let alone a formula error.
MLP_TOL = 1e-10


@pytest.mark.parametrize("window", [3, 5])
@pytest.mark.parametrize("backend,protocol", [*COMBINATIONS, ("triton_loops", "anchored")])
def test_probe_correlations_match_numpy_on_mlp(probe_mlp, mlp_references, window, backend, protocol):
    table, matrices, W, G = probe_mlp(backend, window, protocol)
    assert W.shape == G.shape == (MLP_T, len(mlp_references["final"]))
    assert table.height == 2 * MLP_T
    mid = MID_EPOCH * STEPS_PER_EPOCH  # the step at which w = the epoch-2 reference

    adjacent = None
    for name in ("epoch2", "final"):
        rows = table.filter(pl.col("reference") == name)
        assert rows["step"].to_list() == list(range(MLP_T))
        expected, scale = oracle_columns(W, G, mlp_references[name].double().numpy(), window, protocol=protocol)
        assert_columns_close(rows, expected, scale, MLP_TOL)
        # Null counts: the first 1, h − 1 rows; lag 50 > 35 steps is null throughout.
        assert rows["grad_corr"].null_count() == 1
        assert rows["sign_flip"].null_count() == 1
        assert rows["mean_grad_corr"].null_count() == window - 1
        for k in LAGS:
            measured = set(measured_steps(MLP_T, k, protocol, 0))
            if name == "epoch2":
                # d = 0 at the step that is the reference: G⊥ is undefined there, so every lag that touches
                # that step is null too (rows mid and mid + k); anchored, no lag touches it.
                np.testing.assert_array_equal(W[mid], mlp_references["epoch2"].double().numpy())
                measured -= {mid, mid + k}
            assert set(np.flatnonzero(rows[f"perp_corr_lag{k}"].is_not_null().to_numpy())) == measured, k
        # Lags 10 and 20 really are compared, and the correlations are not trivial here.
        assert rows["perp_corr_lag20"].drop_nulls().len() >= (14 if protocol == "every_step" else 1)
        assert rows["perp_corr_lag20"].drop_nulls().abs().max() > 1e-3
        assert rows["dist_lag20"].drop_nulls().min() > 0
        assert rows["sign_flip"].drop_nulls().n_unique() > 3
        # The adjacent columns do not depend on the reference.
        if adjacent is None:
            adjacent = rows.select(ADJACENT)
        else:
            assert rows.select(ADJACENT).equals(adjacent)

    expected_matrices = oracle_matrices(G, np.arange(MLP_T) // STEPS_PER_EPOCH, 0, window)
    # Every epoch's window fits (the last starts at 28, ends at ≤ 32 < 35).
    assert expected_matrices["epoch"].unique().sort().to_list() == list(range(MLP_EPOCHS))
    assert_matrices_close(matrices, expected_matrices, MLP_TOL)
    # The matrices and the step table agree: entry (i, i+1) is grad_corr at step s+i+1, and they are symmetric.
    final = table.filter(pl.col("reference") == "final")
    upper = matrices.filter(pl.col("j") == pl.col("i") + 1)
    step_values = final["grad_corr"].gather(upper["start_step"] + upper["i"] + 1)
    np.testing.assert_allclose(upper["corr"].to_numpy(), step_values.to_numpy(), rtol=0, atol=1e-15)
    transposed = matrices.rename({"i": "j", "j": "i"}).sort("epoch", "i", "j")
    np.testing.assert_allclose(
        transposed["corr"].to_numpy(), matrices.sort("epoch", "i", "j")["corr"].to_numpy(), rtol=0, atol=1e-15
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("window", [3, 5])
def test_fused_and_triton_backends_agree_on_mlp(probe_mlp, window, protocol):
    fused, fused_matrices, W, G = probe_mlp("fused", window, protocol)
    for backend in ("triton", "triton_loops") if protocol == "anchored" else ("triton",):
        other, other_matrices, W2, G2 = probe_mlp(backend, window, protocol)
        np.testing.assert_array_equal(W2, W)  # the same trajectory
        np.testing.assert_array_equal(G2, G)
        for c in COLUMNS:
            assert other[c].is_null().to_list() == fused[c].is_null().to_list(), c
            a, b = fused[c].drop_nulls().to_numpy(), other[c].drop_nulls().to_numpy()
            if c == "sign_flip":
                np.testing.assert_array_equal(a, b)
            else:
                # Both sum exact float64 products, in different orders: ~1e-13 on a cosine's scale.
                np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12, err_msg=c)
        assert other_matrices.select(pl.exclude("corr")).equals(fused_matrices.select(pl.exclude("corr")))
        np.testing.assert_allclose(
            other_matrices["corr"].to_numpy(), fused_matrices["corr"].to_numpy(), rtol=1e-12, atol=1e-12
        )


# ----------------------------------------------------------------------------------------------------------
# 3. Options and edge cases
# ----------------------------------------------------------------------------------------------------------


def test_window_lags_and_protocol_are_validated():
    w = torch.nn.Parameter(torch.zeros(5, dtype=torch.float64))
    flat = FlatParameters([w])
    refs = {"final": torch.ones(5)}
    for window in (1, 0, -3):
        with pytest.raises(ValueError, match="at least 2 steps"):
            Probe(flat, refs, window=window)
    for lags in ((3,), (1, 2, 100), (0,)):
        with pytest.raises(ValueError, match="lags"):
            Probe(flat, refs, lags=lags)
    for lagged in ("anchor", True, "every-step"):
        with pytest.raises(ValueError, match="lagged must be one of"):
            Probe(flat, refs, lagged=lagged)
    Probe(flat, refs, window=2, lags=())  # the smallest valid configuration
    Probe(flat, refs, lags=(50, 1))  # any subset of LAGS, in any order
    Probe(flat, refs, lagged="every_step", lags=(2,))


def assert_same_up_to_summation(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert got.columns == want.columns
    for c in got.columns:
        if got[c].dtype == pl.Float64:
            assert got[c].is_null().to_list() == want[c].is_null().to_list(), c
            np.testing.assert_allclose(
                got[c].drop_nulls().to_numpy(), want[c].drop_nulls().to_numpy(), rtol=1e-13, atol=0, err_msg=c
            )
        else:
            assert got[c].to_list() == want[c].to_list(), c


@pytest.mark.parametrize("backend,protocol", COMBINATIONS[:3])
def test_lags_choose_the_perp_columns_only(backend, protocol):
    lagged = PERP + DIST
    full, full_matrices, *_ = run_quadratic(SMOOTH_LR, torch.float64, backend, lagged=protocol)
    none, none_matrices, *_ = run_quadratic(SMOOTH_LR, torch.float64, backend, lagged="off")
    empty, _, *_ = run_quadratic(SMOOTH_LR, torch.float64, backend, lagged=protocol, lags=())
    some, _, *_ = run_quadratic(SMOOTH_LR, torch.float64, backend, lagged=protocol, lags=(20, 2))
    # No lags: every lagged column is there, null throughout; everything else is unchanged.
    for table in (none, empty):
        assert set(lagged) <= set(table.columns)
        for c in lagged:
            assert table[c].null_count() == table.height, c
        assert_same_up_to_summation(table.drop(lagged), full.drop(lagged))
    assert_same_up_to_summation(none_matrices, full_matrices)
    # Some lags: those columns equal the full run's, the others are null throughout.
    assert_same_up_to_summation(some.drop(lagged), full.drop(lagged))
    for k in LAGS:
        for c in (f"perp_corr_lag{k}", f"dist_lag{k}"):
            if k in (2, 20):
                assert some[c].is_null().to_list() == full[c].is_null().to_list()
                np.testing.assert_allclose(
                    some[c].drop_nulls().to_numpy(), full[c].drop_nulls().to_numpy(), rtol=1e-14, atol=1e-14, err_msg=c
                )
            else:
                assert some[c].null_count() == some.height, c


@pytest.mark.parametrize("backend", QUICK)
def test_matrix_epochs_and_windows_at_the_segment_end(backend):
    """A segment of epochs 2..5 (steps 20..59) that starts mid-run, as a replay from a checkpoint does."""
    start = 2 * QUAD_K
    segment_epochs = np.arange(start, QUAD_T) // QUAD_K
    for window, wanted, present in [
        (10, None, [2, 3, 4, 5]),  # the last window is steps 50..59: exactly fits
        (11, None, [2, 3, 4]),  # epoch 5's would end at step 60, past the segment
        (11, {3, 5}, [3]),
        (2, {2, 5, 9}, [2, 5]),  # an epoch outside the segment is simply absent
        (5, set(), []),
        (31, None, [2]),
        (41, None, []),  # longer than the segment (40 steps)
    ]:
        table, matrices, Ws, Gs = run_quadratic(
            OSCILLATING_LR, torch.float64, backend, start=start, window=window, matrix_epochs=wanted, lags=(1, 5)
        )
        assert sorted(matrices["epoch"].unique().to_list()) == present, (window, wanted)
        assert matrices.height == len(present) * window**2
        assert matrices.columns == MATRIX_COLUMNS
        expected = oracle_matrices(Gs, segment_epochs, start, window, wanted)
        assert_matrices_close(matrices, expected, 1e-10)
        # The segment holds no earlier gradients: its first rows are null, whatever the run before it; the
        # anchored lags start at its first anchor, step 51.
        rows = table.filter(pl.col("reference") == "off_path")
        assert rows["step"].to_list() == list(range(start, QUAD_T))
        assert rows["epoch"].to_list() == segment_epochs.tolist()
        oracle, scale = oracle_columns(
            Ws, Gs, quadratic_references()["off_path"], window, lags=(1, 5), protocol="anchored", first_step=start
        )
        assert_columns_close(rows, oracle, scale, 1e-10)
        assert rows.filter(pl.col("perp_corr_lag5").is_not_null())["step"].to_list() == [56]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_segment_values_equal_the_whole_run_where_defined(protocol):
    start = 2 * QUAD_K
    whole, _, Ws, _ = run_quadratic(OSCILLATING_LR, torch.float64, "fused", lagged=protocol)
    # The segment starts from the whole run's own iterate w_20, as a replay from its checkpoint would.
    part, *_ = run_quadratic(OSCILLATING_LR, torch.float64, "fused", start=start, w_start=Ws[start], lagged=protocol)
    tail = whole.filter(pl.col("step") >= start)
    T = QUAD_T - start
    for c, k in [("grad_corr", 1), ("sign_flip", 1), ("mean_grad_corr", 4)] + [
        (c, k) for k in LAGS for c in (f"perp_corr_lag{k}", f"dist_lag{k}")
    ]:
        # Defined in the segment: from step start + k on; anchored, at 51 + k alone (its base 51 ≥ 20).
        defined = measured_steps(T, k, protocol, start) if "lag" in c else list(range(k, T))
        for name in ("minimum", "off_path"):
            got = part.filter(pl.col("reference") == name)[c]
            want = tail.filter(pl.col("reference") == name)[c]
            assert np.flatnonzero(got.is_not_null().to_numpy()).tolist() == defined, (c, name)
            assert got.gather(defined).to_list() == want.gather(defined).to_list(), (c, name)


# ----------------------------------------------------------------------------------------------------------
# 4. The anchored protocol against the authors' loop
# ----------------------------------------------------------------------------------------------------------


def authors_anchored(W: np.ndarray, Gs: np.ndarray, w_star: np.ndarray, first_step: int) -> dict[str, dict[int, float]]:
    """`trainval` of the first paper's code (src/main_image_classification.py), in numpy float64, for a
    segment whose snapshots start at global step `first_step`: at iter % 51 == 0 it keeps
    base_grad_orth = G⊥ and base_x = w; at k = iter % 51 in {1, 2, 5, 10, 20, 50} it records
    sim_k = cos(base_grad_orth, G⊥) and dist_k = ‖base_x − w‖. A segment knows no base before its start."""
    sims: dict[int, dict[int, float]] = {k: {} for k in LAGS}
    dists: dict[int, dict[int, float]] = {k: {} for k in LAGS}
    base_grad_orth = base_x = None
    for row, (x, g) in enumerate(zip(W, Gs)):
        iteration = first_step + row
        diff = x - w_star
        norm_dist, dot_prod = np.linalg.norm(diff), g @ diff
        orth = g - dot_prod * diff / norm_dist**2
        if iteration % 51 == 0:
            base_grad_orth, base_x = orth, x
        k = iteration % 51
        if k in LAGS and base_grad_orth is not None:
            sims[k][iteration] = cos(base_grad_orth, orth)
            dists[k][iteration] = float(np.linalg.norm(base_x - x))
    return {"sim": sims, "dist": dists}


ANCHORED_EPOCHS = 25  # 175 steps: anchors at steps 0, 51, 102 and 153


@pytest.mark.parametrize("start_epoch", [0, 9], ids=["whole", "segment_from_63"])
@pytest.mark.parametrize("backend", ["fused", "triton_loops"])
def test_anchored_protocol_matches_the_authors_loop(backend, start_epoch):
    """The default protocol on the MLP under momentum and weight decay for 175 steps: the steps that carry
    a value, the cosines and the distances are those of the authors' loop; a segment from step 63 has none
    until its first anchor, 102."""
    spec = RunSpec(
        data=MNIST1D,
        model="mlp",
        width=8,
        optimizer="momentum",
        lr=0.05,
        weight_decay=WD,
        schedule="constant",
        warmup_epochs=0,
        batch_size=BATCH,
        epochs=ANCHORED_EPOCHS,
        seed=0,
        data_order_seed=1,
        precision="float32",
    )
    trainer = build_trainer(spec, data.build(MNIST1D), CPU)
    for _ in range(start_epoch):
        trainer.train_epoch()
    w_star = torch.randn(trainer.flat.numel, generator=torch.Generator().manual_seed(3))
    probe = Probe(
        trainer.flat,
        {"final": w_star},
        weight_decay=WD,
        steps_per_epoch=STEPS_PER_EPOCH,
        start_step=trainer.step,
        start_epoch=trainer.epoch,
        **MLP_BACKENDS[backend],
    )
    recorder = Recorder(trainer.flat, probe)
    while trainer.epoch < ANCHORED_EPOCHS:
        stats = trainer.train_epoch(recorder)
        probe.end_epoch(stats.epoch)
    table = probe.finish()
    first = table["step"][0]
    W, G = np.stack(recorder.weights), np.stack(recorder.grads)
    assert first == STEPS_PER_EPOCH * start_epoch
    expected = authors_anchored(W, G, w_star.double().numpy(), first)
    T = table.height
    for k in LAGS:
        steps = sorted(expected["sim"][k])
        # Whole run: 51m + k below 175; from step 63: only the lags of the anchors 102 and 153.
        assert steps == [t for t in range(first, first + T) if t % 51 == k and t - k >= first], k
        rows = table.filter(pl.col(f"perp_corr_lag{k}").is_not_null())
        assert rows["step"].to_list() == steps, k
        assert table.filter(pl.col(f"dist_lag{k}").is_not_null())["step"].to_list() == steps, k
        # float64 products of float32 values, summed in another order: ~1e-13 of a cosine; the distance
        # is a sum of exact squared differences: ~1e-15 relative.
        np.testing.assert_allclose(
            rows[f"perp_corr_lag{k}"].to_numpy(),
            [expected["sim"][k][t] for t in steps],
            rtol=0,
            atol=MLP_TOL,
            err_msg=str(k),
        )
        np.testing.assert_allclose(
            rows[f"dist_lag{k}"].to_numpy(), [expected["dist"][k][t] for t in steps], rtol=1e-12, err_msg=str(k)
        )
    if start_epoch:
        assert min(min(v) for v in expected["sim"].values()) == 103


@pytest.mark.parametrize("threads", [1, 2])
def test_step_kernel_lag_products_match_numpy_on_a_large_vector(threads):
    """The parallel variant (large vectors, several threads) and the serial one of the fused step pass give
    the window-lag and orthogonal-lag products the plan row asks for, equal to numpy float64, and NaN for
    those it does not; they write G and w into the slots given, and do not depend on the thread count."""
    from pathgeo.engine import record
    from pathgeo.training.fused import PARALLEL_MIN_SIZE

    n = PARALLEL_MIN_SIZE + 12345
    rng = np.random.default_rng(1)
    w = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    w_prev = w.copy()
    w_star = np.stack([w + 1e-2 * rng.standard_normal(n), rng.standard_normal(n)]).astype(np.float32)
    ring_g = rng.standard_normal((6, n)).astype(np.float32)
    ring_w = rng.standard_normal((2, n)).astype(np.float32)
    ring_g_before, ring_w_before = ring_g.copy(), ring_w.copy()
    lay = record.Layout(window=5, refs=2, lags=(1, 2, 5))
    plan = np.full(record.plan_width(lay), -1, dtype=np.int64)
    lag_g, lag_w = record.G_SLOTS + lay.ring_lags, record.G_SLOTS + lay.ring_lags + 3
    plan[[record.PREV_VALID, record.G_WRITE, record.BASE_WRITE, record.W_WRITE]] = 0, 3, 5, 1
    plan[record.G_SLOTS : record.G_SLOTS + 4] = [0, -1, 2, 4]  # lag 1 (not valid here), lag 2 not taken
    plan[lag_g : lag_g + 3] = [-1, 1, 5]  # orthogonal lags 2 and 5 against ring slots (1, w 0) and (5, w 1)
    plan[lag_w : lag_w + 3] = [-1, 0, 1]
    out = np.full(lay.width, np.nan)
    cpu_kernels.step_pass(
        w, g, w_prev, w_star, ring_g, ring_w, plan, lay.ring_lags, lay.geometry, lay.lag_block, out, threads
    )

    np.testing.assert_array_equal(ring_g[3], g)  # this step's G, and G as the anchor base
    np.testing.assert_array_equal(ring_g[5], g)
    np.testing.assert_array_equal(ring_w[1], w)
    np.testing.assert_array_equal(ring_g[[0, 1, 2, 4]], ring_g_before[[0, 1, 2, 4]])
    np.testing.assert_array_equal(ring_w[0], ring_w_before[0])
    Wv, Gv = w.astype(np.float64), g.astype(np.float64)
    assert np.isnan(out[[lay.g_dot(1), lay.g_flips(1), lay.g_dot(2), lay.g_flips(2)]]).all()
    for k, slot in ((3, 2), (4, 4)):
        P = ring_g_before[slot].astype(np.float64)
        assert out[lay.g_flips(k)] == np.count_nonzero(Gv * P < 0)
        assert abs(out[lay.g_dot(k)] - Gv @ P) <= 1e-11 * np.linalg.norm(Gv) * np.linalg.norm(P)
    assert np.isnan(out[lay.lag(0) : lay.lag(1)]).all()
    for j, (gs, ws) in ((1, (1, 0)), (2, (5, 1))):
        Bg, Bw = ring_g_before[gs].astype(np.float64), ring_w_before[ws].astype(np.float64)
        at = lay.lag(j)
        pairs = [(at + record.LAG_GG, Gv, Bg), (at + record.LAG_DW, Wv - Bw, Wv - Bw)]
        for r in range(2):
            ref = w_star[r].astype(np.float64)
            own = at + record.LAG_REF + record.LAG_REF_WIDTH * r
            pairs += [(own, Gv, Bw - ref), (own + 1, Wv - ref, Bg), (own + 2, Wv - ref, Bw - ref)]
        for index, x, y in pairs:
            # Exact float64 products of float32 values, summed in another order: ≤ n·2^-53 ≈ 1e-10 of |x||y|
            # at worst, ~1e-13 in practice (random signs); 1e-11 sits between, far below a wrong operand.
            assert abs(out[index] - x @ y) <= 1e-11 * np.linalg.norm(x) * np.linalg.norm(y), index

    again = np.full(lay.width, np.nan)
    cpu_kernels.step_pass(
        w,
        g,
        w.copy(),
        w_star,
        ring_g_before.copy(),
        ring_w_before.copy(),
        plan,
        lay.ring_lags,
        lay.geometry,
        lay.lag_block,
        again,
        3 - threads,
    )
    np.testing.assert_array_equal(out, again)  # fixed blocks: the same bits whatever the thread count
