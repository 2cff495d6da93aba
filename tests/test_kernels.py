"""The Triton windowed-attention kernel against a float64 dense reference (forward and dq/dk/dv).

Without CUDA, tests/conftest.py sets TRITON_INTERPRET=1, so the kernels run in Triton's CPU interpreter with 16-wide
blocks: sizes stay small (T <= 77) but still cross several query and key blocks, so the band bounds, the sink
blocks and the T boundary are all exercised. test_gpu_tiles_match_reference runs the tiles a GPU launch uses
(triton_swa.tiles, which tests/test_kernel_compile.py compiles for each architecture).
"""
import pytest
import torch

pytest.importorskip("triton")
from helpers import reference_attention  # noqa: E402
from kernels import triton_swa  # noqa: E402
from kernels.triton_swa import windowed_attention  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


def rel_err(out, ref):
    # The floor keeps all-zero references meaningful (dq and dk at W=1 without sinks: a softmax over one key).
    return ((out.double() - ref).abs().max() / ref.abs().max().clamp_min(0.1)).item()


def make_inputs(B, Hq, Hkv, T, D, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, Hq, T, D, generator=g).to(DEVICE, dtype)
    k = torch.randn(B, Hkv, T, D, generator=g).to(DEVICE, dtype)
    v = torch.randn(B, Hkv, T, D, generator=g).to(DEVICE, dtype)
    do = torch.randn(B, Hq, T, D, generator=g).to(DEVICE, dtype)
    return q, k, v, do


def check_against_reference(q, k, v, do, window, sinks, tol, scale=None):
    q, k, v = (x.detach().requires_grad_() for x in (q, k, v))
    out = windowed_attention(q, k, v, window=window, sinks=sinks, scale=scale)
    out.backward(do)

    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref = reference_attention(q64, k64, v64, window, sinks, scale)
    ref.backward(do.double())

    assert out.shape == q.shape and out.dtype == q.dtype
    errs = {"out": rel_err(out, ref), "dq": rel_err(q.grad, q64.grad),
            "dk": rel_err(k.grad, k64.grad), "dv": rel_err(v.grad, v64.grad)}
    assert all(e <= tol for e in errs.values()), f"errors {errs} above {tol}"


CASES = [
    # B, Hq, Hkv, T, D, window, sinks
    (1, 2, 2, 37, 32, 8, 0),  # odd T, band narrower than a block
    (1, 2, 2, 37, 32, 8, 1),
    (1, 2, 2, 37, 32, 8, 4),
    (2, 4, 2, 77, 64, 18, 4),  # GQA 2:1, band wider than a block; W % 16 == 2 puts an edge row on a block start
    (1, 4, 1, 77, 32, 5, 1),  # GQA 4:1 (one kv head)
    (1, 2, 1, 37, 32, 1, 0),  # W=1: each query sees only itself
    (1, 2, 1, 37, 32, 1, 4),
    (1, 2, 2, 37, 64, 37, 0),  # W == T
    (1, 2, 2, 37, 32, 100, 4),  # W > T
    (1, 2, 2, 37, 32, None, 0),  # plain causal
    (1, 2, 2, 37, 32, None, 4),
    (1, 2, 1, 77, 32, 4, 20),  # sinks spanning two key blocks, more sinks than the window
    (1, 1, 1, 5, 32, 3, 2),  # T smaller than one block
    (1, 2, 1, 37, 48, 8, 4),  # head dim that is not a power of two (padded to 64)
]


@pytest.mark.parametrize("B,Hq,Hkv,T,D,window,sinks", CASES)
def test_fp32_matches_reference(B, Hq, Hkv, T, D, window, sinks):
    q, k, v, do = make_inputs(B, Hq, Hkv, T, D, torch.float32)
    check_against_reference(q, k, v, do, window, sinks, TOL[torch.float32])


