from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker.train.data.base import split_names
from tracker.train.data.still import StillImage, StillSource, image_size, load_yolo
from tracker.train.data.video import VideoSource, load_got10k, load_lasot, load_plain, load_sequences, load_trackingnet

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TRAINING = SHARED / "data" / "training"
needs_shared = pytest.mark.skipif(not TRAINING.is_dir(), reason=f"shared training data not found at {TRAINING}")


def _frame(path: Path, box, size=(96, 128)):
    img = np.full((*size, 3), 90, np.uint8)
    x, y, w, h = (int(v) for v in box)
    img[y:y + h, x:x + w] = (0, 0, 255)
    cv2.imwrite(str(path), img)


def _boxes(n):
    return [(10 + 3 * i, 20 + i, 30, 24) for i in range(n)]


def test_yolo_tiny(tmp_path):
    root = tmp_path / "yolo"
    (root / "images" / "s").mkdir(parents=True)
    (root / "labels" / "s").mkdir(parents=True)
    _frame(root / "images" / "s" / "a.jpg", (0, 0, 1, 1), size=(100, 200))  # 200 wide, 100 high
    # cx cy w h normalised: box x=40..100 (w 60), y=20..60 (h 40); one box too small to keep
    (root / "labels" / "s" / "a.txt").write_text("3 0.35 0.4 0.3 0.4\n1 0.5 0.5 0.02 0.02\n")
    (root / "labels" / "s" / "b.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no image: skipped
    assert image_size(root / "images" / "s" / "a.jpg") == (200, 100)
    ims = load_yolo(root, split="all")
    assert len(ims) == 1 and ims[0].name == "yolo/s/a"
    np.testing.assert_allclose(ims[0].boxes, [[40, 20, 60, 40]])
    src = StillSource(ims)
    z, bz, x, bx = src.sample_pair(np.random.default_rng(0))
    assert z.shape == (100, 200, 3) and x.dtype == np.uint8
    np.testing.assert_allclose(bz, [40, 20, 60, 40])
    assert bx[2] > 10 and bx[3] > 10


def test_got10k_tiny_absence_and_cover(tmp_path):
    root = tmp_path / "got" / "train"
    seq = root / "GOT-10k_Train_000001"
    seq.mkdir(parents=True)
    bs = _boxes(6)
    for i, b in enumerate(bs):
        _frame(seq / f"{i + 1:08d}.jpg", b)
    (seq / "groundtruth.txt").write_text("\n".join(",".join(f"{v:.4f}" for v in b) for b in bs))
    (seq / "absence.label").write_text("0\n0\n1\n0\n0\n0\n")
    (seq / "cover.label").write_text("8\n8\n0\n8\n0\n8\n")  # 0: fully covered
    (root / "list.txt").write_text("GOT-10k_Train_000001\n")
    (s,) = load_got10k(root)
    assert len(s) == 6 and s.frames[0].name == "00000001.jpg"
    assert s.valid.tolist() == [True, True, False, True, False, True]
    src = VideoSource([s], max_gap=1)
    rng = np.random.default_rng(0)
    for _ in range(50):
        _, i, j = src.sample_indices(rng)
        assert s.valid[i] and s.valid[j] and abs(i - j) <= 1
    z, bz, x, bx = src.sample_pair(rng)
    assert z.ndim == 3 and bz.shape == (4,)


def test_lasot_and_trackingnet_and_plain_tiny(tmp_path):
    bs = _boxes(4)
    # LaSOT: <class>/<class>-1/img/00000001.jpg
    d = tmp_path / "lasot" / "cat" / "cat-1"
    (d / "img").mkdir(parents=True)
    for i, b in enumerate(bs):
        _frame(d / "img" / f"{i + 1:08d}.jpg", b)
    (d / "groundtruth.txt").write_text("\n".join(",".join(str(v) for v in b) for b in bs))
    (d / "full_occlusion.txt").write_text("0,0,1,0")
    (d / "out_of_view.txt").write_text("0,0,0,1")
    (s,) = load_lasot(tmp_path / "lasot")
    assert s.valid.tolist() == [True, True, False, False]
    # TrackingNet: TRAIN_0/frames/<seq>/<k>.jpg numbered from 0, anno/<seq>.txt
    t = tmp_path / "tn" / "TRAIN_0"
    (t / "frames" / "vid").mkdir(parents=True)
    (t / "anno").mkdir()
    for i in range(12):
        _frame(t / "frames" / "vid" / f"{i}.jpg", bs[0])
    (t / "anno" / "vid.txt").write_text("\n".join(",".join(str(v) for v in bs[0]) for _ in range(12)))
    (s,) = load_trackingnet(tmp_path / "tn")
    assert [f.name for f in s.frames[:3]] + [s.frames[-1].name] == ["0.jpg", "1.jpg", "2.jpg", "11.jpg"]
    assert load_trackingnet(t)[0].name == s.name  # one chunk folder works too
    # plain: <seq>/img/*.jpg + groundtruth_rect.txt (tabs), or frames next to it
    p = tmp_path / "plain" / "walk"
    (p / "img").mkdir(parents=True)
    for i, b in enumerate(bs):
        _frame(p / "img" / f"{i:05d}.jpg", b)
    (p / "groundtruth_rect.txt").write_text("\n".join("\t".join(str(v) for v in b) for b in bs))
    (s,) = load_plain(tmp_path / "plain")
    assert len(s) == 4 and s.valid.all()
    np.testing.assert_allclose(s.boxes[1], bs[1])


def test_frame_filling_targets_are_skipped(tmp_path):
    d = tmp_path / "plain" / "zoom" / "img"
    d.mkdir(parents=True)
    bs = [(10, 10, 30, 24), (0, 0, 120, 90), (12, 10, 30, 24)]  # the middle one fills the 128x96 frame
    for i, b in enumerate(bs):
        _frame(d / f"{i}.jpg", b)
    (d.parent / "groundtruth_rect.txt").write_text("\n".join(",".join(str(v) for v in b) for b in bs))
    (s,) = load_plain(tmp_path / "plain")
    assert s.valid.all()  # the loader reports the annotation as it is
    src = VideoSource([s])
    assert src._valid_idx[0].tolist() == [0, 2] and len(src) == 2
    im = StillImage("x", np.zeros((96, 128, 3), np.uint8), np.array(bs, float))
    assert StillSource([im])._obj[:, 1].tolist() == [0, 2]


def test_split_is_deterministic_and_disjoint():
    names = [f"seq{i}" for i in range(14)]
    val = split_names(names, 2, "val")
    train = split_names(names, 2, "train")
    assert len(val) == 2 and not set(val) & set(train) and len(train) == 12
    assert split_names(names, 2, "val") == val
    assert split_names(names, "all", "train") == [] and split_names(names, "none", "val") == []


@needs_shared
def test_shared_davis_and_got10k():
    davis = load_plain(TRAINING / "davis2016_boxes")
    assert len(davis) == 14
    assert all(len(s) >= 40 and s.valid.all() for s in davis)
    assert {s.name for s in load_sequences("plain", TRAINING / "davis2016_boxes", 2, "val")} \
        .isdisjoint(s.name for s in load_sequences("plain", TRAINING / "davis2016_boxes", 2, "train"))
    (got,) = load_got10k(TRAINING / "got10k_val_sample" / "val")
    assert len(got) >= 2 and got.valid.any()
    z, bz, x, bx = VideoSource(davis[:2]).sample_pair(np.random.default_rng(1))
    assert z.dtype == np.uint8 and bz[2] > 0 and bx[3] > 0


@needs_shared
def test_shared_coco256_yolo():
    ims = load_yolo(TRAINING / "coco256", split="all", min_size=0)
    assert len(ims) >= 250
    # 1,839 label lines; two label files (12 boxes) have no image in the folder
    n_lines = sum(1 for f in (TRAINING / "coco256" / "labels").glob("*/*.txt")
                  for ln in f.read_text().splitlines() if ln.strip())
    assert sum(len(i.boxes) for i in ims) >= n_lines - 12 >= 1800
    # boxes are inside their images
    for im in ims[:20]:
        w, h = image_size(im.image)
        b = im.boxes
        assert (b[:, 0] >= -1).all() and (b[:, 0] + b[:, 2] <= w + 1).all()
        assert (b[:, 1] >= -1).all() and (b[:, 1] + b[:, 3] <= h + 1).all()
