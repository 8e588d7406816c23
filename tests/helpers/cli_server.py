"""Runs the three CLIs in forked children of one warm process, for tests that run many commands.

Each request is a real process with its own exit status and stderr, as
with the console scripts. Forking a process that has already imported torch
saves the ~3 s each fresh interpreter spends importing it, and ending the
child the way the interpreter ends a script, minus tearing torch down (about
1 s more), keeps each command fast. Linux only (fork after import).

Protocol: one JSON request per stdin line
    {"prog": "track", "argv": [...], "cwd": DIR, "env": {...}, "fsize": BYTES or null, "timeout": S}
answered by one JSON line {"rc": ..., "stdout": ..., "stderr": ...}. ``fsize``
caps every file the child writes (RLIMIT_FSIZE; Python ignores SIGXFSZ, so a
write past it fails with EFBIG, the way a full disk fails a write).
"""
import atexit
import importlib
import json
import os
import resource
import selectors
import signal
import sys

ENTRIES = {"track": "tracker.cli", "track-eval": "eval.cli", "mixbin": "mixbin.cli"}


def _exit_code(code) -> int:
    """The status the interpreter gives ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _end(entry) -> None:
    """Run ``entry`` and exit as the interpreter would: an uncaught exception prints its traceback
    (status 1), atexit functions run, and a stdout that cannot be flushed (full disk) makes it 120."""
    try:
        code = _exit_code(entry())
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:  # noqa: BLE001 - what the interpreter would print
        sys.excepthook(*sys.exc_info())
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception as e:  # noqa: BLE001
            os.write(2, f"Exception ignored on flushing {stream.name}: {e!r}\n".encode())
            code = 120
    os._exit(code)


def _child(req, modules, out_w, err_w):
    """Become the command; never returns."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (null, out_w, err_w):
        os.close(fd)
    os.chdir(req["cwd"])
    for k, v in req.get("env", {}).items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    if req.get("fsize"):
        resource.setrlimit(resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"]))
    signal.alarm(req.get("timeout", 300))  # a hung command dies (status -14) instead of hanging the tests
    sys.argv = [req["prog"], *req["argv"]]
    _end(modules[req["prog"]].main)


def _collect(pid, out_r, err_r):
    """Read both pipes to their end, then reap the child."""
    chunks = {out_r: [], err_r: []}
    sel = selectors.DefaultSelector()
    for fd in chunks:
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(chunks)
    while open_fds:
        for key, _ in sel.select():
            data = os.read(key.fd, 65536)
            if data:
                chunks[key.fd].append(data)
            else:
                sel.unregister(key.fd)
                os.close(key.fd)
                open_fds.discard(key.fd)
    sel.close()
    _, status = os.waitpid(pid, 0)
    text = {fd: b"".join(c).decode("utf-8", "replace") for fd, c in chunks.items()}
    return {"rc": os.waitstatus_to_exitcode(status), "stdout": text[out_r], "stderr": text[err_r]}


def main():
    import tests.helpers.synthetic  # noqa: F401  registers the tiny backbone the tests' models use
    # The CLIs import their heavy parts lazily; import them here once, before any fork (a warm-up
    # only: a module that moved is imported by the command itself).
    for name in ("torch", "cv2", "tracker.api", "tracker.siamfc", "tracker.dimp", "eval.runner", "eval.report",
                 "eval.trackers", "mixbin.strategies", "mixbin.finetune", "matplotlib.backends.backend_agg"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    modules = {prog: importlib.import_module(m) for prog, m in ENTRIES.items()}
    reply = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(out_r)
            os.close(err_r)
            _child(req, modules, out_w, err_w)
        os.close(out_w)
        os.close(err_w)
        reply.write(json.dumps(_collect(pid, out_r, err_r)) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
