"""
Evaluate one or more models on a math set and print one table.

  python eval.py --init=out/sft --data=synthetic --limit=200                     # a checkpoint from sft.py / rl.py
  python eval.py --init=out/sa --init=out/sa@window=18 --init=out/rl --data=synthetic   # '@k=v,...' overrides
  python eval.py --init=gguf:/path/SmolLM2-135M-Instruct.Q4_1.gguf@window=64 --data=synthetic:arith --limit=50
  python eval.py --init=hf:Qwen/Qwen2.5-0.5B-Instruct --data=gsm8k --limit=200 --max_new_tokens=512   # GPU
  python eval.py --init=out/rl --data=synthetic --samples=8 --temperature=1.0   # + pass@8 and maj@8

Columns: greedy pass@1 accuracy; with --samples=k at --temperature=T also pass@k (any of k correct) and maj@k
(the most common extracted answer is correct); mean response length in tokens; truncation rate (no EOS within
--max_new_tokens); generation tokens/s; the KV cache the batch needed (windowed layers keep sinks + W slots, so
this stays flat for SWA models however long the answers get); the window settings; and, on the synthetic task,
the share of responses written in the window-friendly `local` style.
Next to the table (--out_dir): one JSONL per model with every prompt, response, extracted answer and verdict.

`evaluate(...)` is importable: sft.py and rl.py call it for their periodic held-out evaluation, and sft.py
`mean_loss(...)` for its held-out loss.
"""

import argparse
import json
import os
import time

import torch

import checkpoint
import common
import convert
import data
import verify
from model import check_context, compute_dtype

# The flags' defaults (get_parser at the bottom has their help). --init may be given several times; out/sft is
# evaluated when none is.
DEFAULTS = dict(init=["out/sft"], data="synthetic", split="test", limit=200, batch_size=64, max_new_tokens=256,
                samples=1, temperature=1.0, seed=0, device="auto", dtype="auto", compile=False, out_dir="out/eval")


def kv_cache_bytes(config, batch_size, max_len, dtype):
    """The bytes generation.KVCache allocates for batch_size sequences of up to max_len tokens, asked of KVCache itself
    (on the meta device: nothing is allocated)."""
    from generation import KVCache
    return KVCache(config, batch_size, max_len, "meta", dtype).nbytes()


def completion_text(tok, out):
    """A generate() row as text, without its closing EOS token."""
    return tok.decode(out["tokens"][:-1] if out["finished"] else out["tokens"])


def majority(answers):
    """The most common answer, counting equal answers written differently ("0.5", "\\frac12") as one vote."""
    groups = []  # [representative, votes]
    for a in answers:
        for g in groups:
            if verify.same_answer(a, g[0]):
                g[1] += 1
                break
        else:
            groups.append([a, 1])
    return max(groups, key=lambda g: g[1])[0] if groups else None


def window_label(config):
    if config.window is None:
        return "full"
    label = f"W={config.window}"
    if config.sinks:
        label += f"+{config.sinks}sinks"
    if config.layer_pattern:
        label += f" {config.layer_pattern}"
    return label


