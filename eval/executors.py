"""Where `track-eval run` tracks its sequences: `local` (eval.runner.LocalPool: this process or
worker processes) or `ray` (one Ray task per sequence on a Ray cluster, or on a Ray instance
started here).

An executor is a context manager (entering connects, leaving disconnects) with
run(factory, sequences, out_dir, max_frames, bar) -> [SequenceOutcome]. Whatever runs the
trackers, the result files are written by this process with eval.runner's atomic writer, so the
layout, the resume rule and the bytes of a box file are the same for every executor. A Ray task
returns its two files' texts; frames are read where the task runs, so every node needs the
dataset at the same absolute path (a shared file system) and b2track installed.
"""
import dataclasses
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import runner
from .errors import EvalError

EXECUTORS = {
    "local": "this machine (--workers processes)",
    "ray": "one Ray task per sequence on the cluster at --address (default: a Ray instance started here)",
}

# A worker process that dies (a node lost, a killed process) is retried once; a tracker that
# crashes its process on every try still costs only two attempts.
_RAY_RETRIES = 1
# A local instance only ever holds the small texts the tasks return.
_LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024
_CONNECT_TIMEOUT_S = 5.0


def make(name, workers=None, threads=None, address=None):
    """The executor `name`, not yet connected; `ray` fails here, in one line, when ray is not
    installed or nothing answers at `address`."""
    if name == "local":
        return runner.LocalPool(workers or 1)
    if name == "ray":
        return RayExecutor(address, workers, threads)
    raise EvalError(f"unknown executor {name!r} (choose from {', '.join(EXECUTORS)})")


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise EvalError(f"--executor ray needs the ray package, which cannot be imported ({e}); "
                        "install it with: pip install -e \".[cluster]\"") from None
    return ray


def _host_port(address):
    """(host, port) of a 'host:port' or 'ray://host:port' address; None for 'auto'."""
    if address == "auto":
        return None
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise EvalError(f"--address {address!r} is not HOST:PORT (e.g. 10.0.0.5:6379, ray://10.0.0.5:10001 or auto)")
    return host.strip("[]"), int(port)


def _check_reachable(address):
    """Ray retries an unreachable cluster for minutes, printing as it goes; a plain TCP connect
    says the same in seconds."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as e:
        reason = e.strerror or str(e) or type(e).__name__
        raise EvalError(f"cannot reach a Ray cluster at {address} ({reason}); start one with "
                        "`ray start --head` or give its address") from None


class _StderrCaptured:
    """Ray's C++ core writes its connection warnings straight to file descriptor 2, past Python's
    logging; they are held here and shown only when the connection succeeds, so a failed
    connection stays one line."""

    def __enter__(self):
        sys.stderr.flush()
        self.file = tempfile.TemporaryFile(mode="w+b")
        self.saved = os.dup(2)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode(errors="replace")
        self.file.close()
        return False


def _local_instance_environment():
    """Settings for a Ray instance started here, read when ray is imported (a value the user set wins)."""
    # Loopback only: Ray otherwise listens on every interface (this switch exists for laptops).
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # The raylet gives its Python agents ~15 s to start, which a busy machine misses.
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    # Ray's default token auth would write a token to ~/.ray/auth_token; one for this run only
    # protects the instance as well and leaves nothing behind.
    if not any(os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")) and \
            not (Path.home() / ".ray" / "auth_token").is_file():
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))


def _kill_leftovers(tmp):
    """Stop what remains of a local instance after ray.shutdown: its agents outlive a start that
    was interrupted. They are found by the folder made for this instance, which their environment
    names (Linux /proc; elsewhere nothing is done)."""
    mark = f"RAY_TMPDIR={tmp}".encode() + b"\0"
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if int(entry.name) != os.getpid() and mark in (entry / "environ").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue  # gone already, or not ours to read


def _ray_task(factory, sequence, max_frames):
    """Runs on a Ray worker: track one sequence and return its outcome and result texts (None
    when it failed). Never raises for a tracker's failure, like runner.run_one."""
    import cv2

    cv2.setNumThreads(0)  # as in the local pool's workers: one task, one core
    start = time.perf_counter()
    try:
        texts = runner.result_texts(factory, sequence, max_frames)
    except Exception as e:  # noqa: BLE001 - any tracker failure is reported per sequence
        return runner.failure(sequence.name, e, time.perf_counter() - start), None
    outcome = runner.SequenceOutcome(sequence.name, "done", texts[0].count("\n"), time.perf_counter() - start)
    return outcome, texts


