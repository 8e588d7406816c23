"""Channel pruning baseline: dependencies, real MACs of a pruned network, thresholding, the whole run."""
import copy
import itertools

import numpy as np
import pytest
import torch

from backbones import create_backbone, unit_costs
from mixbin.prune import (PruneConfig, attach_masks, bake_masks, channel_producers, fp_macs, masked_macs, masks_from_spec,
                          prune_search, threshold_channels, unit_geometry)

from test_mixbin_toy import TINY, loss_fn, make_batch, train_fp
from test_mixbin_toy import one_thread  # noqa: F401  (autouse fixture)



@torch.no_grad()
def measured_macs(backbone, masks, size, train_bn=False):
    """MACs counted from the channels that really carry signal (nonzero anywhere in a batch).

    ``train_bn``: batch statistics centre every channel, so no ReLU silences a
    whole channel of a random network and the count is exactly the structure.
    """
    live = {}
    units = backbone.units()
    hooks = [u.register_forward_hook(lambda m, i, o, n=n: live.__setitem__(n, (i[0].abs().sum((0, 2, 3)) > 0,
                                                                               o.abs().sum((0, 2, 3)) > 0, o.shape)))
             for n, u in units.items()]
    handles = attach_masks(backbone, masks)  # registered after: the recording hook sees the unmasked output...
    try:
        backbone.train(train_bn)(torch.randn(4, 3, size, size))
    finally:
        for h in hooks + handles:
            h.remove()
    total = 0
    for n, u in units.items():
        alive_in, _, shape = live[n]
        alive_out = masks[n].bool()  # ...so take the output side from the mask
        g = u.groups
        per = (alive_in.view(g, -1).sum(1) * alive_out.view(g, -1).sum(1)).sum()
        total += int(per) * u.kernel_size ** 2 * shape[2] * shape[3]
    return total


def test_producers_follow_the_residual_connections():
    p = channel_producers(create_backbone("resnet16-half"))
    assert p["conv1"] is None  # fed by the image
    assert p["layer1.0.conv2"] == ["layer1.0.conv1"]
    assert set(p["layer1.1.conv1"]) == {"conv1", "layer1.0.conv2"}  # identity shortcut
    assert set(p["layer2.1.conv1"]) == {"layer2.0.conv2", "layer2.0.downsample"}  # projection shortcut
    assert set(p["neck"]) == {"layer3.0.conv2", "layer3.0.downsample", "layer3.1.conv2"}
    tiny = channel_producers(create_backbone(TINY))
    assert set(tiny["conv6"]) == {"conv4", "conv5"}


@pytest.mark.parametrize("name,size", [(TINY, 32), ("resnet16-half", 127)])
def test_masked_macs_is_the_real_cost(name, size):
    torch.manual_seed(0)
    bb = create_backbone(name)
    geoms, prod = unit_geometry(bb, size), channel_producers(bb)
    full = {n: torch.ones(g.cout) for n, g in geoms.items()}
    assert float(masked_macs(geoms, prod, full)) == fp_macs(geoms) == sum(c.macs for c in unit_costs(bb, size).values())
    rng = np.random.default_rng(0)
    for keep in (0.3, 0.6):
        masks = {n: torch.tensor(rng.uniform(size=g.cout) < keep, dtype=torch.float32) for n, g in geoms.items()}
        for m in masks.values():
            m[0] = 1.0
        formula = float(masked_macs(geoms, prod, masks))
        assert measured_macs(bb, masks, size, train_bn=True) == formula
        # With running statistics a ReLU may silence a channel: never more live channels than the formula.
        assert measured_macs(bb, masks, size) <= formula


@pytest.mark.parametrize("b", [0.15, 0.3, 0.5])
def test_channel_thresholding_meets_the_budget_on_resnet16_half(b):
    bb = create_backbone("resnet16-half")
    geoms, prod = unit_geometry(bb, 255), channel_producers(bb)
    g = torch.Generator().manual_seed(1)
    z = {n: torch.rand(x.cout, generator=g) for n, x in geoms.items()}
    masks, real = threshold_channels(z, geoms, prod, b)
    assert b - 0.02 <= real <= b
    assert abs(float(masked_macs(geoms, prod, masks)) / fp_macs(geoms) - real) < 1e-12
    assert all(m.any() for m in masks.values())


def test_prune_run_on_the_tiny_model_meets_the_budget_as_a_plain_model():
    teacher = train_fp(80)
    model = copy.deepcopy(teacher)
    src = lambda s: (make_batch(31 * k + 7, 16) for k in itertools.count(s))  # noqa: E731
    res = prune_search(model, loss_fn, src, PruneConfig(budget=0.3, steps=80), backbone_name=TINY)
    assert 0.28 <= res.budget <= 0.3
    assert res.spec.provenance["pruned_budget"] == res.budget
    masks = masks_from_spec(res.spec, model.backbone)
    assert all(torch.equal(masks[n], res.masks[n]) for n in masks)
    # Masks by hook == masks baked into BatchNorm: the zoo checkpoint is a plain FP model.
    x = make_batch(4242)[0]
    model.eval()
    handles = attach_masks(model.backbone, masks)
    hooked = model(x)
    for h in handles:
        h.remove()
    bake_masks(model.backbone, masks)
    assert torch.allclose(model(x), hooked, atol=1e-6)
    assert measured_macs(model.backbone, masks, 32) <= 0.3 * fp_macs(unit_geometry(model.backbone, 32))
