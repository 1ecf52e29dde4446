"""DaTaSeg's MERGE on hand-built proposals."""

from __future__ import annotations

import torch

from babelseg.matching.merge import ABSENT_LOGIT, merge_proposals


def _proposals() -> tuple[torch.Tensor, torch.Tensor]:
    # K = 3 classes + background. Proposals 0 and 1 predict class 1, proposal 2 class 0.
    class_logits = torch.tensor([[0.0, 4.0, 1.0, 0.0], [1.0, 2.0, 0.0, 0.0], [3.0, 0.0, 0.0, 1.0]])
    mask_logits = torch.tensor(
        [
            [[1.0, -2.0], [0.5, 3.0]],
            [[-1.0, 5.0], [0.0, 2.0]],
            [[7.0, 7.0], [-7.0, -7.0]],
        ]
    )
    return mask_logits, class_logits


def test_stuff_proposals_of_one_class_become_one() -> None:
    mask_logits, class_logits = _proposals()
    # Panoptic: classes 1 and 2 are stuff (merged), class 0 a thing.
    merged = merge_proposals(mask_logits, class_logits, torch.tensor([False, True, True]))
    # Kept first (proposal 2), then one output per merged class (1, then 2).
    assert merged.mask_logits.shape == (3, 2, 2)
    assert merged.merged_class.tolist() == [-1, 1, 2]
    assert merged.present.tolist() == [True, True, False]
    assert merged.source.tolist() == [1, 1, 0]
    torch.testing.assert_close(merged.mask_logits[0], mask_logits[2])
    torch.testing.assert_close(merged.mask_logits[1], torch.tensor([[1.0, 5.0], [0.5, 3.0]]))
    torch.testing.assert_close(merged.class_logits[1], torch.tensor([0.5, 3.0, 0.5, 0.0]))
    # Class 2: no proposal predicts it.
    torch.testing.assert_close(merged.mask_logits[2], torch.full((2, 2), ABSENT_LOGIT))
    torch.testing.assert_close(merged.class_logits[2], torch.zeros(4))


def test_semantic_merges_every_class_and_keeps_background_proposals() -> None:
    mask_logits, class_logits = _proposals()
    background = torch.tensor([[0.0, 0.0, 0.0, 9.0]])
    mask_logits = torch.cat([mask_logits, torch.zeros(1, 2, 2)])
    class_logits = torch.cat([class_logits, background])
    merged = merge_proposals(mask_logits, class_logits, torch.ones(3, dtype=torch.bool))
    assert merged.merged_class.tolist() == [-1, 0, 1, 2]  # the background proposal is kept
    assert merged.source.tolist() == [2, 2, 1, 0]
    torch.testing.assert_close(merged.mask_logits[1], mask_logits[2])  # class 0: alone
    torch.testing.assert_close(merged.class_logits[1], class_logits[2])


def test_instance_merges_nothing() -> None:
    mask_logits, class_logits = _proposals()
    merged = merge_proposals(mask_logits, class_logits, torch.zeros(3, dtype=torch.bool))
    torch.testing.assert_close(merged.mask_logits, mask_logits)
    torch.testing.assert_close(merged.class_logits, class_logits)
    assert merged.merged_class.tolist() == [-1, -1, -1]
    assert merged.source.tolist() == [0, 1, 2]


def test_gradients_go_to_the_maximum_and_to_every_averaged_class_logit() -> None:
    mask_logits, class_logits = _proposals()
    mask_logits.requires_grad_(True)
    class_logits.requires_grad_(True)
    merged = merge_proposals(mask_logits, class_logits, torch.tensor([False, True, True]))
    (merged.mask_logits[1].sum() + merged.class_logits[1].sum()).backward()
    # Pixel maxima of class 1: proposal 0 at (0,0), (1,0), (1,1); proposal 1 at (0,1).
    torch.testing.assert_close(
        mask_logits.grad[:2], torch.tensor([[[1.0, 0.0], [1.0, 1.0]], [[0.0, 1.0], [0.0, 0.0]]])
    )
    assert float(mask_logits.grad[2].abs().sum()) == 0.0
    torch.testing.assert_close(class_logits.grad[:2], torch.full((2, 4), 0.5))
