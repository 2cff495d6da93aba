r"""
Datasets for sft.py, rl.py and eval.py: a list of examples {"question", "answer", "solution"} plus the prompt
template that turns one into token ids; and SFT's batches (token lists with loss masks, length-bucketed global
batches, padded micro-batches).

    python data.py --data=synthetic --n=3                    # the lagged toy: prompt, answer, both solution styles
    python data.py --data=synthetic:arith --n=2              # multi-step word problems (CPU default for real models)
    python data.py --data="synthetic:lagged?n_digits=8&n_steps=9" --split=test --n=2
    python data.py --data=jsonl:/path/file.jsonl --n=2
    python data.py --help

    ds = load_dataset("synthetic", split="train", size=1000, seed=0)
    ids = ds.render_prompt(tok, ds.examples[0])              # prompt ids, ending with the assistant turn opener
    ids, loss_mask = ds.render_for_sft(tok, ds.examples[0])  # prompt + solution + EOS; mask 1 on solution + EOS
    train = sft_examples(ds, tok, max_len=256)               # SFT's token lists and loss masks (sft.py)
    batches = epoch_batches([len(s) for s in train.seqs], 64, seed=0, epoch=0)  # global batches of indices
    idx, targets = pad_batch(seqs, masks, tok.pad_id)        # (B,T) inputs and next-token targets, -1 = no loss

Sources (--data=NAME). Knobs are keyword arguments of load_dataset or go after "?" in the name (key=value&...):
  gsm8k       openai/gsm8k "main" (train 7,473 / test 1,319). The <<48/2=24>> calculator annotations are removed and
              the "#### 72" line becomes "The final answer is \boxed{72}."; answer = the number after #### (no commas).
  math        DigitalLearningGmbH/MATH-lighteval: the 12,500 MATH problems (Hendrycks et al.) in one config, train
              7,500 / test 5,000, fields problem/level/type/solution; answer = the last \boxed{} of the solution.
              MATH-500 was drawn from the MATH test split, so `math` train never contains a math500 problem.
  math500     HuggingFaceH4/MATH-500, test only, fields problem/solution/answer.
  jsonl:PATH  one JSON object per line. Each row's form is read from the row and converted by the same function
              as the hub source of that form:
                GSM8K  "question" + an "answer" holding "####" (openai/grade-school-math): as gsm8k;
                MATH   "problem" (or "question") + a "solution" with a \boxed{}, no "answer": as math;
                plain  "question" (or "problem") + "answer", the "solution" optional: as math500.
              Other field names: the knobs question_key / answer_key / solution_key. "{split}" in PATH is replaced
              by the split (jsonl:../shared/data/gsm8k/{split}.jsonl); without it both splits read the same file.
  synthetic   built in, seeded, no network, the default: `synthetic` (= synthetic:lagged) is the SWARR toy task
              below; synthetic:arith is multi-step arithmetic word problems.
Knobs for every source: size (the first n examples; synthetic: how many to generate, at most 1,000,000),
instruction, system, seed (used by synthetic only; accepted everywhere so scripts can always pass it).

Bad data never crashes a run: a malformed row is skipped and counted under its reason in Dataset.skip_reasons
(Dataset.skipped is the total): "not UTF-8" (bytes that do not decode, or an escaped lone surrogate "\ud800" that
no tokenizer can encode), "not JSON", "nested too deep" (past the JSON decoder's recursion limit), "integer too
long" (past Python's 4,300 digits), "not an object", "no question", "no answer" (missing, empty, not a string or a
number; a GSM8K row with nothing after ####, a MATH row without \boxed{}), "answer not a number" (a GSM8K answer
that is not a plain number such as 72, -3, 0.5 or 1,234: "1,2,3", "seventy", "nan", "1e400"), "answer not
readable" (unbalanced braces, or a number that is not finite), "solution not a string". SFT trains
on Dataset.with_solutions(), which counts the examples without a solution under "no solution". A source with no
usable row at all fails with one line. Hub sources need the internet; without it they fail at once with one line
that points to jsonl: and synthetic (a DNS probe spares datasets' retries; to use a cached copy offline,
set HF_DATASETS_OFFLINE=1, which skips the probe).

Prompt template: [system message, only if `system` is set] + [user: question + "\n" + instruction], rendered by the
tokenizer's render_chat with the assistant generation prompt. Hub and jsonl sources use the default instruction
"Please reason step by step, and put your final answer within \boxed{}." as a suffix of the user message (the
Qwen2.5-Math / DeepSeek-R1 convention); instruction="" turns it off. synthetic:lagged has no instruction (its format
is the task) and synthetic:arith uses the default one (it exists for real chat models).

The lagged task (`synthetic`, `synthetic:lagged`): long-range dependencies inside the solution trace.
  question   L random digits s_1..s_L then "=", e.g. "660487="                        (L = n_digits)
  rule       s_n = (s_{n-L} + s_{n-1}) mod 10 for K further values; answer = the last  (K = n_steps)
  reference  1:6+7=3;2:6+3=9;3:0+9=9;4:4+9=3;5:8+3=1;6:7+1=8;7:3+8=1;8:9+1=0;\boxed{0}
             terse: step n writes its first operand s_n, last written L-1 steps earlier (or in the question)
  local      [660487]1:6+7=3;[604873]2:6+3=9;...;[993181]8:9+1=0;\boxed{0}
             restates the last L values before every step, so every operand is at most one step back
  The step counter "n:" tells the model where it is (without it the local style cannot tell when to stop under a
  window). Distances, in characters (= byte-level tokens), from the position that predicts a copied value back to
  its latest earlier copy, with a one-character separator between question and solution (lagged_lookbacks()
  measures them on any trace): reference steps are 8 characters and the first operand of step n was last written
  as the second operand of step n-L+1 (or in the question), 8L-11 = 37 back for every step from n = L-1 on;
  local steps are L+10 = 16 characters and no copy is more than L+9 = 15 back (both one more from step 10 on,
  when the counter has two digits). A query sees W-1 keys back in one windowed layer and at most n*(W-1) back through a
  stack of n windowed layers. So with the defaults L=6, K=8 and W=18: local (<= 15 < 17) fits even one layer,
  while half of the reference steps need 37 > 2*17 = 34, out of reach of a 2-layer windowed model however long it
  trains (3 layers reach 51 and can learn to relay values, as the measured toy showed). Each extra digit of L
  pushes reference lookups back by 8 and local ones by 1 (L=8: 53 and 17).
  Knobs: n_digits=6, n_steps=8, local_frac=0.2 (share of local solutions in the SFT mix, the rest reference),
  size (default 20,000 train / 500 test), seed=0, zero_frac=0 (a curriculum for training from scratch: each
  prompt digit is 0 with this probability. With uniform digits the sum c = a + b mod 10 is independent of a and
  of b alone, so no gradient leads attention to either operand until both are found at once, and some seeds stall
  at chance on every sum; when one operand is 0 the sum is a copy of the other, which is learned at once).

The arith task (`synthetic:arith`): named quantities, each defined from an earlier one; the question asks for the
first (or, with ask=1, the first computed one) plus the last, so that value is needed again at the very end.
  question   Ann has 12 coins. Ben has 7 more coins than Ann. Cal has 3 times as many coins as Ben. How many coins
             do Ann and Cal have together?
  reference  Ben has 12 + 7 = 19 coins.\nCal has 3 * 19 = 57 coins.\nTogether Ann and Cal have 12 + 57 = 69 coins.
             \nThe answer is \boxed{69}.
  local      the same steps, each preceded by the values still needed, e.g. "[Ann=12, Ben=19]\n"
  Knobs: steps=4 (arithmetic steps, the final sum included; 2..12), max_value=20 (start values and addends),
  ops=add,sub,mul (the operations drawn from), jump=0.3 (chance that a quantity is defined from an older one than
  the previous), ask=0 (which quantity is added to the last), local_frac, size, seed. That quantity is needed again
  in the last line, so the reference style's longest lookup grows with steps (runs/swarr_smollm2.sh measures it).

Synthetic examples carry both styles ({"solutions": {"reference": ..., "local": ...}}) and the drawn one ("style",
"solution"). Train and test are disjoint by construction: a question is a test question iff crc32(question) % 10 == 0,
whatever the seeds and sizes; test questions are distinct, train questions may repeat. Style draws use their own
random stream, so changing local_frac keeps the questions. To add a task: a dataclass whose fields are its knobs,
with an `instruction` class attribute, make(rng) -> {"question", "answer", "solutions"} and style(text) -> "local" |
"reference" | None (the style of a response); register it in SYNTHETIC_TASKS.
"""

