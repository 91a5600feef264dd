"""ballot_jax.compiler: the CPU compiler options, where they apply, and that its jit nests like jax.jit."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ballot_jax import compiler

REPO = pathlib.Path(__file__).resolve().parents[1]
CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"}


def conv_grad(x, w):
    """A 3x3 convolution's loss and kernel gradient (what the options change the kernels of)."""
    def loss(w_):
        y = lax.conv_general_dilated(x, w_, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(jnp.tanh(y))

    return jax.value_and_grad(loss)(w)


def operands():
    kx, kw = jax.random.split(jax.random.PRNGKey(0))
    return jax.random.normal(kx, (4, 8, 8, 16)), 0.1 * jax.random.normal(kw, (3, 3, 16, 16))


def test_options_on_cpu_only():
    assert compiler.compiler_options("cpu") == CPU_OPTIONS
    assert compiler.compiler_options() == CPU_OPTIONS  # the tests run on CPU (conftest)
    assert compiler.compiler_options("gpu") is None
    assert compiler.compiler_options("tpu") is None


def test_the_users_xla_flags_win(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT")
    assert compiler.compiler_options("cpu") is None
    assert not isinstance(compiler.jit(conv_grad), compiler._Jitted)  # a plain jax.jit


@pytest.mark.parametrize("value, options", [("1", None), ("0", CPU_OPTIONS), ("", CPU_OPTIONS)])
def test_xla_defaults_on_request(monkeypatch, value, options):
    monkeypatch.setenv("BALLOT_JAX_XLA_DEFAULTS", value)
    assert compiler.compiler_options("cpu") == options


def test_an_option_this_xla_does_not_take_is_dropped_with_a_warning(monkeypatch):
    unknown = "xla_cpu_no_such_option_for_ballot_jax_tests"
    monkeypatch.setattr(compiler, "CPU_OPTION", unknown)
    with pytest.warns(UserWarning, match=unknown):
        assert compiler.compiler_options("cpu") is None
    assert compiler.compiler_options("cpu") is None  # asked once per process: no second warning
    x, w = operands()
    np.testing.assert_array_equal(compiler.jit(conv_grad)(x, w)[1], jax.jit(conv_grad)(x, w)[1])


def test_top_level_calls_compile_with_the_options_and_nested_ones_without():
    x, w = operands()
    fast = compiler.jit(conv_grad)
    assert isinstance(fast, compiler._Jitted)
    tuned = jax.jit(conv_grad, compiler_options=CPU_OPTIONS)(x, w)
    default = jax.jit(conv_grad)(x, w)
    chex.assert_trees_all_equal(fast(x, w), tuned)
    # Inside another jit (traced arguments, or concrete ones closed over) the outer program's options
    # apply: here XLA's defaults, bit for bit what a plain jax.jit computes.
    chex.assert_trees_all_equal(jax.jit(lambda x_, w_: fast(x_, w_))(x, w), default)
    scaled = lambda conv_grad_: jax.jit(lambda s: jax.tree.map(lambda v: v * s, conv_grad_(x, w)))(2.0)
    chex.assert_trees_all_equal(scaled(fast), scaled(conv_grad))
    # The two differ only in rounding (which kernel computes the convolution).
    np.testing.assert_allclose(tuned[1], default[1], rtol=1e-5, atol=1e-5)
    # vmap and grad of the top-level function, and the jit's own methods, work as for jax.jit.
    batched = jax.vmap(fast, in_axes=(None, 0))(x, jnp.stack([w, 2 * w]))
    np.testing.assert_allclose(batched[1][0], tuned[1], rtol=1e-5, atol=1e-5)
    assert jax.grad(lambda w_: fast(x, w_)[0])(w).shape == w.shape
    assert "convolution" in fast.lower(x, w).as_text()
    assert fast.__name__ == "conv_grad"


# Every program the engine, the per-group pass and the methods compile that runs a convolution must
# carry the option; XLA writes each program's non-default options beside its dump.
DUMP_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from benchmarks.loop import synthetic_dataset
    from ballot_jax import grads
    from ballot_jax.engine import device_data, steps
    from ballot_jax.engine.loop import Task, TrainConfig, Trainer, init_state
    from ballot_jax.engine.mesh import data_mesh
    from ballot_jax.models import get_model

    mesh = data_mesh(jax.devices()[:2])
    task = Task(get_model("small_cnn", num_classes=10, channels=(4, 8), dense=16), synthetic_dataset((8, 8, 3), 64), mesh)
    config = TrainConfig(steps=4, batch_size=8, checkpoint_every=0)
    trainer = Trainer(task)
    state = trainer.train(init_state(task, config), config, 2, data_seed=0)  # batches gathered on device
    device_data.DEVICE_DATA_MAX_BYTES = 0
    trainer.train(state, config, 4, data_seed=0)  # batches from the host: the bare step
    steps.make_predict(task.model)(state.params, state.model_state, jnp.ones((2, 8, 8, 3)))
    steps.make_logits(task.model)(state.params, state.model_state, jnp.ones((2, 8, 8, 3)))

    def loss_fn(params, batch, model_state):
        logits, _ = task.model.apply(params, model_state, batch["x"], False, None)
        loss = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(batch["y"].shape[0]), batch["y"]])
        return loss, jnp.mean(jnp.argmax(logits, -1) == batch["y"])

    batch = {"x": jnp.ones((2, 4, 8, 8, 3)), "y": jnp.zeros((2, 4), jnp.int32)}
    grads.sharded_group_grads(loss_fn, mesh)(state.params, batch, state.model_state)
""")


def test_every_compiled_program_with_a_convolution_carries_the_option(tmp_path):
    dump = tmp_path / "dump"
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count=2 --xla_dump_to={dump} "
               "--xla_dump_hlo_as_text --xla_dump_hlo_module_re=.*",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", DUMP_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with_conv, without_option = [], []
    for before in dump.glob("*.before_optimizations.txt"):
        if " convolution(" not in before.read_text():
            continue
        module = before.name[: -len(".before_optimizations.txt")]
        with_conv.append(module)
        options = dump / f"{module}.debug_options"
        if "xla_cpu_experimental_ynn_fusion_type" not in (options.read_text() if options.exists() else ""):
            without_option.append(module)
    assert len(with_conv) >= 5, with_conv  # two train steps, predict, logits, per-group gradients
    assert not without_option, f"compiled with XLA's default CPU convolutions: {without_option}"
