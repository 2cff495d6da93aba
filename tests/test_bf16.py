"""bf16 mixed precision on CPU: torch.autocast("cpu", torch.bfloat16) applies the same casts as autocast on a GPU,
so the path every GPU run takes is tested here, against the float32 result of the same weights.

Tolerances: bf16 keeps 8 bits of mantissa (relative rounding 2^-9 = 0.002 per op); a layer of random weights at the
scale used here turns that into ~1e-2 relative error on its output, and logits of a few units differ by < 0.1.
"""
import math

import pytest
import torch
import torch.nn.functional as F

import common
import eval as evaluation
import grpo
import rl
import sft
from generation import KVCache
from helpers import generate_naive
from model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")

BF16 = torch.bfloat16
# (window, sinks, layer_pattern): windowed, windowed + sinks, mixed local/global layers, full attention
CONFIGS = [(4, 0, None), (6, 2, None), (5, 3, "LG"), (None, 0, None)]
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14], [20], [30, 31, 32, 33, 34, 35]]  # ragged: left-padded


def bf16():
    return torch.autocast("cpu", dtype=BF16)


def tiny(window=None, sinks=0, layer_pattern=None, seed=0, **kw):
    cfg = dict(vocab_size=64, n_layer=2, n_head=4, n_kv_head=2, n_embd=64, block_size=128, window=window, sinks=sinks,
               layer_pattern=layer_pattern)
    torch.manual_seed(seed)
    return GPT(GPTConfig(**(cfg | kw))).eval()


def close_logits(a, b, atol):
    """bf16 logits vs fp32 logits: max abs error, and the rows must agree on most top-1 tokens."""
    assert a.dtype == b.dtype == torch.float32
    err = (a - b).abs().max().item()
    assert err < atol, err
    return err


# ----------------------------------------------------------------------------------------------------------------
# The dtype rule, op by op


def test_every_backend_gets_one_dtype_and_the_cache_is_in_the_compute_dtype():
    model = tiny(window=4, sinks=1, qk_norm=True)  # qk_norm and RoPE both return float32 under autocast
    seen = []
    import generation
    import model as model_lib
    real = model_lib.attention

    def spy(q, k, v, *args, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return real(q, k, v, *args, **kwargs)

    model_lib.attention = generation.attention = spy  # the forward's, and the cache's prefill
    try:
        with bf16():
            model(torch.randint(0, 64, (2, 9)))
            out = model.generate([[1, 2, 3]], 3, temperature=0.0)
    finally:
        model_lib.attention = generation.attention = real
    assert seen and all(d == (BF16, BF16, BF16) for d in seen), seen
    with bf16():
        assert model_lib.compute_dtype(model.embed.weight) == BF16
    assert model_lib.compute_dtype(model.embed.weight) == torch.float32
    cache = KVCache(model.config, 1, 8, "cpu", BF16)
    assert all(t.dtype == BF16 for t in cache.k + cache.v)
    assert len(out[0]["tokens"]) == 3


def test_rope_stays_float32_at_long_positions():
    """Under autocast the rotation is computed in fp32: at position 1000 a bf16 angle would be off by radians."""
    model = tiny(block_size=2048)
    x = torch.randint(0, 64, (1, 8))
    far = torch.arange(1000, 1008)[None]
    with torch.no_grad():
        ref = model(x, positions=far)[0]
        with bf16():
            got = model(x, positions=far)[0]
    close_logits(got, ref, atol=0.15)


@pytest.mark.parametrize("backend", ["dense", "chunked", "flex", "triton"])
@pytest.mark.parametrize("window,sinks,layer_pattern", CONFIGS)
def test_model_forward_bf16_matches_fp32(backend, window, sinks, layer_pattern):
    if backend == "flex":
        pytest.importorskip("torch.nn.attention.flex_attention")
    if backend == "triton":
        pytest.importorskip("triton")
    model = tiny(window, sinks, layer_pattern, attn_backend="dense")
    idx = torch.randint(0, 64, (2, 37), generator=torch.Generator().manual_seed(1))
    # Triton's CPU interpreter cannot run bf16 (numpy has no bf16: even a load/store kernel returns garbage), so the
    # kernel is run through the same autocast path in fp16; on GPUs bf16 is checked by bench/gpu_check.py.
    amp = torch.float16 if backend == "triton" else BF16
    with torch.no_grad():
        ref = model(idx)[0]  # fp32, dense: the reference
        model.config.attn_backend = backend
        with torch.autocast("cpu", dtype=amp):
            got = model(idx)[0]
    close_logits(got, ref, atol=0.1)


def test_triton_interpreter_forward_and_backward_under_fp16_autocast():
    """The Triton kernel under autocast (fp16: the interpreter has no bf16), loss and grads vs fp32 dense."""
    pytest.importorskip("triton")
    model = tiny(window=5, sinks=2)
    idx = torch.randint(0, 64, (2, 33), generator=torch.Generator().manual_seed(2))
    targets = torch.randint(0, 64, (2, 33), generator=torch.Generator().manual_seed(3))
    grads = {}
    for backend, amp in (("dense", False), ("triton", True)):
        model.zero_grad()
        model.config.attn_backend = backend
        with torch.autocast("cpu", dtype=torch.float16, enabled=amp):
            loss = model(idx, targets)[1].mean()
        loss.backward()
        grads[backend] = (loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()]))
    (l32, g32), (l16, g16) = grads["dense"], grads["triton"]
    assert abs(l16 - l32) < 0.02
    assert F.cosine_similarity(g16, g32, dim=0) > 0.99


