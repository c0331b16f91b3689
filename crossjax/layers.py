"""Flax NNX layers whose matrix products run on simulated crossbar arrays.

A crossbar layer holds *digital* weights (``nnx.Param``) and computes

    y = crossbar(x, W) + b

where ``crossbar`` depends on the layer's mode:

``"digital"``
    ``y = x @ W + b`` (convolutions via ``jax.lax.conv_general_dilated``).
``"train"``
    ``crossbar.analog_matmul(x, W, hardware, key)`` with a fresh sample of every
    non-ideality per call, drawn from the ``nnx.Rngs`` stream ``"hardware"``
    (the stream lives in the model state, so it advances correctly inside
    ``nnx.jit`` training steps). Gradients flow through mapping, device noise,
    the exact circuit solve and the converters to ``W``.
``"hardware"``
    ``crossbar.matmul(x, state, hardware, key)`` on a *programmed* state held in
    the layer's :class:`CrossbarVariable` (written by :func:`load_program`);
    the key only drives read noise. With ``adc.range="calibrated"`` the ADC full
    scales come from data: :func:`calibrate_model` runs a calibration batch
    through the programmed model, each layer setting its ranges
    (``crossbar.calibrate_adc``) from the inputs it actually receives.

Biases (and batch norm in :mod:`crossjax.models`) stay digital.

Convolutions are evaluated as patches x tiles: the input is unfolded
(:func:`unfold_patches`, the values of ``jax.lax.conv_general_dilated_patches``:
features channel-major, ``(Cin, kh, kw)``), and the kernel
``(kh, kw, Cin/G, Cout)`` is flattened as
``W = kernel.transpose(2, 0, 1, 3).reshape(Cin/G*kh*kw, Cout)`` per group.
With ``G = feature_group_count > 1`` each group is its own crossbar matrix
``(Cin/G*kh*kw, Cout/G)``; the groups are stacked on a leading axis and
programmed / evaluated with ``jax.vmap`` (one batched call, no Python loop).

Without ADC and read noise (``crossbar.is_linear``) a crossbar is linear in
the DAC's output, so a convolution runs as ``conv(q(x), W_eff)`` with the
effective weights folded back into a kernel: the same result (and, in train
mode, the same sample and gradient) without unfolding patches.

Whole-model programming is a pure function :func:`program_model` of
``(weights, hardware, key)``; crossbar layer ``i`` (in ``nnx.iter_graph``
order) uses ``jax.random.fold_in(key, i)``, so ``jax.vmap`` over keys gives
Monte Carlo samples of a whole network.

Checks: shapes, feature counts, modes and missing configs/programs raise
``ValueError`` eagerly (shapes are static, so these checks also run under
``jit``). Weight values are not inspected here; the kernels validate them on
concrete inputs.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from crossjax import crossbar, readout, tiling
from crossjax import hardware as hw_mod
from crossjax.converters import dac_equivalent

__all__ = [
    "MODES",
    "CrossbarLayer",
    "CrossbarVariable",
    "HardwareVariable",
    "layer_names",
    "set_layer_hardware",
    "layer_configs",
    "check_hardware",
    "CrossbarLinear",
    "CrossbarConv",
    "crossbar_layers",
    "set_mode",
    "program_model",
    "load_program",
    "clear_program",
    "calibrate_model",
    "run",
    "sample_effective_weights",
    "record_inputs",
    "recording",
]

MODES = ("digital", "train", "hardware")


class CrossbarVariable(nnx.Variable):
    """A programmed crossbar state (``crossbar.CrossbarState`` pytree) or ``None``."""


class HardwareVariable(nnx.Variable):
    """The layer's ``hardware.HardwareConfig`` (continuous fields are state
    leaves, so sweeping them under ``nnx.jit`` does not recompile) or ``None``."""


def _hardware_stream(rngs):
    if rngs is None:
        return nnx.data(None)
    if isinstance(rngs, nnx.RngStream):
        return rngs.fork()
    if isinstance(rngs, nnx.Rngs):
        try:
            return rngs["hardware"].fork()
        except (AttributeError, KeyError):
            return nnx.data(None)
    raise TypeError(f"rngs must be nnx.Rngs or nnx.RngStream, got {type(rngs).__name__}")


_RECORDING: list | None = None  # (layer, crossbar inputs) of every crossbar read, while record_inputs() runs


@contextlib.contextmanager
def record_inputs():
    """Record every crossbar layer's crossbar inputs while the block runs.

    Yields a list that fills with ``(layer, x)`` per crossbar read, ``x`` the
    layer's crossbar matrix input (``(..., K)``, or ``(..., G, K/G)`` for grouped
    convolutions; patches for convolutions). While recording, convolutions take
    the patch path even where the read is linear (the same outputs). Used by
    :func:`crossjax.cost.model_cost`; trace the model inside the block.

    Example:
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> from crossjax.hardware import HardwareConfig
      >>> m = layers.set_mode(models.MLP(4, (3,), 2, rngs=nnx.Rngs(0)), "train", HardwareConfig())
      >>> with layers.record_inputs() as calls:
      ...     _ = layers.run(m, jnp.ones((5, 4)), jax.random.key(0))
      >>> [x.shape for _, x in calls]
      [(5, 4), (5, 3)]
    """
    global _RECORDING
    outer, _RECORDING = _RECORDING, []
    try:
        yield _RECORDING
    finally:
        _RECORDING = outer


def recording() -> bool:
    """Whether :func:`record_inputs` is active.

    Returns:
      ``True`` inside a ``with record_inputs():`` block, else ``False``.

    Example:
      >>> from crossjax import layers
      >>> with layers.record_inputs():
      ...     inside = layers.recording()
      >>> inside, layers.recording()
      (True, False)
    """
    return _RECORDING is not None


class CrossbarLayer(nnx.Module):
    """Shared mode / key / program handling; subclasses define the matrices."""

    def _init_crossbar(self, rngs):
        self.mode = "digital"
        self.calibrating = False
        self.hardware = HardwareVariable(None)
        self.layer_hardware = HardwareVariable(None)  # this layer's own config (set_layer_hardware)
        self.crossbar_state = CrossbarVariable(None)
        self.rngs = _hardware_stream(rngs)

    def effective_hardware(self, hardware):
        """The config this layer runs on when the model runs on ``hardware``: its own config
        (:func:`set_layer_hardware`) if it has one, else ``hardware`` (a per-layer rule of
        :func:`crossjax.convert` may replace or override it)."""
        own = self.layer_hardware.get_value()
        return hardware if own is None else own

    # -- the crossbar matrices --------------------------------------------
    @property
    def groups(self) -> int:
        return 1

    def crossbar_weights(self) -> jax.Array:
        """The logical crossbar matrix ``(K, N)``, or ``(G, K/G, N/G)`` for grouped convs."""
        raise NotImplementedError

    def program(self, hardware, key) -> Any:
        """Programmed state of this layer's matrices (pure; does not install it)."""
        W = self.crossbar_weights()
        if self.groups == 1:
            return crossbar.program(W, hardware, key)
        keys = jax.random.split(key, self.groups)
        return jax.vmap(crossbar.program, in_axes=(0, None, 0))(W, hardware, keys)

    # -- evaluation ---------------------------------------------------------
    def _key(self, rngs):
        if rngs is not None:
            stream = rngs["hardware"] if isinstance(rngs, nnx.Rngs) else rngs
            return stream()
        if self.rngs is None:
            raise ValueError(
                f"{type(self).__name__} in mode {self.mode!r} needs PRNG keys: build it with "
                "rngs=nnx.Rngs(params=..., hardware=...) or pass rngs=nnx.Rngs(hardware=key) "
                "to the call"
            )
        return self.rngs()

    def active_config(self):
        """The ``HardwareConfig`` this layer runs on now (its own, :func:`set_layer_hardware`, or
        the one :func:`set_mode` gave); ``ValueError`` when it has none."""
        hw = self.effective_hardware(self.hardware.get_value())
        if hw is None:
            raise ValueError(
                f"{type(self).__name__} in mode {self.mode!r} has no hardware config: call "
                "crossjax.layers.set_mode(model, mode, hardware=HardwareConfig(...))"
            )
        return hw

    def programmed_state(self):
        """The ``CrossbarState`` :func:`load_program` stored; ``ValueError`` when not programmed."""
        state = self.crossbar_state.get_value()
        if state is None:
            raise ValueError(
                f"{type(self).__name__} is in 'hardware' mode but not programmed: call "
                "crossjax.layers.load_program(model, program_model(model, hardware, key))"
            )
        return state

    def _matmul(self, x: jax.Array, rngs) -> jax.Array:
        """``x (..., G, K/G)`` or ``(..., K)`` through the crossbar in the current mode."""
        if _RECORDING is not None:
            _RECORDING.append((self, x))
        config = self.active_config()
        key = self._key(rngs)
        G = self.groups
        if self.mode == "train":
            W = self.crossbar_weights()
            if G == 1:
                return crossbar.analog_matmul(x, W, config, key)
            keys = jax.random.split(key, G)
            y = jax.vmap(crossbar.analog_matmul, in_axes=(-2, 0, None, 0), out_axes=-2)(x, W, config, keys)
            return y
        state = self.programmed_state()
        if self.calibrating and readout.plan(config).needs_calibration:
            if G == 1:
                state = crossbar.calibrate_adc(x, state, config, key)
            else:
                state = jax.vmap(crossbar.calibrate_adc, in_axes=(-2, 0, None, 0))(
                    x, state, config, jax.random.split(key, G)
                )
            self.crossbar_state.set_value(state)
        if G == 1:
            return crossbar.matmul(x, state, config, key)
        keys = jax.random.split(key, G)
        return jax.vmap(crossbar.matmul, in_axes=(-2, 0, None, 0), out_axes=-2)(x, state, config, keys)


