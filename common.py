"""
The one place for what every script needs: device and dtype choice, seeding and RNG state, DDP ranks, printing on
rank 0, JSONL metrics, the flat `--key=value` argparse with the config echoed once resolved (each value with where
it came from), and progress that a log file can read. Checkpoints (saving, loading, the crash-safe swap) are
checkpoint.py's.
"""

import argparse
import contextlib
import functools
import importlib.util
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm


def resolve_device(name="auto", announce=False):
    """--device -> a torch device name. With announce (the scripts), auto says which device it chose and why, so a
    GPU run that fell back to the CPU (a CPU build of torch, no driver) shows it in its first lines."""
    if name == "auto":
        device, why = auto_device()
        if announce:
            print0(f"device: auto -> {device} ({why})")
        return device
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device={name} but CUDA is not available here; use --device=cpu")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return name


def auto_device():
    """-> (device, why) for --device=auto: cuda > mps > cpu."""
    if torch.cuda.is_available():
        return "cuda", f"CUDA {torch.version.cuda}: {torch.cuda.get_device_name()}"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps", "Apple GPU"
    if torch.version.cuda is None:
        return "cpu", f"torch {torch.__version__} is a CPU build: install the CUDA build to use a GPU"
    return "cpu", (f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but sees no GPU (driver, "
                   f"CUDA_VISIBLE_DEVICES?); pass --device=cuda to stop instead of running on the CPU")


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}
# Below this size bf16 autocast does not pay on a CPU: the toy's generation is slower in bf16, SmolLM2-135M's
# training and generation faster (the measurements are in bench/RESULTS.md)
CPU_BF16_MIN_PARAMS = 20_000_000


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16():
    """True on x86 CPUs with AVX512-BF16 or AMX-BF16 (where oneDNN runs bf16 matmuls natively, faster than
    fp32: bench/RESULTS.md).
    Elsewhere bf16 is emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(name, device):
    """A dtype for loading weights: 'auto' is bf16 on GPUs that support it and fp32 elsewhere."""
    if name == "auto":
        if str(device).startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}: use auto, float32, bfloat16 or float16")
    return DTYPES[name]


def autocast_dtype(name, device, num_params):
    """The compute dtype of a run (weights stay float32): --dtype=auto is bf16 on GPUs with bf16, and on CPUs with
    native bf16 for models of at least CPU_BF16_MIN_PARAMS parameters; fp32 otherwise. float16 only on GPUs."""
    device = str(device)
    if name == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device == "cpu" and cpu_has_native_bf16() and num_params >= CPU_BF16_MIN_PARAMS:
            return torch.bfloat16
        return torch.float32
    dtype = resolve_dtype(name, device)
    if dtype != torch.float32 and not device.startswith(("cuda", "cpu")):
        raise ValueError(f"--dtype={name} on {device}: autocast runs on cuda and cpu here; use float32")
    if dtype == torch.float16 and not device.startswith("cuda"):
        raise ValueError(f"--dtype={name} on {device}: float16 autocast is for GPUs; use bfloat16 or float32")
    return dtype


def autocast(device, dtype):
    """bf16/fp16 autocast on GPUs and bf16 on CPUs (the same op lists and casts); a no-op for fp32."""
    if dtype in (torch.bfloat16, torch.float16):
        return torch.autocast(torch.device(device).type, dtype=dtype)
    return contextlib.nullcontext()


def start_run(args, script):
    """What sft.py and rl.py do first: the device, the process group (under torchrun), a refusal of --dtype=float16
    (it would need loss scaling, which neither script has), the seeds. -> (rank, world size, device)."""
    device = resolve_device(args.device, announce=True)
    rank, world, device = init_distributed(device)
    if autocast_dtype(args.dtype, device, num_params=0) == torch.float16:  # checks the name early
        raise ValueError(f"--dtype=float16 would need loss scaling, which {script} leaves out; use bfloat16")
    seed_everything(args.seed)
    return rank, world, device


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
    """Leave the process group (drop any DDP wrapper first: parallel.ddp_wrapped says why)."""
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


class Flags(argparse.Namespace):
    """The parsed flags, and where each value came from: sources[name] is "command line" (OneLineErrorParser),
    "resumed run" (the run config --resume continues: parse_resumable), "profile toy|pretrained" (apply_profile),
    "init" (the init model's own window settings: apply_window) or "full attention" (no sinks without a window); a
    name not in sources has its default. sources is a slot, so vars(args), which run_config.json saves, holds the
    flags only. echo_config prints both."""
    __slots__ = ("sources",)

    def __init__(self, **values):
        super().__init__(**values)
        self.sources = {}


def sources_of(args):
    """args.sources of Flags; for a plain argparse.Namespace (a caller's own flags) a throwaway dict, so the helpers
    below work on either and record sources only where there is a place for them."""
    return args.sources if isinstance(args, Flags) else {}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (argparse already does) with the usage hint, and parses into
    Flags, recording which flags the command line gave. finish(args), if given, runs on every parsed namespace
    (the scripts fill their init-dependent defaults there). Abbreviated flags are refused (argparse would read
    --ste=1 as --steps=1 and --out as --out_dir, so a typo, or a flag added later that shares the prefix, silently
    changes what a command means)."""

    def __init__(self, *args, finish=None, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self.finish = finish

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        namespace, rest = super().parse_known_args(args, Flags() if namespace is None else namespace)
        namespace.sources = {dest: "command line" for dest in self.given(args)}
        if self.finish is not None:
            self.finish(namespace)
        return namespace, rest

    def given(self, argv):
        """The names (dests) of the flags in argv, as --flag=value or --flag value (abbreviations are refused)."""
        names = set()
        for token in argv:
            if token == "--":
                break
            action = self._option_string_actions.get(token.partition("=")[0])
            if action is not None:
                names.add(action.dest)
        return names

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


KEEP = "keep"  # a window flag that was not given: the init's own setting stays


def window_flag(v):
    """--window: keep | none (full attention) | W >= 1."""
    if str(v).lower() == KEEP:
        return KEEP
    if str(v).lower() in ("none", "null", ""):
        return None
    try:
        w = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected keep, none or a positive integer, got {v!r}") from None
    if w < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (or none for full attention), got {w}")
    return w


def sinks_flag(v):
    """--sinks: keep | S >= 0."""
    if str(v).lower() == KEEP:
        return KEEP
    try:
        s = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected keep or an integer >= 0, got {v!r}") from None
    if s < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {s}")
    return s


def layer_pattern_flag(v):
    """--layer_pattern: keep | none (every layer windowed) | a string of L (local, windowed) and G (global)."""
    if str(v).lower() == KEEP:
        return KEEP
    if str(v).lower() in ("none", "null", ""):
        return None
    if set(v) - {"L", "G"}:
        raise argparse.ArgumentTypeError(f"expected keep, none or a string of L (local: windowed) and G (global), "
                                         f"e.g. LLLG, got {v!r}")
    return v


def add_window_flags(group, what_keep_means):
    """The attention settings every script takes, parsed and validated here only."""
    group.add_argument("--window", type=window_flag, default=KEEP,
                       help=f"attention window W: query i sees keys i-W+1..i (the SA -> SWA conversion); none = full "
                            f"attention; keep = {what_keep_means}")
    group.add_argument("--sinks", type=sinks_flag, default=KEEP, help="keys 0..sinks-1 stay visible to every query "
                                                                      "(keep, or an integer)")
    group.add_argument("--layer_pattern", type=layer_pattern_flag, default=KEEP,
                       help="which layers are windowed, repeated over the layers: L = local (windowed), G = global, "
                            "e.g. LLLG; none = every layer windowed; keep")


def window_overrides(args):
    """The window flags that were given (not 'keep'), as keyword arguments of convert.load_model."""
    return {k: getattr(args, k) for k in ("window", "sinks", "layer_pattern") if getattr(args, k) != KEEP}


# The window a run gives an init that has none (the SA -> SWA conversion), per profile (init_profile). A pretrained
# model gets W=256 + 4 sinks: GSM8K prompts are ~100 tokens and solutions ~100-250, so W=256 keeps most of a solution
# in view in every layer while the KV cache stops growing; the 4 sinks keep the first tokens, on which pretrained
# models park attention (StreamingLLM: a pure window breaks them, 4 sinks repair it), whatever W is.
PROFILE_WINDOWS = {"toy": dict(window=18, sinks=0), "pretrained": dict(window=256, sinks=4)}


def resolve_window(args, config, profile):
    """The attention settings of a run from the flags, the init's own config and the profile, each with where it
    came from -> {"window": (value, source), "sinks": ..., "layer_pattern": ...}.

    A flag given on the command line wins. A flag not given keeps the init's own value when the init has a window,
    and takes the profile's when the init has full attention (the conversion): `--window=128` alone on a pretrained
    model still gets the profile's 4 sinks. Full attention has no sinks."""
    windowed = config.window is not None
    prof = PROFILE_WINDOWS[profile]

    def pick(key, init_value, profile_value):
        if getattr(args, key) != KEEP:
            return getattr(args, key), sources_of(args).get(key, "command line")
        if windowed:
            return init_value, "init"
        return profile_value, f"profile {profile}"

    out = {"window": pick("window", config.window, min(prof["window"], config.block_size)),
           "sinks": pick("sinks", config.sinks, prof["sinks"])}
    if args.layer_pattern != KEEP:
        out["layer_pattern"] = args.layer_pattern, sources_of(args).get("layer_pattern", "command line")
    elif windowed and args.window == KEEP:
        out["layer_pattern"] = config.layer_pattern, "init"
    else:  # a new window covers every layer unless a pattern is given too
        out["layer_pattern"] = None, "default"
    if out["window"][0] is None:
        out["sinks"] = 0, "full attention"
    return out


def apply_window(args, model, profile, announce=True):
    """Resolve the window flags (args: Flags) against the loaded init (resolve_window), set them on the model, write
    the values back into args (so run_config.json records what ran) and their sources into args.sources (for
    echo_config); announce prints them in one line now. -> resolve_window's {key: (value, source)}."""
    resolved = resolve_window(args, model.config, profile)
    model.configure_window(*(value for value, _ in resolved.values()))
    for key, (value, source) in resolved.items():
        setattr(args, key, value)
        sources_of(args)[key] = source
    if announce:
        print0("attention: " + ", ".join(f"{key}={value} ({source})" for key, (value, source) in resolved.items()))
    return resolved


def resume_flag(v):
    """--resume, the same in sft.py and rl.py: false (start fresh) -> None, true (continue the run in --out_dir)
    -> True, anything else is a checkpoint dir to continue from, writing to --out_dir."""
    if isinstance(v, bool) or v is None:
        return v or None
    if v.lower() in ("0", "false", "no", "n", "off", "none", ""):
        return None
    return True if v.lower() in ("1", "true", "yes", "y", "on") else v


def resume_dir(args):
    """The checkpoint dir a run continues from (None: a fresh run)."""
    return args.out_dir if args.resume is True else args.resume


def parse_resumable(parser, argv, script):
    """Parse the flags; with --resume the run config saved in the checkpoint supplies the defaults (flags given
    still win), so the same command, or one with a larger --steps, continues the run."""
    args = parser.parse_args(argv)
    ckpt = resume_dir(args)
    if ckpt is not None:
        import checkpoint  # checkpoint imports this module
        if checkpoint.recover(ckpt) is None or not all(
                os.path.isfile(os.path.join(ckpt, f)) for f in ("train_state.pt", "run_config.json")):
            raise FileNotFoundError(f"--resume: no {script} checkpoint with a train state in {ckpt!r}; drop "
                                    f"--resume to start fresh")
        known = {a.dest for a in parser._actions}
        saved = {k: v for k, v in read_run_config(ckpt).items() if k in known and k not in ("resume", "out_dir")}
        parser.set_defaults(**saved)
        args = parser.parse_args(argv)
        args.sources = {k: "resumed run" for k in saved} | args.sources
        if isinstance(saved.get("init"), str) and not same_source(args.init, saved["init"]):
            raise ValueError(f"--resume continues the run in {ckpt}, which started from --init={saved['init']}; "
                             f"--init={args.init} would be ignored (a resumed run's weights come from its "
                             f"checkpoint): drop --init, or start a fresh run in a new --out_dir")
    return args


def source_path(spec):
    """The file or directory a model spec (hf:DIR, gguf:FILE, a checkpoint dir) reads, resolved; None for anything
    that is not on this disk (scratch, a Hub repo id)."""
    spec = os.fspath(spec)
    for prefix in ("hf:", "gguf:"):
        if spec.startswith(prefix):
            spec = spec[len(prefix):]
    spec = os.path.expanduser(spec)
    return os.path.realpath(spec) if spec and os.path.exists(spec) else None


def same_source(a, b):
    """Whether two model specs name the same model: the same text, or the same file or directory on this disk."""
    if a == b:
        return True
    pa, pb = source_path(a), source_path(b)
    return pa is not None and pb is not None and os.path.samefile(pa, pb)


def read_run_config(path):
    """A checkpoint's run_config.json (the flags of the run that wrote it), or {} for anything else."""
    f = os.path.join(str(path), "run_config.json")
    if not os.path.isfile(f):
        return {}
    try:
        with open(f) as fh:
            saved = json.load(fh)
    except (OSError, ValueError) as e:
        raise ValueError(f"{f}: not a readable run config ({type(e).__name__}: {e})") from None
    return saved if isinstance(saved, dict) else {}


def init_profile(init):
    """Which defaults a run from `init` gets: 'toy' for the byte-level demo trained from scratch (and checkpoints
    made from it), 'pretrained' for hf:/gguf: models and checkpoints made from one. Saved in run_config.json."""
    if init == "scratch":
        return "toy"
    if str(init).startswith(("hf:", "gguf:")) or str(init).endswith(".gguf"):
        return "pretrained"
    if not os.path.isdir(str(init)):
        return "toy"  # the demo's default --init=out/sft before sft.py has run; loading it fails with one line
    saved = read_run_config(init)
    if saved.get("profile") in ("toy", "pretrained"):
        return saved["profile"]
    return "toy" if saved.get("init") == "scratch" else "pretrained"


def apply_profile(args, profiles):
    """Fill every flag left at None from the profile of args.init: {profile: {flag: default}}, recording each in
    args.sources. -> the profile."""
    profile = init_profile(args.init)
    for key, value in profiles[profile].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
            sources_of(args)[key] = f"profile {profile}"
    args.profile = profile
    sources_of(args)["profile"] = "init"
    return profile


def profile_help(profiles, key):
    return " | ".join(f"{name}: {values[key]}" for name, values in profiles.items())


def set_defaults(parser, defaults, profiles=None):
    """The flags' defaults in one call: `defaults` {flag: value}; the flags in `profiles` {profile: {flag: value}}
    stay None for apply_profile to fill. Each flag's --help ends with its default (both profiles' where it follows
    the init)."""
    parser.set_defaults(**defaults)
    follow_init = {key for values in (profiles or {}).values() for key in values}
    for action in parser._actions:
        if action.dest in follow_init or action.dest in defaults:
            value = profile_help(profiles, action.dest) if action.dest in follow_init else defaults[action.dest]
            action.help = f"{action.help or ''} (default: {str(value).replace('%', '%%')})"  # help is %-formatted


BIG = 10**9  # a bound for counts that only stops nonsense (a step count nobody runs, a batch nobody fits)


def check_ranges(args, ranges):
    """Every numeric flag in its range, checked at start: {name: (low, high)} inclusive, or (low, high, "open") for
    low < x <= high. NaN never passes (every comparison with it is False); None (a flag left unset) is skipped."""
    for name, (low, high, *kind) in ranges.items():
        x = getattr(args, name)
        if x is None:
            continue
        ok = (low < x if kind else low <= x) and x <= high
        if not ok:
            span = f"{'(' if kind else '['}{low}, {high}]"
            raise ValueError(f"--{name}={x} is out of range: it must be in {span}")


def check_attn_backend(backend, device, training=True, what="--attn_backend"):
    """One line at start for an attention backend that cannot run on device, instead of an error in the first
    step: triton needs the triton package and a CUDA GPU (or TRITON_INTERPRET=1, the tests' slow interpreter);
    FlexAttention runs forward on a CPU but has no backward there, so it trains on CUDA only."""
    cuda = str(device).startswith("cuda")
    if backend == "triton":
        if importlib.util.find_spec("triton") is None:
            raise ValueError(f"{what}=triton needs the triton package (pip install triton); or use auto")
        if not cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise ValueError(f"{what}=triton runs on CUDA GPUs only, not on {device}; use auto (dense or chunked "
                             f"there)")
    if backend == "flex" and training and not cuda:
        raise ValueError(f"{what}=flex trains on CUDA GPUs only (FlexAttention has no backward on {device}); use "
                         f"auto")


def load_optimizer_state(optimizer, saved):
    """optimizer.load_state_dict(saved), with one line (ValueError) for a state that does not belong to this model:
    torch compares only the number of parameters per group, so a state tensor of another shape (a hand-edited or
    foreign train_state.pt) would fail only in the first step."""
    try:
        optimizer.load_state_dict(saved)
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
        raise ValueError(f"the optimizer state does not fit this model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, value in optimizer.state.get(p, {}).items():
                if torch.is_tensor(value) and value.dim() > 0 and (
                        value.shape != p.shape or not value.is_floating_point()):
                    raise ValueError(f"the optimizer state holds {key} of shape {tuple(value.shape)} ({value.dtype}) "
                                     f"for a parameter of shape {tuple(p.shape)}: it belongs to another model")


def echo_config(args, title="config"):
    """Print the run's config in one block: every value of args (Flags) with where it came from (args.sources, else
    "default"). Call it once the values are resolved (the window after the model is loaded). A plain dict prints
    without sources."""
    config, sources = (args, None) if isinstance(args, dict) else (vars(args), getattr(args, "sources", None))
    width = max(len(k) for k in config)
    value_width = min(32, max(len(str(v)) for v in config.values()))
    print0(f"---- {title} ----")
    for k, v in config.items():
        line = f"  {k:<{width}} = {v}"
        print0(line if sources is None else f"{line:<{width + value_width + 5}}  ({sources.get(k, 'default')})")


PROGRESS_EVERY = 30  # seconds between progress lines when stderr is a log file or a pipe


def progress(iterable=None, total=None, desc="", initial=0, disable=False, leave=True, tty=None):
    """A progress bar over iterable, or over `total` steps advanced with update(n): tqdm when stderr is a terminal,
    else a LineProgress (one plain line every PROGRESS_EVERY seconds and at the end), so that a log file gets lines,
    not a stream of carriage returns. tty forces either (None: ask stderr). Both iterate and have update(n=1),
    set_postfix(**values) and close()."""
    if tty is None:
        tty = sys.stderr.isatty()
    if tty or disable:
        return tqdm(iterable, total=total, desc=desc, initial=initial, disable=disable, leave=leave,
                    dynamic_ncols=True)
    return LineProgress(iterable, total, desc, initial)


class LineProgress:
    """progress() into a file or a pipe: `desc: n/total (p%) | elapsed, left, rate | postfix` on stderr every
    PROGRESS_EVERY seconds and once more at close() (and at the end of an iteration)."""

    def __init__(self, iterable=None, total=None, desc="", initial=0):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.n, self.initial = iterable, total, desc, initial, initial
        self.postfix, self.shown = {}, None  # shown: n at the last line printed
        self.start = self.last = time.monotonic()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def update(self, n=1):
        self.n += n
        if time.monotonic() - self.last >= PROGRESS_EVERY:
            self.show()

    def set_postfix(self, refresh=True, **values):  # tqdm's signature; a line shows only every PROGRESS_EVERY s
        self.postfix = values

    def close(self):
        if self.shown != self.n:
            self.show()

    def show(self):
        self.last, self.shown = time.monotonic(), self.n
        elapsed = self.last - self.start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        line = f"{self.desc}: {self.n}"
        if self.total:
            line += f"/{self.total} ({100 * self.n / self.total:.0f}%)"
        line += f" | {tqdm.format_interval(elapsed)} elapsed"
        if self.total and rate > 0:
            line += f", {tqdm.format_interval((self.total - self.n) / rate)} left"
        if rate > 0:
            line += f", {rate:.2f} it/s" if rate >= 1 else f", {1 / rate:.1f} s/it"
        if self.postfix:
            line += " | " + " ".join(f"{k}={v}" for k, v in self.postfix.items())
        print(line, file=sys.stderr, flush=True)


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


def trim_jsonl(path, last_step):
    """Rewrite a JSONL log for a run that continues from step last_step: keep the records with step <= last_step
    (a record without a step counts as step 0); last_step -1 starts a new, empty log. A blank line, or a torn or
    invalid one (the usual last line after a kill mid-write), is dropped; invalid ones are counted, and the count
    is printed and returned. The rewrite is atomic, so a kill here loses nothing either. A missing file stays
    missing."""
    if not os.path.isfile(path):
        return 0
    if last_step < 0:
        open(path, "w").close()
        return 0
    kept, invalid = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            step = record.get("step", 0) if isinstance(record, dict) else None
            if not isinstance(step, (int, float)):
                invalid += 1
            elif step <= last_step:
                kept.append(line if line.endswith("\n") else line + "\n")
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(kept)
    os.replace(tmp, path)
    if invalid:
        print0(f"{path}: dropped {invalid} torn or invalid line(s)")
    return invalid


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
