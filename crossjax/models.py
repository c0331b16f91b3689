"""Networks built from crossbar layers: MLP, VGG11/16 and ResNet18 (CIFAR variants), and a ViT
(plain Flax converted by ``crossjax.convert``).

Every weight matrix is a :class:`~crossjax.layers.CrossbarLinear` or
:class:`~crossjax.layers.CrossbarConv`; biases and batch norm stay digital.
Inputs are NHWC images (``(B, 32, 32, 3)`` for CIFAR); outputs are logits.
``width`` multiplies every hidden channel count (``max(1, round(c * width))``)
for small, fast models; ``width=1`` gives the standard sizes.

Each model's ``__call__(x, *, rngs=None)`` passes ``rngs`` to its crossbar
layers (the ``"hardware"`` stream drives non-idealities in ``"train"`` and
read noise in ``"hardware"`` mode). Batch norm follows ``model.train()`` /
``model.eval()``.

:func:`from_digital` copies a trained digital network (plain ``nnx.Linear`` /
``nnx.Conv`` / ``nnx.BatchNorm``) or a saved state into a crossbar model.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from crossjax.conversion import convert
from crossjax.layers import CrossbarConv, CrossbarLinear, crossbar_layers

__all__ = [
    "MLP",
    "VGG",
    "VGG_CONFIGS",
    "vgg11",
    "vgg16",
    "BasicBlock",
    "ResNet",
    "resnet18",
    "EncoderBlock",
    "ViT",
    "vit",
    "from_digital",
]


def _scale(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _check_width(width):
    if not (isinstance(width, (int, float)) and width > 0):
        raise ValueError(f"width must be a positive number (channel multiplier), got {width!r}")


def _check_image(x, smallest: int, what: str) -> None:
    """``x`` is ``(B, H, W, C)`` with ``H, W >= smallest``: smaller images pool to nothing
    (a mean over an empty map is NaN)."""
    if x.ndim != 4:
        raise ValueError(f"x must be images (B, H, W, C), got shape {x.shape}.")
    if x.shape[0] == 0:
        raise ValueError("x holds 0 images; pass a batch of at least one.")
    if x.shape[1] < smallest or x.shape[2] < smallest:
        raise ValueError(
            f"x is {x.shape[1]}x{x.shape[2]} images but {what} needs at least {smallest}x{smallest}; "
            f"resize or pad the images (CIFAR: 32x32), or use models.MLP for small inputs."
        )


class MLP(nnx.Module):
    """Multilayer perceptron: ``flatten -> [CrossbarLinear -> ReLU] * len(hidden) -> CrossbarLinear``."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (64,),
        num_classes: int = 10,
        *,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        sizes = (in_features, *hidden, num_classes)
        self.layers = nnx.List(
            [CrossbarLinear(a, b, param_dtype=param_dtype, rngs=rngs) for a, b in zip(sizes[:-1], sizes[1:])]
        )

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """``x (B, ...) -> logits (B, num_classes)``; trailing axes are flattened."""
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            x = nnx.relu(layer(x, rngs=rngs))
        return self.layers[-1](x, rngs=rngs)


VGG_CONFIGS = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg13": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
}


class _ConvBN(nnx.Module):
    """3x3 CrossbarConv (no bias) -> digital BatchNorm -> ReLU."""

    def __init__(self, cin, cout, *, param_dtype, rngs):
        self.conv = CrossbarConv(cin, cout, 3, padding=1, use_bias=False, param_dtype=param_dtype, rngs=rngs)
        self.bn = nnx.BatchNorm(cout, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x, *, rngs=None):
        return nnx.relu(self.bn(self.conv(x, rngs=rngs)))


