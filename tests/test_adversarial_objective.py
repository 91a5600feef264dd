"""Ballot's adversarial refined training (``disparity="adversary"``, ``methods.adversary.adversarial_objective``):
the same numbers as SafeCompress's min-max step, on 1, 2 and 4 devices, resumable, and Ballot's options."""

import chex
import jax
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.mesh import data_mesh, replicate
from ballot_jax.engine.steps import mean_cross_entropy
from ballot_jax.methods import Ballot
from ballot_jax.methods import minmax
from ballot_jax.methods.adversary import adversarial_objective, adversary_loss, init_adversary
from ballot_jax.objectives import StatefulObjective, group_balanced_mean
from engine_fixtures import mlp_model, toy_dataset

CFG = TrainConfig(steps=40, batch_size=16, learning_rate=0.1, rewind_step=4, checkpoint_every=10)


def _task(num_devices=1):
    return Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:num_devices]))


def test_it_is_safecompress_min_max_step_for_a_model_without_batch_norm():
    """The MLP's train- and eval-mode outputs agree, so the objective (one forward pass) must train what
    ``make_minmax_step`` (the adversary on a second, eval-mode pass) trains, adversary included."""
    t = _task()
    objective = adversarial_objective(2, 2, 0.5)
    start = init_state(t, CFG)
    ours = Trainer(t).train(start, CFG, 12, data_seed=0, objective=objective)

    adversary, adversary_opt = objective.init()
    reference = init_adversary(jax.random.PRNGKey(0), 2, 2, "label_relative")
    chex.assert_trees_all_equal(adversary, reference)
    safe = replicate(minmax.SafeState(start, adversary, adversary_opt), t.mesh)
    trainer = minmax.AdversarialTrainer(t, minmax=True, weight=0.5, kind="label_relative",
                                        adversary_tx=optax.adam(1e-3))
    theirs = trainer.train(safe, CFG, 12, data_seed=0)
    chex.assert_trees_all_close(jax.device_get(ours.params), jax.device_get(theirs.params), atol=1e-6, rtol=1e-5)
    plain = Trainer(t).train(start, CFG, 12, data_seed=0)
    assert not np.allclose(ours.params["hidden"]["kernel"], plain.params["hidden"]["kernel"], atol=1e-6)


@pytest.mark.parametrize("balance", ["examples", "groups"])
def test_it_trains_the_same_on_1_2_4_devices(balance):
    objective = adversarial_objective(2, 2, 1.0, balance=balance)
    results = []
    for n in (1, 2, 4):
        t = _task(n)
        results.append(jax.device_get(Trainer(t).train(init_state(t, CFG), CFG, 10, data_seed=0,
                                                       objective=objective).params))
    for other in results[1:]:
        chex.assert_trees_all_close(results[0], other, atol=1e-5, rtol=1e-5)


def test_a_phase_resumes_from_its_checkpoint_with_the_adversary(tmp_path):
    t = _task()
    objective = adversarial_objective(2, 2, 1.0)
    start = init_state(t, CFG)
    whole = Trainer(t).train(start, CFG, 20, data_seed=0, objective=objective)
    Trainer(t).train(start, CFG, 11, data_seed=0, objective=objective, ckpt_dir=tmp_path / "ckpt")
    resumed = Trainer(t).train(start, CFG, 20, data_seed=0, objective=objective, ckpt_dir=tmp_path / "ckpt")
    chex.assert_trees_all_equal(jax.device_get(resumed.params), jax.device_get(whole.params))


