"""--compile against eager on tiny models: generate's decode step over the static plan, and the training forward.

Inductor takes tens of seconds per graph on a shared 2-core CPU, so one test compiles the decode step and one the
training forward, on models of one or two layers and a few thousand weights (about a minute with an empty inductor
cache, ~10 s with a warm one). The
static plan's logic (every slot attended and masked, positions and the column as tensors, sinks through a one-hot)
is checked across the window configurations by running it uncompiled, which is what compile_decode traces.
"""
import pytest
import torch
from torch._dynamo.utils import counters

import generation
from helpers import generate_naive
from model import GPT, GPTConfig
from test_generate import CONFIGS, PROMPTS, tiny_gpt, tokens

pytestmark = pytest.mark.usefixtures("one_thread")


def same_outputs(a, b, atol=1e-4):
    assert tokens(a) == tokens(b)
    assert [r["finished"] for r in a] == [r["finished"] for r in b]
    for x, y in zip(a, b):
        torch.testing.assert_close(torch.tensor(x["logprobs"]), torch.tensor(y["logprobs"]), atol=atol, rtol=0)


@pytest.mark.parametrize("window,sinks,layer_pattern", CONFIGS + [(3, 5, "GL")])
def test_static_plan_matches_naive(monkeypatch, window, sinks, layer_pattern):
    """The static plan, uncompiled: greedy = the full-recompute reference; sampling with per-row generators and
    EOS ids (rows keep decoding after their EOS, the batch stays fixed) = the eager plan. Sinks=5 with a prompt of
    one token: sink tokens are written during decode."""
    gpt = tiny_gpt(window, sinks, layer_pattern)
    naive = generate_naive(gpt, PROMPTS, 30, temperature=0)
    gens = lambda: [torch.Generator().manual_seed(r) for r in range(len(PROMPTS) * 2)]  # noqa: E731
    eager = gpt.generate(PROMPTS, 30, temperature=0.9, num_samples=2, eos_ids=[3, 17], generator=gens())
    assert 0 < sum(r["finished"] for r in eager) < len(eager)
    monkeypatch.setattr(gpt, "_decode_compiled", generation.decode_step)  # what compile_decode compiles, run as is
    same_outputs(gpt.generate(PROMPTS, 30, temperature=0), naive)
    same_outputs(gpt.generate(PROMPTS, 30, temperature=0.9, num_samples=2, eos_ids=[3, 17], generator=gens()), eager)


def test_compiled_decode_matches_eager_and_compiles_once():
    """Inductor: greedy tokens equal and log-probs close to eager, for ragged prompts past the window; one graph for
    every step of a generation (no recompile as the column moves) and none more for a second call."""
    torch._dynamo.reset()
    gpt = tiny_gpt(window=4, sinks=2, layer_pattern="LG", n_layer=2, n_head=2, n_kv_head=1, n_embd=16)
    eager = gpt.generate(PROMPTS, 24, temperature=0)
    gpt.compile_decode()
    graphs = counters["stats"]["unique_graphs"]
    same_outputs(gpt.generate(PROMPTS, 24, temperature=0), eager)
    assert counters["stats"]["unique_graphs"] == graphs + 1
    same_outputs(gpt.generate(PROMPTS, 24, temperature=0), eager)
    assert counters["stats"]["unique_graphs"] == graphs + 1


def test_compiled_forward_matches_eager():
    """Inductor, model.compile() as sft.py and rl.py --compile do: the SFT loss (summed over the supervised tokens
    of a right-padded batch) and every gradient match eager; the state dict keeps its keys."""
    torch._dynamo.reset()
    cfg = GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_kv_head=1, n_embd=16, block_size=64, window=4, sinks=1)
    torch.manual_seed(0)
    eager, compiled = GPT(cfg), GPT(cfg)
    compiled.load_state_dict(eager.state_dict())
    compiled.compile()
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 64, (3, 21), generator=g)
    targets = torch.where(torch.rand(3, 21, generator=g) < 0.3, -1, torch.randint(0, 64, (3, 21), generator=g))
    losses = []
    for m in (eager, compiled):
        loss = m(idx, targets)[1].sum()
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_decode_before_torch_2_13_compiles_the_model_part_and_samples_eagerly(monkeypatch):
    """Torch < 2.13 (pytorch#180221: Inductor's GPU code for the sampler's cumsum crashes, seen on an H200 with
    2.11): compile_decode compiles decode_logits alone (dynamo's eager backend here: the same trace, no Inductor)
    and samples outside the graph. Sampled tokens with per-row generators and EOS ids, and greedy ones, equal the
    eager generate's; one graph for the whole generation."""
    torch._dynamo.reset()
    monkeypatch.setattr(torch, "__version__", torch.torch_version.TorchVersion("2.11.0+cu130"))
    gpt = tiny_gpt(window=4, sinks=2, layer_pattern="LG", n_layer=2, n_head=2, n_kv_head=1, n_embd=16)
    gens = lambda: [torch.Generator().manual_seed(r) for r in range(len(PROMPTS) * 2)]  # noqa: E731
    eager = gpt.generate(PROMPTS, 24, temperature=0.9, num_samples=2, eos_ids=[3, 17], generator=gens())
    greedy = gpt.generate(PROMPTS, 24, temperature=0)
    graphs = counters["stats"]["unique_graphs"]
    gpt.compile_decode(backend="eager")
    same_outputs(gpt.generate(PROMPTS, 24, temperature=0.9, num_samples=2, eos_ids=[3, 17], generator=gens()), eager)
    assert counters["stats"]["unique_graphs"] == graphs + 1
    same_outputs(gpt.generate(PROMPTS, 24, temperature=0), greedy)


def test_compiled_forward_runs_the_shared_prompt_pass_inside_the_graph(monkeypatch):
    """GRPO's shared-prompt forward (grpo.SharedPrefix) passes the prompts through the model inside GPT.forward, so
    that --compile compiles that pass too (dynamo's eager backend: the tracing, not Inductor), and the log-probs
    equal the unshared layout's."""
    import grpo
    model = GPT(GPTConfig(vocab_size=64, n_layer=1, n_head=2, n_embd=32, block_size=64, window=4))
    rows = [{"prompt": [1, 2, 3, 4, 5], "tokens": t, "logprobs": [0.0] * len(t), "adv": 1.0}
            for t in ([6, 7, 8], [9, 10], [11, 12, 13, 14])]
    with torch.no_grad():
        x, col, toks, _, mask, _ = grpo.collate(rows, 0, "cpu", share_prompt=False)
        unshared = grpo.completion_logprobs(model, x, col, toks, mask, 1.0)
    compiling, run = [], grpo.SharedPrefix.run

    def recording_run(self, m):
        compiling.append(torch.compiler.is_compiling())
        return run(self, m)

    monkeypatch.setattr(grpo.SharedPrefix, "run", recording_run)
    model.compile(backend="eager")
    x, col, toks, _, mask, _ = grpo.collate(rows, 0, "cpu", share_prompt=True)
    assert x["prefix"] is not None
    with torch.no_grad():
        shared = grpo.completion_logprobs(model, x, col, toks, mask, 1.0)
    assert compiling and all(compiling)
    torch.testing.assert_close(shared, unshared, atol=1e-5, rtol=0)