def test_custom_scale():
    q, k, v, do = make_inputs(1, 2, 1, 37, 32, torch.float32)
    check_against_reference(q, k, v, do, 8, 4, TOL[torch.float32], scale=0.3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("B,Hq,Hkv,T,D,window,sinks", [(1, 2, 1, 37, 32, 8, 4), (2, 4, 2, 77, 64, 18, 1)])
def test_half_precision_matches_reference(dtype, B, Hq, Hkv, T, D, window, sinks):
    if dtype == torch.bfloat16 and DEVICE == "cpu":
        pytest.skip("Triton's CPU interpreter multiplies the raw uint16 bits of bf16 in tl.dot; bf16 runs on CUDA")
    q, k, v, do = make_inputs(B, Hq, Hkv, T, D, dtype)
    check_against_reference(q, k, v, do, window, sinks, TOL[dtype])


@pytest.mark.parametrize("dtype,D", [(torch.float16, 128), (torch.float16, 256), (torch.float32, 64),
                                     (torch.float32, 128)])
def test_gpu_tiles_match_reference(monkeypatch, dtype, D):
    # sm_89's tiles where they differ from the 64x64 ones the kernel had before: dK/dV's 32x64 and 32x32, the
    # 256-wide head's smaller blocks, fp32's 32x32 and 16x32 (bf16 takes fp16's tiles; the interpreter cannot run
    # bf16 dots). T=150 and W=20 give several blocks of 64 and a query block whose band leaves a sink block behind.
    monkeypatch.setattr(triton_swa, "INTERPRETER_ARCH", 89)
    q, k, v, do = make_inputs(1, 2, 1, 150, D, dtype)
    check_against_reference(q, k, v, do, 20, 4, TOL[dtype])


def test_head_dim_beyond_the_gpu_tiles_is_refused_in_one_line(monkeypatch):
    monkeypatch.setattr(triton_swa, "INTERPRETER_ARCH", 89)  # on CPU, what a GPU launch would do
    q = torch.randn(1, 2, 8, 256, device=DEVICE)
    with pytest.raises(ValueError, match="head dim 256 in float32 has no triton tiles") as refused:
        windowed_attention(q, q, q, window=4)
    assert "\n" not in str(refused.value)
    with pytest.raises(ValueError, match="head dim 320 is not supported"):
        windowed_attention(*(torch.randn(1, 2, 8, 320, device=DEVICE, dtype=torch.float16),) * 3, window=4)


def test_non_contiguous_inputs():
    B, Hq, Hkv, T, D = 2, 4, 2, 37, 32
    g = torch.Generator().manual_seed(1)
    q = torch.randn(B, T, Hq, D, generator=g).to(DEVICE).transpose(1, 2)  # (B, Hq, T, D) view of (B, T, Hq, D)
    kv = torch.randn(B, T, 2, Hkv, D, generator=g).to(DEVICE)
    k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)  # interleaved in one buffer
    do = torch.randn(B, T, Hq, D, generator=g).to(DEVICE).transpose(1, 2)
    assert not (q.is_contiguous() or k.is_contiguous() or v.is_contiguous() or do.is_contiguous())
    check_against_reference(q, k, v, do, 8, 4, TOL[torch.float32])


def test_window_none_equals_window_ge_T():
    q, k, v, _ = make_inputs(1, 2, 1, 37, 32, torch.float32)
    full = windowed_attention(q, k, v, window=None)
    assert torch.equal(full, windowed_attention(q, k, v, window=37))
    assert torch.equal(full, windowed_attention(q, k, v, window=1000))


@pytest.mark.parametrize("kwargs,message", [
    (dict(k_heads=3), "multiple of the kv heads"),
    (dict(window=0), "window must be"),
    (dict(sinks=-1), "sinks must be"),
    (dict(dtype=torch.float64), "dtype"),
])
def test_bad_inputs_raise_one_line_errors(kwargs, message):
    dtype = kwargs.get("dtype", torch.float32)
    q = torch.randn(1, 4, 8, 32, device=DEVICE, dtype=dtype)
    k = torch.randn(1, kwargs.get("k_heads", 2), 8, 32, device=DEVICE, dtype=dtype)
    with pytest.raises(ValueError, match=message):
        windowed_attention(q, k, k, window=kwargs.get("window"), sinks=kwargs.get("sinks", 0))
