"""KV-cached generation against the full-recompute reference, on tiny random models whose output depends on context.

Random GPTs at the usual init produce nearly uniform logits, where any two implementations agree by accident (or
disagree through ties). The weights here are scaled up so logits have a std of several units and the next token
really depends on which keys attention sees; `test_window_really_matters` checks that before anything relies on it.
"""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import generation
from generation import KVCache
from helpers import generate_naive
from kernels import philox
from model import GPT, GPTConfig

VOCAB = 64
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17], [20], [30, 31, 32, 33, 34, 35]]


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_gpt(window=None, sinks=0, layer_pattern=None, seed=0, **overrides):
    kw = dict(vocab_size=VOCAB, n_layer=3, n_head=4, n_kv_head=2, n_embd=64, block_size=256, window=window,
              sinks=sinks, layer_pattern=layer_pattern)
    kw.update(overrides)
    torch.manual_seed(seed)
    gpt = GPT(GPTConfig(**kw)).eval()
    with torch.no_grad():
        for name, p in gpt.named_parameters():
            if p.dim() > 1:  # sharp attention and large logits: the output depends on the exact context
                p.mul_(30 if "embed" in name else 10)
    return gpt


def tokens(results):
    return [r["tokens"] for r in results]


# (window, sinks, layer_pattern): windowed, windowed + sinks, mixed layers, global
CONFIGS = [(4, 0, None), (6, 2, None), (5, 3, "LG"), (None, 0, None)]


def test_window_really_matters():
    """Without this, the cached-vs-naive comparisons below could pass with a cache that ignores the window."""
    windowed, full = tiny_gpt(window=4), tiny_gpt(window=None)
    assert full.state_dict().keys() == windowed.state_dict().keys()
    logits, _ = windowed(torch.tensor([PROMPTS[1]]))
    assert logits.std() > 3
    a = tokens(windowed.generate(PROMPTS, 30, temperature=0))
    b = tokens(full.generate(PROMPTS, 30, temperature=0))
    assert all(x != y for x, y in zip(a, b))
    with_sinks = tokens(tiny_gpt(window=4, sinks=2).generate(PROMPTS, 30, temperature=0))
    assert with_sinks != a


@pytest.mark.parametrize("window,sinks,layer_pattern", CONFIGS)
def test_greedy_matches_naive_batched(window, sinks, layer_pattern):
    """Ragged batch, 40 new tokens (several windows long), prompts shorter and longer than the window."""
    gpt = tiny_gpt(window, sinks, layer_pattern)
    fast = gpt.generate(PROMPTS, 40, temperature=0)
    slow = generate_naive(gpt, PROMPTS, 40, temperature=0)
    assert tokens(fast) == tokens(slow)
    for f, s in zip(fast, slow):
        assert len(f["tokens"]) == 40 and not f["finished"]
        torch.testing.assert_close(torch.tensor(f["logprobs"]), torch.tensor(s["logprobs"]), atol=1e-4, rtol=0)


@pytest.mark.parametrize("window,sinks,layer_pattern", CONFIGS)
def test_greedy_matches_naive_unbatched(window, sinks, layer_pattern):
    gpt = tiny_gpt(window, sinks, layer_pattern)
    for prompt in PROMPTS[:2]:
        assert tokens(gpt.generate([prompt], 25, temperature=0)) == tokens(generate_naive(gpt, [prompt], 25,
                                                                                          temperature=0))


def test_greedy_matches_naive_learned_positions_gpt2_layout():
    gpt = tiny_gpt(window=5, sinks=1, pos_emb="learned", norm="layernorm", mlp="gelu", qkv_bias=True, o_bias=True,
                   mlp_bias=True, n_kv_head=4)
    assert tokens(gpt.generate(PROMPTS, 30, temperature=0)) == tokens(generate_naive(gpt, PROMPTS, 30, temperature=0))


def test_long_prompt_prefill_is_exact():
    """A prompt of 50 tokens with W=4: the prefill sees all of it at once but must keep only the last W in the ring."""
    gpt = tiny_gpt(window=4, sinks=2, layer_pattern="LLG")
    prompt = list(torch.randint(0, VOCAB, (50,), generator=torch.Generator().manual_seed(3)).tolist())
    prompts = [prompt, prompt[:9]]
    assert tokens(gpt.generate(prompts, 20, temperature=0)) == tokens(generate_naive(gpt, prompts, 20, temperature=0))


