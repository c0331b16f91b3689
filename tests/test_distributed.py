"""Monte Carlo across processes (``jax.distributed`` on localhost, CPU collectives) and
``crossjax study --devices N``.

Every multi-process case starts its processes as subprocesses of this file
(``python tests/test_distributed.py worker ...``) in their own process group,
with a deadline: on a timeout or a failed worker the whole group is killed, so
a stuck collective never hangs the run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.abspath(__file__)
TIMEOUT = 120  # seconds for one multi-process run (2 processes take ~10 s on 2 cores)
SAMPLES, EXAMPLES = 8, 40


# ---------------------------------------------------------------------------
# the worker (runs in a subprocess)
# ---------------------------------------------------------------------------
def _worker(process_id: int, num_processes: int, port: int, out: str) -> None:
    """One process of the run: evaluate the test model's Monte Carlo samples, print a digest."""
    import jax

    jax.config.update("jax_enable_x64", True)  # float64 in every run, as in the test suite
    if num_processes > 1:
        # XLA CPU collectives over TCP (docs.jax.dev "Distributed arrays and automatic parallelization"/
        # multi_process: CPU needs an explicit collectives implementation)
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=f"127.0.0.1:{port}",
            num_processes=num_processes,
            process_id=process_id,
            initialization_timeout=60,
        )
    import hashlib

    import numpy as np
    from flax import nnx

    from crossjax import models, montecarlo
    from crossjax.hardware import HardwareConfig

    model = models.MLP(64, (32,), 10, rngs=nnx.Rngs(0))
    hw = HardwareConfig().set(
        {
            "device.write_noise.sigma": 0.05,
            "device.read_noise.sigma": 0.02,
            "array.parasitics.r_wire_row": 2.0,
            "array.parasitics.r_wire_col": 2.0,
        }
    )  # IR drop
    keys = jax.random.split(jax.random.key(1), SAMPLES)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(EXAMPLES, 64)), rng.integers(0, 10, EXAMPLES)
    t0 = time.perf_counter()
    res = montecarlo.evaluate(model, hw, keys, x, y, batch_size=16, return_logits=True, progress=False)
    seconds = time.perf_counter() - t0
    digest = {
        "process": jax.process_index(),
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "accuracy": res["accuracy"].tolist(),
        "logits_dtype": str(res["logits"].dtype),
        "logits_sha": hashlib.sha256(np.ascontiguousarray(res["logits"]).tobytes()).hexdigest(),
        "seconds": seconds,
    }
    if num_processes > 1:  # a process that passes other data is refused on every process
        try:
            montecarlo.evaluate(model, hw, keys, x, (y + jax.process_index()) % 10, batch_size=16, progress=False)
            digest["mismatch"] = "accepted"
        except ValueError as err:
            digest["mismatch"] = "refused: y" if "y differ" in str(err) else f"refused: {err}"
    from crossjax import distributed  # process 0's JSON and variables (a -0.0 included) reach every process

    digest["json"] = distributed.broadcast_json({"from": jax.process_index()} if distributed.is_writer() else None)
    own = models.MLP(64, (32,), 10, rngs=nnx.Rngs(10 + jax.process_index()))
    own.layers[0].kernel.value = own.layers[0].kernel.value.at[0, 0].set(-0.0 if jax.process_index() == 0 else 1.0)
    distributed.broadcast_variables(own)
    leaves = [np.asarray(a) for a in jax.tree.leaves(nnx.state(own, nnx.Param))]
    digest["variables_sha"] = hashlib.sha256(b"".join(a.tobytes() for a in leaves)).hexdigest()
    digest["negative_zero"] = bool(np.signbit(np.asarray(own.layers[0].kernel.value)[0, 0]))
    if montecarlo.is_writer():  # results are written once
        with open(os.path.join(out, f"results_p{jax.process_index()}.json"), "w") as f:
            json.dump({"accuracy": res["accuracy"].tolist()}, f)
    print("@@DIGEST" + json.dumps(digest), flush=True)


# ---------------------------------------------------------------------------
# launching
# ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1")
    env.pop("XLA_FLAGS", None)  # one CPU device per process
    return env


def _kill(procs) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.wait()


