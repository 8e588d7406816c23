"""Zoo checkpoints (save/load, errors), manifest selection, and the packed-kernel attachment."""
from __future__ import annotations

import json

import pytest
import torch

from backbones import Spec
from backbones.files import MODEL_FORMAT
from test_tracker_kit import TINY
from tracker import api, zoo
from tracker.model import SiamNet


def _entries(*budgets):
    return [{"name": f"m{b}", "file": f"m{b}.pt", "budget": b} for b in budgets]


def test_save_load_roundtrip_binary_units(tmp_path):
    torch.manual_seed(0)
    net = SiamNet(TINY).eval()
    spec = Spec.build(TINY, {"c1": "fp", "c2": "bin", "c3": "bin"})
    net.backbone.set_modes(spec.units)
    path = zoo.save_model(tmp_path / "m.pt", net, spec, {"auc": 0.5})
    loaded, spec2, meta = zoo.load_model(path)
    assert spec2.to_dict() == spec.to_dict() and meta == {"auc": 0.5}
    assert loaded.backbone.modes() == spec.units and not loaded.training
    x = torch.rand(2, 3, 127, 127) * 255
    with torch.no_grad():
        # FP tensors travel in fp16, binary weights as signs + scale: same binary forward, close FP one
        assert torch.allclose(net.embed(x), loaded.embed(x), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("content, message", [
    (b"", "not a torch file, or truncated"),
    (b"PK\x03\x04 not really a zip", "not a torch file, or truncated"),
])
def test_corrupt_files(tmp_path, content, message):
    p = tmp_path / "bad.pt"
    p.write_bytes(content)
    with pytest.raises(zoo.ModelError, match=message):
        zoo.load_model(p)


def test_incompatible_files(tmp_path):
    torch.save({"model": {}}, tmp_path / "train.pt")  # a training checkpoint, not a zoo one
    with pytest.raises(zoo.ModelError, match="training checkpoint without a spec"):
        zoo.load_model(tmp_path / "train.pt")
    bad_spec = {"format": MODEL_FORMAT, "spec": {"backbone": "nope"}, "state": {}}
    torch.save(bad_spec, tmp_path / "spec.pt")
    with pytest.raises(zoo.ModelError, match="incompatible model.*lacks field"):
        zoo.load_model(tmp_path / "spec.pt")
    good = {"format": MODEL_FORMAT, "spec": Spec.uniform(TINY, "fp").to_dict(), "state": {"x": torch.zeros(1)}}
    torch.save(good, tmp_path / "state.pt")
    with pytest.raises(zoo.ModelError, match="weights do not fit"):
        zoo.load_model(tmp_path / "state.pt")
    with pytest.raises(zoo.ModelError, match="not found"):
        zoo.load_model(tmp_path / "missing.pt")


def test_select_closest_without_exceeding():
    e = _entries(1.0, 0.5, 0.3, 0.15)
    assert zoo.select(0.3, e)["budget"] == 0.3
    assert zoo.select(0.4, e)["budget"] == 0.3
    assert zoo.select(1.0, e)["budget"] == 1.0
    assert zoo.select(0.30000001, _entries(0.3000000001))["budget"] == 0.3000000001  # float noise of a spec budget
    with pytest.raises(zoo.ModelError, match="no zoo model at or below budget 0.1"):
        zoo.select(0.1, e)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        zoo.select(1.2, e)
    tie = [{"file": "a", "budget": 0.3, "eval": {"auc": 0.4}}, {"file": "b", "budget": 0.3, "eval": {"auc": 0.5}}]
    assert zoo.select(0.3, tie)["file"] == "b"


def test_manifest_folder_from_environment(tmp_path, monkeypatch):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": zoo.MANIFEST_FORMAT, "entries": _entries(0.25)}))
    monkeypatch.setenv("B2TRACK_ZOO", str(tmp_path))
    entry = zoo.select(0.3)
    assert entry["path"] == str(tmp_path / "m0.25.pt")
    (tmp_path / "manifest.json").write_text("{oops")
    with pytest.raises(zoo.ModelError, match="not valid JSON"):
        zoo.load_manifest()


def test_select_within_a_backbone_family(tmp_path, monkeypatch):
    mixed = [{"file": f"{bb}-{b}.pt", "backbone": bb, "budget": b}
             for bb, bs in (("resnet16-half", (1.0, 0.3)), ("b2net", (1.0, 0.28, 0.14))) for b in bs]
    assert zoo.select(0.3, mixed, backbone="b2net")["file"] == "b2net-0.28.pt"
    assert zoo.select(0.3, mixed, backbone="resnet16-half")["file"] == "resnet16-half-0.3.pt"
    assert zoo.select(0.3, mixed)["file"] == "resnet16-half-0.3.pt"  # no family named: any entry
    with pytest.raises(zoo.ModelError, match="no zoo model with backbone 'alexnet'.*b2net, resnet16-half"):
        zoo.select(0.3, mixed, backbone="alexnet")
    # From the zoo folder, the manifest's default_backbone decides when none is named.
    zoo.write_manifest(tmp_path, mixed, "test", default_backbone="b2net")
    monkeypatch.setenv("B2TRACK_ZOO", str(tmp_path))
    assert zoo.select(0.2)["file"] == "b2net-0.14.pt"
    with pytest.raises(zoo.ModelError, match="at or below budget 0.2"):
        zoo.select(0.2, backbone="resnet16-half")


def test_shipped_manifest_is_valid():
    for e in zoo.load_manifest(zoo.ZOO_DIR):
        assert 0 < float(e["budget"]) <= 1 and e["file"].endswith(".pt")


def test_packed_kernel_attachment_matches_torch(monkeypatch):
    torch.manual_seed(1)
    net = SiamNet(TINY).eval()
    spec = Spec.build(TINY, {"c1": "fp", "c2": "bin", "c3": "bin"})
    net.backbone.set_modes(spec.units)
    x = torch.rand(1, 3, 255, 255) * 255
    with torch.no_grad():
        ref = net.embed(x)
        path = api.attach_kernels(net, spec)
        got = net.embed(x.contiguous(memory_format=torch.channels_last))
    assert path in ("packed", "torch")
    assert torch.allclose(ref, got, atol=1e-3, rtol=1e-3)
    fp = Spec.uniform(TINY, "fp")
    assert api.attach_kernels(SiamNet(TINY).eval(), fp) == "torch"  # nothing binary to pack
