"""MixBin: budget-aware partial binarization search, baselines and fine-tuning.

Task-agnostic: a model, a loss and batches in; a spec and weights out.
Imports ``backbones`` only, never ``tracker`` or ``eval`` (``mixbin/cli.py``
is where the tracker's pairs and loss are wired in).

    gates.py       per-unit gates: logistic + continuous Heaviside, crispness
    search.py      the MixBin search and its thresholding to a spec
    select.py      exact FP-set selection under a budget (shared by every strategy)
    baselines.py   random, iterative, first-last, sensitivity, references
    prune.py       ChipNet-style channel pruning of the FP network (a rival, not a B2NN)
    measure.py     binarization error, loss of an assignment
    calibrate.py   warm start of the binary paths of an FP teacher
    strategies.py  one entry point for all strategies
    distill.py     response-map / feature distillation losses
    finetune.py    resumable, DDP-ready fine-tuning with distillation
    io.py          the shipped checkpoint format and the teacher formats we read
    loop.py        batch sources, checkpoints, logs, DDP helpers
"""
