"""The probe: RSI, EB, gamma, the locally optimal LR and the actual update's alignment, at every step, and
the gradient correlations of "A mysterious optimization geometry" (adjacent and windowed correlation, sign
flips, pairwise h x h matrices) with the lagged correlation of the gradients' components orthogonal to
w − w*.

It is an observer of the training loop: after backward and before the optimizer step it reads the flat
parameter and gradient buffers and writes nothing the step uses, so training with and without it gives
bit-identical weights.

Cost. Every metric is a function of dot products, so each step only accumulates, in float64, the products
its measurements need into that step's record (pathgeo.engine.record): G·G and G_t·G_{t−1} every step; w, G,
s = w_{t−1} − w_t and d_r = w − w*_r against each other with reference points; G_t·G_{t−k} for k < h only
inside a matrix window; the orthogonal lags only at the steps their protocol measures (with the authors'
anchored protocol, six steps in 51). The metrics are computed once per epoch, on the host. On the CPU each
step is one fused numba pass (pathgeo.engine.cpu_kernels) that reads every vector once; on a GPU it is one Triton
launch, plus one per orthogonal lag measured (pathgeo.engine.gpu_kernels), and nothing is synchronised with
the host until the epoch ends. Either way the products and sums are float64 arithmetic on the exact float32
values.

Memory, besides a copy of each w*: w_prev, h rolling gradients, and for the anchored lags one base G and w
(h + 3 model-sized vectors, 8 for h = 5); the every_step protocol keeps the last 51 gradients and weights.

A replay segment starts at a checkpoint, which holds no earlier gradients: a quantity that needs step
t − k is null for the first k steps of each segment, an anchored lag is null until the segment's first
anchor, and a matrix window must lie inside one segment.

A training loop of your own is measured through pathgeo.measure (pathgeo.measurements.own_loop), which builds the
probe; to drive one by hand (docs/measure.md):

    flat = FlatParameters.of(model)               # the trainable parameters become views of one buffer
    probe = Probe(flat, {"final": w_star}, weight_decay=wd)
    for epoch ...:
        for batch ...:
            optimizer.zero_grad()
            loss = ...; loss.backward()
            probe.after_backward(loss, optimizer.param_groups[0]["lr"])
            optimizer.step()
        probe.end_epoch(epoch)
    table = probe.finish()                        # a polars DataFrame, one row per step and reference
    matrices = probe.correlation_matrices()       # the h x h matrices, one row per entry

A reference point (w_star) is a module, a state_dict, the trainable parameters' tensors in order, or one
flat tensor (FlatParameters.flatten). Gradients zeroed in place stay views of the flat buffer and cost
nothing; gradients set to None (optimizer.zero_grad()'s default) are copied into it at each step.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from pathgeo.columns import LAG_PROTOCOLS, LAGS, METRICS
from pathgeo.engine.record import (
    GEO_GW,
    GEO_SS,
    GEO_WW,
    LAG_DW,
    LAG_GG,
    LAG_REF,
    LAG_REF_WIDTH,
    Layout,
    active_lags,
    final_plan,
    plan_rows,
    plan_width,
    rings_for,
    vectors_moved,
)
from pathgeo.training.flat import FlatParameters, Point

if TYPE_CHECKING:  # polars is imported where the tables are built: the GPU device check runs without it
    import polars as pl

log = logging.getLogger("pathgeo")

BACKENDS = ("fused", "triton")
# The first capacity of a probe told no steps_per_epoch; it doubles whenever an epoch outgrows it.
INITIAL_CAPACITY = 128


class Probe:
    def __init__(
        self,
        flat: FlatParameters,
        references: Mapping[str, Point],
        weight_decay: float = 0.0,
        steps_per_epoch: int | None = None,
        start_step: int = 0,
        start_epoch: int = 0,
        backend: str = "auto",
        window: int = 5,
        lags: tuple[int, ...] = LAGS,
        lagged: str = "anchored",
        matrix_epochs: Collection[int] | None = None,
        block: int | None = None,
        programs: int | None = None,
    ):
        """`references` maps a name (the table's `reference` column) to a reference point w*: a module, a
        state_dict, the trainable parameters' tensors in order or one flat tensor (FlatParameters.flatten).
        `weight_decay` is the λ of the gradient G + λw the optimizer is fed, for the *_wd columns (0 under
        decoupled decay). `steps_per_epoch` is the most steps an epoch may take (None: as many as come; the
        probe then grows its records as they do). `window` is h of the mean gradient correlation and of the
        matrices; `lagged` the protocol of the orthogonal components' correlation (pathgeo.engine.record: anchored,
        every_step or off) and `lags` its lags (a subset of columns.LAGS); `matrix_epochs` the epochs whose
        first step starts a matrix window (None: every epoch). Without references the probe takes only what
        needs no w* (G·G and the correlations of G), and `lagged` must be off. `block` and `programs` set the
        Triton grid (tests use small ones)."""
        if not isinstance(references, Mapping):
            raise TypeError(
                f"references maps a name to each reference point, e.g. {{'final': w_star}}; got a "
                f"{type(references).__name__}"
            )
        if flat.names is not None and set(flat.names) <= set(references):
            raise TypeError(
                "references maps a name to each reference point, and this looks like one state_dict: pass "
                "{'final': state_dict}"
            )
        if window < 2:
            raise ValueError(f"the correlation window must hold at least 2 steps, not {window}")
        if not set(lags) <= set(LAGS):
            raise ValueError(f"lags {sorted(set(lags) - set(LAGS))} are not among the measured ones {LAGS}")
        if lagged not in LAG_PROTOCOLS:
            raise ValueError(f"lagged must be one of {LAG_PROTOCOLS}, not {lagged!r}")
        if not references and lagged != "off":
            raise ValueError("the orthogonal lags need a reference point w*: pass references, or lagged='off'")
        self.flat = flat
        self.names = list(references)
        device, dtype = flat.buffer.device, flat.buffer.dtype
        self.w_star = (
            torch.stack([flat.flatten(references[n]) for n in self.names])
            if references
            else torch.zeros(0, flat.numel, dtype=dtype, device=device)
        )
        if backend == "auto":
            backend = "fused" if device.type == "cpu" else "triton"
        if backend not in BACKENDS or (backend == "fused" and device.type != "cpu"):
            raise ValueError(f"probe backend '{backend}' is not available on {device}; choose from {BACKENDS}")
        self.backend = backend
        self.weight_decay = weight_decay
        self.layout = Layout(window, len(self.names), tuple(sorted(set(lags))) if lagged != "off" else ())
        self.rings = rings_for(self.layout, lagged)
        self.window = window
        self.matrix_epochs = None if matrix_epochs is None else frozenset(matrix_epochs)
        self.ring_g = torch.zeros(self.rings.g_depth, flat.numel, dtype=dtype, device=device)
        self.ring_w = torch.zeros(self.rings.w_depth, flat.numel, dtype=dtype, device=device)
        self.w_prev = flat.weights.detach().clone() if self.names else torch.zeros(0, dtype=dtype, device=device)
        self.first_step = start_step
        self.grows = steps_per_epoch is None
        self._grid = (block, programs)
        self._window_starts: list[int] = []
        self._lrs: list[float] = []
        self._wds: list[float] = []
        self._n = 0
        self.step = start_step
        self.epoch = start_epoch
        self.vectors_moved = 0  # model-sized vectors read or written so far, at the floor (layout.vectors_moved)
        self._host_records: list[np.ndarray] = []
        self._host_losses: list[np.ndarray] = []
        self._lr_log: list[float] = []
        self._wd_log: list[float] = []
        self._epochs: list[int] = []
        self.measured: Measured | None = None
        self._allocate(INITIAL_CAPACITY if steps_per_epoch is None else steps_per_epoch)
        self._start_windows()
        self._plan_steps()

    def _allocate(self, capacity: int) -> None:
        """Records, losses and plan for epochs of up to `capacity` steps, the steps recorded so far kept, and
        everything a step passes bound to them."""
        device, n = self.flat.buffer.device, self._n
        record = torch.full((capacity + 1, self.layout.width), np.nan, dtype=torch.float64, device=device)
        losses = torch.zeros(capacity, dtype=torch.float64, device=device)
        if n:
            record[:n], losses[:n] = self._record[:n], self._losses[:n]
        self.capacity = capacity
        # One row more than an epoch's steps: the last holds the extra pass at the end weights (close()).
        self._record, self._losses = record, losses
        self._plan = np.zeros((capacity + 1, plan_width(self.layout)), dtype=np.int64)
        self._plan[-1] = final_plan(self.layout, self.rings)
        if self.backend == "fused":
            # Imported here, not with the module: numba's import is 0.4 s of every job that builds no fused
            # probe (a reference that measures nothing, a replay on a GPU).
            from pathgeo.engine import cpu_kernels

            # Everything a step passes is bound here, once: on a small model the pass itself takes tens of
            # microseconds, and so would choosing a kernel, slicing rows and setting tensor items each step.
            self._kernel = cpu_kernels.step_pass.variant(self.flat.numel, torch.get_num_threads())
            self._arrays = (
                self.flat.weights.numpy(),
                self.flat.grads.numpy(),
                self.w_prev.numpy(),
                self.w_star.numpy(),
                self.ring_g.numpy(),
                self.ring_w.numpy(),
            )
            self._sizes = (self.layout.ring_lags, self.layout.geometry, self.layout.lag_block)
            self._plan_rows, self._record_rows = list(self._plan), list(self._record.numpy())
            self._losses_np = self._losses.numpy()
        else:
            self._triton = self._bind_triton(*self._grid)

    def _bind_triton(self, block: int | None, programs: int | None):
        from pathgeo.engine import gpu_kernels

        if self.flat.buffer.device.type == "cpu" and not gpu_kernels.interpreting():
            raise ValueError(
                "probe backend 'triton' runs on the CPU only under Triton's interpreter (TRITON_INTERPRET=1)"
            )
        arrays = {
            "w": self.flat.weights,
            "g": self.flat.grads,
            "w_prev": self.w_prev if self.names else self.flat.weights,
            "w_star": self.w_star,
            "ring_g": self.ring_g,
            "ring_w": self.ring_w if len(self.ring_w) else self.ring_g,
            "plan": torch.from_numpy(self._plan).to(self.flat.buffer.device),
        }
        self._plan_device = arrays["plan"]
        lag_block = self.layout.lag_block
        # Views made once, so that a step issues no slicing ops.
        self._main_rows = [row[:lag_block] for row in self._record]
        self._loss_rows = list(self._losses)
        return gpu_kernels.TritonPass(
            arrays, self.layout, self._plan.shape[1], block or gpu_kernels.BLOCK, programs or gpu_kernels.PROGRAMS
        )

    def _start_windows(self) -> None:
        """The matrix windows open at the epoch that starts now, at step `self.step`."""
        if self.matrix_epochs is None or self.epoch in self.matrix_epochs:
            self._window_starts.append(self.step)
        # Only windows still open can need an earlier gradient.
        self._window_starts = [s for s in self._window_starts if s > self.step - self.window]

    def _plan_steps(self) -> None:
        """The plan of the current epoch's steps; on a GPU it is copied to the device here, between epochs (or
        when an epoch outgrows the records), never on a step that fits."""
        steps = np.arange(self.step - self._n, self.step - self._n + self.capacity)
        self._plan[:-1] = plan_rows(self.layout, self.rings, steps, self.first_step, self._window_starts)
        if self.backend == "triton":
            self._plan_device.copy_(torch.from_numpy(self._plan))

    def _refuse_if_finished(self, call: str) -> None:
        if self.measured is not None:
            raise RuntimeError(f"{call} after finish(): this probe has ended; measure another run with a new Probe")

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float | None = None) -> None:
        """`weight_decay` is this step's (schedules may change it); None means the probe's constant one."""
        self._refuse_if_finished("after_backward()")
        n = self._n
        if n == self.capacity:
            if not self.grows:
                raise RuntimeError(f"more than steps_per_epoch={self.capacity} steps in one epoch; call end_epoch()")
            self._allocate(2 * self.capacity)
            self._plan_steps()
        self.flat.gather_grads()
        self._pass(n)
        if self.backend == "fused":
            self._losses_np[n] = loss.item()
        else:
            with torch.no_grad():
                self._loss_rows[n].copy_(loss)
        self._lrs.append(lr)
        self._wds.append(self.weight_decay if weight_decay is None else weight_decay)
        self._n += 1
        self.step += 1

    def _pass(self, n: int) -> None:
        """Plan row n into record row n, on the probe's backend."""
        if self.backend == "fused":
            self._kernel(*self._arrays, self._plan_rows[n], *self._sizes, self._record_rows[n])
            return
        width = self.layout.lag_width
        with torch.no_grad():
            self._triton.step(
                n,
                active_lags(self.layout, self._plan[n]),
                self._main_rows[n],
                lambda j: self._record[n, self.layout.lag(j) : self.layout.lag(j) + width],
            )

    def end_epoch(self, epoch: int | None = None) -> None:
        """Move the epoch's records to the host (the one synchronisation), log a summary, plan the next."""
        self._refuse_if_finished("end_epoch()")
        # Gradients are gathered at each step; the weights must still be the buffer's.
        self.flat.check_views(grads=False)
        epoch = self.epoch if epoch is None else epoch
        records = self._record[: self._n].cpu().numpy().copy()
        self._host_records.append(records)
        self._host_losses.append(self._losses[: self._n].cpu().numpy().copy())
        self._lr_log += self._lrs
        self._wd_log += self._wds
        self._epochs += [epoch] * self._n
        self.vectors_moved += int(vectors_moved(self.layout, self._plan[: self._n]).sum())
        if self._n and self.names:
            at = self.layout.ref(0)
            with np.errstate(divide="ignore", invalid="ignore"):
                gamma = geometry(records[:, at], records[:, 0], records[:, at + 1])["gamma"]
            finite = gamma[np.isfinite(gamma)]
            log.info(
                "epoch %d: %d steps, mean gamma vs %s = %.4g",
                epoch,
                self._n,
                self.names[0],
                finite.mean() if finite.size else np.nan,
            )
        self._record[: self._n].fill_(np.nan)
        self._lrs, self._wds, self._n = [], [], 0
        self.epoch = epoch + 1
        self._start_windows()
        self._plan_steps()

    def finish(self) -> pl.DataFrame:
        """The per-step table (after close()); calling it again gives the same table."""
        return step_table(self.close(), self.names)

    def close(self) -> Measured:
        """End the probe: the last epoch to the host, one more pass at the end weights (for the last step's
        update); what it measured, without building a table. Only the first call measures: the end pass
        moves w_prev to the end weights, so a second one would see an update of zero."""
        if self.measured is not None:
            return self.measured
        if self._n:
            self.end_epoch()
        last = self.capacity
        self._pass(last)
        width = self.layout.width
        self.measured = Measured(
            records=np.concatenate(self._host_records) if self._host_records else np.zeros((0, width)),
            final=self._record[last].cpu().numpy().copy(),
            losses=np.concatenate(self._host_losses) if self._host_losses else np.zeros(0),
            lrs=np.asarray(self._lr_log, dtype=np.float64),
            weight_decays=np.asarray(self._wd_log, dtype=np.float64),
            epochs=np.asarray(self._epochs, dtype=np.int64),
            first_step=self.first_step,
            layout=self.layout,
            numel=self.flat.numel,
        )
        return self.measured

    def correlation_matrices(self) -> pl.DataFrame:
        """After finish(): the h x h gradient correlation matrices of the windows that start at the first
        step of each chosen epoch and end inside this segment, one row per entry."""
        if self.measured is None:
            raise RuntimeError(
                "correlation_matrices() reads the finished measurement: call finish() (or close()) first"
            )
        return matrix_table(self.measured, self.matrix_epochs)


