"""Crash safety: checkpoints that survive kill -9 at any moment, logs that survive a torn last line, and resume
checks that refuse a partial training state. The kill test trains the tiny toy in subprocesses, SIGKILLs them at
random moments and at each phase of the checkpoint save (common.replace_dir's SWARR_KILL_AT hook), resumes,
and checks that the result equals an uninterrupted run bit for bit."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import common
import convert
import rl
import sft
from model import GPT, GPTConfig
from tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
STEPS = 20
TINY = ["--init=scratch", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=192", "--window=8",
        "--data=synthetic?size=256", "--max_len=192", "--batch_size=4", "--lr=3e-3", "--warmup=2",
        "--eval_every=0", "--eval_limit=0", "--save_every=1", "--seed=0", "--device=cpu", f"--steps={STEPS}"]


def tiny_model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=Tokenizer.byte_level().vocab_size, n_layer=1, n_head=2, n_embd=32,
                         block_size=64))


def state_step(path):
    return torch.load(os.path.join(path, "train_state.pt"), weights_only=True)["step"]


def copies(out):
    """The siblings a save leaves beside out_dir while it runs (or a kill left behind): kind -> paths."""
    found = {"tmp": [], "old": [], "del": []}
    for entry in os.listdir(out.parent):
        for kind in found:
            if entry.startswith(f".{out.name}.{kind}-"):
                found[kind].append(out.parent / entry)
    return found


# ----------------------------------------------------------------------------------------------------------------
# trim_jsonl


def test_trim_jsonl(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = ['{"step": 0, "eval_loss": 1.0}', '{"step": 1, "loss": 2.0}', "", "not json", '[1, 2]',
             '{"step": "two"}', '{"note": "no step"}', '{"step": 2, "loss": 3.0}', '{"step": 3, "loss": 4.0}']
    path.write_text("\n".join(lines) + '\n{"step": 4, "lo')  # a kill mid-write: the last line is torn
    assert common.trim_jsonl(path, 2) == 4  # not json, a list, a string step, the torn line
    kept = path.read_text()
    assert [json.loads(line) for line in kept.splitlines()] == [
        {"step": 0, "eval_loss": 1.0}, {"step": 1, "loss": 2.0}, {"note": "no step"}, {"step": 2, "loss": 3.0}]
    assert not os.path.exists(f"{path}.tmp")

    path.write_text('{"step": 1}\n{"step": 2}')  # a whole record without its newline is kept, and appendable
    assert common.trim_jsonl(path, 5) == 0
    common.JSONLLogger(str(path)).log({"step": 3})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]

    assert common.trim_jsonl(path, -1) == 0 and path.read_text() == ""  # a fresh run starts a new log
    assert common.trim_jsonl(tmp_path / "absent.jsonl", 3) == 0 and not (tmp_path / "absent.jsonl").exists()


# ----------------------------------------------------------------------------------------------------------------
# save_checkpoint and find_checkpoint, in-process


def test_symlinked_and_private_out_dir(tmp_path):
    model, tok = tiny_model(), Tokenizer.byte_level()
    target = tmp_path / "disk" / "run"
    target.mkdir(parents=True)
    target.chmod(0o700)
    (target / "metrics.jsonl").write_text('{"step": 1}\n')
    link = tmp_path / "run"
    link.symlink_to(target)
    for step in (1, 2):
        convert.save_checkpoint(link, model, tok, train_state={"step": step})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert state_step(target) == 2 and (target / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert oct(target.stat().st_mode & 0o777) == oct(0o700)
    assert sorted(os.listdir(target.parent)) == ["run"] and sorted(os.listdir(tmp_path)) == ["disk", "run"]
    assert convert.load_checkpoint(link)[3] == {"step": 2}

    fresh = tmp_path / "fresh"
    convert.save_checkpoint(fresh, model, tok)
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o777 & ~umask  # a new out_dir: the usual permissions
    assert (fresh / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_replace_dir_carries_other_files_over_and_writes_a_fresh_marker(tmp_path):
    """common.replace_dir on its own: what write() makes replaces the old files, every other entry of the old
    directory is hard-linked into the new one (the same file, which the training loop keeps appending to), and the
    new .complete is a new file even when keep does not name it (a linked old marker would vouch for a new copy)."""
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "weights").write_text("old")
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / common.COMPLETE).write_text("")
    old_metrics, old_marker = (os.stat(out / n).st_ino for n in ("metrics.jsonl", common.COMPLETE))
    common.replace_dir(out, lambda tmp: Path(tmp, "weights").write_text("new"), keep=("weights",))
    assert (out / "weights").read_text() == "new"
    assert os.stat(out / "metrics.jsonl").st_ino == old_metrics
    assert (out / common.COMPLETE).is_file() and os.stat(out / common.COMPLETE).st_ino != old_marker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no copy left beside it


def test_find_checkpoint_puts_the_newest_complete_copy_back(tmp_path):
    import shutil
    model, tok = tiny_model(), Tokenizer.byte_level()
    out = tmp_path / "run"
    assert convert.find_checkpoint(out) is None
    convert.save_checkpoint(out, model, tok, train_state={"step": 1})
    assert convert.find_checkpoint(out) == str(out) and (out / convert.COMPLETE).is_file()

    # the moment between save_checkpoint's two renames, made by hand: old copy aside, a complete new one, and an
    # incomplete newer one (a kill during its writing) that must be ignored
    shutil.copytree(out, tmp_path / ".run.tmp-new")
    torch.save({"step": 2}, tmp_path / ".run.tmp-new" / "train_state.pt")
    shutil.copytree(tmp_path / ".run.tmp-new", tmp_path / ".run.tmp-partial")
    os.remove(tmp_path / ".run.tmp-partial" / convert.COMPLETE)
    os.rename(out, tmp_path / ".run.old-prev")
    assert convert.find_checkpoint(out) == str(out) and state_step(out) == 2
    assert sorted(p.name for kind in copies(out).values() for p in kind) == [".run.old-prev", ".run.tmp-partial"]

    convert.save_checkpoint(out, model, tok, train_state={"step": 3})  # removes what the crash left behind
    assert sorted(os.listdir(tmp_path)) == ["run"] and state_step(out) == 3

    # a checkpoint moved aside by the old save code (no .complete anywhere) is found as well
    os.remove(out / convert.COMPLETE)
    os.rename(out, tmp_path / ".run.old-legacy")
    assert convert.load_checkpoint(out)[3] == {"step": 3} and sorted(os.listdir(tmp_path)) == ["run"]
    os.rename(out, tmp_path / ".run.old-legacy")
    assert convert.load_model(str(out))[0].config.n_layer == 1


def test_save_failure_keeps_the_old_checkpoint_and_no_copies(tmp_path, monkeypatch):
    model, tok = tiny_model(), Tokenizer.byte_level()
    out = tmp_path / "run"
    convert.save_checkpoint(out, model, tok, train_state={"step": 1})
    real_rename = os.rename

    def rename(src, dst):
        if os.path.basename(src).startswith(".run.tmp-"):
            raise OSError("disk gone")
        return real_rename(src, dst)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="disk gone"):  # fails between the two renames: the old one is put back
        convert.save_checkpoint(out, model, tok, train_state={"step": 2})
    monkeypatch.undo()
    assert state_step(out) == 1 and sorted(os.listdir(tmp_path)) == ["run"]


# ----------------------------------------------------------------------------------------------------------------
# Resume checks: a partial training state is refused, a checkpoint left mid-swap is found


def test_partial_train_state_is_refused(tmp_path, capsys):
    model, tok = tiny_model(), Tokenizer.byte_level()
    rl_dir, sft_dir = tmp_path / "rl", tmp_path / "sft"
    convert.save_checkpoint(rl_dir, model, tok, run_config={"steps": 4, "eval_every": 0},
                            train_state={"step": 1, "cursor": 2})
    with pytest.raises(SystemExit) as e:
        rl.main([f"--out_dir={rl_dir}", "--resume=true", f"--init={tmp_path / 'absent'}", "--device=cpu"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0, err
    assert "train_state.pt without optimizer, rng" in err

    convert.save_checkpoint(sft_dir, model, tok, run_config={}, train_state={"step": 1, "optimizer": {}})
    with pytest.raises(SystemExit) as e:
        sft.main(TINY + [f"--out_dir={sft_dir}", "--resume=true"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0, err
    assert "train_state.pt without epoch, cursor, global_batch, rng" in err


def test_resume_checks_find_a_checkpoint_left_mid_swap(tmp_path):
    model, tok = tiny_model(), Tokenizer.byte_level()
    for name, parse in (("rl", rl.parse_args), ("sft", sft.parse_args)):
        out = tmp_path / name
        convert.save_checkpoint(out, model, tok, run_config={"steps": 7}, train_state={"step": 1})
        os.rename(out, tmp_path / f".{name}.tmp-x")  # as a kill between the two renames leaves it
        assert parse([f"--out_dir={out}", "--resume=true"]).steps == 7
        assert state_step(out) == 1


# ----------------------------------------------------------------------------------------------------------------
# The kill test: sft.py killed at each phase of a save and at random moments, resumed each time


def start_sft(out, *flags, kill_at=None):
    env = {k: v for k, v in os.environ.items() if k != "SWARR_KILL_AT"}
    env["OMP_NUM_THREADS"] = "1"
    if kill_at:
        env["SWARR_KILL_AT"] = kill_at
    return subprocess.Popen([sys.executable, str(ROOT / "sft.py"), *flags, f"--out_dir={out}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def killed(proc):
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]


def logged_steps(out):
    steps = []
    if os.path.isfile(out / "metrics.jsonl"):
        for line in open(out / "metrics.jsonl"):
            try:
                steps.append(json.loads(line)["step"])
            except (json.JSONDecodeError, KeyError):
                pass  # a line being written right now
    return steps


def test_kill_at_every_save_phase_and_at_random_then_resume_exactly(tmp_path):
    straight = tmp_path / "straight"
    sft.main(TINY + [f"--out_dir={straight}"])
    out = tmp_path / "run"
    resume = ["--resume=true"]

    # the first save of a fresh run, killed with out_dir (holding only metrics.jsonl) moved aside and the new
    # checkpoint not yet in place: the moment with no checkpoint at out_dir at all
    killed(start_sft(out, *TINY, kill_at="aside:1"))
    assert not out.exists()
    (new,) = [c for c in copies(out)["tmp"] if (c / convert.COMPLETE).is_file()]
    assert state_step(new) == 1
    # resumed from step 1 (put back by --resume), killed writing its second checkpoint (step 3): 2 stays visible
    killed(start_sft(out, *resume, kill_at="written:2"))
    assert state_step(out) == 2 and not any((c / convert.COMPLETE).exists() for c in copies(out)["tmp"])
    # killed with step 4 complete beside out_dir but not yet swapped in: out_dir (step 3) is the checkpoint
    killed(start_sft(out, *resume, kill_at="complete:2"))
    assert state_step(out) == 3
    # killed after step 5 is in place, before the old copy is removed
    killed(start_sft(out, *resume, kill_at="swapped:2"))
    assert state_step(out) == 5 and copies(out)["old"]
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 6, "loss": 0.12')  # and a torn last log line, as a kill in the middle of a write leaves

    # kills at random moments of the training loop (saves included: one per step)
    rng = random.Random(0)
    for _ in range(2):
        before = state_step(convert.find_checkpoint(out))
        if before == STEPS:
            break
        proc = start_sft(out, *resume)
        deadline = time.time() + 120
        while proc.poll() is None and not any(s > before for s in logged_steps(out)) and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.1))
        proc.kill()
        proc.communicate(timeout=600)
        assert convert.find_checkpoint(out) is not None  # never lost
        assert state_step(out) >= before

    finish = start_sft(out, *resume)
    _, err = finish.communicate(timeout=600)
    assert finish.returncode == 0, err[-2000:]
    assert state_step(out) == STEPS and sorted(os.listdir(tmp_path)) == ["run", "straight"]
    w_straight, w_run = load_file(straight / "model.safetensors"), load_file(out / "model.safetensors")
    assert w_straight.keys() == w_run.keys() and all(torch.equal(w_straight[k], w_run[k]) for k in w_straight)

    def losses(path):
        return [(r["step"], r["loss"]) for r in map(json.loads, open(path / "metrics.jsonl"))]
    assert losses(out) == losses(straight) and [s for s, _ in losses(out)] == list(range(1, STEPS + 1))
