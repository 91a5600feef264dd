"""The authors' vote (ballot_jax.vote) against NumPy references, and Ballot(selection="vote") in the loop."""

import dataclasses
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ballot_jax as bj
from ballot_jax import vote
from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.levels import level_dir
from ballot_jax.engine.mesh import data_mesh
import ballot_jax.methods.ballot as ballot_method
from ballot_jax.methods import LTH, Ballot
from ballot_jax.methods.ballot import cells_are_groups, choose_disparity, choose_mode, choose_within_epsilon, effective_epsilon
from ballot_jax.methods.ballot_vote import make_vote_grads, vote_points
from engine_fixtures import mlp_model, toy_dataset


def np_normalize_columns(x):
    """torch.nn.functional.normalize(w.T, dim=0).T for our [in, out] layout: over the last axis."""
    norm = np.sqrt(np.sum(np.square(x), axis=-1, keepdims=True))
    return x / np.maximum(norm, 1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vote_scores_match_numpy(seed):
    rng = np.random.default_rng(seed)
    params = {"dense": {"kernel": rng.normal(size=(5, 3)).astype(np.float32), "bias": np.zeros(3, np.float32)},
              "conv": {"kernel": rng.normal(size=(2, 2, 3, 4)).astype(np.float32)}}
    mask = bj.make_mask(params)
    g = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
    f = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
    eta = 0.7
    authors = vote.vote_scores(params, mask, g, f, eta, "authors")
    saliency = vote.vote_scores(params, mask, g, f, eta, "saliency")
    for name in ("dense", "conv"):
        w, gg, ff = params[name]["kernel"], g[name]["kernel"], f[name]["kernel"]
        np.testing.assert_allclose(authors[name]["kernel"], np_normalize_columns(gg) + eta * np_normalize_columns(ff), rtol=1e-5)
        expected = np_normalize_columns(np.abs(w * gg)) + eta * np_normalize_columns(np.abs(w * ff))
        np.testing.assert_allclose(saliency[name]["kernel"], expected, rtol=1e-5)
    assert authors["dense"]["bias"] is None


def test_normalize_columns_is_over_the_output_axis():
    x = jnp.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])  # [in=3, out=2]
    np.testing.assert_allclose(vote.normalize_columns(x), [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]])


def test_group_weights_are_the_intended_inverse_accuracies():
    w = vote.group_weights(jnp.array([0.5, 0.25, 0.0]), jnp.array([True, True, False]))
    np.testing.assert_allclose(w, [1 / (0.5 + 1e-6), 1 / (0.25 + 1e-6), 1.0], rtol=1e-6)


def test_cast_votes_top_k_alive_nonzero():
    mask = {"w": jnp.array([True, True, True, False, True, True])}
    scores = {"w": jnp.array([0.5, -1.0, 2.0, 9.0, 0.0, 0.1])}
    ballot = vote.cast_votes(scores, mask, 3)
    np.testing.assert_array_equal(ballot["w"], [True, False, True, False, False, True])  # 9.0 is pruned
    # Asking for more votes than there are non-zero alive entries: only those get one.
    ballot = vote.cast_votes(scores, mask, 5)
    np.testing.assert_array_equal(ballot["w"], [True, True, True, False, False, True])


def test_keep_most_voted_breaks_ties_by_magnitude_then_position():
    mask = {"a": jnp.array([True, True, True, True]), "b": jnp.array([True, False, True])}
    counts = {"a": jnp.array([3, 1, 3, 2]), "b": jnp.array([3, 9, 1])}
    params = {"a": jnp.array([0.1, 5.0, -0.3, 1.0]), "b": jnp.array([0.3, 7.0, 2.0])}
    # Three entries have 3 votes: a0 (|w| .1), a2 (.3), b0 (.3). k = 1: a2 and b0 tie on |w| too,
    # so the earlier position (a2) wins; k = 2: both .3s beat a0's .1.
    keep = vote.keep_most_voted(counts, params, mask, jnp.int32(1))
    np.testing.assert_array_equal(keep["a"], [False, False, True, False])
    np.testing.assert_array_equal(keep["b"], [False, False, False])
    keep = vote.keep_most_voted(counts, params, mask, jnp.int32(2))
    np.testing.assert_array_equal(keep["a"], [False, False, True, False])
    np.testing.assert_array_equal(keep["b"], [True, False, False])
    keep = vote.keep_most_voted(counts, params, mask, jnp.int32(4))
    np.testing.assert_array_equal(keep["a"], [True, False, True, True])  # b1 (9 votes) is pruned
    np.testing.assert_array_equal(keep["b"], [True, False, False])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 20), st.integers(1, 5))
def test_vote_keeps_exactly_k_and_never_revives(seed, num_keep, num_points):
    rng = np.random.default_rng(seed)
    mask = {"w": jnp.asarray(rng.random((6, 4)) < 0.8)}
    params = {"w": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)}
    alive = int(np.sum(mask["w"]))
    k = min(num_keep, alive)
    counts = None
    for _ in range(num_points):
        counts = vote.add_votes(counts, vote.cast_votes({"w": jnp.asarray(rng.normal(size=(6, 4)))}, mask, k))
    assert int(np.max(counts["w"])) <= num_points
    assert not np.any(np.asarray(counts["w"])[~np.asarray(mask["w"])])
    keep = vote.keep_most_voted(counts, params, mask, jnp.int32(k))
    assert int(np.sum(keep["w"])) == k
    assert not np.any(np.asarray(keep["w"]) & ~np.asarray(mask["w"]))
    # Every kept entry has at least as many votes as every alive entry left out.
    kept_votes = np.asarray(counts["w"])[np.asarray(keep["w"])]
    dropped = np.asarray(mask["w"]) & ~np.asarray(keep["w"])
    if kept_votes.size and dropped.any():
        assert kept_votes.min() >= np.asarray(counts["w"])[dropped].max()


