"""compare_runs.py A B: two outputs of bench/toy_identity.sh, every stage's weights bit for bit, its metrics.jsonl
(timing and memory fields aside) and every eval row. Prints ALL IDENTICAL or the differences (exit 1)."""
import json, os, sys
from safetensors.torch import load_file
A, B = sys.argv[1:3]
bad = 0
TIME = ("time", "tok_per_s", "tokens_per_s", "sec", "_s", "mem", "elapsed", "wall")
for stage in sorted(os.listdir(A)):
    a, b = os.path.join(A, stage), os.path.join(B, stage)
    if not os.path.isdir(a) or stage == "eval":
        continue
    wa, wb = load_file(os.path.join(a, "model.safetensors")), load_file(os.path.join(b, "model.safetensors"))
    same = wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() and wa[k].dtype == wb[k].dtype for k in wa)
    def metrics(d):
        p = os.path.join(d, "metrics.jsonl")
        if not os.path.exists(p): return []
        return [{k: v for k, v in json.loads(l).items() if not any(t in k for t in TIME)} for l in open(p)]
    ma, mb = metrics(a), metrics(b)
    print(f"{stage:14s} weights {'IDENTICAL' if same else 'DIFFER'}  metrics {'same' if ma == mb else 'DIFFER'} ({len(ma)} rows)")
    if ma != mb:
        for x, y in zip(ma, mb):
            if x != y: print("   ", {k: (x.get(k), y.get(k)) for k in set(x) | set(y) if x.get(k) != y.get(k)}); break
    bad += (not same) + (ma != mb)
ea, eb = os.path.join(A, "eval"), os.path.join(B, "eval")
for f in sorted(os.listdir(ea)):
    if f.endswith(".jsonl"):
        ra = [json.loads(l) for l in open(os.path.join(ea, f))]
        rb = [json.loads(l) for l in open(os.path.join(eb, f))]
        strip = lambda rs: [{k: v for k, v in r.items() if not any(t in k for t in TIME)} for r in rs]
        ok = strip(ra) == strip(rb)
        print(f"eval {f}: {'same' if ok else 'DIFFER'} ({len(ra)} rows)"); bad += not ok
print("ALL IDENTICAL" if not bad else f"{bad} DIFFERENCES")
sys.exit(1 if bad else 0)
