"""Training with optax: digital pre-training and non-ideality-aware fine-tuning.

The objective is the mean softmax cross-entropy of the logits ``f(x)`` against
integer labels ``y``: ``L = -mean_b log softmax(f(x_b))[y_b]``. One step is
``params <- params + optax_update(grad L)`` under ``nnx.jit`` (compiled once
per shape and mode).

* **Digital pre-training**: the model's crossbar layers in ``"digital"`` mode
  (``x @ W``).
* **Non-ideality-aware fine-tuning** (:func:`finetune`): the layers in
  ``"train"`` mode with a ``HardwareConfig``; every forward pass draws fresh
  device noise from the model's ``nnx.Rngs`` stream ``"hardware"`` and runs
  the exact IR-drop circuit and the converters, and gradients flow through
  them (straight-through for quantizers, implicit differentiation for the
  circuit). The weights learn to be robust to the sampled non-idealities.

Runs are step-indexed and deterministic: step ``s`` uses batch ``s mod nb`` of
epoch ``s // nb`` in the order ``data.epoch_permutation(seed, epoch)``; the
RNG state lives in the model (``nnx.Rngs``) and the optimizer state in the
``nnx.Optimizer``. With ``checkpoint_path`` set, :func:`train` saves every
``checkpoint_every`` steps and at the end (atomically) and, when the file
exists, resumes from it, so an interrupted run finishes with bit-identical
parameters to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct
from tqdm.auto import tqdm

from crossjax import checkpoint as ckpt
from crossjax import data as data_lib
from crossjax import layers, pruning

OPTIMIZERS = ("adam", "adamw", "sgd")


@struct.dataclass
class TrainConfig:
    """Optimisation settings (all static: they change the compiled step).

    ``steps``: optimizer steps; ``batch_size``: examples per step;
    ``learning_rate``: peak step size (cosine-decayed to
    ``final_lr_fraction * learning_rate`` over ``steps``);
    ``optimizer``: "adam", "adamw" (decoupled ``weight_decay``) or "sgd"
    (momentum 0.9); ``seed``: data-order seed; ``checkpoint_every``: steps
    between checkpoints when a checkpoint path is given.
    """

    steps: int = struct.field(pytree_node=False, default=1000)
    batch_size: int = struct.field(pytree_node=False, default=64)
    learning_rate: float = struct.field(pytree_node=False, default=3e-3)
    final_lr_fraction: float = struct.field(pytree_node=False, default=0.05)
    optimizer: str = struct.field(pytree_node=False, default="adam")
    weight_decay: float = struct.field(pytree_node=False, default=1e-4)
    seed: int = struct.field(pytree_node=False, default=0)
    checkpoint_every: int = struct.field(pytree_node=False, default=200)

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"TrainConfig.{name}={v!r} must be a positive integer")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainConfig.learning_rate={self.learning_rate!r} must be > 0")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"TrainConfig.final_lr_fraction={self.final_lr_fraction!r} must lie in [0, 1]")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer={self.optimizer!r}; choose one of {OPTIMIZERS}")
        if self.weight_decay < 0:
            raise ValueError(f"TrainConfig.weight_decay={self.weight_decay!r} must be >= 0")

    def replace(self, **kw) -> "TrainConfig":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"TrainConfig.from_dict: unknown keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The optax transformation for ``config`` (cosine-decayed learning rate)."""
    schedule = optax.cosine_decay_schedule(
        config.learning_rate, decay_steps=config.steps, alpha=config.final_lr_fraction
    )
    if config.optimizer == "adam":
        return optax.adam(schedule)
    if config.optimizer == "adamw":
        return optax.adamw(schedule, weight_decay=config.weight_decay)
    return optax.sgd(schedule, momentum=0.9)


def new_optimizer(model: nnx.Module, config: TrainConfig, *, masks=None, transforms=()) -> nnx.Optimizer:
    """An ``nnx.Optimizer`` over the model's ``nnx.Param`` leaves.

    ``transforms``: optax transforms placed before the optimizer (e.g. the WCT
    constraint, ``mitigation.add_weight_constraint``); ``masks``: fixed pruning
    masks (``pruning.prune_model``): :func:`crossjax.pruning.masked_updates`
    goes last in the chain, so pruned weights never move.
    """
    chain = [*transforms, make_optimizer(config)]
    if masks is not None:
        chain.append(pruning.masked_updates(masks))
    return nnx.Optimizer(model, optax.chain(*chain) if len(chain) > 1 else chain[0], wrt=nnx.Param)