@dataclass(frozen=True)
class Measured:
    """What a probe accumulated over a segment: one record per step (pathgeo.engine.record; NaN where a product
    was not taken) and the extra pass at the end weights, with the steps' losses, LRs, weight decays and
    epochs; the segment's first step and the model's number of parameters."""

    records: np.ndarray
    final: np.ndarray
    losses: np.ndarray
    lrs: np.ndarray
    weight_decays: np.ndarray
    epochs: np.ndarray
    first_step: int
    layout: Layout
    numel: int

    @property
    def steps(self) -> np.ndarray:
        return np.arange(self.first_step, self.first_step + len(self.records), dtype=np.int64)


def step_metrics(measured: Measured, r: int) -> dict[str, np.ndarray]:
    """RSI, EB, gamma, the locally optimal LR, their weight-decay variants and the update's alignment for
    reference r at every step."""
    rec, layout = measured.records, measured.layout
    geo, at = layout.geometry, layout.ref(r)
    gg = rec[:, 0]
    gw, ww = rec[:, geo + GEO_GW], rec[:, geo + GEO_WW]
    gd, dd, wd_ = rec[:, at], rec[:, at + 1], rec[:, at + 2]
    lam = measured.weight_decays
    # The step actually taken at t is s = w_t − w_{t+1}; the next record (or the end pass) holds s·s and
    # s·d_{t+1}, and d_t = d_{t+1} + s.
    following = np.vstack([rec[1:], measured.final[None]])
    ss = following[:, geo + GEO_SS]
    sd = following[:, at + 3] + ss
    g_wd_d = gd + lam * wd_
    g_wd_sq = gg + 2 * lam * gw + lam**2 * ww
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = geometry(gd, gg, dd)
        with_wd = geometry(g_wd_d, g_wd_sq, dd)
        return {
            **plain,
            "dist": np.sqrt(dd),
            **{f"{name}_wd": value for name, value in with_wd.items()},
            "upd_norm": np.sqrt(ss),
            "upd_rsi": sd / dd,
            "upd_gamma": sd / np.sqrt(ss * dd),
        }


