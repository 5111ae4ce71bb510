"""The probe: RSI, EB, gamma, the locally optimal LR and the actual update's alignment, at every step.

It is an observer of the training loop: after backward and before the optimizer step it reads the flat
parameter and gradient buffers and writes nothing the step uses, so training with and without it gives
bit-identical weights.

Cost. Every metric is a function of the Gram matrix of the rows
    w, G, s = w_prev − w (the previous step's update, negated), d_r = w − w*_r (one row per reference),
so each step only accumulates those dot products, in float64, into a device buffer; the metrics are
computed once per epoch, on the host. On the CPU one fused pass (pathgeo.kernels) reads w, G, w_prev and
w* once. On a GPU, per chunk of the flat buffers, four kernels fill a float64 workspace with the rows and
one matrix product adds the chunk's Gram matrix; nothing is synchronised with the host until the epoch
ends. Either way the products and sums are float64 arithmetic on the exact float32 values.

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
"""

from __future__ import annotations

import logging

import numpy as np
import polars as pl
import torch

from pathgeo import kernels
from pathgeo.columns import METRICS
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
    ):
        if not references:
            raise ValueError("the probe needs at least one reference point")
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
        if backend == "torch":
            self.workspace = torch.empty(self.rows, self.chunk_size, dtype=torch.float64, device=device)
        else:
            self._arrays = (flat.weights.numpy(), flat.grads.numpy(), self.w_prev.numpy(), self.w_star.numpy())
        self.capacity = steps_per_epoch
        self._grams = torch.zeros(steps_per_epoch, self.rows, self.rows, dtype=torch.float64, device=device)
        self._losses = torch.zeros(steps_per_epoch, dtype=torch.float64, device=device)
        self._lrs: list[float] = []
        self._wds: list[float] = []
        self._n = 0
        self.step = start_step
        self.epoch = start_epoch
        self._host_grams: list[np.ndarray] = []
        self._host_losses: list[np.ndarray] = []
        self._lr_log: list[float] = []
        self._wd_log: list[float] = []
        self._epochs: list[int] = []
        self._final_gram: np.ndarray | None = None

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

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float | None = None) -> None:
        """`weight_decay` is this step's (schedules may change it); None means the probe's constant one."""
        if self._n == self.capacity:
            raise RuntimeError(f"more than steps_per_epoch={self.capacity} steps in one epoch; call end_epoch()")
        self._gram(self._grams[self._n])
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
        grams = np.concatenate([*self._host_grams, final.cpu().numpy()[None]])
        return step_table(
            grams,
            np.concatenate(self._host_losses) if self._host_losses else np.zeros(0),
            np.asarray(self._lr_log, dtype=np.float64),
            np.asarray(self._epochs, dtype=np.int64),
            self.step,
            self.names,
            np.asarray(self._wd_log, dtype=np.float64),
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


def step_table(
    grams: np.ndarray,
    losses: np.ndarray,
    lrs: np.ndarray,
    epochs: np.ndarray,
    end_step: int,
    names: list[str],
    weight_decay: float | np.ndarray,
) -> pl.DataFrame:
    n = len(grams) - 1
    steps = np.arange(end_step - n, end_step, dtype=np.int64)
    frames = []
    for r, name in enumerate(names):
        metrics = step_metrics(grams, D0 + r, weight_decay)
        frames.append(
            pl.DataFrame(
                {"reference": [name] * n, "epoch": epochs, "step": steps, "lr": lrs, "loss": losses, **metrics},
                schema_overrides={k: pl.Float64 for k in METRICS},
            )
        )
    return pl.concat(frames)
