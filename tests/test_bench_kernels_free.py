"""tools/bench_kernels.py's Amdahl model: binary units replaced by their cached outputs.

Fed the input those outputs were recorded on, the model with free binary units must give the
B2NN's own output (fused b2net blocks included), so its time is the network without them."""
import pytest
import torch

from backbones import create_backbone, kernels
from backbones.export import export_backbone
from tool_import import load_tool

bench = load_tool("bench_kernels")


@pytest.mark.skipif(kernels.kernel_path() != "packed", reason="no compiled kernel: no packed units to free")
@pytest.mark.parametrize("name", ["b2net", "resnet16-half"])
def test_free_units_reproduce_the_b2nn_output(name):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 95, 95)
    base = create_backbone(name).eval()
    spec = bench.greedy_spec(name, 0.3, 95)
    assert spec.binary_units()
    base.set_modes(spec.units)
    b2 = export_backbone(base, "nhwc")
    free = bench.amdahl_model(b2, spec, x)
    n_free = sum(isinstance(m, bench.FreeUnit) for m in free.modules())
    assert n_free == len(spec.binary_units())
    with torch.no_grad():
        assert torch.equal(free(x), b2(x))
