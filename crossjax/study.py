"""``crossjax study``: train a model, map it onto crossbars, Monte Carlo-evaluate it.

A study is described by a :class:`StudySpec` (dataset, model, training, a list
of named hardware configs, Monte Carlo samples, optional non-ideality-aware
fine-tuning). :func:`run_study` then

1. loads the dataset (``crossjax.data``);
2. trains the model digitally, or loads it from ``DIR/model.ckpt`` (the
   training checkpoint doubles as the trained model, so a rerun resumes or
   skips training);
3. evaluates the digital accuracy and, for every hardware config, the accuracy
   of ``S`` Monte Carlo samples (``crossjax.montecarlo.evaluate``; sample keys
   ``split(fold_in(key(seed), crc32(name)), S)``, so a config's numbers do not
   depend on which other configs ran). Deterministic configs (no stochastic
   device, read or fault model) run one sample;
4. optionally fine-tunes a copy of the model under one config's
   non-idealities (``crossjax.training.finetune``) and evaluates it on the same
   keys as before fine-tuning;
5. writes ``DIR/results.json`` atomically after every step (the schema of
   ``docs/results.md``), then ``DIR/report.md`` and the plots.

A killed study rerun with the same arguments finds ``results.json``, checks
that it was written by the same study (a fingerprint of the spec, seed and
dataset) and skips every finished config. Different arguments with the same
``DIR`` raise ``ValueError`` (pick another ``--out`` or pass ``--overwrite``).

Presets are one registry, ``name -> () -> spec``, of every study ``crossjax
study --preset`` runs: :func:`register_preset` adds one, :func:`get_preset` and
:func:`preset_names` read it. A spec is a :class:`StudySpec` (the pipeline
above; a TOML file, ``--config``, overrides any field of it, see
:func:`spec_from_toml`) or a ``crossjax.paper_studies.PaperStudy`` (the seed
papers' studies, registered by ``paper_studies.STUDIES``). Both kinds run
through :func:`run_study` on one :class:`RunDirectory` (lock, fingerprint,
resume, ``--overwrite``), :func:`crossjax.training.train` and
``crossjax.checkpoint`` files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import platform
import time
import tomllib
import weakref
import zlib
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import crossjax
from crossjax import checkpoint as ckpt
from crossjax import config_checks as chk
from crossjax import conversion, distributed, models, montecarlo, presets, report, training
from crossjax import cost as cost_lib
from crossjax import data as data_lib
from crossjax import hardware as hw_lib
from crossjax.circuit.cell import Cell
from crossjax.circuit.parasitics import Parasitics
from crossjax.devices import DriftCompensation, WriteNoise
from crossjax.hardware import HardwareConfig

RESULTS = "results.json"
REPORT = "report.md"
MODEL_CKPT = "model.ckpt"
FINETUNE_CKPT = "finetune.ckpt"
MODELS = ("mlp", "vgg11", "vgg16", "resnet18", "vit")
#: models written in plain Flax and converted (``crossjax.convert``): they take ``rules``
CONVERTED_MODELS = ("vit",)
#: Programming-noise sigma of the device under the default IR-drop / ADC sweeps.
BASE_NOISE = 0.01
#: Default sweeps: programming-noise sigmas, wire resistances (ohm), ADC bits.
WRITE_NOISE_SIGMAS = (0.02, 0.05, 0.1, 0.2)
IR_DROP_OHMS = (5.0, 10.0, 20.0, 50.0)
ADC_BITS = (8, 6, 4)
#: Default sweep of sinh cell nonlinearity ``v0`` (volts; the DAC reads at 0.2 V).
CELL_V0 = (1.0, 0.4, 0.25, 0.15)


@dataclasses.dataclass(frozen=True)
class HardwareCase:
    """One named hardware configuration of a study (``hardware``: a ``HardwareConfig``).

    ``keys``: the name its Monte Carlo keys are derived from (default: its own). Configs
    with the same ``keys`` program the same chips (the same draws for every device): a
    time sweep reads one set of programmed devices at several times, a paired comparison.
    """

    name: str
    hardware: Any
    samples: int | None = None  # None: the study's ``samples`` (1 if deterministic)
    keys: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"HardwareCase.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.hardware, HardwareConfig):
            raise ValueError(
                f"config {self.name!r}: hardware must be a HardwareConfig, got {type(self.hardware).__name__}"
            )
        chk.positive_int(f"config {self.name!r}: samples", self.samples, allow_none=True)
        if self.keys is not None and (not isinstance(self.keys, str) or not self.keys):
            raise ValueError(
                f"config {self.name!r}: keys must be a non-empty string (the name whose Monte "
                f"Carlo keys it shares) or None, got {self.keys!r}"
            )

    @property
    def key_name(self) -> str:
        """The name :func:`config_keys` derives this config's keys from."""
        return self.keys or self.name


