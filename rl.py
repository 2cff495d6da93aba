"""
GRPO from scratch: the policy-adaptation stage of SWARR. The windowed model samples its own solutions under its
window, verify.py rewards the final answers, and a group-relative policy gradient teaches it the trajectories
that work under the window.

    python rl.py                        # continues from sft.py's out/sft with its data, prompt format and window
                                        # (the CPU demo: 60 steps, 16 prompts x 8 samples)
    python rl.py --init=out/sft --steps=100 --eval_every=20 --kl_coef=0.01     # + a k3 KL penalty to the SFT model
    python rl.py --resume=true --steps=80                                      # continue out/rl exactly
    python rl.py --resume=out/rl --steps=120 --out_dir=out/rl2     # continue out/rl's run, written to out/rl2
    python rl.py --init=out/sft --teacher=out/sa --out_dir=out/distill  # control: on-policy distillation, no reward
    python rl.py --init=out/sft --algo=rft --out_dir=out/rft            # control: SFT on its own correct samples
    # one GPU: Qwen2.5-0.5B-Instruct with window 256 on GSM8K (after sft.py --init=hf:... --window=256 --data=gsm8k)
    python rl.py --init=out/sft --data=gsm8k --steps=200 --prompts_per_step=32 --group_size=8 \\
        --max_new_tokens=512 --micro_batch_size=16 --lr=2e-6 --eval_every=25 --eval_limit=500 --save_every=50
    # the same on 8 GPUs (every rank samples its own 32/8 = 4 prompts; groups never straddle ranks)
    torchrun --nproc_per_node=8 rl.py --init=out/sft --data=gsm8k --steps=200 --prompts_per_step=32 \\
        --max_new_tokens=512 --micro_batch_size=16 --lr=2e-6 --eval_every=25
    # a model whose weights, gradients and AdamW state (16 B/param) do not fit one GPU: sharded over 8 (parallel.py)
    torchrun --nproc_per_node=8 rl.py --init=out/sft_7b --data=gsm8k --fsdp=true --prompts_per_step=32 \\
        --max_new_tokens=512 --micro_batch_size=16 --lr=1e-6 --eval_every=25

Defaults follow the init (PROFILES below): --data is the data the init checkpoint was trained on (its
run_config.json), the window is the checkpoint's own (--window=keep); the toy demo gets lr 1e-4 and 160 new tokens,
a pretrained model lr 2e-6 and 384 new tokens. Flags given on the command line win.

One step, in the order of the code below:
  1. take --prompts_per_step prompts from the train split (a seeded, resumable data cursor); generate --group_size
     completions each with the KV-cached, windowed model.generate (prefill once, copy the cache G ways), plain
     sampling at --temperature (no top-k/top-p, so the sampled distribution is the one that is scored), one
     torch.Generator per output row seeded from (seed, step, prompt, sample);
  2. reward = verify.reward(completion, gold) (1/0) [+ --format_reward * verify.format_reward] [+ DAPO's overlong
     penalty over the last --overlong_buffer tokens of the budget];
  3. advantage A = r - mean(r) within each group, optionally divided by a std (--scale_rewards):
        group  the group's std, DeepSeekMath's GRPO          batch  the std of the whole batch, "Lite PPO" / TRL
        none   no division, Dr. GRPO (the default: dividing by the std up-weights the prompts that are nearly
               always right or always wrong, Dr. GRPO's "difficulty bias");
  4. loss = -min(rho A, clip(rho, 1-clip_low, 1+clip_high) A) [+ kl_coef * k3(ref || policy)] per completion token,
     rho = pi_theta / pi_old (the first update's own log-probs, see below), summed and divided by ONE normalizer
     fixed for the whole step (all ranks, all micro-batches) before any backward, so the gradient does not depend
     on how the step is split (--loss_agg):
        token     / completion tokens in the step             (DAPO; the default)
        sequence  each sequence's token mean, / sequences      (DeepSeekMath GRPO; short right and long wrong
                                                               answers weigh more per token: a length bias)
        constant  / (sequences x max_new_tokens)              (Dr. GRPO; no length bias at all)
     The log-probs come from the training forward at completion positions only, with the logits divided by T
     exactly as at sampling time;
  5. options: --filter_groups drops groups whose rewards are all equal (they carry no signal, only dilute the
     normalizer); --mask_truncated drops completions that hit the budget; the EOS token is always in the loss (the
     masks come from lengths, never from comparing with pad ids, and the byte tokenizer's pad IS its eos);
  6. AdamW with grad clipping, micro-batches of similar lengths with a prompt's rows together, so that they run its
     forward once (--share_prompt), bf16 autocast (--dtype), --inner_epochs updates;
     completions with zero advantage skip the forward/backward (without KL they add exactly 0 to the gradient);
  7. log every step (tqdm + metrics.jsonl), sample completions every --sample_every steps (samples.jsonl);
  8. greedy accuracy on a fixed held-out set every --eval_every steps (eval.evaluate);
  9. checkpoints (checkpoint.save) with optimizer, RNG, step and data cursor: --resume continues exactly;
 10. data parallel under torchrun: each rank generates and trains on its own whole groups, and the gradients are
     summed once per update (sync_gradients). (No DDP wrapper: after filtering, ranks may run different numbers of
     micro-batches, which DDP's per-backward hooks cannot allow; with the step-wide normalizer a plain sum is exact.)
     With --fsdp (parallel.py) each rank holds a shard of the model: FSDP sums the gradients in every backward,
     generation runs with the weights gathered, and a rank with fewer micro-batches than another runs zero-weight
     ones (padding in accumulate_gradients), because every rank must run the same forward/backward passes.

Simplifications, stated openly:
  - On-policy, --inner_epochs=1 by default: the ratio rho is exactly 1 and the method is REINFORCE with a
    group-mean baseline. The ratio's denominator is the training forward's log-prob from the first update, not the
    sampler's (TRL's way): the two differ by float rounding (bounded by the tests at 1e-4 in fp32 and measured in
    bf16; logged as sampler_logp_diff), which must not act as a policy change. Clipping matters only with
    --inner_epochs > 1, where every later epoch scores the same samples against those first-update log-probs.
  - One model samples and trains (no vLLM), so there is no importance-sampling correction for a separate sampler.
  - Entropy is estimated as the mean of -log p of the sampled tokens (under T): unbiased, and free, because the
    full distribution is never materialized over the vocabulary.
  - The KL term (k3 = pi_ref/pi - log(pi_ref/pi) - 1 >= 0) is added to the loss, not to the reward, against a
    frozen copy of --init that is loaded only when --kl_coef > 0.
  - LR: 1e-4 is the default for the tiny from-scratch CPU demo (3e-4 collapsed; at 5e-5 the demo's greedy answers
    were still in the reference style after 40 steps, at 1e-4 they switch to the local style by step 40). For real
    pretrained models use 1e-6 .. 5e-6 (DeepSeekMath used 1e-6 for 7B); the GPU command above uses 2e-6.
  - Zero-variance groups are dropped, not resampled (DAPO refills the batch with new prompts; we log the share).

On-policy distillation (--teacher=CKPT), the control arm: does RL help because it optimizes the windowed model's own
success, or would imitating the full-attention model on the student's own samples do as well? The student samples
exactly as above; the teacher (loaded frozen, always at FULL attention, whatever window its checkpoint has) scores the
same tokens, and the group advantage of step 3 is replaced by a per-token one,
    A_t = log p_teacher(y_t | prefix) - log p_student(y_t | prefix)    (detached, both under softmax(logits / T)),
so with rho = 1 the gradient is -sum_t A_t grad log p_student(y_t) / normalizer: the per-token reverse KL(student ||
teacher) along the sampled path (GKD; Thinking Machines' "on-policy distillation"). Everything else (clipping,
--loss_agg, the normalizer, micro-batches, logging) is the GRPO machinery above. The reward is still computed and
logged for monitoring but does not enter the loss; no row is skipped for a zero advantage; teacher_kl logs the
per-token estimate mean(log p_student - log p_teacher). Simplification: the advantage is each token's own log-ratio
(no sum over the later tokens, i.e. discount 0, as in the Thinking Machines recipe), so a token is judged only by how
much the teacher likes it, not by where it leads; the student's log-prob in A_t is the training forward's from the
first update (as the ratio's denominator is), and the teacher must share the student's tokenizer.

Rejection-sampling fine-tuning (--algo=rft), the second control: is it the policy gradient, or only training on the
model's own windowed successes? Steps 1-2 are exactly GRPO's (same prompts, G samples, rewards); step 3's advantage
is 1 for a correct completion and 0 otherwise (rft_advantages), and only the correct completions count in the
token normalizer, so with rho = 1 the update is plain SFT (mean NLL per token) on the correct samples: STaR /
expert iteration / RFT. No baseline, no push-down of wrong answers.
"""

