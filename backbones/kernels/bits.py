"""Bit packing in torch: the word layouts the C++ kernel reads, built without it.

Bit j of word w of a group holds channel 64·w + j of that group (1 = +1,
0 = −1); each group starts on a word boundary and the unused tail bits are 0.
Words are stored as int64 (same bits as the kernel's uint64).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

WORD = 64
LANES = 8  # output channels per weight block (one AVX-512 register of words)

_SHIFTS = torch.arange(WORD, dtype=torch.int64)


def words_per_group(channels_per_group: int) -> int:
    return (channels_per_group + WORD - 1) // WORD


def pack_last_dim(bits: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """bool (..., C) -> int64 (..., groups·ceil(C/groups/64)) words."""
    *lead, c = bits.shape
    cg = c // groups
    wg = words_per_group(cg)
    b = bits.reshape(*lead, groups, cg)
    b = F.pad(b.to(torch.int64), (0, wg * WORD - cg))  # tail bits 0
    b = b.reshape(*lead, groups, wg, WORD)
    # Distinct powers of two: the sum is an OR; bit 63 wraps to the sign bit as intended.
    return (b << _SHIFTS).sum(-1).reshape(*lead, groups * wg)


def unpack_last_dim(words: torch.Tensor, channels: int, groups: int = 1) -> torch.Tensor:
    """Inverse of ``pack_last_dim``: int64 words -> bool (..., channels)."""
    *lead, _ = words.shape
    cg = channels // groups
    wg = words_per_group(cg)
    w = words.reshape(*lead, groups, wg, 1)
    b = ((w >> _SHIFTS) & 1).bool().reshape(*lead, groups, wg * WORD)[..., :cg]
    return b.reshape(*lead, channels)


def pack_weight_signs(weight: torch.Tensor) -> torch.Tensor:
    """Float weights (C_out, C_in/g, kh, kw) -> words (C_out, kh, kw, wg), bit = (w >= 0)."""
    return pack_last_dim((weight.detach() >= 0).permute(0, 2, 3, 1), groups=1).contiguous()


def weight_signs(words: torch.Tensor, in_per_group: int) -> torch.Tensor:
    """Words (C_out, kh, kw, wg) -> ±1 float weights (C_out, C_in/g, kh, kw)."""
    bits = unpack_last_dim(words, in_per_group).permute(0, 3, 1, 2)
    return torch.where(bits, 1.0, -1.0).contiguous()


def merge_rows_pays(in_per_group: int, kw: int) -> bool:
    """True when concatenating a kernel row's kw taps into one bit string needs fewer words.

    E.g. 3 channels x 7 taps = 21 bits: 1 word per row instead of 7;
    32 channels x 3 taps: 2 words instead of 3. Never for multiples of 64.
    """
    return kw > 1 and words_per_group(kw * in_per_group) < kw * words_per_group(in_per_group)


def merged_row_words(words: torch.Tensor, in_per_group: int) -> torch.Tensor:
    """Words (C_out, kh, kw, wg) -> (C_out, kh, ceil(kw·cg/64)): bit kx·cg + c of a row."""
    b = unpack_last_dim(words, in_per_group)  # (C_out, kh, kw, cg)
    return pack_last_dim(b.reshape(b.shape[0], b.shape[1], -1), groups=1)


def block_weights(words: torch.Tensor, groups: int) -> torch.Tensor:
    """Words (C_out, kh, ..., w) -> the kernel's layout (groups, blocks, K, 8), K = words per output.

    Each block is 8 output channels side by side per word, so one vector load
    serves 8 channels; channels past C_out/groups are zero rows (ignored).
    """
    cout = words.shape[0]
    cog = cout // groups
    nblk = (cog + LANES - 1) // LANES
    w = words.reshape(groups, cog, -1)
    w = F.pad(w, (0, 0, 0, nblk * LANES - cog))
    return w.reshape(groups, nblk, LANES, -1).permute(0, 1, 3, 2).contiguous()


def pack_input_torch(x: torch.Tensor, threshold: torch.Tensor | None, groups: int, padding: int) -> torch.Tensor:
    """Reference of the kernel's input packing: (N, H+2p, W+2p, groups·wg) int64, +1 padding."""
    thr = torch.zeros(x.shape[1]) if threshold is None else threshold
    bits = (x >= thr.view(1, -1, 1, 1).to(x.dtype)).permute(0, 2, 3, 1)
    if padding:
        bits = F.pad(bits.permute(0, 3, 1, 2).float(), (padding,) * 4, value=1.0).bool().permute(0, 2, 3, 1)
    return pack_last_dim(bits, groups).contiguous()


_BYTE_SHIFTS = torch.arange(8, dtype=torch.int64)


def pack_dense(bits: torch.Tensor) -> torch.Tensor:
    """Any bool tensor -> uint8 bytes, 8 bits per byte (bit i of byte j = element 8j + i)."""
    b = bits.reshape(-1).to(torch.int64)
    b = F.pad(b, (0, (-b.numel()) % 8)).reshape(-1, 8)
    return (b << _BYTE_SHIFTS).sum(-1).to(torch.uint8)


def unpack_dense(data: torch.Tensor, count: int) -> torch.Tensor:
    """Inverse of ``pack_dense``: the first ``count`` bits as bool."""
    b = (data.to(torch.int64).reshape(-1, 1) >> _BYTE_SHIFTS) & 1
    return b.reshape(-1)[:count].bool()