def test_vote_points_are_evenly_spaced_and_end_at_the_phase_end():
    assert vote_points(0, 100, 4) == [25, 50, 75, 100]
    assert vote_points(20, 300, 10)[-1] == 300 and len(vote_points(20, 300, 10)) == 10
    assert vote_points(0, 3, 10) == [1, 2, 3]  # never more points than steps


def test_vote_gradients_weight_examples_by_inverse_group_accuracy():
    """gᶠ with weights [1, 1] equals g; with weights [w0, w1] it is the PyTorch weighted mean."""
    model = mlp_model(8)
    data = toy_dataset()
    params, state = model.init(jax.random.PRNGKey(0), jnp.asarray(data.train.x[:1]))
    batch = {"x": jnp.asarray(data.train.x[:32]), "y": jnp.asarray(data.train.y[:32]),
             "group": jnp.asarray(data.train.group[:32])}
    fn = make_vote_grads(model)
    g = fn(params, state, batch, jnp.array([1.0, 1.0]))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), jax.tree.map(lambda x: x[0], g),
                 jax.tree.map(lambda x: x[1], g))
    w = jnp.array([1.0, 4.0])

    def weighted(p):
        logits, _ = model.apply(p, state, batch["x"], False, None)
        ce = -jax.nn.log_softmax(logits)[jnp.arange(32), batch["y"]]
        ex = w[batch["group"]]
        return jnp.sum(ex * ce) / jnp.sum(ex)

    expected = jax.grad(weighted)(params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 jax.tree.map(lambda x: x[1], fn(params, state, batch, w)), expected)


CFG = TrainConfig(steps=30, batch_size=16, learning_rate=0.1, rewind_step=3, checkpoint_every=10)
ITERATIVE = dict(pruning="iterative", rewind=True, disparity_weights=())  # LTH-like, one μ


@pytest.mark.parametrize("kind", ["authors", "saliency", "conflict"])
def test_vote_selection_in_the_loop_casts_every_ballot_and_keeps_exact_counts(tmp_path, kind):
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    method = Ballot(fraction=0.5, selection="vote", vote_kind=kind, vote_points=4, vote_batches=2, **ITERATIVE,
                    score_batches=1, per_group_batch=8)
    record = method.run(task, CFG, 0.75, tmp_path)
    assert record["selection"] == "vote"
    assert [lv["kept"] for lv in record["levels"][1:]] == bj.pruning_plan(8 * 16 + 16 * 2, 0.75, 0.5)
    # Level 1 votes over the dense phase (steps 0-30), level 2 over level 1's retraining (3-30):
    # three inner ballots each (the last ballot is the phase's final state).
    assert sorted(p.name for p in (level_dir(tmp_path, 0) / "votes").iterdir()) == [
        f"point_{s:06d}" for s in vote_points(0, 30, 4)[:-1]]
    assert sorted(p.name for p in (level_dir(tmp_path, 1) / "votes").iterdir()) == [
        f"point_{s:06d}" for s in vote_points(3, 30, 4)[:-1]]


def test_vote_selection_resumes_identically_after_a_crash(tmp_path, monkeypatch):
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    method = Ballot(fraction=0.5, selection="vote", vote_kind="saliency", vote_points=4, vote_batches=2, **ITERATIVE)
    reference = method.run(task, CFG, 0.75, tmp_path / "ref")

    class Crash(RuntimeError):
        pass

    real_save = checkpoints.save_item

    def crashing_save(path, tree):
        if "level_01/votes" in str(path):
            raise Crash  # killed while casting level 2's first ballot
        real_save(path, tree)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "save_item", crashing_save)
        with pytest.raises(Crash):
            method.run(task, CFG, 0.75, tmp_path / "crash")
    resumed = method.run(task, CFG, 0.75, tmp_path / "crash")
    for a, b in zip(reference["levels"], resumed["levels"]):
        assert a["kept"] == b["kept"] and a["test"] == b["test"] and a["val"] == b["val"]


def test_vote_differs_from_the_one_point_conflict_score(tmp_path):
    """The selection mode is wired through: the vote and the one-point score choose different masks."""
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    conflict = Ballot(fraction=0.5, selection="conflict", **ITERATIVE).run(task, CFG, 0.75, tmp_path / "c")
    voted = Ballot(fraction=0.5, selection="vote", vote_kind="authors", vote_points=4, **ITERATIVE).run(
        task, CFG, 0.75, tmp_path / "v")
    assert conflict["selection"] == "conflict" and voted["selection"] == "vote"
    like = init_state(task, CFG).mask
    masks = [checkpoints.load_item(level_dir(tmp_path / d, 1) / "mask", like) for d in ("c", "v")]
    assert float(bj.mask_overlap(masks[0], masks[1])) < 1.0


def test_unknown_selection_is_refused(tmp_path):
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    with pytest.raises(ValueError, match="selection"):
        dataclasses.replace(Ballot(), selection="votes").run(task, CFG, 0.5, tmp_path)


