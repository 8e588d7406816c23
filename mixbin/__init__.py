"""MixBin: budget-aware partial binarization search, baselines and fine-tuning.

Task-agnostic: a model, a loss and batches in; a spec and weights out.
Imports ``backbones`` only, never ``tracker`` or ``eval``.
"""
