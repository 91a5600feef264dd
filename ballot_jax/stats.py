r"""Paired statistics over seeds: is method A better than baseline B, or is the gap seed noise?

Every claim that one pruning method beats another rests on the SAME seeds for both and on the
per-seed paired differences (pure NumPy; no JAX)::

    d_s            = A_s - B_s                          for every seed s (same data split, same seed)
    mean_difference = mean_s d_s
    CI             = 95% percentile bootstrap interval of mean_difference: resample the n seeds
                     with replacement ``num_resamples`` times (``np.random.default_rng(seed)``,
                     indices drawn as one ``integers(0, n, size=(num_resamples, n))`` call), take
                     the mean of each resample, and the (alpha/2, 1 - alpha/2) quantiles of those
                     means (``np.quantile``, linear interpolation)
    significant    = the CI excludes 0 by more than ``ROUNDING`` times the largest |value| (False when
                     n < 2: the CI is undefined, NaN bounds). Metrics are recorded in float32: a
                     resample mean that is exactly 0 (e.g. +1 and -1 face on two seeds) reads +-1e-8
                     after rounding, which must not count as excluding 0
    wins           = #{s : A is better than B on seed s}: d_s < 0 when lower is better (CWV, MCD,
                     DP / EO differences), d_s > 0 when higher is better (accuracy, worst-group
                     accuracy); ``ties`` = #{s : d_s = 0}
    relative_change = 1 - mean(A) / mean(B)             (NaN when mean(B) = 0); positive = A lower

``method="bca"`` gives the bias-corrected and accelerated interval (jackknife acceleration) from the
same resamples instead; the percentile interval is the one reports use. A claim additionally needs
``MIN_SEEDS`` (5) seeds: :meth:`PairedComparison.verdict` says ``"n < 5: no claim"`` below that.

Inputs are ``{seed: value}`` mappings (aligned by seed; seeds present in only one raise
``ValueError`` naming them) or two equally long sequences (aligned by position). NaN or infinite
values raise ``ValueError`` naming their seeds.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from typing import Any, Hashable, Mapping, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MIN_SEEDS",
    "PairedComparison",
    "ROUNDING",
    "align_by_seed",
    "bootstrap_ci",
    "bootstrap_means",
    "paired_comparison",
]

MIN_SEEDS = 5  # fewer seeds than this: no claim, whatever the interval says
# A CI bound within ROUNDING * max|value| of 0 is 0: float32 values (6e-8 relative) cannot resolve less, and the
# mean of several rounded differences can miss an exact 0 by a few of their rounding errors.
ROUNDING = 8 * float(np.finfo(np.float32).eps)
CI_METHODS = ("percentile", "bca")

PerSeed = Union[Mapping[Hashable, float], Sequence[float], np.ndarray]


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """Method A against baseline B on the same seeds (see the module docstring for the formulas).

    ``a``, ``b`` and ``differences`` are in ``seeds`` order. ``ci_low``/``ci_high`` are NaN and
    ``significant`` is False when ``n < 2``.
    """

    seeds: tuple
    a: np.ndarray
    b: np.ndarray
    differences: np.ndarray
    mean_difference: float
    ci_low: float
    ci_high: float
    significant: bool
    wins: int
    ties: int
    relative_change: float
    higher_is_better: bool
    confidence: float
    num_resamples: int
    ci_method: str

    @property
    def n(self) -> int:
        """Number of paired seeds."""
        return len(self.seeds)

    @property
    def losses(self) -> int:
        """Seeds on which A is worse than B."""
        return self.n - self.wins - self.ties

    @property
    def better(self) -> bool:
        """The mean difference points to A being better (regardless of significance)."""
        return self.mean_difference > 0 if self.higher_is_better else self.mean_difference < 0

    def ci_text(self, spec: str = "+.4g", scale: float = 1.0) -> str:
        """``"[lo, hi]"`` formatted with ``spec`` after multiplying by ``scale``; ``"n/a"`` if n < 2."""
        if math.isnan(self.ci_low) or math.isnan(self.ci_high):
            return "n/a"
        return f"[{self.ci_low * scale:{spec}}, {self.ci_high * scale:{spec}}]"

    def verdict(self, min_seeds: int = MIN_SEEDS) -> str:
        """``"n < 5: no claim"`` (fewer than ``min_seeds`` seeds), ``"not significant"`` (the CI covers
        0), else ``"significant, better"`` / ``"significant, worse"`` (A against B)."""
        if self.n < min_seeds:
            return f"n < {min_seeds}: no claim"
        if not self.significant:
            return "not significant"
        return "significant, better" if self.better else "significant, worse"

    def to_dict(self, min_seeds: int = MIN_SEEDS) -> dict[str, Any]:
        """Plain JSON data (NaN becomes None), including ``n``, ``losses`` and ``verdict``."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "seeds": [s.item() if isinstance(s, np.generic) else s for s in self.seeds],
            "a": [float(v) for v in self.a],
            "b": [float(v) for v in self.b],
            "differences": [float(v) for v in self.differences],
            "mean_difference": float(self.mean_difference),
            "ci_low": num(self.ci_low),
            "ci_high": num(self.ci_high),
            "confidence": self.confidence,
            "num_resamples": self.num_resamples,
            "ci_method": self.ci_method,
            "significant": self.significant,
            "wins": self.wins,
            "ties": self.ties,
            "losses": self.losses,
            "n": self.n,
            "relative_change": num(self.relative_change),
            "higher_is_better": self.higher_is_better,
            "verdict": self.verdict(min_seeds),
        }


