"""
The GRPO step of rl.py, one function per step of rl.py's docstring, in the order its train() calls them (GRPO-Zero
splits its code the same way: the algorithm in grpo.py, the loop and its plumbing in train.py):
  1. prompt_indices, row_seed, then rollout (generate; verify.reward; overlong_penalty), gather_scores
  2. group_advantages (the controls swap this step: controls.py)
  3. select_rows, normalizer_terms
  4. update_policy -> accumulate_gradients -> collate, completion_logprobs (SharedPrefix), grpo_loss; sync_gradients
  5. step_metrics, log_samples

Simplifications, stated openly:
  - On-policy, --inner_epochs=1: rho is exactly 1, so this is REINFORCE with a group-mean baseline. rho's
    denominator is the first update's training forward, not the sampler (TRL's way): their float-rounding gap
    (logged as sampler_logp_diff) must not act as a policy change. Clipping matters only with --inner_epochs > 1.
  - One model samples and trains (no vLLM), so there is no importance-sampling correction.
  - Entropy is the mean -log p of the sampled tokens; the k3 KL is added to the loss, not to the reward.
  - Zero-variance groups are dropped, not resampled (DAPO); rows with zero advantage skip the forward.
  - No DDP wrapper: after filtering, ranks may run different numbers of micro-batches, and with the step-wide
    normalizer one gradient sum per update is exact. Under FSDP, ranks pad with zero-weight micro-batches.
  - The controls, --teacher and --algo=rft, change only step 2's advantage (controls.py).
"""
import math
import time
from functools import lru_cache

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

import common
import controls
import parallel
import verify
from kernels import auto_backend
from model import attention, check_context, padded_mask, window_mask

SCALES = ("group", "batch", "none")
LOSS_AGGS = ("token", "sequence", "constant")

# ---------------------------------------------------------------------------------------------------------------
# 1. Rollout: prompts, G samples each under the window, rewards