def geometry(gd: np.ndarray, gg: np.ndarray, dd: np.ndarray) -> dict[str, np.ndarray]:
    """RSI, EB, gamma, the locally optimal LR and ||G|| from G·d, G·G and d·d."""
    return {
        "rsi": gd / dd,
        "eb": np.sqrt(gg / dd),
        "gamma": gd / np.sqrt(gg * dd),
        "lolr": gd / gg,
        "grad_norm": np.sqrt(gg),
    }


def adjacent_metrics(measured: Measured) -> dict[str, np.ndarray]:
    """grad_corr, sign_flip and mean_grad_corr at every step; NaN where a step before the segment is needed."""
    rec, layout = measured.records, measured.layout
    n = len(rec)
    gg = rec[:, 0]
    adjacent = np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        adjacent[1:] = rec[1:, layout.g_dot(1)] / np.sqrt(gg[1:] * gg[:-1])
        windowed = np.full(n, np.nan)
        pairs = layout.window - 1
        if n > pairs:
            # The mean of the h − 1 adjacent correlations ending at t: eq. (3)'s mu at t − h + 1, known at t.
            windowed[pairs:] = np.lib.stride_tricks.sliding_window_view(adjacent[1:], pairs).mean(axis=1)
    flips = rec[:, layout.g_flips(1)] / measured.numel
    return {"grad_corr": adjacent, "mean_grad_corr": windowed, "sign_flip": flips}