def _launch(num_processes: int, out: str, timeout: float = TIMEOUT, start: int | None = None) -> list[dict]:
    """Run ``num_processes`` workers to completion (only the first ``start`` of them when
    given: a run that waits for the others); their digests ordered by process index."""
    port = _free_port()
    procs, logs = [], []
    for i in range(num_processes if start is None else start):
        log = open(os.path.join(out, f"worker{i}.log"), "w+")
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [sys.executable, HERE, "worker", str(i), str(num_processes), str(port), out],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{num_processes}-process run passed {timeout} s")
            if any(p.poll() not in (None, 0) for p in procs):
                break  # one failed: the others would wait for it in a collective
            time.sleep(0.1)
    except TimeoutError as err:
        _kill(procs)
        pytest.fail(f"{err}; logs: {_tails(logs)}")
    finally:
        _kill(procs)
    if any(p.returncode != 0 for p in procs):
        pytest.fail(f"worker exit codes {[p.returncode for p in procs]}; logs: {_tails(logs)}")
    digests = []
    for log in logs:
        log.seek(0)
        lines = [ln for ln in log.read().splitlines() if ln.startswith("@@DIGEST")]
        log.close()
        assert len(lines) == 1, "a worker printed no digest"
        digests.append(json.loads(lines[0][len("@@DIGEST") :]))
    return sorted(digests, key=lambda d: d["process"])


def _tails(logs) -> str:
    out = []
    for i, log in enumerate(logs):
        log.seek(0)
        out.append(f"\n--- worker {i} ---\n" + log.read()[-3000:])
    return "".join(out)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The single-process reference run."""
    out = str(tmp_path_factory.mktemp("single"))
    (d,) = _launch(1, out)
    return d


def _check_equal(single, digests, out, n):
    assert [d["processes"] for d in digests] == [n] * n
    assert digests[0]["devices"] == n  # the mesh spans every process's device
    for d in digests:
        assert d["logits_dtype"] == "float64"
        assert d["accuracy"] == single["accuracy"]  # bit for bit, on every process
        assert d["logits_sha"] == single["logits_sha"]
        assert d["mismatch"] == "refused: y"
        assert d["json"] == {"from": 0} and d["negative_zero"]
        assert d["variables_sha"] == digests[0]["variables_sha"]
    assert sorted(f for f in os.listdir(out) if f.startswith("results")) == ["results_p0.json"]
    with open(os.path.join(out, "results_p0.json")) as f:
        assert json.load(f)["accuracy"] == single["accuracy"]


@pytest.mark.slow  # ~20 s on 2 cores with the 1-process reference
def test_two_processes_equal_single_process(single, tmp_path):
    digests = _launch(2, str(tmp_path))
    _check_equal(single, digests, str(tmp_path), 2)
    assert len(set(single["accuracy"])) > 1  # the samples really differ


@pytest.mark.slow  # ~21 s on 2 cores
def test_four_processes_equal_single_process(single, tmp_path):
    digests = _launch(4, str(tmp_path), timeout=240)
    _check_equal(single, digests, str(tmp_path), 4)


def test_launch_kills_a_stuck_run(tmp_path):
    """A process waiting for a peer that never comes is killed (its whole group) at the deadline."""
    t0 = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="2-process run passed 3 s"):
        _launch(2, str(tmp_path), timeout=3, start=1)
    assert time.monotonic() - t0 < 20


# ---------------------------------------------------------------------------
# crossjax study --devices N
# ---------------------------------------------------------------------------
def test_devices_flag_parses():
    from crossjax import cli

    args = cli.build_parser().parse_args(["study", "--out", "o", "--devices", "4"])
    assert args.devices == 4
    assert cli.build_parser().parse_args(["study", "--out", "o"]).devices is None


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_devices_refuses_bad_counts(bad):
    from crossjax import cli

    with pytest.raises(ValueError, match="--devices must be a positive int"):
        cli.use_local_devices(bad)


def test_devices_after_backend_started_names_the_fix():
    import jax

    from crossjax import cli

    have = jax.local_device_count()  # starts the backend
    assert cli.use_local_devices(have) == have  # the count it has: fine
    with pytest.raises(ValueError, match="already started with .*XLA_FLAGS=--xla_force_host_platform_device_count"):
        cli.use_local_devices(have + 2)


DEVICES_SCRIPT = """
import os, jax, numpy as np
from flax import nnx
from crossjax import cli, hardware, models, montecarlo
n = cli.use_local_devices(3)
mlp = models.MLP(8, (4,), 2, rngs=nnx.Rngs(0))
x, y, keys = np.ones((4, 8)), np.zeros(4, int), jax.random.split(jax.random.key(0), 3)
res = montecarlo.evaluate(mlp, hardware.HardwareConfig(), keys, x, y, progress=False)
try:  # IR drop on several CPU devices of one process: refused (jaxlib's batched LU deadlocks there)
    montecarlo.evaluate(mlp, hardware.HardwareConfig().set({"array.parasitics.r_wire_row": 1.0}), keys, x, y,
                        progress=False)
    ir = "ran"
