"""model.py and kernels/cpu.py: every attention backend against an independent float64 reference, the model forward
across backends (the Triton kernel wired in included), and the model details the parity tests (test_convert) do not
reach.
Generation and the KV cache are in test_generate.py; the kernels on their own in test_kernels.py.

The reference (tests/helpers.py) builds its mask from explicit index comparisons and repeats k/v for GQA; it shares
no code with model.py, so a wrong convention in `window_mask` would show up here.
"""
import warnings

import pytest
import torch

import kernels
from helpers import reference_attention
from kernels.cpu import CHUNK_BLOCK, chunked_attention, decode_attention
from model import GPT, GPTConfig, attention


pytestmark = pytest.mark.usefixtures("one_thread")


def random_qkv(B, Hq, Hkv, T, D, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
            for H in (Hq, Hkv, Hkv)]


def values_and_grads(fn, q, k, v, seed=1):
    """Output and d(sum(out * R))/d(q, k, v) for a fixed random R, so every output element weighs in the grads."""
    out = fn(q, k, v)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    grads = torch.autograd.grad((out.double() * weight).sum(), (q, k, v))
    return out, grads


def assert_matches_reference(fn, Hq, Hkv, T, window, sinks, dtype, atol, D=8):
    q, k, v = random_qkv(2, Hq, Hkv, T, D, dtype)
    out, grads = values_and_grads(fn, q, k, v)
    ref, ref_grads = values_and_grads(lambda *x: reference_attention(*x, window, sinks), q, k, v)
    assert out.shape == ref.shape and out.dtype == dtype
    torch.testing.assert_close(out.double(), ref, atol=atol, rtol=atol)
    for name, g, rg in zip("qkv", grads, ref_grads):
        assert g.shape == rg.shape, name
        torch.testing.assert_close(g.double(), rg.double(), atol=atol, rtol=atol, msg=lambda m: f"grad of {name}: {m}")


HEADS = [(4, 4), (4, 2), (4, 1)]
# (T, window): odd lengths, W=1, W < T, W == T, W > T, full attention, and T=1
SHAPES = [(1, 1), (1, None), (13, 1), (13, 3), (13, 13), (13, 40), (13, None), (37, 5), (37, 16), (64, 7)]


@pytest.mark.parametrize("backend", ["dense", "chunked"])
@pytest.mark.parametrize("sinks", [0, 4])
@pytest.mark.parametrize("Hq,Hkv", HEADS)
@pytest.mark.parametrize("T,window", SHAPES)
def test_backend_float64(backend, sinks, Hq, Hkv, T, window):
    fn = lambda q, k, v: attention(q, k, v, window=window, sinks=sinks, backend=backend)  # noqa: E731
    assert_matches_reference(fn, Hq, Hkv, T, window, sinks, torch.float64, atol=1e-10)


@pytest.mark.parametrize("backend", ["dense", "chunked", "auto"])
@pytest.mark.parametrize("T,window,sinks", [(37, 5, 0), (37, 5, 4), (50, 1, 4), (29, None, 0), (64, 16, 2),
                                           (300, 16, 2)])  # auto goes chunked past 2 * (128 + W)
def test_backend_float32(backend, T, window, sinks):
    fn = lambda q, k, v: attention(q, k, v, window=window, sinks=sinks, backend=backend)  # noqa: E731
    assert_matches_reference(fn, 4, 2, T, window, sinks, torch.float32, atol=1e-5, D=16)


@pytest.mark.parametrize("block", [1, 4, 5, 16, 64, 1000])
@pytest.mark.parametrize("T,window,sinks", [(37, 5, 0), (37, 5, 4), (37, 1, 4), (37, 37, 4), (37, 50, 0), (64, 9, 3)])
def test_chunked_block_sizes(block, T, window, sinks):
    """The block size only changes how queries are grouped, never which keys they see (blocks need not divide T)."""
    fn = lambda q, k, v: chunked_attention(q, k, v, window, sinks, block=block)  # noqa: E731
    assert_matches_reference(fn, 4, 2, T, window, sinks, torch.float64, atol=1e-10)


