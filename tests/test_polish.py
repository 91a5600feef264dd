"""``Ballot(refine="polish")``: a μ > 0 candidate is the μ = 0 candidate's final ticket fine-tuned with the
disparity term for one more phase at its mask (``engine.levels.continue_phase``), not a retraining of
every level."""

import chex
import jax
import pytest

from ballot_jax.engine.levels import continue_phase, level_dir
from ballot_jax.engine.loop import Task, TrainConfig, init_state
from ballot_jax.engine.mesh import data_mesh
from ballot_jax.engine.phases import finished_phase
from ballot_jax.methods import Ballot
from engine_fixtures import mlp_model, toy_dataset

CFG = TrainConfig(steps=40, batch_size=16, learning_rate=0.1, rewind_step=4, checkpoint_every=10)
ITERATIVE = dict(fraction=0.5, pruning="iterative", rewind=True, selection="magnitude", disparity_weights=(0.0, 1.0))


def _task():
    return Task(mlp_model(16), toy_dataset(), data_mesh(jax.devices()[:1]))


def _final(directory, task, config):
    return finished_phase(directory, init_state(task, config))


def test_a_polished_candidate_fine_tunes_the_mu0_ticket_at_its_mask(tmp_path):
    task = _task()
    record = Ballot(**ITERATIVE, refine="polish", epsilon=1.0).run(task, CFG, 0.75, tmp_path / "polish")
    retrained = Ballot(**ITERATIVE).run(task, CFG, 0.75, tmp_path / "retrain")
    assert record["search"]["0"] == retrained["search"]["0"]  # μ = 0 is the same run (LTH's ticket)
    assert record["search"]["1"] != retrained["search"]["1"]
    assert record["disparity_weight"] == 1.0  # ε = 100 points: the strongest μ is admissible
    levels = record["levels"]
    assert [r["level"] for r in levels] == [0, 1, 2, 3]  # μ = 0's dense phase and two levels, then the polish
    assert levels[-1]["kept"] == levels[-2]["kept"] and record["run_dir"] == "mu_1"
    polish = Ballot(refine="polish").polish_config(CFG)
    assert (polish.steps, polish.rewind_step, polish.rewind_lr) == (CFG.steps - CFG.rewind_step, 0, False)
    assert record["search_steps"] == polish.steps  # one polish phase; retraining costs both levels
    assert retrained["search_steps"] == 2 * (CFG.steps - CFG.rewind_step)

    mu0_last = level_dir(tmp_path / "polish" / "mu_0", 2)
    start, _ = _final(mu0_last, task, CFG)
    polished, _ = _final(tmp_path / "polish" / "mu_1" / "level_03", task, polish)
    chex.assert_trees_all_equal(polished.mask, start.mask)  # no weight pruned or revived
    assert any(bool((a != b).any()) for a, b in zip(jax.tree.leaves(polished.params), jax.tree.leaves(start.params)))

    # the same phase by hand: from μ = 0's last level, the μ = 1 objective, level 3's data stream
    objective = Ballot().retrain_objective(task.data.info.num_groups, task.data.info.num_classes, 1.0)
    by_hand = continue_phase(task, mu0_last, polish, tmp_path / "by_hand", level=3, objective=objective)
    again, _ = _final(tmp_path / "by_hand", task, polish)
    chex.assert_trees_all_equal(again.params, polished.params)
    assert by_hand["val"] == levels[-1]["val"] and by_hand["test"] == levels[-1]["test"]

    # resumable: the finished candidates are read back, nothing retrained
    rerun = Ballot(**ITERATIVE, refine="polish", epsilon=1.0).run(task, CFG, 0.75, tmp_path / "polish")
    assert rerun["search"] == record["search"] and rerun["test"] == record["test"]


def test_the_search_time_counts_the_polish_phases_not_chosen(tmp_path):
    record = Ballot(**{**ITERATIVE, "disparity_weights": (0.0, 0.3, 1.0)}, refine="polish", epsilon=1.0).run(
        _task(), CFG, 0.75, tmp_path)
    assert record["disparity_weight"] == 1.0
    polished_03 = _final(tmp_path / "mu_0.3" / "level_03", _task(), CFG)[1]
    assert record["search_time_s"] == pytest.approx(polished_03["train_time_s"])
    assert record["train_time_s"] == pytest.approx(sum(r["train_time_s"] for r in record["levels"]) + record["search_time_s"])


def test_refine_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="refine must be one of"):
        Ballot(**ITERATIVE, refine="distil").run(_task(), CFG, 0.75, tmp_path / "a")
    with pytest.raises(ValueError, match="must start with 0"):
        Ballot(**{**ITERATIVE, "disparity_weights": (0.3, 1.0)}, refine="polish").run(_task(), CFG, 0.75, tmp_path / "b")
    with pytest.raises(ValueError, match="no finished phase"):
        continue_phase(_task(), tmp_path / "nothing", CFG, tmp_path / "c", level=1)
