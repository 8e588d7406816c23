"""Training pairs for the Siamese tracker: sources, SiamFC crops, augmentation, datasets, shards.

    from tracker.train.data import make_datasets
    train_ds, val_ds = make_datasets({"weights": {"video": 0.5, "still": 0.25, "composite": 0.25}})

Item format: see tracker/train/data/dataset.py. Sources: tools/prepare_data.py
fills data_cache/ (stamps, backgrounds); ../shared/data/training holds the
videos and COCO images. ../shared/data/sequences (evaluation) is refused.
"""
from .base import Pair, PairSource
from .crops import EXEMPLAR_SIZE, SEARCH_SIZE, Crop, context_size, crop, crop_matrix
from .dataset import (SOURCE_KINDS, DataConfig, PairDataset, build_sources, make_datasets, make_loader,
                      worker_init_fn)
from .paths import EvalDataError, check_training_path
from .shards import ShardDataset

__all__ = ["Pair", "PairSource", "EXEMPLAR_SIZE", "SEARCH_SIZE", "Crop", "context_size", "crop", "crop_matrix",
           "SOURCE_KINDS", "DataConfig", "PairDataset", "build_sources", "make_datasets", "make_loader",
           "worker_init_fn", "EvalDataError", "check_training_path", "ShardDataset"]
