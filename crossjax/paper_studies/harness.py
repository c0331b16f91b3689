"""What a paper study adds to the study framework: model variants and (variant, config) cells.

A paper study runs on the machinery of :mod:`crossjax.study`: its directory is a
``study.RunDirectory`` (lock, fingerprint, resume, ``--overwrite``), its
training :func:`crossjax.training.train`, its model files
``crossjax.checkpoint`` files, its Monte Carlo ``study.evaluate_config`` on
``study.config_keys``. A study run owns a directory ``out``:

* ``results.json`` (schema of docs/results.md plus study sections), rewritten
  atomically (temp file + ``os.replace``) after every finished cell;
* ``model_<variant>.ckpt``: every trained model variant (``checkpoint.save_model``,
  tagged with the run's fingerprint), so a killed run resumes without
  retraining what it finished;
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
(``results.json``, ``report.md``, the study's plots, every ``model_*.ckpt``
checkpoint: ``crossjax.study.discard``) and recomputes everything; other files
are left alone.

Training is :func:`crossjax.training.train`, the loop the default study runs
(``Setup.fit``): Adam with a cosine learning-rate decay on ``cross_entropy +
regularizer(params)``; with ``masks`` the pruned weights are zeroed first and
:func:`crossjax.pruning.masked_updates` (last in the optax chain) keeps them
exactly 0 for every step.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np
from flax import nnx

from crossjax import checkpoint as ckpt
from crossjax import montecarlo, report, training
from crossjax import study as study_lib
from crossjax.paper_studies import tasks

if TYPE_CHECKING:
    from crossjax.paper_studies import tasks

__all__ = ["StudyRun", "Setup", "setup", "error_bar", "md_table"]


class StudyRun:
    """One resumable run of a seed study in directory ``out`` (see the module docstring)."""

    def __init__(
        self,
        study: str,
        out,
        *,
        quick: bool,
        seed: int,
        samples: int,
        dataset: str,
        model: str,
        progress: bool = False,
        extra: dict | None = None,
        overwrite: bool = False,
        files=(),
    ):
        """``overwrite``: discard an earlier run's files in ``out`` (``crossjax.study.discard``;
        ``files``: the other names the study writes, e.g. its plots) and recompute everything."""
        args = {"study": study, "quick": quick, "seed": seed, "samples": samples, **(extra or {})}
        fresh = {
            "digital": None,
            "configs": [],
            "variants": {},
            "meta": {"study": study, "seed": seed, "dataset": dataset, "model": model, "args": args},
        }
        self.dir = study_lib.RunDirectory(
            out, study_lib.fingerprint_of(args), fresh, overwrite=overwrite, files=files, label=study
        )
        self.out, self.results, self.fingerprint = self.dir.out, self.dir.results, self.dir.fingerprint
        self.seed, self.samples, self.progress = seed, samples, progress
        self.overwrite = bool(overwrite)
        self.results["meta"]["computed"] = 0
        self._cells = {c["name"]: c for c in self.results["configs"]}
        self._models = {}

    def close(self) -> None:
        """Release the output directory (also done by :meth:`finish` and when the run is collected)."""
        self.dir.close()

    # ------------------------------------------------------------------ persistence
    def save(self) -> None:
        """Rewrite ``results.json`` (atomically, with the wall time so far)."""
        self.dir.save()

    def model(self, variant: str, build, make):
        """The model of ``variant``: held from an earlier call of this run, else loaded
        from ``model_<variant>.ckpt`` (``crossjax.checkpoint.load_model``, the run's
        fingerprint checked) into ``build()``, else ``make()`` (which returns the trained
        model) and saved. With ``overwrite`` a file this run did not write is never loaded
        (it is retrained and replaced)."""
        if variant in self._models:
            return self._models[variant]
        path = self.dir.path(f"model_{variant}.ckpt")
        if os.path.exists(path) and not self.overwrite:
            m = ckpt.load_model(path, build(), self.fingerprint)
        else:
            m = make()
            ckpt.save_model(path, m, self.fingerprint, variant=variant)
            self.results["meta"]["computed"] += 1
        self._models[variant] = m
        return m

    def has(self, cell: str) -> bool:
        return cell in self._cells

    def cell(
        self,
        variant: str,
        config: str,
        hardware,
        model_fn,
        x,
        y,
        samples: int | None = None,
        calibration_x=None,
        layer_bits=None,
    ):
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
        acc = study_lib.evaluate_config(model_fn(), hardware, keys, x, y, name=name, calibration_x=calibration_x)
        rec = {
            "name": name,
            "variant": variant,
            "config": config,
            "samples": int(S),
            "accuracy": study_lib.summarize(acc),
            "per_sample": acc.tolist(),
            "seconds": time.perf_counter() - t,
            "hardware": study_lib.jsonable(hardware.to_dict()),
        }
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

    def save_plot(self, fig, name: str, title: str | None = None, rect=None) -> None:
        """Write figure ``fig`` as ``out/name`` (atomically, :func:`crossjax.report.save_figure`) and
        close it; ``title`` becomes the figure's title after "<model> on <dataset>: ", and
        ``rect`` is the area ``tight_layout`` fits the axes into (room for a figure legend)."""
        if title is not None:
            meta = self.results["meta"]
            fig.suptitle(f"{meta['model']} on {meta['dataset']}: {title}", fontsize=10)
        fig.tight_layout(**({} if rect is None else {"rect": rect}))
        report.save_figure(fig, os.path.join(self.out, name), dpi=100, bbox_inches=None)

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
        lines = [
            report_md.rstrip("\n"),
            *report.config_definitions(labels),
            "",
            f"Wall time: {self.results['meta']['seconds']:.1f} s (all runs into this directory; "
            "`results.json` `meta.seconds`).",
        ]
        ckpt.atomic_write_text(self.dir.path(study_lib.REPORT), "\n".join(lines) + "\n")
        self.close()
        return self.results


class Setup(NamedTuple):
    """What every seed study starts from (:func:`setup`)."""

    run: "StudyRun"
    task: "tasks.Task"
    x: np.ndarray  # test inputs (the first ``max_test``)
    y: np.ndarray  # test labels
    dense: Callable[[], nnx.Module]  # the digitally trained network (variant "dense", trained once)
    variant: Callable[[str, Callable[[], nnx.Module]], nnx.Module]  # rs.model(name, build, make)
    fit: Callable[..., np.ndarray]  # fit(model, steps, seed=..., masks=..., ...): see setup()
    settings: dict  # the study's settings (``settings(quick, dataset)`` of its module)
    seed: int
    dataset: str

    @property
    def train(self):
        return self.task.train


def setup(
    study: str,
    out,
    st: dict,
    *,
    quick: bool,
    seed: int,
    samples: int,
    progress: bool,
    dataset: str = "digits",
    data_dir: str | None = None,
    overwrite: bool = False,
    files=(),
) -> Setup:
    """A :class:`StudyRun` on ``dataset`` (:mod:`.tasks`: an MLP on digits/MNIST, VGG11 on CIFAR).

    ``st`` (the study's settings) gives the network (``hidden`` or ``width``),
    ``train_steps`` (Adam ``learning_rate``, default 3e-3, cosine decay, data
    seed ``seed``, ``batch_size`` default 64) and optionally ``max_test``.
    ``Setup.fit(model, steps, *, seed, learning_rate=1e-3, masks=None,
    regularizer=None, transforms=())`` trains a variant in place with
    :func:`crossjax.training.train` at the study's batch size and returns the
    per-step losses.
    Records the dense network's digital accuracy on first use. ``overwrite``
    and ``files`` (the study's plots): see :class:`StudyRun`.
    """
    task = tasks.load(dataset, st, seed, data_dir)
    rs = StudyRun(
        study,
        out,
        quick=quick,
        seed=seed,
        samples=samples,
        dataset=dataset,
        model=task.model,
        progress=progress,
        overwrite=overwrite,
        files=files,
        extra={"dataset": dataset, "settings": st, "data_dir": None if data_dir is None else os.path.abspath(data_dir)},
    )

    def variant(name, make):
        return rs.model(name, task.build, make)

    def fit(model, steps, *, seed, learning_rate=1e-3, masks=None, regularizer=None, transforms=()):
        config = training.TrainConfig(
            steps=steps, learning_rate=learning_rate, seed=seed, batch_size=st.get("batch_size", 64)
        )
        return training.train(
            model,
            task.train,
            config,
            progress=progress,
            description=f"{study} training",
            masks=masks,
            regularizer=regularizer,
            transforms=transforms,
        ).losses

    def dense_make():
        m = task.build()
        fit(m, st["train_steps"], seed=seed, learning_rate=st.get("learning_rate", 3e-3))
        return m

    def dense():
        return variant("dense", dense_make)

    n = st.get("max_test")
    x, y = task.test.x[:n], task.test.y[:n]
    if rs.results["digital"] is None:
        rs.results["digital"] = {"accuracy": montecarlo.digital_accuracy(dense(), x, y)}
        rs.save()
    return Setup(rs, task, x, y, dense, variant, fit, st, seed, dataset)


def paper_study(name: str, settings: Callable[[bool, str], dict], files: tuple[str, ...] = ()):
    """Turn a study's body into its module's ``run``: the decorator every paper study uses.

    ``body(ds)`` gets the :class:`Setup` of :func:`setup` on ``settings(quick,
    dataset)`` (``ds.settings``; ``ds.run.samples`` is ``samples`` or the
    settings' ``"samples"``) and returns ``ds.run.finish(report_md)``.
    ``files``: the plots the study writes into ``out`` (``--overwrite``
    deletes them).

    Args:
      name: the study's name (its preset name, recorded in ``results.json``).
      settings: ``settings(quick, dataset) -> dict`` of the study.
      files: the study's plot file names.

    Returns:
      A decorator; the decorated function is ``run(out, *, quick=False, seed=0,
      samples=None, progress=True, dataset="digits", data_dir=None,
      overwrite=False) -> dict``, which runs (or resumes) the study into ``out``
      and returns its results dict.

    Example:
      >>> from crossjax.paper_studies import harness
      >>> @harness.paper_study("toy", lambda quick, dataset: {"samples": 2}, files=("toy.png",))
      ... def run(ds):
      ...     return ds.run.finish("# toy")
      >>> run.__name__, run.__module__ == __name__
      ('run', True)
    """

    def wrap(body: Callable[[Setup], dict]) -> Callable[..., dict]:
        def run(
            out,
            *,
            quick: bool = False,
            seed: int = 0,
            samples: int | None = None,
            progress: bool = True,
            dataset: str = "digits",
            data_dir: str | None = None,
            overwrite: bool = False,
        ) -> dict:
            st = settings(quick, dataset)
            ds = setup(
                name,
                out,
                st,
                quick=quick,
                seed=seed,
                samples=samples or st["samples"],
                progress=progress,
                dataset=dataset,
                data_dir=data_dir,
                overwrite=overwrite,
                files=files,
            )
            return body(ds)

        run.__module__, run.__qualname__ = body.__module__, body.__qualname__
        run.__doc__ = (
            f"Run (or resume) the {name} study into ``out``; returns the results dict.\n\n"
            "``overwrite``: discard an earlier run's files there and start afresh (see "
            ":class:`crossjax.paper_studies.harness.StudyRun`)."
        )
        return run

    return wrap


def error_bar(record: dict, test_examples: int | None = None) -> float:
    """Half-width of a cell's error bar (accuracy fraction): its 95 % interval over Monte Carlo
    samples, or, for one sample, the test set's binomial standard error when ``test_examples``
    is given (else 0)."""
    a = record["accuracy"]
    ci = a.get("ci95") or (study_lib.summarize(record["per_sample"])["ci95"] if record.get("per_sample") else None)
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
