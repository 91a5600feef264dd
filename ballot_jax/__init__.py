"""ballot_jax: fair sparse neural networks in JAX.

The core (masks, pruning, updater, scorers, optim, metrics, grads, samplers, ballot, vote, stats,
detectability) works on any params pytree, imports only jax, optax and numpy, and is jit-able. Models live in ``ballot_jax.models``, loaders in ``ballot_jax.data``, training in
``ballot_jax.engine``, whole pruning strategies in ``ballot_jax.methods``.
"""

from ballot_jax.masks import (
    Mask,
    apply_mask,
    check_mask,
    default_prunable,
    intersect_masks,
    is_unprunable,
    kept_per_leaf,
    make_mask,
    mask_leaves,
    mask_overlap,
    num_kept,
    num_prunable,
    prunable_by_name,
    sparsity,
    sparsity_summary,
)
from ballot_jax import ballot, compiler, detectability, drop_grow, samplers, scorers, stats, updater, vote
from ballot_jax.grads import GroupGrads, mean_group_grads, per_group_grads, sharded_group_grads
from ballot_jax.metrics import (
    accuracy_by_group,
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
    fairness_improvement,
    fairness_report,
    group_confusion,
    group_wise_variance,
    max_group_discrepancy,
    metrics_from_confusion,
    worst_group_accuracy,
)
from ballot_jax.optim import FixedMaskState, fixed_mask, with_mask
from ballot_jax.pruning import (
    keep_top_k_global,
    keep_top_k_of_all,
    keep_top_k_per_leaf,
    magnitude_scores,
    num_keep_for_sparsity,
    per_round_fraction,
    prune,
    prune_to_count,
    prune_to_sparsity,
    pruning_plan,
    rounds_to_reach,
)

from ballot_jax.updater import (
    PruningSchedule,
    SparsityState,
    get_mask,
    rewind,
    set_mask,
    sparsity_updater,
)

__version__ = "0.1.0"
