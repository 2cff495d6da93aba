"""--fsdp (parallel.py): sft.py and rl.py on 2 CPU ranks (gloo) under torchrun against one process with the same global
batch, DDP against FSDP, exact resume from sharded checkpoints, the consolidated checkpoint in one process.

One torchrun launch runs every distributed case (this file is its script, see drive()): each launch costs several
seconds of process start on a small machine, the tiny runs themselves about a second each."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import checkpoint  # noqa: E402
import common  # noqa: E402
import convert  # noqa: E402
import grpo  # noqa: E402
import parallel  # noqa: E402
import rl  # noqa: E402
import sft  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from helpers import metrics, teach_to_stop, train_losses  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402

# 2 blocks, so that FSDP has two block units besides the root; 4 examples per step, 2 per rank (or 2 x 2 micro-batches
# in one process)
SFT = ["--init=scratch", "--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=192", "--window=8",
       "--data=synthetic?size=256", "--max_len=192", "--batch_size=2", "--lr=3e-3", "--warmup=2", "--eval_every=2",
       "--eval_examples=8", "--eval_limit=2", "--seed=0", "--device=cpu", "--steps=4", "--save_every=2"]
# 4 prompts x 4 samples, micro-batches of 3: after --filter_groups the ranks keep different numbers of rows
RL = ["--prompts_per_step=4", "--group_size=4", "--max_new_tokens=12", "--micro_batch_size=3", "--lr=1e-3",
      "--sample_every=0", "--eval_every=2", "--eval_limit=4", "--eval_batch_size=4", "--overlong_buffer=12",
      "--scale_rewards=batch", "--filter_groups=true", "--mask_truncated=true", "--share_prompt=false", "--seed=1", "--device=cpu"]


def drive(out):
    """The torchrun side: every distributed run of the tests, one after another in the same 2 processes."""
    rank = int(os.environ["RANK"])
    # one process group for all the runs: a second init_process_group under the same torchrun hung now and then
    start = common.init_distributed
    common.init_distributed = lambda device: (
        (rank, 2, device) if torch.distributed.is_initialized() else start(device))
    common.cleanup_distributed = lambda: None
    init = os.path.join(out, "init")
    save, passes = parallel.save, []

    def save_and_copy(out_dir, model, optimizer, tok, run_config, train_state, final):
        save(out_dir, model, optimizer, tok, run_config, train_state, final)
        if not final and rank == 0:  # keep the sharded mid-run checkpoint that the next save replaces
            shutil.copytree(out_dir, f"{out_dir}_step{train_state['step']}")
    parallel.save = save_and_copy

    accumulate = grpo.accumulate_gradients

    def counting(model, rows, normalizer, flags, *args):
        passes.append({"rows": len(rows), "padded_to": args[-1][0]})
        return accumulate(model, rows, normalizer, flags, *args)
    grpo.accumulate_gradients = counting

    sft.main(SFT + ["--fsdp=true", f"--out_dir={out}/sft_fsdp"])
    sft.main(SFT + ["--fsdp=false", f"--out_dir={out}/sft_ddp"])
    sft.main(["--resume=" + f"{out}/sft_fsdp_step2", f"--out_dir={out}/sft_resumed"])
    sft.main(SFT + ["--fsdp=true", "--dtype=bfloat16", "--steps=1", f"--out_dir={out}/sft_bf16"])  # eval gathers
    rl.main(RL + [f"--init={init}", "--steps=1", "--fsdp=true", "--dtype=bfloat16", f"--out_dir={out}/rl_bf16"])
    rl.main(RL + [f"--init={init}", "--steps=2", "--fsdp=true", f"--out_dir={out}/rl_fsdp"])
    with open(os.path.join(out, f"passes{rank}.json"), "w") as f:
        json.dump(passes, f)
    rl.main(RL + [f"--init={init}", "--steps=1", "--fsdp=true", f"--out_dir={out}/rl_first"])
    rl.main([f"--resume={out}/rl_first", "--steps=2", f"--out_dir={out}/rl_resumed"])


pytestmark = pytest.mark.usefixtures("one_thread")




def grad_norms(path):
    return [r["grad_norm"] for r in metrics(path) if "grad_norm" in r]


def state(path):
    return convert.load_model(str(path), device="cpu", dtype="float32")[0].state_dict()


def assert_close(a, b, atol):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=0, msg=name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The directory of the torchrun side's runs, and of the same runs in this one process."""
    out = tmp_path_factory.mktemp("fsdp")
    torch.manual_seed(0)  # an RL init that stops (EOS) now and then, so that rewards vary (as test_rl's fixture)
    model = teach_to_stop(GPT(GPTConfig(vocab_size=257, n_layer=2, n_head=2, n_embd=32, block_size=256, window=8)))
    checkpoint.save(out / "init", model, Tokenizer.byte_level(),
                    run_config={"data": "synthetic:lagged?n_digits=4&n_steps=2&size=200"})

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             __file__, str(out)], capture_output=True, text=True, env=env, cwd=out, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sft.main(SFT + ["--grad_accum=2", f"--out_dir={out}/sft_one"])
    rl.main(RL + [f"--init={out / 'init'}", "--steps=2", f"--out_dir={out}/rl_one"])
    return out


