"""The online filter's channel projection (filter_channels): principal directions kept, and the
tracker with all channels (0) runs the unprojected filter as before."""
import numpy as np
import torch

from tests.helpers.synthetic import TINY
from tracker.dimp import DiMPTracker, principal_projection, project_channels
from tracker.model import SiamNet


def test_projection_keeps_the_leading_principal_directions():
    g = torch.Generator().manual_seed(2)
    # 12 channels that live in a 3-D subspace plus a little noise
    basis = torch.linalg.qr(torch.randn(12, 3, generator=g))[0]
    coef = torch.randn(5, 3, 10, 10, generator=g) * torch.tensor([5.0, 3.0, 2.0])[None, :, None, None]
    x = torch.einsum("cj,njhw->nchw", basis, coef) + 0.01 * torch.randn(5, 12, 10, 10, generator=g)
    p = principal_projection(x, 3)
    assert p.shape == (3, 12)
    torch.testing.assert_close(p @ p.T, torch.eye(3), atol=1e-5, rtol=0)  # orthonormal rows
    back = torch.einsum("oc,nohw->nchw", p, project_channels(x, p))
    assert float((back - x).pow(2).sum() / x.pow(2).sum()) < 1e-4  # the subspace is kept
    assert principal_projection(x, 0) is None and principal_projection(x, 12) is None
    assert project_channels(x, None) is x


def test_tracker_with_all_channels_has_no_projection():
    torch.manual_seed(0)
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    for channels, want in ((0, None), (4, 4)):
        trk = DiMPTracker(SiamNet(TINY).eval(), filter_channels=channels)
        trk.init(frame, (60, 40, 30, 24))
        trk.update(np.roll(frame, 2, axis=1))
        assert (trk.proj is None) if want is None else trk.proj.shape[0] == want
        assert trk.filter.f.shape[1] == (trk.zf.shape[1] if want is None else want)
