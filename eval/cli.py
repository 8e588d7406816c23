"""`track-eval`: run trackers on benchmarks, score raw results, render reports."""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from .datasets import DATASETS, describe_datasets
from .errors import EvalError
from .metrics import CONVENTIONS

_DESCRIPTION = """\
Evaluate single-object trackers on OTB-2015, LaSOT, GOT-10k, VOT, UAV123 or a folder of
sequences, with the official OTB/LaSOT toolkit definitions (success AUC over 21 IoU thresholds,
precision at 20 px, normalized precision at 0.20, averaged over sequences).

  track-eval run     run a tracker, write raw results <results>/<tracker>/<dataset>/<seq>.txt
  track-eval score   score raw results (ours or published ones)
  track-eval report  write success/precision plots and a Markdown table
"""

_EXAMPLES = """\
examples:
  track-eval score --dataset otb --anno ../shared/data/otb100_anno \\
      --results ../shared/data/raw_results/OTB100 --json
  track-eval run --dataset folder --root ../shared/data/sequences --tracker csrt \\
      --workers 2 --results results
  track-eval report --dataset folder --root ../shared/data/sequences --results results \\
      --out report
"""


def _add_dataset(p, with_root_alias):
    p.add_argument("--dataset", required=True, choices=list(DATASETS), metavar="NAME",
                   help="benchmark layout: " + describe_datasets())
    if with_root_alias:
        p.add_argument("--anno", "--root", dest="root", required=True, metavar="PATH",
                       help="ground truth: the dataset root, or annotation-only folders "
                            "(OTB toolkit anno/, LaSOT toolkit <seq>.txt + absent/)")
    p.add_argument("--split", default="val",
                   help="GOT-10k split when PATH is the dataset root (default: val)")
    p.add_argument("--all-sequences", action="store_true",
                   help="OTB: keep extra sequences of a full toolkit folder (default: OTB100); "
                        "LaSOT: ignore testing_set.txt")


def _add_scoring(p):
    p.add_argument("--results", required=True, metavar="DIR",
                   help="folder with one sub-folder per tracker (<tracker>/<seq>.txt or "
                        "<tracker>/<dataset>/<seq>.txt)")
    p.add_argument("--trackers", nargs="+", metavar="NAME",
                   help="only these trackers (default: every tracker folder)")
    p.add_argument("--convention", choices=list(CONVENTIONS),
                   help="scoring convention (default: the dataset's official one; 'visible' "
                        "and 'pooled' reproduce other toolkits and are not official)")


