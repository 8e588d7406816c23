"""A tiny backbone and toy task for the MixBin tests (imported by the other test_mixbin_* files).

Six ConvUnits on 32x32 inputs, one residual add (so channel pruning has a
dependency to honour), and a 4-way task: which quadrant holds a bright square.
"""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from backbones import Backbone, ConvUnit, list_backbones, register

TINY = "mixbin-tiny"


from tests.helpers.threads import one_thread  # noqa: E402,F401  (autouse fixture)


class TinyBackbone(Backbone):
    stride = 4
    exemplar_size = 16
    search_size = 32

    def __init__(self, **kw):
        super().__init__()
        # Widths chosen so that budgets 0.15 / 0.3 / 0.5 are each reachable within 0.001.
        self.conv1 = ConvUnit(3, 4, 3, padding=1, **kw)
        self.conv2 = ConvUnit(4, 12, 3, stride=2, padding=1, **kw)
        self.conv3 = ConvUnit(12, 12, 3, padding=1, **kw)
        self.conv4 = ConvUnit(12, 24, 3, stride=2, padding=1, **kw)
        self.conv5 = ConvUnit(24, 24, 3, padding=1, **kw)
        self.conv6 = ConvUnit(24, 24, 1, **kw)
        self.out_channels = 24

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv3(F.relu(self.conv2(x))))
        y = F.relu(self.conv4(x))
        y = F.relu(self.conv5(y) + y)  # residual: conv5's and conv4's channels meet
        return self.conv6(y)


if TINY not in list_backbones():
    register(TINY, "6-unit toy backbone for tests")(lambda **kw: TinyBackbone(**kw))


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        from backbones import create_backbone
        self.backbone = create_backbone(TINY)
        self.fc = nn.Linear(24, 4)

    def forward(self, x):
        return self.fc(self.backbone(x).mean(dim=(2, 3)))


def make_batch(seed: int, n: int = 32):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.5
    y = torch.randint(0, 4, (n,), generator=g)
    for i in range(n):
        r, c = divmod(int(y[i]), 2)
        x[i, :, r * 16 + 4:r * 16 + 12, c * 16 + 4:c * 16 + 12] += 2.0
    return x, y


def loss_fn(model, batch):
    x, y = batch
    out = model(x)
    return F.cross_entropy(out, y), out


def batches(start_step: int = 0, seed: int = 0):
    """Start-step batch source: batch k is always the same tensor."""
    k = start_step
    while True:
        yield make_batch(seed * 100003 + k)
        k += 1


_TRAINED: dict = {}


def train_fp(steps: int = 150, seed: int = 0) -> TinyNet:
    """A trained toy FP model (cached: every test module gets its own copy of the same weights)."""
    if (steps, seed) not in _TRAINED:
        _TRAINED[steps, seed] = _train_fp(steps, seed)
    return copy.deepcopy(_TRAINED[steps, seed])


def _train_fp(steps: int, seed: int) -> TinyNet:
    torch.manual_seed(seed)
    m = TinyNet()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _, b in zip(range(steps), batches(0, seed=seed + 7)):
        loss, _ = loss_fn(m, b)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m


@torch.no_grad()
def eval_loss(model, n_batches: int = 4) -> float:
    was = model.training
    model.eval()
    v = sum(float(loss_fn(model, make_batch(10 ** 6 + k))[0]) for k in range(n_batches)) / n_batches
    model.train(was)
    return v


def test_toy_fp_model_learns():
    m = train_fp(80)
    assert eval_loss(m) < 0.5
