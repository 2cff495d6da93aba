import json
import random
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import torch

import data
from data import Dataset, load_dataset, pad_batch, trace_style

ROOT = Path(__file__).resolve().parents[1]


class ByteTok:
    """Byte tokens plus EOS/PAD; the 'plain' chat format puts each message on its own line."""
    eos_id, pad_id = 256, 257

    def encode(self, text):
        return list(text.encode())

    def decode(self, ids):
        return bytes(i for i in ids if i < 256).decode(errors="replace")

    def render_chat(self, messages, add_generation_prompt=True):
        return [i for m in messages for i in self.encode(m["content"] + "\n")]


def lagged_recompute(question):
    """The recurrence written independently: s[n] = (s[n-L] + s[n-1]) % 10 on one growing list."""
    s = [int(c) for c in question.rstrip("=")]
    L = len(s)
    for _ in range(8):
        s.append((s[len(s) - L] + s[len(s) - 1]) % 10)
    return str(s[-1])


def arith_recompute(question):
    values = {}
    for sentence in re.findall(r"[^.?]+[.?]", question):
        sentence = sentence.strip()
        if m := re.fullmatch(r"(\w+) has (\d+) \w+\.", sentence):
            values[m[1]] = int(m[2])
        elif m := re.fullmatch(r"(\w+) has (\d+) more \w+ than (\w+)\.", sentence):
            values[m[1]] = values[m[3]] + int(m[2])
        elif m := re.fullmatch(r"(\w+) has (\d+) fewer \w+ than (\w+)\.", sentence):
            values[m[1]] = values[m[3]] - int(m[2])
        elif m := re.fullmatch(r"(\w+) has (\d+) times as many \w+ as (\w+)\.", sentence):
            values[m[1]] = values[m[3]] * int(m[2])
        elif m := re.fullmatch(r"How many \w+ do (\w+) and (\w+) have together\?", sentence):
            return str(values[m[1]] + values[m[2]])
        else:
            raise AssertionError(f"unparsed sentence {sentence!r}")


# ---- synthetic


def test_synthetic_reproducible_and_seeded():
    a = load_dataset("synthetic", size=50, seed=0)
    b = load_dataset("synthetic", size=50, seed=0)
    c = load_dataset("synthetic", size=50, seed=1)
    assert a.examples == b.examples
    assert [e["question"] for e in a.examples] != [e["question"] for e in c.examples]
    # the first n examples do not depend on how many are generated
    assert load_dataset("synthetic", size=10, seed=0).examples == a.examples[:10]
    assert load_dataset("synthetic:arith", size=20, seed=3).examples == load_dataset("synthetic:arith", size=20, seed=3).examples


@pytest.mark.parametrize("task", ["lagged", "arith"])
def test_train_test_disjoint(task):
    train = {e["question"] for seed in (0, 1) for e in load_dataset(f"synthetic:{task}", "train", size=3000, seed=seed).examples}
    test = [e["question"] for e in load_dataset(f"synthetic:{task}", "test", size=300, seed=0).examples]
    assert len(set(test)) == len(test) == 300
    assert not train & set(test)


def test_lagged_answers_and_styles():
    ds = load_dataset("synthetic", size=300, seed=0)
    assert ds.instruction is None and ds.system is None
    for ex in ds.examples:
        q, ref, loc = ex["question"], ex["solutions"]["reference"], ex["solutions"]["local"]
        assert re.fullmatch(r"\d{6}=", q)
        assert ex["answer"] == lagged_recompute(q)
        assert ref.endswith(f"\\boxed{{{ex['answer']}}}") and loc.endswith(f"\\boxed{{{ex['answer']}}}")
        assert ex["solution"] == ex["solutions"][ex["style"]]
        # local = reference with the last 6 values restated before each step
        states = re.findall(r"\[(\d+)\]", loc)
        assert re.sub(r"\[\d+\]", "", loc) == ref and len(states) == 8
        seq = q[:6] + "".join(re.findall(r"=(\d);", ref))
        assert states == [seq[n:n + 6] for n in range(8)]
        assert [int(c) for c in re.findall(r"(\d+):", ref)] == list(range(1, 9))



