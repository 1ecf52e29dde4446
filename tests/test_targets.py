"""Targets built in collation (babelseg.data.targets): padded tensors, host counts, strides."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.data.targets import TargetSpec
from babelseg.matching.targets import MaskTargets, stack_targets

SPEC = TargetSpec(pad_multiple=4, mask_stride=1, box_stride=4)


def _panoptic(h=10, w=14):
    masks = np.zeros((3, h, w), bool)
    masks[0, :4] = True  # class 2
    masks[1, 4:, :6] = True  # class 5
    masks[2, 4:, 6:] = True  # crowd: left out
    return Sample(
        image=np.zeros((h, w, 3), np.uint8),
        dataset="pan",
        task=Task.PANOPTIC,
        annotation=Annotation.CLEAN,
        image_id="p",
        masks=masks,
        classes=np.array([2, 5, 5]),
        iscrowd=np.array([False, False, True]),
    )


def _semantic(h=8, w=8):
    semantic = np.full((h, w), 255, np.int64)
    semantic[:2], semantic[2:5] = 3, 1
    return Sample(
        image=np.zeros((h, w, 3), np.uint8),
        dataset="sem",
        task=Task.SEMANTIC,
        annotation=Annotation.NOISY,
        image_id="s",
        semantic=semantic,
    )


def _boxes():
    return Sample(
        image=np.zeros((12, 12, 3), np.uint8),
        dataset="box",
        task=Task.INSTANCE,
        annotation=Annotation.BOXES,
        image_id="b",
        boxes=np.array([[0, 4, 8, 12], [2, 2, 2.5, 9], [0, 0, 12, 12]], np.float32),
        classes=np.array([4, 1, 0]),
        iscrowd=np.array([False, False, True]),  # the 0.5-px-wide box and the crowd: left out
    )


def test_padded_targets_of_a_mixed_batch():
    batch = collate_samples([_panoptic(), _semantic(), _boxes()], targets=SPEC)
    t = batch.targets
    # batch 12 x 14 padded to the stride-4 grid 12 x 16; at most 2 targets per image
    assert t.masks.shape == (3, 2, 12, 16) and t.masks.dtype == torch.bool
    assert t.num_targets == [2, 2, 1] and t.box_only == [False, False, True]
    assert t.tasks == [Task.PANOPTIC, Task.SEMANTIC, Task.INSTANCE]
    assert t.valid.tolist() == [[True, True], [True, True], [True, False]]
    assert t.classes.tolist() == [[2, 5], [1, 3], [4, 0]]
    assert t.max_class == [5, 3, 4]
    assert int(t.masks[0, 0].sum()) == 4 * 14 and int(t.masks[0, 1].sum()) == 6 * 6
    assert int(t.masks[1, 0].sum()) == 3 * 8 and int(t.masks[1, 1].sum()) == 2 * 8  # class 1, 3
    assert not t.masks[1, :, 8:].any() and not t.masks[1, :, :, 8:].any()  # padding
    assert not t.masks[2].any()
    assert t.boxes[2, 0].tolist() == [0.0, 1.0, 2.0, 3.0]  # pixels / 4
    assert t.counts == {"num_images": 3.0, "num_masks": 4.0, "num_boxes": 1.0}


def test_coarser_mask_stride_stores_area_shares():
    spec = TargetSpec(pad_multiple=4, mask_stride=2, box_stride=4)
    t = collate_samples([_panoptic(h=8, w=8)], targets=spec).targets
    assert t.masks.shape == (1, 2, 4, 4) and t.masks.dtype == torch.float32
    full = collate_samples([_panoptic(h=8, w=8)], targets=SPEC).targets.masks.float()
    expected = torch.nn.functional.avg_pool2d(full[0], 2)
    torch.testing.assert_close(t.masks[0], expected)
    assert float(t.masks[0, 1].sum()) == pytest.approx(4 * 6 / 4)  # area kept


def test_bad_specs_and_missing_semantic_maps_are_errors():
    with pytest.raises(ValueError, match="mask_stride 3 must divide pad_multiple 4"):
        TargetSpec(pad_multiple=4, mask_stride=3)
    with pytest.raises(ValueError, match="box_stride must be >= 1"):
        TargetSpec(box_stride=0)
    no_map = Sample(
        image=np.zeros((4, 4, 3), np.uint8),
        dataset="sem",
        task=Task.SEMANTIC,
        annotation=Annotation.CLEAN,
        image_id="x",
    )
    with pytest.raises(ValueError, match="needs a semantic map"):
        collate_samples([no_map], targets=SPEC)


def test_workers_build_the_same_targets_and_to_keeps_host_fields():
    samples = [_panoptic(), _semantic(), _boxes()]
    loader = DataLoader(
        samples, batch_size=3, num_workers=1, collate_fn=partial(collate_samples, targets=SPEC)
    )
    (from_worker,) = list(loader)
    direct = collate_samples(samples, targets=SPEC).targets
    for name in ("classes", "valid", "masks", "boxes"):
        assert torch.equal(getattr(from_worker.targets, name), getattr(direct, name))
    moved = from_worker.to("cpu", non_blocking=True).targets
    assert moved.counts == direct.counts and moved.num_targets == direct.num_targets
    assert collate_samples(samples).targets is None  # no spec, no targets


def test_per_image_targets_stack_into_the_batch_form():
    targets = [
        MaskTargets(classes=torch.tensor([1]), masks=torch.ones(1, 4, 4, dtype=torch.bool)),
        MaskTargets(
            classes=torch.tensor([0, 2]), boxes=torch.tensor([[0.0, 0, 1, 1]] * 2), box_only=True
        ),
    ]
    t = stack_targets(targets)
    assert t.masks.shape == (2, 2, 4, 4) and t.num_targets == [1, 2] and t.max_class == [1, 2]
    assert t.counts == {"num_images": 2.0, "num_masks": 1.0, "num_boxes": 2.0}
    with pytest.raises(ValueError, match="different resolutions"):
        stack_targets(
            [targets[0], MaskTargets(classes=torch.tensor([0]), masks=torch.ones(1, 8, 8))]
        )
