"""
The decode-attention lever of kernels.cpu.decode_attention, side by side in one process: SmolLM2-135M-Instruct's cached
greedy generation in bf16 on the CPU with the attention of each decode step done by SDPA (the old path) and by two
matmuls + a float32 softmax (the path the KV cache now takes on CPU in bf16/fp16 for batch > 1). Runs alternate, best of
--repeats; also the attention call alone at SmolLM2's shapes (9 query heads on 3 kv heads, head dim 64).

    python bench/decode_attention.py --threads=1 --batch_sizes=1,16 --new_tokens=128
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import convert  # noqa: E402
import generation  # noqa: E402
from generate import make_prompts, run_ours, smollm2_gguf  # noqa: E402  (bench/generate.py)

NEW = generation.decode_attention  # kernels.cpu's, as the KV cache calls it


def old(q, K, V, mask):
    return F.scaled_dot_product_attention(q, K, V, attn_mask=mask)


def main():
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch_sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--window", type=int, default=None, help="window the model first (4 sinks); default full attention")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    print(f"attention call alone, bf16, {args.threads} thread(s), microseconds:")
    for B, S in ((1, 160), (16, 160), (16, 512)):
        q, K = torch.randn(B, 3, 3, 64, dtype=torch.bfloat16), torch.randn(B, 3, S, 64, dtype=torch.bfloat16)
        V = torch.randn_like(K)
        times = {}
        for name, fn in (("sdpa", old), ("matmul", NEW)):
            for _ in range(20):
                fn(q, K, V, None)
            t = time.perf_counter()
            for _ in range(200):
                fn(q, K, V, None)
            times[name] = (time.perf_counter() - t) / 200 * 1e6
        print(f"  batch {B:2d}, {S} keys: sdpa {times['sdpa']:.0f}, matmul path {times['matmul']:.0f} "
              f"({times['sdpa'] / times['matmul']:.2f}x)")

    model, tok = convert.load_model(f"gguf:{smollm2_gguf()}", dtype="float32", device="cpu")
    model.eval()
    if args.window:
        model.configure_window(args.window, sinks=4)
    print(f"SmolLM2 greedy generate, window {args.window or 'none'}, bf16 autocast, 32-token prompts, {args.new_tokens} new tokens, tokens/s (best of "
          f"{args.repeats}):")
    for B in args.batch_sizes:
        prompts = make_prompts(tok, B, 32)
        best, tokens = {}, {}
        for r in range(args.repeats + 1):  # the first round warms up
            for name, fn in (("sdpa", old), ("matmul", NEW)):
                generation.decode_attention = fn
                t = time.perf_counter()
                tokens[name] = run_ours(model, prompts, args.new_tokens, torch.bfloat16)
                dt = time.perf_counter() - t
                if r:
                    best[name] = min(best.get(name, dt), dt)
        generation.decode_attention = NEW
        same = sum(a == b for a, b in zip(tokens["sdpa"], tokens["matmul"]))
        n = B * args.new_tokens
        print(f"  batch {B:2d}: sdpa {n / best['sdpa']:.1f}, matmul path {n / best['matmul']:.1f} "
              f"({best['sdpa'] / best['matmul']:.2f}x); rows with identical tokens {same}/{B}")


if __name__ == "__main__":
    main()
