r"""What a finite test split can resolve: the sampling floor of CWV and a fair oracle's chance.

A method's group accuracies are measured on n_g test examples per group, so even a model whose
*true* accuracy is the same p in every group shows a gap. With independent binomial draws
â_g ~ Binomial(n_g, p) / n_g over the |P| groups present (n_g > 0), the expected measured CWV
(``ballot_jax.metrics``: population variance over groups) is exactly::

    floor = E[(1/|P|) Σ_g (â_g − mean_h â_h)²] = ((|P| − 1) / |P|²) · Σ_g p (1 − p) / n_g

(``cwv_sampling_floor``; two groups: (v_1 + v_2) / 4 with v_g = p (1 − p) / n_g). A true gap
adds its own variance to it (the binomial terms shrink only by O(gap² / n_g)): a fair model is the
best case.

``fair_oracle_power`` asks the question the bar of a paired comparison poses: given a baseline's
measured per-seed CWV and MCD, how often would a **fair oracle** (equal true accuracy p_s in every
group on seed s, test draws independent of the baseline's) be found significantly lower by
``ballot_jax.stats.paired_comparison`` (the reports' 95% percentile bootstrap over seeds)? It
simulates ``num_draws`` sets of per-seed oracle measurements and returns the fraction of draws in
which the CI of the paired difference lies below 0 for CWV, for MCD, and for both at once. A low
rate says that the comparison is out of any method's reach on that data, however fair the method:
e.g. the baseline's measured disparity is already at the floor the split resolves (or below it on
most seeds). (Assumption, stated:
the oracle's test errors are independent of the baseline's; on one shared test split they are
positively correlated, which narrows the paired noise, so the rate is an estimate, not a bound.)

Host-side NumPy, as ``stats``: these are statistics over seeds, not array functions to jit.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ballot_jax import stats
from ballot_jax.stats import PerSeed

__all__ = ["cwv_sampling_floor", "fair_oracle_power", "oracle_group_accuracies"]


def _counts(group_counts: ArrayLike) -> np.ndarray:
    counts = np.asarray(group_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(f"group_counts must be a non-empty 1-D sequence of test examples per group, got shape {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError(f"group_counts must be non-negative integers, got {counts.tolist()}")
    counts = counts.astype(np.int64)
    if not np.any(counts > 0):
        raise ValueError("group_counts has no group with test examples")
    return counts


def _accuracy(accuracy: float, name: str = "accuracy") -> float:
    p = float(accuracy)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {accuracy!r}")
    return p


def cwv_sampling_floor(accuracy: float, group_counts: ArrayLike) -> float:
    """Expected measured CWV of a model with true accuracy ``accuracy`` in every group, on a test
    split with ``group_counts[g]`` examples of group g (groups with 0 examples are not present):
    ((|P| − 1) / |P|²) · Σ_{g ∈ P} p (1 − p) / n_g. 0 with one group present."""
    counts = _counts(group_counts)
    p = _accuracy(accuracy)
    present = counts[counts > 0]
    k = len(present)
    return float((k - 1) / k**2 * np.sum(p * (1.0 - p) / present))


def oracle_group_accuracies(
    accuracy: float, group_counts: ArrayLike, num_draws: int, rng: np.random.Generator
) -> np.ndarray:
    """``num_draws`` measured group accuracies of the fair oracle: float64 [num_draws, |P|], column
    j the present group j's Binomial(n_j, p) / n_j (absent groups are left out, as the metrics do)."""
    counts = _counts(group_counts)
    p = _accuracy(accuracy)
    present = counts[counts > 0]
    return rng.binomial(present, p, size=(int(num_draws), len(present))) / present


def fair_oracle_power(
    baseline_cwv: PerSeed,
    baseline_mcd: PerSeed,
    accuracy: PerSeed,
    group_counts: ArrayLike,
    *,
    num_draws: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    num_resamples: int = 10_000,
) -> dict[str, float]:
    """How often a fair oracle (true accuracy ``accuracy[s]`` in every group on seed s) would be
    found significantly lower than the baseline in CWV, in MCD, and in both (the bar's condition).

    ``baseline_cwv``, ``baseline_mcd`` and ``accuracy`` are per-seed values aligned as in
    ``stats.align_by_seed`` (mappings by seed, sequences by position); ``group_counts`` is the test
    split's examples per group (the same split on every seed). Each of ``num_draws`` draws measures
    the oracle on every seed (``oracle_group_accuracies``, one ``np.random.default_rng(seed)``
    stream) and runs ``stats.paired_comparison`` (``confidence``, ``num_resamples``, bootstrap
    seed 0, as the reports do). Returns ``{"cwv", "mcd", "both"}`` rates in [0, 1] plus
    ``"floor"``, the mean over seeds of ``cwv_sampling_floor``.
    """
    if int(num_draws) != num_draws or num_draws < 1:
        raise ValueError(f"num_draws must be a positive int, got {num_draws!r}")
    seeds, cwv_b, mcd_b = stats.align_by_seed(baseline_cwv, baseline_mcd)
    acc_seeds, acc, _ = stats.align_by_seed(accuracy, accuracy)
    if acc_seeds != seeds:
        raise ValueError(f"accuracy must have the baseline's seeds {list(seeds)}, got {list(acc_seeds)}")
    for s, p in zip(seeds, acc):
        _accuracy(p, f"accuracy at seed {s!r}")
    counts = _counts(group_counts)
    rng = np.random.default_rng(seed)
    # draws[s]: [num_draws, |P|] measured group accuracies of the oracle on seed s
    draws = [oracle_group_accuracies(p, counts, num_draws, rng) for p in acc]
    wins = {"cwv": 0, "mcd": 0, "both": 0}
    for j in range(int(num_draws)):
        groups = np.stack([d[j] for d in draws])  # [seeds, |P|]
        oracle = {"cwv": groups.var(axis=1), "mcd": groups.max(axis=1) - groups.min(axis=1)}
        won = {}
        for key, base in (("cwv", cwv_b), ("mcd", mcd_b)):
            cmp = stats.paired_comparison(oracle[key], base, confidence=confidence, num_resamples=num_resamples)
            won[key] = cmp.significant and cmp.better
            wins[key] += won[key]
        wins["both"] += won["cwv"] and won["mcd"]
    rates = {key: value / int(num_draws) for key, value in wins.items()}
    rates["floor"] = float(np.mean([cwv_sampling_floor(p, counts) for p in acc]))
    return rates