def _one_line(error):
    """The last line of a Ray error (its message ends with the cause: 'ModuleNotFoundError: ...')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


class RayExecutor:
    """One Ray task per sequence, `threads` CPUs each (torch and BLAS run that many threads), at
    most `workers` in flight (default: as many as the cluster schedules)."""

    def __init__(self, address=None, workers=None, threads=None):
        """Fails in one line when ray is missing or nothing listens at `address`; connects later."""
        self.address, self.workers, self.threads = address, workers, threads or 1
        self.tmp = None
        if address is None:
            _local_instance_environment()
        else:
            _host_port(address)  # a malformed address is refused with or without ray
        self.ray = _import_ray()
        if address is not None:
            _check_reachable(address)
        self.connected = False

    def __enter__(self):
        ray = self.ray
        if ray.is_initialized():  # a caller's own connection (a notebook): use it, leave it open
            return self
        options = {"include_dashboard": False, "logging_level": logging.WARNING}
        if self.address is None:
            options.update(address="local", num_cpus=self.workers or os.cpu_count() or 1,
                           object_store_memory=_LOCAL_OBJECT_STORE_BYTES)
            if not os.environ.get("RAY_TMPDIR"):
                # Sessions, logs and sockets go to a folder removed at the end instead of piling
                # up in /tmp/ray (a short path: unix socket paths are limited to 107 bytes).
                self.tmp = os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray-")
        else:
            options["address"] = self.address
        where = self.address or "a local Ray instance"
        # ray.init installs a SIGTERM handler that exits on the spot; the caller's comes back after.
        on_sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
        with _StderrCaptured() as captured:
            try:
                ray.init(**options)
                error = None
            except Exception as e:  # noqa: BLE001 - ConnectionError, AuthenticationError, RuntimeError, ...
                error = e
            except BaseException as e:  # Ray's SIGTERM exit, Ctrl-C: stop what was started, then go
                ray.shutdown()
                self.__exit__()
                if isinstance(e, SystemExit):  # the SIGTERM: reported like any interruption
                    raise KeyboardInterrupt from None
                raise
            finally:
                if on_sigterm is not None:
                    signal.signal(signal.SIGTERM, on_sigterm)
        if error is not None:
            ray.shutdown()  # whatever half of the start happened
            self.__exit__()
            reason = _one_line(error)
            if "InvalidAuthToken" in captured.text or "Authentication" in reason:
                reason = ("the cluster wants its token: set RAY_AUTH_MODE=token, with the head node's ~/.ray/auth_token "
                          "copied here or named by RAY_AUTH_TOKEN_PATH, or its text in RAY_AUTH_TOKEN")
            raise EvalError(f"cannot connect to {where}: {reason}")
        sys.stderr.write(captured.text)
        self.connected = True
        return self

    def __exit__(self, *exc):
        if self.connected:
            self.ray.shutdown()
            self.connected = False
        if self.tmp is not None:
            _kill_leftovers(self.tmp)
            shutil.rmtree(self.tmp, ignore_errors=True)
            os.environ.pop("RAY_TMPDIR", None)
            self.tmp = None
        return False

    def run(self, factory, todo, out_dir, max_frames, bar):
        ray = self.ray
        task = ray.remote(num_cpus=self.threads, max_retries=_RAY_RETRIES)(_ray_task)
        # Frames are read where the task runs, which may have another working directory.
        queue = [dataclasses.replace(s, frames=tuple(Path(p).absolute() for p in s.frames))
                 for s in sorted(todo, key=len, reverse=True)]  # longest first, as the local pool
        limit = self.workers or len(queue)
        pending, outcomes = {}, []
        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    seq = queue.pop(0)
                    pending[task.remote(factory, seq, max_frames)] = seq.name
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    outcome = self._collect(ref, pending.pop(ref), out_dir)
                    outcomes.append(outcome)
                    bar.add(outcome.frames)
                    bar.sequence_done(outcome)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return outcomes

    def _collect(self, ref, name, out_dir):
        """The outcome of a finished task, its files written here (atomically, like run_one)."""
        try:
            outcome, texts = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001 - the task's process died, or b2track is missing on its node
            return runner.SequenceOutcome(name, "failed", error=f"Ray task failed: {_one_line(e)}")
        if texts is not None:
            try:
                runner.write_result(out_dir, name, texts)
            except Exception as e:  # noqa: BLE001 - a full disk fails this sequence, as in run_one
                return runner.failure(name, e, outcome.seconds)
        return outcome
