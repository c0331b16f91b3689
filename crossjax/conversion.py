"""Bring your own model: put any Flax NNX network's matrix products on crossbars.

:func:`convert` walks an ``nnx.Module`` graph and replaces every

* ``nnx.Linear``        (kernel ``(K, N)``),
* ``nnx.LinearGeneral`` (kernel ``(*batch, *in_features, *out_features)``; the
  query/key/value/output projections of ``nnx.MultiHeadAttention``),
* ``nnx.Einsum``        (any ``"lhs,kernel->out"`` equation set in the constructor),
* ``nnx.Conv``          (1-, 2- or 3-D; any strides, padding incl. ``CIRCULAR`` /
  ``REFLECT`` / ``CAUSAL``, input and kernel dilation, feature groups, masks)

by a crossbar layer of a subclass of the same Flax class (:class:`AnalogLinear`,
:class:`AnalogLinearGeneral`, :class:`AnalogEinsum`, :class:`AnalogConv`). The
subclass keeps every attribute, so parameters have the same values, shapes and
paths (a checkpoint or an ``nnx.Optimizer`` state of the original applies
unchanged) and the layer runs Flax's own ``__call__``. Only the product itself
(the ``dot_general`` / ``einsum_op`` / ``conv_general_dilated`` the Flax layer
calls) is routed through the crossbar:

* ``"digital"`` mode calls the original operation, so the converted model's
  output equals the original bit for bit;
* ``"train"`` and ``"hardware"`` modes compute the product as tiles of a
  crossbar matrix, exactly as :class:`crossjax.layers.CrossbarLinear` /
  :class:`~crossjax.layers.CrossbarConv` do.

Everything else (norms, embeddings, pooling, attention's activation x activation
products, dropout) stays digital. The crossbar matrix of each product is a
reshape of its kernel (the contraction as dot_general sees it):

    W[g] = kernel  transposed to (batch dims, contracted dims, free dims)
                   and reshaped to (G, K, N)

with ``G`` the product of the kernel's batch dims (``LinearGeneral``'s
``batch_axis``, an einsum index shared by input, kernel and output, a conv's
feature groups); each of the ``G`` matrices is its own set of tiles, programmed
and read with ``jax.vmap``. A conv's matrix is its kernel ``(*k, Cin/G, Cout)``
flattened channel-major, ``(Cin/G * prod(k), Cout)``, read by unfolded patches.

Rules (:class:`Rule`, data: a TOML ``[[rules]]`` table each) choose per layer by
module path (``fnmatch`` patterns on ``"encoder/0/attention/query"``), first
match wins: keep it digital, or run it on other hardware (a full
``HardwareConfig``, or overrides of the model-wide config such as
``{"adc.bits": 6}``). :func:`conversion_table` lists what became of every layer,
for results files.

Converted models work with everything in crossjax that works on its own models
(``layers.set_mode`` / ``program_model`` / ``load_program`` /
``calibrate_model``, ``montecarlo.evaluate``, ``training``, ``pruning``,
``checkpoint``). A user model's ``__call__`` need not take ``rngs``: every
converted layer owns a ``"hardware"`` key stream (seeded by ``convert``'s
``seed``), which :func:`crossjax.layers.run` reseeds per Monte Carlo sample and
batch.

Example:
  >>> import jax.numpy as jnp
  >>> from flax import nnx
  >>> import crossjax
  >>> from crossjax.hardware import HardwareConfig
  >>> class Net(nnx.Module):
  ...     def __init__(self, rngs):
  ...         self.body = nnx.Linear(4, 8, rngs=rngs)
  ...         self.head = nnx.Linear(8, 2, rngs=rngs)
  ...     def __call__(self, x):
  ...         return self.head(nnx.relu(self.body(x)))
  >>> net = Net(nnx.Rngs(0))
  >>> analog = crossjax.convert(net, HardwareConfig(), rules=[{"match": "head", "digital": True}])
  >>> [row["path"] + ": " + row["as"] for row in crossjax.conversion.conversion_table(analog)]
  ['body: crossbar', 'head: digital (rule 0)']
  >>> x = jnp.ones((3, 4))
  >>> bool((analog(x) == net(x)).all())    # digital mode: bit for bit
  True
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from crossjax import layers, readout
from crossjax.converters import dac_equivalent
from crossjax.hardware import HardwareConfig
from crossjax.layers import CrossbarLayer, HardwareVariable

__all__ = [
    "Rule",
    "convert",
    "conversion_table",
    "rules_from_data",
    "SUPPORTED",
    "AnalogLinear",
    "AnalogLinearGeneral",
    "AnalogEinsum",
    "AnalogConv",
]


# ---------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Rule:
    """What to do with the layers whose module path matches ``match``.

    Attributes:
      match: ``fnmatch`` pattern on the module path, parts joined by ``"/"``
        (``"head"``, ``"blocks/*/attention/*"``, ``"*conv*"``).
      digital: keep the matched layers digital (unconverted Flax layers).
      hardware: run them on this ``HardwareConfig`` instead of the model-wide
        one, or a dict of overrides of the model-wide config
        (``HardwareConfig.set`` keys, e.g. ``{"adc.bits": 6}``), applied to
        whatever config the model runs with. ``None``: the model-wide config.
    """

    match: str
    digital: bool = False
    hardware: Any = None

    def __post_init__(self):
        if not isinstance(self.match, str) or not self.match:
            raise ValueError(f"rule match must be a non-empty path pattern (str), got {self.match!r}")
        if not isinstance(self.digital, bool):
            raise ValueError(f"rule {self.match!r}: digital must be true or false, got {self.digital!r}")
        if self.digital and self.hardware is not None:
            raise ValueError(f"rule {self.match!r}: give either digital=True or hardware, not both")
        if isinstance(self.hardware, dict):
            try:
                HardwareConfig().set(self.hardware)
            except (ValueError, AttributeError, KeyError, TypeError) as e:
                raise ValueError(
                    f"rule {self.match!r}: hardware overrides {self.hardware!r} are invalid: {e}"
                ) from None
            object.__setattr__(self, "hardware", dict(self.hardware))
        elif self.hardware is not None and not isinstance(self.hardware, HardwareConfig):
            raise ValueError(
                f"rule {self.match!r}: hardware must be a HardwareConfig, a dict of overrides "
                f"or None, got {type(self.hardware).__name__}"
            )

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.match)

    def to_dict(self) -> dict:
        """JSON/TOML-able form (a full ``HardwareConfig`` as its ``to_dict()`` under ``"config"``)."""
        out: dict[str, Any] = {"match": self.match}
        if self.digital:
            out["digital"] = True
        if isinstance(self.hardware, dict):
            out["hardware"] = dict(self.hardware)
        elif self.hardware is not None:
            out["config"] = self.hardware.to_dict()
        return out


def rules_from_data(rules) -> tuple[Rule, ...]:
    """Rules from ``Rule`` objects or dicts ``{"match", "digital", "hardware" (overrides), "config" (full)}``.

    Args:
      rules: ``None``, one :class:`Rule` or dict, or a sequence of them (a TOML
        ``[[rules]]`` table is a list of dicts); ``"config"`` is a full
        ``HardwareConfig.to_dict()``.

    Returns:
      A tuple of :class:`Rule` in the given order (``()`` for ``None``).

    Raises:
      ValueError: an entry that is neither a Rule nor a dict, unknown keys, no
        ``"match"``, both ``"hardware"`` and ``"config"``, or an invalid rule.

    Example:
      >>> from crossjax import conversion
      >>> rules = conversion.rules_from_data([{"match": "head", "digital": True}, {"match": "*", "hardware": {"adc.bits": 6}}])
      >>> [(r.match, r.digital, r.hardware) for r in rules]
      [('head', True, None), ('*', False, {'adc.bits': 6})]
      >>> conversion.rules_from_data(None)
      ()
    """
    if rules is None:
        return ()
    if isinstance(rules, (Rule, dict)):
        rules = [rules]
    out = []
    for i, r in enumerate(rules):
        if isinstance(r, Rule):
            out.append(r)
            continue
        if not isinstance(r, dict):
            raise ValueError(f"rules[{i}] must be a Rule or a dict, got {type(r).__name__}")
        unknown = set(r) - {"match", "digital", "hardware", "config"}
        if unknown:
            raise ValueError(
                f"rules[{i}]: unknown keys {sorted(unknown)}; use match, digital, hardware "
                "(overrides) or config (a full hardware config)"
            )
        if "match" not in r:
            raise ValueError(f"rules[{i}] needs a 'match' path pattern")
        if "hardware" in r and "config" in r:
            raise ValueError(f"rules[{i}]: give hardware (overrides) or config (a full config), not both")
        hw = HardwareConfig.from_dict(r["config"]) if "config" in r else r.get("hardware")
        out.append(Rule(r["match"], r.get("digital", False), hw))
    return tuple(out)


# ---------------------------------------------------------------------------
# the crossbar matrix of a contraction
# ---------------------------------------------------------------------------
def _matrix(kernel, contract, batch):
    """``kernel`` -> ``(K, N)`` (no batch dims) or ``(G, K, N)``: dims ordered (batch, contract, free)."""
    free = [d for d in range(kernel.ndim) if d not in contract and d not in batch]
    G = math.prod(kernel.shape[d] for d in batch)
    K = math.prod(kernel.shape[d] for d in contract)
    N = math.prod(kernel.shape[d] for d in free)
    W = kernel.transpose(*batch, *contract, *free)
    return W.reshape(K, N) if not batch else W.reshape(G, K, N)


def _unmatrix(W, shape, contract, batch):
    """Inverse of :func:`_matrix`: a ``(K, N)`` / ``(G, K, N)`` array back to the kernel's ``shape``."""
    free = [d for d in range(len(shape)) if d not in contract and d not in batch]
    order = [*batch, *contract, *free]
    T = W.reshape([shape[d] for d in order])
    return T.transpose(np.argsort(order))


