"""Reports of an experiment: results.md, results.json and the plots, from the method records.

``results.md`` holds the results table (one row per method and sparsity, mean ± std over seeds), the
fairness improvement of the reference method (``REFERENCE``, Ballot) over each pruning baseline,
and the paired comparison over seeds (:func:`paired_comparisons`, :mod:`ballot_jax.stats`): for each
method of ``against`` (default: the reference and every method whose name starts with "ballot")
against each other pruning method at the same target sparsity, the per-seed paired differences of
accuracy, CWV, MCD, worst-group accuracy (and DP / EOdds differences for binary tasks), their mean
with a 95% percentile bootstrap CI, the win count and a verdict. ``results.json`` holds the config,
the records (per-level history reduced) and the same comparisons under ``"paired"``.

A record is a method's result dict (``experiments.run.run_experiment``): ``method``,
``target_sparsity``, ``sparsity``, ``seed``, ``train_time_s``, ``test{...}`` (and ``dataset``).
Records are grouped by their ``method`` field, so registered variants ("ballot_vote") get rows and
comparisons of their own.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any, Sequence

import numpy as np

from ballot_jax import stats
from ballot_jax.engine import checkpoints

Record = dict[str, Any]

REFERENCE = "ballot"  # the method whose fairness improvement over the others is tabulated
NUM_RESAMPLES = 10_000  # bootstrap resamples of the seeds for the paired CIs
BOOTSTRAP_SEED = 0  # fixed: the same records always give the same intervals


def summarize_record(record: Record) -> Record:
    """``record`` for results.json: per-level history reduced to sparsity and test accuracy/CWV/MCD."""
    out = {k: v for k, v in record.items() if k != "levels"}
    if "levels" in record:
        out["levels"] = [
            {
                "level": lv.get("level", i),
                "sparsity": lv.get("sparsity"),
                **{f"test_{k}": lv.get("test", {}).get(k) for k in ("accuracy", "cwv", "mcd")},
                "train_time_s": lv.get("train_time_s"),
            }
            for i, lv in enumerate(record["levels"])
        ]
    return out


def _groups(records: Sequence[Record]) -> dict[tuple[str, float], list[Record]]:
    """Records keyed by (method, target sparsity), in first-seen order."""
    out: dict[tuple[str, float], list[Record]] = {}
    for r in records:
        out.setdefault((r["method"], float(r["target_sparsity"])), []).append(r)
    return out


def _values(records: Sequence[Record], key: str, split: str = "test") -> np.ndarray:
    if key == "train_time_s":
        return np.array([float(r["train_time_s"]) for r in records])
    return np.array([float(r[split][key]) if r[split].get(key) is not None else math.nan for r in records])


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return mean, std


def _fmt(values: np.ndarray, spec: str, scale: float = 1.0) -> str:
    mean, std = _mean_std(values * scale)
    if len(values) > 1:
        return f"{mean:{spec}} ± {std:{spec}}"
    return f"{mean:{spec}}"


BINARY_METRICS = (
    ("demographic_parity_difference", "DP diff"),
    ("equal_opportunity_difference", "EOpp diff"),
    ("equalized_odds_difference", "EOdds diff"),
)


def _is_binary(records: Sequence[Record]) -> bool:
    return bool(records) and all("demographic_parity_difference" in r["test"] for r in records)


def results_markdown(
    records: Sequence[Record],
    *,
    reference: str = REFERENCE,
    against: Sequence[str] | None = None,
    paired: Sequence[dict[str, Any]] | None = None,
) -> str:
    """The results in Markdown: one row per (method, sparsity), the improvements of ``reference``
    over each baseline, and the paired comparison over seeds (``paired``: the entries of
    :func:`paired_comparisons`, computed here with ``against`` when not given)."""
    from ballot_jax.metrics import fairness_improvement

    groups = _groups(records)
    binary = _is_binary(records)
    seeds = sorted({r.get("seed", 0) for r in records})
    title = records[0].get("dataset", "experiment") if records else "experiment"
    lines = [f"# Results: {title}", ""]
    note = f"Test split; {len(seeds)} seed(s) {seeds}"
    if len(seeds) > 1:
        note += ", mean ± std (ddof=1) over seeds"
    lines += [note + ". Accuracies in %; CWV = variance of group accuracies (fractions), "
              "MCD = max − min group accuracy; lower CWV/MCD is fairer.", ""]
    header = ["Method", "Sparsity", "Accuracy (%)", "CWV", "MCD", "Worst-group acc (%)"]
    if binary:
        header += [label for _, label in BINARY_METRICS]
    header += ["Train time (s)"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    order = sorted(groups, key=lambda k: (k[1], list(groups).index(k)))
    for method, sparsity in order:
        rs = groups[(method, sparsity)]
        achieved = np.mean([float(r.get("sparsity", sparsity)) for r in rs])
        row = [method, f"{achieved:.3f}", _fmt(_values(rs, "accuracy"), ".2f", 100), _fmt(_values(rs, "cwv"), ".5f"),
               _fmt(_values(rs, "mcd"), ".4f"), _fmt(_values(rs, "worst_group_accuracy"), ".2f", 100)]
        if binary:
            row += [_fmt(_values(rs, key), ".4f") for key, _ in BINARY_METRICS]
        row += [_fmt(_values(rs, "train_time_s"), ".1f")]
        lines.append("| " + " | ".join(row) + " |")

    lines += ["", "## Fairness improvement of Ballot over each baseline", ""]
    metrics = [("cwv", "CWV"), ("mcd", "MCD")] + ([BINARY_METRICS[0], BINARY_METRICS[2]] if binary else [])
    rows = []
    for method, sparsity in order:
        if method in (reference, "dense") or (reference, sparsity) not in groups:
            continue
        ours, theirs = groups[(reference, sparsity)], groups[(method, sparsity)]
        row = [method, f"{sparsity:g}"]
        for key, _ in metrics:
            imp = fairness_improvement(np.mean(_values(ours, key)), np.mean(_values(theirs, key)))
            row.append("n/a (baseline 0)" if math.isnan(imp) else f"{100 * imp:+.1f}%")
        delta = 100 * (np.mean(_values(ours, "accuracy")) - np.mean(_values(theirs, "accuracy")))
        row.append(f"{delta:+.2f}")
        rows.append(row)
    if rows:
        lines += ["1 − mean(metric of Ballot) / mean(metric of the baseline) at the same target sparsity "
                  "(positive = Ballot is fairer); last column: Ballot's accuracy minus the baseline's, "
                  "in percentage points.", ""]
        header = ["Baseline", "Sparsity"] + [label for _, label in metrics] + ["Δ accuracy (pp)"]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    else:
        lines.append(f"(needs {reference} and at least one pruning baseline at the same sparsity)")
    if paired is None:
        paired = paired_comparisons(records, against=against, reference=reference)
    lines += ["", *paired_markdown(paired)]
    return "\n".join(lines) + "\n"


# Paired comparison over seeds: (record key, label, higher is better, display scale, format).
PAIRED_METRICS = (
    ("accuracy", "Accuracy (pp)", True, 100.0, "+.2f"),
    ("cwv", "CWV", False, 1.0, "+.5f"),
    ("mcd", "MCD", False, 1.0, "+.4f"),
    ("worst_group_accuracy", "Worst-group acc (pp)", True, 100.0, "+.2f"),
)
PAIRED_BINARY_METRICS = (
    ("demographic_parity_difference", "DP diff", False, 1.0, "+.4f"),
    ("equalized_odds_difference", "EOdds diff", False, 1.0, "+.4f"),
)


def default_against(methods: Sequence[str], reference: str = REFERENCE) -> list[str]:
    """The methods compared against the baselines by default: ``reference`` and every method whose
    name starts with "ballot" (variants such as "ballot_vote"), in the order of ``methods``."""
    return [m for m in dict.fromkeys(methods) if m == reference or m.startswith("ballot")]


def per_seed(records: Sequence[Record], key: str) -> dict[Any, float]:
    """``{seed: test value of key}`` of one method's records at one sparsity (``ValueError`` when
    two records share a seed)."""
    out: dict[Any, float] = {}
    for r, v in zip(records, _values(records, key)):
        seed = r.get("seed", 0)
        if seed in out:
            raise ValueError(f"two records of method {r['method']!r} at sparsity {r['target_sparsity']} "
                             f"have seed {seed}")
        out[seed] = float(v)
    return out


def paired_comparisons(
    records: Sequence[Record],
    *,
    against: Sequence[str] | None = None,
    reference: str = REFERENCE,
    num_resamples: int = NUM_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """Every method of ``against`` (default :func:`default_against`) against every other pruning
    method (not dense, not in ``against``) at the same target sparsity, per metric of
    ``PAIRED_METRICS`` (plus ``PAIRED_BINARY_METRICS`` for binary tasks), on the test split, with
    ``confidence`` percentile bootstrap intervals (e.g. 0.975 for a Bonferroni correction of two looks).

    One JSON-ready dict per (sparsity, method, baseline, metric): ``method``, ``baseline``,
    ``sparsity``, ``metric`` and :meth:`ballot_jax.stats.PairedComparison.to_dict` (seeds, per-seed
    values and differences ``method - baseline``, mean, CI bounds, wins, verdict, ...). Only the
    seeds both methods have are paired; the others are listed under ``unpaired_seeds``. A metric
    with missing (None / NaN) values gets ``"error"`` and ``"verdict": "n/a (missing values)"``.
    """
    groups = _groups(records)
    methods = list(dict.fromkeys(m for m, _ in groups))
    chosen = default_against(methods, reference) if against is None else list(dict.fromkeys(against))
    metrics = PAIRED_METRICS + (PAIRED_BINARY_METRICS if _is_binary(records) else ())
    sparsities = sorted({s for m, s in groups if m != "dense"})
    out: list[dict[str, Any]] = []
    for sparsity in sparsities:
        present = [m for m in methods if (m, sparsity) in groups and m != "dense"]
        for method in (m for m in chosen if m in present):
            for baseline in (m for m in present if m not in chosen):
                ours, theirs = groups[(method, sparsity)], groups[(baseline, sparsity)]
                for key, _, higher, _, _ in metrics:
                    a, b = per_seed(ours, key), per_seed(theirs, key)
                    common = [s for s in a if s in b]
                    entry: dict[str, Any] = {"method": method, "baseline": baseline, "sparsity": sparsity,
                                             "metric": key, "higher_is_better": higher}
                    unpaired = {name: sorted(set(v) - set(common)) for name, v in ((method, a), (baseline, b))}
                    if any(unpaired.values()):
                        entry["unpaired_seeds"] = {k: v for k, v in unpaired.items() if v}
                    try:
                        result = stats.paired_comparison(
                            {s: a[s] for s in common}, {s: b[s] for s in common}, higher_is_better=higher,
                            num_resamples=num_resamples, seed=seed, confidence=confidence)
                    except ValueError as err:  # no common seed, or a missing (NaN) value
                        entry.update(error=str(err), seeds=common, verdict="n/a (missing values)"
                                     if common else "n/a (no common seeds)")
                    else:
                        entry.update(result.to_dict())
                    out.append(entry)
    return out


def paired_markdown(paired: Sequence[dict[str, Any]]) -> list[str]:
    """The "Paired comparison" section of results.md (lines) for :func:`paired_comparisons`' entries:
    one table per (sparsity, method, baseline), one row per metric."""
    lines = ["## Paired comparison over seeds", ""]
    if not paired:
        return lines + ["(needs a method of report_against — by default ballot and its variants — and "
                        "another pruning method at the same sparsity)"]
    first = next((e for e in paired if "num_resamples" in e), {})
    lines += [
        "d = metric of the method − metric of the baseline on the same seed (test split), listed in seed "
        f"order; mean d with its {100 * first.get('confidence', 0.95):g}% percentile bootstrap CI "
        f"({first.get('num_resamples', NUM_RESAMPLES)} resamples of the seeds, fixed RNG seed); wins k/n: "
        "seeds on which the method is better (higher accuracy / worst-group accuracy, lower CWV / MCD / "
        f"DP / EOdds). \"not significant\": the CI covers 0; a claim needs ≥ {stats.MIN_SEEDS} seeds "
        f"(\"n < {stats.MIN_SEEDS}: no claim\"). Accuracies in percentage points.",
        "",
    ]
    formats = {key: (label, scale, spec) for key, label, _, scale, spec in PAIRED_METRICS + PAIRED_BINARY_METRICS}
    header = ["Metric", "Better", "d per seed", "Mean d", "95% CI", "Wins", "Verdict"]
    tables: dict[tuple[float, str, str], list[dict[str, Any]]] = {}
    for e in paired:
        tables.setdefault((e["sparsity"], e["method"], e["baseline"]), []).append(e)
    for (sparsity, method, baseline), entries in tables.items():
        seeds = entries[0].get("seeds", [])
        lines += [f"### {method} vs {baseline}, sparsity {sparsity:g} (seeds {', '.join(map(str, seeds))})", ""]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
        for e in entries:
            label, scale, spec = formats.get(e["metric"], (e["metric"], 1.0, "+.4g"))
            better = "higher" if e["higher_is_better"] else "lower"
            if "error" in e:
                lines.append(f"| {label} | {better} | – | – | n/a | – | {e['verdict']} |")
                continue
            diffs = ", ".join(f"{d * scale:{spec}}" for d in e["differences"])
            ci = "n/a" if e["ci_low"] is None else f"[{e['ci_low'] * scale:{spec}}, {e['ci_high'] * scale:{spec}}]"
            lines.append(f"| {label} | {better} | {diffs} | {e['mean_difference'] * scale:{spec}} | {ci} | "
                         f"{e['wins']}/{e['n']} | {e['verdict']} |")
        unpaired = entries[0].get("unpaired_seeds")
        if unpaired:
            lines += ["", "Seeds without a partner, left out: "
                      + "; ".join(f"{name}: {', '.join(map(str, v))}" for name, v in unpaired.items())]
        lines.append("")
    return lines[:-1]


PLOTS = (("accuracy", "Test accuracy (%)", 100.0), ("cwv", "CWV (lower is fairer)", 1.0),
         ("mcd", "MCD (lower is fairer)", 1.0))


def write_plots(records: Sequence[Record], workdir: pathlib.Path, reference: str = REFERENCE) -> list[pathlib.Path]:
    """``<metric>_vs_sparsity.png`` for accuracy, CWV and MCD: one line per method (dodged sideways
    by a few thousandths of sparsity), error bars = std over seeds, dense as a horizontal reference
    line (with a ±std band)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = _groups(records)
    methods = list(dict.fromkeys(m for m, _ in groups))
    dataset = records[0].get("dataset", "") if records else ""
    paths = []
    for key, label, scale in PLOTS:
        fig = Figure(figsize=(6, 4), dpi=120)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        pruned = [m for m in methods if m != "dense"]
        for method in methods:
            points = sorted((s, _values(rs, key) * scale) for (m, s), rs in groups.items() if m == method)
            if method == "dense":
                mean, std = _mean_std(points[0][1])
                ax.axhline(mean, color="black", linestyle="--", linewidth=1, label="dense")
                if std > 0:
                    ax.axhspan(mean - std, mean + std, color="black", alpha=0.08)
                continue
            # Dodge the methods sideways a little so overlapping points and error bars stay visible.
            dodge = 0.004 * (pruned.index(method) - (len(pruned) - 1) / 2)
            xs = [s + dodge for s, _ in points]
            stats = [_mean_std(v) for _, v in points]
            ax.errorbar(xs, [m for m, _ in stats], yerr=[s for _, s in stats], marker="o", capsize=3,
                        label=method, linewidth=2 if method == reference else 1)
        ticks = sorted({s for (m, s) in groups if m != "dense"})
        if ticks:
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            if len(ticks) == 1:
                ax.set_xlim(ticks[0] - 0.05, ticks[0] + 0.05)
        ax.set_xlabel("sparsity (fraction of prunable weights pruned)")
        ax.set_ylabel(label)
        ax.set_title(f"{dataset}: {label.split(' (')[0]} vs sparsity")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = workdir / f"{key}_vs_sparsity.png"
        fig.savefig(path)
        paths.append(path)
    return paths


def write_results(
    records: Sequence[Record],
    workdir: str | pathlib.Path,
    config: dict[str, Any] | None = None,
    *,
    reference: str = REFERENCE,
    against: Sequence[str] | None = None,
) -> None:
    """results.json (``config``: the config as JSON data; the records without bulky per-level
    metrics; the paired comparisons), results.md, and the plots."""
    workdir = pathlib.Path(workdir)
    paired = paired_comparisons(records, against=against, reference=reference)
    payload = {"config": config, "records": [summarize_record(r) for r in records], "paired": paired}
    checkpoints.write_json(workdir / "results.json", payload)
    (workdir / "results.md").write_text(results_markdown(records, reference=reference, paired=paired))
    if records:
        write_plots(records, workdir, reference=reference)

