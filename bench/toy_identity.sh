#!/usr/bin/env bash
# Does a change keep the toy bit for bit? Runs runs/swarr_cpu.sh's stage commands for one seed with few steps (sa from
# scratch, swa_sft, GRPO, distillation, RFT, token-budget SFT, eval of all 7) in TREE, writing to OUT (a new directory); then
# bench/compare_runs.py OLD_OUT NEW_OUT compares every stage's weights tensor by tensor, the metrics (timings aside)
# and every eval row. Used for the renovation (README "How to read this code"): old tree vs new, ALL IDENTICAL.
#   git worktree add /tmp/old HEAD~5 && bash bench/toy_identity.sh /tmp/old /tmp/a && bash bench/toy_identity.sh . /tmp/b
#   python bench/compare_runs.py /tmp/a /tmp/b
set -euo pipefail
TREE=$1; OUT=$(realpath -m "$2"); S=${SEED:-0}
[ ! -e "$OUT" ] || { echo "$OUT exists: give a new directory"; exit 2; }
cd "$TREE"; export OMP_NUM_THREADS=1
mkdir -p "$OUT"; D=$OUT
C="--device=cpu --data=synthetic"
python sft.py --device=cpu --data="synthetic?zero_frac=0.5" --init=scratch --n_layer=2 --n_head=4 --n_embd=128 \
  --block_size=256 --window=none --local_frac=0.3 --steps=${SA:-60} --batch_size=64 --lr=1e-3 --warmup=50 \
  --eval_every=0 --eval_limit=0 --save_every=0 --seed=$S --out_dir=$D/sa > $OUT/log 2>&1
python sft.py $C --init=$D/sa --window=18 --local_frac=0.3 --steps=${SFT:-20} --batch_size=64 --lr=1e-3 --warmup=20 \
  --eval_every=0 --eval_limit=0 --save_every=0 --seed=$S --out_dir=$D/swa_sft >> $OUT/log 2>&1
python rl.py $C --init=$D/swa_sft --steps=${RL:-3} --prompts_per_step=16 --group_size=8 --lr=1e-4 --temperature=1.0 \
  --scale_rewards=none --max_new_tokens=200 --eval_every=2 --eval_limit=20 --seed=$S --out_dir=$D/swa_rl >> $OUT/log 2>&1
python rl.py $C --init=$D/swa_sft --teacher=$D/sa --steps=${RL:-3} --prompts_per_step=16 --group_size=8 --lr=1e-4 \
  --temperature=1.0 --max_new_tokens=200 --eval_every=2 --eval_limit=20 --seed=$S --out_dir=$D/swa_distill >> $OUT/log 2>&1
python rl.py $C --init=$D/swa_sft --algo=rft --steps=${RL:-3} --prompts_per_step=16 --group_size=8 --lr=1e-4 \
  --temperature=1.0 --max_new_tokens=200 --eval_every=2 --eval_limit=20 --seed=$S --out_dir=$D/swa_rft >> $OUT/log 2>&1
python sft.py $C --init=$D/swa_sft --local_frac=0.3 --token_budget=30000 --batch_size=64 --lr=1e-3 --warmup=20 \
  --eval_every=0 --eval_limit=0 --save_every=0 --seed=$S --out_dir=$D/swa_sft_more >> $OUT/log 2>&1
python eval.py $C --init=$D/sa --init=$D/sa@window=18 --init=$D/swa_sft --init=$D/swa_rl --init=$D/swa_distill \
  --init=$D/swa_rft --init=$D/swa_sft_more --limit=${EV:-30} --max_new_tokens=200 --out_dir=$D/eval >> $OUT/log 2>&1
echo done $OUT
