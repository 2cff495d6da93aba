"""Causal sliding-window flash attention with attention sinks, in Triton (forward and backward).

    windowed_attention(q, k, v, window=None, sinks=0, scale=None) -> o
        q: (B, Hq, T, D), k/v: (B, Hkv, T, D), Hq a multiple of Hkv (GQA: query head h reads kv head h // (Hq//Hkv),
        k/v are never repeated in memory). o: (B, Hq, T, D) in q's dtype. Differentiable in q, k and v.

Which keys a query sees (the project-wide convention): query i attends keys max(0, i-W+1)..i (W keys including
itself) plus the sink keys 0..sinks-1. window=None is plain causal attention. A sink that also lies in the band
is counted once.

Tiling (FlashAttention-2). One program owns BLOCK_M query rows of one (batch, head) and walks over BLOCK_N-wide key
blocks with an online softmax. Only two key ranges are visited, about (W + BLOCK_M) / BLOCK_N band blocks plus
ceil(sinks / BLOCK_N) sink blocks per query block, so the cost is O(T * W) instead of O(T^2):

    sink blocks:  [0, min(sinks, band_lo))        keys left of the band that only sinks can reach
    band blocks:  [band_lo, band_hi)              band_lo = floor(max(0, start_m - W + 1) / BLOCK_N) * BLOCK_N
                                                  band_hi = min(start_m + BLOCK_M, T)

band_lo is a multiple of BLOCK_N, so the two ranges never share a key block: no pair is counted twice. Both band
edges cut through blocks, so every block is masked with the same predicate (`_attended`): causal, and inside the
window or a sink, and inside T.

Example: T=12, W=4, sinks=1, BLOCK_M=BLOCK_N=4. One character per (query, key) pair:
x = in the window, s = reached only as a sink, . = masked.

                 keys:  0123   4567   89ab
    query block 0  0    x...   ....   ....
                   1    xx..   ....   ....
                   2    xxx.   ....   ....
                   3    xxxx   ....   ....
    query block 1  4    sxxx   x...   ....    band_lo = floor(1/4)*4 = 0: key blocks 0-1, no sink blocks
                   5    s.xx   xx..   ....
                   6    s..x   xxx.   ....
                   7    s...   xxxx   ....
    query block 2  8    s...   .xxx   x...    band_lo = floor(5/4)*4 = 4: key blocks 1-2 (band),
                   9    s...   ..xx   xx..    plus key block 0 for the sink key 0 (keys 1-3 of it masked)
                   a    s...   ...x   xxx.
                   b    s...   ....   xxxx

Backward, same pairs seen from the other side:
  * dQ: one program per query block, visiting the same sink + band key blocks as the forward.
  * dK/dV: one program per key block (and kv head). Through the window, keys start_n..start_n+BLOCK_N-1 are seen
    by queries start_n .. start_n+BLOCK_N-1 + W-1, so it visits query blocks from floor(start_n/BLOCK_M)*BLOCK_M to
    min(start_n + BLOCK_N + W - 1, T). A key block holding a sink is seen by every later query, so that block
    visits all query blocks up to T (only ceil(sinks/BLOCK_N) blocks pay this O(T) cost). The program loops over the
    Hq/Hkv query heads of its group and sums their contributions, so nothing is materialized per query head.
  * delta = rowsum(dO * O) is computed first by a small kernel (it is the softmax-gradient correction term).

Numerics: everything is accumulated in fp32; p and ds are cast to the input dtype (fp16/bf16/fp32) only as operands
of tl.dot. Masked logits are -inf while the running max starts at a finite -1e30, so a row whose first visited block
is fully masked computes exp(-inf - (-1e30)) = 0 instead of exp(-inf + inf) = NaN. fp32 inputs use IEEE dots (no
TF32), so fp32 results match a float64 reference to ~1e-6. Head dims that are not a power of two are padded to
BLOCK_D with masked loads; any T works (rows and keys >= T are masked). Inputs may be non-contiguous: every
kernel takes explicit strides.

Tiles per GPU: tiles(arch, head_dim, dtype, kernel) gives each kernel its block sizes, warps and pipeline stages for
the GPU it launches on, so that its shared memory fits that GPU's per-block limit (99 KiB on sm_86/sm_89, 163 KiB on
sm_80, 227 KiB on sm_90). tests/test_kernel_compile.py compiles every kernel for sm_80, sm_89 and sm_90 without a
GPU; bench/RESULTS.md has the shared memory and spills of each. Head dims go up to 256 in bf16/fp16, 128 in fp32.
"""
import functools
import math
import os

