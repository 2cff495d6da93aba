"""convert.py on tiny random checkpoints built here: logit parity with transformers for every family, the window
and sinks against transformers and a hand-built mask, export round trips, our checkpoint format, bad input, the CLI.
(The real SmolLM2 model is in test_smollm2.py.)"""

import json
import os
import warnings

import pytest
import torch

import checkpoint
import common
import convert
from helpers import make_hf_dir, random_ids
from model import GPT, GPTConfig
from tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

transformers = pytest.importorskip("transformers")

T = 40  # longer than every window tested, so the band really cuts


def logits_ours(model, x):
    with torch.no_grad():
        return model(x)[0]


def logits_hf(model, x, **kw):
    with torch.no_grad():
        return model(x, **kw).logits


def load(path, **kw):
    return convert.load_model(f"hf:{path}", dtype="float32", device="cpu", **kw)


LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 16}

CASES = {  # id: (family, max_shard_size, transformers config overrides)
    "gpt2": ("gpt2", None, {}),
    "gpt2-sharded": ("gpt2", "20KB", {}),
    "llama-untied-gqa": ("llama", None, {}),
    "llama3-tied-bias-rope_scaling": ("llama", None, dict(tie_word_embeddings=True, attention_bias=True,
                                                          mlp_bias=True, rope_theta=500000.0,
                                                          rope_scaling=LLAMA3_ROPE)),
    "llama-sharded": ("llama", "30KB", dict(tie_word_embeddings=True)),
    "mistral": ("mistral", None, {}),
    "qwen2-tied": ("qwen2", None, dict(tie_word_embeddings=True)),
    "qwen3-sharded": ("qwen3", "40KB", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_logit_parity_with_transformers(tmp_path, case):
    family, shard, overrides = CASES[case]
    path, hf = make_hf_dir(tmp_path, family, max_shard_size=shard, **overrides)
    if shard:
        assert os.path.isfile(os.path.join(path, "model.safetensors.index.json"))
    model, tok = load(path)
    assert model.config.model_type == family and model.config.window is None
    assert model.config.tie_embeddings == hf.config.tie_word_embeddings
    assert isinstance(tok, Tokenizer)
    x = random_ids(T, B=2)
    ref = logits_hf(hf, x)
    assert (logits_ours(model, x) - ref).abs().max() < 1e-4
    assert ref.abs().max() > 1.0  # the random weights are big enough for a mapping error to show


def test_v4_style_config_and_unprefixed_gpt2(tmp_path):
    """Hub checkpoints carry rope_theta / rope_scaling at the top level (transformers v4), and the original GPT-2
    file has no "transformer." prefix plus causal-mask buffers; both load the same."""
    from safetensors.torch import load_file, save_file
    path, hf = make_hf_dir(tmp_path / "llama", "llama", rope_theta=500000.0, rope_scaling=LLAMA3_ROPE)
    cfg = json.load(open(os.path.join(path, "config.json")))
    rope = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rope.pop("rope_theta")
    cfg["rope_scaling"] = {"type" if k == "rope_type" else k: v for k, v in rope.items()}
    json.dump(cfg, open(os.path.join(path, "config.json"), "w"))
    x = random_ids(T)
    model, _ = load(path)
    assert model.config.rope_scaling["rope_type"] == "llama3" and model.config.rope_theta == 500000.0
    assert (logits_ours(model, x) - logits_hf(hf, x)).abs().max() < 1e-4

    path, hf = make_hf_dir(tmp_path / "gpt2", "gpt2")
    file = os.path.join(path, "model.safetensors")
    state = {k.removeprefix("transformer."): v for k, v in load_file(file).items()}
    state["h.0.attn.bias"] = torch.ones(1, 1, 128, 128)
    save_file(state, file)
    model, _ = load(path)
    assert (logits_ours(model, x) - logits_hf(hf, x)).abs().max() < 1e-4


# ----------------------------------------------------------------------------------------------------------------
# Windows and sinks


@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory):
    return make_hf_dir(tmp_path_factory.mktemp("mistral"), "mistral", max_position_embeddings=64)


@pytest.mark.parametrize("W", [1, 5, 16])
def test_window_parity_with_transformers_mistral(mistral_dir, W):
    """transformers' sliding_window=W is W keys including the query itself (kv_idx > q_idx - W): ours too."""
    path, hf = mistral_dir
    x = random_ids(T, B=2, seed=W)
    full = logits_hf(hf, x)
    hf.config.sliding_window = W
    try:
        ref = logits_hf(hf, x)
    finally:
        hf.config.sliding_window = None
    model, _ = load(path, window=W)
    assert model.config.window == W and model.config.layer_pattern is None
    ours = logits_ours(model, x)
    assert (ours - ref).abs().max() < 1e-4
    assert (ref - full)[:, W:].abs().max() > 1e-2  # the window changed the logits beyond the first W positions
    assert (ours - ref)[:, :W].abs().max() < 1e-4 and (ref - full)[:, :W].abs().max() < 1e-4


def test_source_window_is_imported_when_it_restricts(tmp_path):
    """Mistral v0.1-style sliding_window and Qwen2 use_sliding_window/max_window_layers come in as the source model
    computes them; a window as long as the context is no restriction; overrides win."""
    path, hf = make_hf_dir(tmp_path / "m", "mistral", sliding_window=6, max_position_embeddings=64)
    model, _ = load(path)
    assert (model.config.window, model.config.layer_pattern) == (6, None)
    x = random_ids(T)
    assert (logits_ours(model, x) - logits_hf(hf, x)).abs().max() < 1e-4
    assert load(path, window=None)[0].config.window is None
    assert load(path, window=3, sinks=2)[0].config.window == 3

    # Qwen2: layers i >= max_window_layers are windowed, so with 3 layers and max_window_layers=1: "GLL"
    path, hf = make_hf_dir(tmp_path / "q", "qwen2", use_sliding_window=True, sliding_window=4, max_window_layers=1,
                           num_hidden_layers=3)
    model, _ = load(path)
    assert (model.config.window, model.config.layer_pattern) == (4, "GLL")
    assert (logits_ours(model, x) - logits_hf(hf, x)).abs().max() < 1e-4
    model, _ = load(path, layer_pattern="LG")  # the source window with another pattern
    assert (model.config.window, model.config.layer_pattern) == (4, "LG")

    path, _ = make_hf_dir(tmp_path / "q2", "qwen2", use_sliding_window=True, sliding_window=128, max_window_layers=0)
    assert load(path)[0].config.window is None  # 128 >= max_position_embeddings: full attention anyway


def test_sinks_against_float64_reference(tmp_path):
    """Window + sinks against transformers run in float64 with a mask built here from index comparisons
    (query i sees key j iff j <= i and (i - j < W or j < S)), for the dense and the chunked backend."""
    path, hf = make_hf_dir(tmp_path, "llama")
    hf = hf.double()
    x = random_ids(T, seed=3)
    i = torch.arange(T)
    for W, S in [(5, 2), (1, 3), (16, 4)]:
        visible = (i[None, :] <= i[:, None]) & ((i[:, None] - i[None, :] < W) | (i[None, :] < S))
        mask = torch.zeros(T, T, dtype=torch.float64).masked_fill(~visible, torch.finfo(torch.float64).min)
        ref = logits_hf(hf, x, attention_mask=mask[None, None])
        for backend in ("dense", "chunked"):
            model, _ = load(path, window=W, sinks=S, attn_backend=backend)
            assert (logits_ours(model, x).double() - ref).abs().max() < 1e-4, (W, S, backend)


# ----------------------------------------------------------------------------------------------------------------
# Export to transformers


EXPORT_CASES = {  # id: (family, load overrides, expected HF model_type, transformers applies the window)
    "gpt2-full": ("gpt2", {}, "gpt2", True),
    "llama-window->mistral": ("llama", dict(window=5), "mistral", True),
    "mistral-full": ("mistral", {}, "mistral", True),
    "qwen2-mixed-pattern": ("qwen2", dict(window=4, layer_pattern="GL"), "qwen2", True),
    "qwen3-window": ("qwen3", dict(window=3), "qwen3", True),
    "llama-sinks": ("llama", dict(window=5, sinks=2), "llama", False),
}


@pytest.mark.parametrize("case", list(EXPORT_CASES))
def test_export_hf_round_trip(tmp_path, case):
    family, overrides, model_type, honoured = EXPORT_CASES[case]
    src, _ = make_hf_dir(tmp_path / "src", family)
    model, tok = load(src, **overrides)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = convert.export_hf(model, tok, tmp_path / "out")
    assert any("will not apply" in str(w.message) for w in caught) == (not honoured)
    hf_cfg = json.load(open(os.path.join(out, "config.json")))
    assert hf_cfg["model_type"] == model_type
    if model.config.window is not None:
        assert hf_cfg["swarr"]["window"] == model.config.window

    x = random_ids(T, seed=7)
    ours = logits_ours(model, x)
    back, tok2 = load(out)  # through our loader: exact, sinks included
    assert back.config.window == model.config.window and back.config.sinks == model.config.sinks
    assert back.config.layer_pattern == model.config.layer_pattern
    assert torch.equal(logits_ours(back, x), ours)
    assert tok2.encode("Hello 123 world") == tok.encode("Hello 123 world")
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    diff = (logits_hf(hf, x) - ours).abs().max()
    assert diff < 1e-4 if honoured else diff > 1e-3


def test_export_scratch_model_as_llama(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=260, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=64)).eval()
    tok = Tokenizer.byte_level()
    out = convert.export_hf(model, tok, tmp_path)
    assert json.load(open(os.path.join(out, "config.json")))["model_type"] == "llama"
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    x = random_ids(T, vocab=260)
    assert (logits_hf(hf, x) - logits_ours(model, x)).abs().max() < 1e-4

    odd = GPT(GPTConfig(vocab_size=260, n_layer=1, n_head=2, n_embd=32, pos_emb="learned"))  # rope-less RMSNorm
    with pytest.raises(ValueError, match="matches none of the transformers families"):
        convert.export_hf(odd, tok, tmp_path / "odd")


