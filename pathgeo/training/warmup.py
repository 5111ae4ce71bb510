"""The switch of the geometry-adapted warm-up (GAWU), Section 5 of "A mysterious optimization geometry".

GAWU warms the LR up exponentially and switches to cosine decay at the first step where the mean gradient
correlation (the mean cosine of the last h − 1 pairs of adjacent gradients) turns from positive to
negative. Unlike every other schedule this depends on the gradients, so the detector is part of the
trajectory: it sees the gradient after backward, in float64 sums over fixed blocks (the same on any number
of threads), and its state (the previous gradient, the recent cosines, the switch step) is saved in every
checkpoint, so a resumed run or a replay switches at the same step. Reading the mean back costs one host
synchronisation per step, and only until the switch.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class GeometrySwitch:
    def __init__(self, numel: int, window: int, device: torch.device, dtype: torch.dtype, fused: bool | None = None):
        """`fused`: the numba pass (CPU only); None picks it on the CPU and torch float64 dots elsewhere."""
        if window < 2:
            raise ValueError(f"the GAWU window must hold at least 2 steps, not {window}")
        self.window = window
        self.fused = device.type == "cpu" if fused is None else fused
        if self.fused and device.type != "cpu":
            raise ValueError(f"the fused GAWU pass runs on the CPU, not on {device}")
        self.previous = torch.zeros(numel, dtype=dtype, device=device)
        if self.fused:
            # Imported only here: the runs without GAWU, most of them, need not pay numba's import. The pass
            # and its buffers are bound once, as the probe's are: the detector runs every step until the switch.
            from pathgeo.training import fused

            self._adjacent_pass = fused.adjacent_pass.variant(numel, torch.get_num_threads())
            self._previous_np, self._out = self.previous.numpy(), np.zeros(3)
        self.have_previous = False
        self.recent: list[float] = []
        self.mean: float | None = None
        self.switch_step: int | None = None

    def observe(self, grads: torch.Tensor, step: int) -> None:
        """Take step `step`'s gradient; if the mean correlation has just turned negative, switch here."""
        if self.switch_step is not None:
            return
        gg, gp, pp = self._products(grads)
        if self.have_previous:
            self.recent = [*self.recent, gp / math.sqrt(gg * pp)][-(self.window - 1) :]
        self.have_previous = True
        if len(self.recent) < self.window - 1:
            return
        mean = sum(self.recent) / len(self.recent)
        if self.mean is not None and self.mean > 0 > mean:
            self.switch_step = step
        self.mean = mean

    def _products(self, grads: torch.Tensor) -> tuple[float, float, float]:
        if self.fused:
            out = self._out
            self._adjacent_pass(grads.numpy(), self._previous_np, out)
            return float(out[0]), float(out[1]), float(out[2])
        g, p = grads.double(), self.previous.double()
        products = torch.stack([g @ g, g @ p, p @ p]).tolist()
        self.previous.copy_(grads)
        return products[0], products[1], products[2]

    def state(self) -> dict:
        # After the switch nothing but its step matters; the gradient copy would only fill the checkpoints.
        switched = self.switch_step is not None
        return {
            "switch_step": self.switch_step,
            "mean": self.mean,
            "recent": list(self.recent),
            "have_previous": self.have_previous,
            "previous": None if switched else self.previous.detach().clone(),
        }

    def load_state(self, state: dict) -> None:
        self.switch_step, self.mean = state["switch_step"], state["mean"]
        self.recent, self.have_previous = list(state["recent"]), state["have_previous"]
        if state["previous"] is not None:
            self.previous.copy_(state["previous"])