import torch
import triton
import triton.language as tl


# ----------------------------------------------------------------------------------------------------------------
# Kernels


@triton.jit
def _attended(offs_m, offs_n, T, W, SINKS):
    """(BLOCK_M, BLOCK_N) bool: does query offs_m[i] attend key offs_n[j]?"""
    q_pos = offs_m[:, None]
    k_pos = offs_n[None, :]
    in_window = (k_pos <= q_pos) & (q_pos - k_pos < W)
    is_sink = (k_pos < SINKS) & (k_pos <= q_pos)
    return (in_window | is_sink) & (q_pos < T) & (k_pos < T)


@triton.jit
def _key_block_start(it, n_sink_blocks, band_lo, BLOCK_N: tl.constexpr):
    """Iteration `it` of a query block's key loop: first the sink blocks, then the band blocks."""
    return tl.where(it < n_sink_blocks, it * BLOCK_N, band_lo + (it - n_sink_blocks) * BLOCK_N)


@triton.jit
def _fwd_kernel(
    Q, K, V, O, LSE,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kt, stride_kd,
    stride_vb, stride_vh, stride_vt, stride_vd,
    stride_ob, stride_oh, stride_ot, stride_od,
    H, GROUP, T, W, SINKS, scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    kv_h = h // GROUP

    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM

    q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :] * stride_qd
    q = tl.load(q_ptrs, mask=(offs_m[:, None] < T) & d_ok[None, :], other=0.0)  # (BLOCK_M, BLOCK_D)
    k_base = K + b * stride_kb + kv_h * stride_kh
    v_base = V + b * stride_vb + kv_h * stride_vh

    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)  # running row max of the logits
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)  # running softmax denominator (relative to m_i)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)  # running numerator @ V

    band_lo = (tl.maximum(start_m - W + 1, 0) // BLOCK_N) * BLOCK_N
    band_hi = tl.minimum(start_m + BLOCK_M, T)
    n_sink_blocks = tl.cdiv(tl.minimum(SINKS, band_lo), BLOCK_N)
    n_blocks = n_sink_blocks + tl.cdiv(band_hi - band_lo, BLOCK_N)
    for it in range(0, n_blocks):
        start_n = _key_block_start(it, n_sink_blocks, band_lo, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_mask = (offs_n[:, None] < T) & d_ok[None, :]
        k = tl.load(k_base + offs_n[:, None] * stride_kt + offs_d[None, :] * stride_kd, mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * stride_vt + offs_d[None, :] * stride_vd, mask=kv_mask, other=0.0)

        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale  # (BLOCK_M, BLOCK_N) fp32
        s = tl.where(_attended(offs_m, offs_n, T, W, SINKS), s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        alpha = tl.exp(m_i - m_new)  # rescales what was accumulated under the old max
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new

    # Every real row sees at least itself, so l_i >= 1 there; only padding rows (>= T, never stored) have l_i == 0.
    l_safe = tl.where(l_i > 0, l_i, 1.0)
    o = acc / l_safe[:, None]
    row_ok = offs_m < T
    o_ptrs = O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :] * stride_od
    tl.store(o_ptrs, o.to(O.dtype.element_ty), mask=row_ok[:, None] & d_ok[None, :])
    tl.store(LSE + pid_bh.to(tl.int64) * T + offs_m, m_i + tl.log(l_safe), mask=row_ok)


@triton.jit
def _bwd_delta_kernel(
    O, DO, DELTA,
    stride_ob, stride_oh, stride_ot, stride_od,
    stride_dob, stride_doh, stride_dot, stride_dod,
    H, T,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_m[:, None] < T) & (offs_d[None, :] < HEAD_DIM)
    o = tl.load(O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_ot + offs_d[None, :] * stride_od,
                mask=mask, other=0.0)
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dot + offs_d[None, :] * stride_dod,
                 mask=mask, other=0.0)
    delta = tl.sum(o.to(tl.float32) * do.to(tl.float32), 1)
    tl.store(DELTA + pid_bh.to(tl.int64) * T + offs_m, delta, mask=offs_m < T)


@triton.jit
def _bwd_dq_kernel(
    Q, K, V, DO, LSE, DELTA, DQ,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kt, stride_kd,
    stride_vb, stride_vh, stride_vt, stride_vd,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_dqb, stride_dqh, stride_dqt, stride_dqd,
    H, GROUP, T, W, SINKS, scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    kv_h = h // GROUP

    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    row_ok = offs_m < T
    q_mask = row_ok[:, None] & d_ok[None, :]

    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qt + offs_d[None, :] * stride_qd,
                mask=q_mask, other=0.0)
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dot + offs_d[None, :] * stride_dod,
                 mask=q_mask, other=0.0)
    lse = tl.load(LSE + pid_bh.to(tl.int64) * T + offs_m, mask=row_ok, other=0.0)
    delta = tl.load(DELTA + pid_bh.to(tl.int64) * T + offs_m, mask=row_ok, other=0.0)
    k_base = K + b * stride_kb + kv_h * stride_kh
    v_base = V + b * stride_vb + kv_h * stride_vh

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    # The same key blocks as the forward: sink blocks, then the band.
    band_lo = (tl.maximum(start_m - W + 1, 0) // BLOCK_N) * BLOCK_N
    band_hi = tl.minimum(start_m + BLOCK_M, T)
    n_sink_blocks = tl.cdiv(tl.minimum(SINKS, band_lo), BLOCK_N)
    n_blocks = n_sink_blocks + tl.cdiv(band_hi - band_lo, BLOCK_N)
    for it in range(0, n_blocks):
        start_n = _key_block_start(it, n_sink_blocks, band_lo, BLOCK_N)
        offs_n = start_n + tl.arange(0, BLOCK_N)
        kv_mask = (offs_n[:, None] < T) & d_ok[None, :]
        k = tl.load(k_base + offs_n[:, None] * stride_kt + offs_d[None, :] * stride_kd, mask=kv_mask, other=0.0)
        v = tl.load(v_base + offs_n[:, None] * stride_vt + offs_d[None, :] * stride_vd, mask=kv_mask, other=0.0)

        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale
        s = tl.where(_attended(offs_m, offs_n, T, W, SINKS), s, float("-inf"))
        p = tl.exp(s - lse[:, None])  # the forward's softmax, recomputed from the saved log-sum-exp
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
        ds = p * (dp - delta[:, None])  # softmax backward: dS = P * (dP - rowsum(dO * O))
        dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PRECISION)

    dq = dq * scale
    tl.store(DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqt + offs_d[None, :] * stride_dqd,
             dq.to(DQ.dtype.element_ty), mask=q_mask)


