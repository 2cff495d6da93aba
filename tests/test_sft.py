"""sft.py: loss masking, learning, exact resume, DDP equivalence, clear errors, the defaults. SFT of the real
SmolLM2 model is in test_smollm2.py."""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm import tqdm

import common
import data
import model as model_lib
import sft
from model import GPT, GPTConfig
from helpers import generate_naive, metrics, train_losses
from tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]

# A tiny scratch model on a small synthetic set: each run takes about a second.
TINY = ["--init=scratch", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=192", "--window=8",
        "--data=synthetic?size=256", "--max_len=192", "--batch_size=4", "--lr=3e-3", "--warmup=2",
        "--eval_every=0", "--eval_limit=0", "--save_every=0", "--seed=0", "--device=cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")




def checkpoint(out_dir):
    weights = load_file(os.path.join(out_dir, "model.safetensors"))
    state = torch.load(os.path.join(out_dir, "train_state.pt"), weights_only=True)
    return weights, state


def test_loss_counts_only_assistant_tokens(tmp_path):
    """The logged step-1 loss equals cross-entropy computed by hand over the solution + EOS tokens of the global
    batch (one normalizer over two micro-batches), and differs from the loss over every token."""
    argv = TINY + ["--steps=1", "--grad_accum=2", "--batch_size=2", f"--out_dir={tmp_path}"]
    sft.main(argv)
    logged = train_losses(tmp_path)[1]

    # the same model, data and first global batch, rebuilt by hand
    tok = Tokenizer.byte_level()
    common.seed_everything(0)
    ref_model = GPT(GPTConfig(vocab_size=tok.vocab_size, n_layer=1, n_head=2, n_embd=32, block_size=192, window=8))
    train = data.load_dataset("synthetic?size=256", "train", seed=0, local_frac=0.2)
    seqs, masks, _, _ = data.sft_examples(train, tok, 192)
    batch = data.epoch_batches([len(s) for s in seqs], 4, seed=0, epoch=0)[0]

    total, count, total_all, count_all = 0.0, 0, 0.0, 0
    for i in batch:
        ids, mask = seqs[i], masks[i]
        # the supervised tokens are exactly the solution and the EOS
        supervised = [t for t, m in zip(ids, mask) if m]
        assert supervised[-1] == tok.eos_id and tok.decode(supervised[:-1]) in {e["solution"] for e in train.examples}
        assert mask[0] == 0 and sum(mask) < len(mask)
        with torch.no_grad():
            logits, _ = ref_model(torch.tensor([ids[:-1]]))  # (1, T, V)
        logp = F.log_softmax(logits[0].double(), dim=-1)
        for t in range(len(ids) - 1):
            nll = -logp[t, ids[t + 1]].item()
            total_all, count_all = total_all + nll, count_all + 1
            if mask[t + 1]:
                total, count = total + nll, count + 1
    assert logged == pytest.approx(total / count, rel=1e-5)
    assert abs(logged - total_all / count_all) > 1e-3


def test_tiny_model_learns_synthetic(tmp_path):
    argv = TINY + ["--n_layer=2", "--n_embd=64", "--batch_size=8", "--steps=60", "--warmup=5", "--eval_every=60",
                   "--eval_examples=32", "--eval_limit=4", f"--out_dir={tmp_path}"]
    last = sft.main(argv)
    evals = [r for r in metrics(tmp_path) if "eval_loss" in r]
    assert [r["step"] for r in evals] == [0, 60]
    assert evals[-1]["eval_loss"] < 0.5 * evals[0]["eval_loss"], evals
    # the in-loop greedy accuracy, recomputed with the full-recompute generator (no KV cache) and verify.py
    model, tok = __import__("convert").load_model(str(tmp_path), device="cpu", dtype="float32")
    test_set = data.load_dataset("synthetic?size=256", "test", seed=0)
    prompts = [test_set.render_prompt(tok, ex) for ex in test_set.examples[:4]]
    budget = 192 - max(map(len, prompts))  # sft.py's eval: max_len minus the longest prompt
    solved = 0
    for ex, prompt in zip(test_set.examples[:4], prompts):
        out = generate_naive(model, [prompt], budget, temperature=0.0, eos_ids=tok.eos_ids)[0]
        solved += __import__("verify").is_correct(tok.decode(out["tokens"][:-1] if out["finished"] else
                                                             out["tokens"]), ex["answer"])
    assert last["accuracy"] == solved / 4
    cfg = json.load(open(tmp_path / "config.json"))["model"]
    assert cfg["window"] == 8 and cfg["n_layer"] == 2
    assert json.load(open(tmp_path / "run_config.json"))["steps"] == 60


