"""rl.py and grpo.py: advantages, loss aggregation, clipping, KL, masks and micro-batching against hand
computations; sampling log-probs against the training forward under a window; a tiny policy that learns; the script
end to end + resume."""

import copy
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

import common
import controls
import data
import grpo
import kernels
import rl
from model import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(window=None, vocab=257, n_layer=1, n_embd=32, seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, n_layer=n_layer, n_head=2, n_embd=n_embd, block_size=256, window=window))


def args_for(*flags):
    return rl.get_parser().parse_args(["--out_dir=", "--eval_every=0", "--sample_every=0", *flags])


# ---------------------------------------------------------------------------------------------------------------
# Advantages


def test_advantages_each_scale_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0],
                      [1.0, 1.0, 1.0, 1.0],  # zero variance
                      [0.0, 0.0, 0.0, 1.0]])
    centered = torch.tensor([[0.5, -0.5, -0.5, 0.5],
                             [0.0, 0.0, 0.0, 0.0],
                             [-0.25, -0.25, -0.25, 0.75]])
    eps = 1e-4
    assert torch.allclose(grpo.group_advantages(r, "none"), centered)
    group_std = torch.tensor([[0.5], [0.0], [math.sqrt(0.25 * 0.75)]])  # population std per group
    assert torch.allclose(grpo.group_advantages(r, "group"), centered / (group_std + eps))
    p = 7 / 12  # the batch's rewards are 7 ones out of 12: population std sqrt(p (1 - p))
    assert torch.allclose(grpo.group_advantages(r, "batch"), centered / (math.sqrt(p * (1 - p)) + eps))
    for scale in grpo.SCALES:  # a zero-variance group: exactly zero, never NaN, whatever the value repeated
        adv = grpo.group_advantages(torch.full((2, 8), 0.3), scale)
        assert torch.equal(adv, torch.zeros(2, 8))
        assert torch.equal(grpo.group_advantages(r, scale)[1], torch.zeros(4))
    with pytest.raises(ValueError, match="scale_rewards"):
        grpo.group_advantages(r, "bogus")


def test_overlong_penalty_dapo():
    lengths = torch.tensor([10, 12, 14, 16, 20])
    # budget 20, buffer 8: free up to 12 tokens, then linear to -1 at 20
    assert torch.allclose(grpo.overlong_penalty(lengths, 20, 8), torch.tensor([0.0, 0.0, -0.25, -0.5, -1.0]))
    assert torch.equal(grpo.overlong_penalty(lengths, 20, 0), torch.zeros(5))


# ---------------------------------------------------------------------------------------------------------------
# The loss: value and gradient of each aggregation, by hand


def loss_inputs():
    logp = torch.tensor([[-1.0, -2.0, -0.5, -3.0],
                         [-0.2, -1.5, -9.0, -9.0]], requires_grad=True)
    old = torch.tensor([[-1.1, -1.9, -0.5, -3.2],
                        [-0.3, -1.4, -9.0, -9.0]])  # every ratio within [0.8, 1.28]: nothing clipped
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0],
                         [1.0, 1.0, 0.0, 0.0]])  # lengths 4 and 2
    adv = torch.tensor([1.0, -0.5])
    return logp, old, mask, adv


@pytest.mark.parametrize("agg", grpo.LOSS_AGGS)
def test_loss_aggregation_value_and_gradient(agg):
    logp, old, mask, adv = loss_inputs()
    lengths = mask.sum(1)
    max_new = 6
    normalizer = grpo.normalizer_terms(lengths, agg, max_new)
    assert normalizer == {"token": 6.0, "sequence": 2.0, "constant": 12.0}[agg]
    loss, stats = grpo.grpo_loss(logp, old, None, adv, mask, normalizer, agg)
    loss.backward()

    ratio = torch.exp(logp.detach() - old)
    A = adv[:, None]
    if agg == "token":  # -sum(A ratio mask) / sum(mask)
        want = -(A * ratio * mask).sum() / mask.sum()
        want_grad = -A * ratio * mask / mask.sum()  # d ratio / d logp = ratio
    elif agg == "sequence":  # -(1/N) sum_i (1/|o_i|) sum_t A_i ratio mask
        want = -((A * ratio * mask).sum(1) / lengths).sum() / 2
        want_grad = -A * ratio * mask / lengths[:, None] / 2
    else:  # -sum(A ratio mask) / (N * max_new_tokens)
        want = -(A * ratio * mask).sum() / (2 * max_new)
        want_grad = -A * ratio * mask / (2 * max_new)
    assert torch.allclose(loss, want, atol=1e-6)
    assert torch.allclose(logp.grad, want_grad, atol=1e-6)
    assert stats["tokens"] == 6 and stats["clipped"] == 0


def test_ratio_one_is_reinforce():
    """On-policy (old == current): loss value -sum(A mask)/n and gradient -A mask/n, REINFORCE with a baseline."""
    logp, _, mask, adv = loss_inputs()
    loss, _ = grpo.grpo_loss(logp, logp.detach(), None, adv, mask, 6.0, "token")
    loss.backward()
    assert torch.allclose(loss, -(adv[:, None] * mask).sum() / 6)
    assert torch.allclose(logp.grad, -adv[:, None] * mask / 6)