@triton.jit
def _bwd_dkdv_kernel(
    Q, K, V, DO, LSE, DELTA, DK, DV,
    stride_qb, stride_qh, stride_qt, stride_qd,
    stride_kb, stride_kh, stride_kt, stride_kd,
    stride_vb, stride_vh, stride_vt, stride_vd,
    stride_dob, stride_doh, stride_dot, stride_dod,
    stride_dkb, stride_dkh, stride_dkt, stride_dkd,
    stride_dvb, stride_dvh, stride_dvt, stride_dvd,
    H, H_KV, GROUP, T, W, SINKS, scale,
    HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)  # over B * H_KV
    b = (pid_bh // H_KV).to(tl.int64)
    kv_h = (pid_bh % H_KV).to(tl.int64)

    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    d_ok = offs_d < HEAD_DIM
    kv_mask = (offs_n[:, None] < T) & d_ok[None, :]

    k = tl.load(K + b * stride_kb + kv_h * stride_kh + offs_n[:, None] * stride_kt + offs_d[None, :] * stride_kd,
                mask=kv_mask, other=0.0)  # (BLOCK_N, BLOCK_D)
    v = tl.load(V + b * stride_vb + kv_h * stride_vh + offs_n[:, None] * stride_vt + offs_d[None, :] * stride_vd,
                mask=kv_mask, other=0.0)
    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)

    # Queries that see these keys: through the window, rows start_n .. start_n + BLOCK_N - 1 + W - 1;
    # a block holding a sink key is seen by every later row.
    q_lo = (start_n // BLOCK_M) * BLOCK_M
    q_hi = tl.where(start_n < SINKS, T, tl.minimum(start_n + BLOCK_N + W - 1, T))
    for g in range(0, GROUP):  # the query heads sharing this kv head
        h = kv_h * GROUP + g
        q_base = Q + b * stride_qb + h * stride_qh
        do_base = DO + b * stride_dob + h * stride_doh
        row_stats = (b * H + h) * T  # LSE / DELTA are (B, H, T) contiguous
        for start_m in range(q_lo, q_hi, BLOCK_M):
            offs_m = start_m + tl.arange(0, BLOCK_M)
            row_ok = offs_m < T
            q_mask = row_ok[:, None] & d_ok[None, :]
            q = tl.load(q_base + offs_m[:, None] * stride_qt + offs_d[None, :] * stride_qd, mask=q_mask, other=0.0)
            do = tl.load(do_base + offs_m[:, None] * stride_dot + offs_d[None, :] * stride_dod, mask=q_mask,
                         other=0.0)
            lse = tl.load(LSE + row_stats + offs_m, mask=row_ok, other=0.0)
            delta = tl.load(DELTA + row_stats + offs_m, mask=row_ok, other=0.0)

            s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * scale  # (BLOCK_M, BLOCK_N)
            s = tl.where(_attended(offs_m, offs_n, T, W, SINKS), s, float("-inf"))
            p = tl.exp(s - lse[:, None])
            dv += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision=DOT_PRECISION)
            dp = tl.dot(do, tl.trans(v), input_precision=DOT_PRECISION)
            ds = p * (dp - delta[:, None])
            dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision=DOT_PRECISION)

    dk = dk * scale
    tl.store(DK + b * stride_dkb + kv_h * stride_dkh + offs_n[:, None] * stride_dkt + offs_d[None, :] * stride_dkd,
             dk.to(DK.dtype.element_ty), mask=kv_mask)
    tl.store(DV + b * stride_dvb + kv_h * stride_dvh + offs_n[:, None] * stride_dvt + offs_d[None, :] * stride_dvd,
             dv.to(DV.dtype.element_ty), mask=kv_mask)


