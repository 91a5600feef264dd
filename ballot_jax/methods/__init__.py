"""Pruning strategies behind one interface (``base.Method``): each ``run`` returns a record."""

from ballot_jax.methods.base import Method, Record, budget_steps, finish_record, level_keep_counts
from ballot_jax.methods.dense import Dense
from ballot_jax.methods.lth import LTH
from ballot_jax.methods.magnitude import MagnitudePruning
from ballot_jax.methods.ballot import Ballot, BallotAuthors
from ballot_jax.methods.fairscratch import FairScratch
from ballot_jax.methods.safecompress import SafeCompress

METHODS = {
    "dense": Dense,
    "magnitude": MagnitudePruning,
    "lth": LTH,
    "safecompress": SafeCompress,
    "fairscratch": FairScratch,
    "ballot": Ballot,
    "ballot_authors": BallotAuthors,
}
