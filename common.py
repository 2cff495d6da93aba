"""
The one place for what every script needs: device and dtype choice, seeding and RNG state, DDP ranks, printing on
rank 0, JSONL metrics, and the flat `--key=value` argparse with the config echoed at start.
"""

import argparse
import contextlib
import json
import os
import random
import sys

import numpy as np
import torch
import torch.distributed as dist


def resolve_device(name="auto"):
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device={name} but CUDA is not available here; use --device=cpu")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return name


def resolve_dtype(name, device):
    """'auto' is bf16 on GPUs that support it and fp32 elsewhere (CPU training stays in fp32)."""
    if name == "auto":
        if str(device).startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}: use auto, float32, bfloat16 or float16")
    return table[name]


def autocast(device, dtype):
    """bf16/fp16 autocast on GPUs; a no-op on CPU and for fp32."""
    if str(device).startswith("cuda") and dtype in (torch.bfloat16, torch.float16):
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state():
    """Every RNG a run draws from, as plain tensors/lists so torch.load(weights_only=True) can read it back."""
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
             "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------------------------------------------
# Distributed: plain DDP under torchrun (nccl on GPUs, gloo on CPU)


def init_distributed(device):
    """-> (rank, world_size, device). Without torchrun this is (0, 1, device)."""
    if "RANK" not in os.environ:
        return 0, 1, device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if str(device).startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", 0))
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return rank, world, device


def is_main():
    return not dist.is_initialized() or dist.get_rank() == 0


def print0(*args, **kwargs):
    if is_main():
        print(*args, **kwargs, flush=True)


def all_reduce_sum(x):
    """Sum a tensor over ranks (identity without DDP)."""
    if dist.is_initialized():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def cleanup_distributed():
    if dist.is_initialized():
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------------------
# Flags, config echo, metrics


def str2bool(v):
    if isinstance(v, bool):
        return v
    if v.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if v.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {v!r}")


def optional_int(v):
    """For flags like --window where 'none' means unset."""
    return None if str(v).lower() in ("none", "null", "") else int(v)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (argparse already does) with the usage hint."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def echo_config(config, title="config"):
    width = max(len(k) for k in config)
    print0(f"---- {title} ----")
    for k, v in config.items():
        print0(f"  {k:<{width}} = {v}")


class JSONLLogger:
    """Appends one JSON object per line; written on rank 0 only."""

    def __init__(self, path):
        self.path = path
        if is_main():
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def log(self, record):
        if is_main():
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")


def die(message, code=1):
    """Stop with one clear line on stderr (no traceback)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    cleanup_distributed()
    sys.exit(code)


def peak_memory_mb(device):
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    except ImportError:
        return float("nan")
