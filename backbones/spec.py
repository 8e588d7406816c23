"""Spec: which units of a backbone are FP and which binary, and how it was made.

JSON form::

    {"format": "b2track-spec/1", "backbone": "resnet16-half", "input_size": 255,
     "units": {"conv1": "fp", "layer1.0.conv1": "bin", ...},
     "budget": 0.2984, "provenance": {"strategy": "mixbin", "seed": 0, ...}}

Specs written before the format tag (no "format") still read; another or a
newer format is refused.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .cost import budget_of, unit_costs
from .files import SPEC_FORMAT, atomic_write_text, format_problem
from .registry import create_backbone

BUDGET_TOLERANCE = 1e-6
UNIT_MODES = ("fp", "bin")


class SpecError(ValueError):
    """A spec that does not fit its backbone or is malformed."""


@dataclass
class Spec:
    backbone: str
    input_size: int
    units: dict[str, str]
    budget: float
    provenance: dict = field(default_factory=dict)

    # -- construction -----------------------------------------------------
    @classmethod
    def build(cls, backbone: str, units: dict[str, str], input_size: int | None = None,
              provenance: dict | None = None, macs: dict[str, int] | None = None) -> "Spec":
        """Make a spec and compute its budget from the backbone's real shapes."""
        if macs is None or input_size is None:
            model = create_backbone(backbone)
            input_size = input_size or model.search_size
            macs = {n: c.macs for n, c in unit_costs(model, input_size).items()}
        _check_units(units, list(macs), backbone)
        return cls(backbone, int(input_size), dict(units), budget_of(macs, units), dict(provenance or {}))

    @classmethod
    def uniform(cls, backbone: str, mode: str, input_size: int | None = None, **prov) -> "Spec":
        names = create_backbone(backbone).unit_names()
        return cls.build(backbone, {n: mode for n in names}, input_size, {"strategy": "fp" if mode == "fp" else "all-binary", **prov})

    # -- JSON -------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": SPEC_FORMAT, "backbone": self.backbone, "input_size": self.input_size,
                "units": dict(self.units), "budget": self.budget, "provenance": dict(self.provenance)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path) -> None:
        # Whole or not at all: spec.json marks `mixbin search` as done, and a truncated one
        # left by a kill mid-write would pass for a finished search on the rerun.
        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def from_dict(cls, d: dict, validate: bool = True) -> "Spec":
        if not isinstance(d, dict):
            raise SpecError("spec must be a JSON object")
        if "format" in d and format_problem(d["format"], SPEC_FORMAT):  # untagged: written before the tag
            raise SpecError(f"spec {format_problem(d['format'], SPEC_FORMAT)}")
        missing = [k for k in ("backbone", "input_size", "units", "budget") if k not in d]
        if missing:
            raise SpecError(f"spec lacks field(s): {', '.join(missing)}")
        if not isinstance(d["units"], dict):
            raise SpecError("spec 'units' must map unit name -> 'fp' | 'bin'")
        try:
            spec = cls(str(d["backbone"]), int(d["input_size"]), dict(d["units"]), float(d["budget"]),
                       dict(d.get("provenance") or {}))
        except (TypeError, ValueError) as e:
            raise SpecError(f"malformed spec: {e}") from None
        if validate:
            spec.validate()
        return spec

    @classmethod
    def load(cls, path, validate: bool = True) -> "Spec":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise SpecError(f"spec file not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SpecError(f"spec file {path} is not valid JSON: {e}") from None
        try:
            return cls.from_dict(d, validate)
        except SpecError as e:
            raise SpecError(f"{path}: {e}") from None

    # -- validation -------------------------------------------------------
    def validate(self, macs: dict[str, int] | None = None) -> None:
        """Raise SpecError unless the spec fits its backbone and its budget is right."""
        if macs is None:
            try:
                model = create_backbone(self.backbone)
            except ValueError as e:
                raise SpecError(str(e)) from None
            macs = {n: c.macs for n, c in unit_costs(model, self.input_size).items()}
        _check_units(self.units, list(macs), self.backbone)
        real = budget_of(macs, self.units)
        if abs(real - self.budget) > BUDGET_TOLERANCE:
            raise SpecError(f"spec budget {self.budget:.6f} does not match its assignment "
                            f"(which costs {real:.6f} of the FP network at {self.input_size}px)")

    def binary_units(self) -> list[str]:
        return [n for n, m in self.units.items() if m == "bin"]


def _check_units(units: dict[str, str], names: list[str], backbone: str) -> None:
    unknown = sorted(set(units) - set(names))
    if unknown:
        raise SpecError(f"unknown unit(s) for backbone {backbone}: {', '.join(unknown)}")
    missing = [n for n in names if n not in units]
    if missing:
        raise SpecError(f"spec misses unit(s) of {backbone}: {', '.join(missing)}")
    bad = {n: m for n, m in units.items() if m not in UNIT_MODES}
    if bad:
        n, m = next(iter(bad.items()))
        raise SpecError(f"unit {n}: mode must be 'fp' or 'bin', got {m!r}")
