#!/usr/bin/env python
"""Strategy x budget benchmark: every strategy's spec, fine-tuned with the same recipe, on held-out pairs.

    python tools/bench_strategies.py --teacher runs/fp-r16h/last.pt --data data_cache/pairs
    python tools/bench_strategies.py ... --strategies mixbin random prune --budgets 0.15 0.3 \\
        --random-seeds 0 1 2 --search-steps 600 --finetune-steps 600 --eval-root ../shared/data/sequences

Per (strategy, budget, seed): the search then the fine-tuning of
``mixbin.pipeline`` (what ``mixbin search`` / ``mixbin finetune`` run) in
<work>/<strategy>/bXXX/sN, then validation loss and peak-within-8px on
``--eval-batches`` held-out batches (the data's val split), appended to
<work>/results.jsonl. With ``--eval-root``, also tracking AUC / P@20 via
``track-eval run`` + ``score`` for each tracker in ``--trackers`` (on a Ray
cluster with ``--eval-executor ray --eval-address HOST:PORT``). The FP
reference is the teacher itself (no fine-tuning); all-binary is fine-tuned
like the rest. Finished rows are skipped, and every stage resumes, so the
command can be rerun after a kill. Prints a Markdown table (mean ± std over
seeds) and writes <work>/table.md and <work>/bench.png.

Cost with the defaults (resnet16-half, 2 shared cores): ~11 min per
fine-tune, ~30 min per mixbin/prune search, a few minutes for iterative;
all strategies x 3 budgets x 3 random seeds is about 8 hours. Start with
``--budgets 0.15 0.3`` if time is short.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mixbin.pipeline import FinetuneJob, PipelineError, SearchJob, fixed_batches, run_finetune, run_search
from mixbin.strategies import NEEDS_BUDGET, STRATEGIES
from tracker.cli_common import CLIError, Parser, run_cli

METRICS = ("val_peak8", "val_loss", "auc", "p20")


def tag(b: float) -> str:
    return f"b{round(b * 100):03d}"


def done_keys(results: Path) -> set:
    """(strategy, budget, seed) of finished rows; references (fp, all-binary) count once for every budget."""
    if not results.is_file():
        return set()
    return {(r["strategy"], r["budget_target"] if r["strategy"] in NEEDS_BUDGET else None, r["seed"])
            for r in map(json.loads, results.read_text().splitlines())}


def validate_checkpoint(path: Path, data: str, batches: int, batch_size: int) -> dict:
    from mixbin.tracking_task import load_pairs
    from tracker.train import PairTask, validate
    from tracker.zoo import load_model
    _, val_ds = load_pairs(data)
    if val_ds is None:
        raise PipelineError(f"--data {data} has no validation split")
    model, spec, _ = load_model(path)
    loader = fixed_batches(val_ds, batch_size, batches)
    return validate(model, loader, PairTask(), batches)


def check_executor(args) -> None:
    """Before hours of search: track-eval would refuse these only when the first evaluation starts."""
    if args.eval_address and args.eval_executor != "ray":
        raise CLIError("--eval-address applies to --eval-executor ray only")
    if args.eval_executor == "ray" and importlib.util.find_spec("ray") is None:
        raise CLIError("--eval-executor ray needs the ray package: pip install -e \".[cluster]\"")


def executor_args(args) -> list[str]:
    """Where track-eval run tracks: --eval-executor / --eval-address / --eval-workers passed through as given."""
    out = ["--executor", args.eval_executor]
    if args.eval_address:
        out += ["--address", args.eval_address]
    if args.eval_workers is not None:
        out += ["--workers", str(args.eval_workers)]
    return out


def track_eval(path: Path, name: str, args) -> dict:
    """AUC / P@20 of each tracker in ``--trackers`` with this checkpoint (track-eval run + score)."""
    out = {}
    results = Path(args.work) / "track_results"
    for tracker in args.trackers:
        run_name = f"{name}-{tracker}"
        subprocess.run(["track-eval", "run", "--dataset", args.eval_dataset, "--root", args.eval_root, "--tracker", tracker,
                        "--model", str(path), "--results", str(results), "--name", run_name, "--no-progress",
                        *executor_args(args)], check=True)
        r = subprocess.run(["track-eval", "score", "--dataset", args.eval_dataset, "--anno", args.eval_root,
                            "--results", str(results), "--trackers", run_name, "--json"],
                           check=True, capture_output=True, text=True)
        s = json.loads(r.stdout)["trackers"][run_name]
        out[tracker] = {"auc": s["auc"], "p20": s["precision"]}
    if out:
        out["auc"] = float(np.mean([v["auc"] for v in out.values() if isinstance(v, dict)]))
        out["p20"] = float(np.mean([v["p20"] for k, v in out.items() if isinstance(v, dict)]))
    return out


def run_one(strategy: str, b: float, seed: int, args) -> dict:
    run_dir = Path(args.work) / strategy / tag(b) / f"s{seed}"
    common = {"teacher": args.teacher, "data": args.data, "batch_size": args.batch_size,
              "val_batches": args.val_batches, "threads": args.threads}
    t0 = time.time()
    if strategy == "fp":
        ckpt, spec_budget, ft = Path(run_dir / "fp.pt"), 1.0, {}
        if not ckpt.is_file():
            from backbones import Spec
            from mixbin.io import backbone_name_of, read_model, save_model
            from tracker.model import SiamNet
            state, spec_d, meta = read_model(args.teacher)
            name = backbone_name_of(spec_d, meta)
            net = SiamNet(name)
            net.load_state_dict(state)
            save_model(ckpt, net, Spec.uniform(name, "fp"), {"teacher": str(args.teacher)})
    else:
        from mixbin.tracking_task import tracking_task
        task = tracking_task()
        steps = args.search_steps if strategy in ("mixbin", "prune") else None
        say(run_search(SearchJob(strategy=strategy, budget=b, out=run_dir / "search", seed=seed, steps=steps,
                                 **common), task))
        # One fine-tuning seed (batch order) for every strategy: only the spec differs between rows.
        say(run_finetune(FinetuneJob(spec=run_dir / "search" / "spec.json", out=run_dir / "finetune",
                                     steps=args.finetune_steps, seed=args.seed, **common), task))
        ckpt = run_dir / "finetune" / "model.pt"
        spec = json.loads((run_dir / "search" / "spec.json").read_text())
        spec_budget = spec["provenance"].get("pruned_budget", spec["budget"])
        ft = json.loads((run_dir / "finetune" / "result.json").read_text())
    row = {"strategy": strategy, "budget_target": b, "seed": seed, "budget": spec_budget, "checkpoint": str(ckpt),
           "search_wall_time_s": None if strategy == "fp" else spec["provenance"].get("search_wall_time_s",
                                                                                    spec["provenance"].get("wall_time_s")),
           "finetune_wall_time_s": ft.get("wall_time_s")}
    row.update(validate_checkpoint(ckpt, args.data, args.eval_batches, args.batch_size))
    if args.eval_root:
        row.update(track_eval(ckpt, f"{strategy}-{tag(b)}-s{seed}", args))
    row["bench_wall_time_s"] = round(time.time() - t0, 1)
    return row


def say(outcome) -> None:
    print(outcome.message, flush=True)


def _cell(rs: list[dict]) -> str:
    """peak8 / val loss / AUC / P@20 / real budget; mean ± std over several rows (random seeds)."""
    parts = []
    for m in METRICS:
        v = [r[m] for r in rs if r.get(m) is not None]
        if not v:
            parts.append("–")
        elif len(v) > 1:
            parts.append(f"{np.mean(v):.3f}±{np.std(v):.3f}")
        else:
            parts.append(f"{v[0]:.3f}")
    parts.append(f"{np.mean([r['budget'] for r in rs]):.3f}" + (f" (n={len(rs)})" if len(rs) > 1 else ""))
    return " / ".join(parts)


def table(rows: list[dict], budgets: list[float], strategies: list[str]) -> str:
    """Budgeted strategies by budget, then the references (fp, all-binary) once each."""
    lines = ["| strategy | " + " | ".join(f"b={b}: peak8 / val loss / AUC / P@20 / real b" for b in budgets) + " |",
             "| --- | " + " | ".join("---" for _ in budgets) + " |"]
    for s in (s for s in strategies if s in NEEDS_BUDGET):
        cells = [[r for r in rows if r["strategy"] == s and r["budget_target"] == b] for b in budgets]
        lines.append(f"| {s} | " + " | ".join(_cell(rs) if rs else "" for rs in cells) + " |")
    refs = [(s, [r for r in rows if r["strategy"] == s]) for s in strategies if s not in NEEDS_BUDGET]
    refs = [(s, rs) for s, rs in refs if rs]
    if refs:
        lines += ["", "| reference | peak8 / val loss / AUC / P@20 / real b |", "| --- | --- |"]
        lines += [f"| {s} | {_cell(rs)} |" for s, rs in refs]
    return "\n".join(lines)


def plot(rows: list[dict], strategies: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    metrics = [m for m in ("val_peak8", "auc", "p20") if any(r.get(m) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for s in strategies:
            pts = {}
            for r in rows:
                if r["strategy"] == s and r.get(m) is not None:
                    pts.setdefault(r["budget_target"], []).append(r[m])
            if pts and s not in NEEDS_BUDGET:  # a reference: one level for every budget
                v = [x for xs in pts.values() for x in xs]
                ax.axhline(float(np.mean(v)), ls="--", lw=1, color="k" if s == "fp" else "0.6", label=s)
            elif pts:
                bs = sorted(pts)
                ax.errorbar(bs, [np.mean(pts[b]) for b in bs], yerr=[np.std(pts[b]) for b in bs],
                            marker="o", label=s, capsize=3)
        ax.set(xlabel="budget", ylabel=m, title=m)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def bench(argv=None) -> None:
    p = Parser(prog="bench_strategies", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True)
    p.add_argument("--data", required=True, help="pairs with a val split (DIR with train/ and val/ shards)")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    p.add_argument("--budgets", type=float, nargs="+", default=[0.15, 0.3, 0.5])
    p.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--seed", type=int, default=0, help="seed of every non-random strategy")
    p.add_argument("--search-steps", type=int, default=600)
    p.add_argument("--finetune-steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-batches", type=int, default=8, help="validation inside fine-tuning")
    p.add_argument("--eval-batches", type=int, default=50, help="held-out batches for the table")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--work", default="runs/bench")
    p.add_argument("--eval-root", help="tracking sequences for track-eval (e.g. ../shared/data/sequences)")
    p.add_argument("--eval-dataset", default="folder")
    p.add_argument("--eval-workers", type=int,
                   help="track-eval run --workers (default: its own, 1 process locally, the whole cluster on Ray)")
    p.add_argument("--eval-executor", choices=["local", "ray"], default="local",
                   help="track-eval run --executor: ray sends the tracking jobs to a Ray cluster")
    p.add_argument("--eval-address", metavar="HOST:PORT",
                   help="track-eval run --address: the Ray cluster (default: a Ray instance started per run)")
    p.add_argument("--trackers", nargs="+", default=["siamfc", "dimp"])
    p.add_argument("--table-only", action="store_true", help="just print the table of what is done")
    args = p.parse_args(argv)
    check_executor(args)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = work / "results.jsonl"
    if not args.table_only:
        done = done_keys(results)
        for b in args.budgets:
            for s in args.strategies:
                for seed in (args.random_seeds if s == "random" else [args.seed]):
                    key = (s, b if s in NEEDS_BUDGET else None, seed)
                    if key in done:
                        continue
                    print(f"== {s} b={b} seed={seed}", flush=True)
                    row = run_one(s, b, seed, args)
                    with open(results, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    done.add(key)
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    md = table(rows, args.budgets, args.strategies)
    (work / "table.md").write_text(md + "\n")
    print(md)
    if rows:
        plot(rows, args.strategies, work / "bench.png")


def main(argv=None) -> None:
    """One line and exit status 2 for a user error (a missing teacher, data or spec, a bad budget)."""
    from mixbin.pipeline import user_errors
    code = run_cli("bench_strategies", lambda: bench(argv), user_errors=user_errors())
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
