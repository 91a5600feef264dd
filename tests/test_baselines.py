"""SafeCompress and FairScratch: exact sparsity, their invariants, resume, and 4 devices == 1 device."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ballot_jax as bj
from ballot_jax import drop_grow, objectives
from ballot_jax.data.base import Split
from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state, set_mask
from ballot_jax.engine.mesh import data_mesh
from ballot_jax.methods import dynamic_sparse, edge_popup
from ballot_jax.methods import safecompress as sc
from ballot_jax.methods.fairscratch import FairScratch
from ballot_jax.methods.safecompress import SafeCompress
from ballot_jax.layer_budgets import distribute_keep_counts, erk_keep_counts
from ballot_jax.pruning import random_mask
from engine_fixtures import mlp_model, toy_dataset

CFG = TrainConfig(steps=20, batch_size=16, learning_rate=0.1, checkpoint_every=10)
SPARSITY = 0.5
N_PRUNABLE = 8 * 16 + 16 * 2
TARGET = bj.num_keep_for_sparsity(N_PRUNABLE, SPARSITY)


def task(num_devices=1):
    return Task(mlp_model(), toy_dataset(), data_mesh(jax.devices()[:num_devices]))


# ------------------------------------------------------------------------------------------------
# ERK


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=5),
    st.floats(0.0, 0.99),
)
def test_erk_counts_sum_exactly_and_fit(shapes, sparsity):
    mask = {f"l{i}": np.ones(s, bool) for i, s in enumerate(shapes)}  # NumPy: no compile per shape
    counts = erk_keep_counts(mask, sparsity)
    assert sum(counts) == bj.num_keep_for_sparsity(bj.num_prunable(mask), sparsity)
    assert all(0 <= c <= int(np.prod(s)) for c, s in zip(counts, shapes))


def test_erk_gives_small_layers_higher_density():
    shapes = {"a": (64, 64), "b": (16, 16), "c": (3, 3, 8, 16), "d": (4, 2)}
    mask = {k: np.ones(s, bool) for k, s in shapes.items()}
    sizes = [64 * 64, 16 * 16, 3 * 3 * 8 * 16, 8]
    for sparsity in (0.5, 0.8, 0.95):
        counts = erk_keep_counts(mask, sparsity)
        dens = dict(zip("abcd", [c / n for c, n in zip(counts, sizes)]))
        assert sum(counts) == bj.num_keep_for_sparsity(sum(sizes), sparsity)
        assert dens["a"] < dens["b"] <= dens["d"]  # (Σ dims)/(Π dims): 1/32 < 1/8 < 3/4 (<= once dense)
        # non-dense layers: density ∝ (Σ dims)/(Π dims), up to rounding (c: 30/1152 < a: 128/4096)
        assert dens["a"] / dens["c"] == pytest.approx((128 / 4096) / (30 / 1152), rel=0.02)
    assert erk_keep_counts(mask, 0.5)[3] == 8  # density would exceed 1: the small layer is dense
    assert erk_keep_counts(mask, 0.0) == sizes


def test_distribute_keep_counts_caps_and_redistributes():
    assert distribute_keep_counts([10, 100], [1.0, 1.0], 55) == [5, 50]
    assert distribute_keep_counts([10, 100], [100.0, 1.0], 55) == [10, 45]
    assert distribute_keep_counts([3, 3, 3], [1.0, 1.0, 1.0], 4) == [2, 1, 1]  # ties: earlier layer
    with pytest.raises(ValueError):
        distribute_keep_counts([3], [1.0], 4)


def test_random_mask_has_the_requested_counts():
    mask = bj.make_mask({"a": jnp.zeros((8, 16)), "b": jnp.zeros((16, 2)), "bias": jnp.zeros(3)})
    counts = erk_keep_counts(mask, 0.7)
    m1 = random_mask(jax.random.PRNGKey(0), mask, counts)
    m2 = random_mask(jax.random.PRNGKey(1), mask, counts)
    assert bj.kept_per_leaf(m1) == counts == bj.kept_per_leaf(m2)
    assert not all(np.array_equal(a, b) for a, b in zip(bj.mask_leaves(m1), bj.mask_leaves(m2)))


# ------------------------------------------------------------------------------------------------
# SafeCompress: pieces (our variant, preset="ours"; the authors' preset: tests/test_safecompress.py)


def prunable_part(tree, mask):
    """The leaves of a params-shaped ``tree`` at the mask's prunable leaves, as NumPy."""
    return [np.asarray(x) for m, x in zip(jax.tree.leaves(mask, is_leaf=bj.is_unprunable), jax.tree.leaves(tree))
            if m is not None]