def sample_effective_weights(layer: CrossbarLayer, key: jax.Array) -> jax.Array:
    """A fresh train-mode sample of ``layer``'s effective weights ``W_eff`` (shape of
    ``layer.crossbar_weights()``), drawn as ``crossbar.analog_matmul`` draws it
    (``crossbar.program`` with ``fold_in(key, 0)``; per group ``fold_in(split(key, G)[g], 0)``).

    Args:
      layer: a crossbar layer with a hardware config (``layer.active_config()``).
      key: PRNG key of the write-time draws.

    Returns:
      ``W_eff``: ``(K, N)``, or ``(G, K/G, N/G)`` for grouped convolutions, in the units
      of the layer's weights.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> from crossjax.hardware import HardwareConfig
      >>> model = layers.set_mode(models.MLP(8, (4,), 2, rngs=nnx.Rngs(0)), "train", HardwareConfig())
      >>> layer = layers.crossbar_layers(model)[0][1]
      >>> W = layers.sample_effective_weights(layer, jax.random.key(0))  # ideal: W itself
      >>> W.shape, bool(jnp.allclose(W, layer.crossbar_weights(), atol=1e-5))
      ((8, 4), True)
    """
    config, W = layer.active_config(), layer.crossbar_weights()
    if layer.groups == 1:
        return crossbar.program(W, config, jax.random.fold_in(key, 0)).w_eff
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(jax.random.split(key, layer.groups), 0)
    return jax.vmap(crossbar.program, in_axes=(0, None, 0))(W, config, keys).w_eff


