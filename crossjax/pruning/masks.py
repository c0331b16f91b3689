"""Fixed pruning masks during training: apply them and keep pruned weights exactly 0.

A *mask tree* has the structure of the parameter tree; each leaf is a boolean
(or 0/1) array broadcastable to its parameter, or ``None`` for "not pruned".
Flax NNX variables (``nnx.Param``) in either tree are unwrapped to their arrays
(``nnx.as_pure``), so masks built from ``nnx.state(model, nnx.Param)`` match the
pure gradient/update trees that ``nnx.Optimizer`` hands to optax.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

__all__ = ["apply_masks", "masked_updates"]


def _is_none(x):
    return x is None


def _mask_leaf(m, x):
    if m is None:
        return x
    return jnp.where(m, x, jnp.zeros((), x.dtype))


def _map(masks, tree):
    return jax.tree.map(_mask_leaf, nnx.as_pure(masks), nnx.as_pure(tree), is_leaf=_is_none)


def apply_masks(params, masks):
    """Return ``params`` with every masked-out entry set to exactly 0 (``where(mask, p, 0)``).

    Args:
      params: parameter pytree (plain arrays or ``nnx.Param`` variables, e.g.
        ``nnx.state(model, nnx.Param)``).
      masks: mask tree of the same structure (module doc): bool/0-1 leaves
        broadcastable to their parameter, or ``None`` to leave it unpruned.

    Returns:
      A pure pytree (``nnx.Param`` unwrapped) of the same structure and dtypes.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax.pruning import apply_masks
      >>> params = {"w": jnp.array([1.0, 2.0, 3.0]), "b": jnp.array([0.5])}
      >>> out = apply_masks(params, {"w": jnp.array([True, False, True]), "b": None})
      >>> out["w"].tolist(), out["b"].tolist()
      ([1.0, 0.0, 3.0], [0.5])
    """
    return _map(masks, params)


def masked_updates(masks) -> optax.GradientTransformation:
    """Optax transform that sets the updates of masked-out parameters to exactly 0.

    Put it *last* in ``optax.chain(...)`` (after momentum, Adam scaling, weight
    decay), so that ``p + u`` leaves a pruned weight at exactly 0 once
    :func:`apply_masks` has zeroed it: with ``u == 0``, ``0 + 0 == 0`` in IEEE
    arithmetic, for every step and every optimizer. Stateless.

    Args:
      masks: mask tree with the structure of the parameters (module doc).

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      The pruned weight stays at 0 under SGD although its gradient is not 0:

      >>> import jax.numpy as jnp
      >>> import optax
      >>> from crossjax.pruning import masked_updates
      >>> params = {"w": jnp.array([1.0, 0.0])}
      >>> tx = optax.chain(optax.sgd(0.1), masked_updates({"w": jnp.array([True, False])}))
      >>> updates, _ = tx.update({"w": jnp.array([1.0, 1.0])}, tx.init(params), params)
      >>> [round(float(v), 4) for v in optax.apply_updates(params, updates)["w"]]
      [0.9, 0.0]
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return _map(masks, updates), state

    return optax.GradientTransformation(init_fn, update_fn)
