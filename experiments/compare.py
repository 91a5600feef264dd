"""Compare finished runs from several workdirs in one report (tables + paired comparison over seeds).

    python -m experiments.compare --run lth=runs/base:lth --run magnitude=runs/base:magnitude \
        --run ballot_vote=runs/vote:ballot --against ballot_vote [--out report.md]

Each ``--run LABEL=WORKDIR[:METHOD]`` takes the finished records of METHOD (default: LABEL) from
WORKDIR (its ``seed_*/...`` record files, so a run still in progress contributes what it finished)
and names them LABEL (``METHOD/SUBDIR``: one candidate of a method's search, e.g.
``ballot/iterative_rewind/mu_0``); variants of one method that ran in separate workdirs (other options) thus
become rows of their own. ``--against`` lists the labels compared, seed by seed, with every other
label (``experiments.reports``: mean paired difference, 95% bootstrap CI, wins, verdict), and a
section "Verdicts at a glance" gives one line per pair: accuracy, CWV and MCD. ``--bar lth,magnitude``
adds issue #13's bar cell by cell (:func:`bar_summary`: CWV and MCD significantly lower than each
baseline's, accuracy within a point of the first baseline's) and the count of cells met.
``--seeds 0,1,2,3,4`` reads only those seeds (e.g. the first five of a ten-seed run).
``--confidence 0.975`` sets the level of every paired interval and so of "significant" (default 0.95,
the issue's; a higher level corrects a second look at the same question, e.g. more seeds added).

``--export FILE.json`` also writes the collected records (relabelled, without their per-level
history) to one small file, and ``--run LABEL=FILE.json[:METHOD]`` reads them back in place of a
workdir: the per-seed figures behind a report can be kept in the repository and compared again after
the workdirs are gone (docs/results/records/).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Sequence

from ballot_jax.engine import checkpoints
from ballot_jax.pruning import num_keep_for_sparsity
from experiments import config, reports


def parse_run(spec: str) -> tuple[str, pathlib.Path, str]:
    """``LABEL=WORKDIR[:METHOD]`` -> (label, workdir, method)."""
    label, sep, rest = spec.partition("=")
    if not sep or not label or not rest:
        raise ValueError(f"--run takes LABEL=WORKDIR[:METHOD], got {spec!r}")
    workdir, _, method = rest.partition(":")
    return label, pathlib.Path(workdir), method or label


def read_record(path: pathlib.Path) -> dict[str, Any]:
    """A record file, verified against its checksum when it has one (records written before the
    checksums existed have none and are read as they are)."""
    obj = json.loads(path.read_text())
    return checkpoints.read_json(path) if checkpoints.JSON_CHECKSUM in obj else obj


def load_records(workdir: pathlib.Path, method: str) -> list[dict[str, Any]]:
    """Every finished record of ``method`` under ``workdir`` (dense: ``seed_S/dense.record.json``),
    or in ``workdir`` when it is a file written by ``--export`` (its records labelled ``method``).

    ``METHOD/SUBDIR`` (e.g. ``ballot/iterative_rewind/mu_0``) reads one candidate of a method's
    search instead: the last level record under ``seed_S/sparsity_X/METHOD/SUBDIR/level_NN`` of
    every seed and sparsity, with its seed and target sparsity read off the path and its levels'
    training time summed (an ablation read from a finished run, nothing retrained)."""
    if workdir.suffix == ".json" and workdir.is_file():
        return [r for r in json.loads(workdir.read_text())["records"] if r["method"] == method]
    if "/" in method:
        return [r for p in sorted(workdir.glob(f"seed_*/sparsity_*/{method}")) if (r := candidate_record(p))]
    pattern = "seed_*/dense.record.json" if method == "dense" else f"seed_*/sparsity_*/{method}.record.json"
    return [read_record(p) for p in sorted(workdir.glob(pattern))]


def at_target(record: dict[str, Any], target: float) -> bool:
    """Whether a level ``record`` (``kept`` of N prunable weights, ``sparsity`` = 1 − kept/N) keeps
    exactly what pruning to ``target`` keeps (``ballot_jax.pruning.num_keep_for_sparsity``)."""
    kept, sparsity = record["kept"], record["sparsity"]
    return kept > 0 and kept == num_keep_for_sparsity(round(kept / (1.0 - sparsity)), target)


def candidate_record(run_dir: pathlib.Path) -> dict[str, Any] | None:
    """The record of one finished candidate run (its last level, at the target sparsity), or None if
    it has not reached the target yet. Its level 0 may be shared with other runs (then absent here)."""
    levels = [read_record(p) for p in sorted(run_dir.glob("level_*/record.json"))]
    sparsity_dir = next(d for d in run_dir.parents if d.name.startswith("sparsity_"))
    target = float(sparsity_dir.name.removeprefix("sparsity_"))
    if not levels or levels[-1]["level"] < 1 or not at_target(levels[-1], target):
        return None
    return {**levels[-1], "target_sparsity": target, "seed": int(sparsity_dir.parent.name.removeprefix("seed_")),
            "train_time_s": sum(r["train_time_s"] for r in levels)}


def collect(specs: Sequence[str]) -> list[dict[str, Any]]:
    """The records of every ``--run`` spec, relabelled (``method`` := LABEL)."""
    records = []
    for spec in specs:
        label, workdir, method = parse_run(spec)
        found = load_records(workdir, method)
        if not found:
            raise ValueError(f"no finished {method!r} records under {workdir}")
        records.extend({**r, "method": label} for r in found)
    return records


SUMMARY_METRICS = ("accuracy", "cwv", "mcd")


def verdict_summary(paired: Sequence[dict[str, Any]]) -> list[str]:
    """One line per (method, baseline, sparsity) of the paired comparisons: accuracy's mean paired
    difference (points) with its CI, and the verdicts on CWV and MCD (lines of a Markdown table)."""
    rows: dict[tuple[str, str, float], dict[str, dict[str, Any]]] = {}
    for e in paired:
        if e["metric"] in SUMMARY_METRICS:
            rows.setdefault((e["method"], e["baseline"], e["sparsity"]), {})[e["metric"]] = e

    formats = {key: (scale, spec) for key, _, _, scale, spec in reports.PAIRED_METRICS}

    def cell(e: dict[str, Any] | None) -> str:
        if e is None or "error" in e or e.get("ci_low") is None:
            return "n/a" if e is None else e["verdict"]
        scale, spec = formats[e["metric"]]
        return (f"{e['mean_difference'] * scale:{spec}} [{e['ci_low'] * scale:{spec}}, {e['ci_high'] * scale:{spec}}]"
                f" {e['wins']}/{e['n']}: {e['verdict']}")

    lines = ["## Verdicts at a glance", "",
             "Mean paired difference (method − baseline, test split) [95% CI] wins/n: verdict; accuracy in points.", "",
             "| Method vs baseline | Sparsity | Accuracy | CWV | MCD |", "|---|---|---|---|---|"]
    for (method, baseline, sparsity), m in rows.items():
        lines.append(f"| {method} vs {baseline} | {sparsity:g} | "
                     + " | ".join(cell(m.get(metric)) for metric in SUMMARY_METRICS) + " |")
    return lines


# Records hold float32 accuracies (one unit in the last place is 6e-8 at 0.75), so a mean paired difference that is
# exactly -1 point (e.g. 200 fewer correct faces over 10 seeds of 2,000) reads -1.0000002 pp. The bar's "at least the
# reference's minus the tolerance" is inclusive: differences within this slack of the bound are rounding, not a
# miss. The rounding is at most 6e-6 pp; the slack is far below a mean's resolution (100 / (n_test * seeds) pp:
# 0.005 at 2,000 faces and 10 seeds).
FLOAT32_SLACK_PP = 1e-4


def within_points(difference_pp: float, tolerance_pp: float = 1.0) -> bool:
    """Whether a mean accuracy difference (points, method − reference) is at least −``tolerance_pp``, the bound
    inclusive up to ``FLOAT32_SLACK_PP`` (the bar's "within a point of LTH")."""
    return difference_pp >= -tolerance_pp - FLOAT32_SLACK_PP


NAMES = {"cwv": "CWV", "mcd": "MCD", "worst_group_accuracy": "worst-group accuracy"}  # in a cell's reasons


def bar_summary(paired: Sequence[dict[str, Any]], baselines: Sequence[str], tolerance_pp: float = 1.0,
                levelling_up: bool = False) -> list[str]:
    """Issue #13's bar, cell by cell (lines of a Markdown section): a (method, sparsity, baseline) cell
    is met when the method's CWV and MCD are both significantly lower than the baseline's (the paired
    comparisons' CI, 95% in the issue, excluding 0) and its mean accuracy is at least the accuracy reference's minus
    ``tolerance_pp`` points; the accuracy reference is ``baselines[0]`` (Standard LTH in the issue).
    ``levelling_up`` adds a condition the issue does not have: the method's worst-group accuracy significantly
    higher than the baseline's, so that a cell cannot be met by lowering the better groups alone (docs/results.md
    A.3c: a random levelling down of LTH meets the issue's bar as often as Ballot on CelebA).
    One row per method and sparsity, one column per baseline, and each method's count of cells met."""
    if not baselines:
        raise ValueError("--bar needs at least one baseline label, the first being the accuracy reference")
    found: dict[tuple[str, float, str, str], dict[str, Any]] = {
        (e["method"], e["sparsity"], e["baseline"], e["metric"]): e for e in paired}
    rows = list(dict.fromkeys((m, s) for m, s, b, _ in found if b in baselines))
    if not rows:
        raise ValueError(f"no paired comparison against {', '.join(baselines)}: name them with --run and "
                         "the methods judged with --against")

    metrics = ("cwv", "mcd", "worst_group_accuracy") if levelling_up else ("cwv", "mcd")

    def met(method, sparsity, baseline) -> str:
        fair = [found.get((method, sparsity, baseline, k), {}).get("verdict") for k in metrics]
        accuracy = found.get((method, sparsity, baselines[0], "accuracy"), {})
        if None in fair or accuracy.get("mean_difference") is None:
            return "n/a"
        accurate = within_points(accuracy["mean_difference"] * 100, tolerance_pp)
        if all(v == "significant, better" for v in fair) and accurate:
            return "met"
        reasons = [NAMES[k] + " " + v for k, v in zip(metrics, fair) if v != "significant, better"]
        if not accurate:
            points = accuracy["mean_difference"] * 100
            shown = f"{points:+.2f}"
            if abs(float(shown)) <= tolerance_pp:  # a miss just past the bound must not read as on it
                shown = f"{points:+.3f}"
            reasons.append(f"accuracy {shown} pp vs {baselines[0]}")
        return "; ".join(reasons)

    levels = sorted({e["confidence"] for e in paired if "confidence" in e} - {0.95})  # the level unsaid
    level = f" (paired {'/'.join(f'{100 * c:g}%' for c in levels)} CI excluding 0)" if levels else ""
    up = " and the worst-group accuracy significantly higher (levelling up, not in the issue)" if levelling_up else ""
    lines = ["## The bar (issue #13)" + (", with levelling up" if levelling_up else ""), "",
             f"A cell is met when CWV and MCD are both significantly lower than the baseline's{level}{up} and the mean "
             f"accuracy is at least {baselines[0]}'s minus {tolerance_pp:g} point(s); otherwise what misses.", "",
             "| Method | Sparsity | " + " | ".join(f"vs {b}" for b in baselines) + " |",
             "|---|---|" + "---|" * len(baselines)]
    count: dict[str, list[int]] = {}
    for method, sparsity in rows:
        cells = [met(method, sparsity, b) for b in baselines]
        tally = count.setdefault(method, [0, 0])
        tally[0] += sum(c == "met" for c in cells)
        tally[1] += len(cells)
        lines.append(f"| {method} | {sparsity:g} | " + " | ".join(cells) + " |")
    lines += ["", "Cells met: " + "; ".join(f"{m} {k} of {n}" for m, (k, n) in count.items()) + "."]
    return lines


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=WORKDIR[:METHOD]")
    parser.add_argument("--against", default="", help="comma-separated labels compared with the others")
    parser.add_argument("--out", default="", help="also write the report here")
    parser.add_argument("--export", default="", help="also write the collected records (without their "
                        "levels) to this .json file, readable by --run LABEL=FILE.json:LABEL")
    parser.add_argument("--bar", default="", help="comma-separated baseline labels for issue #13's bar, the "
                        "first the accuracy reference (e.g. lth,magnitude): adds a section of cells met")
    parser.add_argument("--bar-levelling-up", action="store_true", help="with --bar: a cell also needs the "
                        "worst-group accuracy significantly higher than the baseline's (not in issue #13's bar)")
    parser.add_argument("--seeds", default="", help="comma-separated seeds to read (default: every seed found), "
                        "e.g. 0,1,2,3,4 for the first five of a ten-seed run")
    parser.add_argument("--confidence", type=float, default=0.95, help="level of the paired bootstrap "
                        "intervals and of the bar's 'significant' (default 0.95; e.g. 0.975 for a second look)")
    args = parser.parse_args(argv)
    if not 0.0 < args.confidence < 1.0:
        parser.error(f"--confidence must be in (0, 1), got {args.confidence}")
    bar = [b for b in args.bar.split(",") if b]
    if args.bar_levelling_up and not bar:
        parser.error("--bar-levelling-up needs --bar BASELINES (e.g. --bar lth,magnitude)")
    records = collect(args.run)
    if args.seeds:
        try:
            seeds = config.parse_list(args.seeds, int)
        except ValueError:
            parser.error(f"--seeds takes comma-separated integers, e.g. 0,1,2,3,4; got {args.seeds!r}")
        records = select_seeds(records, seeds)
    if args.export:
        export_records(records, args.export)
    against = [a for a in args.against.split(",") if a] or None
    reference = against[0] if against else reports.REFERENCE
    paired = reports.paired_comparisons(records, against=against, reference=reference, confidence=args.confidence)
    text = reports.results_markdown(records, reference=reference, against=against, paired=paired)
    text += "\n\n" + "\n".join(verdict_summary(paired))
    if bar:
        text += "\n\n" + "\n".join(bar_summary(paired, bar, levelling_up=args.bar_levelling_up))
    return emit(text, args.out)


def select_seeds(records: Sequence[dict[str, Any]], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """The ``records`` of ``seeds``; ``ValueError`` naming any of ``seeds`` that no record has."""
    missing = sorted(set(seeds) - {r["seed"] for r in records})
    if missing:
        raise ValueError(f"--seeds: no record of seed(s) {missing}; the runs have seeds "
                         f"{sorted({r['seed'] for r in records})}")
    return [r for r in records if r["seed"] in seeds]


def export_records(records: Sequence[dict[str, Any]], path: str | pathlib.Path) -> None:
    """Write ``records`` (relabelled, as ``collect`` returns them) to ``path`` as ``{"records": [...]}``,
    each without its per-level history (``levels``) and checksum: what the reports read, a few hundred
    bytes a record."""
    if pathlib.Path(path).suffix != ".json":
        raise ValueError(f"--export takes a .json file, got {str(path)!r}")
    slim = [{k: v for k, v in r.items() if k not in ("levels", checkpoints.JSON_CHECKSUM)} for r in records]
    pathlib.Path(path).write_text(json.dumps({"records": slim}, indent=0, sort_keys=True) + "\n")


def emit(text: str, out: str = "") -> str:
    """Print a report, also write it to ``out`` when given, and return it."""
    if out:
        pathlib.Path(out).write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
