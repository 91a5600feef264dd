import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ballot_jax as bj
from ballot_jax import ballot
from ballot_jax.grads import GroupGrads
from ballot_jax.methods import Ballot
from ballot_jax.objectives import fairness_surrogate


def hand_made():
    """Four weights, two groups: group 1 (the minority) has the higher loss.

    w0: only the minority needs it (removing it raises L_1); w1: no group needs it (zero grads);
    w2: only the majority needs it; w3: both groups need it equally.
    """
    params = {"w": jnp.array([[1.0, 1.0, 1.0, 1.0]]), "b": jnp.zeros(1)}
    mask = bj.make_mask(params)
    # Δ_g = -w * g: a negative gradient means removing the weight raises the loss.
    grads = {
        "w": jnp.array([[[0.0, 0.0, -1.0, -1.0]], [[-1.0, 0.0, 0.0, -1.0]]]),  # [G=2, 1, 4]
        "b": jnp.zeros((2, 1)),
    }
    sq_grads = {k: jnp.square(v) for k, v in grads.items()}  # one batch: mean of squares = square
    gg = GroupGrads(grads, sq_grads, loss=jnp.array([0.2, 1.0]), accuracy=jnp.array([0.9, 0.6]))
    return params, mask, gg


def test_conflict_statistics_known_answers():
    params, mask, gg = hand_made()
    s = ballot.conflict_stats(params, mask, gg)
    # I_g = ½ w² g²: group 0 = [0, 0, .5, .5], group 1 = [.5, 0, 0, .5]; L - mean(L) = [-0.4, 0.4].
    np.testing.assert_allclose(s.accuracy_cost["w"][0], [0.25, 0.0, 0.25, 0.5])
    np.testing.assert_allclose(s.fairness_cost["w"][0], [0.2, 0.0, -0.2, 0.0], atol=1e-7)
    np.testing.assert_allclose(s.agreement["w"][0], [0.5, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(s.conflict["w"][0], [False, False, True, False])
    assert s.accuracy_cost["b"] is None


def test_one_batch_statistics_square_the_gradients_themselves():
    """``sq_grads=None`` (what one batch's pass returns) means ``grads ** 2``: the same statistics
    (exactly on these exactly representable values; in general up to the last bit, docs/method.md §5.1)."""
    params, mask, gg = hand_made()
    chex.assert_trees_all_equal(ballot.conflict_stats(params, mask, gg._replace(sq_grads=None)),
                                ballot.conflict_stats(params, mask, gg))
    # ... and the explicit mean of squares is read, not replaced by the square of the mean
    halved = gg._replace(sq_grads=jax.tree.map(lambda x: x / 2, gg.sq_grads))
    np.testing.assert_allclose(ballot.conflict_stats(params, mask, halved).accuracy_cost["w"][0],
                               [0.125, 0.0, 0.125, 0.25])


def test_score_keeps_minority_weight_over_unneeded_and_majority_only():
    params, mask, gg = hand_made()
    scores = ballot.scores(params, mask, ballot.conflict_stats(params, mask, gg))["w"][0]
    assert scores[0] > scores[1], "a weight only the minority needs beats an equally large unneeded one"
    assert scores[0] > scores[2], "removing the majority-only weight narrows the gap: prune it first"
    assert scores[3] > scores[1]
    new = ballot.prune(params, mask, gg, 0.5)
    np.testing.assert_array_equal(new["w"][0], [True, False, False, True])


def test_ablations():
    params, mask, gg = hand_made()
    stats = ballot.conflict_stats(params, mask, gg)
    magnitude_only = ballot.scores(
        params, mask, stats, ballot.BallotConfig(use_agreement=False, use_direction=False, strength=0.0)
    )
    np.testing.assert_allclose(magnitude_only["w"], jnp.abs(params["w"]))
    no_direction = ballot.scores(params, mask, stats, ballot.BallotConfig(use_direction=False))["w"][0]
    # Without the fairness effect the minority-only and majority-only weights tie.
    np.testing.assert_allclose(no_direction[0], no_direction[2])
    no_magnitude = ballot.scores({"w": params["w"] * 5, "b": params["b"]}, mask, stats,
                                 ballot.BallotConfig(use_magnitude=False))
    full = ballot.scores(params, mask, stats)
    np.testing.assert_allclose(no_magnitude["w"], full["w"], rtol=1e-6)


def test_pruned_weights_have_no_effect_and_are_never_revived():
    params, mask, gg = hand_made()
    mask = {"w": jnp.array([[False, True, True, True]]), "b": None}
    s = ballot.conflict_stats(params, mask, gg)
    assert float(s.accuracy_cost["w"][0, 0]) == 0.0
    new = ballot.prune(params, mask, gg, 0.34)
    assert not bool(new["w"][0, 0])
    assert int(bj.num_kept(new)) == 3 - round(0.34 * 3)


@pytest.mark.parametrize("bad", [-0.5, 1.0])
def test_bad_fraction(bad):
    params, mask, gg = hand_made()
    with pytest.raises(ValueError, match="fraction"):
        ballot.prune(params, mask, gg, bad)


# ------------------------------------------------------------------------------------------------
# Refined-training disparity D: NumPy reference


def _reference_loss_var(logits, y, groups):
    z = logits - logits.max(axis=1, keepdims=True)
    ce = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
    means = [ce[groups == g].mean() for g in np.unique(groups)]
    return float(np.var(means))  # population variance over the groups present


@pytest.mark.parametrize("seed", range(5))
def test_loss_variance_disparity_equals_numpy_reference(seed):
    rng = np.random.default_rng(seed)
    num_classes, num_groups, n = 3, 4, 40
    logits = rng.normal(size=(n, num_classes)).astype(np.float32)
    y = rng.integers(0, num_classes, n)
    group = rng.integers(0, num_groups - 1, n)  # the last group is absent: ignored, not a zero loss
    got = fairness_surrogate(jnp.asarray(logits), {"y": jnp.asarray(y), "group": jnp.asarray(group)}, num_groups, "loss_var")
    np.testing.assert_allclose(float(got), _reference_loss_var(logits.astype(np.float64), y, group), rtol=1e-5)



def _reference_soft_worst(logits, y, units, temperature):
    """NumPy Σ_u q_u L_u − mean CE over the units present (q = softmax(L / τ))."""
    z = logits - logits.max(axis=1, keepdims=True)
    ce = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
    means = np.array([ce[units == u].mean() for u in np.unique(units)])
    q = np.exp((means - means.max()) / temperature)
    return float((q / q.sum()) @ means - ce.mean())


def _reference_worst_cell(logits, y, groups, temperature):
    return _reference_soft_worst(logits, y, groups * logits.shape[1] + y, temperature)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 100.0])
