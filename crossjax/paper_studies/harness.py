"""The bookkeeping every seed study shares: resumable results, masked training, Monte Carlo cells.

A study run owns a directory ``out``:

* ``results.json`` (schema of docs/results.md plus study sections), rewritten
  atomically (temp file + ``os.replace``) after every finished cell;
* ``model_<variant>.npz``: the parameters of every trained model variant, so a
  killed run resumes without retraining what it finished;
* ``report.md`` and PNG plots, written at the end.

A *cell* is one (model variant, hardware config) pair, named
``"<variant>@<config>"``; its accuracies come from
``crossjax.montecarlo.evaluate`` on the Monte Carlo keys
``crossjax.study.config_keys(seed, cell_name, S)``. A rerun with the same
arguments (fingerprint of study name, quick, seed, samples) skips every cell
already recorded; ``meta["computed"]`` counts the cells and models this
invocation computed (0 on a complete rerun). A rerun with other arguments
raises ``ValueError`` naming ``--overwrite``; ``overwrite=True`` (``crossjax
study --overwrite``) first deletes what an earlier run of a study wrote there
(``results.json``, ``report.md``, the study's plots, every ``model_*.npz`` that
:func:`save_params` wrote) and recomputes everything; other files are left alone.

Training (:func:`train_masked`) is Adam with a cosine learning-rate decay on
``cross_entropy + regularizer(params)``; with ``masks`` the pruned weights are
zeroed first and :func:`crossjax.pruning.masked_updates` (last in the optax
chain) keeps them exactly 0 for every step.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import time
import weakref
from typing import TYPE_CHECKING, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from crossjax import checkpoint as ckpt
from crossjax import data as data_lib
from crossjax import montecarlo, pruning, report
from crossjax import study as study_lib

if TYPE_CHECKING:
    from crossjax.paper_studies import tasks

__all__ = ["StudyRun", "Setup", "setup", "train_masked", "save_params", "load_params", "md_table"]


WEIGHTS = (nnx.Param, nnx.BatchStat)  # what a trained network is: parameters and batch-norm statistics


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_params(path: str, model: nnx.Module, fingerprint: str = "") -> None:
    """Write the parameters and batch-norm statistics of ``model`` to ``path`` (npz, atomically),
    with the run's ``fingerprint`` and a content hash that :func:`load_params` verifies."""
    arrays = [np.asarray(x) for x in jax.tree.leaves(nnx.as_pure(nnx.state(model, WEIGHTS)))]
    buf = io.BytesIO()
    np.savez(buf, *arrays, fingerprint=np.asarray(fingerprint), sha256=np.asarray(_digest(arrays)))
    ckpt.atomic_write_bytes(path, buf.getvalue())


