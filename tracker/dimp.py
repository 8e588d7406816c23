"""DiMP-style tracker: SiamFC plus a target filter learned online, with distractor tracking.

The search-crop features of the backbone feed a filter f learned online as

    f = argmin  sum_i w_i ||f * x_i - y_i||^2 + lambda ||f||^2

(x_i: features of past search crops, y_i: Gaussian labels at the target,
w_i: sample weights decaying with age), solved by a few conjugate-gradient
iterations on the normal equations (ATOM/DiMP's optimiser without the
learned parts). The filter has the exemplar's feature size, so its valid
correlation over a search crop lands on exactly the SiamFC response grid and
the two responses are fused 50/50 (online adaptation was the largest single gain when measured on the dev sequences).

Distractors (KeepTrack, Mayer et al. 2021, in spirit): local maxima of the
fused response are kept as candidates with ids and associated frame to
frame by a linear assignment (``lap.lapjv``) on displacement, appearance and
score, so a similar object that briefly outscores the target is recognised
as the known distractor it was, and the target candidate is kept.

A colour model (Staple, Bertinetto et al. 2016: target-vs-surroundings colour
histograms, tracker/colour_model.py) adds a shape-blind target likelihood to
the fused response, which holds a small target that turns or blurs.

The box size follows the DSST scale filter (tracker/scale_filter.py) by default, so the
backbone embeds one search crop per frame; ``scale_mode="pyramid"`` restores SiamFC's
three-crop scale search.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import lap
import numpy as np
import torch
import torch.nn.functional as F

from backbones.kernels import spectral

from . import crops
from .colour_model import ColourModel
from .ridge_filter import (FILTER_REG, INIT_ITERS, INIT_SHIFT, LABEL_SIGMA, feature_rms, gaussian_label, kernel_spectrum,
                           label_sigma_cells, normalise_features, ridge_lambda, valid_correlation)
from .siamfc import Frame, Lesson, SiamFCParams, SiamFCTracker, peak_contrast


@dataclass
class DiMPParams(SiamFCParams):
    window_influence: float = 0.15
    # Size by the DSST scale filter (tracker/scale_filter.py), not the 3-crop pyramid: more
    # accurate here and one backbone pass per frame instead of three; SiamFC keeps the pyramid
    # (BENCHMARKS.md "Scale estimation").
    scale_mode: str = "dsst"
    # Re-detection after a full occlusion (SiamFCParams.lost_ratio): on for this tracker; it lifts
    # the IoU after a pasted occlusion (BENCHMARKS.md "Re-detection").
    lost_ratio: float = 0.4
    fuse_weight: float = 0.5  # share of the online filter in the fused response
    # The filter's objective (tracker/ridge_filter.py, shared with offline training's filter loss).
    filter_reg: float = FILTER_REG  # lambda, relative to one sample's energy per filter tap
    label_sigma: float = LABEL_SIGMA  # Gaussian label width, fraction of the target size
    memory_size: int = 40
    sample_lr: float = 0.03  # weight of each new sample; older ones decay by (1 - lr)
    init_iters: int = INIT_ITERS
    update_iters: int = 3
    # Frames between filter optimisations (samples are added every frame); 10 halves the CG's
    # cost per frame at an accuracy cost (BENCHMARKS.md "Per-frame work (issue 14)").
    update_every: int = 5
    # Filter peak below this: target uncertain, no sample is stored. (Losing the target is
    # decided by the Siamese peak contrast, lost_ratio: the filter's confidence also drops on
    # plain appearance change, and holding the box then loses the target.)
    conf_threshold: float = 0.3
    init_shift: float = INIT_SHIFT  # search-crop pixels of the shift augmentations
    # The filter works on the features' first filter_channels principal components (a projection
    # fixed on the first frame's samples, ECO's compression without its joint learning): every
    # product in the conjugate-gradient loop scales with the channels. 0 keeps all channels, the
    # default until fewer hold accuracy (BENCHMARKS.md "Per-frame work (issue 14)").
    filter_channels: int = 0
    # Colour histograms of target vs surroundings (tracker/colour_model.py, Staple's cue): share
    # of their target likelihood in the final response; 0 disables. Chosen on the held-out
    # clips only (BENCHMARKS.md "Colour model").
    colour_weight: float = 0.45
    colour_lr: float = 0.04
    # The colour model samples every k-th pixel each way: faster, less accurate (BENCHMARKS.md
    # "Per-frame work (issue 14)").
    colour_stride: int = 1
    # Candidates and their association (KeepTrack-like).
    cand_threshold: float = 0.5  # local maxima above this fraction of the max are candidates
    max_candidates: int = 5
    cand_radius: float = 1.5  # non-maximum suppression radius, response cells
    assoc_motion: float = 1.0  # cost per target size of displacement
    assoc_appearance: float = 1.0  # cost of 1 - cosine similarity of the features
    assoc_score: float = 0.5  # cost of the score change
    assoc_limit: float = 1.2  # above this a pair is not associated
    ok_threshold: float = 0.2

    _unit_interval = SiamFCParams._unit_interval + ("fuse_weight", "colour_weight", "colour_lr", "sample_lr")
    # "fast": the per-frame work cut where each setting costs accuracy within the seed spread
    # but none alone passes the rule for a default (BENCHMARKS.md "Per-frame work (issue 14)" and
    # "Fused blocks, the fast preset"): the online filter on 32 principal components, optimised every 10th frame;
    # fDSST's 17 of 33 scales resampled from one region; colour sampled every 2nd pixel.
    PRESETS = {"fast": {"filter_channels": 32, "update_every": 10, "dsst_sampled": 17, "dsst_patches": "shared",
                        "colour_stride": 2}}


# -- the online filter -------------------------------------------------------

class SampleMemory:
    """Fixed-capacity training set with age-decaying weights; first-frame samples are never evicted."""

    def __init__(self, capacity: int, lr: float):
        self.capacity, self.lr = capacity, lr
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.w = np.zeros(0)
        self.n = self.protected = 0

    def init(self, x: torch.Tensor, y: torch.Tensor) -> None:
        n = x.shape[0]
        cap = max(self.capacity, n + 1)
        self.x = torch.zeros((cap,) + tuple(x.shape[1:]), dtype=x.dtype)
        self.y = torch.zeros((cap,) + tuple(y.shape[1:]), dtype=y.dtype)
        self.x[:n], self.y[:n] = x, y
        self.w = np.zeros(cap)
        self.w[:n] = 1.0 / n
        self.n = self.protected = n

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.w[: self.n] *= 1 - self.lr
        if self.n < len(self.w):
            i = self.n
            self.n += 1
        else:  # replace the lightest non-protected sample
            i = self.protected + int(np.argmin(self.w[self.protected: self.n]))
        self.x[i], self.y[i], self.w[i] = x, y, self.lr
        self.w[: self.n] /= self.w[: self.n].sum()

    def tensors(self):
        return self.x[: self.n], self.y[: self.n], torch.from_numpy(self.w[: self.n]).float()


class TargetFilter:
    """Multi-channel correlation filter (k×k, valid correlation) fitted by conjugate gradient.

    Samples are kept as 2-D FFTs: correlating a feature map with a filter as
    large as the exemplar (8-14 cells) is 10-60× faster through the FFT than
    through conv2d on a CPU, and a sample's FFT is computed once.
    """

    def __init__(self, channels: int, k: int, feat_size: int, reg: float):
        self.f = torch.zeros(1, channels, k, k)
        self.k, self.n, self.reg = k, feat_size, reg

    def spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, n, n) features -> their rfft2, the form samples are stored in."""
        return torch.fft.rfft2(x.float())

    # The two products of _fwd and _adj read every stored spectrum (40 x 128 channels: ~13 MB) and
    # are the CG's cost; spectral.sum_* read them once where torch's broadcast product reads them thrice.
    def _fwd(self, xh: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Valid correlation of every sample with filter v: (N, R, R)."""
        return valid_correlation(xh, kernel_spectrum(v, self.n), self.n, self.k)

    def _adj(self, xh: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Adjoint of _fwd: sum_n r_n correlated with x_n, (1, C, k, k)."""
        rh = torch.fft.rfft2(r, s=(self.n, self.n))
        g = torch.fft.irfft2(spectral.sum_samples(xh, rh), s=(self.n, self.n))
        return g[None, :, : self.k, : self.k]

    def apply(self, xh: torch.Tensor) -> torch.Tensor:
        # The filter changes only when optimised (every update_every frames): keep its spectrum.
        if getattr(self, "_fh_of", None) is not self.f:
            self._fh, self._fh_of = kernel_spectrum(self.f, self.n), self.f
        return valid_correlation(xh, self._fh, self.n, self.k)

    def optimise(self, xh: torch.Tensor, y: torch.Tensor, w: torch.Tensor, iters: int) -> None:
        """``iters`` CG steps on (A^T W A + lambda) f = A^T W y, warm-started at the current filter."""
        if iters <= 0:
            return
        wv = w.view(-1, 1, 1)
        lam = ridge_lambda(self.reg, y.shape)

        def normal(v):
            return self._adj(xh, self._fwd(xh, v) * wv) + lam * v

        # A^T W y - (A^T W A + lambda) f in one adjoint: each adjoint is a pass over all samples
        r = self._adj(xh, (y - self._fwd(xh, self.f)) * wv) - lam * self.f
        p = r.clone()
        rr = float((r * r).sum())
        for _ in range(iters):
            if rr < 1e-12:
                break
            hp = normal(p)
            alpha = rr / max(float((p * hp).sum()), 1e-12)
            self.f = self.f + alpha * p
            r = r - alpha * hp
            rr_new = float((r * r).sum())
            p = r + (rr_new / rr) * p
            rr = rr_new


def principal_projection(x: torch.Tensor, channels: int) -> torch.Tensor | None:
    """(channels, C) rows: the leading eigenvectors of the (uncentred) channel second moment of
    (N, C, H, W) features over samples and positions; None when ``channels`` keeps them all."""
    c = x.shape[1]
    if channels <= 0 or channels >= c:
        return None
    flat = x.permute(0, 2, 3, 1).reshape(-1, c).double()
    _, vecs = torch.linalg.eigh(flat.T @ flat)  # ascending eigenvalues
    return vecs[:, -channels:].flip(-1).T.float().contiguous()


def project_channels(x: torch.Tensor, proj: torch.Tensor | None) -> torch.Tensor:
    """(N, C, H, W) -> (N, channels, H, W) through a 1x1 projection (identity when None)."""
    return x if proj is None else F.conv2d(x, proj[:, :, None, None])


# -- candidates and their association ---------------------------------------

def local_maxima(r: np.ndarray, radius: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the points of ``r`` that are positive, at least ``threshold`` and the
    maximum of the (2·radius+1)² square around them.

    The maximum filter runs only over the bounding box of the points above the threshold: a
    point outside it is below every point inside that could qualify, so it cannot change
    which of them are maxima (a 49x49 dilation of the whole 272x272 map was ~0.25 ms)."""
    above = (r >= threshold) if threshold > 0 else (r >= threshold) & (r > 0)
    rr, cc = np.divmod(np.flatnonzero(above), r.shape[1])
    if rr.size == 0:
        return rr, cc
    r0, r1, c0, c1 = rr.min(), rr.max() + 1, cc.min(), cc.max() + 1
    box = np.ascontiguousarray(r[r0:r1, c0:c1], np.float32)
    k = 2 * radius + 1
    is_max = cv2.dilate(box, np.ones((k, k), np.uint8)) == box
    keep = is_max[rr - r0, cc - c0]
    return rr[keep], cc[keep]


@dataclass
class Candidate:
    pos: np.ndarray  # image (x, y)
    score: float
    feat: np.ndarray  # L2-normalised feature vector
    up_rc: np.ndarray  # (row, col) in the upsampled map
    id: int = -1


class DistractorTracker:
    """Keeps candidate peaks with ids across frames; decides which one is the target."""

    def __init__(self, params: DiMPParams):
        self.p = params
        self.prev: list[Candidate] = []
        self.target_id = 0
        self.next_id = 1
        self.last_decision = "init"

    def reset(self, pos, feat) -> None:
        self.prev = [Candidate(np.asarray(pos, float), 1.0, feat, np.zeros(2), 0)]
        self.target_id, self.next_id = 0, 1

    def forget(self) -> None:
        """After a re-detection: the candidates seen before the loss say nothing about the scene now."""
        self.prev, self.target_id = [], -1

    def _associate(self, cands: list[Candidate], target_scale: float) -> None:
        p = self.p
        if not self.prev or not cands:
            for c in cands:
                c.id, self.next_id = self.next_id, self.next_id + 1
            return
        cost = np.zeros((len(self.prev), len(cands)))
        for i, a in enumerate(self.prev):
            for j, b in enumerate(cands):
                d = np.linalg.norm(a.pos - b.pos) / target_scale
                app = 1.0 - float(np.dot(a.feat, b.feat))
                cost[i, j] = p.assoc_motion * d + p.assoc_appearance * app + p.assoc_score * abs(a.score - b.score)
        _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=p.assoc_limit)
        for i, j in enumerate(x):
            if j >= 0:
                cands[j].id = self.prev[i].id
        for c in cands:
            if c.id < 0:
                c.id, self.next_id = self.next_id, self.next_id + 1

    def choose(self, cands: list[Candidate], best: int, target_scale: float) -> int:
        """Index of the target among ``cands``; ``best`` is the plain (window-weighted) choice."""
        known = {c.id for c in self.prev}
        self._associate(cands, target_scale)
        tgt = next((k for k, c in enumerate(cands) if c.id == self.target_id), None)
        pick, self.last_decision = best, "max"
        if tgt is not None and tgt != best:
            top = cands[best]
            # A distractor we have been watching took the lead: keep the target. A newcomer
            # that beats the target is believed: it is usually the target itself after a fast
            # move, the old spot having kept the target id by proximity.
            if top.id in known:
                pick, self.last_decision = tgt, "kept-target-over-distractor"
            else:
                self.last_decision = "switched"
        elif tgt is None:
            self.last_decision = "redetected"
        self.target_id = cands[pick].id
        self.prev = cands
        return pick


# -- the tracker --------------------------------------------------------------

@dataclass
class DiMPFrame(Frame):
    """A frame's state plus what scoring leaves for the update: the spectra and the filter's response."""
    xfh: torch.Tensor | None = None  # rfft2 of the search features (the Siamese head's; the filter reuses it)
    xh: torch.Tensor | None = None  # the online filter's input spectrum (stored as a sample)
    filt: torch.Tensor | None = None  # the online filter's response, (S, R, R)


@dataclass
class DiMPLesson(Lesson):
    """What the online filter and the colour model learn from a frame, besides the scale filter."""
    sample: tuple | None = None  # (spectrum, label) for the online filter's memory, when trusted
    colour: tuple | None = None  # the colour model's neighbourhood of the new box, when trusted
    optimise: bool = False  # optimise the online filter after this frame


class DiMPTracker(SiamFCTracker):
    name = "dimp"
    Params = DiMPParams

    # -- first frame: augmented samples and the initial filter ----------------
    def _after_init(self, img: np.ndarray, pad) -> None:
        p = self.params
        samples, shifts = self._augmented_crops(img, pad)
        xf = normalise_features(self._embed(samples))
        self.feat_size = xf.shape[-1]
        self.resp_size = self.feat_size - self.zf.shape[-1] + 1
        labels = torch.cat([self._label(s) for s in shifts])
        self.proj = principal_projection(xf, p.filter_channels)
        xp = project_channels(xf, self.proj)
        self.filter = TargetFilter(xp.shape[1], self.zf.shape[-1], self.feat_size, p.filter_reg)
        self.memory = SampleMemory(p.memory_size, p.sample_lr)
        self.memory.init(self.filter.spectrum(xp), labels)
        self.filter.optimise(*self.memory.tensors(), iters=p.init_iters)
        self.colour = None
        if p.colour_weight > 0:
            self.colour = ColourModel(p.colour_lr, stride=p.colour_stride)
            self.colour.update(img, self.center, self.size)
        self.distractors = DistractorTracker(p)
        self.distractors.reset(self.center, self._feature_at(xf[0], np.zeros(2)))
        self.filter_confidence = 1.0

    def _augmented_crops(self, img, pad):
        """First-frame crops: plain, shifted, flipped, blurred, rescaled; with the target offset (dy, dx) in search px."""
        p = self.params
        ext, c, n = self.x_extent, self.center, p.search_size
        k = ext / n  # image px per search px
        s = p.init_shift
        offs = [(0.0, 0.0), (0, s), (0, -s), (s, 0), (-s, 0)]
        offs += [tuple(v) for v in self.rng.uniform(-s, s, size=(2, 2))]
        out, shifts = [], []
        for dy, dx in offs:  # moving the crop centre by -d puts the target at +d
            out.append(crops.square_crop(img, c - np.array([dx, dy]) * k, ext, n, pad))
            shifts.append((dy, dx))
        base = out[0]
        out.append(crops.square_crop(img, c, ext, n, pad, flip=True))
        shifts.append((0.0, 0.0))
        for sig in (1.5, 3.0):
            out.append(cv2.GaussianBlur(base, (0, 0), sig))
            shifts.append((0.0, 0.0))
        for f in (0.9, 1.1):  # the target appears 1/f as large
            out.append(crops.square_crop(img, c, ext * f, n, pad))
            shifts.append((0.0, 0.0))
        return np.stack(out), shifts

    def _label(self, offset_px) -> torch.Tensor:
        """Gaussian label on the response grid for a target at ``offset_px`` (dy, dx) from the crop centre."""
        p = self.params
        tgt_px = np.sqrt(np.prod(self.size)) * p.search_size / self.x_extent
        sigma = label_sigma_cells(tgt_px, self.stride, p.label_sigma)
        return gaussian_label(self.resp_size, np.asarray(offset_px) / self.stride, sigma)[None]

    # -- per frame ----------------------------------------------------------
    def _new_frame(self, img: np.ndarray, pad, extents: np.ndarray) -> DiMPFrame:
        return DiMPFrame(img, pad, extents)

    def _siamese_score(self, f: DiMPFrame) -> torch.Tensor:
        """The Siamese head's response through the FFT (the exemplar's spectrum is kept while the
        exemplar does not change): 0.4 ms instead of conv2d's 0.6-1.3 ms for 128 channels."""
        n, k = f.xf.shape[-1], self.zf.shape[-1]
        if getattr(self, "_zh_of", None) is not self.zf or self._zh.shape[-2] != n:
            self._zh, self._zh_of = kernel_spectrum(self.zf, n), self.zf
        f.xfh = torch.fft.rfft2(f.xf.float())  # the online filter reuses it (_filter_spectrum)
        raw = valid_correlation(f.xfh, self._zh, n, k)
        r = self.model.head.finish(raw[:, None], self.zf.shape)[:, 0].float()
        f.siam_peak = peak_contrast(r)
        self.confidence = float(torch.sigmoid(r.max()))
        return r

    def _score(self, f: DiMPFrame) -> torch.Tensor:
        siam = self._siamese_score(f)  # the raw Siamese response (and its peak contrast)
        f.xh = self._filter_spectrum(f)
        filt = f.filt = self.filter.apply(f.xh)
        lo, hi = siam.min(), siam.max()
        siam_n = (siam - lo) / (hi - lo).clamp(min=1e-6)  # joint over scales: keeps them comparable
        w = self.params.fuse_weight
        fused = (1 - w) * siam_n + w * filt
        if self.colour is not None:
            c = self.params.colour_weight
            fused = (1 - c) * fused + c * self._colour_response(f, fused.shape[-1])
        return fused

    def _filter_spectrum(self, f: DiMPFrame) -> torch.Tensor:
        """The online filter's input spectrum. Without a channel projection it is the Siamese
        head's spectrum of the same features over their RMS (the FFT is linear): one 128-channel
        rfft2 per frame less. With one, the projection comes first (fewer channels to transform)."""
        if self.proj is None:
            return f.xfh / feature_rms(f.xf.float())
        return self.filter.spectrum(project_channels(normalise_features(f.xf), self.proj))

    def _colour_response(self, f: DiMPFrame, n: int) -> torch.Tensor:
        """(S, n, n) colour likelihood of a target-sized window at every response cell of every search crop."""
        p = self.params
        g = (np.arange(n) - (n - 1) / 2) * self.stride + (p.search_size - 1) / 2  # cell centres, crop px
        centres = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1)
        out = []
        for crop, s in zip(f.patches, self.scales):
            win = self.size * p.search_size / (self.x_extent * s)  # the target's (w, h) in crop px
            out.append(self.colour.response(crop, (float(win[0]), float(win[1])), centres))
        return torch.from_numpy(np.stack(out))

    def _feature_at(self, feat: torch.Tensor, offset_px: np.ndarray) -> np.ndarray:
        """Bilinear feature vector at ``offset_px`` (dy, dx) from the search-crop centre, L2-normalised."""
        n = feat.shape[-1]
        g = (np.asarray(offset_px) / self.stride + (n - 1) / 2) / (n - 1) * 2 - 1
        grid = torch.tensor([[[[g[1], g[0]]]]], dtype=torch.float32)
        v = F.grid_sample(feat[None], grid, align_corners=True)[0, :, 0, 0].numpy()
        return v / max(np.linalg.norm(v), 1e-9)

    def _locate(self, r: np.ndarray, scores, f: DiMPFrame) -> np.ndarray:
        p = self.params
        windowed = (1 - p.window_influence) * r + p.window_influence * self._window(r.shape[0])
        cands = self._candidates(r, windowed, f.si, f.xf)
        if not cands:
            return super()._locate(r, scores, f)
        best = int(np.argmax([windowed[tuple(c.up_rc.astype(int))] for c in cands]))
        pick = self.distractors.choose(cands, best, float(np.sqrt(np.prod(self.size))))
        # Refine: the window-weighted maximum near the chosen candidate.
        rad = int(round(p.cand_radius * p.response_up))
        r0, c0 = cands[pick].up_rc.astype(int)
        sub = windowed[max(0, r0 - rad): r0 + rad + 1, max(0, c0 - rad): c0 + rad + 1]
        rr, cc = np.unravel_index(int(np.argmax(sub)), sub.shape)
        return np.array([max(0, r0 - rad) + rr, max(0, c0 - rad) + cc], dtype=np.float64)

    def _candidates(self, r: np.ndarray, windowed: np.ndarray, si: int, xf) -> list[Candidate]:
        p = self.params
        rmax = r.max()  # float32, as before: the same threshold and scores to the bit
        rows, cols = local_maxima(r, int(round(p.cand_radius * p.response_up)), p.cand_threshold * rmax)
        order = np.argsort(-r[rows, cols])[: p.max_candidates]
        extent = self.x_extent * self.scales[si]
        out = []
        for i in order:
            rc = np.array([rows[i], cols[i]], float)
            off = self._up_to_px(rc, r.shape[0])
            pos = self.center + off[::-1] * extent / p.search_size
            out.append(Candidate(pos, float(r[rows[i], cols[i]] / max(rmax, 1e-12)), self._feature_at(xf[si], off), rc))
        return out

    def _after_redetect(self) -> None:
        self.distractors.forget()

    def _lesson(self, f: DiMPFrame) -> DiMPLesson:
        lesson = DiMPLesson(scale=super()._lesson(f).scale)
        p = self.params
        si, disp_crop, extents = f.si, f.disp_crop, f.extents
        # Confidence: the online filter's value at the new target position.
        cell = disp_crop / self.stride + (self.resp_size - 1) / 2
        rr, cc = np.clip(np.round(cell).astype(int), 0, self.resp_size - 1)
        self.filter_confidence = float(f.filt[si, rr, cc])
        self.confidence = self.filter_confidence
        if self.filter_confidence >= p.conf_threshold and self.distractors.last_decision in ("max", "init"):
            mid = (len(self.scales) - 1) // 2
            # the target's offset in the middle-scale crop (where the sample comes from)
            off_mid = disp_crop * extents[si] / extents[mid]
            lesson.sample = (f.xh[mid], self._label(off_mid)[0])
            if self.colour is not None:
                lesson.colour = self.colour.neighbourhood(f.img, self.center, self.size)
        lesson.optimise = (self.frame - 1) % p.update_every == 0
        return lesson

    def _learn(self, lesson: DiMPLesson) -> None:
        super()._learn(lesson)
        if lesson.sample is not None:
            self.memory.add(*lesson.sample)
            if self.colour is not None:
                self.colour.learn(lesson.colour)
        if lesson.optimise:
            self.filter.optimise(*self.memory.tensors(), iters=self.params.update_iters)