def test_ballot_adversary_options(tmp_path):
    assert isinstance(Ballot(disparity="adversary").retrain_objective(2, 2), StatefulObjective)
    assert Ballot(disparity="adversary").retrain_objective(2, 2, weight=0.0) is mean_cross_entropy
    with pytest.raises(ValueError, match="disparity_decay < 1 needs"):
        Ballot(disparity="adversary", disparity_decay=0.5).retrain_objective(2, 2)
    with pytest.raises(ValueError, match="must be >= 0"):
        Ballot(disparity="adversary").retrain_objective(2, 2, weight=-1.0)
    with pytest.raises(ValueError, match="adversary input"):
        adversarial_objective(2, 2, 1.0, kind="labels")
    with pytest.raises(ValueError, match="adversary_balance must be one of"):
        Ballot(disparity="adversary", adversary_balance="classes").retrain_objective(2, 2)
    with pytest.raises(ValueError, match="adversary balance must be one of"):
        adversarial_objective(2, 2, 1.0, balance="classes")
    one_shot = dict(fraction=0.5, selection="magnitude", pruning="one_shot", disparity_weights=(0.0, 1.0))
    dense = tmp_path / "dense"
    runs = {d: Ballot(**one_shot, disparity=d).run(_task(), CFG, 0.75, tmp_path / d, dense_dir=dense)
            for d in ("worst_cell", "adversary")}
    assert runs["worst_cell"]["search"]["0"] == runs["adversary"]["search"]["0"]  # μ = 0: cross-entropy alone
    assert runs["worst_cell"]["search"]["1"] != runs["adversary"]["search"]["1"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(-10, 10)), min_size=1, max_size=24))
def test_group_balanced_mean_is_the_mean_of_the_groups_means(pairs):
    groups = np.array([g for g, _ in pairs], np.int32)
    values = np.array([v for _, v in pairs], np.float32)
    means = [values[groups == g].mean(dtype=np.float64) for g in np.unique(groups)]
    got = float(group_balanced_mean(values, groups, 4))
    assert got == pytest.approx(np.mean(means), rel=1e-5, abs=1e-4)


def test_group_balanced_adversary_loss_weighs_each_group_the_same():
    """Against a NumPy reference on a batch of 6 examples of group 0 and 2 of group 1: "groups" is the
    mean of the two groups' mean cross-entropies, "examples" the mean over the 8 examples."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 3)).astype(np.float32)
    batch = {"y": rng.integers(0, 3, 8).astype(np.int32), "group": np.array([0] * 6 + [1] * 2, np.int32)}
    params = init_adversary(jax.random.PRNGKey(1), 3, 2, "label_relative", init_std=0.3)
    ce_examples, accuracy = adversary_loss(params, logits, batch, "label_relative")
    ce_groups, accuracy_groups = adversary_loss(params, logits, batch, "label_relative", balance="groups")
    # the per-example cross-entropies, recovered from the two documented means of any weighting
    each = []
    for i in range(8):
        one = {"y": batch["y"][i:i + 1], "group": batch["group"][i:i + 1]}
        each.append(float(adversary_loss(params, logits[i:i + 1], one, "label_relative")[0]))
    each = np.array(each)
    assert float(ce_examples) == pytest.approx(each.mean(), rel=1e-5)
    assert float(ce_groups) == pytest.approx((each[:6].mean() + each[6:].mean()) / 2, rel=1e-5)
    assert float(ce_groups) != pytest.approx(float(ce_examples), rel=1e-3)
    assert float(accuracy) == float(accuracy_groups)


def test_ballot_group_balanced_adversary_trains_differently_on_imbalanced_groups(tmp_path):
    """The toy set's minority group is 25 %: weighing the groups the same changes the μ > 0 candidate."""
    one_shot = dict(fraction=0.5, selection="magnitude", pruning="one_shot", disparity_weights=(0.0, 1.0))
    dense = tmp_path / "dense"
    runs = {b: Ballot(**one_shot, adversary_balance=b).run(_task(), CFG, 0.75, tmp_path / b, dense_dir=dense)
            for b in ("examples", "groups")}
    assert runs["examples"]["search"]["0"] == runs["groups"]["search"]["0"]
    assert runs["examples"]["search"]["1"] != runs["groups"]["search"]["1"]
