"""
Stage 1 of SWARR: put a model under a sliding window and fine-tune it on worked math solutions (SFT).

    OMP_NUM_THREADS=1 python sft.py     # CPU demo: a 2-layer 0.56M-parameter model from scratch under window 18
                                        # on the synthetic lagged task, 1000 steps -> out/sft
    python sft.py --init=out/sa --window=18 --lr=5e-4 --steps=200 --out_dir=out/swa   # a full-attention init, windowed
    python sft.py --init=hf:Qwen/Qwen2.5-0.5B-Instruct   # a pretrained model: the real recipe's defaults
    torchrun --standalone --nproc_per_node=8 sft.py ...  # DDP: 8x the global batch; --fsdp=true shards it (parallel.py)
    python sft.py --resume=true --out_dir=out/sft   # continue where the last checkpoint left off (bit for bit on CPU)

Defaults (DEFAULTS, PROFILES) follow the init: the toy's from scratch, the real recipe's for a pretrained model, whose
window is W=256 with 4 sinks unless the init has its own; flags given win. The config is printed in one block, each
value with its source, and saved in run_config.json. The file reads in the order things happen: main, then its steps
(data, model and optimizer, one step, eval and save), then the flags; SFT's batching is data.py's (sft_examples,
epoch_batches, pad_batch), the held-out loss eval.py's (mean_loss). Logs: a progress bar (a plain line every 30 s
into a file or pipe) and out_dir/metrics.jsonl. More commands, and why the defaults are what they are: README.md.

What the demo learns: greedy decoding picks the majority `reference` solution style, whose lookups lie beyond a
2-layer window-18 model's reach, so greedy accuracy stays low, while forcing the `local` style ("[" as the first
token) solves every problem. That is the gap `python rl.py` closes.
Left out on purpose: packing (padding within length-sorted batches wastes little and cannot leak between examples);
float16 training (it needs loss scaling; use bf16); eval on several ranks (rank 0 evaluates while the others wait).
"""

import math
import os
import time

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

import checkpoint
import common
import convert
import data
import eval as evaluation
import parallel
from model import BACKENDS, GPT, GPTConfig, check_context
from tokenizer import Tokenizer

# -----------------------------------------------------------------------------
# Defaults: the flags' (get_parser at the bottom has their help), then those that follow the init

DEFAULTS = dict(
    init="scratch", n_layer=2, n_head=4, n_embd=128, block_size=256, attn_backend="auto",  # model (scratch: sizes)
    local_frac=0.2, epochs=None, token_budget=0, weight_decay=0.1, grad_clip=1.0,  # data and optimization
    eval_examples=128, out_dir="out/sft", resume=None,  # eval and checkpoints
    seed=0, device="auto", dtype="auto", compile=False, grad_checkpointing=False,  # system
)  # the window flags: common.add_window_flags; --fsdp: parallel.add_flag

# The toy demo from scratch, or the real recipe for a pretrained model (common.init_profile; the window and sinks:
# common.PROFILE_WINDOWS). lr 1e-5 is a usual full fine-tuning rate for 0.1-1B models (3e-3, the toy's, wrecks them).
PROFILES = {
    "toy": dict(data="synthetic", lr=3e-3, max_len=256, batch_size=32, grad_accum=1, warmup=30, steps=1000,
                eval_every=200, eval_limit=32, save_every=200),
    "pretrained": dict(data="gsm8k", lr=1e-5, max_len=512, batch_size=8, grad_accum=4, warmup=20, steps=200,
                       eval_every=50, eval_limit=64, save_every=50),
}


