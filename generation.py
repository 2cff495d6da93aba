"""Generation: GPT.generate's loop, its sampler, and the KV cache it decodes through.

The cache: global layers keep every position, windowed layers a rolling buffer of sinks + W slots, so memory stays
flat however long the reasoning trace grows. A decode step plans its writes and masks on the host (KVCache.prepare),
or, compiled (GPT.compile_decode), over the static plan (KVCache.plan_static): the same ops on the same shapes at
every step. Sampling is by inverse CDF from per-row counter-based uniforms (kernels/philox.py says why).
"""
from dataclasses import dataclass

import torch

from kernels.cpu import decode_attention
from kernels.philox import row_keys, row_uniforms
from model import attention, check_context, compute_dtype, padded_mask, window_mask

DROP_EVERY = 8  # decode steps between generate's reads of which rows have finished


@torch.no_grad()
def generate(model, prompts, max_new_tokens, temperature=1.0, top_k=None, top_p=None, num_samples=1, eos_ids=None,
             generator=None):
    """GPT.generate: KV-cached sampling. prompts: token-id lists (ragged: left-padded, pads at negative positions,
    which every mask treats as absent) or a LongTensor (B, T). Each prompt is prefilled once and its cache copied to
    num_samples rows (a GRPO group). Tokens and log-probs stay on the device; the loop reads it once every
    DROP_EVERY steps, for the rows that have emitted an EOS id: they leave the batch then (with a compiled step,
    which keeps the batch fixed, generation ends when all have); what a row produces after its EOS is dropped.
    generator: a torch.Generator (one draw of every row's key), a list with one per output row (row r's key from
    its own generator alone: its sample never depends on the rest of the batch), or None (torch's default).
    temperature=0 is greedy and draws nothing. -> len(prompts) * num_samples dicts, prompt-major: {"tokens": the
    completion's ids (EOS included when there is one), "logprobs": each one's log-prob under softmax(logits / T)
    (softmax(logits) at T = 0), "finished": whether it ended with EOS}.
    """
    prompts = checked_prompts(prompts, max_new_tokens, temperature, num_samples, model.config.block_size)
    device = model.embed.weight.device
    eos = torch.tensor(sorted(set(eos_ids or [])), device=device, dtype=torch.long)
    B, N, L = len(prompts), len(prompts) * num_samples, max(map(len, prompts))
    pads = [L - len(p) for p in prompts]
    idx = torch.tensor([[0] * pad + p for pad, p in zip(pads, prompts)], dtype=torch.long, device=device)
    positions = torch.arange(L, device=device)[None, :] - torch.tensor(pads, device=device)[:, None]  # pads < 0
    static = model._decode_compiled is not None  # GPT.compile_decode's
    decode = model._decode_compiled or decode_step

    cache = KVCache(model.config, B, L + max_new_tokens, device, compute_dtype(model.embed.weight), pads)
    logits = model.head(model.hidden_states(idx, positions, cache.prepare(positions).attend)[:, -1]).float()
    if num_samples > 1:
        cache.repeat_interleave(num_samples)
        logits = logits.repeat_interleave(num_samples, dim=0)
    u = None if temperature == 0 else row_uniforms(row_keys(generator, N, device), max_new_tokens)  # (N, new)
    next_positions = (L - torch.tensor(cache.pads, device=device))[:, None]  # (n, 1): where each row's token goes
    col = torch.tensor([L], device=device) if static else None  # the cache column it goes to, as a tensor
    live = torch.arange(N, device=device)  # the output row of each live batch row
    alive = torch.ones(N, dtype=torch.bool, device=device)  # no EOS yet
    tokens = torch.zeros(N, max_new_tokens, dtype=torch.long, device=device)
    logprobs = torch.zeros(N, max_new_tokens, device=device)
    for t in range(max_new_tokens):
        u_t = None if u is None else u[:, t]
        if t == 0:
            token, logprob = sample_next(logits, temperature, top_k, top_p, u_t)  # (n,), (n,)
        else:
            token, logprob = decode(model, cache, token, next_positions, col, u_t, temperature, top_k, top_p)
            next_positions = next_positions + 1
            col = None if col is None else col + 1
        tokens[live, t], logprobs[live, t] = token, logprob
        alive = alive & ~torch.isin(token, eos)
        if t == max_new_tokens - 1:
            break
        if (t + 1) % DROP_EVERY == 0:
            going = alive.tolist()  # the loop's one read of the device
            if not any(going):
                break
            if not static and not all(going):  # finished rows leave the batch: they cost nothing from here on
                keep = [i for i, g in enumerate(going) if g]
                cache.select(keep)
                index = torch.tensor(keep, device=device)
                live, alive, token, next_positions = live[index], alive[index], token[index], next_positions[index]
                u = None if u is None else u[index]

    is_eos = torch.isin(tokens, eos)  # (N, new); a row's columns after its first EOS are not its tokens
    finished = is_eos.any(1)
    ends = torch.where(finished, is_eos.int().argmax(1) + 1, max_new_tokens)  # argmax: the first EOS
    tokens, logprobs, ends, finished = tokens.tolist(), logprobs.tolist(), ends.tolist(), finished.tolist()
    return [{"tokens": tokens[r][:ends[r]], "logprobs": logprobs[r][:ends[r]], "finished": finished[r]}
            for r in range(N)]