@dataclasses.dataclass(frozen=True)
class FinetuneSpec:
    """Non-ideality-aware fine-tuning under the config named ``config``."""

    config: str
    train: training.TrainConfig


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """Everything a study does, as data.

    ``dataset``: a ``crossjax.data`` name; ``model``: one of ``MODELS``;
    ``hidden``: MLP hidden widths; ``train``: digital pre-training;
    ``configs``: the hardware cases (one must be named ``"ideal"``);
    ``samples``: Monte Carlo samples per stochastic config; ``eval_batch_size``:
    test examples per evaluation batch; ``finetune``: optional
    :class:`FinetuneSpec`; ``max_train`` / ``max_test``: use only the first
    examples (quick runs); ``chunk_size``: Monte Carlo samples per vmapped chunk
    (``None``: all at once); ``rules``: per-layer conversion rules
    (``crossjax.conversion.Rule`` as dicts, e.g. ``{"match": "head", "digital":
    True}``) for the models built by ``crossjax.convert`` (``model="vit"``).
    """

    dataset: str = "digits"
    model: str = "mlp"
    hidden: tuple[int, ...] = (64,)
    train: training.TrainConfig = training.TrainConfig()
    configs: tuple[HardwareCase, ...] = ()
    samples: int = 32
    eval_batch_size: int = 512
    finetune: FinetuneSpec | None = None
    max_train: int | None = None
    max_test: int | None = None
    chunk_size: int | None = None
    rules: tuple[dict, ...] = ()

    def __post_init__(self):
        try:
            rules = tuple(r.to_dict() for r in conversion.rules_from_data(self.rules))
        except ValueError as e:
            raise ValueError(f"StudySpec.rules: {e}") from None
        object.__setattr__(self, "rules", rules)
        if rules and self.model not in CONVERTED_MODELS:
            raise ValueError(
                f"StudySpec.rules apply to models built by crossjax.convert ({CONVERTED_MODELS}), "
                f"not model={self.model!r}; drop the rules or use one of those models"
            )
        if not isinstance(self.hidden, tuple) or not all(
            isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h >= 1 for h in self.hidden
        ):
            raise ValueError(
                f"StudySpec.hidden={self.hidden!r} must be a list of positive integers, "
                "e.g. hidden = [64] (not the string \"64\")"
            )
        chk.positive_int("StudySpec.samples", self.samples)
        chk.positive_int("StudySpec.eval_batch_size", self.eval_batch_size)
        for name in ("max_train", "max_test", "chunk_size"):
            chk.positive_int(f"StudySpec.{name}", getattr(self, name), allow_none=True)
        if not isinstance(self.train, training.TrainConfig):
            raise ValueError(f"StudySpec.train must be a TrainConfig, got {type(self.train).__name__}")
        if not isinstance(self.configs, tuple) or not all(isinstance(c, HardwareCase) for c in self.configs):
            raise ValueError(
                f"StudySpec.configs must be a list of hardware cases ([[configs]] tables in TOML), "
                f"got {self.configs!r:.80}"
            )
        if self.dataset not in data_lib.names():
            raise ValueError(f"StudySpec.dataset={self.dataset!r}; choose one of {data_lib.names()}")
        if self.model not in MODELS:
            raise ValueError(f"StudySpec.model={self.model!r}; choose one of {MODELS}")
        names = [c.name for c in self.configs]
        if len(set(names)) != len(names):
            raise ValueError(f"StudySpec.configs: duplicate config names in {names}")
        if self.configs and "ideal" not in names:
            raise ValueError("StudySpec.configs must include the ideal crossbar, named 'ideal'")
        if self.finetune is not None and self.finetune.config not in names:
            raise ValueError(f"StudySpec.finetune.config={self.finetune.config!r} is not one of the configs {names}")

    def replace(self, **kw) -> "StudySpec":
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (hardware via ``HardwareConfig.to_dict``)."""
        return {
            "dataset": self.dataset,
            "model": self.model,
            "hidden": list(self.hidden),
            "train": self.train.to_dict(),
            "samples": self.samples,
            "eval_batch_size": self.eval_batch_size,
            "configs": [
                {
                    "name": c.name,
                    "samples": c.samples,
                    "hardware": jsonable(c.hardware.to_dict()),
                    **({"keys": c.keys} if c.keys is not None else {}),
                }
                for c in self.configs
            ],
            "finetune": None
            if self.finetune is None
            else {"config": self.finetune.config, "train": self.finetune.train.to_dict()},
            "max_train": self.max_train,
            "max_test": self.max_test,
            **({"rules": [dict(r) for r in self.rules]} if self.rules else {}),
        }


# --------------------------------------------------------------------------- presets

_PRESETS: dict[str, Callable[[], Any]] = {}  # name -> factory of a StudySpec or a paper_studies.PaperStudy


def register_preset(name: str, factory: Callable[[], Any]) -> None:
    """Add a study preset: ``factory()`` builds its spec (a :class:`StudySpec` or a
    ``paper_studies.PaperStudy``).

    Args:
      name: the preset's name (for :func:`get_preset` and ``crossjax study --preset``).
      factory: a function of no arguments that builds the spec afresh on every call.

    Raises:
      ValueError: a preset named ``name`` exists already.

    Example:
      >>> from crossjax import study
      >>> study.register_preset("tiny_doc", lambda: study.get_preset("quick").replace(samples=2))
      >>> study.get_preset("tiny_doc").samples, "tiny_doc" in study.preset_names()
      (2, True)
      >>> study.unregister_preset("tiny_doc")
    """
    if name in _PRESETS:
        raise ValueError(f"register_preset: a study preset named {name!r} exists already")
    _PRESETS[name] = factory


def unregister_preset(name: str) -> None:
    """Remove a study preset added with :func:`register_preset` (no error if it is absent).

    Args:
      name: the preset's name.

    Example:
      >>> from crossjax import study
      >>> study.register_preset("gone_doc", lambda: study.get_preset("quick"))
      >>> study.unregister_preset("gone_doc")
      >>> study.unregister_preset("gone_doc")  # absent: no error
      >>> "gone_doc" in study.preset_names()
      False
    """
    _PRESETS.pop(name, None)


def preset_names() -> tuple[str, ...]:
    """Names accepted by :func:`get_preset` and ``crossjax study --preset``, in registration order.

    Example:
      >>> from crossjax import study
      >>> study.preset_names()[:2], "tile_dse" in study.preset_names()
      (('default', 'quick'), True)
    """
    return tuple(_PRESETS)


def get_preset(name: str):
    """The spec of preset ``name``: a :class:`StudySpec` or a ``paper_studies.PaperStudy``,
    built afresh by its factory; :func:`run_study` runs either.

    Args:
      name: one of :func:`preset_names`.

    Returns:
      The spec (frozen; ``.replace(...)`` gives a changed copy).

    Raises:
      ValueError: an unknown name (the message lists the known ones).

    Example:
      >>> from crossjax import study
      >>> spec = study.get_preset("quick")
      >>> spec.model, spec.samples, [c.name for c in spec.configs]
      ('mlp', 4, ['ideal', 'write_noise_s0.1', 'ir_drop_r20'])
      >>> type(study.get_preset("dub_adc")).__name__
      'PaperStudy'
    """
    if name not in _PRESETS:
        raise ValueError(f"unknown study preset {name!r}; choose one of {preset_names()}")
    return _PRESETS[name]()


def _default_spec() -> StudySpec:
    """Offline digits, MLP 64-64-10 on 64x64 arrays, noise / IR drop / ADC sweeps.

    Configs (each one non-ideality varied from the ideal crossbar):
    ``write_noise_s{2,5,10,20}``: Gaussian programming noise with std
    ``sigma * (g_max - g_min)``; ``ir_drop_r{5,10,20,50}``: wire resistance
    per cell segment on rows and columns (ohms; ``g_max = 100 uS``, so
    ``r * g_max * 64`` spans 0.03..0.3); ``adc_{8,6,4}b``: column ADCs of that
    many bits (full scale ``max |I|``); ``nonlinear_v0_{1,0.4,0.25,0.15}``:
    sinh cells ``I = G v0 sinh(V / v0)`` (``circuit.Cell``) read at up to
    ``v_read = 0.2 V``, so full-scale inputs drive ``sinh(x)/x`` = 0.7 % .. 32 %
    more current than a linear cell (ideal wires: the exact elementwise sum).
    The IR-drop, ADC and nonlinearity configs sit on a device with ``BASE_NOISE`` (1 %)
    programming noise, so their samples differ too.
    Fine-tuning: 60 steps (Adam, 3e-3) with the non-idealities in the loop under
    ``ir_drop_r50`` (the strongest IR-drop config).
    """

    base = hw_lib.HardwareConfig()
    cases = [HardwareCase("ideal", base)]
    for s in WRITE_NOISE_SIGMAS:
        cases.append(
            HardwareCase(f"write_noise_s{s:g}", base.set({"device.write_noise": WriteNoise(sigma=s, kind="gaussian")}))
        )
    # IR drop and ADC sweeps on a realistic device: 1 % programming noise
    device = base.set({"device.write_noise": WriteNoise(sigma=BASE_NOISE, kind="gaussian")})
    for r in IR_DROP_OHMS:
        cases.append(
            HardwareCase(f"ir_drop_r{r:g}", device.set({"array.parasitics": Parasitics(r_wire_row=r, r_wire_col=r)}))
        )
    for b in ADC_BITS:
        cases.append(HardwareCase(f"adc_{b}b", device.set({"adc.bits": b})))
    for v0 in CELL_V0:
        cases.append(HardwareCase(f"nonlinear_v0_{v0:g}", device.set({"array.cell": Cell(iv="sinh", v0=v0)})))
    return StudySpec(
        dataset="digits",
        model="mlp",
        hidden=(64,),
        train=training.TrainConfig(steps=1200, batch_size=64, learning_rate=3e-3),
        configs=tuple(cases),
        samples=32,
        eval_batch_size=512,
        finetune=FinetuneSpec("ir_drop_r50", training.TrainConfig(steps=60, batch_size=64, learning_rate=3e-3, seed=1)),
    )


def _quick_spec() -> StudySpec:
    """A tiny study (CI smoke test): 3 configs, 4 samples, 100 training steps."""
    spec = _default_spec()
    keep = ("ideal", "write_noise_s0.1", "ir_drop_r20")
    return spec.replace(
        train=spec.train.replace(steps=100),
        samples=4,
        configs=tuple(c for c in spec.configs if c.name in keep),
        finetune=FinetuneSpec("ir_drop_r20", spec.finetune.train.replace(steps=10)),
    )


#: times of inference of the ``pcm_drift`` preset: 1 s, 1 hour, 1 day, 30 days, 1 year (s)
PCM_TIMES = (1.0, 3600.0, 86400.0, 2.592e6, 3.1536e7)


def _pcm_drift_spec() -> StudySpec:
    """Accuracy vs time of a digits MLP on the fitted PCM model (``presets.pcm_joshi2020``:
    Nandakumar et al. 2019 / Joshi et al. 2020), read 1 s to 1 year after programming,
    with and without global drift compensation; every config reads the same programmed
    chips (``keys="pcm"``: the same programming noise and drift exponents at every time).
    Configs ``pcm_t{1s,1h,1d,30d,1y}`` and ``pcm_comp_t...``; 32 samples each.
    Fine-tuning: 60 steps with the PCM model in the loop at 1 day (``pcm_t1d``).
    """

    base = _default_spec()
    labels = ("1s", "1h", "1d", "30d", "1y")
    cases = [HardwareCase("ideal", base.configs[0].hardware)]
    for comp in (None, DriftCompensation("global")):
        for t, lab in zip(PCM_TIMES, labels):
            hw = presets.get("pcm_joshi2020").set({"device.pcm.t": t, "device.drift_compensation": comp})
            cases.append(HardwareCase(f"pcm_{'comp_' if comp else ''}t{lab}", hw, keys="pcm"))
    return base.replace(configs=tuple(cases), finetune=FinetuneSpec("pcm_t1d", base.finetune.train))


def _vit_spec() -> StudySpec:
    """A vision transformer (``models.ViT``, plain Flax converted by ``crossjax.convert``) on the
    offline digits: 8x8 images as four 4x4 patch tokens, width 32, 2 encoder blocks of 4 heads.
    Configs: ``ideal``; ``rram`` (``presets.rram``: 2 % programming and 1 % read noise, stuck
    cells, 1 ohm wires, 8-bit DAC at a fixed input range of 1, 8-bit ADC); ``rram_dac_max``
    (the same with the DAC range set per input vector, ``dac.range="max"``: layer-norm outputs
    beyond 1 are not clipped); ``rram_devices`` (the devices and wires alone, ideal
    converters). 32 samples. Digital training 3000 steps (AdamW, 3e-3); fine-tuning 100
    steps under ``rram``.
    """
    base = _default_spec()
    rram = presets.get("rram")
    cases = (
        HardwareCase("ideal", base.configs[0].hardware),
        HardwareCase("rram", rram),
        HardwareCase("rram_dac_max", rram.set({"dac.range": "max"})),
        HardwareCase("rram_devices", rram.set({"dac.bits": None, "adc.bits": None})),
    )
    train = training.TrainConfig(steps=3000, batch_size=64, learning_rate=3e-3, optimizer="adamw")
    return base.replace(
        model="vit",
        configs=cases,
        train=train,
        finetune=FinetuneSpec(
            "rram", training.TrainConfig(steps=100, batch_size=64, learning_rate=1e-3, optimizer="adamw", seed=1)
        ),
    )


register_preset("default", _default_spec)
register_preset("quick", _quick_spec)
register_preset("pcm_drift", _pcm_drift_spec)
register_preset("vit", _vit_spec)


# --------------------------------------------------------------------------- hardware helpers


def is_stochastic(hw) -> bool:
    """Whether a ``HardwareConfig`` draws random non-idealities (needs > 1 sample).

    Args:
      hw: a ``HardwareConfig``.

    Returns:
      ``True`` when programming or reading it is stochastic (``hw.program_is_stochastic``
      or ``hw.read_is_stochastic``), else ``False``.

    Example:
      >>> from crossjax import study
      >>> from crossjax.hardware import HardwareConfig
      >>> noisy = HardwareConfig().set({"device.write_noise.sigma": 0.05})
      >>> study.is_stochastic(HardwareConfig()), study.is_stochastic(noisy)
      (False, True)
    """
    return bool(hw.program_is_stochastic or hw.read_is_stochastic)


def jsonable(obj):
    """``obj`` with NumPy/JAX arrays and scalars turned into lists and Python numbers, tuples into
    lists and keys into strings: what ``json.dumps`` accepts (results files).

    Example:
      >>> jsonable({1: (np.int64(2), np.arange(2))})
      {'1': [2, [0, 1]]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.ndarray, jax.Array)):
        return jsonable(np.asarray(obj).tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


def hardware_from_dict(d: dict[str, Any]):
    """A ``HardwareConfig`` from a (possibly partial, nested) dict.

    ``{"preset": NAME}`` starts from ``presets.get(NAME)``, otherwise from the
    ideal crossbar ``HardwareConfig()``; every other leaf is applied with
    ``HardwareConfig.set`` at its dotted path (``{"device": {"write_noise":
    {"sigma": 0.05}}}`` -> ``"device.write_noise.sigma"``; a sub-config that is
    off is switched on with its defaults first).

    Args:
      d: nested ``{field: value or sub-dict}`` (lists become arrays), optionally with a
        top-level ``"preset"`` name of :mod:`crossjax.presets`.

    Returns:
      The ``HardwareConfig``.

    Example:
      >>> from crossjax import study
      >>> hw = study.hardware_from_dict({"device": {"write_noise": {"sigma": 0.05}}})
      >>> round(float(hw.device.write_noise.sigma), 4), study.is_stochastic(hw)
      (0.05, True)
      >>> study.hardware_from_dict({"preset": "rram", "adc": {"bits": 6}}).adc.bits
      6
    """
    d = dict(d)
    if "preset" in d:
        base = presets.get(d.pop("preset"))
    else:
        base = hw_lib.HardwareConfig()
    updates: dict[str, Any] = {}

    def walk(prefix, node):
        for k, v in node.items():
            if isinstance(v, dict) and v:
                walk(prefix + k + ".", v)
            else:
                updates[prefix + k] = np.asarray(v) if isinstance(v, list) else v

    walk("", d)
    return base.set(updates)


def spec_from_toml(path: str | os.PathLike, base: StudySpec) -> StudySpec:
    """Override ``base`` with a TOML file.

    Top-level keys: ``dataset``, ``model``, ``hidden``, ``samples``,
    ``eval_batch_size``, ``max_train``, ``max_test``, ``chunk_size``;
    ``[train]`` and ``[finetune.train]`` tables (``TrainConfig`` fields) and
    ``finetune.config``; ``[[configs]]`` array of tables with ``name``,
    optional ``samples`` and ``hardware`` (see :func:`hardware_from_dict`),
    which replaces the preset's config list (include one named ``"ideal"``).
    Every key, type, default and range: ``docs/configuration.md``.

    Args:
      path: the TOML file.
      base: the spec whose fields the file overrides (e.g. a :func:`get_preset`).

    Returns:
      A new :class:`StudySpec` (``base`` is unchanged).

    Raises:
      ValueError: the file cannot be read, is not valid TOML, or holds an unknown key,
        a wrong type or an out-of-range value (the message names the file).

    Example:
      >>> import os, tempfile
      >>> from crossjax import study
      >>> path = os.path.join(tempfile.mkdtemp(), "study.toml")
      >>> with open(path, "w") as f:
      ...     _ = f.write("samples = 2\\nhidden = [16]\\n")
      >>> spec = study.spec_from_toml(path, study.get_preset("quick"))
      >>> spec.samples, spec.hidden
      (2, (16,))
    """
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--config {os.fspath(path)!r} is not valid TOML: {e}") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise ValueError(
            f"--config {os.fspath(path)!r} cannot be read ({e.strerror}); "
            "pass the path of a TOML file (keys: docs/configuration.md)"
        ) from None
    try:
        return _spec_from_doc(doc, base, os.fspath(path))
    except ValueError as e:
        raise ValueError(f"--config {os.fspath(path)!r}: {e}") from None
    except (TypeError, AttributeError) as e:  # a table where a value belongs, or the reverse
        raise ValueError(
            f"--config {os.fspath(path)!r}: a key has the wrong type ({e}); see "
            "crossjax.study.spec_from_toml for the layout"
        ) from None


