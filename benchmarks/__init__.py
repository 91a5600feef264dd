"""Speed benchmarks for ballot_jax (run as ``python -m benchmarks.<name>``; see README.md).

Nothing here imports JAX at package import time, so a benchmark can set ``XLA_FLAGS`` first.
"""
