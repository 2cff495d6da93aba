"""
Stage 1 of SWARR: put a model under a sliding window and fine-tune it on worked math solutions (SFT).

    OMP_NUM_THREADS=1 python sft.py     # CPU demo: a 2-layer 0.56M-parameter model from scratch under window 18
                                        # on the synthetic lagged task, 1000 steps -> out/sft (about 3 min)
    python sft.py --init=scratch --window=none --out_dir=out/sa          # the toy's full-attention model ...
    python sft.py --init=out/sa --window=18 --lr=5e-4 --steps=200 --out_dir=out/swa   # ... under window 18, tuned
    python sft.py --init=hf:Qwen/Qwen2.5-0.5B-Instruct   # a pretrained model: the real recipe's defaults (below)
    python sft.py --init=gguf:/path/SmolLM2-135M-Instruct.Q4_1.gguf \
        --data=jsonl:../shared/data/gsm8k/{split}.jsonl --steps=20 --eval_every=10 --eval_limit=16   # CPU, offline
    torchrun --standalone --nproc_per_node=8 sft.py ...(the same flags)   # DDP: 8x the global batch
    torchrun --standalone --nproc_per_node=8 sft.py --fsdp=true ...   # FSDP2: each GPU holds 1/8 of the model's
                                                                      # training state (parallel.py; README)
    python sft.py --resume=true --out_dir=out/sft   # continue exactly where the last checkpoint left off

Defaults follow the init (common.init_profile; printed at start and saved in run_config.json as "profile"):
  toy         --init=scratch, or a checkpoint trained from scratch: window 18, synthetic data, lr 3e-3, max_len 256,
              batch 32, 1000 steps
  pretrained  hf:, gguf:, or a checkpoint made from one: window 256 with 4 sinks (an init that has a window keeps it),
              GSM8K, lr 1e-5, max_len 512, batch 8 x 4 accumulation, 200 steps (PROFILES below says why)
Every flag given on the command line wins; --window=none keeps full attention.

The file reads in the order things happen: config, data, model, loop (with eval and save).

Data. data.py renders every example as prompt + solution + EOS, with a loss mask on the solution and the EOS only
(the model learns to answer and to stop, never to write questions). Examples longer than --max_len tokens are
dropped and counted, not truncated: a cut solution would teach the model to stop before the answer. Batches are
formed by length and padded, never packed, so no example can attend to another: each epoch is a random permutation
cut into chunks of 16 global batches, each chunk sorted by length and cut into global batches, and the batches
shuffled. The order is a pure function of (--seed, epoch), so a checkpoint only stores (epoch, cursor). The last
partial global batch of an epoch is dropped.

Batch and loss. One optimizer step takes one global batch of batch_size * grad_accum * world_size examples
(world_size = number of DDP processes). The global batch is sorted by length and micro-batch m of rank r takes rows
[(m * world_size + r) * batch_size, ... + batch_size). The loss is the sum of token losses over the global batch
divided by its number of target tokens, counted before micro-batching from the masks every rank has, so the
gradient is the same however the batch is split over micro-batches and processes (up to float rounding).

Optimizer. AdamW (betas 0.9/0.95); weight decay only on weight matrices: norms, biases and embeddings (also when
tied to the LM head; an untied LM head is a matrix and is decayed) are not. Learning rate: linear warmup for
--warmup steps, then cosine decay to 0 at the last step. Gradients clipped to --grad_clip (global norm). Weights and
optimizer state are float32; the forward runs under bf16 autocast with --dtype=auto on GPUs, and on CPUs with native
bf16 (avx512_bf16/amx_bf16) for models of 20M+ parameters (SmolLM2-135M trains 1.7x faster there); the tiny toy
stays float32 (bf16 did not pay at its size). --dtype=float32|bfloat16 forces either (model.py states the rule).

Eval, every --eval_every steps (and at step 0 and the end) on rank 0: the loss on the first --eval_examples
problems of the held-out split, and greedy accuracy (eval.evaluate, checked by verify.py) on the first --eval_limit
of them, generating at most max_len - prompt tokens so answers stay within the lengths trained on.

Checkpoints (checkpoint.save, atomic) go to --out_dir every --save_every steps and at the end: weights,
model config with the window settings, tokenizer, this run's config, and train_state {step, optimizer, RNG, data
position}. --resume reloads all of it; the saved run config becomes the default for every flag (flags on the
command line still win), so the same command continues the run (bit for bit on CPU, which a test checks). A NaN or
infinite loss stops the run before the update with one line naming the last good checkpoint, which is never
overwritten by a bad one.

Logs: tqdm (loss, lr, tokens/s) and out_dir/metrics.jsonl, one JSON object per step (loss, lr, grad_norm,
tokens, tokens_per_s, pad_frac) and per eval (eval_loss, accuracy, ...). A fresh run starts a new metrics.jsonl;
a resumed one drops the records after its checkpoint and appends.

What the demo learns: held-out loss ~0.12; it writes both solution styles, but greedy decoding picks the majority
`reference` style, whose lookups lie beyond a 2-layer window-18 model's reach, so greedy accuracy stays ~10%, while
forcing the `local` style ("[" as the first token) solves every problem. That is the gap `python rl.py` closes.

Left out on purpose: packing (padding within length-sorted batches wastes little and cannot leak between
examples); float16 training (it needs loss scaling; use bf16); eval on several ranks (rank 0 evaluates while the
others wait, fine for a few dozen problems). The tiny default model runs ~4x faster with OMP_NUM_THREADS=1 on a
shared 2-core machine (its matmuls are too small for two threads to pay off: 20 min with 2 threads there).
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
from model import BACKENDS, GPT, GPTConfig
from tokenizer import Tokenizer

BUCKET = 16  # global batches sorted by length together: less padding, still a fresh mix of lengths every step


# -----------------------------------------------------------------------------
# Config


# Defaults that follow the init (common.init_profile): the toy demo from scratch, or the real recipe for a pretrained
# model (its window and sinks: common.PROFILE_WINDOWS). lr 1e-5 is a usual full fine-tuning rate for 0.1-1B models (3e-3, right for the toy, wrecks them).
PROFILES = {
    "toy": dict(data="synthetic", lr=3e-3, max_len=256, batch_size=32, grad_accum=1, warmup=30, steps=1000,
                eval_every=200, eval_limit=32, save_every=200),
    "pretrained": dict(data="gsm8k", lr=1e-5, max_len=512, batch_size=8, grad_accum=4, warmup=20, steps=200,
                       eval_every=50, eval_limit=64, save_every=50),
}


def get_parser():
    p = common.OneLineErrorParser(description="SFT under a sliding window (stage 1 of SWARR); see the docstring.",
                                  finish=lambda args: common.apply_profile(args, PROFILES))
    g = p.add_argument_group("model")
    g.add_argument("--init", default="scratch",
                   help="scratch (a new model with the size flags and the byte-level tokenizer) | hf:ORG/NAME | "
                        "hf:/dir | gguf:/file.gguf | a checkpoint dir from sft.py/rl.py/convert.py")
    g.add_argument("--n_layer", type=int, default=2, help="scratch only: number of layers")
    g.add_argument("--n_head", type=int, default=4, help="scratch only: attention heads")
    g.add_argument("--n_embd", type=int, default=128, help="scratch only: model width")
    g.add_argument("--block_size", type=int, default=256, help="scratch only: context length (max positions)")
    common.add_window_flags(g, "the init checkpoint's own window if it has one, else the profile's (toy: W=18; "
                               "pretrained: W=256 with 4 sinks)")
    g.add_argument("--attn_backend", default="auto", choices=BACKENDS,
                   help="attention implementation (auto: on CPU chunked once T > 2*(128+W), else dense; "
                        "triton/flex on CUDA)")
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None,
                   help="synthetic | synthetic:arith | gsm8k | math | jsonl:/path/{split}.jsonl (GSM8K, MATH or "
                        "question/answer rows); knobs after '?', e.g. 'synthetic:lagged?n_digits=8&size=5000' "
                        "(see data.py). Default: " + common.profile_help(PROFILES, "data"))
    g.add_argument("--local_frac", type=float, default=0.2,
                   help="synthetic only: share of window-friendly 'local' solutions in the SFT mix")
    g.add_argument("--max_len", type=int, default=None, help="longest example in tokens (longer ones are dropped). "
                   "Default: " + common.profile_help(PROFILES, "max_len"))
    g = p.add_argument_group("optimization")
    g.add_argument("--batch_size", type=int, default=None, help="examples per micro-batch per process. Default: "
                   + common.profile_help(PROFILES, "batch_size"))
    g.add_argument("--grad_accum", type=int, default=None, help="micro-batches per optimizer step. Default: "
                   + common.profile_help(PROFILES, "grad_accum"))
    g.add_argument("--lr", type=float, default=None, help="peak learning rate. Default: "
                   + common.profile_help(PROFILES, "lr"))
    g.add_argument("--warmup", type=int, default=None, help="linear warmup steps, then cosine decay to 0. Default: "
                   + common.profile_help(PROFILES, "warmup"))
    g.add_argument("--steps", type=int, default=None, help="optimizer steps (ignored when --epochs is set). "
                   "Default: " + common.profile_help(PROFILES, "steps"))
    g.add_argument("--epochs", type=int, default=None, help="train for this many passes over the data instead")
    g.add_argument("--token_budget", type=int, default=0,
                   help="train for about this many forward/backward tokens instead (prompt included, as rl.py's "
                        "train_tokens counts them): steps = ceil(budget / (global batch x mean example length)). "
                        "The compute-matched SFT control of runs/swarr_cpu.sh; 0 = off")
    g.add_argument("--weight_decay", type=float, default=0.1, help="AdamW weight decay on weight matrices")
    g.add_argument("--grad_clip", type=float, default=1.0, help="clip the global gradient norm (0 = off)")
    g = p.add_argument_group("eval and checkpoints")
    g.add_argument("--eval_every", type=int, default=None, help="evaluate every N steps, at step 0 and at the end "
                   "(0 = never). Default: " + common.profile_help(PROFILES, "eval_every"))
    g.add_argument("--eval_examples", type=int, default=128, help="held-out examples for the eval loss")
    g.add_argument("--eval_limit", type=int, default=None, help="held-out problems for greedy accuracy (0 = off). "
                   "Default: " + common.profile_help(PROFILES, "eval_limit"))
    g.add_argument("--save_every", type=int, default=None, help="checkpoint every N steps and at the end "
                   "(0 = only at the end). Default: " + common.profile_help(PROFILES, "save_every"))
    g.add_argument("--out_dir", default="out/sft", help="checkpoint and metrics.jsonl directory")
    g.add_argument("--resume", type=common.resume_flag, default=None,
                   help="true: continue the run in --out_dir from its checkpoint; or a checkpoint dir to continue "
                        "from (writing to --out_dir); false: start fresh")
    g = p.add_argument_group("system")
    g.add_argument("--seed", type=int, default=0, help="seeds the model init, the data order and synthetic data")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (torchrun sets the GPU)")
    g.add_argument("--dtype", default="auto", help="autocast (compute) dtype, weights stay fp32: auto (bf16 on GPUs "
                                                   "and, for models of 20M+ parameters, on CPUs with native bf16; "
                                                   "else fp32) | float32 | bfloat16")
    g.add_argument("--compile", type=common.str2bool, default=False, help="torch.compile the training forward and "
                   "the held-out eval's decode step (model.compile)")
    parallel.add_flag(g)
    g.add_argument("--grad_checkpointing", type=common.str2bool, default=False,
                   help="recompute each layer in the backward pass: less memory, ~30%% more compute")
    return p


def parse_args(argv):
    return common.parse_resumable(get_parser(), argv, "sft.py")


RANGES = {"n_layer": (1, 1024), "n_head": (1, 1024), "n_embd": (1, 65536), "block_size": (2, 2**20),
          "batch_size": (1, 2**16), "grad_accum": (1, 2**16), "steps": (1, common.BIG), "epochs": (1, 10**6),
          "token_budget": (0, common.BIG),
          "lr": (0, 1, "open"), "warmup": (0, common.BIG), "weight_decay": (0, 10), "grad_clip": (0, 1e6),
          "eval_every": (0, common.BIG), "eval_examples": (0, common.BIG), "eval_limit": (0, common.BIG),
          "save_every": (0, common.BIG), "max_len": (2, 2**20), "local_frac": (0, 1), "seed": (0, 2**32 - 1)}


def check_args(args):
    common.check_ranges(args, RANGES)
    if args.init == "scratch" and isinstance(args.window, int) and args.window > args.block_size:
        raise ValueError(f"--window={args.window} is longer than --block_size={args.block_size}")
    if args.init == "scratch" and isinstance(args.sinks, int) and args.sinks > args.block_size:
        raise ValueError(f"--sinks={args.sinks} is more than --block_size={args.block_size} positions")
    checkpoint.check_out_dir(args.out_dir, inputs=[args.init])


# -----------------------------------------------------------------------------
# Data


def tokenize(dataset, tok, max_len, limit=None):
    """-> (token lists, loss masks, target counts, dropped): every example that has a solution and fits in max_len
    tokens; dropped counts the longer ones (dataset.with_solutions() counts those without a solution)."""
    seqs, masks, n_targets, dropped = [], [], [], 0
    for ex in dataset.with_solutions().examples[:limit]:
        ids, mask = dataset.render_for_sft(tok, ex)
        if len(ids) > max_len:
            dropped += 1
            continue
        seqs.append(ids)
        masks.append(mask)
        n_targets.append(sum(mask[1:]))  # the first token is never a target
    return seqs, masks, n_targets, dropped


def epoch_batches(lengths, global_batch, seed, epoch):
    """The global batches of one epoch, as lists of example indices: a pure function of (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    perm = perm[:len(perm) // global_batch * global_batch]  # drop the last partial batch
    batches = []
    for start in range(0, len(perm), BUCKET * global_batch):
        chunk = sorted(perm[start:start + BUCKET * global_batch], key=lambda i: lengths[i])
        batches += [chunk[j:j + global_batch] for j in range(0, len(chunk), global_batch)]
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


# -----------------------------------------------------------------------------
# Model and schedule


def build_model(args, device):
    """-> (model in float32 on device, tokenizer, train_state or None) with the window settings of the flags.

    --window=keep (the default) keeps the init's own window; an init without one (scratch, a full-attention model)
    gets the profile's window and sinks: that is the SA -> SWA conversion. The settings used are written back into
    args, so run_config.json records them. A resumed run rebuilds its model from the checkpoint it continues."""
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
    common.apply_window(args, model, args.profile)
    return model, tok, train_state


def make_optimizer(model, args, device):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=str(device).startswith("cuda"))


def budget_steps(budget, tokens_per_example, global_batch):
    """--token_budget: the steps that train about `budget` forward/backward tokens, at least 1."""
    per_step = global_batch * sum(tokens_per_example) / len(tokens_per_example)
    return max(1, math.ceil(budget / per_step))


def lr_at(step, args, total_steps):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = (step - args.warmup) / max(1, total_steps - args.warmup)
    return args.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def heldout_loss(model, seqs, masks, batch_size, pad_id, device, dtype):
    """Mean loss per target token over the held-out examples (batched by length)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        idx, targets = data.pad_batch([seqs[i] for i in rows], [masks[i] for i in rows], pad_id)
        with common.autocast(device, dtype):
            _, loss = model(idx.to(device), targets.to(device), loss_reduction="sum", return_logits=False)
        total += loss.item()
        count += int((targets != -1).sum())
    model.train(was_training)
    return total / max(count, 1)


def held_out_eval(args, model, tok, test_set, eval_seqs, eval_masks, device, dtype, step, logger):
    """The held-out loss and (--eval_limit) greedy accuracy, logged on rank 0 -> the record (None on other ranks)."""
    with parallel.gathered(model):  # FSDP: rank 0's forwards need the whole model there
        return _held_out_eval(args, model, tok, test_set, eval_seqs, eval_masks, device, dtype, step, logger)


def _held_out_eval(args, model, tok, test_set, eval_seqs, eval_masks, device, dtype, step, logger):
    record = None
    if common.is_main():
        record = {"step": step, "eval_loss": heldout_loss(model, eval_seqs, eval_masks, args.batch_size, tok.pad_id,
                                                          device, dtype)}
        if args.eval_limit:
            examples = test_set.examples[:args.eval_limit]
            longest_prompt = max(len(test_set.render_prompt(tok, ex)) for ex in examples)
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
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return record


def save(args, model, tok, optimizer, position, final=False):
    """The checkpoint, with what an exact --resume needs: position (step, epoch, cursor, global batch), optimizer and
    RNG states. Under FSDP sharded, and consolidated at the end (final; parallel.save)."""
    if parallel.is_fsdp(model):
        parallel.save(args.out_dir, model, optimizer, tok, vars(args), {**position, "rng": common.rng_state()}, final)
        return
    if common.is_main():
        train_state = {**position, "optimizer": optimizer.state_dict(), "rng": common.rng_state()}
        checkpoint.save(args.out_dir, model, tok, run_config=vars(args), train_state=train_state)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()


# -----------------------------------------------------------------------------
# The run


def main(argv=None):
    t_start = time.time()
    try:
        # ---- config
        args = parse_args(argv)
        check_args(args)
        device = common.resolve_device(args.device, announce=True)
        common.check_attn_backend(args.attn_backend, device)
        rank, world, device = common.init_distributed(device)
        if common.autocast_dtype(args.dtype, device, num_params=0) == torch.float16:  # checks the name early
            raise ValueError("--dtype=float16 would need loss scaling, which sft.py leaves out; use bfloat16")
        ckpt = common.resume_dir(args)
        common.echo_config(vars(args), "sft.py config")
        common.seed_everything(args.seed)

        # ---- data (before the model, so that a bad --data fails before a long download)
        knobs = {"seed": args.seed}
        if args.data.startswith("synthetic"):
            knobs["local_frac"] = args.local_frac
        train_set = data.load_dataset(args.data, "train", **knobs).with_solutions()  # SFT needs a solution
        test_set = data.load_dataset(args.data, "test", **knobs)

        # ---- model
        model, tok, train_state = build_model(args, device)
        model.grad_checkpointing = args.grad_checkpointing
        dtype = common.autocast_dtype(args.dtype, device, model.num_params())  # weights stay float32
        args.fsdp = parallel.use_fsdp(args.fsdp, world, device, model.num_params())  # run_config.json: what ran
        if args.fsdp and args.compile:
            raise ValueError("--compile with FSDP is not supported yet (untested: the compiled decode step would "
                             "run through the sharded blocks); use one of them")
        if args.token_budget and args.epochs:
            raise ValueError("--token_budget and --epochs both set the run's length; give one")
        if args.max_len > model.config.block_size:
            raise ValueError(f"--max_len={args.max_len} is longer than the model's context "
                             f"({model.config.block_size} positions)")

        # ---- token lists up front (every rank holds all of them, so it can count the global batch's targets)
        seqs, masks, n_targets, dropped = tokenize(train_set, tok, args.max_len)
        eval_seqs, eval_masks, _, _ = tokenize(test_set, tok, args.max_len, limit=args.eval_examples)
        global_batch = args.batch_size * args.grad_accum * world
        steps_per_epoch = len(seqs) // global_batch
        if steps_per_epoch == 0:
            raise ValueError(f"{args.data}: {len(seqs)} training examples fit in --max_len={args.max_len} "
                             f"({dropped} longer ones dropped), fewer than one global batch of {global_batch}; "
                             f"raise --max_len or lower --batch_size/--grad_accum")
        lengths = [len(s) for s in seqs]
        total_steps = args.epochs * steps_per_epoch if args.epochs else args.steps
        if args.token_budget:  # every example is seen equally often, so a step trains this many tokens on average
            total_steps = budget_steps(args.token_budget, [n - 1 for n in lengths], global_batch)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        common.die(str(e), code=2)

    common.print0(f"model: {model.num_params() / 1e6:.2f}M parameters, window={model.config.window} "
                  f"sinks={model.config.sinks} layer_pattern={model.config.layer_pattern} | device {device}, "
                  f"autocast {dtype}, world size {world}" + (" (FSDP)" if args.fsdp else " (DDP)" if world > 1 else ""))
    common.print0(f"data: {args.data}: {len(seqs)} train examples ({dropped} longer than {args.max_len} dropped, "
                  f"{train_set.skip_report()}), {len(eval_seqs)} held-out for the loss | global batch "
                  f"{global_batch}, {steps_per_epoch} steps per epoch, {total_steps} steps")

    if args.fsdp:
        parallel.shard(model, dtype)  # before the optimizer, which then holds this rank's shards only
    optimizer = make_optimizer(model, args, device)
    step, epoch, cursor = 0, 0, 0
    if train_state is not None:
        state = train_state
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
        step, epoch, cursor = state["step"], state["epoch"], state["cursor"]
        common.print0(f"resumed from {ckpt} at step {step} (epoch {epoch}, batch {cursor})")

    raw_model = model
    if args.compile:
        model.compile()  # in place: the state dict keeps its keys
    if world > 1 and not args.fsdp:
        model = DDP(model, device_ids=[device] if str(device).startswith("cuda") else None)
    averaged = world if isinstance(model, DDP) else 1  # DDP averages gradients over ranks, FSDP sums (parallel.py)

    metrics_path = os.path.join(args.out_dir, "metrics.jsonl")
    if common.is_main():
        os.makedirs(args.out_dir, exist_ok=True)
        common.trim_jsonl(metrics_path, step if ckpt is not None else -1)  # drops a line torn by a kill, too
    logger = common.JSONLLogger(metrics_path)

    last_saved = ckpt  # where a good checkpoint is known to be (None until the first save of a fresh run)

    # ---- loop
    last_eval = None
    if args.eval_every and step == 0:
        last_eval = held_out_eval(args, raw_model, tok, test_set, eval_seqs, eval_masks, device, dtype, step, logger)
    batches = epoch_batches(lengths, global_batch, args.seed, epoch)
    pbar = tqdm(total=total_steps, initial=step, disable=not common.is_main(), desc="sft", dynamic_ncols=True)
    model.train()
    while step < total_steps:
        t0 = time.time()
        if cursor == len(batches):
            epoch, cursor = epoch + 1, 0
            batches = epoch_batches(lengths, global_batch, args.seed, epoch)
        batch = batches[cursor]  # (global_batch,) example indices, sorted by length
        lr = lr_at(step, args, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        n_global = sum(n_targets[i] for i in batch)  # the one normalizer for every micro-batch and rank
        loss_sum = torch.zeros((), device=device)
        for micro in range(args.grad_accum):
            start = (micro * world + rank) * args.batch_size
            rows = batch[start:start + args.batch_size]
            idx, targets = data.pad_batch([seqs[i] for i in rows], [masks[i] for i in rows], tok.pad_id)  # (B, T)
            idx, targets = idx.to(device), targets.to(device)
            # DDP all-reduces the gradients only once, after the last micro-batch; FSDP reduce-scatters after every
            # one (deferring would keep the whole model's gradients on every rank)
            if isinstance(model, DDP):
                model.require_backward_grad_sync = micro == args.grad_accum - 1
            with common.autocast(device, dtype):
                _, loss = model(idx, targets, loss_reduction="sum", return_logits=False)
            (loss * averaged / n_global).backward()  # * world turns DDP's average into a sum
            loss_sum += loss.detach()
        mean_loss = common.all_reduce_sum(loss_sum).item() / n_global
        if not math.isfinite(mean_loss):
            pbar.close()
            where = f"the last good checkpoint is in {last_saved}" if last_saved else "no checkpoint was saved yet"
            common.die(f"loss is {mean_loss} at step {step + 1}; {where}")
        grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), args.grad_clip or float("inf")).item()
        if not math.isfinite(grad_norm):
            pbar.close()
            where = f"the last good checkpoint is in {last_saved}" if last_saved else "no checkpoint was saved yet"
            common.die(f"gradient norm is {grad_norm} at step {step + 1}; {where}")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step, cursor = step + 1, cursor + 1

        # ---- log
        dt = time.time() - t0
        tokens = sum(lengths[i] - 1 for i in batch)
        padded = sum(args.batch_size * (lengths[batch[min(s + args.batch_size, global_batch) - 1]] - 1)
                     for s in range(0, global_batch, args.batch_size))
        logger.log({"step": step, "epoch": epoch, "loss": mean_loss, "lr": lr, "grad_norm": grad_norm,
                    "tokens": tokens, "tokens_per_s": tokens / dt, "pad_frac": 1 - tokens / padded})
        pbar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens / dt:.0f}")
        pbar.update(1)

        # ---- eval and save
        if args.eval_every and (step % args.eval_every == 0 or step == total_steps):
            last_eval = held_out_eval(args, raw_model, tok, test_set, eval_seqs, eval_masks, device, dtype, step,
                                      logger)
        if step == total_steps or (args.save_every and step % args.save_every == 0):
            save(args, raw_model, tok, optimizer, {"step": step, "epoch": epoch, "cursor": cursor,
                                                   "global_batch": global_batch}, final=step == total_steps)
            last_saved = args.out_dir
    pbar.close()

    summary = f"done: {step} steps in {time.time() - t_start:.0f}s, checkpoint in {args.out_dir}"
    if last_eval:
        summary += f", held-out loss {last_eval['eval_loss']:.4f}"
        if "accuracy" in last_eval:
            n = min(args.eval_limit, len(test_set))  # --eval_limit may ask for more problems than there are
            summary += f", greedy accuracy {last_eval['accuracy']:.3f} on {n} problems"
    common.print0(summary + f", peak memory {common.peak_memory_mb(device):.0f} MB")
    common.cleanup_distributed()
    return last_eval


if __name__ == "__main__":
    main()
