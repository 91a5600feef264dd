"""FairScratch's two presets: the authors' (Tang et al., CVPR 2023) and ours.

Per-layer top-k at equal density, only the scores trained, the authors' relaxed demographic-parity
penalty against a NumPy reference (and against their formula), preset="ours" = the earlier
defaults, the per-epoch cosine, and the validation rule that picks λ.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ballot_jax as bj
from ballot_jax import objectives, pruning
from ballot_jax.data.base import Split
from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig
from ballot_jax.engine.mesh import data_mesh
from ballot_jax.engine.model import Model
from ballot_jax.methods import edge_popup, fairscratch_objective, fairscratch_training
from ballot_jax.methods.fairscratch import FairScratch
from engine_fixtures import mlp_model, toy_dataset

CFG = TrainConfig(steps=10, batch_size=16, checkpoint_every=0)


def task(model=None, data=None):
    return Task(model or mlp_model(), data or toy_dataset(), data_mesh(jax.devices()[:1]))


def norm_mlp(hidden: int = 16, num_classes: int = 2) -> Model:
    """dense (+bias) -> layer norm (scale, shift) -> relu -> dense head (+bias): every kind of free param."""

    def init(rng, x):
        d = int(np.prod(x.shape[1:]))
        k1, k2 = jax.random.split(rng)
        params = {
            "hidden": {"kernel": jax.random.normal(k1, (d, hidden)) / np.sqrt(d), "bias": jnp.zeros(hidden)},
            "norm": {"scale": jnp.ones(hidden), "bias": jnp.zeros(hidden)},
            "out": {"kernel": jax.random.normal(k2, (hidden, num_classes)) / np.sqrt(hidden),
                    "bias": jnp.zeros(num_classes)},
        }
        return params, {}

    def apply(params, model_state, x, train, rng):
        del train, rng
        h = x.reshape(x.shape[0], -1) @ params["hidden"]["kernel"] + params["hidden"]["bias"]
        h = (h - h.mean(-1, keepdims=True)) / jnp.sqrt(h.var(-1, keepdims=True) + 1e-5)
        h = jax.nn.relu(h * params["norm"]["scale"] + params["norm"]["bias"])
        return h @ params["out"]["kernel"] + params["out"]["bias"], model_state

    return Model(init, apply)


# ------------------------------------------------------------------------------------------------
# Per-layer top-k


def test_layer_scope_keeps_every_layer_at_the_same_density_at_every_step():
    sparsity = 0.7
    method = FairScratch(score_learning_rate=0.1)  # the authors' preset; a larger lr so the masks move
    assert method.settings.scope == "layer"
    t = task()
    s = method.setup(t, CFG, sparsity)
    counts = s["counts"]
    sizes = [8 * 16, 16 * 2]  # hidden and the classifier: both pruned
    total = bj.num_keep_for_sparsity(sum(sizes), sparsity)
    assert sum(counts) == total
    density = total / sum(sizes)
    for c, n in zip(counts, sizes):
        assert math.floor(density * n) <= c <= math.ceil(density * n), (counts, density)
    seen = []
    top_k = jax.jit(lambda scores: edge_popup.top_k_mask(scores, counts))

    def check(step, state):
        mask = top_k(state.params["scores"])
        assert bj.kept_per_leaf(mask) == counts
        seen.append(jax.device_get(mask))

    final = s["trainer"].train(s["state"], s["train_config"], 30, data_seed=0, on_step=check)
    check(30, final)
    assert len(seen) == 31
    changed = [not all(np.array_equal(a, b) for a, b in zip(bj.mask_leaves(seen[0]), bj.mask_leaves(m)))
               for m in seen[1:]]
    assert any(changed)  # the masks did move: the counts were checked on real re-rankings


# ------------------------------------------------------------------------------------------------
# Only the scores train


def _short_run(method, steps=15):
    t = task(model=norm_mlp())
    s = method.setup(t, CFG, 0.5)
    initial = jax.device_get(s["state"])
    final = jax.device_get(s["trainer"].train(s["state"], s["train_config"], steps, data_seed=0))
    return initial, final


def test_authors_preset_trains_only_the_scores():
    wd = 1e-2  # non-zero weight decay: it would move every param it reached, gradient or not
    initial, final = _short_run(FairScratch(score_weight_decay=wd, score_learning_rate=0.1))
    assert sorted(initial.params["free"]) == ["hidden", "norm", "out"]
    # weights, biases and the norm's scale and shift: bitwise unchanged, at their init (1, 0)
    chex.assert_trees_all_equal(final.params["frozen"], initial.params["frozen"])
    chex.assert_trees_all_equal(final.params["free"], initial.params["free"])
    np.testing.assert_array_equal(final.params["free"]["norm"]["scale"], 1.0)
    for name in ("hidden", "norm", "out"):
        np.testing.assert_array_equal(final.params["free"][name]["bias"], 0.0)
    for name in ("hidden", "out"):
        assert not np.array_equal(final.params["scores"][name]["kernel"], initial.params["scores"][name]["kernel"])
    # weight decay reaches the scores: the same run without it ends elsewhere
    _, no_wd = _short_run(FairScratch(score_weight_decay=0.0, score_learning_rate=0.1))
    assert not np.array_equal(no_wd.params["scores"]["hidden"]["kernel"], final.params["scores"]["hidden"]["kernel"])


def test_without_the_freeze_the_same_run_moves_biases_and_norm_params():
    # The check above can fail: with the free params trainable, every one of them moves.
    initial, final = _short_run(FairScratch(score_weight_decay=1e-2, score_learning_rate=0.1, train_unprunable=True))
    chex.assert_trees_all_equal(final.params["frozen"], initial.params["frozen"])  # weights stay frozen
    for name, leaf in (("hidden", "bias"), ("norm", "scale"), ("norm", "bias"), ("out", "bias")):
        assert not np.array_equal(final.params["free"][name][leaf], initial.params["free"][name][leaf]), (name, leaf)


# ------------------------------------------------------------------------------------------------
# The relaxed demographic-parity penalty


def reference_relaxation(logits, y_train, g_train, g_batch, kind):
    """Loop-by-loop NumPy: (1/B) Σ_i φ(s_i f_i) / π_{g_i} over examples of groups with a direction."""
    logits = np.asarray(logits, np.float64)
    f = logits[:, 1] - logits[:, 0]
    rate = y_train.mean()
    total = 0.0
    for fi, gi in zip(f, g_batch):
        members = y_train[g_train == gi]
        if members.size == 0 or members.mean() == rate:
            continue
        t = (1.0 if members.mean() < rate else -1.0) * fi
        phi = {"dp_logistic": np.log1p(np.exp(-t)), "dp_linear": -t, "dp_hinge": max(0.0, 1.0 - t)}[kind]
        total += phi / (members.size / y_train.size)
    return total / f.size


@pytest.mark.parametrize("kind", objectives.DP_RELAXATIONS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dp_relaxation_matches_numpy_reference(kind, seed):
    rng = np.random.default_rng(seed)
    num_groups = 4  # group 3 has no training example, group 2 none in the batch
    g_train = rng.integers(0, 3, size=200)
    y_train = (rng.random(200) < np.array([0.2, 0.5, 0.8])[g_train]).astype(np.int32)
    g_batch = rng.choice([0, 1, 3], size=24)
    logits = rng.normal(size=(24, 2)).astype(np.float32) * 2
    priors, direction = objectives.dp_relaxation_setup(y_train, g_train, num_groups)
    np.testing.assert_allclose(priors, np.bincount(g_train, minlength=4) / 200, rtol=1e-6)
    assert np.asarray(direction)[3] == 0
    batch = {"y": jnp.asarray(rng.integers(0, 2, size=24)), "group": jnp.asarray(g_batch)}
    value, grad = jax.value_and_grad(lambda z: objectives.dp_relaxation(z, batch, priors, direction, kind))(
        jnp.asarray(logits))
    expected = reference_relaxation(logits, y_train, g_train, g_batch, kind)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(grad))
    ce = optax.softmax_cross_entropy_with_integer_labels(jnp.asarray(logits), batch["y"]).mean()
    objective = objectives.relaxed_dp_objective(priors, direction, 0.18, kind)
    np.testing.assert_allclose(float(objective(jnp.asarray(logits), batch)), float(ce) + 0.18 * expected, rtol=1e-5)


def _log_sigmoid(t):
    return -np.log1p(np.exp(-t))


@pytest.mark.parametrize("lower", [1, 0])
def test_dp_relaxation_is_the_authors_floss_dp_with_two_groups(lower):
    # Their trainers/default.py, λ = 1: floss_dp (CelebA: group 1 = Male, who smile less, pushed up)
    # or floss_dp_2 (group 0 pushed up). We push up the group with the lower training positive rate.
    rng = np.random.default_rng(7)
    g_train = (rng.random(500) < 0.4).astype(np.int32)
    rates = np.where(g_train == lower, 0.3, 0.6)
    y_train = (rng.random(500) < rates).astype(np.int32)
    priors, direction = objectives.dp_relaxation_setup(y_train, g_train, 2)
    expected_direction = np.array([-1.0, 1.0]) if lower == 1 else np.array([1.0, -1.0])
    np.testing.assert_array_equal(direction, expected_direction)
    g = rng.integers(0, 2, size=32)
    logits = rng.normal(size=(32, 2)).astype(np.float32)
    f = (logits[:, 1] - logits[:, 0]).astype(np.float64)
    up, down = g == lower, g != lower
    p_up, p_down = np.mean(g_train == lower), np.mean(g_train != lower)
    literal = {
        "dp_logistic": -(_log_sigmoid(f[up]).sum() / p_up + _log_sigmoid(-f[down]).sum() / p_down) / 32,
        "dp_linear": (-f[up].sum() / p_up + f[down].sum() / p_down) / 32,
        "dp_hinge": (np.maximum(0, 1 - f[up]).sum() / p_up + np.maximum(0, 1 + f[down]).sum() / p_down) / 32,
    }
    batch = {"y": jnp.zeros(32, jnp.int32), "group": jnp.asarray(g)}
    for kind, value in literal.items():
        got = objectives.dp_relaxation(jnp.asarray(logits), batch, priors, direction, kind)
        np.testing.assert_allclose(float(got), value, rtol=1e-5, atol=1e-6)


def test_dp_relaxation_without_label_disparity_or_binary_targets():
    y = np.array([1, 0, 1, 0]); g = np.array([0, 0, 1, 1])  # equal positive rates: nothing to correct
    priors, direction = objectives.dp_relaxation_setup(y, g, 2)
    np.testing.assert_array_equal(direction, [0.0, 0.0])
    batch = {"y": jnp.asarray(y), "group": jnp.asarray(g)}
    z = jnp.ones((4, 2))
    assert float(objectives.dp_relaxation(z, batch, priors, direction)) == 0.0
    with pytest.raises(ValueError):
        objectives.dp_relaxation_setup(np.array([0, 2]), np.array([0, 1]), 2)
    with pytest.raises(ValueError):
        objectives.dp_relaxation(jnp.ones((4, 3)), batch, priors, direction)


# ------------------------------------------------------------------------------------------------
# Presets

# FairScratch's defaults before the authors' preset existed (the variant preset="ours" keeps).
TODAYS_DEFAULTS = {
    "scope": "global", "weight_init": "signed_kaiming", "scale_fan": False, "surrogate": "auto",
    "fairness_weight": 1.0, "train_unprunable": True, "select_lambda": False, "score_optimizer": "sgd",
    "score_learning_rate": 0.1, "score_momentum": 0.9, "score_weight_decay": 0.0, "score_schedule": "cosine",
}
AUTHORS = {
    "scope": "layer", "weight_init": "signed_kaiming", "scale_fan": False, "fairness_weight": 0.12,
    "train_unprunable": False, "select_lambda": False, "score_optimizer": "sgd", "score_learning_rate": 0.01,
    "score_momentum": 0.9, "score_weight_decay": 1e-4, "score_schedule": "epoch_cosine",
}


def test_ours_preset_is_the_earlier_default_and_authors_is_the_default():
    ours, authors = FairScratch(preset="ours"), FairScratch()
    assert authors.preset == "authors"
    assert {k: getattr(ours.settings, k) for k in TODAYS_DEFAULTS} == TODAYS_DEFAULTS
    assert {k: getattr(authors.settings, k) for k in AUTHORS} == AUTHORS
    assert ours.settings.lambda_grid == authors.settings.lambda_grid == (0.0, 0.06, 0.12, 0.18, 0.24)
    # an explicit field wins over the preset
    assert FairScratch(preset="ours", scope="layer").settings.scope == "layer"
    assert FairScratch(fairness_weight=0.0).settings.fairness_weight == 0.0
    # surrogates: ours "dp"/"loss_var", the authors' relaxation on binary targets ("loss_var" otherwise)
    assert (ours.surrogate_kind(2), ours.surrogate_kind(10)) == ("dp", "loss_var")
    assert (authors.surrogate_kind(2), authors.surrogate_kind(10)) == ("dp_logistic", "loss_var")
    with pytest.raises(ValueError):
        FairScratch(surrogate="dp_hinge").surrogate_kind(10)
    with pytest.raises(ValueError):
        FairScratch(preset="paper")
    with pytest.raises(ValueError):
        FairScratch(select_lambda=True, fairness_weight=0.1)

    t = task()
    s = ours.setup(t, CFG, 0.5)
    cfg = s["train_config"]
    assert (cfg.optimizer, cfg.learning_rate, cfg.momentum, cfg.weight_decay, cfg.schedule) == (
        "sgd", 0.1, 0.9, 0.0, "cosine")
    assert isinstance(s["counts"], int) and s["surrogate"] == "dp"  # global top-k
    assert all(m is None for m in jax.tree.leaves(s["state"].mask["free"], is_leaf=lambda x: x is None))
    assert type(s["trainer"]) is Trainer  # the engine's optimizer, per-step cosine
    logits = jnp.array([[0.0, 2.0], [0.5, 1.0], [2.0, 0.0], [1.0, -1.0]])
    batch = {"y": jnp.array([1, 0, 1, 0]), "group": jnp.array([0, 0, 1, 1])}
    np.testing.assert_allclose(
        float(s["trainer"].objective(logits, batch)), float(objectives.fair_objective(2, "dp", 1.0)(logits, batch)))

    a = authors.setup(t, CFG, 0.5)
    assert isinstance(a["counts"], list) and a["surrogate"] == "dp_logistic"
    assert all(not np.any(m) for m in jax.tree.leaves(a["state"].mask["free"]))  # free params frozen
    assert (a["train_config"].learning_rate, a["train_config"].weight_decay) == (0.01, 1e-4)


def test_the_scores_schedule_drops_the_runs_warm_up_unless_it_warms_up_too():
    # A run that warms up (experiments.celeba: warmup_cosine, 30 steps) must not make FairScratch's own
    # schedule invalid: the authors' epoch cosine and "cosine" have no warm-up; "warmup_cosine" keeps the run's.
    warm = TrainConfig(steps=100, batch_size=16, checkpoint_every=0, schedule="warmup_cosine", warmup_steps=30)
    for preset in ("authors", "ours"):
        cfg = FairScratch(preset=preset).train_config(warm, 200)
        assert (cfg.schedule, cfg.warmup_steps, cfg.steps) == ("cosine", 0, 200)
    cfg = FairScratch(score_schedule="warmup_cosine").train_config(warm, 200)
    assert (cfg.schedule, cfg.warmup_steps) == ("warmup_cosine", 30)


def test_epoch_cosine_is_held_within_each_epoch():
    schedule = fairscratch_training.epoch_cosine_schedule(0.01, steps_per_epoch=4, total_steps=12)  # E = 3 epochs
    lrs = np.array([float(schedule(jnp.int32(i))) for i in range(12)])
    np.testing.assert_allclose(lrs, np.repeat([0.01, 0.0075, 0.0025], 4), rtol=1e-6)
    partial = fairscratch_training.epoch_cosine_schedule(1.0, steps_per_epoch=4, total_steps=10)  # E = ⌈10 / 4⌉ = 3
    assert float(partial(jnp.int32(9))) == pytest.approx(0.25)


# ------------------------------------------------------------------------------------------------
# Choosing λ


def test_select_fairness_weight_on_hand_made_tables():
    pick = fairscratch_objective.select_fairness_weight
    # (λ, val accuracy, val unfairness); reference λ = 0 at 0.90, so 0.89 is still admissible
    table = [(0.0, 0.90, 0.20), (0.06, 0.895, 0.15), (0.12, 0.89, 0.10), (0.18, 0.88, 0.02), (0.24, 0.85, 0.0)]
    assert pick(table) == 2
    assert pick(table, tolerance=0.05) == 4
    assert pick(table, tolerance=0.0) == 0  # only the reference is admissible
    # the reference is the smallest λ wherever it sits; ties go to the smaller λ
    shuffled = [(0.12, 0.91, 0.05), (0.06, 0.93, 0.05), (0.0, 0.92, 0.30)]
    assert pick(shuffled) == 1
    # a more accurate λ than the reference is admissible; NaN unfairness is never preferred
    assert pick([(0.0, 0.80, 0.3), (0.06, 0.95, float("nan")), (0.12, 0.85, 0.29)]) == 2
    assert pick([(0.0, 0.80, 0.3)]) == 0
    with pytest.raises(ValueError):
        pick([])


def easy_task():
    data = toy_dataset(n=512)
    easy = [Split(s.x, (s.x[:, 0] + s.x[:, 1] > 0).astype(np.int32), s.group)
            for s in (data.train, data.val, data.test)]
    return task(mlp_model(hidden=64), data._replace(train=easy[0], val=easy[1], test=easy[2]))


def test_authors_preset_learns_and_the_sweep_reports_its_choice_and_cost(tmp_path):
    # The easy toy rule y = [x0 + x1 > 0]; the authors' preset swept over part of their λ grid (the
    # whole grid costs 5 runs). Measured (steps=40, seeds 0-2): chosen λ's test accuracy 0.93-0.95.
    t = easy_task()
    cfg = TrainConfig(steps=40, batch_size=32, checkpoint_every=0)
    method = FairScratch(select_lambda=True, lambda_grid=(0.0, 0.12, 0.24))
    record = method.run(t, cfg, 0.5, tmp_path)
    sweep = record["lambda_sweep"]
    assert [r["fairness_weight"] for r in sweep] == [0.0, 0.12, 0.24]
    assert record["selection_metric"] == "demographic_parity_difference"
    rows = [(r["fairness_weight"], r["val"]["accuracy"], r["val"]["demographic_parity_difference"]) for r in sweep]
    chosen = fairscratch_objective.select_fairness_weight(rows, 0.01)
    assert record["fairness_weight"] == sweep[chosen]["fairness_weight"]
    assert record["val"]["accuracy"] == sweep[chosen]["val"]["accuracy"]
    assert record["search_steps"] == 3 * record["budget_steps"]
    assert record["train_time_s"] == pytest.approx(sum(r["train_time_s"] for r in sweep))
    assert record["kept"] == bj.num_keep_for_sparsity(8 * 64 + 64 * 2, 0.5)
    assert record["optimizer"]["schedule"] == "epoch_cosine" and record["train_unprunable"] is False
    assert record["test"]["accuracy"] >= 0.9, record["test"]["accuracy"]
    like = _sparse_like(method, t, cfg)  # the top-level sparse model is the chosen λ's
    chosen_sparse = checkpoints.load_item(tmp_path / f"lambda_{chosen:02d}" / "sparse", like)
    chex.assert_trees_all_equal(checkpoints.load_item(tmp_path / "sparse", like), chosen_sparse)
    assert method.run(t, cfg, 0.5, tmp_path) == record  # finished: skipped


def _sparse_like(method, t, cfg):
    s = method.setup(t, cfg, 0.5)
    mask = edge_popup.top_k_mask(s["state"].params["scores"], s["counts"])
    return {"params": edge_popup.materialise(s["state"].params, mask), "mask": mask}


def test_top_k_mask_equals_the_pruning_ranking_rule_per_layer_and_global():
    # Ties and exact zeros included: the score network's mask is the ranking rule's, per layer and global.
    rng = np.random.default_rng(0)
    scores = {"a": {"kernel": jnp.asarray(rng.integers(-3, 4, (6, 5)).astype(np.float32)), "bias": None},
              "b": {"kernel": jnp.asarray(rng.normal(size=(5, 3)).astype(np.float32)), "bias": None}}
    magnitude = jax.tree.map(jnp.abs, scores)
    full = jax.tree.map(lambda s: jnp.ones(s.shape, bool), scores)
    for counts in ([7, 4], [0, 15], [30, 0]):
        expected = pruning.keep_top_k_per_leaf(magnitude, full, jnp.asarray(counts, jnp.int32))
        chex.assert_trees_all_equal(edge_popup.top_k_mask(scores, counts), expected)
    for total in (0, 1, 11, 45):
        expected = pruning.keep_top_k_global(magnitude, full, jnp.int32(total))
        chex.assert_trees_all_equal(jax.jit(lambda s: edge_popup.top_k_mask(s, total))(scores), expected)
    with pytest.raises(ValueError, match="counts has 1 entries for 2 score leaves"):
        edge_popup.top_k_mask(scores, [3])


def test_the_lambda_sweep_needs_a_validation_split_and_says_so_before_training(tmp_path):
    """select_lambda chooses λ on validation: refused upfront on an empty split, naming the option; one fixed λ reads
    nothing there."""
    data = toy_dataset()
    no_val = task(data=data._replace(val=Split(*(a[:0] for a in data.val))))
    with pytest.raises(ValueError, match=r"FairScratch reads the validation split for select_lambda=True.*has 0 examples"):
        FairScratch(select_lambda=True, lambda_grid=(0.0, 0.12)).run(no_val, CFG, 0.5, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()
    assert FairScratch().validation_reads() == []