@torch.no_grad()
def evaluate(model, tok, dataset, limit=None, batch_size=32, max_new_tokens=256, temperature=0.0, samples=1,
             seed=0, progress=False):
    """Greedy pass@1 (plus pass@k / maj@k when samples > 1) -> (summary dict, per-example records)."""
    was_training = model.training
    model.eval()
    examples = dataset.examples[:limit] if limit else dataset.examples
    styled = dataset.task is not None  # a synthetic task, whose solutions come in two styles (the local share)
    device = model.embed.weight.device
    records, n_tokens, gen_time, peak_kv = [], 0, 0.0, 0
    batches = range(0, len(examples), batch_size)
    for start in common.progress(batches, desc="eval", disable=not progress, leave=False):
        batch = examples[start:start + batch_size]
        prompts = [dataset.render_prompt(tok, ex) for ex in batch]  # list of (L_b,) id lists
        longest = max(len(p) for p in prompts)
        check_context(longest + 1, model.config.block_size, f"a prompt of {longest} tokens and an answer")
        new_tokens = min(max_new_tokens, model.config.block_size - longest)  # answers end at the context's end
        max_len = longest + new_tokens
        t0 = time.perf_counter()
        greedy = model.generate(prompts, new_tokens, temperature=0.0, eos_ids=tok.eos_ids)
        sampled = []
        if samples > 1:
            gens = [torch.Generator(device=device).manual_seed(seed * 1_000_003 + (start + i) * 1009 + s)
                    for i in range(len(batch)) for s in range(samples)]
            sampled = model.generate(prompts, new_tokens, temperature=temperature, num_samples=samples,
                                     eos_ids=tok.eos_ids, generator=gens)
        gen_time += time.perf_counter() - t0
        cache_dtype = compute_dtype(model.embed.weight)  # what generate allocates its cache in
        peak_kv = max(peak_kv, kv_cache_bytes(model.config, len(batch) * samples, max_len, cache_dtype))
        for i, (ex, out) in enumerate(zip(batch, greedy)):
            text = completion_text(tok, out)
            n_tokens += len(out["tokens"])
            rec = {"question": ex["question"], "gold": ex["answer"], "response": text,
                   "extracted": verify.extract_answer(text), "correct": verify.is_correct(text, ex["answer"]),
                   "n_tokens": len(out["tokens"]), "truncated": not out["finished"]}
            if styled:
                rec["style"] = dataset.style_of(text)
            if samples > 1:
                group = sampled[i * samples:(i + 1) * samples]
                texts = [completion_text(tok, o) for o in group]
                n_tokens += sum(len(o["tokens"]) for o in group)
                answers = [a for a in (verify.extract_answer(t) for t in texts) if a is not None]
                rec["pass_at_k"] = any(verify.is_correct(t, ex["answer"]) for t in texts)
                voted = majority(answers)
                rec["maj_at_k"] = voted is not None and verify.same_answer(voted, verify.extract_gold(ex["answer"]))
                rec["samples"] = texts
            records.append(rec)
    model.train(was_training)
    n = max(1, len(records))
    summary = {
        "n": len(records),
        "accuracy": sum(r["correct"] for r in records) / n,
        "mean_len": sum(r["n_tokens"] for r in records) / n,
        "trunc_rate": sum(r["truncated"] for r in records) / n,
        "tokens_per_s": n_tokens / max(gen_time, 1e-9),
        "kv_cache_mb": peak_kv / 2**20,
        "window": window_label(model.config),
        "device": str(device),
    }
    if samples > 1:
        summary[f"pass@{samples}"] = sum(r["pass_at_k"] for r in records) / n
        summary[f"maj@{samples}"] = sum(r["maj_at_k"] for r in records) / n
    if styled and records and any(r.get("style") for r in records):
        summary["local_share"] = sum(r.get("style") == "local" for r in records) / n
    return summary, records


@torch.no_grad()
def mean_loss(model, seqs, masks, batch_size, pad_id, dtype):
    """The mean loss per target token of token lists seqs with their 0/1 loss masks (data.pad_batch's inputs), in
    batches of similar length: sft.py's held-out loss."""
    was_training, device = model.training, model.embed.weight.device
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        members = order[start:start + batch_size]
        idx, targets = data.pad_batch([seqs[i] for i in members], [masks[i] for i in members], pad_id)
        with common.autocast(device, dtype):
            loss = model(idx.to(device), targets.to(device))[1].sum()
        total += loss.item()
        count += int((targets != -1).sum())
    model.train(was_training)
    return total / max(count, 1)


def parse_init(spec):
    """'path@window=18,sinks=4' -> ('path', {'window': 18, 'sinks': 4})."""
    if "@" not in spec:
        return spec, {}
    path, _, opts = spec.rpartition("@")
    parsers = {"window": common.window_flag, "sinks": common.sinks_flag, "layer_pattern": common.layer_pattern_flag,
               "attn_backend": str}  # the same checks as the --window, --sinks and --layer_pattern flags
    overrides = {}
    for item in opts.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in parsers:
            raise ValueError(f"bad override {item!r} in --init={spec}: use @window=W,sinks=S,layer_pattern=P")
        try:
            overrides[key] = parsers[key](value)
        except argparse.ArgumentTypeError as e:
            raise ValueError(f"bad override {item!r} in --init={spec}: {e}") from None
    return path, {k: v for k, v in overrides.items() if v != common.KEEP}


def result_file_name(spec):
    """A file name for one model's records: the init's last path part plus its overrides, e.g.
    'SmolLM2-135M-Instruct.Q4_1.gguf_window_256_sinks_4' (never hidden: no leading dot)."""
    path, overrides = parse_init(spec)
    name = os.path.basename(path.rstrip("/")) or path
    name += "".join(f"_{k}_{v}" for k, v in overrides.items())
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[-80:].lstrip("._-") or "model"


