"""One process of the multi-host test (``tests/test_multihost.py``); its functions also give the reference.

``python multihost_worker.py OUT_PREFIX WORKDIR``, launched under ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``, joins the cluster, then on the mesh of *all* processes'
devices: trains the toy MLP recording every step's loss and the batch shards this process fed,
trains again with the ``Trainer`` (periodic checkpoints), saves and restores an item, evaluates, and
runs the pruning levels, all in the shared ``WORKDIR``. What it saw goes to ``OUT_PREFIX.<process>``.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from ballot_jax.engine import mesh as mesh_lib

STEPS = 15


def config():
    from ballot_jax.engine.loop import TrainConfig

    return TrainConfig(steps=STEPS, batch_size=16, learning_rate=0.1, rewind_step=3, checkpoint_every=5)


def task(mesh):
    from ballot_jax.engine.loop import Task
    from engine_fixtures import mlp_model, toy_dataset

    return Task(mlp_model(), toy_dataset(), mesh)


def interleaved(devices):
    """The devices ordered round-robin over processes: no process holds a contiguous block of rows."""
    by_process = {}
    for d in devices:
        by_process.setdefault(d.process_index, []).append(d)
    return [d for group in zip(*by_process.values()) for d in group]


def train_losses(mesh):
    """``(losses, fed, trainer, state)`` after ``STEPS`` steps of the jitted step function on ``mesh``.

    ``fed[step][leaf]`` holds the global shape and, for each shard this process holds, its shape and
    row range ``[start, stop)`` in the global batch.
    """
    from ballot_jax.engine.loop import Trainer, init_state

    trainer = Trainer(task(mesh))
    cfg = config()
    step_fn = trainer.step_fn(cfg)
    state = init_state(trainer.task, cfg)
    losses, fed = [], []
    for step in range(STEPS):
        batch = mesh_lib.put_batch(trainer.batch(cfg, step, cfg.seed), mesh)
        fed.append({
            name: {
                "global_shape": list(x.shape),
                "local_shards": [
                    {"shape": list(s.data.shape), "rows": list(s.index[0].indices(x.shape[0])[:2])}
                    for s in x.addressable_shards
                ],
            }
            for name, x in batch.items()
        })
        state, stats = step_fn(state, batch)
        losses.append(float(stats["loss"]))
    return losses, fed, trainer, state


def test_metrics(trainer, state):
    """Test-split metrics, evaluated in batches small enough to be spread over every device."""
    from ballot_jax.engine.steps import evaluate

    info, mesh = trainer.task.data.info, trainer.task.mesh
    return evaluate(
        trainer.predict, state.params, state.model_state, trainer.task.data.test, info.num_classes,
        info.num_groups, mesh, batch_size=8 * mesh.devices.size,
    )


def magnitude(state, level):
    import ballot_jax as bj

    return bj.magnitude_scores(state.params, state.mask)


def levels(mesh, workdir):
    """One dense phase and one pruning level (``run_levels``) in ``workdir``; the per-level records."""
    from ballot_jax.engine.levels import LevelPlan, run_levels

    return run_levels(task(mesh), config(), magnitude, LevelPlan([100]), workdir)


def host_tree(tree):
    """A pytree of (possibly multi-host) arrays as nested lists, on every process."""
    import jax
    import numpy as np

    return jax.tree.map(lambda a: np.asarray(mesh_lib.to_host(a)).tolist(), tree)


def main(out_prefix: str, workdir: str) -> None:
    initialized = mesh_lib.maybe_initialize_distributed()  # before any other JAX call

    import jax
    import numpy as np

    from ballot_jax.engine import checkpoints
    from ballot_jax.engine.loop import init_state

    mesh = mesh_lib.data_mesh()
    losses, fed, trainer, state = train_losses(mesh)
    mesh_i = mesh_lib.data_mesh(interleaved(jax.devices()))
    losses_interleaved, _, trainer_i, state_i = train_losses(mesh_i)
    rows = np.arange(4 * jax.device_count(), dtype=np.int32)
    rows_back = mesh_lib.to_host(mesh_lib.put_batch({"i": rows}, mesh_i)["i"])

    # The Trainer's own loop, with periodic (Orbax CheckpointManager) checkpoints in the shared dir.
    cfg = config()
    trained = trainer.train(init_state(trainer.task, cfg), cfg, STEPS, data_seed=cfg.seed, ckpt_dir=f"{workdir}/ckpt")
    # A named one-shot item, saved by all processes together and read back by each of them.
    checkpoints.save_item(f"{workdir}/final", trained)
    restored = checkpoints.load_item(f"{workdir}/final", init_state(trainer.task, cfg))

    result = {
        "initialized": initialized,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "global_devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "losses": losses,
        "losses_interleaved": losses_interleaved,
        "fed": fed,
        "loop_params": host_tree(state.params),
        "trained_params": host_tree(trained.params),
        "restored_params": host_tree(restored.params),
        "rows_round_trip_interleaved": np.asarray(rows_back).tolist() == rows.tolist(),
        "test_metrics": test_metrics(trainer, state),
        "test_metrics_interleaved": test_metrics(trainer_i, state_i),
        "levels": levels(mesh, f"{workdir}/levels"),
    }
    with open(f"{out_prefix}.{jax.process_index()}", "w") as f:
        json.dump(result, f)
    if initialized:
        jax.distributed.shutdown()


if __name__ == "__main__":
    try:
        main(sys.argv[1], sys.argv[2])
    except BaseException:
        # Exit at once: a normal exit would wait in jax.distributed's shutdown barrier for peers
        # that are themselves stuck waiting for this process.
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