def test_one_shot_fine_tuning_has_one_level_and_lth_s_budget(tmp_path, monkeypatch):
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    method = Ballot(fraction=0.5, selection="vote", vote_kind="saliency", pruning="one_shot", rewind=False,
                    vote_points=3, disparity_weights=())
    iterative = bj.pruning_plan(8 * 16 + 16 * 2, 0.75, 0.5)
    retrain = method.retrain_config(CFG, len(iterative))
    assert retrain.steps == (CFG.steps - CFG.rewind_step) * len(iterative) and retrain.rewind_step == 0
    assert not retrain.rewind_lr
    seen = []

    class Recording(Trainer):
        def train(self, state, config, until_step, **kw):
            seen.append((int(state.step), until_step))
            return super().train(state, config, until_step, **kw)

    monkeypatch.setattr(ballot_method, "Trainer", Recording)
    record = method.run(task, CFG, 0.75, tmp_path)
    assert [lv["kept"] for lv in record["levels"][1:]] == iterative[-1:]
    assert seen == [(0, CFG.steps), (0, retrain.steps)]  # dense, then one fine-tuning from step 0


def test_fine_tuning_starts_from_the_trained_weights_not_theta_k(tmp_path, monkeypatch):
    """rewind=False: level 1 starts from the dense phase's final weights (masked), not from θ_k."""
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    starts = []

    class Recording(Trainer):
        def train(self, state, config, until_step, **kw):
            starts.append(jax.device_get(state.params))
            return super().train(state, config, until_step, **kw)

    monkeypatch.setattr(ballot_method, "Trainer", Recording)
    Ballot(fraction=0.5, selection="conflict", pruning="one_shot", rewind=False, disparity_weights=()).run(
        task, CFG, 0.5, tmp_path)
    like = init_state(task, CFG)
    dense_final = checkpoints.load_item(level_dir(tmp_path, 0) / "final", like)
    mask = checkpoints.load_item(level_dir(tmp_path, 1) / "mask", like.mask)
    expected = bj.apply_mask(jax.device_get(dense_final.params), jax.device_get(mask))
    jax.tree.map(np.testing.assert_array_equal, starts[1], expected)


def test_choose_within_epsilon():
    val = {0.0: {"accuracy": 0.90, "cwv": 0.020}, 0.1: {"accuracy": 0.895, "cwv": 0.010},
           0.3: {"accuracy": 0.85, "cwv": 0.001}}
    assert choose_within_epsilon(val, 0.90, 0.01, "fairest") == 0.1  # 0.3 is fairest but 5 points down
    assert choose_within_epsilon(val, 0.90, 0.10, "fairest") == 0.3
    assert choose_within_epsilon(val, 0.99, 0.01, "fairest") == 0.0  # none qualifies: the most accurate


def test_choose_within_epsilon_strongest_takes_the_largest_admissible_mu_whatever_its_cwv():
    val = {0.0: {"accuracy": 0.90, "cwv": 0.001}, 0.3: {"accuracy": 0.895, "cwv": 0.020},
           1.0: {"accuracy": 0.85, "cwv": 0.0001}}
    assert choose_within_epsilon(val, 0.90, 0.01, "fairest") == 0.0  # fairest admissible
    assert choose_within_epsilon(val, 0.90, 0.01, "strongest") == 0.3  # 1.0 is 5 points down
    assert choose_within_epsilon(val, 0.90, 0.10, "strongest") == 1.0
    assert choose_within_epsilon(dict(reversed(val.items())), 0.90, 0.10, "strongest") == 1.0  # by value, not order
    assert choose_within_epsilon(val, 0.99, 0.01, "strongest") == 0.0  # none qualifies: the most accurate
    with pytest.raises(ValueError, match="mu_rule.*'fairest', 'strongest'.*'largest'"):
        choose_within_epsilon(val, 0.90, 0.01, "largest")


def test_choose_within_epsilon_strongest_fairer_spends_accuracy_only_on_fairness():
    """"strongest_fairer": the largest admissible μ among μ = 0 (the first key) and those fairer than
    it on validation."""
    val = {0.0: {"accuracy": 0.90, "cwv": 0.010}, 0.1: {"accuracy": 0.899, "cwv": 0.008},
           0.3: {"accuracy": 0.895, "cwv": 0.012}, 1.0: {"accuracy": 0.85, "cwv": 0.0001}}
    assert choose_within_epsilon(val, 0.90, 0.01, "strongest") == 0.3  # less fair than μ = 0
    assert choose_within_epsilon(val, 0.90, 0.01, "strongest_fairer") == 0.1
    assert choose_within_epsilon(val, 0.90, 0.10, "strongest_fairer") == 1.0
    worse = {0.0: val[0.0], 0.3: val[0.3]}
    assert choose_within_epsilon(worse, 0.90, 0.01, "strongest_fairer") == 0.0
    # the first not admissible (a dense reference) and none fairer: the largest admissible
    below = {0.0: {"accuracy": 0.88, "cwv": 0.010}, 0.3: val[0.3]}
    assert choose_within_epsilon(below, 0.90, 0.01, "strongest_fairer") == 0.3
    assert choose_within_epsilon(val, 0.99, 0.01, "strongest_fairer") == 0.0  # none admissible: the most accurate


