"""Run every crossjax benchmark: ``python -m benchmarks [--quick] [--only NAME] [--out FILE]``.

Each benchmark module exposes ``run(quick: bool) -> dict`` and runs in its own
subprocess (so peak memory is per benchmark). The results, with machine,
device and versions, go to a JSON file; a table of the headline ratios is
printed. The exit status is non-zero when a benchmark's correctness checks
(``result["checks"]``, name -> bool, results vs an unoptimized reference)
fail or a benchmark crashes -- never because of a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

BENCHMARKS = ("circuit", "kernels", "network", "ir_drop")


def _run_one(name: str, quick: bool, device: str | None) -> dict:
    code = (
        "import json, sys; import benchmarks.{n} as m; "
        "r = m.run(quick={q}); sys.stdout.write('\\n@@RESULT@@' + json.dumps(r, default=float))"
    ).format(n=name, q=quick)
    env = dict(os.environ)
    if device:
        env["JAX_PLATFORMS"] = device
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
    if proc.returncode != 0 or "@@RESULT@@" not in proc.stdout:
        return {"error": f"exit {proc.returncode}", "stdout": proc.stdout[-2000:], "seconds": seconds}
    printed, payload = proc.stdout.rsplit("@@RESULT@@", 1)
    print(printed, end="")
    result = json.loads(payload)
    result["seconds"] = seconds
    return result


def _machine(device: str | None) -> dict:
    import jax

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "backend": device or jax.default_backend(),
        "devices": [str(d) for d in jax.devices(device) if d] if device else [str(d) for d in jax.devices()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized runs (a few minutes in all)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--device", default=None, help="JAX platform to use (cpu, gpu, tpu); default: JAX's default")
    parser.add_argument("--out", default="bench_out/benchmarks.json", help="where to write the JSON results")
    args = parser.parse_args(argv)

    results = {"machine": _machine(args.device), "quick": args.quick, "benchmarks": {}}
    failed = []
    for name in args.only or BENCHMARKS:
        print(f"== {name}", flush=True)
        res = _run_one(name, args.quick, args.device)
        results["benchmarks"][name] = res
        if "error" in res:
            failed.append(f"{name}: {res['error']}")
        for check, ok in res.get("checks", {}).items():
            if not ok:
                failed.append(f"{name}: check {check} failed")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2, default=float)
    os.replace(tmp, args.out)

    print("\n| benchmark | ratio | value |\n| --- | --- | --- |")
    for name, res in results["benchmarks"].items():
        for key, val in res.get("ratios", {}).items():
            print(f"| {name} | {key} | {val:.3g} |")
    print(f"\nwrote {args.out}")
    if failed:
        print("FAILED:\n  " + "\n  ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