# ----------------------------------------------------------------------------------------------------------------
# Our checkpoint format


def test_checkpoint_round_trip(tmp_path):
    path, _ = make_hf_dir(tmp_path / "src", "qwen2", tie_word_embeddings=True)
    model, tok = load(path, window=4, sinks=1, layer_pattern="LG")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(random_ids(8), targets=random_ids(8, seed=1))[1].mean().backward()
    opt.step()
    train_state = {"optimizer": opt.state_dict(), "step": 7, "rng": torch.get_rng_state(), "cursor": [3, 5],
                   "note": "after warmup", "lr": 1e-3}
    ckpt = tmp_path / "ckpt"
    checkpoint.save(ckpt, model, tok, run_config={"lr": 1e-3, "steps": 10}, train_state=train_state)
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "src"]  # no temporary directories left behind
    from safetensors import safe_open
    with safe_open(ckpt / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in f.keys()  # a tied head is stored once
    assert json.load(open(ckpt / "config.json"))["format"] == "swarr"

    m2, tok2, run_config, state = checkpoint.load(ckpt, device="cpu", dtype="float32")
    assert m2.config.to_dict() == model.config.to_dict()
    assert (m2.config.window, m2.config.sinks, m2.config.layer_pattern) == (4, 1, "LG")
    sd1, sd2 = model.state_dict(), m2.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    text = "x = 3.14 * r**2  # área\n"
    assert tok2.encode(text) == tok.encode(text) and tok2.eos_id == tok.eos_id
    assert run_config == {"lr": 1e-3, "steps": 10}
    assert state["step"] == 7 and state["cursor"] == [3, 5] and state["note"] == "after warmup"
    assert torch.equal(state["rng"], train_state["rng"])
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-3)
    opt2.load_state_dict(state["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])

    m3, tok3 = convert.load_model(str(ckpt), dtype="float32", device="cpu", window=8)  # overrides apply here too
    assert m3.config.window == 8 and m3.config.layer_pattern is None
    assert checkpoint.load(ckpt, device="cpu")[3]["step"] == 7


def test_checkpoint_overwrite_is_atomic(tmp_path, monkeypatch):
    path, _ = make_hf_dir(tmp_path / "src", "llama")
    model, tok = load(path)
    ckpt = tmp_path / "ckpt"
    checkpoint.save(ckpt, model, tok, train_state={"step": 1})
    (ckpt / "metrics.jsonl").write_text('{"step": 1}\n')  # written next to the checkpoint by a training script

    def crash(self, out_dir):
        raise RuntimeError("disk full")
    monkeypatch.setattr(Tokenizer, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        checkpoint.save(ckpt, model, tok, train_state={"step": 2})
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "src"]
    assert checkpoint.load(ckpt, device="cpu")[3] == {"step": 1}  # the old one, whole
    monkeypatch.undo()

    checkpoint.save(ckpt, model, tok)  # replaces it: no stale train_state, foreign files kept
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "src"]
    assert not (ckpt / "train_state.pt").exists()
    assert (ckpt / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_load_dtype_and_device(tmp_path):
    path, _ = make_hf_dir(tmp_path, "llama")
    model, _ = convert.load_model(f"hf:{path}", dtype="bfloat16", device="cpu")
    assert all(p.dtype == torch.bfloat16 and p.requires_grad for p in model.parameters())
    assert model.inv_freq.dtype == torch.float32
    model, _ = convert.load_model(f"hf:{path}", device="cpu")  # auto on a CPU: float32
    assert next(model.parameters()).dtype == torch.float32


# ----------------------------------------------------------------------------------------------------------------
# Bad input: one clear line each


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    return make_hf_dir(tmp_path_factory.mktemp("llama"), "llama")[0]


def copy_dir(src, dst):
    import shutil
    shutil.copytree(src, dst)
    return str(dst)


def test_missing_dir_and_files(tmp_path, llama_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert.load_model(f"hf:{tmp_path}/nope")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        convert.load_model(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        convert.load_model(f"hf:{tmp_path}")
    d = copy_dir(llama_dir, tmp_path / "noweights")
    os.remove(os.path.join(d, "model.safetensors"))
    open(os.path.join(d, "pytorch_model.bin"), "w").close()
    with pytest.raises(FileNotFoundError, match="no model.safetensors.*safetensors only"):
        convert.load_model(f"hf:{d}")
    with pytest.raises(FileNotFoundError, match="GGUF file .* does not exist"):
        convert.load_model(f"gguf:{tmp_path}/nope.gguf")
    with pytest.raises(FileNotFoundError, match="checkpoint directory .* does not exist"):
        checkpoint.load(tmp_path / "nope")


def test_unsupported_model_type_lists_supported(tmp_path, llama_dir):
    d = copy_dir(llama_dir, tmp_path / "d")
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["model_type"] = "falcon"
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    with pytest.raises(ValueError, match="unsupported model_type 'falcon'.*supported: gpt2, llama, mistral, "
                                         "qwen2, qwen3"):
        convert.load_model(f"hf:{d}")


def test_bad_window(llama_dir):
    with pytest.raises(ValueError, match="window must be a positive integer"):
        load(llama_dir, window=0)
    with pytest.raises(ValueError, match="larger than the model's context"):
        load(llama_dir, window=1000)
    with pytest.raises(ValueError, match="layer_pattern must be"):
        load(llama_dir, window=4, layer_pattern="LX")


def test_corrupted_safetensors_header(tmp_path, llama_dir):
    d = copy_dir(llama_dir, tmp_path / "d")
    with open(os.path.join(d, "model.safetensors"), "r+b") as f:
        f.write(b"\xff" * 16)  # the 8-byte header length and the start of the JSON header
    with pytest.raises(ValueError, match="model.safetensors: not a valid safetensors file"):
        convert.load_model(f"hf:{d}")


def test_strict_loading(tmp_path, llama_dir):
    from safetensors.torch import load_file, save_file
    base = load_file(os.path.join(llama_dir, "model.safetensors"))

    def with_state(name, state):
        d = copy_dir(llama_dir, tmp_path / name)
        save_file(state, os.path.join(d, "model.safetensors"))
        return d

    missing = with_state("missing", {k: v for k, v in base.items() if "layers.1.mlp.up_proj" not in k})
    with pytest.raises(ValueError, match=r"1 tensors missing \['model.layers.1.mlp.up_proj.weight'\]"):
        convert.load_model(f"hf:{missing}")
    extra = with_state("extra", {**base, "model.layers.2.mlp.up_proj.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"1 unexpected \['model.layers.2.mlp.up_proj.weight'\]"):
        convert.load_model(f"hf:{extra}")
    shape = with_state("shape", {**base, "model.norm.weight": torch.ones(65)})
    with pytest.raises(ValueError, match=r"model.norm.weight has shape \(65,\) but the model expects \(64,\)"):
        convert.load_model(f"hf:{shape}")
    no_head = with_state("nohead", {k: v for k, v in base.items() if k != "lm_head.weight"})  # untied: required
    with pytest.raises(ValueError, match="missing.*lm_head.weight"):
        convert.load_model(f"hf:{no_head}")

    tied, hf = make_hf_dir(tmp_path / "tied", "llama", tie_word_embeddings=True)  # tied: a stray lm_head is ignored
    state = load_file(os.path.join(tied, "model.safetensors"))
    save_file({**state, "lm_head.weight": torch.zeros(300, 64)}, os.path.join(tied, "model.safetensors"))
    x = random_ids(T)
    assert (logits_ours(load(tied)[0], x) - logits_hf(hf, x)).abs().max() < 1e-4


def edited_config(src, dst, **changes):
    """A copy of a transformers directory with config.json keys changed (None deletes a key)."""
    d = copy_dir(src, dst)
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg.update(changes)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    return d


def one_line_error(exc_type, match, fn, *args, **kwargs):
    with pytest.raises(exc_type, match=match) as e:
        fn(*args, **kwargs)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("changes, message", [
    (dict(hidden_size="64"), "hidden_size must be a positive integer, got '64'"),
    (dict(num_attention_heads=4.0), "num_attention_heads must be a positive integer"),
    (dict(max_position_embeddings=0), "max_position_embeddings must be a positive integer, got 0"),
    (dict(rms_norm_eps="1e-6"), "rms_norm_eps must be a positive number"),
    (dict(tie_word_embeddings="false"), "tie_word_embeddings must be true or false"),
    (dict(rope_scaling={"rope_type": "linear"}), "linear rope scaling needs a positive number factor, got None"),
    (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0}), "llama3 rope scaling needs a positive number "
                                                                 "low_freq_factor"),
    (dict(rope_scaling="linear"), "rope_scaling must be an object"),
])
def test_bad_config_values_are_one_line(tmp_path, llama_dir, changes, message):
    d = edited_config(llama_dir, tmp_path / "d", **changes)
    one_line_error(ValueError, message, convert.load_model, f"hf:{d}")


def test_linear_rope_scaling_with_factor_loads(tmp_path, llama_dir):
    d = edited_config(llama_dir, tmp_path / "d", rope_scaling={"type": "linear", "factor": 2.0})
    model, _ = convert.load_model(f"hf:{d}")
    plain, _ = convert.load_model(f"hf:{llama_dir}")
    assert torch.equal(model.inv_freq, plain.inv_freq / 2)


def test_config_that_is_not_an_object(tmp_path, llama_dir):
    d = copy_dir(llama_dir, tmp_path / "d")
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump([{"model_type": "llama"}], f)
    one_line_error(ValueError, "config.json holds a JSON list, not an object", convert.load_model, f"hf:{d}")


def test_crafted_layer_count_fails_before_building(tmp_path, llama_dir):
    """10^6 layers claimed, 2 in the file: the error comes before a 10^6-layer model is laid out (minutes and
    gigabytes even on the meta device). The Qwen2 variant also needs the linear-time pattern search."""
    import time
    qwen = make_hf_dir(tmp_path / "qwen", "qwen2")[0]
    cases = [(edited_config(llama_dir, tmp_path / "llama", num_hidden_layers=10**6), 10**6),
             (edited_config(qwen, tmp_path / "qwen_swa", num_hidden_layers=10**5, use_sliding_window=True,
                            sliding_window=4, max_window_layers=50_000), 10**5)]
    for d, n in cases:
        t0 = time.perf_counter()
        one_line_error(ValueError, f"the config has {n} layers but the weights only 2", convert.load_model, f"hf:{d}")
        assert time.perf_counter() - t0 < 10


def test_shortest_pattern_is_the_smallest_period():
    import random
    rng = random.Random(0)
    for _ in range(300):
        types = "".join(rng.choice("LG") for _ in range(rng.randint(1, 12)))
        if rng.random() < 0.5:  # a real repetition, cut anywhere
            types = (types * 5)[:rng.randint(len(types), 5 * len(types))]
        want = None if set(types) == {"L"} else next(  # the definition: the first p that repeats to types
            types[:p] for p in range(1, len(types) + 1) if all(types[i] == types[i % p] for i in range(len(types))))
        assert convert.shortest_pattern(types) == want, types


def test_bad_shard_index(tmp_path):
    sharded = make_hf_dir(tmp_path / "src", "llama", max_shard_size="30KB")[0]
    index = os.path.join(sharded, "model.safetensors.index.json")
    good = json.load(open(index))

    def with_index(name, weight_map):
        d = copy_dir(sharded, tmp_path / name)
        json.dump({**good, "weight_map": weight_map}, open(os.path.join(d, "model.safetensors.index.json"), "w"))
        return f"hf:{d}"
    one_line_error(ValueError, "weight_map must map tensor names to file names",
                   convert.load_model, with_index("list", list(good["weight_map"])))
    first = next(iter(good["weight_map"]))
    (tmp_path / "outside.safetensors").write_bytes(b"")
    one_line_error(ValueError, "lists '../outside.safetensors', outside the model directory",
                   convert.load_model, with_index("escape", {**good["weight_map"], first: "../outside.safetensors"}))
    one_line_error(ValueError, "lists '/etc/passwd', outside", convert.load_model,
                   with_index("absolute", {**good["weight_map"], first: "/etc/passwd"}))
    other = next(f for f in good["weight_map"].values() if f != good["weight_map"][first])
    one_line_error(ValueError, f"puts \\['{first}'\\] in {other} but that file does not hold them",
                   convert.load_model, with_index("wrong_shard", {**good["weight_map"], first: other}))


def test_eos_id_outside_the_vocabulary(tmp_path, llama_dir):
    d = copy_dir(llama_dir, tmp_path / "d")
    path = os.path.join(d, "tokenizer_config.json")
    cfg = json.load(open(path))
    cfg["swarr"]["eos_id"] = 300  # byte-level tokenizer: ids 0..256
    json.dump(cfg, open(path, "w"))
    one_line_error(ValueError, r"tokenizer's eos_id 300 is not a token id \(0 to 256\)", convert.load_model, f"hf:{d}")


@pytest.fixture(scope="module")
def swarr_ckpt(tmp_path_factory, llama_dir):
    model, tok = load(llama_dir)
    path = tmp_path_factory.mktemp("swarr") / "ckpt"
    optimizer = torch.optim.AdamW(model.parameters()).state_dict()
    checkpoint.save(path, model, tok, run_config={"lr": 1e-3},
                    train_state={"step": 3, "cursor": 1, "optimizer": optimizer, "rng": common.rng_state()})
    return str(path)


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.int64, torch.bool])
def test_non_float_weights_are_refused(tmp_path, llama_dir, swarr_ckpt, dtype):
    """A weight stored as integers or booleans would be cast to float, load and train: refused with one line,
    from a transformers folder and from a checkpoint."""
    from safetensors.torch import load_file, save_file

    for src, name in ((llama_dir, "model.norm.weight"), (swarr_ckpt, "norm_f.weight")):
        d = copy_dir(src, tmp_path / f"{os.path.basename(src)}_{str(dtype)[6:]}")
        tensors = load_file(os.path.join(d, "model.safetensors"))
        tensors[name] = tensors[name].to(dtype)
        save_file(tensors, os.path.join(d, "model.safetensors"))
        one_line_error(ValueError, f"tensor {name} is stored as {str(dtype)[6:]}; swarr loads floating-point weights "
                                   f"only", convert.load_model, d if src == swarr_ckpt else f"hf:{d}")
    model, _ = convert.load_model(f"hf:{llama_dir}")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the float file still loads


def test_sinks_are_bounded_by_the_context(tmp_path, llama_dir, swarr_ckpt):
    """sinks=10**9 (a hand-edited checkpoint, or a flag) would make the KV cache ask for 10**9 slots per layer."""
    d = copy_dir(swarr_ckpt, tmp_path / "sinks")
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["model"].update(window=8, sinks=10**9)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    one_line_error(ValueError, f"sinks=1000000000 is more than the model's context of {cfg['model']['block_size']} "
                               f"positions", checkpoint.load, d)
    one_line_error(ValueError, "sinks=100000 is more than the model's context of 128 positions", load, llama_dir,
                   window=8, sinks=100000)
    assert load(llama_dir, window=8, sinks=128)[0].config.sinks == 128


def test_damaged_checkpoint_files_are_one_line(tmp_path, swarr_ckpt):
    def damaged(name, edit):
        d = copy_dir(swarr_ckpt, tmp_path / name)
        edit(d)
        return d

    def config_edit(fn):
        def edit(d):
            cfg = json.load(open(os.path.join(d, "config.json")))
            fn(cfg)
            json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
        return edit
    no_model = damaged("no_model", config_edit(lambda c: c.pop("model")))
    one_line_error(ValueError, 'has no "model" object', checkpoint.load, no_model)
    one_line_error(ValueError, 'has no "model" object', convert.load_model, no_model)
    no_block = damaged("no_block", config_edit(lambda c: c["model"].pop("block_size")))
    one_line_error(ValueError, "the model's settings lack block_size", checkpoint.load, no_block)
    bad_type = damaged("bad_type", config_edit(lambda c: c["model"].update(n_embd="64")))
    one_line_error(ValueError, "n_embd must be a positive integer", checkpoint.load, bad_type)
    no_backend = damaged("no_backend", config_edit(lambda c: c["model"].pop("attn_backend")))
    assert checkpoint.load(no_backend)[0].config.attn_backend == "auto"  # a runtime choice: may be left out

    def truncate(d):
        path = os.path.join(d, "train_state.pt")
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) // 2])
    truncated = damaged("truncated", truncate)
    one_line_error(ValueError, "train_state.pt cannot be read", checkpoint.load, truncated)
    not_dict = damaged("not_dict", lambda d: torch.save([1, 2], os.path.join(d, "train_state.pt")))
    one_line_error(ValueError, "train_state.pt holds a list", checkpoint.load, not_dict)
    partial = damaged("partial", lambda d: torch.save({"step": 3}, os.path.join(d, "train_state.pt")))
    assert checkpoint.load(partial)[3] == {"step": 3}  # without state_keys: whatever is there
    one_line_error(ValueError, "a train_state.pt without cursor, optimizer, rng: a partial or foreign",
                   checkpoint.load, partial, state_keys=("step", "cursor", "optimizer", "rng"))
    no_state = damaged("no_state", lambda d: os.remove(os.path.join(d, "train_state.pt")))
    one_line_error(ValueError, "has no train_state.pt", checkpoint.load, no_state, state_keys=("step",))
    assert checkpoint.load(swarr_ckpt, state_keys=("step", "cursor", "optimizer", "rng"))[3]["step"] == 3


def test_hub_failure_is_one_clear_line(monkeypatch):
    import huggingface_hub

    def offline(repo_id, **kwargs):
        assert "config.json" in kwargs["allow_patterns"]
        raise OSError("Failed to resolve 'huggingface.co'\nmore detail")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(ValueError, match=r"could not download 'Org/Some-Model' .*no internet.*gguf:") as e:
        convert.load_model("hf:Org/Some-Model")
    assert "\n" not in str(e.value)


def test_unsupported_gguf_architecture(tmp_path):
    gguf = pytest.importorskip("gguf")
    import numpy as np
    path = str(tmp_path / "tiny.gguf")
    w = gguf.GGUFWriter(path, "phi2")
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ValueError, match="GGUF architecture 'phi2' is not supported; supported: llama"):
        convert.load_model(f"gguf:{path}")