def test_choose_within_epsilon_strongest_prefix_stops_at_the_first_inadmissible_mu():
    """"strongest_prefix" (C16): the grid walked upwards; an admissible μ above an inadmissible one is
    not taken (Big_Nose seed 9 at 80%: μ = 1 rejected, μ = 3 admitted, results A.2zl)."""
    val = {0.0: {"accuracy": 0.80, "cwv": 0.010}, 0.3: {"accuracy": 0.795, "cwv": 0.009},
           1.0: {"accuracy": 0.78, "cwv": 0.008}, 3.0: {"accuracy": 0.79, "cwv": 0.007}}
    assert choose_within_epsilon(val, 0.80, 0.015, "strongest") == 3.0
    assert choose_within_epsilon(val, 0.80, 0.015, "strongest_prefix") == 0.3
    assert choose_within_epsilon(val, 0.80, 0.015) == 0.3  # the default since session 30
    assert choose_within_epsilon(dict(reversed(val.items())), 0.80, 0.015, "strongest_prefix") == 0.3  # by value
    assert choose_within_epsilon(val, 0.80, 0.025, "strongest_prefix") == 3.0  # all admissible: the largest
    assert choose_within_epsilon(val, 0.80, 0.001, "strongest_prefix") == 0.0  # μ = 0.3 already out
    # the smallest μ not admissible (a dense reference): the largest admissible, as "strongest"
    below = {mu: {"accuracy": a, "cwv": 0.0} for mu, a in ((0.0, 0.78), (0.3, 0.80), (1.0, 0.77), (3.0, 0.79))}
    assert choose_within_epsilon(below, 0.81, 0.02, "strongest_prefix") == 3.0
    assert choose_within_epsilon(val, 0.99, 0.01, "strongest_prefix") == 0.0  # none admissible: the most accurate


@given(st.lists(st.floats(0.5, 1.0), min_size=1, max_size=5), st.floats(0.0, 0.1))
def test_strongest_prefix_is_never_stronger_than_strongest_and_equals_it_on_a_monotone_search(accuracies, epsilon):
    mus = [0.0, 0.3, 1.0, 3.0, 10.0][: len(accuracies)]
    val = {mu: {"accuracy": a, "cwv": 0.0} for mu, a in zip(mus, accuracies)}
    prefix = choose_within_epsilon(val, accuracies[0], epsilon, "strongest_prefix")
    assert prefix <= choose_within_epsilon(val, accuracies[0], epsilon, "strongest")
    ok = [a >= accuracies[0] - epsilon for a in accuracies]
    assert all(ok[: mus.index(prefix) + 1])  # every μ up to the choice is admissible
    if ok == sorted(ok, reverse=True):  # admissible, then not: the two rules agree
        assert prefix == choose_within_epsilon(val, accuracies[0], epsilon, "strongest")


def test_choose_mode_accurate_or_the_fairer_within_epsilon():
    val = {"one_shot_finetune": {"accuracy": 0.80, "cwv": 0.004}, "iterative_rewind": {"accuracy": 0.805, "cwv": 0.006}}
    assert choose_mode(val, 0.01) == "iterative_rewind"  # the default: the more accurate
    assert choose_mode(val, 0.01, "fairer_within_epsilon") == "one_shot_finetune"
    assert choose_mode(val, 0.004, "fairer_within_epsilon") == "iterative_rewind"  # 0.5 points down: out
    tied = {"a": {"accuracy": 0.8, "cwv": 0.004}, "b": {"accuracy": 0.8, "cwv": 0.004}}
    assert choose_mode(tied, 0.01) == choose_mode(tied, 0.01, "fairer_within_epsilon") == "a"
    with pytest.raises(ValueError, match="mode_rule.*'accurate', 'fairer_within_epsilon', 'resolved'.*'fastest'"):
        choose_mode(val, 0.01, "fastest")


def _modes(finetune: float, rewind: float) -> dict:
    return {"one_shot_finetune": {"accuracy": finetune, "cwv": 0.0}, "iterative_rewind": {"accuracy": rewind, "cwv": 0.0}}


def test_choose_mode_resolved_keeps_the_fallback_unless_the_split_resolves_the_other():
    """C21 (docs/results/scripts/session39_preregistration.md), on two runs of the kept records by hand."""
    rw = "iterative_rewind"
    # CIFAR-10 95% seed 1: fine-tuning 1.4 points up on 500 images; one SE sqrt(.536 · .464 / 500) = 2.23 points
    assert choose_mode(_modes(0.536, 0.522), 0.01) == "one_shot_finetune"
    assert choose_mode(_modes(0.536, 0.522), 0.01, "resolved", num_val=500, fallback=rw) == rw
    # digits-LT10 80% seed 4: 168/179 against 161/179, 3.91 points; one SE sqrt(.9385 · .0615 / 179) = 1.80 points
    assert choose_mode(_modes(168 / 179, 161 / 179), 0.01, "resolved", num_val=179, fallback=rw) == "one_shot_finetune"
    assert choose_mode(_modes(0.8, 0.8), 0.01, "resolved", num_val=800, fallback=rw) == rw  # a tie: the fallback
    assert choose_mode(_modes(0.7, 0.8), 0.01, "resolved", num_val=10**9, fallback=rw) == rw
    with pytest.raises(ValueError, match="fallback among the modes"):
        choose_mode(_modes(0.9, 0.8), 0.01, "resolved", num_val=800)
    with pytest.raises(ValueError, match="needs a validation split, got 0"):
        choose_mode(_modes(0.9, 0.8), 0.01, "resolved", fallback=rw)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 500), st.integers(0, 500), st.integers(1, 500))
