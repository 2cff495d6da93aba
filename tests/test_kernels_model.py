"""The Triton kernel wired into the model: backend="triton" gives the dense reference's logits, loss and gradients.

On CPU this runs the kernel in Triton's interpreter (TRITON_INTERPRET=1, set by conftest.py), so sizes stay tiny.
"""
import pytest
import torch

pytest.importorskip("triton")

from model import GPT, GPTConfig  # noqa: E402


@pytest.mark.parametrize("window,sinks,pattern", [(5, 0, None), (4, 2, "LG"), (None, 0, None)])
def test_model_triton_backend_matches_dense(window, sinks, pattern):
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=61, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=64,
                    window=window, sinks=sinks, layer_pattern=pattern)
    model = GPT(cfg)
    idx = torch.randint(0, 61, (2, 23))
    targets = torch.randint(0, 61, (2, 23))
    targets[:, :5] = -1

    results = {}
    for backend in ("dense", "triton"):
        model.config.attn_backend = backend
        model.zero_grad()
        logits, loss = model(idx, targets)
        loss.backward()
        results[backend] = (logits.detach(), loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()})

    (ld, lossd, gd), (lt, losst, gt) = results["dense"], results["triton"]
    assert (ld - lt).abs().max() < 1e-4
    assert (lossd - losst).abs() < 1e-5
    for name in gd:
        scale = gd[name].abs().max().clamp(min=1e-3)
        assert (gd[name] - gt[name]).abs().max() / scale < 1e-4, name