def _spec_from_doc(doc: dict, base: StudySpec, path: str) -> StudySpec:
    kw: dict[str, Any] = {}
    for table in ("train", "finetune"):
        if table in doc and not isinstance(doc[table], dict) and not (table == "finetune" and doc[table] is False):
            raise ValueError(f"{table} = {doc[table]!r} must be a table ([{table}])")
    simple = ("dataset", "model", "samples", "eval_batch_size", "max_train", "max_test", "chunk_size")
    known = set(simple) | {"hidden", "train", "configs", "finetune", "rules"}
    unknown = set(doc) - known
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}; known: {sorted(known)}")
    for k in simple:
        if k in doc:
            kw[k] = doc[k]
    if "hidden" in doc:
        if not isinstance(doc["hidden"], list):
            raise ValueError(f"hidden = {doc['hidden']!r} must be a list of integers, e.g. hidden = [64]")
        kw["hidden"] = tuple(doc["hidden"])
    if "rules" in doc:
        if not isinstance(doc["rules"], list) or not all(isinstance(r, dict) for r in doc["rules"]):
            raise ValueError(f"rules = {doc['rules']!r:.60} must be an array of tables ([[rules]])")
        kw["rules"] = tuple(doc["rules"])
    if "train" in doc:
        kw["train"] = training.TrainConfig.from_dict({**base.train.to_dict(), **doc["train"]})
    if "configs" in doc:
        if not isinstance(doc["configs"], list) or not all(isinstance(c, dict) for c in doc["configs"]):
            raise ValueError(f"configs = {doc['configs']!r:.60} must be an array of tables ([[configs]])")
        cases = []
        for i, c in enumerate(doc["configs"]):
            if "name" not in c:
                raise ValueError(f"configs[{i}] needs a name")
            extra = set(c) - {"name", "hardware", "samples", "keys"}
            if extra:
                raise ValueError(
                    f"configs[{i}] ({c['name']!r}): unknown keys {sorted(extra)}; known: hardware, keys, name, samples"
                )
            try:
                hw = hardware_from_dict(c.get("hardware", {}))
            except ValueError as e:
                raise ValueError(f"configs[{i}] ({c['name']!r}).hardware: {e}") from None
            cases.append(HardwareCase(str(c["name"]), hw, c.get("samples"), c.get("keys")))
        kw["configs"] = tuple(cases)
    if "finetune" in doc:
        ft = doc["finetune"]
        if ft is False or ft == {}:
            kw["finetune"] = None
        else:
            old = base.finetune
            tr = old.train.to_dict() if old else training.TrainConfig().to_dict()
            kw["finetune"] = FinetuneSpec(
                ft.get("config", old.config if old else "ideal"),
                training.TrainConfig.from_dict({**tr, **ft.get("train", {})}),
            )
    return base.replace(**kw)


