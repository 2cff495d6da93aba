"""
Past one GPU: FSDP2 (torch.distributed.fsdp.fully_shard) under torchrun, the one place where a model is sharded.

DDP keeps the whole training state on every rank: fp32 weights 4 B + gradients 4 B + AdamW's two moments 8 B = 16
bytes per parameter before activations, 112 GB for a 7B model. FSDP2 keeps 1/world of each on a rank and gathers
one Block's weights at a time for its forward and again for its backward; the root unit (embedding, final norm,
head) is gathered for the whole step. --fsdp=auto picks it when the 16 B/param would not fit a GPU (use_fsdp).

What changes for sft.py and rl.py:
  - the gradients are reduce-scattered in every backward and SUMMED over ranks (FSDP's default averages): both
    scripts already divide their losses by the step's global normalizer, as they do without FSDP;
  - every rank must run the same number of forward/backward passes through the same layers, or the ranks wait for
    each other forever: rl.py pads with zero-weight micro-batches, and its --share_prompt (whose forward runs each
    layer twice when a micro-batch repeats a prompt, and records keys outside the layers' hooks) is off;
  - a forward that is not one training step of every rank (generate's KV-cache steps, which call the blocks
    without the root's forward; rank 0's held-out eval) runs inside gathered(model);
  - checkpoints (save): the sharded weights and optimizer state through torch.distributed.checkpoint (DCP, every
    rank writes its own shard) into out_dir/sharded/, and at the end of the run the consolidated weights as
    model.safetensors on rank 0, so the last checkpoint is the usual self-contained one. convert.load_model reads a
    checkpoint from before the end from its shards, in one process. Sharded saves need a filesystem that every
    node sees (the checkpoint directory is one directory).
Mixed precision: fp32 master weights, the optimizer over the fp32 shards, gradients reduced in fp32; the Blocks'
weights are gathered in bf16 when the run computes in bf16 (half the traffic and memory of the gathered layer).
"""

import contextlib
import os

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_optimizer_state_dict)
from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

import checkpoint
import common

SHARDED = "sharded"  # the DCP directory inside a checkpoint, and train_state["optimizer"] of an FSDP run's
# DDP's training state per parameter: fp32 weight, gradient, AdamW's exp_avg and exp_avg_sq
DDP_BYTES_PER_PARAM = 16
# --fsdp=auto: DDP when its training state takes at most this share of the GPU's memory; the rest is for the
# activations, the KV cache of the rollouts and the allocator
DDP_MEMORY_SHARE = 0.75


def fsdp_flag(v):
    if str(v).lower() == "auto":
        return "auto"
    return common.str2bool(v)


def add_flag(group):
    group.add_argument("--fsdp", type=fsdp_flag, default="auto",
                       help="under torchrun, shard weights, gradients and AdamW state over the ranks (FSDP2) instead "
                            "of keeping all of them on every rank (DDP): true | false | auto (on when world size > 1 "
                            "and DDP's 16 bytes/parameter would not fit in 3/4 of a GPU; off on CPUs)")


def ddp_wrapped(model, world, fsdp, device):
    """What sft.py's step runs: DDP's wrapper (it all-reduces the gradients in the backward) under torchrun without
    FSDP, else the model itself. Let the wrapper go before common.cleanup_distributed: were DDP's C++ reducer the
    process group's last holder, the group would be torn down in its destructor with the GIL held, while a gloo
    thread waits for the GIL to free a tensor (a deadlock, seen in CI)."""
    if world == 1 or fsdp:
        return model
    return DDP(model, device_ids=[device] if str(device).startswith("cuda") else None)


def use_fsdp(flag, world, device, num_params):
    """--fsdp -> whether this run shards its model, printed with the reason when auto decided."""
    if flag != "auto":
        if flag and world == 1:
            common.print0("fsdp: true, but one process: nothing to shard, the model stays whole")
        return flag and world > 1
    if world == 1 or not str(device).startswith("cuda"):
        return False
    need = DDP_BYTES_PER_PARAM * num_params
    free, total = torch.cuda.mem_get_info()
    on = need > DDP_MEMORY_SHARE * total
    common.print0(f"fsdp: auto -> {'on' if on else 'off'} (DDP's weights, gradients and AdamW state take "
                  f"{need / 2**30:.1f} GiB per GPU; this GPU has {total / 2**30:.1f} GiB, {free / 2**30:.1f} free)")
    return on


def shard(model, amp_dtype):
    """FSDP2 over the ranks of the default process group, in place: each Block one unit, the rest (embedding, final
    norm, head) the root's. -> model (now also an FSDPModule; its parameters are DTensor shards)."""
    blocks = MixedPrecisionPolicy(param_dtype=torch.bfloat16 if amp_dtype == torch.bfloat16 else None,
                                  reduce_dtype=torch.float32,
                                  cast_forward_inputs=False)  # the RoPE cos/sin a Block takes stay float32
    # the root's weights are gathered in fp32: a bf16 embedding would start the residual stream in bf16, where
    # autocast (and so DDP) keeps it in fp32
    root = MixedPrecisionPolicy(reduce_dtype=torch.float32, cast_forward_inputs=False)
    for block in model.blocks:
        fully_shard(block, mp_policy=blocks)
    fully_shard(model, mp_policy=root)
    for module in model.modules():
        if isinstance(module, FSDPModule):  # a plain SUM on every backend (gloo has no pre-multiplied sum)
            module.set_gradient_divide_factor(1.0)
            module.set_force_sum_reduction_for_comms(True)
    model.fsdp_amp_dtype = amp_dtype  # gathered's warm-up forward runs under the same autocast as the run
    return model


