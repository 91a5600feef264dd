"""experiments/: the whole comparison end to end on a tiny config, skipping, config checks, the CLI."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from experiments import cell_accuracy, run

REPO = pathlib.Path(__file__).resolve().parents[1]
PRUNED = ("magnitude", "lth", "safecompress", "fairscratch", "ballot")


def tiny_config():
    """Synthetic biased data (binary target, 2 groups), a one-layer MLP, 20 steps, one level."""
    config = run.base_config()
    config.dataset = "synthetic"
    config.data.num_train = 512
    config.data.num_val = 128
    config.data.num_test = 256
    config.model = "mlp"
    config.model_kwargs.hidden = (16,)
    config.train.steps = 20
    config.train.batch_size = 32  # 4 test devices, 2 groups
    config.train.rewind_step = 2
    config.train.checkpoint_every = 0
    config.methods = ",".join(list(run.METHODS))
    config.sparsity = 0.5
    config.seeds = "0"
    config.fraction = 0.5  # one pruning level
    config.ballot.score_batches = 1
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One full tiny run: (config, workdir, records)."""
    workdir = tmp_path_factory.mktemp("experiment")
    config = tiny_config()
    records = run.run_experiment(config, workdir)
    return config, workdir, records


def test_run_writes_every_report(finished):
    config, workdir, records = finished
    methods = run.parse_list(config.methods, str)
    assert [r["method"] for r in records] == methods
    for r in records:
        expected = 0.0 if r["method"] == "dense" else 0.5
        assert r["target_sparsity"] == expected
        assert r["sparsity"] == pytest.approx(expected, abs=0.01)
        assert r["seed"] == 0
        assert {"accuracy", "cwv", "mcd", "worst_group_accuracy", "demographic_parity_difference"} <= set(r["test"])
    for name in ("config.json", "results.json", "results.md",
                 "accuracy_vs_sparsity.png", "cwv_vs_sparsity.png", "mcd_vs_sparsity.png"):
        assert (workdir / name).is_file() and (workdir / name).stat().st_size > 0, name
    assert (workdir / "seed_0" / "dense.record.json").is_file()
    assert (workdir / "seed_0" / "sparsity_0.5" / "lth.record.json").is_file()
    results = json.loads((workdir / "results.json").read_text())
    assert [r["method"] for r in results["records"]] == methods
    lth = next(r for r in results["records"] if r["method"] == "lth")
    assert set(lth["levels"][0]) >= {"level", "sparsity", "test_accuracy", "test_cwv", "test_mcd"}
    md = (workdir / "results.md").read_text()
    for name in methods:
        assert f"| {name} |" in md, name
    assert "DP diff" in md  # binary target with a sensitive attribute
    assert "Fairness improvement of Ballot" in md
    for name in set(methods) & set(PRUNED) - {"ballot"}:
        assert any(line.startswith(f"| {name} | 0.5 |") for line in md.splitlines()), name


def test_rerun_skips_finished_work(finished, monkeypatch, capsys):
    config, workdir, records = finished

    def forbidden(*args, **kwargs):
        raise AssertionError("a finished experiment must not load data or train again")

    monkeypatch.setattr(run, "build_task", forbidden)
    monkeypatch.setattr("ballot_jax.engine.loop.Trainer.train", forbidden)
    again = run.run_experiment(config, workdir)
    assert [(r["method"], r["test"]) for r in again] == [(r["method"], r["test"]) for r in records]
    assert "| ballot |" in capsys.readouterr().out  # the table is printed

    # The lists may shrink or grow: a subset is just reported.
    subset = tiny_config()
    subset.methods = "dense,lth"
    assert [r["method"] for r in run.run_experiment(subset, workdir)] == ["dense", "lth"]
    assert "| magnitude |" not in (workdir / "results.md").read_text()


def test_changed_config_fails_clearly(finished):
    _, workdir, _ = finished
    changed = tiny_config()
    changed.train.steps = 30
    changed.ballot.fairness_weight = 2.0
    with pytest.raises(run.ConfigMismatchError, match="train.steps: 20 .saved. != 30 .now.") as err:
        run.run_experiment(changed, workdir)
    assert "ballot.fairness_weight" in str(err.value)
    assert "another --workdir" in str(err.value)
    # Run-only settings may change.
    relaxed = tiny_config()
    relaxed.train.checkpoint_every = 7
    run.check_config(relaxed, workdir)


