"""A crop's fill colour is taken only when the crop reaches past the frame, with the same pixels."""
import numpy as np

from tracker import crops


def test_lazy_fill_gives_the_pixels_of_the_explicit_mean_colour():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)
    mean = crops.mean_colour(img)
    used = 0
    for _ in range(400):
        center = rng.uniform(-10, 95, 2)
        extent, out = float(rng.uniform(4, 70)), int(rng.choice([7, 16, 31]))
        flip = bool(rng.integers(2))
        pad = crops.FramePad(img)
        got = crops.square_crop(img, center, extent, out, pad, flip=flip)
        want = crops.square_crop(img, center, extent, out, mean, flip=flip)
        assert np.array_equal(got, want), (center, extent, out, flip)
        used += pad._value is not None
    assert 0 < used < 400  # both kinds occurred: crops inside (no mean taken) and across the border