import argparse
import collections
import dataclasses
import json
import math
import os
import random
import re
import socket
import zlib
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

DEFAULT_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
STYLES = ("reference", "local")
SPLITS = ("train", "test")


# -----------------------------------------------------------------------------
# The dataset: examples plus the prompt template


@dataclass
class Dataset:
    name: str
    examples: list = field(repr=False)  # dicts {"question", "answer", "solution" (str or None), ...}
    skip_reasons: dict = field(default_factory=dict)  # reason -> how many rows were left out for it
    system: str | None = None
    instruction: str | None = None
    task: object = field(default=None, repr=False)  # the synthetic task that made the examples; None for real data

    def style_of(self, text):
        """A response's solution style, "local" | "reference" | None (no recognizable step), which eval.py and
        rl.py report as the local share: a property of the synthetic tasks, so always None for real data, where the
        two styles do not exist."""
        return self.task.style(text) if self.task is not None else None

    def __len__(self):
        return len(self.examples)

    @property
    def skipped(self):
        return sum(self.skip_reasons.values())

    def skip_report(self):
        """'5 malformed rows skipped (3 not JSON, 2 no answer)', for the scripts' data line."""
        if not self.skipped:
            return "0 malformed rows skipped"
        return f"{self.skipped} malformed rows skipped ({_count_text(self.skip_reasons)})"

    def with_solutions(self):
        """The dataset SFT trains on: a copy without the examples that have no solution, which are counted under
        "no solution". One line when none is left."""
        kept = [ex for ex in self.examples if ex.get("solution")]
        if not kept:
            raise ValueError(f"{self.name}: no example to train on: each of the {len(self.examples)} examples has no "
                             f"solution and SFT needs one; use a source with solutions (in jsonl: a solution field, "
                             f"a GSM8K '####' answer or a MATH solution ending in \\boxed{{}})")
        reasons = dict(self.skip_reasons)
        if len(kept) < len(self.examples):
            reasons["no solution"] = reasons.get("no solution", 0) + len(self.examples) - len(kept)
        return dataclasses.replace(self, examples=kept, skip_reasons=reasons)

    def user_message(self, example):
        if self.instruction:
            return example["question"] + "\n" + self.instruction
        return example["question"]

    def render_prompt(self, tok, example):
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": self.user_message(example)})
        return tok.render_chat(messages, add_generation_prompt=True)

    def render_for_sft(self, tok, example):
        """(ids, loss_mask): the prompt (mask 0) then the solution and EOS (mask 1), so only the assistant's tokens
        are trained and the model learns to stop. The solution is encoded on its own, as it will be generated."""
        if not example.get("solution"):
            raise ValueError(f"{self.name}: an example has no solution and SFT needs one "
                             f"(question {example['question'][:60]!r}); train on dataset.with_solutions()")
        prompt = self.render_prompt(tok, example)
        completion = tok.encode(example["solution"]) + [tok.eos_id]
        return prompt + completion, [0] * len(prompt) + [1] * len(completion)


