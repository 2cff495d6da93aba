"""Sliding-window + sinks attention through torch's FlexAttention (a block mask; compiled on CUDA).

    flex_windowed_attention(q, k, v, window, sinks) -> o      q (B, Hq, T, D), k/v (B, Hkv, T, D), one dtype

The mask is the project's rule (model.window_mask): query i sees keys max(0, i-W+1)..i plus keys 0..sinks-1.
On CUDA, flex_attention is compiled with static shapes, and dynamo recompiles for every new shape and falls back
to slow eager code past its recompile limit (8): a GRPO run sees a new T at nearly every step. So T is padded up
to a power of two (at least 128) and the output cut back: a run meets a handful of lengths, each compiled once.
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
    return torch.compile(flex_attention, dynamic=False)


def bucket_length(T):
    """The padded length flex is compiled for: the next power of two, at least 128."""
    return max(128, 1 << (T - 1).bit_length())


def flex_windowed_attention(q, k, v, window, sinks, bucket=None):
    """bucket: pad T to bucket_length(T) (default: on CUDA, where the compiled kernel needs it)."""
    from torch.nn.attention.flex_attention import flex_attention

    T, gqa = q.size(2), q.size(1) != k.size(1)
    cuda = q.device.type == "cuda"
    flex = _compiled_flex() if cuda else flex_attention
    Tp = bucket_length(T) if (cuda if bucket is None else bucket) else T
    if Tp != T:
        q, k, v = (F.pad(x, (0, 0, 0, Tp - T)) for x in (q, k, v))
    out = flex(q, k, v, block_mask=_block_mask(Tp, window, sinks, str(q.device)), enable_gqa=gqa)
    return out[:, :, :T]
