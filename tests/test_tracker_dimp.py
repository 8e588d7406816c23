"""Pieces of the DiMP-style tracker: the FFT filter and its solver, the memory, distractor handling."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tracker.dimp import Candidate, DiMPParams, DistractorTracker, SampleMemory, TargetFilter, gaussian_label


def test_fft_correlation_and_adjoint_match_conv2d():
    torch.manual_seed(0)
    x, f = torch.randn(4, 6, 18, 18), torch.randn(1, 6, 5, 5)
    tf = TargetFilter(6, 5, 18, reg=0.1)
    tf.f = f
    xh = tf.spectrum(x)
    assert torch.allclose(tf.apply(xh), F.conv2d(x, f)[:, 0], atol=1e-4)
    r = torch.randn(4, 14, 14)
    assert torch.allclose(tf._adj(xh, r), torch.nn.grad.conv2d_weight(x, f.shape, r[:, None]), atol=1e-3)


def test_conjugate_gradient_reaches_the_least_squares_solution():
    torch.manual_seed(0)
    n, c, k, s = 6, 3, 3, 10
    x = torch.randn(n, c, s, s)
    y = torch.stack([gaussian_label(s - k + 1, (0, 0), 1.0) for _ in range(n)])
    w = torch.full((n,), 1.0 / n)
    tf = TargetFilter(c, k, s, reg=0.01)
    tf.optimise(tf.spectrum(x), y, w, iters=200)
    # closed form through the unfolded design matrix
    a = F.unfold(x, k).transpose(1, 2)  # (n, R*R, c*k*k)
    lam = 0.01 * (s - k + 1) ** 2
    h = sum(w[i] * a[i].T @ a[i] for i in range(n)) + lam * torch.eye(c * k * k)
    b = sum(w[i] * a[i].T @ y[i].reshape(-1) for i in range(n))
    ref = torch.linalg.solve(h, b)
    assert torch.allclose(tf.f.reshape(-1), ref, atol=1e-3)


def test_few_warm_started_cg_steps_match_a_dense_reference():
    """Three steps from a warm start (what every frame update does) equal plain CG on the dense
    normal equations: the solver's residual and step formulas, not only its fixed point."""
    torch.manual_seed(1)
    n, c, k, s = 5, 3, 3, 9
    x = torch.randn(n, c, s, s)
    y = torch.stack([gaussian_label(s - k + 1, (0.5, -1), 1.2) for _ in range(n)])
    w = torch.softmax(torch.randn(n), 0)
    tf = TargetFilter(c, k, s, reg=0.05)
    f0 = 0.1 * torch.randn(1, c, k, k)
    tf.f = f0.clone()
    tf.optimise(tf.spectrum(x), y, w, iters=3)
    a = F.unfold(x, k).transpose(1, 2).double()
    lam = 0.05 * (s - k + 1) ** 2
    h = sum(w[i].double() * a[i].T @ a[i] for i in range(n)) + lam * torch.eye(c * k * k, dtype=torch.float64)
    b = sum(w[i].double() * a[i].T @ y[i].reshape(-1).double() for i in range(n))
    f = f0.reshape(-1).double()
    r = b - h @ f
    p, rr = r.clone(), float(r @ r)
    for _ in range(3):
        hp = h @ p
        alpha = rr / float(p @ hp)
        f, r = f + alpha * p, r - alpha * hp
        rr, rr_old = float(r @ r), rr
        p = r + rr / rr_old * p
    torch.testing.assert_close(tf.f.reshape(-1).double(), f, atol=1e-4, rtol=1e-3)


def test_memory_decays_weights_and_keeps_first_frame():
    m = SampleMemory(capacity=5, lr=0.5)
    m.init(torch.zeros(2, 1), torch.zeros(2, 1))
    for v in range(1, 8):
        m.add(torch.full((1,), float(v)), torch.zeros(1))
    x, _, w = m.tensors()
    assert m.n == 5 and abs(float(w.sum()) - 1) < 1e-6
    assert x[:2].abs().sum() == 0  # the first frame's samples survive
    assert float(w[int(torch.argmax(x[:, 0]))]) == float(w.max())  # the newest sample weighs most


def _cand(x, score, feat):
    return Candidate(np.array([x, 50.0]), score, np.array(feat, float) / np.linalg.norm(feat), np.zeros(2))


def test_known_distractor_cannot_steal_the_target():
    d = DistractorTracker(DiMPParams())
    d.reset((50.0, 50.0), np.array([1.0, 0.0]))
    # frame 2: target plus a similar object further right, target strongest
    assert d.choose([_cand(52, 1.0, [1, 0.1]), _cand(120, 0.8, [0.9, 0.4])], 0, 30.0) == 0
    # frame 3: the distractor now peaks higher (target dips): keep the target
    pick = d.choose([_cand(122, 1.0, [0.9, 0.4]), _cand(54, 0.75, [1, 0.1])], 0, 30.0)
    assert pick == 1 and d.last_decision == "kept-target-over-distractor"


def test_newcomer_takes_over_and_lost_target_is_redetected():
    d = DistractorTracker(DiMPParams())
    d.reset((50.0, 50.0), np.array([1.0, 0.0]))
    pick = d.choose([_cand(200, 1.0, [0, 1]), _cand(51, 0.8, [1, 0])], 0, 30.0)
    assert pick == 0 and d.last_decision == "switched"
    d2 = DistractorTracker(DiMPParams())
    d2.reset((50.0, 50.0), np.array([1.0, 0.0]))
    assert d2.choose([_cand(300, 1.0, [0, 1])], 0, 30.0) == 0 and d2.last_decision == "redetected"


def test_preset_sets_its_values_and_explicit_overrides_win():
    base, fast = DiMPParams.from_kwargs(), DiMPParams.from_kwargs(preset="fast")
    for name, value in DiMPParams.PRESETS["fast"].items():
        assert getattr(fast, name) == value != getattr(base, name)
    mixed = DiMPParams.from_kwargs(preset="fast", update_every=3)
    assert mixed.update_every == 3 and mixed.filter_channels == DiMPParams.PRESETS["fast"]["filter_channels"]
    try:
        DiMPParams.from_kwargs(preset="nonesuch")
    except ValueError as e:
        assert "known: fast" in str(e)
    else:
        raise AssertionError("an unknown preset must fail")


def test_the_thread_setting_reaches_torch_opencv_and_the_kernels():
    import cv2

    from backbones import kernels
    from tracker.model import use_threads

    old = torch.get_num_threads(), cv2.getNumThreads()
    try:
        for n in (1, 2):
            use_threads(n)
            assert (torch.get_num_threads(), cv2.getNumThreads(), kernels.get_num_threads()) == (n, n, n)
    finally:
        torch.set_num_threads(old[0])
        cv2.setNumThreads(old[1])
        kernels.set_num_threads(None)
