"""Per-seed check: the re-created records' paired tables (ballot vs lth / magnitude) equal the committed session-10 reports'."""
import re, sys
from experiments import compare, reports
def sections(text):
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"### (ballot vs (lth|magnitude)), sparsity (\S+)", line)
        if line.startswith("### "):
            cur = (m.group(1), m.group(3)) if m else None
            continue
        if cur and line.startswith("| ") and not line.startswith("| Metric"):
            out.setdefault(cur, []).append(line)
    return out
for wd, committed in [a.split("=") for a in sys.argv[1:]]:
    recs = compare.collect([f"lth={wd}:lth", f"magnitude={wd}:magnitude", f"ballot={wd}:ballot"])
    paired = reports.paired_comparisons(recs, against=["ballot"])
    new = sections("\n".join(reports.paired_markdown(paired)))
    old = sections(open(committed).read())
    ok = all(new[k] == old.get(k) for k in new) and len(new) == 4
    print(wd, "per-seed paired tables identical" if ok else "DIFFERENT", len(new))