import argparse
import math
import os
import time
from functools import lru_cache

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

import checkpoint
import common
import convert
import data
import eval as evaluation
import parallel
import verify
from kernels import auto_backend
from model import attention, padded_mask, window_mask

# ---------------------------------------------------------------------------------------------------------------
# The pure parts of GRPO: advantages, masks, the loss. No model, no I/O: the tests check them by hand.

SCALES = ("group", "batch", "none")
ALGOS = ("grpo", "rft")
LOSS_AGGS = ("token", "sequence", "constant")


def group_advantages(rewards, scale="none", eps=1e-4):
    """rewards (P, G): G completions of each of P prompts -> advantages (P, G).

    A = r - mean over the group, then divided by (std + eps): the group's std (scale="group", DeepSeekMath), the
    whole batch's std (scale="batch", Lite PPO / TRL), or nothing (scale="none", Dr. GRPO). Population std. A group
    whose rewards are all equal gets exactly zero advantage (not a rounding residue divided by eps).
    """
    if scale not in SCALES:
        raise ValueError(f"scale_rewards must be one of {SCALES}, got {scale!r}")
    rewards = rewards.float()
    zero_var = rewards.amax(dim=1, keepdim=True) == rewards.amin(dim=1, keepdim=True)  # (P, 1)
    adv = torch.where(zero_var, 0.0, rewards - rewards.mean(dim=1, keepdim=True))  # (P, G)
    if scale == "group":
        adv = adv / (rewards.std(dim=1, keepdim=True, correction=0) + eps)
    elif scale == "batch":
        adv = adv / (rewards.std(correction=0) + eps)
    return adv


def rft_advantages(correct):
    """--algo=rft: correct (P, G) 1/0 -> advantages (P, G) = 1 on the correct completions, 0 elsewhere. With rho = 1
    and the token normalizer over the correct completions only, the step's gradient is exactly that of SFT's mean
    NLL on the correct samples: rejection-sampling fine-tuning (STaR / expert iteration / RFT), no baseline, no
    negative signal."""
    return (correct > 0.5).float()


def completion_mask(lengths, width):
    """lengths (N,) completion lengths (EOS included when there is one) -> mask (N, width) float, 1 on the first
    lengths[n] tokens. From lengths, never from `tokens != pad_id`: that would drop the EOS whenever pad == eos."""
    return (torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]).float()


def overlong_penalty(lengths, max_new_tokens, buffer):
    """DAPO's soft overlong punishment, lengths (N,) -> (N,) in [-1, 0]: 0 up to max_new_tokens - buffer tokens,
    then linear down to -1 at the budget. buffer=0 turns it off."""
    if buffer <= 0:
        return torch.zeros(lengths.shape)
    over = lengths.float() - (max_new_tokens - buffer)
    return -(over.clamp(min=0) / buffer).clamp(max=1.0)


def distill_advantages(teacher_logp, student_logp, mask):
    """--teacher: the per-token advantage (B, L) = log p_teacher - log p_student of each sampled token, detached, 0
    off the mask. Its mean over the student's own samples estimates minus the reverse KL(student || teacher) per token,
    and -A_t grad log p_student(y_t) is that KL's per-token gradient: push up the tokens the teacher likes more than the
    student does, push down the others. Zero (so no gradient) wherever the two models agree."""
    return (teacher_logp - student_logp).detach() * mask


def normalizer_terms(lengths, loss_agg, max_new_tokens):
    """lengths (N,) of the completions in the update -> this rank's share of the step's loss normalizer, a sum
    over sequences so that summing it over ranks gives the whole step's: tokens | sequences | sequences x budget."""
    if loss_agg not in LOSS_AGGS:
        raise ValueError(f"loss_agg must be one of {LOSS_AGGS}, got {loss_agg!r}")
    if loss_agg == "token":
        return float(lengths.sum())
    if loss_agg == "sequence":
        return float(lengths.numel())
    return float(lengths.numel() * max_new_tokens)


def grpo_loss(logp, old_logp, ref_logp, adv, mask, normalizer, loss_agg="token", clip_low=0.2, clip_high=0.28,
              kl_coef=0.0):
    """One micro-batch's share of the step loss.

    logp (B, L): log-probs of the completion tokens under the policy being trained (with grad);
    old_logp (B, L): the ratio's denominator, these tokens' log-probs from the step's first update (not the
    sampler's, see accumulate_gradients); ref_logp (B, L) under the frozen reference, or
    None when kl_coef == 0; adv (B,): one advantage per completion (GRPO), or (B, L): one per token (--teacher);
    mask (B, L): 1 on completion tokens;
    normalizer: fixed for the whole step (sum of normalizer_terms over every micro-batch and rank).
    -> (loss scalar, stats: sums over this micro-batch's tokens, to be added up and divided by stats["tokens"]).

    Per token: -min(rho A, clip(rho, 1 - clip_low, 1 + clip_high) A) + kl_coef * k3, rho = exp(logp - old_logp).
      token / constant:  loss = sum_{i,t} mask * per_token / normalizer
      sequence:          loss = sum_{i,t} mask * per_token / |o_i| / normalizer
    """
    ratio = torch.exp(logp - old_logp)  # (B, L)
    A = adv[:, None] if adv.dim() == 1 else adv  # (B, 1) broadcast over the tokens, or (B, L) already per token
    surrogate = torch.minimum(ratio * A, ratio.clamp(1 - clip_low, 1 + clip_high) * A)  # (B, L)
    per_token = -surrogate
    if kl_coef:
        log_r = ref_logp - logp  # (B, L) log(pi_ref / pi)
        k3 = torch.exp(log_r) - log_r - 1  # >= 0, zero where pi == pi_ref
        per_token = per_token + kl_coef * k3
    weight = mask
    if loss_agg == "sequence":
        weight = mask / mask.sum(dim=1, keepdim=True).clamp(min=1)  # (B, L): each sequence's token mean
    elif loss_agg not in LOSS_AGGS:
        raise ValueError(f"loss_agg must be one of {LOSS_AGGS}, got {loss_agg!r}")
    loss = (per_token * weight).sum() / normalizer

    with torch.no_grad():
        clipped = ((ratio < 1 - clip_low) & (A < 0)) | ((ratio > 1 + clip_high) & (A > 0))  # the gradient is 0 there
        stats = {"tokens": mask.sum(), "clipped": (clipped * mask).sum(),
                 "kl": (k3 * mask).sum() if kl_coef else torch.zeros(())}
    return loss, stats


