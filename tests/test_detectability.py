"""ballot_jax.detectability: the CWV sampling floor (exact, against a binomial enumeration), the fair
oracle's draws (measured as ballot_jax.metrics measures them) and its rates."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

import ballot_jax as bj
from ballot_jax import detectability


def enumerated_floor(p, counts):
    """E[population variance of the group accuracies] by summing over every outcome's binomial pmf."""
    present = [n for n in counts if n > 0]
    pmfs = [scipy_stats.binom.pmf(np.arange(n + 1), n, p) for n in present]
    total = 0.0
    for ks in itertools.product(*(range(n + 1) for n in present)):
        prob = np.prod([pmf[k] for pmf, k in zip(pmfs, ks)])
        total += prob * np.var([k / n for k, n in zip(ks, present)])
    return total


@pytest.mark.parametrize("p,counts", [(0.9, (3, 5)), (0.5, (4, 2, 3)), (0.73, (6, 0, 2)), (0.2, (1, 1))])
def test_floor_equals_the_enumerated_expectation(p, counts):
    assert detectability.cwv_sampling_floor(p, counts) == pytest.approx(enumerated_floor(p, counts), rel=1e-12, abs=1e-15)


def test_floor_two_groups_closed_form_and_edges():
    p, n1, n2 = 0.88, 1155, 845
    v = p * (1 - p)
    assert detectability.cwv_sampling_floor(p, [n1, n2]) == pytest.approx((v / n1 + v / n2) / 4, rel=1e-15)
    assert detectability.cwv_sampling_floor(p, [0, 40]) == 0.0  # one group present: no variance
    assert detectability.cwv_sampling_floor(1.0, [10, 20]) == 0.0
    assert detectability.cwv_sampling_floor(p, [n1, 0, n2]) == detectability.cwv_sampling_floor(p, [n1, n2])


@settings(max_examples=50, deadline=None)
@given(p=st.floats(0.0, 1.0), counts=st.lists(st.integers(1, 5000), min_size=2, max_size=6), scale=st.integers(2, 5))
def test_floor_is_symmetric_and_shrinks_with_more_examples(p, counts, scale):
    # an exactly complementary pair: for small p, 1.0 - p rounds away p's low bits (p = 1e-9: 2.7e-8 relative)
    p = 1.0 - (1.0 - p)
    floor = detectability.cwv_sampling_floor(p, counts)
    assert floor >= 0.0
    assert detectability.cwv_sampling_floor(1.0 - p, counts) == pytest.approx(floor, rel=1e-9, abs=1e-18)
    assert detectability.cwv_sampling_floor(p, [scale * n for n in counts]) == pytest.approx(floor / scale, rel=1e-9, abs=1e-18)


def test_oracle_draws_are_what_the_metrics_measure():
    """A drawn accuracy vector, turned into predictions, gives the library's CWV and MCD of it."""
    counts = np.array([7, 0, 5, 9])
    acc = detectability.oracle_group_accuracies(0.6, counts, 4, np.random.default_rng(3))
    assert acc.shape == (4, 3)
    present = counts[counts > 0]
    for row in acc:
        correct = np.rint(row * present).astype(int)
        groups = np.repeat(np.flatnonzero(counts), present)
        y_true = np.zeros(groups.size, np.int32)
        y_pred = np.concatenate([np.r_[np.zeros(k), np.ones(n - k)] for k, n in zip(correct, present)]).astype(np.int32)
        m = bj.metrics_from_confusion(bj.group_confusion(y_true, y_pred, groups.astype(np.int32), 4, 2))
        assert float(m["cwv"]) == pytest.approx(np.var(row), abs=1e-6)
        assert float(m["mcd"]) == pytest.approx(row.max() - row.min(), abs=1e-6)


def test_oracle_draws_mean_matches_the_floor():
    counts, p = [300, 200], 0.85
    acc = detectability.oracle_group_accuracies(p, counts, 200_000, np.random.default_rng(0))
    assert acc.var(axis=1).mean() == pytest.approx(detectability.cwv_sampling_floor(p, counts), rel=0.02)