def test_chunked_full_window_and_none_agree():
    """chunked_attention accepts window=None (full causal) directly, as well as through attention()."""
    fn = lambda q, k, v: chunked_attention(q, k, v, None, 0, block=8)  # noqa: E731
    assert_matches_reference(fn, 4, 2, 21, None, 0, torch.float64, atol=1e-10)


def test_chunked_bf16_runs_and_is_close():
    q, k, v = (t.detach() for t in random_qkv(1, 4, 2, 40, 16, torch.bfloat16))
    out = attention(q, k, v, window=6, sinks=2, backend="chunked")
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), reference_attention(q, k, v, 6, 2), atol=3e-2, rtol=3e-2)


def test_auto_backend_on_cpu():
    cpu, f32 = torch.device("cpu"), torch.float32
    assert kernels.auto_backend(cpu, 16, 2 * (CHUNK_BLOCK + 16) + 1, f32) == "chunked"
    assert kernels.auto_backend(cpu, 16, 2 * (CHUNK_BLOCK + 16), f32) == "dense"  # short: the dense mask is faster
    assert kernels.auto_backend(cpu, None, 10_000, f32) == "dense"
    assert kernels.auto_backend(cpu, 16, 10_000, torch.bfloat16) == "chunked"


def test_auto_backend_on_cuda_keeps_full_attention_and_fp32_on_sdpa():
    cuda = torch.device("cuda")  # only the rule is tested: no tensor is made on it
    assert kernels.auto_backend(cuda, None, 4096, torch.bfloat16) == "dense"  # -> SDPA is_causal (flash)
    assert kernels.auto_backend(cuda, 1024, 4096, torch.float32) == "dense"  # no tensor-core path in the kernel
    expected = "triton" if kernels._triton_available() else ("flex" if kernels._flex_available() else "dense")
    assert kernels.auto_backend(cuda, 1024, 4096, torch.bfloat16) == expected
    assert kernels.auto_backend(cuda, 1024, 4096, torch.float16) == expected


def test_unknown_backend_is_a_clear_error():
    q, k, v = (t.detach() for t in random_qkv(1, 2, 2, 5, 4, torch.float32))
    with pytest.raises(ValueError, match="unknown attention backend"):
        attention(q, k, v, window=2, backend="nope")


def _flex_runs_on_this_machine():
    try:
        from torch.nn.attention.flex_attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    q, k, v = (t.detach() for t in random_qkv(1, 2, 2, 8, 4, torch.float32))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attention(q, k, v, window=2, backend="flex")
        return True
    except Exception:  # noqa: BLE001  (any failure means: not usable here)
        return False


