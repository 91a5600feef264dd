"""experiments.compare.bar_summary (issue #13's bar, cell by cell) and experiments.mu_frontier (Ballot's
μ candidates read back from a finished run, fixed-μ rows and the test oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from ballot_jax import stats
from ballot_jax.engine import checkpoints
from experiments import compare, mu_frontier, reports

SEEDS = range(5)


def _test(acc, cwv, mcd=None):
    return {"accuracy": acc, "cwv": cwv, "mcd": 10 * cwv if mcd is None else mcd, "worst_group_accuracy": acc - 0.1}


def _record(method, seed, acc, cwv, sparsity=0.8, **extra):
    return {"method": method, "target_sparsity": sparsity, "sparsity": sparsity, "seed": seed,
            "train_time_s": 1.0, "test": _test(acc, cwv), **extra}


def _cells(text):
    lines = text[text.index("## The bar (issue #13)"):].splitlines()
    return {tuple(c.strip() for c in line.strip("|").split("|")[:2]): [c.strip() for c in line.strip("|").split("|")[2:]]
            for line in lines if line.startswith("| ") and not line.startswith("| Method")}


def test_bar_summary_counts_a_cell_only_with_both_metrics_significant_and_accuracy_within_a_point():
    records = []
    for s in SEEDS:
        records += [_record("lth", s, 0.80 + 0.001 * s, 0.010 + 0.0001 * s),
                    _record("magnitude", s, 0.81, 0.006 + 0.0001 * s),
                    # fairer than LTH on every seed, level with Magnitude on CWV (both signs), 0.9 points below LTH
                    _record("ballot", s, 0.791 + 0.001 * s, 0.006 + 0.0001 * s + (0.0005 if s % 2 else -0.0005)),
                    # fairer than both, 1.1 points below LTH: misses on accuracy alone
                    _record("strong", s, 0.789 + 0.001 * s, 0.001)]
    paired = reports.paired_comparisons(records, against=["ballot", "strong"])
    cells = _cells("\n".join(compare.bar_summary(paired, ["lth", "magnitude"])))
    assert cells[("ballot", "0.8")][0] == "met"
    assert cells[("ballot", "0.8")][1] == "CWV not significant; MCD not significant"
    assert cells[("strong", "0.8")] == ["accuracy -1.10 pp vs lth"] * 2
    text = "\n".join(compare.bar_summary(paired, ["lth", "magnitude"]))
    assert text.endswith("Cells met: ballot 1 of 2; strong 0 of 2.")
    # a looser tolerance admits the strong variant
    assert compare.bar_summary(paired, ["lth", "magnitude"], tolerance_pp=1.2)[-1].endswith("strong 2 of 2.")
    with pytest.raises(ValueError, match="no paired comparison against dense"):
        compare.bar_summary(paired, ["dense"])
    with pytest.raises(ValueError, match="at least one baseline"):
        compare.bar_summary(paired, [])


def test_bar_with_levelling_up_refuses_a_cell_met_by_lowering_the_better_group_alone(tmp_path):
    # Two groups: LTH at (0.90, 0.70 + 0.002 s). "down" lowers the better group by 2 points (worst group unchanged);
    # "up" raises the worse group by 1-2 points instead. Both are fairer than LTH on every seed and within a point.
    def rec(method, s, better, worse):
        test = {"accuracy": (better + worse) / 2, "cwv": ((better - worse) / 2) ** 2, "mcd": better - worse,
                "worst_group_accuracy": min(better, worse)}
        return {"method": method, "target_sparsity": 0.8, "sparsity": 0.8, "seed": s, "train_time_s": 1.0, "test": test}
    records = []
    for s in SEEDS:
        worse = 0.70 + 0.002 * s
        records += [rec("lth", s, 0.90, worse), rec("down", s, 0.88, worse),
                    rec("up", s, 0.90, worse + 0.01 + 0.002 * s)]
    paired = reports.paired_comparisons(records, against=["down", "up"])
    assert _cells("\n".join(compare.bar_summary(paired, ["lth"]))) == {("down", "0.8"): ["met"], ("up", "0.8"): ["met"]}
    strict = "\n".join(compare.bar_summary(paired, ["lth"], levelling_up=True))
    assert _cells(strict) == {("down", "0.8"): ["worst-group accuracy not significant"], ("up", "0.8"): ["met"]}
    assert "worst-group accuracy significantly higher" in strict and strict.endswith("down 0 of 1; up 1 of 1.")
    compare.export_records(records, tmp_path / "r.json")
    runs = [a for m in ("lth", "down", "up") for a in ("--run", f"{m}={tmp_path / 'r.json'}:{m}")]
    text = compare.main(runs + ["--against", "down,up", "--bar", "lth", "--bar-levelling-up"])
    assert text.endswith("down 0 of 1; up 1 of 1.")
    with pytest.raises(SystemExit):
        compare.main(runs + ["--bar-levelling-up"])
    with pytest.raises(SystemExit):  # refused before any run is read
        compare.main(["--run", f"x={tmp_path / 'absent'}:x", "--bar-levelling-up"])


@pytest.mark.parametrize("faces_lost, accurate", [(200, True), (201, False)])
def test_bar_summary_reads_a_difference_of_exactly_one_point_as_within_it_despite_float32(faces_lost, accurate):
    # LTH's correct faces of 2,000 on ten seeds (CelebA Wavy_Hair at 80%, session 25), Ballot's a total of
    # faces_lost fewer: 200 is exactly -1 point, 201 is -1.005; records hold float32 accuracies
    lth = [1516, 1494, 1516, 1509, 1524, 1527, 1511, 1493, 1520, 1509]
    lost = [52, -32, 9, 30, 36, 10, 44, 5, 31, 15 + faces_lost - 200]
    records = []
    for s, (correct, fewer) in enumerate(zip(lth, lost)):
        records += [_record("lth", s, float(np.float32(correct / 2000)), 0.009),
                    _record("magnitude", s, 0.75, 0.008),
                    _record("ballot", s, float(np.float32((correct - fewer) / 2000)), 0.007 - 0.0001 * s)]
    paired = reports.paired_comparisons(records, against=["ballot"])
    difference = next(e["mean_difference"] for e in paired if e["baseline"] == "lth" and e["metric"] == "accuracy")
    assert difference * 100 == pytest.approx(-faces_lost / 200, abs=1e-5)
    if accurate:
        assert difference * 100 < -1.0  # float32 puts the exact -1 point just below the bound
    cells = _cells("\n".join(compare.bar_summary(paired, ["lth", "magnitude"])))
    assert cells[("ballot", "0.8")] == (["met"] * 2 if accurate else ["accuracy -1.005 pp vs lth"] * 2)


def test_compare_confidence_sets_every_interval_and_the_bar_says_its_level(tmp_path):
    rng = np.random.default_rng(3)
    records = []
    for s in range(10):
        records += [_record("lth", s, 0.80, 0.010 + 0.001 * rng.normal()),
                    _record("magnitude", s, 0.80, 0.010 + 0.001 * rng.normal()),
                    _record("ballot", s, 0.80, 0.009 + 0.001 * rng.normal())]
    compare.export_records(records, tmp_path / "r.json")
    runs = [a for m in ("lth", "magnitude", "ballot") for a in ("--run", f"{m}={tmp_path / 'r.json'}:{m}")]
    for level in (0.95, 0.975):
        paired = reports.paired_comparisons(records, against=["ballot"], confidence=level)
        for e in paired:  # the interval is the percentile one at ``level`` of the seeds' paired differences
            means = stats.bootstrap_means(e["differences"], reports.NUM_RESAMPLES, reports.BOOTSTRAP_SEED)
            low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
            assert e["confidence"] == level and (e["ci_low"], e["ci_high"]) == pytest.approx((low, high), abs=1e-15)
        text = compare.main(runs + ["--against", "ballot", "--bar", "lth,magnitude", "--confidence", str(level)])
        bar = text[text.index("## The bar (issue #13)"):]
        assert ("(paired 97.5% CI excluding 0)" in bar) == (level == 0.975)  # 95%: the wording, unchanged
    wide = {(e["baseline"], e["metric"]): e for e in reports.paired_comparisons(records, against=["ballot"], confidence=0.975)}
    for e in reports.paired_comparisons(records, against=["ballot"]):
        w = wide[(e["baseline"], e["metric"])]
        if e["ci_low"] is not None:
            assert w["ci_low"] <= e["ci_low"] <= e["ci_high"] <= w["ci_high"]
    with pytest.raises(SystemExit):
        compare.main(runs + ["--confidence", "1.5"])


def _write_run(root, seed, mode_chosen, chosen_mu, candidates, lth_acc, sparsity=0.8):
    """A finished auto-mode Ballot run: ``candidates`` = {(mode, μ): (val acc, test acc, test cwv)}."""
    run = root / f"seed_{seed}" / f"sparsity_{sparsity:g}"
    checkpoints.write_json(run / "lth.record.json", _record("lth", seed, lth_acc, 0.010, sparsity))
    for (mode, mu), (val, acc, cwv) in candidates.items():
        checkpoints.write_json(run / "ballot" / mode / f"mu_{mu:g}" / "level_01" / "record.json", {
            "level": 1, "sparsity": 0.8, "kept": 2, "train_time_s": 1.0,
            "val": {"accuracy": val, "cwv": cwv}, "test": _test(acc, cwv)})
    search = {f"{mu:g}": {"accuracy": v[0], "cwv": v[2]} for (m, mu), v in candidates.items() if m == mode_chosen}
    val, acc, cwv = candidates[(mode_chosen, chosen_mu)]
    checkpoints.write_json(run / "ballot.record.json", _record(
        "ballot", seed, acc, cwv, sparsity, mode=mode_chosen, disparity_weight=chosen_mu, search=search))


def test_mu_frontier_reads_every_candidate_and_bounds_the_choice_with_the_test_oracle(tmp_path):
    for s in range(4):
        _write_run(tmp_path, s, "one_shot_finetune", 0.1, {
            ("iterative_rewind", 0): (0.80, 0.800, 0.0040),      # the other mode: fairest of the accurate ones
            ("one_shot_finetune", 0): (0.82, 0.810, 0.0080),
            ("one_shot_finetune", 0.1): (0.815, 0.805, 0.0060),  # chosen
            ("one_shot_finetune", 1): (0.70, 0.700, 0.0001),     # fairest, 10 points below LTH
        }, lth_acc=0.805)
    # seed 4: nothing within a point of LTH: the oracle falls back on the most accurate candidate
    _write_run(tmp_path, 4, "one_shot_finetune", 0, {
        ("iterative_rewind", 0): (0.80, 0.750, 0.0040), ("one_shot_finetune", 0): (0.82, 0.760, 0.0080)}, lth_acc=0.9)
    text = mu_frontier.main(["--workdir", str(tmp_path), "--baseline", "lth"])
    rows = [line for line in text.splitlines() if line.startswith("| 0.8 | 0 |")]
    assert rows == [
        "| 0.8 | 0 | one_shot_finetune | 0 | 82.00 | +0.00 | 0.00800 | 81.00 | +0.50 | 0.00800 | 0.0800 |",
        "| 0.8 | 0 | one_shot_finetune | **0.1** (chosen) | 81.50 | -0.50 | 0.00600 | 80.50 | +0.00 | 0.00600 | 0.0600 |",
        "| 0.8 | 0 | one_shot_finetune | 1 | 70.00 | -12.00 | 0.00010 | 70.00 | -10.50 | 0.00010 | 0.0010 |"]
    lth = [r for r in compare.load_records(tmp_path, "lth")]
    _, records = mu_frontier.frontier(tmp_path, "ballot", lth, tolerance_pp=1.0)
    oracle = {r["seed"]: r["test"] for r in records if r["method"] == "ballot@test_oracle"}
    assert [oracle[s]["cwv"] for s in SEEDS] == [0.0040] * 4 + [0.0080]
    fixed = sorted({r["method"] for r in records} - {"ballot@test_oracle"})
    assert fixed == ["ballot@mu=0", "ballot@mu=0.1", "ballot@mu=1"]
    assert sum(r["method"] == "ballot@mu=1" for r in records) == 4  # seed 4 trained no μ = 1
    assert "| ballot@test_oracle vs lth | 0.8 |" in text and "## The bar (issue #13)" in text
    with pytest.raises(ValueError, match="no finished 'ballot_vote' records"):
        mu_frontier.frontier(tmp_path, "ballot_vote", lth, 1.0)
    with pytest.raises(ValueError, match="no record of seed 0 at sparsity 0.8"):
        mu_frontier.frontier(tmp_path, "ballot", lth[1:], 1.0)
    fixed_mu = tmp_path / "fixed"
    checkpoints.write_json(fixed_mu / "seed_0" / "sparsity_0.8" / "ballot.record.json",
                           _record("ballot", 0, 0.8, 0.01, disparity_weight=0.1))
    with pytest.raises(ValueError, match="ran no μ search"):
        mu_frontier.frontier(fixed_mu, "ballot", lth, 1.0)