def test_choose_mode_resolved_is_the_accurate_choice_only_beyond_one_standard_error(k_ft, k_rw, extra):
    n = max(k_ft, k_rw) + extra
    val, rw = _modes(k_ft / n, k_rw / n), "iterative_rewind"
    resolved = choose_mode(val, 0.01, "resolved", num_val=n, fallback=rw)
    a = max(k_ft, k_rw) / n
    beyond = k_ft / n - k_rw / n > math.sqrt(a * (1 - a) / n)  # float for float as choose_mode computes it
    assert resolved == ("one_shot_finetune" if beyond else rw)
    assert resolved in (rw, choose_mode(val, 0.01))  # never a mode "accurate" would not pick, but LTH's


def test_effective_epsilon_is_the_split_standard_error_where_that_exceeds_epsilon():
    """C10 (docs/results/scripts/session18_preregistration.md): ε' = max(ε, sqrt(a (1 − a) / n)), by hand."""
    assert effective_epsilon(0.01, 0.4, 500) == 0.01  # "none": ε as given
    assert effective_epsilon(0.01, 0.4, 500, "split_se") == pytest.approx((0.24 / 500) ** 0.5)  # 0.02191
    assert effective_epsilon(0.01, 0.91, 1000, "split_se") == 0.01  # SE 0.00905 < ε
    assert effective_epsilon(0.01, 1.0, 50, "split_se") == 0.01  # no variance at a = 1
    # CIFAR-10-LT, seed 1 at 80% (results A.2y): μ = 1 was 2.0 points below the ticket's 39.0% on 500 images
    val = {0.0: {"accuracy": 0.390, "cwv": 0.051}, 1.0: {"accuracy": 0.370, "cwv": 0.036}}
    assert choose_within_epsilon(val, 0.39, effective_epsilon(0.01, 0.39, 500)) == 0.0
    assert choose_within_epsilon(val, 0.39, effective_epsilon(0.01, 0.39, 500, "split_se")) == 1.0
    with pytest.raises(ValueError, match="epsilon_floor must be one of .*'none', 'split_se'.*'wide'"):
        effective_epsilon(0.01, 0.4, 500, "wide")
    with pytest.raises(ValueError, match="needs a validation split"):
        effective_epsilon(0.01, 0.4, 0, "split_se")


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 0.1), st.floats(0.0, 1.0), st.integers(1, 10_000))
def test_effective_epsilon_never_tightens_and_shrinks_with_the_split(epsilon, accuracy, n):
    wide = effective_epsilon(epsilon, accuracy, n, "split_se")
    assert wide >= epsilon and wide >= effective_epsilon(epsilon, accuracy, 4 * n, "split_se")


def test_epsilon_floor_is_recorded_only_when_set(tmp_path):
    """"none" leaves the record as before session 17; "split_se" (the default) records ε' (a toy validation split
    of n examples: ε' = max(0.01, SE of the μ = 0 candidate's validation accuracy))."""
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    kw = dict(fraction=0.5, selection="magnitude", pruning="one_shot", disparity_weights=(0.0, 1.0), disparity="worst_cell")
    dense = tmp_path / "dense"
    plain = Ballot(**kw, epsilon_floor="none").run(task, CFG, 0.5, tmp_path / "none", dense_dir=dense)
    floored = Ballot(**kw).run(task, CFG, 0.5, tmp_path / "se", dense_dir=dense)
    assert "epsilon_floor" not in plain and "epsilon_effective" not in plain
    a, n = floored["search"]["0"]["accuracy"], task.data.val.num_examples
    assert floored["epsilon_floor"] == "split_se"
    assert floored["epsilon_effective"] == pytest.approx(max(0.01, (a * (1 - a) / n) ** 0.5))
    with pytest.raises(ValueError, match="epsilon_floor must be one of"):
        Ballot(**kw, epsilon_floor="wide").run(task, CFG, 0.5, tmp_path / "bad", dense_dir=dense)


def test_a_task_without_validation_examples_is_refused_before_training_unless_nothing_reads_them(tmp_path):
    """Whatever chooses or weighs on validation (the mode, μ, the vote's 1/a_g, val conflict statistics, the
    groups of adversary_reach / distill_groups) is refused upfront, each named; one fixed mode at one μ with
    |w| reads nothing there and runs (epsilon_effective is then the ε given: nothing was chosen)."""
    toy = toy_dataset()
    no_val = bj.data.Dataset(toy.train, bj.data.Split(*(a[:0] for a in toy.val)), toy.test, toy.info)
    task = Task(mlp_model(16), no_val, data_mesh(jax.devices()[:1]))
    fixed = dict(fraction=0.5, pruning="one_shot", selection="magnitude", disparity_weights=(0.0,))
    refused = {
        "pruning='auto'": dict(fixed, pruning="auto", rewind_selection="magnitude"),
        "disparity_weights=(0.0, 1.0)": dict(fixed, disparity_weights=(0.0, 1.0)),
        "selection='vote'": dict(fixed, selection="vote", vote_kind="saliency"),
        "rewind_selection='vote'": dict(fixed, pruning="auto", rewind_selection="vote"),  # the field that votes is named
        "score_split='val'": dict(fixed, selection="conflict", score_split="val"),
        "adversary_reach='below_mean'": dict(fixed, disparity_weights=(0.0, 1.0), adversary_reach="below_mean"),
        "distill_groups='above_mean'": dict(fixed, distill=1.0, distill_groups="above_mean"),
    }
    for i, (field, kw) in enumerate(refused.items()):
        with pytest.raises(ValueError, match=f"validation split for .*{re.escape(field)}.*has 0 examples"):
            Ballot(**kw).run(task, CFG, 0.5, tmp_path / f"refused_{i}")
        assert not (tmp_path / f"refused_{i}").exists()  # nothing trained
    record = Ballot(**fixed).run(task, CFG, 0.5, tmp_path / "fixed")
    assert (record["disparity_weight"], record["epsilon_effective"]) == (0.0, 0.01)
    assert Ballot(**dict(fixed, selection="conflict")).run(task, CFG, 0.5, tmp_path / "conflict")["selection"] == "conflict"