def trained_sparse_state(t):
    """3 dense steps (every weight gets momentum), then 3 steps under a random ERK mask: the inactive
    weights are 0 but still carry stale momentum, which a grown weight must not inherit."""
    cfg = TrainConfig(**{**CFG.__dict__, "steps": 100})
    trainer = Trainer(t)
    state = trainer.train(init_state(t, cfg), cfg, 3, data_seed=0)
    mask = random_mask(jax.random.PRNGKey(0), state.mask, erk_keep_counts(state.mask, 0.7))
    return trainer.train(set_mask(state, mask), cfg, 6, data_seed=0), cfg


def test_drop_and_grow_keeps_counts_and_grown_weights_start_at_zero():
    t = task()
    state, cfg = trained_sparse_state(t)
    before = bj.kept_per_leaf(state.mask)
    grads = jax.tree.map(lambda p: jnp.asarray(np.random.default_rng(0).normal(size=p.shape), p.dtype), state.params)
    method = SafeCompress(preset="ours")
    masks = method.candidate_masks(state, grads, 0.3, jax.random.PRNGKey(2))
    assert len(masks) == len(method.candidates)
    counts = drop_grow.drop_counts(state.mask, 0.3)
    assert counts[0] == round(0.3 * before[0]) > 0
    stale = 0
    for kind, mask in zip(method.candidates, masks):
        assert bj.kept_per_leaf(mask) == before, f"{kind}: active count changed"
        start = dynamic_sparse.start_with_mask(state, mask, cfg)
        assert int(bj.num_kept(start.mask)) == sum(before)
        trace = start.opt_state.inner_state[1][0].trace  # chain(add_decayed_weights, sgd): sgd's momentum
        old_trace = state.opt_state.inner_state[1][0].trace
        for new, old, p, mom, old_mom, w in zip(
            bj.mask_leaves(mask), bj.mask_leaves(state.mask), prunable_part(start.params, mask),
            prunable_part(trace, mask), prunable_part(old_trace, mask), prunable_part(state.params, mask),
        ):
            new, old, w = np.asarray(new), np.asarray(old), np.abs(w)
            grown, dropped = new & ~old, old & ~new
            stale += int(np.sum(old_mom[grown] != 0.0))
            assert np.all(p[grown] == 0.0) and np.all(mom[grown] == 0.0), "grown weight not at 0"
            assert np.all(p[~new] == 0.0), "a dropped weight kept its value"
            np.testing.assert_array_equal(mom[~grown], old_mom[~grown])
            if kind == "keep":
                assert not grown.any() and not dropped.any()
            elif dropped.any():  # dropped = the smallest |w| among the previously active
                assert w[dropped].max() <= w[new & old].min()
    assert stale > 0, "the test should grow weights that had stale momentum"
    grad_mask = masks[0]  # "gradient": grows the largest |grad| among the previously inactive
    g = np.abs(np.asarray(grads["hidden"]["kernel"]))
    new, old = np.asarray(grad_mask["hidden"]["kernel"]), np.asarray(state.mask["hidden"]["kernel"])
    grown = new & ~old
    assert g[grown].min() >= g[~old & ~grown].max()


