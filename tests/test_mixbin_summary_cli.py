"""`mixbin summary` as users run it."""
import json
import subprocess
import sys

from backbones import Spec, create_backbone


def run(*args):
    return subprocess.run([sys.executable, "-m", "mixbin.cli", *args], capture_output=True, text=True)


def test_summary_json_alexnet_and_resnet():
    for name in ("alexnet", "resnet16"):
        r = run("summary", "--backbone", name, "--json")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stdout)
        assert s["backbone"] == name and s["input_size"] == 255 and s["budget"] == 1.0
        assert s["total_fp_macs"] == sum(u["macs"] for u in s["units"]) == s["cost"]
        assert {"name", "macs", "mode"} <= set(s["units"][0])


def test_summary_of_a_spec_shows_its_budget(tmp_path):
    names = create_backbone("resnet16-half").unit_names()
    spec = Spec.build("resnet16-half", {n: "bin" if "layer3" in n else "fp" for n in names})
    spec.save(tmp_path / "spec.json")
    s = json.loads(run("summary", "--spec", str(tmp_path / "spec.json"), "--json").stdout)
    assert abs(s["budget"] - spec.budget) < 1e-12
    assert s["size_bits"] < s["size_bits_all_fp"]
    table = run("summary", "--spec", str(tmp_path / "spec.json")).stdout
    assert "budget: " in table and "layer3.0.conv1" in table


def test_summary_errors_exit_2(tmp_path):
    r = run("summary", "--backbone", "nope")
    assert r.returncode == 2 and "unknown backbone" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "bad.json").write_text("{")
    r = run("summary", "--spec", str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "not valid JSON" in r.stderr


def test_summary_of_a_model_checkpoint_reads_its_spec(tmp_path):
    from tracker.model import SiamNet
    from tracker.zoo import save_model
    names = create_backbone("resnet16-half").unit_names()
    spec = Spec.build("resnet16-half", {n: "bin" if n.startswith("layer2") else "fp" for n in names})
    net = SiamNet("resnet16-half")
    net.backbone.set_modes(spec.units)
    save_model(tmp_path / "m.pt", net, spec, {})
    s = json.loads(run("summary", "--spec", str(tmp_path / "m.pt"), "--json").stdout)
    assert abs(s["budget"] - spec.budget) < 1e-12
    assert {u["name"]: u["mode"] for u in s["units"]} == spec.units
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    r = run("summary", "--spec", str(tmp_path / "junk.pt"))
    assert r.returncode == 2 and "not a torch file, or truncated" in r.stderr and "Traceback" not in r.stderr
