"""Can a finished experiment's test split tell a fairer method from its baselines at all?

    python -m experiments.detectability --run lth=runs/celeba:lth --run magnitude=runs/celeba:magnitude \
        [--method ballot --run ballot=runs/celeba:ballot] [--draws 1000] [--out report.md]

``--run LABEL=WORKDIR[:METHOD]`` as in ``experiments.compare`` (a label may be given several
workdirs, e.g. seeds run apart). Reads the first run's ``<workdir>/config.json`` (or
``--data-from``'s), loads the dataset as the run did to count the test split's examples per group,
and for every sparsity and baseline (every label but ``--method``; finished records over the seeds)
prints the baseline's mean test CWV beside the **sampling floor** (the mean over seeds of
``ballot_jax.detectability.cwv_sampling_floor`` at the baseline's accuracy: the CWV a model with
equal true group accuracies shows on this split on average) and the **fair oracle's rates**
(``fair_oracle_power``): how often a model with no true gap, as accurate as the baseline on every
seed, would come out significantly lower in CWV, in MCD, and in both, by the reports' paired 95%
bootstrap over the same seeds. A "both" rate near 0 says no method can meet a "significantly
fairer than this baseline" bar on this split with these seeds. ``--method`` adds that method's
mean CWV (e.g. Ballot's) for comparison; nothing is retrained.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, Sequence

import numpy as np
from ml_collections import config_dict

from ballot_jax.detectability import fair_oracle_power
from experiments import run
from experiments.compare import collect, parse_run, read_record
from experiments.reports import per_seed


def split_group_counts(workdir: pathlib.Path) -> tuple[np.ndarray, list[str]]:
    """Examples per group of the test split the run at ``workdir`` used (from its config.json)."""
    path = workdir / "config.json"
    if not path.exists():
        raise SystemExit(f"{path} not found: --data-from (default: the first --run's workdir) must be an "
                         "experiment's work directory with its config.json")
    data = run.load_data(config_dict.ConfigDict(read_record(path)))
    counts = np.bincount(np.asarray(data.test.group).astype(np.int64), minlength=data.info.num_groups)
    return counts, list(data.info.group_names)


def at_sparsity(records: Sequence[dict[str, Any]], sparsity: float) -> list[dict[str, Any]]:
    """The records whose target sparsity is ``sparsity``."""
    return [r for r in records if r["target_sparsity"] == sparsity]


def detectability_rows(
    records: Sequence[dict[str, Any]], counts: np.ndarray, method: str = "", num_draws: int = 1000, seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (sparsity, baseline) with the baseline's mean accuracy and CWV, the floor, the
    oracle's rates and (with ``method``) the method's mean CWV on the same seeds. ``records`` are
    labelled records (``experiments.compare.collect``); every label but ``method`` is a baseline."""
    found: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        found.setdefault(r["method"], []).append(r)
    compared = found.pop(method, [])
    if method and not compared:
        raise SystemExit(f"--method {method!r} is not one of the --run labels {sorted(found)}")
    baselines = list(found)
    rows = []
    for sparsity in sorted({r["target_sparsity"] for recs in found.values() for r in recs}):
        for baseline in baselines:
            records_b = at_sparsity(found[baseline], sparsity)
            if not records_b:
                continue
            cwv, acc = per_seed(records_b, "cwv"), per_seed(records_b, "accuracy")
            rates = fair_oracle_power(cwv, per_seed(records_b, "mcd"), acc, counts, num_draws=num_draws, seed=seed)
            row = {"sparsity": sparsity, "baseline": baseline, "seeds": sorted(cwv),
                   "accuracy": float(np.mean(list(acc.values()))), "cwv": float(np.mean(list(cwv.values()))),
                   "floor": rates["floor"],
                   **{f"{k}_rate": rates[k] for k in ("cwv", "mcd", "both")}}
            if compared:
                mine = per_seed(at_sparsity(compared, sparsity), "cwv")
                row[f"{method}_cwv"] = float(np.mean([mine[s] for s in cwv if s in mine])) if mine else float("nan")
            rows.append(row)
    return rows


def markdown(title: str, counts: np.ndarray, names: Sequence[str], rows: Sequence[dict[str, Any]],
             method: str, num_draws: int) -> str:
    """The report: the test split's group counts, a legend and one table row per ``rows`` entry."""
    header = ["Sparsity", "Baseline", "seeds", "accuracy", "CWV", "floor", "CWV / floor"]
    header += [f"{method} CWV"] if method else []
    header += ["oracle: CWV", "MCD", "both"]
    lines = [f"# Detectability: {title}", "",
             "Test examples per group: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts.tolist())) + ".",
             f"floor = expected CWV of a model with equal true group accuracies (the baseline's accuracy) on this split; "
             f"oracle = fraction of {num_draws} simulated fair-oracle runs (same seeds) significantly lower than the "
             "baseline by the paired 95% bootstrap (CWV, MCD, both).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [f"{r['sparsity']:g}", r["baseline"], str(len(r["seeds"])), f"{100 * r['accuracy']:.2f}", f"{r['cwv']:.5f}",
                 f"{r['floor']:.5f}", f"{r['cwv'] / r['floor']:.2f}" if r["floor"] > 0 else "n/a"]
        cells += [f"{r[f'{method}_cwv']:.5f}"] if method else []
        cells += [f"{r[k]:.2f}" for k in ("cwv_rate", "mcd_rate", "both_rate")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="append", required=True, help="LABEL=WORKDIR[:METHOD]")
    parser.add_argument("--method", default="", help="the label compared (its mean CWV is printed); the others are baselines")
    parser.add_argument("--data-from", default=None, type=pathlib.Path,
                        help="workdir whose config.json names the data (default: the first --run's)")
    parser.add_argument("--draws", type=int, default=1000, help="simulated oracle runs per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--out", default="", help="also write the report here")
    args = parser.parse_args(argv)
    data_from = args.data_from or parse_run(args.run[0])[1]
    counts, names = split_group_counts(data_from)
    rows = detectability_rows(collect(args.run), counts, args.method, args.draws, args.seed)
    text = markdown(str(data_from), counts, names, rows, args.method, args.draws)
    if args.out:
        pathlib.Path(args.out).write_text(text + "\n")
    print(text)
    return text


if __name__ == "__main__":
    main(sys.argv[1:])
