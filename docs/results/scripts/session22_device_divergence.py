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
from ballot_jax.methods.adversary import adversarial_objective
from engine_fixtures import params_after

STEPS = (1, 5, 20, 50, 100, 200)
mu = float(sys.argv[1])
objective = adversarial_objective(2, 2, mu) if mu else None
flat = {n: [np.concatenate([np.ravel(x) for x in jax.tree.leaves(p)]) for p in params_after(n, objective, STEPS)]
        for n in (1, 4)}
for k, a, b in zip(STEPS, flat[1], flat[4]):
    print(f"mu={mu} step {k}: max|d| {np.abs(a-b).max():.2e}  rel {np.linalg.norm(a-b)/np.linalg.norm(a):.2e}")
