"""The training set on the devices (ballot_jax.engine.device_data): a phase trained with batches
gathered on the device equals the host-gathered phase bit for bit, for dense and conv models, for
shuffled and group-balanced batches; sets over the size limit keep the host path."""

import jax
import numpy as np
import pytest

from ballot_jax.data.base import Dataset, DatasetInfo, Split
from ballot_jax.engine import device_data
from ballot_jax.engine.loop import Task, Trainer, TrainConfig, init_state
from ballot_jax.engine.mesh import data_mesh
from ballot_jax.models import get_model
from engine_fixtures import mlp_model, toy_dataset


def image_dataset(n=96, seed=0):
    rng = np.random.default_rng(seed)

    def split(m):
        return Split(rng.normal(size=(m, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, m).astype(np.int32),
                     rng.integers(0, 2, m).astype(np.int32))

    info = DatasetInfo("noise", 3, 2, ("a", "b"), ("0", "1", "2"), (8, 8, 3))
    return Dataset(split(n), split(12), split(12), info)


def train(task, config, monkeypatch, limit):
    monkeypatch.setattr(device_data, "DEVICE_DATA_MAX_BYTES", limit)
    state = init_state(task, config)
    before = device_data.gathering.cache_info()
    out = jax.device_get(Trainer(task).train(state, config, config.steps, data_seed=3))
    after = device_data.gathering.cache_info()
    calls = after.hits + after.misses - before.hits - before.misses
    assert calls == (1 if limit else 0)  # the phase took the path under test (one gathering step per phase)
    return out


@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_device_gathered_batches_equal_host_batches(kind, balanced, monkeypatch):
    if kind == "mlp":
        task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))
    else:
        task = Task(get_model("small_cnn", num_classes=3, channels=(4, 8), dense=16), image_dataset(),
                    data_mesh(jax.devices()[:1]))
    config = TrainConfig(steps=12, batch_size=16, learning_rate=0.1, checkpoint_every=0, balanced_sampling=balanced)
    on_device = train(task, config, monkeypatch, device_data.DEVICE_DATA_MAX_BYTES)
    on_host = train(task, config, monkeypatch, 0)
    for a, b in zip(jax.tree.leaves(on_device), jax.tree.leaves(on_host)):
        np.testing.assert_array_equal(a, b)


def test_the_set_is_placed_once_and_large_sets_stay_on_the_host(monkeypatch):
    mesh = data_mesh(jax.devices()[:1])
    train_split = toy_dataset().train
    first = device_data.device_train_data(train_split, mesh)
    assert device_data.device_train_data(train_split, mesh) is first  # reused, not placed again
    np.testing.assert_array_equal(np.asarray(first["x"]), train_split.x)
    monkeypatch.setattr(device_data, "DEVICE_DATA_MAX_BYTES", train_split.x.nbytes)  # x alone fills it
    assert device_data.device_train_data(train_split, mesh) is None
