"""What every backbone shares: its units, their modes and their gates."""
from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from .units import ConvUnit


class Backbone(nn.Module):
    """A feature extractor whose convolutions are all ``ConvUnit``s.

    Subclasses set ``out_channels``, ``stride``, ``exemplar_size`` and
    ``search_size``.
    """

    name = "backbone"
    out_channels = 0
    stride = 8
    exemplar_size = 127
    search_size = 255

    def units(self) -> "OrderedDict[str, ConvUnit]":
        """Units in forward order, keyed by their module path (the spec's names)."""
        return OrderedDict((n, m) for n, m in self.named_modules() if isinstance(m, ConvUnit))

    def unit_names(self) -> list[str]:
        return list(self.units())

    def modes(self) -> dict[str, str]:
        return {n: u.mode for n, u in self.units().items()}

    def set_modes(self, modes: dict[str, str]) -> None:
        units = self.units()
        unknown = sorted(set(modes) - set(units))
        if unknown:
            raise KeyError(f"unknown unit(s) for {self.name}: {', '.join(unknown)}")
        for n, m in modes.items():
            units[n].mode = m

    def set_all(self, mode: str) -> None:
        for u in self.units().values():
            u.mode = mode

    def set_gates(self, gates: dict) -> None:
        """Put every unit in gated mode with gate ``gates[name]`` (float or 0-d tensor)."""
        units = self.units()
        missing = sorted(set(units) - set(gates))
        if missing:
            raise KeyError(f"no gate for unit(s): {', '.join(missing)}")
        for n, u in units.items():
            u.mode = "gated"
            u.gate = gates[n]
