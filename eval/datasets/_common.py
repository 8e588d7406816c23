"""Small helpers shared by the dataset loaders."""
import os
from pathlib import Path

from ..errors import DatasetError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")


def _frame_key(name):
    stem = name.rsplit(".", 1)[0]
    # Numeric order first: unpadded names (1.jpg, 10.jpg, 2.jpg) must not sort as text.
    return (0, int(stem), name) if stem.isdigit() else (1, 0, name)


def list_frames(folder):
    """Image files of a folder in frame order (names only, nothing decoded)."""
    folder = Path(folder)
    try:
        names = [e.name for e in os.scandir(folder)
                 if e.is_file() and e.name.lower().endswith(IMAGE_EXTS)]
    except FileNotFoundError:
        raise DatasetError("frame folder not found", folder) from None
    if not names:
        raise DatasetError("no image files", folder)
    return [folder / n for n in sorted(names, key=_frame_key)]


def require_dir(root):
    root = Path(root)
    if not root.is_dir():
        raise DatasetError("no such directory", root)
    return root


def subdirs(root):
    return sorted((p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def read_list(path):
    """Names listed one per line (list.txt, testing_set.txt), blank lines ignored."""
    from ..textio import _lines

    return [line.strip() for line in _lines(path) if line.strip()]


def check_frame_count(frames, n, gt_path):
    if len(frames) != n:
        raise DatasetError(f"{n} ground-truth lines but {len(frames)} frames in "
                           f"{frames[0].parent if frames else '?'}", gt_path)