def format_table(results):
    cols = ["model", "accuracy"] + [c for c in results[0] if c.startswith(("pass@", "maj@"))] + \
        ["mean_len", "trunc_rate", "tokens_per_s", "kv_cache_mb", "window", "dtype"] + \
        (["local_share"] if any("local_share" in r for r in results) else [])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in results]
    return "\n".join(lines)


def main(argv=None):
    args = get_parser().parse_args(argv)
    args.init = args.init or list(DEFAULTS["init"])
    common.echo_config(args, "eval.py config")
    try:
        common.check_ranges(args, {"limit": (0, common.BIG), "batch_size": (1, 2**16), "max_new_tokens": (1, 2**20),
                                   "samples": (1, 2**12), "temperature": (0, 100), "seed": (0, 2**32 - 1)})
        if args.samples > 1 and args.temperature == 0:
            raise ValueError("--samples > 1 needs --temperature > 0 (greedy samples would all be the same)")
        device = common.resolve_device(args.device, announce=True)
        checkpoint.check_out_dir(args.out_dir, inputs=[parse_init(spec)[0] for spec in args.init])
        dataset = data.load_dataset(args.data, split=args.split)
        results = []
        checkpoint.claim_dir(args.out_dir)
        for spec in args.init:
            path, overrides = parse_init(spec)
            if "window" not in overrides:  # the model as it is
                model, tok = convert.load_model(path, device=device, dtype="float32", **overrides)
            else:  # a new window: flags not given follow sft.py's rule (the profile's sinks on a full-attention init)
                model, tok = convert.load_model(path, device=device, dtype="float32",
                                                attn_backend=overrides.get("attn_backend", common.KEEP))
                given = {k: overrides.get(k, common.KEEP) for k in ("window", "sinks", "layer_pattern")}
                common.apply_window(common.Flags(**given), model, common.init_profile(path))  # prints the line
            common.check_attn_backend(model.config.attn_backend, device, training=False, what=f"{spec}: attn_backend")
            if args.compile:
                model.compile_decode()
            dtype = common.autocast_dtype(args.dtype, device, model.num_params())
            with common.autocast(device, dtype):
                summary, records = evaluate(model, tok, dataset, limit=args.limit or None, batch_size=args.batch_size,
                                            max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                            samples=args.samples, seed=args.seed, progress=True)
            summary["dtype"] = str(dtype).replace("torch.", "")
            label = spec
            results.append({"model": label} | summary)
            safe = result_file_name(label)
            with open(os.path.join(args.out_dir, f"{safe}.jsonl"), "w") as f:
                for r in records:
                    f.write(json.dumps(r) + "\n")
            print(f"{label}: accuracy {summary['accuracy']:.3f} on {summary['n']} problems", flush=True)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        common.die(str(e), code=2)
    table = format_table(results)
    print(table)
    with open(os.path.join(args.out_dir, "table.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return results


def get_parser():
    p = common.OneLineErrorParser(description=__doc__.split("\n\n")[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", action="append", help="model to evaluate (repeatable): checkpoint dir, hf:..., gguf:...; "
                   "'@window=W,sinks=S' suffix applies a window first")
    p.add_argument("--data", help="gsm8k | math500 | synthetic[:task] | jsonl:/path")
    p.add_argument("--split", help="dataset split")
    p.add_argument("--limit", type=int, help="evaluate the first N problems (0 = all)")
    p.add_argument("--batch_size", type=int, help="prompts generated together")
    p.add_argument("--max_new_tokens", type=int, help="generation budget per response")
    p.add_argument("--samples", type=int, help="k > 1 adds pass@k and maj@k at --temperature")
    p.add_argument("--temperature", type=float, help="sampling temperature for --samples")
    p.add_argument("--seed", type=int, help="seed for sampled responses")
    p.add_argument("--device", help="auto | cpu | cuda | mps")
    p.add_argument("--dtype", help="autocast (compute) dtype over float32 weights: auto (bf16 on GPUs and, for 20M+ "
                   "parameter models, on CPUs with native bf16; else fp32) | float32 | bfloat16")
    p.add_argument("--compile", type=common.str2bool, help="torch.compile the decode step (model.compile_decode)")
    p.add_argument("--out_dir", help="where the table and per-example JSONL go")
    common.set_defaults(p, DEFAULTS)
    p.set_defaults(init=None)  # main fills it in: argparse would append the --init given to a list default
    return p


if __name__ == "__main__":
    main()
