"""
Plot reward, sampled local-style share and held-out greedy accuracy over RL steps, from rl.py's metrics.jsonl (GRPO
runs solid, --teacher distillation runs dashed; one colour per seed).

  python runs/plot.py out/swarr/seed0/swa_rl/metrics.jsonl [more metrics.jsonl ...] --out=docs/swarr_rl.png

matplotlib is optional (pip install matplotlib); without it this prints one line and exits 0.
"""
import argparse
import json
import os
import sys


def read(path):
    train, evals = [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                (evals if "eval_accuracy" in r else train).append(r)
    return train, evals


def main():
    p = argparse.ArgumentParser(description="plot rl.py metrics")
    p.add_argument("metrics", nargs="+", help="metrics.jsonl files written by rl.py (one per seed)")
    p.add_argument("--out", default="swarr_rl.png", help="PNG to write")
    args = p.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install matplotlib): no plot written")
        return
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    colours = {}
    for path in args.metrics:
        if not os.path.exists(path):
            sys.exit(f"error: no metrics file at {path}")
        train, evals = read(path)
        run_dir = os.path.dirname(os.path.abspath(path))  # .../seed0/swa_rl
        seed, arm = os.path.basename(os.path.dirname(run_dir)), os.path.basename(run_dir)
        label = f"{seed} {arm}" if seed and arm else path
        distill = bool(train) and "teacher_kl" in train[0]
        style = dict(color=colours.setdefault(seed, f"C{len(colours)}"), linestyle="--" if distill else "-",
                     label=label)
        axes[0].plot([r["step"] for r in train], [r["reward"] for r in train], **style)
        if train and "local_share" in train[0]:
            axes[1].plot([r["step"] for r in train], [r["local_share"] for r in train], **style)
        axes[2].plot([r["step"] for r in evals], [r["eval_accuracy"] for r in evals], marker="o", **style)
    titles = ("mean reward of sampled completions (T=1)", "share of sampled completions in local style",
              "held-out greedy accuracy")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("RL step")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