def test_tensor_prompts_are_accepted():
    gpt = tiny_gpt(window=4)
    batch = torch.tensor([PROMPTS[0], PROMPTS[0]])
    assert tokens(gpt.generate(batch, 5, temperature=0)) == tokens(gpt.generate([PROMPTS[0]] * 2, 5, temperature=0))


def full_forward_logprobs(gpt, prompt, completion, temperature):
    """log-probs of the completion tokens under softmax(logits / T) of one forward over prompt + completion."""
    seq = torch.tensor([prompt + completion])
    logits, _ = gpt(seq)
    logits = logits[0, len(prompt) - 1:-1] / (temperature if temperature > 0 else 1.0)
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("window,sinks,layer_pattern", [(4, 0, None), (5, 2, "LG"), (None, 0, None)])
def test_sampled_logprobs_match_full_forward(temperature, window, sinks, layer_pattern):
    """What RL relies on: the log-probs reported while sampling are what training recomputes from the sequence."""
    gpt = tiny_gpt(window, sinks, layer_pattern)
    g = torch.Generator().manual_seed(0)
    results = gpt.generate(PROMPTS, 30, temperature=temperature, num_samples=3, generator=g)
    assert len(results) == len(PROMPTS) * 3
    for i, r in enumerate(results):
        prompt = PROMPTS[i // 3]  # prompt-major order
        expected = full_forward_logprobs(gpt, prompt, r["tokens"], temperature)
        torch.testing.assert_close(torch.tensor(r["logprobs"]), expected, atol=1e-4, rtol=0)
    # with this much entropy the samples of one group differ: the cache copy did not tie them together
    assert len({tuple(r["tokens"]) for r in results[:3]}) > 1


def test_greedy_logprobs_are_under_untempered_softmax():
    gpt = tiny_gpt(window=4, sinks=1)
    r = gpt.generate([PROMPTS[1]], 12, temperature=0)[0]
    expected = full_forward_logprobs(gpt, PROMPTS[1], r["tokens"], 0)
    torch.testing.assert_close(torch.tensor(r["logprobs"]), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("window,sinks,layer_pattern", [(4, 2, None), (None, 0, None)])
def test_sampling_matches_naive_with_per_row_generators(window, sinks, layer_pattern):
    """Per-row generators: each row draws from its own stream, so cached and naive sampling pick the same tokens."""
    gpt = tiny_gpt(window, sinks, layer_pattern)
    gens = lambda: [torch.Generator().manual_seed(100 + r) for r in range(len(PROMPTS) * 2)]  # noqa: E731
    fast = gpt.generate(PROMPTS, 25, temperature=1.0, num_samples=2, generator=gens())
    slow = generate_naive(gpt, PROMPTS, 25, temperature=1.0, num_samples=2, generator=gens())
    assert tokens(fast) == tokens(slow)


def test_per_row_generators_do_not_depend_on_the_batch():
    """A row's tokens come from its own generator alone: the same in a ragged batch of other rows (which finish at
    other steps and leave the batch, with an EOS id) as in its group alone or on its own."""
    gpt = tiny_gpt(window=4, sinks=1)
    gens = lambda rows: [torch.Generator().manual_seed(100 + r) for r in rows]  # noqa: E731
    free = gpt.generate(PROMPTS, 20, temperature=1.0, num_samples=2, generator=gens(range(8)))
    for eos_ids in (None, [free[1]["tokens"][3]]):
        together = gpt.generate(PROMPTS, 20, temperature=1.0, num_samples=2, eos_ids=eos_ids, generator=gens(range(8)))
        if eos_ids:
            assert 0 < sum(r["finished"] for r in together) < len(together)
        for b, prompt in enumerate(PROMPTS):
            group = gpt.generate([prompt], 20, temperature=1.0, num_samples=2, eos_ids=eos_ids,
                                 generator=gens([2 * b, 2 * b + 1]))
            single = gpt.generate([prompt], 20, temperature=1.0, eos_ids=eos_ids, generator=gens([2 * b + 1]))
            assert tokens(group) == tokens(together[2 * b:2 * b + 2])
            assert tokens(single) == tokens(together[2 * b + 1:2 * b + 2])


def test_sampling_with_eos_matches_naive():
    """Rows that finish leave the batch only every DROP_EVERY steps: what they decode after their EOS is dropped."""
    gpt = tiny_gpt(window=5, sinks=2, layer_pattern="LG")
    gens = lambda: [torch.Generator().manual_seed(7 + r) for r in range(len(PROMPTS) * 3)]  # noqa: E731
    free = gpt.generate(PROMPTS, 30, temperature=0.8, num_samples=3, generator=gens())
    eos_ids = [free[0]["tokens"][1], free[5]["tokens"][12]]
    fast = gpt.generate(PROMPTS, 30, temperature=0.8, num_samples=3, eos_ids=eos_ids, generator=gens())
    slow = generate_naive(gpt, PROMPTS, 30, temperature=0.8, num_samples=3, eos_ids=eos_ids, generator=gens())
    assert tokens(fast) == tokens(slow)
    assert [r["finished"] for r in fast] == [r["finished"] for r in slow]
    assert len({len(r["tokens"]) for r in fast if r["finished"]}) > 2  # rows finished at several steps
    for f, s in zip(fast, slow):
        torch.testing.assert_close(torch.tensor(f["logprobs"]), torch.tensor(s["logprobs"]), atol=1e-4, rtol=0)


def test_single_generator_is_reproducible():
    gpt = tiny_gpt(window=4)
    a = gpt.generate(PROMPTS, 15, temperature=1.0, num_samples=2, generator=torch.Generator().manual_seed(7))
    b = gpt.generate(PROMPTS, 15, temperature=1.0, num_samples=2, generator=torch.Generator().manual_seed(7))
    assert a == b


@pytest.mark.parametrize("window,sinks", [(4, 2), (None, 0)])
def test_eos_stops_rows(window, sinks):
    gpt = tiny_gpt(window, sinks)
    free = gpt.generate(PROMPTS, 30, temperature=0)
    eos = free[0]["tokens"][4]  # row 0 is bound to emit it at step 4 (or earlier)
    stopped = gpt.generate(PROMPTS, 30, temperature=0, eos_ids=[eos])
    naive = generate_naive(gpt, PROMPTS, 30, temperature=0, eos_ids=[eos])
    assert tokens(stopped) == tokens(naive) and [r["finished"] for r in stopped] == [r["finished"] for r in naive]
    for f, s in zip(free, stopped):
        if eos in f["tokens"]:
            cut = f["tokens"].index(eos) + 1
            assert s["tokens"] == f["tokens"][:cut] and s["finished"]  # the EOS token is included
            assert s["logprobs"] == pytest.approx(f["logprobs"][:cut], abs=1e-5)
        else:
            assert s["tokens"] == f["tokens"] and not s["finished"]
    assert stopped[0]["finished"] and len(stopped[0]["tokens"]) <= 5


def test_all_rows_finishing_ends_generation():
    gpt = tiny_gpt(window=4)
    first = [r["tokens"][0] for r in gpt.generate(PROMPTS, 1, temperature=0)]
    out = gpt.generate(PROMPTS, 50, temperature=0, eos_ids=first)
    assert all(r["finished"] and len(r["tokens"]) == 1 for r in out)


class RecordingKVCache(KVCache):
    made = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordingKVCache.made.append(self)


@pytest.mark.parametrize("max_new_tokens", [10, 120])
def test_cache_sizes(monkeypatch, max_new_tokens):
    """Windowed layers hold sinks + W slots however long the generation; global layers hold prompt + new tokens."""
    monkeypatch.setattr(generation, "KVCache", RecordingKVCache)
    RecordingKVCache.made.clear()
    W, S = 4, 2
    gpt = tiny_gpt(window=W, sinks=S, layer_pattern="LLG")
    gpt.generate(PROMPTS, max_new_tokens, temperature=0)
    (cache,) = RecordingKVCache.made
    L, B, cfg = max(map(len, PROMPTS)), len(PROMPTS), gpt.config
    for layer in range(cfg.n_layer):
        slots = S + W if cfg.layer_window(layer) is not None else L + max_new_tokens
        for t in (cache.k[layer], cache.v[layer]):
            assert t.shape == (B, cfg.n_kv_head, slots, cfg.head_dim)
    per_token = 2 * cfg.n_kv_head * cfg.head_dim * 4 * B  # bytes of one position of one layer, k and v
    assert cache.nbytes() == per_token * (2 * (S + W) + (L + max_new_tokens))


def test_top_k_1_is_greedy():
    gpt = tiny_gpt(window=4, sinks=1)
    greedy = gpt.generate(PROMPTS, 20, temperature=0)
    top1 = gpt.generate(PROMPTS, 20, temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(0))
    assert tokens(top1) == tokens(greedy)
    # at T=1 the reported log-prob is the unfiltered one, the same as greedy reports
    for a, b in zip(top1, greedy):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-5)


def test_top_p():
    gpt = tiny_gpt(window=4, sinks=1)
    greedy = tokens(gpt.generate(PROMPTS, 15, temperature=0))
    tiny_p = gpt.generate(PROMPTS, 15, temperature=1.0, top_p=1e-6, generator=torch.Generator().manual_seed(0))
    assert tokens(tiny_p) == greedy  # the nucleus is just the most likely token

    # top_p=0.6: every sampled token lies in the smallest set of most likely tokens whose mass reaches 0.6
    out = gpt.generate(PROMPTS, 25, temperature=1.0, top_p=0.6, num_samples=2,
                       generator=torch.Generator().manual_seed(1))
    for i, r in enumerate(out):
        logprobs = full_forward_logprobs_all(gpt, PROMPTS[i // 2], r["tokens"])  # (n, V)
        for step, tok in enumerate(r["tokens"]):
            probs = logprobs[step].exp()
            before = probs[probs > probs[tok]].sum()  # mass strictly more likely than the sampled token
            assert before < 0.6 + 1e-5
    # and top_p does not make sampling greedy
    assert tokens(out) != tokens(gpt.generate(PROMPTS, 25, temperature=0, num_samples=2))


def test_sample_next_follows_the_distribution():
    """Sampling frequencies match softmax(logits / T); filtered tokens are never drawn; logprobs are unfiltered."""
    n = 20000
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -30.0, 0.5]]).repeat(n, 1)
    def uniforms(seed):
        return philox.row_uniforms(philox.row_keys(torch.Generator().manual_seed(seed), n, "cpu"), 1)[:, 0]

    for temperature in (1.0, 0.7):
        token, logprob = generation.sample_next(logits, temperature, None, None, uniforms(0))
        probs = torch.softmax(logits[0].double() / temperature, -1)
        freq = torch.bincount(token, minlength=6).double() / n
        assert (freq - probs).abs().max() < 0.015  # about 4 standard errors at n = 20000
        torch.testing.assert_close(logprob.double(), probs.log()[token], atol=1e-5, rtol=0)
    token, _ = generation.sample_next(logits, 1.0, 2, None, uniforms(1))
    assert set(token.tolist()) == {0, 1}
    assert abs((token == 0).double().mean() - torch.sigmoid(torch.tensor(1.0)).item()) < 0.015


