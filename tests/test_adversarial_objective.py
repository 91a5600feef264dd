"""Ballot's adversarial refined training (``disparity="adversary"``, ``methods.adversary.adversarial_objective``):
the same numbers as SafeCompress's min-max step, on 1, 2 and 4 devices, resumable, and Ballot's options."""

import chex
import jax
import numpy as np
import optax
import pytest

from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.mesh import data_mesh, replicate
from ballot_jax.engine.steps import mean_cross_entropy
from ballot_jax.methods import Ballot
from ballot_jax.methods import minmax
from ballot_jax.methods.adversary import adversarial_objective, init_adversary
from ballot_jax.objectives import StatefulObjective
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


def test_it_trains_the_same_on_1_2_4_devices():
    objective = adversarial_objective(2, 2, 1.0)
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
    one_shot = dict(fraction=0.5, selection="magnitude", pruning="one_shot", disparity_weights=(0.0, 1.0))
    dense = tmp_path / "dense"
    runs = {d: Ballot(**one_shot, disparity=d).run(_task(), CFG, 0.75, tmp_path / d, dense_dir=dense)
            for d in ("worst_cell", "adversary")}
    assert runs["worst_cell"]["search"]["0"] == runs["adversary"]["search"]["0"]  # μ = 0: cross-entropy alone
    assert runs["worst_cell"]["search"]["1"] != runs["adversary"]["search"]["1"]
