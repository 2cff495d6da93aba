"""Every Triton kernel of kernels/triton_swa.py compiled for sm_80, sm_89 and sm_90 without a GPU, at head_dim 64,
128 and 256 in bf16 and fp16, with the tiles triton_swa.tiles() picks for each architecture: the shared memory of
each compiled kernel must be within that GPU's per-block limit, or its launch fails there with OutOfResources.

The compiles run bench/kernel_tiles.py (Triton's compiler and the ptxas its wheel ships) in child processes, one
per architecture: this process runs Triton's interpreter (tests/conftest.py), which replaces the compiler. Register
spills are reported (pytest -s prints the table), not asserted: they cost speed, not correctness.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")
from triton.backends import backends as triton_backends  # noqa: E402

from kernels import triton_swa  # noqa: E402

if "nvidia" not in triton_backends:
    pytest.skip("this triton build has no NVIDIA backend (and no ptxas) to compile with", allow_module_level=True)

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "kernel_tiles.py"
# Maximum shared memory per thread block (KiB), with the dynamic opt-in Triton makes for kernels above 48 KiB: CUDA C++
# Programming Guide, appendix "Compute Capabilities", technical specifications table; the same in the tuning guides
# (Ampere: A100 has 164 KB per SM, 8.6 has 100 KB; Hopper/Blackwell: 228 KB per SM; each block gets 1 KB less, which
# CUDA reserves): 163 KiB on 8.0, 99 KiB on 8.6 and 8.9 (A10, L4, RTX 4090), 227 KiB on 9.0.
LIMIT_KIB = {80: 163, 89: 99, 90: 227}
HEAD_DIMS = (64, 128, 256)
DTYPES = ("bfloat16", "float16")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernel_tiles")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["OMP_NUM_THREADS"] = "1"
    children = {}
    for arch in LIMIT_KIB:
        cmd = [sys.executable, str(SCRIPT), f"--archs={arch}", f"--head_dims={','.join(map(str, HEAD_DIMS))}",
               f"--dtypes={','.join(DTYPES)}", f"--json={out / f'sm{arch}.json'}"]
        children[arch] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows, refused = [], []
    for arch, child in children.items():
        stdout, stderr = child.communicate(timeout=600)
        assert child.returncode == 0, f"sm_{arch}: {stderr[-3000:]}"
        report = json.loads((out / f"sm{arch}.json").read_text())
        rows += report["rows"]
        refused += report["refused"]
        print(stdout)
    return rows, refused


def test_every_kernel_compiles_for_every_arch(compiled):
    rows, refused = compiled
    assert refused == []
    got = {(r["kernel"], r["arch"], r["head_dim"], r["dtype"]) for r in rows}
    assert got == {(k, a, d, t) for k in triton_swa.KERNELS for a in LIMIT_KIB for d in HEAD_DIMS for t in DTYPES}


def test_shared_memory_within_each_arch_limit(compiled):
    rows, _ = compiled
    over = [f"{r['kernel']} sm_{r['arch']} head_dim={r['head_dim']} {r['dtype']}: {r['shared']} B > "
            f"{LIMIT_KIB[r['arch']]} KiB" for r in rows if r["shared"] > LIMIT_KIB[r["arch"]] * 1024]
    assert not over, "\n".join(over)
    # Everything but the row-wise delta kernel stages tiles for tl.dot in shared memory: 0 would be a broken reading.
    assert all(r["shared"] >= 16 * 1024 for r in rows if r["kernel"] != "bwd_delta")


def test_sm86_gets_the_tiles_of_sm89():
    # Same 99 KiB per block (the Programming Guide lists 8.6 and 8.9 together), so sm_89's compile covers sm_86.
    for kernel in triton_swa.KERNELS:
        for head_dim in HEAD_DIMS:
            for dtype in (torch.bfloat16, torch.float16):
                assert triton_swa.tiles(86, head_dim, dtype, kernel) == triton_swa.tiles(89, head_dim, dtype, kernel)