def test_lagged_zero_frac_curriculum():
    # the default draws 6 uniform digits per question from the documented stream, nothing more (so zero_frac=0
    # leaves every seed's data as it was); train keeps the questions whose crc32 is not 0 mod 10
    rng, expected = random.Random("lagged/train/5"), []
    while len(expected) < 20:
        q = "".join(str(rng.randrange(10)) for _ in range(6)) + "="
        if not data._is_test_question(q):
            expected.append(q)
    for name in ("synthetic", "synthetic?zero_frac=0"):
        assert [ex["question"] for ex in load_dataset(name, size=20, seed=5).examples] == expected
    assert {ex["question"] for ex in load_dataset("synthetic?zero_frac=1", size=5).examples} == {"000000="}
    ds = load_dataset("synthetic?zero_frac=0.5", size=2000, seed=1)
    digits = "".join(ex["question"][:-1] for ex in ds.examples)
    assert abs(digits.count("0") / len(digits) - (0.5 + 0.5 / 10)) < 0.03  # 0 forced, or drawn uniformly
    assert all(ex["answer"] == lagged_recompute(ex["question"]) for ex in ds.examples)
    for bad in ("-0.1", "1.5"):
        with pytest.raises(ValueError, match="zero_frac"):
            load_dataset(f"synthetic?zero_frac={bad}", size=3)

def test_arith_answers_and_styles():
    ds = load_dataset("synthetic:arith", size=300, seed=0, steps=5)
    assert ds.instruction == data.DEFAULT_INSTRUCTION
    for ex in ds.examples:
        assert ex["answer"] == arith_recompute(ex["question"])
        for style in ("reference", "local"):
            assert ex["solutions"][style].endswith(f"The answer is \\boxed{{{ex['answer']}}}.")
        lines = ex["solutions"]["local"].split("\n")
        assert [ln for ln in lines if not ln.startswith("[")] == ex["solutions"]["reference"].split("\n")
        # every number a step reads is restated just before it
        for state, step in zip(lines[0:-1:2], lines[1::2]):
            operands = re.search(r"(\d+) [-+*] (\d+) =", step).groups()
            restated = re.findall(r"=(\d+)", state)
            assert any(o in restated for o in operands)


def test_local_frac_mix_keeps_questions():
    qs = lambda ds: [e["question"] for e in ds.examples]
    ref = load_dataset("synthetic", size=400, local_frac=0.0)
    loc = load_dataset("synthetic", size=400, local_frac=1.0)
    mix = load_dataset("synthetic", size=400)
    assert {e["style"] for e in ref.examples} == {"reference"} and {e["style"] for e in loc.examples} == {"local"}
    assert qs(ref) == qs(loc) == qs(mix)
    assert 0.12 < sum(e["style"] == "local" for e in mix.examples) / 400 < 0.28


def test_verify_compatibility():
    verify = pytest.importorskip("verify")
    for name in ("synthetic", "synthetic:arith"):
        for ex in load_dataset(name, size=50).examples:
            for text in ex["solutions"].values():
                assert verify.extract_answer(text) == ex["answer"]
                assert verify.is_correct(text, ex["answer"])


def test_trace_style():
    for name in ("synthetic", "synthetic:arith"):
        for ex in load_dataset(name, size=50).examples:
            assert trace_style(ex["solutions"]["reference"]) == "reference"
            assert trace_style(ex["solutions"]["local"]) == "local"
            # a truncated response is classified by what it has
            assert trace_style(ex["solutions"]["local"][:40]) == "local"
    assert trace_style("I think the answer is 7.") is None
    assert trace_style("") is None
    assert trace_style("She sold 48 + 24 = 72 clips.\nThe final answer is \\boxed{72}.") == "reference"
    assert trace_style("1:6+7=3;2:6+3=9;[604873]3:0+9=9;4:4+9=3;\\boxed{3}") == "reference"


def test_lookback_distances_match_the_window_rule():
    W = 18
    ex = load_dataset("synthetic", size=1).examples[0]
    ref = data.lagged_lookbacks(ex["question"], ex["solutions"]["reference"])
    loc = data.lagged_lookbacks(ex["question"], ex["solutions"]["local"])
    assert max(ref) == 8 * 6 - 11 == 37 > 2 * (W - 1)  # out of reach of 2 windowed layers
    assert max(ref) <= 3 * (W - 1)
    assert max(loc) == 15 <= W - 1  # one windowed layer suffices
    assert sum(g > 2 * (W - 1) for g in ref) == 4  # steps 5..8