def cross_entropy_loss(model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of ``model(x)`` against integer labels ``y``."""
    logits = model(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@dataclasses.dataclass(frozen=True)
class Regularized:
    """The loss ``base(model, x, y) + regularizer(nnx.state(model, nnx.Param))`` (hashable, so it
    can be the static ``loss_fn`` of :func:`train_step`; ``regularizer``: e.g.
    ``pruning.model_dub_regularizer`` scaled by its strength)."""

    regularizer: Any
    base: Any = cross_entropy_loss

    def __call__(self, model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
        return self.base(model, x, y) + self.regularizer(nnx.state(model, nnx.Param))


@nnx.jit(static_argnames=("loss_fn",))
def train_step(
    model: nnx.Module, optimizer: nnx.Optimizer, x: jax.Array, y: jax.Array, loss_fn=cross_entropy_loss
) -> jax.Array:
    """One optimizer step on batch ``(x, y)`` of ``loss_fn(model, x, y)``; returns the batch loss."""
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads)
    return loss


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` did: final ``step``, the step it started from
    (``resumed_from``, 0 for a fresh run) and the per-step ``losses`` it ran."""

    step: int
    resumed_from: int
    losses: np.ndarray


def train(
    model: nnx.Module,
    dataset: data_lib.Dataset,
    config: TrainConfig,
    *,
    optimizer: nnx.Optimizer | None = None,
    hardware=None,
    checkpoint_path: str | os.PathLike | None = None,
    stop_at: int | None = None,
    progress: bool = True,
    description: str = "train",
    fingerprint: str | None = None,
    loss_fn=None,
    masks=None,
    transforms=(),
    regularizer=None,
) -> TrainResult:
    """Train ``model`` in place on ``dataset`` for ``config.steps`` steps.

    Step ``s`` runs batch ``s mod nb`` of epoch ``s // nb`` (order
    ``data.epoch_permutation(config.seed, epoch)``); the loss is the mean
    softmax cross-entropy unless ``loss_fn`` replaces it. The model's current
    mode is used as is (``layers.set_mode``; :func:`finetune` sets the
    hardware-aware one).

    Args:
      model: an nnx model, trained in place.
      dataset: a ``data.Dataset`` (``x`` ``(n, ...)``, integer ``y`` ``(n,)``).
      config: the :class:`TrainConfig` (steps, batch size, schedule, optimizer, data seed).
      optimizer: an ``nnx.Optimizer`` to continue with (default :func:`new_optimizer`).
      hardware: recorded in the checkpoint only.
      checkpoint_path: resume from this file when it exists; save to it every
        ``config.checkpoint_every`` steps and at the end (atomically). A
        checkpoint is resumed only when its ``fingerprint`` and its training
        settings (every ``TrainConfig`` field but ``steps`` and
        ``checkpoint_every``, with no more steps done than ``config.steps``)
        match, else ``ValueError``.
      stop_at: end early after this step, saving a checkpoint (simulates an interruption).
      progress: show a tqdm bar; ``description`` labels it.
      fingerprint: stored in the checkpoint (e.g. a study's).
      loss_fn: ``loss_fn(model, x, y) -> scalar`` instead of the cross-entropy
        (e.g. :func:`crossjax.cost.energy_aware_loss`); hashable (a function or a
        frozen dataclass: a static argument of the compiled step) and not recorded
        in a checkpoint: put it in ``fingerprint``.
      masks: fixed pruning masks (``pruning.prune_model``): the pruned weights are
        zeroed before the first step and stay exactly 0 (``masked_updates`` ends
        the optimizer chain).
      transforms: optax transforms before the optimizer (e.g. the WCT constraint,
        ``mitigation.add_weight_constraint``). ``masks`` and ``transforms`` build the
        optimizer (:func:`new_optimizer`), so they are refused with an explicit
        ``optimizer``; neither is recorded in a checkpoint.
      regularizer: ``regularizer(params) -> scalar`` added to the loss
        (:class:`Regularized`; ``params = nnx.state(model, nnx.Param)``).

    Returns:
      A :class:`TrainResult`: the final ``step``, the step it resumed from and the
      per-step losses of this call.

    Example:
      >>> from flax import nnx
      >>> from crossjax import data, models, training
      >>> ds = data.load_dataset("digits", split="train", flatten=True)
      >>> model = models.MLP(64, (16,), 10, rngs=nnx.Rngs(0))
      >>> r = training.train(model, ds, training.TrainConfig(steps=20, batch_size=32), progress=False)
      >>> r.step, r.losses.shape, bool(r.losses[-1] < r.losses[0])
      (20, (20,), True)
    """
    if optimizer is None:
        optimizer = new_optimizer(model, config, masks=masks, transforms=transforms)
    elif masks is not None or transforms:
        raise ValueError(
            "train: masks and transforms build the optimizer; pass them to new_optimizer "
            "(optimizer=new_optimizer(model, config, masks=..., transforms=...)) or drop optimizer"
        )
    if masks is not None:
        pruning.apply_model_masks(model, masks)
    if regularizer is not None:
        loss_fn = Regularized(regularizer, loss_fn or cross_entropy_loss)
    start = 0
    if checkpoint_path is not None and os.path.exists(checkpoint_path):
        _check_resumable(checkpoint_path, config, fingerprint)
        meta = ckpt.restore_checkpoint(checkpoint_path, model=model, optimizer=optimizer)
        start = int(meta["step"])
    end = config.steps if stop_at is None else min(int(stop_at), config.steps)
    if end < start:
        end = start
    x_all, y_all = dataset.x, dataset.y
    nb = data_lib.num_batches(len(dataset), config.batch_size)
    if nb == 0:
        raise ValueError(
            f"train: TrainConfig.batch_size={config.batch_size} exceeds "
            f"the {len(dataset)} examples of {dataset.name!r}; lower it"
        )

    def save(step):
        if checkpoint_path is not None:
            ckpt.save_checkpoint(
                checkpoint_path,
                model=model,
                optimizer=optimizer,
                step=step,
                hardware=hardware,
                extra={"data_seed": config.seed, "train_config": config.to_dict(), "fingerprint": fingerprint},
            )

    losses = []
    step = start
    with tqdm(total=config.steps, initial=start, desc=description, disable=not progress, leave=False) as bar:
        while step < end:
            epoch, b = divmod(step, nb)
            n_this = min(nb - b, end - step)
            for xb, yb in data_lib.batches(x_all, y_all, config.batch_size, seed=config.seed, epoch=epoch, start=b):
                losses.append(
                    train_step(
                        model, optimizer, jnp.asarray(xb), jnp.asarray(yb), loss_fn=loss_fn or cross_entropy_loss
                    )
                )
                step += 1
                bar.update(1)
                if step % config.checkpoint_every == 0 and step < end:
                    save(step)
                n_this -= 1
                if n_this == 0:
                    break
    if end > start or (checkpoint_path is not None and not os.path.exists(checkpoint_path)):
        save(step)
    arr = np.asarray(jnp.stack(losses)) if losses else np.zeros((0,))
    return TrainResult(step=step, resumed_from=start, losses=arr)


def _check_resumable(path, config: TrainConfig, fingerprint) -> None:
    """Refuse to resume a checkpoint written by another run (``ValueError`` naming the difference)."""
    _, meta = ckpt.read_checkpoint(path)
    extra = meta.get("extra", {})
    fix = "delete it, pass --overwrite, or use another checkpoint_path / --out"
    if extra.get("fingerprint") != fingerprint:
        raise ValueError(
            f"train: checkpoint {os.fspath(path)!r} was written by another run (fingerprint "
            f"{extra.get('fingerprint')!r}, this run {fingerprint!r}); {fix}."
        )
    saved = dict(extra.get("train_config") or {})
    now = config.to_dict()
    differ = sorted(
        k for k in set(saved) | set(now) if k not in ("steps", "checkpoint_every") and saved.get(k) != now.get(k)
    )
    if differ:
        raise ValueError(
            f"train: checkpoint {os.fspath(path)!r} was written with other training settings "
            f"({', '.join(f'{k}: {saved.get(k)!r} vs {now.get(k)!r}' for k in differ)}); {fix}."
        )
    if int(meta.get("step", 0)) > config.steps:
        raise ValueError(
            f"train: checkpoint {os.fspath(path)!r} has already trained {meta['step']} steps, more "
            f"than config.steps={config.steps}; {fix}."
        )


def finetune(model: nnx.Module, dataset: data_lib.Dataset, config: TrainConfig, hardware, **kwargs) -> TrainResult:
    """Non-ideality-aware fine-tuning: train in ``"train"`` mode under ``hardware``.

    Each step samples fresh non-idealities (stream ``"hardware"`` of the
    model's ``nnx.Rngs``) and differentiates through the crossbar (exact IR
    drop by implicit differentiation, straight-through quantizers); the model
    is put back in ``"digital"`` mode afterwards, also when training fails.

    Args:
      model: an nnx model of crossbar layers, trained in place.
      dataset, config: as :func:`train`.
      hardware: the ``HardwareConfig`` in the loop.
      **kwargs: the other arguments of :func:`train`.

    Returns:
      The :class:`TrainResult` of :func:`train`.

    Example:
      >>> from flax import nnx
      >>> from crossjax import data, hardware, models, training
      >>> ds = data.load_dataset("digits", split="train", flatten=True).take(64)
      >>> model = models.MLP(64, (8,), 10, rngs=nnx.Rngs(params=0, hardware=1))
      >>> noisy = hardware.HardwareConfig().set({"device.write_noise.sigma": 0.05})  # 5 % programming noise
      >>> r = training.finetune(model, ds, training.TrainConfig(steps=2, batch_size=32), noisy, progress=False)
      >>> r.step, model.layers[0].mode
      (2, 'digital')
    """
    layers.set_mode(model, "train", hardware=hardware)
    try:
        return train(
            model, dataset, config, hardware=hardware, description=kwargs.pop("description", "finetune"), **kwargs
        )
    finally:
        layers.set_mode(model, "digital")
