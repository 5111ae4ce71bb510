"""What the probe computes at each step, and where: the layout of a step's record and the step's plan.

Both backends (the numba pass on the CPU, the Triton kernels on a GPU) follow this module: they read the
same plan row and fill the same record entries, so a metric computed from the record does not depend on
the device.

The record of a step is a float64 vector. Its blocks:
  * G block, every step: G·G, then for each ring lag k = 1 … h − 1: G_t·G_{t−k} and the number of entries
    where G_t and G_{t−k} have opposite signs. Lag 1 serves grad_corr, mean_grad_corr and sign_flip
    every step; lags 2 … h − 1 serve the h x h matrices and are taken only inside a matrix window.
  * geometry block, with reference points: w·w, G·w, s·s (s = w_{t−1} − w_t), then per reference r:
    G·d_r, d_r·d_r, w·d_r, s·d_r (d_r = w − w*_r).
  * lag block, one per orthogonal lag k: G_t·G_b, ‖w_t − w_b‖², then per reference: G_t·d_b, d_t·G_b,
    d_t·d_b, where b = t − k is the lag's base step.
A product that is not taken at a step is NaN there.

Orthogonal lags, three protocols:
  * anchored (the first paper's code, `trainval` in its main_image_classification.py): every step
    t ≡ 0 (mod 51) stores its G and w as the base; the step base + k, for k in the lags, is measured
    against it. Steps are numbered globally (the trainer's step counter), so a replay segment measures the
    same steps as one uninterrupted pass. A segment holds no base from before its start: until its first
    anchor, lag values are null.
  * every_step: every step t is measured against t − k for every lag, from a ring of the last 50 G and w.
  * off: no orthogonal lags.

The plan of a step (an int64 row) names the ring slots each product reads and the slots the step writes;
−1 means "not this step".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from pathgeo.columns import ANCHOR_PERIOD, LAG_PROTOCOLS

# Offsets inside the geometry block; per reference r, GEO_REF + GEO_REF_WIDTH·r + (0: G·d, 1: d·d, 2: w·d, 3: s·d).
GEO_WW, GEO_GW, GEO_SS, GEO_REF, GEO_REF_WIDTH = 0, 1, 2, 3, 4
# Offsets inside a lag block; per reference r, LAG_REF + LAG_REF_WIDTH·r + (0: G·d_b, 1: d·G_b, 2: d·d_b).
LAG_GG, LAG_DW, LAG_REF, LAG_REF_WIDTH = 0, 1, 2, 3
# Plan row: whether G_{t−1} is in the segment, the slots written, then the read slots.
PREV_VALID, G_WRITE, BASE_WRITE, W_WRITE, G_SLOTS = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class Layout:
    """The record of one step: `window` is h, `refs` the number of reference points, `lags` the orthogonal
    lags measured (empty: none)."""

    window: int
    refs: int
    lags: tuple[int, ...]

    @property
    def ring_lags(self) -> int:
        return self.window - 1

    @staticmethod
    def g_dot(k: int) -> int:
        return 2 * k - 1

    @staticmethod
    def g_flips(k: int) -> int:
        return 2 * k

    @property
    def geometry(self) -> int:
        return 1 + 2 * self.ring_lags

    def ref(self, r: int) -> int:
        """Offset of reference r's G·d; d·d, w·d and s·d follow."""
        return self.geometry + GEO_REF + GEO_REF_WIDTH * r

    @property
    def lag_block(self) -> int:
        return self.geometry + (GEO_REF + GEO_REF_WIDTH * self.refs if self.refs else 0)

    @property
    def lag_width(self) -> int:
        return LAG_REF + LAG_REF_WIDTH * self.refs

    def lag(self, j: int) -> int:
        return self.lag_block + j * self.lag_width

    @property
    def width(self) -> int:
        return self.lag(len(self.lags))


@dataclass(frozen=True)
class Rings:
    """Which earlier vectors a probe keeps: `roll` rolling G slots (step t in slot t % roll), the anchored
    base G in slot `roll` when `anchored`, and `w_depth` weight slots (the base w, or a rolling ring).

    A rolling ring holds one slot more than the deepest lag it serves, so the slot a step writes is never
    one that the same step reads: a GPU kernel then needs no barrier between its loads and its stores."""

    roll: int
    anchored: bool
    w_depth: int

    @property
    def g_depth(self) -> int:
        return self.roll + self.anchored


