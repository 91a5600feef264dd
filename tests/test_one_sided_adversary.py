"""The one-sided adversary term (``adversarial_objective(one_sided=True)``, ``Ballot(adversary_reach="below_mean")``,
session 32's C19): the model's gradient of the term reaches only the marked examples' logits, the value is the
default's, the marks are the μ = 0 ticket's groups below the mean, and the method runs, resumes and is checked."""

import chex
import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from ballot_jax.distillation import group_anchor_weights
from ballot_jax.engine import checkpoints
from ballot_jax.engine.levels import level_dir
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.mesh import DATA_AXIS, data_mesh
from ballot_jax.engine.phases import finished_phase
from ballot_jax.engine.steps import mean_cross_entropy
from ballot_jax.methods import Ballot
from ballot_jax.methods.adversary import REACH_KEY, adversarial_objective, init_adversary
from engine_fixtures import mlp_model, toy_dataset

CFG = TrainConfig(steps=40, batch_size=16, learning_rate=0.1, rewind_step=4, checkpoint_every=10)
ITERATIVE = dict(fraction=0.5, pruning="iterative", rewind=True, selection="magnitude", disparity_weights=(0.0, 1.0))


def _task(devices: int = 1):
    return Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:devices]))


def _logit_grads(objective, logits, batch, carry):
    """d loss / d logits and the loss of ``objective.apply`` on a global batch, inside a jitted 1-device shard_map
    (as the engine's step calls it; an eager shard_map compiles every primitive on its own: 50 s for the test
    below instead of 5)."""
    def local(z, b):
        loss, grads = jax.value_and_grad(lambda z: objective.apply(z, b, carry)[0])(z)
        return loss[None], grads

    mesh = data_mesh(jax.devices()[:1])
    loss, grads = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=(P(DATA_AXIS), P(DATA_AXIS)),
                                        out_specs=(P(DATA_AXIS), P(DATA_AXIS))))(logits, batch)
    return float(loss[0]), np.asarray(grads)


def test_the_term_reaches_only_the_marked_examples():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 3)).astype(np.float32)
    reach = np.array([1] * 5 + [0] * 3, np.float32)
    batch = {"y": rng.integers(0, 3, 8).astype(np.int32), "group": np.array([1] * 5 + [0] * 3, np.int32),
             REACH_KEY: reach}
    adversary = init_adversary(jax.random.PRNGKey(1), 3, 2, "label_relative", init_std=0.3)  # not a near-zero term
    carry = (adversary, optax.adam(1e-3).init(adversary))
    one_loss, one = _logit_grads(adversarial_objective(2, 3, 1.0, balance="groups", one_sided=True), logits, batch, carry)
    two_loss, two = _logit_grads(adversarial_objective(2, 3, 1.0, balance="groups"), logits, batch, carry)
    ce = np.asarray(jax.grad(lambda z: mean_cross_entropy(z, batch))(logits))
    assert one_loss == two_loss  # the same value: only the gradient is restricted
    # Jitted, the two objectives fuse differently: equal up to float32 rounding (the term moves them by > 1e-2)
    np.testing.assert_allclose(one[reach == 1], two[reach == 1], rtol=1e-6, atol=1e-7)  # the default's gradient
    np.testing.assert_allclose(one[reach == 0], ce[reach == 0], rtol=1e-6, atol=1e-7)  # the cross-entropy's alone
    assert np.abs(two[reach == 0] - ce[reach == 0]).max() > 1e-2  # where the default's term does move them


def _trained(task, objective, reach):
    trainer = Trainer(task, extra={REACH_KEY: reach})
    return jax.device_get(trainer.train(init_state(task, CFG), CFG, 15, data_seed=0, objective=objective).params)