# ----------------------------------------------------------------------------------------------------------------
# Generation


@pytest.mark.parametrize("window,sinks,layer_pattern", CONFIGS)
def test_cached_and_naive_generation_under_bf16(window, sinks, layer_pattern):
    """Ragged left-padded batches: bf16 cached decode vs the bf16 full recompute vs fp32, on the sampled tokens'
    log-probs (greedy tokens can flip where two logits tie within bf16 rounding, so tokens are compared as a share)."""
    model = tiny(window, sinks, layer_pattern)
    with bf16():
        cached = model.generate(PROMPTS, 12, temperature=0.0)
        naive = generate_naive(model, PROMPTS, 12, temperature=0.0)
    fp32 = model.generate(PROMPTS, 12, temperature=0.0)
    for c, n, f in zip(cached, naive, fp32):
        assert all(math.isfinite(x) for x in c["logprobs"])
        assert c["tokens"][0] == f["tokens"][0]  # the first token is the same prompt forward
        same = sum(a == b for a, b in zip(c["tokens"], n["tokens"])) / len(c["tokens"])
        assert same >= 0.75, (c["tokens"], n["tokens"])
        k = next((i for i, (a, b) in enumerate(zip(c["tokens"], n["tokens"])) if a != b), len(c["tokens"]))
        for a, b in zip(c["logprobs"][:k], n["logprobs"][:k]):  # same tokens so far: same log-probs within bf16
            assert abs(a - b) < 0.05