class VGG(nnx.Module):
    """VGG for 32x32 inputs (CIFAR variant): conv3x3-BN-ReLU blocks with 2x2 max
    pools (``"M"``), five pools take 32x32 to 1x1, then one CrossbarLinear
    classifier ``(512*width) -> num_classes``.
    """

    def __init__(
        self,
        config_name: str,
        num_classes: int = 10,
        *,
        in_channels: int = 3,
        width: float = 1.0,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if config_name not in VGG_CONFIGS:
            raise ValueError(f"config_name must be one of {sorted(VGG_CONFIGS)}, got {config_name!r}")
        _check_width(width)
        self.config_name = config_name
        blocks, c = [], in_channels
        for v in VGG_CONFIGS[config_name]:
            if v == "M":
                continue
            blocks.append(_ConvBN(c, _scale(v, width), param_dtype=param_dtype, rngs=rngs))
            c = _scale(v, width)
        self.features = nnx.List(blocks)
        self.classifier = CrossbarLinear(c, num_classes, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """``x (B, H, W, C) -> logits (B, num_classes)``; H, W divisible by 32 (CIFAR: 32)."""
        pools = VGG_CONFIGS[self.config_name].count("M")
        _check_image(x, 2**pools, f"{self.config_name} ({pools} 2x2 max pools)")
        i = 0
        for v in VGG_CONFIGS[self.config_name]:
            if v == "M":
                x = nnx.max_pool(x, (2, 2), strides=(2, 2))
            else:
                x = self.features[i](x, rngs=rngs)
                i += 1
        x = jnp.mean(x, axis=(1, 2))  # 1x1 spatial for 32x32 inputs
        return self.classifier(x, rngs=rngs)


def vgg11(
    num_classes: int = 10, *, in_channels: int = 3, width: float = 1.0, param_dtype=jnp.float32, rngs: nnx.Rngs
) -> VGG:
    """VGG11 (CIFAR variant), 8 conv layers + 1 linear, all on crossbars.

    Args:
      num_classes: number of output logits.
      in_channels: input image channels ``C``.
      width: multiplier of every hidden channel count (``max(1, round(c * width))``).
      param_dtype: dtype of the parameters.
      rngs: ``nnx.Rngs`` (``params``, and ``hardware`` for the crossbar layers' noise).

    Returns:
      A :class:`VGG`: ``x (B, 32, 32, C) -> logits (B, num_classes)``.

    Example:
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> len(layers.crossbar_layers(models.vgg11(10, width=1 / 16, rngs=nnx.Rngs(0))))
      9
    """
    return VGG("vgg11", num_classes, in_channels=in_channels, width=width, param_dtype=param_dtype, rngs=rngs)


def vgg16(
    num_classes: int = 10, *, in_channels: int = 3, width: float = 1.0, param_dtype=jnp.float32, rngs: nnx.Rngs
) -> VGG:
    """VGG16 (CIFAR variant), 13 conv layers + 1 linear, all on crossbars; arguments and result as
    :func:`vgg11`.

    Example:
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> len(layers.crossbar_layers(models.vgg16(10, width=1 / 16, rngs=nnx.Rngs(0))))
      14
    """
    return VGG("vgg16", num_classes, in_channels=in_channels, width=width, param_dtype=param_dtype, rngs=rngs)


class BasicBlock(nnx.Module):
    """ResNet basic block: ``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``,
    shortcut = 1x1 CrossbarConv + BN when the stride or channel count changes."""

    def __init__(self, cin, cout, stride, *, param_dtype, rngs):
        self.conv1 = CrossbarConv(
            cin, cout, 3, strides=stride, padding=1, use_bias=False, param_dtype=param_dtype, rngs=rngs
        )
        self.bn1 = nnx.BatchNorm(cout, param_dtype=param_dtype, rngs=rngs)
        self.conv2 = CrossbarConv(cout, cout, 3, padding=1, use_bias=False, param_dtype=param_dtype, rngs=rngs)
        self.bn2 = nnx.BatchNorm(cout, param_dtype=param_dtype, rngs=rngs)
        if stride != 1 or cin != cout:
            self.shortcut_conv = CrossbarConv(
                cin, cout, 1, strides=stride, padding=0, use_bias=False, param_dtype=param_dtype, rngs=rngs
            )
            self.shortcut_bn = nnx.BatchNorm(cout, param_dtype=param_dtype, rngs=rngs)
        else:
            self.shortcut_conv = nnx.data(None)
            self.shortcut_bn = nnx.data(None)

    def __call__(self, x, *, rngs=None):
        h = nnx.relu(self.bn1(self.conv1(x, rngs=rngs)))
        h = self.bn2(self.conv2(h, rngs=rngs))
        s = x if self.shortcut_conv is None else self.shortcut_bn(self.shortcut_conv(x, rngs=rngs))
        return nnx.relu(h + s)


class ResNet(nnx.Module):
    """ResNet for 32x32 inputs (CIFAR variant): 3x3 stem (stride 1, no max pool),
    four stages of basic blocks (64, 128, 256, 512 channels x width; stride 2
    from stage 2), global average pool, CrossbarLinear classifier."""

    def __init__(
        self,
        blocks_per_stage: Sequence[int] = (2, 2, 2, 2),
        num_classes: int = 10,
        *,
        in_channels: int = 3,
        width: float = 1.0,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        _check_width(width)
        c0 = _scale(64, width)
        self.stem = CrossbarConv(in_channels, c0, 3, padding=1, use_bias=False, param_dtype=param_dtype, rngs=rngs)
        self.stem_bn = nnx.BatchNorm(c0, param_dtype=param_dtype, rngs=rngs)
        blocks, c = [], c0
        for stage, n in enumerate(blocks_per_stage):
            cout = _scale(64 * 2**stage, width)
            for b in range(n):
                stride = 2 if (stage > 0 and b == 0) else 1
                blocks.append(BasicBlock(c, cout, stride, param_dtype=param_dtype, rngs=rngs))
                c = cout
        self.blocks = nnx.List(blocks)
        self.classifier = CrossbarLinear(c, num_classes, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        """``x (B, H, W, C) -> logits (B, num_classes)``; H, W >= 8 (three stride-2 stages)."""
        _check_image(x, 8, "ResNet (three stride-2 stages)")
        x = nnx.relu(self.stem_bn(self.stem(x, rngs=rngs)))
        for block in self.blocks:
            x = block(x, rngs=rngs)
        x = jnp.mean(x, axis=(1, 2))
        return self.classifier(x, rngs=rngs)


def resnet18(
    num_classes: int = 10, *, in_channels: int = 3, width: float = 1.0, param_dtype=jnp.float32, rngs: nnx.Rngs
) -> ResNet:
    """ResNet18 (CIFAR variant): 17 conv layers (+3 1x1 shortcuts) + 1 linear on crossbars.

    Args:
      num_classes, in_channels, width, param_dtype, rngs: as :func:`vgg11`.

    Returns:
      A :class:`ResNet`: ``x (B, H, W, C) -> logits (B, num_classes)``, ``H, W >= 8``.

    Example:
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> model = models.resnet18(10, width=1 / 16, rngs=nnx.Rngs(0))
      >>> len(layers.crossbar_layers(model)), model.classifier.in_features
      (21, 32)
    """
    return ResNet((2, 2, 2, 2), num_classes, in_channels=in_channels, width=width, param_dtype=param_dtype, rngs=rngs)


# ---------------------------------------------------------------------------
# a vision transformer, written in plain Flax and converted
# ---------------------------------------------------------------------------
class EncoderBlock(nnx.Module):
    """Pre-norm transformer encoder block: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))`` (GELU)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, *, param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(dim, param_dtype=param_dtype, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads=heads, in_features=dim, decode=False, param_dtype=param_dtype, rngs=rngs
        )
        self.norm2 = nnx.LayerNorm(dim, param_dtype=param_dtype, rngs=rngs)
        self.mlp_in = nnx.Linear(dim, mlp_dim, param_dtype=param_dtype, rngs=rngs)
        self.mlp_out = nnx.Linear(mlp_dim, dim, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp_out(nnx.gelu(self.mlp_in(self.norm2(x))))


class ViT(nnx.Module):
    """Vision transformer (Dosovitskiy et al., ICLR 2021) for small images, in plain Flax layers.

    ``x (B, H, W, C)`` is cut into ``patch x patch`` tokens (``nnx.Linear`` patch
    embedding of the channel-major pixels), a learned class token and position
    embedding are added, ``depth`` pre-norm :class:`EncoderBlock` s follow, and the
    class token's final ``LayerNorm`` feeds an ``nnx.Linear`` head. This class has
    no crossbar layers: it is written as a user would write it; :func:`vit`
    returns it converted (``crossjax.convert``), its patch embedding, attention
    projections (``nnx.LinearGeneral``), MLPs and head on crossbars.
    For the 8x8 offline digits: 4x4 patches, 4 tokens (plus the class token).
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        image_size: int = 8,
        in_channels: int = 1,
        patch: int = 4,
        dim: int = 32,
        depth: int = 2,
        heads: int = 4,
        mlp_dim: int = 64,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        for name, v in (
            ("image_size", image_size),
            ("in_channels", in_channels),
            ("patch", patch),
            ("dim", dim),
            ("depth", depth),
            ("heads", heads),
            ("mlp_dim", mlp_dim),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"ViT: {name} must be a positive int, got {v!r}")
        if image_size % patch:
            raise ValueError(f"ViT: patch={patch} must divide image_size={image_size}")
        if dim % heads:
            raise ValueError(f"ViT: heads={heads} must divide dim={dim}")
        self.image_size, self.patch, self.in_channels = image_size, patch, in_channels
        tokens = (image_size // patch) ** 2
        self.embed = nnx.Linear(in_channels * patch * patch, dim, param_dtype=param_dtype, rngs=rngs)
        init = nnx.initializers.normal(0.02)
        self.cls_token = nnx.Param(init(rngs.params(), (1, 1, dim), param_dtype))
        self.position = nnx.Param(init(rngs.params(), (1, tokens + 1, dim), param_dtype))
        self.blocks = nnx.List(
            [EncoderBlock(dim, heads, mlp_dim, param_dtype=param_dtype, rngs=rngs) for _ in range(depth)]
        )
        self.norm = nnx.LayerNorm(dim, param_dtype=param_dtype, rngs=rngs)
        self.head = nnx.Linear(dim, num_classes, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``x (B, H, W, C)`` or flat ``(B, H*W*C)`` (the offline digits) ``-> logits (B, num_classes)``."""
        S, C = self.image_size, self.in_channels
        if x.ndim == 2 and x.shape[1] == S * S * C:
            x = x.reshape(x.shape[0], S, S, C)
        if x.ndim != 4 or x.shape[1] != self.image_size or x.shape[2] != self.image_size:
            raise ValueError(f"x must be images (B, {self.image_size}, {self.image_size}, C), got shape {x.shape}")
        B, H, W, C = x.shape
        p = self.patch
        t = x.reshape(B, H // p, p, W // p, p, C).transpose(0, 1, 3, 5, 2, 4).reshape(B, -1, C * p * p)
        t = self.embed(t)
        t = jnp.concatenate([jnp.broadcast_to(self.cls_token[...], (B, 1, t.shape[-1])).astype(t.dtype), t], axis=1)
        t = t + self.position[...]
        for block in self.blocks:
            t = block(t)
        return self.head(self.norm(t[:, 0]))


def vit(
    num_classes: int = 10,
    *,
    in_channels: int = 1,
    image_size: int = 8,
    rules=(),
    param_dtype=jnp.float32,
    rngs: nnx.Rngs,
    **kwargs,
) -> nnx.Module:
    """A :class:`ViT` converted to crossbars (``crossjax.convert`` with ``rules``).

    The hardware streams of its crossbar layers are seeded from ``rngs``'s
    ``"hardware"`` stream when it has one (else 0). ``kwargs`` go to :class:`ViT`.

    Args:
      num_classes: number of output logits.
      in_channels: input image channels ``C``.
      image_size: image height and width ``S`` (square images).
      rules: conversion rules (``crossjax.convert``; ``()``: every product on crossbars).
      param_dtype: dtype of the parameters.
      rngs: ``nnx.Rngs`` (``params``; ``hardware`` seeds the crossbar layers' streams).
      **kwargs: :class:`ViT` options (``patch``, ``dim``, ``depth``, ``heads``, ``mlp_dim``).

    Returns:
      The converted model: ``x (B, S, S, C)`` or flat ``(B, S*S*C)`` ``-> logits (B, num_classes)``.

    Example:
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> model = models.vit(10, depth=1, dim=8, heads=2, mlp_dim=8, rngs=nnx.Rngs(0))
      >>> type(model).__name__, len(layers.crossbar_layers(model))
      ('ViT', 8)
    """
    model = ViT(
        num_classes, image_size=image_size, in_channels=in_channels, param_dtype=param_dtype, rngs=rngs, **kwargs
    )
    try:
        seed = int(jax.random.randint(rngs["hardware"](), (), 0, 2**31 - 1))
    except (AttributeError, KeyError):
        seed = 0
    return convert(model, rules=rules, seed=seed)


# ---------------------------------------------------------------------------
# digital -> crossbar
# ---------------------------------------------------------------------------
def _digital_layers(model):
    kinds = (nnx.Linear, nnx.Conv, nnx.BatchNorm, CrossbarLinear, CrossbarConv)
    return [(p, n) for p, n in nnx.iter_graph(model) if isinstance(n, kinds)]


def _as_pair(v):
    if v is None:
        return (1, 1)
    if isinstance(v, int):
        return (v, v)
    return tuple(v)


def _name(path):
    return "/".join(map(str, path)) or "<root>"


def from_digital(digital, model: nnx.Module | None = None, **convert_kwargs) -> nnx.Module:
    """A crossbar model from a trained digital one.

    Without ``model``: ``crossjax.convert(digital, **convert_kwargs)`` (a copy of
    ``digital`` with its products on crossbars, same parameter paths; the usual
    way for any Flax model). With ``model`` (a crossjax model of the same
    architecture), the digital weights are copied into it (in place; returns it).
    Then ``digital`` is either

    * an ``nnx.Module`` built from ``nnx.Linear`` / ``nnx.Conv`` / ``nnx.BatchNorm``
      (or crossbar layers). Its weight layers are paired, in ``nnx.iter_graph``
      order, with ``model``'s crossbar layers and batch norms; kinds and shapes
      must agree pair by pair (``nnx.Linear`` kernel ``(K, N)``, ``nnx.Conv``
      kernel ``(kh, kw, Cin/G, Cout)`` are the crossbar layouts already); or
    * an ``nnx.State`` / nested dict with ``model``'s paths (e.g.
      ``nnx.state(other_model)`` or a restored checkpoint), loaded with
      ``nnx.update``. Arrays must match the model's shapes.

    Args:
      digital: the trained digital model, or a state / nested dict of ``model``'s paths.
      model: optional crossjax model of the same architecture to copy into.
      **convert_kwargs: ``crossjax.convert`` options (only without ``model``).

    Returns:
      The crossbar model (``model`` itself when given, else a converted copy of ``digital``).

    Raises:
      ValueError: ``convert_kwargs`` with ``model``, or layers, paths or shapes that do not match.

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import layers, models
      >>> class Digital(nnx.Module):
      ...     def __init__(self, rngs):
      ...         self.a, self.b = nnx.Linear(8, 4, rngs=rngs), nnx.Linear(4, 2, rngs=rngs)
      ...     def __call__(self, x):
      ...         return self.b(nnx.relu(self.a(x)))
      >>> digital, x = Digital(nnx.Rngs(1)), jnp.ones((3, 8))
      >>> model = models.from_digital(digital, models.MLP(8, (4,), 2, rngs=nnx.Rngs(0)))
      >>> bool(jnp.allclose(model(x), digital(x), atol=1e-5))
      True
      >>> converted = models.from_digital(digital)
      >>> len(layers.crossbar_layers(converted)), bool(jnp.allclose(converted(x), digital(x), atol=1e-5))
      (2, True)
    """
    if model is None:
        return convert(digital, **convert_kwargs)
    if convert_kwargs:
        raise ValueError(f"from_digital: {sorted(convert_kwargs)} apply to conversion only (model=None)")
    if isinstance(digital, nnx.Module):
        src = _digital_layers(digital)
        dst = [(p, n) for p, n in nnx.iter_graph(model) if isinstance(n, (CrossbarLinear, CrossbarConv, nnx.BatchNorm))]
        if not dst or not crossbar_layers(model):
            raise ValueError("model: has no crossbar layers to receive weights")
        if len(src) != len(dst):
            raise ValueError(
                f"digital: has {len(src)} Linear/Conv/BatchNorm layers but model has {len(dst)} "
                "crossbar/BatchNorm layers; build the crossbar model with the same architecture"
            )
        pairs = []
        for (ps, s), (pd, d) in zip(src, dst):
            linear_ok = isinstance(d, CrossbarLinear) and isinstance(s, (nnx.Linear, CrossbarLinear))
            conv_ok = isinstance(d, CrossbarConv) and isinstance(s, (nnx.Conv, CrossbarConv))
            bn_ok = isinstance(d, nnx.BatchNorm) and isinstance(s, nnx.BatchNorm)
            if not (linear_ok or conv_ok or bn_ok):
                raise ValueError(
                    f"digital: layer {_name(ps)} ({type(s).__name__}) pairs with model layer "
                    f"{_name(pd)} ({type(d).__name__}); the architectures differ"
                )
            names = ("scale", "bias", "mean", "var") if bn_ok else ("kernel", "bias")
            for n in names:
                sv, dv = getattr(s, n, None), getattr(d, n, None)
                if (sv is None) != (dv is None):
                    raise ValueError(
                        f"digital: {_name(ps)}.{n} is {'missing' if sv is None else 'present'} but "
                        f"model {_name(pd)}.{n} is {'missing' if dv is None else 'present'} (use_bias must agree)"
                    )
                if sv is not None and sv.get_value().shape != dv.get_value().shape:
                    raise ValueError(
                        f"digital: {_name(ps)}.{n} has shape {sv.get_value().shape} but model "
                        f"{_name(pd)}.{n} has {dv.get_value().shape}"
                    )
                if sv is not None:
                    pairs.append((dv, sv.get_value()))
            if conv_ok:
                for attr in ("strides", "kernel_dilation", "feature_group_count"):
                    a, b = _as_pair(getattr(s, attr)), _as_pair(getattr(d, attr))
                    if a != b:
                        raise ValueError(f"digital: {_name(ps)}.{attr}={a} but model {_name(pd)}.{attr}={b}")
        for dv, value in pairs:
            dv[...] = jnp.asarray(value, dtype=dv.get_value().dtype)
        return model
    # a state / nested dict with the model's paths
    target = nnx.state(model)
    flat_target = dict(nnx.to_flat_state(target))
    state = digital if isinstance(digital, nnx.State) else nnx.State(digital)
    flat = list(nnx.to_flat_state(state))
    if not flat:
        raise ValueError("digital: the given state is empty")
    for path, v in flat:
        value = v.get_value() if isinstance(v, nnx.Variable) else v
        if path not in flat_target:
            raise ValueError(f"digital: path {_name(path)} does not exist in the crossbar model")
        if jnp.shape(value) != jnp.shape(flat_target[path].get_value()):
            raise ValueError(
                f"digital: {_name(path)} has shape {jnp.shape(value)} but the model expects "
                f"{jnp.shape(flat_target[path].get_value())}"
            )
    updates = []
    for path, v in flat:
        value = v.get_value() if isinstance(v, nnx.Variable) else v
        var = flat_target[path]
        updates.append((path, var.replace(jnp.asarray(value, dtype=var.get_value().dtype))))
    nnx.update(model, nnx.from_flat_state(updates))
    return model
