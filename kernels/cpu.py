"""CPU fast paths, each held by tests to a float64 reference (and to model.py's dense path):

    chunked_attention   O(T*W) windowed attention for long sequences (model.attention's "chunked" backend)
    decode_attention    one cached decode step (generation.cached_attention)
"""
import torch
import torch.nn.functional as F

CHUNK_BLOCK = 128  # queries per block of the chunked path (bench/attention.py --tune_block)


def chunked_attention(q, k, v, window, sinks, block=CHUNK_BLOCK):
    """O(T*W) attention in plain PyTorch: each block of `block` queries sees a band of block+W-1 keys plus the sinks.

    The query blocks become the batch of one SDPA call: the key bands are one `unfold` of K padded on the left by
    W-1 zeros (no Python loop over blocks), the sink keys are put in front of every band, and one additive mask per
    block keeps exactly the keys `window_mask` allows, so band and sinks share one softmax. SDPA's fused kernel
    neither materializes the (block, band) probabilities nor keeps them for backward, so it beats an explicit
    matmul + softmax on CPU. Blocks lead the layout, (nb, B*H, ...), so batch and heads merge without a
    copy and the mask is shared by every row and head. Time and memory grow as T * (block + W + sinks);
    bench/attention.py picks the default block (smaller blocks waste less compute on the band, larger ones copy
    fewer band keys).
    """
    from model import window_mask  # the one rule; imported here because model imports this module

    B, Hq, T, D = q.shape
    window = T if window is None else min(window, T)  # a band of T keys is full causal attention
    Hkv = k.size(1)
    C = min(block, T)
    nb = -(-T // C)  # number of query blocks
    span = C + window - 1  # keys a query block can see: [block_start - W + 1, block_end)
    n_sink = min(sinks, T)
    dev = q.device

    qb = F.pad(q, (0, 0, 0, nb * C - T)).view(B, Hq, nb, C, D).permute(2, 0, 1, 3, 4).flatten(1, 2)  # (nb, B*Hq, C, D)
    kb, vb = (F.pad(x, (0, 0, window - 1, nb * C - T)).unfold(2, span, C).permute(2, 0, 1, 4, 3).flatten(1, 2)
              for x in (k, v))  # (nb, B*Hkv, span, D)

    # absolute positions: query r of block i is i*C + r; key j of its band is i*C - (W-1) + j
    q_pos = (torch.arange(nb, device=dev)[:, None] * C + torch.arange(C, device=dev))[:, :, None]  # (nb, C, 1)
    k_pos = (torch.arange(nb, device=dev)[:, None] * C - (window - 1) + torch.arange(span, device=dev))[:, None, :]
    visible = window_mask(q_pos, k_pos, window, 0)  # (nb, C, span); the zero padding sits at k_pos < 0
    if n_sink:
        # sink keys that the band does not already cover (otherwise they would be counted twice)
        s_pos = torch.arange(n_sink, device=dev)[None, None, :]
        visible = torch.cat([(s_pos <= q_pos) & (q_pos - s_pos >= window), visible], dim=-1)
        kb, vb = (torch.cat([x[None, :, :, :n_sink].expand(nb, B, Hkv, n_sink, D).flatten(1, 2), xb], dim=2)
                  for x, xb in ((k, kb), (v, vb)))  # (nb, B*Hkv, n_sink + span, D)
    # every query sees itself, so no row is fully masked
    bias = torch.zeros(visible.shape, device=dev, dtype=q.dtype).masked_fill(~visible, float("-inf"))[:, None]
    # GQA: query head b*Hq + h reads kv head (b*Hq + h) // G = b*Hkv + h // G, the right row and head
    out = F.scaled_dot_product_attention(qb, kb, vb, attn_mask=bias, enable_gqa=Hq != Hkv)  # (nb, B*Hq, C, D)
    return out.view(nb, B, Hq, C, D).permute(1, 2, 0, 3, 4).reshape(B, Hq, nb * C, D)[:, :, :T]


def decode_attention(q, K, V, mask):
    """One decode step against the cache: q (B, Hkv, G, D), the G query heads of each kv head as rows; K, V
    (B, Hkv, S, D); mask (B, 1, 1, S) additive or None -> (B, Hkv, G, D). On a CPU in bf16/fp16 with more than one
    row, two matmuls and a float32 softmax beat SDPA's call at SmolLM2's shapes, but only on contiguous keys
    (a windowed layer's whole ring; a global layer's cache slice is strided and came out slower end to end): see
    bench/decode_attention.py and bench/RESULTS.md. In fp32, at batch 1 and on GPUs SDPA is as fast or faster."""
    if q.device.type == "cpu" and q.dtype != torch.float32 and q.size(0) > 1 and K.is_contiguous():
        scores = (q @ K.transpose(-1, -2)).float() * q.size(-1) ** -0.5  # (B, Hkv, G, S)
        if mask is not None:
            scores = scores + mask
        return torch.softmax(scores, dim=-1).to(V.dtype) @ V
    return F.scaled_dot_product_attention(q, K, V, attn_mask=mask)