def lag_metrics(measured: Measured, r: int) -> dict[str, np.ndarray]:
    """perp_corr_lag{k} (cos of the components of G_b and G_t orthogonal to d_b and d_t, b = t − k, against
    reference r) and dist_lag{k} = ‖w_t − w_b‖ at the steps where lag k was measured; NaN elsewhere, and for
    perp_corr where d = 0 (at a reference that lies on the replayed path G⊥ is undefined)."""
    rec, layout = measured.records, measured.layout
    n = len(rec)
    at = layout.ref(r)
    gg, gd, dd = rec[:, 0], rec[:, at], rec[:, at + 1]
    out = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        # G⊥ = G − a d with a = G·d / d·d; u_t·u_b from the products of (G, d) at t and at b.
        a = gd / dd
        perp_sq = gg - gd * a
        for k in LAGS:
            corr, dist = np.full(n, np.nan), np.full(n, np.nan)
            if k in layout.lags and n > k:
                block = layout.lag(layout.lags.index(k))
                rows = rec[k:, block : block + layout.lag_width]
                own = LAG_REF + LAG_REF_WIDTH * r
                p_gg, p_gd, p_dg, p_dd = rows[:, LAG_GG], rows[:, own], rows[:, own + 1], rows[:, own + 2]
                a_now, a_then = a[k:], a[:-k]
                dot = p_gg - a_then * p_gd - a_now * p_dg + a_now * a_then * p_dd
                corr[k:] = dot / np.sqrt(perp_sq[k:] * perp_sq[:-k])
                dist[k:] = np.sqrt(rows[:, LAG_DW])
            out[f"perp_corr_lag{k}"] = corr
            out[f"dist_lag{k}"] = dist
    return out


