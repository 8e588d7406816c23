"""The online target filter's formulation, in one place for the dimp tracker and offline training.

The filter f (C x k x k, k the exemplar's feature size) minimises

    sum_i w_i ||f * x_i - y_i||^2 + lambda ||f||^2,   lambda = FILTER_REG * R * R

over feature maps x_i (normalised per sample to unit RMS) with Gaussian labels y_i on the R x R
grid of their valid correlation. ``tracker/dimp.py`` solves it online by conjugate gradient;
``tracker/train/filter_head.py`` unrolls the same iterations differentiably. Nothing here is
windowed: the tracker's cosine window is a localisation prior applied after the responses are
fused, not part of the filter.
"""
from __future__ import annotations

import torch

from backbones.kernels import spectral

FILTER_REG = 0.02  # lambda, relative to one sample's energy per filter tap (times R*R)
LABEL_SIGMA = 0.125  # Gaussian label width, fraction of the target size
INIT_ITERS = 15  # conjugate-gradient iterations of the first frame's filter, from zero
INIT_SHIFT = 32.0  # search-crop pixels of the first frame's shifted samples


def feature_rms(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, 1, 1) per-sample RMS of (N, C, H, W) features (at least 1e-6)."""
    return x.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp(min=1e-6)


def normalise_features(x: torch.Tensor) -> torch.Tensor:
    """Per-sample RMS normalisation, so that lambda and the label scale mean the same on any backbone."""
    return x / feature_rms(x)


def gaussian_label(size: int, center_yx, sigma: float) -> torch.Tensor:
    """(size, size) Gaussian peaked at ``center_yx`` (response cells, 0 = grid centre)."""
    g = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    dy = (g - float(center_yx[0])) ** 2
    dx = (g - float(center_yx[1])) ** 2
    return torch.exp(-(dy[:, None] + dx[None, :]) / (2 * sigma * sigma))


def label_sigma_cells(target_px: float, stride: int, label_sigma: float = LABEL_SIGMA) -> float:
    """The label's sigma in response cells for a target ``target_px`` search-crop pixels across
    (the geometric mean of its width and height)."""
    return max(0.5, label_sigma * target_px / stride)


def ridge_lambda(reg: float, label_shape) -> float:
    """lambda of the objective for labels of ``label_shape`` (..., R, R): ``reg`` per response cell."""
    return reg * label_shape[-1] * label_shape[-2]


def kernel_spectrum(v: torch.Tensor, n: int) -> torch.Tensor:
    """(1, C, k, k) kernel -> the rfft2 that makes a product with a feature spectrum a correlation."""
    return torch.fft.rfft2(v.flip(-1, -2).float(), s=(n, n))


def valid_correlation(xh: torch.Tensor, vh: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """(N, C) spectra of n x n maps and a kernel_spectrum of a k x k kernel -> (N, n-k+1, n-k+1),
    what F.conv2d(x, v) gives (to float rounding). The channel sum reads the spectra once
    (backbones.kernels.spectral: the online filter's CG runs it over ~13 MB of stored samples),
    with torch's bits."""
    out = torch.fft.irfft2(spectral.sum_channels(xh, vh), s=(n, n))
    return out[:, k - 1:, k - 1:]
