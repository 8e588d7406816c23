"""Reading the plain-text box and flag files every benchmark uses, with errors that point at a line.

Benchmarks disagree on separators (tabs in some OTB files, commas in others, CRLF line ends),
so one tolerant reader is shared by all loaders and by the result reader.
"""
import io
import os
from pathlib import Path

import numpy as np

from .errors import DatasetError

_SEPARATORS = str.maketrans(",;", "  ")


def _lines(path):
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DatasetError("file not found", path) from None
    except UnicodeDecodeError:
        raise DatasetError("not a text file", path) from None
    except OSError as e:
        raise DatasetError(f"cannot read ({e.strerror})", path) from None
    lines = text.splitlines()
    # Trailing blank lines are common and harmless; blank lines inside would shift frames.
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def read_matrix(path, columns=(4,), allow_nan=False):
    """Rows of numbers, one per frame, as a float (N, C) array.

    columns: accepted column counts (the first line fixes C for the file).
    allow_nan: whether 'nan' values are legal (UAV123 ground truth, tracker output).
    """
    # Separators become spaces and numpy's C reader does the rest: the LaSOT test set alone is
    # 700k lines. Anything it rejects goes through _diagnose, which names the line.
    text = "\n".join(_lines(path)).translate(_SEPARATORS)
    lines = text.splitlines()
    if not lines:
        raise DatasetError("file is empty", path)
    try:
        out = np.loadtxt(io.StringIO(text), dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        out = None
    if out is None or out.shape[0] != len(lines) or out.shape[1] not in columns:
        _diagnose(lines, path, columns)
        raise DatasetError("unreadable numbers", path)
    bad = np.isinf(out) if allow_nan else ~np.isfinite(out)
    if bad.any():
        number = int(np.argmax(bad.any(axis=1))) + 1
        message = "infinite value" if allow_nan else "NaN or infinite value"
        raise DatasetError(message, path, number)
    return out


def _diagnose(lines, path, columns):
    """Raise a DatasetError naming the first bad line of a file the fast reader rejected."""
    ncols = len(lines[0].split())
    if ncols not in columns:
        expected = " or ".join(map(str, columns))
        raise DatasetError(f"expected {expected} values per line, got {ncols}", path, 1)
    for number, line in enumerate(lines, 1):
        values = line.split()
        if not values:
            raise DatasetError("empty line inside the file", path, number)
        if len(values) != ncols:
            raise DatasetError(f"expected {ncols} values like line 1, got {len(values)}",
                               path, number)
        for v in values:
            try:
                float(v)
            except ValueError:
                raise DatasetError(f"non-numeric value {v!r}", path, number) from None


def read_flags(path, length=None):
    """0/1 flags, one per frame, either one per line or comma separated on one line (LaSOT)."""
    lines = _lines(path)
    tokens = " ".join(lines).translate(_SEPARATORS).split()
    try:
        out = np.array(tokens, dtype=np.float64) != 0
    except ValueError:
        for number, line in enumerate(lines, 1):
            for v in line.translate(_SEPARATORS).split():
                try:
                    float(v)
                except ValueError:
                    raise DatasetError(f"non-numeric flag {v!r}", path, number) from None
        raise DatasetError("unreadable flags", path) from None
    if length is not None and len(out) != length:
        raise DatasetError(f"has {len(out)} flags but the ground truth has {length} frames", path)
    return out


def read_ints(path):
    """Integers on each line (initOmit ranges), as a list of tuples."""
    out = []
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            out.append(tuple(int(float(v)) for v in line.replace(',', ' ').split()))
        except ValueError:
            raise DatasetError("non-numeric value", path, number) from None
    return out


def write_atomic(path, text):
    """Write text so that `path` either holds all of it or does not exist.

    The temporary name is hidden and carries the pid, so a killed run leaves no half file under
    the real name, and resume logic can trust that an existing result file is complete.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed write (full disk) leaves no litter either


def format_boxes(boxes):
    return "".join(",".join(f"{v:.3f}" for v in row) + "\n" for row in np.asarray(boxes, float))