def matrix_table(measured: Measured, wanted: frozenset[int] | None) -> pl.DataFrame:
    """Long table of h x h matrices: cos(G_{s+i}, G_{s+j}) and the fraction of entries of opposite sign,
    for windows starting at step s, the first step of each wanted epoch, that end inside the segment."""
    import polars as pl

    rec, layout, epochs = measured.records, measured.layout, measured.epochs
    h, n = layout.window, len(epochs)
    gg = rec[:, 0]
    rows = []
    for epoch in dict.fromkeys(epochs.tolist()):
        if wanted is not None and epoch not in wanted:
            continue
        s = int(np.argmax(epochs == epoch))
        if s + h > n:
            continue
        for i in range(h):
            for j in range(h):
                if i == j:
                    value, flips = 1.0, 0.0
                else:
                    late, k = s + max(i, j), abs(i - j)
                    value = rec[late, layout.g_dot(k)] / np.sqrt(gg[s + i] * gg[s + j])
                    flips = rec[late, layout.g_flips(k)] / measured.numel
                rows.append((epoch, measured.first_step + s, i, j, float(value), float(flips)))
    return pl.DataFrame(
        rows,
        schema={
            "epoch": pl.Int64,
            "start_step": pl.Int64,
            "i": pl.Int64,
            "j": pl.Int64,
            "corr": pl.Float64,
            "sign_flip": pl.Float64,
        },
        orient="row",
    )


