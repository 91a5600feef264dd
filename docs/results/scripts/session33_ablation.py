"""Session 33: which component of today's default (C16) carries its gain, on the development sets with workdirs on this
machine (CIFAR-10 seeds 0-4, Big_Nose seeds 0-9; results A.3). Nothing is chosen here.

Rows, each against C16, Standard LTH and Magnitude Pruning (paired over seeds, 95% percentile bootstrap CIs):
- ``default``: C16's records.
- ``no term``: C16's μ = 0 candidate in the mode its run chose (selection, mode choice and rewinding or fine-tuning,
  without the refined training's term), from the exported candidates.
- ``rewind only`` (``abl_rewind``): iterative pruning with rewinding and |w| in every run (LTH's procedure plus the term).
- ``fine-tune only`` (``abl_finetune``): one shot + fine-tuning with the vote in every run.
- ``fine-tune, magnitude`` (``abl_ft_magnitude``): one shot + fine-tuning with |w|, so no vote anywhere.
- ``fine-tune, 1 point`` (``abl_ft_1point``): one shot + fine-tuning, the vote cast at a single point (vote_points=1).
- each fixed-mode variant's μ = 0 candidate (``..., μ = 0``): the selection and mode alone.

Every row is read on the seeds the variants ran (Big_Nose: 0-4 of C16's 0-9). Checks printed first: the variants' dense records equal the comparison's (``session31_c17.sh SET check`` does the same),
and where C16 chose a fixed variant's mode, that variant's μ candidates have C16's validation figures (the same training).

    PYTHONPATH=.:docs/results/scripts python docs/results/scripts/session33_ablation.py [cifar10|bignose ...]
"""
import collections
import json
import pathlib
import sys

from experiments import reports
from session14_decide import met_cells
from session31_decide import SETS, dense_mismatches, records, same_training

R = pathlib.Path("docs/results/records")
CANDIDATES = {"cifar10": R / "session29_cifar10_candidates_all.json", "bignose": R / "session29_Big_Nose_candidates.json"}
VARIANTS = {  # label: (variant, the C16 mode it shares its training with)
    "rewind only": ("abl_rewind", "iterative_rewind"),
    "fine-tune only": ("abl_finetune", "one_shot_finetune"),
    "fine-tune, magnitude": ("abl_ft_magnitude", None),
    "fine-tune, 1 point": ("abl_ft_1point", None),
}


def candidates(path: pathlib.Path) -> dict:
    return {(c["seed"], c["target_sparsity"], c["mode"], c["mu"]): c for c in json.load(open(path))["candidates"]}


def at_mu0(runs: list, cands: dict, method: str, mode_of=lambda r: r["mode"]) -> list:
    """Each run's μ = 0 candidate (its validation and test figures) as a record of ``method``."""
    return [{**r, "method": method, **{k: cands[(r["seed"], r["target_sparsity"], mode_of(r), "0")][k]
                                        for k in ("val", "test")}} for r in runs]


def row(label: str, recs: list, base: list, c16: list) -> list:
    """One table row per sparsity: the variant's means, its paired differences against C16, LTH and Magnitude."""
    named = [{**r, "method": "x"} for r in recs]
    default = [] if recs is c16 else [{**r, "method": "default"} for r in c16]
    paired = reports.paired_comparisons(base + named + default, against=["x"])
    get = {(e["baseline"], e["sparsity"], e["metric"]): e for e in paired}
    cells = met_cells([e for e in paired if e["baseline"] in ("lth", "magnitude")])
    out = []
    for sp in sorted({r["target_sparsity"] for r in recs}):
        mine = [r for r in recs if r["target_sparsity"] == sp]
        acc = 100 * sum(r["test"]["accuracy"] for r in mine) / len(mine)
        cwv = sum(r["test"]["cwv"] for r in mine) / len(mine)

        def d(baseline, metric):
            e = get.get((baseline, sp, metric))
            if e is None or e.get("ci_low") is None:
                return "–"
            scale, spec = (100, "+.2f") if metric == "accuracy" else (1, "+.5f")
            mark = {"significant, better": " ✓", "significant, worse": " ✗"}.get(e["verdict"], "")
            if metric == "cwv" and baseline == "default":
                return (f"{e['mean_difference'] * scale:{spec}} [{e['ci_low'] * scale:{spec}}, "
                        f"{e['ci_high'] * scale:{spec}}]{mark}")
            return f"{e['mean_difference'] * scale:{spec}}{mark}"

        out.append(f"| {label} | {sp:g} | {acc:.2f} | {cwv:.5f} | {d('default', 'accuracy')} | {d('default', 'cwv')} | "
                   f"{d('lth', 'accuracy')} | {d('lth', 'cwv')} | {d('magnitude', 'accuracy')} | "
                   f"{d('magnitude', 'cwv')} | {cells if sp == min(r['target_sparsity'] for r in recs) else ''} |")
    return out


