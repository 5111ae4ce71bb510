"""The probe: RSI, EB, gamma, the locally optimal LR and the actual update's alignment, at every step, and
the gradient correlations of "A mysterious optimization geometry" (adjacent and windowed correlation, sign
flips, pairwise h x h matrices) with the lagged correlation of the gradients' components orthogonal to
w − w*.

It is an observer of the training loop: after backward and before the optimizer step it reads the flat
parameter and gradient buffers and writes nothing the step uses, so training with and without it gives
bit-identical weights.

Cost. Every metric is a function of the Gram matrix of the rows
    w, G, s = w_prev − w (the previous step's update, negated), d_r = w − w*_r (one row per reference),
so each step only accumulates those dot products, in float64, into a device buffer; the metrics are
computed once per epoch, on the host. The correlations need earlier steps: a ring of the last D gradients
and weights (D = the largest lag, 50 by default; `lags=()` keeps only h − 1) and, per step, the products
of (G_t, d_t) with each (G_{t−k}, d_{t−k}), again accumulated on the device. On the CPU a fused numba pass
(pathgeo.kernels) reads each vector once for the Gram matrix and once for the correlations. On a GPU, per
chunk of the flat buffers, a few kernels fill a float64 workspace and matrix products add the chunk's
share; nothing is synchronised with the host until the epoch ends. Either way the products and sums are
float64 arithmetic on the exact float32 values.

A replay segment starts at a checkpoint, which holds no earlier gradients: a quantity that needs step
t − k is null for the first k steps of each segment, and a matrix window must lie inside one segment.

Using it in an existing loop:

    flat = FlatParameters([p for p in model.parameters() if p.requires_grad])
    probe = Probe(flat, {"final": w_star}, weight_decay=wd, steps_per_epoch=len(loader))
    for epoch ...:
        for batch ...:
            flat.zero_grad()                      # not zero_grad(set_to_none=True): the views must stay
            loss = ...; loss.backward()
            probe.after_backward(loss, optimizer.param_groups[0]["lr"])
            optimizer.step()
        probe.end_epoch(epoch)
    table = probe.finish()                        # a polars DataFrame, one row per step and reference
    matrices = probe.correlation_matrices()       # the h x h matrices, one row per entry
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from pathgeo import kernels
from pathgeo.columns import LAGS, METRICS
from pathgeo.flat import FlatParameters

log = logging.getLogger("pathgeo")

W, G, S, D0 = 0, 1, 2, 3

class Probe:
    def __init__(
        self,
        flat: FlatParameters,
        references: dict[str, torch.Tensor],
        weight_decay: float = 0.0,
        steps_per_epoch: int = 1,
        start_step: int = 0,
        start_epoch: int = 0,
        chunk_size: int = 1 << 17,
        backend: str = "auto",
        window: int = 5,
        lags: tuple[int, ...] = LAGS,
        matrix_epochs: Collection[int] | None = None,
    ):
        """`window` is h of the mean gradient correlation and of the matrices, `lags` those of the orthogonal
        components' correlation (a subset of columns.LAGS), `matrix_epochs` the epochs whose first step
        starts a matrix window (None: every epoch)."""
        if not references:
            raise ValueError("the probe needs at least one reference point")
        if window < 2:
            raise ValueError(f"the correlation window must hold at least 2 steps, not {window}")
        if not set(lags) <= set(LAGS):
            raise ValueError(f"lags {sorted(set(lags) - set(LAGS))} are not among the measured ones {LAGS}")
        self.flat = flat
        self.names = list(references)
        device, dtype = flat.buffer.device, flat.buffer.dtype
        self.w_star = torch.stack([references[n].to(device=device, dtype=dtype).reshape(-1) for n in self.names])
        if self.w_star.shape[1] != flat.numel:
            raise ValueError(f"reference has {self.w_star.shape[1]} parameters, the model {flat.numel}")
        self.weight_decay = weight_decay
        self.rows = D0 + len(self.names)
        if backend == "auto":
            backend = "fused" if device.type == "cpu" else "torch"
        if backend not in ("fused", "torch") or (backend == "fused" and device.type != "cpu"):
            raise ValueError(f"probe backend '{backend}' is not available on {device}")
        self.backend = backend
        self.chunk_size = min(chunk_size, flat.numel)
        self.w_prev = flat.weights.detach().clone()
        self.window = window
        self.lags = tuple(sorted(set(lags)))
        self.distances = tuple(sorted({*range(1, window), *self.lags}))
        self._distances = np.array(self.distances)
        self._perp = np.array([k in self.lags for k in self.distances])
        self.matrix_epochs = None if matrix_epochs is None else frozenset(matrix_epochs)
        depth = self.distances[-1]
        self.ring_w = torch.zeros(depth, flat.numel, dtype=dtype, device=device)
        self.ring_g = torch.zeros(depth, flat.numel, dtype=dtype, device=device)
        self.first_step = start_step
        width = 2 + 3 * len(self.names)
        if backend == "torch":
            pair_rows = 1 + len(self.names)
            self.workspace = torch.empty(self.rows, self.chunk_size, dtype=torch.float64, device=device)
            self._now = torch.empty(pair_rows, self.chunk_size, dtype=torch.float64, device=device)
            self._then = torch.empty_like(self._now)
            self._pairs = torch.zeros(len(self.distances), pair_rows, pair_rows, dtype=torch.float64, device=device)
            self._flips = torch.zeros(len(self.distances), dtype=torch.float64, device=device)
        else:
            self._arrays = (flat.weights.numpy(), flat.grads.numpy(), self.w_prev.numpy(), self.w_star.numpy())
            self._rings = (self.ring_w.numpy(), self.ring_g.numpy())
        self.capacity = steps_per_epoch
        self._grams = torch.zeros(steps_per_epoch, self.rows, self.rows, dtype=torch.float64, device=device)
        self._cross = torch.zeros(steps_per_epoch, len(self.distances), width, dtype=torch.float64, device=device)
        self._losses = torch.zeros(steps_per_epoch, dtype=torch.float64, device=device)
        self._lrs: list[float] = []
        self._wds: list[float] = []
        self._n = 0
        self.step = start_step
        self.epoch = start_epoch
        self._host_grams: list[np.ndarray] = []
        self._host_cross: list[np.ndarray] = []
        self._host_losses: list[np.ndarray] = []
        self._lr_log: list[float] = []
        self._wd_log: list[float] = []
        self._epochs: list[int] = []

    def _gram(self, out: torch.Tensor) -> None:
        if self.backend == "fused":
            kernels.gram_pass(*self._arrays, out.numpy(), torch.get_num_threads())
            return
        buffer, ws = self.flat.buffer, self.workspace
        n = self.flat.numel
        for start in range(0, n, self.chunk_size):
            end = min(start + self.chunk_size, n)
            y = ws[:, : end - start]
            y[W : G + 1].copy_(buffer[:, start:end])
            torch.sub(self.w_prev[start:end], y[W], out=y[S])
            torch.sub(y[W : W + 1], self.w_star[:, start:end], out=y[D0:])
            if start == 0:
                torch.mm(y, y.T, out=out)
            else:
                out.addmm_(y, y.T)
        self.w_prev.copy_(buffer[0])

    def _correlate(self, out: torch.Tensor) -> None:
        """Fill `out` (lags x (2 + 3R)) with the products of this step's (G, d) and earlier ones (see
        kernels._correlation_pass for the layout), then store this step's w and G in the ring."""
        depth = len(self.ring_w)
        slots = (self.step - self._distances) % depth
        slots[self._distances > self.step - self.first_step] = -1
        write = self.step % depth
        if self.backend == "fused":
            kernels.correlation_pass(
                *self._arrays[:2], *self._rings, slots, self._perp, write, self._arrays[3], out.numpy(),
                torch.get_num_threads(),
            )
            return
        refs = len(self.names)
        buffer, now, then = self.flat.buffer, self._now, self._then
        self._pairs.zero_()
        self._flips.zero_()
        for start in range(0, self.flat.numel, self.chunk_size):
            end = min(start + self.chunk_size, self.flat.numel)
            a, b = now[:, : end - start], then[:, : end - start]
            # Widen first, then subtract: d = w − w* in float64, as the fused kernel and the Gram form it.
            a[0].copy_(buffer[1, start:end])
            a[1:].copy_(buffer[0:1, start:end].expand(refs, -1)).sub_(self.w_star[:, start:end])
            for j, slot in enumerate(slots):
                if slot < 0:
                    continue
                b[0].copy_(self.ring_g[slot, start:end])
                self._flips[j] += (a[0] * b[0] < 0).sum()
                if not self._perp[j]:
                    self._pairs[j, 0, 0] += a[0] @ b[0]
                    continue
                b[1:].copy_(self.ring_w[slot : slot + 1, start:end].expand(refs, -1)).sub_(self.w_star[:, start:end])
                self._pairs[j].addmm_(a, b.T)
        out[:, 0] = self._pairs[:, 0, 0]
        out[:, 1 : 1 + 3 * refs : 3] = self._pairs[:, 0, 1:]
        out[:, 2 : 2 + 3 * refs : 3] = self._pairs[:, 1:, 0]
        out[:, 3 : 3 + 3 * refs : 3] = torch.diagonal(self._pairs[:, 1:, 1:], dim1=1, dim2=2)
        out[:, -1] = self._flips
        # After the reads: the lag that reaches furthest back lives in the slot written now.
        self.ring_w[write].copy_(buffer[0])
        self.ring_g[write].copy_(buffer[1])

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float | None = None) -> None:
        """`weight_decay` is this step's (schedules may change it); None means the probe's constant one."""
        if self._n == self.capacity:
            raise RuntimeError(f"more than steps_per_epoch={self.capacity} steps in one epoch; call end_epoch()")
        self._gram(self._grams[self._n])
        self._correlate(self._cross[self._n])
        self._losses[self._n].copy_(loss.detach())
        self._lrs.append(lr)
        self._wds.append(self.weight_decay if weight_decay is None else weight_decay)
        self._n += 1
        self.step += 1

    def end_epoch(self, epoch: int | None = None) -> None:
        """Move the epoch's Gram matrices to the host (the one synchronisation) and log a summary."""
        self.flat.check_views()
        epoch = self.epoch if epoch is None else epoch
        grams = self._grams[: self._n].cpu().numpy().copy()
        self._host_grams.append(grams)
        self._host_cross.append(self._cross[: self._n].cpu().numpy().copy())
        self._host_losses.append(self._losses[: self._n].cpu().numpy().copy())
        self._lr_log += self._lrs
        self._wd_log += self._wds
        self._epochs += [epoch] * self._n
        if self._n:
            with np.errstate(divide="ignore", invalid="ignore"):
                gamma = _geometry(grams[:, G, D0], grams[:, G, G], grams[:, D0, D0])["gamma"]
            log.info("epoch %d: %d steps, mean gamma vs %s = %.4g", epoch, self._n, self.names[0], np.nanmean(gamma))
        self._lrs, self._wds, self._n = [], [], 0
        self.epoch = epoch + 1

    def finish(self) -> pl.DataFrame:
        """One more Gram at the end weights (for the last step's update), then the per-step table."""
        if self._n:
            self.end_epoch()
        final = torch.zeros(self.rows, self.rows, dtype=torch.float64, device=self.flat.buffer.device)
        self._gram(final)
        self._all_grams = np.concatenate([*self._host_grams, final.cpu().numpy()[None]])
        width = 2 + 3 * len(self.names)
        cross = np.concatenate(self._host_cross) if self._host_cross else np.zeros((0, len(self.distances), width))
        self._correlations = Correlations(cross, self.distances, self.window, self.lags, self.flat.numel)
        return step_table(
            self._all_grams,
            np.concatenate(self._host_losses) if self._host_losses else np.zeros(0),
            np.asarray(self._lr_log, dtype=np.float64),
            np.asarray(self._epochs, dtype=np.int64),
            self.step,
            self.names,
            np.asarray(self._wd_log, dtype=np.float64),
            self._correlations,
        )

    def correlation_matrices(self) -> pl.DataFrame:
        """After finish(): the h x h gradient correlation matrices of the windows that start at the first
        step of each chosen epoch and end inside this segment, one row per entry."""
        return matrix_table(
            self._all_grams,
            self._correlations,
            np.asarray(self._epochs, dtype=np.int64),
            self.first_step,
            self.matrix_epochs,
        )


