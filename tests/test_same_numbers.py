"""Golden values: tiny runs of SafeCompress, FairScratch, Ballot and magnitude pruning give exactly the
numbers recorded before the methods and metrics were split into modules (a refactoring guard).

Recorded at commit e0f0c12 (``git rev-parse --short HEAD``) with ``python tests/test_same_numbers.py``
(it prints ``GOLDEN``; the same environment as pytest: conftest's four CPU devices, each run on one).
Final test metrics to 1e-6 absolute, kept-weight counts exactly.

The metrics are counts over 128 test examples, so a small change (e.g. SafeCompress's adversary
learning rate doubled, FairScratch's score learning rate +10%) can leave all of them unchanged; the
``fingerprint`` (Σ|x| over every floating array the run saved: each phase's final weights, optimizer
moments and, for SafeCompress, the adversary) catches those, to 1e-6 relative.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ballot_jax.engine import checkpoints  # noqa: E402
from ballot_jax.engine.loop import Task, TrainConfig  # noqa: E402
from ballot_jax.engine.mesh import data_mesh  # noqa: E402
from ballot_jax.methods import Ballot, FairScratch, MagnitudePruning, SafeCompress  # noqa: E402
from engine_fixtures import mlp_model, toy_dataset  # noqa: E402

CFG = TrainConfig(steps=10, batch_size=16, learning_rate=0.1, checkpoint_every=0)
SPARSITY = 0.5
METHODS = {
    "safecompress": SafeCompress,  # preset "authors"
    "fairscratch": FairScratch,  # preset "authors"
    "fairscratch_ours": lambda: FairScratch(preset="ours"),  # (SafeCompress "ours": test_safecompress.py)
    # the default before pruning="auto" (session 5), with the μ search before session 10 and the
    # worst-cell term before session 14 (its golden run)
    "ballot": lambda: Ballot(pruning="one_shot", disparity_weights=(0.0, 0.3, 1.0), epsilon_reference="dense",
                             disparity="worst_cell"),
    "magnitude": MagnitudePruning,
}
METRICS = ("accuracy", "cwv", "mcd")

# Recorded at e0f0c12 by ``python tests/test_same_numbers.py`` (see the module docstring).
GOLDEN = {
    "ballot": {"kept": 80, "test_accuracy": 0.65625, "test_cwv": 0.0022872143890708685,
               "test_mcd": 0.09564965963363647, "fingerprint": 252.88982309737185},
    "fairscratch": {"kept": 80, "test_accuracy": 0.7421875, "test_cwv": 0.02720455452799797,
                    "test_mcd": 0.3298760652542114, "fingerprint": 145.4937766752705},
    "fairscratch_ours": {"kept": 80, "test_accuracy": 0.75, "test_cwv": 0.06903677433729172,
                         "test_mcd": 0.5254969596862793, "fingerprint": 149.68334553507117},
    "magnitude": {"kept": 80, "test_accuracy": 0.7421875, "test_cwv": 0.03362695127725601,
                  "test_mcd": 0.36675307154655457, "fingerprint": 173.5723105281677},
    "safecompress": {"kept": 80, "test_accuracy": 0.71875, "test_cwv": 0.057732824236154556,
                     "test_mcd": 0.48055312037467957, "adversary_test_accuracy": 0.6953125,
                     "fingerprint": 125246.10542876675},
}


def fingerprint(workdir) -> float:
    """Σ|x| (float64) over the floating leaves of every item a run saved under ``workdir`` (periodic
    checkpoints aside), read back without a template."""
    total = 0.0
    for manifest in sorted(pathlib.Path(workdir).rglob(checkpoints.MANIFEST)):
        if "ckpt" in manifest.parts:
            continue
        for leaf in checkpoints.read_leaves(manifest.parent):
            if np.issubdtype(leaf.dtype, np.floating):
                total += float(np.sum(np.abs(leaf.astype(np.float64))))
    return total


def run(name, workdir):
    task = Task(mlp_model(), toy_dataset(), data_mesh(jax.devices()[:1]))
    record = METHODS[name]().run(task, CFG, SPARSITY, workdir)
    out = {"kept": record["kept"], **{f"test_{k}": float(record["test"][k]) for k in METRICS}}
    if name == "safecompress":  # the min-max game: the adversary's final group accuracy
        out["adversary_test_accuracy"] = float(record["adversary"]["test_accuracy"])
    out["fingerprint"] = fingerprint(workdir)
    return out


@pytest.mark.parametrize("name", sorted(METHODS))
def test_same_numbers(name, tmp_path):
    got = run(name, tmp_path)
    want = GOLDEN[name]
    assert set(got) == set(want)
    assert got["kept"] == want["kept"]
    assert got["fingerprint"] == pytest.approx(want["fingerprint"], rel=1e-6), (name, got["fingerprint"])
    for key in set(want) - {"kept", "fingerprint"}:
        assert got[key] == pytest.approx(want[key], abs=1e-6), (name, key, got[key], want[key])


if __name__ == "__main__":  # records the values
    import sys
    import tempfile
    import time

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    values = {}
    for name in sorted(METHODS):
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as d:
            values[name] = run(name, d)
        print(name, f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print("GOLDEN = {")
    for name, v in values.items():
        print(f"    {name!r}: {{" + ", ".join(f"{k!r}: {x!r}" for k, x in v.items()) + "},")
    print("}")