def test_clipping_zeroes_the_clipped_side():
    """ratio 1.5 > 1 + clip_high: no gradient when A > 0 (already pushed up enough), full gradient when A < 0;
    ratio 0.5 < 1 - clip_low: no gradient when A < 0, full gradient when A > 0."""
    old = torch.zeros(4, 1)
    logp = torch.log(torch.tensor([[1.5], [1.5], [0.5], [0.5]])).requires_grad_()
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])
    mask = torch.ones(4, 1)
    loss, stats = grpo.grpo_loss(logp, old, None, adv, mask, 4.0, "token", clip_low=0.2, clip_high=0.28)
    loss.backward()
    # per-token surrogate min(ratio A, clip(ratio) A): rows 0 and 2 take the clipped (constant) branch
    want = -(1.28 * 1.0 + 1.5 * -1.0 + 0.8 * -1.0 + 0.5 * 1.0) / 4
    assert torch.allclose(loss, torch.tensor(want), atol=1e-6)
    want_grad = torch.tensor([[0.0], [-(-1.0) * 1.5 / 4], [0.0], [-(1.0) * 0.5 / 4]])
    assert torch.allclose(logp.grad, want_grad, atol=1e-6)
    assert stats["clipped"] == 2


def test_k3_nonnegative_and_zero_at_reference():
    torch.manual_seed(0)
    logp = (-torch.rand(3, 5) * 4).requires_grad_()
    ref = -torch.rand(3, 5) * 4
    mask = torch.ones(3, 5)
    zero_adv = torch.zeros(3)
    loss, stats = grpo.grpo_loss(logp, logp.detach(), ref, zero_adv, mask, 15.0, kl_coef=0.5)
    log_r = ref - logp.detach()
    k3 = torch.exp(log_r) - log_r - 1
    assert (k3 >= 0).all() and stats["kl"] >= 0
    assert torch.allclose(loss, 0.5 * k3.sum() / 15, atol=1e-6)
    loss, stats = grpo.grpo_loss(logp, logp.detach(), logp.detach(), zero_adv, mask, 15.0, kl_coef=0.5)
    loss.backward()
    assert loss.item() == 0 and stats["kl"].item() == 0
    assert torch.equal(logp.grad, torch.zeros(3, 5))  # k3's gradient vanishes at pi == pi_ref


# ---------------------------------------------------------------------------------------------------------------
# Rows -> tensors -> gradients through the real accumulation path


