"""Packed binary convolution kernels (C++ via ctypes) with a pure-torch fallback.

    from backbones import kernels
    kernels.kernel_path()        # 'packed' or 'torch'
    kernels.kernel_isa()         # 'avx512' | 'avx2' | 'scalar' (None on the torch path)
    pw = kernels.PackedWeights.from_weight(w, groups)
    y = kernels.binary_conv2d(x, pw, threshold, scale, bias, stride=1, padding=1, layout="nhwc")

The same compiled library holds the online filter's spectral sums (spectral.py), which follow
the same path and ISA choice.

See dispatch.py for the environment variables that force a path.
"""
from .bits import block_weights, pack_last_dim, pack_weight_signs, unpack_last_dim, weight_signs
from .dispatch import (get_num_threads, isa_supported, kernel_isa, kernel_path, load_error, set_isa,
                       set_num_threads, set_path)
from .ops import PackedWeights, binary_conv2d, conv_packed, output_hw, pack_input

__all__ = ["PackedWeights", "binary_conv2d", "block_weights", "conv_packed", "get_num_threads", "isa_supported",
           "kernel_isa", "kernel_path", "load_error", "output_hw", "pack_input", "pack_last_dim",
           "pack_weight_signs", "set_isa", "set_num_threads", "set_path", "unpack_last_dim", "weight_signs"]
