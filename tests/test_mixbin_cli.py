"""`mixbin search` / `mixbin finetune` on the tiny backbone with synthetic pairs, and their errors."""
import json
import subprocess
import sys

import pytest
import torch

from backbones import Spec
from mixbin.cli import main
from mixbin.io import read_model

import test_mixbin_toy
from test_mixbin_toy import one_thread  # noqa: F401  (autouse fixture)

TINY = test_mixbin_toy.TINY


def pairs(n, seed):
    """SiamFC-like pairs at toy scale: the 16x16 exemplar pasted into the 32x32 search image."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(0, 255, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    x = torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    t = torch.zeros(n, 2)
    for i in range(n):
        cy, cx = (int(v) for v in torch.randint(4, 13, (2,), generator=g))
        x[i, :, cy:cy + 16, cx:cx + 16] = z[i]
        t[i, 0], t[i, 1] = cy + 7.5 - 15.5, cx + 7.5 - 15.5
    return {"z": z, "x": x, "target": t, "neg": torch.zeros(n, dtype=torch.bool)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from tracker.model import SiamNet
    root = tmp_path_factory.mktemp("cli")
    for name, seed in (("dataA", 0), ("dataB", 10)):
        (root / name).mkdir()
        torch.save(pairs(48, seed), root / name / "train.pt")
        torch.save(pairs(8, seed + 1), root / name / "val.pt")
    torch.manual_seed(0)
    torch.save({"model": SiamNet(TINY).state_dict(), "backbone": TINY, "step": 0}, root / "teacher.pt")
    return root


def run_main(*argv):
    main([str(a) for a in argv])


def common(setup, data="dataA"):
    return ["--teacher", setup / "teacher.pt", "--data", setup / data, "--batch-size", 4, "--val-batches", 1,
            "--fp32", "--no-progress"]


def test_search_then_transfer_finetune(setup, capsys):
    out = setup / "mixbin"
    run_main("search", "--strategy", "mixbin", "--budget", 0.3, "--out", out, "--steps", 12, *common(setup))
    for f in ("spec.json", "model.pt", "log.jsonl", "search.pt"):
        assert (out / f).is_file(), f
    spec = Spec.load(out / "spec.json")
    assert spec.backbone == TINY and 0.28 <= spec.budget <= 0.3
    assert spec.provenance["strategy"] == "mixbin" and spec.provenance["data"].endswith("dataA")
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("expected_cost" in r for r in logs) and logs[-1].get("event") == "selected"
    run_main("search", "--strategy", "mixbin", "--budget", 0.3, "--out", out, "--steps", 12, *common(setup))
    assert "already done" in capsys.readouterr().out

    # Transfer: the spec found on data A, fine-tuned on data B.
    ft = setup / "ft"
    run_main("finetune", "--spec", out / "spec.json", "--out", ft, "--steps", 6, *common(setup, "dataB"))
    res = json.loads((ft / "result.json").read_text())
    assert res["steps"] == 6 and res["data"].endswith("dataB") and "val_loss" in res and "val_peak8" in res
    state, spec_d, meta = read_model(ft / "model.pt")
    assert spec_d["units"] == spec.units and meta["stage"] == "finetune"
    from tracker.model import SiamNet
    SiamNet(TINY).load_state_dict(state)
    run_main("finetune", "--spec", out / "spec.json", "--out", ft, "--steps", 6, *common(setup, "dataB"))
    assert "already done" in capsys.readouterr().out


def test_search_prune_and_baselines(setup):
    for strategy in ("prune", "random", "first-last"):
        out = setup / strategy
        run_main("search", "--strategy", strategy, "--budget", 0.3, "--out", out, "--steps", 6, *common(setup))
        spec = Spec.load(out / "spec.json")
        if strategy == "prune":
            assert 0.28 <= spec.provenance["pruned_budget"] <= 0.3 and spec.provenance["kept_channels"]
            state, _, _ = read_model(out / "model.pt")
            # Pruned channels are baked in: their BatchNorm affine is zero.
            from mixbin.prune import masks_from_spec
            from tracker.model import SiamNet
            kept = masks_from_spec(spec, SiamNet(TINY).backbone)["conv2"]
            w = state["backbone.conv2.bn.weight"]
            assert torch.equal(w != 0, kept)
        else:
            assert 0.28 <= spec.budget <= 0.3


def error_of(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        run_main(*argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("mixbin: error"), err
    return err[0]


def test_errors_are_one_line_and_exit_2(setup, capsys, tmp_path):
    out = tmp_path / "o"
    d = ["--data", setup / "dataA", "--out", out]
    assert "not found" in error_of(capsys, "search", "--budget", 0.3, "--teacher", tmp_path / "nope.pt", *d)
    assert "(0, 1]" in error_of(capsys, "search", "--budget", 0, "--teacher", setup / "teacher.pt", *d)
    assert "(0, 1]" in error_of(capsys, "search", "--budget", 1.5, "--teacher", setup / "teacher.pt", *d)
    assert "all-binary" in error_of(capsys, "search", "--budget", 0.01, "--teacher", setup / "teacher.pt", *d)
    assert "--budget" in error_of(capsys, "search", "--strategy", "random", "--teacher", setup / "teacher.pt", *d)
    assert "invalid choice" in error_of(capsys, "search", "--strategy", "magic", "--budget", 0.3, *d)
    assert "required" in error_of(capsys, "search", "--budget", 0.3)
    assert "no such" in error_of(capsys, "search", "--budget", 0.3, "--teacher", setup / "teacher.pt",
                                 "--data", tmp_path / "nodata", "--out", out)
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert "not valid JSON" in error_of(capsys, "finetune", "--spec", bad, "--teacher", setup / "teacher.pt", *d)
    bad.write_text(json.dumps({"backbone": TINY, "input_size": 32, "units": {"conv1": "fp"}, "budget": 1.0}))
    assert "misses unit" in error_of(capsys, "finetune", "--spec", bad, "--teacher", setup / "teacher.pt", *d)
    good = tmp_path / "good.json"
    Spec.uniform(TINY, "bin").save(good)
    assert "--teacher" in error_of(capsys, "finetune", "--spec", good, *d)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    assert "teacher" in error_of(capsys, "finetune", "--spec", good, "--teacher", junk, *d)
    assert not out.exists()


def test_error_exit_status_of_the_real_command(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mixbin.cli", "search", "--backbone", "resnet16-half", "--budget", "0.3",
                        "--teacher", str(tmp_path / "missing.pt"), "--data", str(tmp_path), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
