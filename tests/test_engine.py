import chex
import jax
import numpy as np
import pytest

import ballot_jax as bj
from ballot_jax.engine import checkpoints
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state, make_schedule
from ballot_jax.engine.levels import LevelPlan, run_levels
from ballot_jax.engine.mesh import data_mesh, replicate, replicated
from ballot_jax.samplers import group_index, shuffled_batch, stratified_batch
from engine_fixtures import Crash, CrashingTrainer, mlp_model, toy_dataset

CFG = TrainConfig(steps=40, batch_size=16, learning_rate=0.1, rewind_step=4, checkpoint_every=10)


def magnitude(state, level):
    return bj.magnitude_scores(state.params, state.mask)


def task(num_devices=1, hidden=16):
    return Task(mlp_model(hidden), toy_dataset(), data_mesh(jax.devices()[:num_devices]))


def plan():
    return LevelPlan(bj.pruning_plan(8 * 16 + 16 * 2, 0.6, 0.4))


def test_four_devices_equal_one():
    assert len(jax.devices()) >= 4, "conftest sets 4 CPU devices"
    results = []
    for n in (1, 4):
        t = task(n)
        trainer = Trainer(t)
        state = trainer.train(init_state(t, CFG), CFG, 25, data_seed=0)
        results.append(jax.device_get(state.params))
    chex.assert_trees_all_close(results[0], results[1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["worst_cell", "dp"])
def test_non_additive_objective_equal_on_1_2_4_devices(kind):
    """A group-disparity objective is not a mean of per-shard values: the step evaluates it on the
    global batch, so 2 and 4 devices train exactly as 1 does."""
    from ballot_jax.objectives import fair_objective

    objective = fair_objective(num_groups=2, kind=kind, weight=1.0)
    results = []
    for n in (1, 2, 4):
        t = task(n)
        state = Trainer(t, objective).train(init_state(t, CFG), CFG, 15, data_seed=0)
        results.append(jax.device_get(state.params))
    for other in results[1:]:
        chex.assert_trees_all_close(results[0], other, atol=1e-5, rtol=1e-5)


def test_levels_no_regrowth_and_exact_sparsity(tmp_path):
    t = task()
    records = run_levels(t, CFG, magnitude, plan(), tmp_path)
    assert [r["kept"] for r in records[1:]] == list(plan().keep_counts)
    prev = None
    for level in range(1, len(records)):
        d = tmp_path / f"level_{level:02d}"
        like = init_state(t, CFG)
        final = checkpoints.load_item(d / "final", like)
        mask = final.mask
        for m, p in zip(bj.mask_leaves(mask), bj.mask_leaves(bj.magnitude_scores(final.params, mask))):
            assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0), "a pruned weight moved during retraining"
        if prev is not None:
            for a, b in zip(bj.mask_leaves(prev), bj.mask_leaves(mask)):
                assert not np.any(np.asarray(b) & ~np.asarray(a)), "a pruned weight was revived"
        prev = mask


def test_rewind_lr_starts_retraining_at_step_k(tmp_path):
    t = task()
    seen = []

    class Recording(Trainer):
        def train(self, state, config, until_step, **kw):
            seen.append(int(state.step))
            return super().train(state, config, until_step, **kw)

    run_levels(t, CFG, magnitude, LevelPlan([100]), tmp_path, trainer=Recording(t))
    assert seen == [0, CFG.rewind_step]
    seen.clear()
    cfg = TrainConfig(**{**CFG.__dict__, "rewind_lr": False})
    run_levels(t, cfg, magnitude, LevelPlan([100]), tmp_path / "fresh", trainer=Recording(t))
    assert seen == [0, 0]


@pytest.mark.parametrize("crash_at", [17, 57, 95])  # dense phase, level 1 mid-way, level 2 mid-way
def test_resume_after_interruption_is_identical(tmp_path, crash_at, capfd):
    t = task()
    reference = run_levels(t, CFG, magnitude, plan(), tmp_path / "ref")

    with pytest.raises(Crash):
        run_levels(t, CFG, magnitude, plan(), tmp_path / "run", trainer=CrashingTrainer(t, crash_at))
    capfd.readouterr()
    resumed = run_levels(t, CFG, magnitude, plan(), tmp_path / "run")
    assert "resumed at step" in capfd.readouterr().err, "the run must continue from its checkpoint"
    for a, b in zip(reference, resumed):
        assert a["kept"] == b["kept"]
        assert a["test"] == b["test"] and a["val"] == b["val"]  # bit-identical on CPU
    like = init_state(t, CFG).mask
    for level in range(1, len(reference)):
        ref_mask = checkpoints.load_item(tmp_path / "ref" / f"level_{level:02d}" / "mask", like)
        run_mask = checkpoints.load_item(tmp_path / "run" / f"level_{level:02d}" / "mask", like)
        chex.assert_trees_all_equal(ref_mask, run_mask)