def decode_step(model, cache, token, positions, col, u, temperature, top_k, top_p):
    """One decode step: token (n,) at positions (n, 1) through the model over the cache, then the next token is
    sampled with uniforms u (n,) -> (token (n,), log-prob (n,)). col: None in eager mode (the cache plans from
    its host-side count of columns), or the column as a (1,) tensor: the static plan, what GPT.compile_decode
    compiles (no Python value changes from step to step, so it compiles once)."""
    return sample_next(decode_logits(model, cache, token, positions, col), temperature, top_k, top_p, u)


def decode_logits(model, cache, token, positions, col):
    """decode_step's model part -> the next token's logits (n, V), float32."""
    attend = cache.prepare(positions).attend if col is None else cache.plan_static(positions, col).attend_static
    return model.head(model.hidden_states(token[:, None], positions, attend)[:, -1]).float()


def checked_prompts(prompts, max_new_tokens, temperature, num_samples, block_size):
    """prompts as lists of token ids, once generate's arguments are checked."""
    if isinstance(prompts, torch.Tensor):
        prompts = prompts.tolist()
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate needs at least one prompt, and every prompt needs at least one token")
    if not (max_new_tokens >= 1 and num_samples >= 1 and 0 <= temperature < float("inf")):
        raise ValueError("generate needs max_new_tokens >= 1, num_samples >= 1 and a finite temperature >= 0")
    longest = max(len(p) for p in prompts)
    check_context(longest + max_new_tokens, block_size, f"a prompt of {longest} tokens + {max_new_tokens} new ones")
    return [list(p) for p in prompts]


