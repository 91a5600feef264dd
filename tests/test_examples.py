"""The examples in examples/: each composes ballot_jax's core in its framework and must really prune,
train, keep pruned weights at exactly 0 and rewind. Each ``main()`` runs once per session."""

import ast
import functools
import importlib.util
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

import ballot_jax as bj

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMES = ["plain_dict", "flax_linen", "flax_nnx", "equinox_mlp"]
NEEDS = {"flax_linen": "flax", "flax_nnx": "flax", "equinox_mlp": "equinox"}
FORBIDDEN = ("ballot_jax.engine", "ballot_jax.methods", "ballot_jax.models", "experiments")


def _load(name):
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _main(name):
    """``main()``'s result, computed once per example and test session."""
    return _load(name).main()


@pytest.fixture(params=NAMES)
def out(request):
    return _main(request.param)


def _prunable_pairs(params, mask):
    """[(mask leaf, param leaf)] for every prunable leaf, as NumPy arrays; checks the mask fits."""
    bj.check_mask(params, mask)
    m_leaves = jax.tree.leaves(mask, is_leaf=bj.is_unprunable)
    p_leaves = jax.tree.leaves(params, is_leaf=bj.is_unprunable)
    assert len(m_leaves) == len(p_leaves)
    return [(np.asarray(m), np.asarray(p)) for m, p in zip(m_leaves, p_leaves) if m is not None]


@pytest.mark.parametrize("name", NAMES)
def test_uses_only_the_core(name):
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert "ballot_jax" in imported
    assert not [m for m in imported if m.startswith(FORBIDDEN)], imported


def test_sparsity_is_exact(out):
    mask, s = out["mask"], out["target_sparsity"]
    n = bj.num_prunable(mask)
    assert int(bj.num_kept(mask)) == n - round(s * n)
    assert out["sparsity"] == pytest.approx(round(s * n) / n)


def test_only_weight_matrices_are_pruned(out):
    m_leaves = jax.tree.leaves(out["mask"], is_leaf=bj.is_unprunable)
    p_leaves = jax.tree.leaves(out["params"], is_leaf=bj.is_unprunable)
    prunable = [np.ndim(p) for m, p in zip(m_leaves, p_leaves) if m is not None]
    dense = [np.ndim(p) for m, p in zip(m_leaves, p_leaves) if m is None and p is not None]
    assert len(prunable) >= 2 and min(prunable) >= 2  # the kernels / weights of every layer
    assert dense and max(dense) == 1  # the biases stay dense


@pytest.mark.parametrize("which", ["sparse_params", "params"])
def test_params_are_exactly_zero_where_pruned(out, which):
    # The params as main() returns them, not re-masked here: after the masked training (step 3) and
    # the final ones (after rewinding and retraining).
    for m, p in _prunable_pairs(out[which], out["mask"]):
        assert not np.any(p[~m]), "a pruned weight is not exactly 0"
        assert (~m).any(), "a prunable layer was left dense"
        assert np.any(p[m] != 0), "a pruned layer has no non-zero kept weight"


def test_mask_differs_from_magnitude_pruning(out):
    # Ballot's score is |w| * exp(beta * tanh(z)) with z from the per-group statistics: it must
    # reorder some weights relative to |w| alone, at the weights the updater pruned from.
    weights, s = out["pruned_from"], out["target_sparsity"]
    dense = bj.make_mask(weights)
    magnitude = bj.prune_to_sparsity(bj.magnitude_scores(weights, dense), dense, s)
    assert int(bj.num_kept(magnitude)) == int(bj.num_kept(out["mask"]))
    assert float(bj.mask_overlap(out["mask"], magnitude)) < 1.0


def test_rewind_restores_the_snapshot_step(out):
    assert out["count_before_rewind"] > out["snapshot_count"]
    assert out["rewound_count"] == out["snapshot_count"]


def test_training_learns_something(out):
    # Balanced binary labels: chance is 0.5 in every group.
    for acc in out["accuracy"].values():
        assert float(np.mean(acc)) > 0.6


def test_plain_dict_updater_matches_direct_prune():
    out = _main("plain_dict")
    pairs = zip(bj.mask_leaves(out["mask"]), bj.mask_leaves(out["direct_mask"]))
    differing = sum(int(np.sum(a != b)) for a, b in pairs)
    # Same params, statistics and count: equal masks, up to a near-tie at the cut that float
    # rounding of the two compiled programs (inside vs outside the train step) may swap.
    assert differing <= 2


def test_equinox_vote_uses_the_output_axis():
    """The example's vote with output_axis=0 on [out, in] weights equals the vote on the transposed,
    Flax-layout [in, out] weights with output_axis=-1 (normalising per input column in both)."""
    out = _main("equinox_mlp")
    weights, (acc_grad, fair_grad) = out["pruned_from"], out["vote_inputs"]
    t = lambda tree: jax.tree.map(lambda x: x.T if np.ndim(x) == 2 else x, tree)  # noqa: E731
    dense = bj.make_mask(t(weights))
    scores = bj.vote.vote_scores(t(weights), dense, t(acc_grad), t(fair_grad), output_axis=-1)
    vote = bj.vote.cast_votes(scores, dense, bj.num_kept(out["mask"]))
    for a, b in zip(bj.mask_leaves(out["vote"]), bj.mask_leaves(vote)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b).T)


def test_equinox_builtin_mlp_with_none_leaves():
    eqx = pytest.importorskip("equinox")
    module = _load("equinox_mlp")
    out = module.main(model=eqx.nn.MLP(module.DIM, 2, 32, 1, key=jax.random.key(0)))
    n = bj.num_prunable(out["mask"])
    assert int(bj.num_kept(out["mask"])) == n - round(out["target_sparsity"] * n)


def test_plain_dict_runs_as_a_script():
    proc = subprocess.run([sys.executable, "examples/plain_dict.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sparsity 0.800" in proc.stdout
