#!/usr/bin/env bash
# The single-GPU recipe: Qwen2.5-0.5B-Instruct on GSM8K with window 256 (needs internet for the model and data).
#   1. eval the SA model, and the same model with the window and no training
#   2. SFT under the window (stage 1)        3. GRPO under the window (stage 2)        4. eval everything
#   bash runs/gpu_qwen_gsm8k.sh            # OUT=... W=... to change where and which window
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/qwen_gsm8k}
W=${W:-256}
MODEL=${MODEL:-hf:Qwen/Qwen2.5-0.5B-Instruct}
DEV=--device=cuda         # stop with one line if CUDA is broken, rather than run for days on the CPU
EVAL="$DEV --data=gsm8k --split=test --limit=500 --max_new_tokens=512 --batch_size=128"
python eval.py --init=$MODEL --init=$MODEL@window=$W $EVAL --out_dir=$OUT/eval_base
python sft.py $DEV --init=$MODEL --window=$W --data=gsm8k --max_len=512 --batch_size=16 --grad_accum=4 --lr=1e-5 \
  --warmup=20 --epochs=2 --eval_every=100 --eval_limit=64 --out_dir=$OUT/sft
python rl.py $DEV --init=$OUT/sft --data=gsm8k --steps=200 --prompts_per_step=32 --group_size=8 --max_new_tokens=512 \
  --micro_batch_size=16 --lr=2e-6 --eval_every=25 --eval_limit=500 --save_every=50 --out_dir=$OUT/rl
python eval.py --init=$OUT/sft --init=$OUT/rl $EVAL --out_dir=$OUT/eval
