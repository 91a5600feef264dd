"""Distillation from the dense model (``ballot_jax.distillation``, ``Trainer(extra=...)``,
``LevelPlan.retrain_extra``, ``Ballot(distill=κ)``): the loss against a NumPy reference, the teacher's
logits carried in the batch on every data path and device count, and the method end to end."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from ballot_jax.distillation import TEACHER_KEY, TEACHER_WEIGHT_KEY, distillation_loss, distilled, group_anchor_weights
from ballot_jax.engine import device_data
from ballot_jax.engine.levels import LevelPlan, level_dir, run_levels, teacher_logits
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.mesh import data_mesh
from ballot_jax.engine.phases import finished_phase
from ballot_jax.engine.steps import mean_cross_entropy
from ballot_jax.methods import Ballot
from ballot_jax.methods.lth import magnitude_score_fn
from ballot_jax.objectives import running_fair_objective
from engine_fixtures import mlp_model, toy_dataset

CFG = TrainConfig(steps=40, batch_size=16, learning_rate=0.1, rewind_step=4, checkpoint_every=10)
ITERATIVE = dict(fraction=0.5, pruning="iterative", rewind=True, selection="magnitude", disparity_weights=(0.0, 1.0))


def reference_loss(student: np.ndarray, teacher: np.ndarray, temperature: float) -> float:
    """T² · mean KL(p ‖ q), p = softmax(teacher / T), q = softmax(student / T), in float64."""
    def log_softmax(z):
        z = z / temperature
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    log_p, log_q = log_softmax(teacher.astype(np.float64)), log_softmax(student.astype(np.float64))
    return float(temperature**2 * np.mean(np.sum(np.exp(log_p) * (log_p - log_q), -1)))


logits_arrays = hnp.arrays(np.float32, (5, 3), elements=st.floats(-6, 6, width=32))


@settings(max_examples=40, deadline=None)
@given(student=logits_arrays, teacher=logits_arrays, temperature=st.sampled_from([0.5, 1.0, 2.0, 4.0]))
def test_the_loss_is_the_reference_kl(student, teacher, temperature):
    got = float(distillation_loss(jnp.asarray(student), jnp.asarray(teacher), temperature))
    assert got == pytest.approx(reference_loss(student, teacher, temperature), rel=1e-4, abs=1e-5)
    assert got >= -1e-6


def test_weighted_examples_and_the_anchored_groups():
    rng = np.random.default_rng(3)
    student, teacher = rng.normal(size=(6, 3)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    weights = np.array([1, 0, 1, 0, 0, 1], np.float32)
    got = float(distillation_loss(jnp.asarray(student), jnp.asarray(teacher), 2.0, jnp.asarray(weights)))
    kept = reference_loss(student[weights == 1], teacher[weights == 1], 2.0)
    assert got == pytest.approx(kept * 3 / 6, rel=1e-5)  # a mean over the whole batch: zero weights count as zeros
    assert float(distillation_loss(jnp.asarray(student), jnp.asarray(teacher), 2.0, jnp.zeros(6))) == 0.0
    # groups at or above the mean of the measured groups' accuracies are anchored; an unmeasured (NaN) group is not
    np.testing.assert_array_equal(group_anchor_weights([0.9, 0.7, 0.8, np.nan], np.array([0, 1, 2, 3, 0])),
                                  [1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="at least one measured"):
        group_anchor_weights([np.nan], np.array([0]))


def test_the_loss_vanishes_at_the_teacher_and_its_gradient_is_t_times_q_minus_p():
    rng = np.random.default_rng(0)
    teacher = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    shift = jnp.asarray(rng.normal(size=(4, 1)), jnp.float32)  # a constant per example changes no softmax
    assert float(distillation_loss(teacher + shift, teacher, 2.0)) == pytest.approx(0.0, abs=1e-6)
    student = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    grad_s, grad_t = jax.grad(distillation_loss, argnums=(0, 1))(student, teacher, 2.0)
    expected = 2.0 * (jax.nn.softmax(student / 2.0) - jax.nn.softmax(teacher / 2.0)) / 4
    np.testing.assert_allclose(grad_s, expected, atol=1e-6)
    np.testing.assert_array_equal(grad_t, np.zeros_like(grad_t))  # the teacher is a constant


def test_distilled_adds_the_term_to_plain_and_carried_objectives():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)
    batch = {"y": jnp.asarray(rng.integers(0, 2, 8), jnp.int32), "group": jnp.asarray(rng.integers(0, 2, 8), jnp.int32),
             TEACHER_KEY: jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)}
    term = 0.5 * float(distillation_loss(logits, batch[TEACHER_KEY], 2.0))
    plain = distilled(mean_cross_entropy, 0.5, 2.0)
    assert float(plain(logits, batch)) == pytest.approx(float(mean_cross_entropy(logits, batch)) + term, rel=1e-6)
    assert distilled(mean_cross_entropy, 0.5, 2.0) is plain  # memoised: one compiled step
    assert distilled(mean_cross_entropy, 0.0, 2.0) is mean_cross_entropy  # κ = 0: the objective itself

    running = running_fair_objective(2, 2, "worst_cell", 1.0, 0.5, 0.9)  # a StatefulObjective, like the adversary
    carried = distilled(running, 0.5, 2.0)
    carry = running.init()
    base_loss, base_carry = running.apply(logits, batch, carry)
    loss, new_carry = carried.apply(logits, batch, carry)
    assert carried.init is running.init
    assert float(loss) == pytest.approx(float(base_loss) + term, rel=1e-5)
    chex.assert_trees_all_equal(new_carry, base_carry)  # the carried state's update is untouched

    with pytest.raises(ValueError, match="field 'teacher'"):
        plain(logits, {k: v for k, v in batch.items() if k != TEACHER_KEY})
    with pytest.raises(ValueError, match="weight must be >= 0"):
        distilled(mean_cross_entropy, -1.0, 2.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        distilled(mean_cross_entropy, 1.0, 0.0)


def _task(devices: int = 1):
    return Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:devices]))


def _distilled_phase(task, monkeypatch, limit):
    """20 steps of CE + the distillation term against fixed random 'teacher' logits, with the training
    split on the device (``limit`` the default) or gathered on the host (``limit`` 0)."""
    monkeypatch.setattr(device_data, "DEVICE_DATA_MAX_BYTES", limit)
    teacher = np.random.default_rng(2).normal(size=(len(task.data.train.y), 2)).astype(np.float32)
    config = TrainConfig(steps=20, batch_size=16, learning_rate=0.1, checkpoint_every=0)
    trainer = Trainer(task, extra={TEACHER_KEY: teacher})
    state = trainer.train(init_state(task, config), config, 20, data_seed=3, objective=distilled(mean_cross_entropy, 1.0, 2.0))
    return jax.device_get(state.params)


def test_the_teacher_travels_with_the_batch_on_every_path_and_device_count(monkeypatch):
    task = _task()
    trainer = Trainer(task, extra={TEACHER_KEY: np.arange(len(task.data.train.y) * 2, dtype=np.float32).reshape(-1, 2)})
    config = TrainConfig(steps=5, batch_size=16)
    batch = trainer.batch(config, 3, data_seed=7)
    np.testing.assert_array_equal(batch[TEACHER_KEY][:, 0] / 2, trainer.batch_indices(config, 3, data_seed=7))

    on_device = _distilled_phase(task, monkeypatch, device_data.DEVICE_DATA_MAX_BYTES)
    on_host = _distilled_phase(task, monkeypatch, 0)
    chex.assert_trees_all_equal(on_device, on_host)  # bit for bit
    four = _distilled_phase(_task(4), monkeypatch, device_data.DEVICE_DATA_MAX_BYTES)
    chex.assert_trees_all_close(four, on_device, atol=1e-6, rtol=0)
    without = jax.device_get(Trainer(task).train(init_state(task, TrainConfig(steps=20, batch_size=16, learning_rate=0.1,
                                                                                checkpoint_every=0)),
                                                 TrainConfig(steps=20, batch_size=16, learning_rate=0.1, checkpoint_every=0),
                                                 20, data_seed=3))
    assert any(bool((a != b).any()) for a, b in zip(jax.tree.leaves(without), jax.tree.leaves(on_device)))


def test_extra_fields_are_checked():
    task = _task()
    with pytest.raises(ValueError, match="one row per training example"):
        Trainer(task, extra={TEACHER_KEY: np.zeros((3, 2), np.float32)})
    with pytest.raises(ValueError, match="would replace the batch's own 'y'"):
        Trainer(task, extra={"y": np.zeros(len(task.data.train.y), np.int32)})


def test_ballot_distils_the_dense_model_in_every_level_and_resumes(tmp_path):
    task = _task()
    record = Ballot(**ITERATIVE, distill=1.0, epsilon=1.0).run(task, CFG, 0.75, tmp_path / "kd")
    plain = Ballot(**ITERATIVE, epsilon=1.0).run(task, CFG, 0.75, tmp_path / "plain")
    assert (record["distill"], record["distill_temperature"]) == (1.0, 2.0)
    assert "distill" not in plain  # the records of before session 31
    assert record["levels"][0]["test"] == plain["levels"][0]["test"]  # the same dense phase
    assert record["search"]["0"] != plain["search"]["0"]  # μ = 0 is distilled too: no longer LTH's ticket

    # the teacher is the dense phase's final model: its logits of the training split
    dense, _ = finished_phase(level_dir(tmp_path / "kd" / "mu_0", 0), init_state(task, CFG))
    fields = teacher_logits(task)(dense, {})
    expected, _ = task.model.apply(dense.params, dense.model_state, jnp.asarray(task.data.train.x), False,
                                   jax.random.PRNGKey(0))
    np.testing.assert_allclose(fields[TEACHER_KEY], np.asarray(expected), atol=1e-6)
    anchored = teacher_logits(task, anchor_groups=True)(dense, {"val": {"per_group_accuracy": [0.9, 0.5]}})
    np.testing.assert_array_equal(anchored[TEACHER_WEIGHT_KEY], (task.data.train.group == 0).astype(np.float32))
    np.testing.assert_array_equal(anchored[TEACHER_KEY], fields[TEACHER_KEY])

    rerun = Ballot(**ITERATIVE, distill=1.0, epsilon=1.0).run(task, CFG, 0.75, tmp_path / "kd")
    assert rerun["search"] == record["search"] and rerun["test"] == record["test"]


def test_the_levels_get_the_fields_of_the_dense_phases_final_state(tmp_path):
    task, seen = _task(), []

    def fields(state, record):
        seen.append(state)
        return teacher_logits(task)(state, record)

    plan = LevelPlan([64, 32], retrain=CFG, retrain_objective=distilled(mean_cross_entropy, 1.0, 2.0), retrain_extra=fields)
    run_levels(task, CFG, magnitude_score_fn, plan, tmp_path / "run")
    dense, _ = finished_phase(level_dir(tmp_path / "run", 0), init_state(task, CFG))
    assert len(seen) == 1
    chex.assert_trees_all_equal(jax.device_get(seen[0].params), jax.device_get(dense.params))
    run_levels(task, CFG, magnitude_score_fn, plan, tmp_path / "run")  # finished: loaded, no teacher computed
    assert len(seen) == 1


def test_the_ticket_teacher_anchors_the_mu_candidates_to_the_mu0_ticket(tmp_path):
    task = _task()
    c18 = dict(distill=1.0, distill_teacher="ticket", distill_groups="above_mean", epsilon=1.0)
    record = Ballot(**ITERATIVE, **c18).run(task, CFG, 0.75, tmp_path / "c18")
    plain = Ballot(**ITERATIVE, epsilon=1.0).run(task, CFG, 0.75, tmp_path / "plain")
    assert record["search"]["0"] == plain["search"]["0"]  # the teacher itself is not distilled: LTH's ticket
    assert record["search"]["1"] != plain["search"]["1"]
    assert (record["distill_teacher"], record["distill_groups"]) == ("ticket", "above_mean")

    # the fields the μ = 1 candidate trained with: the μ = 0 ticket's logits, its advantaged groups weighted 1
    mu0, mu0_record = finished_phase(level_dir(tmp_path / "c18" / "mu_0", 2), init_state(task, CFG))
    fields = Ballot(**ITERATIVE, **c18)._ticket_teacher(task, CFG, tmp_path / "c18" / "mu_0", 2)(None, None)
    expected, _ = task.model.apply(mu0.params, mu0.model_state, jnp.asarray(task.data.train.x), False,
                                   jax.random.PRNGKey(0))
    np.testing.assert_allclose(fields[TEACHER_KEY], np.asarray(expected), atol=1e-6)
    accuracy = mu0_record["val"]["per_group_accuracy"]
    above = np.asarray(accuracy) >= np.mean(accuracy)
    np.testing.assert_array_equal(fields[TEACHER_WEIGHT_KEY], above[task.data.train.group].astype(np.float32))
    assert 0 < fields[TEACHER_WEIGHT_KEY].mean() < 1  # one group anchored, one left to the term

    rerun = Ballot(**ITERATIVE, **c18).run(task, CFG, 0.75, tmp_path / "c18")
    assert rerun["search"] == record["search"] and rerun["test"] == record["test"]


def test_the_ticket_teacher_is_loaded_once_for_every_mu_candidate(tmp_path, monkeypatch):
    from ballot_jax.methods import ballot as ballot_module

    loads = []

    def counting(directory, like, *args, **kwargs):
        loads.append(directory)
        return finished_phase(directory, like, *args, **kwargs)

    monkeypatch.setattr(ballot_module, "finished_phase", counting)
    grid = {**ITERATIVE, "disparity_weights": (0.0, 0.3, 1.0)}
    Ballot(**grid, distill=1.0, distill_teacher="ticket", epsilon=1.0).run(_task(), CFG, 0.75, tmp_path)
    assert loads == [level_dir(tmp_path / "mu_0", 2)]  # two μ > 0 candidates, one teacher


def test_distill_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="distill must be >= 0"):
        Ballot(**ITERATIVE, distill=-1.0).run(_task(), CFG, 0.75, tmp_path / "a")
    with pytest.raises(ValueError, match="distill_temperature must be > 0"):
        Ballot(**ITERATIVE, distill=1.0, distill_temperature=0.0).run(_task(), CFG, 0.75, tmp_path / "b")
    with pytest.raises(ValueError, match="refine='retrain'"):
        Ballot(**ITERATIVE, distill=1.0, refine="polish").run(_task(), CFG, 0.75, tmp_path / "c")
    with pytest.raises(ValueError, match="distill_teacher must be one of"):
        Ballot(**ITERATIVE, distill=1.0, distill_teacher="lth").run(_task(), CFG, 0.75, tmp_path / "d")
    with pytest.raises(ValueError, match="distill_groups must be one of"):
        Ballot(**ITERATIVE, distill=1.0, distill_groups="worst").run(_task(), CFG, 0.75, tmp_path / "e")
    with pytest.raises(ValueError, match="must start with 0"):
        Ballot(**{**ITERATIVE, "disparity_weights": (0.3, 1.0)}, distill=1.0, distill_teacher="ticket").run(
            _task(), CFG, 0.75, tmp_path / "f")