# ----------------------------------------------------------------------------------------------------------------
# Command line


def test_cli_converts_and_exports(tmp_path, llama_dir, capsys):
    out, hf_out = tmp_path / "base", tmp_path / "hf"
    rc = convert.main([f"--init=hf:{llama_dir}", "--window=4", "--sinks=1", "--layer_pattern=LG",
                       f"--out_dir={out}", f"--export_hf={hf_out}", "--dtype=float32"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "llama:" in printed and "(1 windowed, 1 global), window=4, sinks=1" in printed
    model, _, run_config, _ = checkpoint.load(out, device="cpu")
    assert (model.config.window, model.config.sinks, model.config.layer_pattern) == (4, 1, "LG")
    assert run_config["init"] == f"hf:{llama_dir}"
    assert os.path.isfile(hf_out / "model.safetensors")
    with pytest.raises(SystemExit) as e:
        convert.main(["--help"])
    assert e.value.code == 0 and "--layer_pattern" in capsys.readouterr().out


def test_cli_bad_input_exits_2_with_one_line(tmp_path, llama_dir, capsys):
    with pytest.raises(SystemExit) as e:
        convert.main([f"--init=hf:{llama_dir}", "--window=0", f"--out_dir={tmp_path / 'x'}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--window: must be a positive integer" in err, err
    assert not (tmp_path / "x").exists()


def test_convert_window_alone_keeps_the_profile_sinks(tmp_path):
    """convert.py --window=W on a full-attention pretrained model: sinks not given take the pretrained profile's 4
    (what sft.py does); --sinks given wins."""
    hf_dir, _ = make_hf_dir(tmp_path / "hf", "llama", max_position_embeddings=1024)
    assert convert.main([f"--init=hf:{hf_dir}", "--window=64", f"--out_dir={tmp_path / 'a'}"]) == 0
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())["model"]
    assert (cfg["window"], cfg["sinks"]) == (64, 4)
    assert convert.main([f"--init=hf:{hf_dir}", "--window=64", "--sinks=1", f"--out_dir={tmp_path / 'b'}"]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["model"]["sinks"] == 1
