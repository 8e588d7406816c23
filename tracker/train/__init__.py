"""Offline training of the tracker's network, apart from inference (the tracker never imports it).

- ``data``: pair sources (videos, stills, composites), augmentation, shards on disk;
- ``losses``: SiamFC labels and the balanced logistic loss;
- ``task``: the pair task (loss, validation, resumable batches) every training job uses;
- ``filter_head``: the dimp tracker's online filter, differentiable (the pair task's optional filter loss);
- ``fit``: FP training of the teacher on the shared harness (``backbones.harness``).
"""
from .fit import TrainConfig, make_optimizer, plot_curves, train
from .task import BIG_STEP, PairTask, StepSampler, native_bf16, pair_batches, validate

__all__ = ["BIG_STEP", "PairTask", "StepSampler", "TrainConfig", "make_optimizer", "native_bf16", "pair_batches",
           "plot_curves", "train", "validate"]