# ---------------------------------------------------------------------------------------------------------------
# Training on GRPO groups: one forward of the shared prompt (GPT.forward's prefix)


class SharedPrefix:
    """The plan of a training forward whose rows continue shared prefixes (the G completions of one GRPO prompt).

    The prefixes run through the model first, with `record` as every layer's attention: it keeps their keys and
    values, autograd history included, and attends over them like any training forward. Then, with `attend`, each
    row's queries attend to its own prefix's keys followed by the row's, under window_mask's rule on absolute
    positions, so a row computes what the full sequence prefix + row would, while the prefix tokens' projections and
    MLPs run once per prefix instead of once per row. Backward sums the rows' gradients into their prefix
    (index_select's backward).

    prefix_idx, prefix_positions (P, Tp): left padding negative; rows (B,): the prefix each row continues; positions (B, T): the
    rows' own positions, starting right after their prefix's last real token, right padding negative.
    """

    def __init__(self, prefix_idx, prefix_positions, rows, positions):
        self.prefix_idx, self.prefix_positions, self.rows, self.positions = prefix_idx, prefix_positions, rows, positions
        self.kv = {}  # layer -> the prefixes' (k, v), each (P, Hkv, Tp, D), filled by record

    def run(self, model):
        """The prefixes' pass through model (GPT.hidden_states calls this) -> the rows' attention plan, self.attend."""
        config, prefix_positions, rows = model.config, self.prefix_positions, self.rows
        self.config = config
        positions = self.positions.expand(rows.size(0), -1)
        Tp, T = prefix_positions.size(1), positions.size(1)
        k_pos = torch.cat([prefix_positions[rows], positions], 1)[:, None, None, :]  # (B, 1, 1, Tp + T)
        # a right-pad query sees itself, as in padded_mask, so that no row of the rows' attention is empty
        row_itself = torch.cat([torch.zeros(T, Tp, dtype=torch.bool, device=rows.device),
                                torch.eye(T, dtype=torch.bool, device=rows.device)], 1)  # (T, Tp + T)
        self.masks = {}  # window -> (the prefixes' mask (P, 1, Tp, Tp) or None, the rows' (B, 1, T, Tp + T))
        for w in {config.layer_window(i) for i in range(config.n_layer)}:
            self.masks[w] = (padded_mask(prefix_positions, w, config.sinks),
                             window_mask(positions[:, None, :, None], k_pos, w, config.sinks) | row_itself)
        # each layer keeps the prefixes' keys and values; not checkpointed: a recomputation would record again
        model.run_blocks(self.prefix_idx, prefix_positions, self.record, checkpointing=False)
        return self.attend

    def record(self, layer, q, k, v):
        """The prefixes' pass: q (P, Hq, Tp, D), k and v (P, Hkv, Tp, D) -> (P, Hq, Tp, D), keeping k and v."""
        self.kv[layer] = (k, v)
        w = self.config.layer_window(layer)  # without left padding the mask is None: any backend will do
        return attention(q, k, v, w, self.config.sinks, self.config.attn_backend, mask=self.masks[w][0])

    def attend(self, layer, q, k, v):
        """The rows' pass: q (B, Hq, T, D), k and v (B, Hkv, T, D) -> (B, Hq, T, D), over prefix + own keys."""
        pk, pv = self.kv[layer]
        K = torch.cat([pk.index_select(0, self.rows), k], dim=2)  # (B, Hkv, Tp + T, D)
        V = torch.cat([pv.index_select(0, self.rows), v], dim=2)
        rows_mask = self.masks[self.config.layer_window(layer)][1]
        return F.scaled_dot_product_attention(q, K, V, attn_mask=rows_mask, enable_gqa=q.size(1) != k.size(1))


# ---------------------------------------------------------------------------------------------------------------
# From sampled rows to tensors, and the training forward that rescores them


def collate(rows, pad_id, device, share_prompt=True):
    """rows: dicts {"prompt": ids, "tokens": completion ids, "logprobs": sampling-time log-probs, "adv": float}.

    -> x, the model's inputs {idx (B, T), positions, prefix}; pos (B, L): the column of idx whose output predicts
       completion token j; tokens, sampler_logp (the rows' "logprobs"), mask (B, L); adv (B,). L = the longest
       completion.
    share_prompt=False: row b of idx is its whole sequence prompt + completion[:-1], right-padded (pad ids are never
       read as data: everything that matters is indexed from lengths), positions None (0..T-1), prefix None.
    share_prompt=True: the rows of one prompt (a GRPO group) share it as a prefix, which the model runs through once
       (SharedPrefix): prefix = (each distinct prompt but its last token, left-padded (P, Tp), their positions
       (P, Tp), pads negative; rows (B,): the prefix of each row); row b of idx is the prompt's last token +
       completion[:-1] at positions len(prompt) - 1 onwards, so pos[b, j] = j; its right padding at position -1
       (so that it never counts against the context of a model with learned positions).
    """
    prefixes = {}  # prompt ids -> prefix index, in first-seen order
    for r in rows:
        prefixes.setdefault(tuple(r["prompt"]), len(prefixes))
    cut = [len(r["prompt"]) - 1 if share_prompt else 0 for r in rows]  # prompt tokens that go in the prefix
    B, L = len(rows), max(len(r["tokens"]) for r in rows)
    T = max(len(r["prompt"]) + len(r["tokens"]) - 1 - c for r, c in zip(rows, cut))
    idx = torch.full((B, T), pad_id, dtype=torch.long)
    positions = torch.zeros((B, T), dtype=torch.long)
    pos = torch.zeros((B, L), dtype=torch.long)
    tokens = torch.zeros((B, L), dtype=torch.long)
    sampler_logp = torch.zeros((B, L))
    for b, (r, c) in enumerate(zip(rows, cut)):
        seq = (r["prompt"] + r["tokens"])[c:-1]
        n = len(r["tokens"])
        idx[b, :len(seq)] = torch.tensor(seq)
        positions[b] = c + torch.arange(T)
        positions[b, len(seq):] = -1  # padding: a key no query sees (a pad query sees itself, SharedPrefix)
        pos[b, :n] = torch.arange(len(r["prompt"]) - 1 - c, len(r["prompt"]) - 1 - c + n)
        tokens[b, :n] = torch.tensor(r["tokens"])
        sampler_logp[b, :n] = torch.tensor(r["logprobs"])
    x = {"idx": idx.to(device), "positions": None, "prefix": None}
    Tp = max(cut)
    if Tp > 0:
        p_idx = torch.full((len(prefixes), Tp), pad_id, dtype=torch.long)
        p_pos = torch.arange(Tp).repeat(len(prefixes), 1)
        for prompt, i in prefixes.items():
            p = prompt[:-1]
            if p:
                p_idx[i, Tp - len(p):] = torch.tensor(p)
            p_pos[i] -= Tp - len(p)  # left padding at negative positions
        row_of = torch.tensor([prefixes[tuple(r["prompt"])] for r in rows])
        x["positions"] = positions.to(device)
        x["prefix"] = (p_idx.to(device), p_pos.to(device), row_of.to(device))
    lengths = torch.tensor([len(r["tokens"]) for r in rows])
    adv = torch.tensor([float(r["adv"]) for r in rows])
    to = lambda t: t.to(device)  # noqa: E731
    return x, to(pos), to(tokens), to(sampler_logp), to(completion_mask(lengths, L)), to(adv)


