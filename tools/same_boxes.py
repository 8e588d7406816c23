#!/usr/bin/env python
"""Are the tracker's boxes byte-identical between two versions of the code?

A refactor must not change what the trackers output. This runs every zoo
model with both trackers (``track-eval run``, one thread, one worker so the
order of floating-point work is fixed) on the dev sequences, once with the
code of ``--ref`` (a git commit, checked out into a temporary worktree that
borrows this checkout's compiled kernel) and once with the working tree, and
compares every result file byte for byte.

    python tools/same_boxes.py --ref 2b1bed8                 # the working tree against that commit
    python tools/same_boxes.py --ref HEAD~3 --trackers dimp  # fewer runs
    python tools/same_boxes.py --ref 2b1bed8 --new HEAD      # two commits (the working tree left alone)
    python tools/same_boxes.py --compare DIR_A DIR_B         # two result folders made earlier

Exit status: 0 all identical, 1 some differ (listed), 2 a usage error.
Results go under ``runs/same_boxes/<label>/`` (ignored by git).
"""
from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "sequences"


def fail(msg: str):
    print(f"same_boxes: error: {msg}", file=sys.stderr)
    sys.exit(2)


def zoo_models(code: Path) -> list[str]:
    manifest = json.loads((code / "tracker" / "zoo" / "manifest.json").read_text())
    return [e["file"] for e in manifest["entries"]]


def run_all(code: Path, out: Path, trackers: list[str], models: list[str], root: Path) -> None:
    """track-eval run of each model x tracker with the package found in ``code``."""
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1")
    env.pop("B2TRACK_ZOO", None)
    for model in models:
        for tracker in trackers:
            name = f"{tracker}_{Path(model).stem}"
            cmd = [sys.executable, "-m", "eval.cli", "run", "--dataset", "folder", "--root", str(root),
                   "--tracker", tracker, "--model", str(code / "tracker" / "zoo" / model), "--name", name,
                   "--workers", "1", "--threads", "1", "--results", str(out)]
            print(f"[{code.name}] {name}", flush=True)
            r = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"{' '.join(cmd)} failed in {code}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")


def compare(a: Path, b: Path) -> list[str]:
    """Relative paths of box files that differ or exist on one side only (``*_time.txt``, seconds per
    frame, differ between any two runs and are left out)."""
    files_a = {p.relative_to(a) for p in a.rglob("*.txt") if not p.name.endswith("_time.txt")}
    files_b = {p.relative_to(b) for p in b.rglob("*.txt") if not p.name.endswith("_time.txt")}
    if not files_a and not files_b:
        fail(f"no result files under {a} or {b}")
    diff = sorted(str(p) + " (only one side)" for p in files_a ^ files_b)
    diff += sorted(str(p) for p in files_a & files_b if not filecmp.cmp(a / p, b / p, shallow=False))
    return diff


def worktree(ref: str) -> Path:
    """A checkout of ``ref`` in a temporary folder, with this checkout's compiled kernel copied in."""
    where = Path(tempfile.mkdtemp(prefix="same_boxes_"))
    r = subprocess.run(["git", "worktree", "add", "--detach", str(where / "code"), ref], cwd=REPO,
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"cannot check out {ref!r}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    for so in (REPO / "backbones" / "kernels").glob("_b2kernel*.so"):
        shutil.copy2(so, where / "code" / "backbones" / "kernels" / so.name)
    return where / "code"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ref", help="git commit to compare the working tree against")
    p.add_argument("--new", help="git commit to compare with --ref instead of the working tree")
    p.add_argument("--compare", nargs=2, metavar="DIR", help="compare two existing result folders instead")
    p.add_argument("--trackers", nargs="+", default=["siamfc", "dimp"])
    p.add_argument("--models", nargs="+", help="zoo files to run (default: every zoo model in both versions)")
    p.add_argument("--root", default=str(DEV), help="sequence folder (default: the dev sequences in ../shared)")
    p.add_argument("--out", default=str(REPO / "runs" / "same_boxes"), help="where both result sets go")
    a = p.parse_args(argv)
    if a.compare:
        left, right = (Path(d) for d in a.compare)
    else:
        if not a.ref:
            fail("give --ref COMMIT or --compare DIR_A DIR_B")
        if not Path(a.root).is_dir():
            fail(f"no sequences at {a.root}")
        out = Path(a.out).resolve()  # the runs' working folder is each version's checkout
        left, right = out / "ref", out / "work"
        for d in (left, right):
            shutil.rmtree(d, ignore_errors=True)
        codes = [worktree(a.ref), worktree(a.new) if a.new else REPO]
        try:
            models = sorted(set(zoo_models(codes[0])) & set(zoo_models(codes[1])))
            if a.models:
                models = [m for m in models if m in a.models or Path(m).stem in a.models]
            for code, out in zip(codes, (left, right)):
                run_all(code, out, a.trackers, models, Path(a.root))
        finally:
            for code in codes:
                if code != REPO:
                    subprocess.run(["git", "worktree", "remove", "--force", str(code)], cwd=REPO, capture_output=True)
    diff = compare(left, right)
    n = len([p for p in left.rglob("*.txt") if not p.name.endswith("_time.txt")])
    if diff:
        print(f"{len(diff)} of {n} result files differ:")
        print("\n".join(f"  {d}" for d in diff))
        return 1
    print(f"all {n} result files are byte-identical ({left} vs {right})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
