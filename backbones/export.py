"""Export a trained B2NN backbone to an inference module on the packed kernels.

``export_backbone(backbone)`` deep-copies the backbone (so ReLU, pooling,
residuals and crops keep their forward code) and swaps every ``ConvUnit``:

- a binary unit becomes ``PackedBinaryConv``: weight signs stored at 1 bit,
  the input threshold ``in_norm(x) + in_shift >= 0`` folded into one float
  per channel (``x >= t_c``, exact, see ``fold_input_threshold``), and
  ``scale·bn_bin`` folded into the kernel's epilogue ``D·scale + bias``;
- an FP unit becomes ``FoldedConv``: conv with its BatchNorm folded in.

The result is inference-only and deterministic. ``save_exported`` writes
its buffers plus a small description; ``load_exported`` rebuilds it from the
registry skeleton without running any training code (no quantizers, no BN).
"""
from __future__ import annotations

import copy
import io

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import kernels
from .b2net import DownUnit, ResidualUnit
from .kernels import bits
from .registry import create_backbone
from .units import ConvUnit

FORMAT = "b2track-exported-b2nn/1"
LAYOUTS = ("nhwc", "nchw")


class PackedBinaryConv(nn.Module):
    """Inference twin of a binary ConvUnit on the packed kernel (same forward signature)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, layout: str = "nhwc"):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.groups, self.layout = stride, padding, groups, layout
        n_weights = out_channels * (in_channels // groups) * kernel_size * kernel_size
        # Sign bits in (C_out, kh, kw, C_in/g) order, 8 per byte: exactly 1 bit per weight.
        self.register_buffer("weight_bits", torch.zeros((n_weights + 7) // 8, dtype=torch.uint8))
        self.register_buffer("threshold", torch.zeros(in_channels))  # bit = x >= threshold[c]
        self.register_buffer("scale", torch.ones(out_channels))
        self.register_buffer("bias", torch.zeros(out_channels))
        self._packed = None
        self._packed_key = None

    def config(self) -> dict:
        return {"kind": "bin", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "groups": self.groups, "layout": self.layout}

    def packed_weights(self) -> kernels.PackedWeights:
        """Kernel layouts, rebuilt from the 1-bit buffer when it changes (e.g. after load_state_dict)."""
        wb = self.weight_bits
        # Inference tensors (made under torch.inference_mode) have no version counter.
        key = (wb.data_ptr(), None if wb.is_inference() else wb._version)
        if self._packed is None or key != self._packed_key:
            cg, k = self.in_channels // self.groups, self.kernel_size
            b = bits.unpack_dense(self.weight_bits, self.out_channels * k * k * cg)
            words = bits.pack_last_dim(b.reshape(self.out_channels, k, k, cg))
            self._packed = kernels.PackedWeights(words, self.in_channels, self.groups)
            self._packed_key = key
        return self._packed

    def _load_from_state_dict(self, *args, **kwargs):
        self._packed = None  # new bits: rebuild the kernel layouts on the next call
        super()._load_from_state_dict(*args, **kwargs)

    def sign_weight(self) -> torch.Tensor:
        """±1 weights (C_out, C_in/g, k, k), for inspection and tests."""
        return self.packed_weights().signs()

    @torch.no_grad()
    def forward(self, x: torch.Tensor, padding: int | None = None, prelu: torch.Tensor | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        """The unit's output; a fused block overrides ``padding`` and adds the kernel's PReLU /
        residual epilogue (kernels.binary_conv2d)."""
        return kernels.binary_conv2d(x, self.packed_weights(), self.threshold, self.scale, self.bias,
                                     stride=self.stride, padding=self.padding if padding is None else padding,
                                     layout=self.layout, prelu=prelu, residual=residual)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, s={self.stride}, "
                f"p={self.padding}, g={self.groups}, binary, {self.layout}")


class FoldedConv(nn.Module):
    """Inference twin of an FP ConvUnit: conv with the BatchNorm folded into weight and bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, dilation: int = 1, layout: str = "nhwc"):
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.groups, self.dilation, self.layout = stride, padding, groups, dilation, layout
        self.register_buffer("weight", torch.zeros(out_channels, in_channels // groups, kernel_size, kernel_size))
        self.register_buffer("bias", torch.zeros(out_channels))

    def config(self) -> dict:
        return {"kind": "fp", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "groups": self.groups, "dilation": self.dilation, "layout": self.layout}

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc":
            # Channels-last in, channels-last out: the next packed unit reads it in place.
            x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, k={self.kernel_size}, s={self.stride}, "
                f"p={self.padding}, g={self.groups}, fp (BN folded), {self.layout}")


class PackedResidualUnit(nn.Module):
    """A b2net residual block, crop(x + PReLU(unit(x))), with a binary unit: one kernel call.

    The block crops ``p`` pixels (its unit's padding) off every side, so the
    kept outputs never read the padding: they are the unpadded conv's outputs,
    and the kept shortcut is a view of x. PReLU and the add run in the
    kernel's epilogue, in torch's order and rounding (the same floats as the
    unfused block), instead of three more passes over the feature map.
    """

    def __init__(self, conv: PackedBinaryConv, act: nn.PReLU):
        super().__init__()
        if conv.stride != 1 or conv.kernel_size != 2 * conv.padding + 1 or conv.in_channels != conv.out_channels:
            raise ValueError("a fused residual unit needs a 'same' stride-1 conv from C to C channels")
        self.conv, self.act = conv, act

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.conv.padding
        return self.conv(x, padding=0, prelu=self.act.weight, residual=x[:, :, p:x.shape[2] - p, p:x.shape[3] - p])


class PackedDownUnit(nn.Module):
    """A b2net stride-2 block, PReLU(unit(x)) + shortcut(avg_pool(x)), with a binary unit: the
    shortcut first, then one kernel call whose epilogue applies PReLU and adds it."""

    def __init__(self, conv: PackedBinaryConv, shortcut: nn.Module, act: nn.PReLU):
        super().__init__()
        self.conv, self.shortcut, self.act = conv, shortcut, act

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.shortcut(F.avg_pool2d(x, 2, 2, ceil_mode=True))
        return self.conv(x, prelu=self.act.weight, residual=r)


def fuse_blocks(model: nn.Module) -> int:
    """Swap b2net blocks whose conv runs on the packed kernel for their fused twins (same
    parameter names, so state dicts are unchanged). Returns how many were fused."""
    fused = 0
    for name, m in list(model.named_modules()):
        if isinstance(m, ResidualUnit) and isinstance(m.conv, PackedBinaryConv):
            _replace(model, name, PackedResidualUnit(m.conv, m.act))
        elif isinstance(m, DownUnit) and isinstance(m.conv, PackedBinaryConv):
            _replace(model, name, PackedDownUnit(m.conv, m.shortcut, m.act))
        else:
            continue
        fused += 1
    return fused


# ----------------------------------------------------------------- folding --

def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as y = a·x + b, in float64."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a BatchNorm without running statistics")
    inv = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv)
    a = gamma * inv
    return a, beta - bn.running_mean.double() * a


