"""The experiments driver on 1, 2 and 4 CPU devices: every method finishes and matches 1 device.

Each run is a subprocess (the device count is fixed when JAX starts, and a collective that hangs
aborts its process). 60 steps a level queue hundreds of sharded steps: enough to reproduce the
all-reduce abort that an unbounded dispatch queue causes on XLA:CPU.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# An idle 2-core machine runs the 4-device job in ~90 s; the bound only has to catch a hang.
TIMEOUT_S = 600
METRICS = ("accuracy", "cwv", "mcd", "worst_group_accuracy", "per_group_accuracy")


def run_digits(workdir: pathlib.Path, devices: int) -> dict[str, dict]:
    env = dict(
        os.environ,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    cmd = [
        sys.executable, "-m", "experiments.digits", f"--workdir={workdir}", "--config.seeds=0",
        "--config.train.steps=60", "--config.model_kwargs.hidden=(32,)",
        # Ballot's default μ grid without its μ = 3 candidate: that adversarial game amplifies the
        # all-reduce's last-bit rounding (1e-8 after one step, 2e-4 after 200 on the toy task; μ <= 1
        # stays at 2e-7; results.md A.7), so its metrics may differ by an example between device
        # counts, as between JAX versions or CPUs. Its 4-device step is checked directly below
        # (test_adversarial_step_on_4_devices_equals_1).
        "--config.ballot.disparity_weights=(0.0,0.3,1.0)",
    ]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        stderr = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        pytest.fail(
            f"{devices} device(s): no exit within {TIMEOUT_S} s (a hung collective, or a machine too loaded "
            f"to run ~90 s of work in time)\n{stderr[-3000:]}"
        )
    assert proc.returncode == 0, f"{devices} device(s): exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert f"{devices} device(s)" in proc.stderr
    records = json.loads((workdir / "results.json").read_text())["records"]
    return {r["method"]: r for r in records}


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    return run_digits(tmp_path_factory.mktemp("devices_1"), 1)


@pytest.mark.slow
@pytest.mark.parametrize("devices", [2, 4])
def test_every_method_on_several_devices_equals_one(one_device, devices, tmp_path):
    records = run_digits(tmp_path, devices)
    assert set(records) == set(one_device) == {"dense", "magnitude", "lth", "safecompress", "fairscratch", "ballot", "ballot_authors"}
    for method, expected in one_device.items():
        got = records[method]
        assert got["kept"] == expected["kept"], method
        for split in ("val", "test"):
            if method == "fairscratch":
                # FairScratch re-ranks |scores| at every step and reads its mask off them at the end:
                # its trained scores agree with 1 device to ~1e-6 (test_fairscratch_scores_equal_on_
                # 1_and_4_devices below), but a last-bit difference can swap weights tied at the
                # top-k boundary, and the authors' preset at this tiny budget is fragile: we only
                # ask that it runs and keeps the same count here.
                continue
            for metric in METRICS:
                assert got[split][metric] == pytest.approx(expected[split][metric], abs=1e-6), (method, split, metric)


def test_fairscratch_scores_equal_on_1_and_4_devices():
    """The state FairScratch trains (its scores) is the same on 4 devices as on 1, to float tolerance."""
    import jax
    import numpy as np

    from ballot_jax.engine.loop import Task, TrainConfig
    from ballot_jax.engine.mesh import data_mesh
    from ballot_jax.methods.fairscratch import FairScratch
    from engine_fixtures import mlp_model, toy_dataset

    config = TrainConfig(steps=40, batch_size=16, learning_rate=0.1, rewind_step=4, checkpoint_every=0)
    scores = []
    for n in (1, 4):
        task = Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:n]))
        s = FairScratch().setup(task, config, 0.75)
        state = s["trainer"].train(s["state"], s["train_config"], s["budget"], data_seed=0, desc="fairscratch")
        scores.append(jax.device_get(state.params["scores"]))
    for a, b in zip(jax.tree.leaves(scores[0]), jax.tree.leaves(scores[1])):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("weight", [1.0, 3.0])
def test_adversarial_step_on_4_devices_equals_1(weight):
    """Ballot's refined training (CE − μ · the carried adversary's CE, the default's largest μ = 3
    included) on 4 devices follows 1 device to float rounding over its first 20 steps (measured 1e-7):
    the collectives (gathered logits, averaged gradients, the replicated adversary) are right, and
    a wrong one (gradients summed, not averaged) fails here at once. Later the μ = 3 game amplifies
    the rounding (see run_digits above), which no collective can prevent."""
    import jax
    import numpy as np

    from ballot_jax.methods.adversary import adversarial_objective
    from engine_fixtures import params_after

    objective = adversarial_objective(2, 2, weight)
    (one,), (four,) = params_after(1, objective, [20]), params_after(4, objective, [20])
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(four)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)
