"""
The swarr model: one GPT-style decoder for five families, with sliding-window attention (SWA) as a config switch.

Architecture choices, all through GPTConfig fields (no subclasses):
  GPT-2        learned positions, LayerNorm with bias, GELU-tanh MLP, q/k/v/o and MLP biases, tied head
  Llama/SmolLM2 RoPE (+ Llama-3 rope scaling), RMSNorm, SwiGLU MLP, grouped-query attention, tied or untied head
  Mistral      Llama layout
  Qwen2/2.5    Llama layout + q/k/v biases
  Qwen3        Llama layout + per-head RMSNorm on q and k (qk_norm), explicit head_dim

Attention settings (the SA -> SWA conversion changes only these; no parameter changes shape):
  window=W       query i attends keys max(0, i-W+1) .. i (W keys including itself); None = full causal attention
  sinks=S        keys 0 .. S-1 are always visible too (StreamingLLM-style attention sinks)
  layer_pattern  which layers are windowed: "L" windowed, "G" global, repeated over the layers ("LLLG" = 3:1);
                 None = every layer windowed when a window is set

Everything attention-related goes through one entry point, `attention(q, k, v, window, sinks, backend, mask)` (a
left-padded batch's explicit mask, when given, goes straight to SDPA):
  dense    SDPA with an explicit mask: O(T^2), the plain reference
  chunked  pure PyTorch, O(T*W): query blocks attend only to their band of keys plus the sink keys
           (auto picks it on CPU once T > 2 * (128 + W); shorter sequences are faster dense)
  flex     torch FlexAttention with a sliding-window + sinks block mask (CUDA)
  triton   kernels/triton_swa.py, a FlashAttention-style kernel that visits only in-window key blocks
Generation uses a KVCache (its plan for one forward is a CacheStep): global layers keep every position, windowed
layers a rolling buffer of sinks + W slots, so memory stays flat however long the reasoning trace grows.

The dtype rule (one rule, everywhere; `compute_dtype` below):
  weights        float32 for training (or the dtype they were loaded in for inference)
  compute        the autocast dtype inside torch.autocast (bf16 on GPUs, and on CPUs with native bf16), else the
                 weights' dtype: every nn.Linear runs in it, so q, k, v and the MLP activations are in it
  residual       the embedding's dtype (float32 under autocast): each block adds its compute-dtype output to it
  RoPE           angles, cos and sin in float32; q and k are rotated in float32 and cast back to v's dtype, so
                 every attention backend (dense, chunked, flex, triton) gets q, k, v of one dtype
  KV cache       allocated in the compute dtype (what k and v are), masks in that dtype too
  float32        norms (computed in float32, cast back), logits (the LM head's output is cast), softmax, the loss,
                 log-probs and sampling
"""

import importlib
import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import torch
import torch.nn as nn
import torch.nn.functional as F

BACKENDS = ("auto", "dense", "chunked", "flex", "triton")
CHUNK_BLOCK = 128  # queries per block of the chunked path (bench/attention.py --tune_block)