def build_parser():
    from tracker.cli_common import Parser  # tracker's __init__ is light: no torch while scoring

    from . import executors, trackers

    parser = Parser(prog="track-eval", description=_DESCRIPTION, epilog=_EXAMPLES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser,
                                metavar="{run,score,report}")

    score = sub.add_parser("score", help="score raw results against ground truth",
                           description="Score raw results; prints a table, or JSON with --json.")
    _add_dataset(score, True)
    _add_scoring(score)
    score.add_argument("--json", action="store_true",
                       help='print {"dataset":..., "trackers": {NAME: {"auc", "precision", '
                            '"norm_precision", "n_seqs"}}} (GOT-10k adds ao, sr50, sr75)')
    score.add_argument("--plot", metavar="FILE.png", help="also write success/precision plots")

    run = sub.add_parser("run", help="run a tracker over a dataset (parallel, resumable)",
                         description="Run a tracker and write raw results; finished sequences "
                                     "are skipped, so rerunning the same command resumes.")
    _add_dataset(run, False)
    run.add_argument("--root", required=True, metavar="PATH", help="dataset root with frames")
    run.add_argument("--tracker", required=True, choices=trackers.names(), metavar="NAME",
                     help=trackers.describe())
    run.add_argument("--budget", type=float, help="our trackers: FLOP budget of the B2NN backbone")
    run.add_argument("--backbone", metavar="NAME", help="our trackers: zoo family the budget picks from, e.g. b2net "
                                                         "(default: the zoo's default_backbone)")
    run.add_argument("--model", metavar="CKPT", help="our trackers: checkpoint to load")
    run.add_argument("--threads", type=int,
                     help="our trackers: threads per tracker, one of them the learning thread from 2 on "
                          "(default: the CPU cores shared among --workers, "
                          "so workers do not oversubscribe the cores; with --executor ray, 1, and each task holds that many CPUs)")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="our trackers: override a tracker parameter (repeatable), e.g. lost_ratio=0.4; "
                          "give --name too, so the results do not resume into the defaults' folder")
    run.add_argument("--preset", metavar="NAME",
                     help="our trackers: a named parameter set, e.g. 'fast' for dimp (the default --name gets _NAME)")
    run.add_argument("--workers", type=int,
                     help="parallel processes (default 1); with --executor ray, the most sequences in flight "
                          "(default: as many as the cluster runs at once) and the CPUs of a Ray instance started here")
    run.add_argument("--executor", choices=list(executors.EXECUTORS), default="local",
                     help="where sequences are tracked: " + "; ".join(f"{k}: {v}" for k, v in executors.EXECUTORS.items())
                          + " (default local; ray needs pip install -e \".[cluster]\")")
    run.add_argument("--address", metavar="HOST:PORT",
                     help="with --executor ray: the cluster's address as `ray start --head` prints it, "
                          "ray://HOST:PORT for Ray Client, or auto (RAY_ADDRESS or the cluster started on this machine)")
    run.add_argument("--results", required=True, metavar="DIR", help="where results go")
    run.add_argument("--name", help="result folder name (default: tracker, plus _b<budget>)")
    run.add_argument("--nanotrack-dir", metavar="PATH",
                     help="folder with NanoTrack v2's *backbone*.onnx and *head*.onnx")
    run.add_argument("--sequences", nargs="+", metavar="SEQ", help="only these sequences")
    run.add_argument("--max-frames", type=int, metavar="N",
                     help="track only the first N frames of each sequence (smoke tests)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    report = sub.add_parser("report", help="write plots and a Markdown table",
                            description="Write success/precision plots (PNG), results.md with a "
                                        "table and, when attributes are known, per-attribute "
                                        "tables.")
    _add_dataset(report, True)
    _add_scoring(report)
    report.add_argument("--out", required=True, metavar="DIR", help="output folder")
    report.add_argument("--baseline", metavar="NAME",
                        help="also compare every tracker with this one sequence by sequence: mean AUC "
                             "difference with a 95%% paired bootstrap interval, wins/ties/losses")
    report.add_argument("--average", action="append", default=[], metavar="NAME=T1,T2,...",
                        help="report the runs T1, T2, ... (e.g. one tracker under several seeds) as one "
                             "tracker NAME whose per-sequence curves are their mean; repeatable, and "
                             "NAME can be the --baseline")
    return parser


def _load(args):
    from .datasets import load_dataset

    root = Path(args.root)
    if not root.is_dir():
        raise EvalError(f"{'dataset' if args.command == 'run' else 'annotation'} directory "
                        f"not found: {root}")
    options = {}
    if args.dataset == "got10k":
        options["split"] = args.split
    if args.dataset == "otb" and args.all_sequences:
        options["subset"] = "all"
    if args.dataset == "lasot" and args.all_sequences:
        options["subset"] = "all"
    return load_dataset(args.dataset, root, **options)