def test_power_is_one_against_an_unfair_baseline_and_zero_against_a_perfect_one():
    counts, acc = [1000, 1000], [0.9] * 5
    unfair = detectability.fair_oracle_power([0.01] * 5, [0.2] * 5, acc, counts, num_draws=50, num_resamples=2000)
    assert unfair["cwv"] == unfair["mcd"] == unfair["both"] == 1.0
    perfect = detectability.fair_oracle_power([0.0] * 5, [0.0] * 5, acc, counts, num_draws=50, num_resamples=2000)
    assert perfect["cwv"] == perfect["mcd"] == perfect["both"] == 0.0
    assert perfect["floor"] == pytest.approx(detectability.cwv_sampling_floor(0.9, counts))


def test_power_at_the_floor_is_low_and_the_result_is_reproducible():
    counts = [1155, 845]
    floor = detectability.cwv_sampling_floor(0.88, counts)
    base_cwv = {s: floor for s in range(5)}
    base_mcd = {s: 2 * np.sqrt(floor) for s in range(5)}  # two groups: mcd = 2 sqrt(cwv)
    acc = {s: 0.88 for s in range(5)}
    a = detectability.fair_oracle_power(base_cwv, base_mcd, acc, counts, num_draws=200, seed=1, num_resamples=2000)
    b = detectability.fair_oracle_power(base_cwv, base_mcd, acc, counts, num_draws=200, seed=1, num_resamples=2000)
    assert a == b
    assert a["both"] <= a["cwv"] and a["both"] <= a["mcd"]
    assert a["both"] < 0.35  # a baseline at the floor is rarely beaten significantly


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="group_counts"):
        detectability.cwv_sampling_floor(0.5, [3, -1])
    with pytest.raises(ValueError, match="group_counts"):
        detectability.cwv_sampling_floor(0.5, [0, 0])
    with pytest.raises(ValueError, match="accuracy"):
        detectability.cwv_sampling_floor(1.5, [3, 4])
    with pytest.raises(ValueError, match="accuracy at seed 1"):
        detectability.fair_oracle_power([0.1, 0.1], [0.1, 0.1], [0.5, 2.0], [3, 4], num_draws=2)
    with pytest.raises(ValueError, match="baseline's seeds"):
        detectability.fair_oracle_power({0: 0.1, 1: 0.1}, {0: 0.1, 1: 0.1}, {0: 0.5, 2: 0.5}, [3, 4], num_draws=2)
    with pytest.raises(ValueError, match="num_draws"):
        detectability.fair_oracle_power([0.1], [0.1], [0.5], [3, 4], num_draws=0)


def test_cli_reads_the_runs_split_and_reports_floor_and_rates(tmp_path):
    """experiments.detectability on a digits workdir: the test split's group counts come from the
    run's config, the floor is cwv_sampling_floor at the baseline's accuracy, and a baseline far
    above the floor is beaten by the oracle in every draw while one at CWV 0 never is."""
    from ballot_jax.engine import checkpoints
    from experiments import digits
    from experiments.config import save_config
    from experiments.detectability import main, split_group_counts

    config = digits.get_config()
    save_config(config, tmp_path)
    counts, names = split_group_counts(tmp_path)
    assert counts.tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36] and len(names) == 10

    def write(method, seed, cwv, mcd):
        record = {"method": method, "target_sparsity": 0.8, "sparsity": 0.8, "seed": seed, "train_time_s": 1.0,
                  "test": {"accuracy": 0.9, "cwv": cwv, "mcd": mcd, "worst_group_accuracy": 0.8}}
        checkpoints.write_json(tmp_path / f"seed_{seed}" / "sparsity_0.8" / f"{method}.record.json", record)

    for seed in range(5):
        write("unfair", seed, 0.05, 0.6)
        write("perfect", seed, 0.0, 0.0)
        write("ballot", seed, 0.001, 0.1)
    text = main(["--run", f"unfair={tmp_path}", "--run", f"perfect={tmp_path}", "--run", f"ballot={tmp_path}",
                 "--method", "ballot", "--draws", "20"])
    floor = detectability.cwv_sampling_floor(0.9, counts)
    assert f"| 0.8 | unfair | 5 | 90.00 | 0.05000 | {floor:.5f} | {0.05 / floor:.2f} | 0.00100 | 1.00 | 1.00 | 1.00 |" in text
    assert "| 0.8 | perfect | 5 | 90.00 | 0.00000 |" in text and text.rstrip().endswith("| 0.00 | 0.00 | 0.00 |")
    with pytest.raises(SystemExit, match="--method 'lth'"):
        main(["--run", f"unfair={tmp_path}", "--method", "lth"])
    with pytest.raises(SystemExit, match="config.json"):
        main(["--run", f"unfair={tmp_path / 'seed_0'}"])