def test_safety_test_picks_fairest_within_tolerance():
    reports = [
        {"accuracy": 0.90, "mcd": 0.30, "cwv": 0.02},
        {"accuracy": 0.89, "mcd": 0.10, "cwv": 0.03},
        {"accuracy": 0.80, "mcd": 0.00, "cwv": 0.00},  # fairest but too inaccurate
        {"accuracy": 0.895, "mcd": 0.10, "cwv": 0.01},  # ties with 1 on MCD: the earlier wins
    ]
    assert sc.choose_candidate(reports, "mcd", 0.02) == 1
    assert sc.choose_candidate(reports, "cwv", 0.02) == 3
    assert sc.choose_candidate(reports, "mcd", 0.2) == 2
    assert sc.choose_candidate(reports, "mcd", 0.0) == 0


def test_drop_fraction_schedule():
    assert drop_grow.update_schedule(100, 10, 0.75) == [10, 20, 30, 40, 50, 60, 70]
    assert drop_grow.cosine_drop_fraction(0, 75, 0.3) == pytest.approx(0.3)
    assert drop_grow.cosine_drop_fraction(75, 75, 0.3) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        SafeCompress(preset="ours", candidates=("magnitude",))
    with pytest.raises(ValueError):
        SafeCompress(preset="ours", fairness_metric="accuracy")


# ------------------------------------------------------------------------------------------------
# SafeCompress: end to end (preset="ours")


@pytest.fixture(scope="module")
def safecompress_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("safecompress")
    t = task()
    return t, workdir, SafeCompress(preset="ours").run(t, CFG, SPARSITY, workdir)


def test_safecompress_exact_sparsity_constant_count_no_regrowth(safecompress_run):
    t, workdir, record = safecompress_run
    assert record["kept"] == TARGET and record["sparsity"] == SPARSITY
    run_schedule = SafeCompress(preset="ours").run_schedule(t, CFG, SPARSITY)
    assert record["budget_steps"] == CFG.steps * (len(bj.pruning_plan(N_PRUNABLE, SPARSITY, 0.2)) + 1)
    assert len(record["mask_updates"]) == len(run_schedule["updates"]) > 0
    like = init_state(t, run_schedule["train_config"])
    prev = checkpoints.load_item(workdir / "mask_00", like.mask)
    assert bj.kept_per_leaf(prev) == run_schedule["keep_counts"]
    changed = 0
    for j, update in enumerate(record["mask_updates"], start=1):
        mask = checkpoints.load_item(workdir / f"update_{j:02d}" / "mask", like.mask)
        assert bj.kept_per_leaf(mask) == run_schedule["keep_counts"], "active count changed across an update"
        changed += sum(int(np.sum(np.asarray(a) != np.asarray(b)))
                       for a, b in zip(bj.mask_leaves(prev), bj.mask_leaves(mask)))
        # between updates the mask never changes: the phase ends with the update's mask
        end = checkpoints.load_item(workdir / f"phase_{j:02d}" / "final", like)
        chex.assert_trees_all_equal(end.mask, mask)
        prev = mask
    assert changed > 0, "no update changed the mask"
    final = checkpoints.load_item(workdir / f"phase_{len(run_schedule['updates']):02d}" / "final", like)
    assert int(final.step) == record["budget_steps"]
    for m, p in zip(bj.mask_leaves(final.mask), bj.mask_leaves(bj.magnitude_scores(final.params, final.mask))):
        assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0), "a pruned weight is not exactly 0"
    # a finished record means skip
    assert SafeCompress(preset="ours").run(t, CFG, SPARSITY, workdir) == record


class Crash(RuntimeError):
    pass