# --------------------------------------------------------------------------- the study


def summarize(acc: np.ndarray) -> dict:
    """Statistics of ``S`` Monte Carlo sample accuracies: mean, std (population), min, max,
    5/50/95th percentiles, and the uncertainty of the mean over samples.

    ``se = s / sqrt(S)`` with the sample standard deviation ``s`` (``ddof=1``) and
    ``ci95 = mean +- t_{0.975, S-1} se`` (Student's t), clipped to ``[0, 1]`` (accuracies
    are fractions); both ``None`` for one sample.

    Example:
      >>> r = summarize([0.90, 0.92, 0.94])
      >>> round(r["se"], 4), [round(v, 3) for v in r["ci95"]]
      (0.0115, [0.87, 0.97])
    """
    from scipy import stats

    a = np.asarray(acc, dtype=np.float64).reshape(-1)
    out = {
        "mean": float(a.mean()),
        "std": float(a.std()),
        "min": float(a.min()),
        "max": float(a.max()),
        "p05": float(np.percentile(a, 5)),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "se": None,
        "ci95": None,
    }
    if a.size >= 2:
        se = float(a.std(ddof=1) / np.sqrt(a.size))
        half = float(stats.t.ppf(0.975, a.size - 1)) * se
        out.update(se=se, ci95=[max(out["mean"] - half, 0.0), min(out["mean"] + half, 1.0)])
    return out


