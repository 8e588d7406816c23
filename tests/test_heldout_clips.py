"""tools/heldout_clips.py without the registries: interpolation, the OTB files it writes for a
synthetic clip, the .deb path (a tiny package built here) and the exit-2 message."""
import json
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from tool_import import load_tool

REPO = Path(__file__).resolve().parents[1]
hc = load_tool("heldout_clips")


def write_video(path, n=12, size=(64, 48)):
    """Frame i is a flat grey of level 20*i (so the frame offset can be read back)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert w.isOpened()
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), 20 * i, np.uint8))
    w.release()
    return path


def write_annotations(path, clips):
    path.write_text(json.dumps({"version": 1, "clips": clips}))
    return path


def clip(name, source, first=2, last=9, keyframes=None):
    keyframes = keyframes or [[2, 4, 6, 20, 10], [6, 12, 6, 20, 18], [9, 12, 3, 26, 18]]
    return {"name": name, "source": source, "first": first, "last": last, "target": "a square",
            "keyframes": keyframes}


def test_interpolate_between_keyframes():
    k = [[0, 0, 0, 10, 10], [10, 10, 20, 30, 10], [12, 10, 20, 30, 14]]
    b = hc.interpolate(k, 0, 12)
    assert b.shape == (13, 4)
    np.testing.assert_allclose(b[0], [0, 0, 10, 10])
    np.testing.assert_allclose(b[3], [3, 6, 16, 10])  # 3/10 of the way
    np.testing.assert_allclose(b[5], [5, 10, 20, 10])
    np.testing.assert_allclose(b[10], [10, 20, 30, 10])  # keyframes are kept exactly
    np.testing.assert_allclose(b[11], [10, 20, 30, 12])
    # a sub-range starts at its own first frame
    np.testing.assert_allclose(hc.interpolate(k, 4, 6), [[4, 8, 18, 10], [5, 10, 20, 10], [6, 12, 22, 10]])


@pytest.mark.parametrize("k, first, last, msg", [
    ([[2, 0, 0, 5, 5], [9, 1, 1, 5, 5]], 0, 9, "do not cover"),
    ([[0, 0, 0, 5, 5], [9, 1, 1, 5, 5]], 0, 10, "do not cover"),
    ([[0, 0, 0, 5, 5], [0, 1, 1, 5, 5]], 0, 0, "must increase"),
    ([[0, 0, 0, 5, 0], [9, 1, 1, 5, 5]], 0, 9, "w, h > 0"),
    ([[0, 0, 0, 5]], 0, 0, "[frame, x, y, w, h]"),
])
def test_interpolate_rejects_bad_keyframes(k, first, last, msg):
    with pytest.raises(hc.Missing, match=msg.replace("[", r"\[").replace("]", r"\]")):
        hc.interpolate(k, first, last)


def test_groundtruth_format_rounds_half_up():
    assert hc.format_groundtruth(np.array([[1.5, 2.49, 3.5, 4.0], [0.5, 1, 2, 3]])) == "2,2,4,4\n1,1,2,3\n"


def test_writes_otb_sequence_and_is_idempotent(tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi")
    anno = write_annotations(tmp_path / "anno.json", [clip("square", {"file": str(video)})])
    out = tmp_path / "heldout"
    assert hc.main(["--out", str(out), "--annotations", str(anno)]) == 0
    assert "wrote" in capsys.readouterr().out

    seq = out / "square"
    imgs = sorted((seq / "img").glob("*.jpg"))
    assert [p.name for p in imgs] == [f"{i:08d}.jpg" for i in range(1, 9)]  # frames 2..9, 1-based
    # img/00000001.jpg is source frame 2 (grey 40), the last one frame 9 (grey 180)
    assert abs(cv2.imread(str(imgs[0])).mean() - 40) < 6
    assert abs(cv2.imread(str(imgs[-1])).mean() - 180) < 6
    lines = (seq / "groundtruth_rect.txt").read_text().splitlines()
    assert len(lines) == 8
    assert lines[0] == "4,6,20,10"  # frame 2 = first keyframe
    assert lines[2] == "8,6,20,14"  # frame 4, halfway to the frame-6 keyframe
    assert lines[4] == "12,6,20,18"  # frame 6
    assert lines[7] == "12,3,26,18"  # frame 9 = last keyframe
    assert all(len(ln.split(",")) == 4 for ln in lines)
    meta = json.loads((seq / "clip.json").read_text())
    assert (meta["first"], meta["last"], meta["frames"], meta["size"]) == (2, 9, 8, [64, 48])

    # the evaluation's folder loader reads it as one OTB sequence
    from eval.datasets.folder import load_folder
    (s,) = load_folder(out)
    assert s.name == "square" and len(s.frames) == 8 and s.gt.shape == (8, 4)

    # a second run keeps the clip; a changed annotation rewrites it
    stamp = imgs[0].stat().st_mtime_ns
    assert hc.main(["--out", str(out), "--annotations", str(anno)]) == 0
    assert "kept" in capsys.readouterr().out and imgs[0].stat().st_mtime_ns == stamp
    write_annotations(anno, [clip("square", {"file": str(video)}, first=3, last=5,
                                  keyframes=[[3, 1, 1, 5, 5], [5, 3, 1, 5, 5]])])
    assert hc.main(["--out", str(out), "--annotations", str(anno)]) == 0
    assert (seq / "groundtruth_rect.txt").read_text() == "1,1,5,5\n2,1,5,5\n3,1,5,5\n"
    assert len(list((seq / "img").glob("*.jpg"))) == 3


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_deb_source_with_gzipped_video(tmp_path, capsys):
    """A tiny package holding a gzipped video, given with --debs (no apt-get)."""
    import gzip

    pkg = tmp_path / "pkg"
    member = "usr/share/doc/fake-videos/clip.avi.gz"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: fake-videos\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test\n")
    (pkg / member).parent.mkdir(parents=True)
    raw = write_video(tmp_path / "raw.avi").read_bytes()
    (pkg / member).write_bytes(gzip.compress(raw))
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(pkg), str(debs / "fake-videos_1.0_all.deb")],
                   check=True, capture_output=True)
    anno = write_annotations(tmp_path / "anno.json",
                             [clip("fake", {"package": "fake-videos", "path": "./" + member})])
    out = tmp_path / "heldout"
    assert hc.main(["--out", str(out), "--annotations", str(anno), "--debs", str(debs)]) == 0
    assert (out / ".sources" / "fake-videos" / "usr/share/doc/fake-videos/clip.avi").is_file()
    assert len((out / "fake" / "groundtruth_rect.txt").read_text().splitlines()) == 8
    capsys.readouterr()
    # unpacked once: a second run needs neither the .deb nor apt-get
    shutil.rmtree(debs)
    assert hc.main(["--out", str(out), "--annotations", str(anno), "--debs", str(debs)]) == 0
    assert "unpacking" not in capsys.readouterr().out


@pytest.mark.parametrize("source, fragment", [
    ({"file": "MISSING/nope.avi"}, "nope.avi not found"),
    ({"wheel": "no_such_module_for_heldout", "path": "x.mp4"}, "no_such_module_for_heldout is not installed"),
])
def test_missing_source_exits_2_with_one_line(tmp_path, capsys, source, fragment):
    source = {k: v.replace("MISSING", str(tmp_path)) for k, v in source.items()}
    anno = write_annotations(tmp_path / "anno.json", [clip("gone", source)])
    assert hc.main(["--out", str(tmp_path / "out"), "--annotations", str(anno)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("heldout_clips: error: gone:") and fragment in err[0], err
    assert not (tmp_path / "out" / "gone").exists()


def test_short_video_and_bad_annotation_file_exit_2(tmp_path, capsys):
    video = write_video(tmp_path / "clip.avi", n=5)
    anno = write_annotations(tmp_path / "anno.json", [clip("short", {"file": str(video)})])
    assert hc.main(["--out", str(tmp_path / "out"), "--annotations", str(anno)]) == 2
    assert "only 5 frames decoded" in capsys.readouterr().err
    assert hc.main(["--out", str(tmp_path / "out"), "--annotations", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.json" in err[0]


def test_shipped_annotations_are_valid():
    clips = hc.load_annotations(hc.ANNOTATIONS)
    assert len(clips) >= 5
    for c in clips:
        assert c["target"] and ("package" in c["source"] or "wheel" in c["source"])
        b = hc.interpolate(c["keyframes"], c["first"], c["last"])
        assert len(b) == c["last"] - c["first"] + 1 and (b[:, 2:] > 0).all()
        gaps = np.diff([k[0] for k in c["keyframes"]])
        assert gaps.max() <= 15  # one hand-annotated box at least every 15 frames