def main(argv=None):
    t_start = time.time()
    try:  # config, data and model: a bad flag, data set or init stops here with one line, before any training
        args, rank, world, device = setup(argv)
        train_set, test_set = load_data(args)  # before the model, so that a bad --data fails before a long download
        model, tok, train_state = build_model(args, device)
        dtype = common.autocast_dtype(args.dtype, device, model.num_params())  # weights stay float32
        args.fsdp = parallel.use_fsdp(args.fsdp, world, device, model.num_params())  # run_config.json: what ran
        if args.fsdp and args.compile:
            raise ValueError("--compile with FSDP is not supported yet (untested: the compiled decode step would "
                             "run through the sharded blocks); use one of them")
        check_context(args.max_len, model.config.block_size, f"--max_len={args.max_len}")
        # the token lists up front: every rank holds all of them, so it can count the global batch's targets
        train = data.sft_examples(train_set, tok, args.max_len)
        heldout = data.sft_examples(test_set, tok, args.max_len, limit=args.eval_examples)
        global_batch = args.batch_size * args.grad_accum * world
        steps_per_epoch, total_steps = schedule(args, train, global_batch)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        common.die(str(e), code=2)
    common.echo_config(args, "sft.py config")
    common.print0(f"model: {model.num_params() / 1e6:.2f}M parameters on {device}, autocast {dtype}, world size "
                  f"{world}" + (" (FSDP)" if args.fsdp else " (DDP)" if world > 1 else ""))
    common.print0(f"data: {len(train.seqs)} train examples ({train.dropped} longer than {args.max_len} dropped, "
                  f"{train_set.skip_report()}), {len(heldout.seqs)} held-out for the loss | global batch "
                  f"{global_batch}, {steps_per_epoch} steps per epoch, {total_steps} steps")

    # ---- optimizer, and where a resumed run continues
    if args.fsdp:
        parallel.shard(model, dtype)  # before the optimizer, which then holds this rank's shards only
    optimizer = make_optimizer(model, args, device)
    step, epoch, cursor = resume(args, model, optimizer, train_state, global_batch, steps_per_epoch)
    if args.compile:
        model.compile()  # in place: the state dict keeps its keys
    trained = parallel.ddp_wrapped(model, world, args.fsdp, device)  # the step's; clip, eval and save use model
    logger = common.JSONLLogger(os.path.join(args.out_dir, "metrics.jsonl"))
    last_saved = common.resume_dir(args)  # where a good checkpoint is known to be (None until a fresh run saves)

    # ---- the loop
    last_eval = None
    if args.eval_every and step == 0:
        last_eval = held_out_eval(args, model, tok, test_set, heldout, device, dtype, step, logger)
    lengths = [len(s) for s in train.seqs]
    batches = data.epoch_batches(lengths, global_batch, args.seed, epoch)
    pbar = common.progress(total=total_steps, initial=step, desc="sft", disable=not common.is_main())
    model.train()
    while step < total_steps:
        t0 = time.time()
        if cursor == len(batches):
            epoch, cursor = epoch + 1, 0
            batches = data.epoch_batches(lengths, global_batch, args.seed, epoch)
        batch = batches[cursor]  # (global_batch,) example indices, sorted by length
        lr = lr_at(step, args, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        mean_loss = forward_backward(trained, train, batch, args, rank, world, tok.pad_id, device, dtype)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip or float("inf")).item()
        stop_if_diverged(mean_loss, grad_norm, step, last_saved, pbar)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step, cursor = step + 1, cursor + 1

        # ---- log
        record = step_record(step, epoch, batch, lengths, args.batch_size, mean_loss, lr, grad_norm, time.time() - t0)
        logger.log(record)
        pbar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{record['tokens_per_s']:.0f}")
        pbar.update(1)

        # ---- eval and save
        if args.eval_every and (step % args.eval_every == 0 or step == total_steps):
            last_eval = held_out_eval(args, model, tok, test_set, heldout, device, dtype, step, logger)
        if step == total_steps or (args.save_every and step % args.save_every == 0):
            position = {"step": step, "epoch": epoch, "cursor": cursor, "global_batch": global_batch}
            parallel.save_run(args.out_dir, model, optimizer, tok, vars(args), position, final=step == total_steps)
            last_saved = args.out_dir
    pbar.close()
    common.print0(summary(args, step, time.time() - t_start, last_eval, len(test_set), device))
    trained = None  # DDP's wrapper goes before the process group (parallel.ddp_wrapped says why)
    common.cleanup_distributed()
    return last_eval