def sample_next(logits, temperature, top_k, top_p, u):
    """The plain sampler: logits (n, V) float32, u (n,) float64 uniforms in [0, 1) (unused when temperature == 0) ->
    (token (n,), its log-prob (n,) before top-k/top-p filtering)."""
    if temperature == 0:
        token = logits.max(-1).indices  # argmax's first-max rule, but faster on CPU over a 50k vocab
        return token, torch.log_softmax(logits, -1).gather(-1, token[:, None])[:, 0]
    scaled = logits / temperature
    logprobs = torch.log_softmax(scaled, -1)
    if top_k is not None:
        kth = torch.topk(scaled, min(top_k, scaled.size(-1)), dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(scaled, descending=True, dim=-1)
        sorted_probs = torch.softmax(sorted_logits, -1)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest prefix that reaches top_p
        scaled = scaled.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = torch.softmax(scaled, -1)
    # Inverse CDF, one uniform per row: torch.multinomial's distribution, far faster on CPU over a 50k vocabulary
    # (kernels/philox.py, bench/RESULTS.md). float64 sums: a float32 cumsum over 50k entries drifts by ~1e-5.
    cdf = probs.double().cumsum(-1)  # (n, V)
    total = cdf[:, -1:]
    # strictly below the total, so the search lands on a token with cdf[i-1] <= u < cdf[i]: never one with p = 0
    u = torch.minimum(u[:, None] * total, torch.nextafter(total, torch.zeros_like(total)))
    token = torch.searchsorted(cdf, u, right=True)[:, 0]
    return token, logprobs.gather(-1, token[:, None])[:, 0]


class KVCache:
    """Preallocated keys and values for generation, one position per slot and per row.

    Global layers keep every column (max_len slots). Windowed layers keep sinks + W slots: slots 0..sinks-1 hold the
    sink tokens, the other W form a ring where column c goes to slot sinks + c % W. Keys are cached after RoPE, so
    the order of the slots does not matter; each slot remembers its position (-1 when empty), and attention masks
    are built from positions with the same rule as training (`window_mask`). Rows advance in lock-step (one column
    per step for everybody); ragged prompts are handled by per-row positions, not per-row columns. pads: each row's
    left padding (host ints; row b's token in column c has position c - pads[b]), from which prepare decides which
    masks a step needs and where sink tokens are without reading the device.
    """

    def __init__(self, config, batch_size, max_len, device, dtype, pads=None):
        self.config, self.sinks = config, config.sinks
        self.windows = [config.layer_window(i) for i in range(config.n_layer)]
        W = config.window
        shape = lambda slots: (batch_size, config.n_kv_head, slots, config.head_dim)  # noqa: E731
        self.k = [torch.zeros(shape(max_len if w is None else self.sinks + w), device=device, dtype=dtype)
                  for w in self.windows]
        self.v = [torch.zeros_like(k) for k in self.k]
        self.pos_global = torch.full((batch_size, max_len), -1, device=device, dtype=torch.long)
        self.pos_window = torch.full((batch_size, self.sinks + (W or 0)), -1, device=device, dtype=torch.long)
        self.pads = [0] * batch_size if pads is None else list(pads)
        self.length = 0  # columns written so far
        self.dtype = dtype

    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in self.k + self.v)

    def prepare(self, positions):
        """Plan one forward over the cache, shared by all layers: positions (B, Tn) of the new tokens -> CacheStep
        (where each layer writes its new keys, and which slots each query sees)."""
        c0, Tn = self.length, positions.size(1)
        self.length = c0 + Tn
        self.pos_global[:, c0:c0 + Tn] = positions
        W, S = self.config.window, self.sinks
        step = CacheStep(self, c0)
        if W is not None:
            if c0 > 0 and Tn > 1:
                raise ValueError("the rolling cache takes one token at a time after the prefill")
            if Tn == 1:
                # decode: a slice, so every layer writes its ring slot with a plain copy instead of an index_put
                slot = S + c0 % W
                step.ring_slots, step.ring_tail = slice(slot, slot + 1), 1
            else:
                step.ring_tail = min(Tn, W)  # older columns of a long prefill can never be seen again
                step.ring_slots = S + torch.arange(c0 + Tn - step.ring_tail, c0 + Tn, device=positions.device) % W
            ring_pos = positions[:, -step.ring_tail:]
            self.pos_window[:, step.ring_slots] = ring_pos.masked_fill(ring_pos < S, -1)  # sinks live apart
            step.sinks_at = self._sink_cells(c0, Tn, positions.device)
            if step.sinks_at is not None:
                self.pos_window[step.sinks_at[0], step.sinks_at[2]] = step.sinks_at[2]
        padded = any(self.pads)
        q_pos = positions[:, None, :, None]  # (B, 1, Tn, 1)
        if c0 == 0:  # prefill attends over its own keys: plain attention() unless left padding needs a mask
            step.mask_global = padded_mask(positions, None, 0) if padded else None
            step.mask_window = padded_mask(positions, W, S) if padded else None
        else:  # no mask (SDPA's fastest path) where every slot is visible: no padding, and the ring full
            if padded:
                step.mask_global = self._additive(window_mask(q_pos, self.pos_global[:, None, None, :c0 + Tn],
                                                              None, 0))
            if W is not None and (padded or c0 + Tn < S + W):
                step.mask_window = self._additive(window_mask(q_pos, self.pos_window[:, None, None, :], W, S))
        return step

    def plan_static(self, positions, col):
        """Plan one decode step with nothing from the host: positions (B, 1) and the column col (1,) are tensors,
        global layers attend over all max_len slots (the unwritten ones hold position -1, so the mask hides them),
        every mask is built, and sink tokens are written through a one-hot select. The same ops on the same shapes
        at every step, what a compiled step (and a CUDA graph) needs. Does not count columns (length)."""
        W, S = self.config.window, self.sinks
        step = CacheStep(self, -1, col=col)
        q_pos = positions[:, None, :, None]  # (B, 1, 1, 1)
        self.pos_global[:, col] = positions
        step.mask_global = self._additive(window_mask(q_pos, self.pos_global[:, None, None, :], None, 0))
        if W is not None:
            step.ring_slots = S + col % W
            self.pos_window[:, step.ring_slots] = positions.masked_fill(positions < S, -1)
            if S:
                step.sink_hit = torch.arange(S, device=positions.device) == positions  # (B, S): the slot written
                self.pos_window[:, :S] = torch.where(step.sink_hit, positions, self.pos_window[:, :S])
            step.mask_window = self._additive(window_mask(q_pos, self.pos_window[:, None, None, :], W, S))
        return step

    def _sink_cells(self, c0, Tn, device):
        """The new tokens at sink positions 0..sinks-1, found from pads: (rows, columns within the step, positions),
        or None."""
        if not self.sinks or c0 - max(self.pads) >= self.sinks:
            return None
        cells = [(b, c - c0, c - pad) for b, pad in enumerate(self.pads)
                 for c in range(max(c0, pad), min(c0 + Tn, pad + self.sinks))]
        return tuple(torch.tensor(cells, device=device).unbind(1)) if cells else None

    def _additive(self, visible):
        """visible (B, 1, 1, S) bool -> an additive float mask, made once per step because SDPA would convert a
        boolean one in every layer."""
        return torch.zeros(visible.shape, device=visible.device, dtype=self.dtype).masked_fill(~visible, float("-inf"))

    def _map_rows(self, fn):
        self.k = [fn(t) for t in self.k]
        self.v = [fn(t) for t in self.v]
        self.pos_global, self.pos_window = fn(self.pos_global), fn(self.pos_window)

    def select(self, keep):
        """Keep only the rows listed in keep (host ints, in order): finished rows leave the batch."""
        index = torch.tensor(keep, device=self.pos_global.device)
        self._map_rows(lambda t: t.index_select(0, index))
        self.pads = [self.pads[i] for i in keep]

    def repeat_interleave(self, n):
        """Copy every row n times: one prefilled prompt becomes the n samples of its group."""
        self._map_rows(lambda t: t.repeat_interleave(n, dim=0))
        self.pads = [pad for pad in self.pads for _ in range(n)]


