"""The DiMP-style tracker's Siamese response through the FFT against slow references: the valid
FFT correlation vs conv2d, and the tracker's FFT head vs the network's conv2d head."""
import torch
import torch.nn.functional as F

from tests.helpers.synthetic import TINY
from tracker.dimp import DiMPTracker, TargetFilter, kernel_spectrum, normalise_features, valid_correlation
from tracker.model import SiamNet


def test_valid_fft_correlation_equals_conv2d():
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(3, 6, 20, 20, generator=g), torch.randn(1, 6, 7, 7, generator=g)
    got = valid_correlation(torch.fft.rfft2(x), kernel_spectrum(v, 20), 20, 7)
    torch.testing.assert_close(got, F.conv2d(x, v)[:, 0], atol=1e-4, rtol=1e-4)


def _frame(trk, xf):
    """A frame state holding only search features (what these two steps read)."""
    f = trk._new_frame(None, None, None)
    f.xf = xf
    return f


def test_fft_siamese_score_equals_the_conv_head():
    torch.manual_seed(0)
    net = SiamNet(TINY).eval()
    with torch.no_grad():
        net.head.bn.running_mean.fill_(0.3)
        net.head.bn.running_var.fill_(2.0)
    trk = DiMPTracker(net)
    g = torch.Generator().manual_seed(1)
    trk.zf = torch.randn(1, 16, 8, 8, generator=g)
    xf = torch.randn(2, 16, 24, 24, generator=g)
    with torch.no_grad():
        got = trk._siamese_score(_frame(trk, xf))
        ref = net.head(trk.zf, xf)[:, 0]
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    # a new exemplar (template update) is not served from the cached spectrum
    trk.zf = trk.zf * 2
    with torch.no_grad():
        torch.testing.assert_close(trk._siamese_score(_frame(trk, xf)), net.head(trk.zf, xf)[:, 0], atol=1e-4, rtol=1e-4)


def test_filter_spectrum_reuses_the_siamese_fft():
    """Without a channel projection the online filter's input is the Siamese head's spectrum over
    the features' RMS; it must equal the plain rfft2 of the normalised features."""
    torch.manual_seed(0)
    trk = DiMPTracker(SiamNet(TINY).eval())
    g = torch.Generator().manual_seed(3)
    trk.zf, trk.proj = torch.randn(1, 16, 8, 8, generator=g), None
    xf = 5 * torch.randn(2, 16, 24, 24, generator=g)
    with torch.no_grad():
        f = _frame(trk, xf)
        trk._siamese_score(f)
        got = trk._filter_spectrum(f)
    ref = torch.fft.rfft2(normalise_features(xf))
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-5)


def test_cached_filter_spectrum_follows_the_filter():
    """apply() keeps the filter's spectrum between optimisations; each new filter is used at once."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, 16, 16, generator=g)
    tf = TargetFilter(5, 6, 16, reg=0.1)
    xh = tf.spectrum(x)
    y, w = torch.rand(3, 11, 11, generator=g), torch.full((3,), 1 / 3)
    for _ in range(3):
        tf.optimise(xh, y, w, iters=2)
        for _ in range(2):  # the second call is served from the cache
            torch.testing.assert_close(tf.apply(xh), F.conv2d(x, tf.f)[:, 0], atol=1e-4, rtol=1e-4)
