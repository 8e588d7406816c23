"""Binarizers: small named objects in the spirit of larq's quantizers.

Forward is always sign with sign(0) = +1 (and -0.0 -> +1, since -0.0 >= 0);
they differ only in the straight-through gradient.
"""
import torch


def sign(x: torch.Tensor) -> torch.Tensor:
    """Two-valued sign: +1 where x >= 0 (zeros and -0.0 included), else -1."""
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


class _Sign(torch.autograd.Function):
    """The forward every binarizer shares: sign, keeping x for the subclass's backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)


class _ApproxSign(_Sign):
    """Bi-Real Net's ApproxSign: gradient 2 - 2|x| on |x| < 1, else 0."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (2.0 - 2.0 * x.abs()).clamp_(min=0.0)


class _SteSign(_Sign):
    """Clipped identity (hard-tanh) straight-through estimator."""

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1.0).to(grad.dtype)


def approx_sign(x: torch.Tensor) -> torch.Tensor:
    return _ApproxSign.apply(x)


def ste_sign(x: torch.Tensor) -> torch.Tensor:
    return _SteSign.apply(x)


QUANTIZERS = {"approx_sign": approx_sign, "ste_sign": ste_sign}


def get_quantizer(name: str):
    try:
        return QUANTIZERS[name]
    except KeyError:
        raise ValueError(f"unknown quantizer {name!r}; choose from {sorted(QUANTIZERS)}") from None