@dataclass
class CacheStep:
    """One forward's plan over a KVCache, made by KVCache.prepare (or plan_static) and used by every layer: the first
    new column c0; for windowed layers the ring slots that the last ring_tail new keys go to and the sink keys (rows,
    columns, slots); the masks of global and windowed layers (None: no mask needed). A static plan has the column as
    a tensor (col) and the sink slot each row writes as a one-hot (sink_hit)."""
    cache: KVCache
    c0: int
    ring_slots: object = None  # a slice (decode), a LongTensor of slots (prefill, static decode)
    ring_tail: int = 0
    sinks_at: tuple | None = None
    mask_global: torch.Tensor | None = None
    mask_window: torch.Tensor | None = None
    col: torch.Tensor | None = None
    sink_hit: torch.Tensor | None = None

    def attend(self, layer, q, k, v):
        """Store this layer's new keys/values (B, Hkv, Tn, D), then attend q (B, Hq, Tn, D) -> (B, Hq, Tn, D)."""
        cache, c0, Tn = self.cache, self.c0, q.size(2)
        w = cache.windows[layer]
        K, V = cache.k[layer], cache.v[layer]
        mask = self.mask_global if w is None else self.mask_window
        if w is None:
            K[:, :, c0:c0 + Tn], V[:, :, c0:c0 + Tn] = k, v
        else:
            tail = self.ring_tail
            K[:, :, self.ring_slots], V[:, :, self.ring_slots] = k[:, :, -tail:], v[:, :, -tail:]
            if self.sinks_at is not None:
                rows, cols, slots = self.sinks_at
                K[rows, :, slots], V[rows, :, slots] = k[rows, :, cols], v[rows, :, cols]
        if c0 == 0:  # prefill: attention over its own keys (mask: left padding's, or None)
            return attention(q, k, v, w, cache.sinks, cache.config.attn_backend, mask)
        if w is None:
            K, V = K[:, :, :c0 + Tn], V[:, :, :c0 + Tn]
        return cached_attention(q, K, V, mask)

    def attend_static(self, layer, q, k, v):
        """attend for a static plan (plan_static): indexed writes, and global layers read every slot."""
        cache = self.cache
        w, K, V = cache.windows[layer], cache.k[layer], cache.v[layer]
        K[:, :, self.col if w is None else self.ring_slots] = k
        V[:, :, self.col if w is None else self.ring_slots] = v
        if w is not None and self.sink_hit is not None:
            hit, S = self.sink_hit[:, None, :, None], cache.sinks  # (B, 1, S, 1)
            K[:, :, :S], V[:, :, :S] = torch.where(hit, k, K[:, :, :S]), torch.where(hit, v, V[:, :, :S])
        return cached_attention(q, K, V, self.mask_global if w is None else self.mask_window)


def cached_attention(q, K, V, mask):
    """A decode step's attention, q (B, Hq, 1, D) over the cached K, V (B, Hkv, S, D) -> (B, Hq, 1, D). The G query
    heads that share a kv head become G query rows of that head, so each cached key is read once and K/V are never
    expanded to Hq heads; the (B, 1, 1, S) mask broadcasts over the rows."""
    B, Hq, _, D = q.shape
    Hkv = K.size(1)
    return decode_attention(q.reshape(B, Hkv, Hq // Hkv, D), K, V, mask).view(B, Hq, 1, D)
