"""One entry point for every caller (CLI, evaluation harness, users): ``create_tracker``.

    from tracker.api import create_tracker
    t = create_tracker("dimp", budget=0.3, threads=2)
    t.init(frame, (x, y, w, h))
    box = t.update(next_frame)
    t.score, t.lost   # this frame's confidence in [0, 1]; True while the target is lost and searched for

Several targets in one run, one backbone pass per frame for all of them (``tracker.multi``):

    mt = create_multi_tracker("dimp", budget=0.3, threads=2)
    mt.init(frame, [(x, y, w, h), (x2, y2, w2, h2)])
    boxes = mt.update(next_frame)     # (N, 4); mt.scores, mt.lost per target
    boxes = track_many(frames, [(x, y, w, h), (x2, y2, w2, h2)], "dimp", budget=0.3)   # (T, N, 4)

``t.info`` says what runs: backbone, the spec's effective budget, the zoo
entry, the checkpoint and the kernel path ("packed" when binary units run on
the bit-packed kernels of ``backbones.export``, else "torch").
"""
from __future__ import annotations

import warnings

import torch

from . import zoo
from .model import pool_threads, use_threads
from .multi import MultiTracker, create_multi_tracker, track_many
from .registry import DEFAULT_TRACKER, get_tracker, list_trackers

__all__ = ["MultiTracker", "attach_kernels", "create_multi_tracker", "create_tracker", "list_trackers", "track_many"]


def attach_kernels(model, spec) -> str:
    """Swap the backbone for its inference export (``backbones.export``) when it exists and agrees.

    Binary units then run on the bit-packed kernels and FP units with their
    BatchNorm folded. Returns the path binary units take: "packed", or
    "torch" (no binary units, no export module, ``B2TRACK_KERNEL=torch``, the
    kernel library missing, or an export that fails or disagrees with the
    torch module — the last one with a warning, the others silently).
    """
    try:
        from backbones import kernels
        from backbones.export import export_backbone
    except Exception:
        return "torch"
    try:
        exported = export_backbone(model.backbone)
    except Exception:
        return "torch"
    # Trust but verify on one exemplar-sized input: a wrong kernel must never track silently.
    size = getattr(model.backbone, "exemplar_size", 127)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = model.backbone.eval()(x)
        try:
            got = exported(x)
        except Exception:
            return "torch"
    if got.shape != ref.shape or float((got - ref).abs().max()) > 1e-3 * max(1.0, float(ref.abs().max())):
        warnings.warn("the exported backbone disagrees with the torch module; using torch", RuntimeWarning, stacklevel=2)
        return "torch"
    model.backbone = exported
    return kernels.kernel_path() if spec.binary_units() else "torch"


def create_tracker(name: str = DEFAULT_TRACKER, budget: float | None = None, model: str | None = None,
                   threads: int | None = None, backbone: str | None = None, **params):
    """A ready tracker: ``name`` from ``tracker.registry`` (siamfc | dimp); ``model`` a checkpoint path or URL, else the zoo
    entry of ``backbone`` (default: the zoo's default backbone) for ``budget`` (default 1.0, the FP model);
    ``params`` override the tracker's parameters.

    Raises ValueError (unknown tracker or parameter, budget outside (0, 1]) or
    zoo.ModelError (missing, corrupt or incompatible checkpoint; no zoo entry).
    """
    cls = get_tracker(name).load()
    p = cls.Params.from_kwargs(threads=threads, **params)  # fail on a typo before loading anything
    use_threads(pool_threads(threads))  # the tracker's init does it again, for trackers made without this function
    path, entry, sha256 = zoo.resolve(model, budget, backbone)
    net, spec, meta = zoo.load_model(path, sha256=sha256)
    kernel = attach_kernels(net, spec)
    tracker = cls(net, p)
    tracker.info = {"tracker": name, "backbone": spec.backbone, "budget": spec.budget,
                    "requested_budget": budget, "entry": (entry or {}).get("name") or (entry or {}).get("file"),
                    "model": str(path), "kernel": kernel, "strategy": spec.provenance.get("strategy"),
                    "threads": threads or torch.get_num_threads(), "meta": meta}
    return tracker
