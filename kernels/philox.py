"""Per-row random numbers for generate's sampler: Philox4x32-10, a counter-based generator, in plain int64 torch.

generate samples row r's t-th token by inverse CDF (generation.sample_next) from the uniform row_uniforms(keys)[r, t],
made on the device for every row and token before decoding starts. Why not torch.multinomial: on CPU it is far
slower per row over a 50k vocabulary (a large share of a GRPO decode step; bench/RESULTS.md, "GRPO step (CPU)"), and
it draws from one shared stream, so a row's sample would depend on what else is in the batch. With a counter-based
generator a row's draws depend only on its key: the same tokens whether a row decodes alone or in a batch, whether
finished rows leave the batch or not, and in the full-recompute reference (tests/helpers.generate_naive).
"""
import torch
import torch.nn.functional as F

PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # Philox4x32's round multipliers and key increments (Random123's constants)
PHILOX_W = (0x9E3779B9, 0xBB67AE85)
MASK32 = 0xFFFFFFFF


def _mulhilo32(m, x):
    """The high and low 32-bit words of m * x: m a 32-bit constant, x int64 holding 32-bit words. m is split into
    16-bit halves so no intermediate reaches 2^49: plain int64 arithmetic, exact on every device (torch has no
    general uint32 kernels to lean on)."""
    p_lo, p_hi = x * (m & 0xFFFF), x * (m >> 16)  # m * x = p_lo + p_hi * 2^16
    return (p_hi + (p_lo >> 16)) >> 16, (p_lo + ((p_hi & 0xFFFF) << 16)) & MASK32


def philox4x32(counter, key, rounds=10):
    """Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011; the generator behind
    torch's CUDA RNG): counter (..., 4) and key (..., 2) int64 tensors of 32-bit words, broadcast together -> (..., 4)
    words. Each output is a function of its own counter and key alone: a counter-based generator."""
    c0, c1, c2, c3 = counter.unbind(-1)
    k0, k1 = key.unbind(-1)
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + PHILOX_W[0]) & MASK32, (k1 + PHILOX_W[1]) & MASK32
        hi0, lo0 = _mulhilo32(PHILOX_M[0], c0)
        hi1, lo1 = _mulhilo32(PHILOX_M[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return torch.stack(torch.broadcast_tensors(c0, c1, c2, c3), -1)


def row_keys(generator, n, device):
    """(n, 2) int64: each output row's Philox key, two 32-bit words drawn before decoding starts. generator: a
    torch.Generator (one draw for all rows), a list of one per row (one draw from each, so row r's key depends on
    generator r alone), or None (torch's default generator)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise ValueError(f"generate got {len(generator)} generators for {n} output rows (one per prompt and "
                             f"sample)")
        return torch.stack([torch.randint(2**32, (2,), generator=g, device=g.device) for g in generator]).to(device)
    where = device if generator is None else generator.device
    return torch.randint(2**32, (n, 2), generator=generator, device=where).to(device)


def row_uniforms(keys, n):
    """keys (N, 2) -> (N, n) float64 uniforms in [0, 1), made on the keys' device in one go before decoding (8 bytes
    per row and token): row r's t-th is Philox4x32-10 of counter (t, 0, 0, 0) under key r, its first two words made
    into a 53-bit fraction as numpy's random() does (27 high bits of one, 26 of the other)."""
    counter = F.pad(torch.arange(n, device=keys.device)[:, None], (0, 3))  # (n, 4): (t, 0, 0, 0)
    words = philox4x32(counter, keys[:, None, :])  # (N, n, 4)
    return ((words[..., 0] >> 5) * 2**26 + (words[..., 1] >> 6)).double() * 2.0**-53
