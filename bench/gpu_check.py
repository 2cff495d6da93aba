"""The GPU check, one command (under 5 minutes on one GPU): is the bf16 path right and fast on this GPU?

    python bench/gpu_check.py                         # CUDA: writes bench/gpu_check.json and prints a summary
    python bench/gpu_check.py --out=/tmp/check.json
    TRITON_INTERPRET=1 python bench/gpu_check.py --dry_run   # CPU: the same checks at toy shapes (for CI/tests)

Without CUDA (and without --dry_run) it stops at once with one line.

1. Attention, every backend against dense fp32: q, k, v in bf16 for dense, chunked, flex and triton, forward and
   backward (d(sum(out * R)) for a fixed random R), at real shapes: 14 query / 2 kv heads with D=64 (Qwen2.5-0.5B)
   and D=128, T = 1k, 4k and 16k, W = 1024, sinks 4. The reference is model.dense_attention in fp32 on the same
   (bf16-rounded) inputs. Reported: max abs error of the output and of each gradient, relative to the reference's
   max magnitude; pass = every relative error < 2e-2 (bf16 rounding of p and ds inside the kernels gives ~4e-3).
2. Training: a Qwen2.5-0.5B-shaped random model (24 layers, 896 wide, 14/2 heads, vocab 151,936, window 256,
   sinks 4) under bf16 autocast with fp32 weights: two SFT steps (the loss, finite gradients, the loss after a step
   on the same batch lower) and one GRPO step (KV-cached sampling, rl.accumulate_gradients, the sampler-vs-trainer
   log-prob gap, an AdamW step), each with the attention backend `auto` picks.
3. Timings: Triton vs FlexAttention vs SDPA (causal flash, the full-attention cost) at T = 4k and 16k, W = 1k, bf16,
   forward and forward+backward, median of CUDA-event times.
A JSON report (--out) holds every number and the device name.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import rl  # noqa: E402
from model import GPT, GPTConfig, attention, dense_attention  # noqa: E402

REL_TOL = 2e-2


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench/gpu_check.json", help="where the JSON report goes")
    p.add_argument("--dry_run", action="store_true", help="run every check at toy shapes on the CPU (no timings)")
    p.add_argument("--seqlens", default="1024,4096,16384", help="attention check lengths")
    p.add_argument("--window", type=int, default=1024, help="attention window W")
    p.add_argument("--sinks", type=int, default=4, help="attention sinks")
    return p.parse_args(argv)


def rel_err(x, ref):
    return ((x.float() - ref.float()).abs().max() / ref.float().abs().max().clamp(min=1e-6)).item()


def check_attention(device, shapes, window, sinks, backends, dtype):
    """-> list of records {backend, Hq, Hkv, D, T, out, dq, dk, dv, ok}."""
    records = []
    for Hq, Hkv, D in shapes["heads"]:
        for T in shapes["seqlens"]:
            g = torch.Generator(device=device).manual_seed(T + D)
            q, k, v = (torch.randn(1, H, T, D, device=device, generator=g).to(dtype) for H in (Hq, Hkv, Hkv))
            weight = torch.randn(1, Hq, T, D, device=device, generator=g)
            # the reference: dense fp32 on the same bf16-rounded inputs
            ref_in = [x.float().requires_grad_() for x in (q, k, v)]
            ref = dense_attention(*ref_in, window, sinks)
            ref_grads = torch.autograd.grad((ref * weight).sum(), ref_in)
            for backend in backends:
                inputs = [x.clone().requires_grad_() for x in (q, k, v)]
                try:
                    out = attention(*inputs, window=window, sinks=sinks, backend=backend)
                    grads = torch.autograd.grad((out.float() * weight).sum(), inputs)
                except Exception as e:  # noqa: BLE001  (reported, not fatal: the other checks still run)
                    records.append({"backend": backend, "Hq": Hq, "Hkv": Hkv, "D": D, "T": T, "ok": False,
                                    "error": f"{type(e).__name__}: {str(e)[:200]}"})
                    continue
                rec = {"backend": backend, "Hq": Hq, "Hkv": Hkv, "D": D, "T": T, "dtype": str(out.dtype),
                       "out": rel_err(out, ref)}
                rec |= {f"d{n}": rel_err(gr, rg) for n, gr, rg in zip("qkv", grads, ref_grads)}
                rec["ok"] = out.dtype == dtype and all(rec[key] < REL_TOL for key in ("out", "dq", "dk", "dv"))
                records.append(rec)
            del q, k, v, ref, ref_grads, ref_in
            if device == "cuda":
                torch.cuda.empty_cache()
    return records


def qwen_shaped(dry_run, device):
    if dry_run:
        cfg = GPTConfig(vocab_size=512, n_layer=2, n_head=14, n_kv_head=2, n_embd=224, intermediate_size=256,
                        block_size=512, qkv_bias=True, rope_theta=1e6, window=32, sinks=4)
    else:  # Qwen2.5-0.5B: the layout of the single-GPU recipe, random weights
        cfg = GPTConfig(vocab_size=151_936, n_layer=24, n_head=14, n_kv_head=2, n_embd=896, intermediate_size=4864,
                        block_size=32768, qkv_bias=True, rope_theta=1e6, norm_eps=1e-6, window=256, sinks=4)
    torch.manual_seed(0)
    return GPT(cfg).to(device)


def check_training(device, dry_run, amp):
    model = qwen_shaped(dry_run, device)
    V = model.config.vocab_size
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    B, T = (2, 96) if dry_run else (4, 1024)
    g = torch.Generator(device=device).manual_seed(0)
    idx = torch.randint(0, V, (B, T), device=device, generator=g)
    targets = idx.roll(-1, dims=1)
    targets[:, : T // 4] = -1  # a prompt part without loss, as in SFT
    report = {"params_M": model.num_params() / 1e6, "sft_losses": []}
    for _ in range(2):  # two SFT steps on the same batch: the second loss must be lower
        with torch.autocast(device, dtype=amp):
            _, loss = model(idx, targets, return_logits=False)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        report["sft_losses"].append(loss.item())
        report.setdefault("sft_grad_norms", []).append(gnorm.item())
        opt.step()
        opt.zero_grad(set_to_none=True)
    losses = report["sft_losses"]
    report["sft_ok"] = all(math.isfinite(x) for x in losses + report["sft_grad_norms"]) and losses[1] < losses[0]

    # one GRPO step: sample under the window with the KV cache, score with the training forward, update
    P, G, new = (2, 4, 24) if dry_run else (4, 8, 256)
    prompts = [torch.randint(0, V, (40 + 7 * i,), generator=torch.Generator().manual_seed(i)).tolist()
               for i in range(P)]
    gens = [torch.Generator(device=device).manual_seed(n) for n in range(P * G)]
    model.eval()
    t0 = time.perf_counter()
    with torch.autocast(device, dtype=amp):
        outs = model.generate(prompts, new, temperature=1.0, num_samples=G, generator=gens)
    if device == "cuda":
        torch.cuda.synchronize()
    gen_s = time.perf_counter() - t0
    model.train()
    rows = [{"prompt": prompts[n // G], "tokens": o["tokens"], "logprobs": o["logprobs"],
             "adv": float(n % 2) - 0.5} for n, o in enumerate(outs)]
    cfg = rl.get_parser().parse_args(["--out_dir=", f"--micro_batch_size={8 if dry_run else 16}"])
    normalizer = rl.normalizer_terms(torch.tensor([len(r["tokens"]) for r in rows]), "token", new)
    t0 = time.perf_counter()
    stats = rl.accumulate_gradients(model, rows, normalizer, cfg, pad_id=0, amp_dtype=amp)
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    gap = (stats["logp_diff"] / stats["tokens"]).item()
    report |= {"grpo_loss": stats["loss"].item(), "grpo_grad_norm": gnorm.item(), "sampler_logp_gap": gap,
               "grpo_gen_s": gen_s, "grpo_train_s": time.perf_counter() - t0,
               "grpo_gen_tokens": sum(len(o["tokens"]) for o in outs)}
    report["grpo_ok"] = math.isfinite(report["grpo_loss"]) and math.isfinite(gnorm.item()) and gap < 0.1
    if device == "cuda":
        report["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return report


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


def timings(window, sinks):
    """Triton vs flex vs SDPA causal, bf16, 14/2 heads, D=64, B=1 -> records with ms for fwd and fwd+bwd."""
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
                records.append({"method": name, "T": T, "error": f"{type(e).__name__}: {str(e)[:200]}"})
    return records


def main(argv=None):
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check (use --dry_run for the CPU version)")
        return None
    if args.dry_run:
        device, amp = "cpu", torch.bfloat16
        shapes = {"heads": [(14, 2, 64)], "seqlens": [37, 160]}
        window, sinks = 16, args.sinks
        # flex has no CPU backward and the Triton interpreter no bf16: both are checked in tests/test_bf16.py
        backends = ["dense", "chunked"]
    else:
        device, amp = "cuda", torch.bfloat16
        shapes = {"heads": [(14, 2, 64), (14, 2, 128)], "seqlens": [int(t) for t in args.seqlens.split(",")]}
        window, sinks = args.window, args.sinks
        backends = ["dense", "chunked", "flex", "triton"]
        torch._dynamo.config.cache_size_limit = 64  # flex compiles once per length bucket
    t0 = time.perf_counter()
    report = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)",
              "torch": torch.__version__, "window": window, "sinks": sinks}
    report["attention"] = check_attention(device, shapes, window, sinks, backends, torch.bfloat16)
    report["attention_ok"] = all(r["ok"] for r in report["attention"])
    report["training"] = check_training(device, args.dry_run, amp)
    if device == "cuda":
        report["timings"] = timings(window, sinks)
    report["seconds"] = time.perf_counter() - t0
    report["ok"] = report["attention_ok"] and report["training"]["sft_ok"] and report["training"]["grpo_ok"]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    for r in report["attention"]:
        status = "ok  " if r["ok"] else "FAIL"
        detail = r.get("error") or " ".join(f"{key} {r[key]:.1e}" for key in ("out", "dq", "dk", "dv"))
        print(f"{status} {r['backend']:<8} Hq={r['Hq']} Hkv={r['Hkv']} D={r['D']} T={r['T']}: {detail}")
    tr = report["training"]
    print(f"sft losses {tr['sft_losses']} ({'ok' if tr['sft_ok'] else 'FAIL'}); grpo loss {tr['grpo_loss']:.4g}, "
          f"sampler-vs-trainer gap {tr['sampler_logp_gap']:.2e} ({'ok' if tr['grpo_ok'] else 'FAIL'})")
    for r in report.get("timings", []):
        print(f"{r['method']:<12} T={r['T']}: " + (r.get("error") or f"fwd {r['fwd_ms']:.2f} ms, "
                                                    f"fwd+bwd {r['fwd_bwd_ms']:.2f} ms"))
    print(f"{'all ok' if report['ok'] else 'FAILURES'} in {report['seconds']:.0f} s; report in {args.out}")
    return report


if __name__ == "__main__":
    main()