def make_rows(n=8, seed=0, vocab=257, eos=256):
    """Rows with ragged prompts and completions; every other completion ends with the EOS (== pad here)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        prompt = torch.randint(0, 256, (3 + i % 4,), generator=g).tolist()
        tokens = torch.randint(0, 256, (2 + (5 * i) % 9,), generator=g).tolist()
        if i % 2:
            tokens[-1] = eos
        rows.append({"prompt": prompt, "tokens": tokens, "logprobs": (-torch.rand(len(tokens), generator=g)).tolist(),
                     "adv": float(torch.randn((), generator=g))})
    return rows


def grads_of(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("agg", grpo.LOSS_AGGS)
def test_micro_batch_split_does_not_change_loss_or_gradient(agg):
    model = tiny_model(window=4)
    rows = make_rows()
    lengths = torch.tensor([len(r["tokens"]) for r in rows])
    normalizer = grpo.normalizer_terms(lengths, agg, 16)
    results = {}
    for mbs in (8, 4, 2):  # 1, 2 and 4 micro-batches
        model.zero_grad()
        stats, _ = grpo.accumulate_gradients(model, rows, normalizer, args_for(f"--micro_batch_size={mbs}",
                                                                               f"--loss_agg={agg}"), pad_id=256)
        results[mbs] = (stats["loss"].clone(), grads_of(model))
    for mbs in (4, 2):
        assert torch.allclose(results[mbs][0], results[8][0], atol=1e-6)
        for a, b in zip(results[mbs][1], results[8][1]):
            assert torch.allclose(a, b, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in results[8][1])


def test_zero_variance_group_gives_zero_gradient():
    model = tiny_model(window=4)
    rows = make_rows(4)
    adv = grpo.group_advantages(torch.tensor([[1.0, 1.0, 1.0, 1.0]]))  # one group, all correct
    for r, a in zip(rows, adv[0]):
        r["adv"] = float(a)
    model.zero_grad()
    grpo.accumulate_gradients(model, rows, 10.0, args_for(), pad_id=256)
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads_of(model))


def test_kl_zero_against_an_identical_reference():
    model = tiny_model(window=4)
    rows = make_rows(6)
    args = args_for("--kl_coef=0.1")
    model.zero_grad()
    stats, _ = grpo.accumulate_gradients(model, rows, 30.0, args, pad_id=256, ref_model=copy.deepcopy(model))
    with_kl = grads_of(model)
    model.zero_grad()
    grpo.accumulate_gradients(model, rows, 30.0, args_for(), pad_id=256)
    assert stats["kl"].item() == pytest.approx(0.0, abs=1e-6)
    for a, b in zip(with_kl, grads_of(model)):
        assert torch.allclose(a, b, atol=1e-7)


def test_masks_keep_eos_when_pad_is_eos():
    eos = pad = 256
    rows = [{"prompt": [1, 2, 3], "tokens": [7, 8, eos], "logprobs": [-1.0, -1.0, -1.0], "adv": 1.0},
            {"prompt": [4, 5], "tokens": [eos], "logprobs": [-1.0], "adv": -1.0},
            {"prompt": [6], "tokens": [9, 9, 9, 9, 9], "logprobs": [-1.0] * 5, "adv": 0.5}]
    x, pos, tokens, old, mask, adv = grpo.collate(rows, pad, "cpu", share_prompt=False)
    idx = x["idx"]
    assert x["prefix"] is None and mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert tokens[0, 2] == eos and tokens[1, 0] == eos
    assert pos[0, :3].tolist() == [2, 3, 4] and pos[1, 0] == 1
    # the EOS is scored and equals the model's own forward loss at that position
    model = tiny_model()
    logp = grpo.completion_logprobs(model, x, pos, tokens, mask, 1.0)
    targets = torch.full(idx.shape, -1)
    for b, r in enumerate(rows):
        targets[b, len(r["prompt"]) - 1:len(r["prompt"]) - 1 + len(r["tokens"])] = torch.tensor(r["tokens"])
    _, nll = model(idx, targets)
    sx, spos, stokens, _, smask, _ = grpo.collate(rows, pad, "cpu")  # the default layout: prompts as prefixes
    assert spos[0, :3].tolist() == [0, 1, 2] and torch.equal(smask, mask) and torch.equal(stokens, tokens)
    assert torch.allclose(grpo.completion_logprobs(model, sx, spos, stokens, smask, 1.0), logp, atol=1e-5)
    assert logp[0, 2] != 0 and logp[1, 0] != 0
    assert torch.allclose(logp[0, :3], -nll[0, 2:5], atol=1e-5)
    assert torch.allclose(logp[1, 0], -nll[1, 1], atol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampling_logprobs_match_training_forward_beyond_the_window(temperature):
    """The on-policy check under SWA: the rolling-cache sampler and the training forward agree past the window."""
    model = tiny_model(window=4, n_layer=2).eval()
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    gens = [torch.Generator().manual_seed(i) for i in range(4)]
    outs = model.generate(prompts, 34, temperature=temperature, num_samples=2, generator=gens)
    rows = [{"prompt": prompts[n // 2], "tokens": o["tokens"], "logprobs": o["logprobs"], "adv": 0.0}
            for n, o in enumerate(outs)]
    assert all(len(r["tokens"]) == 34 for r in rows)  # no eos_ids: 34 tokens, far past W=4
    for share_prompt in (True, False):
        x, pos, tokens, old, mask, _ = grpo.collate(rows, 0, "cpu", share_prompt)
        with torch.no_grad():
            logp = grpo.completion_logprobs(model, x, pos, tokens, mask, temperature)
        assert (logp - old).abs().max() < 1e-4
    if temperature == 1.0:  # and at T=1 it is literally the model's forward with targets
        x, pos, *_ = grpo.collate(rows, 0, "cpu", share_prompt=False)
        idx = x["idx"]
        targets = torch.full(idx.shape, -1)
        for b, r in enumerate(rows):
            targets[b, len(r["prompt"]) - 1:len(r["prompt"]) - 1 + len(r["tokens"])] = torch.tensor(r["tokens"])
        with torch.no_grad():
            _, nll = model(idx, targets)
        assert torch.allclose(-nll.gather(1, pos), logp, atol=1e-5)


def make_groups(prompt_lengths=(1, 4, 7), group=3, seed=0):
    """GRPO-shaped rows: each prompt (ragged, one of them a single token) with `group` ragged completions."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in prompt_lengths:
        prompt = torch.randint(0, 256, (n,), generator=g).tolist()
        for s in range(group):
            tokens = torch.randint(0, 256, (1 + (4 * s + n) % 11,), generator=g).tolist()
            rows.append({"prompt": prompt, "tokens": tokens, "logprobs": [0.0] * len(tokens), "adv": 1.0})
    return rows


@pytest.mark.parametrize("config", [dict(window=4, sinks=2), dict(window=None), dict(window=3, layer_pattern="LG"),
                                    dict(window=5, pos_emb="learned", norm="layernorm", mlp="gelu")],
                         ids=["window+sinks", "full", "pattern", "gpt2"])
def test_shared_prompt_logprobs_and_gradients_match_each_row_by_hand(config):
    """--share_prompt runs each prompt's forward once for its rows; the log-probs and their gradient must be those of
    each row's own full sequence (logprobs_by_hand: one plain forward per row, no collate), float64 weights."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, block_size=64,
                          **config)).double()
    rows = make_groups()
    x, pos, tokens, _, mask, _ = grpo.collate(rows, 256, "cpu")
    p_idx, p_pos, row_of = x["prefix"]
    assert p_idx.shape == (3, 6) and row_of.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # each prompt once
    assert p_pos[0].tolist() == [-6, -5, -4, -3, -2, -1] and p_pos[2].tolist() == [0, 1, 2, 3, 4, 5]
    weight = torch.randn(mask.shape, generator=torch.Generator().manual_seed(1))
    grads = []
    for logprobs in (lambda: logprobs_by_hand(model, rows, 0.7),
                     lambda: grpo.completion_logprobs(model, x, pos, tokens, mask, 0.7)):
        model.zero_grad()
        logp = logprobs()
        (logp * weight).sum().backward()
        grads.append((logp.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])))
    (want, want_grad), (got, got_grad) = grads
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_grad, want_grad, atol=1e-5, rtol=1e-5)
    assert want_grad.abs().max() > 0.1


def test_accumulation_is_the_same_with_and_without_the_shared_prompt():
    """Through the real accumulation path (micro-batches that cut a group in two, the step-wide normalizer): sharing
    forced (true) and the CPU default (auto) give the same loss and gradient as every row's own forward (false)."""
    model = tiny_model(window=4, n_layer=2)
    rows = make_groups(group=4)
    for r, a in zip(rows, torch.randn(len(rows), generator=torch.Generator().manual_seed(2))):
        r["adv"] = float(a)
    out = {}
    for flag in ("false", "true", "auto"):
        model.zero_grad()
        args = args_for("--micro_batch_size=3", f"--share_prompt={flag}")
        stats, _ = grpo.accumulate_gradients(model, [dict(r) for r in rows], 40.0, args, pad_id=256)
        out[flag] = (stats["loss"], torch.cat([g.flatten() for g in grads_of(model)]))
    for flag in ("true", "auto"):
        torch.testing.assert_close(out[flag][0], out["false"][0], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out[flag][1], out["false"][1], atol=1e-6, rtol=1e-5)
    assert out["false"][1].abs().max() > 1e-3


