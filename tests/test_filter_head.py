"""The differentiable online filter (tracker/train/filter_head.py) and its loss in the pair task.

References are independent of the code under test: the filter against a dense solve of the
unfolded normal equations and against the tracker's own CG (TargetFilter), labels against the
tracker's _label, gradients against finite differences."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tests.helpers.synthetic import TINY, descend, pair_batch
from tests.helpers.threads import one_thread  # noqa: F401  (autouse fixture)
from tracker.dimp import DiMPTracker, TargetFilter
from tracker.model import SiamNet
from tracker.ridge_filter import FILTER_REG, LABEL_SIGMA, gaussian_label, normalise_features
from tracker.train import PairTask, TrainConfig
from tracker.train.filter_head import (correlate, correlate_adjoint, filter_loss, filter_response, fit_filter,
                                       sample_spectra, target_labels)
from tracker.train.losses import balanced_logistic_loss, siamfc_labels
from tracker.train.task import exemplar_canvas


def _problem(b, kk, c, n, k, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, kk, c, n, n, generator=g, dtype=dtype)
    r = n - k + 1
    centres = torch.randint(-2, 3, (b * kk, 2), generator=g).tolist()
    labels = torch.stack([gaussian_label(r, ctr, 1.0) for ctr in centres]).to(dtype).reshape(b, kk, r, r)
    weights = torch.softmax(torch.randn(b, kk, generator=g, dtype=dtype), dim=1)
    return feats, labels, weights


def test_batched_correlation_and_adjoint_match_conv2d():
    feats, _, _ = _problem(2, 3, 4, 12, 5, torch.float64)
    g = torch.Generator().manual_seed(1)
    f = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)
    xs = sample_spectra(feats)
    xn = feats / feats.pow(2).mean(dim=(2, 3, 4), keepdim=True).sqrt()  # RMS per sample, by hand
    for i in range(2):
        torch.testing.assert_close(correlate(xs, f)[i], F.conv2d(xn[i], f[i:i + 1])[:, 0])
    r = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    for i in range(2):
        ref = torch.nn.grad.conv2d_weight(xn[i], (1, 4, 5, 5), r[i][:, None])[0]
        torch.testing.assert_close(correlate_adjoint(xs, r, 5)[i], ref)


def test_filter_equals_a_dense_linear_solve():
    """Run to convergence, the unrolled CG is the ridge solution of each problem: (A^T W A + lambda I) f = A^T W y
    with A the unfolded patches of the normalised features and lambda = reg * R^2, solved densely in float64."""
    b, kk, c, n, k, reg = 2, 3, 2, 7, 3, 0.05
    feats, labels, weights = _problem(b, kk, c, n, k, torch.float64, seed=2)
    f = fit_filter(sample_spectra(feats), labels, weights, k, reg=reg, iters=4 * c * k * k)
    r = n - k + 1
    for i in range(b):
        a = F.unfold(normalise_features(feats[i]), k).transpose(1, 2)  # (K, R*R, C*k*k)
        h = sum(weights[i, j] * a[j].T @ a[j] for j in range(kk)) + reg * r * r * torch.eye(c * k * k, dtype=torch.float64)
        rhs = sum(weights[i, j] * a[j].T @ labels[i, j].reshape(-1) for j in range(kk))
        # to the tracker's stopping rule: CG stops once the squared residual is below 1e-12
        torch.testing.assert_close(f[i].reshape(-1), torch.linalg.solve(h, rhs), atol=1e-7, rtol=1e-5)


def test_unrolled_cg_is_the_trackers_first_frame_filter():
    """Same samples, equal weights, 15 steps from zero: the training filter equals the tracker's TargetFilter."""
    kk, c, n, k = 6, 8, 16, 5
    feats, labels, _ = _problem(1, kk, c, n, k, torch.float32, seed=3)
    weights = torch.full((kk,), 1.0 / kk)
    tf = TargetFilter(c, k, n, reg=FILTER_REG)
    tf.optimise(tf.spectrum(normalise_features(feats[0])), labels[0], weights, iters=15)
    got = fit_filter(sample_spectra(feats), labels, weights, k, reg=FILTER_REG, iters=15)
    torch.testing.assert_close(got, tf.f, atol=1e-5, rtol=1e-3)
    # and a test frame's response is the tracker's apply()
    test = torch.randn(1, c, n, n, generator=torch.Generator().manual_seed(4))
    resp = filter_response(feats, labels, test, k, weights=weights)
    torch.testing.assert_close(resp, tf.apply(tf.spectrum(normalise_features(test))), atol=1e-5, rtol=1e-3)


