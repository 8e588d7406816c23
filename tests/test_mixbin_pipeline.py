"""mixbin.pipeline called as a library: typed jobs in, files and an Outcome out, typed errors (never an exit).

The task here is the toy quadrant task of test_mixbin_toy, not the tracker's: the pipeline takes any task.
"""
import dataclasses
import json

import pytest
import torch

from backbones import Spec, SpecError
from mixbin.pipeline import FinetuneJob, PipelineError, SearchJob, Task, run_finetune, run_search
from mixbin.select import BudgetError
from mixbin.tracking_task import load_pairs

import test_mixbin_toy as toy
from test_mixbin_toy import one_thread  # noqa: F401  (autouse fixture)


class ToyPairs(torch.utils.data.Dataset):
    def __init__(self, seed, n):
        self.x, self.y = toy.make_batch(seed, n)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _accuracy(model, batches):
    with torch.no_grad():
        return {"val_acc": float(sum((model(x).argmax(1) == y).float().mean() for x, y in batches) / len(batches))}


TOY = Task(build_model=lambda backbone: toy.TinyNet(), loss_fn=toy.loss_fn,
           load_data=lambda data: (ToyPairs(0, 32), ToyPairs(1, 8)),
           train_batches=lambda ds, batch_size, seed, workers: lambda start: toy.batches(start, seed),
           validate=_accuracy)


@pytest.fixture
def teacher(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "teacher.pt"
    torch.save({"model": toy.TinyNet().state_dict(), "backbone": toy.TINY, "step": 0}, path)
    return path


def job_fields(tmp_path, teacher, out="out"):
    return {"out": tmp_path / out, "data": "toy", "teacher": teacher, "batch_size": 8, "val_batches": 1,
            "progress": False}


def test_search_then_finetune_of_a_task_that_is_not_the_tracker(tmp_path, teacher):
    search = SearchJob(strategy="random", budget=0.3, seed=2, **job_fields(tmp_path, teacher, "search"))
    done = run_search(search, TOY, warn=pytest.fail)
    assert done.path == tmp_path / "search" / "spec.json" and not done.already_done
    assert done.message.startswith("random: budget 0.2") and done.message.endswith(str(done.path))
    spec = Spec.load(done.path)
    assert spec.backbone == toy.TINY and spec.budget <= 0.3 and spec.provenance["seed"] == 2
    assert {p.name for p in (tmp_path / "search").iterdir()} >= {"spec.json", "model.pt", "log.jsonl"}
    again = run_search(search, TOY)
    assert again.already_done and "search already done" in again.message

    ft = FinetuneJob(spec=done.path, steps=2, distill="mse", overrides={"calib_batches": 1},
                     **job_fields(tmp_path, teacher, "ft"))
    tuned = run_finetune(ft, TOY)
    assert tuned.path == tmp_path / "ft" / "model.pt" and tuned.path.is_file()
    result = json.loads((tmp_path / "ft" / "result.json").read_text())
    assert result["steps"] == 2 and "val_acc" in result and result["finetune"]["distill"] == "mse"
    assert result["finetune"]["calib_batches"] == 1 and result["finetune"]["batch_size"] == 8
    assert Spec.load(tmp_path / "ft" / "spec.json").units == spec.units
    assert run_finetune(ft, TOY).already_done


def test_no_teacher_is_a_warning_through_the_callers_hook(tmp_path):
    said = []
    run_search(SearchJob(strategy="fp", backbone=toy.TINY, **{**job_fields(tmp_path, None)}), TOY, warn=said.append)
    assert said == ["no --teacher; searching from random weights"]


@pytest.mark.parametrize("change, error, says", [
    ({"budget": 0.0}, PipelineError, "--budget must be in (0, 1]"),
    ({"budget": None}, PipelineError, "--budget is required for strategy random"),
    ({"budget": 0.001}, BudgetError, "all-binary"),
    ({"strategy": "magic"}, PipelineError, "unknown strategy 'magic'"),
    ({"steps": 0}, PipelineError, "--steps must be >= 1"),
    ({"overrides": {"nope": 1}}, PipelineError, "--set nope: not a SearchConfig field"),
    ({"backbone": "resnet99"}, PipelineError, "unknown backbone 'resnet99'"),
    ({"teacher": "missing.pt"}, PipelineError, "--teacher missing.pt: file not found"),
    ({"data": "no/such/pairs"}, PipelineError, "--data no/such/pairs: no such file or folder"),
])
def test_search_errors_are_raised_as_types_and_leave_no_output(tmp_path, teacher, change, error, says):
    task = dataclasses.replace(TOY, load_data=load_pairs)  # the tracker's data loading: its errors are typed too
    job = SearchJob(**{"strategy": "random", "budget": 0.3, "data": tmp_path, **job_fields(tmp_path, teacher)})
    with pytest.raises(error) as e:
        run_search(dataclasses.replace(job, **change), task)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_finetune_errors_are_raised_as_types(tmp_path, teacher):
    fields = job_fields(tmp_path, teacher)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(SpecError, match="not valid JSON"):
        run_finetune(FinetuneJob(spec=bad, **fields), TOY)
    good = tmp_path / "good.json"
    Spec.uniform(toy.TINY, "bin").save(good)
    with pytest.raises(PipelineError, match="--teacher CKPT is required"):
        run_finetune(FinetuneJob(spec=good, **{**fields, "teacher": None}), TOY)
    with pytest.raises(PipelineError, match="not a FinetuneConfig field"):
        run_finetune(FinetuneJob(spec=good, overrides={"lr_max": 1}, **fields), TOY)
    assert not (tmp_path / "out").exists()


def test_jobs_are_frozen(tmp_path):
    job = SearchJob(out=tmp_path, data=tmp_path, budget=0.3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.budget = 0.5


def test_the_mixbin_library_never_imports_the_tracker():
    """Only the CLI and tracking_task.py, where the tracker's task plugs in, may import tracker (or eval)."""
    import ast
    from pathlib import Path

    import mixbin
    found = {}
    for path in sorted(Path(mixbin.__file__).parent.glob("*.py")):
        if path.name in ("cli.py", "tracking_task.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            found.update({f"{path.name}: {n}": n for n in names if n.split(".")[0] in ("tracker", "eval")})
    assert not found, sorted(found)
