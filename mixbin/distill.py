"""Distillation from the FP teacher: on the output (response map / logits) and optionally on features."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .loop import find_backbone


def response_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """KL(teacher || student) of softmaxes over each sample's whole output, times T^2.

    For a tracker's response map the softmax runs over positions, so the
    student learns where the teacher's peak is and how sharp; for a
    classifier it is Hinton's distillation.
    """
    t = teacher.detach().float().flatten(1) / temperature
    s = student.float().flatten(1) / temperature
    return F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), log_target=True, reduction="batchmean") * temperature ** 2


def response_bce(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """Per-cell binary cross-entropy to the teacher's softened probabilities (for logistic heads), times T^2."""
    target = torch.sigmoid(teacher.detach().float() / temperature)
    return F.binary_cross_entropy_with_logits(student.float() / temperature, target) * temperature ** 2


def response_mse(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return F.mse_loss(student.float(), teacher.detach().float())


DISTILL_LOSSES = {"kl": response_kl, "bce": response_bce, "mse": response_mse}


def get_distill(name: str):
    try:
        return DISTILL_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown distillation loss {name!r}; choose from {sorted(DISTILL_LOSSES)}") from None


class FeatureTap:
    """Collects every output of a model's backbone during a forward (a Siamese net calls it twice)."""

    def __init__(self, model: torch.nn.Module):
        self.feats: list[torch.Tensor] = []
        self.handle = find_backbone(model).register_forward_hook(lambda m, i, o: self.feats.append(o))

    def take(self) -> list[torch.Tensor]:
        f, self.feats = self.feats, []
        return f

    def close(self) -> None:
        self.handle.remove()


def feature_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """Squared distance of per-position unit feature vectors (0..4), averaged over positions and calls."""
    if len(student) != len(teacher) or not student:
        raise ValueError(f"feature taps disagree: {len(student)} student vs {len(teacher)} teacher outputs")
    losses = [(F.normalize(s.float(), dim=1) - F.normalize(t.detach().float(), dim=1)).pow(2).sum(1).mean()
              for s, t in zip(student, teacher)]
    return torch.stack(losses).mean()
