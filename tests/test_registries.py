"""Tracker, dataset and strategy names come from one registry each: the CLIs' choices and help follow it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tracker.cli_common import CLIError
from tracker.registry import TRACKERS, TrackerEntry, describe_trackers, get_tracker, list_trackers

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def wide_help(monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # help lines unwrapped: no word split at a hyphen


def _choices(parser, option):
    return next(a for a in parser._actions if option in a.option_strings).choices


def _sub(parser, name):
    return next(a for a in parser._actions if a.dest == "command").choices[name]


def test_every_registered_tracker_builds_from_its_import_path():
    from tracker.siamfc import SiamFCTracker
    assert list_trackers() == sorted(TRACKERS) and {"siamfc", "dimp"} <= set(TRACKERS)
    for entry in TRACKERS.values():
        cls = entry.load()
        assert issubclass(cls, SiamFCTracker) and hasattr(cls, "Params"), entry
        assert entry.help and "\n" not in entry.help
    with pytest.raises(ValueError, match="unknown tracker 'kcf'; choose from dimp, siamfc"):
        get_tracker("kcf")


def test_track_and_track_eval_take_tracker_choices_and_help_from_the_registry(monkeypatch):
    from eval import cli as eval_cli
    from eval.trackers import PEERS
    from tracker import cli as track_cli
    monkeypatch.setitem(TRACKERS, "toy", TrackerEntry("toy", "a registered toy tracker", "tracker.siamfc:SiamFCTracker"))
    track = track_cli.build_parser()
    assert list(_choices(track, "--tracker")) == list_trackers() and "toy" in list_trackers()
    assert "a registered toy tracker" in track.format_help()
    assert track.parse_args(["--tracker", "toy"]).tracker == "toy"
    run = _sub(eval_cli.build_parser(), "run")
    assert list(_choices(run, "--tracker")) == [*PEERS, *list_trackers()]
    help_text = run.format_help()
    assert all(p.help in help_text for p in PEERS.values()) and "a registered toy tracker" in help_text
    with pytest.raises(CLIError, match="invalid choice: 'nope'"):
        track.parse_args(["--tracker", "nope"])
    assert "toy: a registered toy tracker" in describe_trackers()


def test_track_eval_takes_dataset_choices_from_the_registry(monkeypatch):
    from eval import cli as eval_cli
    from eval.datasets import DATASETS, Dataset, load_dataset
    from eval.metrics import CONVENTIONS
    assert all(d.convention in CONVENTIONS for d in DATASETS.values())
    monkeypatch.setitem(DATASETS, "mine", Dataset("mine", "my own layout", lambda root, **kw: [root, kw], "otb"))
    parser = eval_cli.build_parser()
    for command in ("run", "score", "report"):
        assert list(_choices(_sub(parser, command), "--dataset")) == list(DATASETS)
    assert "my own layout" in _sub(parser, "score").format_help()
    assert load_dataset("mine", "here", split="val") == ["here", {"split": "val"}]  # the registered loader runs


def test_mixbin_search_takes_strategy_choices_from_the_registry():
    from mixbin.cli import build_parser
    from mixbin.strategies import STRATEGIES
    search = _sub(build_parser(), "search")
    assert list(_choices(search, "--strategy")) == list(STRATEGIES)
    help_text = search.format_help()
    assert all(s.help in help_text for s in STRATEGIES.values())


def test_tracker_names_and_eval_parser_need_no_torch():
    code = ("import sys, eval.cli, tracker.registry\n"
            "eval.cli.build_parser()\n"
            "print(sorted({'torch', 'cv2', 'backbones', 'mixbin'} & {m.split('.')[0] for m in sys.modules}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
