"""
How many lines a student reads to follow one training step: every function of this project that the step runs,
from its `def` (or first decorator) to its last line, docstring included, each counted once; the step loop's own
body counted as it stands. Measured, not listed by hand: the script runs a few real steps in-process under
sys.setprofile, and a function counts when a call to it starts from a line of the step loop (directly or through
other project functions). torch, the standard library and tokenizer.py (the tokenizer is a black box) are not
counted, nor anything the loop reaches only on its eval, save or sample steps (turned off here; the run's last step,
which saves, is not the one counted), nor what runs before the loop (loading, flags). Nested functions and lambdas sit inside their parent's lines.

The GRPO step is the common case: the toy's number answers, the CPU default (--share_prompt=auto: the prompt's
forward shared), no KL, no teacher; the SFT step is the toy's. Both on a tiny checkpoint made first (not traced).

    python bench/reading_path.py                 # both steps: a table of functions and a total per file
    python bench/reading_path.py --step=grpo --list  # and every function with its lines

../shared/notes/reading-path.md counts the same way (the README's "How to read this code" table comes from here).
"""

import argparse
import ast
import contextlib
import io
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SKIP_FILES = {"tokenizer.py"}


def function_spans(path):
    """{first line: (last line, qualified name)} of every function in a file, decorators included."""
    spans = {}

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                spans[first] = (child.end_lineno, prefix + child.name)
                spans.setdefault(child.lineno, (child.end_lineno, prefix + child.name))
                walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
    walk(ast.parse(open(path).read()), "")
    return spans


def loop_span(path, function):
    """(first, last) line of the longest for/while loop directly in `function`'s body: the step loop."""
    tree = ast.parse(open(path).read())
    fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    loops = [n for n in fn.body if isinstance(n, (ast.For, ast.While))]
    loop = max(loops, key=lambda n: n.end_lineno - n.lineno)
    return loop.lineno, loop.end_lineno


def trace(run, script, function):
    """Run run() under sys.setprofile; -> {(file, first line)} of the project functions called from the step loop
    of `function` in `script` during one step that is neither the first (one-time warm-ups) nor the last (the final
    save): the calls are grouped by the loop's `step` variable and the second value seen is kept."""
    loop_file = os.path.join(ROOT, script)
    lo, hi = loop_span(loop_file, function)
    by_step = {}

    def from_loop(frame):
        """-> the step value when the call chain starts in the step loop, else None."""
        while frame is not None:
            code = frame.f_code
            if code.co_filename == loop_file and code.co_name == function:
                return frame.f_locals.get("step") if lo <= frame.f_lineno <= hi else None
            frame = frame.f_back
        return None

    def profile(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        path = code.co_filename
        if (not path.startswith(ROOT) or os.path.basename(path) in SKIP_FILES or "/tests/" in path
                or "/bench/" in path or code.co_name.startswith("<")):
            return
        step = from_loop(frame.f_back)
        if step is not None:
            by_step.setdefault(step, set()).add((path, code.co_firstlineno))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    steps = sorted(by_step)
    assert len(steps) >= 3, f"the step loop ran {len(steps)} steps; need 3 (first, a middle one, last)"
    return by_step[steps[1]], (loop_file, lo, hi)


def count(called, loop):
    """-> rows (file, first, last, name) sorted by file and line, with the step loop's body as one row; nested
    functions dropped (their parent's span covers them)."""
    spans = {}
    rows = []
    for path, first in called:
        spans.setdefault(path, function_spans(path))
        if first in spans[path]:
            last, name = spans[path][first]
            rows.append((path, first, last, name))
    loop_file, lo, hi = loop
    rows.append((loop_file, lo, hi, "(the step loop)"))
    rows.sort(key=lambda r: (r[0], r[1]))
    kept = []
    for r in rows:  # drop a span inside an earlier one of the same file
        if kept and kept[-1][0] == r[0] and r[2] <= kept[-1][2]:
            continue
        kept.append(r)
    return kept


def report(title, rows, listing):
    by_file = {}
    for path, first, last, name in rows:
        n, lines = by_file.get(os.path.basename(path), (0, 0))
        by_file[os.path.basename(path)] = (n + 1, lines + last - first + 1)
    total = sum(lines for _, lines in by_file.values())
    print(f"\n{title}: {len(rows)} functions (the step loop counted as one), {total} lines, {len(by_file)} files")
    print("| file | functions | lines |\n|---|---|---|")
    for name, (n, lines) in sorted(by_file.items(), key=lambda kv: -kv[1][1]):
        print(f"| {name} | {n} | {lines} |")
    if listing:
        for path, first, last, name in rows:
            print(f"  {os.path.basename(path)}:{first}-{last} {name} ({last - first + 1})")
    return total


def quiet(fn):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return fn()


def main(argv=None):
    p = argparse.ArgumentParser(description="lines to read for one SFT / GRPO step, measured by tracing a real run")
    p.add_argument("--step", default="both", choices=("sft", "grpo", "both"))
    p.add_argument("--list", action="store_true", help="list every function with its lines")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import rl
    import sft
    tmp = tempfile.mkdtemp(prefix="reading_path_")
    init = os.path.join(tmp, "sft")
    base = ["--device=cpu", "--data=synthetic", "--eval_every=0", "--eval_limit=0", "--save_every=0"]
    scratch = ["--init=scratch", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=256", "--batch_size=4"]
    quiet(lambda: sft.main(base + scratch + ["--steps=2", f"--out_dir={init}"]))
    if args.step in ("sft", "both"):
        run = lambda: quiet(lambda: sft.main(base + scratch + ["--steps=4", f"--out_dir={tmp}/sft2"]))  # noqa: E731
        called, loop = trace(run, "sft.py", os.environ.get("SFT_LOOP_FN", "main"))
        report("SFT step", count(called, loop), args.list)
    if args.step in ("grpo", "both"):
        run = lambda: quiet(lambda: rl.main(base + [f"--init={init}", "--steps=4", "--prompts_per_step=2",  # noqa: E731
                                                   "--group_size=4", "--max_new_tokens=16", "--sample_every=0",
                                                   f"--out_dir={tmp}/rl"]))
        called, loop = trace(run, "rl.py", os.environ.get("RL_LOOP_FN", "train"))
        report("GRPO step", count(called, loop), args.list)


if __name__ == "__main__":
    main()
