"""
Attention forward + backward: time and peak memory of the dense masked reference against the O(T*W) paths.

    python bench/attention.py                          # CPU, fp32: dense vs chunked, T = 1k..16k, W=256 (~2 min)
    python bench/attention.py --tune_block             # CPU: chunked at T=8k for several block sizes (~1 min)
    python bench/attention.py --T=1024,4096 --W=64     # other shapes
    python bench/attention.py --device=cuda            # GPU, bf16: dense (mask), causal, chunked, flex, triton
    python bench/attention.py --help

What is timed: out = attention(q, k, v, window=W, sinks=S, backend=...); out.backward(grad) with q, k, v of shape
(B, H, T, D), after one warm-up call; the median of --repeats runs. "dense" is SDPA with an explicit (T, T) boolean
mask, which does O(T^2) work whatever the window; "chunked" is kernels.cpu.chunked_attention (query blocks against
their band of keys). On CUDA "causal" is SDPA's is_causal full attention (what an unwindowed model costs; not the same
function), "flex" is FlexAttention with the compiled kernel and a block mask built once per length, and "triton"
is kernels/ (a cell shows the exception's name where a backend fails, e.g. OutOfMemoryError).

Memory on CPU is the rise of the process's peak RSS during one forward + backward (after a warm-up call, the peak
reset through /proc/self/clear_refs), in a fresh child process per (backend, T) with glibc told to return large
blocks to the OS (MALLOC_MMAP_THRESHOLD_), so the number is what the call itself needed, the input grads included.
On CUDA it is torch.cuda.max_memory_allocated above what was allocated before.
On CPU dense runs are skipped above --dense_max_T=8192 (O(T^2) time and a T^2 mask); pass a larger value to run them.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from kernels.cpu import chunked_attention  # noqa: E402
from model import attention  # noqa: E402


def ints(s):
    return [int(x) for x in s.split(",")]


def make_inputs(args, T, device, dtype):
    g = torch.Generator(device="cpu").manual_seed(0)
    shape = lambda H: (args.B, H, T, args.D)  # noqa: E731
    q, k, v = (torch.randn(shape(H), generator=g).to(device, dtype).requires_grad_()
               for H in (args.H, args.Hkv, args.Hkv))
    grad = torch.randn(shape(args.H), generator=g).to(device, dtype)
    return q, k, v, grad


def run_once(fn, q, k, v, grad):
    q.grad = k.grad = v.grad = None
    fn(q, k, v).backward(grad)


def backend_fn(args, name, block=None):
    if name == "chunked" and block is not None:
        return lambda q, k, v: chunked_attention(q, k, v, args.W, args.sinks, block=block)
    if name == "causal":
        return lambda q, k, v: attention(q, k, v, window=None, backend="dense")
    return lambda q, k, v: attention(q, k, v, window=args.W, sinks=args.sinks, backend=name)


# ----------------------------------------------------------------------------------------------------------------
# CPU: one child process per measurement, so peak RSS belongs to that call alone


def read_status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(args):
    """Runs in the child: time and peak RSS rise of one (backend, T, block); prints one JSON line."""
    torch.set_num_threads(args.threads)
    fn = backend_fn(args, args.backend, args.block)
    q, k, v, grad = make_inputs(args, args.T[0], "cpu", torch.float32)
    run_once(fn, q, k, v, grad)  # warm-up: thread pools and kernels allocate once, on first use
    q.grad = k.grad = v.grad = None
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS (VmHWM) to the current RSS
    before = read_status_mib("VmRSS")
    run_once(fn, q, k, v, grad)
    peak = read_status_mib("VmHWM") - before
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        run_once(fn, q, k, v, grad)
        times.append(time.perf_counter() - t)
    print(json.dumps(dict(seconds=statistics.median(times), peak_mib=peak)))


def measure_cpu(args, backend, T, block=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", f"--backend={backend}", f"--T={T}",
           f"--W={args.W}", f"--sinks={args.sinks}", f"--B={args.B}", f"--H={args.H}", f"--Hkv={args.Hkv}",
           f"--D={args.D}", f"--repeats={args.repeats}", f"--threads={args.threads}"]
    if block is not None:
        cmd.append(f"--block={block}")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(1 << 20))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return dict(error=out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_cpu(args):
    print(f"CPU fp32, {args.threads} threads, B={args.B} H={args.H} Hkv={args.Hkv} D={args.D} W={args.W} "
          f"sinks={args.sinks}; forward+backward, median of {args.repeats}; memory = peak RSS rise", flush=True)
    if args.tune_block:
        T = max(args.T) if args.T != DEFAULT_T else 8192
        print(f"chunked block size at T={T}:")
        for block in args.blocks:
            r = measure_cpu(args, "chunked", T, block)
            print(f"  block={block:4d}: {r['seconds'] * 1e3:8.1f} ms  {r['peak_mib']:7.1f} MiB", flush=True)
        return
    print(f"{'T':>6} | {'dense ms':>9} {'MiB':>7} | {'chunked ms':>10} {'MiB':>7} | speedup")
    rows = []
    for T in args.T:
        chunked = measure_cpu(args, "chunked", T)
        dense = measure_cpu(args, "dense", T) if T <= args.dense_max_T else None
        rows.append(dict(T=T, dense=dense, chunked=chunked))
        if dense is None:
            d = f"{'skipped':>9} {'':>7}"
        elif "error" in dense:
            d = f"{'failed':>9} {'':>7}"
        else:
            d = f"{dense['seconds'] * 1e3:9.1f} {dense['peak_mib']:7.1f}"
        speedup = (f"{dense['seconds'] / chunked['seconds']:.1f}x" if dense and "error" not in dense else "-")
        print(f"{T:6d} | {d} | {chunked['seconds'] * 1e3:10.1f} {chunked['peak_mib']:7.1f} | {speedup}", flush=True)
    skipped = [T for T in args.T if T > args.dense_max_T]
    if skipped:
        print(f"dense skipped at T={skipped}: O(T^2) time (about 4x per doubling) and a T^2 mask; "
              f"--dense_max_T={max(skipped)} runs it")
    return rows


# ----------------------------------------------------------------------------------------------------------------
# CUDA


def bench_cuda(args):
    if not torch.cuda.is_available():
        raise SystemExit("error: --device=cuda needs a CUDA GPU and none is visible here; the GPU rows (bf16 dense "
                         "SDPA, causal SDPA, chunked, flex) can only be measured on one. Use --device=cpu.")
    dtype = torch.bfloat16
    print(f"{torch.cuda.get_device_name()}, bf16, B={args.B} H={args.H} Hkv={args.Hkv} D={args.D} W={args.W} "
          f"sinks={args.sinks}; forward+backward, median of {args.repeats}; memory = peak allocated above inputs")
    names = ["dense", "causal", "chunked", "flex", "triton"]
    print(f"{'T':>6} | " + " | ".join(f"{n + ' ms':>11} {'MiB':>7}" for n in names))
    for T in args.T:
        cells = []
        for name in names:
            if name == "dense" and T > args.dense_max_T:
                cells.append(f"{'skipped':>11} {'':>7}")
                continue
            q, k, v, grad = make_inputs(args, T, "cuda", dtype)
            fn = backend_fn(args, name)
            try:
                run_once(fn, q, k, v, grad)  # warm-up: compiles flex, builds its block mask
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                times = []
                for _ in range(args.repeats):
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    run_once(fn, q, k, v, grad)
                    end.record()
                    torch.cuda.synchronize()
                    times.append(start.elapsed_time(end))
                peak = (torch.cuda.max_memory_allocated() - base) / 2**20
                cells.append(f"{statistics.median(times):11.2f} {peak:7.1f}")
            except Exception as e:  # noqa: BLE001  (an out-of-memory or a missing kernel is a table cell)
                cells.append(f"{type(e).__name__[:11]:>11} {'':>7}")
            del q, k, v, grad
            torch.cuda.empty_cache()
        print(f"{T:6d} | " + " | ".join(cells), flush=True)


DEFAULT_T = [1024, 2048, 4096, 8192, 16384]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cpu (fp32) or cuda (bf16)")
    p.add_argument("--T", type=ints, default=DEFAULT_T, help="comma-separated sequence lengths")
    p.add_argument("--W", type=int, default=256, help="window (keys per query, itself included)")
    p.add_argument("--sinks", type=int, default=0, help="sink keys")
    p.add_argument("--B", type=int, default=1, help="batch size")
    p.add_argument("--H", type=int, default=8, help="query heads")
    p.add_argument("--Hkv", type=int, default=8, help="key/value heads (GQA when < H)")
    p.add_argument("--D", type=int, default=64, help="head dim")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per cell (median reported)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU")
    p.add_argument("--dense_max_T", type=int, default=None, help="skip dense above this length (default: 8192 on "
                   "CPU, where it is O(T^2) in time; no limit on CUDA)")
    p.add_argument("--tune_block", action="store_true", help="CPU: time chunked at several block sizes instead")
    p.add_argument("--blocks", type=ints, default=[32, 64, 128, 256, 512], help="block sizes for --tune_block")
    p.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="chunked", help=argparse.SUPPRESS)
    p.add_argument("--block", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.dense_max_T is None:
        args.dense_max_T = 8192 if args.device == "cpu" else 1 << 30
    if args._child:
        return child(args)
    print(f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, load average {os.getloadavg()[0]:.1f}")
    if args.device == "cuda":
        return bench_cuda(args)
    return bench_cpu(args)


if __name__ == "__main__":
    main()