def _scores(args, sequences, trackers=None):
    """Every tracker's scores (``trackers``, else --trackers, else all under --results)."""
    from .scoring import score_results

    scores, empty = score_results(args.results, sequences, args.dataset, trackers or args.trackers,
                                  args.convention)
    for s in empty:
        print(f"track-eval: warning: {s.tracker}: no result file matches a {args.dataset} "
              "sequence; skipped", file=sys.stderr)
    if not scores:
        raise EvalError(f"no results in {args.results} match the {len(sequences)} "
                        f"{args.dataset} sequences")
    for s in scores:
        if s.missing:
            print(f"track-eval: warning: {s.tracker}: {len(s.missing)} of {len(sequences)} "
                  f"sequences have no results (first: {s.missing[0]}); scored over "
                  f"{s.n_seqs}", file=sys.stderr)
        if s.short:
            print(f"track-eval: note: {s.tracker}: {len(s.short)} result file(s) shorter than "
                  f"the sequence (first: {s.short[0]}); the last box stands for the rest",
                  file=sys.stderr)
    return scores


def _average_groups(specs):
    """{NAME: [members]} from --average NAME=T1,T2,... values."""
    groups = {}
    for spec in specs:
        name, sep, members = spec.partition("=")
        runs = [m.strip() for m in members.split(",") if m.strip()]
        if not sep or not name.strip() or not runs:
            raise EvalError(f"--average expects NAME=T1,T2,..., got {spec!r}")
        if name.strip() in groups:
            raise EvalError(f"--average names {name.strip()!r} twice")
        groups[name.strip()] = runs
    return groups


def _apply_averages(scores, groups):
    """``scores`` with each group's members replaced by their average."""
    from .scoring import average_scores

    by_name = {s.tracker: s for s in scores}
    for name, runs in groups.items():
        absent = [r for r in runs if r not in by_name]
        if absent:
            raise EvalError(f"--average {name}: no results for {', '.join(absent)}")
    members = {r for runs in groups.values() for r in runs}
    out = [s for s in scores if s.tracker not in members]
    for name, runs in groups.items():
        avg = average_scores(name, [by_name[r] for r in runs])
        if not avg.n_seqs:
            raise EvalError(f"--average {name}: the runs share no sequence")
        out.append(avg)
    return out


def cmd_score(args):
    from . import report

    if args.plot:
        report.plot_format(args.plot)
    sequences = _load(args)
    scores = _scores(args, sequences)
    if args.json:
        out = {"dataset": args.dataset, "trackers": {s.tracker: s.as_json() for s in scores}}
        print(json.dumps(out, indent=2))
    else:
        print(report.console_table(scores), end="")
    if args.plot:
        kinds = ("success", "precision")
        if DATASETS[args.dataset].norm_precision:
            kinds += ("norm_precision",)
        try:
            path = report.plot_summary(scores, args.plot, kinds, args.dataset.upper())
        except OSError as e:  # the plotting library does not name the file
            raise EvalError(f"cannot write {args.plot}: {e.strerror or e}") from None
        print(f"plot: {path}", file=sys.stderr)
    return 0


