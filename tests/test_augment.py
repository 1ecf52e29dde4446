"""Dataset-aware augmentation: targets stay consistent with the image, padding is ignore."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from babelseg.data.augment import AUGMENT_KEYS, build_augmentation
from babelseg.data.readers.coco_instances import masks_to_boxes as boxes_from_masks
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.labels.space import IGNORE_INDEX

STEP = 40  # red channel = STEP * label


def _block_sample(h: int = 40, w: int = 60) -> Sample:
    """Labels in 10x10 blocks; the red channel encodes the label, green = 7 everywhere."""
    yy, xx = np.mgrid[0:h, 0:w]
    semantic = ((yy // 10) + (xx // 10)) % 6
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[..., 0] = STEP * semantic
    image[..., 1] = 7
    return Sample(
        image=image,
        dataset="blocks",
        task=Task.SEMANTIC,
        annotation=Annotation.CLEAN,
        image_id="b",
        semantic=semantic.astype(np.int64),
    )


def _instance_sample(*, boxes_only: bool = False) -> Sample:
    """A 40x40 image with four 6x8 instances near the corners; green = 50 * (class + 1)."""
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    masks = np.zeros((4, 40, 40), dtype=bool)
    corners = [(2, 3), (2, 29), (30, 3), (30, 29)]
    for k, (y, x) in enumerate(corners):
        masks[k, y : y + 6, x : x + 8] = True
        image[y : y + 6, x : x + 8, 1] = 50 * (k + 1)
    common = dict(
        image=image,
        dataset="inst",
        image_id="i",
        classes=np.arange(4, dtype=np.int64),
        iscrowd=np.array([False, True, False, True]),
    )
    if boxes_only:
        return Sample(
            task=Task.INSTANCE, annotation=Annotation.BOXES, boxes=boxes_from_masks(masks), **common
        )
    return Sample(
        task=Task.PANOPTIC,
        annotation=Annotation.CLEAN,
        masks=masks,
        boxes=boxes_from_masks(masks),
        segment_ids=np.arange(4) + 10,
        **common,
    )


def test_boxes_from_masks_pixel_edges():
    m = np.zeros((1, 6, 8), dtype=bool)
    m[0, 2:5, 3:7] = True
    np.testing.assert_array_equal(boxes_from_masks(m), [[3, 2, 7, 5]])


@pytest.mark.parametrize("seed", range(6))
def test_semantic_matches_image_after_scale_crop_flip(seed):
    aug = build_augmentation(
        {"resize_short": 40, "scale": [0.5, 2.0], "crop": [32, 48], "flip": True}, train=True
    )
    out = aug(_block_sample(), seed)
    assert out.image.shape == (32, 48, 3) and out.semantic.shape == (32, 48)
    valid = out.extras["valid"]
    sem = out.semantic
    # interior pixels: a 3x3 neighbourhood of one label, away from bilinear blending (the crop
    # edge is excluded: its neighbours outside the crop are unseen)
    interior = ndimage.maximum_filter(sem, 3) == ndimage.minimum_filter(sem, 3)
    interior &= ndimage.binary_erosion(valid, iterations=1, border_value=0)
    assert interior.sum() > 0.3 * valid.sum()
    decoded = np.rint(out.image[..., 0] / STEP).astype(np.int64)
    np.testing.assert_array_equal(decoded[interior], sem[interior])
    assert np.all(sem[~valid] == IGNORE_INDEX)
    assert np.all(out.image[~valid] == 0)


def test_padding_is_ignore_and_image_is_kept_top_left():
    sample = _block_sample(h=10, w=12)
    out = build_augmentation({"crop": [16, 20]}, train=True)(sample, 0)
    assert out.image.shape == (16, 20, 3)
    np.testing.assert_array_equal(out.image[:10, :12], sample.image)
    np.testing.assert_array_equal(out.semantic[:10, :12], sample.semantic)
    assert np.all(out.semantic[10:] == IGNORE_INDEX) and np.all(out.semantic[:, 12:] == 255)
    assert np.all(out.image[10:] == 0) and np.all(out.image[:, 12:] == 0)
    expected_valid = np.zeros((16, 20), dtype=bool)
    expected_valid[:10, :12] = True
    np.testing.assert_array_equal(out.extras["valid"], expected_valid)


def test_padding_of_instance_masks_is_zero():
    out = build_augmentation({"crop": [48, 44]}, train=True)(_instance_sample(), 3)
    assert out.masks.shape == (4, 48, 44)
    assert not out.masks[:, 40:].any() and not out.masks[:, :, 40:].any()
    np.testing.assert_array_equal(out.boxes, _instance_sample().boxes)


def _flipped(out: Sample, original: Sample) -> bool:
    return bool(np.array_equal(out.image, original.image[:, ::-1]))


def test_horizontal_flip_mirrors_a_known_box_exactly():
    aug = build_augmentation({"flip": True}, train=True)
    for boxes_only in (False, True):
        sample = _instance_sample(boxes_only=boxes_only)
        outs = [aug(sample, seed) for seed in range(8)]
        flipped = [o for o in outs if _flipped(o, sample)]
        kept = [o for o in outs if np.array_equal(o.image, sample.image)]
        assert flipped and kept and len(flipped) + len(kept) == 8
        # instance 0 covers rows 2..7, columns 3..10 -> box (3, 2, 11, 8); W = 40
        np.testing.assert_allclose(flipped[0].boxes[0], [29, 2, 37, 8], atol=1e-4)
        np.testing.assert_allclose(kept[0].boxes[0], [3, 2, 11, 8], atol=1e-4)
        if not boxes_only:
            np.testing.assert_array_equal(flipped[0].masks, sample.masks[:, :, ::-1])


@pytest.mark.parametrize("seed", range(5))
def test_crop_drops_vanished_instances_and_boxes_equal_mask_extents(seed):
    aug = build_augmentation({"crop": [20, 20], "flip": True}, train=True)
    out = aug(_instance_sample(), seed)
    n = len(out.classes)
    assert n < 4  # a 20x20 crop cannot hold all four corners (it may hold none)
    assert out.masks.shape == (n, 20, 20) and out.boxes.shape == (n, 4)
    assert len(out.iscrowd) == len(out.segment_ids) == n
    for m, c, crowd, seg, box in zip(
        out.masks, out.classes, out.iscrowd, out.segment_ids, out.boxes
    ):
        assert m.any()
        ys, xs = np.nonzero(m)
        np.testing.assert_array_equal(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert np.all(out.image[..., 1][m] == 50 * (c + 1))  # the mask still covers its object
        assert crowd == (c % 2 == 1) and seg == c + 10


@pytest.mark.parametrize("seed", range(5))
def test_boxes_only_crop_clips_and_drops_boxes_with_their_classes(seed):
    aug = build_augmentation({"crop": [20, 20]}, train=True)
    out = aug(_instance_sample(boxes_only=True), seed)
    n = len(out.boxes)
    assert n < 4 and len(out.classes) == len(out.iscrowd) == n
    assert out.masks is None
    for box, c, crowd in zip(out.boxes, out.classes, out.iscrowd):
        x0, y0, x1, y1 = np.rint(box).astype(int)
        assert 0 <= x0 < x1 <= 20 and 0 <= y0 < y1 <= 20
        assert np.all(out.image[y0:y1, x0:x1, 1] == 50 * (c + 1))  # clipped box is all object
        assert crowd == (c % 2 == 1)


def test_crop_keeps_exactly_the_visible_boxes():
    """Known answer: find the crop offset from the image, then the visible objects are known."""
    sample = _instance_sample(boxes_only=True)
    image = sample.image.copy()
    image[..., 2] = np.arange(40)[None, :]  # blue = column, red = row: locate the crop
    image[..., 0] = np.arange(40)[:, None]
    sample = sample.replace(image=image)
    aug = build_augmentation({"crop": [20, 20]}, train=True)
    for seed in range(20):
        out = aug(sample, seed)
        y0, x0 = int(out.image[0, 0, 0]), int(out.image[0, 0, 2])
        expected = []
        for k, box in enumerate(sample.boxes):
            clipped = np.clip(box - [x0, y0, x0, y0], 0, 20)
            if clipped[2] > clipped[0] and clipped[3] > clipped[1]:
                expected.append((k, clipped))
        assert out.classes.tolist() == [k for k, _ in expected]
        np.testing.assert_allclose(
            out.boxes.reshape(-1, 4), [b for _, b in expected] or np.zeros((0, 4)), atol=1e-3
        )


def test_same_seed_same_result_and_generator_input():
    spec = {"scale": [0.5, 1.5], "crop": [24, 24], "flip": True, "color_jitter": 0.3, "blur": 0.5}
    aug = build_augmentation(spec, train=True)
    sample = _instance_sample()
    a, b = aug(sample, 11), aug(sample, 11)
    for key in ("image", "masks", "boxes", "classes"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    g1, g2 = aug(sample, np.random.default_rng(4)), aug(sample, np.random.default_rng(4))
    np.testing.assert_array_equal(g1.image, g2.image)
    others = [aug(sample, s).image for s in range(12, 16)]
    assert any(not np.array_equal(a.image, o) for o in others)


def test_color_jitter_changes_image_only():
    sample = _block_sample()
    out = build_augmentation({"color_jitter": 0.5}, train=True)(sample, 1)
    assert not np.array_equal(out.image, sample.image)
    np.testing.assert_array_equal(out.semantic, sample.semantic)


def test_eval_resizes_image_only_without_randomness():
    sample = _block_sample(h=20, w=30)
    aug = build_augmentation({"resize_short": 10, "flip": True, "crop": [8, 8]}, train=False)
    a, b = aug(sample, 0), aug(sample, 99)
    assert a.image.shape == (10, 15, 3)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.semantic, sample.semantic)  # full resolution
    assert build_augmentation({"resize_short": 10}, train=False, eval_short_side=5)(
        sample, 0
    ).image.shape == (5, 8, 3)  # 30 * 5 / 20 = 7.5 rounds up
    same = build_augmentation(None, train=False)(sample, 0)
    np.testing.assert_array_equal(same.image, sample.image)
    assert same.extras["valid"].all()


def test_default_crop_applies_when_spec_has_none():
    out = build_augmentation({}, train=True, crop=(16, 16))(_block_sample(), 0)
    assert out.image.shape == (16, 16, 3)
    out = build_augmentation({"crop": [8, 12]}, train=True, crop=(16, 16))(_block_sample(), 0)
    assert out.image.shape == (8, 12, 3)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"rotate": 10}, "unknown keys \\['rotate'\\]"),
        ({"crop": [0, 4]}, "crop"),
        ({"scale": [2.0, 1.0]}, "lo <= hi"),
        ({"flip": "yes"}, "flip"),
        ({"blur": 1.5}, "blur"),
        ({"color_jitter": {"gamma": 0.1}}, "color_jitter keys"),
    ],
)
def test_invalid_specs_name_the_problem(spec, message):
    with pytest.raises(ValueError, match=message) as info:
        build_augmentation(spec, train=True, name="street")
    assert "street" in str(info.value)
    if "rotate" in spec:
        assert all(k in str(info.value) for k in AUGMENT_KEYS)


def test_shared_augmentation_union_of_dataset_pipelines():
    from babelseg.data.augment import shared_augmentation

    declared = {
        "hi_res": {"crop": [112, 192], "scale": [0.45, 0.75], "flip": True, "color_jitter": 0.2},
        "low_res": {"crop": [96, 112], "scale": [1.4, 2.2], "color_jitter": 0.3, "blur": 0.1},
        "plain": None,
    }
    union = shared_augmentation("union", declared)
    assert union["crop"] == [112, 192]
    assert union["scale"] == [0.45, 2.2]
    assert union["flip"] is True
    assert union["color_jitter"] == {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3}
    assert union["blur"] == 0.1
    once = {"crop": [64, 64], "flip": True}
    assert shared_augmentation(once, declared) == once
    with pytest.raises(ValueError, match="union"):
        shared_augmentation("intersection", declared)
    with pytest.raises(ValueError, match="shared"):
        shared_augmentation({"crops": [64, 64]}, declared)
