"""The KV cache's decode-step attention (model.CacheStep), with a CPU fast path for bf16/fp16 batches.

    decode_attention(q, K, V, mask) -> o      q (B, Hkv, G, D), K/V (B, Hkv, S, D), mask (B, 1, 1, S) or None

SDPA is the reference and the path everywhere else; tests/test_model.py holds both to a float64 attention.
"""
import torch
import torch.nn.functional as F


def decode_attention(q, K, V, mask):
    """One decode step against the cache: q (B, Hkv, G, D), the G query heads of each kv head as rows; K, V
    (B, Hkv, S, D); mask (B, 1, 1, S) additive or None -> (B, Hkv, G, D). On a CPU in bf16/fp16 with more than one
    row, two matmuls and a float32 softmax beat SDPA's call 2-3x at SmolLM2's shapes, but only on contiguous keys
    (a windowed layer's whole ring; a global layer's cache slice is strided and came out slower end to end): see
    bench/decode_attention.py and bench/RESULTS.md. In fp32, at batch 1 and on GPUs SDPA is as fast or faster."""
    if q.device.type == "cpu" and q.dtype != torch.float32 and q.size(0) > 1 and K.is_contiguous():
        scores = (q @ K.transpose(-1, -2)).float() * q.size(-1) ** -0.5  # (B, Hkv, G, S)
        if mask is not None:
            scores = scores + mask
        return torch.softmax(scores, dim=-1).to(V.dtype) @ V
    return F.scaled_dot_product_attention(q, K, V, attn_mask=mask)