def cmd_report(args):
    from . import report

    sequences = _load(args)
    groups = _average_groups(args.average)
    # the runs to average are scored even when --trackers leaves them out
    trackers = list(dict.fromkeys(args.trackers + [m for ms in groups.values() for m in ms])) if args.trackers else None
    scores = _apply_averages(_scores(args, sequences, trackers), groups)
    if args.baseline and args.baseline not in {s.tracker for s in scores}:
        raise EvalError(f"--baseline {args.baseline!r} is not among the scored trackers: "
                        f"{', '.join(sorted(s.tracker for s in scores))}")
    try:
        written = report.write_report(scores, sequences, args.out, args.dataset, args.baseline)
    except OSError as e:
        raise EvalError(f"cannot write the report to {args.out}: {e.strerror or e}") from None
    print(report.console_table(scores), end="")
    for p in written:
        print(f"wrote {p}")
    return 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_run(args):
    from . import executors, runner, trackers

    if args.workers is not None and args.workers < 1:
        raise EvalError("--workers must be at least 1")
    if args.address is not None and args.executor != "ray":
        raise EvalError("--address applies to --executor ray only")
    on_ray = args.executor == "ray"
    # Ray first: a missing package or a malformed address fails before any tracker is built.
    executor = executors.make(args.executor, workers=args.workers, threads=args.threads, address=args.address)
    workers = args.workers or 1
    if args.tracker in trackers.PEERS and (args.budget is not None or args.model or args.backbone):
        print(f"track-eval: note: --budget/--model/--backbone do not apply to {args.tracker}; ignored",
              file=sys.stderr)
    params = None
    if args.param or args.preset:
        if args.tracker in trackers.PEERS:
            raise EvalError(f"--param and --preset apply to our trackers only, not {args.tracker}")
        from tracker.cli_common import parse_key_values
        try:
            params = parse_key_values(args.param, "--param")
        except ValueError as e:
            raise EvalError(str(e)) from None
        if args.preset:
            params.setdefault("preset", args.preset)
    threads = args.threads
    if threads is None and on_ray:
        threads = 1  # each Ray task holds one CPU
    elif threads is None and workers > 1:
        # Each worker's torch would otherwise start one thread per core: K workers would run
        # K threads per core, which contend instead of adding speed.
        threads = max(1, (os.cpu_count() or 1) // workers)
    model = args.model
    if on_ray and model and Path(model).exists():
        model = str(Path(model).absolute())  # Ray workers may start in another directory
    factory = trackers.make_factory(args.tracker, budget=args.budget, model=model,
                                    threads=threads, nanotrack_dir=args.nanotrack_dir, params=params,
                                    backbone=args.backbone)
    sequences = _load(args)
    if args.sequences:
        from .names import match_names

        found = match_names(args.sequences, [s.name for s in sequences])
        unknown = [n for n in args.sequences if n not in found]
        if unknown:
            raise EvalError(f"no sequence named {unknown[0]!r} in {args.root}")
        chosen = set(found.values())
        sequences = [s for s in sequences if s.name in chosen]
    for s in sequences:
        if not s.frames:
            raise EvalError(f"{args.root} holds annotations only; `run` needs the frames")
    label = args.name or trackers.default_label(args.tracker, args.budget, args.backbone) + (
        f"_{args.preset}" if args.preset else "")
    out_dir = Path(args.results) / label / args.dataset
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.perf_counter()
    try:
        with executor:  # connects to Ray (and puts this handler back after ray.init replaced it)
            outcomes = runner.run(factory, sequences, out_dir, max_frames=args.max_frames,
                                  progress=not args.no_progress, executor=executor)
    except KeyboardInterrupt:
        done = sum(runner.is_complete(out_dir, s.name) for s in sequences)
        print(f"\ntrack-eval: interrupted: {done}/{len(sequences)} sequences complete in "
              f"{out_dir}; rerun the same command to resume", file=sys.stderr)
        return 130
    counts = {k: sum(o.status == k for o in outcomes) for k in ("done", "skipped", "failed")}
    frames = sum(o.frames for o in outcomes)
    seconds = time.perf_counter() - started
    fps = f", {frames / seconds:.1f} frames/s overall" if frames else ""
    print(f"{label} on {args.dataset}: {counts['done']} run, {counts['skipped']} already done, "
          f"{counts['failed']} failed{fps} -> {out_dir}")
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        detail = "; ".join(f"{o.name}: {o.error}" for o in failed[:3])
        raise EvalError(f"{len(failed)} sequence(s) failed ({detail}"
                        f"{'; ...' if len(failed) > 3 else ''})")
    return 0


def _dispatch(argv):
    args = build_parser().parse_args(argv)
    return {"score": cmd_score, "run": cmd_run, "report": cmd_report}[args.command](args)


def main(argv=None):
    """The exit status (the console script exits with it): 2 and one line for any user error."""
    from tracker.cli_common import run_cli
    return run_cli("track-eval", lambda: _dispatch(argv), user_errors=(EvalError,))


if __name__ == "__main__":
    sys.exit(main())