def completion_logprobs(model, x, pos, tokens, mask, temperature):
    """log p(tokens) under softmax(logits / T) at the completion positions -> (B, L), 0 where mask == 0: the negated
    per-token loss of the model's own forward over collate's inputs x, with targets only at the completion positions
    (so the LM head runs only there: the (B, T, V) logits never exist). The logits are divided by the sampling
    temperature, because generate records log-probs under softmax(logits / T) and the ratio must compare like with
    like (scoring at T=1 what was sampled at T=0.7 is a classic silent off-policy bug)."""
    idx = x["idx"]
    keep = mask.bool()
    rows = torch.arange(idx.size(0), device=idx.device)[:, None].expand_as(pos)
    targets = torch.full_like(idx, -1)  # (B, T)
    targets[rows[keep], pos[keep]] = tokens[keep]
    prefix = None if x["prefix"] is None else SharedPrefix(*x["prefix"], x["positions"])
    _, nll = model(idx, targets, loss_reduction="none", return_logits=False, temperature=temperature,
                   positions=x["positions"], prefix=prefix)  # (B, T)
    return torch.where(keep, -nll.gather(1, pos), 0.0)  # (B, L)


def share_prompt_for(cfg, model, rows):
    """Whether these rows (a micro-batch) share their prompts' forward. --share_prompt=auto: on CPUs, when some prompt
    has several rows here (else there is nothing to share, and the prompts' pass, which --grad_checkpointing does not
    cover, only costs memory) and the rows are short enough for the model's own windowed attention to be the dense
    mask anyway (model.auto_backend; past that crossover the chunked path costs O(T x W) and the shared rows'
    attention O(T x (prompt + T))). On GPUs auto keeps the windowed kernels: unmeasured against the shared path."""
    if parallel.is_fsdp(model):  # the passes would differ between ranks (parallel.py)
        return False
    if cfg.share_prompt != "auto":
        return cfg.share_prompt
    device = next(model.parameters()).device
    repeated = len({tuple(r["prompt"]) for r in rows}) < len(rows)
    longest = max(len(r["prompt"]) + len(r["tokens"]) - 1 for r in rows)
    return (device.type == "cpu" and model.config.attn_backend == "auto" and repeated
            and auto_backend(device, model.config.window, longest, torch.float32) == "dense")


def accumulate_gradients(model, rows, normalizer, cfg, pad_id, ref_model=None, amp_dtype=torch.float32,
                         teacher=None, padding=None):
    """Forward and backward over micro-batches of at most cfg.micro_batch_size rows: the rows of one prompt together
    (so that they can share its forward, see share_prompt_for), the prompts by their longest row, longest first
    (similar lengths share a micro-batch, so little padding, and the peak memory comes first). The gradients add up
    to the step loss's because every micro-batch divides by the same step-wide normalizer. -> stats summed over
    micro-batches.

    The ratio's denominator (old log-probs) is the training forward's own, taken in the first update of these rows
    and kept in each row as "old_logp" for the later --inner_epochs (TRL's way): the sampler's log-probs differ from
    it by float rounding (bf16 cached decode vs a training forward, another kernel), and that gap must not count as
    a policy change. stats["logp_diff"] is the sampler-vs-trainer gap, |log p_train - log p_sampler| summed.

    With a teacher (--teacher) the rows' "adv" is not used: each token's advantage is distill_advantages(the teacher's
    log-probs of the same tokens, these old log-probs), so it too stays fixed over the --inner_epochs, and
    stats["teacher_kl"] sums log p_student - log p_teacher over the tokens.

    padding=(count, row), under FSDP: after its own micro-batches this rank runs `row` with zero weight until it has
    run count passes (the most of any rank), so that every rank calls FSDP's collectives equally often."""
    device = next(model.parameters()).device
    length = lambda r: len(r["prompt"]) + len(r["tokens"])  # noqa: E731
    longest = {}
    for r in rows:
        longest[tuple(r["prompt"])] = max(longest.get(tuple(r["prompt"]), 0), length(r))
    order = sorted(rows, key=lambda r: (longest[tuple(r["prompt"])], tuple(r["prompt"]), length(r)), reverse=True)
    total = {"loss": torch.zeros((), device=device)}
    chunks = [order[start:start + cfg.micro_batch_size] for start in range(0, len(order), cfg.micro_batch_size)]
    if padding is not None:
        chunks += [None] * (padding[0] - len(chunks))
    for chunk in chunks:
        weight = 1.0
        if chunk is None:  # a placeholder: the same layers, collectives and ops as a micro-batch, zero gradient
            chunk, weight = [dict(padding[1])], 0.0
        x, pos, tokens, sampler_logp, mask, adv = collate(chunk, pad_id, device, share_prompt_for(cfg, model, chunk))
        with common.autocast(device, amp_dtype):
            logp = completion_logprobs(model, x, pos, tokens, mask, cfg.temperature)  # (B, L)
            ref_logp = None
            if cfg.kl_coef:
                with torch.no_grad():
                    ref_logp = completion_logprobs(ref_model, x, pos, tokens, mask, cfg.temperature)
            if teacher is not None:
                with torch.no_grad():
                    teacher_logp = completion_logprobs(teacher, x, pos, tokens, mask, cfg.temperature)
        if "old_logp" not in chunk[0]:  # the first update of these rows: ratio exactly 1
            old_logp = logp.detach()
            for b, r in enumerate(chunk):
                r["old_logp"] = old_logp[b, :len(r["tokens"])]
        else:
            old_logp = torch.zeros_like(logp)
            for b, r in enumerate(chunk):
                old_logp[b, :len(r["tokens"])] = r["old_logp"]
        if teacher is not None:
            adv = distill_advantages(teacher_logp, old_logp, mask)  # (B, L) in place of the rows' (B,)
        loss, stats = grpo_loss(logp, old_logp, ref_logp, adv, mask, normalizer, cfg.loss_agg, cfg.clip_low,
                                cfg.clip_high, cfg.kl_coef)
        stats["logp_diff"] = ((logp.detach() - sampler_logp).abs() * mask).sum()
        if teacher is not None:
            stats["teacher_kl"] = -adv.sum()
        (loss * weight).backward()
        if weight:
            total["loss"] += loss.detach()
            for k, v in stats.items():
                total[k] = total.get(k, 0) + v.detach().to(device)
    return total


def sync_gradients(model):
    """Sum the gradients over ranks (each rank's loss already carries the global normalizer). FSDP has summed its
    own in the backward."""
    if not dist.is_initialized() or parallel.is_fsdp(model):
        return
    for p in model.parameters():
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)


def gather_rows(x):
    """Concatenate a (n, ...) tensor over ranks in rank order (identity without torchrun)."""
    if not dist.is_initialized():
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts)


def row_seed(seed, step, prompt, sample):
    """A sampling seed per (run seed, step, prompt of the step, sample): a row's completion does not depend on
    batch size, rank count or what else is generated, and a resumed run draws exactly the same samples."""
    return int(np.random.SeedSequence([seed, step, prompt, sample]).generate_state(1)[0])


@lru_cache(maxsize=4)
def epoch_order(n, seed, epoch):
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()