def test_grad_checkpointing_changes_nothing_but_memory(tmp_path):
    for flag in ("false", "true"):
        sft.main(TINY + ["--steps=2", f"--grad_checkpointing={flag}", f"--out_dir={tmp_path / flag}"])
    assert train_losses(tmp_path / "false") == train_losses(tmp_path / "true")
    (w_plain, _), (w_ckpt, _) = checkpoint(tmp_path / "false"), checkpoint(tmp_path / "true")
    for name in w_plain:
        torch.testing.assert_close(w_plain[name], w_ckpt[name], atol=1e-6, rtol=0)


def test_resume_is_exact(tmp_path, monkeypatch):
    """10 steps straight == 5 steps, a crash at step 7, and a resume from the step-5 checkpoint: bit for bit."""
    common_args = TINY + ["--steps=10", "--batch_size=2", "--grad_accum=2", "--save_every=5"]
    sft.main(common_args + [f"--out_dir={tmp_path / 'straight'}"])

    forward, calls = model_lib.GPT.forward, []

    def crashing_forward(self, *args, **kwargs):
        calls.append(1)
        if len(calls) > 14:  # 2 micro-batches per step: the crash hits during step 8
            raise RuntimeError("simulated crash")
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(model_lib.GPT, "forward", crashing_forward)
    with pytest.raises(RuntimeError, match="simulated crash"):
        sft.main(common_args + [f"--out_dir={tmp_path / 'resumed'}"])
    monkeypatch.setattr(model_lib.GPT, "forward", forward)
    assert checkpoint(tmp_path / "resumed")[1]["step"] == 5
    # the saved run config supplies every other flag
    sft.main(["--resume=true", f"--out_dir={tmp_path / 'resumed'}"])

    (w_a, s_a), (w_b, s_b) = checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "resumed")
    assert s_a["step"] == s_b["step"] == 10 and (s_a["epoch"], s_a["cursor"]) == (s_b["epoch"], s_b["cursor"])
    assert w_a.keys() == w_b.keys()
    for name in w_a:
        assert torch.equal(w_a[name], w_b[name]), name
    opt_a, opt_b = s_a["optimizer"]["state"], s_b["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys()
    for p in opt_a:
        for key in opt_a[p]:
            assert torch.equal(opt_a[p][key], opt_b[p][key]), (p, key)
    assert train_losses(tmp_path / "straight") == train_losses(tmp_path / "resumed")
    assert [r["step"] for r in metrics(tmp_path / "resumed")] == list(range(1, 11))


# sft.main under torchrun, noting how many DDP wrappers are alive when the process group is destroyed: DDP's C++
# reducer must not be the group's last holder (its destructor would tear the group down holding the GIL, which
# deadlocks against gloo's threads now and then; a stack of such a hang showed it)
DDP_DRIVER = """
import gc, os, sys
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
import sft
destroy = dist.destroy_process_group
def noted(*args, **kwargs):
    with open(f"ddp_alive{os.environ['RANK']}", "w") as f:
        f.write(str(sum(isinstance(o, DistributedDataParallel) for o in gc.get_objects())))
    destroy(*args, **kwargs)
dist.destroy_process_group = noted
sft.main(sys.argv[1:])
"""


def test_ddp_two_processes_match_one(tmp_path):
    """2 processes x batch 2 under torchrun (gloo) == 1 process x 2 micro-batches of 2: same losses and weights; no
    DDP wrapper left when the process group goes."""
    args = TINY + ["--steps=3", "--batch_size=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    (tmp_path / "driver.py").write_text(DDP_DRIVER)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(tmp_path / "driver.py"), *args, f"--out_dir={tmp_path / 'ddp'}"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [(tmp_path / f"ddp_alive{rank}").read_text() for rank in (0, 1)] == ["0", "0"]
    sft.main(args + ["--grad_accum=2", f"--out_dir={tmp_path / 'single'}"])

    ddp, single = train_losses(tmp_path / "ddp"), train_losses(tmp_path / "single")
    assert ddp.keys() == single.keys() == {1, 2, 3}
    for step in ddp:
        assert ddp[step] == pytest.approx(single[step], abs=1e-5)
    (w_ddp, s_ddp), (w_one, _) = checkpoint(tmp_path / "ddp"), checkpoint(tmp_path / "single")
    assert s_ddp["global_batch"] == 4
    for name in w_one:
        torch.testing.assert_close(w_ddp[name], w_one[name], atol=1e-5, rtol=0)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    forward, calls = model_lib.GPT.forward, []

    def nan_after_three_steps(self, *args, **kwargs):
        logits, loss = forward(self, *args, **kwargs)
        calls.append(1)
        return logits, loss * float("nan") if len(calls) > 3 else loss

    monkeypatch.setattr(model_lib.GPT, "forward", nan_after_three_steps)
    with pytest.raises(SystemExit) as exit_info:
        sft.main(TINY + ["--steps=10", "--save_every=2", f"--out_dir={tmp_path}"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"error: loss is nan at step 4; the last good checkpoint is in {tmp_path}"
    weights, state = checkpoint(tmp_path)
    assert state["step"] == 2 and all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize("flag, message", [
    ("--window=0", "--window: must be a positive integer"),
    ("--batch_size=0", "--batch_size=0 is out of range"),
    ("--lr=nan", "--lr=nan is out of range"),
    ("--warmup=-1", "--warmup=-1 is out of range"),
    ("--grad_clip=inf", "--grad_clip=inf is out of range"),
    ("--sinks=-2", "--sinks: must be >= 0"),
    ("--layer_pattern=LX", "--layer_pattern: expected keep, none or a string of L"),
    ("--attn_backend=magic", "--attn_backend: invalid choice"),
    ("--init=no/such/dir", "is not a directory"),
    ("--data=no_such_set", "unknown dataset"),
    ("--max_len=20", "fewer than one global batch"),
    ("--resume=true", "no sft.py checkpoint"),
])
def test_bad_flags_give_one_line_errors(tmp_path, capsys, flag, message):
    with pytest.raises(SystemExit) as exit_info:
        sft.main(TINY + [flag, f"--out_dir={tmp_path / 'out'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("rows, message", [(None, "no such jsonl file"),
                                           ('{"question": "1+1?", "answer": "2"}\nnot json\n',
                                            "has no solution and SFT needs one")])
def test_bad_data_gives_one_line_error(tmp_path, capsys, rows, message):
    path = tmp_path / "rows.jsonl"
    if rows is not None:
        path.write_text(rows)
    with pytest.raises(SystemExit) as exit_info:
        sft.main(TINY + [f"--data=jsonl:{path}", f"--out_dir={tmp_path / 'out'}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_defaults_follow_the_init(tmp_path):
    """From scratch: the toy's defaults. From a pretrained model: the real recipe's (window 256 + 4 sinks, lr 1e-5,
    GSM8K, max_len 512), printed and saved; a window the init already has is kept unless --window is given."""
    import sys
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import make_hf_dir
    toy = sft.parse_args([])
    assert (toy.profile, toy.lr, toy.data, toy.max_len, toy.window) == ("toy", 3e-3, "synthetic", 256, "keep")
    hf_dir, _ = make_hf_dir(tmp_path / "hf", "llama", max_position_embeddings=1024)
    args = sft.parse_args([f"--init=hf:{hf_dir}"])
    assert (args.profile, args.lr, args.data, args.max_len, args.batch_size) == ("pretrained", 1e-5, "gsm8k", 512, 8)
    model, _, _ = sft.build_model(args, "cpu")
    assert (model.config.window, model.config.sinks) == (256, 4) == (args.window, args.sinks)
    args = sft.parse_args([f"--init=hf:{hf_dir}", "--window=none"])
    assert sft.build_model(args, "cpu")[0].config.window is None
    scratch = sft.parse_args(["--n_layer=1", "--n_embd=32", "--n_head=2"])
    assert sft.build_model(scratch, "cpu")[0].config.window == 18
    # a toy checkpoint keeps the toy profile and its own window
    sft.main(TINY + ["--steps=1", f"--out_dir={tmp_path / 'toy'}"])
    saved = json.loads((tmp_path / "toy" / "run_config.json").read_text())
    assert saved["profile"] == "toy" and saved["window"] == 8
    again = sft.parse_args([f"--init={tmp_path / 'toy'}"])
    assert again.profile == "toy" and sft.build_model(again, "cpu")[0].config.window == 8


@pytest.mark.parametrize("flags, expected", [
    # (flags given, (window, sinks, layer_pattern)) for a full-attention pretrained init: a flag not given takes
    # the pretrained profile's value (common.PROFILE_WINDOWS: 256 + 4 sinks) whatever else is given
    ([], (256, 4, None)),
    (["--window=64"], (64, 4, None)),                      # the recipe's `--window=256` alone used to give 0 sinks
    (["--sinks=0"], (256, 0, None)),
    (["--window=64", "--layer_pattern=LG"], (64, 4, "LG")),
    (["--window=none"], (None, 0, None)),                  # full attention has no sinks
])
def test_pretrained_flags_not_given_take_the_profile(tmp_path, capsys, flags, expected):
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import make_hf_dir
    hf_dir, _ = make_hf_dir(tmp_path / "hf", "llama", max_position_embeddings=1024)
    args = sft.parse_args([f"--init=hf:{hf_dir}", *flags])
    model, _, _ = sft.build_model(args, "cpu")
    c = model.config
    assert (c.window, c.sinks, c.layer_pattern) == expected == (args.window, args.sinks, args.layer_pattern)
    common.echo_config(args, "sft.py config")  # as main prints it, once the window is resolved
    printed = config_block(capsys.readouterr().out)
    assert (printed["window"][0], printed["sinks"][0]) == (str(expected[0]), str(expected[1]))  # with its source:
    given = {flag.split("=")[0][2:] for flag in flags}
    assert {k for k in ("window", "sinks", "layer_pattern") if printed[k][1] == "command line"} == given


@pytest.mark.parametrize("flags, expected", [
    # a toy init from scratch: the toy profile (W=18, no sinks)
    ([], (18, 0, None)),
    (["--window=6"], (6, 0, None)),
    (["--sinks=2"], (18, 2, None)),
])
def test_toy_flags_not_given_take_the_profile(flags, expected):
    args = sft.parse_args(["--n_layer=2", "--n_embd=32", "--n_head=2", *flags])
    c = sft.build_model(args, "cpu")[0].config
    assert (c.window, c.sinks, c.layer_pattern) == expected == (args.window, args.sinks, args.layer_pattern)


def test_windowed_init_keeps_its_own_values_for_flags_not_given(tmp_path):
    """An init that has a window (a checkpoint of a windowed run) keeps its own sinks and pattern when only
    --window changes; a new window without --layer_pattern covers every layer (the import's rule)."""
    sft.main(TINY + ["--n_layer=2", "--sinks=3", "--layer_pattern=LG", "--steps=1", f"--out_dir={tmp_path / 'a'}"])
    saved = json.loads((tmp_path / "a" / "run_config.json").read_text())
    assert (saved["window"], saved["sinks"], saved["layer_pattern"]) == (8, 3, "LG")
    c = sft.build_model(sft.parse_args([f"--init={tmp_path / 'a'}"]), "cpu")[0].config
    assert (c.window, c.sinks, c.layer_pattern) == (8, 3, "LG")
    c = sft.build_model(sft.parse_args([f"--init={tmp_path / 'a'}", "--window=5"]), "cpu")[0].config
    assert (c.window, c.sinks, c.layer_pattern) == (5, 3, None)


def config_block(printed):
    """common.echo_config's block -> {name: (value, source)}."""
    return {k: (v, source) for k, v, source in re.findall(r"^  (\w+) += (.*?) +\(([^()]*)\)$", printed, re.M)}


def test_window_helpers_take_a_plain_namespace_too():
    """A caller's own argparse.Namespace (no sources slot) gets the same window as the scripts' Flags: a given
    window on a full-attention init, the toy profile's sinks, no pattern."""
    import argparse
    for args in (argparse.Namespace(window=4, sinks=common.KEEP, layer_pattern=common.KEEP),
                 common.Flags(window=4, sinks=common.KEEP, layer_pattern=common.KEEP)):
        gpt = GPT(GPTConfig(block_size=64))
        common.apply_window(args, gpt, "toy", announce=False)
        assert (gpt.config.window, gpt.config.sinks, gpt.config.layer_pattern) == (4, 0, None)
        assert (args.window, args.sinks, args.layer_pattern) == (4, 0, None)


def test_config_block_says_where_each_value_came_from(tmp_path, capsys):
    """One block, printed once the window is resolved: a flag given (command line), one left to the profile, the
    window of a windowed init (init), the rest (default); a resumed run's values come from its run config."""
    windowed = tmp_path / "windowed"
    sft.main(TINY + ["--n_layer=2", "--sinks=3", "--layer_pattern=LG", "--steps=1", f"--out_dir={windowed}"])
    capsys.readouterr()
    out = tmp_path / "out"
    sft.main([f"--init={windowed}", "--data=synthetic?size=256", "--max_len=192", "--lr=1e-3", "--steps=1",
              "--eval_every=0", "--device=cpu", f"--out_dir={out}"])
    printed = capsys.readouterr().out
    assert printed.count("---- sft.py config ----") == 1 and "attention:" not in printed
    block = config_block(printed)
    assert block["lr"] == ("0.001", "command line") and block["max_len"] == ("192", "command line")
    assert block["warmup"] == ("30", "profile toy") and block["batch_size"] == ("32", "profile toy")
    assert (block["window"], block["sinks"], block["layer_pattern"]) == (("8", "init"), ("3", "init"), ("LG", "init"))
    assert block["weight_decay"] == ("0.1", "default") and block["profile"] == ("toy", "init")
    # the size of the init (TINY's), not the scratch defaults the flags would give (128 wide, 256 positions)
    assert (block["n_head"], block["n_embd"], block["block_size"]) == (("2", "init"), ("32", "init"), ("192", "init"))
    saved = json.loads((out / "run_config.json").read_text())
    assert set(saved) == set(block) and saved["lr"] == 1e-3 and saved["window"] == 8  # the flags only, no sources
    sft.main(["--resume=true", f"--out_dir={out}", "--steps=2"])
    block = config_block(capsys.readouterr().out)
    assert block["steps"] == ("2", "command line") and block["lr"] == ("0.001", "resumed run")
    assert block["window"] == ("8", "resumed run") and block["warmup"] == ("30", "resumed run")
    assert block["n_embd"] == ("32", "resumed run")
    sft.main(["--resume=true", f"--out_dir={out}", "--steps=3", "--n_embd=64"])  # a resumed run keeps its size
    assert config_block(capsys.readouterr().out)["n_embd"] == ("32", "resumed run; --n_embd=64 ignored, a resumed "
                                                                "run keeps its size")
    # a size flag with a model to start from does nothing, and the block says so
    sft.main([f"--init={windowed}", "--n_embd=64", "--n_layer=2", "--max_len=192", "--steps=1", "--eval_every=0",
              "--data=synthetic?size=256", "--device=cpu", f"--out_dir={tmp_path / 'sized'}"])
    block = config_block(capsys.readouterr().out)
    assert block["n_embd"] == ("32", "init; --n_embd=64 ignored, it is for --init=scratch")
    assert block["n_layer"] == ("2", "init")  # the init's own size: nothing ignored


def test_progress_into_a_file_or_pipe_is_plain_lines(tmp_path, capsys, monkeypatch):
    """With stderr not a terminal, progress is a plain line every PROGRESS_EVERY seconds and one at the end, never
    tqdm's carriage returns; on a terminal (here forced) it is tqdm."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(ROOT / "sft.py"), *TINY, "--steps=3", f"--out_dir={tmp_path / 'a'}"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\r" not in result.stderr and re.search(r"^sft: 3/3 \(100%\) \| .* loss=", result.stderr, re.M)
    monkeypatch.setattr(common, "PROGRESS_EVERY", 0)  # a line at every step
    sft.main(TINY + ["--steps=3", f"--out_dir={tmp_path / 'b'}"])
    err = capsys.readouterr().err
    assert "\r" not in err and re.findall(r"^sft: (\d)/3 ", err, re.M) == ["1", "2", "3"]
    monkeypatch.setattr(common, "PROGRESS_EVERY", 30)
    assert list(common.progress(range(4), desc="demo")) == [0, 1, 2, 3]
    assert re.fullmatch(r"demo: 4/4 \(100%\) \| [^\r\n]*\n", capsys.readouterr().err)  # only the closing line
    bar = common.progress(range(4), desc="demo", tty=True)
    assert isinstance(bar, tqdm) and list(bar) == [0, 1, 2, 3]
    assert "\r" in capsys.readouterr().err


def test_schedule_token_budget_by_hand():
    # examples of 9, 19 and 29 trained tokens: mean 19; a global batch of 4 trains 76 tokens a step
    train = data.SFTExamples([[0] * n for n in (10, 20, 30) * 4], None, None, 0)  # 3 global batches of 4
    for budget, steps in ((760, 10), (761, 11), (1, 1)):
        args = argparse.Namespace(token_budget=budget, epochs=None, steps=1000)
        assert sft.schedule(args, train, 4) == (3, steps)


def test_token_budget_trains_about_that_many_tokens(tmp_path):
    """--token_budget (the compute-matched SFT control): the tokens the run logs add up to the budget within one
    step's worth, whatever --steps says."""
    out = tmp_path / "b"
    sft.main(TINY + ["--steps=1000", "--token_budget=3000", f"--out_dir={out}"])
    steps = [r for r in metrics(out) if "loss" in r]
    total = sum(r["tokens"] for r in steps)
    assert abs(total - 3000) <= max(r["tokens"] for r in steps), (total, len(steps))
    assert json.loads((out / "run_config.json").read_text())["token_budget"] == 3000