# -----------------------------------------------------------------------------
# Data


def load_data(args):
    """-> (train set, test set) of --data; --local_frac applies to the synthetic task only."""
    knobs = {"seed": args.seed} | ({"local_frac": args.local_frac} if args.data.startswith("synthetic") else {})
    train_set = data.load_dataset(args.data, "train", **knobs).with_solutions()  # SFT needs a solution
    return train_set, data.load_dataset(args.data, "test", **knobs)


def schedule(args, train, global_batch):
    """-> (steps per epoch, steps of the run: --steps, --epochs, or --token_budget: the steps that train about that
    many forward/backward tokens, at least 1; every example is seen equally often, so a step trains the mean)."""
    steps_per_epoch = len(train.seqs) // global_batch
    if steps_per_epoch == 0:
        raise ValueError(f"{args.data}: {len(train.seqs)} training examples fit in --max_len={args.max_len} "
                         f"({train.dropped} longer ones dropped), fewer than one global batch of {global_batch}; "
                         f"raise --max_len or lower --batch_size/--grad_accum")
    if args.token_budget:
        per_step = global_batch * sum(len(s) - 1 for s in train.seqs) / len(train.seqs)
        return steps_per_epoch, max(1, math.ceil(args.token_budget / per_step))
    return steps_per_epoch, args.epochs * steps_per_epoch if args.epochs else args.steps


# -----------------------------------------------------------------------------
# Model, optimizer, resume


def build_model(args, device):
    """-> (model in float32 on device, tokenizer, train_state or None) under the window flags (common.apply_window:
    --window=keep keeps the init's own window, an init without one gets the profile's: the SA -> SWA conversion).
    A resumed run rebuilds its model from the checkpoint it continues."""
    ckpt = common.resume_dir(args)
    if ckpt is not None:
        model, tok, _, train_state = checkpoint.load(
            ckpt, device=device, dtype="float32", attn_backend=args.attn_backend,
            state_keys=("step", "epoch", "cursor", "global_batch", "optimizer", "rng"))
    elif args.init == "scratch":
        tok, train_state = Tokenizer.byte_level(), None
        config = GPTConfig(vocab_size=tok.vocab_size, n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                           block_size=args.block_size, attn_backend=args.attn_backend)
        model = GPT(config).to(device)
    else:
        model, tok = convert.load_model(args.init, device=device, dtype="float32", attn_backend=args.attn_backend)
        train_state = None
    common.apply_window(args, model, args.profile, announce=False)  # echo_config prints the window with the rest
    if ckpt is not None or args.init != "scratch":  # the size is the init's: the config block and run config say it
        source, why = ("resumed run", "a resumed run keeps its size") if ckpt is not None else \
            ("init", "it is for --init=scratch")
        sources = common.sources_of(args)
        for name in SIZE_FLAGS:
            given = sources.get(name) == "command line" and getattr(args, name) != getattr(model.config, name)
            sources[name] = source + (f"; --{name}={getattr(args, name)} ignored, {why}" if given else "")
            setattr(args, name, getattr(model.config, name))
    model.grad_checkpointing = args.grad_checkpointing
    return model, tok, train_state


