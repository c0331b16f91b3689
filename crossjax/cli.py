"""The ``crossjax`` command line: ``crossjax study ...`` (the main job).

``crossjax study --out DIR [--preset NAME] [--config FILE.toml] [--samples S]
[--seed N] [--dataset NAME] [--data-dir D] [--train-steps N] [--overwrite]
[--no-plots] [--quiet]``

Precedence: preset < TOML file < flags. Subcommands are registered in
``SUBCOMMANDS`` (name -> (add_arguments, run)), so ``bench`` can be added
beside ``study``.
"""
from __future__ import annotations

import argparse
import sys
import time


def _add_study_arguments(p: argparse.ArgumentParser) -> None:
    from crossjax import study
    p.add_argument("--out", required=True, help="output directory (results.json, report.md, plots)")
    from crossjax import paper_studies
    names = (*study.preset_names(), *paper_studies.RUNNERS)
    p.add_argument("--preset", default="default",
                   help=f"study preset, one of {', '.join(names)} (default: default); "
                        f"{', '.join(paper_studies.RUNNERS)} rerun the seed papers' studies")
    p.add_argument("--quick", action="store_true",
                   help="laptop-scale run of a paper-study preset (small model, few samples)")
    p.add_argument("--config", help="TOML file overriding the preset (see crossjax.study.spec_from_toml)")
    p.add_argument("--samples", type=int, help="Monte Carlo samples per stochastic config")
    p.add_argument("--seed", type=int, default=0, help="seed of model init, data order and samples")
    p.add_argument("--dataset", help="dataset name (digits, mnist, cifar10, cifar100)")
    p.add_argument("--data-dir", help="tfds data_dir holding prepared datasets")
    p.add_argument("--train-steps", type=int, help="digital training steps")
    p.add_argument("--chunk-size", type=int, help="Monte Carlo samples per vmapped chunk")
    p.add_argument("--no-finetune", action="store_true", help="skip the fine-tuning step")
    p.add_argument("--overwrite", action="store_true",
                   help="discard results/checkpoints in --out instead of resuming")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def study_spec_from_args(args: argparse.Namespace):
    """The :class:`crossjax.study.StudySpec` that ``args`` describe."""
    from crossjax import study
    spec = study.get_preset(args.preset)
    if args.config:
        spec = study.spec_from_toml(args.config, spec)
    kw = {}
    if args.samples is not None:
        kw["samples"] = args.samples
    if args.dataset is not None:
        kw["dataset"] = args.dataset
    if args.train_steps is not None:
        kw["train"] = spec.train.replace(steps=args.train_steps)
    if args.chunk_size is not None:
        kw["chunk_size"] = args.chunk_size
    if args.no_finetune:
        kw["finetune"] = None
    return spec.replace(**kw) if kw else spec


def _run_paper_study(args: argparse.Namespace) -> int:
    from crossjax import paper_studies
    t0 = time.perf_counter()
    results = paper_studies.run(args.preset, args.out, quick=args.quick, seed=args.seed,
                                samples=args.samples, progress=not args.quiet,
                                dataset=args.dataset or "digits", data_dir=args.data_dir)
    for c in results["configs"]:
        a = c["accuracy"]
        print(f"{c['name']:>28s}: {100 * a['mean']:6.2f} +- {100 * a['std']:5.2f} % "
              f"({c['samples']} samples)")
    print(f"wrote {args.out}/results.json, report.md ({time.perf_counter() - t0:.1f} s)")
    return 0


def _run_study(args: argparse.Namespace) -> int:
    from crossjax import paper_studies, study
    if args.preset in paper_studies.RUNNERS:
        return _run_paper_study(args)
    t0 = time.perf_counter()
    spec = study_spec_from_args(args)
    results = study.run_study(spec, args.out, seed=args.seed, data_dir=args.data_dir,
                              overwrite=args.overwrite, progress=not args.quiet,
                              plots=not args.no_plots)
    dig = results["digital"]["accuracy"]
    print(f"digital accuracy {100 * dig:.2f} %")
    for c in results["configs"]:
        a = c["accuracy"]
        print(f"{c['name']:>20s}: {100 * a['mean']:6.2f} +- {100 * a['std']:5.2f} % "
              f"(min {100 * a['min']:.2f}, {c['samples']} samples)")
    ft = results.get("finetune")
    if ft:
        print(f"fine-tuning under {ft['config']}: {100 * ft['before']['mean']:.2f} % -> "
              f"{100 * ft['after']['mean']:.2f} % ({ft['samples']} samples)")
    print(f"wrote {args.out}/results.json, report.md ({time.perf_counter() - t0:.1f} s)")
    return 0


SUBCOMMANDS = {
    "study": (_add_study_arguments, _run_study,
              "train/load a model, evaluate it on crossbar configs, write a report"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crossjax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, _, help_) in SUBCOMMANDS.items():
        add(sub.add_parser(name, help=help_))
    args = parser.parse_args(argv)
    try:
        return SUBCOMMANDS[args.command][1](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"crossjax {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
