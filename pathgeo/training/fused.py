"""Fused passes over a model's flat vectors on the CPU (numba): float64 sums over fixed blocks added in a fixed order,
so that a result does not depend on the number of threads; each kernel compiled serial and parallel, the variant
chosen by the vectors' size and the threads. GAWU's detector (pathgeo.training.warmup) runs its adjacent-gradient
pass here; the probe's step pass (pathgeo.engine.cpu_kernels) is compiled the same way.
"""

from __future__ import annotations

import types

import numba
import numpy as np

# 64 KiB of float32 per vector: the block of the four vectors the geometry loop reads stays in a core's
# L2 cache while the later loops re-read it.
BLOCK = 1 << 14

# Reassociation lets LLVM vectorise the float64 sums; no-NaN/no-inf flags are left out on purpose so a
# diverging run still shows NaN in its metrics.
FASTMATH = {"reassoc", "contract"}


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


def _renamed(kernel, suffix: str):
    """The same function under a name of its own. Numba's on-disk cache keys compiled code by the
    function's name, signature and bytecode, not by its flags: two variants of one function share a cache
    entry, and whichever compiled first serves both (a small model's run left the serial pass to every
    later ResNet-18 replay, at twice the time)."""
    copy = types.FunctionType(
        kernel.__code__, kernel.__globals__, kernel.__name__ + suffix, kernel.__defaults__, kernel.__closure__
    )
    copy.__qualname__ = kernel.__qualname__ + suffix
    copy.__doc__ = kernel.__doc__
    return copy


def dispatching(kernel):
    """The kernel compiled twice, and a caller `run(*arrays, threads)` that picks the variant by size and
    thread count."""
    parallel = numba.njit(parallel=True, fastmath=FASTMATH, cache=True, nogil=True)(_renamed(kernel, "_parallel"))
    serial = numba.njit(fastmath=FASTMATH, cache=True, nogil=True)(kernel)

    def variant(size: int, threads: int):
        """The callable for vectors of `size` entries on `threads` threads, for a caller that makes the
        same call every step: it chooses once, and the serial pass then has no Python wrapper at all."""
        if threads > 1 and size >= PARALLEL_MIN_SIZE:
            threads = min(threads, numba.config.NUMBA_NUM_THREADS)

            def threaded(*arrays) -> None:
                numba.set_num_threads(threads)
                parallel(*arrays)

            return threaded
        return serial

    def run(*args) -> None:
        *arrays, threads = args
        variant(arrays[0].shape[0], threads)(*arrays)

    run.__doc__ = kernel.__doc__
    run.parallel, run.serial, run.variant = parallel, serial, variant
    return run


adjacent_pass = dispatching(_adjacent_pass)
