"""Tiny, fast fixtures shared by the engine and method tests: a plain-function MLP and a toy dataset."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ballot_jax.data.base import Dataset, DatasetInfo, Split
from ballot_jax.engine.loop import Trainer
from ballot_jax.engine.model import Model


def mlp_model(hidden: int = 16, num_classes: int = 2) -> Model:
    """A two-layer MLP as plain functions on a dict params tree (no Flax)."""

    def init(rng, x):
        d = int(np.prod(x.shape[1:]))
        k1, k2 = jax.random.split(rng)
        params = {
            "hidden": {"kernel": jax.random.normal(k1, (d, hidden)) / np.sqrt(d), "bias": jnp.zeros(hidden)},
            "out": {"kernel": jax.random.normal(k2, (hidden, num_classes)) / np.sqrt(hidden),
                    "bias": jnp.zeros(num_classes)},
        }
        return params, {}

    def apply(params, model_state, x, train, rng):
        del train, rng
        h = jax.nn.relu(x.reshape(x.shape[0], -1) @ params["hidden"]["kernel"] + params["hidden"]["bias"])
        return h @ params["out"]["kernel"] + params["out"]["bias"], model_state

    return Model(init, apply)


def toy_dataset(n: int = 256, dim: int = 8, seed: int = 0) -> Dataset:
    """Two classes, two groups (group 1 is a 25% minority whose label depends on other features)."""
    rng = np.random.default_rng(seed)

    def split(m):
        x = rng.normal(size=(m, dim)).astype(np.float32)
        group = (rng.random(m) < 0.25).astype(np.int32)
        signal = np.where(group == 0, x[:, 0] + x[:, 1], x[:, 2] - x[:, 3])
        y = (signal > 0).astype(np.int32)
        return Split(x, y, group)

    info = DatasetInfo("toy", 2, 2, ("majority", "minority"), ("0", "1"), (dim,))
    return Dataset(split(n), split(n // 2), split(n // 2), info)


def params_after(num_devices: int, objective, steps, hidden: int = 16) -> list:
    """The toy task's MLP trained with ``objective`` on the first ``num_devices`` devices: its params
    (on the host) after each step count of ``steps`` (increasing), one run continued between them."""
    from ballot_jax.engine.loop import Task, TrainConfig, init_state
    from ballot_jax.engine.mesh import data_mesh

    config = TrainConfig(steps=max(steps), batch_size=32, learning_rate=0.1, rewind_step=0, checkpoint_every=0)
    task = Task(mlp_model(hidden), toy_dataset(), data_mesh(jax.devices()[:num_devices]))
    trainer, state, out = Trainer(task), init_state(task, config), []
    for until in steps:
        state = trainer.train(state, config, until, data_seed=0, objective=objective, desc="toy")
        out.append(jax.device_get(state.params))
    return out


class Crash(RuntimeError):
    """A simulated kill of a run (raised by ``CrashingTrainer``)."""


class CrashingTrainer(Trainer):
    """The engine's ``Trainer`` that raises ``Crash`` when it draws its ``crash_at``-th batch (counted
    over every phase it trains), to test that a killed run resumes identically."""

    def __init__(self, task, crash_at: int):
        super().__init__(task)
        self.crash_at, self.calls = crash_at, 0

    def batch_indices(self, config, step, data_seed):
        self.calls += 1
        if self.calls == self.crash_at:
            raise Crash(f"killed at batch {self.crash_at}")
        return super().batch_indices(config, step, data_seed)