@pytest.mark.parametrize("seed", range(3))
def test_worst_cell_disparity_equals_numpy_reference(seed, temperature):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(50, 3)).astype(np.float32)
    y, group = rng.integers(0, 3, 50), rng.integers(0, 2, 50)  # group 2 of 3 absent
    got = fairness_surrogate(jnp.asarray(logits), {"y": jnp.asarray(y), "group": jnp.asarray(group)}, 3, "worst_cell", temperature)
    np.testing.assert_allclose(float(got), _reference_worst_cell(logits.astype(np.float64), y, group, temperature), rtol=1e-4, atol=1e-6)


def _gradient_scale(disparity, logits, batch):
    """Per example: |∂(CE + 0.5·D)/∂logits| / |∂CE/∂logits| (binary task, 2 groups), and whether
    every gradient kept its sign (no example is pushed the wrong way)."""
    plain = jax.grad(Ballot(disparity_weight=0.0).retrain_objective(2, 2))(logits, batch)
    fair = jax.grad(Ballot(disparity=disparity, disparity_weight=0.5).retrain_objective(2, 2))(logits, batch)
    return np.linalg.norm(fair, axis=1) / np.linalg.norm(plain, axis=1), bool(np.all(np.sign(fair) == np.sign(plain)))


def test_worst_cell_objective_only_adds_weight_to_the_hard_cell():
    # cells (group 0, y 0) and (group 1, y 0) are learnt; (group 1, y 1) is not
    logits = jnp.array([[2.0, 0.0], [2.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    batch = {"y": jnp.array([0, 0, 0, 1]), "group": jnp.array([0, 0, 1, 1])}
    scale, same_signs = _gradient_scale("worst_cell", logits, batch)
    assert scale[3] > 1.5  # the hard cell's example gets more weight ...
    assert np.all(scale[:3] > 0.4) and np.all(scale[:3] < 1.0)  # ... the others less, never a negative weight
    assert same_signs
    with pytest.raises(ValueError, match="surrogate"):
        Ballot(disparity="variance").retrain_objective(2, 2)
    with pytest.raises(ValueError, match="temperature"):
        Ballot(disparity="worst_cell", disparity_temperature=0.0).retrain_objective(2, 2)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 100.0])
@pytest.mark.parametrize("seed", range(3))
def test_worst_group_disparity_equals_numpy_reference(seed, temperature):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(50, 3)).astype(np.float32)
    y, group = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    group[group == 1] = 3  # group 1 of 4 absent: ignored
    got = fairness_surrogate(jnp.asarray(logits), {"y": jnp.asarray(y), "group": jnp.asarray(group)}, 4, "worst_group", temperature)
    np.testing.assert_allclose(float(got), _reference_soft_worst(logits.astype(np.float64), y, group, temperature), rtol=1e-4, atol=1e-6)
    # groups = classes: one cell per group, so worst_group is worst_cell
    same = {"y": jnp.asarray(y), "group": jnp.asarray(y)}
    np.testing.assert_allclose(float(fairness_surrogate(jnp.asarray(logits), same, 3, "worst_group", temperature)),
                               float(fairness_surrogate(jnp.asarray(logits), same, 3, "worst_cell", temperature)), rtol=1e-6)


def test_worst_group_reweights_the_worse_group_as_a_whole():
    # group 1 has the higher mean loss (its y=1 example is wrong); both its examples gain weight,
    # group 0's lose weight -- worst_cell would only up-weight the one wrong cell.
    logits = jnp.array([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0], [0.0, 0.0]])
    batch = {"y": jnp.array([0, 1, 0, 1]), "group": jnp.array([0, 0, 1, 1])}
    scale, same_signs = _gradient_scale("worst_group", logits, batch)
    assert scale[2] > 1.0 and scale[3] > 1.0
    assert scale[0] < 1.0 and scale[1] < 1.0 and same_signs