def test_sft_fsdp_equals_one_process_and_ddp(runs):
    """2 ranks x 2 examples under FSDP == 1 process x 2 micro-batches of 2 == DDP: losses, held-out losses, weights
    (read back from the consolidated checkpoint by convert.load_model)."""
    fsdp, one, ddp = (runs / name for name in ("sft_fsdp", "sft_one", "sft_ddp"))
    assert train_losses(fsdp).keys() == {1, 2, 3, 4}
    assert train_losses(fsdp) == pytest.approx(train_losses(one), abs=1e-6)  # float summation order apart, the same
    # the gradient itself: summed over ranks, not averaged (AdamW's update would hardly show a factor of 2)
    assert grad_norms(fsdp) == pytest.approx(grad_norms(one), rel=1e-5)
    held_out = [[r["eval_loss"] for r in metrics(d) if "eval_loss" in r] for d in (fsdp, one)]
    assert len(held_out[0]) == 3 and held_out[0] == pytest.approx(held_out[1], abs=1e-6)
    weights = state(fsdp)
    assert_close(weights, state(one), atol=1e-7)  # 4e-9 measured, against updates of ~3e-3 per step
    assert_close(weights, state(ddp), atol=1e-7)
    assert json.load(open(fsdp / "run_config.json"))["fsdp"] is True


def test_sft_checkpoints_sharded_then_consolidated(runs):
    """Before the end a checkpoint holds DCP shards and no model.safetensors, yet one process loads it (convert reads
    the shards); the last one is consolidated and carries no stale weight shards. A resume from the mid-run
    checkpoint ends bit for bit where the straight run did."""
    mid, end, resumed = runs / "sft_fsdp_step2", runs / "sft_fsdp", runs / "sft_resumed"
    assert not (mid / "model.safetensors").exists() and (mid / "sharded" / ".metadata").exists()
    assert (end / "model.safetensors").exists()
    assert torch.load(end / "train_state.pt", weights_only=True)["optimizer"] == parallel.SHARDED
    stored = torch.distributed.checkpoint.FileSystemReader(str(end / "sharded")).read_metadata().state_dict_metadata
    assert not any(k.startswith("model.") for k in stored) and any(k.startswith("optimizer.") for k in stored)
    a, b = state(end), state(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert train_losses(resumed) == {step: loss for step, loss in train_losses(end).items() if step > 2}


def test_sft_bf16_runs_sharded(runs):
    """bf16 compute with the Blocks gathered in bf16: the first loss is the fp32 run's up to bf16 rounding, and the
    held-out eval and the GRPO rollout (forwards under parallel.gathered) run in bf16 too."""
    assert train_losses(runs / "sft_bf16")[1] == pytest.approx(train_losses(runs / "sft_fsdp")[1], abs=5e-3)
    assert any("eval_loss" in r for r in metrics(runs / "sft_bf16"))
    steps = [r for r in metrics(runs / "rl_bf16") if "reward" in r]
    assert len(steps) == 1 and math.isfinite(steps[0]["loss"])


def test_grpo_fsdp_equals_one_process(runs):
    """GRPO on 2 FSDP ranks == one process: rewards, losses (the step-wide normalizer) and weights; the ranks ran
    different numbers of micro-batches, padded to the same number of passes; resume is exact."""
    fsdp, one = runs / "rl_fsdp", runs / "rl_one"
    logs = [metrics(d) for d in (fsdp, one)]
    assert [r.get("reward") for r in logs[0]] == [r.get("reward") for r in logs[1]]
    train = [[r["loss"] for r in log if "loss" in r] for log in logs]
    assert len(train[0]) == 2 and train[0] == pytest.approx(train[1], abs=1e-6)
    assert grad_norms(fsdp) == pytest.approx(grad_norms(one), rel=1e-5)
    assert_close(state(fsdp), state(one), atol=2e-6)  # 4e-7 measured, against updates of ~1e-3 per step
    assert not torch.equal(state(fsdp)["embed.weight"], state(runs / "init")["embed.weight"])

    passes = [json.load(open(runs / f"passes{r}.json")) for r in (0, 1)]
    micro = [[-(-p["rows"] // 3) for p in ranks] for ranks in passes]
    assert micro[0] != micro[1], "the ranks ran equal micro-batch counts: the padding went untested"
    assert [p["padded_to"] for p in passes[0]] == [p["padded_to"] for p in passes[1]] == \
        [max(a, b) for a, b in zip(*micro)]

    a, b = state(fsdp), state(runs / "rl_resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_fsdp_flag_resolves_and_refuses_what_cannot_work(runs, capsys):
    assert parallel.use_fsdp("auto", 2, "cpu", 10**9) is False  # CPUs: DDP
    assert parallel.use_fsdp(True, 1, "cpu", 10) is False  # one process: nothing to shard
    with pytest.raises(SystemExit) as e:
        sft.main(["--resume=" + str(runs / "sft_fsdp"), f"--out_dir={runs}/refused", "--grad_accum=2", "--steps=5"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "with FSDP" in err and "--fsdp=true" in err, err


if __name__ == "__main__":
    drive(sys.argv[1])
