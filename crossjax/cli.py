"""The `crossjax` command line: `crossjax study ...` (the main job).

`crossjax study --out DIR [--preset NAME] [--config FILE.toml] [--samples S]
[--seed N] [--dataset NAME] [--data-dir D] [--train-steps N] [--overwrite]
[--no-plots] [--quiet] [--devices N]
[--distributed [--coordinator HOST:PORT --num-processes N --process-id I]]`

`crossjax data prepare NAME --source PATH [--data-dir D] [--no-verify]`:
convert a downloaded MNIST/CIFAR archive into the files `--dataset NAME`
reads (see `crossjax.data.prepare`; no TensorFlow needed).

Precedence: preset < TOML file < flags. Every key of the TOML file and every
hardware field: docs/configuration.md; what a study writes (results.json):
docs/results.md. Subcommands are registered in `SUBCOMMANDS` (name ->
(add_arguments, run, help)), so `bench` can be added beside `study`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

DOCS = (
    "configuration keys (TOML --config) and every hardware field: docs/configuration.md; "
    "what a study writes (results.json keys, types, units): docs/results.md"
)
#: flags a paper-study preset does not take (its settings are fixed by --quick and the study)
SPEC_ONLY_FLAGS = (
    ("config", "--config"),
    ("train_steps", "--train-steps"),
    ("chunk_size", "--chunk-size"),
    ("no_finetune", "--no-finetune"),
    ("no_plots", "--no-plots"),
    ("model", "--model"),
)


def _add_study_arguments(p: argparse.ArgumentParser) -> None:
    from crossjax import paper_studies

    p.add_argument("--out", required=True, help="output directory (results.json, report.md, plots)")
    p.add_argument(
        "--preset",
        default="default",
        help=f"study preset, one of {', '.join(preset_names())} (default: default); "
        f"{', '.join(paper_studies.STUDIES)} rerun the seed papers' studies",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="laptop-scale run of any preset (small model, few samples; "
        "--preset default --quick is the 'quick' preset)",
    )
    p.add_argument("--config", help="TOML file overriding the preset; its keys: docs/configuration.md")
    p.add_argument("--samples", type=int, help="Monte Carlo samples per stochastic config")
    p.add_argument("--seed", type=int, default=0, help="seed of model init, data order and samples")
    p.add_argument("--dataset", help="dataset name (digits, mnist, cifar10, cifar100)")
    p.add_argument(
        "--model", help="model (mlp, vgg11, vgg16, resnet18, vit: a vision transformer converted from plain Flax)"
    )
    p.add_argument(
        "--data-dir",
        help="directory of prepared datasets (`crossjax data prepare` "
        "or tfds); default $TFDS_DATA_DIR or ~/tensorflow_datasets",
    )
    p.add_argument("--train-steps", type=int, help="digital training steps")
    p.add_argument("--chunk-size", type=int, help="Monte Carlo samples per vmapped chunk")
    p.add_argument("--no-finetune", action="store_true", help="skip the fine-tuning step")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="discard the files an earlier run wrote in --out (results, checkpoints, "
        "models, report, plots) and start afresh instead of resuming",
    )
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="run the Monte Carlo samples on N local CPU devices (sets XLA_FLAGS="
        "--xla_force_host_platform_device_count=N before JAX starts; IR-drop configs "
        "are refused on N > 1: jaxlib's batched LU deadlocks there, run one process "
        "per device instead); on a GPU/TPU JAX uses every accelerator it sees and "
        "this flag is refused",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="one process of a multi-process job (jax.distributed): run the same command in "
        "every process; the Monte Carlo samples are sharded over every process's devices, "
        "process 0 trains and writes --out. Under SLURM/MPI JAX finds its peers; elsewhere "
        "pass --coordinator, --num-processes and --process-id",
    )
    p.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="with --distributed: process 0's address (default: the cluster environment or $JAX_COORDINATOR_ADDRESS)",
    )
    p.add_argument("--num-processes", type=int, metavar="N", help="with --distributed: processes in the job")
    p.add_argument("--process-id", type=int, metavar="I", help="with --distributed: this process's index")


def preset_names() -> tuple[str, ...]:
    """Every ``--preset`` name (``crossjax.study.preset_names``: the study presets, then the paper studies).

    Returns:
      tuple of str, in registration order.

    Example:
      >>> from crossjax import cli, study
      >>> cli.preset_names()[:2], cli.preset_names() == study.preset_names()
      (('default', 'quick'), True)
    """
    from crossjax import study

    return study.preset_names()


def _check_preset(name: str) -> None:
    if name not in preset_names():
        from crossjax import paper_studies

        plain = [n for n in preset_names() if n not in paper_studies.STUDIES]
        raise ValueError(
            f"unknown study preset --preset={name!r}; choose one of "
            f"{', '.join(preset_names())} (study presets: {', '.join(plain)}; paper-study presets: "
            f"{', '.join(paper_studies.STUDIES)})"
        )


def study_spec_from_args(args: argparse.Namespace):
    """The spec that ``args`` describe: a :class:`crossjax.study.StudySpec`, or for a paper-study
    preset a ``crossjax.paper_studies.PaperStudy`` (which takes ``--quick``, ``--samples`` and
    ``--dataset`` only).

    Args:
      args: parsed ``crossjax study`` arguments (``build_parser().parse_args(["study", ...])``).

    Returns:
      The ``StudySpec``: the preset (``--quick`` turns ``default`` into ``quick``), then the
      ``--config`` TOML file, then the flags (``--samples``, ``--dataset``, ``--model``,
      ``--train-steps``, ``--chunk-size``, ``--no-finetune``). For a paper-study preset, its
      ``PaperStudy`` with ``quick``, ``samples`` (``None``: the study's own) and ``dataset``
      (default ``"digits"``).

    Raises:
      ValueError: an unknown preset; a paper-study preset given a flag it does not take;
        ``--quick`` with a study preset other than ``default`` or ``quick``; a bad
        ``--config`` file (from :func:`crossjax.study.spec_from_toml`).

    Example:
      >>> from crossjax import cli
      >>> parse = cli.build_parser().parse_args
      >>> spec = cli.study_spec_from_args(parse(["study", "--out", "o", "--quick", "--samples", "3", "--no-finetune"]))
      >>> type(spec).__name__, spec.model, spec.samples, spec.finetune
      ('StudySpec', 'mlp', 3, None)
      >>> paper = cli.study_spec_from_args(parse(["study", "--out", "o", "--preset", "dub_adc", "--quick"]))
      >>> type(paper).__name__, paper.quick, paper.samples, paper.dataset
      ('PaperStudy', True, None, 'digits')
    """
    from crossjax import paper_studies, study

    _check_preset(args.preset)
    if isinstance(study.get_preset(args.preset), paper_studies.PaperStudy):
        given = [flag for dest, flag in SPEC_ONLY_FLAGS if getattr(args, dest, None)]
        if given:
            raise ValueError(
                f"--preset {args.preset} is a paper-study preset: its settings are fixed "
                f"(choose the scale with --quick, --samples, --seed, --dataset, --data-dir; "
                f"--overwrite starts afresh); it does not take {', '.join(given)}"
            )
        return study.get_preset(args.preset).replace(
            quick=bool(getattr(args, "quick", False)), samples=args.samples, dataset=args.dataset or "digits"
        )
    name = args.preset
    if getattr(args, "quick", False) and name != "quick":
        if name != "default":
            raise ValueError(
                f"--quick: study preset {name!r} has no quick variant; --quick applies to "
                f"'default' (its 'quick' preset) and the paper-study presets"
            )
        name = "quick"  # --quick means the laptop-scale run for every preset
    spec = study.get_preset(name)
    if args.config:
        spec = study.spec_from_toml(args.config, spec)
    kw = {}
    if args.samples is not None:
        kw["samples"] = args.samples
    if args.dataset is not None:
        kw["dataset"] = args.dataset
    if getattr(args, "model", None) is not None:
        kw["model"] = args.model
    if args.train_steps is not None:
        kw["train"] = spec.train.replace(steps=args.train_steps)
    if args.chunk_size is not None:
        kw["chunk_size"] = args.chunk_size
    if args.no_finetune:
        kw["finetune"] = None
    return spec.replace(**kw) if kw else spec


def _snapshot(out: str) -> dict[str, tuple[int, int, int]]:
    """``relative path -> (inode, mtime_ns, size)`` of every file under ``out``."""
    seen = {}
    for root, _, files in os.walk(out):
        for name in files:
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            seen[os.path.relpath(path, out)] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return seen


def written_files(out: str, before: dict) -> list[str]:
    """Files under ``out`` created or rewritten since ``before = _snapshot(out)`` (``.lock`` excluded):
    results.json and report.md first, then the rest by name.

    Args:
      out: the output directory.
      before: ``_snapshot(out)`` taken before the run (relative path -> ``(inode, mtime_ns,
        size)``); ``{}`` when ``out`` did not exist.

    Returns:
      list of str: the paths relative to ``out`` whose inode, mtime or size differ from
      ``before`` or that are new (deleted files are not listed).

    Example:
      >>> import os, tempfile
      >>> from crossjax import cli
      >>> out = tempfile.mkdtemp()
      >>> open(os.path.join(out, "old.txt"), "w").close()
      >>> before = cli._snapshot(out)
      >>> for name in ("plot.png", "report.md", "results.json", ".lock"):
      ...     open(os.path.join(out, name), "w").close()
      >>> cli.written_files(out, before)
      ['results.json', 'report.md', 'plot.png']
    """
    after = _snapshot(out)
    names = [n for n, s in after.items() if before.get(n) != s and os.path.basename(n) != ".lock"]
    first = {"results.json": 0, "report.md": 1}
    return sorted(names, key=lambda n: (first.get(n, 2), n))


def _print_written(out: str, before: dict, seconds: float) -> None:
    """The study's wall time (``results.json`` ``meta.seconds``, the figure ``report.md`` quotes;
    this invocation's too when it resumed an earlier run) and every file written."""
    names = written_files(out, before)
    total = ((_finished_before(out) or {}).get("meta") or {}).get("seconds")
    if total is None:
        print(f"done in {seconds:.1f} s")
    elif total > seconds + 1:
        print(
            f"done: wall time {total:.1f} s over every run into {out} (results.json meta.seconds, "
            f"as report.md says); this run {seconds:.1f} s"
        )
    else:
        print(f"done: wall time {total:.1f} s (results.json meta.seconds, as report.md says)")
    print("wrote: " + (", ".join(os.path.join(out, n) for n in names) if names else "nothing"))


def _finished_before(out: str) -> dict | None:
    """The results.json already in ``out`` (``None``: none, or unreadable: the study reports it)."""
    from crossjax import study

    path = os.path.join(out, study.RESULTS)
    if not os.path.isfile(path):
        return None
    try:
        return study.read_results(path)
    except (ValueError, OSError):
        return None


def _names(items) -> str:
    return ", ".join(items) if items else "none"


def _print_study_resume(args: argparse.Namespace, spec) -> None:
    """What a resumed ``crossjax study`` skips: the stages ``DIR/results.json`` already holds."""
    from crossjax import study

    if args.overwrite:
        return
    prior = _finished_before(args.out)
    if prior is None or prior["meta"].get("fingerprint") != study.fingerprint(spec, args.seed, args.data_dir):
        if os.path.exists(os.path.join(args.out, study.MODEL_CKPT)) and prior is None:
            print(f"resuming: digital training continues from {os.path.join(args.out, study.MODEL_CKPT)}")
        return
    done = [c["name"] for c in prior["configs"]]
    todo = [c.name for c in spec.configs if c.name not in done]
    skip = []
    if prior.get("digital") is not None:
        skip.append(f"digital training and accuracy ({study.MODEL_CKPT})")
    skip.append(f"configs {_names(done)} ({len(done)} of {len(spec.configs)})")
    if spec.finetune is not None and prior.get("finetune") is not None:
        skip.append(f"fine-tuning under {spec.finetune.config}")
    rest = (
        ([] if prior.get("digital") is not None else ["digital training"])
        + ([f"configs {_names(todo)}"] if todo else [])
        + (
            [f"fine-tuning under {spec.finetune.config}"]
            if spec.finetune is not None and prior.get("finetune") is None
            else []
        )
    )
    print(f"resuming from {os.path.join(args.out, study.RESULTS)}: skipping " + "; ".join(skip))
    print("still to run: " + ("; ".join(rest) if rest else "nothing (report and plots are rewritten)"))


def _print_paper_resume(out: str, prior: dict | None, results: dict, models_before: set) -> None:
    """What a resumed paper study reused: the cells and trained models an earlier run left."""
    if prior is None or prior["meta"].get("fingerprint") != results["meta"].get("fingerprint"):
        return
    cells = [c["name"] for c in prior["configs"]]
    print(
        f"resumed from {os.path.join(out, 'results.json')}: skipped {len(cells)} finished cells "
        f"({_names(cells)}) and {len(models_before)} trained models ({_names(sorted(models_before))}); "
        f"computed {results['meta'].get('computed', '?')} new"
    )


def _run_paper_study(args: argparse.Namespace, spec) -> int:
    from crossjax import study

    t0 = time.perf_counter()
    before = _snapshot(args.out) if os.path.isdir(args.out) else {}
    # --overwrite discards the earlier run: nothing of it is reused
    prior = None if args.overwrite else _finished_before(args.out)
    models_before = set() if args.overwrite else {n for n in before if n.startswith("model_") and n.endswith(".ckpt")}
    results = study.run_study(
        spec, args.out, seed=args.seed, data_dir=args.data_dir, overwrite=args.overwrite, progress=not args.quiet
    )
    for c in results["configs"]:
        a = c["accuracy"]
        print(f"{c['name']:>28s}: {100 * a['mean']:6.2f} +- {100 * a['std']:5.2f} % ({c['samples']} samples)")
    _print_paper_resume(args.out, prior, results, models_before)
    _print_written(args.out, before, time.perf_counter() - t0)
    return 0


FORCE_DEVICES = "--xla_force_host_platform_device_count"


def _backend_initialized() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without this private helper: assume it is
        return True


def use_local_devices(n: int) -> int:
    """Make JAX run on ``n`` local CPU devices (``crossjax study --devices N``).

    Sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (replacing an
    earlier count there) and starts JAX's backends, which read it once.

    Args:
      n: the number of CPU devices, ``>= 1``.

    Returns:
      ``n``, the number of local devices JAX now has.

    Raises:
      ValueError: ``n`` is not a positive int; JAX's backend was already started
        with another device count (set ``XLA_FLAGS`` before Python starts, or
        call this before any JAX computation); or JAX's default backend is an
        accelerator (the flag forces CPU devices only).

    Example:
      The second call is not run here: it changes ``XLA_FLAGS`` and starts JAX's
      backends for the whole process.

      >>> from crossjax import cli
      >>> cli.use_local_devices(0)
      Traceback (most recent call last):
      ...
      ValueError: --devices must be a positive int (the number of local CPU devices), got 0
      >>> cli.use_local_devices(4)  # doctest: +SKIP
      4
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"--devices must be a positive int (the number of local CPU devices), got {n!r}")
    import jax

    if not _backend_initialized():
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(FORCE_DEVICES + "=")]
        os.environ["XLA_FLAGS"] = " ".join([*flags, f"{FORCE_DEVICES}={n}"])
    backend = jax.default_backend()
    if backend != "cpu":
        raise ValueError(
            f"--devices {n} forces N CPU devices, but JAX runs on {backend} "
            f"({jax.local_device_count()} local devices): drop --devices (the samples are "
            f"sharded over every {backend} device), or set JAX_PLATFORMS=cpu to use {n} CPU devices"
        )
    have = jax.local_device_count()
    if have != n:
        raise ValueError(
            f"--devices {n}: JAX's backend was already started with {have} local devices; set "
            f"XLA_FLAGS={FORCE_DEVICES}={n} before starting Python (or call use_local_devices "
            "before any JAX computation)"
        )
    return n


def _start_distributed(args: argparse.Namespace) -> None:
    """``--distributed``: join the multi-process job (``--coordinator`` & co. only with it)."""
    given = [
        f
        for f, v in (
            ("--coordinator", args.coordinator),
            ("--num-processes", args.num_processes),
            ("--process-id", args.process_id),
        )
        if v is not None
    ]
    if not args.distributed:
        if given:
            raise ValueError(f"{', '.join(given)} only apply with --distributed; add it or drop them")
        return
    from crossjax import distributed

    if _backend_initialized():
        raise ValueError(
            "--distributed must start before any JAX computation; run crossjax study --distributed as its own process"
        )
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)


def _run_study(args: argparse.Namespace) -> int:
    from crossjax import paper_studies, study

    spec = study_spec_from_args(args)
    paper = isinstance(spec, paper_studies.PaperStudy)
    if args.distributed and paper:
        raise ValueError(
            f"--distributed shards a StudySpec's Monte Carlo samples; the paper study "
            f"{args.preset!r} runs in one process (drop --distributed)"
        )
    _start_distributed(args)  # before JAX starts its backends, as --devices
    if getattr(args, "devices", None) is not None:
        use_local_devices(args.devices)
    if paper:
        return _run_paper_study(args, spec)
    from crossjax import distributed

    t0 = time.perf_counter()
    if not distributed.is_writer():  # process 0 reports; the others run quietly
        study.run_study(
            spec,
            args.out,
            seed=args.seed,
            data_dir=args.data_dir,
            overwrite=args.overwrite,
            progress=False,
            plots=not args.no_plots,
        )
        return 0
    before = _snapshot(args.out) if os.path.isdir(args.out) else {}
    _print_study_resume(args, spec)
    results = study.run_study(
        spec,
        args.out,
        seed=args.seed,
        data_dir=args.data_dir,
        overwrite=args.overwrite,
        progress=not args.quiet,
        plots=not args.no_plots,
    )
    dig = results["digital"]["accuracy"]
    print(f"digital accuracy {100 * dig:.2f} %")
    for c in results["configs"]:
        a = c["accuracy"]
        print(
            f"{c['name']:>20s}: {100 * a['mean']:6.2f} +- {100 * a['std']:5.2f} % "
            f"(min {100 * a['min']:.2f}, {c['samples']} samples)"
        )
    ft = results.get("finetune")
    if ft:
        print(
            f"fine-tuning under {ft['config']}: {100 * ft['before']['mean']:.2f} % -> "
            f"{100 * ft['after']['mean']:.2f} % ({ft['samples']} samples)"
        )
    _print_written(args.out, before, time.perf_counter() - t0)
    return 0


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    from crossjax import data

    actions = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    prep = actions.add_parser(
        "prepare",
        help="convert a downloaded MNIST/CIFAR archive for --dataset NAME",
        description="Convert the official archive you downloaded into "
        "DATA_DIR/crossjax/NAME/{train,test}.npz (no TensorFlow). "
        "CIFAR: cifar-10-python.tar.gz, cifar-10-binary.tar.gz, "
        "cifar-100-python.tar.gz or cifar-100-binary.tar.gz from "
        "https://www.cs.toronto.edu/~kriz/cifar.html; MNIST: a "
        "directory holding the four idx files (.gz or plain).",
    )
    prep.add_argument("name", metavar="NAME", help=f"one of {', '.join(data.IMAGE_SHAPES)}")
    prep.add_argument(
        "--source", required=True, help="the downloaded archive (CIFAR) or directory of idx files (MNIST)"
    )
    prep.add_argument(
        "--data-dir", help="where to write (default: $TFDS_DATA_DIR or ~/tensorflow_datasets); pass the same to study"
    )
    prep.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the MD5 check of official archive names and the official example counts (e.g. for a subset)",
    )


def _run_data(args: argparse.Namespace) -> int:
    import numpy as np

    from crossjax import data

    t0 = time.perf_counter()
    paths = data.prepare(args.name, args.source, args.data_dir, verify=not args.no_verify)
    for split, path in paths.items():
        with np.load(path, allow_pickle=False) as z:
            n = len(z["label"])
        print(f"{args.name} {split}: {n} examples -> {path}")
    print(
        f"prepared {args.name} ({time.perf_counter() - t0:.1f} s); use "
        f"--dataset {args.name}" + (f" --data-dir {args.data_dir}" if args.data_dir else "")
    )
    return 0


SUBCOMMANDS = {
    "study": (_add_study_arguments, _run_study, "train/load a model, evaluate it on crossbar configs, write a report"),
    "data": (
        _add_data_arguments,
        _run_data,
        "prepare MNIST/CIFAR from the official archives (crossjax data prepare ...)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``crossjax`` argument parser with every subcommand.

    Returns:
      ``argparse.ArgumentParser`` (``prog="crossjax"``) with one subcommand per entry of
      ``SUBCOMMANDS`` (``study``, ``data``); the parsed ``command`` names the one given.

    Example:
      >>> from crossjax import cli
      >>> args = cli.build_parser().parse_args(["study", "--out", "runs/a", "--samples", "8"])
      >>> args.command, args.out, args.preset, args.samples, args.seed
      ('study', 'runs/a', 'default', 8, 0)
    """
    parser = argparse.ArgumentParser(
        prog="crossjax",
        description="Simulate neural networks on analog resistive crossbars: "
        "crossjax study (the main job), crossjax data prepare.",
        epilog=DOCS,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, _, help_) in SUBCOMMANDS.items():
        add(sub.add_parser(name, help=help_, description=help_, epilog=DOCS))
    return parser


def main(argv: list[str] | None = None) -> int:
    """The ``crossjax`` command: parse ``argv`` and run its subcommand.

    Args:
      argv: the arguments after ``crossjax`` (default ``sys.argv[1:]``), e.g.
        ``["study", "--out", "runs/a"]``.

    Returns:
      The exit status: the subcommand's (0 when it succeeds), or 2 after printing
      ``crossjax COMMAND: error: ...`` to stderr when it raises ``ValueError`` or
      ``FileNotFoundError`` (a bad preset, flag, config file or data source). Arguments
      argparse cannot parse exit through it (``SystemExit(2)``).

    Example:
      An unknown preset is refused before anything is trained or written:

      >>> import contextlib, io, os, tempfile
      >>> from crossjax import cli
      >>> out = os.path.join(tempfile.mkdtemp(), "run")
      >>> with contextlib.redirect_stderr(io.StringIO()) as err:
      ...     rc = cli.main(["study", "--out", out, "--preset", "nope"])
      >>> rc, err.getvalue().startswith("crossjax study: error: unknown study preset"), os.path.exists(out)
      (2, True, False)
    """
    args = build_parser().parse_args(argv)
    try:
        return SUBCOMMANDS[args.command][1](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"crossjax {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
