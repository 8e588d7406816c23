"""MixBin: budget-aware partial binarization search, baselines and fine-tuning.

Task-agnostic: a model, a loss and batches in; a spec and weights out.
Imports ``backbones`` only, never ``tracker`` or ``eval``; the one exception
is ``tracking_task.py``, where the tracker's pairs, loss and network are wired
in for the ``mixbin`` CLI and the tools (no library module imports it).

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
    pipeline.py    the search and fine-tune steps as library calls (typed jobs, typed errors)
    tracking_task.py  the tracker's task plugged into the pipeline (CLI and tools only)
    io.py          the shipped checkpoint format and the teacher formats we read
    loop.py        batch sources, checkpoints, logs, DDP helpers
"""
