"""Sliding-window + sinks attention through torch's FlexAttention (a block mask; compiled on CUDA).

    flex_windowed_attention(q, k, v, window, sinks) -> o      q (B, Hq, T, D), k/v (B, Hkv, T, D), one dtype

The mask is the project's rule (model.window_mask): query i sees keys max(0, i-W+1)..i plus keys 0..sinks-1.
On CUDA, flex_attention is compiled, and dynamo recompiles for every new static shape and falls back to slow eager
code past its recompile limit (8): a GRPO run sees a new T at nearly every step and a new batch size at the end of
every step. So T is padded up to a power of two (at least 128) and the output cut back, and the batch dimension is
compiled dynamic: a run meets a handful of lengths, each compiled once for batch 1 and once for any other batch.
The padding costs nothing in correctness (padded keys come after every real query, so causality hides them; padded
queries are dropped) and at most 2x in work. On CPU the eager flex_attention runs at the true length (tests only).
"""
from functools import lru_cache

import torch
import torch.nn.functional as F


@lru_cache(maxsize=16)
def _block_mask(T, window, sinks, device):
    """Built once per (length, window, sinks) and shared by every layer of a forward (building it is not free)."""
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b, h, q_idx, kv_idx):
        causal = kv_idx <= q_idx
        if window is None:
            return causal
        return causal & ((q_idx - kv_idx < window) | (kv_idx < sinks))

    return create_block_mask(mask_mod, B=None, H=None, Q_LEN=T, KV_LEN=T, device=device)


@lru_cache(maxsize=None)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention
    # a run's lengths: up to ~6 buckets, each compiled for batch 1 and for any other batch; dynamo's default limit
    # of 8 graphs per function would send the rest to eager code
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 32)
    return torch.compile(flex_attention, dynamic=None)


def bucket_length(T):
    """The padded length flex is compiled for: the next power of two, at least 128."""
    return max(128, 1 << (T - 1).bit_length())


def flex_windowed_attention(q, k, v, window, sinks, bucket=None, compiled=None):
    """bucket: pad T to bucket_length(T); compiled: through torch.compile (both default: on CUDA)."""
    from torch.nn.attention.flex_attention import flex_attention

    T, gqa = q.size(2), q.size(1) != k.size(1)
    cuda = q.device.type == "cuda"
    compiled = cuda if compiled is None else compiled
    Tp = bucket_length(T) if (compiled if bucket is None else bucket) else T
    if Tp != T:
        q, k, v = (F.pad(x, (0, 0, 0, Tp - T)) for x in (q, k, v))
    flex = flex_attention
    if compiled:
        flex = _compiled_flex()
        # The batch size changes from call to call (micro-batches, generation): one graph for every batch > 1, not
        # a recompile per batch size (after 8, dynamo silently runs the uncompiled, O(T^2)-memory code). T stays
        # static: the buckets above keep it to a few values, each compiled with its own tiles.
        for x in (q, k, v):
            if x.size(0) > 1:
                torch._dynamo.mark_dynamic(x, 0)
            torch._dynamo.mark_static(x, 2)
    out = flex(q, k, v, block_mask=_block_mask(Tp, window, sinks, str(q.device)), enable_gqa=gqa)
    return out[:, :, :T]