def _float_order(x: torch.Tensor) -> torch.Tensor:
    """float32 -> int64 keys with the same order (−0.0 just below +0.0)."""
    i = x.view(torch.int32).to(torch.int64)
    return torch.where(i >= 0, i, -(i & 0x7FFFFFFF) - 1)


def _from_order(o: torch.Tensor) -> torch.Tensor:
    i = torch.where(o >= 0, o, -(o + 1) - 2 ** 31)
    return i.to(torch.int32).view(torch.float32)


@torch.no_grad()
def fold_input_threshold(unit: ConvUnit) -> torch.Tensor:
    """Per-channel t with ``x >= t  <=>  in_norm(x) + in_shift >= 0`` for every float32 x.

    The right side is the training expression in eval mode, evaluated by
    torch itself; it is monotone in x (the norm's slope 1/sqrt(var+eps) is
    positive and float rounding keeps order). So searching the ordered
    float32 values with that very expression finds the exact switch point,
    whatever rounding torch's BatchNorm kernel does (FMA or not): the packed
    path's bits equal training's bits.
    """
    bn, c = unit.in_norm, unit.in_channels
    n_cand = 15  # candidates per channel per call, one per position of a 3x5 map

    def positive(v: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        # v: (C, 15) values -> (C, 15) of [expression >= 0]. A real spatial map,
        # so torch takes the same kernel path as on feature maps.
        x = v.reshape(1, c, 3, 5)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        y = y + unit.in_shift.view(1, -1, 1, 1)
        return (y >= 0).reshape(c, n_cand)

    inf = torch.full((c, 1), float("inf"))
    lo, hi = _float_order(-inf), _float_order(inf)  # invariant: f(lo) < 0 <= f(hi)
    all_pos = positive((-inf).expand(c, n_cand).contiguous())[:, 0]  # in_shift = +inf: always +1
    never = ~positive(inf.expand(c, n_cand).contiguous())[:, 0]  # in_shift = -inf: always -1
    steps = torch.arange(1, n_cand + 1, dtype=torch.int64)
    # 16-ary search: about 9 calls for 2^33 float orders.
    while bool(((hi - lo) > 1).any()):
        cand = torch.minimum(lo + ((hi - lo) * steps) // (n_cand + 1), hi)
        p = positive(_from_order(cand))
        first = (~p).sum(1, keepdim=True)  # monotone: False...False True...True
        new_hi = torch.where(first < n_cand, cand.gather(1, first.clamp(max=n_cand - 1)), hi)
        new_lo = torch.where(first > 0, cand.gather(1, (first - 1).clamp(min=0)), lo)
        lo, hi = torch.maximum(lo, new_lo), torch.minimum(hi, new_hi)
    t = torch.where(all_pos, -inf[:, 0], _from_order(hi)[:, 0])
    # The switch point must hold in both memory layouts the model may run in.
    below = _from_order(_float_order(t) - 1)
    probe = torch.cat([t.view(c, 1).expand(c, 8), below.view(c, 1).expand(c, 7)], 1)
    t = torch.where(never, torch.full_like(t, float("nan")), t)  # x >= NaN is always False
    # Spot checks around the running mean: catch a decreasing expression (e.g. a
    # negative affine weight), which would make both ends look "always".
    gen = torch.Generator().manual_seed(0)
    spread = bn.running_var.sqrt().view(c, 1) * 3 + 1
    sample = (bn.running_mean.view(c, 1) + spread * torch.randn(c, n_cand, generator=gen)).float()
    for cl in (False, True):
        p = positive(probe, cl)
        bad = bool((all_pos & never).any()) or not bool(p[~never, :8].all()) or bool(p[~all_pos & ~never, 8:].any())
        if bad or not torch.equal(positive(sample, cl), sample >= t.view(c, 1)):
            raise RuntimeError("in_norm + in_shift is not increasing in x or differs between layouts; cannot fold")
    return t


@torch.no_grad()
def export_unit(unit: ConvUnit, layout: str = "nhwc") -> nn.Module:
    """The inference twin of one unit (mode 'fp' or 'bin')."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    kw = dict(in_channels=unit.in_channels, out_channels=unit.out_channels, kernel_size=unit.kernel_size,
              stride=unit.stride, padding=unit.padding, groups=unit.groups, layout=layout)
    if unit.mode == "fp":
        m = FoldedConv(dilation=unit.dilation, **kw)
        a, b = _bn_affine(unit.bn)
        m.weight.copy_((unit.weight.double() * a.view(-1, 1, 1, 1)).float())
        m.bias.copy_(b.float())
        if layout == "nhwc":
            m.weight = m.weight.contiguous(memory_format=torch.channels_last)
        return m
    if unit.mode != "bin":
        raise ValueError(f"cannot export a unit in mode {unit.mode!r}: set every unit to 'fp' or 'bin'")
    if unit.dilation != 1:
        raise ValueError("the packed kernel has no dilation")
    m = PackedBinaryConv(**kw)
    m.weight_bits.copy_(bits.pack_dense((unit.weight.detach() >= 0).permute(0, 2, 3, 1)))
    m.threshold.copy_(fold_input_threshold(unit))
    a, b = _bn_affine(unit.bn_bin)
    m.scale.copy_((unit.weight_scale().detach().double() * a).float())
    m.bias.copy_(b.float())
    return m


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


@torch.no_grad()
def export_backbone(backbone: nn.Module, layout: str = "nhwc") -> nn.Module:
    """Inference copy of ``backbone`` with every unit exported; the original is untouched.

    layout 'nhwc' keeps activations channels-last end to end (faster: packed
    units read and write NHWC in place); 'nchw' keeps torch's default layout.
    """
    units = backbone.units()
    if not units:
        raise ValueError("backbone has no ConvUnit to export")
    model = copy.deepcopy(backbone).eval()
    for name, unit in model.units().items():
        _replace(model, name, export_unit(unit, layout))
    fuse_blocks(model)
    model.requires_grad_(False)
    model.b2_export = {"format": FORMAT, "backbone": getattr(backbone, "name", type(backbone).__name__),
                       "layout": layout, "modes": {n: u.mode for n, u in units.items()}}
    return model


def exported_units(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (PackedBinaryConv, FoldedConv))}


# ------------------------------------------------------------ save / load --

def exported_state(model: nn.Module) -> dict:
    """What ``save_exported`` writes: description + buffers (torch.load(weights_only=True) safe)."""
    meta = getattr(model, "b2_export", None)
    if meta is None:
        raise ValueError("not an exported model (use export_backbone first)")
    return {"format": FORMAT, "backbone": meta["backbone"], "layout": meta["layout"], "modes": dict(meta["modes"]),
            "units": {n: m.config() for n, m in exported_units(model).items()}, "state": model.state_dict()}


def save_exported(model: nn.Module, path) -> None:
    torch.save(exported_state(model), path)


def load_exported(source) -> nn.Module:
    """Rebuild an exported model from ``save_exported``'s file (or its dict)."""
    d = source if isinstance(source, dict) else torch.load(source, map_location="cpu", weights_only=True)
    if d.get("format") != FORMAT:
        raise ValueError(f"not an exported B2NN (format {d.get('format')!r}, expected {FORMAT!r})")
    model = create_backbone(d["backbone"])  # skeleton for the forward structure only
    with torch.no_grad():
        for name, cfg in d["units"].items():
            cfg = dict(cfg)
            kind = cfg.pop("kind")
            _replace(model, name, PackedBinaryConv(**cfg) if kind == "bin" else FoldedConv(**cfg))
    leftover = [n for n, m in model.named_modules() if isinstance(m, ConvUnit)]
    if leftover:
        raise ValueError(f"exported file lacks unit(s): {', '.join(leftover)}")
    fuse_blocks(model)
    model.load_state_dict(d["state"], strict=True)
    for m in exported_units(model).values():  # FP weights back to the layout they were exported in
        if isinstance(m, FoldedConv) and m.layout == "nhwc":
            m.weight = m.weight.contiguous(memory_format=torch.channels_last)
    model.eval().requires_grad_(False)
    model.b2_export = {"format": FORMAT, "backbone": d["backbone"], "layout": d["layout"], "modes": d["modes"]}
    return model


# ------------------------------------------------------------------ sizes --

def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _serialized(obj) -> int:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.tell()


def storage_report(model: nn.Module, reference: nn.Module | None = None) -> dict:
    """Bytes of an exported model: binary weights (1 bit each), FP weights, the rest.

    With ``reference`` (the training backbone) also its float32 state_dict
    size, i.e. the FP checkpoint this export replaces.
    """
    units = exported_units(model)
    binary = [m for m in units.values() if isinstance(m, PackedBinaryConv)]
    fp = [m for m in units.values() if isinstance(m, FoldedConv)]
    n_bin = sum(m.out_channels * (m.in_channels // m.groups) * m.kernel_size ** 2 for m in binary)
    bin_bytes = _nbytes(m.weight_bits for m in binary)
    state = model.state_dict()
    rep = {
        "binary_units": len(binary), "fp_units": len(fp),
        "binary_weights": n_bin, "binary_weight_bytes": bin_bytes,
        "bits_per_binary_weight": 8 * bin_bytes / n_bin if n_bin else 0.0,
        "fp_weight_bytes": _nbytes(m.weight for m in fp) + _nbytes(m.bias for m in fp),
        "other_bytes": _nbytes(t for m in binary for t in (m.threshold, m.scale, m.bias)),
        "tensor_bytes": _nbytes(state.values()),
        "file_bytes": _serialized(exported_state(model)),
    }
    if reference is not None:
        ref_state = reference.state_dict()
        rep["fp_checkpoint_tensor_bytes"] = _nbytes(v for v in ref_state.values() if v.is_floating_point())
        rep["fp_checkpoint_file_bytes"] = _serialized(ref_state)
        rep["ratio_vs_fp_checkpoint"] = rep["file_bytes"] / rep["fp_checkpoint_file_bytes"]
    return rep