def test_share_prompt_auto_shares_only_what_pays():
    """auto: on CPU, a micro-batch shares when a prompt repeats and the rows are within the dense-mask crossover of
    the model's own auto backend; distinct prompts, long rows or a forced backend keep the plain layout."""
    args, model = args_for(), tiny_model(window=4)
    rows = make_groups()
    assert grpo.share_prompt_for(args, model, rows)
    assert not grpo.share_prompt_for(args, model, rows[::3])  # one row per prompt: nothing to share
    long = [dict(r, tokens=r["tokens"] * 40) for r in rows]  # rows of ~400 tokens: past 2 x (block + W)
    assert kernels.auto_backend(torch.device("cpu"), 4, 400, torch.float32) == "chunked"
    assert not grpo.share_prompt_for(args, model, long)
    assert grpo.share_prompt_for(args_for("--share_prompt=true"), model, long)
    model.config.attn_backend = "dense"
    assert not grpo.share_prompt_for(args, model, rows)


def test_shared_layout_keeps_learned_positions_inside_the_context():
    """Right padding of the shared layout sits at position -1: a long prompt with a short completion beside a short
    prompt with a long completion (each fitting the context) must not run past a learned-position model's context."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=257, n_layer=1, n_head=2, n_embd=16, block_size=16, pos_emb="learned",
                          norm="layernorm", mlp="gelu"))
    rows = [{"prompt": list(range(1, 13)), "tokens": [5, 6], "logprobs": [0.0] * 2, "adv": 1.0},
            {"prompt": [7], "tokens": list(range(20, 34)), "logprobs": [0.0] * 14, "adv": 1.0},
            {"prompt": [7], "tokens": [3], "logprobs": [0.0], "adv": 1.0}]
    x, pos, tokens, _, mask, _ = grpo.collate(rows, 0, "cpu")
    assert x["prefix"] is not None and int(x["positions"].max()) <= 15
    with torch.no_grad():
        got = grpo.completion_logprobs(model, x, pos, tokens, mask, 1.0)
        want = logprobs_by_hand(model, rows, 1.0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_shared_prompt_with_grad_checkpointing_and_bf16():
    """The prefix pass is not checkpointed (a recomputation would record its keys again), the rows' pass is; under
    bf16 autocast the shared forward is as close to the fp32 gradient as the unshared one is."""
    model = tiny_model(window=4, n_layer=2).train()
    rows = make_groups()

    def grad(share_prompt, checkpointing, dtype):
        model.zero_grad()
        model.grad_checkpointing = checkpointing
        x, pos, tokens, _, mask, _ = grpo.collate(rows, 256, "cpu", share_prompt)
        with common.autocast("cpu", dtype):
            grpo.completion_logprobs(model, x, pos, tokens, mask, 1.0).sum().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    exact = grad(False, False, torch.float32)
    torch.testing.assert_close(grad(True, True, torch.float32), exact, atol=1e-5, rtol=1e-5)
    scale = exact.abs().max()
    err_shared = (grad(True, True, torch.bfloat16) - exact).abs().max() / scale
    err_full = (grad(False, False, torch.bfloat16) - exact).abs().max() / scale
    assert 0 < err_shared < max(2 * err_full, 1e-2), (err_shared, err_full)


# ---------------------------------------------------------------------------------------------------------------
# A tiny policy learns; the script runs, checkpoints and resumes exactly


class DigitTokenizer:
    """Ten digit tokens, an EOS (= pad) and a start token."""
    eos_id = pad_id = 10
    eos_ids = [10]

    def decode(self, ids):
        return "".join(str(i) for i in ids if i < 10)


class CopyDigit(data.Dataset):
    """'Output the prompt digit': the prompt is [start, d], the reward 1 if the completion starts with d."""

    def __init__(self):
        super().__init__(name="copy digit", examples=[{"question": str(d), "answer": str(d)} for d in range(10)] * 4)

    def render_prompt(self, tok, ex):
        return [11, int(ex["question"])]


def test_tiny_policy_learns_to_copy_a_digit():
    model = tiny_model(vocab=12, n_embd=32)
    args = args_for("--steps=30", "--prompts_per_step=16", "--group_size=8", "--max_new_tokens=2", "--lr=1e-2",
                    "--micro_batch_size=128")
    history = rl.train(args, model, DigitTokenizer(), CopyDigit(),
                       reward_fn=lambda text, gold: float(text[:1] == gold))
    first = sum(h["reward"] for h in history[:5]) / 5
    last = sum(h["reward"] for h in history[-5:]) / 5
    assert first < 0.3 and last > 0.8, (first, last)  # seeds 0-2 reach 0.96-1.0
    assert all(0 <= h["frac_zero_var"] <= 1 and h["grad_norm"] >= 0 for h in history)


def test_inner_epochs_reuse_first_update_logprobs_and_clip():
    """With --inner_epochs > 1 the later epochs score the same samples against the first update's log-probs: the
    first epoch is on-policy (ratio 1), the later ones drift and get clipped."""
    model = tiny_model(vocab=12, n_embd=32)
    args = args_for("--steps=3", "--prompts_per_step=8", "--group_size=8", "--max_new_tokens=2", "--lr=3e-2",
                    "--inner_epochs=4", "--micro_batch_size=64")
    history = rl.train(args, model, DigitTokenizer(), CopyDigit(), reward_fn=lambda text, gold: float(text[:1] == gold))
    assert all(h["sampler_logp_diff"] < 1e-5 for h in history)
    assert any(h["clip_frac"] > 0 for h in history)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import checkpoint
    from tokenizer import Tokenizer

    path = tmp_path_factory.mktemp("ckpt") / "sft"
    from helpers import teach_to_stop
    model = teach_to_stop(tiny_model(window=8))
    checkpoint.save(path, model, Tokenizer.byte_level(),
                    run_config={"data": "synthetic:lagged?n_digits=4&n_steps=2&size=200"})
    return str(path)


def run_rl(tmp_path, init, name, *flags):
    out = str(tmp_path / name)
    rl.main([f"--init={init}", f"--out_dir={out}", "--prompts_per_step=2", "--group_size=2", "--max_new_tokens=12",
             "--micro_batch_size=3", "--lr=1e-3", "--sample_every=1", "--eval_every=2", "--eval_limit=4",
             "--seed=1", "--overlong_buffer=12", *flags])
    return out


def weights(path):
    from safetensors.torch import load_file
    return load_file(os.path.join(path, "model.safetensors"))


def test_script_runs_checkpoints_and_resumes_exactly(tmp_path, tiny_checkpoint):
    a = run_rl(tmp_path, tiny_checkpoint, "a", "--steps=2")
    assert os.path.isfile(os.path.join(a, "model.safetensors"))
    with open(os.path.join(a, "run_config.json")) as f:
        saved = json.load(f)
    assert saved["data"] == "synthetic:lagged?n_digits=4&n_steps=2&size=200"  # SFT's knobs were picked up
    records = [json.loads(line) for line in open(os.path.join(a, "metrics.jsonl"))]
    steps = [r for r in records if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2]
    for key in ("reward", "accuracy", "frac_zero_var", "len", "trunc_rate", "entropy", "grad_norm", "gen_tok_s",
                "train_tok_s", "s_per_step", "peak_mem_mb", "local_share"):
        assert key in steps[0], key
    assert any("eval_accuracy" in r for r in records)
    assert os.path.getsize(os.path.join(a, "samples.jsonl")) > 0

    c = str(tmp_path / "c")
    rl.main([f"--out_dir={c}", f"--resume={a}", "--steps=4"])  # from a's step-2 checkpoint, written to c (as sft.py)
    rl.main([f"--out_dir={a}", "--resume=true", "--steps=4"])  # the rest of the flags come from the checkpoint
    b = run_rl(tmp_path, tiny_checkpoint, "b", "--steps=4")
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert wa.keys() == wb.keys() == wc.keys()
    assert all(torch.equal(wa[k], wb[k]) and torch.equal(wc[k], wb[k]) for k in wa)
    assert not torch.equal(wa["embed.weight"], weights(tiny_checkpoint)["embed.weight"])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_checkpoint, capsys):
    import checkpoint
    import convert

    model, tok = convert.load_model(tiny_checkpoint, device="cpu", dtype="float32")
    calls = []

    def reward_then_nan(text, gold):  # a NaN reward from the second step on: NaN advantages, NaN loss
        calls.append(1)
        return float(len(calls) % 2) if len(calls) <= 4 else float("nan")

    args = rl.get_parser().parse_args([f"--out_dir={tmp_path}", "--steps=3", "--prompts_per_step=2",
                                      "--group_size=2", "--max_new_tokens=4", "--save_every=1", "--eval_every=0",
                                       "--sample_every=0"])
    with pytest.raises(SystemExit):
        rl.train(args, model, tok, data.load_dataset("synthetic", "train", size=20), reward_fn=reward_then_nan)
    err = capsys.readouterr().err
    assert "NaN/inf at step 2" in err and "(step 1)" in err
    _, _, _, state = checkpoint.load(tmp_path, device="cpu")
    assert state["step"] == 1


def test_missing_init_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        rl.main([f"--init={tmp_path}/nope", f"--out_dir={tmp_path}/out"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no checkpoint at" in err and "python sft.py" in err


def test_two_ranks_equal_one_process(tmp_path, tiny_checkpoint):
    """torchrun with 2 CPU ranks (gloo): each rank samples its own whole groups, the batch std and the normalizer
    are global, the gradients are summed; the weights match a single process up to float summation order."""
    import subprocess
    import sys

    flags = [f"--init={tiny_checkpoint}", "--prompts_per_step=4", "--group_size=4", "--max_new_tokens=12",
             "--micro_batch_size=3", "--lr=1e-3", "--sample_every=0", "--eval_every=0", "--overlong_buffer=12",
             "--steps=2", "--scale_rewards=batch", "--filter_groups=true", "--seed=1"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "rl.py",
                    *flags, f"--out_dir={tmp_path / 'ddp'}"], cwd=root, env=env, check=True, capture_output=True)
    rl.main([*flags, f"--out_dir={tmp_path / 'single'}"])
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    # up to float summation order, which Adam amplifies where a gradient is ~0 (a prompt shares its forward with the
    # rows of its micro-batch, and the micro-batches differ): 5e-6 measured, against updates of ~1e-3 per step
    assert all(torch.allclose(a[k], b[k], atol=2e-5) for k in a)
    assert not torch.equal(a["embed.weight"], weights(tiny_checkpoint)["embed.weight"])
    logs = [[json.loads(line) for line in open(tmp_path / d / "metrics.jsonl")] for d in ("ddp", "single")]
    assert [r["reward"] for r in logs[0]] == [r["reward"] for r in logs[1]]


def test_resume_honours_window_flags(tmp_path, tiny_checkpoint):
    """--resume used to load the checkpoint without the window overrides: --window on a resumed run was ignored."""
    import convert
    a = run_rl(tmp_path, tiny_checkpoint, "a", "--steps=1", "--eval_every=0")
    assert convert.load_model(a, device="cpu")[0].config.window == 8  # the init's own (keep)
    rl.main([f"--out_dir={a}", "--resume=true", "--steps=2", "--window=5", "--sinks=2"])
    cfg = convert.load_model(a, device="cpu")[0].config
    assert (cfg.window, cfg.sinks) == (5, 2)


def test_defaults_follow_the_init(tmp_path, tiny_checkpoint):
    """No --data: the data (and so the prompt format) the init was trained on; lr etc. from the init's profile."""
    args = rl.get_parser().parse_args([f"--init={tiny_checkpoint}"])
    assert args.data == "synthetic:lagged?n_digits=4&n_steps=2&size=200"
    assert args.profile == "pretrained" and args.lr == 2e-6  # a checkpoint not made from scratch here
    toy = tmp_path / "toy"
    toy.mkdir()
    (toy / "run_config.json").write_text(json.dumps({"init": "scratch", "data": "synthetic", "profile": "toy"}))
    args = rl.get_parser().parse_args([f"--init={toy}"])
    assert (args.profile, args.lr, args.data, args.max_new_tokens) == ("toy", 1e-4, "synthetic", 160)
    args = rl.get_parser().parse_args(["--init=gguf:/x.gguf", "--lr=3e-6"])
    assert (args.profile, args.lr, args.data, args.max_new_tokens) == ("pretrained", 3e-6, "gsm8k", 384)