def load_params(path: str, model: nnx.Module, fingerprint: str = "") -> nnx.Module:
    """Load weights saved by :func:`save_params` into ``model`` (same architecture); returns it.

    Raises ``ValueError`` naming the file when it was written by another run
    (``fingerprint``), is corrupt or truncated, or holds non-finite weights.
    """
    state = nnx.state(model, WEIGHTS)
    pure = nnx.as_pure(state)
    treedef = jax.tree.structure(pure)
    fix = "delete it, choose another out directory or pass --overwrite"
    try:
        with np.load(path) as f:
            arrays = [f[f"arr_{i}"] for i in range(treedef.num_leaves)]
            saved_fp, digest = str(f["fingerprint"]), str(f["sha256"])
    except Exception as e:  # zip, pickle and key errors on bad bytes
        raise ValueError(f"{path!r} is corrupt, truncated or of an older format ({type(e).__name__}); {fix}.") from None
    if saved_fp != fingerprint:
        raise ValueError(f"{path!r} was written by a run with other arguments (fingerprint {saved_fp!r}, this "
                         f"run {fingerprint!r}); {fix}.")
    if _digest(arrays) != digest:
        raise ValueError(f"{path!r} is corrupt (content hash mismatch); {fix}.")
    if not all(np.all(np.isfinite(a)) for a in arrays if np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{path!r} holds non-finite weights (a diverged run?); {fix}.")
    nnx.update(model, jax.tree.unflatten(treedef, [jnp.asarray(a) for a in arrays]))
    return model


def _saved_by_save_params(path: str) -> bool:
    """Whether ``path`` is an npz file :func:`save_params` wrote (its ``fingerprint`` and ``sha256``)."""
    try:
        with np.load(path) as f:
            return {"fingerprint", "sha256"} <= set(getattr(f, "files", ()))
    except Exception:  # not an npz file: not ours
        return False


def discard(out: str, files=()) -> list[str]:
    """Delete what a study run wrote into ``out`` (``results.json``, ``report.md``, the ``files``
    it names, e.g. its plots, and the ``model_*.npz`` files of :func:`save_params`); returns the
    deleted names. Nothing else in ``out`` is touched."""
    gone = []
    names = [study_lib.RESULTS, study_lib.REPORT, *files]
    names += sorted(n for n in os.listdir(out) if n.startswith("model_") and n.endswith(".npz")
                    and _saved_by_save_params(os.path.join(out, n)))
    for name in dict.fromkeys(names):
        path = os.path.join(out, name)
        if os.path.isfile(path):
            os.unlink(path)
            gone.append(name)
    return gone


def train_masked(model: nnx.Module, ds: data_lib.Dataset, *, steps: int, learning_rate: float,
                 batch_size: int = 64, seed: int = 0, masks=None, regularizer=None,
                 pre=()) -> np.ndarray:
    """Train ``model`` in place; returns the per-step losses.

    loss = mean softmax cross-entropy + ``regularizer(params)`` (``params``:
    ``nnx.state(model, nnx.Param)``; ``None``: 0). ``pre``: optax transforms
    placed before Adam (e.g. the WCT constraint). ``masks``: fixed pruning
    masks (pruned weights are zeroed and stay exactly 0).
    """
    schedule = optax.cosine_decay_schedule(learning_rate, decay_steps=steps, alpha=0.05)
    chain = [*pre, optax.adam(schedule)]
    if masks is not None:
        pruning.apply_model_masks(model, masks)
        chain.append(pruning.masked_updates(masks))
    opt = nnx.Optimizer(model, optax.chain(*chain), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, x, y):
        def loss_fn(model):
            logits = model(x)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            if regularizer is not None:
                loss = loss + regularizer(nnx.state(model, nnx.Param))
            return loss
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        opt.update(model, grads)
        return loss

    if data_lib.num_batches(len(ds), batch_size) == 0:
        raise ValueError(f"train_masked: batch_size={batch_size} exceeds the {len(ds)} "
                         f"examples of {ds.name!r}; lower it")
    losses, done, epoch = [], 0, 0
    while done < steps:
        for xb, yb in data_lib.batches(ds.x, ds.y, batch_size, seed=seed, epoch=epoch):
            losses.append(step(model, opt, jnp.asarray(xb), jnp.asarray(yb)))
            done += 1
            if done == steps:
                break
        epoch += 1
    return np.asarray(jnp.stack(losses)) if losses else np.zeros((0,))


class StudyRun:
    """One resumable run of a seed study in directory ``out`` (see the module docstring)."""

    def __init__(self, study: str, out, *, quick: bool, seed: int, samples: int,
                 dataset: str, model: str, progress: bool = False, extra: dict | None = None,
                 overwrite: bool = False, files=()):
        """``overwrite``: discard an earlier run's files in ``out`` (:func:`discard`; ``files``:
        the other names the study writes, e.g. its plots) and recompute everything."""
        import crossjax

        self.out = os.fspath(out)
        study_lib.check_out_dir(self.out)
        # held while this run lives: a second run into the same directory fails at once
        self._lock = ckpt.DirectoryLock(self.out).__enter__()
        weakref.finalize(self, self._lock.__exit__)
        self.seed, self.samples, self.progress = seed, samples, progress
        self.overwrite = bool(overwrite)
        if self.overwrite:
            try:
                discard(self.out, files)
            except OSError:
                self.close()
                raise
        self.t0 = time.perf_counter()
        args = {"study": study, "quick": quick, "seed": seed, "samples": samples,
                **(extra or {})}
        fp = hashlib.sha256(json.dumps({**args, "x64": bool(jax.config.jax_enable_x64),
                                        "crossjax": crossjax.__version__},
                                       sort_keys=True, default=str).encode()).hexdigest()[:16]
        self.fingerprint = fp
        self.path = os.path.join(self.out, study_lib.RESULTS)
        self.results = None
        if os.path.exists(self.path):
            self.results = study_lib.read_results(self.path)
            if self.results.get("meta", {}).get("fingerprint") != fp:
                self.close()
                raise ValueError(f"{study}: {self.path!r} was written with other arguments "
                                 f"(quick, seed, samples, settings, dataset or precision); pass "
                                 f"--overwrite (overwrite=True) to discard it and start afresh, or "
                                 f"choose another out directory")
        if self.results is None:
            self.results = {"digital": None, "configs": [], "variants": {},
                            "meta": {"study": study, "seed": seed, "dataset": dataset,
                                     "model": model, "versions": study_lib.versions(),
                                     "seconds": 0.0, "fingerprint": fp, "args": args,
                                     "complete": False}}
        self._previous = float(self.results["meta"].get("seconds", 0.0))
        self.results["meta"]["computed"] = 0
        self._cells = {c["name"]: c for c in self.results["configs"]}
        self._models = {}

    def close(self) -> None:
        """Release the output directory (also done by :meth:`finish` and when the run is collected)."""
        self._lock.__exit__()

    # ------------------------------------------------------------------ persistence
    def save(self) -> None:
        meta = self.results["meta"]
        meta["seconds"] = self._previous + time.perf_counter() - self.t0
        ckpt.atomic_write_text(self.path, json.dumps(study_lib.jsonable(self.results),
                                                     indent=1) + "\n")

    def model(self, variant: str, build, make):
        """The model of ``variant``: held from an earlier call of this run, else loaded
        from ``model_<variant>.npz`` into ``build()``, else ``make()`` (which returns
        the trained model) and saved. With ``overwrite`` a file this run did not write is
        never loaded (it is retrained and replaced)."""
        if variant in self._models:
            return self._models[variant]
        path = os.path.join(self.out, f"model_{variant}.npz")
        if os.path.exists(path) and not self.overwrite:
            m = load_params(path, build(), self.fingerprint)
        else:
            m = make()
            save_params(path, m, self.fingerprint)
            self.results["meta"]["computed"] += 1
        self._models[variant] = m
        return m

    def has(self, cell: str) -> bool:
        return cell in self._cells

    def cell(self, variant: str, config: str, hardware, model_fn, x, y, samples: int | None = None,
             calibration_x=None, layer_bits=None):
        """Evaluate (or read back) cell ``variant@config``; returns its record.

        ``model_fn()`` is called only when the cell must be computed.
        Deterministic hardware runs 1 sample. ``calibration_x`` (training inputs)
        sets calibrated ADC ranges (``adc.range="calibrated"``). ``layer_bits()``: for a
        model whose layers run on their own ADC bits (``layers.set_layer_hardware``), the
        ``{bits: tiles}`` they use, recorded as ``layer_adc_bits`` (``hardware`` then
        holds the other fields; its ``adc.bits`` is not what the layers read).
        """
        name = f"{variant}@{config}"
        if name in self._cells:
            return self._cells[name]
        S = samples or self.samples
        if not study_lib.is_stochastic(hardware):
            S = 1
        keys = study_lib.config_keys(self.seed, name, S)
        t = time.perf_counter()
        try:
            acc = montecarlo.evaluate(model_fn(), hardware, keys, x, y, batch_size=512,
                                      progress=False, calibration_x=calibration_x)["accuracy"]
        except montecarlo.NonFiniteLogits as e:
            raise montecarlo.NonFiniteLogits(f"config {name!r}: {e}") from None
        acc = np.asarray(acc, np.float64).reshape(-1)
        rec = {"name": name, "variant": variant, "config": config, "samples": int(S),
               "accuracy": study_lib.summarize(acc), "values": acc.tolist(),
               "seconds": time.perf_counter() - t,
               "hardware": study_lib.jsonable(hardware.to_dict())}
        if layer_bits is not None:
            rec["layer_adc_bits"] = layer_bits()
        self.results["configs"].append(rec)
        self._cells[name] = rec
        self.results["meta"]["computed"] += 1
        self.save()
        return rec

    def record(self, variant: str, config: str) -> dict | None:
        """The record of cell ``variant@config`` (``configs[]`` of the results), ``None`` before
        it is evaluated."""
        return self._cells.get(f"{variant}@{config}")

    def mean(self, variant: str, config: str) -> float:
        """Mean accuracy of an evaluated cell."""
        return self._cells[f"{variant}@{config}"]["accuracy"]["mean"]

    def finish(self, report_md: str) -> dict:
        """Mark the run complete, save ``results.json`` and write ``report.md``: ``report_md``
        followed by the definition of every hardware config and the wall time (``meta.seconds``)."""
        self.results["meta"]["complete"] = True
        self.save()
        labels, first = [], {}
        for c in self.results["configs"]:  # a config another variant reads with other settings gets its own line
            hw, name = c.get("hardware"), c.get("config", c["name"])
            first.setdefault(name, hw)
            labels.append((name if first[name] == hw else f"{name} ({c.get('variant', c['name'])})", hw))
        lines = [report_md.rstrip("\n"), *report.config_definitions(labels), "",
                 f"Wall time: {self.results['meta']['seconds']:.1f} s (all runs into this directory; "
                 "`results.json` `meta.seconds`)."]
        ckpt.atomic_write_text(os.path.join(self.out, study_lib.REPORT), "\n".join(lines) + "\n")
        self.close()
        return self.results


class Setup(NamedTuple):
    """What every seed study starts from (:func:`setup`)."""

    run: "StudyRun"
    task: "tasks.Task"
    x: np.ndarray          # test inputs (the first ``max_test``)
    y: np.ndarray          # test labels
    dense: Callable[[], nnx.Module]   # the digitally trained network (variant "dense", trained once)
    variant: Callable[[str, Callable[[], nnx.Module]], nnx.Module]   # rs.model(name, build, make)

    @property
    def train(self):
        return self.task.train


def setup(study: str, out, st: dict, *, quick: bool, seed: int, samples: int, progress: bool,
          dataset: str = "digits", data_dir: str | None = None, overwrite: bool = False,
          files=()) -> Setup:
    """A :class:`StudyRun` on ``dataset`` (:mod:`.tasks`: an MLP on digits/MNIST, VGG11 on CIFAR).

    ``st`` (the study's settings) gives the network (``hidden`` or ``width``),
    ``train_steps`` (Adam ``learning_rate``, default 3e-3, cosine decay, data
    seed ``seed``, ``batch_size`` default 64) and optionally ``max_test``.
    Records the dense network's digital accuracy on first use. ``overwrite``
    and ``files`` (the study's plots): see :class:`StudyRun`.
    """
    from crossjax.paper_studies import tasks

    task = tasks.load(dataset, st, seed, data_dir)
    rs = StudyRun(study, out, quick=quick, seed=seed, samples=samples, dataset=dataset,
                  model=task.model, progress=progress, overwrite=overwrite, files=files,
                  extra={"dataset": dataset, "settings": st,
                         "data_dir": None if data_dir is None else os.path.abspath(data_dir)})

    def variant(name, make):
        return rs.model(name, task.build, make)

    def dense_make():
        m = task.build()
        train_masked(m, task.train, steps=st["train_steps"], learning_rate=st.get("learning_rate", 3e-3),
                     batch_size=st.get("batch_size", 64), seed=seed)
        return m

    def dense():
        return variant("dense", dense_make)

    n = st.get("max_test")
    x, y = task.test.x[:n], task.test.y[:n]
    if rs.results["digital"] is None:
        rs.results["digital"] = {"accuracy": montecarlo.digital_accuracy(dense(), x, y)}
        rs.save()
    return Setup(rs, task, x, y, dense, variant)


def error_bar(record: dict, test_examples: int | None = None) -> float:
    """Half-width of a cell's error bar (accuracy fraction): its 95 % interval over Monte Carlo
    samples, or, for one sample, the test set's binomial standard error when ``test_examples``
    is given (else 0)."""
    a = record["accuracy"]
    ci = a.get("ci95") or (study_lib.summarize(record["values"])["ci95"] if record.get("values") else None)
    if ci is not None:
        return (ci[1] - ci[0]) / 2
    return report.test_set_error(a["mean"], test_examples) if test_examples else 0.0


def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table (floats with 4 decimals)."""
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