def rings_for(layout: Layout, protocol: str) -> Rings:
    if protocol not in LAG_PROTOCOLS:
        raise ValueError(f"lag protocol '{protocol}' is not one of {LAG_PROTOCOLS}")
    if not layout.lags or protocol == "off":
        return Rings(layout.window, False, 0)
    if protocol == "anchored":
        if max(layout.lags) >= ANCHOR_PERIOD:
            raise ValueError(f"anchored lags must be below the period {ANCHOR_PERIOD}, not {max(layout.lags)}")
        return Rings(layout.window, True, 1)
    deepest = max(layout.lags) + 1
    return Rings(max(layout.window, deepest), False, deepest)


def plan_width(layout: Layout) -> int:
    return G_SLOTS + layout.ring_lags + 2 * len(layout.lags)


def plan_rows(
    layout: Layout, rings: Rings, steps: np.ndarray, first_step: int, window_starts: Collection[int]
) -> np.ndarray:
    """The plan of each global step in `steps`, for a segment that began at `first_step` and matrix windows
    that start at `window_starts` (h steps each)."""
    h, lags = layout.window, layout.lags
    t = np.asarray(steps, dtype=np.int64)
    starts = np.asarray(sorted(window_starts), dtype=np.int64)
    rows = np.full((len(t), plan_width(layout)), -1, dtype=np.int64)
    lag_g, lag_w = G_SLOTS + layout.ring_lags, G_SLOTS + layout.ring_lags + len(lags)
    rows[:, PREV_VALID] = t - 1 >= first_step
    rows[:, G_WRITE] = t % rings.roll
    # Lag 1 is read every step, valid or not, so that the pass is the same at every step (its bits then do
    # not depend on where the segment began); the record marks it NaN where invalid.
    rows[:, G_SLOTS] = (t - 1) % rings.roll
    for k in range(2, h):
        # A window starting at s needs G_t·G_{t−k} at t when s ≤ t − k and t ≤ s + h − 1.
        open_window = ((starts[None, :] >= t[:, None] - h + 1) & (starts[None, :] <= t[:, None] - k)).any(axis=1)
        rows[open_window, G_SLOTS + k - 1] = (t[open_window] - k) % rings.roll
    if rings.anchored:
        phase = t % ANCHOR_PERIOD
        anchor = phase == 0
        rows[anchor, BASE_WRITE], rows[anchor, W_WRITE] = rings.roll, 0
        for j, k in enumerate(lags):
            measured = (phase == k) & (t - k >= first_step)
            rows[measured, lag_g + j], rows[measured, lag_w + j] = rings.roll, 0
    elif rings.w_depth:
        rows[:, W_WRITE] = t % rings.w_depth
        for j, k in enumerate(lags):
            measured = t - k >= first_step
            rows[measured, lag_g + j] = (t[measured] - k) % rings.roll
            rows[measured, lag_w + j] = (t[measured] - k) % rings.w_depth
    return rows


def final_plan(layout: Layout, rings: Rings) -> np.ndarray:
    """The plan of the extra pass at the end weights, which only the geometry block's s·s and s·d use."""
    row = np.full(plan_width(layout), -1, dtype=np.int64)
    row[PREV_VALID], row[G_WRITE], row[G_SLOTS] = 0, 0, 0
    return row


def active_lags(layout: Layout, row: np.ndarray) -> list[int]:
    """Indices j of the orthogonal lags this plan row measures."""
    start = G_SLOTS + layout.ring_lags
    return [j for j in range(len(layout.lags)) if row[start + j] >= 0]


def vectors_moved(layout: Layout, rows: np.ndarray) -> np.ndarray:
    """Per plan row, how many model-sized vectors the step must read or write at least: G and G_{t−1}, the
    window lags it takes; with references w, w_{t−1}, each w*_r; two per orthogonal lag measured (the base G
    and w); and the writes of G, w_{t−1} and the anchor. This is the traffic floor both backends are judged by."""
    rows = np.atleast_2d(rows)
    lag_g = G_SLOTS + layout.ring_lags
    reads = (
        2
        + (rows[:, G_SLOTS + 1 : lag_g] >= 0).sum(axis=1)
        + 2 * (rows[:, lag_g : lag_g + len(layout.lags)] >= 0).sum(axis=1)
    )
    writes = 1 + (rows[:, BASE_WRITE] >= 0) + (rows[:, W_WRITE] >= 0)
    if layout.refs:
        reads = reads + 2 + layout.refs
        writes = writes + 1
    return reads + writes