@pytest.mark.parametrize("flag", ["--warmup=-1", "--kl_coef=-1", "--grad_clip=nan", "--clip_high=nan",
                                  "--save_every=-1", "--eval_every=-1", "--temperature=nan", "--temperature=0",
                                  "--lr=0", "--group_size=1", "--clip_low=1", "--share_prompt=maybe"])
def test_out_of_range_flags_are_one_line_errors(tmp_path, tiny_checkpoint, capsys, flag):
    with pytest.raises(SystemExit) as e:
        rl.main([f"--init={tiny_checkpoint}", f"--out_dir={tmp_path}/out", flag])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and flag.split("=")[0] in err, err


# ---------------------------------------------------------------------------------------------------------------
# On-policy distillation (--teacher): the per-token advantage, its gradient, the teacher at full attention, the script


def logprobs_by_hand(model, rows, temperature):
    """log p(completion token j | prompt + completion[:j]) under softmax(logits / T), row by row from the model's
    plain full-logits forward: (B, L), 0 past each completion. Independent of grpo.collate/completion_logprobs."""
    L = max(len(r["tokens"]) for r in rows)
    out = torch.zeros(len(rows), L)
    for b, r in enumerate(rows):
        seq = torch.tensor([r["prompt"] + r["tokens"][:-1]])
        logits, _ = model(seq)  # (1, T, V)
        logp = torch.log_softmax(logits[0] / temperature, dim=-1)
        start = len(r["prompt"]) - 1
        for j, t in enumerate(r["tokens"]):
            out[b, j] = logp[start + j, t]
    return out