def config_keys(seed: int, name: str, samples: int) -> jax.Array:
    """Monte Carlo keys of config ``name``: ``split(fold_in(key(seed), crc32(name)), S)``.

    A config's samples depend on its name and the seed only, not on which other
    configs a study runs or in which order.

    Args:
      seed: the study's seed.
      name: the config's (or cell's) name.
      samples: ``S``, the number of keys.

    Returns:
      ``(S,)`` PRNG keys.

    Example:
      >>> import jax
      >>> from crossjax import study
      >>> def same(a, b):
      ...     return bool((jax.random.key_data(a) == jax.random.key_data(b)).all())
      >>> k = study.config_keys(0, "ideal", 3)
      >>> k.shape, same(k, study.config_keys(0, "ideal", 3)), same(k, study.config_keys(0, "noise", 3))
      ((3,), True, False)
    """
    base = jax.random.fold_in(jax.random.key(seed), zlib.crc32(name.encode()) & 0x7FFFFFFF)
    return jax.random.split(base, samples)


def build_model(spec: StudySpec, feature_shape: tuple[int, ...], num_classes: int, seed: int):
    """The study's model with ``nnx.Rngs(params=seed, hardware=seed + 1)``.

    ``spec.model`` picks it (:data:`MODELS`): an :class:`~crossjax.models.MLP` on the
    flattened features with ``spec.hidden``; a :func:`~crossjax.models.vit` (converted
    with ``spec.rules``) on square images (flat features are taken as one-channel
    ``sqrt(F) x sqrt(F)`` images); else ``models.<name>`` on NHWC images.

    Args:
      spec: the study's :class:`StudySpec`.
      feature_shape: shape of one input example, without the batch axis (``(F,)`` flat,
        or ``(H, W, C)`` images).
      num_classes: number of output logits.
      seed: the study's seed.

    Returns:
      The model (an ``nnx.Module`` with crossbar layers, digital mode).

    Raises:
      ValueError: ``model="vit"`` on flat features that are not a square image.

    Example:
      >>> import jax.numpy as jnp
      >>> from crossjax import study
      >>> model = study.build_model(study.get_preset("quick"), (8,), 3, seed=0)
      >>> type(model).__name__, model(jnp.ones((2, 8))).shape
      ('MLP', (2, 3))
    """
    rngs = nnx.Rngs(params=seed, hardware=seed + 1)
    if spec.model == "mlp":
        return models.MLP(int(np.prod(feature_shape)), hidden=tuple(spec.hidden), num_classes=num_classes, rngs=rngs)
    if spec.model == "vit":  # flat digits are 8x8 single-channel images
        if len(feature_shape) == 1:
            size, channels = int(round(np.sqrt(feature_shape[0]))), 1
            if size * size != feature_shape[0]:
                raise ValueError(f"model='vit' needs square images; the dataset has {feature_shape[0]} flat features")
        else:
            size, channels = int(feature_shape[0]), int(feature_shape[-1])
        return models.vit(num_classes, in_channels=channels, image_size=size, rules=spec.rules, rngs=rngs)
    factory = getattr(models, spec.model)
    return factory(num_classes=num_classes, in_channels=int(feature_shape[-1]), rngs=rngs)