def test_method_registry_and_options():
    assert list(run.METHODS) == ["dense", "magnitude", "lth", "safecompress", "fairscratch", "ballot", "ballot_authors"]
    config = run.base_config()
    config.fraction = 0.25
    config.ballot.fairness_weight = 3.0
    config.ballot.score_split = "val"
    config.ballot.balanced_sampling = False
    ballot = run.make_method("ballot", config)
    assert (ballot.fraction, ballot.score.fairness_weight, ballot.score_split, ballot.balanced_sampling) == (
        0.25, 3.0, "val", False)
    assert run.make_method("lth", config).fraction == 0.25
    assert run.make_method("magnitude", config).finetune_steps is None  # Optional: a placeholder
    with pytest.raises(ValueError, match="unknown method 'obd'.*valid names: dense"):
        run.make_method("obd", config)
    config.methods = "dense,obd"
    with pytest.raises(ValueError, match="unknown method"):
        run.resolve_lists(config)
    with pytest.raises(ValueError, match="unknown options for Ballot"):
        run.build_method(run.METHOD_CLASSES["ballot"], {"no_such_option": 1})


def test_lists_and_sparsity_alias():
    config = run.base_config()
    config.methods = " lth, ballot ,lth"
    config.sparsities = "0.5,0.9"
    config.seeds = "0,1,2"
    assert run.resolve_lists(config) == (["lth", "ballot"], [0.5, 0.9], [0, 1, 2])
    config.sparsity = 0.95
    assert run.resolve_lists(config)[1] == [0.95]
    config.sparsity = 1.0
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        run.resolve_lists(config)
    assert run.parse_list((0.5, 0.8), float) == [0.5, 0.8]
    config = run.base_config()
    config.train.rewind_step = config.train.steps
    with pytest.raises(ValueError, match="config.train is invalid"):
        run.train_config(config, 0)


def _record(method, sparsity, seed, acc, cwv, mcd):
    test = {"accuracy": acc, "cwv": cwv, "mcd": mcd, "worst_group_accuracy": acc - 0.1}
    return {"method": method, "target_sparsity": sparsity, "sparsity": sparsity, "seed": seed,
            "train_time_s": 1.0, "test": test, "dataset": "fake"}


def test_tables_mean_std_and_improvement():
    records = [
        _record("dense", 0.0, 0, 0.9, 0.010, 0.2), _record("dense", 0.0, 1, 0.9, 0.010, 0.2),
        _record("lth", 0.8, 0, 0.80, 0.020, 0.4), _record("lth", 0.8, 1, 0.84, 0.020, 0.4),
        _record("ballot", 0.8, 0, 0.85, 0.010, 0.3), _record("ballot", 0.8, 1, 0.85, 0.010, 0.3),
    ]
    md = run.results_markdown(records)
    assert "| lth | 0.800 | 82.00 ± 2.83 | 0.02000 ± 0.00000 |" in md
    assert "| lth | 0.8 | +50.0% | +25.0% | +3.00 |" in md  # 1 - 0.01/0.02, 1 - 0.3/0.4
    assert "DP diff" not in md
    assert "| dense | 0.8" not in md  # dense is the reference, not a baseline


def test_dataset_configs_are_valid():
    from experiments import celeba, cifar10, cifar100, digits, utkface

    for module in (digits, celeba, cifar10, cifar100, utkface):
        config = module.get_config()
        methods, sparsities, seeds = run.resolve_lists(config)
        assert methods[0] == "dense" and sparsities and seeds
        run.train_config(config, seeds[0])
        for name in methods:
            if name in list(run.METHODS):
                run.make_method(name, config)


