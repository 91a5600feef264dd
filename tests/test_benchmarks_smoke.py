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


@pytest.mark.parametrize("module", ["vs_torch", "conv_gap"])
def test_torch_benchmarks_skip_cleanly_without_torch(tmp_path, module):
    """Where PyTorch is missing (CI), the benchmark says so and exits 0. A ``torch`` package that fails
    to import is put first on the path, so this runs the skip path whether or not torch is installed."""
    import os

    blocker = tmp_path / "blocker" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch hidden by the test')\n")
    out_json = tmp_path / f"{module}.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker.parent), str(REPO)])}
    cmd = [sys.executable, "-m", f"benchmarks.{module}", "--quick", "--repeats", "2", "--json", str(out_json)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped" in proc.stdout and "PyTorch is not installed" in proc.stdout
    data = json.loads(out_json.read_text())
    assert data["benchmark"] == module and "PyTorch is not installed" in data["skipped"]


@pytest.mark.slow
def test_conv_gap_quick(tmp_path):
    pytest.importorskip("torch")
    stdout, data = run_benchmark("conv_gap", tmp_path)
    rows = table_lines(stdout, "conv")[2:]
    assert len(rows) == len(data["measurements"]) + 1 and rows[-1].startswith("weighted")
    for m in data["measurements"].values():
        assert m["forward_max_abs_diff"] < 1e-4  # JAX and PyTorch compute the same convolution
        assert set(m["samples_s"]) == {"jax_fwd", "torch_fwd", "jax_grad", "torch_fwd_bwd"}
        assert all(len(v) == 2 for v in m["samples_s"].values())
    assert set(data["weighted"]) == {"forward", "gradient", "both"}


@pytest.mark.slow
def test_vs_torch_quick(tmp_path):
    pytest.importorskip("torch")
    stdout, data = run_benchmark("vs_torch", tmp_path)
    rows = table_lines(stdout, "jax/torch")[2:]
    assert [r.split()[0] for r in rows] == ["small_cnn", "resnet18", "resnet18+winograd"]
    assert all(r.split()[-1] == "PASS" for r in rows), rows
    assert data["passed"] is True
    assert set(data["ballot_jax_over_torch"]) == {"small_cnn", "resnet18", "resnet18+winograd"}
    setup = data["setup"]
    assert setup["torch_num_threads"] == setup["xla_cpu_threads"]  # thread parity
    for m in data["measurements"].values():
        assert abs(m["sparsity"] - 0.9) < 0.01
        assert m["check"]["max_abs_param_diff"] <= m["check"]["atol"]
        assert all(v["passed"] for v in m["check"]["variants"].values())  # the winograd step: the same update
        assert set(m["variants"]) == {"torch", "ballot_jax"} | ({"ballot_jax_winograd"} if m["model"] == "resnet18" else set())
        for v in m["variants"].values():
            assert len(v["samples_s"]) == 2 and v["median_s"] > 0


def test_vs_torch_twin_layouts_round_trip():
    """The kernel layout conversions between Flax and the PyTorch twins are inverses (incl. the
    first dense layer after the NHWC/NCHW flatten), so the one-step check compares like with like."""
    import numpy as np

    from benchmarks import vs_torch

    rng = np.random.default_rng(0)
    cases = [((3, 3, 4, 8), "conv", None), ((12, 5), "dense", None), ((2 * 3 * 4, 5), "flat_dense", (2, 3, 4))]
    for shape, kind, extra in cases:
        k = rng.normal(size=shape)
        t = vs_torch.kernel_to_torch(k, kind, extra)
        np.testing.assert_array_equal(vs_torch.kernel_from_torch(t, kind, extra, shape), k)
    # flat_dense: Flax row (h, w, c) must land in torch column (c, h, w)
    k = rng.normal(size=(2 * 3 * 4, 5))
    t = vs_torch.kernel_to_torch(k, "flat_dense", (2, 3, 4))
    h, w, c = 1, 2, 3
    np.testing.assert_array_equal(t[:, c * 2 * 3 + h * 3 + w], k[(h * 3 + w) * 4 + c])


@pytest.mark.slow
def test_loop_quick(tmp_path):
    stdout, data = run_benchmark("loop", tmp_path)
    rows = table_lines(stdout, "vs bare")[2:]
    assert [r.split()[1] for r in rows] == ["bare", "bare_gather", "loop", "loop_host_batches", "loop_bound2", "host_indices"]
    assert set(data["loop_over_bare"]) == set(data["loop_over_bare_gather"]) == {"small_cnn"}
    m = data["measurements"]["small_cnn"]
    assert m["max_steps_in_flight"] >= 1 and m["steps_per_sample"] == 4
    for v in m["variants"].values():
        assert len(v["samples_s"]) == 2 and v["median_s"] > 0


@pytest.mark.slow
def test_train_throughput_quick(tmp_path):
    stdout, data = run_benchmark("train_throughput", tmp_path)
    table = table_lines(stdout, "images/s")
    assert len(table) == 3 and table[2].split()[0] == "resnet18"
    r = data["result"]
    assert r["data"] == "synthetic" and r["images_per_s"] > 0 and r["bare_step_images_per_s"] > 0
    assert len(r["segments_s"]) == 2 and r["steps_per_segment"] == 3
    assert r["xla_flops_per_image"] is None or r["xla_flops_per_image"] > 0


def test_suite_report_and_gpu_suite_dry_run(tmp_path):
    """suite_report summarises benchmark JSONs; gpu_suite.sh --dry-run names only existing benchmarks."""
    import os

    from benchmarks import suite_report

    (tmp_path / "vs_torch.json").write_text(json.dumps(
        {"benchmark": "vs_torch", "passed": True, "setup": {"device": "gpu"},
         "ballot_jax_over_torch": {"resnet18": 0.8}, "table": {"headers": ["a"], "rows": [["1"]]}}))
    (tmp_path / "train_throughput.json").write_text(json.dumps(
        {"benchmark": "train_throughput", "result": {"model": "resnet18", "batch_size": 128, "images_per_s": 1000.0,
                                                     "fraction_of_bf16_peak_nominal": 0.0017}}))
    (tmp_path / "other.json").write_text("[1, 2]")
    assert suite_report.main([str(tmp_path)]) == 0
    md = (tmp_path / "summary.md").read_text()
    assert "| vs_torch | resnet18 ballot_jax/torch (gpu) | 0.800 |" in md
    assert "| train_throughput | resnet18 b128 images/s | 1000.0 |" in md
    assert "Not read: other.json" in md
    figures = json.loads((tmp_path / "summary.json").read_text())["figures"]
    assert {"benchmark": "train_throughput", "figure": "resnet18 b128 fraction of bf16 peak (3 x 0.56 GFLOP/img)",
            "value": "0.0017"} in figures

    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--dry-run", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    modules = [w.split(".", 1)[1] for line in proc.stdout.splitlines() for w in line.split() if w.startswith("benchmarks.")]
    assert {"train_throughput", "vs_torch", "masked_step", "conflict", "loop", "sharded_step"} <= set(modules)
    assert all((REPO / "benchmarks" / f"{m}.py").exists() for m in modules)
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


@pytest.mark.slow
def test_maxpool_quick(tmp_path):
    stdout, data = run_benchmark("maxpool", tmp_path)
    lines = stdout.rstrip().splitlines()  # the table (its first column is "case") comes last
    assert lines[-6].split() == ["case", "pool", "median", "ms", "IQR", "ms", "vs", "flax"]
    assert [r.split()[:2] for r in lines[-4:]] == [["pool_grad", "flax"], ["pool_grad", "custom"],
                                                    ["cnn_grad", "flax"], ["cnn_grad", "custom"]]
    assert data["identical"] is True and all(data["checks"].values())
    assert len(data["checks"]) == 4