def test_philox_known_answers():
    """Random123's known-answer vectors for philox4x32-10 (DEShawResearch/random123, tests/kat_vectors): counter,
    key -> the four output words."""
    kat = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
           ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
           ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
            (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    counters, keys, expected = (torch.tensor(x) for x in zip(*kat))
    assert philox.philox4x32(counters, keys).tolist() == expected.tolist()


def test_row_uniforms():
    """Token t of a row with key k is the 53-bit fraction of Philox's first two words at counter (t, 0, 0, 0); the
    uniforms of many rows and tokens look uniform, and rows with different keys are not the same stream."""
    u = philox.row_uniforms(torch.tensor([[0, 0]]), 3)
    assert u[0, 0].item() == ((0x6627E8D5 >> 5) * 2**26 + (0xE169C58D >> 6)) / 2**53  # the first vector above
    keys = philox.row_keys(torch.Generator().manual_seed(0), 200, "cpu")
    u = philox.row_uniforms(keys, 500)  # (200, 500)
    assert u.dtype == torch.float64 and 0 <= u.min() and u.max() < 1
    ks = (u.flatten().sort().values - torch.arange(1, u.numel() + 1, dtype=torch.float64) / u.numel()).abs().max()
    assert ks < 1.63 / u.numel() ** 0.5  # Kolmogorov-Smirnov at the 1% level
    for a, b in ((u[:, :-1], u[:, 1:]), (u[0::2], u[1::2])):  # a row's successive tokens; neighbouring rows
        assert abs(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]) < 0.015  # ~4 standard errors
    assert torch.equal(philox.row_uniforms(keys[50:60], 500), u[50:60])  # a row's draws ignore the other rows


