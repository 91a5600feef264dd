"""Session 29: the per-run listings that results A.2zl and A.2zm quote (read from kept records; nothing trained).

    python3 docs/results/scripts/session29_listings.py choices RECORDS.json [LABEL [LTH_RECORDS.json]]
        every run of Ballot's records (LABEL, default c12) against the same file's LTH: the mode, the chosen μ, ε', each
        candidate's validation drop from the μ = 0 ticket (points), the test accuracy difference from LTH (points) and
        both test CWVs; e.g. docs/results/records/session29_Big_Nose.json, or session29_c16_big_nose.json with c16
        (whose LTH comes from LTH_RECORDS.json, default session29_Big_Nose.json, when the file holds none)
    python3 docs/results/scripts/session29_listings.py reproduction
        CIFAR-10: the five runs re-run by session29_c16_cifar10.sh against session 22's records of them, every
        candidate's validation accuracy (and the mode search's), re-run minus kept, in points
    python3 docs/results/scripts/session29_listings.py recreation
        CIFAR-10 re-created on this machine (session29_cifar10.json, session 30) against session 22's records: every
        method's test accuracy and CWV per run, how many runs of each method are equal, and C12 − LTH's mean accuracy
"""
import json
import sys

R = "docs/results/records"


def records(path: str, method: str) -> dict:
    return {(r["seed"], r["target_sparsity"]): r for r in json.load(open(path))["records"] if r["method"] == method}


def choices(path: str, label: str = "c12", lth_path: str = f"{R}/session29_Big_Nose.json") -> None:
    runs = records(path, label)
    lth = records(path, "lth") or records(lth_path, "lth")
    counts = {}
    for key in sorted(runs, key=lambda k: (k[1], k[0])):
        r, base = runs[key], lth[key]
        search = r["search"]
        drops = ", ".join(f"{mu}: {100 * (search['0']['accuracy'] - v['accuracy']):+.2f}" for mu, v in search.items())
        counts[f"{r['disparity_weight']:g}"] = counts.get(f"{r['disparity_weight']:g}", 0) + 1
        print(f"seed {key[0]} sparsity {key[1]:g}: mode {r['mode']}, mu {r['disparity_weight']:g}, eps' "
              f"{100 * r['epsilon_effective']:.2f}; validation drops {drops}; test accuracy vs LTH "
              f"{100 * (r['test']['accuracy'] - base['test']['accuracy']):+.2f}; test accuracy {r['test']['accuracy']:.4f}, "
              f"CWV {r['test']['cwv']:.5f} (LTH {base['test']['cwv']:.5f})")
    print("chosen mu:", ", ".join(f"{mu} on {n}" for mu, n in sorted(counts.items(), key=lambda kv: float(kv[0]))))


def reproduction() -> None:
    kept = records(f"{R}/session22_dev_cifar10.json", "c12")
    worst = 0.0
    for workdir in ("/work/runs/s29_cifar10_80", "/work/runs/s29_cifar10_95"):
        for new in json.load(open(f"{workdir}/results.json"))["records"]:
            if new["method"] != "ballot":
                continue
            key = (new["seed"], new["target_sparsity"])
            old = kept[key]
            diff = {mu: 100 * (new["search"][mu]["accuracy"] - old["search"][mu]["accuracy"]) for mu in new["search"]}
            modes = {m: 100 * (new["mode_search"][m]["accuracy"] - old["mode_search"][m]["accuracy"])
                     for m in new["mode_search"]}
            worst = max(worst, *map(abs, diff.values()))
            print(f"seed {key[0]} sparsity {key[1]:g}: mode {new['mode']} (kept {old['mode']}), mu "
                  f"{new['disparity_weight']:g} (kept {old['disparity_weight']:g}); validation accuracy re-run − kept (pp): "
                  + ", ".join(f"mu {mu} {d:+.1f} ({100 * new['search'][mu]['accuracy']:.1f} vs "
                              f"{100 * old['search'][mu]['accuracy']:.1f})" for mu, d in diff.items())
                  + "; mode search " + ", ".join(f"{m} {d:+.1f}" for m, d in modes.items()))
    print(f"largest |difference| of a candidate: {worst:.1f} points")


def recreation() -> None:
    for method in ("lth", "magnitude", "c12"):
        new, old = records(f"{R}/session29_cifar10.json", method), records(f"{R}/session22_dev_cifar10.json", method)
        equal = 0
        for key in sorted(new, key=lambda k: (k[1], k[0])):
            a, b = new[key]["test"], old[key]["test"]
            equal += a["accuracy"] == b["accuracy"] and a["cwv"] == b["cwv"]
            print(f"{method} seed {key[0]} sparsity {key[1]:g}: test accuracy {a['accuracy']:.4f} (session 22 "
                  f"{b['accuracy']:.4f}), CWV {a['cwv']:.5f} ({b['cwv']:.5f})")
        print(f"{method}: {equal} of {len(new)} runs equal to session 22's")
    for name, path in (("re-created", f"{R}/session29_cifar10.json"), ("session 22", f"{R}/session22_dev_cifar10.json")):
        c12, lth = records(path, "c12"), records(path, "lth")
        for sparsity in (0.8, 0.95):
            keys = [k for k in c12 if k[1] == sparsity]
            gap = 100 * sum(c12[k]["test"]["accuracy"] - lth[k]["test"]["accuracy"] for k in keys) / len(keys)
            print(f"{name}: C12 − LTH mean test accuracy at {sparsity:g}: {gap:+.2f} points")


if __name__ == "__main__":
    {"choices": lambda: choices(*sys.argv[2:]), "reproduction": reproduction,
     "recreation": recreation}[sys.argv[1]]()