# -----------------------------------------------------------------------------
# SFT's batches: the tokenized examples, one epoch's global batches, a padded micro-batch

SFTExamples = collections.namedtuple("SFTExamples", "seqs masks n_targets dropped")
BUCKET = 16  # global batches sorted by length together: less padding, still a fresh mix of lengths every step


def sft_examples(dataset, tok, max_len, limit=None):
    """-> SFTExamples of every example that has a solution (dataset.with_solutions() counts the others) and fits in
    max_len tokens: seqs[i] (L_i,) the ids of prompt + solution + EOS, masks[i] (L_i,) 1 on the solution and the EOS
    only (the model learns to answer and to stop, never to write questions), n_targets[i] its supervised tokens.
    Longer examples are dropped and counted, not truncated: a cut solution would teach the model to stop early."""
    seqs, masks, n_targets, dropped = [], [], [], 0
    for ex in dataset.with_solutions().examples[:limit]:
        ids, mask = dataset.render_for_sft(tok, ex)
        if len(ids) > max_len:
            dropped += 1
            continue
        seqs.append(ids)
        masks.append(mask)
        n_targets.append(sum(mask[1:]))  # the first token is never a target
    return SFTExamples(seqs, masks, n_targets, dropped)


def epoch_batches(lengths, global_batch, seed, epoch):
    """The global batches of one epoch, as lists of example indices: a random permutation cut into chunks of BUCKET
    global batches, each chunk sorted by length and cut into global batches, the batches shuffled; padded, never
    packed, so no example can attend to another. A pure function of (seed, epoch), so a checkpoint stores only
    (epoch, cursor). The last partial global batch is dropped."""
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    perm = perm[:len(perm) // global_batch * global_batch]  # drop the last partial batch
    batches = []
    for start in range(0, len(perm), BUCKET * global_batch):
        chunk = sorted(perm[start:start + BUCKET * global_batch], key=lambda i: lengths[i])
        batches += [chunk[j:j + global_batch] for j in range(0, len(chunk), global_batch)]
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def pad_batch(seqs, masks, pad_id):
    """seqs, masks: B lists of ids and their 0/1 loss masks (render_for_sft) -> right-padded inputs idx (B, T)
    (pad_id after the end) and next-token targets (B, T) (-1 where there is no loss), T = the longest length - 1:
    position t reads ids[t] and predicts ids[t+1] where mask[t+1] is 1 (the last token is only a target). Right
    padding under a causal mask never changes the real positions."""
    import torch

    if len(seqs) != len(masks) or any(len(s) != len(m) for s, m in zip(seqs, masks)):
        raise ValueError("pad_batch: every sequence needs a loss mask of the same length")
    T = max((len(s) for s in seqs), default=0) - 1
    if T < 1:
        raise ValueError("pad_batch: sequences need at least 2 tokens (an input and a target)")
    idx = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    targets = torch.full((len(seqs), T), -1, dtype=torch.long)
    for b, (ids, mask) in enumerate(zip(seqs, masks)):
        n = len(ids) - 1
        if n < 1:
            continue
        idx[b, :n] = torch.tensor(ids[:-1])
        next_ids = torch.tensor(ids[1:])
        targets[b, :n] = torch.where(torch.tensor(mask[1:], dtype=torch.bool), next_ids, -1)
    return idx, targets


# -----------------------------------------------------------------------------
# Synthetic tasks: seeded generators, each with a reference and a local solution style


def lagged_solutions(digits, n_steps):
    """Both solution styles of the lagged recurrence s_n = (s_{n-L} + s_{n-1}) mod 10 started from `digits`."""
    L, s = len(digits), list(digits)
    reference, local = [], []
    for n in range(1, n_steps + 1):
        a, b = s[-L], s[-1]
        c = (a + b) % 10
        step = f"{n}:{a}+{b}={c};"
        reference.append(step)
        local.append("[" + "".join(map(str, s[-L:])) + "]" + step)
        s.append(c)
    boxed = f"\\boxed{{{s[-1]}}}"
    return {"answer": str(s[-1]), "solutions": {"reference": "".join(reference) + boxed, "local": "".join(local) + boxed}}


@dataclass
class Lagged:
    n_digits: int = 6  # L: the lag, which sets the reference-style dependency distance (8L-11 characters)
    n_steps: int = 8  # K: values to compute
    zero_frac: float = 0.0  # a curriculum: each prompt digit is 0 with this probability (else uniform 0-9)
    instruction = None  # the format is the task: no instruction text (class attribute, not a knob)

    def __post_init__(self):
        if self.n_digits < 1 or self.n_steps < 1:
            raise ValueError(f"synthetic:lagged needs n_digits >= 1 and n_steps >= 1, got {self.n_digits}, {self.n_steps}")
        if not 0.0 <= self.zero_frac <= 1.0:
            raise ValueError(f"synthetic:lagged needs 0 <= zero_frac <= 1, got {self.zero_frac}")

    def style(self, text):
        return trace_style(text)

    def make(self, rng):
        # zero_frac=0 draws nothing extra, so the default stream (and every seed's data) is unchanged
        digits = [0 if self.zero_frac and rng.random() < self.zero_frac else rng.randrange(10)
                  for _ in range(self.n_digits)]
        return {"question": "".join(map(str, digits)) + "=", **lagged_solutions(digits, self.n_steps)}


NAMES = ("Ann", "Ben", "Cal", "Dee", "Eva", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lou")
ITEMS = ("apples", "coins", "books", "marbles", "cards", "shells", "stamps")


@dataclass
class Arith:
    steps: int = 4  # arithmetic steps in the solution, the final sum included
    max_value: int = 20  # start values and addends are at most this
    ops: str = "add,sub,mul"  # the operations drawn from ("add" alone: the arithmetic a 135M model gets right)
    jump: float = 0.3  # chance that a quantity is defined from an older one than the previous: a longer reach
    ask: int = 0  # the question asks for quantity `ask` plus the last; 1+ is a value only the solution computes
    instruction = DEFAULT_INSTRUCTION  # meant for real chat models, which need to be told the answer format

    def __post_init__(self):
        ops = set(self.ops.split(","))
        if (not 2 <= self.steps <= len(NAMES) or self.max_value < 2 or not 0 <= self.ask < self.steps - 1
                or not 0 <= self.jump <= 1 or not ops or ops - {"add", "sub", "mul"}):
            raise ValueError(f"synthetic:arith needs 2 <= steps <= {len(NAMES)}, max_value >= 2, 0 <= ask < steps - 1, "
                             f"0 <= jump <= 1 and ops from add,sub,mul; got steps={self.steps}, max_value="
                             f"{self.max_value}, ask={self.ask}, jump={self.jump}, ops={self.ops!r}")

    def style(self, text):
        return trace_style(text)

    def make(self, rng):
        names, item = rng.sample(NAMES, self.steps), rng.choice(ITEMS)
        values = [rng.randint(2, self.max_value)]
        facts = [f"{names[0]} has {values[0]} {item}."]
        steps = []  # (sentence, indices of the values it reads)
        allowed = self.ops.split(",")
        for i in range(1, self.steps):
            j = i - 1 if rng.random() < 1 - self.jump else rng.randrange(i)  # now and then an older value
            x = values[j]
            ops = ((["+"] if "add" in allowed else []) + (["-"] if "sub" in allowed and x > 1 else [])
                   + (["*"] if "mul" in allowed and x <= 5 * self.max_value else []))
            op = rng.choice(ops or ["+"])  # nothing allowed here (sub or mul alone, x too small or large): add
            if op == "+":
                k = rng.randint(1, self.max_value)
                v, fact, work = x + k, f"{k} more {item} than", f"{x} + {k} = {x + k}"
            elif op == "-":
                k = rng.randint(1, x - 1)
                v, fact, work = x - k, f"{k} fewer {item} than", f"{x} - {k} = {x - k}"
            else:
                k = rng.randint(2, 3)
                v, fact, work = k * x, f"{k} times as many {item} as", f"{k} * {x} = {k * x}"
            values.append(v)
            facts.append(f"{names[i]} has {fact} {names[j]}.")
            steps.append((f"{names[i]} has {work} {item}.", {j}))
        a, last = self.ask, self.steps - 1
        total = values[a] + values[last]
        question = " ".join(facts) + f" How many {item} do {names[a]} and {names[last]} have together?"
        steps.append((f"Together {names[a]} and {names[last]} have {values[a]} + {values[last]} = {total} {item}.",
                      {a, last}))
        local = []
        for t, (sentence, _) in enumerate(steps):
            needed = set().union(*(reads for _, reads in steps[t:]))  # values known before step t and still used
            state = ", ".join(f"{names[m]}={values[m]}" for m in range(t + 1) if m in needed)
            local += [f"[{state}]", sentence]
        boxed = f"The answer is \\boxed{{{total}}}."
        return {"question": question, "answer": str(total),
                "solutions": {"reference": "\n".join([s for s, _ in steps] + [boxed]), "local": "\n".join(local + [boxed])}}


SYNTHETIC_TASKS = {"lagged": Lagged, "arith": Arith}
MAX_SYNTHETIC_SIZE = 1_000_000  # examples are generated up front: a typo of extra zeros fails at once

# A restated state ("[660487]" or "[Ann=12, Ben=19]") and one computation step ("3:0+9=9" or "12 + 7 = 19").
_STATE = re.compile(r"\[(?:\d+|[A-Z][a-z]*=-?\d+(?:, [A-Z][a-z]*=-?\d+)*)\]")
_STEP = re.compile(r"\d+:\d+\+\d+=\d+|-?\d+ [-+*] -?\d+ = -?\d+")


def trace_style(text):
    """'local' if at least half of the steps in a response restate the state, 'reference' if fewer do, None if
    it has no recognizable step (eval.py reports the local share of responses)."""
    n_steps = len(_STEP.findall(text))
    if n_steps == 0:
        return None
    return "local" if 2 * len(_STATE.findall(text)) >= n_steps else "reference"


def lagged_lookbacks(question, solution, sep="\n"):
    """For every value a lagged trace copies (operands, restated digits, step counters, the boxed answer): how far
    back the position that predicts it must look, (position - 1) - (position of the latest earlier copy), in
    characters of question + sep + solution. sep stands for what the chat template puts in between."""
    L, offset = question.index("="), len(question) + len(sep)
    latest = {i: i for i in range(L)}  # value index (s_1 is 0) -> position of its latest copy
    gaps, done, counter = [], 0, None

    def copy(value, pos):
        gaps.append(pos - 1 - latest[value])
        latest[value] = pos

    for m in re.finditer(r"\[(\d+)\]|(\d+):(\d+)\+(\d+)=(\d+);|\\boxed\{(\d+)\}", solution):
        if m.group(1) is not None:  # the state before step done+1 holds values done .. done+L-1
            for k in range(len(m.group(1))):
                copy(done + k, offset + m.start(1) + k)
        elif m.group(2) is not None:
            if counter is not None:
                gaps.append(offset + m.start(2) - 1 - counter)
            counter = offset + m.start(2)
            copy(done, offset + m.start(3))
            copy(done + L - 1, offset + m.start(4))
            latest[done + L] = offset + m.start(5)
            done += 1
        else:
            copy(done + L - 1, offset + m.start(6))
    return gaps


def _is_test_question(question):
    return zlib.crc32(question.encode()) % 10 == 0


def _load_synthetic(task_name, split, name, knobs):
    if task_name not in SYNTHETIC_TASKS:
        raise ValueError(f"unknown synthetic task {task_name!r} in --data={name}: use one of "
                         + ", ".join(f"synthetic:{t}" for t in SYNTHETIC_TASKS))
    cls = SYNTHETIC_TASKS[task_name]
    task_knobs = {f.name: type(f.default) for f in dataclasses.fields(cls)}
    common = {"size": int, "seed": int, "local_frac": float, "instruction": str, "system": str}
    unknown = set(knobs) - set(task_knobs) - set(common)
    if unknown:
        raise ValueError(f"unknown knobs {sorted(unknown)} for --data={name}: accepted are "
                         f"{sorted(task_knobs) + sorted(common)}")
    task = cls(**{k: _as(typ, k, knobs[k]) for k, typ in task_knobs.items() if k in knobs})
    size = _as(int, "size", knobs.get("size", 20000 if split == "train" else 500))
    seed = _as(int, "seed", knobs.get("seed", 0))
    local_frac = _as(float, "local_frac", knobs.get("local_frac", 0.2))
    if not 1 <= size <= MAX_SYNTHETIC_SIZE or not 0.0 <= local_frac <= 1.0:
        raise ValueError(f"--data={name}: size must be in [1, {MAX_SYNTHETIC_SIZE:,}] and local_frac in [0, 1], "
                         f"got {size}, {local_frac}")

    # String seeds are hashed with SHA-512, so the streams are the same in every process and Python version.
    rng = random.Random(f"{task_name}/{split}/{seed}")
    style_rng = random.Random(f"{task_name}/{split}/{seed}/style")
    examples, seen, tries = [], set(), 0
    while len(examples) < size:
        tries += 1
        if tries > 100 * size + 10_000:
            raise ValueError(f"--data={name}: only {len(examples)} distinct {split} questions found, fewer than "
                             f"size={size}; lower size or make the task larger")
        ex = task.make(rng)
        if _is_test_question(ex["question"]) != (split == "test"):
            continue
        if split == "test":
            if ex["question"] in seen:
                continue
            seen.add(ex["question"])
        style = "local" if style_rng.random() < local_frac else "reference"
        examples.append({"question": ex["question"], "answer": ex["answer"], "solution": ex["solutions"][style],
                         "style": style, "solutions": ex["solutions"]})
    return Dataset(name=name, examples=examples, system=knobs.get("system") or None,
                   instruction=knobs.get("instruction", task.instruction) or None, task=task)


# -----------------------------------------------------------------------------
# Hub and file sources


class BadRow(ValueError):
    """A malformed row; its message is the reason it is counted under in Dataset.skip_reasons."""


def _count_text(counts):
    """{'not JSON': 3, 'no answer': 2} -> '3 not JSON, 2 no answer', the largest first."""
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _example(question, answer, solution=None):
    """A clean example dict, or BadRow."""
    if isinstance(answer, bool):
        raise BadRow("no answer")
    if isinstance(answer, int) or (isinstance(answer, float) and math.isfinite(answer)):
        answer = str(answer)
    if not isinstance(question, str) or not question.strip():
        raise BadRow("no question")
    if not isinstance(answer, str) or not answer.strip():
        raise BadRow("no answer")
    if not _readable_answer(answer.strip()):
        raise BadRow("answer not readable")
    if solution is not None and not isinstance(solution, str):
        raise BadRow("solution not a string")
    try:  # JSON may escape a lone surrogate ("\ud800"): a str that no tokenizer can encode
        for text in (question, answer, solution or ""):
            text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRow("not UTF-8") from None
    return {"question": question.strip(), "answer": answer.strip(),
            "solution": solution if solution and solution.strip() else None}


def _readable_answer(answer):
    """Whether a gold answer is one a grader can read: its braces balance (a '}{' would become the SFT target
    \\boxed{}{}), and a plain number is finite (not nan, inf or 1e400). Anything else, LaTeX or words, is left to
    verify.py."""
    depth = 0
    for c in answer:
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            return False
    if depth:
        return False
    if re.fullmatch(r"[-+]?\d+", answer):  # an integer, however long (float() would call 4,000 digits inf)
        return True
    try:
        return math.isfinite(float(answer))
    except ValueError:  # not a plain number
        return True


# GSM8K's gold answers are plain numbers: 72, -3, 0.5, with well-formed thousands separators (1,234)
GSM8K_GOLD = re.compile(r"-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")


def _last_boxed(text):
    """Content of the last \\boxed{...} (or \\fbox{...}) with nested braces, or None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = j = text.index("{", start) + 1
    depth = 1
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i:j - 1] if depth == 0 else None


# The row converters. Each takes a row under our field names (see _fields) and returns an example or raises BadRow;
# the hub sources and jsonl: go through the same ones.


def _gsm8k_row(row):
    """GSM8K: the answer is the worked solution, ending in "#### 72"."""
    question, answer = row.get("question"), row.get("answer")
    if not isinstance(answer, str) or "####" not in answer:
        raise BadRow("no answer")
    work, _, gold = answer.rpartition("####")
    gold = gold.strip()
    if gold and not GSM8K_GOLD.fullmatch(gold):  # '1,2,3' is not 123, 'seventy' and 'nan' are not numbers
        raise BadRow("answer not a number")
    gold = gold.replace(",", "")
    work = re.sub(r"<<[^>]*>>", "", work).strip()
    return _example(question, gold, f"{work}\nThe final answer is \\boxed{{{gold}}}.".lstrip())


def _math_row(row):
    """MATH: the answer is the last \\boxed{} of the solution."""
    solution = row.get("solution")
    return _example(row.get("question"), _last_boxed(solution) if isinstance(solution, str) else None, solution)


def _plain_row(row):
    """Question and answer given, the solution optional (MATH-500)."""
    return _example(row.get("question"), row.get("answer"), row.get("solution"))


def _any_row(row):
    """jsonl: the form is read from the row itself."""
    if isinstance(row.get("answer"), str) and "####" in row["answer"]:
        return _gsm8k_row(row)
    if row.get("answer") is None and isinstance(row.get("solution"), str):
        return _math_row(row)
    return _plain_row(row)


def _fields(row, question_key="question", answer_key="answer", solution_key="solution"):
    """A raw row under our field names; MATH's "problem" stands in for a missing "question" (default key only)."""
    if not isinstance(row, dict):
        raise BadRow("not an object")
    question = row.get(question_key)
    if question is None and question_key == "question":
        question = row.get("problem")
    return {"question": question, "answer": row.get(answer_key), "solution": row.get(solution_key)}


def _convert_rows(rows, convert, parse=None, **keys):
    """-> (examples, skip_reasons): convert(_fields(parse(row))) for every row; a BadRow is counted, not raised."""
    examples, reasons = [], {}
    for row in rows:
        try:
            examples.append(convert(_fields(parse(row) if parse else row, **keys)))
        except BadRow as e:
            reasons[str(e)] = reasons.get(str(e), 0) + 1
    return examples, reasons


# name -> (hub repo, config, our split -> hub split, row converter)
HUB = {
    "gsm8k": ("openai/gsm8k", "main", {"train": "train", "test": "test"}, _gsm8k_row),
    "math": ("DigitalLearningGmbH/MATH-lighteval", "default", {"train": "train", "test": "test"}, _math_row),
    "math500": ("HuggingFaceH4/MATH-500", None, {"test": "test"}, _plain_row),
}


def _hub_reachable():
    """False when huggingface.co does not even resolve (no internet), so we fail at once instead of retrying."""
    def on(var):
        return os.environ.get(var, "").lower() in ("1", "true", "yes", "on")
    if on("HF_DATASETS_OFFLINE") or on("HF_HUB_OFFLINE") or os.environ.get("HF_ENDPOINT") or any(
            os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # cache, mirror or proxy: let datasets decide
    try:
        socket.getaddrinfo("huggingface.co", 443)
        return True
    except OSError:
        return False


def _load_hub(name, split):
    repo, config, splits, convert = HUB[name]
    if split not in splits:
        raise ValueError(f"{name} has no {split} split (it is a test set): train on --data=math or --data=gsm8k")
    failure = (f"could not load {repo} from the Hugging Face hub (no internet?): "
               f"use --data=jsonl:/path/file.jsonl or --data=synthetic")
    if not _hub_reachable():
        raise ValueError(f"{failure} [huggingface.co does not resolve]")
    try:
        import datasets
    except ImportError:
        raise ValueError(f"--data={name} needs the datasets package (pip install datasets); "
                         f"or use --data=jsonl:/path/file.jsonl or --data=synthetic") from None
    try:
        args = (repo, config) if config else (repo,)
        rows = datasets.load_dataset(*args, split=splits[split])
    except Exception as e:  # connection, missing repo, auth, cache: all end the same way for the user
        cause = (str(e).splitlines() or [""])[0][:120]
        raise ValueError(f"{failure} [{type(e).__name__}: {cause}]") from None
    examples, reasons = _convert_rows(rows, convert)
    if not examples:
        raise ValueError(f"{repo} ({split}): no usable rows ({_count_text(reasons)})")
    return examples, reasons


def _parse_jsonl_line(line):
    """bytes -> the JSON value, or BadRow. Strict UTF-8: a bad byte skips the row instead of slipping U+FFFD into
    a question; utf-8-sig drops the byte-order mark some editors write at the start of a file."""
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRow("not UTF-8") from None
    try:
        return json.loads(text)
    except RecursionError:  # arrays or objects nested about 1,000 deep or more
        raise BadRow("nested too deep") from None
    except json.JSONDecodeError:
        raise BadRow("not JSON") from None
    except ValueError:  # the other ValueError of json.loads: an integer of more than 4,300 digits
        raise BadRow("integer too long") from None


def _read_jsonl(path, split, question_key, answer_key, solution_key):
    path = path.replace("{split}", split)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such jsonl file: {path} (expected --data=jsonl:/path/file.jsonl, "
                                f"one JSON object per line)")
    keys = dict(question_key=question_key, answer_key=answer_key, solution_key=solution_key)
    try:
        with open(path, "rb") as f:  # bytes: each line is decoded on its own, so one bad line costs one row
            examples, reasons = _convert_rows((line for line in f if line.strip()), _any_row, _parse_jsonl_line, **keys)
    except OSError as e:
        raise FileNotFoundError(f"cannot read {path}: {e.strerror or e}") from None
    if not examples:
        raise ValueError(f"{path}: no usable rows ({_count_text(reasons) or 'the file is empty'}); every line needs a "
                         f"{question_key!r} and an {answer_key!r} (a number, or GSM8K's '... #### 72') or a "
                         f"{solution_key!r} ending in \\boxed{{}} (set question_key= / answer_key= for other names)")
    return examples, reasons


# -----------------------------------------------------------------------------
# The entry point


def _as(typ, key, value):
    """A knob value as typ; knobs from the name arrive as strings."""
    if isinstance(value, typ) or value is None:
        return value
    try:
        return typ(value)
    except (TypeError, ValueError):
        raise ValueError(f"knob {key}={value!r} should be {typ.__name__}") from None


def _split_name(name):
    """'synthetic:lagged?n_digits=8&n_steps=9' -> ('synthetic:lagged', {'n_digits': '8', 'n_steps': '9'})."""
    if "?" not in name:
        return name, {}
    base, query = name.rsplit("?", 1)
    try:
        return base, dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise ValueError(f"bad knobs in --data={name}: write them as NAME?key=value&key=value") from None


def load_dataset(name="synthetic", split="train", **knobs):
    """A Dataset from a source name (see the module docstring); knobs as keyword arguments or in the name."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    base, name_knobs = _split_name(name)
    knobs = {**name_knobs, **knobs}
    if base == "synthetic" or base.startswith("synthetic:"):
        return _load_synthetic(base.partition(":")[2] or "lagged", split, name, knobs)

    instruction = knobs.pop("instruction", DEFAULT_INSTRUCTION)
    system = knobs.pop("system", None)
    size = _as(int, "size", knobs.pop("size", None))
    knobs.pop("seed", None)
    if base.startswith("jsonl:"):
        keys = [knobs.pop(k, default) for k, default in
                (("question_key", "question"), ("answer_key", "answer"), ("solution_key", "solution"))]
        if knobs:
            raise ValueError(f"unknown knobs {sorted(knobs)} for --data={name}: accepted are question_key, "
                             f"answer_key, solution_key, size, instruction, system, seed")
        examples, skip_reasons = _read_jsonl(base[len("jsonl:"):], split, *keys)
    elif base in HUB:
        if knobs:
            raise ValueError(f"unknown knobs {sorted(knobs)} for --data={name}: accepted are size, instruction, "
                             f"system, seed")
        examples, skip_reasons = _load_hub(base, split)
    else:
        raise ValueError(f"unknown dataset {name!r}: use gsm8k, math, math500, jsonl:/path/file.jsonl, synthetic or "
                         + ", ".join(f"synthetic:{t}" for t in SYNTHETIC_TASKS))
    if size is not None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        examples = examples[:size]
    return Dataset(name=name, examples=examples, skip_reasons=skip_reasons, system=system or None,
                   instruction=instruction or None)


def main():
    p = argparse.ArgumentParser(description="Print a few examples of a dataset as the training scripts see them.",
                                allow_abbrev=False)
    p.add_argument("--data", default="synthetic", help="gsm8k | math | math500 | jsonl:/path/file.jsonl | synthetic | "
                   "synthetic:arith; knobs after '?', e.g. synthetic:lagged?n_digits=8&n_steps=9")
    p.add_argument("--split", default="train", choices=SPLITS, help="which split")
    p.add_argument("--n", type=int, default=3, help="how many examples to print")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic generators")
    args = p.parse_args()

    synthetic = args.data.startswith("synthetic")
    try:
        extra = {"size": args.n} if synthetic else {}  # synthetic examples come in order: the first n are the same
        ds = load_dataset(args.data, args.split, seed=args.seed, **extra)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}")
    try:
        from tokenizer import Tokenizer
        tok = Tokenizer.byte_level()
    except Exception:  # tokenizer.py missing or broken: show the text only
        tok = None
    print(f"{ds.name} ({args.split}): {len(ds)} examples, {ds.skip_report()}; "
          f"system={ds.system!r} instruction={ds.instruction!r}")
    for i, ex in enumerate(ds.examples[:args.n]):
        print(f"\n--- example {i}: answer {ex['answer']!r}" + (f", SFT style {ex['style']}" if "style" in ex else ""))
        if tok is not None:
            ids = ds.render_prompt(tok, ex)
            print(f"prompt ({len(ids)} byte-level tokens): {tok.decode(ids)!r}")
        else:
            print(f"user message: {ds.user_message(ex)!r}")
        solutions = ex.get("solutions") or {"solution": ex["solution"] or "(none: SFT skips this example)"}
        for style, text in solutions.items():
            print(f"{style}: {text}" if "\n" not in text else f"{style}:\n{text}")
            if style in STYLES and args.data.partition("?")[0] in ("synthetic", "synthetic:lagged"):
                print(f"  trace_style={trace_style(text)}, longest lookback {max(lagged_lookbacks(ex['question'], text))} "
                      f"characters (one windowed layer sees W-1 back, n layers n*(W-1))")


if __name__ == "__main__":
    main()