def nll_logprobs(model, rows):
    """The same at T=1 from the model's full logits (cross-entropy over every position, not the forward's own loss
    path), padding every row to the same length."""
    L = max(len(r["tokens"]) for r in rows)
    out = torch.zeros(len(rows), L)
    for b, r in enumerate(rows):
        seq = r["prompt"] + r["tokens"]
        idx = torch.tensor([seq[:-1]])
        targets = torch.full_like(idx, -1)
        targets[0, len(r["prompt"]) - 1:] = torch.tensor(r["tokens"])
        logits, _ = model(idx)  # (1, T, V)
        nll = F.cross_entropy(logits[0], targets[0], ignore_index=-1, reduction="none")  # (T,)
        out[b, :len(r["tokens"])] = -nll[len(r["prompt"]) - 1:]
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_distill_advantage_is_teacher_minus_student_by_hand(temperature):
    student, teacher = tiny_model(window=4, n_layer=2), tiny_model(n_layer=2, seed=1)
    rows = make_rows(6)
    x, pos, tokens, _, mask, _ = grpo.collate(rows, 256, "cpu")
    student_logp = grpo.completion_logprobs(student, x, pos, tokens, mask, temperature)  # with grad, as in training
    with torch.no_grad():
        teacher_logp = grpo.completion_logprobs(teacher, x, pos, tokens, mask, temperature)
    adv = controls.distill_advantages(teacher_logp, student_logp, mask)
    assert not adv.requires_grad
    with torch.no_grad():
        if temperature == 1.0:
            want = (nll_logprobs(teacher, rows) - nll_logprobs(student, rows)) * mask
        else:
            want = (logprobs_by_hand(teacher, rows, temperature) - logprobs_by_hand(student, rows, temperature)) * mask
    assert torch.allclose(adv, want, atol=1e-5)
    assert (adv[mask == 0] == 0).all() and (adv[mask == 1] != 0).all()


