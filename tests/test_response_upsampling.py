"""Response upsampling as a matrix product against F.interpolate (the slow reference)."""
import pytest
import torch
import torch.nn.functional as F

from tests.helpers.synthetic import TINY
from tracker.model import SiamNet
from tracker.siamfc import SiamFCTracker


@pytest.mark.parametrize("n, up", [(17, 16), (49, 16), (9, 8)])
def test_matrix_upsampling_equals_bicubic_interpolate(n, up):
    trk = SiamFCTracker(SiamNet(TINY).eval(), response_up=up)
    trk._up_matrices = {}
    g = torch.Generator().manual_seed(n)
    maps = torch.randn(3, n, n, generator=g).cumsum(-1)  # smooth-ish, with a trend, like responses
    got = trk._upsample(maps)
    ref = F.interpolate(maps[:, None], scale_factor=up, mode="bicubic", align_corners=False)[:, 0]
    assert got.shape == ref.shape
    assert float((got - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    # the peak the tracker reads lands on the same upsampled pixel
    for a, b in zip(got, ref):
        assert int(torch.argmax(a)) == int(torch.argmax(b))