def prompt_indices(cursor, count, n, seed):
    """Dataset indices of prompts cursor .. cursor + count - 1 of an endless stream of seeded epoch shuffles: the
    cursor (prompts consumed so far) is all a checkpoint needs to continue the stream."""
    return [epoch_order(n, seed, k // n)[k % n] for k in range(cursor, cursor + count)]


# ---------------------------------------------------------------------------------------------------------------
# Flags


# Defaults that follow the init (common.init_profile: the toy demo, or a pretrained model). lr: 1e-4 for the tiny
# from-scratch demo (3e-4 collapsed; at 5e-5 its greedy answers were still in the reference style after 40 steps);
# 2e-6 for pretrained models (DeepSeekMath used 1e-6 for 7B; 1e-6..5e-6 is the usual range).
PROFILES = {
    "toy": dict(data="synthetic", lr=1e-4, max_new_tokens=160, micro_batch_size=64, steps=60, eval_limit=200,
                eval_batch_size=100),
    "pretrained": dict(data="gsm8k", lr=2e-6, max_new_tokens=384, micro_batch_size=16, steps=100, eval_limit=100,
                       eval_batch_size=50),
}


def finish_args(cfg):
    """Defaults that depend on --init: the data (and so the prompt format) the init was trained on, from its
    run_config.json, then the profile's defaults for every flag still unset."""
    if cfg.data is None:
        cfg.data = common.read_run_config(cfg.init).get("data")
    common.apply_profile(cfg, PROFILES)


def auto_or_bool(v):
    if str(v).lower() == "auto":
        return "auto"
    try:
        return common.str2bool(v)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {v!r}") from None


def get_parser():
    p = common.OneLineErrorParser(description="GRPO on a (windowed) model: see the module docstring.",
                                  finish=finish_args)
    g = p.add_argument_group("model")
    g.add_argument("--init", default="out/sft", help="checkpoint dir (from sft.py), hf:ORG/NAME, hf:/dir or gguf:/file")
    common.add_window_flags(g, "the init checkpoint's own (what sft.py trained under)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    g.add_argument("--dtype", default="auto", help="autocast (compute) dtype, weights and optimizer stay fp32: auto "
                   "(bf16 on GPUs and, for 20M+ parameter models, on CPUs with native bf16; else fp32) | float32 | "
                   "bfloat16")
    g.add_argument("--grad_checkpointing", type=common.str2bool, default=False, help="recompute blocks in backward")
    g.add_argument("--compile", type=common.str2bool, default=False, help="torch.compile the policy's training "
                   "forward and its decode step (model.compile)")
    parallel.add_flag(g)
    g = p.add_argument_group("data and sampling")
    g.add_argument("--data", default=None, help="synthetic[:task][?knobs] | gsm8k | math | jsonl:/path/{split}.jsonl. "
                   "Default: the data (and so the prompt format) the init checkpoint was trained on, from its "
                   "run_config.json; else " + common.profile_help(PROFILES, "data") + ". Plain 'synthetic' takes "
                   "the knobs sft.py used")
    g.add_argument("--prompts_per_step", type=int, default=16, help="prompts per step, all ranks together")
    g.add_argument("--group_size", type=int, default=8, help="G: completions per prompt")
    g.add_argument("--max_new_tokens", type=int, default=None, help="generation budget per completion (the "
                   "synthetic local-style trace is ~140 tokens). Default: " + common.profile_help(PROFILES,
                                                                                                   "max_new_tokens"))
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; scoring uses the same")
    g = p.add_argument_group("reward and advantage")
    g.add_argument("--format_reward", type=float, default=0.0, help="coefficient of verify.format_reward (0 = off)")
    g.add_argument("--overlong_buffer", type=int, default=0, help="DAPO: penalty from 0 to -1 over the last N "
                   "tokens of the budget (0 = off)")
    g.add_argument("--scale_rewards", default="none", choices=SCALES, help="divide r - mean by the group std "
                   "(DeepSeekMath), the batch std (Lite PPO) or nothing (Dr. GRPO)")
    g.add_argument("--filter_groups", type=common.str2bool, default=False, help="drop zero-variance groups")
    g.add_argument("--mask_truncated", type=common.str2bool, default=False, help="drop completions without EOS")
    g.add_argument("--algo", default="grpo", choices=ALGOS, help="grpo | rft: the control of rejection-sampling "
                   "fine-tuning (sample exactly as GRPO does, keep the correct completions, plain SFT loss on them)")
    g.add_argument("--teacher", default=None, help="on-policy distillation instead of GRPO: the teacher's checkpoint "
                   "dir | hf: | gguf:, run frozen at FULL attention (it must share the student's tokenizer); the "
                   "advantage becomes log p_teacher - log p_student per token and the reward is only logged")
    g = p.add_argument_group("loss and optimizer")
    g.add_argument("--loss_agg", default="token", choices=LOSS_AGGS, help="token (DAPO) | sequence (GRPO) | "
                   "constant (Dr. GRPO)")
    g.add_argument("--clip_low", type=float, default=0.2, help="PPO clip: rho >= 1 - clip_low")
    g.add_argument("--clip_high", type=float, default=0.28, help="PPO clip: rho <= 1 + clip_high (DAPO's clip-higher)")
    g.add_argument("--inner_epochs", type=int, default=1, help="updates per batch of samples (1: on-policy)")
    g.add_argument("--kl_coef", type=float, default=0.0, help="k3 KL to the frozen --init model (0: none loaded)")
    g.add_argument("--lr", type=float, default=None, help="AdamW LR. Default: " + common.profile_help(PROFILES, "lr"))
    g.add_argument("--warmup", type=int, default=0, help="linear LR warmup steps")
    g.add_argument("--weight_decay", type=float, default=0.0, help="AdamW weight decay")
    g.add_argument("--grad_clip", type=float, default=1.0, help="max gradient norm (0 = no clipping)")
    g.add_argument("--micro_batch_size", type=int, default=None, help="rows per forward/backward. Default: "
                   + common.profile_help(PROFILES, "micro_batch_size"))
    g.add_argument("--share_prompt", type=auto_or_bool, default="auto", help="true: the rows of a prompt in a "
                   "micro-batch share its forward (computed once, not G times; the same log-probs up to float "
                   "rounding; attention O(T x (prompt + T)) per row). false: every row its whole sequence, through "
                   "the windowed attention kernels. auto: true on CPUs for rows short enough for the dense mask "
                   "(training 1.4-1.7x faster, bench/RESULTS.md), false on GPUs and for long rows (share_prompt_for)")
    g = p.add_argument_group("run")
    g.add_argument("--steps", type=int, default=None, help="total GRPO steps (a resumed run counts from 0 too). "
                   "Default: " + common.profile_help(PROFILES, "steps"))
    g.add_argument("--seed", type=int, default=0, help="data order and sampling seed")
    g.add_argument("--out_dir", default="out/rl", help="checkpoint, metrics.jsonl, samples.jsonl")
    g.add_argument("--save_every", type=int, default=0, help="checkpoint every N steps (0: only at the end)")
    g.add_argument("--resume", type=common.resume_flag, default=None,
                   help="true: continue the run in --out_dir from its checkpoint; or a checkpoint dir to continue "
                        "from (writing to --out_dir); false: start fresh")
    g.add_argument("--eval_every", type=int, default=20, help="greedy held-out accuracy every N steps, at step 0 and "
                   "at the end (0 = never)")
    g.add_argument("--eval_limit", type=int, default=None, help="size of the fixed held-out set. Default: "
                   + common.profile_help(PROFILES, "eval_limit"))
    g.add_argument("--eval_batch_size", type=int, default=None, help="prompts per eval generate call. Default: "
                   + common.profile_help(PROFILES, "eval_batch_size"))
    g.add_argument("--sample_every", type=int, default=10, help="print a few completions every N steps (0 = never)")
    return p


RANGES = {"prompts_per_step": (1, 2**20), "max_new_tokens": (1, 2**20), "temperature": (0, 100, "open"),
          "format_reward": (0, 100), "overlong_buffer": (0, 2**20), "clip_low": (0, 0.999), "clip_high": (0, 100),
          "inner_epochs": (1, 1000), "kl_coef": (0, 1000), "lr": (0, 1, "open"), "warmup": (0, common.BIG),
          "weight_decay": (0, 10), "grad_clip": (0, 1e6), "micro_batch_size": (1, 2**20), "steps": (1, common.BIG),
          "seed": (0, 2**32 - 1), "save_every": (0, common.BIG), "eval_every": (0, common.BIG),
          "eval_limit": (0, common.BIG), "eval_batch_size": (1, 2**20), "sample_every": (0, common.BIG)}


def check_config(cfg, world):
    if cfg.group_size < 2 and not cfg.teacher:
        raise ValueError("--group_size must be >= 2: the group mean is the baseline")
    common.check_ranges(cfg, RANGES | {"group_size": (1 if cfg.teacher else 2, 2**16)})
    if cfg.algo == "rft" and (cfg.teacher or cfg.kl_coef or cfg.inner_epochs != 1 or cfg.loss_agg != "token"
                              or cfg.filter_groups):
        raise ValueError("--algo=rft is plain SFT on the correct samples: it takes no --teacher, --kl_coef or "
                         "--filter_groups (which would drop the groups where every sample is right), "
                         "--inner_epochs=1 and --loss_agg=token")
    if cfg.teacher and cfg.filter_groups:
        raise ValueError("--filter_groups drops groups by their rewards, which do not enter the loss with --teacher")
    if cfg.prompts_per_step % world:
        raise ValueError(f"--prompts_per_step={cfg.prompts_per_step} must be a multiple of the {world} ranks "
                         f"(each rank takes whole groups)")
    if cfg.overlong_buffer < 0 or cfg.overlong_buffer > cfg.max_new_tokens:
        raise ValueError(f"--overlong_buffer must be in 0..--max_new_tokens, got {cfg.overlong_buffer}")


def save(cfg, model, tok, optimizer, step, cursor, final=False):
    """The checkpoint, with what an exact --resume needs: optimizer, RNG states, step and data cursor. Under FSDP
    sharded, and consolidated at the end (final; parallel.save)."""
    if cfg.out_dir and parallel.is_fsdp(model):
        parallel.save(cfg.out_dir, model, optimizer, tok, vars(cfg),
                      {"step": step, "cursor": cursor, "rng": common.rng_state()}, final)
        return
    if cfg.out_dir and common.is_main():
        train_state = {"step": step, "cursor": cursor, "optimizer": optimizer.state_dict(), "rng": common.rng_state()}
        checkpoint.save(cfg.out_dir, model, tok, run_config=vars(cfg), train_state=train_state)
    if dist.is_initialized():
        dist.barrier()


def held_out_eval(cfg, model, tok, eval_set, amp_dtype, step, metrics_log):
    """Greedy accuracy on --eval_limit held-out problems (eval.evaluate, rank 0) -> {"eval_accuracy": ...}."""
    if eval_set is None or not cfg.eval_every:
        return {}
    result = {}
    with parallel.gathered(model):  # FSDP: rank 0's generate needs the whole model there
        if common.is_main():
            with common.autocast(next(model.parameters()).device, amp_dtype):
                summary, _ = evaluation.evaluate(model, tok, eval_set, limit=cfg.eval_limit,
                                                 batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens)
    if common.is_main():
        result = {f"eval_{k}": v for k, v in summary.items() if isinstance(v, (int, float))}
        common.print0(f"eval @ step {step}: accuracy {summary['accuracy']:.3f} on {summary['n']} held-out "
                      f"problems, mean length {summary['mean_len']:.1f}"
                      + (f", local share {summary['local_share']:.2f}" if "local_share" in summary else ""))
        if metrics_log:
            metrics_log.log({"step": step, **result})
    if dist.is_initialized():
        dist.barrier()
    return result


# ---------------------------------------------------------------------------------------------------------------
# The training loop


def train(cfg, model, tok, train_set, eval_set=None, reward_fn=None, state=None, ref_model=None, teacher=None):
    """GRPO for cfg.steps steps. state: a checkpoint's train_state to resume from. reward_fn(text, gold) -> 0/1
    (default verify.reward). teacher: a frozen model for on-policy distillation (--teacher, see load_teacher).
    Returns the list of per-step metric dicts (rank 0's view, identical on every rank)."""
    reward_fn = reward_fn or verify.reward
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    check_config(cfg, world)
    device = next(model.parameters()).device
    amp_dtype = common.autocast_dtype(cfg.dtype, device, sum(p.numel() for p in model.parameters()))
    styled = train_set.task is not None  # a synthetic task, whose solutions come in two styles (the local share)
    model.grad_checkpointing = cfg.grad_checkpointing
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = state or {}
    start_step, cursor = int(state.get("step", 0)), int(state.get("cursor", 0))
    if "optimizer" in state:
        parallel.load_optimizer(model, optimizer, state["optimizer"], common.resume_dir(cfg))
    if "rng" in state:
        common.set_rng_state(state["rng"])
    out_dir = cfg.out_dir
    if out_dir and common.is_main():
        for name in ("metrics.jsonl", "samples.jsonl"):
            common.trim_jsonl(os.path.join(out_dir, name), start_step if state else -1)
    metrics_log = common.JSONLLogger(os.path.join(out_dir, "metrics.jsonl")) if out_dir else None
    samples_log = common.JSONLLogger(os.path.join(out_dir, "samples.jsonl")) if out_dir else None
    P, G = cfg.prompts_per_step, cfg.group_size
    P_local = P // world
    n_train = len(train_set.examples)
    if n_train == 0:
        raise ValueError("the train split is empty")


    history = []
    last_saved = start_step if state else None
    if start_step == 0:
        held_out_eval(cfg, model, tok, eval_set, amp_dtype, 0, metrics_log)
    bar = tqdm(range(start_step, cfg.steps), disable=not common.is_main(), desc="rl", dynamic_ncols=True)
    for step in bar:
        t_step = time.perf_counter()
        if str(device).startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()

        # ---- 1. this rank's prompts (whole groups), G samples each
        indices = prompt_indices(cursor, P, n_train, cfg.seed)[rank * P_local:(rank + 1) * P_local]
        cursor += P
        examples = [train_set.examples[i] for i in indices]
        prompts = [train_set.render_prompt(tok, ex) for ex in examples]  # P_local lists of ids
        context = min(m.config.block_size for m in (model, teacher) if m is not None)
        if max(map(len, prompts)) + cfg.max_new_tokens > context:
            raise ValueError(f"a prompt of {max(map(len, prompts))} tokens + --max_new_tokens={cfg.max_new_tokens} "
                             f"exceeds the model's context of {context}; lower --max_new_tokens")
        generators = [torch.Generator(device=device).manual_seed(row_seed(cfg.seed, step, rank * P_local + i, j))
                      for i in range(P_local) for j in range(G)]
        model.eval()
        t0 = time.perf_counter()
        with parallel.gathered(model), common.autocast(device, amp_dtype):
            outs = model.generate(prompts, cfg.max_new_tokens, temperature=cfg.temperature, num_samples=G,
                                  eos_ids=tok.eos_ids, generator=generators)  # P_local * G dicts, prompt-major
        gen_time = time.perf_counter() - t0

        # ---- 2. rewards, per row: decode without the EOS, check the answer
        texts = [tok.decode(o["tokens"][:-1] if o["finished"] else o["tokens"]) for o in outs]
        golds = [ex["answer"] for ex in examples for _ in range(G)]
        correct = torch.tensor([float(reward_fn(t, g)) for t, g in zip(texts, golds)])  # (N_local,)
        lengths = torch.tensor([len(o["tokens"]) for o in outs])  # (N_local,)
        finished = torch.tensor([float(o["finished"]) for o in outs])
        reward = correct.clone()
        if cfg.format_reward:
            reward += cfg.format_reward * torch.tensor([float(verify.format_reward(t)) for t in texts])
        reward += overlong_penalty(lengths, cfg.max_new_tokens, cfg.overlong_buffer)
        local = torch.tensor([float(train_set.style_of(t) == "local") for t in texts])
        neg_logp = torch.tensor([-sum(o["logprobs"]) for o in outs])  # (N_local,) for the entropy estimate
        per_row = torch.stack([reward, correct, lengths.float(), finished, local, neg_logp], dim=1)  # (N_local, 6)
        everyone = gather_rows(per_row.to(device)).cpu()  # (P * G, 6): all ranks, prompt-major
        all_reward, all_correct, all_len, all_finished, all_local, all_neg_logp = everyone.unbind(1)

        # ---- 3. advantages per group, over the whole step's groups (with --teacher they are only logged: the
        # advantage is per token, from the teacher, inside accumulate_gradients)
        rewards = all_reward.view(P, G)
        if cfg.algo == "rft":
            adv = rft_advantages(all_correct.view(P, G))  # (P, G): 1 on the correct samples
        else:
            adv = group_advantages(rewards, cfg.scale_rewards)  # (P, G)
        zero_var = (rewards.amax(1) == rewards.amin(1))  # (P,)
        my_adv = adv[rank * P_local:(rank + 1) * P_local].flatten()  # (N_local,)
        my_zero_var = zero_var[rank * P_local:(rank + 1) * P_local].repeat_interleave(G)  # (N_local,)

        # ---- 4.-5. which rows enter the update, and the step-wide normalizer fixed before any micro-batch
        keep = torch.ones(len(outs), dtype=torch.bool)
        if cfg.filter_groups:
            keep &= ~my_zero_var
        if cfg.mask_truncated:
            keep &= finished.bool()
        if cfg.algo == "rft":  # only the kept (correct) samples count in the SFT mean
            keep &= my_adv > 0
        normalizer = common.all_reduce_sum(torch.tensor(
            normalizer_terms(lengths[keep], cfg.loss_agg, cfg.max_new_tokens), device=device, dtype=torch.float64))
        normalizer = float(normalizer)
        # A row with zero advantage adds exactly nothing to the loss or its gradient unless there is a KL term, so
        # it is counted in the normalizer above but not run through the model (a free saving: early in RL most
        # groups are all wrong, later many are all right). With a teacher every row has its own per-token signal.
        rows = [{"prompt": prompts[n // G], "tokens": outs[n]["tokens"], "logprobs": outs[n]["logprobs"],
                 "adv": float(my_adv[n])} for n in range(len(outs))
                if keep[n] and (my_adv[n] != 0 or cfg.kl_coef or teacher is not None)]
        padding = None
        if parallel.is_fsdp(model):  # as many passes as the busiest rank, the extra ones on a row of zero weight
            filler = {"prompt": prompts[0], "tokens": prompts[0][-1:], "logprobs": [0.0], "adv": 0.0}
            padding = parallel.most(math.ceil(len(rows) / cfg.micro_batch_size)), filler

        # ---- 6. the update(s)
        model.train()
        lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else cfg.lr
        for group in optimizer.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        grad_norm, loss_value, epoch_stats = float("nan"), float("nan"), []
        for epoch in range(cfg.inner_epochs if normalizer > 0 else 0):
            optimizer.zero_grad(set_to_none=True)
            stats = (accumulate_gradients(model, rows, normalizer, cfg, tok.pad_id, ref_model, amp_dtype, teacher,
                                          padding) if rows or padding else {"loss": torch.zeros((), device=device)})
            sync_gradients(model)
            keys = ["loss", "tokens", "clipped", "logp_diff", "kl", "teacher_kl"]
            reduced = common.all_reduce_sum(torch.stack([torch.as_tensor(stats.get(k, 0.0), device=device,
                                                                         dtype=torch.float32) for k in keys]))
            epoch_stats.append(dict(zip(keys, reduced.tolist())))
            norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
            if not math.isfinite(epoch_stats[-1]["loss"]) or not torch.isfinite(norm):
                where = f"the last good checkpoint is {out_dir} (step {last_saved})" if last_saved is not None else \
                    "no checkpoint was written by this run"
                common.die(f"loss or gradient is NaN/inf at step {step + 1} (inner epoch {epoch}); stopping, "
                           f"{where}; try a lower --lr")
            if epoch == 0:
                loss_value, grad_norm = epoch_stats[0]["loss"], float(norm)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        train_time = time.perf_counter() - t0
        train_tokens = sum(len(r["prompt"]) + len(r["tokens"]) - 1 for r in rows) * len(epoch_stats)

        # ---- 7. log
        correct_mask = all_correct > 0.5
        tokens_all = max(1.0, float(all_len.sum()))
        clip_tokens = sum(s["clipped"] for s in epoch_stats)
        seen_tokens = max(1.0, sum(s["tokens"] for s in epoch_stats))
        timing = torch.tensor([gen_time, train_time, float(lengths.sum()), float(train_tokens)], device=device)
        gen_total, train_total, gen_tok, train_tok = common.all_reduce_sum(timing.clone()).tolist()
        m = {"step": step + 1,
             "reward": float(all_reward.mean()), "accuracy": float(all_correct.mean()),
             "frac_zero_var": float(zero_var.float().mean()),
             "len": float(all_len.mean()),
             "len_correct": float(all_len[correct_mask].mean()) if correct_mask.any() else None,
             "len_wrong": float(all_len[~correct_mask].mean()) if (~correct_mask).any() else None,
             "trunc_rate": float(1 - all_finished.mean()),
             "entropy": float(all_neg_logp.sum()) / tokens_all,
             "loss": loss_value, "grad_norm": grad_norm, "lr": lr,
             "rows_in_update": int(common.all_reduce_sum(keep.sum().to(device))),
             "rows_trained": int(common.all_reduce_sum(torch.tensor(len(rows), device=device))),
             "train_tokens": int(train_tok),  # forward/backward tokens of the update(s), prompts included
             # mean |log p_train - log p_sampler| over the first epoch's tokens: ~1e-8 in fp32, larger in bf16
             "sampler_logp_diff": epoch_stats[0]["logp_diff"] / epoch_stats[0]["tokens"]
             if epoch_stats and epoch_stats[0]["tokens"] else None,
             "gen_tok_s": gen_tok / max(gen_total / world, 1e-9),
             "train_tok_s": train_tok / max(train_total / world, 1e-9),
             "gen_s": gen_time, "train_s": train_time,
             "s_per_step": time.perf_counter() - t_step,
             "peak_mem_mb": common.peak_memory_mb(device)}
        if cfg.kl_coef:
            m["kl"] = sum(s["kl"] for s in epoch_stats) / seen_tokens
        if teacher is not None:  # per token, on the fresh samples (later epochs repeat the same fixed advantages)
            m["teacher_kl"] = epoch_stats[0]["teacher_kl"] / epoch_stats[0]["tokens"] \
                if epoch_stats and epoch_stats[0]["tokens"] else None
        if cfg.inner_epochs > 1:
            m["clip_frac"] = clip_tokens / seen_tokens
        if styled:
            m["local_share"] = float(all_local.mean())
        if normalizer == 0:
            m["skipped"] = True  # every row was filtered out: no update this step
        bar.set_postfix(reward=f"{m['reward']:.3f}", acc=f"{m['accuracy']:.2f}", len=f"{m['len']:.0f}",
                        zvar=f"{m['frac_zero_var']:.2f}", s=f"{m['s_per_step']:.1f}", refresh=False)
        if cfg.sample_every and (step + 1) % cfg.sample_every == 0 and common.is_main():
            for n in range(min(G, 4)):
                rec = {"step": step + 1, "question": examples[0]["question"], "gold": golds[n],
                       "completion": texts[n], "reward": float(reward[n]), "correct": bool(correct[n] > 0.5),
                       "finished": bool(finished[n])}
                tqdm.write(f"[step {step + 1} sample {n}] reward {rec['reward']:.2f} | {rec['question']!r} -> "
                           f"{rec['completion'][:300]!r}")
                if samples_log:
                    samples_log.log(rec)

        # ---- 8.-9. eval and checkpoint
        last = step + 1 == cfg.steps
        if cfg.eval_every and ((step + 1) % cfg.eval_every == 0 or last):
            m.update(held_out_eval(cfg, model, tok, eval_set, amp_dtype, step + 1, metrics_log))
        if metrics_log:
            metrics_log.log({k: v for k, v in m.items() if not k.startswith("eval_")})
        history.append(m)
        if (cfg.save_every and (step + 1) % cfg.save_every == 0) or last:
            save(cfg, model, tok, optimizer, step + 1, cursor, final=last)
            last_saved = step + 1
    bar.close()
    return history


# ---------------------------------------------------------------------------------------------------------------
# Entry point: resolve flags, load the policy (and the reference), the data, then train


def resolve_data_name(name, init_config):
    """Plain --data=synthetic means 'the synthetic task SFT trained on': its knobs (digits, steps, ...) come from the
    init checkpoint's run_config.json, so RL's prompts are drawn from the same distribution."""
    sft_data = (init_config or {}).get("data")
    if not isinstance(sft_data, str) or "?" in name:
        return name
    base = lambda n: {"synthetic": "synthetic:lagged"}.get(n.partition("?")[0], n.partition("?")[0])  # noqa: E731
    return sft_data if base(sft_data) == base(name) else name


def load_policy(cfg, device):
    """-> (model fp32 on device, tokenizer, train_state or None). From --out_dir with --resume, else from --init."""
    ckpt = common.resume_dir(cfg)
    if ckpt is not None:
        model, tok, _, train_state = checkpoint.load(ckpt, device=device, dtype="float32",
                                                     state_keys=("step", "cursor", "optimizer", "rng"))
        if not train_state:
            raise ValueError(f"--resume: {ckpt} has no training state (optimizer, step) to continue from")
    else:
        if not cfg.init.startswith(("hf:", "gguf:")) and not os.path.isdir(cfg.init):
            raise FileNotFoundError(f"no checkpoint at {cfg.init}: run python sft.py first or pass --init=...")
        (model, tok), train_state = convert.load_model(cfg.init, device=device, dtype="float32"), None
    common.apply_window(cfg, model, cfg.profile)  # the reference model (--kl_coef) loads with these values
    return model, tok, train_state


def load_teacher(init, device, student, student_tok=None):
    """--teacher: the frozen teacher of on-policy distillation, fp32 on device, always at FULL attention
    (window=None, whatever its checkpoint says): the control asks what imitating the SA model gives. Its tokenizer
    must be the student's (student_tok, which main always passes): the same ids meaning the same tokens."""
    if not init.startswith(("hf:", "gguf:")) and not os.path.isdir(init):
        raise FileNotFoundError(f"--teacher: no checkpoint at {init}")
    teacher, teacher_tok = convert.load_model(init, window=None, device=device, dtype="float32")
    if teacher.config.vocab_size != student.config.vocab_size:
        raise ValueError(f"--teacher: vocabulary of {teacher.config.vocab_size} tokens, the student's has "
                         f"{student.config.vocab_size}; the teacher must share the student's tokenizer")
    if student_tok is not None and teacher_tok.fingerprint() != student_tok.fingerprint():  # not only the size
        raise ValueError(f"--teacher: {init} has another tokenizer than the student (the same number of ids, but "
                         f"not the same tokens); the teacher must share the student's tokenizer")
    return teacher.eval().requires_grad_(False)


def parse_args(argv):
    return common.parse_resumable(get_parser(), argv, "rl.py")


def main(argv=None):
    try:
        cfg = parse_args(argv)
        device = common.resolve_device(cfg.device, announce=True)
        rank, world, device = common.init_distributed(device)
        if common.autocast_dtype(cfg.dtype, device, num_params=0) == torch.float16:  # checks the name early
            raise ValueError("--dtype=float16 would need loss scaling, which rl.py leaves out; use bfloat16")
        common.seed_everything(cfg.seed)
        init_config = common.read_run_config(cfg.init)
        cfg.data = resolve_data_name(cfg.data, init_config)
        common.echo_config(vars(cfg), "rl config")
        check_config(cfg, world)
        if cfg.out_dir:
            checkpoint.check_out_dir(cfg.out_dir, inputs=[cfg.init, cfg.teacher])
        model, tok, train_state = load_policy(cfg, device)
        common.check_attn_backend(model.config.attn_backend, device, what="the checkpoint's attn_backend")
        cfg.fsdp = parallel.use_fsdp(cfg.fsdp, world, device, model.num_params())  # run_config.json: what ran
        if cfg.fsdp:
            if cfg.compile:
                raise ValueError("--compile with FSDP is not supported yet (untested: the compiled decode step "
                                 "would run through the sharded blocks); use one of them")
            if cfg.share_prompt is True:
                raise ValueError("--share_prompt=true does not go with FSDP (ranks would run different passes "
                                 "through the layers); use --share_prompt=auto or false")
            parallel.shard(model, common.autocast_dtype(cfg.dtype, device, model.num_params()))
        if cfg.compile:
            model.compile()
        ref_model = None
        if cfg.kl_coef:
            ref_model, _ = convert.load_model(cfg.init, device=device, dtype="float32", **common.window_overrides(cfg))
            ref_model.eval().requires_grad_(False)
        teacher = load_teacher(cfg.teacher, device, model, tok) if cfg.teacher else None
        train_set = data.load_dataset(cfg.data, "train", seed=cfg.seed)
        eval_set = data.load_dataset(cfg.data, "test", seed=cfg.seed) if cfg.eval_every else None
        w = model.config
        common.print0(f"policy: {model.num_params() / 1e6:.2f}M parameters, window={w.window} sinks={w.sinks} "
                      f"layer_pattern={w.layer_pattern}; {len(train_set)} train prompts ({train_set.skip_report()}); "
                      f"{world} rank(s) on {device}")
        history = train(cfg, model, tok, train_set, eval_set, state=train_state, ref_model=ref_model,
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
                      + f"; checkpoint in {cfg.out_dir}")
    common.cleanup_distributed()
    return history


if __name__ == "__main__":
    main()
