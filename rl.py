"""
GRPO from scratch: the policy-adaptation stage of SWARR. The windowed model samples its own solutions under its
window, verify.py rewards the final answers, and a group-relative policy gradient teaches it the trajectories that
work under the window. Defaults sit at the top (DEFAULTS; PROFILES: those that follow the init, its data and window,
the toy's or a pretrained model's lr and budget); flags given win, and `python rl.py --help` describes each.

    python rl.py                 # CPU demo: continues sft.py's out/sft, 60 steps of 16 prompts x 8 samples
    python rl.py --kl_coef=0.01 --out_dir=out/rl_kl            # + a k3 KL penalty to the (frozen) --init model
    python rl.py --resume=true --steps=80                       # continue out/rl exactly
    python rl.py --teacher=out/sa --out_dir=out/distill         # control: on-policy distillation, no reward
    python rl.py --algo=rft --out_dir=out/rft                   # control: SFT on its own correct samples
    # one GPU: Qwen2.5-0.5B-Instruct, window 256, GSM8K (after sft.py --init=hf:... --window=256 --data=gsm8k)
    python rl.py --data=gsm8k --steps=200 --prompts_per_step=32 --max_new_tokens=512 --micro_batch_size=16 \\
        --lr=2e-6 --eval_every=25 --eval_limit=500 --save_every=50
    # 8 GPUs, each rank sampling whole groups (+ --fsdp=true: shard a model whose 16 B/param do not fit one GPU)
    torchrun --nproc_per_node=8 rl.py --data=gsm8k --prompts_per_step=32 --max_new_tokens=512 --lr=2e-6

One step (train below); steps 1-5 are functions of grpo.py, which also states the simplifications:
  1. rollout: --prompts_per_step prompts of a seeded, resumable stream; --group_size samples of each from the
     KV-cached, windowed model.generate at --temperature (no top-k/top-p: the sampled distribution is the scored
     one; a generator per sample, seeded from (seed, step, prompt, sample)); reward = verify.reward (1/0)
     [+ --format_reward] [+ DAPO's overlong penalty, --overlong_buffer];
  2. group_advantages: A = r - mean(r) within each group [/ a std, --scale_rewards];
  3. select_rows: the samples of the update (--filter_groups, --mask_truncated) and ONE loss normalizer for the
     whole step (--loss_agg; all ranks and micro-batches), so the gradient does not depend on how it is split;
  4. update_policy, --inner_epochs times: over micro-batches, log-probs from the training forward at completion
     positions under softmax(logits / T), grpo_loss = -min(rho A, clip(rho) A) [+ kl_coef k3] / normalizer,
     backward; the gradients summed over ranks, clipped; an AdamW step;
  5. step_metrics (tqdm, metrics.jsonl), a few samples every --sample_every steps (samples.jsonl);
  6. greedy held-out accuracy every --eval_every steps; 7. a checkpoint that --resume continues exactly.
"""

import argparse
import os
import time

import torch
import torch.distributed as dist

import checkpoint
import common
import controls
import convert
import data
import eval as evaluation
import grpo
import parallel
import verify

ALGOS = ("grpo", "rft")

# ---------------------------------------------------------------------------------------------------------------
# Defaults: the flags' (get_parser at the bottom has their help), then those that follow the init

DEFAULTS = dict(
    init="out/sft", device="auto", dtype="auto", grad_checkpointing=False, compile=False,  # model
    prompts_per_step=16, group_size=8, temperature=1.0,  # sampling (--data: the init's, below)
    format_reward=0.0, overlong_buffer=0, scale_rewards="none", filter_groups=False, mask_truncated=False,
    algo="grpo", teacher=None,  # reward and advantage
    loss_agg="token", clip_low=0.2, clip_high=0.28, inner_epochs=1, kl_coef=0.0, warmup=0, weight_decay=0.0,
    grad_clip=1.0, share_prompt="auto",  # loss and optimizer
    seed=0, out_dir="out/rl", save_every=0, resume=None, eval_every=20, sample_every=10,  # run
)  # the window flags: common.add_window_flags; --fsdp: parallel.add_flag

