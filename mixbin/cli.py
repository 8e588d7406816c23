"""``mixbin`` command line: summary (and, as they land, search / finetune)."""
from __future__ import annotations

import argparse
import json
import sys


def _fail(msg: str) -> "NoReturn":  # noqa: F821
    print(f"mixbin: error: {msg}", file=sys.stderr)
    sys.exit(2)


def cmd_summary(args) -> None:
    from backbones import Spec, SpecError, list_backbones
    from backbones.summary import format_summary, summarize

    spec = None
    if args.spec:
        try:
            spec = Spec.load(args.spec)
        except SpecError as e:
            _fail(str(e))
    backbone = args.backbone or (spec.backbone if spec else None)
    if backbone is None:
        _fail("give --backbone NAME or --spec FILE")
    if backbone not in list_backbones():
        _fail(f"unknown backbone {backbone!r}; available: {', '.join(list_backbones())}")
    if args.input_size is not None and args.input_size < 32:
        _fail(f"--input-size must be >= 32, got {args.input_size}")
    try:
        s = summarize(backbone, spec, args.input_size)
    except (ValueError, RuntimeError) as e:
        _fail(str(e))
    if args.json:
        print(json.dumps(s))
    else:
        print(format_summary(s))


def build_parser() -> argparse.ArgumentParser:
    from backbones import describe_backbones

    p = argparse.ArgumentParser(
        prog="mixbin",
        description="Budget-aware partial binarization (B2NN) of tracker backbones.",
        epilog="backbones: " + "; ".join(f"{k}: {v}" for k, v in describe_backbones().items()))
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("summary", help="per-unit MACs, modes, cost, budget and size of a backbone or spec",
                       description="Per-unit table (name, shapes, MACs, mode, share of cost) and totals: "
                                   "FP MACs, effective cost (binary MACs/64), budget, parameters and model size.")
    s.add_argument("--backbone", help="registered backbone name (default: the spec's)")
    s.add_argument("--spec", help="spec JSON file (default: all units FP)")
    s.add_argument("--input-size", type=int, help="square input size in pixels (default: the spec's, else 255)")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    s.set_defaults(func=cmd_summary)
    return p


def main(argv=None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        sys.exit(0)
    args.func(args)


if __name__ == "__main__":
    main()
