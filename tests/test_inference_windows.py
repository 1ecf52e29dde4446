"""Whole, sliding-window and resized inference, flip and multi-scale TTA, on stub networks."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from babelseg.inference.windows import (
    InferenceOptions,
    batch_scores,
    grid_size,
    window_origins,
)

CPU = torch.device("cpu")


class LocalNet:
    """Scores of a cell = the mean colour of its 4x4 pixels (3 classes): depends only on the
    cell's own pixels, so every mode that aligns cells correctly gives the same scores."""

    def __init__(self) -> None:
        self.inputs: list[tuple[int, ...]] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(tuple(x.shape))
        assert x.shape[-2] % 4 == 0 and x.shape[-1] % 4 == 0
        return F.avg_pool2d(x, 4)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_slide_equals_whole_for_a_local_network_and_sees_only_windows():
    image = _image(50, 71)
    whole = batch_scores([image], LocalNet(), options=InferenceOptions(), device=CPU)
    assert whole.shape == (1, 3, *grid_size(50, 71))
    net = LocalNet()
    options = InferenceOptions(mode="slide", window=16, stride=12, batch_size=3)
    slide = batch_scores([image], net, options=options, device=CPU)
    torch.testing.assert_close(slide, whole, atol=1e-5, rtol=0)
    assert max(s[0] for s in net.inputs) <= 3  # batches of windows
    assert all(s[-2] <= 16 and s[-1] <= 16 for s in net.inputs)  # memory follows the window
    # every window position covered: 4 rows x 5 columns of windows for 52 x 72 padded pixels
    assert sum(s[0] for s in net.inputs) == len(window_origins(50, 16, 12)) * len(
        window_origins(71, 16, 12)
    )


def test_overlaps_are_averaged():
    """A network that answers 1 for the first window it sees and 3 for the second gives 2 where
    both overlap."""
    calls = []

    def net(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.full((x.shape[0], 1, x.shape[-2] // 4, x.shape[-1] // 4), 2.0 * len(calls) - 1)

    options = InferenceOptions(mode="slide", window=16, stride=8, batch_size=1)
    got = batch_scores([_image(16, 24)], net, options=options, device=CPU)[0, 0]
    assert got[:, :2].eq(1).all() and got[:, 2:4].eq(2).all() and got[:, 4:].eq(3).all()


def test_flip_maps_back_onto_the_same_cells():
    image = _image(22, 37)
    plain = batch_scores([image], LocalNet(), options=InferenceOptions(), device=CPU)
    net = LocalNet()
    flipped = batch_scores([image], net, options=InferenceOptions(flip=True), device=CPU)
    torch.testing.assert_close(flipped, plain, atol=1e-5, rtol=0)
    assert len(net.inputs) == 2
    slide = InferenceOptions(mode="slide", window=16, stride=8, flip=True)
    torch.testing.assert_close(
        batch_scores([image], LocalNet(), options=slide, device=CPU), plain, atol=1e-5, rtol=0
    )


def test_resize_and_scales_answer_on_the_original_grid():
    image = _image(100, 60)
    net = LocalNet()
    options = InferenceOptions(mode="resize", size=32, max_size=40)
    got = batch_scores([image, image], net, options=options, device=CPU)
    assert got.shape == (2, 3, 25, 15)
    assert net.inputs == [(2, 3, 40, 24)]  # 0.4 x: longer side capped at 40, one batch
    net = LocalNet()
    multi = batch_scores([image], net, options=InferenceOptions(scales=(1.0, 0.5)), device=CPU)
    assert multi.shape == (1, 3, 25, 15) and net.inputs == [(1, 3, 100, 60), (1, 3, 52, 32)]
    # a flat image scores the same at every scale
    flat = np.full((40, 40, 3), 90, dtype=np.uint8)
    one = batch_scores([flat], LocalNet(), options=InferenceOptions(), device=CPU)
    two = batch_scores([flat], LocalNet(), options=InferenceOptions(scales=(0.5, 1.5)), device=CPU)
    torch.testing.assert_close(two, one, atol=1e-5, rtol=0)


def test_window_origins_cover_the_padded_side():
    assert window_origins(10, 16, 8) == [0]
    assert window_origins(50, 16, 12) == [0, 12, 24, 36]
    for length in (17, 50, 103):
        origins = window_origins(length, 16, 12)
        assert all(o % 4 == 0 for o in origins)
        assert origins[-1] + 16 == -(-length // 4) * 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "tiles"}, "Unknown mode"),
        ({"window": 30}, "multiple of 4"),
        ({"stride": 0}, "multiple of 4"),
        ({"window": 16, "stride": 32}, "stride <= window"),
        ({"size": 600, "max_size": 500}, "size <= max_size"),
        ({"scales": ()}, "scales"),
        ({"scales": (1.0, -2.0)}, "scales"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InferenceOptions(**kwargs)


def test_one_size_per_batch():
    with pytest.raises(ValueError, match="one size"):
        batch_scores(
            [_image(8, 8), _image(8, 12)], LocalNet(), options=InferenceOptions(), device=CPU
        )
