"""
Shared memory and register spills of every Triton kernel in kernels/triton_swa.py, per GPU architecture, compiled
ahead of time by Triton's own compiler: no GPU is needed (ptxas ships inside the triton wheel).

    python bench/kernel_tiles.py                                  # the table in bench/RESULTS.md (~2 min on 1 core)
    python bench/kernel_tiles.py --archs=89 --head_dims=128 --dtypes=bfloat16
    python bench/kernel_tiles.py --archs=90 --json=/tmp/sm90.json  # rows as JSON (tests/test_kernel_compile.py)

Each kernel is compiled with the tiles kernels.triton_swa.tiles() chooses for that architecture and the argument
specialization a launch on contiguous tensors gets from Triton's JIT: 16-byte aligned pointers, strides that are
multiples of 16, the last-dim stride the constant 1, and several query heads per kv head (GQA). The columns:
  shared       KiB of shared memory one block needs (Triton's metadata.shared); a launch on a GPU whose
               per-block limit (in the column's title, triton_swa.SHARED_KIB) is smaller fails with OutOfResources
  spill        bytes of register spill stores per thread, from `ptxas -v` (the JSON rows also have registers)
Every compile is fresh (a private cache directory), so ptxas runs and its log is read. Runs on the CPU; setting
TRITON_INTERPRET=1 replaces the compiler by the interpreter, so it must be unset.
"""

import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

if os.environ.get("TRITON_INTERPRET", "0") == "1":
    sys.exit("bench/kernel_tiles.py compiles for GPUs; unset TRITON_INTERPRET (it swaps Triton's compiler for its "
             "interpreter)")

import torch  # noqa: E402
import triton  # noqa: E402
from triton import knobs  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402

from kernels import triton_swa  # noqa: E402

FUNCTIONS = {"fwd": triton_swa._fwd_kernel, "bwd_delta": triton_swa._bwd_delta_kernel,
             "bwd_dq": triton_swa._bwd_dq_kernel, "bwd_dkdv": triton_swa._bwd_dkdv_kernel}
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
TRITON_TYPE = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
TENSORS = {"Q", "K", "V", "O", "DO", "DQ", "DK", "DV"}  # in the input dtype
STATS = {"LSE", "DELTA"}  # per-row float32


def signature(fn, dtype, constexprs):
    """Triton's signature of fn's arguments as a launch on contiguous tensors specializes them (see the docstring)."""
    aligned = [["tt.divisibility", 16]]
    sig, attrs, constexprs = {}, {}, dict(constexprs)
    for i, name in enumerate(fn.arg_names):
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.startswith("stride_") and name.endswith("d"):  # the head-dim stride: 1 for contiguous tensors
            sig[name], constexprs[name] = "constexpr", 1
        elif name.startswith("stride_"):
            sig[name], attrs[(i,)] = "i32", aligned
        elif name in TENSORS or name in STATS:
            sig[name], attrs[(i,)] = "*" + ("fp32" if name in STATS else TRITON_TYPE[dtype]), aligned
        elif name == "scale":
            sig[name] = "fp32"
        else:  # H, H_KV, GROUP, T, W, SINKS
            sig[name] = "i32"
    return sig, attrs, constexprs


def compile_kernel(kernel, arch, head_dim, dtype):
    """Compile one kernel for sm_<arch> with its tiles; returns a row of the table."""
    cfg = triton_swa.tiles(arch, head_dim, dtype, kernel)
    options = {k: cfg.pop(k) for k in ("num_warps", "num_stages") if k in cfg}
    fn = FUNCTIONS[kernel]
    sig, attrs, constexprs = signature(fn, dtype, dict(HEAD_DIM=head_dim, **cfg))
    log = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(log):  # ptxas -v's report is printed by Triton when dump_ptxas_log is on
        compiled = triton.compile(triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=constexprs, attrs=attrs),
                                  target=GPUTarget("cuda", arch, 32), options=options)
    seconds = time.perf_counter() - start
    regs = re.search(r"Used (\d+) registers", log.getvalue())
    spill = re.search(r"(\d+) bytes spill stores", log.getvalue())
    return dict(kernel=kernel, arch=arch, head_dim=head_dim, dtype=str(dtype).removeprefix("torch."),
                BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg.get("BLOCK_N"), num_warps=options["num_warps"],
                num_stages=options.get("num_stages"), shared=compiled.metadata.shared,
                limit=triton_swa.SHARED_KIB.get(arch, 99) * 1024,
                registers=int(regs.group(1)) if regs else None, spill_stores=int(spill.group(1)) if spill else None,
                seconds=round(seconds, 2))


