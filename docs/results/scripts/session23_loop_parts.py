"""Session 23 (speed_notes §4): microseconds of the loop's per-step host pieces, one device: shuffled_batch,
put_batch, device_put to a cached sharding, jnp.asarray, a wait on a finished array, a disabled progress bar update.
    PYTHONPATH=. python docs/results/scripts/session23_loop_parts.py
"""
import time, jax, numpy as np, jax.numpy as jnp
from ballot_jax.engine.mesh import put_batch, data_mesh
from ballot_jax.samplers import shuffled_batch
from ballot_jax.engine.progress import bar
mesh = data_mesh(jax.devices()[:1])
def t(f, n=2000):
    f(); t0=time.perf_counter()
    for i in range(n): f()
    return (time.perf_counter()-t0)/n*1e6
idx = shuffled_batch(10000, 64, 0, 5)
print("shuffled_batch us", t(lambda: shuffled_batch(10000, 64, 0, 5)))
print("put_batch us", t(lambda: put_batch(idx, mesh)))
s = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data") if "data" in mesh.axis_names else jax.sharding.PartitionSpec(mesh.axis_names[0]))
print("device_put cached sharding us", t(lambda: jax.device_put(idx, s)))
print("jnp.asarray us", t(lambda: jnp.asarray(idx)))
a = jnp.ones(3); a.block_until_ready()
print("block ready us", t(lambda: a.block_until_ready()))
with bar(10**7, "x") as p:
    print("progress.update us", t(lambda: p.update(1)), p.disable)