@pytest.mark.parametrize("Hq,Hkv", [(4, 2), (4, 1)])
@pytest.mark.parametrize("T,window,sinks", [(37, 5, 0), (37, 5, 4), (13, 1, 4), (13, None, 0), (40, 40, 4)])
def test_flex_forward(Hq, Hkv, T, window, sinks):
    """FlexAttention runs on CPU in eager mode (unfused, forward only): values are checked here, grads on CUDA."""
    if not _flex_runs_on_this_machine():
        pytest.skip("FlexAttention needs CUDA/compile on this torch build")
    q, k, v = (t.detach() for t in random_qkv(2, Hq, Hkv, T, 8, torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = attention(q, k, v, window=window, sinks=sinks, backend="flex")
    torch.testing.assert_close(out, reference_attention(q, k, v, window, sinks), atol=1e-10, rtol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention backward needs CUDA (no CPU backward)")
@pytest.mark.parametrize("T,window,sinks", [(128, 16, 0), (200, 33, 4)])
def test_flex_cuda_grads(T, window, sinks):
    q, k, v = (t.detach().cuda().requires_grad_() for t in random_qkv(1, 4, 2, T, 64, torch.float32))
    out = attention(q, k, v, window=window, sinks=sinks, backend="flex")
    ref = reference_attention(q.cpu(), k.cpu(), v.cpu(), window, sinks)
    torch.testing.assert_close(out.double().cpu(), ref, atol=2e-3, rtol=2e-3)
    out.sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("T,window,sinks", [(37, 5, 4), (129, 16, 0), (13, None, 0)])
def test_flex_length_buckets_do_not_change_the_output(T, window, sinks):
    """On CUDA, flex pads T up to a power of two (one compile per bucket, not per length): padded keys lie after
    every real query, so the cut-back output must equal the reference at the true length."""
    if not _flex_runs_on_this_machine():
        pytest.skip("FlexAttention needs CUDA/compile on this torch build")
    from kernels.flex import bucket_length, flex_windowed_attention
    assert [bucket_length(n) for n in (1, 128, 129, 1000, 4096, 4097)] == [128, 128, 256, 1024, 4096, 8192]
    q, k, v = (t.detach() for t in random_qkv(2, 4, 2, T, 8, torch.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = flex_windowed_attention(q, k, v, window, sinks, bucket=True)
    assert out.shape == q.shape
    torch.testing.assert_close(out, reference_attention(q, k, v, window, sinks), atol=1e-10, rtol=1e-10)


# ----------------------------------------------------------------------------------------------------------------
# Model level: the chunked path is a drop-in replacement for the dense mask


def tiny_windowed_config(**overrides):
    kw = dict(vocab_size=50, n_layer=4, n_head=4, n_kv_head=2, n_embd=32, block_size=64, window=5, sinks=2,
              layer_pattern="LG")
    kw.update(overrides)
    return GPTConfig(**kw)


def forward_backward(net, idx, targets, backend):
    """(logits, loss, {name: grad}) of one forward and backward with the given attention backend."""
    net.config.attn_backend = backend
    net.zero_grad()
    logits, _ = net(idx)
    loss = net(idx, targets)[1].sum() / (targets != -1).sum()
    loss.backward()
    return logits.detach(), loss.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}


@pytest.mark.parametrize("overrides", [{}, dict(pos_emb="learned", norm="layernorm", mlp="gelu", qkv_bias=True,
                                                 sinks=0, n_kv_head=4)])
def test_model_chunked_equals_dense(overrides):
    torch.manual_seed(0)
    gpt = GPT(tiny_windowed_config(**overrides))
    idx = torch.randint(0, 50, (3, 29))
    targets = torch.randint(0, 50, (3, 29))
    targets[0, :7] = -1  # ignored positions take part too

    (l_d, loss_d, g_d), (l_c, loss_c, g_c) = (forward_backward(gpt, idx, targets, b) for b in ("dense", "chunked"))
    torch.testing.assert_close(l_c, l_d, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(loss_c, loss_d, atol=1e-6, rtol=1e-6)
    for name in g_d:
        torch.testing.assert_close(g_c[name], g_d[name], atol=1e-5, rtol=1e-4, msg=lambda m: f"{name}: {m}")


def test_model_window_changes_the_output():
    """The windowed model is really windowed: its logits differ from the full-attention model's past the window."""
    torch.manual_seed(0)
    gpt = GPT(tiny_windowed_config(layer_pattern=None))
    idx = torch.randint(0, 50, (1, 29))
    windowed, _ = gpt(idx)
    gpt.configure_window(None)
    full, _ = gpt(idx)
    torch.testing.assert_close(windowed[:, :5], full[:, :5])  # the first W positions see the same keys
    assert (windowed[:, 10:] - full[:, 10:]).abs().max() > 1e-4


def test_rope_frequencies_stay_float32_under_model_to_bf16():
    cfg = GPTConfig(vocab_size=61, n_layer=1, n_head=2, n_embd=32, block_size=64, rope_theta=500000.0)
    net = GPT(cfg).to(torch.bfloat16)
    assert net.inv_freq.dtype == torch.float32
    assert net.embed.weight.dtype == torch.bfloat16


@pytest.mark.skipif(not kernels._importable("triton"), reason="needs triton (runs in its CPU interpreter)")
@pytest.mark.parametrize("window,sinks,pattern", [(5, 0, None), (4, 2, "LG"), (None, 0, None)])
def test_model_triton_backend_matches_dense(window, sinks, pattern):
    """backend="triton" gives the dense reference's logits, loss and gradients (on CPU in Triton's interpreter:
    TRITON_INTERPRET=1, set by conftest.py, so sizes stay tiny; on a GPU machine on the GPU, where the kernel
    refuses CPU tensors)."""
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = GPTConfig(vocab_size=61, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=64,
                    window=window, sinks=sinks, layer_pattern=pattern)
    net = GPT(cfg).to(device)
    idx = torch.randint(0, 61, (2, 23)).to(device)
    targets = torch.randint(0, 61, (2, 23)).to(device)
    targets[:, :5] = -1

    (ld, lossd, gd), (lt, losst, gt) = (forward_backward(net, idx, targets, b) for b in ("dense", "triton"))
    assert (ld - lt).abs().max() < 1e-4
    assert (lossd - losst).abs() < 1e-5
    for name in gd:
        scale = gd[name].abs().max().clamp(min=1e-3)
        assert (gd[name] - gt[name]).abs().max() / scale < 1e-4, name


def test_forward_temperature_divides_the_logits():
    """RL scores its samples with model(..., temperature=T): per-token losses of softmax(logits / T), against a
    log_softmax of the plain logits computed here; and the logits alone divided by T."""
    torch.manual_seed(0)
    net = GPT(GPTConfig(vocab_size=61, n_layer=1, n_head=2, n_embd=32, block_size=64, window=4))
    idx, targets = torch.randint(0, 61, (2, 9)), torch.randint(0, 61, (2, 9))
    targets[0, :3] = -1
    raw, _ = net(idx)
    expected = -torch.log_softmax(raw.double() / 0.7, -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    expected = torch.where(targets != -1, expected, 0.0)
    _, per_token = net(idx, targets, temperature=0.7)
    torch.testing.assert_close(per_token.double(), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(net(idx, temperature=0.7)[0], raw / 0.7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("B", [1, 4])
def test_decode_attention_against_float64(dtype, B):
    """decode_attention (SDPA, or matmuls + a float32 softmax on CPU in bf16 with B > 1) against
    softmax(q k^T / sqrt(D) + mask) v computed here in float64, with masked slots."""
    g = torch.Generator().manual_seed(0)
    q, K, V = (torch.randn(B, 3, n, 16, generator=g, dtype=torch.float64) for n in (3, 37, 37))
    visible = torch.rand(B, 1, 1, 37, generator=g) > 0.3
    visible[..., 0] = True
    mask = torch.zeros(visible.shape, dtype=torch.float64).masked_fill(~visible, float("-inf"))
    want = torch.softmax(q @ K.transpose(-1, -2) / 4.0 + mask, dim=-1) @ V
    got = decode_attention(q.to(dtype), K.to(dtype), V.to(dtype), mask.to(dtype))
    assert got.dtype == dtype and got.shape == want.shape
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(got.double(), want, atol=tol, rtol=tol)


def test_learned_positions_past_the_context_are_a_clear_error():
    """A model with learned positions: a sequence longer than the context, or given positions past it (GRPO's rows
    continue their prompt at its length), is a one-line ValueError, not nn.Embedding's index error."""
    net = GPT(GPTConfig(vocab_size=61, n_layer=1, n_head=2, n_embd=16, block_size=16, pos_emb="learned",
                        norm="layernorm", mlp="gelu"))
    ids = torch.zeros(1, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="needs 18 positions, more than the model's context of 16"):
        net(ids, ids, positions=torch.arange(14, 18)[None])
    with pytest.raises(ValueError, match="needs 17 positions, more than the model's context of 16"):
        net(torch.zeros(1, 17, dtype=torch.long))
    assert net(ids, ids, positions=torch.arange(12, 16)[None])[1].shape == (1, 4)