def test_pad_queries_stay_finite_when_empty_rows_give_nan(monkeypatch):
    """CUDA's memory-efficient SDPA returns NaN for a query that sees no key; a left-padded pad query is one, and
    0 * NaN carries the NaN into real tokens in the next layer. CPU SDPA returns 0 there, so the test swaps in an
    attention that yields NaN for empty rows, as that kernel does: every output must still be finite, and each padded
    row must decode exactly as it does alone. GPT-2 layout (n_kv_head == n_head, learned positions)."""
    def nan_for_empty_rows(q, k, v, attn_mask=None, is_causal=False, enable_gqa=False, **kw):
        q, k, v = q.double(), k.double(), v.double()
        if enable_gqa:
            k, v = (x.repeat_interleave(q.size(1) // x.size(1), dim=1) for x in (k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
        if is_causal:
            attn_mask = torch.ones(q.size(2), k.size(2), dtype=torch.bool).tril()
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else scores + attn_mask
        return (torch.softmax(scores, -1) @ v).float()  # an all -inf row: softmax gives NaN

    monkeypatch.setattr(F, "scaled_dot_product_attention", nan_for_empty_rows)
    model = tiny(pos_emb="learned", norm="layernorm", mlp="gelu", n_kv_head=4, window=4)
    batched = model.generate(PROMPTS, 6, temperature=0.0)
    for p, out in zip(PROMPTS, batched):
        assert all(math.isfinite(x) for x in out["logprobs"])
        alone = model.generate([p], 6, temperature=0.0)[0]
        assert out["tokens"] == alone["tokens"]


# ----------------------------------------------------------------------------------------------------------------
# One SFT step, one GRPO step, eval


SFT_TINY = ["--init=scratch", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=192", "--window=8",
            "--sinks=1", "--data=synthetic?size=64", "--max_len=192", "--batch_size=4", "--lr=3e-3", "--warmup=2",
            "--steps=2", "--eval_every=2", "--eval_limit=4", "--eval_examples=8", "--save_every=0", "--device=cpu"]


def test_sft_steps_bf16_match_fp32(tmp_path):
    import json
    runs = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / dtype
        sft.main(SFT_TINY + [f"--out_dir={out}", f"--dtype={dtype}"])
        with open(out / "metrics.jsonl") as f:
            records = [json.loads(line) for line in f]
        runs[dtype] = records
    loss = {d: [r["loss"] for r in rs if "loss" in r] for d, rs in runs.items()}
    evals = {d: [r["eval_loss"] for r in rs if "eval_loss" in r] for d, rs in runs.items()}
    assert len(loss["bfloat16"]) == 2 and all(math.isfinite(x) for x in loss["bfloat16"])
    for a, b in zip(loss["bfloat16"], loss["float32"]):
        assert abs(a - b) / b < 0.02, (a, b)
    for a, b in zip(evals["bfloat16"], evals["float32"]):
        assert abs(a - b) / b < 0.02, (a, b)


def test_grpo_step_bf16_gradient_and_sampler_gap():
    """Sampling under bf16, then the bf16 training forward: the sampler-vs-trainer gap is measured and bounded (it is
    ~1e-8 in fp32), and the bf16 policy gradient points where the fp32 one does."""
    model = tiny(window=4, sinks=1, vocab_size=257, block_size=256)
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    gens = [torch.Generator().manual_seed(i) for i in range(6)]
    with bf16():
        outs = model.generate(prompts, 20, temperature=1.0, num_samples=3, generator=gens)
    rows = [{"prompt": prompts[n // 3], "tokens": o["tokens"], "logprobs": o["logprobs"], "adv": (n % 3) - 1.0}
            for n, o in enumerate(outs)]
    args = rl.get_parser().parse_args(["--out_dir=", "--micro_batch_size=4"])
    lengths = torch.tensor([len(r["tokens"]) for r in rows])
    norm = grpo.normalizer_terms(lengths, "token", 20)
    grads, stats = {}, {}
    for name, amp in (("fp32", torch.float32), ("bf16", BF16)):
        model.zero_grad()
        stats[name], _ = grpo.accumulate_gradients(model, [dict(r) for r in rows], norm, args, pad_id=256,
                                                   amp_dtype=amp)
        grads[name] = torch.cat([p.grad.flatten() for p in model.parameters()])
    gap = (stats["bf16"]["logp_diff"] / stats["bf16"]["tokens"]).item()
    assert 0 < gap < 0.05, gap  # bf16 sampler vs bf16 trainer: rounding, not a policy change
    assert torch.isfinite(grads["bf16"]).all()
    assert F.cosine_similarity(grads["bf16"], grads["fp32"], dim=0) > 0.98
    assert stats["bf16"]["clipped"].item() == 0  # the ratio's denominator is the trainer's own: rho == 1


def test_old_logprobs_come_from_the_training_forward():
    """Whatever the sampler recorded, the first update has rho == 1: the gradient equals the one computed with the
    trainer's exact log-probs as 'sampler' log-probs."""
    model = tiny(window=4, vocab_size=257, block_size=256)
    rows = [{"prompt": [1, 2, 3], "tokens": [4, 5, 6, 7], "logprobs": [-9.0] * 4, "adv": 1.0},
            {"prompt": [8, 9], "tokens": [10, 11], "logprobs": [-0.1, -0.2], "adv": -1.0}]
    args = rl.get_parser().parse_args(["--out_dir="])
    x, pos, tokens, _, mask, _ = grpo.collate(rows, 0, "cpu")
    with torch.no_grad():
        exact = grpo.completion_logprobs(model, x, pos, tokens, mask, 1.0)
    exact_rows = [dict(r, logprobs=exact[b, :len(r["tokens"])].tolist()) for b, r in enumerate(rows)]
    results = []
    for rs in (rows, exact_rows):
        model.zero_grad()
        st, _ = grpo.accumulate_gradients(model, [dict(r) for r in rs], 6.0, args, pad_id=0)
        results.append((st, torch.cat([p.grad.flatten() for p in model.parameters()])))
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-7, rtol=1e-6)
    assert results[0][0]["logp_diff"] > 1.0 and results[1][0]["logp_diff"] < 1e-4  # the gap is still logged


def test_rl_script_step_under_bf16(tmp_path):
    from test_rl import CopyDigit, DigitTokenizer
    model = tiny(vocab_size=12, n_embd=32, n_layer=1, n_head=2, n_kv_head=2)
    args = rl.get_parser().parse_args(["--out_dir=", "--eval_every=0", "--sample_every=0", "--steps=2",
                                      "--prompts_per_step=4", "--group_size=4", "--max_new_tokens=3", "--lr=1e-2",
                                       "--dtype=bfloat16"])
    history = rl.train(args, model, DigitTokenizer(), CopyDigit(), reward_fn=lambda text, gold: float(text[:1] == gold))
    assert len(history) == 2
    for h in history:
        assert math.isfinite(h["loss"]) and math.isfinite(h["grad_norm"])
        assert h["sampler_logp_diff"] is None or h["sampler_logp_diff"] < 0.05


def test_eval_under_bf16_reports_the_bf16_cache():
    import data
    model = tiny(window=8, sinks=2, vocab_size=258, block_size=256)
    ds = data.load_dataset("synthetic?size=8", "test")
    from tokenizer import Tokenizer
    tok = Tokenizer.byte_level()
    summary32, rec32 = evaluation.evaluate(model, tok, ds, limit=4, batch_size=4, max_new_tokens=16)
    with bf16():
        summary16, rec16 = evaluation.evaluate(model, tok, ds, limit=4, batch_size=4, max_new_tokens=16)
    assert summary16["kv_cache_mb"] == pytest.approx(summary32["kv_cache_mb"] / 2)
    assert summary16["n"] == 4 and all(r["n_tokens"] >= 1 for r in rec16)


def test_autocast_dtype_rule():
    assert common.autocast_dtype("float32", "cpu", 10**9) == torch.float32
    assert common.autocast_dtype("bfloat16", "cpu", 10) == BF16
    expected = BF16 if common.cpu_has_native_bf16() else torch.float32
    assert common.autocast_dtype("auto", "cpu", common.CPU_BF16_MIN_PARAMS) == expected
    assert common.autocast_dtype("auto", "cpu", 10**5) == torch.float32  # the toy: bf16 does not pay
    with pytest.raises(ValueError, match="float16 autocast is for GPUs"):
        common.autocast_dtype("float16", "cpu", 10)
    with pytest.raises(ValueError, match="unknown dtype"):
        common.autocast_dtype("float8", "cpu", 10)


def test_gpu_check_fails_without_cuda_and_its_dry_run_passes(tmp_path, capsys):
    """Without CUDA the check exits 1 with one line and writes no report (a CI or a script must not read "checked
    nothing" as a pass); --dry_run runs every section on the CPU at toy shapes, including the GRPO gradient against
    the plain policy gradient and the flex recompile count, and writes the report."""
    import json
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "bench"))
    import gpu_check
    if not torch.cuda.is_available():
        assert gpu_check.main([f"--out={tmp_path / 'x.json'}"]) == 1
        assert capsys.readouterr().err.strip().count("\n") == 0  # one line
        assert not (tmp_path / "x.json").exists()
    assert gpu_check.main(["--dry_run", f"--out={tmp_path / 'dry.json'}"]) == 0
    report = json.loads((tmp_path / "dry.json").read_text())
    assert report["ok"] and set(report["sections"]) == set(gpu_check.SECTIONS)
    grpo = report["sections"]["grpo"]
    assert abs(grpo["loss"]) > 1e-3 and grpo["grad_cosine"] > 0.99  # a loss that is not 0 by construction
    assert all(r["W"] < r["T"] for r in report["sections"]["attention"]["records"])


def test_tiles_gpu_refuses_without_cuda_in_one_line(capsys):
    """bench/tiles_gpu.py checks compiled kernels, which only a GPU runs: without CUDA it exits 1 with one line."""
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "bench"))
    import tiles_gpu
    if torch.cuda.is_available():
        pytest.skip("checks what a CPU-only machine refuses")
    assert tiles_gpu.main([]) == 1
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_gpu_check_writes_the_report_after_each_section(tmp_path, monkeypatch):
    """A section that raises is recorded as failed with its error, the next one still runs, and the report on disk
    holds every section that ran before it."""
    import json
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "bench"))
    import gpu_check

    def boom(device, dry_run):
        raise RuntimeError("out of memory (simulated)")
    monkeypatch.setattr(gpu_check, "check_sft", boom)
    assert gpu_check.main(["--dry_run", "--sections=sft,grpo", f"--out={tmp_path / 'r.json'}"]) == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert "simulated" in report["sections"]["sft"]["error"] and report["sections"]["grpo"]["ok"]
    assert report["ok"] is False
