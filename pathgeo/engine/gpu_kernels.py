"""The probe's per-step work on a GPU as fused Triton kernels: a constant number of launches per step,
whatever the model's size.

Each step is one launch of `_step_kernel` (the G block and the geometry block of pathgeo.engine.record, and the
stores into w_prev and the rings), one launch of `_lag_kernel` per orthogonal lag the plan row measures
(none on most steps with the anchored protocol), and after each launch one `torch.sum` of the programs'
partial sums into the step's record. A fixed number of programs each loops over the vectors in blocks and
accumulates float64 products of the float32 values, so the only float64 temporaries are the partial sums
(programs x record width) and the record itself, and the result does not depend on scheduling. The plan of
the whole epoch lives on the device; a launch names its row by the step index, so nothing is copied to the
device per step and nothing is read back until the epoch ends.

On the CPU the kernels run under Triton's interpreter (TRITON_INTERPRET=1, set before this module is
imported), which is how the tests exercise this path.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

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

# 512 entries a block over 8 warps: two per thread, so the float64 accumulators (a few vectors and the
# (h − 1) x BLOCK tiles of the ring lags) stay in registers.
BLOCK = 512
PROGRAMS = 1024
NUM_WARPS = 8

# Triton reads only constexpr globals inside a kernel.
_PREV_VALID, _G_WRITE, _BASE_WRITE, _W_WRITE, _G_SLOTS = (
    tl.constexpr(v) for v in (PREV_VALID, G_WRITE, BASE_WRITE, W_WRITE, G_SLOTS)
)
_GEO_WW, _GEO_GW, _GEO_SS, _GEO_REF, _GEO_REF_WIDTH = (
    tl.constexpr(v) for v in (GEO_WW, GEO_GW, GEO_SS, GEO_REF, GEO_REF_WIDTH)
)
_LAG_GG, _LAG_DW, _LAG_REF, _LAG_REF_WIDTH = (tl.constexpr(v) for v in (LAG_GG, LAG_DW, LAG_REF, LAG_REF_WIDTH))


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit(do_not_specialize=["step"])
def _step_kernel(
    w_ptr,
    g_ptr,
    w_prev_ptr,
    w_star_ptr,
    ring_g_ptr,
    ring_w_ptr,
    plan_ptr,
    partial_ptr,
    n,
    step,
    PLAN_WIDTH: tl.constexpr,
    RING_LAGS: tl.constexpr,
    RING_PAD: tl.constexpr,
    REFS: tl.constexpr,
    REFS_PAD: tl.constexpr,
    WIDTH: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    programs = tl.num_programs(0)
    row = plan_ptr + step * PLAN_WIDTH
    prev_valid = tl.load(row + _PREV_VALID)
    g_write = tl.load(row + _G_WRITE).to(tl.int64)
    base_write = tl.load(row + _BASE_WRITE).to(tl.int64)
    w_write = tl.load(row + _W_WRITE).to(tl.int64)
    # Masks as bounds: an optional store covers n entries or none.
    base_end = tl.where(base_write >= 0, n, 0)
    w_end = tl.where(w_write >= 0, n, 0)
    lag = tl.arange(0, RING_PAD)
    slots = tl.load(row + _G_SLOTS + lag, mask=lag < RING_LAGS, other=-1).to(tl.int64)
    taken = slots >= 0
    ref = tl.arange(0, REFS_PAD)
    ref_rows = ref < REFS
    gg = tl.zeros((BLOCK,), dtype=tl.float64)
    gp = tl.zeros((RING_PAD, BLOCK), dtype=tl.float64)
    flips = tl.zeros((RING_PAD, BLOCK), dtype=tl.float64)
    ww = tl.zeros((BLOCK,), dtype=tl.float64)
    gw = tl.zeros((BLOCK,), dtype=tl.float64)
    ss = tl.zeros((BLOCK,), dtype=tl.float64)
    gd = tl.zeros((REFS_PAD, BLOCK), dtype=tl.float64)
    dd = tl.zeros((REFS_PAD, BLOCK), dtype=tl.float64)
    wd = tl.zeros((REFS_PAD, BLOCK), dtype=tl.float64)
    sd = tl.zeros((REFS_PAD, BLOCK), dtype=tl.float64)
    # n < 2^31 arrives as int32: an int64 first offset makes the loop and every offset int64, so that
    # start + BLOCK cannot overflow for n near 2^31.
    for start in range(pid.to(tl.int64) * BLOCK, n, programs * BLOCK):
        offs = start + tl.arange(0, BLOCK)
        inside = offs < n
        g = tl.load(g_ptr + offs, mask=inside, other=0.0)
        g64 = g.to(tl.float64)
        gg += g64 * g64
        earlier = tl.load(
            ring_g_ptr + slots[:, None] * n + offs[None, :], mask=taken[:, None] & inside[None, :], other=0.0
        ).to(tl.float64)
        product = g64[None, :] * earlier
        gp += product
        flips += tl.where(product < 0.0, 1.0, 0.0)
        if REFS > 0:
            w = tl.load(w_ptr + offs, mask=inside, other=0.0)
            w64 = w.to(tl.float64)
            s64 = tl.load(w_prev_ptr + offs, mask=inside, other=0.0).to(tl.float64) - w64
            star = tl.load(
                w_star_ptr + ref[:, None].to(tl.int64) * n + offs[None, :],
                mask=ref_rows[:, None] & inside[None, :],
                other=0.0,
            ).to(tl.float64)
            d = w64[None, :] - star
            ww += w64 * w64
            gw += g64 * w64
            ss += s64 * s64
            gd += g64[None, :] * d
            dd += d * d
            wd += w64[None, :] * d
            sd += s64[None, :] * d
            tl.store(w_prev_ptr + offs, w, mask=inside)
            tl.store(ring_w_ptr + w_write * n + offs, w, mask=offs < w_end)
        tl.store(ring_g_ptr + g_write * n + offs, g, mask=inside)
        tl.store(ring_g_ptr + base_write * n + offs, g, mask=offs < base_end)
    out = partial_ptr + pid * WIDTH
    tl.store(out, tl.sum(gg, axis=0))
    valid = taken & ((lag > 0) | (prev_valid > 0))
    nan = float("nan")
    tl.store(out + 1 + 2 * lag, tl.where(valid, tl.sum(gp, axis=1), nan), mask=lag < RING_LAGS)
    tl.store(out + 2 + 2 * lag, tl.where(valid, tl.sum(flips, axis=1), nan), mask=lag < RING_LAGS)
    if REFS > 0:
        geometry = out + 1 + 2 * RING_LAGS
        tl.store(geometry + _GEO_WW, tl.sum(ww, axis=0))
        tl.store(geometry + _GEO_GW, tl.sum(gw, axis=0))
        tl.store(geometry + _GEO_SS, tl.sum(ss, axis=0))
        per_ref = geometry + _GEO_REF + _GEO_REF_WIDTH * ref
        tl.store(per_ref, tl.sum(gd, axis=1), mask=ref_rows)
        tl.store(per_ref + 1, tl.sum(dd, axis=1), mask=ref_rows)
        tl.store(per_ref + 2, tl.sum(wd, axis=1), mask=ref_rows)
        tl.store(per_ref + 3, tl.sum(sd, axis=1), mask=ref_rows)


@triton.jit(do_not_specialize=["step", "lag"])
def _lag_kernel(
    w_ptr,
    g_ptr,
    w_star_ptr,
    ring_g_ptr,
    ring_w_ptr,
    plan_ptr,
    partial_ptr,
    n,
    step,
    lag,
    PLAN_WIDTH: tl.constexpr,
    LAG_SLOTS: tl.constexpr,
    LAGS: tl.constexpr,
    REFS: tl.constexpr,
    REFS_PAD: tl.constexpr,
    WIDTH: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0)
    programs = tl.num_programs(0)
    row = plan_ptr + step * PLAN_WIDTH
    base_g = ring_g_ptr + tl.load(row + LAG_SLOTS + lag).to(tl.int64) * n
    base_w = ring_w_ptr + tl.load(row + LAG_SLOTS + LAGS + lag).to(tl.int64) * n
    ref = tl.arange(0, REFS_PAD)
    ref_rows = ref < REFS
    ggb = tl.zeros((BLOCK,), dtype=tl.float64)
    dw = tl.zeros((BLOCK,), dtype=tl.float64)
    gdb = tl.zeros((REFS_PAD, BLOCK), dtype=tl.float64)
    dgb = tl.zeros((REFS_PAD, BLOCK), dtype=tl.float64)
    ddb = tl.zeros((REFS_PAD, BLOCK), dtype=tl.float64)
    for start in range(pid.to(tl.int64) * BLOCK, n, programs * BLOCK):  # int64, as in _step_kernel
        offs = start + tl.arange(0, BLOCK)
        inside = offs < n
        g64 = tl.load(g_ptr + offs, mask=inside, other=0.0).to(tl.float64)
        w64 = tl.load(w_ptr + offs, mask=inside, other=0.0).to(tl.float64)
        bg64 = tl.load(base_g + offs, mask=inside, other=0.0).to(tl.float64)
        bw64 = tl.load(base_w + offs, mask=inside, other=0.0).to(tl.float64)
        star = tl.load(
            w_star_ptr + ref[:, None].to(tl.int64) * n + offs[None, :],
            mask=ref_rows[:, None] & inside[None, :],
            other=0.0,
        ).to(tl.float64)
        d = w64[None, :] - star
        bd = bw64[None, :] - star
        moved = w64 - bw64
        ggb += g64 * bg64
        dw += moved * moved
        gdb += g64[None, :] * bd
        dgb += d * bg64[None, :]
        ddb += d * bd
    out = partial_ptr + pid * WIDTH
    tl.store(out + _LAG_GG, tl.sum(ggb, axis=0))
    tl.store(out + _LAG_DW, tl.sum(dw, axis=0))
    per_ref = out + _LAG_REF + _LAG_REF_WIDTH * ref
    tl.store(per_ref, tl.sum(gdb, axis=1), mask=ref_rows)
    tl.store(per_ref + 1, tl.sum(dgb, axis=1), mask=ref_rows)
    tl.store(per_ref + 2, tl.sum(ddb, axis=1), mask=ref_rows)


# Without fusion every product and sum rounds as the source writes it, as under the interpreter (numpy) the
# tests run; with it the compiler chooses which multiply-adds become FMAs, and Triton 3.10 changes the default.
FP_FUSION = False


def launch(kernel, grid: tuple[int], *args, **constants) -> None:
    """Every launch goes through here (the dispatch-count test counts them)."""
    kernel[grid](*args, **constants, num_warps=NUM_WARPS, enable_fp_fusion=FP_FUSION)


def pad(count: int) -> int:
    return triton.next_power_of_2(max(count, 1))


class TritonPass:
    """The Triton kernels bound to one probe's tensors: `step(n)` runs plan row n of the device plan and
    sums the partials into the record views of row n."""

    def __init__(self, probe_arrays: dict[str, torch.Tensor], layout, plan_width: int, block: int, programs: int):
        self.a = probe_arrays
        self.layout = layout
        self.n = probe_arrays["w"].shape[0]
        self.block = block
        self.programs = min(programs, triton.cdiv(self.n, block))
        device = probe_arrays["w"].device
        self.main_partial = torch.empty(self.programs, layout.lag_block, dtype=torch.float64, device=device)
        self.lag_partial = torch.empty(self.programs, layout.lag_width, dtype=torch.float64, device=device)
        self.step_constants = {
            "PLAN_WIDTH": plan_width,
            "RING_LAGS": layout.ring_lags,
            "RING_PAD": pad(layout.ring_lags),
            "REFS": layout.refs,
            "REFS_PAD": pad(layout.refs),
            "WIDTH": layout.lag_block,
            "BLOCK": block,
        }
        self.lag_constants = {
            "PLAN_WIDTH": plan_width,
            "LAG_SLOTS": G_SLOTS + layout.ring_lags,
            "LAGS": max(len(layout.lags), 1),
            "REFS": layout.refs,
            "REFS_PAD": pad(layout.refs),
            "WIDTH": layout.lag_width,
            "BLOCK": block,
        }

    def step(self, n: int, lags: list[int], main_out: torch.Tensor, lag_out) -> None:
        """Row n of the plan; `lags` are the orthogonal lags it measures, `lag_out(j)` the record view of
        lag j. The lag kernels read the rings before the step kernel writes this step's G and w there
        (the slots differ anyway; see pathgeo.engine.record.Rings)."""
        a, grid = self.a, (self.programs,)
        for j in lags:
            launch(
                _lag_kernel,
                grid,
                a["w"],
                a["g"],
                a["w_star"],
                a["ring_g"],
                a["ring_w"],
                a["plan"],
                self.lag_partial,
                self.n,
                n,
                j,
                **self.lag_constants,
            )
            torch.sum(self.lag_partial, dim=0, out=lag_out(j))
        launch(
            _step_kernel,
            grid,
            a["w"],
            a["g"],
            a["w_prev"],
            a["w_star"],
            a["ring_g"],
            a["ring_w"],
            a["plan"],
            self.main_partial,
            self.n,
            n,
            **self.step_constants,
        )
        torch.sum(self.main_partial, dim=0, out=main_out)
