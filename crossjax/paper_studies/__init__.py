"""The three seed studies as study presets (``crossjax study --preset NAME``).

A paper study is one module of this package holding ``run(out, *, quick, seed,
samples, progress, dataset, data_dir, overwrite) -> dict``, written on
:mod:`.harness` (model variants and cells over ``crossjax.study.RunDirectory``,
``crossjax.training.train`` and ``crossjax.checkpoint``), and one line of
:data:`STUDIES`, which registers it as a preset of :mod:`crossjax.study`:
``study.get_preset(name)`` gives its :class:`PaperStudy` and
``study.run_study(spec, out)`` runs it, as for every preset. It writes
``out/results.json`` (schema of docs/results.md plus study sections),
``out/report.md`` and PNG plots, and resumes a killed run (``overwrite=True``:
discards an earlier run's files there and starts afresh). See
:mod:`.sparse_crossbars` (Bhattacharjee et al., DATE 2022), :mod:`.dub_adc`
(Ibrayev et al., arXiv 2403.13082) and :mod:`.tile_dse` (tile size x dense/sparse
mapping, Lammie et al., ISCAS 2022).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib

from crossjax import study

#: the paper studies: preset name -> module of this package (a new study: its file and one line here)
STUDIES = {"sparse_crossbars": "sparse_crossbars", "dub_adc": "dub_adc", "tile_dse": "tile_dse"}
#: the datasets a paper study runs on (tasks.load: an MLP on digits/MNIST, VGG11 on CIFAR)
DATASETS = ("digits", "mnist", "cifar10", "cifar100")


@dataclasses.dataclass(frozen=True)
class PaperStudy:
    """The spec of a paper study: which module runs it, and the scale it runs at.

    ``name``: its preset name; ``module``: a module of this package (or a
    dotted module path) whose ``run`` does the study; ``quick``: the
    laptop-scale settings; ``samples``: Monte Carlo samples per stochastic
    cell (``None``: the study's default); ``dataset``: one of :data:`DATASETS`.
    Everything else is fixed by the study (its settings are part of its
    fingerprint).

    Example:
      >>> from crossjax import study
      >>> spec = study.get_preset("tile_dse").replace(quick=True, samples=2)
      >>> spec.module, spec.quick, spec.samples
      ('tile_dse', True, 2)
    """

    name: str
    module: str
    quick: bool = False
    samples: int | None = None
    dataset: str = "digits"

    def __post_init__(self):
        if self.samples is not None and (
            isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1
        ):
            raise ValueError(
                f"{self.name}: samples={self.samples!r} must be an integer >= 1 (or None for the study's default)"
            )
        if self.dataset not in DATASETS:
            raise ValueError(f"{self.name}: dataset={self.dataset!r}; choose one of {DATASETS}")
        if not isinstance(self.quick, bool):
            raise ValueError(f"{self.name}: quick={self.quick!r} must be True or False")

    def replace(self, **kw) -> "PaperStudy":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run(
        self, out, *, seed: int = 0, data_dir: str | None = None, overwrite: bool = False, progress: bool = True
    ) -> dict:
        """Run (or resume) the study into ``out`` (``study.run_study`` calls this); its results."""
        path = self.module if "." in self.module else f"{__name__}.{self.module}"
        return importlib.import_module(path).run(
            out,
            quick=self.quick,
            seed=seed,
            samples=self.samples,
            progress=progress,
            dataset=self.dataset,
            data_dir=data_dir,
            overwrite=bool(overwrite),
        )


for _name, _module in STUDIES.items():
    study.register_preset(_name, functools.partial(PaperStudy, _name, _module))


def run(
    name: str,
    out,
    *,
    seed: int = 0,
    data_dir: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    **spec_fields,
) -> dict:
    """Run (or resume) paper study ``name`` into directory ``out``; returns its results dict.

    The same as ``study.run_study(study.get_preset(name).replace(**spec_fields),
    out, seed=seed, ...)``: ``spec_fields`` are :class:`PaperStudy` fields
    (``quick``, ``samples``, ``dataset``). A rerun with the same arguments
    resumes (reuses finished cells and trained models); with other arguments
    it raises ``ValueError``, unless ``overwrite=True`` (``crossjax study
    --overwrite``), which first deletes the files an earlier run of a study
    wrote in ``out`` (results.json, report.md, plots, ``model_*.ckpt``;
    nothing else) and recomputes from scratch.

    ``dataset``: ``"digits"`` (offline, an MLP), ``"mnist"`` or ``"cifar10"`` /
    ``"cifar100"`` (VGG11, the papers' scale; prepared with tfds in ``data_dir``).

    Args:
      name: one of :data:`STUDIES`.
      out: the run directory (created if missing).
      seed: the study's seed (training data order, Monte Carlo keys).
      data_dir: where tfds keeps MNIST / CIFAR (``None``: its default).
      overwrite: discard an earlier run's files in ``out`` first.
      progress: show progress bars.
      **spec_fields: ``quick``, ``samples``, ``dataset`` (see :class:`PaperStudy`).

    Returns:
      The results dict (docs/results.md), also saved as ``out/results.json``.
    """
    spec = study.get_preset(name) if name in study.preset_names() else None
    if not isinstance(spec, PaperStudy):
        raise ValueError(
            f"run: unknown paper study {name!r}; choose one of {sorted(STUDIES)} "
            "(study.run_study runs the other presets)"
        )
    unknown = sorted(set(spec_fields) - {"quick", "samples", "dataset"})
    if unknown:
        raise ValueError(f"run: unknown argument(s) {unknown}; a paper study takes quick, samples and dataset")
    spec = spec.replace(**spec_fields)
    return study.run_study(spec, out, seed=seed, data_dir=data_dir, overwrite=overwrite, progress=progress)