def test_arith_knobs_of_the_real_model_experiment():
    """ops, jump and ask (runs/swarr_smollm2.sh): additions only, every quantity defined from the previous one, and
    the question asking for the first computed quantity, so the reference style's last line reads line 1's value."""
    ds = load_dataset("synthetic:arith?steps=6&max_value=9&ops=add&jump=0&ask=1", size=200, seed=0)
    for ex in ds.examples:
        assert ex["answer"] == arith_recompute(ex["question"])  # an independent parse of the question
        facts = re.findall(r"(\w+) has (\d+)(?: more \w+ than (\w+))?", ex["question"])
        assert len(facts) == 6 and all(int(k) <= 9 for _, k, _ in facts)
        assert [ref for _, _, ref in facts[1:]] == [name for name, _, _ in facts[:-1]]  # jump=0: the previous one
        assert f"do {facts[1][0]} and {facts[-1][0]} have together?" in ex["question"]  # ask=1
        ref = ex["solutions"]["reference"].split("\n")
        assert not re.search(r" [-*] ", ex["solutions"]["reference"])
        assert re.search(r"= (\d+)", ref[0])[1] == re.search(r"have (\d+) \+", ref[-2])[1]
    default = load_dataset("synthetic:arith", size=50, seed=0).examples  # the defaults draw what they always drew
    assert any(" - " in ex["solution"] for ex in default) and any(" * " in ex["solution"] for ex in default)
    for bad in ("ops=div", "ops=", "jump=1.5", "ask=5", "ask=-1"):
        with pytest.raises(ValueError, match="synthetic:arith needs"):
            load_dataset(f"synthetic:arith?steps=6&{bad}", size=3)


