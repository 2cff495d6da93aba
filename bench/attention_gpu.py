"""GPU benchmark: the Triton windowed kernel against dense causal SDPA (flash) and FlexAttention sliding window.

Needs a CUDA GPU; without one it exits at once with a one-line message.

    python bench/attention_gpu.py                                   # full sweep, bf16, prints a markdown table
    python bench/attention_gpu.py --batch=1 --seqlens=16384 --windows=1024      # one point
    python bench/attention_gpu.py --sinks=4 --out=bench/RESULTS.md  # also append the table to a file

Sweep: B in --batch, H=16, D=128, T in 4k/8k/16k/32k, W in 512/1024/4096, modes fwd and fwd+bwd.
Timing: CUDA events around each call after --warmup calls, median of --reps; the BlockMask and inputs are built
outside the timed region (as a model would build the mask once per forward and share it across layers).
TFLOP/s count the pairs each method has to compute: in-window pairs (plus sinks) for triton and flex, causal
pairs T(T+1)/2 for SDPA; forward 4*B*H*D*pairs, backward 2.5x that, so fwd+bwd is 3.5x.
"ideal" is causal pairs / windowed pairs: the speedup over SDPA that a windowed kernel as efficient per pair as
SDPA would reach; "of ideal" is the measured speedup over SDPA divided by it.
"""
import argparse
import os
import statistics
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def window_pairs(T, W, sinks):
    """Number of (query, key) pairs in the windowed mask: min(i+1, W) window keys plus the sinks left of it."""
    i = torch.arange(T, dtype=torch.float64)
    in_window = torch.clamp(i + 1, max=W)
    sinks_left_of_window = torch.clamp(i - W + 1, min=0).clamp(max=sinks)
    return float((in_window + sinks_left_of_window).sum())


def time_ms(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    events = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in events)


def make_methods(flex, sinks, T, W, Hq, Hkv):
    """name -> attention(q, k, v) for the three contenders at this (T, W)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.nn.attention.flex_attention import create_block_mask

    from kernels.triton_swa import windowed_attention

    def mask_mod(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & ((q_idx - kv_idx < W) | (kv_idx < sinks))

    block_mask = create_block_mask(mask_mod, None, None, T, T, device="cuda", _compile=True)

    def sdpa(q, k, v):
        if Hq != Hkv:  # the flash backend may not take enable_gqa; repeat k/v (counted in its time)
            k, v = k.repeat_interleave(Hq // Hkv, 1), v.repeat_interleave(Hq // Hkv, 1)
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return {
        "triton": lambda q, k, v: windowed_attention(q, k, v, window=W, sinks=sinks),
        "flex": lambda q, k, v: flex(q, k, v, block_mask=block_mask, enable_gqa=Hq != Hkv),
        "sdpa": sdpa,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=str, default="1,4", help="comma-separated batch sizes")
    parser.add_argument("--heads", type=int, default=16, help="query heads")
    parser.add_argument("--kv_heads", type=int, default=16, help="kv heads (< heads for GQA)")
    parser.add_argument("--head_dim", type=int, default=128, help="head dimension")
    parser.add_argument("--seqlens", type=str, default="4096,8192,16384,32768", help="comma-separated T")
    parser.add_argument("--windows", type=str, default="512,1024,4096", help="comma-separated W (keys incl. self)")
    parser.add_argument("--sinks", type=int, default=0, help="sink keys seen by every query")
    parser.add_argument("--dtype", type=str, default="bf16", choices=["bf16", "fp16"], help="input dtype")
    parser.add_argument("--modes", type=str, default="fwd,fwd+bwd", help="comma-separated: fwd, fwd+bwd")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before timing")
    parser.add_argument("--reps", type=int, default=20, help="timed calls; the median is reported")
    parser.add_argument("--out", type=str, default="", help="also append the markdown table to this file")
    args = parser.parse_args()

    if not torch.cuda.is_available():
        sys.exit("bench/attention_gpu.py: no CUDA device available; this benchmark needs a GPU "
                 "(the kernel's CPU correctness tests are tests/test_kernels.py)")

    # Many (T, W) shapes: raise dynamo's recompile limit so flex never silently falls back to eager.
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 256)
    from torch.nn.attention.flex_attention import flex_attention
    flex = torch.compile(flex_attention, dynamic=False)

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    Hq, Hkv, D = args.heads, args.kv_heads, args.head_dim
    modes = args.modes.split(",")
    header = ("| B | T | W | mode | triton ms | triton TFLOP/s | flex ms | flex TFLOP/s | sdpa ms | sdpa TFLOP/s "
              "| vs flex | vs sdpa | ideal | of ideal | max abs diff vs flex |")
    lines = [f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, {args.dtype}, H={Hq}, "
             f"Hkv={Hkv}, D={D}, sinks={args.sinks}", "", header, "|" + "---|" * (header.count("|") - 1)]
    print("\n".join(lines), flush=True)

    for B in [int(x) for x in args.batch.split(",")]:
        for T in [int(x) for x in args.seqlens.split(",")]:
            for W in [int(x) for x in args.windows.split(",")]:
                g = torch.Generator(device="cuda").manual_seed(0)
                q = torch.randn(B, Hq, T, D, device="cuda", dtype=dtype, generator=g).requires_grad_()
                k = torch.randn(B, Hkv, T, D, device="cuda", dtype=dtype, generator=g).requires_grad_()
                v = torch.randn(B, Hkv, T, D, device="cuda", dtype=dtype, generator=g).requires_grad_()
                do = torch.randn(B, Hq, T, D, device="cuda", dtype=dtype, generator=g)
                methods = make_methods(flex, args.sinks, T, W, Hq, Hkv)
                with torch.no_grad():
                    diff = (methods["triton"](q, k, v).float() - methods["flex"](q, k, v).float()).abs().max().item()
                pairs = {"triton": window_pairs(T, W, args.sinks), "flex": window_pairs(T, W, args.sinks),
                         "sdpa": T * (T + 1) / 2}
                for mode in modes:
                    ms, tflops = {}, {}
                    for name, attn in methods.items():
                        if mode == "fwd":
                            def run(attn=attn):
                                with torch.no_grad():
                                    attn(q, k, v)
                            flop = 4 * B * Hq * D * pairs[name]
                        else:
                            def run(attn=attn):
                                torch.autograd.grad(attn(q, k, v), (q, k, v), do)
                            flop = 3.5 * 4 * B * Hq * D * pairs[name]
                        try:
                            ms[name] = time_ms(run, args.warmup, args.reps)
                            tflops[name] = flop / ms[name] / 1e9
                        except torch.cuda.OutOfMemoryError:
                            ms[name] = tflops[name] = float("nan")
                            torch.cuda.empty_cache()
                    ideal = pairs["sdpa"] / pairs["triton"]
                    vs_sdpa = ms["sdpa"] / ms["triton"]
                    line = (f"| {B} | {T} | {W} | {mode} | {ms['triton']:.3f} | {tflops['triton']:.0f} "
                            f"| {ms['flex']:.3f} | {tflops['flex']:.0f} | {ms['sdpa']:.3f} | {tflops['sdpa']:.0f} "
                            f"| {ms['flex'] / ms['triton']:.2f}x | {vs_sdpa:.2f}x | {ideal:.2f}x "
                            f"| {vs_sdpa / ideal:.0%} | {diff:.1e} |")
                    print(line, flush=True)
                    lines.append(line)
                del q, k, v, do, methods
                torch.cuda.empty_cache()

    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n\n")


if __name__ == "__main__":
    main()
