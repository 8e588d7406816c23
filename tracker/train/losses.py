"""SiamFC training targets and the balanced logistic loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def response_offsets(size: int, stride: int, device=None) -> torch.Tensor:
    """Search-image pixel offset of each response cell from the centre, (size,)."""
    return (torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2) * stride


def siamfc_labels(targets: torch.Tensor, neg: torch.Tensor, size: int, stride: int, radius: float = 16.0) -> torch.Tensor:
    """1 for cells within ``radius`` px of the target centre, 0 elsewhere (B,1,size,size).

    ``targets``: (B,2) target-centre offset (dy, dx) in search pixels from the
    crop centre; ``neg``: (B,) bool, pairs whose search crop lacks the target.
    """
    off = response_offsets(size, stride, targets.device)
    dy = off.view(1, size, 1) - targets[:, 0].view(-1, 1, 1)
    dx = off.view(1, 1, size) - targets[:, 1].view(-1, 1, 1)
    pos = (dy * dy + dx * dx) <= radius * radius
    pos = pos & ~neg.view(-1, 1, 1)
    return pos.unsqueeze(1).float()


def balanced_logistic_loss(response: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SiamFC's loss: positives and negatives weigh half each, per pair."""
    pos = labels
    neg = 1 - labels
    n_pos = pos.sum(dim=(1, 2, 3), keepdim=True)
    n_neg = neg.sum(dim=(1, 2, 3), keepdim=True)
    # A negative pair has no positives: its negatives carry the whole weight.
    w_pos = torch.where(n_pos > 0, 0.5 / n_pos.clamp(min=1), torch.zeros_like(n_pos))
    w_neg = torch.where(n_pos > 0, 0.5 / n_neg.clamp(min=1), 1.0 / n_neg.clamp(min=1))
    weights = pos * w_pos + neg * w_neg
    loss = F.binary_cross_entropy_with_logits(response.float(), labels, weights, reduction="sum")
    return loss / response.shape[0]


def peak_within(response: torch.Tensor, targets: torch.Tensor, neg: torch.Tensor, stride: int,
                radius: float = 8.0, upscale: int = 1) -> torch.Tensor:
    """Per positive pair: is the response peak within ``radius`` px of the target? (bool, pairs with target only)."""
    b, _, h, w = response.shape
    r = response.float()
    if upscale > 1:
        r = F.interpolate(r, scale_factor=upscale, mode="bicubic", align_corners=False)
    hh, ww = r.shape[-2:]
    idx = r.reshape(b, -1).argmax(dim=1)
    iy, ix = idx // ww, idx % ww
    step = stride / upscale
    py = (iy.float() - (hh - 1) / 2) * step
    px = (ix.float() - (ww - 1) / 2) * step
    d = torch.sqrt((py - targets[:, 0]) ** 2 + (px - targets[:, 1]) ** 2)
    return (d <= radius)[~neg]
