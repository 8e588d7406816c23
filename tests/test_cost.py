"""MACs from real shapes against hand arithmetic, budgets at the extremes."""
from backbones import budget_of, create_backbone, list_backbones, unit_costs


def test_alexnet_macs_at_255_match_hand_arithmetic():
    costs = unit_costs(create_backbone("alexnet"), 255)
    # out sizes: conv1 (255-11)/2+1=123, pool (123-3)/2+1=61, conv2 61-5+1=57, pool 28,
    # conv3 26, conv4 24, conv5 22. MACs = k*k*(Cin/groups)*Cout*H*W.
    hand = {
        "conv1": 11 * 11 * 3 * 96 * 123 * 123,
        "conv2": 5 * 5 * (96 // 2) * 256 * 57 * 57,
        "conv3": 3 * 3 * 256 * 384 * 26 * 26,
        "conv4": 3 * 3 * (384 // 2) * 384 * 24 * 24,
        "conv5": 3 * 3 * (384 // 2) * 256 * 22 * 22,
    }
    assert {n: c.macs for n, c in costs.items()} == hand
    assert costs["conv5"].out_shape == (256, 22, 22)


def test_alexnet_exemplar_features_are_6x6():
    assert unit_costs(create_backbone("alexnet"), 127)["conv5"].out_shape == (256, 6, 6)


def test_resnet_macs_hand_checked_units_and_shapes():
    costs = unit_costs(create_backbone("resnet16"), 255)
    assert len(costs) >= 16
    assert costs["conv1"].macs == 7 * 7 * 3 * 64 * 128 * 128  # (255+6-7)//2+1 = 128
    assert costs["layer3.0.conv2"].macs == 3 * 3 * 256 * 256 * 28 * 28
    assert costs["layer2.0.downsample"].macs == 1 * 1 * 64 * 128 * 30 * 30
    assert costs["neck"].out_shape == (256, 24, 24)  # 24 - 8 + 1 = 17x17 response
    assert unit_costs(create_backbone("resnet16"), 127)["neck"].out_shape == (256, 8, 8)


def test_b2net_macs_hand_checked_units_and_shapes():
    costs = unit_costs(create_backbone("b2net"), 255)
    assert list(costs) == ["stem", "stage1.0.conv", "stage1.1.conv", "down.conv", "down.shortcut",
                           "stage2.0.conv", "stage2.1.conv", "stage2.2.conv", "neck"]
    assert costs["stem"].macs == 4 * 4 * 3 * 64 * 63 * 63  # (255-4)//4+1 = 63, no padding
    assert costs["stage1.0.conv"].macs == 3 * 3 * 64 * 64 * 63 * 63  # padded, cropped to 61 after the block
    assert costs["stage1.1.conv"].macs == 3 * 3 * 64 * 64 * 61 * 61
    assert costs["down.conv"].macs == 3 * 3 * 64 * 128 * 30 * 30  # (59+2-3)//2+1 = 30
    assert costs["down.shortcut"].macs == 64 * 128 * 30 * 30  # 2x2 average pooling, ceil mode: 30
    assert costs["stage2.2.conv"].macs == 3 * 3 * 128 * 128 * 26 * 26
    assert costs["neck"].out_shape == (128, 24, 24)  # the same 17x17 response as resnet16
    assert unit_costs(create_backbone("b2net"), 127)["neck"].out_shape == (128, 8, 8)


def test_mobilenetv2_s8_macs_hand_checked_units_and_shapes():
    costs = unit_costs(create_backbone("mobilenetv2-s8"), 255)
    assert len(costs) == 19  # stem, 2 + 5 x 3 block units, neck
    assert costs["stem"].macs == 3 * 3 * 3 * 32 * 128 * 128  # (255+2-3)//2+1 = 128
    assert costs["blocks.0.depthwise"].macs == 3 * 3 * 1 * 32 * 128 * 128  # groups = 32: one input channel each
    assert costs["blocks.1.expand"].macs == 16 * 96 * 128 * 128  # 1x1, 6x expansion, before the stride
    assert costs["blocks.1.depthwise"].macs == 3 * 3 * 96 * 64 * 64  # stride 2: (128+2-3)//2+1 = 64
    assert costs["blocks.3.project"].macs == 144 * 32 * 32 * 32  # (64+2-3)//2+1 = 32 after blocks.3's stride
    assert costs["neck"].macs == 32 * 128 * 24 * 24  # after the 4-feature crop each side
    assert costs["neck"].out_shape == (128, 24, 24)  # the same 17x17 response as resnet16
    assert unit_costs(create_backbone("mobilenetv2-s8"), 127)["neck"].out_shape == (128, 8, 8)  # 16 - 2*4


def test_budget_extremes_are_exact():
    for name in list_backbones():
        macs = {n: c.macs for n, c in unit_costs(create_backbone(name), 255).items()}
        assert budget_of(macs, {n: "fp" for n in macs}) == 1.0
        assert budget_of(macs, {n: "bin" for n in macs}) == 1 / 64


def test_budget_of_mixed_assignment():
    macs = {"a": 600, "b": 400}
    assert budget_of(macs, {"a": "fp", "b": "bin"}) == (600 + 400 / 64) / 1000
