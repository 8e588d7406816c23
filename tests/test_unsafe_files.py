"""No file runs code when b2track loads it; zoo files are checked against their manifest hash.

A pickle whose ``__reduce__`` calls ``os.system("touch MARKER")`` is handed to
every loader the CLIs have (spec, teacher, --init, every resume file, pairs, a
zoo entry, --model by path and by URL). Each must exit 2 with one line on
stderr, and the marker file must never appear.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from backbones import Spec
from backbones.files import (MODEL_FORMAT, RUN_FORMAT, FileFormatError, read_model, read_run, rng_state,
                             safe_load, set_rng_state, write_run)
import test_mixbin_cli
from test_mixbin_toy import TINY as TOY
from test_tracker_kit import TINY, synthetic_sequence, write_video
from tracker import zoo
from tracker.model import SiamNet

ROOT = Path(__file__).resolve().parents[1]


class _RunsShell:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def evil_file(path: Path, marker: Path, layout: str = "model") -> Path:
    """A torch file whose unpickling would run a shell command, shaped like a real b2track file."""
    payload = _RunsShell(marker)
    obj = {"format": MODEL_FORMAT, "spec": payload, "state": {}, "meta": {}} if layout == "model" else \
        {"format": RUN_FORMAT, "model": {"w": payload}, "step": 1, "rng": {}}
    if layout == "pairs":
        obj = {"z": payload, "x": torch.zeros(1), "target": torch.zeros(1), "neg": torch.zeros(1)}
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("unsafe")
    marker = d / "MARKER"
    frames, gt = synthetic_sequence(3, n=4, size=(160, 120), target=(30, 24))
    write_video(d / "clip.avi", frames)
    evil_file(d / "evil.pt", marker)
    evil_file(d / "evil_run.pt", marker, "run")
    (d / "pairs").mkdir()
    evil_file(d / "pairs" / "train.pt", marker, "pairs")
    # A zoo whose manifest lists the evil file with its true hash: the hash check passes, the load must not.
    (d / "zoo").mkdir()
    evil_file(d / "zoo" / "evil.pt", marker)
    zoo.write_manifest(d / "zoo", [{"name": "evil", "file": "evil.pt", "backbone": TINY, "budget": 1.0,
                                    "sha256": zoo.file_sha256(d / "zoo" / "evil.pt")}], "test")
    # A download cache that already holds the evil file for a URL (no network in tests).
    url = "https://example.invalid/model.pt"
    cache = d / "cache" / "models"
    digest = zoo.file_sha256(d / "evil.pt")
    (cache / "urls").mkdir(parents=True)
    (cache / f"{digest}.pt").write_bytes((d / "evil.pt").read_bytes())
    (cache / "urls" / hashlib.sha256(url.encode()).hexdigest()[:32]).write_text(digest)
    for job in ("search", "finetune", "train"):
        (d / job).mkdir()
    evil_file(d / "search" / "search.pt", marker, "run")
    evil_file(d / "finetune" / "finetune.pt", marker, "run")
    evil_file(d / "train" / "last.pt", marker, "run")
    torch.manual_seed(0)
    zoo.save_model(d / "teacher.pt", SiamNet(TOY), Spec.uniform(TOY, "fp"))
    Spec.uniform(TOY, "fp").save(d / "spec.json")
    (d / "pairs_ok").mkdir()  # valid pairs, so that the resume file is the only evil one in those runs
    torch.save(test_mixbin_cli.pairs(8, 0), d / "pairs_ok" / "train.pt")
    return {"dir": d, "marker": marker, "url": url, "init": ",".join(str(int(v)) for v in gt[0])}


def _cases(w):
    d = w["dir"]
    video = ["--video", d / "clip.avi", "--init", w["init"], "--threads", 1]
    mixbin_common = ["--data", d / "pairs", "--batch-size", 2, "--fp32", "--no-progress"]
    return {
        "mixbin summary --spec": ["-m", "mixbin.cli", "summary", "--spec", d / "evil.pt"],
        "mixbin search --teacher": ["-m", "mixbin.cli", "search", "--strategy", "mixbin", "--budget", 0.5,
                                    "--teacher", d / "evil.pt", "--out", d / "out_t", *mixbin_common],
        "mixbin search --data (pairs)": ["-m", "mixbin.cli", "search", "--strategy", "mixbin", "--budget", 0.5,
                                         "--teacher", d / "teacher.pt", "--out", d / "out_p", *mixbin_common],
        "mixbin search resume": ["-m", "mixbin.cli", "search", "--strategy", "mixbin", "--budget", 0.5,
                                 "--teacher", d / "teacher.pt", "--out", d / "search", "--steps", 2,
                                 "--data", d / "pairs_ok", "--batch-size", 2, "--fp32", "--no-progress"],
        "mixbin finetune --teacher": ["-m", "mixbin.cli", "finetune", "--spec", d / "spec.json",
                                      "--teacher", d / "evil.pt", "--out", d / "out_f", *mixbin_common],
        "mixbin finetune resume": ["-m", "mixbin.cli", "finetune", "--spec", d / "spec.json", "--teacher",
                                   d / "teacher.pt", "--out", d / "finetune", "--steps", 2,
                                   "--data", d / "pairs_ok", "--batch-size", 2, "--fp32", "--no-progress"],
        "train --init": [ROOT / "tools" / "train_siamfc.py", "--init", str(d / "evil.pt"), "--out",
                         str(d / "train_fresh"), "--backbone", TINY],
        "train resume": [ROOT / "tools" / "train_siamfc.py", "--out", str(d / "train"), "--backbone", TINY],
        "track --model path": ["-m", "tracker.cli", *video, "--model", d / "evil.pt"],
        "track --model zoo path": ["-m", "tracker.cli", *video, "--model", d / "zoo" / "evil.pt"],
        "track --model URL (cached)": ["-m", "tracker.cli", *video, "--model", w["url"]],
        "track --budget (zoo entry)": ["-m", "tracker.cli", *video, "--budget", 1.0],
    }


CASES = list(_cases({"dir": Path("d"), "url": "u", "init": "i"}))


@pytest.mark.parametrize("case", CASES)
def test_malicious_pickle_never_runs(world, case, capsys):
    d = world["dir"]
    argv = [str(a) for a in _cases(world)[case]]
    if argv[:2] == ["-m", "mixbin.cli"]:  # in-process: the toy backbone is registered only here
        from mixbin.cli import main
        with pytest.raises(SystemExit) as e:
            main(argv[2:])
        code, err = e.value.code, capsys.readouterr().err
    else:
        env = dict(os.environ, B2TRACK_ZOO=str(d / "zoo"), B2TRACK_CACHE=str(d / "cache"),
                   QT_QPA_PLATFORM="offscreen")
        r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=d, timeout=120)
        code, err = r.returncode, r.stderr
    assert not world["marker"].exists(), f"{case}: the pickled command ran"
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (case, code, err[-800:])
    assert len(lines) == 1 and "Traceback" not in err, (case, err[-800:])
    assert "refusing" in lines[0] and "pickled Python objects" in lines[0], lines[0]


def test_tampered_zoo_file_is_refused(tmp_path, monkeypatch):
    torch.manual_seed(0)
    zoo.save_model(tmp_path / "m.pt", SiamNet(TINY), Spec.uniform(TINY, "fp"))
    zoo.write_manifest(tmp_path, [{"name": "m", "file": "m.pt", "backbone": TINY, "budget": 1.0,
                                   "sha256": zoo.file_sha256(tmp_path / "m.pt")}], "test")
    monkeypatch.setenv("B2TRACK_ZOO", str(tmp_path))
    path, entry, digest = zoo.resolve(None, 1.0)
    zoo.load_model(path, sha256=digest)  # untouched: loads
    data = bytearray(path.read_bytes())
    data[-100] ^= 0x01  # one bit, deep in the weights: the file still unpickles
    path.write_bytes(bytes(data))
    with pytest.raises(zoo.ModelError, match="sha256 differs from the zoo manifest"):
        zoo.load_model(path, sha256=digest)
    # --model naming a file of the zoo folder is checked against the manifest too
    assert zoo.resolve(str(path), None)[2] == digest


def test_shipped_zoo_files_match_their_manifest_hashes():
    for e in zoo.load_manifest(zoo.ZOO_DIR):
        assert zoo.file_sha256(e["path"]) == e["sha256"], e["file"]


def test_format_versions(tmp_path):
    torch.save({"format": "b2track-model/2", "state": {}}, tmp_path / "newer.pt")
    with pytest.raises(FileFormatError, match="newer b2track"):
        read_model(tmp_path / "newer.pt")
    torch.save({"format": "other-tool/1"}, tmp_path / "other.pt")
    with pytest.raises(FileFormatError, match="format 'other-tool/1'"):
        read_run(tmp_path / "other.pt")
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "b2track-zoo/7", "entries": []}))
    with pytest.raises(zoo.ModelError, match="newer b2track"):
        zoo.load_manifest(tmp_path)
    # specs: tagged on write, untagged ones (from before the tag) still read, newer ones refused
    from backbones import SpecError
    d = Spec.uniform(TOY, "fp").to_dict()
    assert d["format"] == "b2track-spec/1" and Spec.from_dict(d).units == d["units"]
    assert Spec.from_dict({k: v for k, v in d.items() if k != "format"}).budget == d["budget"]
    with pytest.raises(SpecError, match="newer b2track"):
        Spec.from_dict({**d, "format": "b2track-spec/2"})
    # pair shards likewise
    from tracker.train.data.shards import ShardDataset
    (tmp_path / "pairs" / "shard_00000").mkdir(parents=True)
    (tmp_path / "pairs" / "shard_00000" / "shard.json").write_text(json.dumps({"format": "b2track-pairs/9", "count": 1}))
    with pytest.raises(ValueError, match="newer b2track"):
        ShardDataset(tmp_path / "pairs")


def test_run_file_roundtrip_restores_every_rng(tmp_path):
    """RNG state stored as tensors: after restoring, all three generators repeat the same draws."""
    import random

    import numpy as np
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    write_run(tmp_path / "r.pt", {"w": torch.ones(2)}, 5, optimizer={"state": {}, "param_groups": []})
    want = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.standard_normal())
    st = read_run(tmp_path / "r.pt")  # weights_only: only tensors and plain types inside
    set_rng_state(st["rng"])
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.standard_normal())
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1]) and want[2:] == got[2:]
    assert st["step"] == 5 and torch.equal(st["model"]["w"], torch.ones(2))
    assert not list(tmp_path.glob("*.tmp"))


def test_run_files_written_before_the_format_tag_still_resume(tmp_path):
    """Old resume files held numpy's RNG state as an ndarray: that (and only plain arrays) still loads."""
    import random

    import numpy as np
    old = {"model": {"w": torch.zeros(1)}, "step": 3,
           "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}}
    torch.save(old, tmp_path / "old.pt")
    st = read_run(tmp_path / "old.pt")
    set_rng_state(st["rng"])
    assert st["step"] == 3 and set(rng_state()) == {"torch", "numpy", "python"}


def test_interrupted_download_leaves_nothing_loadable(tmp_path, monkeypatch):
    import gdown
    monkeypatch.setenv("B2TRACK_CACHE", str(tmp_path))

    def half_then_fail(url, output, **kw):
        Path(output).write_bytes(b"PK\x03\x04 half a file")
        raise ConnectionError("connection reset by peer")
    monkeypatch.setattr(gdown, "download", half_then_fail)
    with pytest.raises(zoo.ModelError, match="could not download model .* connection reset"):
        zoo.fetch("https://example.invalid/m.pt")
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []

    torch.manual_seed(0)
    zoo.save_model(tmp_path / "src.pt", SiamNet(TINY), Spec.uniform(TINY, "fp"))
    calls = []

    def copy(url, output, **kw):
        calls.append(url)
        Path(output).write_bytes((tmp_path / "src.pt").read_bytes())
        return output
    monkeypatch.setattr(gdown, "download", copy)
    path, digest = zoo.fetch("https://example.invalid/m.pt")
    assert path.name == f"{digest}.pt" and zoo.file_sha256(path) == digest
    assert zoo.fetch("https://example.invalid/m.pt") == (path, digest) and len(calls) == 1  # cached
    assert safe_load(path)["format"] == MODEL_FORMAT
