"""Synthetic Siamese pairs and a tiny backbone, for fast training tests."""
import numpy as np
import torch

from backbones import list_backbones, register
from backbones.resnet import ResNet16

TINY = "resnet16-tiny-test"
if TINY not in list_backbones():
    register(TINY, "ResNet-16 at 1/8 width (tests only)")(lambda **kw: ResNet16(width=0.125, **kw))


def _texture(rng, h, w):
    small = rng.integers(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.kron(small, np.ones((8, 8, 1), dtype=np.uint8))[:h, :w]


class SyntheticPairs(torch.utils.data.Dataset):
    """A textured 48x48 patch pasted at the centre of z and at a known offset in x."""

    def __init__(self, n=256, seed=0, neg_rate=0.1):
        self.n, self.seed, self.neg_rate = n, seed, neg_rate

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        rng = np.random.default_rng(self.seed * 100003 + i)
        patch = _texture(rng, 48, 48)
        z = rng.integers(0, 60, (127, 127, 3), dtype=np.uint8)
        x = rng.integers(0, 60, (255, 255, 3), dtype=np.uint8)
        z[40:88, 40:88] = patch
        neg = bool(rng.random() < self.neg_rate)
        dy, dx = (int(v) for v in rng.integers(-48, 49, 2))
        if neg:
            x[103 + dy:151 + dy, 103 + dx:151 + dx] = _texture(rng, 48, 48)
        else:
            x[103 + dy:151 + dy, 103 + dx:151 + dx] = patch
        def t(a):
            return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
        return {"z": t(z), "x": t(x), "target": torch.tensor([float(dy), float(dx)]), "neg": torch.tensor(neg)}


def pair_batch(n=4, seed=0, neg_rate=0.25):
    """One collated batch of ``n`` synthetic pairs (a quarter negatives by default)."""
    ds = SyntheticPairs(n, seed=seed, neg_rate=neg_rate)
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def descend(term, params, steps, lr=3e-3, each_step=None):
    """``steps`` Adam steps on the scalar ``term()``; returns its value (before, after), taken
    without gradients. ``each_step()`` runs after every step (e.g. to check a frozen model)."""
    opt = torch.optim.Adam(params, lr=lr)
    with torch.no_grad():
        before = float(term())
    for _ in range(steps):
        loss = term()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if each_step is not None:
            each_step()
    with torch.no_grad():
        after = float(term())
    return before, after