def test_distill_with_the_student_as_teacher_is_exactly_zero():
    student = tiny_model(window=4, n_layer=2)
    rows = make_rows(6)  # their random group "adv" must be ignored: the teacher decides
    student.zero_grad()
    stats, _ = grpo.accumulate_gradients(student, rows, 30.0, args_for("--micro_batch_size=4"), pad_id=256,
                                         teacher=copy.deepcopy(student))
    assert stats["teacher_kl"].item() == 0 and stats["loss"].item() == 0
    assert all(torch.equal(g, torch.zeros_like(g)) for g in grads_of(student))
    x, pos, tokens, _, mask, _ = grpo.collate(rows, 256, "cpu")
    logp = grpo.completion_logprobs(student, x, pos, tokens, mask, 1.0)
    assert torch.equal(controls.distill_advantages(logp, logp, mask), torch.zeros_like(mask))


@pytest.mark.parametrize("agg", grpo.LOSS_AGGS)
def test_distill_gradient_is_reverse_kl_policy_gradient_by_hand(agg):
    """accumulate_gradients with a teacher == autograd of -sum_t A_t log p_student(y_t) / normalizer (per sequence
    token mean first for "sequence"), A_t = log p_teacher - log p_student detached, written here from plain forwards."""
    temperature = 0.7
    student, teacher = tiny_model(window=4, n_layer=2), tiny_model(n_layer=2, seed=1)
    rows = make_rows(8)
    lengths = torch.tensor([len(r["tokens"]) for r in rows])
    normalizer = grpo.normalizer_terms(lengths, agg, 16)
    mask = grpo.completion_mask(lengths, int(lengths.max()))
    student.zero_grad()
    lp_s = logprobs_by_hand(student, rows, temperature)  # (B, L) with grad
    with torch.no_grad():
        lp_t = logprobs_by_hand(teacher, rows, temperature)
    A = (lp_t - lp_s).detach() * mask
    weight = mask / lengths[:, None] if agg == "sequence" else mask
    hand_loss = -(A * lp_s * weight).sum() / normalizer
    hand_loss.backward()
    want = grads_of(student)

    student.zero_grad()
    args = args_for(f"--loss_agg={agg}", f"--temperature={temperature}", "--micro_batch_size=3")
    stats, _ = grpo.accumulate_gradients(student, rows, normalizer, args, pad_id=256, teacher=teacher)
    for a, b in zip(grads_of(student), want):
        assert torch.allclose(a, b, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in want)
    # on-policy (ratio 1): the loss value is -sum A weight / normalizer, teacher_kl sums -A over the tokens
    assert stats["loss"].item() == pytest.approx(float(-(A * weight).sum() / normalizer), rel=1e-5)
    assert stats["teacher_kl"].item() == pytest.approx(float(-A.sum()), rel=1e-5)


def test_teacher_runs_at_full_attention_whatever_its_checkpoint_window(tiny_checkpoint):
    import convert

    teacher = controls.load_teacher(tiny_checkpoint, "cpu", tiny_model(window=8))
    windowed, _ = convert.load_model(tiny_checkpoint, device="cpu", dtype="float32")
    assert windowed.config.window == 8 and teacher.config.window is None
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    full = tiny_model()  # the checkpoint's weights in a model built with full attention
    full.load_state_dict(windowed.state_dict())
    g = torch.Generator().manual_seed(3)
    rows = [{"prompt": torch.randint(0, 256, (10,), generator=g).tolist(),
             "tokens": torch.randint(0, 256, (20,), generator=g).tolist(), "logprobs": [0.0] * 20, "adv": 0.0}]
    x, pos, tokens, _, mask, _ = grpo.collate(rows, 256, "cpu")
    with torch.no_grad():
        got = grpo.completion_logprobs(teacher, x, pos, tokens, mask, 1.0)
        assert torch.allclose(got, nll_logprobs(full, rows), atol=1e-5)
        assert not torch.allclose(got, grpo.completion_logprobs(windowed, x, pos, tokens, mask, 1.0), atol=1e-3)
    with pytest.raises(ValueError, match="tokenizer"):
        controls.load_teacher(tiny_checkpoint, "cpu", tiny_model(vocab=300))
    with pytest.raises(FileNotFoundError, match="--teacher"):
        controls.load_teacher(tiny_checkpoint + "_missing", "cpu", tiny_model())


