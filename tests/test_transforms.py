"""Public numerical functions under JAX's transformations: one property x function grid.

Every function in ``FUNCTIONS`` maps two arrays to one and is checked for the
same properties (in the spirit of lineax's tests): ``jit`` equals eager,
``vmap`` over a leading axis equals a Python loop, the gradient of both
arguments matches central finite differences (float64, a random direction),
and float32 inputs give float32 outputs close to the float64 ones (the gradient
row is slow-marked). chex
asserts the shapes, dtypes and closeness. Sizes are tiny; the physics of each
function is checked against its references elsewhere.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from crossjax import circuit, crossbar
from crossjax.hardware import HardwareConfig

WIRES = circuit.Parasitics(r_wire_row=3.0, r_wire_col=2.0, r_source=20.0, r_sink=10.0)
SINH = circuit.Cell(iv="sinh", v0=0.25, r_series=500.0)
# 4x4 tiles (a 6x5 weight spans 2x2 tiles) with wires, no quantizer: smooth in x and W. (Write
# noise would draw other numbers in float32 than in float64, so the dtype check could not compare.)
WIRED = HardwareConfig().set({"array.rows": 4, "array.cols": 4, "array.parasitics": WIRES})


def _conductances(shape, seed):
    return jax.random.uniform(jax.random.key(seed), shape, jnp.float64, 1e-5, 1e-4)


def _voltages(shape, seed):
    return jax.random.uniform(jax.random.key(seed), shape, jnp.float64, -0.2, 0.3)


# name -> (function of two arrays, first argument, second argument)
FUNCTIONS = {
    "solve_direct": (
        lambda G, V: circuit.solve(G, V, WIRES, method="direct"),
        _conductances((5, 4), 0),
        _voltages((6, 5), 1),
    ),
    "solve_iterative": (
        lambda G, V: circuit.solve(G, V, WIRES, method="iterative"),
        _conductances((5, 4), 2),
        _voltages((2, 5), 3),
    ),
    "solve_nonlinear": (
        lambda G, V: circuit.solve(G, V, WIRES, cell=SINH),
        _conductances((4, 3), 4),
        _voltages((2, 4), 5),
    ),
    "effective_conductance": (
        lambda G, scale: circuit.effective_conductance(G * scale, WIRES),
        _conductances((4, 5), 6),
        jnp.full((4, 5), 1.5),
    ),
    "analog_matmul": (lambda x, W: crossbar.analog_matmul(x, W, WIRED), _voltages((3, 6), 8), _voltages((6, 5), 9)),
}


@pytest.fixture(params=sorted(FUNCTIONS))
def case(request):
    return FUNCTIONS[request.param]


def test_jit_equals_eager(case):
    f, a, b = case
    eager = f(a, b)
    chex.assert_trees_all_close(jax.jit(f)(a, b), eager, rtol=1e-12, atol=0)
    chex.assert_type(eager, jnp.float64)


def test_vmap_over_a_leading_axis_equals_a_loop(case):
    f, a, b = case
    stacked = jnp.stack([a, a * 0.9])  # two samples of the first argument
    out = jax.vmap(f, in_axes=(0, None))(stacked, b)
    chex.assert_shape(out, (2,) + f(a, b).shape)
    chex.assert_trees_all_close(out, jnp.stack([f(s, b) for s in stacked]), rtol=1e-10, atol=0)


@pytest.mark.slow  # compile-heavy; the kernels' own files check their gradients in the default run
def test_gradient_matches_central_finite_differences(case):
    f, a, b = case
    out = f(a, b)
    w = jax.random.normal(jax.random.key(11), out.shape, jnp.float64) / jnp.max(jnp.abs(out))

    @jax.jit
    def loss(a, b):
        return jnp.sum(w * f(a, b))

    da, db = jax.jit(jax.grad(loss, argnums=(0, 1)))(a, b)
    chex.assert_equal_shape([da, a])
    chex.assert_equal_shape([db, b])
    for x, g, step in ((a, da, 0), (b, db, 1)):
        d = jax.random.normal(jax.random.key(12 + step), x.shape, jnp.float64) * jnp.abs(x)
        h = 1e-5
        args_p, args_m = [a, b], [a, b]
        args_p[step], args_m[step] = x + h * d, x - h * d
        fd = (loss(*args_p) - loss(*args_m)) / (2 * h)
        np.testing.assert_allclose(float(jnp.sum(g * d)), float(fd), rtol=1e-5, atol=1e-9)


def test_float32_in_float32_out(case):
    f, a, b = case
    ref = f(a, b)
    out = f(a.astype(jnp.float32), b.astype(jnp.float32))
    chex.assert_type(out, jnp.float32)
    chex.assert_equal_shape([out, ref])
    scale = float(jnp.max(jnp.abs(ref)))
    chex.assert_trees_all_close(out.astype(jnp.float64) / scale, ref / scale, atol=1e-4, rtol=0)
