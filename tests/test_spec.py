"""Spec JSON round trip and clear errors for bad specs."""
import json

import pytest

from backbones import Spec, SpecError, create_backbone


def _half_spec():
    names = create_backbone("resnet16-half").unit_names()
    return Spec.build("resnet16-half", {n: ("fp" if i % 2 else "bin") for i, n in enumerate(names)},
                      provenance={"strategy": "hand", "seed": 3})


def test_round_trip(tmp_path):
    spec = _half_spec()
    spec.save(tmp_path / "s.json")
    back = Spec.load(tmp_path / "s.json")
    assert back == spec and 0 < back.budget < 1


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["units"].__setitem__("layer9.conv", "fp"), "unknown unit"),
    (lambda d: d["units"].pop("neck"), "misses unit"),
    (lambda d: d["units"].__setitem__("neck", "int4"), "mode must be"),
    (lambda d: d.__setitem__("budget", d["budget"] + 0.01), "does not match"),
    (lambda d: d.__setitem__("backbone", "vgg99"), "unknown backbone"),
    (lambda d: d.pop("units"), "lacks field"),
])
def test_bad_specs_raise_clear_errors(mutate, message):
    d = json.loads(_half_spec().to_json())
    mutate(d)
    with pytest.raises(SpecError, match=message):
        Spec.from_dict(d)


def test_unreadable_files(tmp_path):
    with pytest.raises(SpecError, match="not found"):
        Spec.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        Spec.load(tmp_path / "bad.json")


def test_uniform_specs():
    assert Spec.uniform("alexnet", "fp").budget == 1.0
    assert Spec.uniform("alexnet", "bin").budget == 1 / 64


def test_compressed_state_gives_the_same_binary_forward():
    import torch
    from backbones.checkpoint import compress_state, decompress_state

    torch.manual_seed(0)
    model = create_backbone("resnet16-half").eval()
    names = model.unit_names()
    modes = {n: ("bin" if i % 3 else "fp") for i, n in enumerate(names)}
    model.set_modes(modes)
    x = torch.randn(1, 3, 127, 127)
    ref = model(x)
    packed = compress_state(model.state_dict(), modes)
    bits = sum(v.numel() * v.element_size() for k, v in packed.items() if k.endswith("weight_bits"))
    nbin = sum(model.units()[n].weight.numel() for n in names if modes[n] == "bin")
    assert bits == sum((model.units()[n].weight.numel() + 7) // 8 for n in names if modes[n] == "bin") <= nbin / 8 + len(names)
    clone = create_backbone("resnet16-half").eval()
    clone.set_modes(modes)
    clone.load_state_dict(decompress_state(packed))
    # FP units were stored in fp16: tolerance of fp16 weights through 16 units.
    torch.testing.assert_close(clone(x), ref, rtol=2e-2, atol=2e-2)
