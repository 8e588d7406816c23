#!/usr/bin/env python
"""Build the B2NN zoo: MixBin search + distillation fine-tuning at each budget, from the FP teacher.

    python tools/build_zoo.py --teacher runs/fp-r16h/last.pt --data data_cache/pairs
    python tools/build_zoo.py ... --budgets 0.5 0.3 0.15 --search-steps 600 --finetune-steps 2000

Per budget b: MixBin search (``mixbin.pipeline.run_search``, what ``mixbin search``
runs) -> <work>/mixbin-bXXX/search, fine-tuning (``run_finetune``) ->
<work>/mixbin-bXXX/finetune, then the fine-tuned checkpoint is
copied into the zoo folder (default tracker/zoo) and its manifest entry is
added or replaced (by name). Every stage resumes from its folder and
finished stages are skipped, so rerunning after a kill continues where it
stopped. The FP teacher gets an entry too unless the manifest has an FP
entry for this backbone already (``--no-fp`` to skip).

Cost measured here (resnet16-half, 2 shared cores, bf16): search ~3 s/step at
batch 16 (both paths of every unit run), fine-tuning ~1.1 s/step, so about
30 min + 37 min per budget with the defaults.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from mixbin.pipeline import FinetuneJob, SearchJob, run_finetune, run_search
from tracker.cli_common import CLIError, Parser, run_cli
from tracker.zoo import file_sha256

REPO = Path(__file__).resolve().parents[1]

ABOUT = ("Shipped tracker checkpoints (b2track-model/1). `track --budget B` picks the entry whose budget is closest "
         "to B without exceeding it. Fields: file, backbone, budget (of the spec, at 255 px), strategy, "
         "training_data, eval {dataset, auc}, sha256 (checked on load), notes.")


def tag(b: float) -> str:
    return f"b{round(b * 100):03d}"


def say(outcome) -> None:
    print(outcome.message, flush=True)


def update_manifest(zoo: Path, entry: dict) -> None:
    """Add or replace (by name) one entry of the zoo's manifest."""
    from tracker.zoo import default_backbone, load_manifest, write_manifest
    path = zoo / "manifest.json"
    entries = load_manifest(zoo) if path.is_file() else []
    about = json.loads(path.read_text()).get("about", ABOUT) if path.is_file() else ABOUT
    write_manifest(zoo, [e for e in entries if e.get("name") != entry["name"]] + [entry], about,
                   default_backbone(zoo) or entry["backbone"])


def check_loads(path: Path) -> None:
    """The tracker must be able to load what we ship (weights_only, spec, strict state)."""
    from tracker.zoo import load_model
    load_model(path)


def fp_entry(args, zoo: Path, backbone: str) -> None:
    from backbones import Spec
    from mixbin.io import read_model, save_model
    from tracker.model import SiamNet
    manifest = zoo / "manifest.json"
    if manifest.is_file():
        from tracker.zoo import load_manifest
        entries = load_manifest(zoo)
        if any(e.get("strategy") == "fp" and e.get("backbone") == backbone for e in entries):
            print(f"manifest already has an FP entry for {backbone}; leaving it")
            return
    state, _, meta = read_model(args.teacher)
    net = SiamNet(backbone)
    net.load_state_dict(state)
    spec = Spec.uniform(backbone, "fp", provenance={"strategy": "fp", "data": str(args.data)})
    name = f"{backbone}-fp"
    path = zoo / f"{name}.pt"
    save_model(path, net, spec, {"teacher": str(args.teacher), **{k: v for k, v in meta.items() if k != "config"}})
    check_loads(path)
    update_manifest(zoo, {"name": name, "file": path.name, "backbone": backbone, "budget": 1.0, "strategy": "fp",
                          "training_data": meta.get("config", {}).get("data", str(args.data)), "eval": {},
                          "sha256": file_sha256(path), "notes": f"FP teacher from {args.teacher}"})


def build(argv=None) -> None:
    p = Parser(prog="build_zoo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", required=True, help="FP teacher checkpoint")
    p.add_argument("--data", required=True, help="training pairs (as for `mixbin search --data`)")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.3, 0.15])
    p.add_argument("--search-steps", type=int, default=600)
    p.add_argument("--finetune-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--val-batches", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--work", default="runs/zoo", help="where search/fine-tune runs live (resumable)")
    p.add_argument("--zoo", default=str(REPO / "tracker" / "zoo"), help="zoo folder with manifest.json")
    p.add_argument("--no-fp", action="store_true", help="do not add the FP teacher as an entry")
    args = p.parse_args(argv)

    from mixbin.io import backbone_name_of, read_model
    _, spec_d, meta = read_model(args.teacher)
    backbone = backbone_name_of(spec_d, meta)
    if backbone is None:
        raise CLIError(f"--teacher {args.teacher}: the checkpoint does not name its backbone")
    zoo, work = Path(args.zoo), Path(args.work)
    zoo.mkdir(parents=True, exist_ok=True)
    if not args.no_fp:
        fp_entry(args, zoo, backbone)
    from mixbin.tracking_task import tracking_task
    task = tracking_task()
    common = {"teacher": args.teacher, "data": args.data, "batch_size": args.batch_size,
              "val_batches": args.val_batches, "seed": args.seed, "threads": args.threads}
    for b in args.budgets:
        run_dir = work / f"{backbone}-mixbin-{tag(b)}"
        t0 = time.time()
        say(run_search(SearchJob(strategy="mixbin", budget=b, out=run_dir / "search", steps=args.search_steps,
                                 **common), task))
        say(run_finetune(FinetuneJob(spec=run_dir / "search" / "spec.json", out=run_dir / "finetune",
                                     steps=args.finetune_steps, **common), task))
        name = f"{backbone}-mixbin-{tag(b)}"
        dst = zoo / f"{name}.pt"
        shutil.copyfile(run_dir / "finetune" / "model.pt", dst)
        check_loads(dst)
        spec = json.loads((run_dir / "search" / "spec.json").read_text())
        res = json.loads((run_dir / "finetune" / "result.json").read_text())
        search_wall = spec["provenance"].get("search_wall_time_s")
        update_manifest(zoo, {
            "name": name, "file": dst.name, "backbone": backbone, "budget": spec["budget"], "strategy": "mixbin",
            "budget_target": b, "training_data": str(args.data), "teacher": str(args.teacher),
            "search_steps": args.search_steps, "finetune_steps": res.get("steps"),
            "search_wall_time_s": search_wall, "finetune_wall_time_s": round(res.get("wall_time_s", 0.0), 1),
            "val": {k: res[k] for k in ("val_loss", "val_peak8", "val_pairs") if k in res},
            "eval": {}, "sha256": file_sha256(dst),
            "notes": f"MixBin spec at b={b}, fine-tuned with distillation ({res.get('finetune', {}).get('distill', 'kl')})"})
        print(f"{name}: budget {spec['budget']:.4f}, val {res.get('val_peak8')}, "
              f"search {search_wall}s + finetune {res.get('wall_time_s', 0):.0f}s "
              f"(this call {time.time() - t0:.0f}s)", flush=True)


def main(argv=None) -> None:
    """One line and exit status 2 for a user error (a missing teacher, data or spec, a bad budget)."""
    from mixbin.pipeline import user_errors
    code = run_cli("build_zoo", lambda: build(argv), user_errors=user_errors())
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
