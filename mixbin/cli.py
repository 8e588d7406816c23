"""``mixbin`` command line: summary, search, finetune.

    mixbin summary --backbone resnet16-half [--spec FILE] [--json]
    mixbin search --budget 0.3 --strategy mixbin --teacher runs/fp/last.pt --data data_cache/pairs --out runs/b030
    mixbin finetune --spec runs/b030/spec.json --teacher runs/fp/last.pt --data data_cache/pairs --out runs/b030/ft

search and finetune run ``mixbin.pipeline`` (the library steps, also called by
tools/build_zoo.py and tools/bench_strategies.py) on the tracker's task. The
library is task-agnostic; ``mixbin/tracking_task.py`` is the one place where
MixBin meets the tracker (its pairs, SiamFC loss and network). Both long
commands resume from their ``--out`` folder and skip work that is already
finished; run them under ``torchrun`` for DDP.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tracker.cli_common import CLIError, Parser, os_error_line, parse_key_values, run_cli


def cmd_summary(args) -> None:
    from backbones import Spec, SpecError, list_backbones
    from backbones.summary import format_summary, summarize

    spec = None
    if args.spec and Path(args.spec).suffix == ".pt":  # a checkpoint (zoo or fine-tune): its embedded spec
        from .io import CheckpointError, read_model
        try:
            _, spec_d, _ = read_model(args.spec)
            spec = Spec.from_dict(spec_d) if spec_d else None
        except (CheckpointError, SpecError) as e:
            raise CLIError(f"--spec: {e}")
        if spec is None:
            raise CLIError(f"--spec {args.spec}: the checkpoint carries no spec (give --backbone for an FP summary)")
    elif args.spec:
        try:
            spec = Spec.load(args.spec)
        except SpecError as e:
            raise CLIError(str(e))
    backbone = args.backbone or (spec.backbone if spec else None)
    if backbone is None:
        raise CLIError("give --backbone NAME or --spec FILE")
    if backbone not in list_backbones():
        raise CLIError(f"unknown backbone {backbone!r}; available: {', '.join(list_backbones())}")
    if args.input_size is not None and args.input_size < 32:
        raise CLIError(f"--input-size must be >= 32, got {args.input_size}")
    try:
        s = summarize(backbone, spec, args.input_size)
    except (ValueError, RuntimeError) as e:
        raise CLIError(str(e))
    if args.latency:
        from backbones import latency
        from backbones.summary import add_latency
        add_latency(s, latency.table(backbone, s["input_size"], threads=args.threads, refresh=args.refresh_latency))
    if args.json:
        print(json.dumps(s))
    else:
        print(format_summary(s))


# -- search and finetune: options -> a job -> mixbin.pipeline -> one line ------------------------

def _job_fields(args) -> dict:
    """The options search and finetune share, as the fields of a pipeline job."""
    try:
        overrides = parse_key_values(args.set, "--set")
    except ValueError as e:
        raise CLIError(str(e)) from None
    return {"out": args.out, "data": args.data, "teacher": args.teacher, "steps": args.steps, "seed": args.seed,
            "batch_size": args.batch_size, "val_batches": args.val_batches, "workers": args.workers,
            "threads": args.threads, "progress": not args.no_progress, "overrides": overrides}


def _report(outcome) -> None:
    if outcome.message:
        print(outcome.message)


def _warn(message: str) -> None:
    print(f"mixbin: warning: {message}", file=sys.stderr)


def cmd_search(args) -> None:
    from .pipeline import SearchJob, run_search
    from .tracking_task import tracking_task
    job = SearchJob(strategy=args.strategy, budget=args.budget, backbone=args.backbone, input_size=args.input_size,
                    budget_metric=args.budget_metric, **_job_fields(args))
    _report(run_search(job, tracking_task(fp32=args.fp32), warn=_warn))


def cmd_finetune(args) -> None:
    from .pipeline import FinetuneJob, run_finetune
    from .tracking_task import tracking_task
    job = FinetuneJob(spec=args.spec, lr=args.lr, distill=args.distill, **_job_fields(args))
    _report(run_finetune(job, tracking_task(fp32=args.fp32)))


def _common(p) -> None:
    p.add_argument("--data", required=True,
                   help="pairs: DIR with train/ and val/ shard folders (tools/pregenerate_pairs.py), "
                   "a shard folder, DIR with train.pt/val.pt tensor files, or a tracker.train.data JSON config")
    p.add_argument("--out", required=True, help="output folder; re-running resumes there and skips finished work")
    p.add_argument("--steps", type=int, help="optimisation steps (search: mixbin/prune only)")
    p.add_argument("--seed", type=int, help="seed of the strategy / of the batch order (default 0)")
    p.add_argument("--batch-size", type=int, default=16, help="pairs per step and process (default 16)")
    p.add_argument("--val-batches", type=int, default=8, help="held-out batches for validation (default 8)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (default 0: shards are cheap to read)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast / channels_last")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config field (SearchConfig / PruneConfig / FinetuneConfig); values as JSON or "
                   "Python literals (true/True, 1e-3, [1,2]), else text")


def build_parser() -> argparse.ArgumentParser:
    from backbones import describe_backbones

    p = Parser(
        prog="mixbin",
        description="Budget-aware partial binarization (B2NN) of tracker backbones.",
        epilog="backbones: " + "; ".join(f"{k}: {v}" for k, v in describe_backbones().items()))
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("summary", help="per-unit MACs, modes, cost, budget and size of a backbone or spec",
                       description="Per-unit table (name, shapes, MACs, mode, share of cost) and totals: "
                                   "FP MACs, effective cost (binary MACs/64), budget, parameters and model size.")
    s.add_argument("--backbone", help="registered backbone name (default: the spec's)")
    s.add_argument("--spec", help="spec JSON file, or a model checkpoint (.pt) whose spec to show "
                                  "(default: all units FP)")
    s.add_argument("--input-size", type=int, help="square input size in pixels (default: the spec's, else 255)")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    s.add_argument("--latency", action="store_true",
                   help="add each unit's measured time on this CPU, FP and packed binary (measured once per "
                        "machine and cached under ~/.cache/b2track/latency with the CPU's name and ISA path)")
    s.add_argument("--threads", type=int, default=1, help="threads for --latency (default 1)")
    s.add_argument("--refresh-latency", action="store_true", help="measure the latency table again")
    s.set_defaults(func=cmd_summary)

    from .distill import DISTILL_LOSSES
    from .strategies import STRATEGIES, describe_strategies
    s = sub.add_parser("search", help="make a B2NN spec for a budget (MixBin or a baseline)",
                       description="Writes OUT/spec.json, OUT/model.pt (b2track-model/1) and OUT/log.jsonl; "
                                   "mixbin/prune checkpoint to OUT/search.pt / OUT/prune.pt and resume from it.")
    s.add_argument("--backbone", help="backbone name (default: the teacher's)")
    s.add_argument("--budget", type=float, help="target cost / FP cost, in (0, 1] (not needed for fp, all-binary)")
    s.add_argument("--budget-metric", choices=("macs", "latency"), default="macs",
                   help="what the budget divides: MACs (default, binary = MACs/64, as in the paper) or the units' "
                        "measured time on this CPU (a latency table measured once and cached; see summary --latency)")
    s.add_argument("--strategy", default="mixbin", choices=list(STRATEGIES), metavar="NAME",
                   help="how units are chosen (default mixbin): " + describe_strategies())
    s.add_argument("--teacher", help="FP model checkpoint (tracker training last.pt or a zoo .pt)")
    s.add_argument("--input-size", type=int,
                   help="input size the budget is measured at (default: the backbone's search size)")
    _common(s)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("finetune", help="fine-tune a spec from the FP teacher with distillation",
                       description="Same recipe for every strategy; the spec may come from another data source "
                                   "(transfer). Writes OUT/model.pt, OUT/result.json, OUT/log.jsonl; "
                                   "resumes from OUT/finetune.pt.")
    s.add_argument("--spec", required=True, help="spec JSON (from mixbin search)")
    s.add_argument("--teacher", help="FP teacher checkpoint (required)")
    s.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    s.add_argument("--distill", choices=[*DISTILL_LOSSES, "none"],
                   help="distillation on the response map (default kl)")
    _common(s)
    s.set_defaults(func=cmd_finetune)
    return p


def _dispatch(argv) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(0)
    try:
        args.func(args)
    except OSError as e:  # a full disk or a folder that went away while a command wrote its files
        raise CLIError(os_error_line(e, getattr(args, "out", None))) from None


def main(argv=None) -> None:
    """Returns after a finished command; exits with status 2 and one line on any user error."""
    from .pipeline import user_errors  # FileFormatError too: a resume file in --out, any checkpoint read deep down
    code = run_cli("mixbin", lambda: _dispatch(argv), user_errors=user_errors())
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
