"""Crash safety: checkpoints that survive kill -9 at any moment, logs that survive a torn last line, and resume
checks that refuse a partial training state. The kill test trains the tiny toy in subprocesses, SIGKILLs them at
random moments and at each phase of the checkpoint save (checkpoint.replace_dir's SWARR_KILL_AT hook), resumes,
and checks that the result equals an uninterrupted run bit for bit."""

import copy
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import checkpoint
import common
import controls
import convert
import eval as eval_script
import rl
import sft
from model import GPT, GPTConfig
from tokenizer import BYTE_TO_CHAR, Tokenizer

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
# checkpoint.save and checkpoint.recover, in-process


def test_symlinked_and_private_out_dir(tmp_path):
    model, tok = tiny_model(), Tokenizer.byte_level()
    target = tmp_path / "disk" / "run"
    target.mkdir(parents=True)
    target.chmod(0o700)
    (target / "metrics.jsonl").write_text('{"step": 1}\n')
    link = tmp_path / "run"
    link.symlink_to(target)
    for step in (1, 2):
        checkpoint.save(link, model, tok, train_state={"step": step})
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert state_step(target) == 2 and (target / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert oct(target.stat().st_mode & 0o777) == oct(0o700)
    assert sorted(os.listdir(target.parent)) == ["run"] and sorted(os.listdir(tmp_path)) == ["disk", "run"]
    assert checkpoint.load(link)[3] == {"step": 2}

    fresh = tmp_path / "fresh"
    checkpoint.save(fresh, model, tok)
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o777 & ~umask  # a new out_dir: the usual permissions
    assert (fresh / "model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask


def test_replace_dir_carries_other_files_over_and_writes_a_fresh_marker(tmp_path):
    """checkpoint.replace_dir on its own: what write() makes replaces the old files, every other entry of the old
    directory is hard-linked into the new one (the same file, which the training loop keeps appending to), and the
    new .complete is a new file even when keep does not name it (a linked old marker would vouch for a new copy)."""
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "weights").write_text("old")
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / checkpoint.COMPLETE).write_text("")
    old_metrics, old_marker = (os.stat(out / n).st_ino for n in ("metrics.jsonl", checkpoint.COMPLETE))
    checkpoint.replace_dir(out, lambda tmp: Path(tmp, "weights").write_text("new"), keep=("weights",))
    assert (out / "weights").read_text() == "new"
    assert os.stat(out / "metrics.jsonl").st_ino == old_metrics
    assert (out / checkpoint.COMPLETE).is_file() and os.stat(out / checkpoint.COMPLETE).st_ino != old_marker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no copy left beside it


def test_recover_puts_the_newest_complete_copy_back(tmp_path):
    model, tok = tiny_model(), Tokenizer.byte_level()
    out = tmp_path / "run"
    assert checkpoint.recover(out) is None
    checkpoint.save(out, model, tok, train_state={"step": 1})
    assert checkpoint.recover(out) == str(out) and (out / checkpoint.COMPLETE).is_file()

    # the moment between checkpoint.save's two renames, made by hand: old copy aside, a complete new one, and an
    # incomplete newer one (a kill during its writing) that must be ignored
    shutil.copytree(out, tmp_path / ".run.tmp-new")
    torch.save({"step": 2}, tmp_path / ".run.tmp-new" / "train_state.pt")
    shutil.copytree(tmp_path / ".run.tmp-new", tmp_path / ".run.tmp-partial")
    os.remove(tmp_path / ".run.tmp-partial" / checkpoint.COMPLETE)
    os.rename(out, tmp_path / ".run.old-prev")
    assert checkpoint.recover(out) == str(out) and state_step(out) == 2
    assert sorted(p.name for kind in copies(out).values() for p in kind) == [".run.old-prev", ".run.tmp-partial"]

    checkpoint.save(out, model, tok, train_state={"step": 3})  # removes what the crash left behind
    assert sorted(os.listdir(tmp_path)) == ["run"] and state_step(out) == 3

    # a checkpoint moved aside by the old save code (no .complete anywhere) is found as well
    os.remove(out / checkpoint.COMPLETE)
    os.rename(out, tmp_path / ".run.old-legacy")
    assert checkpoint.load(out)[3] == {"step": 3} and sorted(os.listdir(tmp_path)) == ["run"]
    os.rename(out, tmp_path / ".run.old-legacy")
    assert convert.load_model(str(out))[0].config.n_layer == 1