def test_same_seed_same_masks(tmp_path):
    t = task()
    run_levels(t, CFG, magnitude, plan(), tmp_path / "a")
    run_levels(t, CFG, magnitude, plan(), tmp_path / "b")
    like = init_state(t, CFG).mask
    chex.assert_trees_all_equal(
        checkpoints.load_item(tmp_path / "a" / "level_02" / "mask", like),
        checkpoints.load_item(tmp_path / "b" / "level_02" / "mask", like),
    )


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    run_levels(task(hidden=16), CFG, magnitude, LevelPlan([100]), tmp_path)
    with pytest.raises(checkpoints.CheckpointMismatchError, match="delete that directory"):
        run_levels(task(hidden=8), CFG, magnitude, LevelPlan([50]), tmp_path)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    t = task()
    run_levels(t, CFG, magnitude, LevelPlan([100]), tmp_path)
    for f in (tmp_path / "level_01" / "final").rglob("*"):
        if f.is_file() and f.stat().st_size > 0:
            f.write_bytes(b"garbage")
    with pytest.raises(checkpoints.CheckpointMismatchError):
        checkpoints.load_item(tmp_path / "level_01" / "final", init_state(t, CFG))


def test_shuffled_sampler_is_a_pure_function_of_seed_and_step():
    a = [shuffled_batch(100, 30, 1, s) for s in range(6)]
    b = [shuffled_batch(100, 30, 1, s) for s in range(6)]
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    epoch0 = np.concatenate(a[:3])
    assert len(set(epoch0.tolist())) == 90, "no repeats within an epoch"
    assert not np.array_equal(a[0], shuffled_batch(100, 30, 2, 0))


def test_stratified_sampler_balances_groups():
    groups = np.array([0] * 50 + [1] * 3 + [2] * 20)
    members = group_index(groups, 3)
    idx = stratified_batch(members, 8, seed=0, step=5)
    assert idx.shape == (3, 8)
    for g in range(3):
        assert np.all(groups[idx[g]] == g)
    assert len(set(idx[1].tolist())) <= 3  # the small group is sampled with replacement
    np.testing.assert_array_equal(idx, stratified_batch(members, 8, seed=0, step=5))
    with pytest.raises(ValueError, match="no examples"):
        group_index(groups, 4)


def test_config_validation():
    with pytest.raises(ValueError, match="rewind_step"):
        TrainConfig(steps=10, rewind_step=10)
    with pytest.raises(ValueError, match="divisible"):
        Trainer(task(4)).train(init_state(task(4), CFG), TrainConfig(steps=5, batch_size=6), 5, data_seed=0)


def test_warmup_steps_need_the_warmup_schedule():
    """A warm-up that the schedule would ignore is refused, naming both fields; with its schedule it warms up."""
    with pytest.raises(ValueError, match="warmup_steps=30 .*schedule='warmup_cosine'.*'cosine'"):
        TrainConfig(steps=100, warmup_steps=30)
    with pytest.raises(ValueError, match="warmup_steps must be >= 0"):
        TrainConfig(steps=100, warmup_steps=-1, schedule="warmup_cosine")
    lr = make_schedule(TrainConfig(steps=100, warmup_steps=30, schedule="warmup_cosine", learning_rate=0.1))
    np.testing.assert_allclose([float(lr(0)), float(lr(15)), float(lr(30))], [0.0, 0.05, 0.1], rtol=1e-6)


def test_retrain_objective_applies_to_pruning_levels_only(tmp_path):
    """A zero objective in retraining leaves the rewound weights untouched (no decay, no momentum)."""
    import jax.numpy as jnp

    cfg = TrainConfig(steps=20, batch_size=16, learning_rate=0.1, weight_decay=0.0, rewind_step=0)
    t = task()
    zero = lambda logits, batch: 0.0 * jnp.sum(logits)  # noqa: E731
    records = run_levels(t, cfg, magnitude, LevelPlan([100], retrain_objective=zero), tmp_path)
    like = init_state(t, cfg)
    rewind = checkpoints.load_item(tmp_path / "level_00" / "rewind", like)
    dense = checkpoints.load_item(tmp_path / "level_00" / "final", like)
    final = checkpoints.load_item(tmp_path / "level_01" / "final", like)
    chex.assert_trees_all_equal(final.params, bj.apply_mask(rewind.params, final.mask))
    assert not np.allclose(dense.params["hidden"]["kernel"], rewind.params["hidden"]["kernel"])
    assert records[1]["kept"] == 100


