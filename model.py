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
All attention goes through `attention(...)`, whose "dense" backend (SDPA with an explicit mask) is the plain
reference; the fast paths behind "chunked", "flex" and "triton" are in kernels/. Generation (GPT.generate, the KV
cache) is in generation.py.

The dtype rule (one rule, everywhere; `compute_dtype` below):
  weights        float32 for training (or the dtype they were loaded in for inference)
  compute        the autocast dtype inside torch.autocast (bf16 on GPUs, and on CPUs with native bf16), else the
                 weights' dtype: every nn.Linear runs in it, so q, k, v and the MLP activations are in it
  residual       the embedding's dtype (float32 under autocast): each block adds its compute-dtype output to it
  RoPE           angles, cos and sin in float32; q and k are rotated in float32 and cast back to v's dtype, so
                 every attention backend gets q, k, v of one dtype
  KV cache       allocated in the compute dtype (what k and v are), masks in that dtype too
  float32        norms (computed in float32, cast back), logits (the LM head's output is cast), softmax, the loss,
                 log-probs and sampling
"""

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from kernels import BACKENDS, auto_backend, fast_attention


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
        pattern = self.layer_pattern
        return self.window if pattern is None or pattern[i % len(pattern)] == "L" else None

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def check_context(length, context, what, fix=None):
    """One line (ValueError) when a sequence of `length` positions cannot fit a model's context of `context`: what
    says where the length comes from (e.g. "--max_len=600"), fix what to change."""
    if length > context:
        raise ValueError(f"{what} needs {length} positions, more than the model's context of {context}"
                         + (f"; {fix}" if fix else ""))


# ----------------------------------------------------------------------------------------------------------------
# Attention: one entry point, its plain (dense) reference, and the dispatch to the fast paths in kernels/


def attention(q, k, v, window=None, sinks=0, backend="auto", mask=None):
    """Causal attention, optionally windowed: q (B, Hq, T, D), k and v (B, Hkv, T, D) -> (B, Hq, T, D); Hkv divides Hq.

    Query i attends keys max(0, i-W+1) .. i plus keys 0 .. sinks-1; window=None is full causal attention.
    mask: the explicit (B, 1, T, T) mask of a left-padded batch (padded_mask), which then decides alone.
    """
    if mask is not None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.size(1) != k.size(1))
    if window is not None and window >= q.size(2):
        window = None  # the band already reaches key 0 for every query: this is plain causal attention
    if backend == "auto":
        backend = auto_backend(q.device, window, q.size(2), q.dtype)
    if window is None and backend in ("dense", "chunked"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.size(1) != k.size(1))
    if backend == "dense":
        return dense_attention(q, k, v, window, sinks)
    return fast_attention(backend)(q, k, v, window, sinks)  # chunked, flex or triton: kernels/


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
        CacheStep.attend or attend_static in generation, SharedPrefix's in training on GRPO groups); None: attention
        over x."""
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

    def hidden_states(self, idx, positions=None, attend=None, checkpointing=True):
        """idx (B, T) -> the final normalized hidden states (B, T, C). positions (B, T) or (1, T), default 0..T-1.
        attend: how the layers attend when not over idx alone (Attention.forward)."""
        if positions is None:
            positions = torch.arange(idx.size(1), device=idx.device)[None, :]
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

    def forward(self, idx, targets=None, positions=None, prefix=None, temperature=1.0):
        """idx (B, T) -> (logits (B, T, V) float32, None); with targets (B, T), -1 where no loss is wanted: (None,
        per-token losses (B, T), 0 at ignored positions), the cross-entropy under softmax(logits / temperature).
        With targets the LM head runs only at the counted positions: the (B, T, V) float logits are the largest
        tensor in training, and SFT/RL need them only there (RL's log-probs are the losses negated, at the
        temperature generate sampled at). positions: as in hidden_states. prefix: a grpo.SharedPrefix, when the rows
        continue shared prefixes (a GRPO group's G completions share their prompt): its run(model) sends the prefixes
        through the model once, inside this forward (which --compile compiles), and says how the rows attend.
        """
        if self.config.pos_emb == "learned":  # a clear error, not nn.Embedding's; decode (hidden_states) reads no max
            last = idx.size(1) if positions is None else int(positions.max()) + 1
            check_context(last, self.config.block_size, "a sequence")
        x = self.hidden_states(idx, positions, None if prefix is None else prefix.run(self))
        if targets is not None:
            # the counted positions as an index: under torch.compile the graph breaks at nonzero, and what follows
            # (index_select, whose backward is index_add) compiles, where a boolean mask's backward would not
            counted = (targets != -1).flatten().nonzero()[:, 0]
            x = x.flatten(0, 1).index_select(0, counted)  # (N, C)
        logits = self.head(x).float()
        if temperature != 1.0:  # no pass over the logits at T = 1 (SFT)
            logits = logits / temperature
        if targets is None:
            return logits, None
        ce = F.cross_entropy(logits, targets.flatten().index_select(0, counted), reduction="none")
        return None, torch.zeros(targets.numel(), device=x.device).index_copy(0, counted, ce).view(targets.shape)

    # ------------------------------------------------------------------------------------------------------------
    # Generation

    def generate(self, prompts, max_new_tokens, temperature=1.0, top_k=None, top_p=None, num_samples=1,
                 eos_ids=None, generator=None):
        """KV-cached sampling: generation.generate, which says what the arguments and the results are."""
        from generation import generate  # imported here: generation imports this module
        return generate(self, prompts, max_new_tokens, temperature, top_k, top_p, num_samples, eos_ids, generator)

    def compile_decode(self, **kwargs):
        """torch.compile generate's decode step (model over the cache + sampling) as one graph; kwargs go to
        torch.compile. generate then runs it over a static plan: the batch stays fixed, global layers attend over
        all their slots (the unwritten ones masked), every mask is built, positions and the column are tensors;
        fullgraph=True holds it to no Python branch on tensor values. That is what a CUDA graph needs; capturing
        one (mode="reduce-overhead") would also need the cache at fixed addresses across calls (a cache kept on the
        model, torch._dynamo.mark_static_address), which generate does not do: it makes a cache per call.

        Before torch 2.13, Inductor's GPU code for a long cumsum fused with a per-row value (the sampler's CDF)
        crashes (pytorch#180221; seen on an H200 with torch 2.11): there the graph ends at the logits and the
        sampler runs eagerly, a few more kernel launches per token."""
        from generation import decode_logits, decode_step, sample_next
        if torch.__version__ >= "2.13":
            self._decode_compiled = torch.compile(decode_step, fullgraph=True, **kwargs)
        else:
            logits = torch.compile(decode_logits, fullgraph=True, **kwargs)
            self._decode_compiled = lambda model, cache, token, positions, col, u, *sampling: sample_next(
                logits(model, cache, token, positions, col), *sampling, u)
        return self

    def compile(self, **kwargs):
        """--compile (nanoGPT's flag): torch.compile the forward in place (nn.Module.compile: the state dict keeps
        its keys) and generate's decode step (compile_decode)."""
        super().compile(**kwargs)
        return self.compile_decode(**kwargs)