def test_save_failure_keeps_the_old_checkpoint_and_no_copies(tmp_path, monkeypatch):
    model, tok = tiny_model(), Tokenizer.byte_level()
    out = tmp_path / "run"
    checkpoint.save(out, model, tok, train_state={"step": 1})
    real_rename = os.rename

    def rename(src, dst):
        if os.path.basename(src).startswith(".run.tmp-"):
            raise OSError("disk gone")
        return real_rename(src, dst)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="disk gone"):  # fails between the two renames: the old one is put back
        checkpoint.save(out, model, tok, train_state={"step": 2})
    monkeypatch.undo()
    assert state_step(out) == 1 and sorted(os.listdir(tmp_path)) == ["run"]


# ----------------------------------------------------------------------------------------------------------------
# Resume checks: a partial training state is refused, a checkpoint left mid-swap is found


def test_partial_train_state_is_refused(tmp_path, capsys):
    model, tok = tiny_model(), Tokenizer.byte_level()
    rl_dir, sft_dir = tmp_path / "rl", tmp_path / "sft"
    checkpoint.save(rl_dir, model, tok, run_config={"steps": 4, "eval_every": 0},
                    train_state={"step": 1, "cursor": 2})
    with pytest.raises(SystemExit) as e:
        rl.main([f"--out_dir={rl_dir}", "--resume=true", f"--init={tmp_path / 'absent'}", "--device=cpu"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0, err
    assert "train_state.pt without optimizer, rng" in err

    checkpoint.save(sft_dir, model, tok, run_config={}, train_state={"step": 1, "optimizer": {}})
    with pytest.raises(SystemExit) as e:
        sft.main(TINY + [f"--out_dir={sft_dir}", "--resume=true"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0, err
    assert "train_state.pt without epoch, cursor, global_batch, rng" in err


def test_resume_checks_find_a_checkpoint_left_mid_swap(tmp_path):
    model, tok = tiny_model(), Tokenizer.byte_level()
    for name, parse in (("rl", rl.parse_args), ("sft", sft.parse_args)):
        out = tmp_path / name
        checkpoint.save(out, model, tok, run_config={"steps": 7}, train_state={"step": 1})
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
    (new,) = [c for c in copies(out)["tmp"] if (c / checkpoint.COMPLETE).is_file()]
    assert state_step(new) == 1
    # resumed from step 1 (put back by --resume), killed writing its second checkpoint (step 3): 2 stays visible
    killed(start_sft(out, *resume, kill_at="written:2"))
    assert state_step(out) == 2 and not any((c / checkpoint.COMPLETE).exists() for c in copies(out)["tmp"])
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
        before = state_step(checkpoint.recover(out))
        if before == STEPS:
            break
        proc = start_sft(out, *resume)
        deadline = time.time() + 120
        while proc.poll() is None and not any(s > before for s in logged_steps(out)) and time.time() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.1))
        proc.kill()
        proc.communicate(timeout=600)
        assert checkpoint.recover(out) is not None  # never lost
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


def test_a_finished_run_resumed_removes_the_copies_kills_left(tmp_path):
    """Killed after its last save's swap, before the old copy is removed: the checkpoint is whole, and the resumed
    run, which has no step left to train (so it never saves), still removes the stale copy beside out_dir. rl.py the
    same, with the leftovers of every kind made by hand."""
    out = tmp_path / "sft"
    three = [f for f in TINY if not f.startswith("--steps=")] + ["--steps=3"]
    killed(start_sft(out, *three, kill_at="swapped:3"))  # save 3 is the last (--save_every=1)
    assert state_step(out) == 3 and copies(out)["old"]
    finish = start_sft(out, "--resume=true")
    _, err = finish.communicate(timeout=600)
    assert finish.returncode == 0, err[-2000:]
    assert state_step(out) == 3 and sorted(os.listdir(tmp_path)) == ["sft"]

    rl_dir = tmp_path / "rl"
    flags = [f"--out_dir={rl_dir}", "--steps=1", "--prompts_per_step=2", "--group_size=2", "--max_new_tokens=4",
             "--eval_every=0", "--sample_every=0", "--device=cpu"]
    rl.main([f"--init={out}", *flags])
    for kind in ("tmp", "old", "del"):  # a complete copy of each kind: what a kill at a save's phases leaves
        shutil.copytree(rl_dir, tmp_path / f".rl.{kind}-0123abcd")
    rl.main(["--resume=true", *flags])
    assert state_step(rl_dir) == 1 and sorted(os.listdir(tmp_path)) == ["rl", "sft"]


# ----------------------------------------------------------------------------------------------------------------
# Nothing the user had is lost: a save replaces only a new or empty directory, or one this project wrote


def one_line(capsys, main, argv):
    """Run a script's main(argv), expecting it to stop with one line on stderr (exit code 2) -> that line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0 and "Traceback" not in err, err
    return err


def convert_one_line(capsys, argv):
    capsys.readouterr()
    assert convert.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("convert.py: error: "), err
    return err


def snapshot(folder):
    """Every file under folder -> its bytes: what must come out of a refused run unchanged."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def user_folder(path):
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("the user's own")
    (path / "config.json").write_text('{"model_type": "theirs"}')
    return path


@pytest.fixture
def ckpt(tmp_path):
    """A tiny swarr checkpoint (byte-level tokenizer) made by sft-like runs, with a metrics.jsonl of its own."""
    path = tmp_path / "ckpt"
    checkpoint.save(path, tiny_model(), Tokenizer.byte_level(),
                    run_config={"init": "scratch", "data": "synthetic?size=32", "profile": "toy"})
    (path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    return path


def test_a_save_never_replaces_what_the_run_reads(tmp_path, ckpt, capsys):
    """--out_dir equal to the init (a transformers folder, through a symlink too, or a checkpoint), the teacher or
    the export: refused at start with one line, and every file stays as it was."""
    hf = convert.export_hf(tiny_model(), Tokenizer.byte_level(), tmp_path / "hf")  # a transformers folder
    os.remove(os.path.join(hf, checkpoint.COMPLETE))  # as downloaded: nothing marks it as ours
    link = tmp_path / "link"
    link.symlink_to(hf)
    before = snapshot(hf), snapshot(ckpt)
    for out in (hf, link):
        assert "which this run reads" in one_line(capsys, sft.main, TINY[1:] + [f"--init=hf:{hf}", f"--out_dir={out}"])
        assert "which this run reads" in convert_one_line(capsys, [f"--init=hf:{hf}", f"--out_dir={out}"])
        assert "which this run reads" in convert_one_line(capsys, [f"--init=hf:{hf}", "--out_dir=",
                                                                   f"--export_hf={out}"])
    assert "which this run reads" in one_line(capsys, sft.main, TINY[1:] + [f"--init={ckpt}", f"--out_dir={ckpt}"])
    assert "which this run reads" in one_line(capsys, rl.main, [f"--init={ckpt}", f"--out_dir={ckpt}", "--device=cpu"])
    assert "which this run reads" in one_line(capsys, rl.main, [f"--init={ckpt}", f"--teacher={ckpt}",
                                                                f"--out_dir={ckpt}", "--device=cpu"])
    assert "the same directory" in convert_one_line(capsys, [f"--init={ckpt}", f"--out_dir={tmp_path}/x",
                                                             f"--export_hf={tmp_path}/x"])
    assert (snapshot(hf), snapshot(ckpt)) == before


def test_a_save_never_replaces_a_folder_that_is_not_ours(tmp_path, ckpt, capsys, monkeypatch):
    """The working directory (or a folder above it), the root, and a folder of the user's files are refused at
    start by every script, and by checkpoint.replace_dir itself, the last guard; an empty folder, one holding only a
    run's logs, a checkpoint and an export of ours are replaced."""
    home = user_folder(tmp_path / "home")
    (home / "work").mkdir()
    before = snapshot(home)
    monkeypatch.chdir(home / "work")
    for out in (".", "..", str(home)):
        assert "is the working directory or holds it" in one_line(capsys, sft.main, TINY + [f"--out_dir={out}"])
        assert "working directory" in one_line(capsys, rl.main, [f"--init={ckpt}", f"--out_dir={out}", "--device=cpu"])
        assert "working directory" in convert_one_line(capsys, [f"--init={ckpt}", f"--out_dir={out}"])
    with pytest.raises(ValueError, match="is the root directory"):
        checkpoint.check_out_dir("/")
    monkeypatch.chdir(tmp_path)
    theirs = user_folder(tmp_path / "theirs")
    mine = snapshot(theirs)
    message = "holds files that are not a swarr checkpoint (config.json, notes.txt)"
    assert message in one_line(capsys, sft.main, TINY + [f"--out_dir={theirs}"])
    assert message in one_line(capsys, rl.main, [f"--init={ckpt}", f"--out_dir={theirs}", "--device=cpu"])
    assert message in one_line(capsys, eval_script.main, [f"--init={ckpt}", f"--out_dir={theirs}", "--device=cpu"])
    assert message in convert_one_line(capsys, [f"--init={ckpt}", f"--out_dir={theirs}"])
    assert message in convert_one_line(capsys, [f"--init={ckpt}", "--out_dir=", f"--export_hf={theirs}"])
    with pytest.raises(ValueError, match=re.escape(message)):
        checkpoint.replace_dir(theirs, lambda tmp: Path(tmp, "weights").write_text("new"), keep=())
    with pytest.raises(ValueError, match=re.escape(message)):
        convert.export_hf(tiny_model(), Tokenizer.byte_level(), theirs)
    assert snapshot(home) == before and snapshot(theirs) == mine
    assert sorted(os.listdir(tmp_path)) == ["ckpt", "home", "theirs"]  # no copy was made beside any of them

    logs_only, empty = tmp_path / "logs_only", tmp_path / "empty"
    logs_only.mkdir()
    (logs_only / "metrics.jsonl").write_text('{"step": 1}\n')
    empty.mkdir()
    for ours in (logs_only, empty, ckpt):
        checkpoint.replace_dir(ours, lambda tmp: Path(tmp, "weights").write_text("new"), keep=())
        assert (ours / "weights").read_text() == "new"
    exported = tmp_path / "exported"
    for _ in range(2):  # an export is ours too: written again in place
        convert.export_hf(tiny_model(), Tokenizer.byte_level(), exported)
    assert (exported / checkpoint.COMPLETE).is_file()
    # eval.py writes into a folder it made (and marked) before, but into no other
    for _ in range(2):
        eval_script.main([f"--init={ckpt}", "--data=synthetic?size=2", "--limit=1", "--max_new_tokens=2",
                          "--device=cpu", f"--out_dir={tmp_path / 'eval'}"])
    assert {"table.md", "results.json", checkpoint.OWN_MARK} <= set(os.listdir(tmp_path / "eval"))


def unwritable_dir(tmp_path):
    """A directory this process cannot write in: a read-only one for a normal user; root writes anywhere but on a
    read-only file system such as /sys."""
    if os.geteuid() != 0:
        d = tmp_path / "read_only"
        d.mkdir()
        d.chmod(0o500)
        return d
    if os.path.isdir("/sys") and not checkpoint._writable("/sys"):
        return Path("/sys")
    pytest.skip("root, and no read-only file system to try")


def test_out_dirs_that_cannot_be_made_fail_at_start(tmp_path, ckpt, capsys):
    """A file, a path under a file, a name too long, a folder without write permission: one line from each
    script, before any training."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [(a_file, "is a file, not a directory"), (a_file / "sub", f"is under the file {a_file}"),
             (tmp_path / ("x" * 250), "the path is too long for the file system"),
             (tmp_path / "deep" / ("y" * 300) / "z", "the path is too long for the file system"),
             (unwritable_dir(tmp_path) / "new", "cannot write in")]
    for out, message in cases:
        assert message in one_line(capsys, sft.main, TINY + [f"--out_dir={out}"])
        assert message in one_line(capsys, rl.main, [f"--init={ckpt}", f"--out_dir={out}", "--device=cpu"])
        assert message in one_line(capsys, eval_script.main, [f"--init={ckpt}", f"--out_dir={out}", "--device=cpu"])
        assert message in convert_one_line(capsys, [f"--init={ckpt}", f"--out_dir={out}"])
        assert message in convert_one_line(capsys, [f"--init={ckpt}", "--out_dir=", f"--export_hf={out}"])
    assert sorted(os.listdir(tmp_path)) == ["a_file", "ckpt"] + (["read_only"] if os.geteuid() else [])


# ----------------------------------------------------------------------------------------------------------------
# What would fail mid-run fails at start, in one line


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a CPU-only machine refuses")
def test_attention_backends_that_cannot_run_here_fail_at_start(tmp_path, ckpt, capsys, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # conftest sets it for the kernel tests
    out = tmp_path / "out"
    assert "--attn_backend=flex trains on CUDA GPUs only" in one_line(
        capsys, sft.main, TINY + ["--attn_backend=flex", f"--out_dir={out}"])
    assert "--attn_backend=triton runs on CUDA GPUs only" in one_line(
        capsys, sft.main, TINY + ["--attn_backend=triton", f"--out_dir={out}"])
    gpu_ckpt = tmp_path / "gpu_ckpt"
    model = tiny_model()
    model.config.attn_backend = "triton"  # as sft.py --attn_backend=triton saves it on a GPU machine
    checkpoint.save(gpu_ckpt, model, Tokenizer.byte_level(), run_config={"data": "synthetic?size=32"})
    assert "the checkpoint's attn_backend=triton runs on CUDA GPUs only" in one_line(
        capsys, rl.main, [f"--init={gpu_ckpt}", f"--out_dir={out}", "--device=cpu"])
    assert not out.exists()  # stopped before the first step
    assert "attn_backend=triton runs on CUDA GPUs only" in one_line(
        capsys, eval_script.main, [f"--init={ckpt}@attn_backend=triton", f"--out_dir={out}", "--device=cpu"])
    assert os.listdir(out) == [checkpoint.OWN_MARK]  # before the first problem


def resume_with(capsys, out, edit):
    """sft.py resumed from out after edit(train_state) -> its one-line error."""
    state = torch.load(out / "train_state.pt", weights_only=True)
    edit(state)
    torch.save(state, out / "train_state.pt")
    return one_line(capsys, sft.main, TINY + [f"--out_dir={out}", "--resume=true", "--steps=4"])


def test_resume_refuses_a_hand_edited_train_state(tmp_path, capsys):
    """A step, epoch or cursor of another type or out of range, an optimizer state of another shape or a damaged
    RNG state: one line at start (they failed inside the loop)."""
    out = tmp_path / "run"
    sft.main(TINY + [f"--out_dir={out}", "--steps=2"])
    good = torch.load(out / "train_state.pt", weights_only=True)

    def set_to(key, value):
        return lambda state: state.update({**copy.deepcopy(good), key: value})

    for key, value in [("step", -1), ("step", "2"), ("step", 2.5), ("step", 10**12), ("epoch", -3),
                       ("cursor", None), ("global_batch", 0)]:
        assert f"train_state.pt: {key} is " in resume_with(capsys, out, set_to(key, value)), (key, value)
    assert "continues at batch 1000000" in resume_with(capsys, out, set_to("cursor", 10**6))

    def other_shape(state):
        state.update(copy.deepcopy(good))
        state["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3, 5)
    assert "optimizer state holds exp_avg of shape (3, 5)" in resume_with(capsys, out, other_shape)
    groups = {**good["optimizer"], "param_groups": good["optimizer"]["param_groups"][:1]}
    assert "optimizer state does not fit this model" in resume_with(capsys, out, set_to("optimizer", groups))
    assert "the optimizer entry is not" in resume_with(capsys, out, set_to("optimizer", [1, 2]))
    assert "the RNG state does not load" in resume_with(capsys, out, set_to("rng", {**good["rng"], "numpy": [1]}))
    assert "the RNG state does not load" in resume_with(capsys, out, set_to(
        "rng", {**good["rng"], "torch": torch.zeros(3, dtype=torch.uint8)}))
    torch.save(good, out / "train_state.pt")  # the file as saved resumes
    sft.main(TINY + [f"--out_dir={out}", "--resume=true", "--steps=3"])
    assert state_step(out) == 3


def test_rl_resume_refuses_a_hand_edited_train_state(tmp_path, ckpt, capsys):
    model = tiny_model()
    other = torch.optim.AdamW(GPT(GPTConfig(vocab_size=257, n_layer=1, n_head=2, n_embd=16)).parameters())
    other.zero_grad()
    for p in other.param_groups[0]["params"]:
        p.grad = torch.ones_like(p)
    other.step()  # a state with exp_avg tensors, of another model's shapes
    for name, state, message in [
            ("shapes", {"optimizer": other.state_dict()}, "the optimizer state holds exp_avg of shape"),
            ("step", {"step": -2}, "train_state.pt: step is -2"),
            ("cursor", {"cursor": "0"}, "train_state.pt: cursor is '0'")]:
        out = tmp_path / name
        good = {"step": 1, "cursor": 0, "optimizer": torch.optim.AdamW(model.parameters()).state_dict(),
                "rng": common.rng_state()}
        checkpoint.save(out, model, Tokenizer.byte_level(), run_config={"init": str(ckpt), "steps": 2,
                        "data": "synthetic?size=32", "eval_every": 0}, train_state={**good, **state})
        assert message in one_line(capsys, rl.main, [f"--out_dir={out}", "--resume=true", "--device=cpu"])


def test_resume_refuses_another_init(tmp_path, ckpt, capsys):
    """--resume continues a run from its checkpoint, so an --init other than the run's own would be ignored:
    refused; the same init, spelled as given or through a symlink, is fine."""
    out = tmp_path / "run"
    checkpoint.save(out, tiny_model(), Tokenizer.byte_level(), run_config={"init": str(ckpt), "steps": 3},
                    train_state={"step": 1})
    link = tmp_path / "link"
    link.symlink_to(ckpt)
    for parse in (sft.parse_args, rl.parse_args):
        for same in (str(ckpt), str(link)):
            assert parse([f"--out_dir={out}", "--resume=true", f"--init={same}"]).init == same
        with pytest.raises(ValueError, match=f"which started from --init={re.escape(str(ckpt))}; --init=scratch "
                                             f"would be ignored"):
            parse([f"--out_dir={out}", "--resume=true", "--init=scratch"])
    assert "would be ignored" in one_line(capsys, sft.main, [f"--out_dir={out}", "--resume=true", "--init=scratch"])
    assert "would be ignored" in one_line(capsys, rl.main, [f"--out_dir={out}", "--resume=true", f"--init={tmp_path}"])


# ----------------------------------------------------------------------------------------------------------------
# Silently wrong no more


def swapped_bytes_tokenizer():
    """The byte-level tokenizer with "a" and "b" trading ids: the same vocabulary size, another tokenizer."""
    vocab = {BYTE_TO_CHAR[b]: b for b in range(256)}
    vocab[BYTE_TO_CHAR[97]], vocab[BYTE_TO_CHAR[98]] = 98, 97
    added = [{"id": 256, "content": "<|endoftext|>", "special": True}]
    return Tokenizer(vocab, None, added, Tokenizer.byte_level().pre_tokenizer, eos_token="<|endoftext|>")


def test_teacher_must_share_the_tokenizer_not_only_its_size(tmp_path, ckpt, capsys):
    teacher = tmp_path / "teacher"
    checkpoint.save(teacher, tiny_model(), swapped_bytes_tokenizer())
    err = one_line(capsys, rl.main, [f"--init={ckpt}", f"--teacher={teacher}", f"--out_dir={tmp_path / 'out'}",
                                     "--device=cpu", "--group_size=1"])
    assert "has another tokenizer than the student (the same number of ids, but not the same tokens)" in err
    same = controls.load_teacher(str(ckpt), "cpu", tiny_model(), Tokenizer.byte_level())  # the student's own: accepted
    assert not any(p.requires_grad for p in same.parameters())


def test_sinks_beyond_the_context_are_refused_by_every_script(tmp_path, ckpt, capsys):
    """sinks=100000 with a context of 64 (the KV cache would allocate 100000 slots per windowed layer)."""
    assert "--sinks=100000 is more than --block_size=192" in one_line(
        capsys, sft.main, TINY + ["--sinks=100000", f"--out_dir={tmp_path / 'a'}"])
    message = "sinks=100000 is more than the model's context of 64 positions"
    assert message in one_line(capsys, sft.main, TINY[1:] + [f"--init={ckpt}", "--sinks=100000", "--max_len=64",
                                                             f"--out_dir={tmp_path / 'b'}"])
    assert message in one_line(capsys, rl.main, [f"--init={ckpt}", "--window=8", "--sinks=100000", "--device=cpu",
                                                 f"--out_dir={tmp_path / 'c'}"])
    assert message in convert_one_line(capsys, [f"--init={ckpt}", "--window=8", "--sinks=100000",
                                                f"--out_dir={tmp_path / 'd'}"])
    assert message in one_line(capsys, eval_script.main, [f"--init={ckpt}@window=8,sinks=100000", "--device=cpu",
                                                          f"--out_dir={tmp_path / 'e'}"])
    assert convert.load_model(str(ckpt), window=8, sinks=64)[0].config.sinks == 64  # up to the context is fine


def test_eval_limit_reports_the_problems_there_are(tmp_path, capsys):
    """--eval_limit larger than the held-out set: accuracy is over the 8 problems that exist, and says so."""
    sft.main(TINY + ["--data=synthetic?size=8", "--steps=1", "--eval_every=1", "--eval_limit=1000000000",
                     f"--out_dir={tmp_path}"])
    out = capsys.readouterr().out
    assert re.search(r"greedy accuracy \d\.\d{3} on 8 problems", out), out[-500:]


def test_abbreviated_flags_are_refused(tmp_path, ckpt, capsys):
    """argparse would take --ste=1 for --steps=1 and --out for --out_dir; a typo must not silently mean a flag."""
    for main, argv in [(sft.main, TINY + ["--ste=1"]), (sft.main, TINY + [f"--out={tmp_path}"]),
                       (rl.main, [f"--init={ckpt}", "--ste=1"]), (eval_script.main, [f"--init={ckpt}", "--lim=1"])]:
        assert "unrecognized arguments: --" in one_line(capsys, main, argv)
    with pytest.raises(SystemExit) as e:
        convert.main([f"--init={ckpt}", f"--out={tmp_path}"])
    assert e.value.code == 2 and "unrecognized arguments: --out=" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["ckpt"]  # nothing was written


def test_rl_reports_skipped_rows_as_sft_does(tmp_path, ckpt, capsys):
    rows = [{"question": f"What is {i} + 1?", "answer": f"Add one.\n#### {i + 1}"} for i in range(6)]
    rows += [{"question": "q", "answer": "x\n#### 1,2,3"}, {"question": "q", "answer": "x\n#### seventy"},
             {"question": "q", "answer": "x\n#### }{"}, {"question": "no answer"}]
    data_file = tmp_path / "rows.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rl.main([f"--init={ckpt}", f"--data=jsonl:{data_file}?instruction=", "--steps=1", "--prompts_per_step=2",
             "--group_size=2", "--max_new_tokens=4", "--eval_every=0", "--sample_every=0", "--device=cpu",
             f"--out_dir={tmp_path / 'rl'}"])
    assert "6 train prompts (4 malformed rows skipped (3 answer not a number, 1 no answer))" in capsys.readouterr().out
