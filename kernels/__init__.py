"""The fast paths behind model.attention (whose dense backend is the plain reference they are tested against), and
which one backend="auto" picks:

    cpu.py         chunked_attention (O(T*W), long windowed sequences on CPU), decode_attention (cached decode)
    flex.py        FlexAttention with a sliding-window + sinks block mask (CUDA)
    triton_swa.py  a FlashAttention-style Triton kernel that visits only in-window key blocks (CUDA)
    philox.py      per-row counter-based random numbers for generate's inverse-CDF sampler, and why

Triton is imported lazily, so that `import kernels` does not need it (an optional dependency) and so that
TRITON_INTERPRET can still be set before Triton is first imported.
"""
import importlib
from functools import lru_cache

import torch

from kernels.cpu import CHUNK_BLOCK

BACKENDS = ("auto", "dense", "chunked", "flex", "triton")  # model.attention's names; dense is the reference


def fast_attention(backend):
    """The function behind model.attention's fast backend names: (q, k, v, window, sinks) -> its output."""
    if backend == "chunked":
        from kernels.cpu import chunked_attention
        return chunked_attention
    if backend == "flex":
        from kernels.flex import flex_windowed_attention
        return flex_windowed_attention
    if backend == "triton":
        from kernels.triton_swa import windowed_attention
        return windowed_attention
    raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def auto_backend(device, window, T, dtype):
    if device.type == "cuda":
        # Full attention is SDPA's flash kernel; fp32 too (the Triton kernel has no tensor-core path for fp32 and
        # spills registers). Windowed bf16/fp16 is what the Triton kernel is for.
        if window is None or dtype == torch.float32:
            return "dense"
        return "triton" if _triton_available() else "flex" if _flex_available() else "dense"
    # On CPU the band pays for its gathers only once T is past about twice (block + W): measured crossover at
    # W = 18, 64 and 256 (bench/RESULTS.md); below it the dense mask is faster and its T x T mask is small.
    return "dense" if window is None or T <= 2 * (CHUNK_BLOCK + window) else "chunked"


@lru_cache(maxsize=None)
def _importable(module):
    try:
        importlib.import_module(module)  # a real import: a broken install must count as absent
        return True
    except ImportError:
        return False


def _triton_available():
    return _importable("triton")  # kernels/triton_swa.py needs it; it is optional


def _flex_available():
    return _importable("torch.nn.attention.flex_attention")
