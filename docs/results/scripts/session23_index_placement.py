"""Session 23 (speed_notes §4): host cost of placing 64 batch indices, one device: a jitted gather called with
the indices already on the device, with NumPy indices passed straight in, and after put_batch.
    PYTHONPATH=. python docs/results/scripts/session23_index_placement.py
"""
import time, jax, numpy as np, jax.numpy as jnp
from ballot_jax.engine.mesh import put_batch, data_mesh
mesh = data_mesh(jax.devices()[:1])
f = jax.jit(lambda x, i: x[i].sum())
x = jnp.ones((10000, 8)); idx = np.arange(64, dtype=np.int64)
di = put_batch(idx, mesh)
def t(g, n=3000):
    g().block_until_ready(); t0=time.perf_counter()
    for _ in range(n): r = g()
    r.block_until_ready(); return (time.perf_counter()-t0)/n*1e6
for _ in range(2):
    print("dev idx", t(lambda: f(x, di)), "np idx", t(lambda: f(x, idx)), "put+call", t(lambda: f(x, put_batch(idx, mesh))))
print(idx.dtype, di.dtype, jax.config.jax_enable_x64)
