"""The probe's per-step work on the CPU as one fused pass (numba, compiled as pathgeo.training.fused compiles the
GAWU detector's), instead of a dozen tensor kernels.

On a CPU the probe is bound by memory traffic: every separate kernel reads the 11M-float vectors of a
ResNet-18 again. The step pass reads w, G, w_prev, each w*_r and the ring slots the step's plan names once,
accumulates in float64 every product that plan asks for (pathgeo.engine.record), and stores w and G into the
probe's copies on the way. The sums run over fixed blocks whose partial results are added in a fixed order,
so the result does not depend on the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np

from pathgeo.engine.record import (
    BASE_WRITE,
    G_SLOTS,
    G_WRITE,
    GEO_GW,
    GEO_REF,
    GEO_REF_WIDTH,
    GEO_SS,
    GEO_WW,
    LAG_DW,
    LAG_GG,
    LAG_REF,
    LAG_REF_WIDTH,
    PREV_VALID,
    W_WRITE,
)
from pathgeo.training.fused import BLOCK, dispatching


def _step_pass(
    w, g, w_prev, w_star, ring_g, ring_w, plan, ring_lags, geometry, lag_block, out
):  # pragma: no cover - compiled
    """One probe step (pathgeo.engine.record): fill the record `out` with this step's products as the plan row
    `plan` says, then store w into w_prev (with references) and G, and at an anchor w, into the rings.

    Each group of products has a loop of its own, always the same loop, so the bits of a product do not
    depend on which other products a step takes (a replay segment then equals the uninterrupted pass).
    Within a block the later loops re-read w and G from cache; memory sees each vector once."""
    n = w.shape[0]
    refs = w_star.shape[0]
    lags = (plan.shape[0] - G_SLOTS - ring_lags) // 2
    lag_width = LAG_REF + LAG_REF_WIDTH * refs
    blocks = (n + BLOCK - 1) // BLOCK
    partial = np.zeros((blocks, out.shape[0]))
    for b in numba.prange(blocks):
        start = b * BLOCK
        end = min(start + BLOCK, n)
        # 1-D views of the block: indexing the full arrays inside the loop keeps LLVM from vectorising it.
        gb = g[start:end]
        pg = ring_g[plan[G_SLOTS], start:end]
        gg = gp = flips = 0.0
        for i in range(gb.shape[0]):
            gi = np.float64(gb[i])
            product = gi * np.float64(pg[i])
            gg += gi * gi
            gp += product
            flips += 1.0 if product < 0.0 else 0.0
        partial[b, 0] = gg
        partial[b, 1] = gp
        partial[b, 2] = flips
        for k in range(2, ring_lags + 1):
            slot = plan[G_SLOTS + k - 1]
            if slot < 0:
                continue
            pg = ring_g[slot, start:end]
            gp = flips = 0.0
            for i in range(gb.shape[0]):
                product = np.float64(gb[i]) * np.float64(pg[i])
                gp += product
                flips += 1.0 if product < 0.0 else 0.0
            partial[b, 2 * k - 1] = gp
            partial[b, 2 * k] = flips
        wb = w[start:end]
        for r in range(refs):
            # The reference-independent sums are recomputed for each reference: the block is in cache by
            # then, and one loop shape vectorises where a second, narrower one did not.
            pb = w_prev[start:end]
            rb = w_star[r, start:end]
            ww = gw = ss = gd = dd = wd = sd = 0.0
            for i in range(wb.shape[0]):
                wi = np.float64(wb[i])
                gi = np.float64(gb[i])
                si = np.float64(pb[i]) - wi
                di = wi - np.float64(rb[i])
                ww += wi * wi
                gw += gi * wi
                ss += si * si
                gd += gi * di
                dd += di * di
                wd += wi * di
                sd += si * di
            partial[b, geometry + GEO_WW] = ww
            partial[b, geometry + GEO_GW] = gw
            partial[b, geometry + GEO_SS] = ss
            at = geometry + GEO_REF + GEO_REF_WIDTH * r
            partial[b, at] = gd
            partial[b, at + 1] = dd
            partial[b, at + 2] = wd
            partial[b, at + 3] = sd
        for j in range(lags):
            slot_g = plan[G_SLOTS + ring_lags + j]
            if slot_g < 0:
                continue
            bg = ring_g[slot_g, start:end]
            bw = ring_w[plan[G_SLOTS + ring_lags + lags + j], start:end]
            at = lag_block + j * lag_width
            for r in range(refs):
                rb = w_star[r, start:end]
                ggb = dw = gdb = dgb = ddb = 0.0
                for i in range(wb.shape[0]):
                    gi = np.float64(gb[i])
                    wi = np.float64(wb[i])
                    bgi = np.float64(bg[i])
                    bwi = np.float64(bw[i])
                    ri = np.float64(rb[i])
                    di = wi - ri
                    bdi = bwi - ri
                    step = wi - bwi
                    ggb += gi * bgi
                    dw += step * step
                    gdb += gi * bdi
                    dgb += di * bgi
                    ddb += di * bdi
                partial[b, at + LAG_GG] = ggb
                partial[b, at + LAG_DW] = dw
                partial[b, at + LAG_REF + LAG_REF_WIDTH * r] = gdb
                partial[b, at + LAG_REF + LAG_REF_WIDTH * r + 1] = dgb
                partial[b, at + LAG_REF + LAG_REF_WIDTH * r + 2] = ddb
        # Stores last (the rings never have a step write a slot it reads; see pathgeo.engine.record.Rings).
        if refs:
            w_prev[start:end] = wb
        ring_g[plan[G_WRITE], start:end] = gb
        if plan[BASE_WRITE] >= 0:
            ring_g[plan[BASE_WRITE], start:end] = gb
        if plan[W_WRITE] >= 0:
            ring_w[plan[W_WRITE], start:end] = wb
    sums = partial.sum(axis=0)
    out[0] = sums[0]
    if plan[PREV_VALID]:
        out[1] = sums[1]
        out[2] = sums[2]
    for k in range(2, ring_lags + 1):
        if plan[G_SLOTS + k - 1] >= 0:
            out[2 * k - 1] = sums[2 * k - 1]
            out[2 * k] = sums[2 * k]
    if refs:
        out[geometry:lag_block] = sums[geometry:lag_block]
    for j in range(lags):
        if plan[G_SLOTS + ring_lags + j] >= 0:
            at = lag_block + j * lag_width
            out[at : at + lag_width] = sums[at : at + lag_width]


def _read_pass(a, b, c, d, out):  # pragma: no cover - compiled
    """Σ a·b + c·d in float64 over fixed blocks: a pass that reads four float32 vectors and nothing else,
    the bench's measure of this machine's read bandwidth."""
    n = a.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    partial = np.zeros(blocks)
    for blk in numba.prange(blocks):
        start = blk * BLOCK
        end = min(start + BLOCK, n)
        ab, bb, cb, db = a[start:end], b[start:end], c[start:end], d[start:end]
        total = 0.0
        for i in range(ab.shape[0]):
            total += np.float64(ab[i]) * np.float64(bb[i]) + np.float64(cb[i]) * np.float64(db[i])
        partial[blk] = total
    out[0] = partial.sum()


step_pass = dispatching(_step_pass)
read_pass = dispatching(_read_pass)
