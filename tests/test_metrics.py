"""Tests for ballot_jax.metrics against an independent plain-NumPy reference."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballot_jax import metrics as M

TOL = 1e-6
SETTINGS = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

BINARY_KEYS = (
    "demographic_parity_difference",
    "equal_opportunity_difference",
    "equalized_odds_difference",
)
COMMON_KEYS = ("accuracy", "cwv", "mcd", "worst_group_accuracy", "num_empty_groups")


# --------------------------------------------------------------------------------------------------
# independent reference (loops, float64)


def ref_confusion(y, p, g, G, C):
    conf = np.zeros((G, C, C), np.int64)
    for yi, pi, gi in zip(y, p, g):
        conf[gi, yi, pi] += 1
    return conf


def _spread(values):
    return float(max(values) - min(values)) if values else 0.0


def ref_metrics(y, p, g, G, C):
    y, p, g = (np.asarray(a, np.int64) for a in (y, p, g))
    accs, per_group = [], np.zeros(G)
    sel, tpr, fpr = [], [], []
    for k in range(G):
        m = g == k
        if m.sum() == 0:
            continue
        a = float(np.mean(y[m] == p[m]))
        accs.append(a)
        per_group[k] = a
        if C == 2:
            sel.append(float(np.mean(p[m] == 1)))
            pos, neg = m & (y == 1), m & (y == 0)
            if pos.sum():
                tpr.append(float(np.mean(p[pos] == 1)))
            if neg.sum():
                fpr.append(float(np.mean(p[neg] == 1)))
    out = {
        "accuracy": float(np.mean(y == p)) if len(y) else 0.0,
        "cwv": float(np.var(accs, ddof=0)) if accs else 0.0,
        "mcd": _spread(accs),
        "worst_group_accuracy": float(min(accs)) if accs else 0.0,
        "num_empty_groups": G - len(accs),
        "per_group_accuracy": per_group,
    }
    if C == 2:
        out["demographic_parity_difference"] = _spread(sel)
        out["equal_opportunity_difference"] = _spread(tpr)
        out["equalized_odds_difference"] = max(_spread(tpr), _spread(fpr))
    return out


# --------------------------------------------------------------------------------------------------
# random cases, with empty groups and groups lacking positives / negatives


@st.composite
def cases(draw, binary=False, min_n=1):
    G = draw(st.integers(1, 6))
    C = 2 if binary else draw(st.integers(2, 5))
    n = draw(st.integers(min_n, 200))
    used = draw(st.lists(st.integers(0, G - 1), min_size=1, max_size=G, unique=True))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    g = rng.choice(np.array(used), size=n).astype(np.int32)
    # per-group label skew (so some groups have only one class) and per-group accuracy
    p_pos = rng.choice([0.0, 1.0, rng.uniform(), rng.uniform()], size=G)
    p_correct = rng.uniform(size=G)
    if C == 2:
        y = (rng.uniform(size=n) < p_pos[g]).astype(np.int32)
    else:
        y = rng.integers(0, C, size=n).astype(np.int32)
    other = (y + rng.integers(1, C, size=n)) % C
    p = np.where(rng.uniform(size=n) < p_correct[g], y, other).astype(np.int32)
    return y, p, g, G, C


def _assert_close(got, want, name):
    got = np.asarray(got)
    assert not np.any(np.isnan(got)), name
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0, err_msg=name)


def _assert_metrics(got, ref, C):
    keys = COMMON_KEYS + (BINARY_KEYS if C == 2 else ())
    assert set(got) >= set(keys)
    if C != 2:
        assert not set(BINARY_KEYS) & set(got)
    for k in keys:
        _assert_close(got[k], ref[k], k)
    assert got["num_empty_groups"].dtype == jnp.int32
    for k in keys:
        if k != "num_empty_groups":
            assert got[k].dtype == jnp.float32 and got[k].shape == (), k


# --------------------------------------------------------------------------------------------------
# property tests


@SETTINGS
@given(cases())
def test_matches_reference(case):
    y, p, g, G, C = case
    ref = ref_metrics(y, p, g, G, C)
    conf = M.group_confusion(y, p, g, G, C)
    assert conf.dtype == jnp.int32 and conf.shape == (G, C, C)
    np.testing.assert_array_equal(conf, ref_confusion(y, p, g, G, C))

    report = M.fairness_report(y, p, g, G, C)
    _assert_metrics(report, ref, C)
    _assert_close(report["per_group_accuracy"], ref["per_group_accuracy"], "per_group")

    ga = M.accuracy_by_group(y, p, g, G)
    _assert_close(ga.accuracy, ref["per_group_accuracy"], "accuracy_by_group")
    np.testing.assert_array_equal(ga.count, np.bincount(g, minlength=G))
    np.testing.assert_array_equal(ga.present, np.bincount(g, minlength=G) > 0)
    assert ga.count.dtype == jnp.int32 and ga.present.dtype == jnp.bool_
    ga2 = M.accuracy_from_confusion(conf)
    for a, b in zip(ga, ga2):
        np.testing.assert_allclose(a, b, atol=TOL)

    _assert_close(M.group_wise_variance(y, p, g, G), ref["cwv"], "cwv")
    _assert_close(M.max_group_discrepancy(y, p, g, G), ref["mcd"], "mcd")
    _assert_close(M.worst_group_accuracy(y, p, g, G), ref["worst_group_accuracy"], "worst")


@SETTINGS
@given(cases(binary=True))
def test_binary_matches_reference(case):
    y, p, g, G, C = case
    ref = ref_metrics(y, p, g, G, C)
    _assert_metrics(M.metrics_from_confusion(M.group_confusion(y, p, g, G, C)), ref, C)
    fns = {
        "demographic_parity_difference": M.demographic_parity_difference,
        "equal_opportunity_difference": M.equal_opportunity_difference,
        "equalized_odds_difference": M.equalized_odds_difference,
    }
    for name, fn in fns.items():
        _assert_close(fn(y, p, sensitive_features=g, num_groups=G), ref[name], name)
        # inferred num_groups (= max id + 1) gives the same value: empty groups are excluded
        _assert_close(fn(y, p, sensitive_features=g), ref[name], name + " inferred")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.booleans())
def test_jit_matches_eager(case, use_binary):
    y, p, g, G, C = case
    if use_binary:
        y, p, C = y % 2, p % 2, 2
    with jax.disable_jit():
        eager = M.fairness_report(y, p, g, G, C)
        eager_cwv = M.group_wise_variance(y, p, g, G)
        eager_ga = M.accuracy_by_group(y, p, g, G)
    jit_report = jax.jit(M.fairness_report, static_argnums=(3, 4))
    jitted = jit_report(jnp.asarray(y), jnp.asarray(p), jnp.asarray(g), G, C)
    assert set(eager) == set(jitted)
    for k in eager:
        np.testing.assert_allclose(eager[k], jitted[k], atol=TOL, err_msg=k)
    jit_cwv = jax.jit(M.group_wise_variance, static_argnames="num_groups")
    np.testing.assert_allclose(eager_cwv, jit_cwv(y, p, g, num_groups=G), atol=TOL)
    jit_ga = jax.jit(M.accuracy_by_group, static_argnums=3)(y, p, g, G)
    for a, b in zip(eager_ga, jit_ga):
        np.testing.assert_allclose(a, b, atol=TOL)
    if use_binary:
        f = jax.jit(M.equalized_odds_difference, static_argnames="num_groups")
        with jax.disable_jit():
            e = M.equalized_odds_difference(y, p, sensitive_features=g, num_groups=G)
        np.testing.assert_allclose(e, f(y, p, sensitive_features=g, num_groups=G), atol=TOL)


@SETTINGS
@given(cases(min_n=2), st.data())
def test_confusion_is_additive(case, data):
    y, p, g, G, C = case
    k = data.draw(st.integers(0, len(y)))
    whole = M.group_confusion(y, p, g, G, C)
    parts = M.group_confusion(y[:k], p[:k], g[:k], G, C) + M.group_confusion(
        y[k:], p[k:], g[k:], G, C
    )
    np.testing.assert_array_equal(whole, parts)
    ref = ref_metrics(y, p, g, G, C)
    _assert_metrics(M.metrics_from_confusion(parts), ref, C)


# --------------------------------------------------------------------------------------------------
# hand-computed examples

# 12 examples, 3 groups (label 1 = positive):
#   group 0: y = [1,1,0,0,0] p = [1,0,1,0,0]  TP=1 FN=1 FP=1 TN=2  sel=2/5 TPR=1/2 FPR=1/3 acc=3/5
#   group 1: y = [1,1,1,0,0] p = [1,1,1,1,0]  TP=3 FN=0 FP=1 TN=1  sel=4/5 TPR=1   FPR=1/2 acc=4/5
#   group 2: y = [0,0]       p = [1,1]        no positives  FP=2 TN=0  sel=1  TPR=-- FPR=1   acc=0
#   DP  = max sel - min sel = 1 - 2/5           = 3/5
#   EO  = TPR over groups 0,1 = 1 - 1/2         = 1/2   (group 2 excluded; fairlearn's 0 would give 1)
#   FPR diff = 1 - 1/3 = 2/3;  EOD = max(1/2, 2/3) = 2/3
#   accuracy = 7/12; per-group acc 3/5, 4/5, 0: mean 7/15, CWV = (4 + 25 + 49)/225/3 = 26/225
#   MCD = 4/5, worst = 0
HAND_Y = np.array([1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
HAND_P = np.array([1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 1, 1])
HAND_G = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2])
HAND_EXPECTED = {
    "accuracy": 7 / 12,
    "cwv": 26 / 225,
    "mcd": 4 / 5,
    "worst_group_accuracy": 0.0,
    "num_empty_groups": 0,
    "demographic_parity_difference": 3 / 5,
    "equal_opportunity_difference": 1 / 2,
    "equalized_odds_difference": 2 / 3,
}


def test_hand_example():
    got = M.fairness_report(HAND_Y, HAND_P, HAND_G, 3, 2)
    for k, v in HAND_EXPECTED.items():
        _assert_close(got[k], v, k)
    _assert_close(got["per_group_accuracy"], [3 / 5, 4 / 5, 0.0], "per_group")
    kw = dict(sensitive_features=HAND_G)
    _assert_close(M.demographic_parity_difference(HAND_Y, HAND_P, **kw), 3 / 5, "dp")
    _assert_close(M.equal_opportunity_difference(HAND_Y, HAND_P, **kw), 1 / 2, "eo")
    _assert_close(M.equalized_odds_difference(HAND_Y, HAND_P, **kw), 2 / 3, "eod")


def test_hand_example_eo_dominated_by_tpr():
    # 10 examples, 2 groups:
    #   group 0: y=[1,1,0,0,0] p=[1,0,1,0,0]  sel=2/5 TPR=1/2 FPR=1/3
    #   group 1: y=[1,1,1,0,0] p=[1,1,1,1,0]  sel=4/5 TPR=1   FPR=1/2
    #   DP = 2/5, EO = 1/2, FPR diff = 1/6, EOD = max(1/2, 1/6) = 1/2
    y, p, g = HAND_Y[:10], HAND_P[:10], HAND_G[:10]
    kw = dict(sensitive_features=g, num_groups=2)
    _assert_close(M.demographic_parity_difference(y, p, **kw), 2 / 5, "dp")
    _assert_close(M.equal_opportunity_difference(y, p, **kw), 1 / 2, "eo")
    _assert_close(M.equalized_odds_difference(y, p, **kw), 1 / 2, "eod")


def test_hand_example_with_empty_group():
    # same data, num_groups=5: groups 3 and 4 are empty -> excluded, counted, no NaN
    got = M.fairness_report(HAND_Y, HAND_P, HAND_G, 5, 2)
    for k, v in HAND_EXPECTED.items():
        want = 2 if k == "num_empty_groups" else v
        _assert_close(got[k], want, k)
    _assert_close(got["per_group_accuracy"], [3 / 5, 4 / 5, 0.0, 0.0, 0.0], "per_group")
    ga = M.accuracy_by_group(HAND_Y, HAND_P, HAND_G, 5)
    np.testing.assert_array_equal(ga.count, [5, 5, 2, 0, 0])
    np.testing.assert_array_equal(ga.present, [True, True, True, False, False])


def test_empty_group_excluded_multiclass():
    # group 1 absent; group 0 acc 1/2, group 2 acc 1 -> CWV = 1/16, MCD = 1/2, worst = 1/2
    y = np.array([0, 1, 2, 2])
    p = np.array([0, 2, 2, 2])
    g = np.array([0, 0, 2, 2])
    got = M.fairness_report(y, p, g, 3, 3)
    _assert_close(got["cwv"], 1 / 16, "cwv")
    _assert_close(got["mcd"], 1 / 2, "mcd")
    _assert_close(got["worst_group_accuracy"], 1 / 2, "worst")
    assert int(got["num_empty_groups"]) == 1
    assert not set(BINARY_KEYS) & set(got)


def test_no_examples_at_all_gives_zeros_not_nan():
    e = np.zeros((0,), np.int32)
    got = M.fairness_report(e, e, e, 3, 2)
    for k, v in got.items():
        assert not np.any(np.isnan(np.asarray(v))), k
    assert int(got["num_empty_groups"]) == 3
    for k in ("accuracy", "cwv", "mcd", "worst_group_accuracy") + BINARY_KEYS:
        assert float(got[k]) == 0.0, k


def test_single_group_differences_are_zero():
    y = np.array([1, 0, 1, 1])
    p = np.array([1, 1, 0, 1])
    g = np.zeros(4, np.int32)
    got = M.fairness_report(y, p, g, 1, 2)
    for k in ("cwv", "mcd") + BINARY_KEYS:
        assert float(got[k]) == 0.0, k
    _assert_close(got["worst_group_accuracy"], 0.5, "worst")


def test_accepts_bool_and_whole_float_inputs():
    y = HAND_Y.astype(bool)
    p = HAND_P.astype(np.float64)
    got = M.equalized_odds_difference(y, p, sensitive_features=HAND_G.astype(np.float32))
    _assert_close(got, 2 / 3, "eod")


def test_out_of_range_dropped_under_jit():
    # documented: under jit values cannot be checked; bad examples are dropped
    y = jnp.array([0, 1, 5, 1])
    p = jnp.array([0, 1, 1, 1])
    g = jnp.array([0, 1, 1, 7])
    conf = jax.jit(M.group_confusion, static_argnums=(3, 4))(y, p, g, 2, 2)
    np.testing.assert_array_equal(conf, ref_confusion([0, 1], [0, 1], [0, 1], 2, 2))


def test_fairness_improvement():
    assert M.fairness_improvement(0.05, 0.1) == pytest.approx(0.5)
    assert M.fairness_improvement(jnp.float32(0.2), 0.1) == pytest.approx(-1.0)
    assert math.isnan(M.fairness_improvement(0.1, 0.0))
    assert math.isnan(M.fairness_improvement(0.0, 0.0))


# --------------------------------------------------------------------------------------------------
# validation errors


def test_error_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        M.group_confusion(HAND_Y, HAND_P[:-1], HAND_G, 3, 2)
    with pytest.raises(ValueError, match="same length"):
        M.accuracy_by_group(HAND_Y, HAND_P, HAND_G[:-1], 3)
    with pytest.raises(ValueError, match="same length"):
        M.demographic_parity_difference(HAND_Y, HAND_P, sensitive_features=HAND_G[:3])
    # static check also fires under jit
    f = jax.jit(M.fairness_report, static_argnums=(3, 4))
    with pytest.raises(ValueError, match="same length"):
        f(jnp.asarray(HAND_Y[:-2]), jnp.asarray(HAND_P), jnp.asarray(HAND_G), 3, 2)


def test_error_group_out_of_range():
    with pytest.raises(ValueError, match=r"groups contains value\(s\) \[3\] outside \[0, num_groups=3\)"):
        M.group_confusion(HAND_Y, HAND_P, np.where(HAND_G == 2, 3, HAND_G), 3, 2)
    with pytest.raises(ValueError, match="outside"):
        M.worst_group_accuracy(HAND_Y, HAND_P, HAND_G - 1, 3)
    with pytest.raises(ValueError, match="sensitive_features"):
        M.equal_opportunity_difference(HAND_Y, HAND_P, sensitive_features=HAND_G, num_groups=2)
    with pytest.raises(ValueError, match="negative"):
        M.equal_opportunity_difference(HAND_Y, HAND_P, sensitive_features=HAND_G - 1)


def test_error_label_out_of_range():
    with pytest.raises(ValueError, match=r"y_true .*num_classes=2"):
        M.group_confusion(HAND_Y * 2, HAND_P, HAND_G, 3, 2)
    with pytest.raises(ValueError, match=r"y_pred .*num_classes=2"):
        M.fairness_report(HAND_Y, -HAND_P, HAND_G, 3, 2)


def test_error_num_groups():
    with pytest.raises(ValueError, match="num_groups must be >= 1"):
        M.group_confusion(HAND_Y, HAND_P, HAND_G, 0, 2)
    with pytest.raises(ValueError, match="num_groups must be >= 1"):
        M.group_wise_variance(HAND_Y, HAND_P, HAND_G, -1)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        M.group_confusion(HAND_Y, HAND_P, HAND_G, 3, 0)
    with pytest.raises(ValueError, match="static"):
        jax.jit(M.group_wise_variance)(HAND_Y, HAND_P, HAND_G, 3)
    with pytest.raises(ValueError, match="num_groups must be given"):
        jax.jit(lambda y, p, g: M.demographic_parity_difference(y, p, sensitive_features=g))(
            HAND_Y, HAND_P, HAND_G
        )
    with pytest.raises(ValueError, match="infer num_groups"):
        e = np.zeros((0,), np.int32)
        M.demographic_parity_difference(e, e, sensitive_features=e)


def test_error_binary_metric_with_multiclass_labels():
    y = np.array([0, 1, 2, 1])
    p = np.array([0, 1, 1, 1])
    g = np.array([0, 0, 1, 1])
    for fn in (
        M.demographic_parity_difference,
        M.equal_opportunity_difference,
        M.equalized_odds_difference,
    ):
        with pytest.raises(ValueError, match=r"binary targets only: y_true .*\[2\]"):
            fn(y, p, sensitive_features=g)
        with pytest.raises(ValueError, match=r"binary targets only: y_pred"):
            fn(p, y, sensitive_features=g)


def test_error_non_integer_inputs():
    with pytest.raises(ValueError, match="non-integer float"):
        M.group_confusion(HAND_Y, HAND_P * 0.5, HAND_G, 3, 2)
    with pytest.raises(ValueError, match="float32"):
        jax.jit(M.group_confusion, static_argnums=(3, 4))(
            jnp.asarray(HAND_Y, jnp.float32), HAND_P, HAND_G, 3, 2
        )
    with pytest.raises(ValueError, match="np.unique"):
        M.demographic_parity_difference(
            HAND_Y, HAND_P, sensitive_features=np.array(["a"] * 6 + ["b"] * 6)
        )


def test_error_bad_confusion():
    with pytest.raises(ValueError, match=r"\[G, C, C\]"):
        M.metrics_from_confusion(np.zeros((3, 2, 3), np.int32))
    with pytest.raises(ValueError, match=r"\[G, C, C\]"):
        M.accuracy_from_confusion(np.zeros((2, 2), np.int32))
    with pytest.raises(ValueError, match="integer counts"):
        M.metrics_from_confusion(np.zeros((3, 2, 2), np.float32))


# --------------------------------------------------------------------------------------------------
# the Ballot authors' CWV: deviation of the group accuracies from the OVERALL accuracy


def ref_cwv_overall(y, p, g, G):
    """sum_{g present} (a_g - overall accuracy)^2 / #present, in float64 loops; 0 without examples."""
    y, p, g = (np.asarray(a, np.int64) for a in (y, p, g))
    if len(y) == 0:
        return 0.0
    overall = float(np.mean(y == p))
    devs = [(float(np.mean(y[g == k] == p[g == k])) - overall) ** 2 for k in range(G) if np.any(g == k)]
    return float(sum(devs) / len(devs))