def step_metrics(grams: np.ndarray, d: int, weight_decay: float | np.ndarray) -> dict[str, np.ndarray]:
    """Metrics for steps 0..N−1 from N+1 Gram matrices (the last one taken at the weights after step N−1);
    `weight_decay` is one value or one per step."""
    now, nxt = grams[:-1], grams[1:]
    gg, gd, dd = now[:, G, G], now[:, G, d], now[:, d, d]
    gw, wd_, ww = now[:, W, G], now[:, W, d], now[:, W, W]
    lam = weight_decay
    # The step actually taken at t is s = w_t − w_{t+1}; the Gram at t+1 holds s·s and s·d_{t+1}, and
    # d_t = d_{t+1} + s.
    ss = nxt[:, S, S]
    sd = nxt[:, S, d] + ss
    g_wd_d = gd + lam * wd_
    g_wd_sq = gg + 2 * lam * gw + lam**2 * ww
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = _geometry(gd, gg, dd)
        with_wd = _geometry(g_wd_d, g_wd_sq, dd)
        return {
            **plain,
            "dist": np.sqrt(dd),
            **{f"{name}_wd": value for name, value in with_wd.items()},
            "upd_norm": np.sqrt(ss),
            "upd_rsi": sd / dd,
            "upd_gamma": sd / np.sqrt(ss * dd),
        }