def align_by_seed(a: PerSeed, b: PerSeed) -> tuple[tuple, np.ndarray, np.ndarray]:
    """``(seeds, a_values, b_values)``: float64 arrays in the order of ``seeds``.

    Mappings ``{seed: value}`` are aligned by seed (sorted); every seed must be in both, else
    ``ValueError`` names the missing ones. Sequences are aligned by position (seeds ``0..n-1``) and
    must have the same length. Raises ``ValueError`` on no seeds and on NaN / infinite values.
    """
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise TypeError("a and b must both be {seed: value} mappings or both be sequences")
    if isinstance(a, Mapping):
        only_a = [s for s in a if s not in b]
        only_b = [s for s in b if s not in a]
        if only_a or only_b:
            parts = []
            if only_b:
                parts.append(f"seed(s) {_sorted(only_b)} missing from a")
            if only_a:
                parts.append(f"seed(s) {_sorted(only_a)} missing from b")
            raise ValueError("paired comparison needs the same seeds: " + "; ".join(parts))
        seeds = tuple(_sorted(a))
        va = np.array([a[s] for s in seeds], dtype=np.float64)
        vb = np.array([b[s] for s in seeds], dtype=np.float64)
    else:
        va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if va.ndim != 1 or vb.ndim != 1:
            raise ValueError(f"a and b must be 1-D, got shapes {va.shape} and {vb.shape}")
        if len(va) != len(vb):
            raise ValueError(f"a and b must have one value per seed each, got {len(va)} and {len(vb)} values")
        seeds = tuple(range(len(va)))
    if not seeds:
        raise ValueError("paired comparison needs at least one seed")
    for name, values in (("a", va), ("b", vb)):
        bad = [s for s, v in zip(seeds, values) if not np.isfinite(v)]
        if bad:
            raise ValueError(f"{name} has NaN or infinite values at seed(s) {bad}")
    return seeds, va, vb


def _sorted(seeds) -> list:
    try:
        return sorted(seeds)
    except TypeError:  # mixed key types: a stable, deterministic order anyway
        return sorted(seeds, key=repr)