@SETTINGS
@given(cases())
def test_cwv_overall_matches_reference(case):
    y, p, g, G, C = case
    want = ref_cwv_overall(y, p, g, G)
    report = M.fairness_report(y, p, g, G, C)
    _assert_close(report["cwv_overall"], want, "fairness_report cwv_overall")
    assert report["cwv_overall"].dtype == jnp.float32 and report["cwv_overall"].shape == ()
    conf = M.group_confusion(y, p, g, G, C)
    _assert_close(M.metrics_from_confusion(conf)["cwv_overall"], want, "metrics_from_confusion")
    _assert_close(M.group_wise_variance_overall(y, p, g, G), want, "group_wise_variance_overall")
    jitted = jax.jit(M.group_wise_variance_overall, static_argnames="num_groups")
    _assert_close(jitted(jnp.asarray(y), jnp.asarray(p), jnp.asarray(g), num_groups=G), want, "jit")
    # cwv_overall = cwv + (mean group accuracy - overall accuracy)^2 >= cwv
    ref = ref_metrics(y, p, g, G, C)
    accs = ref["per_group_accuracy"][np.bincount(g, minlength=G) > 0]
    _assert_close(report["cwv_overall"], ref["cwv"] + (accs.mean() - ref["accuracy"]) ** 2, "identity")