def _check_ints(name, dims, ndim):
    dims = tuple(int(d) % ndim for d in dims)
    if len(set(dims)) != len(dims):
        raise ValueError(f"{name}: repeated dimension in {dims}")
    return dims


class _Converted(CrossbarLayer):
    """A Flax layer adopted as a crossbar layer: same attributes, product routed by mode.

    Subclasses set ``_HOOK`` (the Flax attribute holding the product operation),
    which a class property replaces; the original operation is kept as
    ``digital_op`` and used in ``"digital"`` mode.
    """

    _HOOK: str = ""

    def __init__(self, original: nnx.Module, *, rngs, rule: int | None = None, hardware=None):
        nodes = original._pytree__nodes
        for name, value in vars(original).items():
            if name.startswith("_pytree__"):
                continue
            if name == self._HOOK:
                name = "digital_op"
            elif nodes.get(name, False) and not isinstance(value, (nnx.Variable, nnx.Module, jax.Array)):
                value = nnx.data(value)
            setattr(self, name, value)
        self._init_crossbar(rngs)
        self.rule = rule  # index of the rule that chose this layer's hardware (static)
        overrides = hardware if isinstance(hardware, dict) else None
        self.hardware_overrides = None if overrides is None else tuple(sorted(overrides.items()))
        self.fixed_hardware = HardwareVariable(None if isinstance(hardware, dict) else hardware)

    def effective_hardware(self, hardware):
        own = self.layer_hardware.get_value()  # layers.set_layer_hardware wins over the rule
        if own is not None:
            return own
        fixed = self.fixed_hardware.get_value()
        hw = fixed if fixed is not None else hardware
        if hw is not None and self.hardware_overrides:
            hw = hw.set(dict(self.hardware_overrides))
        return hw

    # -- the product in analog modes -----------------------------------------------
    def _dot_general(self, lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None, **kwargs):
        """``lax.dot_general`` with the kernel's contraction on the crossbar."""
        (lc, rc), (lb, rb) = dimension_numbers
        lc, rc = _check_ints("lhs contraction", lc, lhs.ndim), _check_ints("kernel contraction", rc, rhs.ndim)
        lb, rb = _check_ints("lhs batch", lb, lhs.ndim), _check_ints("kernel batch", rb, rhs.ndim)
        if (rc, rb) != self._layout():
            raise ValueError(
                f"{type(self).__name__}: the product contracts kernel dims {rc} (batch {rb}) but the "
                f"layer was programmed for {self._layout()}; keep this layer digital with a rule"
            )
        lfree = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
        rfree = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
        lead = [lhs.shape[d] for d in lfree]
        K = math.prod(lhs.shape[d] for d in lc)
        if lb:
            G = math.prod(lhs.shape[d] for d in lb)
            x = lhs.transpose(*lfree, *lb, *lc).reshape(*lead, G, K)
        else:
            x = lhs.transpose(*lfree, *lc).reshape(*lead, K)
        y = self._matmul(x, None)
        # lax.dot_general's output order: (batch, lhs free, kernel free)
        y = y.reshape(*lead, *[lhs.shape[d] for d in lb], *[rhs.shape[d] for d in rfree])
        if lb:
            nl, nb = len(lfree), len(lb)
            y = y.transpose(*range(nl, nl + nb), *range(nl), *range(nl + nb, y.ndim))
        if preferred_element_type is not None:
            y = y.astype(preferred_element_type)
        return y

    def _layout(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(contracted, batch)`` kernel dims of this layer's product."""
        raise NotImplementedError

    def crossbar_weights(self) -> jax.Array:
        contract, batch = self._layout()
        return _matrix(self.kernel[...], contract, batch)

    @property
    def groups(self) -> int:
        _, batch = self._layout()
        return math.prod(self.kernel[...].shape[d] for d in batch)

    def kernel_from_matrix(self, W) -> jax.Array:
        """A crossbar-matrix-shaped array (:meth:`crossbar_weights`) in the kernel's shape (e.g. a mask)."""
        contract, batch = self._layout()
        return _unmatrix(W, self.kernel[...].shape, contract, batch)


def _mode_property(hook):
    def get(self):
        if self.mode == "digital":
            return self.digital_op
        return getattr(self, hook)

    return property(get)


class AnalogLinear(_Converted, nnx.Linear):
    """``nnx.Linear`` on crossbars: ``W = kernel (K, N)``."""

    _HOOK = "dot_general"
    dot_general = _mode_property("_dot_general")

    def _layout(self):
        return (0,), ()


class AnalogLinearGeneral(_Converted, nnx.LinearGeneral):
    """``nnx.LinearGeneral`` on crossbars: kernel ``(*batch, *in, *out)`` -> ``(G, prod(in), prod(out))``."""

    _HOOK = "dot_general"
    dot_general = _mode_property("_dot_general")

    def __init__(self, original, **kwargs):
        if original.dot_general_cls is not None:
            raise ValueError(
                "nnx.LinearGeneral with dot_general_cls cannot be converted (its product is a "
                "user class); keep it digital with a rule"
            )
        super().__init__(original, **kwargs)
        if self.digital_op is None:
            self.digital_op = jax.lax.dot_general

    def _layout(self):
        nb, ni = len(self.batch_axis), len(self.in_features)
        return tuple(range(nb, nb + ni)), tuple(range(nb))


def _einsum_parts(eq: str, lhs_ndim: int | None = None):
    """``"lhs,rhs->out"`` split, with ``...`` in the input expanded to fresh letters."""
    eq = eq.replace(" ", "")
    if "->" not in eq or eq.count(",") != 1:
        raise ValueError(f"einsum_str {eq!r}: needs the form 'input,kernel->output'")
    ins, out = eq.split("->")
    a, b = ins.split(",")
    if "..." in b:
        raise ValueError(f"einsum_str {eq!r}: an ellipsis in the kernel is not supported")
    if "..." in a:
        if lhs_ndim is None:
            raise ValueError(f"einsum_str {eq!r}: the ellipsis is resolved at call time only")
        used = set(eq)
        fresh = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
        e = "".join(fresh[: lhs_ndim - (len(a) - 3)])
        a, out = a.replace("...", e), out.replace("...", e)
    return a, b, out


def _einsum_layout(a, b, out):
    """Kernel dims ``(contracted, batch, summed)`` of ``a,b->out`` by index letter."""
    contract = tuple(i for i, c in enumerate(b) if c in a and c not in out)
    batch = tuple(i for i, c in enumerate(b) if c in a and c in out)
    summed = tuple(i for i, c in enumerate(b) if c not in a and c not in out)
    return contract, batch, summed


class AnalogEinsum(_Converted, nnx.Einsum):
    """``nnx.Einsum`` on crossbars: kernel indices shared with the input and not in the output are
    the crossbar rows, kernel indices in the output only its columns, indices in all three the
    batch of ``G`` matrices."""

    _HOOK = "einsum_op"
    einsum_op = _mode_property("_einsum")

    def __init__(self, original, **kwargs):
        if original.einsum_str is None:
            raise ValueError(
                "nnx.Einsum without einsum_str in its constructor (given per call) cannot be "
                "converted: its crossbar matrix must be known before programming; set einsum_str"
            )
        eq = original.einsum_str.replace(" ", "")
        if "->" not in eq or eq.count(",") != 1 or "..." in eq.split("->")[0].split(",")[1]:
            raise ValueError(f"einsum_str {eq!r}: needs the form 'input,kernel->output' (no ellipsis in the kernel)")
        a, b, out = (
            eq.split("->")[0].split(",")[0].replace("...", ""),
            eq.split("->")[0].split(",")[1],
            eq.split("->")[1].replace("...", ""),
        )
        if _einsum_layout(a, b, out)[2]:
            raise ValueError(
                f"einsum_str {original.einsum_str!r}: a kernel index in neither input nor output "
                "sums the kernel first; fold it into the kernel or keep the layer digital"
            )
        super().__init__(original, **kwargs)

    def _layout(self):
        eq = self.einsum_str.replace(" ", "")
        (a, b), out = eq.split("->")[0].split(","), eq.split("->")[1]
        contract, batch, _ = _einsum_layout(a.replace("...", ""), b, out.replace("...", ""))
        return contract, batch

    def _einsum(self, eq, lhs, rhs, precision=None, preferred_element_type=None, **kwargs):
        a, b, out = _einsum_parts(eq, lhs.ndim)
        # input indices in neither kernel nor output are summed first (as einsum does)
        drop = tuple(i for i, c in enumerate(a) if c not in b and c not in out)
        if drop:
            lhs = lhs.sum(axis=drop)
            a = "".join(c for c in a if c in b or c in out)
        contract, batch, _ = _einsum_layout(a, b, out)
        lc = tuple(a.index(b[i]) for i in contract)
        lb = tuple(a.index(b[i]) for i in batch)
        y = self._dot_general(lhs, rhs, ((lc, contract), (lb, batch)), precision, preferred_element_type)
        # y is (batch, input free, kernel free); einsum's output order is `out`
        have = (
            "".join(b[i] for i in batch)
            + "".join(c for c in a if c not in b)
            + "".join(c for i, c in enumerate(b) if i not in contract and i not in batch)
        )
        return jnp.einsum(f"{have}->{out}", y) if have != out else y


class AnalogConv(_Converted, nnx.Conv):
    """``nnx.Conv`` (N-D, channels last) on crossbars: kernel ``(*k, Cin/G, Cout)`` flattened
    channel-major to ``(Cin/G * prod(k), Cout)`` per feature group, read by unfolded patches."""

    _HOOK = "conv_general_dilated"
    conv_general_dilated = _mode_property("_conv")

    def _kernel_value(self):
        k = self.kernel[...]
        return k if self.mask is None else k * self.mask

    def crossbar_weights(self):
        k = self._kernel_value()
        cout, G = k.shape[-1], self.feature_group_count
        W = jnp.moveaxis(k, -2, 0).reshape(-1, cout)
        return W if G == 1 else W.reshape(W.shape[0], G, cout // G).transpose(1, 0, 2)

    @property
    def groups(self):
        return self.feature_group_count

    def kernel_from_matrix(self, W):
        shape = self.kernel[...].shape
        if self.feature_group_count > 1:
            W = W.transpose(1, 0, 2).reshape(-1, shape[-1])
        nd = len(shape) - 2
        return jnp.moveaxis(W.reshape(shape[-2], *shape[:nd], shape[-1]), 0, -2)

    def _layout(self):  # pragma: no cover - convs have their own matrix (crossbar_weights)
        raise NotImplementedError

    def _conv(
        self,
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=None,
        rhs_dilation=None,
        dimension_numbers=None,
        feature_group_count=1,
        precision=None,
        preferred_element_type=None,
        **kwargs,
    ):
        nd = lhs.ndim - 2
        want = jax.lax.ConvDimensionNumbers(
            (0, nd + 1, *range(1, nd + 1)), (nd + 1, nd, *range(nd)), (0, nd + 1, *range(1, nd + 1))
        )
        if (
            dimension_numbers is not None
            and jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) != want
        ):
            raise ValueError(
                f"{type(self).__name__}: only channels-last convolutions run on crossbars, got "
                f"dimension_numbers={dimension_numbers}; keep this layer digital with a rule"
            )
        ones = (1,) * nd
        strides = tuple(window_strides or ones)
        lhs_dilation, rhs_dilation = tuple(lhs_dilation or ones), tuple(rhs_dilation or ones)

        def conv(a, b, **kw):  # the layer's own convolution, with this call's geometry
            return self.digital_op(
                a,
                b,
                strides,
                padding,
                lhs_dilation=lhs_dilation,
                rhs_dilation=rhs_dilation,
                dimension_numbers=dimension_numbers,
                feature_group_count=feature_group_count,
                **kw,
            )

        out_shape = jax.eval_shape(lambda: conv(lhs, rhs)).shape
        config = self.active_config()
        plan = readout.plan(
            config,
            programmed=self.mode == "hardware",
            inputs=math.prod(out_shape[:-1]) if self.mode != "hardware" else None,
        )
        if plan.is_linear and not layers.recording():
            # no ADC, no read noise: q(patches) @ W_eff is a convolution of q(x) with W_eff's kernel

            if self.mode == "hardware":
                w_eff = self.programmed_state().w_eff
            else:
                w_eff = layers.sample_effective_weights(self, self._key(None))
            kernel = self.kernel_from_matrix(w_eff)
            y = conv(dac_equivalent(lhs, config.dac), kernel.astype(rhs.dtype), precision=precision)
        else:
            kshape = rhs.shape[:nd]
            patches = layers.unfold_patches(lhs, kshape, strides, padding, rhs_dilation, lhs_dilation)
            G = feature_group_count
            if G == 1:
                y = self._matmul(patches, None)
            else:
                y = self._matmul(patches.reshape(*patches.shape[:-1], G, patches.shape[-1] // G), None)
                y = y.reshape(*y.shape[:-2], -1)
        if preferred_element_type is not None:
            y = y.astype(preferred_element_type)
        return y


_CLASSES = {
    nnx.Linear: AnalogLinear,
    nnx.LinearGeneral: AnalogLinearGeneral,
    nnx.Einsum: AnalogEinsum,
    nnx.Conv: AnalogConv,
}
SUPPORTED = tuple(_CLASSES)


# ---------------------------------------------------------------------------
# convert
# ---------------------------------------------------------------------------
def _path_name(path) -> str:
    return "/".join(str(getattr(p, "key", p)) for p in path) or "<root>"


def _target_class(node):
    for base, cls in _CLASSES.items():  # exact Flax classes and user subclasses of them
        if isinstance(node, base) and not isinstance(node, CrossbarLayer):
            return cls if type(node) is base else _subclass(type(node), cls)
    return None


_SUBCLASSES: dict = {}


def _subclass(user_cls, analog_cls):
    """A crossbar class for a user subclass of a Flax layer (keeps the user's methods)."""
    key = (user_cls, analog_cls)
    if key not in _SUBCLASSES:
        hook = analog_cls._HOOK
        ns = {
            "_HOOK": hook,
            hook: analog_cls.__dict__[hook],
            "__module__": user_cls.__module__,
            "__qualname__": f"Analog{user_cls.__qualname__}",
        }
        _SUBCLASSES[key] = type(f"Analog{user_cls.__name__}", (analog_cls, user_cls), ns)
    return _SUBCLASSES[key]


def convert(model: nnx.Module, hardware=None, *, rules=(), seed: int = 0) -> nnx.Module:
    """A copy of ``model`` whose Linear / LinearGeneral / Einsum / Conv products run on crossbars.

    Args:
      model: any ``nnx.Module`` (it is not modified; the result is a deep copy).
      hardware: ``crossjax.hardware.HardwareConfig`` every converted layer gets
        (``None``: set it later with ``layers.set_mode(model, mode, hardware=...)``).
      rules: :class:`Rule` objects or dicts (:func:`rules_from_data`), first
        match by module path wins; unmatched layers are converted with ``hardware``.
      seed: seeds the ``"hardware"`` key stream of each converted layer (train-mode
        noise and read noise when the model's ``__call__`` passes no ``rngs``).

    Returns:
      The converted model, in ``"digital"`` mode (outputs identical to ``model``'s).
      ``layers.set_mode(converted, "train" | "hardware", hardware)`` switches it.

    Raises:
      ValueError: ``hardware`` or a rule is invalid, a rule matches no layer, or
        no layer is left to convert.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import conversion
      >>> from crossjax.hardware import HardwareConfig
      >>> model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
      >>> analog = conversion.convert(model, HardwareConfig())
      >>> type(analog).__name__, isinstance(analog, nnx.Linear), analog.kernel[...].shape
      ('AnalogLinear', True, (3, 2))
      >>> x = jnp.ones((4, 3))
      >>> bool((analog(x) == model(x)).all())   # "digital" mode: the original product
      True
    """
    if not isinstance(model, nnx.Module):
        raise ValueError(f"model must be an nnx.Module, got {type(model).__name__}")
    if hardware is not None and not isinstance(hardware, HardwareConfig):
        raise ValueError(f"hardware must be a crossjax.hardware.HardwareConfig or None, got {type(hardware).__name__}")
    if not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        raise ValueError(f"seed must be an int, got {seed!r}")
    rules = rules_from_data(rules)
    rngs = nnx.Rngs(hardware=int(seed))
    used = set()
    found = []

    def visit(path, node):
        cls = _target_class(node)
        if cls is None:
            return node
        name = _path_name(path)
        found.append(name)
        for i, rule in enumerate(rules):
            if rule.matches(name):
                used.add(i)
                if rule.digital:
                    node.conversion_rule = i  # recorded for conversion_table
                    return node
                return cls(node, rngs=rngs, rule=i, hardware=rule.hardware)
        return cls(node, rngs=rngs)

    out = nnx.recursive_map(visit, nnx.clone(model))
    if not found:
        raise ValueError(f"model: has no {' / '.join(c.__name__ for c in SUPPORTED)} layers to convert")
    unused = [rules[i].match for i in range(len(rules)) if i not in used]
    if unused:
        raise ValueError(f"rules: {unused} match no convertible layer; the layer paths are {found}")
    if not layers.crossbar_layers(out):
        raise ValueError("rules: keep every layer digital; nothing is left on crossbars")
    if hardware is not None:
        for _, layer in layers.crossbar_layers(out):
            layer.hardware.set_value(hardware)
    return out


def conversion_table(model: nnx.Module) -> list[dict]:
    """What became of each Linear / LinearGeneral / Einsum / Conv layer of a converted model.

    Args:
      model: a model :func:`convert` returned (any ``nnx.Module``: unconverted
        supported layers are listed as ``"digital"``).

    Returns:
      ``[{"path", "type", "as", "rule"}]`` in ``nnx.iter_graph`` order: ``"as"`` is
      ``"crossbar"``, ``"crossbar (rule i)"`` or ``"digital (rule i)"``; ``"rule"``
      the index of the rule that decided (``None``: the model-wide hardware).

    Example:
      >>> from flax import nnx
      >>> from crossjax import conversion
      >>> analog = conversion.convert(nnx.Linear(3, 2, rngs=nnx.Rngs(0)))
      >>> conversion.conversion_table(analog)
      [{'path': '<root>', 'type': 'Linear', 'as': 'crossbar', 'rule': None}]
    """
    rows = []
    for path, node in nnx.iter_graph(model):
        if isinstance(node, CrossbarLayer):
            rule = getattr(node, "rule", None)
            kind = "crossbar" if rule is None else f"crossbar (rule {rule})"
        elif isinstance(node, SUPPORTED):
            rule = getattr(node, "conversion_rule", None)
            kind = "digital" if rule is None else f"digital (rule {rule})"
        else:
            continue
        base = next(b for b in SUPPORTED if isinstance(node, b))
        rows.append({"path": _path_name(path), "type": base.__name__, "as": kind, "rule": rule})
    return rows
