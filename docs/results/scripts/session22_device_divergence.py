"""Parameters after 1..200 steps of CE − μ · the adversary's CE (the toy MLP of the tests) on 1 and
4 CPU devices: how far the 4-device run drifts from the 1-device one (results.md A.7, session 22).

    XLA_FLAGS=--xla_force_host_platform_device_count=4 JAX_PLATFORMS=cpu \
      python docs/results/scripts/session22_device_divergence.py 3    # μ = 3 (0: plain CE)
"""
import pathlib
import sys

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / "tests"))
from ballot_jax.engine.loop import Task, TrainConfig, Trainer, init_state
from ballot_jax.engine.mesh import data_mesh
from ballot_jax.methods.adversary import adversarial_objective
from engine_fixtures import mlp_model, toy_dataset
mu = float(sys.argv[1])
config = TrainConfig(steps=200, batch_size=32, learning_rate=0.1, rewind_step=0, checkpoint_every=0)
obj = adversarial_objective(2, 2, mu) if mu else None
out = {}
for n in (1, 4):
    task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:n]))
    tr = Trainer(task)
    st = init_state(task, config)
    res = []
    for k in (1, 5, 20, 50, 100, 200):
        st = tr.train(st, config, k, data_seed=0, objective=obj, desc="d")
        res.append(np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(st.params))]))
    out[n] = res
for k, a, b in zip((1, 5, 20, 50, 100, 200), out[1], out[4]):
    print(f"mu={mu} step {k}: max|d| {np.abs(a-b).max():.2e}  rel {np.linalg.norm(a-b)/np.linalg.norm(a):.2e}")