class DeviceTraffic(TorchDispatchMode):
    """Counts, on a CPU, what would make the host wait for a GPU (a value read, or an op whose output shape depends
    on values) and random draws, at the level of ATen ops; tolist and numpy read without an op, so a patch counts
    them."""

    def __init__(self):
        super().__init__()
        self.reads, self.draws = [], []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        bool_index = name.startswith("index") and isinstance(args[1], (list, tuple)) and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1])
        if name in ("_local_scalar_dense", "nonzero", "masked_select", "unique_consecutive", "_unique2") or \
                bool_index or (name == "repeat_interleave" and (kwargs or {}).get("output_size") is None
                               and isinstance(args[0], torch.Tensor) and len(args) < 2):
            self.reads.append(name)
        if any(w in name for w in ("rand", "uniform", "normal", "bernoulli", "multinomial", "exponential")):
            self.draws.append(name)
        return func(*args, **(kwargs or {}))


@pytest.fixture
def traffic(monkeypatch):
    mode = DeviceTraffic()
    for method in ("tolist", "numpy"):
        real = getattr(torch.Tensor, method)
        monkeypatch.setattr(torch.Tensor, method, lambda self, *a, _real=real, _name=method, **k:
                            (mode.reads.append(_name), _real(self, *a, **k))[1])
    return mode