def bootstrap_means(differences: ArrayLike, num_resamples: int = 10_000, seed: int = 0) -> np.ndarray:
    """Means of ``num_resamples`` resamples (with replacement) of ``differences``: float64 [R].

    The indices are ``np.random.default_rng(seed).integers(0, n, size=(num_resamples, n))``.
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError(f"differences must be a non-empty 1-D array, got shape {d.shape}")
    if int(num_resamples) != num_resamples or num_resamples < 1:
        raise ValueError(f"num_resamples must be a positive int, got {num_resamples!r}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(int(num_resamples), len(d)))
    return d[idx].mean(axis=1)


def bootstrap_ci(
    differences: ArrayLike,
    *,
    confidence: float = 0.95,
    num_resamples: int = 10_000,
    seed: int = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """``(low, high)``: the bootstrap CI of the mean of ``differences`` (NaN, NaN when n < 2).

    ``method="percentile"``: quantiles ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` of
    :func:`bootstrap_means`. ``method="bca"``: the same resamples with Efron's bias correction
    ``z0 = Phi^-1(mean of [m* < m] and [m* <= m])`` and jackknife acceleration
    ``a = sum(J - J_i)^3 / (6 (sum(J - J_i)^2)^1.5)`` (J_i: leave-one-out means, J their mean);
    when all differences are equal the interval is that value (a is undefined there).
    """
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {CI_METHODS}, got {method!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    d = np.asarray(differences, dtype=np.float64)
    means = bootstrap_means(d, num_resamples, seed)  # validates d and num_resamples
    if len(d) < 2:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    levels = np.array([alpha / 2, 1.0 - alpha / 2])
    if method == "bca":
        if np.all(d == d[0]):
            return float(means.min()), float(means.max())
        levels = _bca_levels(d, means, levels)
    low, high = np.quantile(means, levels)
    return float(low), float(high)


def _bca_levels(d: np.ndarray, means: np.ndarray, levels: np.ndarray) -> np.ndarray:
    normal = statistics.NormalDist()
    observed = d.mean()
    below = 0.5 * (np.mean(means < observed) + np.mean(means <= observed))
    below = min(max(below, 1e-12), 1.0 - 1e-12)  # all resamples on one side: z0 stays finite
    z0 = normal.inv_cdf(below)
    jack = (d.sum() - d) / (len(d) - 1)
    dev = jack.mean() - jack
    accel = np.sum(dev**3) / (6.0 * np.sum(dev**2) ** 1.5)
    out = []
    for level in levels:
        z = normal.inv_cdf(float(level))
        out.append(normal.cdf(z0 + (z0 + z) / (1.0 - accel * (z0 + z))))
    return np.array(out)


def paired_comparison(
    a: PerSeed,
    b: PerSeed,
    *,
    higher_is_better: bool = False,
    confidence: float = 0.95,
    num_resamples: int = 10_000,
    seed: int = 0,
    method: str = "percentile",
) -> PairedComparison:
    """Method A (values ``a``) against baseline B (``b``) on the same seeds.

    ``higher_is_better``: False for CWV / MCD / DP / EO differences (A wins a seed when A_s < B_s),
    True for accuracy and worst-group accuracy (A wins when A_s > B_s). ``seed`` fixes the bootstrap
    draws, so the same inputs always give the same interval. See :func:`align_by_seed` for the
    inputs and errors, :func:`bootstrap_ci` for ``confidence``, ``num_resamples`` and ``method``.
    """
    seeds, va, vb = align_by_seed(a, b)
    d = va - vb
    low, high = bootstrap_ci(d, confidence=confidence, num_resamples=num_resamples, seed=seed, method=method)
    tolerance = ROUNDING * float(max(np.max(np.abs(va)), np.max(np.abs(vb))))
    significant = bool(len(d) >= 2 and (low > tolerance or high < -tolerance))
    wins = int(np.sum(d > 0)) if higher_is_better else int(np.sum(d < 0))
    mean_b = float(np.mean(vb))
    relative = math.nan if mean_b == 0.0 else 1.0 - float(np.mean(va)) / mean_b
    return PairedComparison(
        seeds=seeds,
        a=va,
        b=vb,
        differences=d,
        mean_difference=float(np.mean(d)),
        ci_low=low,
        ci_high=high,
        significant=significant,
        wins=wins,
        ties=int(np.sum(d == 0)),
        relative_change=relative,
        higher_is_better=bool(higher_is_better),
        confidence=float(confidence),
        num_resamples=int(num_resamples),
        ci_method=method,
    )
