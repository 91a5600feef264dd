"""Ballot's vote (the authors' selection mechanism) as hooks on the levels loop.

During the phase that precedes each pruning step, ``method.vote_points`` ballots are cast at evenly
spaced steps (``vote_points``), each the ``keep_counts[r]`` best alive weights by ``vote_kind``
(``ballot_jax.vote``), and saved under ``<phase dir>/votes/point_SSSSSS`` as they are cast, so a
killed run resumes with the same votes; the phase's final state casts the last ballot, and the
weights with the most votes are kept (ties by |w|). docs/method.md §5.5.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ballot_jax import compiler, vote
from ballot_jax.engine import checkpoints
from ballot_jax.engine.levels import level_dir
from ballot_jax.engine.loop import Task, Trainer, TrainConfig
from ballot_jax.engine.mesh import put_batch
from ballot_jax.samplers import shuffled_batch

VOTE_SEED = 0xB011  # the vote's batch stream: (run seed, VOTE_SEED, level) seeds its batches


def vote_points(start: int, end: int, num_points: int) -> list[int]:
    """``num_points`` evenly spaced steps in (start, end], the last one ``end`` (the phase's end)."""
    return sorted({start + round(i * (end - start) / num_points) for i in range(1, num_points + 1)} - {start})


def make_vote_grads(model):
    """``fn(params, model_state, batch, weights[G]) -> (g, gᶠ)``: gradients of the mean cross-entropy
    and of the cross-entropy with example weights ``weights[group]`` (Σ w·ℓ / Σ w, PyTorch's weighted
    mean), in eval mode, in one jitted pass (the batch may be sharded; XLA partitions it)."""

    def loss(params, model_state, batch, example_weights):
        logits, _ = model.apply(params, model_state, batch["x"], False, jax.random.PRNGKey(0))
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"])
        return jnp.sum(example_weights * ce) / jnp.sum(example_weights)

    def fn(params, model_state, batch, weights):
        per_example = jnp.stack([jnp.ones(batch["y"].shape, jnp.float32), weights[batch["group"]]])
        return jax.vmap(jax.grad(loss), in_axes=(None, None, None, 0))(params, model_state, batch, per_example)

    return compiler.jit(fn)


def ballot_caster(method, task: Task, config: TrainConfig, trainer: Trainer):
    """``cast(state, num_keep, seed) -> bool mask``: one ballot of ``method`` (a ``Ballot``: its
    ``vote_kind``, ``vote_batches``, ``vote_eta``) at ``state``."""
    if method.vote_kind == "conflict":
        scores = method.conflict_scores(task, config)
        return lambda state, num_keep, seed: vote.cast_votes(scores(state, seed), state.mask, num_keep)
    data = task.data
    grads_fn = make_vote_grads(task.model)
    present = jnp.asarray(np.bincount(data.val.group, minlength=data.info.num_groups) > 0)

    def cast(state, num_keep, seed):
        accuracy = jnp.nan_to_num(jnp.asarray(trainer.evaluate(state, data.val)["per_group_accuracy"]))
        weights = vote.group_weights(accuracy, present)
        total = None
        for b in range(method.vote_batches):
            idx = shuffled_batch(len(data.train.y), config.batch_size, seed, b)
            batch = put_batch({"x": data.train.x[idx], "y": data.train.y[idx], "group": data.train.group[idx]}, task.mesh)
            g = grads_fn(state.params, state.model_state, batch, weights)
            total = g if total is None else jax.tree.map(jnp.add, total, g)
        g_acc, g_fair = jax.tree.map(lambda x: x[0], total), jax.tree.map(lambda x: x[1], total)
        s = vote.vote_scores(state.params, state.mask, g_acc, g_fair, method.vote_eta, method.vote_kind)
        return vote.cast_votes(s, state.mask, num_keep)

    return cast


def voting(method, task: Task, config: TrainConfig, retrain: TrainConfig, keep_counts, workdir: pathlib.Path,
           trainer: Trainer, dense_dir: pathlib.Path | None = None):
    """(observe, score_fn) of the vote: hooks that cast ballots during the phase preceding each
    pruning step (saved under ``<phase dir>/votes/point_SSSSSS``), and the score that keeps the
    most-voted weights (the phase's final state casts the last ballot). With ``dense_dir`` the
    dense phase was watched by an earlier run: its ballots are read from there, not cast again."""
    cast = ballot_caster(method, task, config, trainer)

    def span(level: int) -> tuple[int, int]:  # (first, end) step of the phase scored for ``level``
        if level == 1:
            return 0, config.steps
        return method.level_start_step(retrain), retrain.steps

    def seed(level: int, step: int) -> int:
        return int(np.random.SeedSequence([config.seed, VOTE_SEED, level, step]).generate_state(1)[0])

    def path(level: int, step: int) -> pathlib.Path:
        phase = (dense_dir or level_dir(workdir, 0)) if level == 1 else level_dir(workdir, level - 1)
        return phase / "votes" / f"point_{step:06d}"

    def observe(level: int, directory: pathlib.Path):
        if level == 1 and dense_dir is not None:
            return None
        first, end = span(level)
        inner = set(vote_points(first, end, method.vote_points)) - {end}

        def on_step(step: int, state) -> None:
            if step in inner and not checkpoints.item_exists(path(level, step)):
                checkpoints.save_item(path(level, step), cast(state, keep_counts[level - 1], seed(level, step)))

        return on_step

    def score_fn(state, level: int):
        first, end = span(level)
        num_keep = keep_counts[level - 1]
        counts = vote.add_votes(None, cast(state, num_keep, seed(level, end)))
        for step in vote_points(first, end, method.vote_points):
            if step != end:
                counts = vote.add_votes(counts, checkpoints.load_item(path(level, step), state.mask))
        keep = vote.keep_most_voted(counts, state.params, state.mask, jnp.int32(num_keep))
        return jax.tree.map(lambda m: m.astype(jnp.float32), keep)

    return observe, score_fn


__all__ = ["ballot_caster", "make_vote_grads", "vote_points", "voting"]
