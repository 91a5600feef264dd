"""Ballot's conflict scoring phase (``score_batches`` stratified batches -> ``mean_group_grads`` ->
``ballot.conflict_stats``) as the library runs it since session 38 (the pass leaves the squared
gradients to ``mean_group_grads``' fused accumulation) against the formulation before it (the pass
squares, the batches summed op by op), same model, params and batches, one device.

Checks that both give the same statistics bit for bit, then prints ms per scoring and the paired
ratio new / old (benchmarks.common.compare, median of paired per-repetition ratios).

    PYTHONPATH=. python docs/results/scripts/session38_scoring_phase.py [--groups G] [--batches B]
"""

from __future__ import annotations

import argparse

import chex
import jax
import jax.numpy as jnp
import numpy as np

from ballot_jax import ballot, compiler, grads, make_mask
from ballot_jax.engine.mesh import data_mesh, put_batch
from ballot_jax.engine.steps import group_loss
from ballot_jax.models import get_model
from benchmarks import common

PER_GROUP = 32


def build(name: str, groups: int, num_batches: int):
    model = get_model(name, num_classes=10)
    rng = np.random.default_rng(0)
    host = [{"x": rng.normal(size=(groups, PER_GROUP, 32, 32, 3)).astype(np.float32),
             "y": rng.integers(0, 10, (groups, PER_GROUP)).astype(np.int32)} for _ in range(num_batches)]
    mesh = data_mesh(jax.devices()[:1])
    batches = [put_batch(b, mesh, axis=1) for b in host]
    params, model_state = jax.jit(model.init)(jax.random.PRNGKey(0), host[0]["x"][0, :1])
    mask = make_mask(params)
    loss = group_loss(model)
    new_pass = grads.sharded_group_grads(loss, mesh)

    @compiler.jit
    def old_pass(p, batch, state):  # the pass before session 38: squares written beside the gradients
        out = grads.per_group_grads(loss, p, batch, state)
        return out._replace(sq_grads=jax.tree.map(jnp.square, out.grads))

    def old():
        total = None
        for batch in batches:
            out = old_pass(params, batch, model_state)
            total = out if total is None else jax.tree.map(jnp.add, total, out)
        return ballot.conflict_stats(params, mask, jax.tree.map(lambda x: x / num_batches, total))

    def new():
        return ballot.conflict_stats(params, mask, grads.mean_group_grads(new_pass, params, batches, model_state))

    return old, new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--batches", type=int, default=8, help="score_batches (Ballot's default 8)")
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    rows = []
    for name in ("mlp", "small_cnn"):
        old, new = build(name, args.groups, args.batches)
        chex.assert_trees_all_equal(old(), new())  # bit for bit
        res = common.compare({"old": old, "new": new}, repeats=args.repeats, warmup=2, min_sample_s=0.2)
        before, now = (common.measured(res[k], res["old"]["samples_s"]) for k in ("old", "new"))
        rows.append((name, before["median_s"] * 1e3, now["median_s"] * 1e3, now["ratio"]))
    print(f"scoring phase, G = {args.groups}, {args.batches} batches of {PER_GROUP} per group; statistics equal bit for bit")
    print(f"{'model':10} {'before ms':>10} {'now ms':>10} {'now/before':>11}")
    for name, o, n, r in rows:
        print(f"{name:10} {o:10.2f} {n:10.2f} {r:11.3f}")


if __name__ == "__main__":
    main()