HEAD_TO_HEAD = (  # (row, against): the vote against |w| and against one ballot (fine-tuning), and the two modes
    ("fine-tune only, μ = 0", "fine-tune, magnitude, μ = 0"), ("fine-tune only", "fine-tune, magnitude"),
    ("fine-tune, 1 point, μ = 0", "fine-tune only, μ = 0"), ("fine-tune, 1 point", "fine-tune only"),
    ("fine-tune only", "rewind only"))


def head_to_head(rows: dict) -> None:
    """Paired differences (test accuracy in points, CWV) of each pair of ``HEAD_TO_HEAD`` both present."""
    for a, b in HEAD_TO_HEAD:
        if a not in rows or b not in rows:
            continue
        paired = reports.paired_comparisons([{**r, "method": "a"} for r in rows[a]] + [{**r, "method": "b"} for r in rows[b]],
                                            against=["a"])
        for sp in sorted({e["sparsity"] for e in paired}):
            got = {e["metric"]: e for e in paired if e["sparsity"] == sp}
            acc, cwv = got["accuracy"], got["cwv"]
            print(f"   {a} − {b}, {sp:g}: accuracy {100 * acc['mean_difference']:+.2f} [{100 * acc['ci_low']:+.2f}, "
                  f"{100 * acc['ci_high']:+.2f}] ({acc['verdict']}); CWV {cwv['mean_difference']:+.5f} "
                  f"[{cwv['ci_low']:+.5f}, {cwv['ci_high']:+.5f}] ({cwv['verdict']})")


def main() -> None:
    for name in sys.argv[1:] or list(CANDIDATES):
        files, c16_path = SETS[name]
        ran = {v: json.load(open(R / f"session33_{v}_{name}.json"))["records"] for v, _ in VARIANTS.values()
               if (R / f"session33_{v}_{name}.json").exists()}  # each variant's records, its dense ones too
        seeds = {r["seed"] for recs in ran.values() for r in recs} or None  # every row on the variants' seeds (Big_Nose: 0-4)
        keep = lambda recs: [r for r in recs if seeds is None or r["seed"] in seeds]  # noqa: E731
        base = keep([r for f in files for r in json.load(open(f))["records"] if r["method"] in ("lth", "magnitude")])
        c16 = keep(records(c16_path, "c16"))
        print(f"== {name}: seeds {sorted({r['seed'] for r in c16})}")
        cands = candidates(CANDIDATES[name])
        modes = collections.Counter((r["target_sparsity"], r["mode"]) for r in c16)
        print("   C16's mode per run: " + ", ".join(f"{s:g} {m} {n}" for (s, m), n in sorted(modes.items())))
        rows = [("default", c16), ("no term", at_mu0(c16, cands, "no term"))]
        for label, (variant, mode) in VARIANTS.items():
            path = R / f"session33_{variant}_{name}.json"
            if variant not in ran:
                print(f"   {label}: no records yet ({path})")
                continue
            ours = [r for r in ran[variant] if r["method"] == variant]
            dense = [r for r in ran[variant] if r["method"] == "dense"]
            same = ""
            if mode is not None:
                compared, differ = same_training(c16, ours, mode)
                same = (f"; runs where C16 chose this mode with the same validation figures at every μ: "
                        f"{compared - len(differ)} of {compared}")
            print(f"   {label}: dense records equal the comparison's: "
                  f"{len(dense) - len(dense_mismatches(name, files, dense))} of {len(dense)}{same}")
            mine = candidates(R / f"session33_{variant}_{name}_candidates.json")
            rows += [(label, ours), (f"{label}, μ = 0", at_mu0(ours, mine, "mu0", lambda r: "fixed"))]
        print("| variant | sparsity | acc (%) | CWV | Δacc vs C16 | ΔCWV vs C16 [95% CI] | Δacc vs LTH | ΔCWV vs LTH | "
              "Δacc vs Magnitude | ΔCWV vs Magnitude | bar cells (of 4) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for label, recs in rows:
            for line in row(label, recs, base, c16):
                print(line)
        head_to_head(dict(rows))


if __name__ == "__main__":
    main()