def test_traffic_counter_sees_reads_and_draws(traffic):
    """The counter below is only as good as what it sees: every kind of read the old decode loop made, and draws."""
    x = torch.arange(6.0)
    with traffic:
        x.tolist(), bool((x > 2).any()), x[x > 2], int(x.max()), float(x.sum()), (x > 2).nonzero()
        torch.rand(3, generator=torch.Generator().manual_seed(0)), torch.randint(5, (2,))
    assert len(traffic.reads) == 6 and len(traffic.draws) == 2, (traffic.reads, traffic.draws)


@pytest.mark.parametrize("temperature,eos", [(0.0, False), (1.0, False), (1.0, True)])
def test_host_reads_and_random_draws_per_token(traffic, temperature, eos):
    """At most one read of the device per generated token (the loop reads which rows finished every DROP_EVERY
    steps), and no random draw per step (each row's key is drawn once; before the change: 8 reads and, with one
    generator per row, 8 draws per step at batch 8). Ragged prompts, sinks, GQA, a group of 2 per prompt, per-row
    generators as rl.py passes them; with eos, rows finish and leave the batch along the way."""
    gpt = tiny_gpt(window=4, sinks=2, layer_pattern="LG")
    eos_ids = [generate_naive(gpt, PROMPTS[:1], 3, temperature=0)[0]["tokens"][2]] if eos else None

    def count(new_tokens):
        traffic.reads.clear(), traffic.draws.clear()
        gens = [torch.Generator().manual_seed(r) for r in range(len(PROMPTS) * 2)]
        with traffic:
            out = gpt.generate(PROMPTS, new_tokens, temperature=temperature, num_samples=2, eos_ids=eos_ids,
                               generator=gens)
        return len(traffic.reads), len(traffic.draws), out

    (reads_short, draws_short, _), (reads_long, draws_long, out) = count(9), count(57)
    assert reads_long - reads_short <= 57 - 9  # <= 1 read per token
    assert reads_long - reads_short <= (57 - 9) // generation.DROP_EVERY + 1
    assert draws_long == draws_short == (0 if temperature == 0 else len(PROMPTS) * 2)
    if eos:  # rows did finish at different steps, so the batch shrank
        assert 0 < sum(r["finished"] for r in out) < len(out)


def full_forward_logprobs_all(gpt, prompt, completion):
    logits, _ = gpt(torch.tensor([prompt + completion]))
    return torch.log_softmax(logits[0, len(prompt) - 1:-1], -1)


def test_bad_arguments_are_clear_errors():
    gpt = tiny_gpt(window=4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        gpt.generate(PROMPTS, 0)
    with pytest.raises(ValueError, match="at least one token"):
        gpt.generate([[1], []], 3)
    with pytest.raises(ValueError, match="temperature"):
        gpt.generate(PROMPTS, 3, temperature=-1)


def test_window_cache_bytes_are_independent_of_length():
    """KVCache allocation alone: windowed layers are a fixed number of slots, whatever max_len asks for."""
    cfg = GPTConfig(vocab_size=VOCAB, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, window=8, sinks=4)
    small = KVCache(cfg, 2, 100, torch.device("cpu"), torch.float32)
    big = KVCache(cfg, 2, 10_000, torch.device("cpu"), torch.float32)
    # 2 layers x (k, v) x batch 2 x 2 kv heads x (4 sinks + 8) slots x head_dim 8 x 4 bytes
    assert small.nbytes() == big.nbytes() == 2 * 2 * 2 * 2 * 12 * 8 * 4
