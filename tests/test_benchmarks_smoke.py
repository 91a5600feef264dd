"""Smoke tests of the speed benchmarks: they run (tiny sizes), print their table last and write JSON.

No timing is asserted anywhere: these only check that the benchmarks work. ``end_to_end`` is not run
here (it runs the whole default experiment).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `benchmarks` is not an installed package
    sys.path.insert(0, str(REPO))

from benchmarks import common  # noqa: E402


def run_benchmark(module: str, tmp_path: pathlib.Path) -> tuple[str, dict]:
    out_json = tmp_path / f"{module}.json"
    cmd = [sys.executable, "-m", f"benchmarks.{module}", "--quick", "--repeats", "2", "--json", str(out_json)]
    # Normally well under 30 s each; the generous timeout only guards against a hang on a busy machine.
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    data = json.loads(out_json.read_text())
    assert data["benchmark"] == module
    env = data["environment"]
    for key in ("jax", "devices", "platform", "cpu_count", "date", "command"):
        assert key in env, key
    assert f"benchmarks.{module}" in " ".join(env["command"])
    assert data["settings"]["quick"] is True and data["settings"]["repeats"] == 2
    return proc.stdout, data


def table_lines(stdout: str, header_word: str) -> list[str]:
    """The table at the end of stdout: its header, rule and rows (and check it comes last)."""
    lines = stdout.rstrip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("model") and header_word in line]
    assert starts, f"no table with {header_word!r} in:\n{stdout}"
    table = lines[starts[-1]:]
    assert set(table[1].replace(" ", "")) == {"-"}, table[1]
    return table


@pytest.mark.slow
def test_masked_step_quick(tmp_path):
    stdout, data = run_benchmark("masked_step", tmp_path)
    table = table_lines(stdout, "vs dense")
    rows = table[2:]
    assert len(rows) == 6, table
    assert [r.split()[:2] for r in rows] == [
        [m, v] for m in ("small_cnn", "mlp") for v in ("dense", "masked", "plain_jit")
    ]
    assert set(data["masked_over_dense"]) == {"small_cnn", "mlp"}
    for label, m in data["measurements"].items():
        assert abs(m["sparsity"] - 0.9) < 0.01
        assert data["checks"][label]["pruned_weights_stay_zero"] is True
        for v in m["variants"].values():
            assert len(v["samples_s"]) == 2 and all(s > 0 for s in v["samples_s"])
            assert v["median_s"] > 0 and v["ratio"] > 0


@pytest.mark.slow
def test_sharded_step_quick(tmp_path):
    stdout, data = run_benchmark("sharded_step", tmp_path)
    table = table_lines(stdout, "vs 1 dev")
    rows = table[2:]
    assert len(rows) == 6, table
    assert "FAIL" not in stdout and "overall: PASS" in stdout
    assert [r.split()[-1] for r in rows] == ["ref", "PASS", "PASS"] * 2
    assert data["passed"] is True and data["skipped_device_counts"] == []
    for m in data["measurements"].values():
        assert sorted(m["devices"]) == ["1", "2", "4"]
        for c, v in m["devices"].items():
            assert len(v["samples_s"]) == 2
            assert v["max_abs_diff_vs_1dev"] <= 1e-5


def test_harness_statistics_and_table():
    s = common.summarize([3.0, 1.0, 2.0, 4.0])
    assert s["median_s"] == 2.5 and s["iqr_s"] == pytest.approx(1.5) and s["n"] == 4
    r = common.paired_ratio([2.0, 4.0, 6.0], [1.0, 2.0, 2.0])
    assert r["ratio"] == 2.0 and r["ratio_of_medians"] == 2.0
    text = common.format_table(["name", "ms"], [["a", "1.5"], ["long", "10.25"]])
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[2].endswith("  1.5") and lines[3].startswith("long")


def test_harness_compare_interleaves():
    calls = []
    variants = {name: (lambda n=name: calls.append(n)) for name in ("a", "b", "c")}
    res = common.compare(variants, repeats=3, warmup=1, number=1)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # rotated each repetition
    assert all(len(v["samples_s"]) == 3 and v["first_call_s"] >= 0 for v in res.values())
    assert len(common.time_fn(lambda x: x + 1, 1, repeats=4, warmup=1, number=2)) == 4


@pytest.mark.slow
def test_conflict_quick(tmp_path):
    stdout, data = run_benchmark("conflict", tmp_path)
    rows = table_lines(stdout, "vs one_grad")[2:]
    assert [r.split()[1] for r in rows] == ["one_grad", "vmap_groups", "loop_groups"]
    assert set(data["vmap_over_one_grad"]) == {"small_cnn"}
    for v in data["measurements"]["small_cnn"]["variants"].values():
        assert len(v["samples_s"]) == 2 and v["ratio"] > 0