def test_arith_errors_reads_the_real_model_task(tmp_path, monkeypatch):
    """runs/arith_errors.py on the task's own solutions (data.py writes them, both styles: every final line and sum
    right), then on hand-broken copies: line 1's value replaced in the final line, and one dropped carry."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "runs"))
    import arith_errors
    ds = load_dataset("synthetic:arith?steps=6&max_value=9&ops=add&jump=0&ask=1", size=50, seed=0)
    for ex in ds.examples:
        for style in ("reference", "local"):
            final, sums = arith_errors.check(ex["solutions"][style])
            assert final is True and len(sums) == 6 and all(a + b == c for a, b, c in sums)
    final, sums = arith_errors.check("Ivy has 4 + 5 = 9 coins.\nDee has 9 + 3 = 12 coins.\n"
                                     "Together Ivy and Dee have 4 + 12 = 16 coins.")  # 4: Kim's, not Ivy's 9
    assert final is False and sums == [(4, 5, 9), (9, 3, 12), (4, 12, 16)]
    final, sums = arith_errors.check("Ivy has 18 + 2 = 10 coins.\nTogether Ivy and Ivy have 10 + 10 = 20 coins.")
    assert final is True and [(a, b, c) for a, b, c in sums if a + b != c] == [(18, 2, 10)]
    assert arith_errors.check("no steps here") == (None, [])
    records = [{"correct": True, "response": ds.examples[0]["solutions"]["local"]},
               {"correct": False, "response": "Ivy has 18 + 2 = 10 coins."}]
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert arith_errors.summarize(str(tmp_path / "e.jsonl")) == {
        "file": str(tmp_path / "e.jsonl"), "problems": 2, "answers_right": 1, "final_lines": 1,
        "final_line_right": 1, "sum_lines": 7, "sums_wrong": 1, "dropped_carries": 1}
    (tmp_path / "bad.jsonl").write_text("not json\n")
    for bad in (tmp_path / "bad.jsonl", tmp_path / "missing.jsonl"):
        with pytest.raises(SystemExit, match="error: .*not eval.py's per-problem JSONL"):
            arith_errors.main([str(bad)])


def test_name_knobs_and_bad_names():
    ds = load_dataset("synthetic:lagged?n_digits=4&n_steps=5", size=5)
    ex = ds.examples[0]
    assert len(ex["question"]) == 5 and ex["solutions"]["reference"].count(";") == 5
    assert load_dataset("synthetic?local_frac=1", size=3).examples[0]["style"] == "local"
    for bad, match in [("synthetic?bogus=1", "unknown knobs"), ("synthetic:nope", "unknown synthetic task"),
                       ("wikitext", "unknown dataset"), ("synthetic?n_digits=x", "should be int"),
                       ("synthetic?n_digits=0", "n_digits >= 1"), ("synthetic:arith?steps=1", "steps")]:
        with pytest.raises(ValueError, match=match):
            load_dataset(bad, size=3)
    with pytest.raises(ValueError, match="split"):
        load_dataset("synthetic", split="validation")
    start = time.time()
    with pytest.raises(ValueError, match=r"size must be in \[1, 1,000,000\]"):  # at once, not after hours
        load_dataset("synthetic?size=1000000000")
    assert time.time() - start < 1
    with pytest.raises(ValueError, match="distinct test questions"):
        load_dataset("synthetic?n_digits=2", split="test", size=50)


# ---- rendering and batching


def test_render_for_sft_mask_hand_built():
    tok = ByteTok()
    ds = Dataset(name="hand", examples=[], instruction=None)
    ex = {"question": "ab", "answer": "1", "solution": "xy"}
    assert ds.render_prompt(tok, ex) == [97, 98, 10]
    ids, mask = ds.render_for_sft(tok, ex)
    assert ids == [97, 98, 10, 120, 121, 256]
    assert mask == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="no solution"):
        ds.render_for_sft(tok, {"question": "ab", "answer": "1", "solution": None})


def test_render_prompt_instruction_and_system():
    tok = ByteTok()
    ds = Dataset(name="t", examples=[], system="S", instruction="Do it.")
    ex = {"question": "Q?", "answer": "1", "solution": "s"}
    assert tok.decode(ds.render_prompt(tok, ex)) == "S\nQ?\nDo it.\n"
    lagged = load_dataset("synthetic", size=1)
    ex = lagged.examples[0]
    ids, mask = lagged.render_for_sft(tok, ex)
    assert tok.decode(ids[:mask.index(1)]) == ex["question"] + "\n"
    assert tok.decode(ids[mask.index(1):]) == ex["solution"] and ids[-1] == tok.eos_id
    assert sum(mask) == len(ex["solution"]) + 1


def test_render_with_the_real_byte_tokenizer():
    tokenizer = pytest.importorskip("tokenizer")
    tok = tokenizer.Tokenizer.byte_level()
    ds = load_dataset("synthetic", size=2)
    for ex in ds.examples:
        prompt = ds.render_prompt(tok, ex)
        ids, mask = ds.render_for_sft(tok, ex)
        assert ids[:len(prompt)] == prompt and mask == [0] * len(prompt) + [1] * (len(ids) - len(prompt))
        assert tok.decode(ids[len(prompt):-1]) == ex["solution"] and ids[-1] == tok.eos_id


def test_pad_batch_hand_checked():
    seqs = [[1, 2, 3, 4], [5, 6]]
    masks = [[0, 0, 1, 1], [0, 1]]
    idx, targets = pad_batch(seqs, masks, pad_id=0)
    assert idx.dtype == targets.dtype == torch.long
    assert idx.tolist() == [[1, 2, 3], [5, 0, 0]]
    assert targets.tolist() == [[-1, 3, 4], [6, -1, -1]]
    with pytest.raises(ValueError):
        pad_batch([[1, 2]], [[0]], pad_id=0)
    with pytest.raises(ValueError):
        pad_batch([[1]], [[1]], pad_id=0)
    idx, targets = pad_batch([[1, 2, 3], [7], []], [[0, 1, 1], [1], []], pad_id=9)  # rows too short to train on
    assert idx.tolist() == [[1, 2], [9, 9], [9, 9]] and targets.tolist() == [[2, 3], [-1, -1], [-1, -1]]


# ---- jsonl


def test_jsonl_custom_fields_and_malformed_rows(tmp_path):
    lines = [
        json.dumps({"problem": "What is 2+2?", "gold": "4", "work": "2+2=4. \\boxed{4}"}),
        json.dumps({"problem": "What is 3*3?", "gold": 9}),  # numeric answer, no solution
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"problem": "", "gold": "1"}),
        json.dumps({"problem": "No answer"}),
        json.dumps({"problem": "Bad solution", "gold": "1", "work": 5}),
        "",
        json.dumps({"question": "default keys", "answer": "1"}),  # wrong field names here: malformed
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ds = load_dataset(f"jsonl:{path}", question_key="problem", answer_key="gold", solution_key="work")
    assert ds.examples == [
        {"question": "What is 2+2?", "answer": "4", "solution": "2+2=4. \\boxed{4}"},
        {"question": "What is 3*3?", "answer": "9", "solution": None},
    ]
    assert ds.skipped == 6
    assert ds.skip_reasons == {"not JSON": 1, "not an object": 1, "no question": 2, "no answer": 1,
                               "solution not a string": 1}
    assert ds.instruction == data.DEFAULT_INSTRUCTION
    # knobs in the name, and {split} in the path; without solution_key=work the non-string "work" is not read
    ds = load_dataset(f"jsonl:{tmp_path}/{{split}}.jsonl?question_key=problem&answer_key=gold&size=1")
    assert len(ds) == 1 and ds.skipped == 5 and ds.examples[0]["solution"] is None


def test_jsonl_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such jsonl file") as e:
        load_dataset(f"jsonl:{tmp_path}/missing.jsonl")
    assert "\n" not in str(e.value)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("oops\n[1]\n")
    with pytest.raises(ValueError, match=r"no usable rows \(1 not JSON, 1 not an object\)") as e:
        load_dataset(f"jsonl:{bad}")
    assert "\n" not in str(e.value)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="the file is empty"):
        load_dataset(f"jsonl:{empty}")
    with pytest.raises(ValueError, match="unknown knobs"):
        load_dataset(f"jsonl:{bad}", question_kye="q")


# ---- hub sources, hermetic: a fake `datasets` module stands in for the hub


def fake_datasets(monkeypatch, load):
    monkeypatch.setattr(data, "_hub_reachable", lambda: True)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load))


def test_hub_offline_is_one_quick_line(monkeypatch):
    def refuse(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)\nmore detail")
    fake_datasets(monkeypatch, refuse)
    start = time.time()
    with pytest.raises(ValueError) as e:
        load_dataset("gsm8k")
    message = str(e.value)
    assert message.startswith("could not load openai/gsm8k from the Hugging Face hub (no internet?): "
                              "use --data=jsonl:/path/file.jsonl or --data=synthetic")
    assert "\n" not in message and "ConnectionError" in message
    assert time.time() - start < 1
    # without DNS the probe fails before datasets is even asked
    monkeypatch.setattr(data, "_hub_reachable", lambda: False)
    for name, repo in [("math", "DigitalLearningGmbH/MATH-lighteval"), ("math500", "HuggingFaceH4/MATH-500")]:
        with pytest.raises(ValueError, match=f"could not load {repo} from the Hugging Face hub"):
            load_dataset(name, "test")


def test_gsm8k_and_math_rows(monkeypatch):
    rows = {
        "openai/gsm8k": [
            {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
             "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                       "Natalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72"},
            {"question": "Big?", "answer": "It is 1000 + 234 = <<1000+234=1234>>1234.\n#### 1,234"},
            {"question": "no gold", "answer": "no hashes"},
            {"question": "", "answer": "x\n#### 3"},
        ],
        "DigitalLearningGmbH/MATH-lighteval": [
            {"problem": "Find x.", "solution": "So $x = \\boxed{\\frac{1}{2}}$.", "level": "Level 1", "type": "Algebra"},
            {"problem": "No box.", "solution": "It is 3."},
        ],
        "HuggingFaceH4/MATH-500": [{"problem": "P", "solution": "S \\boxed{5}", "answer": "5"}, {"problem": "P"}],
    }
    calls = []

    def load(repo, *config, split):
        calls.append((repo, config, split))
        return rows[repo]
    fake_datasets(monkeypatch, load)

    ds = load_dataset("gsm8k", "test")
    assert calls[-1] == ("openai/gsm8k", ("main",), "test")
    assert ds.skipped == 2 and [e["answer"] for e in ds.examples] == ["72", "1234"]
    assert ds.examples[0]["solution"] == ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether."
                                          "\nThe final answer is \\boxed{72}.")
    assert ds.examples[1]["solution"].endswith("\\boxed{1234}.")
    ds = load_dataset("math", "train")
    assert calls[-1] == ("DigitalLearningGmbH/MATH-lighteval", ("default",), "train")
    assert ds.examples[0]["answer"] == "\\frac{1}{2}" and ds.skipped == 1
    ds = load_dataset("math500", "test", size=1)
    assert calls[-1] == ("HuggingFaceH4/MATH-500", (), "test")
    assert ds.examples == [{"question": "P", "answer": "5", "solution": "S \\boxed{5}"}]
    with pytest.raises(ValueError, match="no train split"):
        load_dataset("math500", "train")


# ---- real data forms in jsonl, hostile rows, SFT without solutions

NATALIA = {"question": "Natalia sold 48 clips in April and half as many in May. How many in all?",
           "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                     "Natalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72"}
NATALIA_SOLUTION = ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether.\n"
                    "The final answer is \\boxed{72}.")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_reads_gsm8k_math_and_plain_rows(tmp_path, monkeypatch):
    gsm8k = [NATALIA, {"question": " Big? ", "answer": "It is 1000 + 234 = <<1000+234=1234>>1234.\n#### 1,234"}]
    math_rows = [{"problem": "Find x.", "solution": "So $x = \\boxed{\\frac{1}{2}}$.", "level": "Level 1"},
                 {"question": "Square it.", "solution": "First \\boxed{1}, finally \\boxed{x^{2}}."}]
    plain = [{"question": "What is 2+3?", "answer": 5},
             {"problem": "P", "answer": "7", "solution": "S \\boxed{8}"}]  # a given answer wins over the boxed one
    path = write_jsonl(tmp_path / "mixed.jsonl", gsm8k + math_rows + plain)
    ds = load_dataset(f"jsonl:{path}")
    assert ds.skip_reasons == {}
    assert ds.examples == [
        {"question": NATALIA["question"], "answer": "72", "solution": NATALIA_SOLUTION},
        {"question": "Big?", "answer": "1234",
         "solution": "It is 1000 + 234 = 1234.\nThe final answer is \\boxed{1234}."},
        {"question": "Find x.", "answer": "\\frac{1}{2}", "solution": "So $x = \\boxed{\\frac{1}{2}}$."},
        {"question": "Square it.", "answer": "x^{2}", "solution": "First \\boxed{1}, finally \\boxed{x^{2}}."},
        {"question": "What is 2+3?", "answer": "5", "solution": None},
        {"question": "P", "answer": "7", "solution": "S \\boxed{8}"},
    ]
    # the hub loaders give the same examples from the same rows: one converter per form
    fake_datasets(monkeypatch, lambda repo, *config, split: {"openai/gsm8k": gsm8k,
                                                               "DigitalLearningGmbH/MATH-lighteval": math_rows,
                                                               "HuggingFaceH4/MATH-500": plain}[repo])
    assert load_dataset("gsm8k").examples == ds.examples[:2]
    assert load_dataset("math").examples == ds.examples[2:4]
    assert load_dataset("math500", "test").examples == ds.examples[4:]
    # the field-name knobs apply to every form
    renamed = [{"q": r["question"], "a": r["answer"]} for r in gsm8k]
    renamed.append({"q": "Find x.", "work": math_rows[0]["solution"]})
    path = write_jsonl(tmp_path / "renamed.jsonl", renamed)
    ds2 = load_dataset(f"jsonl:{path}?question_key=q&answer_key=a&solution_key=work")
    assert ds2.examples == ds.examples[:3] and ds2.skipped == 0


def test_hostile_rows_are_skipped_and_counted(tmp_path):
    deep = b"[" * 200_000 + b"]" * 200_000
    lines = [
        b'\xef\xbb\xbf{"question": "BOM first", "answer": "1"}',  # an editor's byte-order mark: a good row
        deep,
        b'{"question": "deep", "answer": "1", "x": ' + deep + b"}",
        b'{"question": "big", "answer": ' + b"9" * 5000 + b"}",
        b'{"question": "big but allowed", "answer": ' + b"9" * 4000 + b"}",
        b'{"question": "caf\xe9", "answer": "1"}',  # latin-1
        b"\xff\xfe\x00{\x00",  # UTF-16
        b'{"question": "\\ud800", "answer": "1"}',  # a lone surrogate, escaped
        b'{"question": "ok", "answer": "1", "solution": "bad \\udfff"}',
        b'{"question": "cut off',
        b"[1, 2]", b'"a string"', b"42", b"null",
        b'{"answer": "1"}', b'{"question": "   ", "answer": "1"}', b'{"question": ["a"], "answer": "1"}',
        b'{"question": "q", "answer": true}', b'{"question": "q", "answer": NaN}', b'{"question": "q", "answer": ""}',
        b'{"question": "q", "answer": {"v": 1}}', b'{"question": "q", "answer": "x\\n#### "}',
        b'{"problem": "p", "solution": "no box here"}',
        b'{"question": "q", "answer": "1", "solution": 3}',
        b"   ", b"",  # blank lines are not rows
        b'{"question": "last", "answer": "2"}\r',  # CRLF line ends
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines))
    start = time.time()
    ds = load_dataset(f"jsonl:{path}")
    assert time.time() - start < 5
    assert [e["question"] for e in ds.examples] == ["BOM first", "big but allowed", "last"]
    assert ds.examples[1]["answer"] == "9" * 4000
    expected = {"nested too deep": 2, "integer too long": 1, "not UTF-8": 4, "not JSON": 1, "not an object": 4,
                "no question": 3, "no answer": 6, "solution not a string": 1}
    assert ds.skip_reasons == expected
    assert ds.skipped == sum(expected.values()) == 22
    assert ds.skip_report() == ("22 malformed rows skipped (6 no answer, 4 not UTF-8, 4 not an object, 3 no question, "
                                "2 nested too deep, 1 integer too long, 1 not JSON, 1 solution not a string)")
    # a file of bad rows only: one line that says what was wrong
    path.write_bytes(b"\n".join(lines[1:4] + lines[5:8]))
    with pytest.raises(ValueError, match=r"no usable rows \(3 not UTF-8, 2 nested too deep, 1 integer too long\)") as e:
        load_dataset(f"jsonl:{path}")
    assert "\n" not in str(e.value)


def test_gold_answers_must_be_numbers_or_readable(tmp_path):
    """A GSM8K gold answer is a plain number (thousands separators well formed); a MATH or plain one must have
    balanced braces and, when it is a number, a finite one. Other rows are skipped and counted, never trained on."""
    gsm8k = {"72": "72", "-3": "-3", "0.5": "0.5", "1,234": "1234", "12,345,678.25": "12345678.25",
             "1,2,3": None, "1,23": None, "1234,567": None, "seventy": None, "nan": None, "inf": None,
             "1e400": None, "}{": None, "1/2": None, "$5": None}
    plain = {"\\frac{1}{2}": "\\frac{1}{2}", "\\{1, 2\\}": "\\{1, 2\\}", "Monday": "Monday", "7" * 400: "7" * 400,
             "}{": None, "{": None, "a}": None, "nan": None, "-inf": None, "1e400": None}
    rows = [{"question": f"g{i}", "answer": f"Work.\n#### {gold}"} for i, gold in enumerate(gsm8k)]
    rows += [{"question": f"p{i}", "answer": gold} for i, gold in enumerate(plain)]
    ds = load_dataset(f"jsonl:{write_jsonl(tmp_path / 'golds.jsonl', rows)}")
    want = [v for v in gsm8k.values() if v] + [v for v in plain.values() if v]
    assert [e["answer"] for e in ds.examples] == want
    assert ds.skip_reasons == {"answer not a number": 10, "answer not readable": 6}
    assert [e["solution"] for e in ds.examples[:5]] == [f"Work.\nThe final answer is \\boxed{{{g}}}." for g in want[:5]]


def test_sft_skips_and_counts_examples_without_a_solution(tmp_path):
    rows = [NATALIA, {"question": "No work shown", "answer": "3"},
            {"problem": "Find x.", "solution": "x = \\boxed{2}"}, {"question": "Q", "answer": "1", "solution": "  "},
            {"question": "Q2", "answer": "4", "solution": "2 + 2 = \\boxed{4}"}]
    ds = load_dataset(f"jsonl:{write_jsonl(tmp_path / 'some.jsonl', rows)}", instruction="")
    assert len(ds) == 5 and ds.skipped == 0
    with_solutions = ds.with_solutions()
    assert [e["question"] for e in with_solutions.examples] == [NATALIA["question"], "Find x.", "Q2"]
    assert with_solutions.skip_reasons == {"no solution": 2} and len(ds) == 5  # a copy: ds is unchanged
    assert with_solutions.with_solutions() == with_solutions
    tok = ByteTok()
    seqs, masks, n_targets, dropped = data.sft_examples(ds, tok, max_len=10_000)
    assert dropped == 0 and len(seqs) == 3
    for ids, mask, ex in zip(seqs, masks, with_solutions.examples):
        assert tok.decode(ids) == ex["question"] + "\n" + ex["solution"]
        assert tok.decode([i for i, m in zip(ids, mask) if m]) == ex["solution"] and ids[-1] == tok.eos_id
    # none left: one line, from the dataset and from sft_examples
    ds = load_dataset(f"jsonl:{write_jsonl(tmp_path / 'none.jsonl', rows[1:2] * 2)}")
    for call in (ds.with_solutions, lambda: data.sft_examples(ds, tok, max_len=10_000)):
        with pytest.raises(ValueError, match="each of the 2 examples has no solution and SFT needs one") as e:
            call()
        assert "\n" not in str(e.value)


GSM8K_DIR = ROOT.parent / "shared" / "data" / "gsm8k"


def without_annotations(text):
    """Drop every <<...>> calculator annotation, by scanning (data.py uses a regex)."""
    while "<<" in text:
        start = text.index("<<")
        text = text[:start] + text[text.index(">>", start) + 2:]
    return text


@pytest.mark.skipif(not (GSM8K_DIR / "test.jsonl").is_file(),
                    reason=f"no offline GSM8K copy at {GSM8K_DIR} (../shared is not part of a clone)")
@pytest.mark.parametrize("split, n_rows", [("train", 7473), ("test", 1319)])
def test_real_gsm8k_jsonl(monkeypatch, split, n_rows):
    monkeypatch.chdir(ROOT)  # the path as the README gives it, relative to the repository root
    ds = load_dataset("jsonl:../shared/data/gsm8k/{split}.jsonl", split)
    raw = [json.loads(line) for line in (GSM8K_DIR / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(raw) == len(ds) == n_rows and ds.skip_reasons == {}
    for i in [0, 1, n_rows - 1] + random.Random(0).sample(range(n_rows), 30):
        row = raw[i]
        work, gold = row["answer"].split("\n#### ")  # every real row ends in exactly one "#### N" line
        gold = gold.replace(",", "")
        assert ds.examples[i] == {"question": row["question"], "answer": gold,
                                  "solution": without_annotations(work) + f"\nThe final answer is \\boxed{{{gold}}}."}
    assert ds.examples[0]["answer"] == "72" if split == "train" else "18"
    verify = pytest.importorskip("verify")
    assert all(verify.extract_answer(e["solution"]) == e["answer"] for e in ds.examples)
    assert len(ds.with_solutions()) == n_rows
    # the hub loader, fed the same rows, gives the same examples
    fake_datasets(monkeypatch, lambda repo, *config, split: raw)
    assert load_dataset("gsm8k", split).examples == ds.examples


# ---- command line


def test_cli_prints_both_styles():
    out = subprocess.run([sys.executable, "data.py", "--data=synthetic", "--n=2"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("reference: ") == 2 and out.stdout.count("local: [") == 2
    out = subprocess.run([sys.executable, "data.py", "--data=jsonl:/no/such.jsonl"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and out.stderr.strip().count("\n") == 0 and "no such jsonl file" in out.stderr
