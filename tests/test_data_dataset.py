"""PairDataset, shards and the evaluation-data guard, on a tiny synthetic data set made in tmp."""
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tracker.train.data import DataConfig, EvalDataError, PairDataset, ShardDataset, build_sources, make_datasets, make_loader
from tracker.train.data.augment import AugConfig
from tracker.train.data.paths import check_training_path
from tracker.train.data.video import load_plain
from tool_import import load_tool

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NO_APPEARANCE = dict(p_color=0, p_hue=0, p_gray=0, p_motion_blur=0, p_blur=0, p_noise=0, p_cutout=0)


def _noise_bg(rng, h, w):
    return cv2.GaussianBlur(rng.integers(60, 140, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)


def _write_tiny(root: Path) -> dict:
    """Two plain videos (red disc moving on grey noise), a YOLO folder, and a cache with 2 stamps + 2 backgrounds."""
    rng = np.random.default_rng(0)
    for s, (dx, dy) in {"a": (4, 2), "b": (-3, 3)}.items():
        d = root / "vid" / s / "img"
        d.mkdir(parents=True)
        rows = []
        for i in range(6):
            img = _noise_bg(rng, 120, 160)
            cx, cy = 70 + dx * i, 50 + dy * i
            cv2.circle(img, (cx, cy), 9, (0, 0, 255), -1)
            cv2.imwrite(str(d / f"{i:05d}.png"), img)
            rows.append(f"{cx - 9},{cy - 9},19,19")
        (d.parent / "groundtruth_rect.txt").write_text("\n".join(rows))
    (root / "yolo" / "images" / "s").mkdir(parents=True)
    (root / "yolo" / "labels" / "s").mkdir(parents=True)
    for k in range(2):
        img = _noise_bg(rng, 100, 140)
        cv2.rectangle(img, (50, 30), (80, 60), (255, 0, 0), -1)
        cv2.imwrite(str(root / "yolo" / "images" / "s" / f"{k}.jpg"), img)
        (root / "yolo" / "labels" / "s" / f"{k}.txt").write_text(f"0 {65.5 / 140} {45.5 / 100} {31 / 140} {31 / 100}\n")
    cache = root / "cache"
    (cache / "stamps" / "shapes").mkdir(parents=True)
    (cache / "backgrounds").mkdir()
    stamps = []
    for name, col in (("disc", (0, 0, 230)), ("blob", (230, 0, 0))):
        rgba = np.zeros((80, 60, 4), np.uint8)
        cv2.ellipse(rgba, (30, 40), (25, 35), 0, 0, 360, (*col, 255), -1)
        cv2.imwrite(str(cache / "stamps" / "shapes" / f"{name}.png"), rgba)
        stamps.append({"path": f"stamps/shapes/{name}.png", "category": "shapes", "name": name, "size": [60, 80]})
    bgs = []
    for k in range(2):
        cv2.imwrite(str(cache / "backgrounds" / f"bg{k}.jpg"), _noise_bg(rng, 300, 400))
        bgs.append({"path": f"backgrounds/bg{k}.jpg", "origin": "test", "size": [400, 300]})
    (cache / "index.json").write_text(json.dumps({"stamps": stamps, "backgrounds": bgs, "still_boxes": []}))
    return {"videos": [{"layout": "plain", "root": str(root / "vid"), "holdout": 1}],
            "yolo": [{"root": str(root / "yolo"), "holdout": "none"}],
            "cache": str(cache), "length": 64, "val_length": 16}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _write_tiny(tmp_path_factory.mktemp("tiny"))


def _eq(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(torch.nan_to_num(a[k].float()), torch.nan_to_num(b[k].float()))
                                        for k in a)


def test_item_format(tiny):
    train, val = make_datasets(tiny)
    assert len(train) == 64 and len(val) == 16
    assert set(train.kinds) == {"video", "still", "composite"}
    it = train[3]
    assert it["z"].dtype == torch.uint8 and it["z"].shape == (3, 127, 127)
    assert it["x"].dtype == torch.uint8 and it["x"].shape == (3, 255, 255)
    assert it["target"].dtype == torch.float32 and it["target"].shape == (2,)
    assert it["box_x"].shape == (4,) and it["neg"].dtype == torch.bool
    # the held-out video is only in val
    assert {s.name for s in train.sources["video"].sequences}.isdisjoint(s.name for s in val.sources["video"].sequences)


def test_deterministic_per_seed_and_index(tiny):
    a, _ = make_datasets(tiny)
    b, _ = make_datasets(tiny)
    for i in (0, 7, 21):
        assert _eq(a[i], b[i])
    assert not _eq(a[0], a[1])
    c, _ = make_datasets({**tiny, "seed": 1})
    assert not _eq(a[0], c[0])
    a.set_epoch(1)
    assert not _eq(a[0], b[0])


def test_loader_workers_match_direct(tiny):
    ds, _ = make_datasets(tiny)
    loader = make_loader(ds, batch_size=4, sampler=list(range(8)), num_workers=2)
    batches = list(loader)
    for k in range(8):
        item = {key: v[k % 4] for key, v in batches[k // 4].items()}
        assert _eq(item, ds[k])


def test_target_offset_locates_the_object(tiny):
    """End to end: the red disc's centroid in x sits at crop centre + target (flip included)."""
    src = build_sources(tiny, "train")
    ds = PairDataset({"video": src["video"]}, {"video": 1}, 40, 0, AugConfig(**NO_APPEARANCE, neg_rate=0))
    for i in range(40):
        it = ds[i]
        x = it["x"].numpy().transpose(1, 2, 0).astype(int)
        red = (x[..., 2] > 180) & (x[..., 1] < 80) & (x[..., 0] < 80)
        ys, xs = np.nonzero(red)
        dy, dx = it["target"].tolist()
        assert abs(ys.mean() - 127 - dy) < 1.5 and abs(xs.mean() - 127 - dx) < 1.5
        bx = it["box_x"].numpy()
        assert abs(bx[0] + (bx[2] - 1) / 2 - 127 - dx) < 1e-3


def test_negatives_flagged(tiny):
    src = build_sources(tiny, "train")
    all_neg = PairDataset(src, {"video": 1, "still": 1, "composite": 1}, 20, 0, AugConfig(neg_rate=1.0))
    for i in range(20):
        it = all_neg[i]
        assert bool(it["neg"]) and torch.isnan(it["target"]).all() and torch.isnan(it["box_x"]).all()
    none = PairDataset(src, {"video": 1}, 20, 0, AugConfig(neg_rate=0.0))
    assert not any(bool(none[i]["neg"]) for i in range(20))
    default = PairDataset(src, {"video": 1, "still": 1}, 150, 0)
    rate = np.mean([bool(default[i]["neg"]) for i in range(150)])
    assert 0.03 < rate < 0.2


def test_shards_round_trip_and_resume(tiny, tmp_path):
    pg = load_tool("pregenerate_pairs")
    cfg = json.dumps({k: v for k, v in tiny.items() if k not in ("length", "val_length")})
    out = tmp_path / "pairs"
    args = ["--out", str(out), "--n", "40", "--shard-size", "16", "--config", cfg, "--nice", "0"]
    assert pg.main(args) == 0
    sh = ShardDataset(out)
    assert len(sh) == 40 and len(sh.shards) == 3
    live, _ = make_datasets({**json.loads(cfg), "length": 40})
    for i in (0, 17, 39):
        assert _eq(sh[i], live[i])
    # resume: a missing shard is regenerated identically, complete ones are kept
    ref = sh.record(20)
    t0 = (out / "shard_00000" / "x.npy").stat().st_mtime_ns
    shutil.rmtree(out / "shard_00001")
    (out / "shard_00002.tmp").mkdir()  # debris of a killed run
    assert pg.main(args + ["--workers", "2"]) == 0
    sh2 = ShardDataset(out)
    assert len(sh2) == 40 and (out / "shard_00000" / "x.npy").stat().st_mtime_ns == t0
    assert all(np.array_equal(np.nan_to_num(ref[k]), np.nan_to_num(sh2.record(20)[k])) for k in ref)
    assert not (out / "shard_00002.tmp").exists()
    # other settings into the same folder are refused
    assert pg.main(["--out", str(out), "--n", "40", "--shard-size", "16", "--seed", "3", "--config", cfg]) == 2


def test_eval_sequences_are_refused(tiny, tmp_path, monkeypatch):
    evald = SHARED / "data" / "sequences"
    with pytest.raises(EvalDataError):
        check_training_path(evald / "otb" / "Biker")
    for bad in ({"videos": [{"layout": "plain", "root": str(evald / "otb")}]},
                {"videos": [{"layout": "plain", "root": str(evald)}]},
                {"yolo": [{"root": str(evald / "vot")}]}):
        with pytest.raises(EvalDataError):
            build_sources({**tiny, **bad}, "train")
    # any other clone of shared/ as well
    with pytest.raises(EvalDataError):
        check_training_path(tmp_path / "elsewhere" / "shared" / "data" / "sequences" / "x")
    # a symlink into the eval folder
    if evald.is_dir():
        link = tmp_path / "innocent"
        link.symlink_to(evald / "otb")
        with pytest.raises(EvalDataError):
            load_plain(link)
    # a parent folder holding an eval sequence: that sequence is an error, never silently used
    root = tmp_path / "mixed"
    for s in ("train_seq", "eval_seq"):
        (root / s / "img").mkdir(parents=True)
        cv2.imwrite(str(root / s / "img" / "0.jpg"), np.zeros((8, 8, 3), np.uint8))
        cv2.imwrite(str(root / s / "img" / "1.jpg"), np.zeros((8, 8, 3), np.uint8))
        (root / s / "groundtruth_rect.txt").write_text("1,1,4,4\n1,1,4,4\n")
    assert len(load_plain(root)) == 2
    monkeypatch.setenv("B2TRACK_EVAL_DIRS", str(root / "eval_seq"))
    with pytest.raises(EvalDataError):
        load_plain(root)


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError):
        DataConfig.from_dict({"wieghts": {}})
    with pytest.raises(ValueError):
        AugConfig.from_dict({"p_grey": 0.1})
