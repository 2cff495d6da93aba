"""
Where the real-model experiment's wrong answers come from (runs/swarr_smollm2.sh's task, synthetic:arith with
ask=1): the final line's lookup or the arithmetic. For each eval JSONL file (eval.py's per-problem records):

  answers right       the \\boxed answer equals the gold one (eval.py's accuracy)
  final line right    "Together A and B have x + y = z": x is the value the response itself computed for A in its
                      first computed line (the long-range lookup the window can break) and y its value for B
  wrong "a + b = c"   every "a + b = c" line of the response whose sum is wrong, and of those the dropped carries
                      (c = a + b - 10: "18 + 2 = 10")

  python runs/arith_errors.py out/swarr_smollm2/seed1/eval/*.jsonl
"""
import argparse
import json
import re

STEP = re.compile(r"^(\w+) has (\d+) \+ (\d+) = (\d+) \w+\.$")
FINAL = re.compile(r"^Together (\w+) and (\w+) have (\d+) \+ (\d+) = (\d+) \w+\.$")


def check(response):
    """-> (final line right or None without one, [(a, b, c) of every "a + b = c" line])."""
    computed, sums, final = {}, [], None
    for line in response.splitlines():
        line = line.strip()
        if m := STEP.match(line):
            name, a, b, c = m[1], int(m[2]), int(m[3]), int(m[4])
            computed.setdefault(name, c)
            sums.append((a, b, c))
        elif m := FINAL.match(line):
            first, last, x, y, z = m[1], m[2], int(m[3]), int(m[4]), int(m[5])
            final = computed.get(first) == x and computed.get(last) == y
            sums.append((x, y, z))
    return final, sums


def summarize(path):
    n = right = finals = final_right = lines = wrong = carries = 0
    for record in map(json.loads, open(path)):
        n += 1
        right += bool(record["correct"])
        final, sums = check(record["response"])
        finals += final is not None
        final_right += bool(final)
        lines += len(sums)
        bad = [(a, b, c) for a, b, c in sums if a + b != c]
        wrong += len(bad)
        carries += sum(c == a + b - 10 for a, b, c in bad)
    return {"file": path, "problems": n, "answers_right": right, "final_lines": finals,
            "final_line_right": final_right, "sum_lines": lines, "sums_wrong": wrong, "dropped_carries": carries}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    p.add_argument("files", nargs="+", help="eval.py's per-problem JSONL files")
    args = p.parse_args(argv)
    rows = []
    for path in args.files:
        try:
            rows.append(summarize(path))
        except (OSError, ValueError, KeyError, TypeError) as e:  # a missing file, a line that is not a record
            raise SystemExit(f"error: {path}: not eval.py's per-problem JSONL ({type(e).__name__}: {e})")
    print("| file | answers right | final line right | wrong a + b = c (dropped carries) |")
    print("|---|---|---|---|")
    for s in rows:
        print(f"| {s['file']} | {s['answers_right']}/{s['problems']} | {s['final_line_right']}/{s['final_lines']} | "
              f"{s['sums_wrong']}/{s['sum_lines']} ({s['dropped_carries']}) |")


if __name__ == "__main__":
    main()