except ValueError as err:
    ir = "refused" if "one CPU device per process" in str(err) else repr(err)
print(n, len(jax.devices()), montecarlo.sample_mesh().devices.size, res["chunk_size"], ir, os.environ["XLA_FLAGS"])
"""


def test_devices_sets_the_local_device_count():
    code = DEVICES_SCRIPT
    env = dict(_env(), XLA_FLAGS="--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=7")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    n, devices, mesh, chunk, ir, flags = p.stdout.split(maxsplit=5)
    assert (n, devices, mesh, chunk, ir) == ("3", "3", "3", "3", "refused")
    assert flags.split() == ["--xla_cpu_enable_fast_math=false", "--xla_force_host_platform_device_count=3"]


def test_study_cli_refuses_devices_after_start(tmp_path, capsys):
    """``crossjax study --devices N`` fails cleanly (exit 2, the fix named) in a process whose JAX has started."""
    import jax

    from crossjax import cli

    have = jax.local_device_count()
    rc = cli.main(["study", "--out", str(tmp_path / "o"), "--preset", "quick", "--devices", str(have + 1)])
    assert rc == 2
    assert "XLA_FLAGS=--xla_force_host_platform_device_count" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--coordinator", "127.0.0.1:1"], "--coordinator only apply with --distributed"),
        (["--num-processes", "2", "--process-id", "1"], "--num-processes, --process-id only apply with --distributed"),
        (["--distributed", "--preset", "dub_adc"], "paper study 'dub_adc' runs in one process"),
    ],
)
def test_distributed_flags_are_checked_before_joining(argv, match, tmp_path, capsys):
    from crossjax import cli

    rc = cli.main(["study", "--out", str(tmp_path / "o"), *argv])
    assert rc == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_distributed_after_backend_started_is_refused(tmp_path, capsys):
    import jax

    from crossjax import cli

    jax.local_device_count()  # starts the backend
    assert (
        cli.main(["study", "--out", str(tmp_path / "o"), "--distributed", "--num-processes", "2", "--process-id", "0"])
        == 2
    )
    assert "--distributed must start before any JAX computation" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"num_processes": 0}, "num_processes must be >= 1"),
        ({"num_processes": 2, "process_id": 2}, "below num_processes"),
        ({"process_id": -1}, "non-negative"),
        ({"num_processes": True}, "int"),
    ],
)
def test_initialize_refuses_bad_counts(kw, match):
    from crossjax import distributed

    with pytest.raises(ValueError, match=match):
        distributed.initialize("127.0.0.1:1", **kw)


def test_single_process_broadcasts_are_identities():
    import jax
    import numpy as np
    from flax import nnx

    from crossjax import distributed, models

    assert distributed.is_writer() and not distributed.is_multiprocess()
    assert distributed.broadcast_json({"a": [1, 2]}) == {"a": [1, 2]}
    m = models.MLP(4, (3,), 2, rngs=nnx.Rngs(0))
    before = [np.asarray(a) for a in jax.tree.leaves(nnx.state(m, nnx.Param))]
    distributed.broadcast_variables(m)
    after = [np.asarray(a) for a in jax.tree.leaves(nnx.state(m, nnx.Param))]
    assert len(after) == len(before) > 0
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# crossjax study --distributed: killed, resumed, equal to one process
# ---------------------------------------------------------------------------
STUDY_ARGS = ["--preset", "quick", "--train-steps", "40", "--samples", "4", "--no-plots", "--quiet"]


def _study_worker(process_id: int, num_processes: int, port: int, out: str) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)
    from crossjax import cli

    args = ["study", "--out", out, *STUDY_ARGS]
    if num_processes > 1:
        args += [
            "--distributed",
            "--coordinator",
            f"127.0.0.1:{port}",
            "--num-processes",
            str(num_processes),
            "--process-id",
            str(process_id),
        ]
    sys.exit(cli.main(args))


def _start_study(num_processes: int, outs: list[str], logdir: str):
    port = _free_port()
    procs = []
    for i in range(num_processes):
        log = open(os.path.join(logdir, f"study{i}.log"), "a")
        procs.append(
            subprocess.Popen(
                [sys.executable, HERE, "study", str(i), str(num_processes), str(port), outs[i]],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
                start_new_session=True,
            )
        )
    return procs


def _wait(procs, until, timeout: float, logdir: str) -> None:
    deadline = time.monotonic() + timeout
    try:
        while not until(procs):
            if time.monotonic() > deadline:
                pytest.fail(f"study run passed {timeout} s; logs: {_study_logs(logdir)}")
            if any(p.poll() not in (None, 0) for p in procs):
                pytest.fail(f"study exit codes {[p.poll() for p in procs]}; logs: {_study_logs(logdir)}")
            time.sleep(0.2)
    finally:
        _kill(procs)


def _study_logs(logdir: str) -> str:
    return "".join(
        f"\n--- {f} ---\n" + open(os.path.join(logdir, f)).read()[-3000:]
        for f in sorted(os.listdir(logdir))
        if f.endswith(".log")
    )


def _configs_written(path: str) -> int:
    try:
        with open(path) as f:
            return len(json.load(f)["configs"])
    except (OSError, ValueError):
        return 0


def _numbers(results: dict) -> dict:
    ft = results["finetune"]
    return {
        "digital": results["digital"]["accuracy"],
        "steps": results["digital"]["train_steps"],
        "configs": {c["name"]: c["per_sample"] for c in results["configs"]},
        "finetune": (ft["steps"], ft["per_sample_before"], ft["per_sample_after"], ft["digital_after"]),
    }


def test_an_error_on_process_0_stops_every_process(tmp_path):
    """Process 0 cannot use --out (a file): it and the other process both exit with the error
    (process 0 broadcasts it), instead of the other waiting forever in a collective."""
    bad = tmp_path / "a_file"
    bad.write_text("x")
    procs = _start_study(2, [str(bad), str(tmp_path / "p1")], str(tmp_path))
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        _kill(procs)
    assert [p.returncode for p in procs] == [2, 2], _study_logs(str(tmp_path))
    for i in (0, 1):
        assert "is a file, not a directory" in open(tmp_path / f"study{i}.log").read()


@pytest.mark.slow  # ~2-3 min on 2 cores: a single-process study, a killed and a resumed 2-process one
def test_distributed_study_is_killed_resumed_and_equals_one_process(tmp_path):
    logs = str(tmp_path)
    single, shared, elsewhere = (str(tmp_path / d) for d in ("single", "multi", "p1_out"))
    all_done = lambda procs: all(p.poll() == 0 for p in procs)  # noqa: E731
    _wait(_start_study(1, [single], logs), all_done, 600, logs)
    with open(os.path.join(single, "results.json")) as f:
        reference = json.load(f)
    # 2 processes; process 1 is given another --out, which it must never touch (process 0 writes)
    results = os.path.join(shared, "results.json")
    _wait(_start_study(2, [shared, elsewhere], logs), lambda procs: _configs_written(results) >= 1, 600, logs)
    killed = _configs_written(results)
    assert 1 <= killed < len(reference["configs"]), "the kill came too late to test resuming"
    _wait(_start_study(2, [shared, elsewhere], logs), all_done, 600, logs)
    with open(results) as f:
        resumed = json.load(f)
    assert resumed["meta"]["complete"] and resumed["meta"]["versions"]["devices"].startswith("2 x ")
    assert _numbers(resumed) == _numbers(reference)  # bit for bit, resumed across the kill
    assert os.path.exists(os.path.join(shared, "report.md"))
    assert not os.path.exists(elsewhere)
    assert "resuming" in open(os.path.join(logs, "study0.log")).read().lower()


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "worker":
    _worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "study":
    _study_worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
