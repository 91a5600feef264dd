"""The running (across-batch) cell-loss estimate of the refined training (``objectives.running_fair_objective``)
against a NumPy reference, and the engine carrying a ``StatefulObjective``'s state through a phase:
the same numbers on 1, 2 and 4 devices, and bit-identical after a crash and resume."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ballot_jax.engine import checkpoints
from ballot_jax.engine.levels import LevelPlan, run_levels
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.mesh import data_mesh
from ballot_jax.methods import Ballot
from ballot_jax.objectives import StatefulObjective, fair_objective, running_fair_objective
from ballot_jax.pruning import magnitude_scores
from engine_fixtures import Crash, CrashingTrainer, mlp_model, toy_dataset

CFG = TrainConfig(steps=40, batch_size=16, learning_rate=0.1, rewind_step=4, checkpoint_every=10)


def _batches(seed, num_batches, n, num_classes, num_groups):
    rng = np.random.default_rng(seed)
    for _ in range(num_batches):
        logits = rng.normal(scale=2.0, size=(n, num_classes)).astype(np.float32)
        y = rng.integers(0, num_classes, n)
        group = rng.integers(0, num_groups, n)
        group[rng.random(n) < 0.5] = 0  # other groups often absent from a batch
        yield logits, y, group


def _reference(batches, num_groups, num_classes, kind, weight, temperature, decay):
    """NumPy, float64: each batch's loss CE + μ (Σ_u q_u L_u − CE), q = softmax over the units present of
    m_u / n_u after m ← (1 − γ) m + γ L, n ← (1 − γ) n + γ for those units."""
    num_units = num_groups * num_classes if kind == "worst_cell" else num_groups
    m, n, losses = np.zeros(num_units), np.zeros(num_units), []
    for logits, y, group in batches:
        z = logits.astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        ce = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]
        units = group * num_classes + y if kind == "worst_cell" else group
        present = np.unique(units)
        mean = np.array([ce[units == u].mean() for u in present])
        m[present] = (1 - decay) * m[present] + decay * mean
        n[present] = (1 - decay) * n[present] + decay
        s = m[present] / n[present] / temperature
        q = np.exp(s - s.max())
        losses.append(ce.mean() + weight * ((q / q.sum()) @ mean - ce.mean()))
    return np.array(losses), (m, n)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), decay=st.sampled_from([0.05, 0.3, 1.0]),
       temperature=st.sampled_from([0.1, 0.5, 2.0]), kind=st.sampled_from(["worst_cell", "worst_group"]))
def test_running_objective_equals_numpy_reference(seed, decay, temperature, kind):
    num_groups, num_classes, weight = 3, 2, 0.7
    batches = list(_batches(seed, 6, 12, num_classes, num_groups))
    objective = running_fair_objective(num_groups, num_classes, kind, weight, temperature, decay)
    apply = jax.jit(objective.apply)
    carry, losses = objective.init(), []
    for logits, y, group in batches:
        loss, carry = apply(jnp.asarray(logits), {"y": jnp.asarray(y), "group": jnp.asarray(group)}, carry)
        losses.append(float(loss))
    ref_losses, (m, n) = _reference(batches, num_groups, num_classes, kind, weight, temperature, decay)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(carry[0]), m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(carry[1]), n, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["worst_cell", "worst_group"])
def test_decay_one_is_the_per_batch_objective_value_and_gradient(kind):
    """γ = 1 keeps only this batch's unit means: the objective, and its gradient, are the per-batch term's."""
    objective = running_fair_objective(3, 2, kind, 0.5, 0.5, 1.0)
    plain = fair_objective(3, kind, 0.5, 0.5)
    carry = objective.init()
    for logits, y, group in _batches(1, 4, 16, 2, 3):
        batch = {"y": jnp.asarray(y), "group": jnp.asarray(group)}
        logits = jnp.asarray(logits)
        (loss, carry), grad = jax.jit(jax.value_and_grad(objective.apply, has_aux=True))(logits, batch, carry)
        plain_loss, plain_grad = jax.jit(jax.value_and_grad(plain))(logits, batch)
        np.testing.assert_allclose(float(loss), float(plain_loss), rtol=1e-6)
        np.testing.assert_allclose(np.asarray(grad), np.asarray(plain_grad), rtol=1e-5, atol=1e-7)


def test_the_estimate_remembers_a_rare_cell_a_batch_misjudges():
    """A rare cell's one example, right in every earlier batch and wrong in this one: the per-batch
    soft maximum gives it the whole extra weight; the running estimate (γ = 0.1) much less."""
    right, wrong = [3.0, 0.0], [-3.0, 0.0]
    earlier = {"y": jnp.array([0, 0, 0, 0]), "group": jnp.array([0, 0, 0, 1])}
    now = earlier
    logits_before = jnp.array([[1.0, 0.0]] * 3 + [right])
    logits_now = jnp.array([[1.0, 0.0]] * 3 + [wrong])

    def extra_weight(decay):
        objective = running_fair_objective(2, 2, "worst_cell", 1.0, 0.5, decay)
        carry = objective.init()
        for _ in range(20):
            _, carry = objective.apply(logits_before, earlier, carry)
        grad = jax.grad(lambda z: objective.apply(z, now, carry)[0])(logits_now)
        return float(jnp.linalg.norm(grad[3]))

    assert extra_weight(0.1) < 0.6 * extra_weight(1.0)


def _task(num_devices=1):
    return Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:num_devices]))


def test_a_stateful_objective_trains_the_same_on_1_2_4_devices():
    objective = running_fair_objective(2, 2, "worst_cell", 1.0, 0.5, 0.2)
    results = []
    for n in (1, 2, 4):
        t = _task(n)
        state = Trainer(t).train(init_state(t, CFG), CFG, 15, data_seed=0, objective=objective)
        assert type(state).__name__ == "TrainState"  # the caller sees the train state alone
        results.append(jax.device_get(state.params))
    for other in results[1:]:
        chex.assert_trees_all_close(results[0], other, atol=1e-5, rtol=1e-5)


def test_the_carry_changes_training_and_is_checkpointed_with_the_state(tmp_path):
    """With γ < 1 the weights differ from the per-batch objective's; the phase's periodic checkpoint holds
    the carry (a CarriedState), and a phase restarted from it ends where an uninterrupted one does."""
    t = _task()
    running = running_fair_objective(2, 2, "worst_cell", 1.0, 0.5, 0.2)
    plain = fair_objective(2, "worst_cell", 1.0, 0.5)
    start = init_state(t, CFG)
    a = Trainer(t).train(start, CFG, 20, data_seed=0, objective=running)
    b = Trainer(t).train(start, CFG, 20, data_seed=0, objective=plain)
    assert not np.allclose(a.params["hidden"]["kernel"], b.params["hidden"]["kernel"])
    # interrupted after the step-10 checkpoint: the restarted phase must read the carry back
    Trainer(t).train(start, dataclasses.replace(CFG, checkpoint_every=10), 11, data_seed=0, objective=running,
                     ckpt_dir=tmp_path / "ckpt")
    saved = checkpoints.Periodic(tmp_path / "ckpt")
    assert saved.latest_step() == 10
    saved.close()
    resumed = Trainer(t).train(start, CFG, 20, data_seed=0, objective=running, ckpt_dir=tmp_path / "ckpt")
    chex.assert_trees_all_equal(jax.device_get(resumed.params), jax.device_get(a.params))


@pytest.mark.parametrize("crash_at", [57, 95])  # level 1 mid-way, level 2 mid-way
def test_levels_with_a_stateful_objective_resume_bit_identically(tmp_path, crash_at):
    t = _task()
    keep = LevelPlan([100, 60], retrain_objective=running_fair_objective(2, 2, "worst_cell", 1.0, 0.5, 0.2))
    score = lambda state, level: magnitude_scores(state.params, state.mask)  # noqa: E731
    reference = run_levels(t, CFG, score, keep, tmp_path / "ref")

    with pytest.raises(Crash):
        run_levels(t, CFG, score, keep, tmp_path / "run", trainer=CrashingTrainer(t, crash_at))
    resumed = run_levels(t, CFG, score, keep, tmp_path / "run")
    for a, b in zip(reference, resumed):
        assert (a["kept"], a["val"], a["test"]) == (b["kept"], b["val"], b["test"])


def test_ballot_disparity_decay_options(tmp_path):
    assert Ballot().disparity_decay == 1.0  # the default: each batch's own cell losses
    cell = Ballot(disparity="worst_cell")
    assert not isinstance(cell.retrain_objective(2, 2), StatefulObjective)
    assert isinstance(Ballot(disparity="worst_cell", disparity_decay=0.1).retrain_objective(2, 2), StatefulObjective)
    assert not isinstance(Ballot(disparity="worst_cell", disparity_decay=0.1).retrain_objective(2, 2, weight=0.0),
                          StatefulObjective)
    with pytest.raises(ValueError, match="disparity_decay must be in"):
        Ballot(disparity_decay=0.0).retrain_objective(2, 2)
    with pytest.raises(ValueError, match="disparity_decay < 1 needs"):
        Ballot(disparity="loss_var", disparity_decay=0.5).retrain_objective(2, 2)
    one_shot = dict(fraction=0.5, selection="magnitude", pruning="one_shot", disparity_weights=(0.0, 1.0),
                    disparity="worst_cell")
    dense = tmp_path / "dense"
    runs = {d: Ballot(**one_shot, disparity_decay=d).run(_task(), CFG, 0.75, tmp_path / str(d), dense_dir=dense)
            for d in (1.0, 0.2)}
    assert runs[1.0]["search"]["0"] == runs[0.2]["search"]["0"]  # μ = 0: no disparity term, no estimate
    assert runs[1.0]["search"]["1"] != runs[0.2]["search"]["1"]
