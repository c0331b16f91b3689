"""The three seed studies as runnable presets (``crossjax study --preset NAME``).

``RUNNERS[name](out, quick=..., seed=..., samples=..., progress=..., overwrite=...) -> dict``
writes ``out/results.json`` (schema of docs/results.md plus study sections),
``out/report.md`` and PNG plots, and resumes a killed run (``overwrite=True``:
discards an earlier run's files there and starts afresh). See
:mod:`.sparse_crossbars` (Bhattacharjee et al., DATE 2022), :mod:`.dub_adc`
(Ibrayev et al., arXiv 2403.13082) and :mod:`.tile_dse` (tile size x dense/sparse
mapping, Lammie et al., ISCAS 2022).
"""
from __future__ import annotations

import importlib

_MODULES = {"sparse_crossbars": "sparse_crossbars", "dub_adc": "dub_adc", "tile_dse": "tile_dse"}


def _runner(module):
    def call(out, *, quick=False, seed=0, samples=None, progress=True, dataset="digits", data_dir=None,
             overwrite=False):
        mod = importlib.import_module(f"crossjax.paper_studies.{module}")
        return mod.run(out, quick=quick, seed=seed, samples=samples, progress=progress,
                       dataset=dataset, data_dir=data_dir, overwrite=overwrite)
    call.__name__ = f"run_{module}"
    call.__doc__ = f"Run :mod:`crossjax.paper_studies.{module}` (lazy import)."
    return call


RUNNERS = {name: _runner(mod) for name, mod in _MODULES.items()}


def run(name: str, out, *, quick: bool = False, seed: int = 0, samples: int | None = None,
        progress: bool = True, dataset: str = "digits", data_dir: str | None = None,
        overwrite: bool = False) -> dict:
    """Run (or resume) seed study ``name`` into directory ``out``; returns its results dict.

    A rerun with the same arguments resumes (reuses finished cells and trained
    models); with other arguments it raises ``ValueError``, unless
    ``overwrite=True`` (``crossjax study --overwrite``), which first deletes the
    files an earlier run of a study wrote in ``out`` (results.json, report.md,
    plots, ``model_*.npz``; nothing else) and recomputes from scratch.

    ``dataset``: ``"digits"`` (offline, an MLP), ``"mnist"`` or ``"cifar10"`` /
    ``"cifar100"`` (VGG11, the papers' scale; prepared with tfds in ``data_dir``).
    """
    from crossjax.paper_studies.tasks import DATASETS

    if name not in RUNNERS:
        raise ValueError(f"run: unknown study {name!r}; choose one of {sorted(RUNNERS)}")
    if samples is not None and (not isinstance(samples, int) or samples < 1):
        raise ValueError(f"run: samples={samples!r} must be an integer >= 1 (or None for the default)")
    if dataset not in DATASETS:
        raise ValueError(f"run: dataset={dataset!r}; choose one of {DATASETS}")
    return RUNNERS[name](out, quick=quick, seed=seed, samples=samples, progress=progress,
                         dataset=dataset, data_dir=data_dir, overwrite=bool(overwrite))