def step_table(measured: Measured, names: list[str]) -> pl.DataFrame:
    """One row per step and reference, with every column of columns.METRICS; without references one row
    per step, and the quantities that need w* null. A correlation that is not available at a step is
    null, not NaN, so that per-epoch means skip it; the geometry keeps NaN, which only a diverging run
    produces. The *_wd columns are null at steps whose weight decay is NaN: the optimizer's parameter groups
    feed their gradients different λ, so G + λw is not one vector of the kind the probe measures."""
    import polars as pl

    n = len(measured.records)
    with np.errstate(divide="ignore", invalid="ignore"):
        gradient = {"grad_norm": np.sqrt(measured.records[:, 0])}
    adjacent = adjacent_metrics(measured)
    undefined_decay = np.flatnonzero(np.isnan(measured.weight_decays))

    def frame(geometry: dict[str, np.ndarray], correlations: dict[str, np.ndarray], leading: dict) -> pl.DataFrame:
        columns = {m: pl.Series(m, [None] * n, dtype=pl.Float64) for m in METRICS}
        columns.update({m: pl.Series(m, v, dtype=pl.Float64) for m, v in geometry.items()})
        if undefined_decay.size:
            columns.update({m: columns[m].scatter(undefined_decay, None) for m in geometry if m.endswith("_wd")})
        columns.update({m: pl.Series(m, v, dtype=pl.Float64).fill_nan(None) for m, v in correlations.items()})
        columns.update(lr=pl.Series("lr", measured.lrs, dtype=pl.Float64), loss=pl.Series("loss", measured.losses))
        return pl.DataFrame({**leading, "epoch": measured.epochs, "step": measured.steps, **columns})

    if not names:
        return frame(gradient, adjacent, {})
    return pl.concat(
        [
            frame(step_metrics(measured, r), {**adjacent, **lag_metrics(measured, r)}, {"reference": [name] * n})
            for r, name in enumerate(names)
        ]
    )