def test_safecompress_resumes_identically(safecompress_run, tmp_path, monkeypatch, capfd):
    t, _, reference = safecompress_run
    calls = {"n": 0}
    original = Trainer.batch_indices  # called once per training batch (host or device gather)

    def crashing(self, config, step, data_seed):
        calls["n"] += 1
        if calls["n"] == 75:  # mid-way through the run, after some updates
            raise Crash("killed")
        return original(self, config, step, data_seed)

    monkeypatch.setattr(Trainer, "batch_indices", crashing)
    with pytest.raises(Crash):
        SafeCompress(preset="ours").run(t, CFG, SPARSITY, tmp_path)
    monkeypatch.setattr(Trainer, "batch_indices", original)
    resumed = SafeCompress(preset="ours").run(t, CFG, SPARSITY, tmp_path)
    for key in ("kept", "val", "test", "sparsity"):
        assert resumed[key] == reference[key]
    assert [u["chosen"] for u in resumed["mask_updates"]] == [u["chosen"] for u in reference["mask_updates"]]


def test_safecompress_four_devices(safecompress_run, tmp_path):
    _, _, one = safecompress_run
    four = SafeCompress(preset="ours").run(task(4), CFG, SPARSITY, tmp_path)
    assert four["kept"] == one["kept"] == TARGET


# ------------------------------------------------------------------------------------------------
# FairScratch: pieces


def biased_batch():
    # group 0 predicted mostly positive, group 1 mostly negative
    logits = jnp.array([[0.0, 2.0], [0.0, 1.5], [0.5, 1.0], [2.0, 0.0], [1.0, -1.0], [1.5, 0.5]])
    return logits, {"y": jnp.array([1, 1, 0, 1, 0, 0]), "group": jnp.array([0, 0, 0, 1, 1, 1])}


@pytest.mark.parametrize("kind", ["dp", "eo", "loss_var"])
def test_fairness_surrogate_differentiable_and_nonzero_on_biased_batch(kind):
    logits, batch = biased_batch()
    value, grad = jax.value_and_grad(lambda z: objectives.fairness_surrogate(z, batch, 3, kind))(logits)  # group 2 absent
    assert float(value) > 0.01
    assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).sum()) > 0
    # a batch whose groups look alike has no disparity
    same = {"y": jnp.array([1, 0, 1, 0]), "group": jnp.array([0, 0, 1, 1])}
    z = jnp.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert float(objectives.fairness_surrogate(z, same, 2, kind)) == pytest.approx(0.0, abs=1e-6)
    one_group = {"y": batch["y"], "group": jnp.zeros(6, jnp.int32)}
    assert float(objectives.fairness_surrogate(logits, one_group, 2, kind)) == 0.0