def make_optimizer(model, args, device):
    """AdamW with weight decay on weight matrices only: not on norms, biases and embeddings (also when tied to the LM
    head; an untied LM head is a matrix and is decayed)."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=str(device).startswith("cuda"))


def resume(args, model, optimizer, train_state, global_batch, steps_per_epoch):
    """-> (step, epoch, cursor) where the run starts, with a resumed run's optimizer and RNG states loaded and its
    metrics.jsonl cut back to its step (a fresh run starts a new one); what crashed saves left beside out_dir goes."""
    ckpt, state = common.resume_dir(args), train_state
    if state is not None:
        if state["global_batch"] != global_batch:
            common.die(f"--resume: the checkpoint was trained with a global batch of {state['global_batch']} "
                       f"examples, this run has {global_batch} (batch_size * grad_accum * processes); use the same")
        try:
            parallel.load_optimizer(model, optimizer, state["optimizer"], ckpt)
        except ValueError as e:
            common.die(str(e) if str(e).startswith("--resume") else f"--resume: {ckpt}: {e}", code=2)
        if state["cursor"] > steps_per_epoch:
            common.die(f"--resume: {ckpt} continues at batch {state['cursor']} of an epoch that has "
                       f"{steps_per_epoch}: a hand-edited training state, or other data", code=2)
        common.set_rng_state(state["rng"])
        common.print0(f"resumed from {ckpt} at step {state['step']} (epoch {state['epoch']}, batch {state['cursor']})")
    step, epoch, cursor = (state["step"], state["epoch"], state["cursor"]) if state is not None else (0, 0, 0)
    if common.is_main():
        checkpoint.remove_leftovers(args.out_dir)
        os.makedirs(args.out_dir, exist_ok=True)
        common.trim_jsonl(os.path.join(args.out_dir, "metrics.jsonl"), step if ckpt is not None else -1)
    return step, epoch, cursor


# -----------------------------------------------------------------------------
# One step


def lr_at(step, args, total_steps):
    """Linear warmup for --warmup steps, then cosine decay to 0 at the last step."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, total_steps - args.warmup)
    return args.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def forward_backward(model, train, batch, args, rank, world, pad_id, device, dtype):
    """Accumulate the gradients of this rank's micro-batches of the global batch -> its mean loss per target token.
    Micro-batch m of rank r takes the batch's examples [(m * world + r) * batch_size, ... + batch_size); every
    micro-batch's summed loss is divided by the global batch's target count, so the gradient does not depend on how
    the batch is split over micro-batches and processes (up to float rounding)."""
    n_global = sum(train.n_targets[i] for i in batch)  # the one normalizer for every micro-batch and rank
    averaged = world if isinstance(model, DDP) else 1  # DDP averages gradients over ranks, FSDP sums (parallel.py)
    loss_sum = torch.zeros((), device=device)
    for micro in range(args.grad_accum):
        start = (micro * world + rank) * args.batch_size
        members = batch[start:start + args.batch_size]  # example indices
        idx, targets = data.pad_batch([train.seqs[i] for i in members], [train.masks[i] for i in members], pad_id)
        idx, targets = idx.to(device), targets.to(device)  # targets: the next token, -1 off the solution and EOS
        # DDP all-reduces the gradients only once, after the last micro-batch; FSDP reduce-scatters after every
        # one (deferring would keep the whole model's gradients on every rank)
        if isinstance(model, DDP):
            model.require_backward_grad_sync = micro == args.grad_accum - 1
        with common.autocast(device, dtype):
            loss = model(idx, targets)[1].sum()  # () summed over (B, T)
        (loss * averaged / n_global).backward()  # * world turns DDP's average into a sum
        loss_sum += loss.detach()
    return common.all_reduce_sum(loss_sum).item() / n_global


def stop_if_diverged(mean_loss, grad_norm, step, last_saved, pbar):
    """A NaN or infinite loss or gradient norm stops the run before the update, naming the last good checkpoint
    (which a bad one never overwrites)."""
    if math.isfinite(mean_loss) and math.isfinite(grad_norm):
        return
    pbar.close()
    what = f"loss is {mean_loss}" if not math.isfinite(mean_loss) else f"gradient norm is {grad_norm}"
    where = f"the last good checkpoint is in {last_saved}" if last_saved else "no checkpoint was saved yet"
    common.die(f"{what} at step {step + 1}; {where}")


def step_record(step, epoch, batch, lengths, batch_size, mean_loss, lr, grad_norm, seconds):
    """A step's line in metrics.jsonl; pad_frac is the share of padding in its micro-batches."""
    tokens = sum(lengths[i] - 1 for i in batch)
    padded = sum(batch_size * (lengths[batch[min(s + batch_size, len(batch)) - 1]] - 1)
                 for s in range(0, len(batch), batch_size))
    return {"step": step, "epoch": epoch, "loss": mean_loss, "lr": lr, "grad_norm": grad_norm, "tokens": tokens,
            "tokens_per_s": tokens / seconds, "pad_frac": 1 - tokens / padded}