def test_all_reached_trains_as_the_default_and_none_reached_as_cross_entropy():
    task = _task()
    n = len(task.data.train.y)
    two_sided = adversarial_objective(2, 2, 1.0, balance="groups")
    one_sided = adversarial_objective(2, 2, 1.0, balance="groups", one_sided=True)
    chex.assert_trees_all_equal(_trained(task, one_sided, np.ones(n, np.float32)),
                                _trained(task, two_sided, np.ones(n, np.float32)))
    nobody = _trained(task, one_sided, np.zeros(n, np.float32))
    chex.assert_trees_all_close(nobody, _trained(task, mean_cross_entropy, np.zeros(n, np.float32)), atol=1e-7, rtol=0)
    half = _trained(task, one_sided, (task.data.train.group == 1).astype(np.float32))
    assert any(bool((a != b).any()) for a, b in zip(jax.tree.leaves(half), jax.tree.leaves(nobody)))
    with pytest.raises(ValueError, match="adversary_reach"):  # the field is required
        Trainer(task).train(init_state(task, CFG), CFG, 2, data_seed=0, objective=one_sided)


def test_ballot_reaches_the_mu0_tickets_groups_below_the_mean_and_resumes(tmp_path):
    task = _task()
    record = Ballot(**ITERATIVE, adversary_reach="below_mean", epsilon=1.0).run(task, CFG, 0.75, tmp_path / "c19")
    plain = Ballot(**ITERATIVE, epsilon=1.0).run(task, CFG, 0.75, tmp_path / "plain")
    assert record["search"]["0"] == plain["search"]["0"]  # μ = 0 has no term: LTH's ticket

    def final(run, mu):
        state, _ = finished_phase(level_dir(tmp_path / run / f"mu_{mu}", 2), init_state(task, CFG))
        return jax.device_get(state.params)

    chex.assert_trees_all_equal(final("c19", 0), final("plain", 0))
    assert any(bool((a != b).any()) for a, b in zip(jax.tree.leaves(final("c19", 1)), jax.tree.leaves(final("plain", 1))))
    assert record["adversary_reach"] == "below_mean" and "adversary_reach" not in plain  # older records unchanged

    fields = Ballot(**ITERATIVE, adversary_reach="below_mean")._reach_fields(task, tmp_path / "c19" / "mu_0", 2)(None, None)
    accuracy = checkpoints.read_json(level_dir(tmp_path / "c19" / "mu_0", 2) / "record.json")["val"]["per_group_accuracy"]
    below = np.asarray(accuracy) < np.mean(accuracy)
    np.testing.assert_array_equal(fields[REACH_KEY], below[task.data.train.group].astype(np.float32))
    np.testing.assert_array_equal(fields[REACH_KEY], 1 - group_anchor_weights(accuracy, task.data.train.group))
    assert 0 < fields[REACH_KEY].mean() < 1  # one group reached, one not

    rerun = Ballot(**ITERATIVE, adversary_reach="below_mean", epsilon=1.0).run(task, CFG, 0.75, tmp_path / "c19")
    assert rerun["search"] == record["search"] and rerun["test"] == record["test"]


def test_adversary_reach_is_checked(tmp_path):
    with pytest.raises(ValueError, match="adversary_reach must be one of"):
        Ballot(**ITERATIVE, adversary_reach="worst").run(_task(), CFG, 0.75, tmp_path / "a")
    with pytest.raises(ValueError, match="disparity='adversary'"):
        Ballot(**ITERATIVE, adversary_reach="below_mean", disparity="worst_cell").run(_task(), CFG, 0.75, tmp_path / "b")
    with pytest.raises(ValueError, match="starting with 0"):
        Ballot(**{**ITERATIVE, "disparity_weights": (0.3, 1.0)}, adversary_reach="below_mean").run(
            _task(), CFG, 0.75, tmp_path / "c")
    with pytest.raises(ValueError, match="distill=0"):
        Ballot(**ITERATIVE, adversary_reach="below_mean", distill=1.0).run(_task(), CFG, 0.75, tmp_path / "d")
