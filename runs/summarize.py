"""
Combine the per-seed eval tables of runs/swarr_cpu.sh (or runs/swarr_smollm2.sh) into one: accuracy per stage, per
seed and as a mean, with the mean local-style share, response length and KV-cache size; then the local share per
seed in a second table.

  python runs/summarize.py out/swarr --seeds="0 1 2"
  python runs/summarize.py out/swarr_smollm2 --seeds=0
"""
import argparse
import json
import os

STAGES = [("sa", "sa (full attention)"), ("sa_sft", "sa_sft (full attention)"), ("sa@window", "sa + window, no training"),
          ("swa_sft", "swa_sft"), ("swa_rl", "swa_rl"), ("swa_distill", "swa_distill (on-policy distillation)"),
          ("swa_rft", "swa_rft (SFT on its own correct samples)"),
          ("swa_sft_more", "swa_sft_more (SFT for swa_rl's tokens)")]


def train_seconds(stage_dir):
    """The stage's training time from its metrics.jsonl (rl.py: s_per_step; sft.py: tokens / tokens_per_s), or
    nan for a stage without one (an eval-only row)."""
    path = os.path.join(stage_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return float("nan")
    total = 0.0
    for line in open(path):
        r = json.loads(line)
        if "s_per_step" in r:
            total += r["s_per_step"]
        elif r.get("tokens_per_s"):
            total += r["tokens"] / r["tokens_per_s"]
    return total


def stage_of(model_label):
    if "@window" in model_label:
        return "sa@window"
    return os.path.basename(model_label.rstrip("/"))


def main():
    p = argparse.ArgumentParser(description="summarize runs/swarr_cpu.sh")
    p.add_argument("out", help="the experiment's output dir (default out/swarr)")
    p.add_argument("--seeds", default="0 1 2", help="space-separated seeds")
    args = p.parse_args()
    seeds = args.seeds.split()
    acc, local, length, kv, secs = {}, {}, {}, {}, {}  # stage -> {seed: value}; a seed may lack a stage
    for s in seeds:
        path = os.path.join(args.out, f"seed{s}", "eval", "results.json")
        if not os.path.exists(path):
            raise SystemExit(f"error: no eval results at {path}: did the seed {s} run finish?")
        for row in json.load(open(path)):
            st = stage_of(row["model"])
            acc.setdefault(st, {})[s] = row["accuracy"]
            local.setdefault(st, {})[s] = row.get("local_share", float("nan"))
            length.setdefault(st, {})[s] = row.get("mean_len", float("nan"))
            kv.setdefault(st, {})[s] = row.get("kv_cache_mb", float("nan"))
            secs.setdefault(st, {})[s] = train_seconds(os.path.join(args.out, f"seed{s}", st))
    header = "| stage | " + " | ".join(f"seed {s}" for s in seeds) + " | mean accuracy | mean local share | mean length (tokens) | KV cache (MB) | train time (s) |"
    lines = [header, "|" + "---|" * (len(seeds) + 6)]
    mean = lambda d: sum(d.values()) / len(d)
    cells = lambda d, fmt: " | ".join(format(d[s], fmt) if s in d else "-" for s in seeds)
    for key, name in STAGES:
        if key in acc:
            lines.append(f"| {name} | {cells(acc[key], '.3f')} | {mean(acc[key]):.3f} | {mean(local[key]):.2f} | "
                         f"{mean(length[key]):.0f} | {mean(kv[key]):.1f} | {mean(secs[key]):.0f} |")
    lines += ["", "Local share (greedy responses in the local style) per seed:", "",
              "| stage | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|" + "---|" * (len(seeds) + 1)]
    for key, name in STAGES:
        if key in local:
            lines.append(f"| {name} | {cells(local[key], '.2f')} |")
    lines += ["", "(means over the seeds that have the stage; - : a seed without it)"]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