def test_gradcheck_in_double():
    feats, labels, weights = _problem(1, 2, 2, 6, 3, torch.float64, seed=5)
    test = torch.randn(1, 2, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    feats.requires_grad_(True)
    test.requires_grad_(True)

    def fn(tr, te):
        return filter_response(tr, labels, te, 3, weights=weights, reg=0.05, iters=4)

    assert torch.autograd.gradcheck(fn, (feats, test), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_labels_are_the_trackers():
    """target_labels equals DiMPTracker._label for the same target (size in the image, crop extent)."""
    trk = DiMPTracker(SiamNet(TINY).eval())
    trk.size, trk.x_extent, trk.resp_size = np.array([40.0, 90.0]), 300.0, 17
    off = np.array([12.0, -21.0])
    tgt_px = float(np.sqrt(40.0 * 90.0) * 255 / 300.0)
    got = target_labels(torch.tensor(off[None], dtype=torch.float32), torch.tensor([tgt_px]), 17, trk.stride, LABEL_SIGMA)
    torch.testing.assert_close(got, trk._label(off), atol=1e-6, rtol=1e-5)
    small = target_labels(torch.zeros(1, 2), torch.tensor([2.0]), 17, 8, LABEL_SIGMA)  # sigma floor 0.5 cell
    torch.testing.assert_close(small[0], gaussian_label(17, (0, 0), 0.5))


def test_filter_loss_by_hand():
    lab = torch.zeros(2, 5, 5)
    lab[0, 2, 2] = 1.0
    energy = torch.tensor([1.0, 1.0])
    assert float(filter_loss(torch.zeros(2, 5, 5), lab, energy)) == 0.5  # 1 for the positive, 0 for the all-zero label
    assert float(filter_loss(lab.clone(), lab, energy)) == 0.0
    resp = torch.zeros(2, 5, 5)
    resp[1, 0, 0] = 3.0  # a response on a negative costs its square
    assert float(filter_loss(resp, lab, energy)) == (1.0 + 9.0) / 2


def test_exemplar_canvas_centres_and_mirrors_the_exemplar():
    z = torch.arange(2 * 3 * 127 * 127, dtype=torch.float32).reshape(2, 3, 127, 127)
    c = exemplar_canvas(z, 255)
    assert c.shape == (2, 3, 255, 255)
    assert torch.equal(c[..., 64:191, 64:191], z)
    assert torch.equal(c[..., 64:191, 63], z[..., :, 1]) and torch.equal(c[..., 0, 64:191], z[..., 64, :])


def test_default_leaves_the_siamese_loss_unchanged():
    assert TrainConfig().filter_loss_weight == 0.0 and PairTask().filter_weight == 0.0
    torch.manual_seed(0)
    net = SiamNet(TINY)
    batch = pair_batch()
    terms, resp, target, neg = PairTask().terms(net, batch)
    assert set(terms) == {"siamese_loss"}
    with torch.no_grad():
        ref_resp = net(batch["z"].float(), batch["x"].float())
    ref = balanced_logistic_loss(ref_resp, siamfc_labels(target, neg, ref_resp.shape[-1], net.stride))
    assert torch.equal(PairTask().loss(net, batch)[0].detach(), ref)
    # on, the total is the Siamese term plus the weighted filter term
    terms, _, _, _ = PairTask(filter_weight=2.0).terms(net, batch)
    assert set(terms) == {"siamese_loss", "filter_loss"} and float(terms["filter_loss"].detach()) > 0
    torch.testing.assert_close(PairTask(filter_weight=2.0).total(terms), terms["siamese_loss"] + 2 * terms["filter_loss"])


def test_training_steps_lower_the_filter_loss():
    """A few Adam steps on the filter loss alone (tiny backbone, a fixed batch of synthetic pairs) lower it:
    the gradient reaches the backbone through the filter fitted to the canvas and applied to the search crop."""
    torch.manual_seed(0)
    net = SiamNet(TINY)
    task = PairTask(filter_weight=1.0, filter_iters=5)
    batch = pair_batch(6, seed=3)
    before, after = descend(lambda: task.terms(net, batch)[0]["filter_loss"], net.parameters(), 4)
    assert after < 0.5 * before, (before, after)