# The tiny from-scratch demo, or a pretrained model (common.init_profile). lr: the demo's is measured in
# bench/RESULTS.md; 1e-6..5e-6 is the usual range for pretrained models (DeepSeekMath used 1e-6 for 7B). --data left
# unset is the data the init was trained on (its run_config.json, finish_args), and the profile's only without one.
PROFILES = {
    "toy": dict(data="synthetic", lr=1e-4, max_new_tokens=160, micro_batch_size=64, steps=60, eval_limit=200,
                eval_batch_size=100),
    "pretrained": dict(data="gsm8k", lr=2e-6, max_new_tokens=384, micro_batch_size=16, steps=100, eval_limit=100,
                       eval_batch_size=50),
}

# ---------------------------------------------------------------------------------------------------------------
# The loop: steps 1-7 of the docstring


def train(args, model, tok, train_set, eval_set=None, reward_fn=None, state=None, ref_model=None, teacher=None):
    """GRPO for args.steps steps (args as check_config passes them). state: a checkpoint's train_state to resume
    from. reward_fn(text, gold) -> 0/1 (default verify.reward). teacher: the frozen model of --teacher. Returns the
    per-step metric dicts (the same on every rank)."""
    reward_fn = reward_fn or verify.reward
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    device = next(model.parameters()).device
    amp_dtype = common.autocast_dtype(args.dtype, device, sum(p.numel() for p in model.parameters()))
    model.grad_checkpointing = args.grad_checkpointing
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                                  weight_decay=args.weight_decay)
    start_step, cursor, metrics_log, samples_log = restore(args, model, optimizer, state)
    if not train_set.examples:
        raise ValueError("the train split is empty")
    P, G = args.prompts_per_step, args.group_size
    mine = slice(rank * (P // world), (rank + 1) * (P // world))  # this rank's prompts in the step: whole groups
    context = min(m.config.block_size for m in (model, teacher) if m is not None)
    history, last_saved = [], start_step if state else None
    if start_step == 0:
        held_out_eval(args, model, tok, eval_set, amp_dtype, 0, metrics_log)
    bar = common.progress(range(start_step, args.steps), desc="rl", disable=not common.is_main())
    for step in bar:
        t_step = time.perf_counter()
        if str(device).startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        # ---- 1. this rank's prompts, G samples each, their rewards; then every rank's scores
        indices = grpo.prompt_indices(cursor, P, len(train_set.examples), args.seed)[mine]
        cursor += P
        seeds = [grpo.row_seed(args.seed, step, mine.start + i, j) for i in range(len(indices)) for j in range(G)]
        prompts, samples, scores, gen_time = grpo.rollout(args, model, tok, train_set, indices, seeds, reward_fn,
                                                          amp_dtype, context)
        everyone = grpo.gather_scores(scores, device)  # {name: (P * G,)}, prompt-major
        # ---- 2. advantages per group, over the whole step's groups (with --teacher only logged: controls.py)
        rewards = everyone["reward"].view(P, G)
        if args.algo == "rft":
            adv = controls.rft_advantages(everyone["correct"].view(P, G))  # (P, G): 1 on the correct samples
        else:
            adv = grpo.group_advantages(rewards, args.scale_rewards)  # (P, G)
        zero_var = rewards.amax(1) == rewards.amin(1)  # (P,)
        # ---- 3.-4. the rows of the update and its normalizer; the update
        keep, rows, normalizer = grpo.select_rows(args, prompts, samples, adv[mine].flatten(),
                                                  zero_var[mine].repeat_interleave(G), teacher is not None, device)
        lr = args.lr * min(1.0, (step + 1) / args.warmup) if args.warmup else args.lr
        try:
            update = grpo.update_policy(args, model, optimizer, rows, normalizer, lr, tok.pad_id, amp_dtype, ref_model,
                                        teacher, spare_prompt=prompts[0])
        except FloatingPointError as e:
            stop_at_nan(args, step + 1, e.args[0], last_saved)
        # ---- 5. metrics, a few samples
        m = grpo.step_metrics(args, step + 1, scores, everyone, zero_var, keep, rows, update, gen_time, t_step, device,
                              styled=train_set.task is not None, distill=teacher is not None)
        bar.set_postfix(reward=f"{m['reward']:.3f}", acc=f"{m['accuracy']:.2f}", len=f"{m['len']:.0f}",
                        zvar=f"{m['frac_zero_var']:.2f}", s=f"{m['s_per_step']:.1f}", refresh=False)
        if args.sample_every and (step + 1) % args.sample_every == 0 and common.is_main():
            question = train_set.examples[indices[0]]["question"]
            grpo.log_samples(step + 1, question, samples, scores, min(G, 4), samples_log)
        # ---- 6.-7. held-out eval and checkpoint
        last = step + 1 == args.steps
        if args.eval_every and ((step + 1) % args.eval_every == 0 or last):
            m.update(held_out_eval(args, model, tok, eval_set, amp_dtype, step + 1, metrics_log))
        if metrics_log:
            metrics_log.log({k: v for k, v in m.items() if not k.startswith("eval_")})
        history.append(m)
        if (args.save_every and (step + 1) % args.save_every == 0) or last:
            if args.out_dir:  # the checkpoint --resume continues exactly (parallel.save_run)
                parallel.save_run(args.out_dir, model, optimizer, tok, vars(args),
                                  {"step": step + 1, "cursor": cursor}, final=last)
            last_saved = step + 1
    bar.close()
    return history


# ---------------------------------------------------------------------------------------------------------------
# ---- plumbing: flags, loading, resume ----

def finish_args(args):
    """Defaults that depend on --init: the data (and so the prompt format) the init was trained on, from its
    run_config.json, then the profile's defaults for every flag still unset."""
    if args.data is None:
        args.data = common.read_run_config(args.init).get("data")
        if args.data is not None:
            args.sources["data"] = "init"
    common.apply_profile(args, PROFILES)


def auto_or_bool(v):
    if str(v).lower() == "auto":
        return "auto"
    try:
        return common.str2bool(v)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {v!r}") from None


def get_parser():
    p = common.OneLineErrorParser(description="GRPO on a (windowed) model; the module docstring has the algorithm.",
                                  finish=finish_args)
    g = p.add_argument_group("model")
    g.add_argument("--init", help="checkpoint dir (from sft.py), hf:ORG/NAME, hf:/dir or gguf:/file")
    common.add_window_flags(g, "the init checkpoint's own (what sft.py trained under)")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    g.add_argument("--dtype", help="autocast dtype (weights and AdamW stay fp32): auto (bf16 on GPUs and, for 20M+ "
                   "parameters, CPUs with native bf16; else fp32) | float32 | bfloat16")
    g.add_argument("--grad_checkpointing", type=common.str2bool, help="recompute blocks in backward")
    g.add_argument("--compile", type=common.str2bool, help="torch.compile the policy's training forward and its "
                   "decode step (model.compile)")
    parallel.add_flag(g)
    g = p.add_argument_group("data and sampling")
    g.add_argument("--data", help="synthetic[:task][?knobs] | gsm8k | math | jsonl:/path/{split}.jsonl. Plain "
                   "'synthetic' takes the knobs sft.py used. Unset: the data (and so the prompt format) the init was "
                   "trained on, from its run_config.json, else the profile's")
    g.add_argument("--prompts_per_step", type=int, help="prompts per step, all ranks together (each rank "
                   "samples whole groups)")
    g.add_argument("--group_size", type=int, help="G: completions per prompt (>= 2: the group mean is the baseline; "
                   "1 is allowed with --teacher)")
    g.add_argument("--max_new_tokens", type=int, help="generation budget per completion (the synthetic local-style "
                   "trace is ~140 tokens)")
    g.add_argument("--temperature", type=float, help="sampling temperature; scoring uses the same")
    g = p.add_argument_group("reward and advantage")
    g.add_argument("--format_reward", type=float, help="coefficient of verify.format_reward (0 = off)")
    g.add_argument("--overlong_buffer", type=int, help="DAPO's soft overlong penalty: from 0 down to -1 over the "
                   "last N tokens of --max_new_tokens (0 = off)")
    g.add_argument("--scale_rewards", choices=grpo.SCALES, help="divide A = r - mean(r) by the group's std (group, "
                   "DeepSeekMath's GRPO), the whole batch's (batch, Lite PPO / TRL) or nothing (none, Dr. GRPO: a "
                   "std up-weights the prompts that are nearly always right or always wrong)")
    g.add_argument("--filter_groups", type=common.str2bool, help="drop groups whose rewards are all equal: they "
                   "carry no signal and only dilute the normalizer (dropped, not resampled)")
    g.add_argument("--mask_truncated", type=common.str2bool, help="drop completions without EOS (at the budget)")
    g.add_argument("--algo", choices=ALGOS, help="grpo | rft: the control of rejection-sampling fine-tuning (sample "
                   "as GRPO does, plain SFT loss on the correct completions; controls.py)")
    g.add_argument("--teacher", help="the control of on-policy distillation instead of GRPO (controls.py): the "
                   "teacher's checkpoint dir | hf: | gguf:, run frozen at FULL attention, sharing the student's "
                   "tokenizer; the advantage is log p_teacher - log p_student per token, the reward only logged")
    g = p.add_argument_group("loss and optimizer")
    g.add_argument("--loss_agg", choices=grpo.LOSS_AGGS, help="the step's one normalizer: token = its completion "
                   "tokens (DAPO); sequence = each sequence's token mean, / sequences (DeepSeekMath's GRPO; short "
                   "right and long wrong answers weigh more per token); constant = sequences x --max_new_tokens (Dr. "
                   "GRPO, no length bias)")
    g.add_argument("--clip_low", type=float, help="PPO clip: rho >= 1 - clip_low")
    g.add_argument("--clip_high", type=float, help="PPO clip: rho <= 1 + clip_high (DAPO's clip-higher)")
    g.add_argument("--inner_epochs", type=int, help="updates per batch of samples (1: on-policy, rho == 1; later "
                   "ones clip against the first's log-probs)")
    g.add_argument("--kl_coef", type=float, help="k3 KL to a frozen copy of --init (0: none loaded)")
    g.add_argument("--lr", type=float, help="AdamW learning rate")
    g.add_argument("--warmup", type=int, help="linear LR warmup steps")
    g.add_argument("--weight_decay", type=float, help="AdamW weight decay")
    g.add_argument("--grad_clip", type=float, help="max gradient norm (0 = no clipping)")
    g.add_argument("--micro_batch_size", type=int, help="rows per forward/backward")
    g.add_argument("--share_prompt", type=auto_or_bool, help="true: the rows of a prompt in a micro-batch share its "
                   "forward (run once, not G times; the same log-probs up to rounding); false: every row its whole "
                   "sequence, through the windowed attention kernels; auto: true on CPUs for rows short enough for "
                   "the dense mask (faster: bench/RESULTS.md), else false (grpo.share_prompt_for)")
    g = p.add_argument_group("run")
    g.add_argument("--steps", type=int, help="total GRPO steps (a resumed run counts from 0 too)")
    g.add_argument("--seed", type=int, help="data order and sampling seed")
    g.add_argument("--out_dir", help="checkpoint, metrics.jsonl, samples.jsonl")
    g.add_argument("--save_every", type=int, help="checkpoint every N steps (0: only at the end)")
    g.add_argument("--resume", type=common.resume_flag, help="true: continue the run in --out_dir from its "
                   "checkpoint; or a checkpoint dir to continue from (writing to --out_dir); false: start fresh")
    g.add_argument("--eval_every", type=int, help="greedy held-out accuracy every N steps, at step 0 and at the end "
                   "(0 = never)")
    g.add_argument("--eval_limit", type=int, help="size of the fixed held-out set")
    g.add_argument("--eval_batch_size", type=int, help="prompts per eval generate call")
    g.add_argument("--sample_every", type=int, help="print a few completions every N steps (0 = never)")
    common.set_defaults(p, DEFAULTS, PROFILES)
    return p


RANGES = {"prompts_per_step": (1, 2**20), "max_new_tokens": (1, 2**20), "temperature": (0, 100, "open"),
          "format_reward": (0, 100), "clip_low": (0, 0.999), "clip_high": (0, 100), "inner_epochs": (1, 1000),
          "kl_coef": (0, 1000), "lr": (0, 1, "open"), "warmup": (0, common.BIG), "weight_decay": (0, 10),
          "grad_clip": (0, 1e6), "micro_batch_size": (1, 2**20), "steps": (1, common.BIG), "seed": (0, 2**32 - 1),
          "save_every": (0, common.BIG), "eval_every": (0, common.BIG), "eval_limit": (0, common.BIG),
          "eval_batch_size": (1, 2**20), "sample_every": (0, common.BIG)}


def check_config(args, world):
    common.check_ranges(args, RANGES | {"group_size": (1 if args.teacher else 2, 2**16)})
    if args.algo == "rft" and (args.teacher or args.kl_coef or args.inner_epochs != 1 or args.loss_agg != "token"
                               or args.filter_groups):
        raise ValueError("--algo=rft is plain SFT on the correct samples: it takes no --teacher, --kl_coef or "
                         "--filter_groups (which would drop the groups where every sample is right), "
                         "--inner_epochs=1 and --loss_agg=token")
    if args.teacher and args.filter_groups:
        raise ValueError("--filter_groups drops groups by their rewards, which do not enter the loss with --teacher")
    if args.prompts_per_step % world:
        raise ValueError(f"--prompts_per_step={args.prompts_per_step} must be a multiple of the {world} ranks "
                         f"(each rank takes whole groups)")
    if args.overlong_buffer < 0 or args.overlong_buffer > args.max_new_tokens:
        raise ValueError(f"--overlong_buffer must be in 0..--max_new_tokens, got {args.overlong_buffer}")


def resolve_data_name(name, init_config):
    """Plain --data=synthetic means 'the synthetic task SFT trained on': its knobs (digits, steps, ...) come from the
    init checkpoint's run_config.json, so RL's prompts are drawn from the same distribution."""
    sft_data = (init_config or {}).get("data")
    if not isinstance(sft_data, str) or "?" in name:
        return name
    base = lambda n: {"synthetic": "synthetic:lagged"}.get(n.partition("?")[0], n.partition("?")[0])  # noqa: E731
    return sft_data if base(sft_data) == base(name) else name


def load_policy(args, device):
    """-> (model fp32 on device, tokenizer, train_state or None). From --out_dir with --resume, else from --init."""
    ckpt = common.resume_dir(args)
    if ckpt is not None:
        model, tok, _, train_state = checkpoint.load(ckpt, device=device, dtype="float32",
                                                     state_keys=("step", "cursor", "optimizer", "rng"))
        if not train_state:
            raise ValueError(f"--resume: {ckpt} has no training state (optimizer, step) to continue from")
    else:
        if not args.init.startswith(("hf:", "gguf:")) and not os.path.isdir(args.init):
            raise FileNotFoundError(f"no checkpoint at {args.init}: run python sft.py first or pass --init=...")
        (model, tok), train_state = convert.load_model(args.init, device=device, dtype="float32"), None
    # the reference model (--kl_coef) loads with these values; echo_config prints them with the rest
    common.apply_window(args, model, args.profile, announce=False)
    return model, tok, train_state


def restore(args, model, optimizer, state):
    """A checkpoint's train_state (--resume) put back: optimizer and RNG; the logs trimmed to its step.
    -> (start step, data cursor, metrics log, samples log)."""
    state = state or {}
    start_step, cursor = int(state.get("step", 0)), int(state.get("cursor", 0))
    if "optimizer" in state:
        parallel.load_optimizer(model, optimizer, state["optimizer"], common.resume_dir(args))
    if "rng" in state:
        common.set_rng_state(state["rng"])
    if not args.out_dir:
        return start_step, cursor, None, None
    names = ("metrics.jsonl", "samples.jsonl")
    if common.is_main():
        checkpoint.remove_leftovers(args.out_dir)  # what crashed saves left beside out_dir
        for name in names:
            common.trim_jsonl(os.path.join(args.out_dir, name), start_step if state else -1)
    return start_step, cursor, *(common.JSONLLogger(os.path.join(args.out_dir, name)) for name in names)


def stop_at_nan(args, step, epoch, last_saved):
    where = (f"the last good checkpoint is {args.out_dir} (step {last_saved})" if last_saved is not None else
             "no checkpoint was written by this run")
    common.die(f"loss or gradient is NaN/inf at step {step} (inner epoch {epoch}); stopping, {where}; try a lower "
               f"--lr")


def held_out_eval(args, model, tok, eval_set, amp_dtype, step, metrics_log):
    """Greedy accuracy on --eval_limit held-out problems (eval.evaluate, rank 0) -> {"eval_accuracy": ...}."""
    if eval_set is None or not args.eval_every:
        return {}

    def run():
        with common.autocast(next(model.parameters()).device, amp_dtype):
            summary, _ = evaluation.evaluate(model, tok, eval_set, limit=args.eval_limit,
                                             batch_size=args.eval_batch_size, max_new_tokens=args.max_new_tokens)
        result = {f"eval_{k}": v for k, v in summary.items() if isinstance(v, (int, float))}
        common.print0(f"eval @ step {step}: accuracy {summary['accuracy']:.3f} on {summary['n']} held-out "
                      f"problems, mean length {summary['mean_len']:.1f}"
                      + (f", local share {summary['local_share']:.2f}" if "local_share" in summary else ""))
        if metrics_log:
            metrics_log.log({"step": step, **result})
        return result
    return parallel.on_rank0(model, run) or {}


def parse_args(argv):
    return common.parse_resumable(get_parser(), argv, "rl.py")
def main(argv=None):
    try:
        args = parse_args(argv)
        rank, world, device = common.start_run(args, "rl.py")
        args.data = resolve_data_name(args.data, common.read_run_config(args.init))
        check_config(args, world)
        if args.out_dir:
            checkpoint.check_out_dir(args.out_dir, inputs=[args.init, args.teacher])
        model, tok, train_state = load_policy(args, device)
        common.echo_config(args, "rl.py config")  # once the window is resolved, each value with its source
        common.check_attn_backend(model.config.attn_backend, device, what="the checkpoint's attn_backend")
        args.fsdp = parallel.use_fsdp(args.fsdp, world, device, model.num_params())  # run_config.json: what ran
        if args.fsdp:
            if args.compile:
                raise ValueError("--compile with FSDP is not supported yet (untested: the compiled decode step "
                                 "would run through the sharded blocks); use one of them")
            if args.share_prompt is True:
                raise ValueError("--share_prompt=true does not go with FSDP (ranks would run different passes "
                                 "through the layers); use --share_prompt=auto or false")
            parallel.shard(model, common.autocast_dtype(args.dtype, device, model.num_params()))
        if args.compile:
            model.compile()
        ref_model = None
        if args.kl_coef:  # the frozen reference, under the policy's window flags
            ref_model, _ = convert.load_model(args.init, device=device, dtype="float32",
                                              **common.window_overrides(args))
            ref_model.eval().requires_grad_(False)
        teacher = controls.load_teacher(args.teacher, device, model, tok) if args.teacher else None
        train_set = data.load_dataset(args.data, "train", seed=args.seed)
        eval_set = data.load_dataset(args.data, "test", seed=args.seed) if args.eval_every else None
        w = model.config
        common.print0(f"policy: {model.num_params() / 1e6:.2f}M parameters, window={w.window} sinks={w.sinks} "
                      f"layer_pattern={w.layer_pattern}; {len(train_set)} train prompts ({train_set.skip_report()}); "
                      f"{world} rank(s) on {device}")
        history = train(args, model, tok, train_set, eval_set, state=train_state, ref_model=ref_model,
                        teacher=teacher)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        common.die(str(e), code=2)
    if history:
        first, last = history[0], history[-1]
        common.print0(f"done: {len(history)} steps, reward {first['reward']:.3f} -> {last['reward']:.3f}, "
                      f"sampled accuracy {first['accuracy']:.3f} -> {last['accuracy']:.3f}"
                      + (f", local share {first['local_share']:.2f} -> {last['local_share']:.2f}"
                         if "local_share" in last else "")
                      + (f", teacher_kl {first['teacher_kl']:.3f} -> {last['teacher_kl']:.3f}"
                         if last.get("teacher_kl") is not None and first.get("teacher_kl") is not None else "")
                      + f"; checkpoint in {args.out_dir}")
    common.cleanup_distributed()
    return history


if __name__ == "__main__":
    main()