def _geometry(gd: np.ndarray, gg: np.ndarray, dd: np.ndarray) -> dict[str, np.ndarray]:
    """RSI, EB, gamma, the locally optimal LR and ||G|| from G·d, G·G and d·d."""
    return {
        "rsi": gd / dd,
        "eb": np.sqrt(gg / dd),
        "gamma": gd / np.sqrt(gg * dd),
        "lolr": gd / gg,
        "grad_norm": np.sqrt(gg),
    }


@dataclass(frozen=True)
class Correlations:
    """What the probe accumulated for the correlations: `cross[t, j]` holds the products of step t's
    (G, d) with those of step t − distances[j] (zeros where that step was before the segment), in the
    layout of kernels._correlation_pass; `numel` is the number of parameters."""

    cross: np.ndarray
    distances: tuple[int, ...]
    window: int
    lags: tuple[int, ...]
    numel: int

    def pair(self, t: int | np.ndarray, k: int) -> np.ndarray:
        return self.cross[t, self.distances.index(k)]


def correlation_metrics(grams: np.ndarray, corr: Correlations, r: int) -> dict[str, np.ndarray]:
    """Per-step gradient correlations for reference r from N+1 Gram matrices and N steps of products; NaN
    where a quantity needs a step before the segment, and for the orthogonal components where d = 0 (at a
    reference that lies on the replayed path G⊥ is undefined)."""
    n = len(grams) - 1
    gg = grams[:n, G, G]
    gd, dd = grams[:n, G, D0 + r], grams[:n, D0 + r, D0 + r]
    nan = np.full(n, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        adjacent, flips = nan.copy(), nan.copy()
        adjacent[1:] = corr.cross[1:, 0, 0] / np.sqrt(gg[1:] * gg[:-1])
        flips[1:] = corr.cross[1:, 0, -1] / corr.numel
        pairs = corr.window - 1
        windowed = nan.copy()
        if n > pairs:
            # The mean of the h − 1 adjacent correlations ending at t: eq. (3)'s mu at t − h + 1, known at t.
            windowed[pairs:] = np.lib.stride_tricks.sliding_window_view(adjacent[1:], pairs).mean(axis=1)
        # G⊥ = G − a d with a = G·d / d·d; u_t·u_{t−k} from the products of (G, d) at t and t − k.
        a = gd / dd
        perp_sq = gg - gd * a
        lagged = {}
        for k in LAGS:
            values = nan.copy()
            if k in corr.lags and n > k:
                j = corr.distances.index(k)
                p_gg, p_gd, p_dg, p_dd = (corr.cross[k:, j, c] for c in (0, 1 + 3 * r, 2 + 3 * r, 3 + 3 * r))
                a_now, a_then = a[k:], a[:-k]
                dot = p_gg - a_then * p_gd - a_now * p_dg + a_now * a_then * p_dd
                values[k:] = dot / np.sqrt(perp_sq[k:] * perp_sq[:-k])
            lagged[f"perp_corr_lag{k}"] = values
    return {"grad_corr": adjacent, "mean_grad_corr": windowed, "sign_flip": flips, **lagged}


def matrix_table(
    grams: np.ndarray,
    corr: Correlations,
    epochs: np.ndarray,
    first_step: int,
    wanted: frozenset[int] | None,
) -> pl.DataFrame:
    """Long table of h x h matrices: cos(G_{s+i}, G_{s+j}) and the fraction of entries of opposite sign,
    for windows starting at step s, the first step of each wanted epoch, that end inside the segment."""
    h, n = corr.window, len(epochs)
    gg = grams[:n, G, G]
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
                    value = corr.pair(late, k)[0] / np.sqrt(gg[s + i] * gg[s + j])
                    flips = corr.pair(late, k)[-1] / corr.numel
                rows.append((epoch, first_step + s, i, j, float(value), float(flips)))
    return pl.DataFrame(
        rows,
        schema={
            "epoch": pl.Int64, "start_step": pl.Int64, "i": pl.Int64, "j": pl.Int64,
            "corr": pl.Float64, "sign_flip": pl.Float64,
        },
        orient="row",
    )


def step_table(
    grams: np.ndarray,
    losses: np.ndarray,
    lrs: np.ndarray,
    epochs: np.ndarray,
    end_step: int,
    names: list[str],
    weight_decay: float | np.ndarray,
    correlations: Correlations,
) -> pl.DataFrame:
    n = len(grams) - 1
    steps = np.arange(end_step - n, end_step, dtype=np.int64)
    frames = []
    for r, name in enumerate(names):
        metrics = step_metrics(grams, D0 + r, weight_decay)
        # Unavailable (before the segment) is null, not NaN, so that per-epoch means skip it.
        correlations_r = correlation_metrics(grams, correlations, r)
        metrics.update({k: pl.Series(k, v).fill_nan(None) for k, v in correlations_r.items()})
        frames.append(
            pl.DataFrame(
                {"reference": [name] * n, "epoch": epochs, "step": steps, "lr": lrs, "loss": losses, **metrics},
                schema_overrides={k: pl.Float64 for k in METRICS},
            )
        )
    return pl.concat(frames)