def test_disparity_weight_search_shares_one_watched_dense_phase(tmp_path):
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    method = Ballot(fraction=0.5, selection="vote", vote_kind="saliency", pruning="one_shot", rewind=False,
                    vote_points=3, disparity_weights=(0.0, 1.0), disparity="worst_cell")
    record = method.run(task, CFG, 0.5, tmp_path)
    assert record["disparity_weight"] in (0.0, 1.0)
    assert set(record["search"]) == {"0", "1"}
    assert record["search_steps"] == method.retrain_config(CFG, 1).steps
    assert record["search_time_s"] > 0 and record["train_time_s"] == pytest.approx(
        sum(lv["train_time_s"] for lv in record["levels"]) + record["search_time_s"])
    assert (tmp_path / "mu_0" / "level_00" / "final").is_dir()
    assert not (tmp_path / "mu_1" / "level_00").exists()  # the second candidate reuses the first's dense phase
    chosen = record["search"][f"{record['disparity_weight']:g}"]
    assert record["val"]["accuracy"] == chosen["accuracy"]
    assert choose_within_epsilon(
        {float(k): v for k, v in record["search"].items()}, record["search"]["0"]["accuracy"], 0.01, method.mu_rule
    ) == record["disparity_weight"] and record["mu_rule"] == "strongest_prefix"


def test_epsilon_reference_ticket_compares_with_the_first_candidate(tmp_path):
    """epsilon_reference="ticket": the same candidates (resumed, nothing retrained), μ admitted
    against the μ = 0 ticket's validation accuracy instead of the dense model's."""
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    method = Ballot(**ONE_SHOT_W, epsilon=0.0, epsilon_reference="dense", epsilon_floor="none")  # ε exactly 0
    dense = method.run(task, CFG, 0.5, tmp_path)
    ticket = dataclasses.replace(method, epsilon_reference="ticket").run(task, CFG, 0.5, tmp_path)
    assert ticket["search"] == dense["search"]  # the same candidates, resumed
    val = {float(k): v for k, v in ticket["search"].items()}
    assert ticket["disparity_weight"] == choose_within_epsilon(val, val[0.0]["accuracy"], 0.0, "strongest")
    assert (ticket["epsilon_reference"], dense["epsilon_reference"]) == ("ticket", "dense")
    assert dense["disparity_weight"] == choose_within_epsilon(val, dense["levels"][0]["val"]["accuracy"], 0.0, "strongest")
    with pytest.raises(ValueError, match="epsilon_reference.*'dense', 'ticket'"):
        dataclasses.replace(method, epsilon_reference="lth").run(task, CFG, 0.5, tmp_path)


def test_choose_disparity_takes_the_lowest_validation_cwv_ties_the_first():
    val = {"worst_cell": {"accuracy": 0.9, "cwv": 0.002}, "worst_group": {"accuracy": 0.8, "cwv": 0.001}}
    assert choose_disparity(val) == "worst_group"
    assert choose_disparity({**val, "worst_group": val["worst_cell"]}) == "worst_cell"
    assert choose_disparity(dict(reversed(list({**val, "worst_group": val["worst_cell"]}.items())))) == "worst_group"


def test_cells_are_groups():
    split = toy_dataset().train
    assert not cells_are_groups(split)  # two groups, both labels in each
    assert cells_are_groups(split._replace(group=split.y))
    assert cells_are_groups(split._replace(group=np.where(split.y == 1, 2, split.group * 0)))  # one label a group


ONE_SHOT_W = dict(fraction=0.5, selection="magnitude", pruning="one_shot", rewind=False, disparity_weights=(0.0, 1.0))


def test_disparity_alternatives_run_each_search_and_keep_the_fairer_on_validation(tmp_path):
    """The μ search runs for worst_cell and for worst_group (μ = 0, no D term, trained once); each
    D's candidates equal those of a run with that D alone, number for number; the D whose chosen
    candidate has the lower validation CWV wins, and every extra candidate is search cost."""
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    dense = tmp_path / "dense"
    record = Ballot(**ONE_SHOT_W, disparity="worst_cell", disparity_alternatives=("worst_group",)).run(
        task, CFG, 0.75, tmp_path / "both", dense_dir=dense)
    assert (tmp_path / "both" / "worst_group" / "mu_1" / "level_01" / "final").is_dir()
    assert not (tmp_path / "both" / "worst_group" / "mu_0").exists()
    alone = {d: Ballot(**ONE_SHOT_W, disparity=d).run(task, CFG, 0.75, tmp_path / d, dense_dir=dense)
             for d in ("worst_cell", "worst_group")}
    assert record["search"] == alone["worst_cell"]["search"]
    assert set(record["disparity_search"]) == {"worst_cell", "worst_group"}
    for d, r in alone.items():
        assert record["disparity_search"][d]["search"] == r["search"]
        assert record["disparity_search"][d]["disparity_weight"] == r["disparity_weight"]
    assert alone["worst_cell"]["search"]["1"] != alone["worst_group"]["search"]["1"]  # two objectives
    picked = {d: alone[d]["search"][f"{alone[d]['disparity_weight']:g}"] for d in alone}
    assert record["disparity"] == choose_disparity(picked)
    winner = alone[record["disparity"]]
    assert (record["disparity_weight"], record["val"], record["test"]) == (
        winner["disparity_weight"], winner["val"], winner["test"])
    assert record["search_steps"] == 2 * alone["worst_cell"]["search_steps"] > 0  # two extra candidates
    assert (tmp_path / "both" / record["run_dir"] / "level_01" / "final").is_dir()


