"""ballot_jax.stats: paired per-seed differences, bootstrap CIs, wins, significance, errors."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

import ballot_jax
from ballot_jax import stats


def reference_percentile_ci(d, num_resamples, seed, confidence=0.95):
    """A plain loop drawing the same indices (one resample of n seeds at a time)."""
    rng = np.random.default_rng(seed)
    n = len(d)
    means = []
    for _ in range(num_resamples):
        idx = rng.integers(0, n, size=n)
        total = 0.0
        for i in idx:
            total += d[i]
        means.append(total / n)
    alpha = 1 - confidence
    return tuple(float(q) for q in np.quantile(np.array(means), [alpha / 2, 1 - alpha / 2]))


def test_module_is_exported():
    # A fresh interpreter: here the test's own ``from ballot_jax import stats`` already loaded it.
    code = "import ballot_jax, sys; assert 'ballot_jax.stats' in sys.modules; print(ballot_jax.stats.MIN_SEEDS)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=pathlib.Path(__file__).resolve().parents[1],
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "5"
    assert ballot_jax.stats is stats


@pytest.mark.parametrize("n, seed", [(2, 0), (5, 1), (7, 123)])
def test_percentile_ci_equals_a_plain_reference_loop(n, seed):
    # Dyadic values: every partial sum is exact, so the loop's sum and NumPy's pairwise sum agree bit for bit.
    rng = np.random.default_rng(100 + n)
    d = rng.integers(-64, 64, size=n) / 16.0
    got = stats.bootstrap_ci(d, num_resamples=2000, seed=seed)
    assert got == reference_percentile_ci(d, 2000, seed)
    result = stats.paired_comparison(d + 1.0, np.ones(n), num_resamples=2000, seed=seed)
    assert (result.ci_low, result.ci_high) == got


def test_percentile_ci_matches_scipy_bootstrap():
    rng = np.random.default_rng(7)
    a = rng.normal(0.30, 0.05, size=12)
    b = a + rng.normal(0.02, 0.03, size=12)
    result = stats.paired_comparison(a, b, num_resamples=20_000, seed=0)
    ref = scipy_stats.bootstrap((a, b), lambda x, y: np.mean(x - y), paired=True, vectorized=False,
                                method="percentile", n_resamples=20_000, rng=1).confidence_interval
    se = np.std(result.differences, ddof=1) / math.sqrt(len(a))  # ~ std of the bootstrap means
    # Monte-Carlo error of a 2.5% quantile from 20k resamples is ~0.02 se per estimate.
    assert result.ci_low == pytest.approx(ref.low, abs=0.1 * se)
    assert result.ci_high == pytest.approx(ref.high, abs=0.1 * se)
    assert result.ci_low != result.ci_high


def test_bca_matches_scipy_bootstrap():
    d = np.random.default_rng(3).gamma(1.0, size=12)  # skewed: BCa differs from percentile here
    ours = stats.bootstrap_ci(d, num_resamples=50_000, seed=0, method="bca")
    ref = scipy_stats.bootstrap((d,), np.mean, method="BCa", n_resamples=50_000, rng=1).confidence_interval
    pct = stats.bootstrap_ci(d, num_resamples=50_000, seed=0)
    se = np.std(d, ddof=1) / math.sqrt(len(d))
    # Monte-Carlo sd of one BCa bound from 50k resamples here: ~0.01 se (low), ~0.025 se (high).
    assert ours == pytest.approx((ref.low, ref.high), abs=0.15 * se)
    # The tolerance is tight enough to notice BCa silently being the percentile interval.
    assert max(abs(pct[0] - ref.low), abs(pct[1] - ref.high)) > 0.5 * se


def test_bca_on_constant_differences_is_that_value():
    assert stats.bootstrap_ci([0.5, 0.5, 0.5], method="bca") == (0.5, 0.5)


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(finite, finite), min_size=2, max_size=10),
    shift=st.floats(min_value=-100, max_value=100, allow_nan=False),
    seed=st.integers(0, 2**32 - 1),
)
def test_properties(pairs, shift, seed):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    kw = dict(num_resamples=400, seed=seed)
    r = stats.paired_comparison(a, b, **kw)
    eps = 1e-9 * (1.0 + np.max(np.abs(r.differences)))
    # The CI contains the mean paired difference.
    assert r.ci_low - eps <= r.mean_difference <= r.ci_high + eps
    assert r.mean_difference == pytest.approx(np.mean(a - b))
    # Shifting B by a constant shifts the CI by minus that constant.
    shifted = stats.paired_comparison(a, b + shift, **kw)
    tol = 1e-9 * (1.0 + np.max(np.abs(a)) + np.max(np.abs(b)) + abs(shift))
    assert shifted.ci_low == pytest.approx(r.ci_low - shift, abs=tol)
    assert shifted.ci_high == pytest.approx(r.ci_high - shift, abs=tol)
    # Swapping A and B negates the differences, the mean and the CI; wins become losses.
    swapped = stats.paired_comparison(b, a, **kw)
    np.testing.assert_array_equal(swapped.differences, -r.differences)
    assert swapped.ci_low == pytest.approx(-r.ci_high, abs=tol)
    assert swapped.ci_high == pytest.approx(-r.ci_low, abs=tol)
    assert swapped.wins == r.losses and swapped.ties == r.ties
    # The direction flips which seeds count as wins.
    up = stats.paired_comparison(a, b, higher_is_better=True, **kw)
    assert up.wins == r.losses and (up.ci_low, up.ci_high) == (r.ci_low, r.ci_high)
    # Reproducible: the same seed gives the same interval.
    again = stats.paired_comparison(a, b, **kw)
    assert (again.ci_low, again.ci_high) == (r.ci_low, r.ci_high)


def test_hand_made_clear_win_is_significant():
    # CWV (lower is better): A lower than B on every one of 5 seeds.
    a = {0: 0.010, 1: 0.012, 2: 0.008, 3: 0.011, 4: 0.009}
    b = {0: 0.020, 1: 0.021, 2: 0.019, 3: 0.024, 4: 0.018}
    r = stats.paired_comparison(a, b)
    assert r.seeds == (0, 1, 2, 3, 4) and r.n == 5
    np.testing.assert_allclose(r.differences, [-0.010, -0.009, -0.011, -0.013, -0.009])
    assert r.mean_difference == pytest.approx(-0.0104)
    assert (r.wins, r.ties, r.losses) == (5, 0, 0)
    assert r.significant and r.ci_high < 0 and r.ci_low >= -0.013 - 1e-12
    assert r.relative_change == pytest.approx(1 - 0.010 / 0.0204)
    assert r.verdict() == "significant, better"
    # The same numbers read as accuracies (higher is better): a significant loss on every seed.
    acc = stats.paired_comparison(a, b, higher_is_better=True)
    assert (acc.wins, acc.losses) == (0, 5) and acc.verdict() == "significant, worse"


def test_hand_made_noise_is_not_significant():
    a = [0.50, 0.52, 0.48, 0.51, 0.49]
    b = [0.51, 0.50, 0.49, 0.49, 0.50]  # differences -0.01, +0.02, -0.01, +0.02, -0.01
    r = stats.paired_comparison(a, b, higher_is_better=True)
    assert (r.wins, r.ties, r.losses) == (2, 0, 3)
    assert r.ci_low < 0 < r.ci_high
    assert not r.significant and r.verdict() == "not significant"


def test_ties_and_zero_differences():
    r = stats.paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (r.wins, r.ties, r.losses) == (0, 3, 0)
    assert (r.ci_low, r.ci_high) == (0.0, 0.0) and not r.significant
    # A constant nonzero gap on every seed is significant (the CI is that single value).
    r = stats.paired_comparison([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert (r.ci_low, r.ci_high) == (-1.0, -1.0) and r.significant


def test_a_bound_that_is_zero_up_to_float32_rounding_does_not_count_as_excluding_zero():
    # Group accuracies as the records hold them: float32 k / 845 faces. A wins by one face on 8 seeds and loses by
    # one on 2, so in exact arithmetic the CI's lower end is a resample mean of exactly 0 (4 wins, 4 losses...).
    k = np.array([655, 591, 553, 480, 492, 412, 422, 404, 452, 643])
    sign = np.array([1] * 8 + [-1] * 2)
    a = np.float32((k + sign) / 845).astype(float)
    b = np.float32(k / 845).astype(float)
    low, _ = stats.bootstrap_ci(a - b)
    assert 0.0 < low < 1e-7  # the rounding noise this guards against (exactly 0 with a, b as exact fractions)
    exact_low, _ = stats.bootstrap_ci((k + sign) / 845 - k / 845)
    assert abs(exact_low) < 1e-15
    r = stats.paired_comparison(a, b, higher_is_better=True)
    assert not r.significant and r.verdict() == "not significant"
    # A real one-face margin on every seed stays significant.
    assert stats.paired_comparison(np.float32((k + 1) / 845).astype(float), b, higher_is_better=True).significant


def test_fewer_than_two_seeds_have_no_interval():
    r = stats.paired_comparison({3: 0.2}, {3: 0.3})
    assert r.n == 1 and r.wins == 1 and r.mean_difference == pytest.approx(-0.1)
    assert math.isnan(r.ci_low) and math.isnan(r.ci_high) and not r.significant
    assert r.ci_text() == "n/a"
    assert r.verdict() == "n < 5: no claim"
    d = r.to_dict()
    assert d["ci_low"] is None and d["ci_high"] is None and d["verdict"] == "n < 5: no claim"
    assert stats.bootstrap_ci([1.0]) == pytest.approx((math.nan, math.nan), nan_ok=True)


def test_fewer_than_min_seeds_make_no_claim_even_when_significant():
    r = stats.paired_comparison([0.1, 0.1, 0.1, 0.1], [0.2, 0.21, 0.2, 0.22])
    assert r.significant
    assert r.verdict() == "n < 5: no claim"
    assert r.verdict(min_seeds=4) == "significant, better"


def test_mappings_align_by_seed_not_by_order():
    r = stats.paired_comparison({2: 0.3, 0: 0.1, 1: 0.2}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert r.seeds == (0, 1, 2)
    np.testing.assert_allclose(r.differences, [0.1, 0.2, 0.3])
    assert r.to_dict()["seeds"] == [0, 1, 2]


def test_relative_change_with_zero_baseline_is_nan():
    r = stats.paired_comparison([0.1, 0.2], [0.0, 0.0])
    assert math.isnan(r.relative_change) and r.to_dict()["relative_change"] is None


def test_errors():
    with pytest.raises(ValueError, match=r"seed\(s\) \[3, 4\] missing from a; seed\(s\) \[0\] missing from b"):
        stats.paired_comparison({0: 1.0, 1: 1.0, 2: 1.0}, {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0})
    with pytest.raises(ValueError, match="got 3 and 2 values"):
        stats.paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"b has NaN or infinite values at seed\(s\) \[7\]"):
        stats.paired_comparison({5: 1.0, 7: 2.0}, {5: 1.0, 7: math.nan})
    with pytest.raises(ValueError, match=r"a has NaN or infinite values at seed\(s\) \[1\]"):
        stats.paired_comparison([1.0, np.inf], [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one seed"):
        stats.paired_comparison({}, {})
    with pytest.raises(TypeError, match="both be"):
        stats.paired_comparison({0: 1.0}, [1.0])
    with pytest.raises(ValueError, match="method must be one of"):
        stats.paired_comparison([1.0, 2.0], [0.0, 0.0], method="t")
    with pytest.raises(ValueError, match="num_resamples"):
        stats.paired_comparison([1.0, 2.0], [0.0, 0.0], num_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_ci([1.0, 2.0], confidence=95)