def test_cli_with_overrides(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [
        sys.executable, "-m", "experiments.digits", f"--workdir={tmp_path / 'run'}",
        "--config.train.steps=10", "--config.train.rewind_step=0", "--config.train.batch_size=40",
        "--config.methods=dense,magnitude", "--config.sparsity=0.5", "--config.seeds=0",
        "--config.model_kwargs.hidden=(16,)",
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| magnitude | 0.500 |" in proc.stdout
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["train"]["steps"] == 10 and saved["sparsity"] == 0.5 and saved["model_kwargs"]["hidden"] == [16]
    assert (tmp_path / "run" / "results.md").is_file()


@pytest.mark.parametrize("method", ["dense", "lth", "ballot"])
def test_cell_accuracy_adds_up_to_the_recorded_group_accuracy(finished, method, capsys):
    _, workdir, records = finished
    args = ["--workdir", str(workdir), "--method", method, "--seed", "0"]
    if method != "dense":
        args += ["--sparsity", "0.5"]
    assert cell_accuracy.main(args) == 0
    rows = [line.strip("| ").split(" | ") for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ") and not line.startswith("| group")]
    assert len(rows) == 4  # 2 groups x 2 classes
    record = next(r for r in records if r["method"] == method)
    assert sum(int(r[2]) for r in rows) == 256  # the test split
    for g, expected in enumerate(record["test"]["per_group_accuracy"]):
        cells = [r for r in rows if r[0] == rows[2 * g][0]]
        correct = sum(int(r[2]) * float(r[3]) for r in cells if r[3] != "-")
        assert correct / sum(int(r[2]) for r in cells) == pytest.approx(expected, abs=1e-3)
        assert sum(float(r[4]) for r in cells) == pytest.approx(1.0, abs=2e-3)


def test_cell_accuracy_refuses_runs_without_level_checkpoints(finished):
    _, workdir, _ = finished
    with pytest.raises(SystemExit, match="no finished model"):
        cell_accuracy.main(["--workdir", str(workdir), "--method", "fairscratch", "--sparsity", "0.5"])
    with pytest.raises(SystemExit, match="--sparsity"):
        cell_accuracy.main(["--workdir", str(workdir), "--method", "lth"])


# --- Paired comparison over seeds (experiments/reports.py), on hand-made records: no training ---

NOISE = (0.002, -0.002, 0.001, -0.001, 0.0005)


def _paired_records(seeds=range(5)):
    """ballot beats lth on every seed and metric; against magnitude it differs by sign-flipping noise."""
    records = []
    for s in seeds:
        n = NOISE[s % 5]
        records += [
            _record("dense", 0.0, s, 0.90, 0.010, 0.20),
            _record("lth", 0.8, s, 0.78 + n + 0.002 * s, 0.020 + 0.001 * s, 0.40),
            _record("magnitude", 0.8, s, 0.81, 0.012, 0.30),
            _record("ballot", 0.8, s, 0.81 + n, 0.012 + n / 10, 0.30 + NOISE[(s + 2) % 5]),
        ]
    return records


def _paired_tables(md):
    """``{"ballot vs lth, sparsity 0.8": [[metric, better, diffs, mean, ci, wins, verdict], ...]}``."""
    section = md.split("## Paired comparison over seeds", 1)[1]
    tables, title = {}, None
    for line in section.splitlines():
        if line.startswith("### "):
            title = line[4:].split(" (seeds")[0]
            tables[title] = []
        elif title and line.startswith("| ") and not line.startswith("| Metric"):
            tables[title].append(line.strip("| ").split(" | "))
    return tables


def test_paired_section_separates_a_clear_win_from_noise(tmp_path):
    from ballot_jax import stats

    records = _paired_records()
    run.write_results(records, run.base_config(), tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "## Paired comparison over seeds" in md
    assert "### ballot vs lth, sparsity 0.8 (seeds 0, 1, 2, 3, 4)" in md
    tables = _paired_tables(md)
    assert list(tables) == ["ballot vs lth, sparsity 0.8", "ballot vs magnitude, sparsity 0.8"]  # no dense
    metrics = ["Accuracy (pp)", "CWV", "MCD", "Worst-group acc (pp)"]  # not binary: no DP / EOdds
    for title, rows in tables.items():
        assert [r[0] for r in rows] == metrics, title
        assert [r[1] for r in rows] == ["higher", "lower", "lower", "higher"]
    for row in tables["ballot vs lth, sparsity 0.8"]:
        assert row[5:] == ["5/5", "significant, better"], row
    for row in tables["ballot vs magnitude, sparsity 0.8"]:
        assert row[6] == "not significant", row
        low, high = (float(v) for v in row[4].strip("[]").split(", "))
        assert low < 0 < high
    cwv = tables["ballot vs lth, sparsity 0.8"][1]
    expected = [0.012 + NOISE[s] / 10 - (0.020 + 0.001 * s) for s in range(5)]
    assert cwv[2] == ", ".join(f"{d:+.5f}" for d in expected)
    assert cwv[3] == f"{sum(expected) / 5:+.5f}"
    assert tables["ballot vs magnitude, sparsity 0.8"][0][2] == "+0.20, -0.20, +0.10, -0.10, +0.05"  # pp
    assert tables["ballot vs magnitude, sparsity 0.8"][0][5] == "3/5"

    # results.json: the same numbers under "paired", one entry per (method, baseline, metric).
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"config", "records", "paired"} <= set(results)
    paired = results["paired"]
    assert [(e["method"], e["baseline"], e["metric"]) for e in paired] == [
        ("ballot", b, m) for b in ("lth", "magnitude") for m in ("accuracy", "cwv", "mcd", "worst_group_accuracy")]
    entry = paired[1]
    assert entry["sparsity"] == 0.8 and entry["seeds"] == [0, 1, 2, 3, 4] and entry["n"] == 5
    assert entry["differences"] == pytest.approx(expected)
    ref = stats.paired_comparison({s: 0.012 + NOISE[s] / 10 for s in range(5)},
                                  {s: 0.020 + 0.001 * s for s in range(5)}, num_resamples=10_000, seed=0)
    assert (entry["ci_low"], entry["ci_high"]) == (ref.ci_low, ref.ci_high)
    assert entry["significant"] and entry["wins"] == 5 and entry["verdict"] == "significant, better"
    assert f"[{ref.ci_low:+.5f}, {ref.ci_high:+.5f}]" == cwv[4]
    assert [e["significant"] for e in paired[4:]] == [False] * 4
    assert all(e["verdict"] == "not significant" for e in paired[4:])
    # The function run.py re-exports gives the same section.
    assert run.results_markdown(records).split("## Paired")[1] == md.split("## Paired")[1]


def test_paired_section_variants_binary_metrics_and_few_seeds():
    records = []
    for s in range(3):
        for method, dp in (("lth", 0.30), ("ballot", 0.10), ("ballot_vote", 0.12)):
            r = _record(method, 0.8, s, 0.8, 0.02, 0.3)
            r["test"].update(demographic_parity_difference=dp + 0.01 * s, equal_opportunity_difference=dp,
                             equalized_odds_difference=dp + 0.02)
            records.append(r)
    md = run.results_markdown(records)
    tables = _paired_tables(md)
    # Variants are grouped by their "method" field and compared like the reference, not with it.
    assert list(tables) == ["ballot vs lth, sparsity 0.8", "ballot_vote vs lth, sparsity 0.8"]
    for rows in tables.values():
        assert [r[0] for r in rows][-2:] == ["DP diff", "EOdds diff"]
        assert all(r[6] == "n < 5: no claim" for r in rows), rows
        assert rows[4][5] == "3/3"  # DP: lower on every seed, still no claim with 3 seeds
        assert rows[0][5] == "0/3"  # equal accuracy: ties are not wins


def test_paired_section_report_against_unpaired_seeds_and_missing_values(tmp_path):
    from experiments import reports

    records = [r for r in _paired_records() if not (r["method"] == "magnitude" and r["seed"] == 4)]
    next(r for r in records if r["method"] == "lth" and r["seed"] == 1)["test"]["worst_group_accuracy"] = None
    config = run.base_config()
    assert run.report_against(config) is None
    assert reports.default_against(["dense", "lth", "ballot", "ballot_vote"]) == ["ballot", "ballot_vote"]
    config.report_against = "lth"
    assert run.report_against(config) == ["lth"]
    run.write_results(records, config, tmp_path)
    md = (tmp_path / "results.md").read_text()
    tables = _paired_tables(md)
    assert list(tables) == ["lth vs magnitude, sparsity 0.8", "lth vs ballot, sparsity 0.8"]
    assert "### lth vs magnitude, sparsity 0.8 (seeds 0, 1, 2, 3)" in md
    assert "Seeds without a partner, left out: lth: 4" in md
    assert [r[6] for r in tables["lth vs magnitude, sparsity 0.8"]] == ["n < 5: no claim"] * 3 + ["n/a (missing values)"]
    worst = tables["lth vs ballot, sparsity 0.8"][3]
    assert worst[0] == "Worst-group acc (pp)" and worst[4] == "n/a" and worst[6] == "n/a (missing values)"
    assert tables["lth vs ballot, sparsity 0.8"][1][5:] == ["0/5", "significant, worse"]  # lth's CWV is higher
    paired = json.loads((tmp_path / "results.json").read_text())["paired"]
    assert paired[0]["unpaired_seeds"] == {"lth": [4]} and paired[0]["seeds"] == [0, 1, 2, 3]
    missing = next(e for e in paired if e["baseline"] == "ballot" and e["metric"] == "worst_group_accuracy")
    assert "seed(s) [1]" in missing["error"] and "mean_difference" not in missing


def test_paired_section_without_a_comparison():
    records = [_record("dense", 0.0, 0, 0.9, 0.01, 0.2), _record("lth", 0.8, 0, 0.8, 0.02, 0.4)]
    md = run.results_markdown(records)
    assert "## Paired comparison over seeds\n\n(needs a method of report_against" in md


def test_compare_relabels_runs_from_several_workdirs(tmp_path, capsys):
    """experiments.compare: records of one method from two workdirs become two labelled rows, and the
    paired section compares them seed by seed; a damaged record is refused."""
    from ballot_jax.engine import checkpoints
    from experiments import compare

    def write(workdir, method, seed, cwv):
        record = {"method": method, "target_sparsity": 0.8, "sparsity": 0.8, "seed": seed, "train_time_s": 1.0,
                  "test": {"accuracy": 0.9, "cwv": cwv, "mcd": 10 * cwv, "worst_group_accuracy": 0.8}}
        checkpoints.write_json(workdir / f"seed_{seed}" / "sparsity_0.8" / f"{method}.record.json", record)

    for seed in range(5):
        write(tmp_path / "a", "ballot", seed, 0.001 + 0.0001 * seed)
        write(tmp_path / "b", "ballot", seed, 0.005 + 0.0001 * seed)
    text = compare.main(["--run", f"tuned={tmp_path / 'a'}:ballot", "--run", f"plain={tmp_path / 'b'}:ballot",
                         "--against", "tuned"])
    assert "| tuned | 0.800 |" in text and "| plain | 0.800 |" in text
    assert "### tuned vs plain, sparsity 0.8" in text and "significant, better" in text
    summary = text[text.index("## Verdicts at a glance"):]
    row = next(line for line in summary.splitlines() if line.startswith("| tuned vs plain | 0.8 |"))
    assert row.endswith("| -0.00400 [-0.00400, -0.00400] 5/5: significant, better | -0.0400 [-0.0400, -0.0400] 5/5: "
                        "significant, better |"), row
    exported = tmp_path / "kept.json"
    compare.main(["--run", f"tuned={tmp_path / 'a'}:ballot", "--run", f"plain={tmp_path / 'b'}:ballot",
                  "--export", str(exported)])
    again = compare.main(["--run", f"tuned={exported}:tuned", "--run", f"plain={exported}:plain", "--against", "tuned"])
    assert again == text  # the same report from the exported records, without the workdirs
    assert len(json.loads(exported.read_text())["records"]) == 10
    with pytest.raises(ValueError, match="no finished 'other' records"):
        compare.collect([f"other={exported}"])
    with pytest.raises(ValueError, match="takes a .json file"):
        compare.export_records([], tmp_path / "kept.md")
    path = tmp_path / "b" / "seed_0" / "sparsity_0.8" / "ballot.record.json"
    path.write_text(path.read_text().replace("0.005", "0.004"))
    with pytest.raises(checkpoints.CheckpointMismatchError, match="checksum"):
        compare.main(["--run", f"plain={tmp_path / 'b'}:ballot"])
    with pytest.raises(ValueError, match="LABEL=WORKDIR"):
        compare.parse_run("no_equals_sign")


def test_compare_reads_only_the_seeds_asked_for(tmp_path):
    """experiments.compare --seeds: the first seeds of a longer run, compared on those seeds alone."""
    from ballot_jax.engine import checkpoints
    from experiments import compare

    for seed in range(7):
        for method, cwv in (("lth", 0.004), ("ballot", 0.001 if seed < 5 else 0.009)):
            record = {"method": method, "target_sparsity": 0.8, "sparsity": 0.8, "seed": seed, "train_time_s": 1.0,
                      "test": {"accuracy": 0.9, "cwv": cwv + 0.0001 * seed, "mcd": 0.1, "worst_group_accuracy": 0.8}}
            checkpoints.write_json(tmp_path / f"seed_{seed}" / "sparsity_0.8" / f"{method}.record.json", record)
    runs = ["--run", f"lth={tmp_path}", "--run", f"ballot={tmp_path}", "--against", "ballot"]
    first = compare.main([*runs, "--seeds", "0,1,2,3,4"])
    assert "### ballot vs lth, sparsity 0.8 (seeds 0, 1, 2, 3, 4)" in first
    assert "| CWV | " in first and "5/5" in first and "significant, better" in first
    every = compare.main(runs)
    assert "(seeds 0, 1, 2, 3, 4, 5, 6)" in every and "5/7" in every and "significant, better" not in every
    with pytest.raises(ValueError, match=r"no record of seed\(s\) \[9\]"):
        compare.main([*runs, "--seeds", "0,9"])
    with pytest.raises(SystemExit):
        compare.main([*runs, "--seeds", "first"])


def test_compare_knows_a_level_at_its_target_sparsity_by_the_exact_count():
    from experiments.compare import at_target

    for n, target in ((136752, 0.4), (160, 0.75), (11, 0.5)):  # a SmallCNN, a toy MLP, a tiny layer
        kept = n - round(target * n)
        assert at_target({"kept": kept, "sparsity": 1 - kept / n}, target)
        assert not at_target({"kept": kept + 1, "sparsity": 1 - (kept + 1) / n}, target)  # one weight short


def test_compare_reads_one_candidate_of_a_search(tmp_path):
    """``METHOD/SUBDIR``: the last level of one candidate run, its seed and target sparsity read off
    the path, its levels' training time summed; a candidate that shares its dense phase (no level 0
    here) is read; one that has not reached the target sparsity (killed mid-way) is skipped."""
    from ballot_jax.engine import checkpoints
    from experiments import compare

    def level(seed, name, index, cwv):
        run = tmp_path / f"seed_{seed}" / "sparsity_0.95" / "ballot" / name / "mu_0"
        checkpoints.write_json(run / f"level_{index:02d}" / "record.json",
                               {"level": index, "sparsity": 0.95 * index / 2, "kept": 10 - index, "train_time_s": 2.0,
                                "test": {"accuracy": 0.8, "cwv": cwv, "mcd": 0.1}, "val": {"accuracy": 0.8, "cwv": cwv}})

    for seed in (0, 1):
        for index in range(3):
            level(seed, "iterative_rewind", index, 0.01 * (index + 1) + seed)
    level(2, "iterative_rewind", 0, 0.5)  # only its dense phase finished
    level(3, "iterative_rewind", 0, 0.5)
    level(3, "iterative_rewind", 1, 0.5)  # killed before its last level
    level(4, "iterative_rewind", 2, 0.07)  # its dense phase shared with another run
    records = compare.load_records(tmp_path, "ballot/iterative_rewind/mu_0")
    assert [(r["seed"], r["target_sparsity"], r["level"], r["test"]["cwv"], r["train_time_s"]) for r in records] == [
        (0, 0.95, 2, 0.03, 6.0), (1, 0.95, 2, 1.03, 6.0), (4, 0.95, 2, 0.07, 2.0)]
