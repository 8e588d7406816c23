"""What the three command lines share: one-line errors with exit status 2, and KEY=VALUE options.

``track`` (tracker/cli.py), ``track-eval`` (eval/cli.py) and ``mixbin`` (mixbin/cli.py) use it, and
the tools that report errors the same way. It imports nothing of ours and nothing heavy, and lives
in ``tracker`` because that is the one package all three CLIs may import without torch:
``track-eval`` imports ``tracker`` (and parses and scores without torch), the ``mixbin`` CLI is where
MixBin meets the tracker, and ``tracker/__init__`` imports nothing. ``backbones``, below everything,
would pull torch into ``track-eval score`` (its ``__init__`` builds the backbone registry). The
``mixbin`` library never imports this module: its errors are its own types, which the CLI prints.

    def main(argv=None):
        sys.exit(run_cli("track", lambda: run(build_parser().parse_args(argv))))

Every user error ends as one ``<prog>: error: <message>`` line on stderr and exit status 2: a
``CLIError`` raised anywhere in the command (``Parser`` raises one for a bad command line), an
``OSError`` (a full disk, a folder that went away), or the CLI's own error types.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from typing import Callable, Iterable

EXIT_USAGE = 2


class CLIError(Exception):
    """A user error: printed as one ``<prog>: error: ...`` line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are a one-line CLIError instead of a usage dump and an exit.

    Sub-command parsers made by ``add_subparsers`` are of this class too.
    """

    def error(self, message):
        raise CLIError(f"{message} (see {self.prog} --help)")


def os_error_line(e: OSError, where=None) -> str:
    """``No space left on device: out/model.pt``: the reason, then the file (or ``where``)."""
    where = e.filename or where
    reason = e.strerror or str(e)
    return f"{reason}: {where}" if where else reason


def run_cli(prog: str, command: Callable[[], int | None], user_errors: tuple = (),
            interrupted: int | None = None) -> int:
    """Run ``command()`` (parse, then work) and return its exit status.

    CLIError, OSError and ``user_errors`` become one line on stderr and status 2. With
    ``interrupted`` set, Ctrl-C before the command handles it says so and returns that status;
    else KeyboardInterrupt propagates. SystemExit (``--help``) passes through.
    """
    try:
        return command() or 0
    except (CLIError, *user_errors) as e:
        line = str(e)
    except OSError as e:
        line = os_error_line(e)
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return interrupted
    print(f"{prog}: error: {line}", file=sys.stderr)
    return EXIT_USAGE


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number here")  # NaN / Infinity stay text, as in Python


def parse_value(text: str):
    """One command-line value: JSON (``true``, ``null``, ``[1, 2]``) or a Python literal (``True``,
    ``None``, ``(1, 2)``), else the text itself. Lists become tuples: configs are frozen."""
    text = text.strip()
    for parse in (lambda t: json.loads(t, parse_constant=_no_constant), ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return tuple(value) if isinstance(value, list) else value
    return text


def parse_key_values(items: Iterable[str] | None, option: str = "--param") -> dict:
    """``["lost_ratio=0.4", "rgb=true"]`` -> ``{"lost_ratio": 0.4, "rgb": True}``.

    Keys may use dashes for underscores; values go through ``parse_value``. A later item
    overrides an earlier one. Raises ValueError naming ``option`` for an item without KEY=.
    """
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE, got {item!r}")
        out[key] = parse_value(value)
    return out