# ----------------------------------------------------------------------------------------------------------------
# Launch helpers


def _interpreting():
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


# Shared memory one thread block may use (KiB), by compute capability. CUDA C++ Programming Guide, "Compute
# Capabilities" appendix (maximum shared memory per thread block, with the cudaFuncSetAttribute opt-in Triton makes):
# 163 KiB on 8.0 and 8.7, 99 KiB on 8.6 and 8.9 (A10, L4, RTX 4090), 227 KiB on 9.0. Other GPUs get the tiles of
# the 99 KiB ones (only sm_80, sm_89 and sm_90 are compile-checked).
SHARED_KIB = {80: 163, 86: 99, 87: 163, 89: 99, 90: 227}

# (BLOCK_M, BLOCK_N, num_warps, num_stages) per kernel and BLOCK_D, chosen with bench/kernel_tiles.py so that every
# kernel fits SHARED_KIB on sm_80, sm_89 and sm_90 (tests/test_kernel_compile.py holds them to it; spills are
# reported there, not asserted). FlashAttention's 64x64 tiles stay where they fit. dK/dV keeps two fp32 accumulators of
# BLOCK_N x BLOCK_D, so at BLOCK_D >= 128 it walks the queries 32 rows at a time with 8 warps. At BLOCK_D 256 its
# keys come 32 at a time: 16 x 64 with 8 warps and 2 stages, which the compile check passes, computed dK wrong on an
# H200 (Triton 3.6; dV, 1 stage or 4 warps were right: a compiler fault), and 32 x 32 was right there in fp16 and
# bf16 (bench/RESULTS.md, "GPU check").
_TILES_16BIT = {
    "fwd": {64: (64, 64, 4, 3), 128: (64, 64, 4, 3), 256: (64, 32, 8, 2)},
    "bwd_dq": {64: (64, 64, 4, 3), 128: (64, 64, 4, 3), 256: (32, 32, 4, 2)},
    "bwd_dkdv": {64: (64, 64, 4, 3), 128: (32, 64, 8, 2), 256: (32, 32, 8, 2)},
}
# fp32's IEEE dots run as FMAs on the CUDA cores, not the tensor cores, and need many more registers per output
# element: 64x64 tiles spilled kilobytes per thread, so fp32 tiles are small.
_TILES_FP32 = {
    "fwd": {64: (32, 32, 4, 2), 128: (32, 32, 8, 2)},
    "bwd_dq": {64: (32, 32, 4, 2), 128: (32, 32, 4, 2)},
    "bwd_dkdv": {64: (32, 32, 8, 2), 128: (16, 32, 8, 2)},
}
KERNELS = ("fwd", "bwd_delta", "bwd_dq", "bwd_dkdv")