def _check_features(name, value):
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


class CrossbarLinear(CrossbarLayer):
    """Dense layer ``y = x @ W + b`` with ``W`` (in_features, out_features) on crossbars.

    Crossbar rows are the ``K = in_features`` inputs, columns the
    ``N = out_features`` outputs (tiled as in docs/architecture.md).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        use_bias: bool = True,
        param_dtype=jnp.float32,
        kernel_init=nnx.initializers.lecun_normal(),
        bias_init=nnx.initializers.zeros_init(),
        rngs: nnx.Rngs,
    ):
        _check_features("in_features", in_features)
        _check_features("out_features", out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.use_bias = use_bias
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features), param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else nnx.data(None)
        self._init_crossbar(rngs)

    def crossbar_weights(self) -> jax.Array:
        return self.kernel[...]

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """``x (..., in_features) -> (..., out_features)``."""
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"x: last axis has {x.shape[-1]} features but CrossbarLinear expects "
                f"in_features={self.in_features}; reshape x or rebuild the layer"
            )
        if self.mode == "digital":
            y = x @ self.kernel[...]
        else:
            y = self._matmul(x, rngs)
        if self.bias is not None:
            y = y + self.bias[...]
        return y


def _pair(name, v):
    if isinstance(v, int):
        v = (v, v)
    v = tuple(v)
    if len(v) != 2 or not all(isinstance(i, int) and i >= 1 for i in v):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {v!r}")
    return v


def _padding(padding):
    if isinstance(padding, str):
        p = padding.upper()
        if p not in ("SAME", "VALID", "SAME_LOWER"):
            raise ValueError(f"padding must be 'SAME', 'VALID', an int or ((lo, hi), (lo, hi)), got {padding!r}")
        return p
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    try:
        pads = tuple(p if not isinstance(p, int) else (p, p) for p in padding)
        pads = tuple((int(lo), int(hi)) for lo, hi in pads)
    except (TypeError, ValueError):
        raise ValueError(f"padding must be 'SAME', 'VALID', an int or ((lo, hi), (lo, hi)), got {padding!r}") from None
    if len(pads) != 2:
        raise ValueError(f"padding needs one (lo, hi) pair per spatial axis (2), got {padding!r}")
    return pads


def unfold_patches(x, kernel_size, strides, padding, dilation, input_dilation=None):
    """im2col: ``x (B, *S, C) -> (B, *S', C*prod(k))``, features channel-major ``(C, *k)``.

    ``len(S)`` spatial dims (1, 2 or 3); ``padding`` is ``"SAME"``/``"VALID"``/
    ``"SAME_LOWER"`` or one ``(lo, hi)`` pair per spatial dim (negative values
    crop); ``input_dilation`` inserts ``d - 1`` zeros between input pixels (as
    ``lhs_dilation`` of ``jax.lax.conv_general_dilated``, whose padding rule this
    follows). The values of ``jax.lax.conv_general_dilated_patches``, built from
    ``prod(k)`` strided slices of the padded input (a static loop over kernel
    taps) so that the gradient is a sum of padded slices. The gradient of
    ``conv_general_dilated_patches`` is a convolution with a one-hot kernel that
    costs ``(C*prod(k))^2`` per output pixel: 9x the layer's own convolution for a
    3x3 kernel with as many output as input channels.

    Args:
      x: ``(B, *S, C)`` inputs, channels last.
      kernel_size: ``len(S)`` kernel extents ``k``.
      strides: ``len(S)`` strides.
      padding: as above.
      dilation: ``len(S)`` kernel dilations.
      input_dilation: optional ``len(S)`` input dilations (``None``: 1).

    Returns:
      ``(B, *S', C*prod(k))`` patches, ``S'`` the convolution's output size.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from crossjax import layers
      >>> x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
      >>> p = layers.unfold_patches(x, (3, 3), (1, 1), "SAME", (1, 1))
      >>> ref = jax.lax.conv_general_dilated_patches(x, (3, 3), (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
      >>> p.shape, bool(jnp.allclose(p, ref))
      ((2, 4, 4, 27), True)
      >>> layers.unfold_patches(x, (2, 2), (2, 2), "VALID", (1, 1)).shape
      (2, 2, 2, 12)
    """
    nd = x.ndim - 2
    ks, st, dl = tuple(kernel_size), tuple(strides), tuple(dilation)
    ld = tuple(input_dilation) if input_dilation is not None else (1,) * nd
    window = tuple((k - 1) * d + 1 for k, d in zip(ks, dl))
    if isinstance(padding, str):
        if max(ld) > 1:
            raise ValueError(
                f"padding={padding!r} with input_dilation={ld}: give explicit (lo, hi) pads "
                "per spatial dim (as jax.lax.conv_general_dilated requires)"
            )
        pads = jax.lax.padtype_to_pads(x.shape[1:-1], window, st, padding)
    else:
        pads = padding
    zero = jnp.zeros((), x.dtype)
    xp = jax.lax.pad(x, zero, ((0, 0, 0), *((int(lo), int(hi), d - 1) for (lo, hi), d in zip(pads, ld)), (0, 0, 0)))
    out = tuple((n - w) // s + 1 for n, w, s in zip(xp.shape[1:-1], window, st))
    taps = []
    for tap in itertools.product(*(range(k) for k in ks)):
        index = tuple(slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in zip(tap, dl, st, out))
        taps.append(xp[(slice(None), *index, slice(None))])
    return jnp.stack(taps, axis=-1).reshape(x.shape[0], *out, x.shape[-1] * math.prod(ks))


class CrossbarConv(CrossbarLayer):
    """2-D convolution (NHWC) evaluated as im2col patches x crossbar tiles.

    ``y[b, i, j, :] = patches(x)[b, i, j, :] @ W + b`` with
    ``W = kernel.transpose(2, 0, 1, 3).reshape(Cin/G*kh*kw, Cout)`` per group
    (``kernel`` has shape ``(kh, kw, Cin/G, Cout)``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        strides: int | Sequence[int] = 1,
        padding: str | int | Sequence = "SAME",
        kernel_dilation: int | Sequence[int] = 1,
        feature_group_count: int = 1,
        use_bias: bool = True,
        param_dtype=jnp.float32,
        kernel_init=nnx.initializers.lecun_normal(),
        bias_init=nnx.initializers.zeros_init(),
        rngs: nnx.Rngs,
    ):
        _check_features("in_features", in_features)
        _check_features("out_features", out_features)
        _check_features("feature_group_count", feature_group_count)
        if in_features % feature_group_count or out_features % feature_group_count:
            raise ValueError(
                f"feature_group_count={feature_group_count} must divide in_features={in_features} "
                f"and out_features={out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.strides = _pair("strides", strides)
        self.padding = _padding(padding)
        self.kernel_dilation = _pair("kernel_dilation", kernel_dilation)
        self.feature_group_count = feature_group_count
        self.use_bias = use_bias
        kh, kw = self.kernel_size
        shape = (kh, kw, in_features // feature_group_count, out_features)
        self.kernel = nnx.Param(kernel_init(rngs.params(), shape, param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else nnx.data(None)
        self._init_crossbar(rngs)

    @property
    def groups(self) -> int:
        return self.feature_group_count

    def crossbar_weights(self) -> jax.Array:
        kh, kw, cg, cout = self.kernel[...].shape
        G = self.feature_group_count
        W = tiling.flatten_kernel(self.kernel[...])
        if G == 1:
            return W
        # output channels come in G consecutive blocks of Cout/G
        return W.reshape(cg * kh * kw, G, cout // G).transpose(1, 0, 2)

    def _conv(self, x, kernel):
        dtype = jnp.result_type(x, kernel)
        return jax.lax.conv_general_dilated(
            x.astype(dtype),
            kernel.astype(dtype),
            window_strides=self.strides,
            padding=self.padding,
            rhs_dilation=self.kernel_dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=self.feature_group_count,
        )

    def _linear_kernel(self, x, rngs):
        """The effective kernel when the read is linear (``readout.plan(...).is_linear``), else ``None``.

        Hardware mode: the programmed state's ``W_eff``. Train mode: a fresh sample,
        drawn as ``crossbar.analog_matmul`` draws it (``fold_in(key, 0)`` per group),
        when that would form ``G_eff`` (not the per-input ``"iterative"`` regime).
        """
        config = self.active_config()
        inputs = None
        if self.mode != "hardware":  # the sample's inputs decide G_eff vs a per-input solve ("auto")
            out = jax.eval_shape(lambda: self._conv(x, self.kernel[...]))
            inputs = out.size // self.out_features
        if recording() or not readout.plan(config, programmed=self.mode == "hardware", inputs=inputs).is_linear:
            return None
        if self.mode == "hardware":
            return self._kernel_of(self.programmed_state().w_eff)
        return self._kernel_of(sample_effective_weights(self, self._key(rngs)))

    def _kernel_of(self, w) -> jax.Array:
        """Crossbar weights ``(K, Cout)`` or ``(G, K/G, Cout/G)`` as an HWIO kernel (inverse of :meth:`crossbar_weights`)."""
        kh, kw, cg, cout = self.kernel[...].shape
        if self.feature_group_count > 1:
            w = w.transpose(1, 0, 2).reshape(cg * kh * kw, cout)
        return tiling.unflatten_kernel(w, self.kernel[...].shape)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """``x (B, H, W, in_features) -> (B, H', W', out_features)``."""
        if x.ndim != 4 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected NHWC input (B, H, W, {self.in_features}), got shape {x.shape}")
        if self.mode == "digital":
            y = self._conv(x, self.kernel[...])
        elif (kernel := self._linear_kernel(x, rngs)) is not None:
            # no ADC, no read noise: the crossbar is q(patches) @ W_eff with an
            # elementwise DAC q (q(0) = 0), i.e. a convolution of q(x) with W_eff's kernel

            y = self._conv(dac_equivalent(x, self.active_config().dac), kernel)
        else:
            patches = unfold_patches(x, self.kernel_size, self.strides, self.padding, self.kernel_dilation)
            G = self.feature_group_count
            if G == 1:
                y = self._matmul(patches, rngs)
            else:
                # channel-major features: group g owns a contiguous block
                p = patches.reshape(*patches.shape[:-1], G, patches.shape[-1] // G)
                y = self._matmul(p, rngs)
                y = y.reshape(*y.shape[:-2], self.out_features)
        if self.bias is not None:
            y = y + self.bias[...]
        return y


# ---------------------------------------------------------------------------
# whole-model helpers
# ---------------------------------------------------------------------------
def crossbar_layers(model: nnx.Module) -> list[tuple[tuple, CrossbarLayer]]:
    """``[(path, layer)]`` of every crossbar layer in ``nnx.iter_graph`` order.

    The position in this list is the layer index folded into the programming key.

    Args:
      model: an nnx model.

    Returns:
      ``(path, layer)`` pairs, ``path`` a tuple of attribute names and indices; ``[]``
      without crossbar layers.

    Example:
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> [(path, type(layer).__name__) for path, layer in layers.crossbar_layers(models.MLP(8, (4,), 2, rngs=nnx.Rngs(0)))]
      [(('layers', 0), 'CrossbarLinear'), (('layers', 1), 'CrossbarLinear')]
    """
    return [(path, node) for path, node in nnx.iter_graph(model) if isinstance(node, CrossbarLayer)]


def check_hardware(hardware) -> None:
    """``None`` or a ``HardwareConfig`` (whose own checks ran when it was built); ``ValueError`` naming the fix
    otherwise.

    Args:
      hardware: the value to check.

    Raises:
      ValueError: ``hardware`` is neither.

    Example:
      >>> from crossjax import layers
      >>> from crossjax.hardware import HardwareConfig
      >>> layers.check_hardware(None), layers.check_hardware(HardwareConfig())
      (None, None)
      >>> layers.check_hardware("rram")
      Traceback (most recent call last):
      ...
      ValueError: hardware must be a crossjax.hardware.HardwareConfig, got str
    """
    if hardware is None:
        return

    if not isinstance(hardware, hw_mod.HardwareConfig):
        raise ValueError(f"hardware must be a crossjax.hardware.HardwareConfig, got {type(hardware).__name__}")


def layer_names(model: nnx.Module) -> list[str]:
    """Names of the crossbar layers (their paths joined by ``"."``, e.g. ``"layers.0"``), in
    :func:`crossbar_layers` order: the keys of :func:`set_layer_hardware` and ``cost.model_cost``.

    Args:
      model: an nnx model.

    Returns:
      a list of ``str`` (empty when the model has no crossbar layers).

    Example:
      >>> from flax import nnx
      >>> from crossjax import models
      >>> layer_names(models.MLP(4, (8,), 2, rngs=nnx.Rngs(0)))
      ['layers.0', 'layers.1']
    """
    return [".".join(map(str, path)) for path, _ in crossbar_layers(model)]


def set_layer_hardware(model: nnx.Module, configs: dict) -> nnx.Module:
    """Give crossbar layers their own hardware config (in place; returns ``model``).

    A layer with its own config runs on it whatever model-wide config
    :func:`set_mode`, :func:`program_model` or ``montecarlo.evaluate`` pass, e.g.
    per-tile ADC bits, whose shape ``(Kt, Nt, C)`` differs from layer to layer.

    Args:
      model: a model with crossbar layers.
      configs: ``{layer name: HardwareConfig or None}`` (names of :func:`layer_names`;
        ``None`` drops the layer's own config).

    Returns:
      ``model``.

    Raises:
      ValueError: a name the model does not have, or a value that is not a ``HardwareConfig``.

    Example:
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> from crossjax.hardware import HardwareConfig
      >>> m = models.MLP(4, (8,), 2, rngs=nnx.Rngs(0))
      >>> _ = layers.set_layer_hardware(m, {"layers.0": HardwareConfig().set({"adc.bits": 6})})
      >>> [l.effective_hardware(HardwareConfig()).adc.bits for _, l in layers.crossbar_layers(m)]
      [6, None]
    """
    names = dict(zip(layer_names(model), (layer for _, layer in crossbar_layers(model))))
    if not isinstance(configs, dict):
        raise ValueError(f"configs must be a dict {{layer name: HardwareConfig or None}}, got {type(configs).__name__}")
    unknown = sorted(set(configs) - set(names))
    if unknown:
        raise ValueError(
            f"configs names layers the model does not have: {unknown}; its crossbar layers are {sorted(names)}"
        )
    for name, config in configs.items():
        check_hardware(config)
        names[name].layer_hardware.set_value(config)
    return model


def layer_configs(model: nnx.Module, hardware) -> list:
    """The config each crossbar layer runs on when the model runs on ``hardware`` (its own,
    :func:`set_layer_hardware`, or a conversion rule's, else ``hardware``), in
    :func:`crossbar_layers` order: what a check of "does any layer need X" must look at.

    Args:
      model: a model with crossbar layers.
      hardware: the model-wide ``HardwareConfig`` (or ``None``).

    Returns:
      a list of ``HardwareConfig`` (or ``None`` for a layer without one).

    Example:
      >>> from flax import nnx
      >>> from crossjax import models
      >>> from crossjax.hardware import HardwareConfig
      >>> m = set_layer_hardware(models.MLP(4, (8,), 2, rngs=nnx.Rngs(0)),
      ...                        {"layers.1": HardwareConfig().set({"adc.bits": 6})})
      >>> [c.adc.bits for c in layer_configs(m, HardwareConfig())]
      [None, 6]
    """
    return [layer.effective_hardware(hardware) for _, layer in crossbar_layers(model)]


def set_mode(model: nnx.Module, mode: str, hardware=None) -> nnx.Module:
    """Set every crossbar layer of ``model`` to ``mode`` (in place; returns ``model``).

    Args:
      model: an nnx model with crossbar layers.
      mode: one of ``MODES``: ``"digital"`` (``x @ W``), ``"train"`` (fresh
        non-idealities drawn at every call, differentiable) or ``"hardware"``
        (the programmed state installed by :func:`load_program`).
      hardware: a ``HardwareConfig`` that replaces the layers' config when given;
        ``"train"`` and ``"hardware"`` need one, set now or earlier.

    Returns:
      ``model``.

    Example:
      >>> from flax import nnx
      >>> from crossjax import layers, models, presets
      >>> model = layers.set_mode(models.MLP(8, (4,), 2, rngs=nnx.Rngs(0)), "train", presets.rram())
      >>> [layer.mode for _, layer in layers.crossbar_layers(model)]
      ['train', 'train']
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    check_hardware(hardware)
    layers = crossbar_layers(model)
    if not layers:
        raise ValueError("model: has no CrossbarLinear/CrossbarConv layers")
    for path, layer in layers:
        if hardware is not None:
            layer.hardware.set_value(hardware)
        if mode != "digital" and layer.effective_hardware(layer.hardware.get_value()) is None:
            raise ValueError(
                f"set_mode(model, {mode!r}): layer {'/'.join(map(str, path))} has no hardware config; "
                "pass hardware=HardwareConfig(...)"
            )
        layer.mode = mode
    return model


def program_model(model: nnx.Module, hardware, key: jax.Array) -> nnx.State:
    """Program every crossbar layer: a pure function of (weights, hardware, key).

    Layer ``i`` (see :func:`crossbar_layers`) is programmed as by
    ``crossbar.program(W_i, hardware, jax.random.fold_in(key, i))``, all layers'
    tiles in one batched circuit solve (``crossbar.program_many``). Returns an
    ``nnx.State`` of :class:`CrossbarVariable` (install it with
    :func:`load_program`); the model is not modified, so
    ``jax.vmap(lambda k: program_model(model, hw, k))(keys)`` gives Monte Carlo samples.

    Args:
      model: an nnx model with crossbar layers.
      hardware: the ``HardwareConfig`` to program.
      key: PRNG key of the write-time draws.

    Returns:
      The programmed state (an ``nnx.State``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import hardware, layers, models
      >>> model = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
      >>> x, hw = jnp.ones((3, 8)), hardware.HardwareConfig()   # ideal: the chip computes x @ W
      >>> state = layers.program_model(model, hw, jax.random.key(0))
      >>> digital = model(x)
      >>> layers.set_mode(layers.load_program(model, state), "hardware", hw)(x).shape
      (3, 2)
      >>> bool(jnp.allclose(model(x), digital, atol=1e-5))
      True
    """
    check_hardware(hardware)
    if hardware is None:
        raise ValueError("hardware: program_model needs a HardwareConfig")
    layers = crossbar_layers(model)
    if not layers:
        raise ValueError("model: has no CrossbarLinear/CrossbarConv layers to program")
    keys = [jax.random.fold_in(key, i) for i in range(len(layers))]
    configs = [layer.effective_hardware(hardware) for _, layer in layers]
    shared = [i for i, c in enumerate(configs) if c is hardware]  # one batched solve for these
    states = [None] * len(layers)
    groups = [shared] if shared else []
    groups += [[i] for i, c in enumerate(configs) if c is not hardware]  # per-layer rules
    for group in groups:
        out = crossbar.program_many(
            [layers[i][1].crossbar_weights() for i in group], configs[group[0]], [keys[i] for i in group]
        )
        for i, state in zip(group, out):
            states[i] = state
    flat = [((*path, "crossbar_state"), CrossbarVariable(state)) for (path, _), state in zip(layers, states)]
    return nnx.from_flat_state(flat)


def load_program(model: nnx.Module, state: nnx.State) -> nnx.Module:
    """Install a programmed state from :func:`program_model` (in place; returns ``model``);
    ``ValueError`` when the state was programmed for another model. Example: :func:`program_model`.

    Args:
      model: the nnx model the state was programmed for.
      state: the ``nnx.State`` of :func:`program_model`.

    Returns:
      ``model``.

    Raises:
      ValueError: the state's crossbar layers are not the model's.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> from crossjax.hardware import HardwareConfig
      >>> model = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
      >>> _ = layers.load_program(model, layers.program_model(model, HardwareConfig(), jax.random.key(0)))
      >>> [layer.crossbar_state.get_value() is not None for _, layer in layers.crossbar_layers(model)]
      [True, True]
    """
    paths = {(*p, "crossbar_state") for p, _ in crossbar_layers(model)}
    given = {tuple(p) for p, _ in nnx.to_flat_state(state)}
    if given != paths:
        missing, extra = sorted(map(str, paths - given)), sorted(map(str, given - paths))
        raise ValueError(
            f"state: does not match the model's crossbar layers (missing {missing}, unexpected {extra}); "
            "program it with program_model(model, ...) for this model"
        )
    nnx.update(model, state)
    return model


def calibrate_model(model: nnx.Module, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> nnx.Module:
    """Set the ADC full scales of a programmed model from the calibration inputs ``x`` (in place).

    The model runs once on ``x`` in ``"hardware"`` mode; every crossbar layer whose
    config has ``adc.bits`` and ``adc.range="calibrated"`` first replaces its
    state's ranges by the ``adc.percentile`` of ``|I|`` over its own inputs
    (``crossbar.calibrate_adc``), so each layer is calibrated on what the
    already calibrated layers before it deliver, as an ADC calibrated on the
    chip would be. Other layers are unchanged. Returns ``model``.

    Args:
      model: a programmed model (:func:`load_program`) in ``"hardware"`` mode.
      x: a calibration batch (the model's input shape).
      rngs: optional; drives the read noise of the calibration run (``None``: the
        layers' own streams).

    Returns:
      ``model``.

    Raises:
      ValueError: a crossbar layer is not programmed or not in ``"hardware"`` mode.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> from crossjax.hardware import HardwareConfig
      >>> hw = HardwareConfig().set({"adc.bits": 6, "adc.range": "calibrated"})
      >>> model = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
      >>> model = layers.set_mode(layers.load_program(model, layers.program_model(model, hw, jax.random.key(0))),
      ...                         "hardware", hw)
      >>> x = jax.random.normal(jax.random.key(1), (16, 8))
      >>> layers.calibrate_model(model, x)(x).shape
      (16, 2)
    """
    layers = crossbar_layers(model)
    for path, layer in layers:
        if layer.mode != "hardware" or layer.crossbar_state.get_value() is None:
            raise ValueError(
                f"calibrate_model: layer {'/'.join(map(str, path))} must be programmed and in "
                "'hardware' mode: load_program(model, program_model(...)) and set_mode first"
            )
        layer.calibrating = True
    try:
        if rngs is None:
            model(x)
        elif _takes_rngs(model):
            model(x, rngs=rngs)
        else:  # a user model: its crossbar layers' own streams, reseeded from rngs
            run(model, x, rngs["hardware"]() if isinstance(rngs, nnx.Rngs) else rngs())
    finally:
        for _, layer in layers:
            layer.calibrating = False
    return model


def _takes_rngs(model) -> bool:
    try:
        params = inspect.signature(model.__call__).parameters
    except (TypeError, ValueError):
        return False
    return "rngs" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def run(model: nnx.Module, x, key: jax.Array):
    """``model(x)`` with every crossbar layer's randomness drawn from ``key``.

    crossjax's own models take ``rngs`` and get ``rngs=nnx.Rngs(hardware=key)``.
    Any model (a converted user model's ``__call__(x)`` takes no ``rngs``) also
    has the ``"hardware"`` stream of crossbar layer ``i`` (``crossbar_layers``
    order) reseeded to ``fold_in(key, i)``, so each Monte Carlo sample and batch
    gets its own read noise whatever the call signature. Mutates the streams.

    Args:
      model: an ``nnx.Module`` with crossbar layers.
      x: its input.
      key: a PRNG key.

    Returns:
      ``model``'s output.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import layers, models, presets
      >>> model = layers.set_mode(models.MLP(8, (4,), 2, rngs=nnx.Rngs(0)), "train", presets.rram())
      >>> a = layers.run(model, jnp.ones((3, 8)), jax.random.key(0))
      >>> a.shape, bool(jnp.allclose(a, layers.run(model, jnp.ones((3, 8)), jax.random.key(0))))
      ((3, 2), True)
    """
    for i, (_, layer) in enumerate(crossbar_layers(model)):
        stream = layer.rngs
        if isinstance(stream, nnx.RngStream):
            stream.key[...] = jax.random.fold_in(key, i)
            stream.count[...] = jnp.zeros_like(stream.count[...])
    if _takes_rngs(model):
        return model(x, rngs=nnx.Rngs(hardware=key))
    return model(x)


def clear_program(model: nnx.Module) -> nnx.Module:
    """Drop every programmed state (frees memory; in place).

    Args:
      model: an nnx model with crossbar layers.

    Returns:
      ``model``.

    Example:
      >>> import jax
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> from crossjax.hardware import HardwareConfig
      >>> model = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
      >>> model = layers.clear_program(layers.load_program(model, layers.program_model(model, HardwareConfig(),
      ...                                                                              jax.random.key(0))))
      >>> [layer.crossbar_state.get_value() is None for _, layer in layers.crossbar_layers(model)]
      [True, True]
    """
    for _, layer in crossbar_layers(model):
        layer.crossbar_state.set_value(None)
    return model
