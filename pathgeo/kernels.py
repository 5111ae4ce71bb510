"""The probe's and the GAWU detector's per-step work on the CPU as fused passes (numba), instead of a
dozen tensor kernels each.

On a CPU the probe is bound by memory traffic: every separate kernel reads the 11M-float vectors of a
ResNet-18 again. The Gram pass reads w, G, w_prev and each w*_r once, accumulates every dot product the
metrics need in float64, and stores w into w_prev on the way; the correlation pass does the same for the
products with earlier steps kept in a ring. The sums run over fixed blocks whose partial results are added
in a fixed order, so the result does not depend on the number of threads.
"""

from __future__ import annotations

import numba
import numpy as np

BLOCK = 1 << 16

# Reassociation lets LLVM vectorise the float64 sums; no-NaN/no-inf flags are left out on purpose so a
# diverging run still shows NaN in its metrics.
FASTMATH = {"reassoc", "contract"}


def _gram_pass(w, g, w_prev, w_star, out):  # pragma: no cover - compiled
    """Fill `out` (K x K, K = 3 + R) with the Gram entries of rows (w, G, s = w_prev - w, d_r = w - w*_r)
    that the metrics use, and set w_prev = w. Entries between two d rows, and (w, s), (G, s), stay 0."""
    n = w.shape[0]
    refs = w_star.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    partial = np.zeros((blocks, 4 + 4 * refs))
    for b in numba.prange(blocks):
        start = b * BLOCK
        end = min(start + BLOCK, n)
        # 1-D views of the block: indexing the full arrays inside the loop keeps LLVM from vectorising it.
        wb = w[start:end]
        gb = g[start:end]
        pb = w_prev[start:end]
        for r in range(refs):
            # The reference-independent sums are recomputed for each reference: the block is in cache by
            # then, and one loop shape vectorises where a second, narrower one did not.
            rb = w_star[r, start:end]
            ww = gg = gw = ss = gd = dd = wd = sd = 0.0
            for i in range(wb.shape[0]):
                wi = np.float64(wb[i])
                gi = np.float64(gb[i])
                si = np.float64(pb[i]) - wi
                di = wi - np.float64(rb[i])
                ww += wi * wi
                gg += gi * gi
                gw += gi * wi
                ss += si * si
                gd += gi * di
                dd += di * di
                wd += wi * di
                sd += si * di
            partial[b, 0] = ww
            partial[b, 1] = gg
            partial[b, 2] = gw
            partial[b, 3] = ss
            partial[b, 4 + 4 * r] = gd
            partial[b, 5 + 4 * r] = dd
            partial[b, 6 + 4 * r] = wd
            partial[b, 7 + 4 * r] = sd
        pb[:] = wb
    sums = partial.sum(axis=0)
    out[:, :] = 0.0
    out[0, 0] = sums[0]
    out[1, 1] = sums[1]
    out[0, 1] = out[1, 0] = sums[2]
    out[2, 2] = sums[3]
    for r in range(refs):
        d = 3 + r
        out[1, d] = out[d, 1] = sums[4 + 4 * r]
        out[d, d] = sums[5 + 4 * r]
        out[0, d] = out[d, 0] = sums[6 + 4 * r]
        out[2, d] = out[d, 2] = sums[7 + 4 * r]