# -----------------------------------------------------------------------------
# Eval and save


def held_out_eval(args, model, tok, test_set, heldout, device, dtype, step, logger):
    """On rank 0 (parallel.on_rank0): the loss on the first --eval_examples held-out problems and greedy accuracy
    (eval.evaluate) on the first --eval_limit, generating at most max_len - prompt tokens; logged -> the record."""
    def run():
        loss = evaluation.mean_loss(model, heldout.seqs, heldout.masks, args.batch_size, tok.pad_id, dtype)
        record = {"step": step, "eval_loss": loss}
        if args.eval_limit:
            longest_prompt = max(len(test_set.render_prompt(tok, ex)) for ex in test_set.examples[:args.eval_limit])
            with common.autocast(device, dtype):
                summary, records = evaluation.evaluate(
                    model, tok, test_set, limit=args.eval_limit, batch_size=args.batch_size,
                    max_new_tokens=max(1, args.max_len - longest_prompt), temperature=0.0)
            record |= {k: summary[k] for k in ("accuracy", "mean_len", "trunc_rate", "local_share") if k in summary}
            record["sample"] = records[0]["response"][:200]
        record["peak_mem_mb"] = common.peak_memory_mb(device)
        logger.log(record)
        tqdm.write(" | ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in record.items() if k != "sample"))
        if "sample" in record:
            tqdm.write(f"  sample: {record['sample'][:100]!r}")
        return record
    return parallel.on_rank0(model, run)


def summary(args, step, seconds, last_eval, n_test, device):
    line = f"done: {step} steps in {seconds:.0f}s, checkpoint in {args.out_dir}"
    if last_eval:
        line += f", held-out loss {last_eval['eval_loss']:.4f}"
        if "accuracy" in last_eval:  # --eval_limit may ask for more problems than there are
            line += f", greedy accuracy {last_eval['accuracy']:.3f} on {min(args.eval_limit, n_test)} problems"
    return line + f", peak memory {common.peak_memory_mb(device):.0f} MB"


# -----------------------------------------------------------------------------
# Plumbing: flags and their checks


def setup(argv):
    """-> (args, rank, world size, device): the flags parsed and checked, the process group joined, the RNGs seeded."""
    args = parse_args(argv)
    common.check_ranges(args, {k: r for k, r in RANGES.items() if k not in SIZE_FLAGS or args.init == "scratch"})
    if args.token_budget and args.epochs:
        raise ValueError("--token_budget and --epochs both set the run's length; give one")
    if args.init == "scratch" and isinstance(args.window, int) and args.window > args.block_size:
        raise ValueError(f"--window={args.window} is longer than --block_size={args.block_size}")
    if args.init == "scratch" and isinstance(args.sinks, int) and args.sinks > args.block_size:
        raise ValueError(f"--sinks={args.sinks} is more than --block_size={args.block_size} positions")
    checkpoint.check_out_dir(args.out_dir, inputs=[args.init])
    rank, world, device = common.start_run(args, "sft.py")
    common.check_attn_backend(args.attn_backend, device)
    return args, rank, world, device


SIZE_FLAGS = ("n_layer", "n_head", "n_embd", "block_size")  # a new model's size: --init=scratch only
RANGES = {"n_layer": (1, 1024), "n_head": (1, 1024), "n_embd": (1, 65536), "block_size": (2, 2**20),
          "batch_size": (1, 2**16), "grad_accum": (1, 2**16), "steps": (1, common.BIG), "epochs": (1, 10**6),
          "token_budget": (0, common.BIG), "lr": (0, 1, "open"), "warmup": (0, common.BIG), "weight_decay": (0, 10),
          "grad_clip": (0, 1e6), "eval_every": (0, common.BIG), "eval_examples": (0, common.BIG),
          "eval_limit": (0, common.BIG), "save_every": (0, common.BIG), "max_len": (2, 2**20), "local_frac": (0, 1),
          "seed": (0, 2**32 - 1)}


def parse_args(argv):
    return common.parse_resumable(get_parser(), argv, "sft.py")


def get_parser():
    p = common.OneLineErrorParser(description="SFT under a sliding window (stage 1 of SWARR); see the docstring.",
                                  finish=lambda args: common.apply_profile(args, PROFILES))
    g = p.add_argument_group("model")
    g.add_argument("--init", help="scratch (a new model of the size flags' size, byte-level tokenizer) | hf:ORG/NAME "
                   "| hf:/dir | gguf:/file.gguf | a checkpoint dir from sft.py/rl.py/convert.py")
    g.add_argument("--n_layer", type=int, help="scratch only: number of layers")
    g.add_argument("--n_head", type=int, help="scratch only: attention heads")
    g.add_argument("--n_embd", type=int, help="scratch only: model width")
    g.add_argument("--block_size", type=int, help="scratch only: context length (max positions)")
    common.add_window_flags(g, "the init checkpoint's own window if it has one, else the profile's (toy: W=18; "
                               "pretrained: W=256 with 4 sinks)")
    g.add_argument("--attn_backend", choices=BACKENDS, help="attention implementation (auto: on CPU chunked once "
                   "T > 2*(128+W), else dense; triton/flex on CUDA)")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="synthetic | synthetic:arith | gsm8k | math | jsonl:/path/{split}.jsonl (GSM8K, "
                   "MATH or question/answer rows); knobs after '?', e.g. 'synthetic:lagged?n_digits=8&size=5000'")
    g.add_argument("--local_frac", type=float, help="synthetic only: share of window-friendly 'local' solutions")
    g.add_argument("--max_len", type=int, help="longest example in tokens (longer ones are dropped)")
    g = p.add_argument_group("optimization")
    g.add_argument("--batch_size", type=int, help="examples per micro-batch per process")
    g.add_argument("--grad_accum", type=int, help="micro-batches per optimizer step")
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--warmup", type=int, help="linear warmup steps, then cosine decay to 0")
    g.add_argument("--steps", type=int, help="optimizer steps (ignored when --epochs is set)")
    g.add_argument("--epochs", type=int, help="train for this many passes over the data instead")
    g.add_argument("--token_budget", type=int, help="train for about this many forward/backward tokens instead "
                   "(prompt included, as rl.py counts them; the compute-matched SFT control); 0 = off")
    g.add_argument("--weight_decay", type=float, help="AdamW weight decay on weight matrices")
    g.add_argument("--grad_clip", type=float, help="clip the global gradient norm (0 = off)")
    g = p.add_argument_group("eval and checkpoints")
    g.add_argument("--eval_every", type=int, help="evaluate every N steps, at step 0 and at the end (0 = never)")
    g.add_argument("--eval_examples", type=int, help="held-out examples for the eval loss")
    g.add_argument("--eval_limit", type=int, help="held-out problems for greedy accuracy (0 = off)")
    g.add_argument("--save_every", type=int, help="checkpoint every N steps and at the end (0 = only at the end)")
    g.add_argument("--out_dir", help="checkpoint and metrics.jsonl directory")
    g.add_argument("--resume", type=common.resume_flag, help="true: continue the run in --out_dir from its "
                   "checkpoint; or a checkpoint dir to continue from (writing to --out_dir); false: start fresh")
    g = p.add_argument_group("system")
    g.add_argument("--seed", type=int, help="seeds the model init, the data order and synthetic data")
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps (torchrun sets the GPU)")
    g.add_argument("--dtype", help="autocast (compute) dtype, weights stay fp32: auto (bf16 on GPUs and, for models "
                   "of 20M+ parameters, on CPUs with native bf16; else fp32) | float32 | bfloat16")
    g.add_argument("--compile", type=common.str2bool, help="torch.compile the training forward and eval's decode step")
    parallel.add_flag(g)
    g.add_argument("--grad_checkpointing", type=common.str2bool,
                   help="recompute each layer in the backward pass: less memory, ~30%% more compute")
    common.set_defaults(p, DEFAULTS, PROFILES)
    return p


if __name__ == "__main__":
    main()