def markdown(rows):
    """One line per (kernel, head_dim, dtype), one column per architecture: shared KiB / spill stores B."""
    archs = sorted({r["arch"] for r in rows})
    lines = ["| kernel | head_dim | dtype | tiles: BLOCK_M x BLOCK_N, warps, stages | "
             + " | ".join(f"sm_{a} ({triton_swa.SHARED_KIB.get(a, 99)} KiB)" for a in archs) + " |",
             "|---" * (4 + len(archs)) + "|"]
    groups = {}
    for r in rows:
        groups.setdefault((r["kernel"], r["head_dim"], r["dtype"]), {})[r["arch"]] = r
    for (kernel, head_dim, dtype), by_arch in groups.items():
        tiles = {}
        for arch, r in by_arch.items():
            tile = f"{r['BLOCK_M']} x {r['BLOCK_N']}" if r["BLOCK_N"] else f"{r['BLOCK_M']} rows"
            tiles.setdefault(f"{tile}, {r['num_warps']}, {r['num_stages'] or '-'}", []).append(f"sm_{arch}")
        tile_text = next(iter(tiles)) if len(tiles) == 1 else "; ".join(f"{t} ({', '.join(a)})"
                                                                      for t, a in tiles.items())
        cells = [f"{by_arch[a]['shared'] / 1024:.1f} / {by_arch[a]['spill_stores']}" if a in by_arch else "-"
                 for a in archs]
        lines.append(f"| {kernel} | {head_dim} | {dtype} | {tile_text} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default="80,89,90", help="compute capabilities, comma-separated (89 = sm_89)")
    p.add_argument("--head_dims", default="64,128,256", help="head dims, comma-separated")
    p.add_argument("--dtypes", default="bfloat16,float16,float32", help="of " + ", ".join(DTYPES))
    p.add_argument("--kernels", default=",".join(FUNCTIONS), help="of " + ", ".join(FUNCTIONS))
    p.add_argument("--json", default="", help="also write the rows to this file")
    args = p.parse_args()
    bad = [d for d in args.dtypes.split(",") if d not in DTYPES] + \
        [k for k in args.kernels.split(",") if k not in FUNCTIONS]
    if bad:
        p.error(f"unknown dtype or kernel: {', '.join(bad)}")

    rows, refused = [], []
    with tempfile.TemporaryDirectory() as cache:
        knobs.cache.dir = cache  # a fresh cache: every kernel really compiles and ptxas reports
        knobs.nvidia.dump_ptxas_log = True
        for arch in (int(a) for a in args.archs.split(",")):
            for head_dim in (int(d) for d in args.head_dims.split(",")):
                for dtype_name in args.dtypes.split(","):
                    for kernel in args.kernels.split(","):
                        try:
                            rows.append(compile_kernel(kernel, arch, head_dim, DTYPES[dtype_name]))
                        except ValueError as e:  # no tiles for this head dim and dtype: refused at the entry point
                            refused.append(f"sm_{arch} head_dim={head_dim} {dtype_name}: {e}")
                            break
                        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(markdown(rows))
    for line in refused:
        print(f"\nrefused: {line}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rows=rows, refused=refused), f, indent=1)


if __name__ == "__main__":
    main()