def is_fsdp(model):
    return isinstance(model, FSDPModule)


def gathered(model):
    """Every weight of an FSDP model gathered on every rank inside the with (in the Blocks' compute dtype), so that
    forwards that do not run through the root's forward (generate's cached steps) or that run on one rank only
    (eval on rank 0) need no collective. Every rank must enter it. A no-op for a model that is not sharded."""
    return _gathered_fsdp(model) if is_fsdp(model) else contextlib.nullcontext()


@contextlib.contextmanager
def _gathered_fsdp(model):
    model.set_reshard_after_forward(False)
    device = model.embed.weight.device
    # one forward through the root: FSDP's lazy start, and every layer's all-gather, kept. Under the run's autocast:
    # in bf16 the Blocks' weights arrive in bf16 while the root's embedding output is fp32
    with torch.no_grad(), common.autocast(device, model.fsdp_amp_dtype):
        model(torch.zeros(1, 1, dtype=torch.long, device=device))
    try:
        yield
    finally:
        # reshard everything, and forget these forwards' order: the backward prefetches from it, and rank 0's
        # extra eval forwards would make it differ between ranks
        model.reset_iter_state()
        model.set_reshard_after_forward(True)
        model.set_reshard_after_forward(False, recurse=False)  # FSDP's own choice for the root


def on_rank0(model, fn):
    """fn() on rank 0 alone, with the whole model there (gathered), while the other ranks wait: sft.py's and rl.py's
    held-out evals. -> fn's result on rank 0, None on the others."""
    result = None
    with gathered(model):
        if common.is_main():
            result = fn()
    if dist.is_initialized():
        dist.barrier()
    return result


def most(n):
    """The largest of an integer over ranks."""
    t = torch.tensor(n, dtype=torch.long)
    if dist.is_initialized():
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)


def save_run(out_dir, model, optimizer, tokenizer, run_config, position, final):
    """A training run's checkpoint (sft.py's and rl.py's), with what an exact --resume needs: position (step, data
    cursor, ...), the optimizer and RNG states; every rank calls it. Under FSDP sharded (save below), else written by
    rank 0 (checkpoint.save, atomic)."""
    if is_fsdp(model):
        save(out_dir, model, optimizer, tokenizer, run_config, {**position, "rng": common.rng_state()}, final)
        return
    if common.is_main():
        train_state = {**position, "optimizer": optimizer.state_dict(), "rng": common.rng_state()}
        checkpoint.save(out_dir, model, tokenizer, run_config=run_config, train_state=train_state)
    if dist.is_initialized():
        dist.barrier()


def save(out_dir, model, optimizer, tokenizer, run_config, train_state, final):
    """An FSDP run's checkpoint; every rank calls it. out_dir/sharded/ (DCP): the optimizer state and, before the
    end of the run, the weights, each rank writing its own shards; at the end (final) the weights consolidated into
    model.safetensors on rank 0 instead. The rest is checkpoint.save's (config, tokenizer, run config,
    train_state with "optimizer": "sharded"), swapped in whole by checkpoint.replace_dir as always."""
    shards = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    weights = {}
    if final:  # collective: every rank sends its shards, rank 0 holds the whole fp32 model in CPU memory
        weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        shards["model"] = get_model_state_dict(model)

    def write_shards(tmp):  # rank 0 calls it inside checkpoint.save with the new directory; the others below
        where = [tmp]
        dist.broadcast_object_list(where, src=0)
        dcp.save(shards, checkpoint_id=os.path.join(where[0], SHARDED))

    if common.is_main():
        checkpoint.save(out_dir, model, tokenizer, run_config=run_config,
                        train_state={**train_state, "optimizer": SHARDED}, weights=weights, extra=write_shards)
    else:
        write_shards(None)
    dist.barrier()


def load_optimizer(model, optimizer, saved, ckpt):
    """Restore the optimizer from a train_state's "optimizer": the state dict itself (a run without FSDP) or
    SHARDED (an FSDP run's, read from ckpt/sharded: each rank its own shards, resharded by DCP if the world size
    changed)."""
    if (saved == SHARDED) != is_fsdp(model):
        how = "under torchrun with --fsdp=true" if saved == SHARDED else "with --fsdp=false"
        raise ValueError(f"--resume: {ckpt} was written by a run {'with' if saved == SHARDED else 'without'} FSDP; "
                         f"continue it {how}")
    if saved != SHARDED:
        common.load_optimizer_state(optimizer, saved)  # checked: a state of another model is one line
        return
    state = {"optimizer": get_optimizer_state_dict(model, optimizer)}
    dcp.load(state, checkpoint_id=os.path.join(ckpt, SHARDED))
    set_optimizer_state_dict(model, optimizer, state["optimizer"])
