"""The GPU check, one command (sized to finish within 8 minutes on one H100/H200; its runs: bench/RESULTS.md, "GPU
check"; nothing from the internet: random-init Qwen2.5-0.5B-shaped models): is the bf16 path right on this GPU, how
much memory does the recipe take, how fast does it decode?

    python bench/gpu_check.py --out=out/gpu_check.json        # CUDA only: exits 1 without CUDA or on a failed check
    python bench/gpu_check.py --dry_run --out=/tmp/dry.json   # CPU: every section at toy shapes (a test runs this)
    python bench/gpu_check.py --sections=attention,grpo        # a subset

Sections, in order. The JSON report is rewritten after each one, so an exception loses none of the numbers before
it; a section that raises is recorded as failed (with the error) and the next one runs.
1. attention: every backend (dense, chunked, flex, triton) in bf16 against dense fp32 on the same bf16-rounded
   inputs, forward and backward (d(sum(out * R)) for a fixed random R), 14 query / 2 KV heads, at T in
   {301, 512, 4096} x sinks {0, 4} x head_dim {64, 128}, W = T // 4 (always smaller than T: at W >= T the band is
   plain causal attention and the check would prove nothing). Pass: every relative error < REL_TOL.
2. sft: two SFT steps of a Qwen2.5-0.5B-shaped model (W=256 + 4 sinks) on one batch under bf16 autocast with
   fp32 weights: finite loss and gradients, the second loss lower than the first.
3. grpo: one GRPO step on sampled rows cut to unequal lengths, with unequal advantages (rewards drawn at random,
   centred per group): grpo.accumulate_gradients' gradient (bf16, micro-batched, the shared prompt forward where auto
   picks it) against the plain policy gradient written out here: -sum_i A_i sum_t log p(y_it) / N, each row its own
   fp32 forward, no cache. Pass: cosine > 0.99 and norms within 5%, the sampler-vs-trainer log-prob gap small, and
   after an SGD step along that gradient the objective sum_i A_i log p(y_i) rose (a step a sign error would fail).
4. flex_recompiles: compiled FlexAttention at batch sizes 1..16 at one length (fp32, against dense): how many
   graphs dynamo compiled (pass: at most 2, batch 1 and a dynamic batch; a recompile per batch size would reach
   dynamo's limit, past which it silently runs eager code).
5. memory: torch.cuda.max_memory_allocated of the recipe's worst micro-batches (runs/gpu_qwen_gsm8k.sh): an SFT
   micro-batch of 16 x 512 tokens, a GRPO micro-batch of 16 rows of 256 + 512 tokens, the sampling of 256 rows.
6. decode: tokens/s of KV-cached generation at batch 1, 16 and 256, eager and compiled (model.compile_decode:
   the decode step as one graph over a static-shape cache; the model part alone before torch 2.13); at batch 1 the
   share of the GPU's memory bandwidth that reading the weights once per token would take (peaks in PEAK_BANDWIDTH).
   A case that fails (a compile error, say) is recorded as such and the others still run.
7. timings: Triton vs FlexAttention vs SDPA (causal flash, the full-attention cost) at T = 4k and 16k, W = 1k,
   bf16, forward and forward+backward, median of CUDA-event times.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import grpo  # noqa: E402
import rl  # noqa: E402
from model import GPT, GPTConfig, attention, dense_attention  # noqa: E402

REL_TOL = 2e-2  # above the bf16 rounding of p and dS inside the kernels (bench/RESULTS.md, 'GPU check')
SECTIONS = ("attention", "sft", "grpo", "flex_recompiles", "memory", "decode", "timings")
PEAK_BANDWIDTH = {"H200": 4.8e12, "H100 80GB HBM3": 3.35e12, "H100 PCIe": 2.0e12, "A100-SXM4-80GB": 2.04e12,
                  "A100-SXM4-40GB": 1.555e12, "L4": 0.3e12}  # bytes/s, from the vendors' data sheets


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--out", default="out/gpu_check.json", help="where the JSON report goes (rewritten per section)")
    p.add_argument("--dry_run", action="store_true", help="run every section at toy shapes on the CPU")
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ",".join(SECTIONS))
    args = p.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {sorted(unknown)}: choose from {','.join(SECTIONS)}")
    return args


def rel_err(x, ref):
    return ((x.float() - ref.float()).abs().max() / ref.float().abs().max().clamp(min=1e-6)).item()


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------------------------
# 1. attention


def check_attention(device, shapes, backends):
    """-> {records: [{backend, D, T, W, sinks, out, dq, dk, dv, ok}], ok}."""
    records = []
    for D in shapes["head_dims"]:
        for T in shapes["seqlens"]:
            for sinks in (0, 4):
                window = T // 4
                g = torch.Generator(device=device).manual_seed(T + D + sinks)
                q, k, v = (torch.randn(1, H, T, D, device=device, generator=g).to(torch.bfloat16) for H in (14, 2, 2))
                weight = torch.randn(1, 14, T, D, device=device, generator=g)
                ref_in = [x.float().requires_grad_() for x in (q, k, v)]  # the reference: fp32 on the same inputs
                ref = dense_attention(*ref_in, window, sinks)
                ref_grads = torch.autograd.grad((ref * weight).sum(), ref_in)
                for backend in backends:
                    rec = {"backend": backend, "D": D, "T": T, "W": window, "sinks": sinks}
                    inputs = [x.clone().requires_grad_() for x in (q, k, v)]
                    try:
                        out = attention(*inputs, window=window, sinks=sinks, backend=backend)
                        grads = torch.autograd.grad((out.float() * weight).sum(), inputs)
                    except Exception as e:  # noqa: BLE001  (recorded; the other backends still run)
                        records.append(rec | {"ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                        continue
                    rec |= {"dtype": str(out.dtype), "out": rel_err(out, ref)}
                    rec |= {f"d{n}": rel_err(gr, rg) for n, gr, rg in zip("qkv", grads, ref_grads)}
                    rec["ok"] = out.dtype == torch.bfloat16 and all(rec[x] < REL_TOL for x in ("out", "dq", "dk", "dv"))
                    records.append(rec)
                del q, k, v, ref, ref_grads, ref_in
                if device == "cuda":
                    torch.cuda.empty_cache()
    return {"records": records, "ok": all(r["ok"] for r in records)}


# ---------------------------------------------------------------------------------------------------------------
# 2-3. training steps


def qwen_shaped(dry_run, device, seed=0):
    if dry_run:
        cfg = GPTConfig(vocab_size=512, n_layer=2, n_head=14, n_kv_head=2, n_embd=224, intermediate_size=256,
                        block_size=1024, qkv_bias=True, rope_theta=1e6, window=32, sinks=4)
    else:  # Qwen2.5-0.5B: the layout of the single-GPU recipe, random weights
        cfg = GPTConfig(vocab_size=151_936, n_layer=24, n_head=14, n_kv_head=2, n_embd=896, intermediate_size=4864,
                        block_size=32768, qkv_bias=True, rope_theta=1e6, norm_eps=1e-6, window=256, sinks=4,
                        tie_embeddings=True)
    torch.manual_seed(seed)
    return GPT(cfg).to(device)


def check_sft(device, dry_run):
    model = qwen_shaped(dry_run, device)
    V = model.config.vocab_size
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    B, T = (2, 96) if dry_run else (4, 1024)
    g = torch.Generator(device=device).manual_seed(0)
    idx = torch.randint(0, V, (B, T), device=device, generator=g)
    targets = idx.roll(-1, dims=1)
    targets[:, : T // 4] = -1  # a prompt part without loss, as in SFT
    losses, norms = [], []
    for _ in range(2):  # two SFT steps on the same batch: the second loss must be lower
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(idx, targets)[1].sum() / (targets != -1).sum()
        loss.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item())
        losses.append(loss.item())
        opt.step()
        opt.zero_grad(set_to_none=True)
    ok = all(math.isfinite(x) for x in losses + norms) and losses[1] < losses[0]
    return {"params_M": model.num_params() / 1e6, "losses": losses, "grad_norms": norms, "ok": ok}


def sample_rows(model, prompts, group, new_tokens, seed=0):
    """G samples of each prompt, cut to unequal lengths (a random model rarely emits EOS), with unequal advantages:
    random 0/1 rewards centred per group (a group of equal rewards is redrawn: it would carry no gradient)."""
    device = model.embed.weight.device.type
    gens = [torch.Generator(device=device).manual_seed(seed * 1000 + n) for n in range(len(prompts) * group)]
    model.eval()
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        outs = model.generate(prompts, new_tokens, temperature=1.0, num_samples=group, generator=gens)
    model.train()
    g = torch.Generator().manual_seed(seed)
    rows = []
    for p in range(len(prompts)):
        rewards = torch.zeros(group)
        while rewards.min() == rewards.max():
            rewards = torch.randint(0, 2, (group,), generator=g).float()
        adv = grpo.group_advantages(rewards[None], "none")[0]
        for j in range(group):
            o = outs[p * group + j]
            n = int(torch.randint(max(1, new_tokens // 4), new_tokens + 1, (1,), generator=g))
            rows.append({"prompt": prompts[p], "tokens": o["tokens"][:n], "logprobs": o["logprobs"][:n],
                         "adv": float(adv[j])})
    return rows


def policy_objective(model, rows, normalizer):
    """The plain policy-gradient objective, each row its own fp32 forward: sum_i A_i sum_t log p(y_it) / N."""
    total = 0.0
    for r in rows:
        seq = torch.tensor(r["prompt"] + r["tokens"], device=model.embed.weight.device)
        logits, _ = model(seq[None, :-1])
        logp = torch.log_softmax(logits[0].float(), dim=-1)  # (T-1, V)
        start = len(r["prompt"]) - 1
        picked = logp[start:].gather(1, seq[start + 1:, None])[:, 0]  # (n,)
        total = total + r["adv"] * picked.sum()
    return total / normalizer


def check_grpo(device, dry_run):
    model = qwen_shaped(dry_run, device, seed=1)
    V = model.config.vocab_size
    P, G, new = (2, 4, 24) if dry_run else (4, 8, 256)
    prompts = [torch.randint(0, V, (40 + 7 * i,), generator=torch.Generator().manual_seed(i)).tolist()
               for i in range(P)]
    t0 = time.perf_counter()
    rows = sample_rows(model, prompts, G, new)
    sync(device)
    gen_s = time.perf_counter() - t0
    rl_args = rl.get_parser().parse_args(["--out_dir=", f"--micro_batch_size={8 if dry_run else 16}"])
    lengths = torch.tensor([len(r["tokens"]) for r in rows])
    normalizer = grpo.normalizer_terms(lengths, "token", new)
    t0 = time.perf_counter()
    stats, _ = grpo.accumulate_gradients(model, [dict(r) for r in rows], normalizer, rl_args, pad_id=0,
                                         amp_dtype=torch.bfloat16)
    sync(device)
    train_s = time.perf_counter() - t0
    params = [p for p in model.parameters()]
    got = torch.cat([p.grad.flatten().float() for p in params])
    model.zero_grad(set_to_none=True)
    objective = policy_objective(model, rows, normalizer)
    (-objective).backward()
    ref = torch.cat([p.grad.flatten().float() for p in params])
    cosine = torch.nn.functional.cosine_similarity(got, ref, dim=0).item()
    norm_ratio = (got.norm() / ref.norm()).item()
    # the loss at the first update (ratio exactly 1) is -sum_i A_i n_i / N: nonzero because lengths and advantages
    # are unequal, so a loss that came out 0 would show a dropped term
    expected_loss = -sum(r["adv"] * len(r["tokens"]) for r in rows) / normalizer
    with torch.no_grad():  # a plain SGD step along the policy gradient must raise the objective
        lr = 1e-2 / ref.norm().item()
        for p in params:
            p.add_(p.grad, alpha=-lr)
        after = policy_objective(model, rows, normalizer).item()
    gap = (stats["logp_diff"] / stats["tokens"]).item()
    report = {"rows": len(rows), "tokens": int(lengths.sum()), "loss": stats["loss"].item(),
              "expected_loss": expected_loss, "grad_cosine": cosine, "grad_norm_ratio": norm_ratio,
              "objective_before": objective.item(), "objective_after_step": after, "sampler_logp_gap": gap,
              "gen_s": gen_s, "train_s": train_s}
    report["ok"] = (abs(report["loss"] - expected_loss) < 1e-3 * max(1.0, abs(expected_loss)) and cosine > 0.99
                    and abs(norm_ratio - 1) < 0.05 and after > objective.item() and gap < 0.1)
    return report


# ---------------------------------------------------------------------------------------------------------------
# 4. FlexAttention recompiles


def check_flex_recompiles(device, dry_run):
    """Batch sizes 1..16 (1..4 on the CPU) at one length through the compiled flex kernel: how many graphs dynamo
    compiled. kernels/flex.py compiles the batch dimension dynamic, so 2 are expected (batch 1, and the rest)."""
    from torch._dynamo.utils import counters

    from kernels.flex import flex_windowed_attention
    T, W, batches = (100, 32, range(1, 5)) if dry_run else (512, 128, range(1, 17))
    before = counters["stats"]["unique_graphs"]
    errors = []
    for B in batches:
        q, k, v = (torch.randn(B, H, T, 64, device=device) for H in (14, 2, 2))
        with torch.no_grad():
            out = flex_windowed_attention(q, k, v, W, 4, compiled=True)
            errors.append(rel_err(out, dense_attention(q, k, v, W, 4)))
    sync(device)
    graphs = counters["stats"]["unique_graphs"] - before
    return {"batch_sizes": f"{batches.start}..{batches.stop - 1}", "T": T, "graphs_compiled": graphs,
            "max_rel_err": max(errors), "ok": graphs <= 2 and max(errors) < 1e-4}


# ---------------------------------------------------------------------------------------------------------------
# 5. memory of the recipe's worst micro-batches


def peak_of(device, fn):
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def check_memory(device, dry_run):
    model = qwen_shaped(dry_run, device, seed=2)
    V = model.config.vocab_size
    sft_bt, prompt, new, rows_mb, gen_rows = ((4, 96), 32, 32, 4, 16) if dry_run else ((16, 512), 256, 512, 16, 256)
    g = torch.Generator(device=device).manual_seed(0)

    def sft_micro_batch():
        idx = torch.randint(0, V, sft_bt, device=device, generator=g)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = model(idx, idx.roll(-1, 1))[1].mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    def grpo_micro_batch():
        p = torch.randint(0, V, (prompt,), generator=torch.Generator().manual_seed(0)).tolist()
        rows = [{"prompt": p, "tokens": torch.randint(0, V, (new,), generator=torch.Generator().manual_seed(i))
                 .tolist(), "logprobs": [0.0] * new, "adv": (-1) ** i * 0.5} for i in range(rows_mb)]
        rl_args = rl.get_parser().parse_args(["--out_dir=", f"--micro_batch_size={rows_mb}"])
        grpo.accumulate_gradients(model, rows, float(rows_mb * new), rl_args, pad_id=0, amp_dtype=torch.bfloat16)
        model.zero_grad(set_to_none=True)

    def sampling():
        prompts = [torch.randint(0, V, (prompt,), generator=torch.Generator().manual_seed(i)).tolist()
                   for i in range(gen_rows // 8)]
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
            model.generate(prompts, new, temperature=1.0, num_samples=8)

    weights = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    report = {"weights_gb": weights, "sft_micro_batch": list(sft_bt), "grpo_micro_batch": [rows_mb, prompt + new],
              "sampling_rows": gen_rows, "sft_peak_gb": peak_of(device, sft_micro_batch),
              "grpo_peak_gb": peak_of(device, grpo_micro_batch), "sampling_peak_gb": peak_of(device, sampling)}
    if device == "cuda":
        report["gpu_gb"] = torch.cuda.get_device_properties(0).total_memory / 2**30
    report["ok"] = True  # a number to read; an out-of-memory error fails the section
    return report


# ---------------------------------------------------------------------------------------------------------------
# 6. decode speed


def check_decode(device, dry_run):
    model = qwen_shaped(dry_run, device, seed=3).eval()
    V = model.config.vocab_size
    prompt, new = (16, 16) if dry_run else (128, 256)
    batches = (1, 4) if dry_run else (1, 16, 256)
    records = []
    for compiled in (False, True):
        if compiled and dry_run:  # compiled = eager is tests/test_compile.py's; a CPU compile here costs minutes
            records.append({"compiled": True, "skipped": "dry run: compiled decode is tested in tests/test_compile.py"})
            continue
        if compiled:
            model.compile_decode()  # generate's decode step as one graph over a static-shape cache
        for B in batches:
            prompts = [torch.randint(0, V, (prompt,), generator=torch.Generator().manual_seed(i)).tolist()
                       for i in range(B)]

            def run():
                with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
                    return model.generate(prompts, new, temperature=1.0)
            try:  # one case's failure (a compile error, say) keeps the others' numbers
                run()  # warm-up (and compilation)
                sync(device)
                t0 = time.perf_counter()
                outs = run()
                sync(device)
                seconds = time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001
                records.append({"compiled": compiled, "batch": B, "error": f"{type(e).__name__}: {str(e)[:300]}"})
                continue
            tokens = sum(len(o["tokens"]) for o in outs)
            rec = {"compiled": compiled, "batch": B, "tokens": tokens, "seconds": seconds,
                   "tokens_per_s": tokens / seconds, "ms_per_step": 1e3 * seconds / new}
            if B == 1 and device == "cuda":
                peak = PEAK_BANDWIDTH.get(torch.cuda.get_device_name().replace("NVIDIA ", ""))
                # autocast's cached bf16 copies, read once
                weight_bytes = sum(p.numel() for p in model.parameters()) * 2
                rec["bandwidth_share"] = weight_bytes * new / seconds / peak if peak else None
            records.append(rec)
    return {"records": records, "ok": all("error" not in r for r in records),
            "compiled_graph": "model and sampler" if torch.__version__ >= "2.13" else "model (torch < 2.13)"}


# ---------------------------------------------------------------------------------------------------------------
# 7. attention timings


def time_ms(fn, warmup=3, reps=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def check_timings(device, dry_run, window=1024, sinks=4):
    if dry_run:
        return {"skipped": "CUDA-event timings need a GPU", "ok": True}
    records = []
    for T in (4096, 16384):
        q, k, v = (torch.randn(1, H, T, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
                   for H in (14, 2, 2))
        do = torch.randn_like(q)
        methods = {"triton": dict(window=window, sinks=sinks, backend="triton"),
                   "flex": dict(window=window, sinks=sinks, backend="flex"),
                   "sdpa_causal": dict(window=None, sinks=0, backend="dense")}
        for name, kw in methods.items():
            try:
                fwd = time_ms(lambda: attention(q, k, v, **kw))
                both = time_ms(lambda: torch.autograd.grad(attention(q, k, v, **kw), (q, k, v), do))
                records.append({"method": name, "T": T, "W": window, "fwd_ms": fwd, "fwd_bwd_ms": both})
            except Exception as e:  # noqa: BLE001
                records.append({"method": name, "T": T, "error": f"{type(e).__name__}: {str(e)[:300]}"})
    return {"records": records, "ok": all("error" not in r for r in records)}


# ---------------------------------------------------------------------------------------------------------------


def summary_line(name, result):
    if "error" in result:
        return f"FAIL {name}: {result['error']}"
    status = "ok  " if result["ok"] else "FAIL"
    if name == "attention":
        bad = [r for r in result["records"] if not r["ok"]]
        worst = max((r.get("out", 0), r.get("dq", 0), r.get("dk", 0), r.get("dv", 0)) for r in result["records"])
        return f"{status} attention: {len(result['records']) - len(bad)}/{len(result['records'])} cases within " \
               f"{REL_TOL}; worst relative error {max(worst):.1e}"
    if name in ("decode", "timings") and "records" in result:
        return f"{status} {name}: " + "; ".join(
            r.get("skipped") or r.get("error") or (
                f"{'compiled' if r['compiled'] else 'eager'} B={r['batch']} {r['tokens_per_s']:.0f} tok/s"
                if name == "decode" else f"{r['method']} T={r['T']} fwd {r['fwd_ms']:.2f} ms, "
                                         f"fwd+bwd {r['fwd_bwd_ms']:.2f} ms") for r in result["records"])
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items() if k not in ("ok",)}
    return f"{status} {name}: {shown}"


def main(argv=None):
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing was checked; "
              "use --dry_run for the CPU version", file=sys.stderr)
        return 1
    device = "cpu" if args.dry_run else "cuda"
    if args.dry_run:
        shapes = {"head_dims": [64], "seqlens": [37, 160]}
        backends = ["dense", "chunked"]  # flex has no CPU backward, the Triton interpreter no bf16 (test_bf16.py)
    else:
        shapes = {"head_dims": [64, 128], "seqlens": [301, 512, 4096]}
        backends = ["dense", "chunked", "flex", "triton"]
        torch._dynamo.config.cache_size_limit = 64  # flex compiles once per length bucket and mask
    report = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)",
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "sections": {}}
    checks = {"attention": lambda: check_attention(device, shapes, backends),
              "sft": lambda: check_sft(device, args.dry_run), "grpo": lambda: check_grpo(device, args.dry_run),
              "flex_recompiles": lambda: check_flex_recompiles(device, args.dry_run),
              "memory": lambda: check_memory(device, args.dry_run),
              "decode": lambda: check_decode(device, args.dry_run),
              "timings": lambda: check_timings(device, args.dry_run)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t_all = time.perf_counter()
    for name in args.sections.split(","):
        t0 = time.perf_counter()
        try:
            result = checks[name]()
        except Exception as e:  # noqa: BLE001  (recorded; the next section still runs)
            result = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:500]}",
                      "traceback": traceback.format_exc()[-3000:]}
        result["seconds"] = time.perf_counter() - t0
        report["sections"][name] = result
        report["seconds"] = time.perf_counter() - t_all
        report["ok"] = all(r["ok"] for r in report["sections"].values())
        with open(args.out, "w") as f:  # after every section: a later crash loses nothing of this one
            json.dump(report, f, indent=1)
        print(summary_line(name, result) + f" ({result['seconds']:.0f} s)", flush=True)
        if device == "cuda":
            torch.cuda.empty_cache()
    print(f"{'all ok' if report['ok'] else 'FAILURES'} in {report['seconds']:.0f} s; report in {args.out}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
