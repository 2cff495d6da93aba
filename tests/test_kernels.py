"""The Triton windowed-attention kernel against a float64 dense reference (forward and dq/dk/dv).

Without CUDA, tests/conftest.py sets TRITON_INTERPRET=1, so the kernels run in Triton's CPU interpreter with 16-wide
blocks: sizes stay small (T <= 77) but still cross several query and key blocks, so the band bounds, the sink
blocks and the T boundary are all exercised.
"""
import pytest
import torch

pytest.importorskip("triton")
from helpers import reference_attention  # noqa: E402
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
