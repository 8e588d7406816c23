"""``mixbin`` command line: summary, search, finetune.

    mixbin summary --backbone resnet16-half [--spec FILE] [--json]
    mixbin search --budget 0.3 --strategy mixbin --teacher runs/fp/last.pt --data data_cache/pairs --out runs/b030
    mixbin finetune --spec runs/b030/spec.json --teacher runs/fp/last.pt --data data_cache/pairs --out runs/b030/ft

This file is where MixBin meets the tracker: the library (``mixbin.*``) is
task-agnostic, and only here do the tracker's pairs, SiamFC loss and network
come in. Both long commands resume from their ``--out`` folder and skip work
that is already finished; run them under ``torchrun`` for DDP.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
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
    if args.json:
        print(json.dumps(s))
    else:
        print(format_summary(s))


# -- wiring: data ---------------------------------------------------------------

class TensorPairs:
    """Pairs stored as one ``torch.save``d dict of stacked tensors (z, x, target, neg): small sets and tests."""

    def __init__(self, path):
        from backbones.files import safe_load
        self.d = safe_load(path)  # weights_only: a shared pairs file cannot run code
        if not isinstance(self.d, dict):
            raise ValueError(f"{path}: expected a dict of tensors z, x, target, neg")
        missing = {"z", "x", "target", "neg"} - set(self.d)
        if missing:
            raise ValueError(f"{path}: missing field(s) {sorted(missing)}")
        self.n = len(self.d["z"])

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {k: v[i] for k, v in self.d.items()}


def load_pairs(data: str):
    """(train, val or None) from DIR: train/ + val/ shard folders, a shard folder,
    train.pt (+ val.pt) tensor files, or a tracker.train.data JSON config file."""
    p = Path(data)
    if not p.exists():
        raise CLIError(f"--data {data}: no such file or folder")
    from tracker.train.data.paths import EvalDataError, check_training_path
    try:
        check_training_path(p)  # the evaluation sequences never feed training
    except EvalDataError as e:
        raise CLIError(str(e))
    try:
        if p.is_file() and p.suffix == ".json":
            from tracker.train.data import make_datasets
            return make_datasets(json.loads(p.read_text()))
        if (p / "train.pt").is_file():
            return TensorPairs(p / "train.pt"), (TensorPairs(p / "val.pt") if (p / "val.pt").is_file() else None)
        from tracker.train.data.shards import ShardDataset
        if (p / "train").is_dir():
            return ShardDataset(p / "train"), (ShardDataset(p / "val") if (p / "val").is_dir() else None)
        if any(p.glob("shard_*")):
            return ShardDataset(p), None
    except (OSError, ValueError, KeyError) as e:
        raise CLIError(f"--data {data}: {e}")
    raise CLIError(f"--data {data}: expected train/ and val/ shard folders, shard_* folders, train.pt, or a .json data config")


def fixed_batches(ds, batch_size: int, n: int) -> list:
    """The first ``n`` batches of ``ds`` in order: the same held-out pairs for every strategy."""
    import itertools

    import torch
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0)
    return list(itertools.islice(loader, n))


# -- wiring: model and loss ----------------------------------------------------------

def task(args):
    """The tracker's SiamFC pair task as MixBin's ``loss_fn(model, batch) -> (loss, response)``."""
    from tracker.train import PairTask
    return PairTask(bf16=not args.fp32, channels_last=not args.fp32)


def build_net(backbone: str, state: dict | None, fp32: bool):
    import torch
    from backbones.files import state_dict_problem
    from tracker.model import SiamNet
    net = SiamNet(backbone)
    if state is not None:
        try:
            net.load_state_dict(state)
        except RuntimeError as e:
            raise CLIError(f"teacher weights do not fit backbone {backbone}: {state_dict_problem(e)}")
    if not fp32:
        net = net.to(memory_format=torch.channels_last)
    return net


def load_teacher(path: str | None):
    """(state, backbone name, description) of an FP teacher checkpoint."""
    from mixbin.io import CheckpointError, backbone_name_of, read_model
    if path is None:
        return None, None, None
    try:
        state, spec, meta = read_model(path)
    except CheckpointError as e:
        raise CLIError(f"--teacher: {e}")
    if spec and any(m != "fp" for m in spec.get("units", {}).values()):
        raise CLIError(f"--teacher {path} is a B2NN (spec has binary units); the teacher must be the FP model")
    return state, backbone_name_of(spec, meta), str(path)


def check_backbone(name: str) -> None:
    from backbones import list_backbones
    if name not in list_backbones():
        raise CLIError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}")


def check_out(out: str) -> None:
    """Fail now, not after loading data and training, on an --out that cannot become a folder."""
    import os
    p = Path(out).absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise CLIError(f"--out {out}: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise CLIError(f"--out {out}: {p} is not writable")


def _check_reachable(backbone: str, budget: float, input_size: int | None) -> None:
    """Fail now, not after loading data, for a budget below the all-binary cost."""
    from backbones import create_backbone, unit_costs
    from mixbin.select import BudgetError, capacity
    net = create_backbone(backbone)
    try:
        capacity({n: c.macs for n, c in unit_costs(net, input_size or net.search_size).items()}, budget)
    except BudgetError as e:
        raise CLIError(str(e))


def overrides(pairs: list[str], cls) -> dict:
    """``--set key=value`` (``tracker.cli_common.parse_value``) checked against a config dataclass."""
    from dataclasses import fields
    names = {f.name for f in fields(cls)}
    try:
        out = parse_key_values(pairs, "--set")
    except ValueError as e:
        raise CLIError(str(e)) from None
    for k in out:
        if k not in names:
            raise CLIError(f"--set {k}: not a {cls.__name__} field ({', '.join(sorted(names))})")
    return out


def _setup_threads(n: int) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


def _start_run(args, marker: str, done_msg: str):
    """The start search and finetune share, once their arguments are checked.

    None where ``--out`` already holds ``marker`` (the run is done: said on
    stdout); else (out folder, train pairs, val pairs or None, rank), with the
    data loaded and the process group joined.
    """
    from backbones.harness import dist_info, init_distributed
    out = Path(args.out)
    if (out / marker).is_file():
        print(f"{out / marker} exists: {done_msg}")
        return None
    train_ds, val_ds = load_pairs(args.data)
    _setup_threads(args.threads)
    init_distributed()
    rank, _ = dist_info()
    return out, train_ds, val_ds, rank


# -- search ---------------------------------------------------------------------------

def cmd_search(args) -> None:
    import torch

    from mixbin.io import save_model
    from mixbin.loop import find_backbone
    from mixbin.prune import PruneConfig, bake_masks
    from mixbin.search import SearchConfig
    from mixbin.select import BudgetError
    from mixbin.strategies import NEEDS_BUDGET, StrategyInputs, run_strategy

    if args.strategy in NEEDS_BUDGET and args.budget is None:
        raise CLIError(f"--budget is required for strategy {args.strategy}")
    if args.budget is not None and not 0 < args.budget <= 1:
        raise CLIError(f"--budget must be in (0, 1], got {args.budget}")
    if args.teacher is not None and not Path(args.teacher).is_file():
        raise CLIError(f"--teacher {args.teacher}: file not found")
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    check_out(args.out)
    state, t_backbone, t_desc = load_teacher(args.teacher)
    backbone = args.backbone or t_backbone
    if backbone is None:
        raise CLIError("give --backbone NAME (or a --teacher checkpoint that names its backbone)")
    check_backbone(backbone)
    if t_backbone and args.backbone and t_backbone != args.backbone:
        raise CLIError(f"--teacher was trained with backbone {t_backbone}, not {args.backbone}")
    over = overrides(args.set, PruneConfig if args.strategy == "prune" else SearchConfig)
    if args.strategy in NEEDS_BUDGET:
        _check_reachable(backbone, args.budget, args.input_size)
    started = _start_run(args, "spec.json", "search already done (delete it to search again)")
    if started is None:
        return
    out, train_ds, val_ds, rank = started
    seed = args.seed if args.seed is not None else 0
    torch.manual_seed(seed)
    net = build_net(backbone, state, args.fp32)
    if state is None and rank == 0:
        print("mixbin: warning: no --teacher; searching from random weights", file=sys.stderr)
    from tracker.train import pair_batches
    loss_fn = task(args)
    val = fixed_batches(val_ds if val_ds is not None else train_ds, args.batch_size, args.val_batches)
    out.mkdir(parents=True, exist_ok=True)
    inp = StrategyInputs(model=net, loss_fn=loss_fn,
                         train_batches=pair_batches(train_ds, args.batch_size, seed, args.workers),
                         val_batches=val, budget=args.budget if args.budget is not None else 1.0, seed=seed,
                         steps=args.steps, out_dir=out, progress=not args.no_progress,
                         provenance={"data": str(args.data), "teacher": t_desc, "batch_size": args.batch_size},
                         input_size=args.input_size, backbone_name=backbone, overrides=over)
    t0 = time.time()
    try:
        res = run_strategy(args.strategy, inp)
    except BudgetError as e:
        raise CLIError(str(e))
    if rank != 0:
        return
    if res.masks is not None:
        bake_masks(find_backbone(net), res.masks)
    meta = {"stage": "search", "strategy": args.strategy, "teacher": t_desc, "data": str(args.data),
            "wall_time_s": round(time.time() - t0, 1), **res.info}
    save_model(out / "model.pt", net, res.spec, meta)
    res.spec.save(out / "spec.json")  # written last: its presence marks the search as done
    real = res.info.get("pruned_budget", res.spec.budget)
    print(f"{args.strategy}: budget {real:.4f} (target {args.budget}) -> {out / 'spec.json'}")


# -- finetune -------------------------------------------------------------------------

def cmd_finetune(args) -> None:
    from backbones import Spec, SpecError
    from mixbin.finetune import FinetuneConfig, finetune
    from mixbin.io import save_model
    from mixbin.loop import find_backbone
    from mixbin.prune import attach_masks, bake_masks, masks_from_spec

    if not args.teacher:
        raise CLIError("--teacher CKPT is required: fine-tuning starts from the FP teacher's weights")
    if not Path(args.teacher).is_file():
        raise CLIError(f"--teacher {args.teacher}: file not found")
    try:
        spec = Spec.load(args.spec)
    except SpecError as e:
        raise CLIError(str(e))
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    check_out(args.out)
    state, t_backbone, t_desc = load_teacher(args.teacher)
    if t_backbone and t_backbone != spec.backbone:
        raise CLIError(f"spec is for backbone {spec.backbone} but --teacher was trained with {t_backbone}")
    check_backbone(spec.backbone)
    kw = overrides(args.set, FinetuneConfig)
    for k in ("steps", "lr", "seed"):
        if getattr(args, k) is not None:
            kw[k] = getattr(args, k)
    if args.distill is not None:
        kw.update({"distill_weight": 0.0} if args.distill == "none" else {"distill": args.distill})
    cfg = FinetuneConfig(**kw)
    started = _start_run(args, "model.pt", "fine-tuning already done (delete it to run again)")
    if started is None:
        return
    out, train_ds, val_ds, rank = started
    student = build_net(spec.backbone, state, args.fp32)
    teacher = build_net(spec.backbone, state, args.fp32)
    student.backbone.set_modes(spec.units)
    masks = masks_from_spec(spec, student.backbone)
    handles = attach_masks(student.backbone, masks) if masks else []
    from tracker.train import pair_batches
    loss_fn = task(args)
    val_fn = None
    if val_ds is not None:
        from tracker.train import validate
        loader = fixed_batches(val_ds, args.batch_size, args.val_batches)
        val_fn = lambda m: validate(m, loader, loss_fn, len(loader))  # noqa: E731
    summary = finetune(student, loss_fn, pair_batches(train_ds, args.batch_size, cfg.seed, args.workers), cfg, out,
                       teacher=teacher, val_fn=val_fn, progress=not args.no_progress)
    if rank != 0:
        return
    for h in handles:
        h.remove()
    if masks:
        bake_masks(find_backbone(student), masks)
    meta = {"stage": "finetune", "teacher": t_desc, "data": str(args.data), "spec_file": str(args.spec),
            "finetune": {**vars(cfg), "batch_size": args.batch_size},
            "pruned_budget": spec.provenance.get("pruned_budget"), **summary}
    (out / "result.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    spec.save(out / "spec.json")
    save_model(out / "model.pt", student, spec, meta)  # written last: marks the run as done
    print(f"fine-tuned {spec.provenance.get('strategy', '?')} at budget "
          f"{spec.provenance.get('pruned_budget', spec.budget):.4f}: {summary} -> {out / 'model.pt'}")


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
                   help="override a config field (SearchConfig / PruneConfig / FinetuneConfig), value as JSON")


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
    s.set_defaults(func=cmd_summary)

    from mixbin.strategies import STRATEGIES, describe_strategies
    s = sub.add_parser("search", help="make a B2NN spec for a budget (MixBin or a baseline)",
                       description="Writes OUT/spec.json, OUT/model.pt (b2track-model/1) and OUT/log.jsonl; "
                                   "mixbin/prune checkpoint to OUT/search.pt / OUT/prune.pt and resume from it.")
    s.add_argument("--backbone", help="backbone name (default: the teacher's)")
    s.add_argument("--budget", type=float, help="target cost / FP cost, in (0, 1] (not needed for fp, all-binary)")
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
    s.add_argument("--distill", choices=("kl", "bce", "mse", "none"), help="distillation on the response map (default kl)")
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
    from backbones.files import FileFormatError  # a resume file in --out, or any checkpoint read deep in a command
    code = run_cli("mixbin", lambda: _dispatch(argv), user_errors=(FileFormatError,))
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