def test_fair_objective_adds_lambda_times_surrogate():
    logits, batch = biased_batch()
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    sur = objectives.fairness_surrogate(logits, batch, 2, "dp")
    assert float(objectives.fair_objective(2, "dp", 0.0)(logits, batch)) == pytest.approx(float(ce))
    assert float(objectives.fair_objective(2, "dp", 2.5)(logits, batch)) == pytest.approx(float(ce + 2.5 * sur))
    assert objectives.resolve_surrogate("auto", 2) == "dp" and objectives.resolve_surrogate("auto", 10) == "loss_var"
    with pytest.raises(ValueError):
        objectives.resolve_surrogate("eo", 10)


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_scored_model_forward_and_straight_through(scope):
    model = mlp_model()
    x = jnp.asarray(toy_dataset().train.x[:16])
    template = bj.make_mask(model.init(jax.random.PRNGKey(0), x)[0])
    counts = edge_popup.keep_counts(template, 0.7, scope)
    target = bj.num_keep_for_sparsity(N_PRUNABLE, 0.7)
    scored = edge_popup.scored_model(model, counts)
    trainable, ms = scored.init(jax.random.PRNGKey(0), x)
    mask = edge_popup.top_k_mask(trainable["scores"], counts)
    assert int(bj.num_kept(mask)) == target
    if scope == "layer":
        assert bj.kept_per_leaf(mask) == counts
    params = edge_popup.materialise(trainable, mask)
    w0 = model.init(jax.random.PRNGKey(0), x)[0]
    for name, fan_in in (("hidden", 8), ("out", 16)):  # signed Kaiming constant sign(w_0)·√(2/fan_in)
        k = np.asarray(trainable["frozen"][name]["kernel"])
        np.testing.assert_allclose(np.abs(k), np.sqrt(2.0 / fan_in), rtol=1e-6)
        np.testing.assert_array_equal(np.sign(k), np.where(np.asarray(w0[name]["kernel"]) < 0, -1.0, 1.0))
    logits_scored, _ = scored.apply(trainable, ms, x, True, jax.random.PRNGKey(1))
    logits_plain, _ = model.apply(params, ms, x, False, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(logits_scored, logits_plain)  # the STE forward value is exact

    def loss_scored(tr):
        return model.apply(edge_popup.materialise(tr, mask, straight_through=True), ms, x, True, None)[0].sum()

    def loss_plain(p):
        return model.apply(p, ms, x, True, None)[0].sum()

    g_scores = jax.grad(loss_scored)(trainable)
    g_w = jax.grad(loss_plain)(params)
    for name in ("hidden", "out"):
        # STE through |s|: ∂L/∂s = ∂L/∂(w·m)·w·sign(s), so a step moves |s| the same way for either sign
        s = trainable["scores"][name]["kernel"]
        assert bool(jnp.any(s < 0)) and bool(jnp.any(s > 0))
        np.testing.assert_allclose(
            g_scores["scores"][name]["kernel"],
            g_w[name]["kernel"] * trainable["frozen"][name]["kernel"] * jnp.sign(s), rtol=1e-6,
        )
        assert float(jnp.abs(g_scores["frozen"][name]["kernel"]).sum()) == 0.0
    np.testing.assert_allclose(g_scores["free"]["out"]["bias"], g_w["out"]["bias"], rtol=1e-6)


def test_frozen_weight_inits_and_scale_fan():
    model = mlp_model()
    x = jnp.asarray(toy_dataset().train.x[:16])
    w0 = model.init(jax.random.PRNGKey(0), x)[0]
    template = bj.make_mask(w0)
    counts = edge_popup.keep_counts(template, 0.75, "layer")
    density = sum(counts) / N_PRUNABLE

    def frozen(**kwargs):
        return edge_popup.scored_model(model, counts, **kwargs).init(jax.random.PRNGKey(0), x)[0]["frozen"]

    k = np.asarray(frozen(weight_init="signed_std")["hidden"]["kernel"])
    np.testing.assert_allclose(np.abs(k), float(jnp.std(w0["hidden"]["kernel"])), rtol=1e-6)
    np.testing.assert_array_equal(frozen(weight_init="init")["out"]["kernel"], w0["out"]["kernel"])
    plain, scaled = frozen(), frozen(scale_fan=True)
    for name in ("hidden", "out"):
        np.testing.assert_allclose(scaled[name]["kernel"], plain[name]["kernel"] / np.sqrt(density), rtol=1e-6)
    with pytest.raises(ValueError):
        FairScratch(weight_init="kaiming")
    with pytest.raises(ValueError, match="renamed 'signed_std'"):  # the old, clashing name
        FairScratch(weight_init="signed_constant")
    with pytest.raises(ValueError, match="renamed 'signed_std'"):
        edge_popup.scored_model(model, counts, weight_init="signed_constant")
    with pytest.raises(ValueError):
        FairScratch(score_optimizer="rmsprop")


def test_fairscratch_uses_its_own_optimizer_over_the_same_budget():
    run_cfg = TrainConfig(steps=20, batch_size=16, learning_rate=0.01, weight_decay=5e-4, rewind_step=5,
                          optimizer="adam", schedule="constant", checkpoint_every=10)
    setup = FairScratch(preset="ours").setup(task(), run_cfg, SPARSITY)
    cfg = setup["train_config"]
    assert cfg.steps == setup["budget"] == run_cfg.steps * (setup["levels"] + 1)
    assert (cfg.optimizer, cfg.learning_rate, cfg.momentum, cfg.weight_decay, cfg.schedule) == (
        "sgd", 0.1, 0.9, 0.0, "cosine")
    assert cfg.rewind_step == 0 and cfg.batch_size == 16 and cfg.seed == run_cfg.seed
    own = FairScratch(preset="ours", score_optimizer="adam", score_learning_rate=0.02, score_weight_decay=1e-4)
    cfg = own.setup(task(), run_cfg, SPARSITY)["train_config"]
    assert (cfg.optimizer, cfg.learning_rate, cfg.weight_decay) == ("adam", 0.02, 1e-4)


def test_fairscratch_learns(tmp_path):
    # Our variant (preset="ours"; the authors' preset has its own learning test in test_fairscratch.py).
    # An easy task (the toy data's majority rule y = [x0 + x1 > 0] for every example): a short run
    # with the default settings must find a good subnetwork. Measured: 0.96-0.97 over seeds 0-2;
    # before the STE went through |s| and the weights were Kaiming constants, 0.79-0.89 (a random
    # half of this network with trained biases already gets there; on digits it was 0.11).
    data = toy_dataset(n=512)
    easy = [Split(s.x, (s.x[:, 0] + s.x[:, 1] > 0).astype(np.int32), s.group)
            for s in (data.train, data.val, data.test)]
    data = data._replace(train=easy[0], val=easy[1], test=easy[2])
    t = Task(mlp_model(hidden=64), data, data_mesh(jax.devices()[:1]))
    cfg = TrainConfig(steps=60, batch_size=32, checkpoint_every=0)  # budget 60 · (levels + 1)
    record = FairScratch(preset="ours").run(t, cfg, 0.5, tmp_path)
    assert record["kept"] == bj.num_keep_for_sparsity(8 * 64 + 64 * 2, 0.5)
    assert record["test"]["accuracy"] >= 0.92, record["test"]["accuracy"]


# ------------------------------------------------------------------------------------------------
# FairScratch: end to end


@pytest.fixture(scope="module")
def fairscratch_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fairscratch")
    t = task()
    return t, workdir, FairScratch(preset="ours").run(t, CFG, SPARSITY, workdir)


def test_fairscratch_exact_sparsity_and_frozen_weights(fairscratch_run):
    t, workdir, record = fairscratch_run
    assert record["kept"] == TARGET and record["sparsity"] == SPARSITY
    assert record["surrogate"] == "dp"
    setup = FairScratch(preset="ours").setup(t, CFG, SPARSITY)
    initial = jax.device_get(setup["state"])
    final = checkpoints.load_item(workdir / "final", setup["state"])
    assert int(final.step) == record["budget_steps"]
    chex.assert_trees_all_equal(jax.device_get(final.params["frozen"]), initial.params["frozen"])  # bitwise
    assert not np.array_equal(final.params["scores"]["hidden"]["kernel"], initial.params["scores"]["hidden"]["kernel"])
    assert not np.array_equal(final.params["free"]["hidden"]["bias"], initial.params["free"]["hidden"]["bias"])
    like_mask = edge_popup.top_k_mask(initial.params["scores"], setup["counts"])
    like = {"params": edge_popup.materialise(initial.params, like_mask), "mask": like_mask}
    sparse = checkpoints.load_item(workdir / "sparse", like)
    assert int(bj.num_kept(sparse["mask"])) == TARGET
    for name in ("hidden", "out"):
        m = np.asarray(sparse["mask"][name]["kernel"])
        w = np.asarray(sparse["params"][name]["kernel"])
        frozen = np.asarray(initial.params["frozen"][name]["kernel"])
        np.testing.assert_array_equal(w[m], frozen[m])
        assert np.all(w[~m] == 0.0)
    assert FairScratch(preset="ours").run(t, CFG, SPARSITY, workdir) == record  # finished: skipped


def test_fairscratch_four_devices(fairscratch_run, tmp_path):
    _, _, one = fairscratch_run
    four = FairScratch(preset="ours").run(task(4), CFG, SPARSITY, tmp_path)
    assert four["kept"] == one["kept"] == TARGET
