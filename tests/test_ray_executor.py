"""track-eval run --executor ray: the same result files as the local pool, through a real Ray
cluster (`ray start --head` on loopback, one per session), and one-line errors for bad input.

Skipped where ray is not installed (pip install -e ".[cluster]"), except the cases that need no
ray: the error when it is missing, a malformed address, --address without --executor ray.
"""
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_eval_cli import make_sequences
from tool_import import load_tool

from eval.cli import main

ROOT = Path(__file__).resolve().parents[1]
HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install -e '.[cluster]')")

N_FRAMES = 8
# The shipped B2NN at budget 0.3 with the packed binary kernels: the real tracking path.
TRACK = ["--tracker", "dimp", "--budget", "0.3", "--threads", "1", "--no-progress"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster():
    """A one-node cluster as a user starts it, on loopback only, with token auth, its files in a
    temporary folder (not ~/.ray or /tmp/ray); its address. One for every test here, stopped by
    its own pid when they are done (not at the end of the session: it holds ~1 GB)."""
    if not HAS_RAY:
        pytest.skip("ray is not installed (pip install -e '.[cluster]')")
    # A short path: Ray's unix sockets live under it, and socket paths are limited to 107 bytes.
    tmp = tempfile.mkdtemp(prefix="ray")
    env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": tmp,
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           # The raylet gives its Python agents ~15 s to start, which a loaded 2-core machine misses.
           "RAY_agent_register_timeout_ms": "120000"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # this process is the driver: same loopback switch, same token
    port = _free_port()
    log = open(Path(tmp) / "head.log", "w+")
    head = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
                             "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
                             "--disable-usage-stats", "--block"],
                            stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 180  # Ray's own node start limit is 30 s; a loaded machine takes longer
        while "Ray runtime started" not in Path(log.name).read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail("ray start --head did not come up:\n" + Path(log.name).read_text()[-2000:])
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # --block stops every process it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run(root, results, *extra):
    return main(["run", "--dataset", "otb", "--root", str(root), *TRACK, "--results", str(results), *extra])


@needs_ray
def test_ray_results_are_the_local_pools(ray_cluster, tmp_path, capsys, monkeypatch):
    data = make_sequences(tmp_path / "seqs", n=N_FRAMES)
    # Frames given by a relative path: the Ray workers do not share this process's directory.
    monkeypatch.chdir(tmp_path)
    assert _run("seqs", tmp_path / "local", "--workers", "2") == 0  # the local pool: two worker processes
    assert _run("seqs", tmp_path / "ray", "--executor", "ray", "--address", ray_cluster) == 0
    assert "2 run, 0 already done, 0 failed" in capsys.readouterr().out
    local, ray = tmp_path / "local" / "dimp_b0.3" / "otb", tmp_path / "ray" / "dimp_b0.3" / "otb"
    names = ["Alpha.txt", "Alpha_time.txt", "Beta.txt", "Beta_time.txt"]
    assert sorted(p.name for p in ray.iterdir()) == names  # no temporaries left
    for name in ("Alpha", "Beta"):
        boxes = (ray / f"{name}.txt").read_bytes()
        assert boxes == (local / f"{name}.txt").read_bytes()
        assert len(set(boxes.splitlines())) > 2  # the tracker followed the moving target: a real comparison
        # Times differ run to run; one line per frame in both.
        assert len((ray / f"{name}_time.txt").read_text().splitlines()) == N_FRAMES
    # Resume: a rerun finds both sequences done and tracks nothing.
    assert _run(data, tmp_path / "ray", "--executor", "ray", "--address", ray_cluster) == 0
    assert "0 run, 2 already done" in capsys.readouterr().out


@needs_ray
def test_a_failing_sequence_fails_alone_on_ray(ray_cluster, tmp_path, capsys):
    data = make_sequences(tmp_path / "seqs", n=N_FRAMES)
    (data / "Beta" / "img" / "0003.jpg").write_bytes(b"not a jpeg")
    assert main(["run", "--dataset", "otb", "--root", str(data), "--tracker", "csrt", "--no-progress",
                 "--results", str(tmp_path / "r"), "--executor", "ray", "--address", ray_cluster]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 sequence(s) failed (Beta: " in err[0] and "cannot read image" in err[0], err
    out = tmp_path / "r" / "csrt" / "otb"
    assert sorted(p.name for p in out.iterdir()) == ["Alpha.txt", "Alpha_time.txt"]


# -- bad input: each case its own process, exit 2, one line on stderr, no result written --------

def _closed_port():
    port = _free_port()  # bound then released: nothing listens there now
    return f"127.0.0.1:{port}"


CASES = [
    ("address-without-ray-executor", ["--address", "127.0.0.1:6379"], "--address applies to --executor ray only", False),
    ("address-malformed", ["--executor", "ray", "--address", "headnode"], "is not HOST:PORT", False),
    ("ray-missing", ["--executor", "ray"], "pip install -e \".[cluster]\"", False),
    ("address-unreachable", ["--executor", "ray", "--address", None], "cannot reach a Ray cluster at", True),
]


@pytest.mark.parametrize("name, extra, fragment, with_ray", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(name, extra, fragment, with_ray, tmp_path):
    if with_ray and not HAS_RAY:
        pytest.skip("ray is not installed")
    data = make_sequences(tmp_path / "seqs", names=("Alpha",), n=3)
    extra = [_closed_port() if a is None else a for a in extra]
    argv = ["run", "--dataset", "otb", "--root", str(data), "--tracker", "csrt", "--results", str(tmp_path / "r"), *extra]
    # "ray-missing" hides ray from this process whether or not it is installed.
    hide = "import sys; sys.modules['ray'] = None; " if name == "ray-missing" else ""
    code = f"{hide}import sys; from eval.cli import main; sys.exit(main({argv!r}))"
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1, (p.returncode, p.stderr)
    assert lines[0].startswith("track-eval: error: ") and fragment in lines[0], lines[0]
    assert not list(tmp_path.glob("r/**/*.txt"))


# -- tools/bench_strategies.py passes the executor through to track-eval run ---------------------

def test_bench_strategies_sends_its_evaluations_to_ray(monkeypatch, tmp_path):
    bs = load_tool("bench_strategies")
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        out = '{"trackers": {"%s": {"auc": 0.5, "precision": 0.6}}}' % argv[argv.index("--trackers") + 1] \
            if argv[1] == "score" else ""
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr(bs.subprocess, "run", fake_run)
    args = bs.argparse.Namespace(work=str(tmp_path), eval_dataset="folder", eval_root="seqs", trackers=["dimp"],
                                 eval_executor="ray", eval_address="10.0.0.5:6379", eval_workers=None)
    assert bs.track_eval(Path("m.pt"), "mixbin-b030-s0", args)["auc"] == 0.5
    run = calls[0]
    assert run[:2] == ["track-eval", "run"] and "--workers" not in run
    assert run[run.index("--executor") + 1] == "ray" and run[run.index("--address") + 1] == "10.0.0.5:6379"
    # The local default is unchanged: no address, and --eval-workers passes as --workers.
    args.eval_executor, args.eval_address, args.eval_workers = "local", None, 2
    assert bs.executor_args(args) == ["--executor", "local", "--workers", "2"]
    # An address without the ray executor is refused before any search starts.
    with pytest.raises(bs.CLIError, match="--eval-address applies to --eval-executor ray only"):
        bs.check_executor(bs.argparse.Namespace(eval_executor="local", eval_address="10.0.0.5:6379"))
