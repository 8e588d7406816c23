"""Loaders on the real shared layouts and on tiny (malformed) layouts written to tmp_path."""
from pathlib import Path

import numpy as np
import pytest

from eval import DatasetError
from eval.datasets import load_dataset, load_folder, load_got10k, load_lasot, load_otb, load_vot
from eval.datasets.uav123 import load_uav123

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
needs_shared = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {SHARED}")


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def fake_frames(folder, n, fmt="{:04d}.jpg"):
    """Empty image files: the loaders must list frames without decoding them."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        (folder / fmt.format(i)).touch()


def boxes(n, sep=","):
    return "".join(sep.join(str(v) for v in (10 + i, 20, 30, 40)) + "\n" for i in range(n))


# ---------------------------------------------------------------- real shared layouts

@needs_shared
def test_otb_toolkit_annotations():
    seqs = {s.name: s for s in load_otb(DATA / "otb100_anno")}
    assert len(seqs) == 100 and "ball" not in seqs  # the toolkit's extra file is not OTB100
    tiger = seqs["tiger1"]
    assert tiger.start_frame == 6 and tiger.init_omit == 5 and len(tiger) == 349
    assert not tiger.frames  # annotation only
    assert {"jogging-1", "jogging-2", "Human4", "Skating2-1", "Skating2-2"} <= set(seqs)
    biker = seqs["Biker"]
    assert biker.gt.shape == (142, 4) and biker.visible.sum() == 142 - 7  # y <= 0 on 7 frames
    assert biker.attributes["SV"] and biker.attributes["OCC"] and not biker.attributes["IV"]
    assert len(load_otb(DATA / "otb100_anno", subset="all")) == 101


@needs_shared
def test_otb_frames_layout_and_extra_frames():
    seqs = {s.name: s for s in load_otb(DATA / "sequences" / "otb")}
    assert sorted(seqs) == ["Biker", "Couple", "Crossing", "Football1", "Skiing"]
    foot = seqs["Football1"]  # 81 images, 74 ground-truth lines: the rest is ignored
    assert len(foot) == 74 and len(foot.frames) == 74
    assert foot.frames[0].name == "0001.jpg" and foot.frames[-1].name == "0074.jpg"
    assert seqs["Couple"].gt[0] == pytest.approx([51, 47, 25, 62])  # tab separated file
    image = seqs["Crossing"].frame(0)
    assert image.shape == (240, 360, 3) and image.dtype == np.uint8


@needs_shared
def test_lasot_toolkit_layout(tmp_path):
    # Three real sequences copied into a toolkit-style folder (the whole set is loaded by
    # test_eval_paper_numbers; no need to parse its 700k lines twice).
    src = DATA / "lasot_anno"
    names = ["airplane-1", "airplane-15", "zebra-17"]
    for n in names:
        write(tmp_path / f"{n}.txt", (src / f"{n}.txt").read_text())
        write(tmp_path / "absent" / f"{n}.txt", (src / "absent" / f"{n}.txt").read_text())
    write(tmp_path / "testing_set.txt", "\n".join(names[:2]))
    seqs = load_lasot(tmp_path)
    assert [s.name for s in seqs] == names[:2]  # testing_set.txt decides
    s = seqs[0]
    assert s.attributes["class"] == "airplane" and len(s.visible) == len(s.gt) == 2788
    absent = np.loadtxt(src / "absent" / "airplane-15.txt") > 0
    assert absent.sum() == 42
    assert (seqs[1].visible == ~absent).all()
    assert len(load_lasot(tmp_path, subset="all")) == 3


@needs_shared
def test_vot_polygons_become_boxes():
    (bag,) = load_vot(DATA / "sequences" / "vot")
    assert bag.name == "bag" and len(bag) == len(bag.frames) == 196
    poly = np.array([334.02, 128.36, 438.19, 188.78, 396.39, 260.83, 292.23, 200.41])
    x, y, w, h = bag.gt[0]
    assert (x + w / 2, y + h / 2) == pytest.approx((poly[0::2].mean(), poly[1::2].mean()))
    xs, ys = poly[0::2], poly[1::2]
    area = 0.5 * abs(np.dot(xs, np.roll(ys, -1)) - np.dot(np.roll(xs, -1), ys))
    assert w * h == pytest.approx(area)


@needs_shared
def test_got10k_sample():
    (s,) = load_got10k(DATA / "training" / "got10k_val_sample")
    assert s.name == "GOT-10k_Val_000001" and len(s) == len(s.frames) == 60
    assert s.meta["resolution"] == (1280, 720)
    assert s.attributes["object_class"] == "fireboat"
    assert s.gt[0] == pytest.approx([178, 220, 456, 315])


@needs_shared
def test_folder_of_mixed_sequences():
    seqs = load_folder(DATA / "sequences")
    assert sorted(s.name for s in seqs) == ["Biker", "Couple", "Crossing", "Football1",
                                            "Skiing", "bag"]
    assert all(s.frames and len(s.frames) == len(s) for s in seqs)


# ---------------------------------------------------------------- synthetic layouts

def test_otb_multi_target_start_frames_and_separators(tmp_path):
    fake_frames(tmp_path / "Jogging" / "img", 5)
    write(tmp_path / "Jogging" / "groundtruth_rect.1.txt", boxes(5, "\t"))
    write(tmp_path / "Jogging" / "groundtruth_rect.2.txt", boxes(5, " "))
    fake_frames(tmp_path / "Tiger1" / "img", 8)  # ground truth from frame 1, scored from 6
    write(tmp_path / "Tiger1" / "groundtruth_rect.txt", boxes(8))
    fake_frames(tmp_path / "BlurCar3" / "img", 9)  # ground truth starts at frame 3
    write(tmp_path / "BlurCar3" / "groundtruth_rect.txt", boxes(5))
    seqs = {s.name: s for s in load_otb(tmp_path)}
    assert sorted(seqs) == ["BlurCar3", "Jogging-1", "Jogging-2", "Tiger1"]
    assert seqs["Jogging-2"].frames == seqs["Jogging-1"].frames
    tiger = seqs["Tiger1"]
    assert len(tiger) == 3 and tiger.frames[0].name == "0006.jpg" and tiger.gt[0, 0] == 15
    blur = seqs["BlurCar3"]
    assert len(blur) == 5
    assert blur.frames[0].name == "0003.jpg" and blur.frames[-1].name == "0007.jpg"


def test_lasot_frames_layout(tmp_path):
    seq = tmp_path / "cat" / "cat-1"
    fake_frames(seq / "img", 4, "{:08d}.jpg")
    write(seq / "groundtruth.txt", boxes(4))
    write(seq / "full_occlusion.txt", "0,0,1,0")
    write(seq / "out_of_view.txt", "0,0,0,1")
    (s,) = load_lasot(tmp_path)
    assert s.name == "cat-1" and s.visible.tolist() == [True, True, False, False]
    write(seq / "out_of_view.txt", "0,0,0")
    with pytest.raises(DatasetError, match=r"out_of_view\.txt.*3 flags.*4 frames"):
        load_lasot(tmp_path)


def test_got10k_layout_and_test_split(tmp_path):
    split = tmp_path / "test"
    fake_frames(split / "GOT-10k_Test_000001", 5, "{:08d}.jpg")
    write(split / "GOT-10k_Test_000001" / "groundtruth.txt", boxes(1))
    write(split / "list.txt", "GOT-10k_Test_000001\n")
    (s,) = load_got10k(tmp_path, split="test")
    assert len(s) == 5 and s.meta["first_box_only"] and np.isnan(s.gt[1:]).all()
    val = tmp_path / "val"
    fake_frames(val / "a", 3, "{:08d}.jpg")
    write(val / "a" / "groundtruth.txt", boxes(3))
    write(val / "a" / "absence.label", "0\n0\n1\n")
    write(val / "a" / "cover.label", "8\n0\n0\n")
    write(val / "list.txt", "a\n")
    (s,) = load_dataset("got10k", tmp_path)
    assert s.visible.tolist() == [True, False, False]


def test_vot_boxes_and_color_folder(tmp_path):
    fake_frames(tmp_path / "ball" / "color", 3, "{:08d}.jpg")
    write(tmp_path / "ball" / "groundtruth.txt", boxes(3))
    (s,) = load_vot(tmp_path)
    assert s.gt[2] == pytest.approx([12, 20, 30, 40]) and s.frames[0].parent.name == "color"


def test_uav123_nan_rows_are_absent(tmp_path):
    write(tmp_path / "anno" / "UAV123" / "bike1.txt", "1,2,3,4\nNaN,NaN,NaN,NaN\n5,6,7,8\n")
    fake_frames(tmp_path / "data_seq" / "UAV123" / "bike1", 3, "{:06d}.jpg")
    (s,) = load_uav123(tmp_path)
    assert s.visible.tolist() == [True, False, True]
    write(tmp_path / "anno" / "UAV123" / "bird1_2.txt", boxes(2))
    fake_frames(tmp_path / "data_seq" / "UAV123" / "bird1", 6, "{:06d}.jpg")
    with pytest.raises(DatasetError, match="bird1_2"):
        load_uav123(tmp_path)
    seqs = {s.name: s for s in load_uav123(tmp_path, start_frames={"bird1_2": 4})}
    assert [p.name for p in seqs["bird1_2"].frames] == ["000004.jpg", "000005.jpg"]


def test_frames_are_not_decoded_until_asked(tmp_path):
    fake_frames(tmp_path / "Empty" / "img", 2)  # zero-byte "images" load fine...
    write(tmp_path / "Empty" / "groundtruth_rect.txt", boxes(2))
    (s,) = load_otb(tmp_path)
    with pytest.raises(DatasetError, match="0001.jpg"):  # ...until a frame is read
        s.frame(0)


# ---------------------------------------------------------------- malformed input

@pytest.mark.parametrize("text, line, message", [
    ("1,2,3,4\n1,2,3\n", 2, "expected 4 values like line 1, got 3"),
    ("1,2,3\n", 1, "expected 4 values per line, got 3"),
    ("1,2,3,4\n5,6,7,8\n9,x,1,2\n", 3, "non-numeric value 'x'"),
    ("1,2,3,4\n\n5,6,7,8\n", 2, "empty line"),
    ("1,2,3,4\nnan,2,3,4\n", 2, "NaN"),
])
def test_malformed_ground_truth_names_file_and_line(tmp_path, text, line, message):
    fake_frames(tmp_path / "Seq" / "img", 3)
    gt = write(tmp_path / "Seq" / "groundtruth_rect.txt", text)
    with pytest.raises(DatasetError) as err:
        load_otb(tmp_path)
    assert f"{gt}:{line}:" in str(err.value) and message in str(err.value)


def test_missing_ground_truth_and_frame_mismatch(tmp_path):
    fake_frames(tmp_path / "NoGT" / "img", 3)
    with pytest.raises(DatasetError, match=r"NoGT.*no groundtruth_rect\.txt"):
        load_otb(tmp_path)
    few = tmp_path / "short" / "Few"
    fake_frames(few / "img", 2)
    write(few / "groundtruth_rect.txt", boxes(3))
    with pytest.raises(DatasetError, match="3 ground-truth lines but only 2 frames"):
        load_otb(few.parent)
    vot = tmp_path / "vot" / "s"
    fake_frames(vot, 4, "{:08d}.jpg")
    write(vot / "groundtruth.txt", boxes(3))
    with pytest.raises(DatasetError, match="3 ground-truth lines but 4 frames"):
        load_vot(tmp_path / "vot")
    with pytest.raises(DatasetError, match="no such directory"):
        load_otb(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="file not found"):
        load_lasot(write(tmp_path / "lasot" / "cat-1.txt", boxes(2)).parent)


def test_vot_mask_annotations_are_refused_clearly(tmp_path):
    fake_frames(tmp_path / "s", 1, "{:08d}.jpg")
    write(tmp_path / "s" / "groundtruth.txt", "m1,2,3,4,5\n")
    with pytest.raises(DatasetError, match=r"groundtruth\.txt:1: mask annotations"):
        load_vot(tmp_path)