def test_disparity_alternatives_train_nothing_more_when_cells_are_groups(tmp_path):
    data = toy_dataset()
    data = data._replace(**{s: getattr(data, s)._replace(group=getattr(data, s).y) for s in ("train", "val", "test")})
    task = Task(mlp_model(16), data, data_mesh(jax.devices()[:1]))
    dense = tmp_path / "dense"
    cell = dict(ONE_SHOT_W, disparity="worst_cell")
    record = Ballot(**cell, disparity_alternatives=("worst_group",)).run(task, CFG, 0.75, tmp_path / "a", dense_dir=dense)
    plain = Ballot(**cell).run(task, CFG, 0.75, tmp_path / "b", dense_dir=dense)
    assert not (tmp_path / "a" / "worst_group").exists()
    assert record["disparity"] == "worst_cell" and list(record["disparity_search"]) == ["worst_cell"]
    for k in ("search", "search_steps", "disparity_weight", "val", "test", "run_dir"):
        assert record[k] == plain[k], k
    with pytest.raises(ValueError, match="disparity_alternatives needs a μ search"):
        Ballot(**{**cell, "disparity_weights": ()}, disparity_alternatives=("worst_group",)).run(
            task, CFG, 0.75, tmp_path / "c")


def test_auto_mode_keeps_the_more_accurate_mode_and_counts_the_other_as_search(tmp_path):
    """pruning="auto": both modes retrain at the first μ; the chosen one (the higher validation
    accuracy) equals the fixed-mode run of that mode, number for number; the other mode's training
    (its own watched dense phase too when it votes) is part of ``search_steps``. The rewinding mode
    selects by ``rewind_selection`` (here |w|, which shares the driver's dense phase)."""
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    common = dict(fraction=0.5, selection="vote", rewind_selection="magnitude", vote_kind="saliency", vote_points=3,
                  disparity_weights=(0.0, 1.0))
    dense = tmp_path / "dense"
    record = Ballot(pruning="auto", **common).run(task, CFG, 0.75, tmp_path / "auto", dense_dir=dense)
    assert set(record["mode_search"]) == {"one_shot_finetune", "iterative_rewind"}
    acc = {m: v["accuracy"] for m, v in record["mode_search"].items()}
    expected_mode = "one_shot_finetune" if acc["one_shot_finetune"] >= acc["iterative_rewind"] else "iterative_rewind"
    assert record["mode"] == expected_mode
    assert (tmp_path / "auto" / "one_shot_finetune" / "mu_0" / "level_00" / "votes").is_dir()  # the vote's own
    assert not (tmp_path / "auto" / "iterative_rewind" / "mu_0" / "level_00").exists()  # |w| shares `dense`

    def fixed_mode(mode):
        pruning, rewind, field = ballot_method.AUTO_MODES[mode]
        return Ballot(pruning=pruning, rewind=rewind, **{**common, "selection": common[field]})

    assert record["selection"] == {"one_shot_finetune": "vote", "iterative_rewind": "magnitude"}[expected_mode]
    fixed = fixed_mode(expected_mode).run(task, CFG, 0.75, tmp_path / "fixed", dense_dir=dense)
    for key in ("kept", "disparity_weight", "search", "selection"):
        assert record[key] == fixed[key], key
    assert record["test"] == fixed["test"] and record["val"] == fixed["val"]
    other = next(m for m in ballot_method.AUTO_MODES if m != expected_mode)
    other_method = fixed_mode(other)
    levels = 1 if other_method.pruning == "one_shot" else len(bj.pruning_plan(8 * 16 + 16 * 2, 0.75, 0.5))
    per_level = other_method.retrain_config(CFG, 2).steps - (CFG.rewind_step if other_method.rewind else 0)
    own_dense = other_method.selection == "vote"
    assert record["search_steps"] == fixed["search_steps"] + levels * per_level + own_dense * CFG.steps

    def seconds(directory, levels):
        return sum(checkpoints.read_json(directory / f"level_{i:02d}" / "record.json")["train_time_s"] for i in levels)

    chosen_levels = len(record["levels"]) - 1
    mu_loser = "mu_1" if record["disparity_weight"] == 0.0 else "mu_0"
    search_time = (seconds(tmp_path / "auto" / other / "mu_0", range(0 if own_dense else 1, levels + 1))
                   + seconds(tmp_path / "auto" / expected_mode / mu_loser, range(1, chosen_levels + 1)))
    assert record["search_time_s"] == pytest.approx(search_time)
    own = sum(lv["train_time_s"] for lv in record["levels"])
    assert record["train_time_s"] == pytest.approx(own + search_time)  # the search is in the method's budget
    assert (tmp_path / "auto" / other / "mu_0" / "level_01" / "record.json").exists()
    assert not (tmp_path / "auto" / other / "mu_1").exists()  # μ is searched in the chosen mode only
    assert record["run_dir"] == f"{expected_mode}/mu_{record['disparity_weight']:g}"
    assert (tmp_path / "auto" / record["run_dir"] / f"level_{chosen_levels:02d}" / "final").is_dir()
    with pytest.raises(ValueError, match="fixed mode"):
        Ballot(pruning="auto").retrain_config(CFG)
    # mode_rule="fairer_within_epsilon" re-chooses among the same μ = 0 candidates (resumed): with a
    # wide ε the fairer mode on validation, whatever its accuracy
    fairer = Ballot(pruning="auto", mode_rule="fairer_within_epsilon", epsilon=1.0, **common).run(
        task, CFG, 0.75, tmp_path / "auto", dense_dir=dense)
    assert fairer["mode_search"] == record["mode_search"] and (record["mode_rule"], fairer["mode_rule"]) == (
        "accurate", "fairer_within_epsilon")
    cwv = {m: v["cwv"] for m, v in record["mode_search"].items()}
    assert fairer["mode"] == min(cwv, key=lambda m: (cwv[m], list(cwv).index(m)))
    # mode_rule="resolved" (C21): the rewinding mode unless fine-tuning is more accurate by more than one standard
    # error of this task's validation split; the record of the mode it keeps is that mode's fixed run
    resolved = Ballot(pruning="auto", mode_rule="resolved", **common).run(task, CFG, 0.75, tmp_path / "auto", dense_dir=dense)
    n_val, a = task.data.val.num_examples, max(acc.values())
    beyond = acc["one_shot_finetune"] - acc["iterative_rewind"] > math.sqrt(a * (1 - a) / n_val)
    assert (resolved["mode_rule"], resolved["mode_search"]) == ("resolved", record["mode_search"])
    assert resolved["mode"] == ("one_shot_finetune" if beyond else "iterative_rewind")
    kept = fixed_mode(resolved["mode"]).run(task, CFG, 0.75, tmp_path / "fixed_resolved", dense_dir=dense)
    assert (resolved["test"], resolved["disparity_weight"]) == (kept["test"], kept["disparity_weight"])
    with pytest.raises(ValueError, match="mode_rule.*'accurate', 'fairer_within_epsilon'"):
        Ballot(pruning="auto", mode_rule="fairest").run(task, CFG, 0.75, tmp_path / "bad")


