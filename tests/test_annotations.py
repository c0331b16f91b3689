"""The public signatures' jaxtyping shape annotations say what the functions do.

Every annotated array argument and the result of a real call are checked
against the annotation (jaxtyping's ``isinstance`` in one ``jaxtyped`` context,
so a dimension name means one size across the arguments and the result).
"""

import inspect
import types
import typing

import jax
import jax.numpy as jnp
import jaxtyping
import pytest

from crossjax import crossbar, presets
from crossjax.circuit import Cell, Parasitics, effective_conductance, node_voltages, solve, solve_nonlinear
from crossjax.hardware import HardwareConfig

P = Parasitics(r_wire_row=1.0, r_wire_col=2.0)


def _G(*shape, dtype=jnp.float64):
    return jax.random.uniform(jax.random.key(0), shape, dtype, 1e-5, 1e-4)


def _V(*shape, dtype=jnp.float64):
    return jax.random.uniform(jax.random.key(1), shape, dtype, -0.2, 0.2)


def _fits(value, hint) -> bool:
    if isinstance(value, tuple) and typing.get_origin(hint) is tuple:
        return all(_fits(v, h) for v, h in zip(value, typing.get_args(hint)))
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # ArrayLike, "X | None": one member fits
        return any(_fits(value, h) if h is not type(None) else value is None for h in typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, jaxtyping.AbstractArray):
        return isinstance(value, hint)
    if hasattr(value, "_fields"):  # a NamedTuple result: its fields' annotations
        hints = typing.get_type_hints(type(value))
        return all(_fits(getattr(value, f), hints[f]) for f in value._fields)
    return True


def _check(fn, *args, **kwargs):
    hints = typing.get_type_hints(fn)
    bound = inspect.signature(fn).bind(*args, **kwargs)
    out = fn(*args, **kwargs)
    with jaxtyping.jaxtyped("context"):
        for name, value in bound.arguments.items():
            if name in hints:
                assert _fits(value, hints[name]), (fn.__name__, name, getattr(value, "shape", value), hints[name])
        assert _fits(out, hints["return"]), (fn.__name__, "return", hints["return"])
    return out


@pytest.mark.parametrize(
    "g_shape,v_shape,dtype",
    [
        ((4, 3), (4,), jnp.float32),
        ((4, 3), (5, 4), jnp.float64),
        ((2, 4, 3), (4,), jnp.float64),
        ((2, 4, 3), (6, 2, 5, 4), jnp.float32),
    ],
)
def test_circuit_annotations_hold(g_shape, v_shape, dtype):
    """Broadcast leading axes included: ``V @ G_eff`` of (R,) or (..., B, R) inputs on (..., R, C) arrays."""
    G, V = _G(*g_shape, dtype=dtype), _V(*v_shape, dtype=dtype)
    _check(effective_conductance, G, P)
    _check(solve, G, V, P)
    _check(node_voltages, G, V, P)
    _check(solve_nonlinear, G, V, P, Cell(iv="sinh", v0=0.3))


@pytest.mark.parametrize("x_shape", [(7,), (3, 7), (2, 3, 7)])
def test_crossbar_annotations_hold(x_shape):
    W = jax.random.normal(jax.random.key(2), (7, 5))
    x = jax.random.normal(jax.random.key(3), x_shape)
    hw = presets.rram().set({"array.rows": 4, "array.cols": 4})
    state = _check(crossbar.program, W, hw, jax.random.key(4))
    _check(crossbar.matmul, x, state, hw, jax.random.key(5))
    _check(crossbar.analog_matmul, x, W, hw, jax.random.key(6))
    _check(crossbar.effective_weights, crossbar.program(W, HardwareConfig()))


def test_a_wrong_shape_fails_the_check():
    """The check can fail: a result with the wrong last axis does not fit ``"*out C"``."""
    hint = typing.get_type_hints(solve)["return"]
    with jaxtyping.jaxtyped("context"):
        assert _fits(_G(4, 3), typing.get_type_hints(solve)["G"])
        assert not _fits(jnp.ones((5, 4)), hint)  # C is 3
        assert not _fits(jnp.ones((5, 4), jnp.int32), typing.get_type_hints(solve)["V"])  # not float