def tiles(arch, head_dim, dtype, kernel):
    """Launch options of one kernel on a GPU of compute capability `arch` (80 = sm_80): block sizes, num_warps and
    num_stages, as keyword arguments of that kernel. Pure, so tests check every architecture without its GPU.

    Raises a one-line ValueError for what no tile here fits: head dims above 256, and above 128 in float32.
    """
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; one of {', '.join(KERNELS)}")
    fp32 = dtype == torch.float32
    table = _TILES_FP32 if fp32 else _TILES_16BIT
    key = max(64, _block_d(head_dim))
    if key not in table["fwd"]:
        raise ValueError(f"head dim {head_dim} in {str(dtype).removeprefix('torch.')} has no triton tiles on GPU "
                         f"(up to 128 in float32, 256 in bfloat16/float16); use another attention backend")
    if kernel == "bwd_delta":  # a row-wise reduction: no dot, no pipeline
        return dict(BLOCK_D=_block_d(head_dim), BLOCK_M=64, num_warps=4)
    block_m, block_n, num_warps, num_stages = table[kernel][key]
    if kernel == "bwd_dq" and not fp32 and key == 128 and SHARED_KIB.get(arch, 99) < 163:
        num_stages = 2  # a third stage of K and V tiles does not fit the 99 KiB of sm_86/sm_89
    return dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=_block_d(head_dim), DOT_PRECISION=_dot_precision(dtype),
                num_warps=num_warps, num_stages=num_stages)


def _block_d(head_dim):
    return max(16, triton.next_power_of_2(head_dim))  # tl.dot needs a power of two >= 16


def _dot_precision(dtype):
    # fp32 gets exact IEEE dots, not TF32; None keeps the backend's default for 16-bit inputs.
    return "ieee" if dtype == torch.float32 else None


# Tests set a compute capability here to run that GPU's tiles in the CPU interpreter.
INTERPRETER_ARCH = None


@functools.lru_cache(maxsize=None)
def _device_arch(device):
    major, minor = torch.cuda.get_device_capability(device)
    return 10 * major + minor


def _config(q, kernel):
    """Launch options of `kernel` for q. The interpreter takes 16-wide blocks unless INTERPRETER_ARCH is set: they
    keep it fast and make the tests cross several block boundaries."""
    D = q.shape[-1]
    if _interpreting() and INTERPRETER_ARCH is None:
        if kernel == "bwd_delta":
            return dict(BLOCK_D=_block_d(D), BLOCK_M=16)
        return dict(BLOCK_M=16, BLOCK_N=16, BLOCK_D=_block_d(D), DOT_PRECISION=_dot_precision(q.dtype))
    arch = INTERPRETER_ARCH if _interpreting() else _device_arch(q.device)
    return tiles(arch, D, q.dtype, kernel)


def _strides(x):
    return x.stride(0), x.stride(1), x.stride(2), x.stride(3)


def _forward(q, k, v, W, sinks, scale):
    B, H, T, D = q.shape
    cfg = _config(q, "fwd")
    o = torch.empty((B, H, T, D), dtype=q.dtype, device=q.device)
    lse = torch.empty((B, H, T), dtype=torch.float32, device=q.device)
    grid = (triton.cdiv(T, cfg["BLOCK_M"]), B * H)
    _fwd_kernel[grid](
        q, k, v, o, lse,
        *_strides(q), *_strides(k), *_strides(v), *_strides(o),
        H, H // k.shape[1], T, W, sinks, scale,
        HEAD_DIM=D, **cfg,
    )
    return o, lse