def test_magnitude_selection_with_rewinding_at_mu_0_is_lth_number_for_number(tmp_path):
    """auto's rewinding mode at μ = 0 is Standard LTH: the same masks and the same metrics, so its
    other μ candidates measure the refined training alone."""
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    dense = tmp_path / "dense"
    lth = LTH(fraction=0.5).run(task, CFG, 0.75, tmp_path / "lth", dense_dir=dense)
    ours = Ballot(fraction=0.5, selection="magnitude", pruning="iterative", rewind=True, disparity_weights=(0.0,))
    record = ours.run(task, CFG, 0.75, tmp_path / "ballot", dense_dir=dense)
    assert len(record["levels"]) == len(lth["levels"]) > 2
    for a, b in zip(record["levels"], lth["levels"]):
        assert (a["kept"], a["val"], a["test"]) == (b["kept"], b["val"], b["test"])
    like = init_state(task, CFG).mask
    for level in range(1, len(lth["levels"])):
        chex.assert_trees_all_equal(
            checkpoints.load_item(tmp_path / "lth" / f"level_{level:02d}" / "mask", like),
            checkpoints.load_item(tmp_path / "ballot" / "mu_0" / f"level_{level:02d}" / "mask", like),
        )


def test_the_default_is_the_documented_one():
    """One default for every dataset (docs/method.md §5.5-5.7): the mode (one shot by the saliency
    vote + fine-tuning, or LTH's iterative |w| + rewinding) chosen on validation, the adversarial term (since
    session 14; the worst-cell reweighting before) with μ chosen on
    validation under ε = 1 point."""
    b = Ballot()
    assert (b.selection, b.rewind_selection, b.vote_kind, b.pruning) == ("vote", "magnitude", "saliency", "auto")
    assert (b.disparity, b.adversary_balance, b.disparity_weights, b.epsilon, b.mu_rule, b.epsilon_reference) == (
        "adversary", "groups", (0.0, 0.3, 1.0, 3.0), 0.01, "strongest_prefix", "ticket")  # grid: C12, session 21;
    # μ rule: C16, session 30 (session29_preregistration.md)
    assert b.epsilon_floor == "split_se"  # C10, decided by R14 in session 17 (session18_preregistration.md)
    from experiments import celeba, cifar10, cifar10_lt, cifar100, digits, synthetic, tinyimagenet, utkface

    for module in (celeba, cifar10, cifar10_lt, cifar100, digits, synthetic, tinyimagenet, utkface):
        options = module.get_config().ballot
        for name in ("selection", "rewind_selection", "vote_kind", "pruning", "rewind", "disparity", "disparity_weight",
                     "disparity_weights", "epsilon", "mu_rule", "epsilon_reference", "disparity_temperature",
                     "disparity_decay", "adversary_balance", "epsilon_floor"):
            assert options[name] == getattr(b, name), (module.__name__, name)


def test_normalize_columns_output_axis_zero_is_the_transposed_layout():
    x = np.random.default_rng(0).normal(size=(4, 3, 2)).astype(np.float32)  # [out, in, k] (Equinox-like)
    t = np.moveaxis(x, 0, -1)  # [in, k, out]
    np.testing.assert_allclose(np.moveaxis(vote.normalize_columns(x, output_axis=0), 0, -1),
                               vote.normalize_columns(t), rtol=1e-6)
