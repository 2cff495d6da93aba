"""Candidate Triton tiles of one kernel on this GPU: the windowed attention's output and gradients against a float64
reference, and fwd+bwd time, per candidate (CUDA only). bench/kernel_tiles.py says whether tiles fit a GPU's shared
memory; this says whether the compiled kernel is right, which only a run on the GPU can.

    python bench/tiles_gpu.py --kernel=bwd_dkdv --head_dim=256 --tiles=16x64x8x2,32x32x8x2 --out=/tmp/tiles.json

How kernels/triton_swa.py's dK/dV tiles at head dim 256 were chosen (bench/RESULTS.md, "GPU check"): 16x64 with 8 warps
and 2 stages computed dK wrong on an H200 with Triton 3.6.
"""
import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
from helpers import reference_attention  # noqa: E402
from kernels import triton_swa  # noqa: E402
from kernels.triton_swa import windowed_attention  # noqa: E402

TOL = {torch.float32: 1e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}  # tests/test_kernels.py's
CASES = [(1, 2, 1, 150, 20, 4), (2, 8, 2, 1024, 256, 4)]  # B, Hq, Hkv, T, W, sinks: the kernel test's, and a longer one


def rel_errors(B, Hq, Hkv, T, W, sinks, D, dtype):
    g = torch.Generator().manual_seed(0)
    q, k, v, do = (torch.randn(B, h, T, D, generator=g).to("cuda", dtype) for h in (Hq, Hkv, Hkv, Hq))
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    windowed_attention(q, k, v, window=W, sinks=sinks).backward(do)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    ref = reference_attention(q64, k64, v64, W, sinks, None)
    ref.backward(do.double())
    out = windowed_attention(q.detach(), k.detach(), v.detach(), window=W, sinks=sinks)
    rel = lambda a, b: ((a.double() - b).abs().max() / b.abs().max().clamp_min(0.1)).item()  # noqa: E731
    return {"out": rel(out, ref), "dq": rel(q.grad, q64.grad), "dk": rel(k.grad, k64.grad), "dv": rel(v.grad, v64.grad)}


def fwd_bwd_ms(D, dtype, T=4096, W=1024, reps=10):
    q = torch.randn(1, 14, T, D, device="cuda", dtype=dtype, requires_grad=True)
    k, v = (torch.randn(1, 2, T, D, device="cuda", dtype=dtype, requires_grad=True) for _ in range(2))
    do = torch.randn_like(q)
    run = lambda: torch.autograd.grad(windowed_attention(q, k, v, window=W, sinks=4), (q, k, v), do)  # noqa: E731
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        run()
    torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - t0) / reps


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--kernel", default="bwd_dkdv", choices=["fwd", "bwd_dq", "bwd_dkdv"])
    p.add_argument("--head_dim", type=int, default=256)
    p.add_argument("--tiles", default="16x64x8x2,32x32x8x2", help="BLOCK_MxBLOCK_NxWARPSxSTAGES, comma-separated")
    p.add_argument("--dtypes", default="float16,bfloat16")
    p.add_argument("--tol", type=float, default=None,
                   help="largest relative error that passes (default: tests/test_kernels.py's for the dtype)")
    p.add_argument("--out", default="", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("tiles_gpu: needs a CUDA device (the Triton interpreter does not run the compiled kernel)",
              file=sys.stderr)
        return 1
    rows = []
    for tiles in args.tiles.split(","):
        for name in args.dtypes.split(","):
            dtype = getattr(torch, name)
            table = triton_swa._TILES_FP32 if dtype == torch.float32 else triton_swa._TILES_16BIT
            table[args.kernel][max(64, triton_swa._block_d(args.head_dim))] = tuple(int(x) for x in tiles.split("x"))
            row = {"kernel": args.kernel, "head_dim": args.head_dim, "tiles": tiles, "dtype": name}
            tol = args.tol or TOL[dtype]
            try:  # tiles() refuses what has no tiles (head_dim 256 in float32) in one line: a row too
                arch = triton_swa._device_arch(torch.device("cuda"))
                row["used"] = triton_swa.tiles(arch, args.head_dim, dtype, args.kernel)  # what a launch takes
                row["errors"] = [rel_errors(*case, args.head_dim, dtype) for case in CASES]
                row["ok"] = all(e <= tol for errs in row["errors"] for e in errs.values())
                row["fwd_bwd_ms_T4096_W1024"] = fwd_bwd_ms(args.head_dim, dtype)
            except Exception as e:  # noqa: BLE001  (a launch that fails is a row too)
                row["ok"], row["error"] = False, f"{type(e).__name__}: {str(e)[:300]}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
