"""SafeCompress: the authors' preset (their drop schedule and growth, min-max training against a
fairness adversary, a logged-only safety test), resume with the adversary's state, and the reference
record of our preset recorded before the presets existed."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ballot_jax as bj
from ballot_jax import drop_grow
from ballot_jax.data.base import Dataset, DatasetInfo, Split
from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state, set_mask
from ballot_jax.engine.mesh import data_mesh, put_batch, replicate
from ballot_jax.methods import dynamic_sparse, minmax, safecompress_options
from ballot_jax.methods.adversary import adversary_features, adversary_loss, group_prior_accuracy, init_adversary
from ballot_jax.methods.safecompress import SafeCompress
from ballot_jax.pruning import uniform_scores
from engine_fixtures import mlp_model, toy_dataset

CFG = TrainConfig(steps=20, batch_size=16, learning_rate=0.1, checkpoint_every=10)
SPARSITY = 0.5
N_PRUNABLE = 8 * 16 + 16 * 2
# B = 100 for CFG; updates every 25 steps (3 of them) and a small adversary keep the run short; the
# min-max period starts at round(100 · 199/300) = 66.
AUTHORS = SafeCompress(
    update_every=25, adversary_pred_widths=(32, 16), adversary_label_widths=(16,), adversary_fuse_widths=(16,)
)


def task(num_devices=1, data=None):
    return Task(mlp_model(), data or toy_dataset(), data_mesh(jax.devices()[:num_devices]))


def without_times(record):
    out = {k: v for k, v in record.items() if k != "train_time_s"}
    out["mask_updates"] = [{k: v for k, v in u.items() if k != "time_s"} for u in record["mask_updates"]]
    return out


def template(t, method=AUTHORS):
    """A SafeState shaped like the run's (for loading its checkpoints) and the run's initial adversary."""
    run_schedule = method.run_schedule(t, CFG, SPARSITY)
    fresh = init_state(t, run_schedule["train_config"])
    info = t.data.info
    key = jax.random.fold_in(jax.random.PRNGKey(CFG.seed), 0x5AFE)
    adversary = init_adversary(
        jax.random.fold_in(key, 0xAD), info.num_classes, info.num_groups, method.adversary_input,
        method.adversary_pred_widths, method.adversary_label_widths, method.adversary_fuse_widths,
        method.adversary_init_std,
    )
    tx = optax.adam(method.adversary_learning_rate)
    return minmax.SafeState(fresh, adversary, tx.init(adversary)), run_schedule, key


def trees_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def boundaries(run_schedule):
    return sorted({0, run_schedule["budget"], *run_schedule["updates"], run_schedule["pretrain_steps"]})


# ------------------------------------------------------------------------------------------------
# The schedule


def test_authors_drop_rate_is_their_cosine_from_half_to_the_floor():
    method = SafeCompress()
    assert method.preset == "authors" and method.growth == "random"
    assert (method.setting("drop_fraction"), method.setting("drop_floor"), method.setting("stop_fraction")) == (
        0.5, 0.005, 1.0,
    )
    d = lambda t: drop_grow.cosine_drop_fraction(t, 1000, 0.5, 0.005)  # noqa: E731
    assert d(0) == 0.5
    assert d(1000) == pytest.approx(0.005, abs=1e-12) and d(5000) == pytest.approx(0.005, abs=1e-12)
    assert d(500) == pytest.approx((0.5 + 0.005) / 2)
    # PyTorch's CosineAnnealingLR with eta_min: eta_min + (eta_0 − eta_min)(1 + cos(π t / T)) / 2
    for t in (1, 123, 250, 777, 999):
        assert d(t) == pytest.approx(0.005 + 0.495 * (1 + math.cos(math.pi * t / 1000)) / 2)
    values = [d(t) for t in range(0, 1001, 50)]
    assert all(a > b for a, b in zip(values, values[1:]))
    # our preset's schedule is unchanged: 0.3 to exactly 0 at T_end
    assert drop_grow.cosine_drop_fraction(75, 75, 0.3) == 0.0 and drop_grow.cosine_drop_fraction(0, 75, 0.3) == 0.3


def test_authors_update_count_matches_their_readme():
    # Their README: 300 epochs of 391 CIFAR-100 batches = 117,300 steps, an update every 4,000: 29.
    assert round(safecompress_options.AUTHORS_UPDATE_FRACTION * 117_300) == 4000
    assert len(drop_grow.update_schedule(117_300, 4000, 1.0)) == 29
    t = task()
    cfg = TrainConfig(steps=200, batch_size=16)
    run_schedule = SafeCompress().run_schedule(t, cfg, 0.8)
    budget = run_schedule["budget"]
    assert budget == 200 * (len(bj.pruning_plan(N_PRUNABLE, 0.8, 0.2)) + 1) == 1800
    assert run_schedule["update_every"] == round(budget * 4000 / 117_300) == 61
    assert len(run_schedule["updates"]) == 29
    assert run_schedule["updates"] == list(range(61, budget, 61))  # every u steps until the end
    assert run_schedule["updates"][-1] > budget - run_schedule["update_every"]
    assert run_schedule["t_end"] == budget
    assert run_schedule["pretrain_steps"] == round(budget * 199 / 300) == 1194
    ours = SafeCompress(preset="ours").run_schedule(t, cfg, 0.8)
    assert ours["update_every"] == 180 and len(ours["updates"]) == 7  # B // 10, up to 0.75·B


def test_ceil_drop_counts_and_regrowth_of_dropped_weights():
    mask = {"a": jnp.asarray(np.arange(40).reshape(5, 8) % 2 == 0), "b": jnp.ones((4, 3), bool)}
    assert drop_grow.ceil_drop_counts(mask, 0.005) == [1, 1]  # ceil: at least one per leaf
    assert drop_grow.ceil_drop_counts(mask, 0.5) == [10, 6]
    assert drop_grow.drop_counts(mask, 0.5) == [10, 0]  # ours: capped by the inactive count
    params = {"a": jnp.asarray(np.arange(1, 41, dtype=np.float32).reshape(5, 8)), "b": jnp.ones((4, 3))}
    params = bj.apply_mask(params, mask)
    # grow scores that favour exactly the weights just dropped: they come back (the authors' code)
    scores = {"a": jnp.where(mask["a"], 100.0 - params["a"], 0.0), "b": jnp.zeros((4, 3))}
    kept = drop_grow.drop_and_grow(params, mask, scores, [10, 6], regrow_dropped=True)
    np.testing.assert_array_equal(np.asarray(kept["a"]), np.asarray(mask["a"]))
    np.testing.assert_array_equal(np.asarray(kept["b"]), np.ones((4, 3), bool))  # a dense leaf stays dense
    moved = drop_grow.drop_and_grow(params, mask, scores, [10, 0])  # ours: only previously inactive weights
    assert int(np.sum(np.asarray(moved["a"]) & ~np.asarray(mask["a"]))) == 10


# ------------------------------------------------------------------------------------------------
# The authors' preset end to end


@pytest.fixture(scope="module")
def authors_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("safecompress_authors")
    t = task()
    return t, workdir, AUTHORS.run(t, CFG, SPARSITY, workdir)


def test_authors_run_record_and_logged_safety_test(authors_run):
    t, workdir, record = authors_run
    run_schedule = AUTHORS.run_schedule(t, CFG, SPARSITY)
    assert record["preset"] == "authors" and record["growth"] == "random"
    assert record["kept"] == bj.num_keep_for_sparsity(N_PRUNABLE, SPARSITY) and record["sparsity"] == SPARSITY
    assert record["budget_steps"] == 100 and run_schedule["updates"] == [25, 50, 75]
    assert record["pretrain_steps"] == 66
    assert [u["step"] for u in record["mask_updates"]] == run_schedule["updates"]
    for u in record["mask_updates"]:
        assert u["drop_fraction"] == pytest.approx(drop_grow.cosine_drop_fraction(u["step"], 100, 0.5, 0.005))
        # the safety test is logged and decides nothing: no candidates, no choice
        assert {"val_accuracy", "mcd", "adversary_val_accuracy"} <= set(u["safety_test"])
        assert "chosen" not in u and "candidates" not in u
    assert 0.0 <= record["adversary"]["val_accuracy"] <= 1.0
    assert AUTHORS.run(t, CFG, SPARSITY, workdir) == record  # finished: skipped


def test_authors_growth_is_random_by_default(authors_run):
    t, workdir, record = authors_run
    like, run_schedule, key = template(t)
    b = boundaries(run_schedule)
    for u, step in enumerate(run_schedule["updates"], start=1):
        before = checkpoints.load_item(workdir / f"phase_{b.index(step) - 1:02d}" / "final", like)
        saved = checkpoints.load_item(workdir / f"update_{u:02d}" / "mask", like.mask)
        counts = drop_grow.ceil_drop_counts(before.mask, drop_grow.cosine_drop_fraction(step, 100, 0.5, 0.005))
        assert counts == record["mask_updates"][u - 1]["drop_counts"]
        random = drop_grow.drop_and_grow(
            before.params, before.mask, uniform_scores(jax.random.fold_in(key, u), before.mask), counts,
            regrow_dropped=True,
        )
        chex.assert_trees_all_equal(saved, random)
        assert bj.kept_per_leaf(saved) == run_schedule["keep_counts"]
    # ... and the test can tell: gradient growth picks other weights at the first update
    before = checkpoints.load_item(workdir / f"phase_{b.index(25) - 1:02d}" / "final", like)
    grads = dynamic_sparse.make_grad_fn(t.model, t.mesh)(
        before.params, before.model_state, put_batch(Trainer(t).batch(run_schedule["train_config"], 25, CFG.seed), t.mesh),
        jax.random.PRNGKey(0),
    )
    scores = jax.tree.map(lambda m, g: None if m is None else jnp.abs(g), before.mask, grads, is_leaf=bj.is_unprunable)
    counts = record["mask_updates"][0]["drop_counts"]
    by_gradient = drop_grow.drop_and_grow(before.params, before.mask, scores, counts, regrow_dropped=True)
    saved = checkpoints.load_item(workdir / "update_01" / "mask", like.mask)
    assert any(not np.array_equal(a, b) for a, b in zip(bj.mask_leaves(saved), bj.mask_leaves(by_gradient)))


def test_adversarial_term_absent_before_pretraining_ends_and_present_after(authors_run):
    t, workdir, _ = authors_run
    like, run_schedule, _ = template(t)
    b = boundaries(run_schedule)
    start = b.index(run_schedule["pretrain_steps"])  # the first min-max phase
    init_adversary = like.adversary
    for j in range(len(b) - 1):
        final = checkpoints.load_item(workdir / f"phase_{j:02d}" / "final", like)
        same = trees_equal(final.adversary, init_adversary)
        assert same == (j < start), f"phase {j}: the adversary must train exactly in the min-max period"
    # Pre-training is plain cross-entropy: phase 0 equals the engine's CE training bit for bit.
    mask = checkpoints.load_item(workdir / "mask_00", like.mask)
    cfg = run_schedule["train_config"]
    plain = Trainer(t).train(set_mask(init_state(t, cfg), mask), cfg, b[1], data_seed=CFG.seed)
    phase0 = checkpoints.load_item(workdir / "phase_00" / "final", like)
    chex.assert_trees_all_equal(phase0.train.params, plain.params)
    # One step each way from the state where the min-max period starts.
    at_p = replicate(checkpoints.load_item(workdir / f"phase_{start - 1:02d}" / "final", like), t.mesh)
    assert int(at_p.step) == run_schedule["pretrain_steps"]
    batch = put_batch(Trainer(t).batch(cfg, int(at_p.step), CFG.seed), t.mesh)
    common = dict(kind=AUTHORS.adversary_input, adversary_tx=optax.adam(AUTHORS.adversary_learning_rate))
    pre = minmax.AdversarialTrainer(t, minmax=False, weight=0.5, **common)
    assert pre.stepped(at_p) is at_p.train  # pre-training steps the model alone; the adversary is carried
    pre_train, pre_stats = pre.step_fn(cfg)(pre.stepped(at_p), batch)
    pre_state = pre.with_stepped(at_p, pre_train)
    mm_state, mm_stats = minmax.AdversarialTrainer(t, minmax=True, weight=0.5, **common).step_fn(cfg)(at_p, batch)
    assert "adversarial_term" not in pre_stats
    chex.assert_trees_all_equal(pre_state.adversary, at_p.adversary)
    term = float(mm_stats["adversarial_term"])
    assert term > 0.0 and term == pytest.approx(0.5 * float(mm_stats["adversary_loss"]))
    assert float(mm_stats["loss"]) == pytest.approx(float(mm_stats["cross_entropy"]) - term, abs=1e-6)
    assert float(pre_stats["loss"]) == pytest.approx(float(mm_stats["cross_entropy"]), abs=1e-6)
    assert not trees_equal(mm_state.adversary, at_p.adversary)
    # Sharded like the engine: with the batch gathered, 4 devices give the 1-device step.
    t4 = task(4)
    four_state, four_stats = minmax.AdversarialTrainer(t4, minmax=True, weight=0.5, **common).step_fn(cfg)(
        replicate(at_p, t4.mesh), put_batch(Trainer(t).batch(cfg, int(at_p.step), CFG.seed), t4.mesh)
    )
    chex.assert_trees_all_close(four_state, mm_state, atol=1e-6, rtol=1e-5)
    for key in ("loss", "adversary_loss", "adversary_loss_before", "adversary_accuracy"):
        assert float(four_stats[key]) == pytest.approx(float(mm_stats[key]), abs=1e-6), key


class Crash(RuntimeError):
    pass


def test_authors_resume_is_bit_identical_with_the_adversary(authors_run, tmp_path, monkeypatch):
    t, workdir, reference = authors_run
    calls = {"n": 0}
    original = Trainer.batch_indices  # called once per training batch (host or device gather)

    def crashing(self, config, step, data_seed):
        calls["n"] += 1
        if calls["n"] == 85:  # in the min-max period, after the periodic checkpoint at step 80
            raise Crash("killed")
        return original(self, config, step, data_seed)

    monkeypatch.setattr(Trainer, "batch_indices", crashing)
    with pytest.raises(Crash):
        AUTHORS.run(t, CFG, SPARSITY, tmp_path)
    monkeypatch.setattr(Trainer, "batch_indices", original)
    assert any((tmp_path / "phase_04" / "ckpt").iterdir()), "the crash should leave a periodic checkpoint"
    resumed = AUTHORS.run(t, CFG, SPARSITY, tmp_path)
    assert without_times(resumed) == without_times(reference)
    like, run_schedule, _ = template(t)
    last = f"phase_{len(boundaries(run_schedule)) - 2:02d}"
    a = checkpoints.load_item(workdir / last / "final", like)
    b = checkpoints.load_item(tmp_path / last / "final", like)
    chex.assert_trees_all_equal(a, b)  # model, optimizer, adversary and its Adam state


# ------------------------------------------------------------------------------------------------
# The adversary learns, and the adversarial term fights it


def biased_dataset(n=512, dim=8, seed=0):
    """Balanced groups, the group visible in the last feature; group 1's labels are 35% noisy, so an
    unconstrained model is confident on group 0 and unsure on group 1: its outputs reveal the group."""
    rng = np.random.default_rng(seed)

    def split(m):
        x = rng.normal(size=(m, dim)).astype(np.float32)
        group = (rng.random(m) < 0.5).astype(np.int32)
        x[:, -1] = group
        clean = x[:, 0] + x[:, 1] > 0
        noisy = np.where(rng.random(m) < 0.35, ~clean, clean)
        return Split(x, np.where(group == 0, clean, noisy).astype(np.int32), group)

    info = DatasetInfo("biased", 2, 2, ("a", "b"), ("0", "1"), (dim,))
    return Dataset(split(n), split(n // 2), split(n // 2), info)


def minmax_run(t, weight, pretrained, cfg, kind="label_relative"):
    adversary = init_adversary(jax.random.PRNGKey(1), 2, 2, kind, (32, 16), (16,), (16,), 0.1)
    tx = optax.adam(1e-2)
    state = replicate(minmax.SafeState(pretrained, adversary, tx.init(adversary)), t.mesh)
    trainer = minmax.AdversarialTrainer(t, minmax=True, weight=weight, kind=kind, adversary_tx=tx)
    state = trainer.train(state, cfg, cfg.steps, data_seed=0)
    train = t.data.train
    logits, _ = t.model.apply(state.params, state.model_state, jnp.asarray(train.x), False, None)
    batch = {"y": jnp.asarray(train.y), "group": jnp.asarray(train.group)}
    loss, _ = adversary_loss(state.adversary, logits, batch, kind)
    return state, trainer.adversary_accuracy(state, train), float(loss)


def test_adversary_learns_and_the_adversarial_term_fights_it():
    data = biased_dataset()
    t = task(data=data)
    cfg = TrainConfig(steps=200, batch_size=32, learning_rate=0.1)
    pretrained = Trainer(t).train(init_state(t, cfg), cfg, 50, data_seed=0)
    prior = group_prior_accuracy(data.train, 2)
    fought, fought_acc, fought_loss = minmax_run(t, 0.5, pretrained, cfg)
    free, free_acc, free_loss = minmax_run(t, 0.0, pretrained, cfg)
    assert free_acc > prior + 0.1 and fought_acc > prior + 0.05, (free_acc, fought_acc, prior)
    # With the term in the model's loss the model makes the group harder to read off its outputs.
    assert fought_loss > free_loss + 0.05, (fought_loss, free_loss)
    assert not np.allclose(np.asarray(fought.params["hidden"]["kernel"]), np.asarray(free.params["hidden"]["kernel"]))


def test_adversary_features_hide_the_label_identity():
    logits = jnp.array([[2.0, 0.0, -1.0], [0.0, 2.0, -1.0]])
    f, label = adversary_features(logits, jnp.array([0, 1]), "label_relative")
    assert label is None
    np.testing.assert_allclose(f[0], f[1])  # same confidence profile, different labels: same features
    p = jax.nn.softmax(logits[0])
    np.testing.assert_allclose(f[0], [p[0], p[1], p[2]], rtol=1e-6)
    _, label = adversary_features(logits, jnp.array([0, 1]), "softmax_label")
    np.testing.assert_array_equal(label, [[1, -1, -1], [-1, 1, -1]])  # their ±1 one-hot


def test_preset_options_are_checked():
    with pytest.raises(ValueError, match="preset"):
        SafeCompress(preset="paper")
    with pytest.raises(ValueError, match="only apply to preset='ours'"):
        SafeCompress(candidates=("random",))
    with pytest.raises(ValueError, match="only apply to preset='authors'"):
        SafeCompress(preset="ours", adversarial_weight=0.1)
    with pytest.raises(ValueError):
        SafeCompress(growth="momentum")
    with pytest.raises(ValueError):
        SafeCompress(drop_fraction=0.1, drop_floor=0.2)


# ------------------------------------------------------------------------------------------------
# Our preset: the record of the code before the presets (recorded on this tiny run before the change)

OURS_REFERENCE = {
    "val": {"accuracy": 0.8125, "mcd": 0.305381715297699, "cwv": 0.023314498364925385,
            "per_group_accuracy": [0.8936170339584351, 0.5882353186607361]},
    "test": {"accuracy": 0.765625, "mcd": 0.47421494126319885, "cwv": 0.056219954043626785,
             "per_group_accuracy": [0.9101123809814453, 0.43589743971824646]},
    "chosen": [0, 3, 3, 0, 3, 1, 0],
    "drop_counts": [[14, 0], [12, 0], [9, 0], [6, 0], [4, 0], [1, 0], [0, 0]],
    "drop_fraction": [0.2870318186463901, 0.2503695909538287, 0.19635254915624212, 0.134320730509852,
                      0.07499999999999997, 0.0286474508437579, 0.003277859889929163],
    "candidate_val_accuracy": [
        [0.7265625, 0.734375, 0.734375, 0.7109375], [0.8046875, 0.796875, 0.796875, 0.796875],
        [0.7890625, 0.7890625, 0.7890625, 0.796875], [0.78125, 0.78125, 0.78125, 0.78125],
        [0.8515625, 0.8515625, 0.8515625, 0.84375], [0.8046875, 0.796875, 0.796875, 0.796875],
        [0.8203125, 0.8203125, 0.8203125, 0.8203125],
    ],
    "candidate_mcd": [
        [0.14831, 0.158949, 0.158949, 0.207134], [0.454944, 0.484355, 0.484355, 0.404255],
        [0.393617, 0.393617, 0.393617, 0.324155], [0.342929, 0.342929, 0.342929, 0.342929],
        [0.358573, 0.358573, 0.358573, 0.347935], [0.294743, 0.284105, 0.284105, 0.284105],
        [0.31602, 0.31602, 0.31602, 0.31602],
    ],
    "probe_steps_extra": 42, "update_every": 10, "budget_steps": 100, "probe_steps": 2, "kept": 80,
}


def test_ours_preset_reproduces_the_record_from_before_the_presets(tmp_path):
    record = SafeCompress(preset="ours").run(task(), CFG, SPARSITY, tmp_path)
    ref = OURS_REFERENCE
    assert record["preset"] == "ours"
    for key in ("probe_steps_extra", "update_every", "budget_steps", "probe_steps", "kept"):
        assert record[key] == ref[key], key
    for split in ("val", "test"):
        for key in ("accuracy", "mcd", "cwv"):
            assert record[split][key] == pytest.approx(ref[split][key], abs=1e-7), (split, key)
        np.testing.assert_allclose(record[split]["per_group_accuracy"], ref[split]["per_group_accuracy"], atol=1e-7)
    updates = record["mask_updates"]
    assert [u["chosen"] for u in updates] == ref["chosen"]
    assert [u["drop_counts"] for u in updates] == ref["drop_counts"]
    assert [u["drop_fraction"] for u in updates] == ref["drop_fraction"]  # bit for bit
    np.testing.assert_allclose(
        [[c["val_accuracy"] for c in u["candidates"]] for u in updates], ref["candidate_val_accuracy"], atol=1e-7
    )
    np.testing.assert_allclose([[c["mcd"] for c in u["candidates"]] for u in updates], ref["candidate_mcd"], atol=1e-6)


def test_init_adversary_draws_the_same_numbers_as_one_draw_per_kernel():
    # One compiled draw for every kernel; the numbers are those of drawing each kernel on its own.
    key = jax.random.PRNGKey(3)
    params = init_adversary(key, 10, 4, "softmax_label", init_std=0.02)
    for i, name in enumerate(sorted(params)):
        shape = params[name]["kernel"].shape
        one = 0.02 * jax.random.normal(jax.random.fold_in(key, i), shape, jnp.float32)
        np.testing.assert_array_equal(np.asarray(params[name]["kernel"]), np.asarray(one), err_msg=name)
        np.testing.assert_array_equal(np.asarray(params[name]["bias"]), np.zeros(shape[1], np.float32))


def test_ours_preset_needs_a_validation_split_and_says_so_before_training(tmp_path):
    """Our preset chooses each update's candidate on validation: refused upfront on an empty split, naming the
    preset; the authors' preset only logs validation metrics and reads nothing there."""
    d = toy_dataset()
    no_val = task(data=Dataset(d.train, Split(*(a[:0] for a in d.val)), d.test, d.info))
    with pytest.raises(ValueError, match=r"SafeCompress reads the validation split for preset='ours'.*has 0 examples"):
        SafeCompress(preset="ours").run(no_val, CFG, SPARSITY, tmp_path / "ours")
    assert not (tmp_path / "ours").exists()
    assert SafeCompress().validation_reads() == []
