"""B2NN backbones: binary/FP units, backbones, cost accounting and specs.

Imports nothing else of b2track (see the architecture table in the README).
"""
# OpenMP threads that wait by spinning make a machine shared with other jobs (or with our own
# decoding thread) crawl: `track --threads 2` on a loaded 2-core VM ran at 1.3 fps with the
# default policy and 32 fps with PASSIVE (BENCHMARKS.md "Threads"). Must be set before torch
# starts its OpenMP runtime; a user's own setting wins.
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import alexnet as _alexnet  # noqa: F401  (registers backbones)
from . import b2net as _b2net  # noqa: F401
from . import mobilenet as _mobilenet  # noqa: F401
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