def test_script_distills_from_a_teacher(tmp_path, tiny_checkpoint, capsys):
    """rl.main with --teacher: two steps, every sampled row trained (none skipped for a zero group advantage),
    teacher_kl logged each step and, on-policy with token aggregation, equal to the loss (-sum A / tokens)."""
    d = run_rl(tmp_path, tiny_checkpoint, "d", "--steps=2", f"--teacher={tiny_checkpoint}", "--eval_every=0")
    steps = [json.loads(line) for line in open(os.path.join(d, "metrics.jsonl"))]
    assert [r["step"] for r in steps] == [1, 2]
    for r in steps:
        assert math.isfinite(r["teacher_kl"]) and r["teacher_kl"] != 0  # windowed student vs full-attention teacher
        assert r["rows_trained"] == r["rows_in_update"] == 4
        assert r["loss"] == pytest.approx(r["teacher_kl"], rel=1e-4)
        assert "reward" in r and "accuracy" in r  # still monitored
    assert json.load(open(os.path.join(d, "run_config.json")))["teacher"] == tiny_checkpoint
    assert not torch.equal(weights(d)["embed.weight"], weights(tiny_checkpoint)["embed.weight"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_rl(tmp_path, tiny_checkpoint, "e", "--steps=1", f"--teacher={tiny_checkpoint}", "--filter_groups=true")
    assert e.value.code == 2 and "--filter_groups" in capsys.readouterr().err


def test_rl_from_a_pretrained_init_takes_the_profile_sinks(tmp_path):
    """rl.py straight from a full-attention pretrained model: --window alone still gets the profile's 4 sinks
    (common.PROFILE_WINDOWS), printed and written back into the run config; a windowed init keeps its own."""
    from helpers import make_hf_dir
    hf_dir, _ = make_hf_dir(tmp_path / "hf", "llama", max_position_embeddings=1024)
    args = rl.parse_args([f"--init=hf:{hf_dir}", "--window=64", f"--out_dir={tmp_path / 'rl'}"])
    model, _, _ = rl.load_policy(args, "cpu")
    assert (model.config.window, model.config.sinks) == (64, 4) == (args.window, args.sinks)
    args = rl.parse_args([f"--init=hf:{hf_dir}", "--window=64", "--sinks=0", f"--out_dir={tmp_path / 'rl'}"])
    assert rl.load_policy(args, "cpu")[0].config.sinks == 0


def test_rft_advantages_by_hand():
    correct = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert torch.equal(controls.rft_advantages(correct), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))


def test_rft_step_is_sft_on_the_correct_samples(monkeypatch):
    """--algo=rft: the rows that reach the update are exactly the correct samples, and the step's gradient is that of
    plain SFT, the mean NLL per completion token over those rows, each row's own forward (F.cross_entropy)."""
    import torch.nn.functional as F
    model = tiny_model(vocab=12, n_embd=32)
    captured = {}
    original = grpo.accumulate_gradients

    def capture(model_, rows, normalizer, *args, **kwargs):
        out = original(model_, rows, normalizer, *args, **kwargs)
        captured.update(rows=[dict(r) for r in rows], normalizer=normalizer,
                        grads=[p.grad.clone() for p in model_.parameters()])
        return out
    monkeypatch.setattr(grpo, "accumulate_gradients", capture)
    rewards = []

    def reward_fn(text, gold):
        rewards.append(float(text[:1] == gold))
        return rewards[-1]
    args = args_for("--steps=1", "--prompts_per_step=8", "--group_size=8", "--max_new_tokens=3", "--algo=rft",
                    "--micro_batch_size=5")
    rl.train(args, model, DigitTokenizer(), CopyDigit(), reward_fn=reward_fn)
    rows = captured["rows"]
    assert 0 < len(rows) == sum(rewards) < len(rewards)  # a random policy: some right, most wrong
    assert all(DigitTokenizer().decode(r["tokens"])[:1] == str(r["prompt"][1]) for r in rows)
    assert captured["normalizer"] == sum(len(r["tokens"]) for r in rows)
    # the reference: SFT on those samples (the weights before the step: the copy taken inside accumulate_gradients
    # is of the gradients, so rebuild the model from the same seed)
    ref_model = tiny_model(vocab=12, n_embd=32)
    nll, count = 0.0, 0
    for r in rows:
        seq = torch.tensor(r["prompt"] + r["tokens"])
        logits, _ = ref_model(seq[None, :-1])
        start = len(r["prompt"]) - 1
        nll = nll + F.cross_entropy(logits[0, start:].float(), seq[start + 1:], reduction="sum")
        count += len(r["tokens"])
    (nll / count).backward()
    for got, p in zip(captured["grads"], ref_model.parameters()):
        torch.testing.assert_close(got, p.grad, atol=1e-6, rtol=1e-4)


def test_rft_refuses_what_would_make_it_not_sft(tmp_path, tiny_checkpoint, capsys):
    for flag in ("--inner_epochs=2", "--kl_coef=0.1", f"--teacher={tiny_checkpoint}", "--loss_agg=sequence",
                 "--filter_groups=true"):
        with pytest.raises(SystemExit) as e:
            run_rl(tmp_path, tiny_checkpoint, "x", "--steps=1", "--algo=rft", flag)
        assert e.value.code == 2 and "--algo=rft" in capsys.readouterr().err
