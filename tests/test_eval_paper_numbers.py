"""`track-eval score` reproduces ../shared/data/paper_numbers.md from the published raw results.

The reference numbers are typed in here (not parsed from the file) so that they stay an
independent check.
"""
import json
from pathlib import Path

import pytest

from eval.cli import main

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
pytestmark = pytest.mark.skipif(not (DATA / "raw_results").is_dir(),
                                reason=f"shared raw results not found at {SHARED}")

TOL = 0.0005

OTB = {  # tracker: (success AUC, precision@20)
    "SiamFC": (0.5865, 0.7717),
    "SiamRPN": (0.6317, 0.8503),
    "DaSiamRPN": (0.6578, 0.8807),
    "SiamRPN++": (0.6953, 0.9054),
    "MDNet": (0.6776, 0.9094),
    "ATOM": (0.6668, 0.8794),
}
LASOT = {  # tracker: (success AUC, precision@20, normalized precision@0.20)
    "DiMP50": (0.5708, 0.5690, 0.6519),
    "ATOM": (0.5143, 0.5054, 0.5768),
}


def score_json(capsys, *args):
    assert main(["score", *args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"dataset", "trackers"}
    return out


def test_otb100_paper_numbers(capsys):
    out = score_json(capsys, "--dataset", "otb", "--anno", str(DATA / "otb100_anno"),
                     "--results", str(DATA / "raw_results" / "OTB100"))
    assert out["dataset"] == "otb" and set(out["trackers"]) == set(OTB)
    for name, (auc, p20) in OTB.items():
        got = out["trackers"][name]
        assert set(got) == {"auc", "precision", "norm_precision", "n_seqs"}
        assert got["n_seqs"] == 100
        assert got["auc"] == pytest.approx(auc, abs=TOL), name
        assert got["precision"] == pytest.approx(p20, abs=TOL), name


def test_lasot_paper_numbers(capsys):
    out = score_json(capsys, "--dataset", "lasot", "--anno", str(DATA / "lasot_anno"),
                     "--results", str(DATA / "raw_results" / "LaSOT"))
    assert set(out["trackers"]) == set(LASOT)
    for name, (auc, p20, np20) in LASOT.items():
        got = out["trackers"][name]
        assert got["n_seqs"] == 280
        assert got["auc"] == pytest.approx(auc, abs=TOL), name
        assert got["precision"] == pytest.approx(p20, abs=TOL), name
        assert got["norm_precision"] == pytest.approx(np20, abs=TOL), name


def test_wrong_conventions_are_measurably_off(capsys):
    # The non-official options exist, and they move the numbers the way paper_numbers.md warns.
    out = score_json(capsys, "--dataset", "otb", "--anno", str(DATA / "otb100_anno"),
                     "--results", str(DATA / "raw_results" / "OTB100"), "--trackers", "SiamFC",
                     "--convention", "lasot")
    assert abs(out["trackers"]["SiamFC"]["precision"] - 0.7717) > TOL
