"""Session 23 (speed_notes §4): ms a step of bare / bare_gather / loop over 200 steps (MLP of benchmarks.loop),
and the host time of the gathering call inside Trainer.train (median, mean).
    PYTHONPATH=. python docs/results/scripts/session23_loop_host_side.py
"""
import time, jax, numpy as np
from benchmarks.loop import build, model_specs
import ballot_jax.engine.loop as L
spec = model_specs(False)[1]
b = build(spec, 200, 10000)
v = b["variants"]
for name in ["bare", "bare_gather", "loop"]:
    v[name]()
    ts=[]
    for _ in range(5):
        t0=time.perf_counter(); jax.block_until_ready(v[name]()); ts.append((time.perf_counter()-t0)/200*1e3)
    print(name, "ms/step", np.round(sorted(ts),3))
# dispatch-only cost: a gathered call that returns at once (host time of the dispatch) measured via an already-cheap fn
import ballot_jax.engine.device_data as D
real = D.gathering
calls = []
def fake(step, mesh):
    g = real(step, mesh)
    def f(state, data, idx):
        t0 = time.perf_counter(); out = g(state, data, idx); calls.append(time.perf_counter()-t0); return out
    return f
L.gathering = fake
jax.block_until_ready(v["loop"]())
calls.clear(); t0=time.perf_counter(); jax.block_until_ready(v["loop"]()); tot=time.perf_counter()-t0
print("loop total ms/step", tot/200*1e3, "in gathered() call ms/step (incl. waits? no: async)", np.median(calls)*1e3, np.mean(calls)*1e3)
