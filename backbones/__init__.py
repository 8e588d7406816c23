"""B2NN backbones: binary/FP units, backbones, cost accounting and specs.

Imports nothing else of b2track (see the architecture table in the README).
"""
from . import alexnet as _alexnet  # noqa: F401  (registers backbones)
from . import resnet as _resnet  # noqa: F401
from .base import Backbone
from .cost import BINARY_DIVISOR, budget_of, cost_of, expected_cost, unit_costs, xcorr_macs
from .quantizers import approx_sign, sign, ste_sign
from .registry import create_backbone, describe_backbones, list_backbones, register
from .spec import Spec, SpecError
from .units import ConvUnit

__all__ = ["Backbone", "ConvUnit", "Spec", "SpecError", "BINARY_DIVISOR", "approx_sign", "budget_of", "cost_of",
           "create_backbone", "describe_backbones", "expected_cost", "list_backbones", "register", "sign",
           "ste_sign", "unit_costs", "xcorr_macs"]
