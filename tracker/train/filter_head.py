"""The dimp tracker's online filter, differentiable, for training the backbone through it.

The tracker fits a k x k multi-channel filter to a few search crops' features by conjugate
gradient on the ridge objective of ``tracker/ridge_filter.py`` (valid correlation, Gaussian labels,
per-sample RMS-normalised features, lambda = reg * R * R, no window) and reads its response on the
next frame. Here the same iterations run batched over B independent problems with every step a
tensor operation, so a loss on the response at a test frame reaches the features through the
solver (DiMP's model predictor, without its learned parts).

Why unrolled CG and not the closed-form circular DCF of CFNet / DCFNet: the tracker's filter has
the exemplar's support (k x k) and is scored by valid correlation, and it is what ``init_iters`` CG
steps from zero give, not the exact minimiser. A circular DCF is another model (a full-size,
periodic filter that needs a cosine window against its boundary effects); a closed form of the
support-limited problem is a (C k^2)-sized linear solve per sample (8192 unknowns on resnet16-half).
Unrolling the tracker's own iterations trains exactly what the tracker computes; with enough
iterations it reaches the exact minimiser (tests/test_filter_head.py checks it against a dense solve).

Correlation and its adjoint go through the FFT as in the tracker, with the per-frequency sums over
channels and samples as batched complex matmuls, so autograd keeps only small per-step tensors.
"""
from __future__ import annotations

import torch

from ..ridge_filter import FILTER_REG, INIT_ITERS, feature_rms, gaussian_label, label_sigma_cells, ridge_lambda


def sample_spectra(feats: torch.Tensor) -> torch.Tensor:
    """(B, K, C, n, n) features -> (B, n, n//2+1, K, C) spectra of their RMS-normalised maps
    (per sample, as the tracker normalises), laid out for per-frequency matmuls."""
    b, k, c, n, _ = feats.shape
    x = feats.reshape(b * k, c, n, n)
    xh = torch.fft.rfft2(x / feature_rms(x))
    return xh.reshape(b, k, c, n, -1).permute(0, 3, 4, 1, 2)


def correlate(xs: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Valid correlation of every sample with its problem's filter: spectra (B, n, m, K, C) and
    filters (B, C, k, k) -> (B, K, R, R), R = n - k + 1 (F.conv2d per problem, to rounding)."""
    n, k = xs.shape[1], f.shape[-1]
    fh = torch.fft.rfft2(f.flip(-1, -2), s=(n, n))  # a product with it correlates
    out = (xs @ fh.permute(0, 2, 3, 1)[..., None])[..., 0]  # (B, n, m, K): sum over channels
    return torch.fft.irfft2(out.permute(0, 3, 1, 2), s=(n, n))[..., k - 1:, k - 1:]


def correlate_adjoint(xs: torch.Tensor, r: torch.Tensor, k: int) -> torch.Tensor:
    """Adjoint of ``correlate``: residual maps (B, K, R, R) -> (B, C, k, k), sum_i r_i correlated with x_i."""
    n = xs.shape[1]
    rh = torch.fft.rfft2(r, s=(n, n)).conj().permute(0, 2, 3, 1)[..., None, :]  # (B, n, m, 1, K)
    g = (rh @ xs)[..., 0, :]  # (B, n, m, C): sum over samples
    return torch.fft.irfft2(g.permute(0, 3, 1, 2), s=(n, n))[..., :k, :k]


def fit_filter(xs: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, k: int, reg: float = FILTER_REG,
               iters: int = INIT_ITERS, f0: torch.Tensor | None = None) -> torch.Tensor:
    """``iters`` conjugate-gradient steps on (A^T W A + lambda) f = A^T W y per problem, from ``f0``
    (zero by default: the tracker's first frame), exactly TargetFilter.optimise's recurrence,
    including its stop once the squared residual falls below 1e-12 (masked here, not a break).

    xs: (B, n, m, K, C) from ``sample_spectra``; labels: (B, K, R, R); weights: (B, K) or (K,).
    Returns (B, C, k, k), differentiable in xs, labels and f0.
    """
    b, c = xs.shape[0], xs.shape[-1]
    w = weights.to(labels.dtype).expand(b, labels.shape[1])[..., None, None]
    lam = ridge_lambda(reg, labels.shape)
    f = labels.new_zeros(b, c, k, k) if f0 is None else f0

    def dot(u, v):
        return (u * v).sum(dim=(1, 2, 3))

    def normal(v):
        return correlate_adjoint(xs, correlate(xs, v) * w, k) + lam * v

    r = correlate_adjoint(xs, (labels - correlate(xs, f)) * w, k) - lam * f
    p, rr = r, dot(r, r)
    for _ in range(iters):
        active = rr >= 1e-12
        hp = normal(p)
        alpha = torch.where(active, rr / dot(p, hp).clamp(min=1e-12), torch.zeros_like(rr))[:, None, None, None]
        f = f + alpha * p
        r = r - alpha * hp
        rr_new = dot(r, r)
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)), torch.ones_like(rr))
        p = r + beta[:, None, None, None] * p
        rr = rr_new
    return f


def filter_response(train_feats: torch.Tensor, train_labels: torch.Tensor, test_feats: torch.Tensor, k: int,
                    weights: torch.Tensor | None = None, reg: float = FILTER_REG, iters: int = INIT_ITERS) -> torch.Tensor:
    """Fit the online filter to K training frames and apply it to a test frame.

    train_feats: (B, K, C, n, n) backbone features of search crops; train_labels: (B, K, R, R)
    Gaussian labels at the target (``target_labels``); test_feats: (B, C, n, n); k: filter size
    (the exemplar's feature size); weights: (K,) or (B, K), default equal (1/K each, the tracker's
    first-frame memory). Returns the filter's response on the test frame, (B, R, R).
    """
    kk = train_feats.shape[1]
    if weights is None:
        weights = train_labels.new_full((kk,), 1.0 / kk)
    f = fit_filter(sample_spectra(train_feats), train_labels, weights, k, reg, iters)
    return correlate(sample_spectra(test_feats[:, None]), f)[:, 0]


def target_labels(offsets_px: torch.Tensor, target_px: torch.Tensor, size: int, stride: int,
                  label_sigma: float) -> torch.Tensor:
    """The tracker's Gaussian labels (DiMPTracker._label) for many targets: (N, 2) offsets (dy, dx)
    in search-crop pixels from the crop centre and (N,) target sizes in search-crop pixels
    (sqrt(w h)) -> (N, size, size). Labels carry no gradient."""
    out = [gaussian_label(size, (o / stride).tolist(), label_sigma_cells(float(t), stride, label_sigma))
           for o, t in zip(offsets_px.detach().cpu(), target_px.detach().cpu())]
    return torch.stack(out) if out else torch.zeros(0, size, size)


def label_energy(target_px: torch.Tensor, size: int, stride: int, label_sigma: float) -> torch.Tensor:
    """(N,) energy (sum of squares) of a centred label for each target size: the loss of an all-zero
    response, the scale ``filter_loss`` divides by."""
    centre = torch.zeros(len(target_px), 2)
    return target_labels(centre, target_px, size, stride, label_sigma).pow(2).sum(dim=(1, 2))


def filter_loss(response: torch.Tensor, labels: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ||response - label||^2 / energy: the same squared error the filter is fit
    with, on the test frame, scaled so an all-zero response costs 1. A test frame without the target
    (a negative pair) has an all-zero label: any response there is an error."""
    err = (response.float() - labels).pow(2).sum(dim=(1, 2))
    return (err / energy.clamp(min=1e-6)).mean()