@pytest.mark.parametrize("rewind_lr", [True, False])
def test_rewinding_levels_start_from_theta_k_masked(tmp_path, rewind_lr):
    """Every rewinding level starts from θ_k's weights under its new mask, with a fresh optimizer
    (rewind_lr=False: e.g. Ballot(lr="warmup_cosine")) or θ_k's (True) -- never from the final weights."""
    t = task()
    starts = []

    class Recording(Trainer):
        def train(self, state, config, until_step, **kw):
            starts.append(jax.device_get(state))
            return super().train(state, config, until_step, **kw)

    cfg = TrainConfig(**{**CFG.__dict__, "rewind_lr": rewind_lr})
    run_levels(t, cfg, magnitude, LevelPlan([100, 60]), tmp_path, trainer=Recording(t))
    theta_k = checkpoints.load_item(tmp_path / "level_00" / "rewind", init_state(t, cfg))
    for level, start in enumerate(starts[1:], start=1):
        mask = checkpoints.load_item(tmp_path / f"level_{level:02d}" / "mask", theta_k.mask)
        chex.assert_trees_all_equal(start.params, jax.device_get(bj.apply_mask(theta_k.params, mask)))
        assert int(start.step) == (CFG.rewind_step if rewind_lr else 0)
        momentum = optax_trace(start.opt_state)
        reference = optax_trace(theta_k.opt_state)
        if rewind_lr:
            chex.assert_trees_all_equal(momentum, jax.device_get(reference))
        else:
            assert all(np.all(np.asarray(x) == 0) for x in jax.tree.leaves(momentum))


def optax_trace(opt_state):
    import optax

    return optax.tree_utils.tree_get(opt_state, "trace")


@pytest.mark.parametrize("name, kwargs, shape", [
    ("mlp", {"hidden": (16,)}, (8,)),
    ("small_cnn", {"channels": (4, 8), "dense": 16}, (8, 8, 3)),
])
def test_init_state_is_the_eager_initialisation_bit_for_bit(name, kwargs, shape):
    """``init_state`` compiles ``model.init`` as one program: the same numbers as calling it eagerly
    (every recorded result starts from these weights)."""
    from ballot_jax.models import get_model

    data = toy_dataset(n=32, dim=int(np.prod(shape)))
    data = data._replace(train=data.train._replace(x=data.train.x.reshape(-1, *shape)))
    model = get_model(name, num_classes=2, **kwargs)
    for seed in (0, 5):
        config = TrainConfig(steps=1, batch_size=8, seed=seed)
        state = init_state(Task(model, data, data_mesh(jax.devices()[:1])), config)
        params, model_state = model.init(jax.random.PRNGKey(seed), jax.numpy.asarray(data.train.x[:1]))
        chex.assert_trees_all_equal((state.params, state.model_state), (params, model_state))


def test_replicate_places_every_leaf_and_keeps_placed_ones():
    """``replicate`` puts on the 4-device mesh every leaf not already replicated there (host arrays,
    scalars, arrays on one device, arrays split over the mesh) and returns the placed ones as they
    are, without a copy; a tree already placed comes back as the same object; inside jit it places
    its tracers as ``jax.device_put`` does."""
    mesh = data_mesh(jax.devices()[:4])
    target = replicated(mesh)
    placed = jax.device_put(np.arange(4.0), target)
    split = jax.device_put(np.arange(8.0), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    tree = {"host": np.ones((2, 3), np.float32), "scalar": 3, "one_device": jax.device_put(np.zeros(5), jax.devices()[1]),
            "split": split, "placed": placed, "none": None}
    out = replicate(tree, mesh)
    assert out["none"] is None and out["placed"] is placed
    for name in ("host", "scalar", "one_device", "split"):
        assert out[name].sharding == target, name
        np.testing.assert_array_equal(np.asarray(out[name]), np.asarray(tree[name]))
    assert out["split"].addressable_shards[0].data.shape == (8,)  # whole on each device, not a shard
    assert replicate(out, mesh) is out
    inside = jax.jit(lambda t: replicate(t, mesh))({"w": jax.numpy.ones(3)})
    assert inside["w"].sharding == target  # inside jit too (a tracer has no sharding to compare)