def _backward(do, q, k, v, o, lse, W, sinks, scale):
    B, H, T, D = q.shape
    H_KV = k.shape[1]
    delta = torch.empty_like(lse)
    cfg = _config(q, "bwd_delta")
    _bwd_delta_kernel[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](
        o, do, delta, *_strides(o), *_strides(do), H, T,
        HEAD_DIM=D, **cfg,
    )
    dq = torch.empty((B, H, T, D), dtype=q.dtype, device=q.device)
    dk = torch.empty((B, H_KV, T, D), dtype=k.dtype, device=k.device)
    dv = torch.empty((B, H_KV, T, D), dtype=v.dtype, device=v.device)
    cfg = _config(q, "bwd_dq")
    _bwd_dq_kernel[(triton.cdiv(T, cfg["BLOCK_M"]), B * H)](
        q, k, v, do, lse, delta, dq,
        *_strides(q), *_strides(k), *_strides(v), *_strides(do), *_strides(dq),
        H, H // H_KV, T, W, sinks, scale,
        HEAD_DIM=D, **cfg,
    )
    cfg = _config(q, "bwd_dkdv")
    grid_n = (triton.cdiv(T, cfg["BLOCK_N"]), B * H_KV)  # key block first: the long sink blocks launch first
    _bwd_dkdv_kernel[grid_n](
        q, k, v, do, lse, delta, dk, dv,
        *_strides(q), *_strides(k), *_strides(v), *_strides(do), *_strides(dk), *_strides(dv),
        H, H_KV, H // H_KV, T, W, sinks, scale,
        HEAD_DIM=D, **cfg,
    )
    return dq, dk, dv


class _WindowedAttention(torch.autograd.Function):
    # Under autocast the kernel runs in the dtype its inputs already have (the model casts q, k, v to one dtype),
    # and backward runs under the same autocast state as forward, as autograd functions must declare.
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, q, k, v, W, sinks, scale):
        o, lse = _forward(q, k, v, W, sinks, scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.W, ctx.sinks, ctx.scale = W, sinks, scale
        return o

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _backward(do, q, k, v, o, lse, ctx.W, ctx.sinks, ctx.scale)
        return dq, dk, dv, None, None, None


# ----------------------------------------------------------------------------------------------------------------
# Public entry point


def _check_inputs(q, k, v, window, sinks):
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"windowed_attention expects 4-d (B, H, T, D) tensors, got q{tuple(q.shape)} "
                         f"k{tuple(k.shape)} v{tuple(v.shape)}")
    B, Hq, T, D = q.shape
    if k.shape != v.shape or k.shape[0] != B or k.shape[2:] != (T, D):
        raise ValueError(f"k and v must be (B, Hkv, T, D) = ({B}, Hkv, {T}, {D}) like q, got k{tuple(k.shape)} "
                         f"v{tuple(v.shape)}")
    if k.shape[1] == 0 or Hq % k.shape[1] != 0:
        raise ValueError(f"the number of query heads ({Hq}) must be a multiple of the kv heads ({k.shape[1]})")
    if T == 0:
        raise ValueError("windowed_attention needs at least one position (T >= 1)")
    if not 1 <= D <= 256:
        raise ValueError(f"head dim {D} is not supported; use 1..256 (tested: 32, 48, 64, 128, 256)")
    if q.dtype not in (torch.float16, torch.bfloat16, torch.float32) or k.dtype != q.dtype or v.dtype != q.dtype:
        raise ValueError(f"q, k, v must share one dtype among float16/bfloat16/float32, got "
                         f"{q.dtype}/{k.dtype}/{v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError(f"q, k, v must be on one device, got {q.device}/{k.device}/{v.device}")
    if q.device.type != "cuda" and not _interpreting():
        raise ValueError(f"the triton kernel needs CUDA tensors (got {q.device}); on CPU set TRITON_INTERPRET=1 "
                         f"before importing triton (slow, for tests) or use another attention backend")
    if window is not None and (not isinstance(window, int) or window < 1):
        raise ValueError(f"window must be a positive int or None, got {window!r}")
    if not isinstance(sinks, int) or sinks < 0:
        raise ValueError(f"sinks must be a non-negative int, got {sinks!r}")


def windowed_attention(q, k, v, window=None, sinks=0, scale=None):
    """Causal attention where query i sees keys max(0, i-W+1)..i plus keys 0..sinks-1.

    q: (B, Hq, T, D), k/v: (B, Hkv, T, D) with Hq % Hkv == 0; window=None means full causal attention;
    scale defaults to 1/sqrt(D). Returns (B, Hq, T, D) in q's dtype; gradients flow to q, k and v.
    """
    _check_inputs(q, k, v, window, sinks)
    T, D = q.shape[2], q.shape[3]
    W = T if window is None else min(window, T)  # a window of T or more is plain causal attention
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    return _WindowedAttention.apply(q, k, v, W, sinks, scale)