def fingerprint_of(arguments: dict) -> str:
    """Hash of a study's ``arguments`` (a JSON-able dict of everything that changes its
    numbers) together with the float precision and the package version: the
    fingerprint every resumable artifact of a study carries (16 hex digits).

    Example:
      >>> from crossjax import study
      >>> study.fingerprint_of({"seed": 0}) == study.fingerprint_of({"seed": 0})
      True
      >>> study.fingerprint_of({"seed": 0}) == study.fingerprint_of({"seed": 1})
      False
    """
    doc = json.dumps(
        {**arguments, "x64": bool(jax.config.jax_enable_x64), "crossjax": crossjax.__version__},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(doc.encode()).hexdigest()[:16]


def fingerprint(spec: StudySpec, seed: int, data_dir: str | None = None) -> str:
    """:func:`fingerprint_of` the whole spec, the seed and where the dataset is read from.

    Args:
      spec: the study's :class:`StudySpec`.
      seed: the study's seed.
      data_dir: the dataset directory (made absolute), or ``None`` for the default.

    Returns:
      16 hex digits (``str``).

    Example:
      >>> from crossjax import study
      >>> spec = study.get_preset("quick")
      >>> len(study.fingerprint(spec, 0)), study.fingerprint(spec, 0) == study.fingerprint(spec, 1)
      (16, False)
    """
    return fingerprint_of(
        {
            "spec": spec.to_dict(),
            "seed": seed,
            "data_dir": None if data_dir is None else os.path.abspath(os.fspath(data_dir)),
        }
    )


def check_out_dir(out: str) -> None:
    """``out`` is (or can be made) a writable directory: ``ValueError`` naming the fix otherwise.

    Creates ``out`` (and its parents) when it does not exist.

    Args:
      out: the directory path.

    Raises:
      ValueError: ``out`` is a file, cannot be created or is not writable.

    Example:
      >>> import os, tempfile
      >>> from crossjax import study
      >>> out = os.path.join(tempfile.mkdtemp(), "run")
      >>> study.check_out_dir(out)
      >>> os.path.isdir(out)
      True
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} is a file, not a directory; choose a directory path.")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--out {out!r} cannot be created ({e.strerror}); choose a writable path.") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out!r} is not writable; choose a writable directory.")


def read_results(path: str) -> dict:
    """A study's ``results.json``: ``ValueError`` naming the file when it is corrupt, truncated or not a study's.

    Args:
      path: the JSON file.

    Returns:
      The results dict (the schema of ``docs/results.md``: at least a ``meta`` dict and a
      ``configs`` list).

    Raises:
      ValueError: invalid JSON, or JSON that is not a dict with ``meta`` and ``configs``.

    Example:
      >>> import os, tempfile
      >>> from crossjax import study
      >>> path = os.path.join(tempfile.mkdtemp(), "results.json")
      >>> with open(path, "w") as f:
      ...     _ = f.write('{"meta": {}, "configs": []}')
      >>> study.read_results(path)
      {'meta': {}, 'configs': []}
    """
    try:
        with open(path) as f:
            results = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path!r} is corrupt or truncated ({e}); delete it or pass --overwrite.") from None
    if (
        not isinstance(results, dict)
        or not isinstance(results.get("meta"), dict)
        or not isinstance(results.get("configs"), list)
    ):
        raise ValueError(
            f"{path!r} does not hold a crossjax study's results (a {type(results).__name__} "
            "without meta/configs); delete it or pass --overwrite."
        )
    return results


def versions() -> dict[str, str]:
    """Versions of crossjax and what it runs on (recorded in every results file's ``meta.versions``).

    Returns:
      ``{name: str}``: the versions of crossjax, jax, flax, optax, numpy and Python, the JAX
      ``backend``, the ``devices`` (count x kind) and the number of ``processes``.

    Example:
      >>> from crossjax import study
      >>> sorted(study.versions())
      ['backend', 'crossjax', 'devices', 'flax', 'jax', 'numpy', 'optax', 'processes', 'python']
    """

    return {
        "crossjax": crossjax.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
        "processes": str(jax.process_count()),
    }


def _is_checkpoint(path: str) -> bool:
    """Whether ``path`` is a file ``crossjax.checkpoint`` wrote (its format and content hash)."""
    try:
        ckpt.read_checkpoint(path)
        return True
    except (ValueError, OSError, KeyError, TypeError):  # not ours, or torn
        return False


def discard(out: str, files=()) -> list[str]:
    """Delete what a study run wrote into ``out``; returns the deleted names.

    Deleted: ``results.json``, ``report.md``, the ``files`` named (a study's
    plots and fixed checkpoint names, whatever their state) and every
    ``model_*.ckpt`` that is a crossjax checkpoint (a study's trained model
    variants). Nothing else in ``out`` is touched.

    Args:
      out: the study's directory (it must exist).
      files: further file names in ``out`` to delete.

    Returns:
      The names (not paths) of the files deleted, in deletion order.

    Example:
      >>> import os, tempfile
      >>> from crossjax import study
      >>> out = tempfile.mkdtemp()
      >>> for name in ("results.json", "report.md", "notes.txt"):
      ...     open(os.path.join(out, name), "w").close()
      >>> study.discard(out), sorted(os.listdir(out))
      (['results.json', 'report.md'], ['notes.txt'])
    """
    gone = []
    names = [RESULTS, REPORT, *files]
    names += sorted(
        n
        for n in os.listdir(out)
        if n.startswith("model_") and n.endswith(".ckpt") and _is_checkpoint(os.path.join(out, n))
    )
    for name in dict.fromkeys(names):
        path = os.path.join(out, name)
        if os.path.isfile(path):
            os.unlink(path)
            gone.append(name)
    return gone


class RunDirectory:
    """The output directory of one study run: locked, resumable, written atomically.

    Every study (:func:`run_study` and the paper studies) keeps its state here:
    ``results.json`` (rewritten atomically by :meth:`save`, with the wall time of
    every run into the directory in ``meta.seconds``) and its checkpoints, all
    tagged with the run's :func:`fingerprint_of`. Opening it

    1. checks ``out`` is a writable directory (``ValueError`` naming the fix);
    2. locks it (``checkpoint.DirectoryLock``: a second run into it fails at once)
       until :meth:`close` (or the object is collected);
    3. with ``overwrite``, first deletes what an earlier run wrote (:func:`discard`,
       ``files``: the study's other file names);
    4. reads ``results.json`` when it exists and carries ``fingerprint``
       (another fingerprint: ``ValueError`` naming ``--overwrite``), else starts
       from ``fresh`` (its ``meta`` gets the fingerprint, the versions and
       ``complete: False``).

    Args:
      out: the directory (created if missing).
      fingerprint: the run's :func:`fingerprint_of`.
      fresh: the results of a run that has computed nothing (a dict with ``"configs": []``
        and a ``"meta"`` dict).
      overwrite: discard an earlier run's files first.
      files: the names besides ``results.json``, ``report.md`` and ``model_*.ckpt``
        that the study writes (plots, fixed checkpoint names).
      label: who opens it, for error messages.

    Example:
      >>> import tempfile
      >>> from crossjax import study
      >>> out = tempfile.mkdtemp()
      >>> with study.RunDirectory(out, "f00d", {"configs": [], "meta": {}}) as d:
      ...     d.results["configs"].append({"name": "ideal"})
      ...     d.save()
      >>> with study.RunDirectory(out, "f00d", {"configs": [], "meta": {}}) as d:
      ...     [c["name"] for c in d.results["configs"]]
      ['ideal']
    """

    def __init__(self, out, fingerprint: str, fresh: dict, *, overwrite: bool = False, files=(), label: str = "study"):
        self.out = os.fspath(out)
        self.writer = True
        self.fingerprint = fingerprint
        check_out_dir(self.out)
        self._lock = ckpt.DirectoryLock(self.out).__enter__()
        self._release = weakref.finalize(self, self._lock.__exit__)
        try:
            if overwrite:
                discard(self.out, files)
            self.results = self._read(fresh, label)
        except BaseException:
            self.close()
            raise
        self._start(self.results)

    @classmethod
    def follower(cls, out, results: dict) -> "RunDirectory":
        """A non-writing view of a run another process writes (``jax.distributed``: processes but
        0): ``results`` received from it, :meth:`save` only keeps the wall time."""
        self = cls.__new__(cls)
        self.out, self.writer, self._lock = os.fspath(out), False, None
        self.fingerprint = results["meta"].get("fingerprint")
        self._start(results)
        return self

    def _start(self, results: dict) -> None:
        self.results = results
        self._t0 = time.perf_counter()
        self._previous = float(results["meta"].get("seconds", 0.0))

    def _read(self, fresh: dict, label: str) -> dict:
        path = os.path.join(self.out, RESULTS)
        if os.path.exists(path):
            results = read_results(path)
            if results["meta"].get("fingerprint") != self.fingerprint:
                raise ValueError(
                    f"{label}: {path!r} was written with other arguments (another preset, config, settings, "
                    f"seed, samples, dataset, data_dir, precision or version); pass --overwrite "
                    f"(overwrite=True) to discard it and start afresh, or choose another out directory"
                )
            return results
        meta = {
            **fresh.get("meta", {}),
            "versions": versions(),
            "seconds": 0.0,
            "fingerprint": self.fingerprint,
            "complete": False,
        }
        return {**fresh, "meta": meta}

    def path(self, name: str) -> str:
        """The path of file ``name`` in the directory."""
        return os.path.join(self.out, name)

    def save(self) -> None:
        """Record the wall time so far in ``meta.seconds`` and (the writer) rewrite ``results.json``."""
        self.results["meta"]["seconds"] = self._previous + time.perf_counter() - self._t0
        if self.writer:
            ckpt.atomic_write_text(self.path(RESULTS), json.dumps(jsonable(self.results), indent=1) + "\n")

    def close(self) -> None:
        """Release the lock (idempotent)."""
        if self._lock is not None:
            self._release()

    def __enter__(self) -> "RunDirectory":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


CALIBRATION_EXAMPLES = 256  # training inputs that set calibrated ADC ranges (adc.range="calibrated")
COST_EXAMPLES = 32  # test inputs the cost model averages a config's read energy over


def evaluate_config(
    model,
    hardware,
    keys,
    x,
    y,
    *,
    name: str,
    batch_size: int = 512,
    chunk_size: int | None = None,
    progress: bool = False,
    calibration_x=None,
) -> np.ndarray:
    """Test accuracy of every Monte Carlo sample of one hardware config of a study.

    ``crossjax.montecarlo.evaluate`` on ``keys`` (``config_keys``), with
    non-finite logits reported under the config's ``name``.

    Args:
      model: the trained model (digital mode).
      hardware: the config's ``HardwareConfig``.
      keys: ``(S,)`` PRNG keys, one per sample.
      x, y: test inputs and integer labels.
      name: the config's name (in error messages).
      batch_size, chunk_size, progress, calibration_x: as ``montecarlo.evaluate``.

    Returns:
      ``(S,)`` float64 accuracies (fractions).

    Raises:
      montecarlo.NonFiniteLogits: a sample's logits are not finite (the message names the config).

    Example:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from crossjax import models, study
      >>> from crossjax.hardware import HardwareConfig
      >>> model = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
      >>> x, y = jnp.ones((6, 8)), jnp.zeros(6, dtype=jnp.int32)
      >>> acc = study.evaluate_config(model, HardwareConfig(), study.config_keys(0, "ideal", 2), x, y, name="ideal")
      >>> acc.shape, str(acc.dtype)
      ((2,), 'float64')
    """
    try:
        res = montecarlo.evaluate(
            model,
            hardware,
            keys,
            x,
            y,
            batch_size=batch_size,
            chunk_size=chunk_size,
            progress=progress,
            calibration_x=calibration_x,
        )
    except montecarlo.NonFiniteLogits as e:
        raise montecarlo.NonFiniteLogits(f"config {name!r}: {e}") from None
    return np.asarray(res["accuracy"], dtype=np.float64).reshape(-1)


def _monte_carlo(
    model, hw, keys, x, y, spec: StudySpec, progress: bool = False, calibration_x=None, name: str = "?"
) -> np.ndarray:
    return evaluate_config(
        model,
        hw,
        keys,
        x,
        y,
        name=name,
        batch_size=spec.eval_batch_size,
        chunk_size=spec.chunk_size,
        progress=progress,
        calibration_x=calibration_x,
    )


def run_study(
    spec,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    data_dir: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    plots: bool = True,
) -> dict:
    """Run (or resume) ``spec`` into directory ``out``; returns the results dict.

    ``spec``: what :func:`get_preset` gives, a :class:`StudySpec` (the steps of
    the module docstring) or a ``paper_studies.PaperStudy`` (its module runs
    it, on the same directory, training and checkpoint machinery; always with
    plots, in one process).

    The directory is locked while the study runs (a second run into it fails at
    once); ``results.json`` and the checkpoints are reused only when they carry
    this study's :func:`fingerprint`, else ``ValueError`` (``overwrite=True``
    starts afresh).

    Under ``jax.distributed`` (:func:`crossjax.distributed.initialize`) every
    process calls this with the same arguments: process 0 reads ``out``,
    trains and writes; the others receive its results so far and its trained
    variables (:mod:`crossjax.distributed`), the Monte Carlo samples are
    sharded over every process's devices, and every process returns the same
    results. Only process 0 needs ``out``.

    Args:
      spec: a :class:`StudySpec` or a ``paper_studies.PaperStudy``.
      out: the study's directory (``results.json``, ``report.md``, plots, checkpoints).
      seed: seed of the model's initialisation, training and Monte Carlo keys.
      data_dir: where the dataset is read from (``None``: ``crossjax.data``'s default).
      overwrite: discard what an earlier, different study wrote into ``out`` and start afresh.
      progress: show progress bars.
      plots: write the PNG plots (paper studies always do).

    Returns:
      The results dict (the schema of ``docs/results.md``), as written to ``out/results.json``.

    Raises:
      ValueError: ``spec`` is neither kind, ``out`` holds another study's files (without
        ``overwrite``) or is locked by a running study, or ``plots=False`` / several
        processes for a paper study.

    Example:
      >>> import tempfile
      >>> from crossjax import study
      >>> results = study.run_study(study.get_preset("quick"), tempfile.mkdtemp())  # doctest: +SKIP
      >>> sorted(results)  # doctest: +SKIP
      ['configs', 'digital', 'finetune', 'meta']
    """
    out = os.fspath(out)
    if isinstance(spec, paper_studies.PaperStudy):
        if not plots:
            raise ValueError(
                f"run_study: the paper study {spec.name!r} always writes its plots; drop plots=False (--no-plots)"
            )
        if jax.process_count() > 1:
            raise ValueError(
                f"run_study: the paper study {spec.name!r} runs in one process; drop --distributed (jax.distributed)"
            )
        return spec.run(out, seed=seed, data_dir=data_dir, overwrite=overwrite, progress=progress)
    if not isinstance(spec, StudySpec):
        raise ValueError(
            f"run_study: spec must be a StudySpec or a paper_studies.PaperStudy (study.get_preset), "
            f"got {type(spec).__name__}"
        )
    if not distributed.is_writer():
        got = distributed.broadcast_json()
        if "error" in got:
            raise ValueError(got["error"])
        return _run_study_body(spec, RunDirectory.follower(out, got["results"]), seed, data_dir, progress, plots)
    fresh = {
        "digital": None,
        "configs": [],
        "finetune": None,
        "meta": {"seed": seed, "dataset": spec.dataset, "model": spec.model, "spec": spec.to_dict()},
    }
    try:
        run = RunDirectory(
            out,
            fingerprint(spec, seed, data_dir),
            fresh,
            overwrite=overwrite,
            files=(MODEL_CKPT, FINETUNE_CKPT, *report.PLOTS),
            label="run_study",
        )
    except ValueError as e:
        distributed.broadcast_json({"error": str(e)})
        raise
    with run:
        distributed.broadcast_json({"results": run.results})
        return _run_study_body(spec, run, seed, data_dir, progress, plots)


def _run_study_body(spec, run: RunDirectory, seed, data_dir, progress, plots) -> dict:
    """The study proper. ``run.writer``: this process trains, writes checkpoints and
    files (process 0); the others receive the trained variables and write nothing."""
    out, results, fp, writer = run.out, run.results, run.fingerprint, run.writer
    progress = progress and writer
    flush = run.save

    def trained(run, model, **kw):
        """``run(model, ...)`` on process 0; its variables and step count everywhere."""
        step = run(model, **kw).step if writer else 0
        distributed.broadcast_variables(model)
        return int(distributed.broadcast_json(step))

    flat = spec.model == "mlp"
    train_ds = data_lib.load_dataset(spec.dataset, split="train", data_dir=data_dir, flatten=flat)
    test_ds = data_lib.load_dataset(spec.dataset, split="test", data_dir=data_dir, flatten=flat)
    if spec.max_train:
        train_ds = train_ds.take(spec.max_train)
    if spec.max_test:
        test_ds = test_ds.take(spec.max_test)
    x_test, y_test = jnp.asarray(test_ds.x), jnp.asarray(test_ds.y)

    # 1. digital training (resumes from / loads DIR/model.ckpt)
    model = build_model(spec, train_ds.feature_shape, train_ds.num_classes, seed)
    if spec.model in CONVERTED_MODELS:  # what became of each layer (rules included)
        results["meta"]["conversion"] = conversion.conversion_table(model)
    t0 = time.perf_counter()
    train_steps = trained(
        functools.partial(
            training.train,
            dataset=train_ds,
            config=spec.train,
            checkpoint_path=os.path.join(out, MODEL_CKPT),
            progress=progress,
            description="digital training",
            fingerprint=fp,
        ),
        model,
    )
    if results["digital"] is None:
        acc = float(montecarlo.digital_accuracy(model, x_test, y_test, spec.eval_batch_size))
        results["digital"] = {
            "accuracy": acc,
            "train_steps": train_steps,
            "train_seconds": time.perf_counter() - t0,
            "test_examples": int(len(test_ds)),
            "train_examples": int(len(train_ds)),
        }
        flush()

    # 2. Monte Carlo per hardware config, skipping finished ones
    x_cal = train_ds.x[:CALIBRATION_EXAMPLES]  # sets calibrated ADC ranges (training data)
    done = {c["name"] for c in results["configs"]}
    for case in spec.configs:
        if case.name in done:
            continue
        t0 = time.perf_counter()
        samples = case.samples or (spec.samples if is_stochastic(case.hardware) else 1)
        keys = config_keys(seed, case.key_name, samples)
        accs = _monte_carlo(model, case.hardware, keys, x_test, y_test, spec, progress, x_cal, name=case.name)
        results["configs"].append(
            {
                "name": case.name,
                "samples": int(samples),
                "accuracy": summarize(accs),
                "per_sample": accs.tolist(),
                "hardware": jsonable(case.hardware.to_dict()),
                "cost": cost_lib.programmed_cost(model, case.hardware, x_test[:COST_EXAMPLES], keys[0]),
                "seconds": time.perf_counter() - t0,
            }
        )
        flush()

    # 3. non-ideality-aware fine-tuning under one config
    if spec.finetune is not None and results.get("finetune") is None:
        ft = spec.finetune
        case = next(c for c in spec.configs if c.name == ft.config)
        samples = case.samples or spec.samples
        keys = config_keys(seed + 1, "finetune/" + case.name, samples)
        t0 = time.perf_counter()
        before = _monte_carlo(
            model, case.hardware, keys, x_test, y_test, spec, progress, x_cal, name="finetune/" + case.name
        )
        tuned = nnx.clone(model)
        steps = trained(
            functools.partial(
                training.finetune,
                dataset=train_ds,
                config=ft.train,
                hardware=case.hardware,
                checkpoint_path=os.path.join(out, FINETUNE_CKPT),
                progress=progress,
                description=f"finetune ({case.name})",
                fingerprint=fp,
            ),
            tuned,
        )
        # evaluate a fresh digital-mode model holding the fine-tuned weights, so the
        # Monte Carlo evaluation sees exactly the model structure it saw before
        evaluated = build_model(spec, train_ds.feature_shape, train_ds.num_classes, seed)
        nnx.update(evaluated, nnx.state(tuned, nnx.Param))
        after = _monte_carlo(
            evaluated,
            case.hardware,
            keys,
            x_test,
            y_test,
            spec,
            progress,
            x_cal,
            name="finetune/" + case.name + " (after)",
        )
        digital_after = float(montecarlo.digital_accuracy(evaluated, x_test, y_test, spec.eval_batch_size))
        results["finetune"] = {
            "config": case.name,
            "samples": int(samples),
            "steps": steps,
            "before": summarize(before),
            "after": summarize(after),
            "per_sample_before": before.tolist(),
            "per_sample_after": after.tolist(),
            "digital_after": digital_after,
            "recovered_fraction": _recovered(results["digital"]["accuracy"], float(before.mean()), float(after.mean())),
            "train": ft.train.to_dict(),
            "seconds": time.perf_counter() - t0,
        }
        flush()

    results["meta"]["complete"] = True
    if not writer:
        return results

    # the wall time stops once the plots are drawn: results.json, report.md and the CLI quote it
    report.write_report(
        out,
        results,
        model=model if plots else None,
        spec=spec,
        x_example=test_ds.x[0],
        plots=plots,
        before_markdown=flush,
    )
    return results


def _recovered(digital: float, before: float, after: float) -> float | None:
    """Fraction of the accuracy lost under the config that fine-tuning regains."""
    lost = digital - before
    return None if lost <= 0 else (after - before) / lost


# the paper studies register themselves as presets (crossjax.paper_studies.STUDIES); imported last,
# since that package imports this module
from crossjax import paper_studies  # noqa: E402