def test_cwv_overall_hand_example_differs_from_cwv():
    # group 0: 3 examples, all right (a=1); group 1: 1 example, wrong (a=0); group 2 empty.
    # overall accuracy 3/4; cwv (around the mean 1/2) = 1/4;
    # cwv_overall = ((1 - 3/4)^2 + (0 - 3/4)^2) / 2 = (1/16 + 9/16) / 2 = 5/16.
    y = np.array([0, 1, 2, 0])
    p = np.array([0, 1, 2, 1])
    g = np.array([0, 0, 0, 1])
    got = M.fairness_report(y, p, g, 3, 3)
    _assert_close(got["accuracy"], 3 / 4, "accuracy")
    _assert_close(got["cwv"], 1 / 4, "cwv")
    _assert_close(got["cwv_overall"], 5 / 16, "cwv_overall")
    _assert_close(M.group_wise_variance_overall(y, p, g, 3), 5 / 16, "function")
    # equally large groups: overall accuracy = mean group accuracy, so both CWVs agree (1/4 here)
    y2, p2, g2 = np.array([0, 0, 1, 1]), np.array([0, 0, 0, 0]), np.array([0, 0, 1, 1])
    got2 = M.fairness_report(y2, p2, g2, 2, 2)
    _assert_close(got2["cwv_overall"], got2["cwv"], "equal sizes")
    _assert_close(got2["cwv_overall"], 1 / 4, "equal sizes value")


def test_cwv_overall_empty_inputs_and_single_group():
    e = np.zeros((0,), np.int32)
    got = M.fairness_report(e, e, e, 3, 2)
    assert float(got["cwv_overall"]) == 0.0
    assert float(M.group_wise_variance_overall(e, e, e, 3)) == 0.0
    y, p, g = np.array([1, 0, 1, 1]), np.array([1, 1, 0, 1]), np.zeros(4, np.int32)
    assert float(M.fairness_report(y, p, g, 1, 2)["cwv_overall"]) == 0.0
    with pytest.raises(ValueError, match="group_wise_variance_overall: groups"):
        M.group_wise_variance_overall(y, p, g + 3, 2)