@dataclass
class GPTConfig:
    vocab_size: int = 258
    n_layer: int = 2
    n_head: int = 4
    n_kv_head: int | None = None  # None: same as n_head (no GQA)
    n_embd: int = 128
    head_dim: int | None = None  # None: n_embd // n_head (Qwen3 sets it explicitly)
    intermediate_size: int | None = None  # None: 4 * n_embd
    block_size: int = 1024  # maximum position (context length)
    pos_emb: str = "rope"  # "learned" (GPT-2) or "rope"
    norm: str = "rmsnorm"  # "layernorm" (GPT-2) or "rmsnorm"
    norm_eps: float = 1e-5
    mlp: str = "swiglu"  # "gelu" (GPT-2, tanh approximation) or "swiglu"
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None  # {"rope_type": "llama3", "factor": ..., ...} or None
    model_type: str = "swarr"  # the HF model_type this config came from (export writes it back)
    window: int | None = None
    sinks: int = 0
    layer_pattern: str | None = None
    attn_backend: str = "auto"

    def __post_init__(self):
        self.n_kv_head = self.n_kv_head or self.n_head
        self.head_dim = self.head_dim or self.n_embd // self.n_head
        self.intermediate_size = self.intermediate_size or 4 * self.n_embd
        self.validate()

    def validate(self):
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head={self.n_head} must be a multiple of n_kv_head={self.n_kv_head}")
        if self.window is not None:
            if not isinstance(self.window, int) or self.window < 1:
                raise ValueError(f"window must be a positive integer or None (full attention), got {self.window!r}")
            if self.window > self.block_size:
                raise ValueError(f"window={self.window} is larger than the model's context ({self.block_size} "
                                 f"positions); use window=None for full attention")
        if not isinstance(self.sinks, int) or self.sinks < 0:
            raise ValueError(f"sinks must be an integer >= 0, got {self.sinks!r}")
        if self.sinks > self.block_size:  # the KV cache allocates sinks + W slots per windowed layer
            raise ValueError(f"sinks={self.sinks} is more than the model's context of {self.block_size} positions; "
                             f"use at most {self.block_size}")
        if self.layer_pattern is not None and (not self.layer_pattern or set(self.layer_pattern) - {"L", "G"}):
            raise ValueError(f"layer_pattern must be a string of 'L' (windowed) and 'G' (global), "
                             f"e.g. 'LLLG', got {self.layer_pattern!r}")
        if self.attn_backend not in BACKENDS:
            raise ValueError(f"attn_backend must be one of {', '.join(BACKENDS)}, got {self.attn_backend!r}")
        for name, value, allowed in (("pos_emb", self.pos_emb, ("learned", "rope")),
                                     ("norm", self.norm, ("layernorm", "rmsnorm")),
                                     ("mlp", self.mlp, ("gelu", "swiglu"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")

    def layer_window(self, i):
        """The window of layer i: None for global layers."""
        if self.window is None or self.layer_pattern is None:
            return self.window
        return self.window if self.layer_pattern[i % len(self.layer_pattern)] == "L" else None

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ----------------------------------------------------------------------------------------------------------------
# Attention: one entry point, a dense reference and the fast paths behind it


def attention(q, k, v, window=None, sinks=0, backend="auto", mask=None):
    """Causal attention, optionally windowed: q (B, Hq, T, D), k and v (B, Hkv, T, D) -> (B, Hq, T, D); Hkv divides Hq.

    Query i attends keys max(0, i-W+1) .. i plus keys 0 .. sinks-1; window=None is full causal attention.
    mask: the explicit (B, 1, T, T) mask of a left-padded batch (padded_mask), which then decides alone.
    """
    if mask is not None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.size(1) != k.size(1))
    T = q.size(2)
    if window is not None and window >= T:
        window = None  # the band already reaches key 0 for every query: this is plain causal attention
    if backend == "auto":
        backend = auto_backend(q.device, window, T, q.dtype)
    if window is None and backend in ("dense", "chunked"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.size(1) != k.size(1))
    if backend == "dense":
        return dense_attention(q, k, v, window, sinks)
    if backend == "chunked":
        return chunked_attention(q, k, v, window, sinks)
    if backend == "flex":
        from kernels.flex import flex_windowed_attention
        return flex_windowed_attention(q, k, v, window, sinks)
    if backend == "triton":
        from kernels import windowed_attention
        return windowed_attention(q, k, v, window=window, sinks=sinks)
    raise ValueError(f"unknown attention backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def auto_backend(device, window, T, dtype):
    if device.type == "cuda":
        # Full attention is SDPA's flash kernel; fp32 too (the Triton kernel has no tensor-core path for fp32 and
        # spills registers). Windowed bf16/fp16 is what the Triton kernel is for.
        if window is None or dtype == torch.float32:
            return "dense"
        if _triton_available():
            return "triton"
        return "flex" if _flex_available() else "dense"
    # On CPU the band pays for its gathers only once T is past about twice (block + W): measured crossover at
    # W = 18, 64 and 256 (bench/RESULTS.md); below it the dense mask is up to 2.6x faster and its T x T mask is small.
    if window is None or T <= 2 * (CHUNK_BLOCK + window):
        return "dense"
    return "chunked"


@lru_cache(maxsize=None)
def _importable(module):
    try:
        importlib.import_module(module)  # a real import: a broken install must count as absent
        return True
    except ImportError:
        return False


def _triton_available():
    return _importable("triton")  # kernels/ needs it; it is optional


def _flex_available():
    return _importable("torch.nn.attention.flex_attention")


def compute_dtype(weight):
    """The dtype activations are computed in: the autocast dtype inside torch.autocast, else the weights' own."""
    kind = weight.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return weight.dtype


def window_mask(q_pos, k_pos, window, sinks):
    """Which keys each query may see, from absolute positions: q_pos (..., Tq, 1), k_pos (..., 1, Tk) -> bool.

    Negative key positions mark empty cache slots and left padding. This one rule is what the training masks, the
    chunked path, the kernels and the KV cache all implement; tests hold them to it.
    """
    visible = (k_pos >= 0) & (k_pos <= q_pos)
    if window is not None:
        visible = visible & ((q_pos - k_pos < window) | (k_pos < sinks))
    return visible


def padded_mask(positions, window, sinks):
    """The self-attention mask of rows with left padding: positions (B, T), pads negative -> (B, 1, T, T) bool, or
    None when every row is 0..T-1 (then attention() needs no mask). A pad query would see no key at all: SDPA's
    kernels return NaN or 0 for such a row, and a NaN reaches real tokens in the next layer through 0 * NaN. So each
    query also sees itself, which changes nothing for real tokens (they always see themselves) and keeps pad rows
    finite."""
    T = positions.size(1)
    # under torch.compile the mask is always made: it is exact either way, and a branch on values breaks the graph
    if not torch.compiler.is_compiling() and not bool((positions != torch.arange(T, device=positions.device)).any()):
        return None
    itself = torch.eye(T, dtype=torch.bool, device=positions.device)
    return window_mask(positions[:, None, :, None], positions[:, None, None, :], window, sinks) | itself


def dense_attention(q, k, v, window, sinks):
    """The O(T^2) reference: SDPA with an explicit boolean mask."""
    pos = torch.arange(q.size(2), device=q.device)
    mask = window_mask(pos[:, None], pos[None, :], window, sinks)  # (T, T)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.size(1) != k.size(1))


def chunked_attention(q, k, v, window, sinks, block=CHUNK_BLOCK):
    """O(T*W) attention in plain PyTorch: each block of `block` queries sees a band of block+W-1 keys plus the sinks.

    The query blocks become the batch of one SDPA call: the key bands are one `unfold` of K padded on the left by
    W-1 zeros (no Python loop over blocks), the sink keys are put in front of every band, and one additive mask per
    block keeps exactly the keys `window_mask` allows, so band and sinks share one softmax. SDPA's fused kernel
    neither materializes the (block, band) probabilities nor keeps them for backward: about 1.6x faster than an
    explicit matmul + softmax on CPU. Blocks lead the layout, (nb, B*H, ...), so batch and heads merge without a
    copy and the mask is shared by every row and head. Time and memory grow as T * (block + W + sinks);
    bench/attention.py picks the default block (smaller blocks waste less compute on the band, larger ones copy
    fewer band keys).
    """
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


# ----------------------------------------------------------------------------------------------------------------
# Building blocks


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # normalize in float32 like the reference implementations, then scale in the input dtype; F.rms_norm is one
        # fused op where pow/mean/rsqrt/mul were five (decode runs two norms per layer per token)
        return self.weight * F.rms_norm(x.float(), (x.size(-1),), eps=self.eps).to(x.dtype)


def make_norm(config, dim):
    if config.norm == "rmsnorm":
        return RMSNorm(dim, config.norm_eps)
    return nn.LayerNorm(dim, eps=config.norm_eps)


def rope_inv_freq(config):
    """Inverse frequencies (head_dim/2,), with Llama-3's frequency-dependent scaling when the config asks for it."""
    d = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    scaling = config.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return inv_freq
    if kind == "linear":
        return inv_freq / scaling["factor"]
    if kind == "llama3":
        factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_len = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        return torch.where(medium, smoothed, scaled)
    raise ValueError(f"unsupported rope scaling {kind!r}: swarr handles default, linear and llama3")


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Attention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        H, Hkv, D = config.n_head, config.n_kv_head, config.head_dim
        self.q_proj = nn.Linear(config.n_embd, H * D, bias=config.qkv_bias)
        self.k_proj = nn.Linear(config.n_embd, Hkv * D, bias=config.qkv_bias)
        self.v_proj = nn.Linear(config.n_embd, Hkv * D, bias=config.qkv_bias)
        self.o_proj = nn.Linear(H * D, config.n_embd, bias=config.o_bias)
        if config.qk_norm:
            self.q_norm = RMSNorm(D, config.norm_eps)
            self.k_norm = RMSNorm(D, config.norm_eps)

    def forward(self, x, rope, attend=None):
        """attend(layer, q, k, v) -> y: how this forward attends when it is not over x alone (a KV cache's
        CacheStep.attend in generation, SharedPrefix's in training on GRPO groups); None: attention over x."""
        cfg = self.config
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, cfg.n_head, cfg.head_dim)
        k = self.k_proj(x).view(B, T, cfg.n_kv_head, cfg.head_dim)
        v = self.v_proj(x).view(B, T, cfg.n_kv_head, cfg.head_dim)
        if cfg.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, D)
        if rope is not None:
            cos, sin = rope  # (B, 1, T, D) float32: the rotation runs in float32 whatever q and k are in
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        q, k = q.to(v.dtype), k.to(v.dtype)  # one dtype for every backend (qk_norm and RoPE return float32)
        if attend is None:
            y = attention(q, k, v, cfg.layer_window(self.layer_idx), cfg.sinks, cfg.attn_backend)
        else:
            y = attend(self.layer_idx, q, k, v)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, cfg.n_head * cfg.head_dim))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        if self.swiglu:
            self.gate_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.n_embd, config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.n_embd, bias=config.mlp_bias)

    def forward(self, x):
        if self.swiglu:
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
        return self.down_proj(F.gelu(self.up_proj(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.norm1 = make_norm(config, config.n_embd)
        self.attn = Attention(config, layer_idx)
        self.norm2 = make_norm(config, config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, rope, attend=None):
        x = x + self.attn(self.norm1(x), rope, attend)
        return x + self.mlp(self.norm2(x))


# ----------------------------------------------------------------------------------------------------------------
# The model


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        if config.pos_emb == "learned":
            self.pos_embed = nn.Embedding(config.block_size, config.n_embd)
        else:
            self.register_buffer("inv_freq", rope_inv_freq(config), persistent=False)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.norm_f = make_norm(config, config.n_embd)
        if not config.tie_embeddings:
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.grad_checkpointing = False
        self._decode_compiled = None  # compile_decode's
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of the residual projections
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _apply(self, fn, *args, **kwargs):
        # model.to(bfloat16) would round the RoPE frequencies too (angles off by up to a radian at long positions)
        super()._apply(fn, *args, **kwargs)
        if hasattr(self, "inv_freq") and self.inv_freq.dtype != torch.float32:
            self.inv_freq = rope_inv_freq(self.config).to(self.inv_freq.device)
        return self

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def configure_window(self, window=None, sinks=0, layer_pattern=None):
        """The SA -> SWA conversion of a model in memory: only attention settings change, no weights."""
        cfg = self.config
        old = (cfg.window, cfg.sinks, cfg.layer_pattern)
        cfg.window, cfg.sinks, cfg.layer_pattern = window, sinks, layer_pattern
        try:
            cfg.validate()
        except ValueError:
            cfg.window, cfg.sinks, cfg.layer_pattern = old
            raise
        return self

    def head(self, x):
        weight = self.embed.weight if self.config.tie_embeddings else self.lm_head.weight
        return F.linear(x, weight)

    def hidden_states(self, idx, positions=None, cache=None, prefix=None):
        """idx (B, T) -> final normalized hidden states (B, T, C). positions (B, T) or (1, T), default 0..T-1.

        cache: a KVCache (generation). prefix: rows that continue shared prefixes (training on a GRPO group, whose G
        completions share their prompt): rl.SharedPrefix, whose run(model) sends the prefixes through the model once
        and returns how the rows attend to them.
        """
        B, T = idx.shape
        if positions is None:
            positions = torch.arange(T, device=idx.device)[None, :]
        if self.config.pos_emb == "learned":  # checked here, not in run_blocks: a decode step must not read the device
            if int(positions.max()) >= self.config.block_size:  # a prefix's positions are below its rows'
                raise ValueError(f"sequence of {int(positions.max()) + 1} tokens is longer than the model's context "
                                 f"of {self.config.block_size} (learned positions)")
        if cache is not None:
            return self.run_blocks(idx, positions, cache.prepare(positions.expand(B, T)).attend)
        if prefix is not None:
            return self.run_blocks(idx, positions, prefix.run(self))
        return self.run_blocks(idx, positions)

    def run_blocks(self, idx, positions, attend=None, checkpointing=True):
        x = self.embed(idx)
        rope = None
        if self.config.pos_emb == "learned":
            x = x + self.pos_embed(positions.clamp(min=0))
        else:
            # angles, cos and sin in float32 (in bf16 a position of 1000 would be off by up to 4 radians)
            angles = positions.float()[..., None] * self.inv_freq.float()  # (B, T, D/2)
            emb = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, T, D)
            rope = (emb.cos(), emb.sin())
        checkpoint = checkpointing and self.grad_checkpointing and self.training
        for block in self.blocks:
            if checkpoint:
                x = torch.utils.checkpoint.checkpoint(block, x, rope, attend, use_reentrant=False)
            else:
                x = block(x, rope, attend)
        return self.norm_f(x)

    def forward(self, idx, targets=None, loss_reduction="mean", return_logits=True, positions=None, cache=None,
                temperature=1.0, prefix=None):
        """idx (B, T) -> (logits (B, T, V) float32 or None, loss).

        targets (B, T) with -1 where no loss is wanted. loss_reduction: "mean" over counted tokens, "sum", or "none"
        for per-token losses (B, T) with zeros at ignored positions (RL's log-probs are their negatives).
        return_logits=False applies the LM head only where targets != -1 and returns logits=None: the (B, T, V) float
        logits are the largest tensor in training, and SFT/RL only need them at the supervised positions.
        temperature divides the logits first, so RL scores its samples under softmax(logits / T), the distribution
        generate drew them from. positions, cache, prefix: as in hidden_states.
        """
        x = self.hidden_states(idx, positions, cache, prefix)
        scale = (lambda z: z) if temperature == 1.0 else (lambda z: z / temperature)  # no pass over V at T=1 (SFT)
        if targets is None:
            return scale(self.head(x).float()), None
        if return_logits:
            logits = scale(self.head(x).float())
            per_token = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1,
                                        reduction="none").view(targets.shape)
        else:
            logits = None
            # the counted positions as an index: under torch.compile the graph breaks at nonzero, and what follows
            # (index_select, whose backward is index_add) compiles, where a boolean mask's backward would not
            counted = (targets != -1).flatten().nonzero()[:, 0]
            ce = F.cross_entropy(scale(self.head(x.flatten(0, 1).index_select(0, counted)).float()),
                                 targets.flatten().index_select(0, counted), reduction="none")
            per_token = torch.zeros(targets.numel(), device=x.device).index_copy(0, counted, ce).view(targets.shape)
        if loss_reduction == "none":
            return logits, per_token
        if loss_reduction == "sum":
            return logits, per_token.sum()
        if loss_reduction == "mean":
            return logits, per_token.sum() / (targets != -1).sum().clamp(min=1)
        raise ValueError(f"loss_reduction must be 'mean', 'sum' or 'none', got {loss_reduction!r}")

    # ------------------------------------------------------------------------------------------------------------
    # Generation

    @torch.no_grad()
    def generate(self, prompts, max_new_tokens, temperature=1.0, top_k=None, top_p=None, num_samples=1,
                 eos_ids=None, generator=None):
        """KV-cached sampling. prompts: list of token-id lists (ragged is fine) or a LongTensor (B, T).

        Ragged prompts are left-padded and each row carries its own positions (pads get negative positions, which
        every mask treats as absent keys), so all rows decode in lock-step through one cache. Each prompt is
        prefilled once and its cache copied to num_samples rows (a GRPO group).

        The host stays out of the loop: tokens and log-probs stay on the device until the end, what the cache's
        masks need is known from the prompts' lengths, and the loop reads the device once every DROP_EVERY steps
        (which rows have emitted an EOS id: they leave the batch then, or, with a compiled decode step, which keeps
        the batch fixed, generation ends when all have). A row that finished in between keeps decoding until that
        read; what it produces after its EOS is dropped.

        Sampling: row r's t-th token is drawn by inverse CDF from the uniform row_uniforms gives for (row r's key,
        t), so a row's sample depends only on its key, never on what else is in the batch. generator: a
        torch.Generator (one draw of every row's key), a list with one per output row (one draw from each: row r's
        key then comes from its own generator alone), or None (torch's default generator). temperature=0 is greedy
        and draws nothing.

        Returns len(prompts) * num_samples dicts, prompt-major: {"tokens": completion ids (EOS included when one was
        produced), "logprobs": log-prob of each sampled token under softmax(logits / T) (softmax(logits) when T = 0),
        "finished": True if it ended with EOS}.
        """
        prompts = _as_lists(prompts)
        self._check_generate_args(prompts, max_new_tokens, temperature, num_samples)
        device = self.embed.weight.device
        eos = torch.tensor(sorted(set(eos_ids or [])), device=device, dtype=torch.long)
        B, N, L = len(prompts), len(prompts) * num_samples, max(map(len, prompts))
        pads = [L - len(p) for p in prompts]
        idx = torch.tensor([[0] * pad + p for pad, p in zip(pads, prompts)], dtype=torch.long, device=device)
        positions = torch.arange(L, device=device)[None, :] - torch.tensor(pads, device=device)[:, None]  # pads < 0
        static = self._decode_compiled is not None
        decode = self._decode_compiled or self._decode_step

        cache = KVCache(self.config, B, L + max_new_tokens, device, compute_dtype(self.embed.weight), pads)
        logits = self.head(self.hidden_states(idx, positions, cache)[:, -1]).float()  # (B, V)
        if num_samples > 1:
            cache.repeat_interleave(num_samples)
            logits = logits.repeat_interleave(num_samples, dim=0)
        u = None if temperature == 0 else row_uniforms(row_keys(generator, N, device), max_new_tokens)  # (N, new)
        next_pos = (L - torch.tensor(cache.pads, device=device))[:, None]  # (n, 1): where each row's token goes
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
                token, logprob = decode(cache, token, next_pos, col, u_t, temperature, top_k, top_p)
                next_pos = next_pos + 1
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
                    live, alive, token, next_pos = live[index], alive[index], token[index], next_pos[index]
                    u = None if u is None else u[index]

        is_eos = torch.isin(tokens, eos)  # (N, new); a row's columns after its first EOS are not its tokens
        finished = is_eos.any(1)
        ends = torch.where(finished, is_eos.int().argmax(1) + 1, max_new_tokens)  # argmax: the first EOS
        tokens, logprobs, ends, finished = tokens.tolist(), logprobs.tolist(), ends.tolist(), finished.tolist()
        return [{"tokens": tokens[r][:ends[r]], "logprobs": logprobs[r][:ends[r]], "finished": finished[r]}
                for r in range(N)]

    def _decode_step(self, cache, token, positions, col, u, temperature, top_k, top_p):
        """One decode step: token (n,) at positions (n, 1) through the model over the cache, then the next token is
        sampled with uniforms u (n,) -> (token (n,), log-prob (n,)). col: None in eager mode (the cache plans from
        its host-side count of columns), or the column as a (1,) tensor: the static plan, what compile_decode
        compiles (no Python value changes from step to step, so it compiles once)."""
        step = cache.prepare(positions) if col is None else cache.plan_static(positions, col)
        logits = self.head(self.run_blocks(token[:, None], positions, step.attend)[:, -1]).float()
        return sample_next(logits, temperature, top_k, top_p, u)

    def compile_decode(self, **kwargs):
        """torch.compile generate's decode step (model over the cache + sampling) as one graph; kwargs go to
        torch.compile. generate then runs it over a static plan: the batch stays fixed, global layers attend over
        all their slots (the unwritten ones masked), every mask is built, positions and the column are tensors;
        fullgraph=True holds it to no Python branch on tensor values. That is what a CUDA graph needs; capturing
        one (mode="reduce-overhead") would also need the cache at fixed addresses across calls (a cache kept on the
        model, torch._dynamo.mark_static_address), which generate does not do: it makes a cache per call."""
        self._decode_compiled = torch.compile(self._decode_step, fullgraph=True, **kwargs)
        return self

    def compile(self, **kwargs):
        """--compile (nanoGPT's flag): torch.compile the forward in place (nn.Module.compile: the state dict keeps
        its keys) and generate's decode step (compile_decode)."""
        super().compile(**kwargs)
        return self.compile_decode(**kwargs)

    @torch.no_grad()
    def generate_naive(self, prompts, max_new_tokens, temperature=1.0, top_k=None, top_p=None, num_samples=1,
                       eos_ids=None, generator=None):
        """The reference: one row at a time, the full forward recomputed for every new token. Same contract, the
        same keys and uniforms."""
        prompts = _as_lists(prompts)
        self._check_generate_args(prompts, max_new_tokens, temperature, num_samples)
        device = self.embed.weight.device
        eos = set(eos_ids or [])
        N = len(prompts) * num_samples
        u = None if temperature == 0 else row_uniforms(row_keys(generator, N, device), max_new_tokens)
        out = []
        for b, prompt in enumerate(prompts):
            for s in range(num_samples):
                r = b * num_samples + s
                seq, res = list(prompt), {"tokens": [], "logprobs": [], "finished": False}
                for t in range(max_new_tokens):
                    logits, _ = self(torch.tensor([seq], device=device))
                    token, logprob = sample_next(logits[:, -1], temperature, top_k, top_p,
                                                 None if u is None else u[r:r + 1, t])
                    seq.append(int(token))
                    res["tokens"].append(int(token))
                    res["logprobs"].append(float(logprob))
                    if int(token) in eos:
                        res["finished"] = True
                        break
                out.append(res)
        return out

    def _check_generate_args(self, prompts, max_new_tokens, temperature, num_samples):
        if not (max_new_tokens >= 1 and num_samples >= 1 and 0 <= temperature < float("inf")):
            raise ValueError("generate needs max_new_tokens >= 1, num_samples >= 1 and a finite temperature >= 0")
        longest = max(len(p) for p in prompts)
        if longest + max_new_tokens > self.config.block_size:
            raise ValueError(f"a prompt of {longest} tokens + {max_new_tokens} new ones is longer than the model's "
                             f"context of {self.config.block_size} positions")


# ----------------------------------------------------------------------------------------------------------------
# Generation: sampling and the KV cache


def _as_lists(prompts):
    if isinstance(prompts, torch.Tensor):
        prompts = prompts.tolist()
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate needs at least one prompt, and every prompt needs at least one token")
    return [list(p) for p in prompts]


DROP_EVERY = 8  # decode steps between generate's reads of which rows have finished
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


def sample_next(logits, temperature, top_k, top_p, u):
    """logits (n, V) float32, u (n,) float64 uniforms in [0, 1) (unused when temperature == 0) -> (token (n,),
    log-prob (n,))."""
    if temperature == 0:
        token = logits.max(-1).indices  # argmax's first-max rule, but about 3x faster on CPU over a 50k vocab
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
    # Inverse-CDF sampling, one uniform per row: the distribution of torch.multinomial, which on CPU takes ~1 ms per
    # row over a 50k vocabulary (a quarter of a GRPO decode step at 32 rows) where this takes ~0.1 ms, and it takes
    # uniforms that row_uniforms made per row. float64 sums: a float32 cumsum over 50k entries drifts by ~1e-5.
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
        if self.col is not None:  # static decode: indexed writes, global layers read every slot
            K[:, :, self.col if w is None else self.ring_slots] = k
            V[:, :, self.col if w is None else self.ring_slots] = v
            if w is not None and self.sink_hit is not None:
                hit, S = self.sink_hit[:, None, :, None], cache.sinks  # (B, 1, S, 1)
                K[:, :, :S], V[:, :, :S] = torch.where(hit, k, K[:, :, :S]), torch.where(hit, v, V[:, :, :S])
        else:
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
        # decode (Tn = 1): the G query heads that share a kv head become G query rows of that head, so each cached
        # key is read once and K/V are never expanded to Hq heads; the (B, 1, 1, S) mask broadcasts over the rows
        B, Hq, _, D = q.shape
        Hkv = K.size(1)
        return decode_attention(q.reshape(B, Hkv, Hq // Hkv, D), K, V, mask).view(B, Hq, 1, D)


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
