"""Siamese and DiMP-style trackers on B2NN backbones, training of the FP tracker, the zoo and the ``track`` CLI.

    from tracker import create_tracker
    t = create_tracker("dimp", budget=0.3)      # images are BGR unless rgb=True
    t.init(frame, (x, y, w, h)); box = t.update(next_frame)
    mt = create_multi_tracker("dimp", budget=0.3)   # several targets, one backbone pass per frame
    mt.init(frame, [box_a, box_b]); boxes = mt.update(next_frame)
"""
from __future__ import annotations

import os as _os

# Before anything starts torch's OpenMP runtime (backbones/__init__.py says why); without torch here.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# The channel order every model and tracker expects by default (OpenCV's);
# pass rgb=True to create_tracker for RGB frames.
CHANNELS = "bgr"

__all__ = ["CHANNELS", "create_multi_tracker", "create_tracker", "list_trackers"]


def __getattr__(name):
    # Lazy: `import tracker` (e.g. for tracker.train.data in a DataLoader worker) must not pull in the zoo and kernels.
    if name == "create_tracker":
        from . import api
        return api.create_tracker
    if name == "create_multi_tracker":
        from . import multi
        return multi.create_multi_tracker
    if name == "list_trackers":
        from . import registry
        return registry.list_trackers
    raise AttributeError(f"module 'tracker' has no attribute {name!r}")