def rollout(args, model, tok, train_set, indices, seeds, reward_fn, amp_dtype, context):
    """train_set's examples at indices (this rank's), --group_size samples of each, their rewards. seeds: one per
    sample (row_seed); context: the longest sequence the models can score.
    -> prompts (P_local id lists); samples: model.generate's P_local x G dicts, prompt-major (tokens, logprobs,
    finished), each with its decoded "text" and "gold" answer; scores {name: (N_local,)}; generation seconds."""
    device = next(model.parameters()).device
    examples = [train_set.examples[i] for i in indices]
    prompts = [train_set.render_prompt(tok, ex) for ex in examples]  # P_local lists of ids
    longest = max(map(len, prompts))
    check_context(longest + args.max_new_tokens, context, f"a prompt of {longest} tokens + "
                  f"--max_new_tokens={args.max_new_tokens}", fix="lower --max_new_tokens")
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    model.eval()
    t0 = time.perf_counter()
    with parallel.gathered(model), common.autocast(device, amp_dtype):
        samples = model.generate(prompts, args.max_new_tokens, temperature=args.temperature,
                                 num_samples=args.group_size, eos_ids=tok.eos_ids, generator=generators)
    gen_time = time.perf_counter() - t0
    for n, s in enumerate(samples):  # decoded without the EOS
        s["text"] = tok.decode(s["tokens"][:-1] if s["finished"] else s["tokens"])
        s["gold"] = examples[n // args.group_size]["answer"]
    correct = torch.tensor([float(reward_fn(s["text"], s["gold"])) for s in samples])  # (N_local,)
    lengths = torch.tensor([len(s["tokens"]) for s in samples])  # (N_local,)
    reward = correct.clone()
    if args.format_reward:
        reward += args.format_reward * torch.tensor([float(verify.format_reward(s["text"])) for s in samples])
    reward += overlong_penalty(lengths, args.max_new_tokens, args.overlong_buffer)
    scores = {"reward": reward, "correct": correct, "len": lengths,
              "finished": torch.tensor([float(s["finished"]) for s in samples]),
              "local": torch.tensor([float(train_set.style_of(s["text"]) == "local") for s in samples]),
              "neg_logp": torch.tensor([-sum(s["logprobs"]) for s in samples])}  # for the entropy estimate
    return prompts, samples, scores, gen_time


def overlong_penalty(lengths, max_new_tokens, buffer):
    """DAPO's soft overlong punishment, lengths (N,) -> (N,) in [-1, 0]: 0 up to max_new_tokens - buffer tokens,
    then linear down to -1 at the budget. buffer=0 turns it off."""
    if buffer <= 0:
        return torch.zeros(lengths.shape)
    over = lengths.float() - (max_new_tokens - buffer)
    return -(over.clamp(min=0) / buffer).clamp(max=1.0)


def gather_scores(scores, device):
    """{name: (N_local,)} of every rank -> {name: (N,)} of the whole step, in rank order (so prompt-major)."""
    stacked = torch.stack([v.float() for v in scores.values()], dim=1).to(device)  # (N_local, 6)
    if dist.is_initialized():
        parts = [torch.empty_like(stacked) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, stacked)
        stacked = torch.cat(parts)
    return dict(zip(scores, stacked.cpu().unbind(1)))


def row_seed(seed, step, prompt, sample):
    """A sampling seed per (run seed, step, prompt of the step, sample): a sample does not depend on batch size,
    rank count or what else is generated, and a resumed run draws exactly the same samples."""
    return int(np.random.SeedSequence([seed, step, prompt, sample]).generate_state(1)[0])


@lru_cache(maxsize=4)
def epoch_order(n, seed, epoch):
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()


def prompt_indices(cursor, count, n, seed):
    """Dataset indices of prompts cursor .. cursor + count - 1 of an endless stream of seeded epoch shuffles: the
    cursor (prompts consumed so far) is all a checkpoint needs to continue the stream."""
    return [epoch_order(n, seed, k // n)[k % n] for k in range(cursor, cursor + count)]


# ---------------------------------------------------------------------------------------------------------------
# 2. Advantages


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


# ---------------------------------------------------------------------------------------------------------------
# 3. The rows of the update, and the step's loss normalizer


def select_rows(args, prompts, samples, adv, zero_var, distill, device):
    """adv, zero_var (N_local,): each sample's advantage, and whether its group's rewards are all equal.
    -> keep (N_local,) bool: the samples that count in the step; rows: the dicts {prompt, tokens, logprobs (the
    sampler's), adv} that go through the model; the step's normalizer, summed over ranks before any micro-batch."""
    lengths = torch.tensor([len(s["tokens"]) for s in samples])  # (N_local,)
    keep = torch.ones(len(samples), dtype=torch.bool)
    if args.filter_groups:
        keep &= ~zero_var
    if args.mask_truncated:
        keep &= torch.tensor([s["finished"] for s in samples])
    if args.algo == "rft":  # only the kept (correct) samples count in the SFT mean
        keep &= adv > 0
    normalizer = float(common.all_reduce_sum(torch.tensor(
        normalizer_terms(lengths[keep], args.loss_agg, args.max_new_tokens), device=device, dtype=torch.float64)))
    # A row with zero advantage adds exactly nothing to the loss or its gradient unless there is a KL term, so it
    # counts in the normalizer but skips the model (early in RL most groups are all wrong, later many are all
    # right). With a teacher every row has its own per-token signal.
    rows = [{"prompt": prompts[n // args.group_size], "tokens": s["tokens"], "logprobs": s["logprobs"],
             "adv": float(adv[n])} for n, s in enumerate(samples)
            if keep[n] and (adv[n] != 0 or args.kl_coef or distill)]
    return keep, rows, normalizer


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


# ---------------------------------------------------------------------------------------------------------------
# 4. The policy update


def update_policy(args, model, optimizer, rows, normalizer, lr, pad_id, amp_dtype, ref_model=None, teacher=None,
                  spare_prompt=None):
    """--inner_epochs AdamW steps at lr on rows: forward and backward over micro-batches (accumulate_gradients),
    the gradients summed over ranks and clipped. spare_prompt: any prompt, for FSDP's zero-weight passes.
    -> {"loss", "grad_norm" (the first epoch's), "lr", "epochs" (each one's stats summed over ranks), "tokens"
    (forward tokens, prompts included), "time"}. A NaN/inf loss or gradient raises FloatingPointError(epoch)
    before the optimizer steps on it."""
    device = next(model.parameters()).device
    padding = None
    if parallel.is_fsdp(model):  # as many passes as the busiest rank, the extra ones on a row of zero weight
        filler = {"prompt": spare_prompt, "tokens": spare_prompt[-1:], "logprobs": [0.0], "adv": 0.0}
        padding = parallel.most(math.ceil(len(rows) / args.micro_batch_size)), filler
    model.train()
    for group in optimizer.param_groups:
        group["lr"] = lr
    t0 = time.perf_counter()
    grad_norm, loss, epochs, old_logps = float("nan"), float("nan"), [], None
    for epoch in range(args.inner_epochs if normalizer > 0 else 0):
        optimizer.zero_grad(set_to_none=True)
        stats = {"loss": torch.zeros((), device=device)}
        if rows or padding:  # old_logps: the first epoch's log-probs, the ratio's denominator in the later ones
            stats, old_logps = accumulate_gradients(model, rows, normalizer, args, pad_id, ref_model, amp_dtype,
                                                    teacher, old_logps, padding)
        sync_gradients(model)
        keys = ["loss", "tokens", "clipped", "logp_diff", "kl", "teacher_kl"]
        reduced = common.all_reduce_sum(torch.stack([torch.as_tensor(stats.get(k, 0.0), device=device,
                                                                     dtype=torch.float32) for k in keys]))
        epochs.append(dict(zip(keys, reduced.tolist())))
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, args.grad_clip if args.grad_clip > 0 else float("inf"))
        if not math.isfinite(epochs[-1]["loss"]) or not torch.isfinite(norm):
            raise FloatingPointError(epoch)
        if epoch == 0:
            loss, grad_norm = epochs[0]["loss"], float(norm)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": loss, "grad_norm": grad_norm, "lr": lr, "epochs": epochs, "time": time.perf_counter() - t0,
            "tokens": sum(len(r["prompt"]) + len(r["tokens"]) - 1 for r in rows) * len(epochs)}


def accumulate_gradients(model, rows, normalizer, args, pad_id, ref_model=None, amp_dtype=torch.float32,
                         teacher=None, old_logps=None, padding=None):
    """Forward and backward over micro-batches of at most --micro_batch_size rows: a prompt's rows together (they
    can share its forward, share_prompt_for), prompts by their longest row, longest first (little padding, peak
    memory first). Every micro-batch divides by the step-wide normalizer, so the gradients add up to the step's.
    old_logps: None in the first update of these rows, whose own log-probs (detached, (B, L) per micro-batch) are
    the ratio's denominator, returned for the later --inner_epochs to pass back. padding=(count, row), under FSDP:
    this rank then runs `row` at zero weight until it has run count passes (the most of any rank), so that every
    rank calls FSDP's collectives equally often.
    -> (stats summed over micro-batches: loss, tokens, clipped, kl, logp_diff = sum |log p_train - log p_sampler|,
    teacher_kl with a teacher; old_logps)."""
    device = next(model.parameters()).device
    length = lambda r: len(r["prompt"]) + len(r["tokens"])  # noqa: E731
    longest = {}
    for r in rows:
        longest[tuple(r["prompt"])] = max(longest.get(tuple(r["prompt"]), 0), length(r))
    order = sorted(rows, key=lambda r: (longest[tuple(r["prompt"])], tuple(r["prompt"]), length(r)), reverse=True)
    total = {"loss": torch.zeros((), device=device)}
    micro_batches = [order[i:i + args.micro_batch_size] for i in range(0, len(order), args.micro_batch_size)]
    if padding is not None:
        micro_batches += [None] * (padding[0] - len(micro_batches))
    first, old_logps = old_logps is None, old_logps or []
    for i, micro_batch in enumerate(micro_batches):
        weight = 1.0
        if micro_batch is None:  # a placeholder: the same layers, collectives and ops as a micro-batch, zero gradient
            micro_batch, weight = [dict(padding[1])], 0.0
        x, target_col, tokens, sampler_logp, mask, adv = collate(micro_batch, pad_id, device,
                                                                 share_prompt_for(args, model, micro_batch))
        with common.autocast(device, amp_dtype):
            logp = completion_logprobs(model, x, target_col, tokens, mask, args.temperature)  # (B, L)
            ref_logp = None
            if args.kl_coef:
                with torch.no_grad():
                    ref_logp = completion_logprobs(ref_model, x, target_col, tokens, mask, args.temperature)
        old_logp = logp.detach() if first or not weight else old_logps[i]  # the first update: ratio exactly 1
        if first:
            old_logps.append(old_logp)
        if teacher is not None:  # --teacher: per-token advantages (B, L) in place of the rows' (B,) (controls.py)
            with torch.no_grad(), common.autocast(device, amp_dtype):
                teacher_logp = completion_logprobs(teacher, x, target_col, tokens, mask, args.temperature)
            adv = controls.distill_advantages(teacher_logp, old_logp, mask)
        loss, stats = grpo_loss(logp, old_logp, ref_logp, adv, mask, normalizer, args.loss_agg, args.clip_low,
                                args.clip_high, args.kl_coef)
        stats["logp_diff"] = ((logp.detach() - sampler_logp).abs() * mask).sum()
        if teacher is not None:
            stats["teacher_kl"] = -adv.sum()
        (loss * weight).backward()
        if weight:
            total["loss"] += loss.detach()
            for k, v in stats.items():
                total[k] = total.get(k, 0) + v.detach().to(device)
    return total, old_logps


def collate(micro_batch, pad_id, device, share_prompt=True):
    """micro_batch: row dicts {"prompt": ids, "tokens": completion ids, "logprobs": the sampler's, "adv": float}.
    -> x, the model's inputs {idx (B, T), positions, prefix}; target_col (B, L): the column of idx whose output
       predicts completion token j; tokens, sampler_logp (the rows' "logprobs"), mask (B, L); adv (B,). L = the
       longest completion. Everything that matters is indexed from lengths: pad ids are never read as data.
    share_prompt=False: row b of idx is its whole sequence prompt + completion[:-1], right-padded; positions and
       prefix None.
    share_prompt=True: the rows of one prompt (a GRPO group) share it as a prefix, which the model runs once
       (SharedPrefix): prefix = (each distinct prompt but its last token, left-padded (P, Tp); their positions
       (P, Tp), pads negative; (B,) the prefix of each row); row b of idx is the prompt's last token +
       completion[:-1], at positions len(prompt) - 1 onwards, right padding at -1 (so that it never counts against
       the context of a model with learned positions).
    E.g. prompt [p0 p1 p2], completion [c0 c1 EOS]: shared, prefix [p0 p1], idx [p2 c0 c1] at positions [2 3 4],
       target_col [0 1 2]; not shared, idx [p0 p1 p2 c0 c1], target_col [2 3 4].
    """
    prefixes = {}  # prompt ids -> prefix index, in first-seen order
    for r in micro_batch:
        prefixes.setdefault(tuple(r["prompt"]), len(prefixes))
    cut = [len(r["prompt"]) - 1 if share_prompt else 0 for r in micro_batch]  # prompt tokens that go in the prefix
    B, L = len(micro_batch), max(len(r["tokens"]) for r in micro_batch)
    T = max(len(r["prompt"]) + len(r["tokens"]) - 1 - c for r, c in zip(micro_batch, cut))
    idx = torch.full((B, T), pad_id, dtype=torch.long)
    positions = torch.zeros((B, T), dtype=torch.long)
    target_col = torch.zeros((B, L), dtype=torch.long)
    tokens = torch.zeros((B, L), dtype=torch.long)
    sampler_logp = torch.zeros((B, L))
    for b, (r, c) in enumerate(zip(micro_batch, cut)):
        seq = (r["prompt"] + r["tokens"])[c:-1]
        n = len(r["tokens"])
        idx[b, :len(seq)] = torch.tensor(seq)
        positions[b] = c + torch.arange(T)
        positions[b, len(seq):] = -1  # padding: a key no query sees (a pad query sees itself, SharedPrefix)
        target_col[b, :n] = torch.arange(len(r["prompt"]) - 1 - c, len(r["prompt"]) - 1 - c + n)
        tokens[b, :n] = torch.tensor(r["tokens"])
        sampler_logp[b, :n] = torch.tensor(r["logprobs"])
    x = {"idx": idx.to(device), "positions": None, "prefix": None}
    Tp = max(cut)
    if Tp > 0:
        prefix_idx = torch.full((len(prefixes), Tp), pad_id, dtype=torch.long)
        prefix_positions = torch.arange(Tp).repeat(len(prefixes), 1)
        for prompt, i in prefixes.items():
            p = prompt[:-1]
            if p:
                prefix_idx[i, Tp - len(p):] = torch.tensor(p)
            prefix_positions[i] -= Tp - len(p)  # left padding at negative positions
        prefix_of = torch.tensor([prefixes[tuple(r["prompt"])] for r in micro_batch])
        x["positions"] = positions.to(device)
        x["prefix"] = (prefix_idx.to(device), prefix_positions.to(device), prefix_of.to(device))
    lengths = torch.tensor([len(r["tokens"]) for r in micro_batch])
    adv = torch.tensor([float(r["adv"]) for r in micro_batch])
    to = lambda t: t.to(device)  # noqa: E731
    return x, to(target_col), to(tokens), to(sampler_logp), to(completion_mask(lengths, L)), to(adv)


def completion_mask(lengths, width):
    """lengths (N,) completion lengths (EOS included when there is one) -> mask (N, width) float, 1 on the first
    lengths[n] tokens. From lengths, never from `tokens != pad_id`: that would drop the EOS whenever pad == eos."""
    return (torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]).float()


def completion_logprobs(model, x, target_col, tokens, mask, temperature):
    """log p(tokens) under softmax(logits / T) -> (B, L), 0 where mask == 0: the negated per-token loss of the
    model's own forward over collate's inputs x, with targets only at the completion positions (so the LM head runs
    only there: the (B, T, V) logits never exist). Divided by the sampling temperature, as generate's log-probs are:
    scoring at T=1 what was sampled at T=0.7 is a classic silent off-policy bug."""
    idx = x["idx"]
    keep = mask.bool()
    batch_idx = torch.arange(idx.size(0), device=idx.device)[:, None].expand_as(target_col)
    targets = torch.full_like(idx, -1)  # (B, T)
    targets[batch_idx[keep], target_col[keep]] = tokens[keep]
    prefix = None if x["prefix"] is None else SharedPrefix(*x["prefix"], x["positions"])
    _, nll = model(idx, targets, x["positions"], prefix, temperature)  # (B, T)
    return torch.where(keep, -nll.gather(1, target_col), 0.0)  # (B, L)


def share_prompt_for(args, model, micro_batch):
    """Whether a micro-batch shares its prompts' forward. --share_prompt=auto: on CPUs, when some prompt has several
    rows here (else the prompts' pass, which --grad_checkpointing does not cover, only costs memory) and the rows
    are short enough for the windowed attention to be the dense mask anyway (auto_backend; past that the chunked
    path costs O(T x W), the shared rows' O(T x (prompt + T))). GPUs keep their kernels (unmeasured)."""
    if parallel.is_fsdp(model):  # the passes would differ between ranks (parallel.py)
        return False
    if args.share_prompt != "auto":
        return args.share_prompt
    device = next(model.parameters()).device
    repeated = len({tuple(r["prompt"]) for r in micro_batch}) < len(micro_batch)
    longest = max(len(r["prompt"]) + len(r["tokens"]) - 1 for r in micro_batch)
    return (device.type == "cpu" and model.config.attn_backend == "auto" and repeated
            and auto_backend(device, model.config.window, longest, torch.float32) == "dense")


class SharedPrefix:
    """The plan of a training forward whose rows continue shared prefixes (GPT.forward's prefix): the prefixes run
    through the model first, with `record` as every layer's attention, which keeps their keys and values (autograd
    history included); then, with `attend`, each row's queries attend to its own prefix's keys followed by the
    row's, under window_mask's rule on absolute positions. A row computes what prefix + row would, while the prefix
    tokens' projections and MLPs run once per prefix; backward sums the rows' gradients into their prefix.
    prefix_idx, prefix_positions (P, Tp): left padding negative; prefix_of (B,): the prefix each row continues;
    positions (B, T): the rows' own, starting right after their prefix's last real token, right padding negative.
    """

    def __init__(self, prefix_idx, prefix_positions, prefix_of, positions):
        self.prefix_idx, self.prefix_positions, self.prefix_of = prefix_idx, prefix_positions, prefix_of
        self.positions = positions
        self.kv = {}  # layer -> the prefixes' (k, v), each (P, Hkv, Tp, D), filled by record

    def run(self, model):
        """The prefixes' pass through model (GPT.forward calls this) -> the rows' attention, self.attend."""
        config, prefix_positions, prefix_of = model.config, self.prefix_positions, self.prefix_of
        self.config = config
        positions = self.positions.expand(prefix_of.size(0), -1)
        Tp, T = prefix_positions.size(1), positions.size(1)
        k_pos = torch.cat([prefix_positions[prefix_of], positions], 1)[:, None, None, :]  # (B, 1, 1, Tp + T)
        # a right-pad query sees itself, as in padded_mask, so that no row of the rows' attention is empty
        row_itself = torch.cat([torch.zeros(T, Tp, dtype=torch.bool, device=prefix_of.device),
                                torch.eye(T, dtype=torch.bool, device=prefix_of.device)], 1)  # (T, Tp + T)
        self.masks = {}  # window -> (the prefixes' mask (P, 1, Tp, Tp) or None, the rows' (B, 1, T, Tp + T))
        for w in {config.layer_window(i) for i in range(config.n_layer)}:
            self.masks[w] = (padded_mask(prefix_positions, w, config.sinks),
                             window_mask(positions[:, None, :, None], k_pos, w, config.sinks) | row_itself)
        # each layer keeps the prefixes' keys and values; not checkpointed: a recomputation would record again
        model.hidden_states(self.prefix_idx, prefix_positions, self.record, checkpointing=False)
        return self.attend

    def record(self, layer, q, k, v):
        """The prefixes' pass: q (P, Hq, Tp, D), k and v (P, Hkv, Tp, D) -> (P, Hq, Tp, D), keeping k and v."""
        self.kv[layer] = (k, v)
        w = self.config.layer_window(layer)  # without left padding the mask is None: any backend will do
        return attention(q, k, v, w, self.config.sinks, self.config.attn_backend, mask=self.masks[w][0])

    def attend(self, layer, q, k, v):
        """The rows' pass: q (B, Hq, T, D), k and v (B, Hkv, T, D) -> (B, Hq, T, D), over prefix + own keys."""
        pk, pv = self.kv[layer]
        K = torch.cat([pk.index_select(0, self.prefix_of), k], dim=2)  # (B, Hkv, Tp + T, D)
        V = torch.cat([pv.index_select(0, self.prefix_of), v], dim=2)
        mask = self.masks[self.config.layer_window(layer)][1]
        return F.scaled_dot_product_attention(q, K, V, attn_mask=mask, enable_gqa=q.size(1) != k.size(1))


def grpo_loss(logp, old_logp, ref_logp, adv, mask, normalizer, loss_agg="token", clip_low=0.2, clip_high=0.28,
              kl_coef=0.0):
    """One micro-batch's share of the step loss.
    logp (B, L): the completion tokens' log-probs under the policy being trained (with grad); old_logp (B, L): the
    ratio's denominator (the first update's, see accumulate_gradients); ref_logp (B, L) under the frozen reference,
    or None when kl_coef == 0; adv (B,): one advantage per completion, or (B, L): one per token (--teacher); mask
    (B, L): 1 on completion tokens; normalizer: the step's (normalizer_terms summed over micro-batches and ranks).
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


# ---------------------------------------------------------------------------------------------------------------
# 5. Metrics


def step_metrics(args, step, scores, everyone, zero_var, keep, rows, update, gen_time, t_step, device, styled,
                 distill):
    """The step's metrics, the same on every rank. scores: this rank's samples'; everyone: all ranks' (P * G,)."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    epochs = update["epochs"]
    first = epochs[0] if epochs and epochs[0]["tokens"] else None  # the first epoch's: on the fresh samples
    correct = everyone["correct"] > 0.5
    seen_tokens = max(1.0, sum(s["tokens"] for s in epochs))
    timing = torch.tensor([gen_time, update["time"], float(scores["len"].sum()), float(update["tokens"])],
                          device=device)
    gen_total, train_total, gen_tok, train_tok = common.all_reduce_sum(timing.clone()).tolist()
    m = {"step": step,
         "reward": float(everyone["reward"].mean()), "accuracy": float(everyone["correct"].mean()),
         "frac_zero_var": float(zero_var.float().mean()),
         "len": float(everyone["len"].mean()),
         "len_correct": float(everyone["len"][correct].mean()) if correct.any() else None,
         "len_wrong": float(everyone["len"][~correct].mean()) if (~correct).any() else None,
         "trunc_rate": float(1 - everyone["finished"].mean()),
         "entropy": float(everyone["neg_logp"].sum()) / max(1.0, float(everyone["len"].sum())),
         "loss": update["loss"], "grad_norm": update["grad_norm"], "lr": update["lr"],
         "rows_in_update": int(common.all_reduce_sum(keep.sum().to(device))),
         "rows_trained": int(common.all_reduce_sum(torch.tensor(len(rows), device=device))),
         "train_tokens": int(train_tok),  # forward/backward tokens of the update(s), prompts included
         # mean |log p_train - log p_sampler| per token: float rounding, larger in bf16
         "sampler_logp_diff": first["logp_diff"] / first["tokens"] if first else None,
         "gen_tok_s": gen_tok / max(gen_total / world, 1e-9),
         "train_tok_s": train_tok / max(train_total / world, 1e-9),
         "gen_s": gen_time, "train_s": update["time"],
         "s_per_step": time.perf_counter() - t_step,
         "peak_mem_mb": common.peak_memory_mb(device)}
    if args.kl_coef:
        m["kl"] = sum(s["kl"] for s in epochs) / seen_tokens
    if distill:  # per token, on the fresh samples (later epochs repeat the same fixed advantages)
        m["teacher_kl"] = first["teacher_kl"] / first["tokens"] if first else None
    if args.inner_epochs > 1:
        m["clip_frac"] = sum(s["clipped"] for s in epochs) / seen_tokens
    if styled:
        m["local_share"] = float(everyone["local"].mean())
    if not epochs:
        m["skipped"] = True  # every row was filtered out: no update this step
    return m


def log_samples(step, question, samples, scores, count, samples_log):
    """Print the first prompt's first count samples and append them to samples.jsonl."""
    for n in range(count):
        s = samples[n]
        rec = {"step": step, "question": question, "gold": s["gold"], "completion": s["text"],
               "reward": float(scores["reward"][n]), "correct": bool(scores["correct"][n] > 0.5),
               "finished": bool(s["finished"])}
        tqdm.write(f"[step {step} sample {n}] reward {rec['reward']:.2f} | {rec['question']!r} -> "
                   f"{rec['completion'][:300]!r}")
        if samples_log:
            samples_log.log(rec)