def _correlation_pass(w, g, ring_w, ring_g, slots, perp, write_slot, w_star, out):  # pragma: no cover - compiled
    """Products of this step's (G_t, d_t) with earlier steps' (G_{t−k}, d_{t−k}), d = w − w*_r, for each
    lag j whose ring slot `slots[j]` holds step t − k (−1: not in this segment, left 0). Row j of `out`
    (J x (2 + 3R)) gets G_t·G_{t−k}, then per reference G_t·d_{t−k}, d_t·G_{t−k}, d_t·d_{t−k}, and last the
    number of entries where G_t and G_{t−k} have opposite signs. Lags with perp[j] == 0 (those only the
    correlation window needs) get G_t·G_{t−k} and the sign flips alone and do not read the weight ring.
    Then w and G are stored in `write_slot`."""
    n = w.shape[0]
    refs = w_star.shape[0]
    lags = slots.shape[0]
    width = 2 + 3 * refs
    blocks = (n + BLOCK - 1) // BLOCK
    partial = np.zeros((blocks, lags, width))
    for b in numba.prange(blocks):
        start = b * BLOCK
        end = min(start + BLOCK, n)
        wb = w[start:end]
        gb = g[start:end]
        for j in range(lags):
            if slots[j] < 0:
                continue
            pg = ring_g[slots[j], start:end]
            if not perp[j]:
                gg = flips = 0.0
                for i in range(wb.shape[0]):
                    product = np.float64(gb[i]) * np.float64(pg[i])
                    gg += product
                    flips += 1.0 if product < 0.0 else 0.0
                partial[b, j, 0] = gg
                partial[b, j, width - 1] = flips
                continue
            pw = ring_w[slots[j], start:end]
            for r in range(refs):
                # As in _gram_pass, the reference-independent sums are recomputed per reference: one
                # loop shape over data in cache beats a second pass over the ring.
                rb = w_star[r, start:end]
                gg = flips = gd = dg = dd = 0.0
                for i in range(wb.shape[0]):
                    gi = np.float64(gb[i])
                    pgi = np.float64(pg[i])
                    ri = np.float64(rb[i])
                    di = np.float64(wb[i]) - ri
                    pdi = np.float64(pw[i]) - ri
                    product = gi * pgi
                    gg += product
                    flips += 1.0 if product < 0.0 else 0.0
                    gd += gi * pdi
                    dg += di * pgi
                    dd += di * pdi
                partial[b, j, 0] = gg
                partial[b, j, width - 1] = flips
                partial[b, j, 1 + 3 * r] = gd
                partial[b, j, 2 + 3 * r] = dg
                partial[b, j, 3 + 3 * r] = dd
        # After the reads: the lag that reaches furthest back lives in the slot written now.
        ring_w[write_slot, start:end] = wb
        ring_g[write_slot, start:end] = gb
    out[:, :] = partial.sum(axis=0)


def _adjacent_pass(g, previous, out):  # pragma: no cover - compiled
    """out = (G·G, G·G_prev, G_prev·G_prev) in float64 over fixed blocks, then previous = G."""
    n = g.shape[0]
    blocks = (n + BLOCK - 1) // BLOCK
    partial = np.zeros((blocks, 3))
    for b in numba.prange(blocks):
        start = b * BLOCK
        end = min(start + BLOCK, n)
        gb = g[start:end]
        pb = previous[start:end]
        gg = gp = pp = 0.0
        for i in range(gb.shape[0]):
            gi = np.float64(gb[i])
            pi = np.float64(pb[i])
            gg += gi * gi
            gp += gi * pi
            pp += pi * pi
        partial[b, 0] = gg
        partial[b, 1] = gp
        partial[b, 2] = pp
        pb[:] = gb
    out[:] = partial.sum(axis=0)


# Waking a thread pool costs more than a small model's whole pass, and a job pinned to one core gains
# nothing from it: the serial variant serves those.
PARALLEL_MIN_SIZE = 1 << 20


def _dispatching(kernel):
    """The kernel compiled twice, and a caller `run(*arrays, threads)` that picks the variant by size and
    thread count."""
    parallel = numba.njit(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)(kernel)
    serial = numba.njit(fastmath=FASTMATH, cache=True, nogil=True)(kernel)

    def run(*args) -> None:
        *arrays, threads = args
        if threads > 1 and arrays[0].shape[0] >= PARALLEL_MIN_SIZE:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            parallel(*arrays)
        else:
            serial(*arrays)

    run.__doc__ = kernel.__doc__
    return run


gram_pass = _dispatching(_gram_pass)
correlation_pass = _dispatching(_correlation_pass)
adjacent_pass = _dispatching(_adjacent_pass)
