"""Collation (padding, normalisation) and the torch Datasets that feed it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from babelseg.data.augment import build_augmentation
from babelseg.data.collate import IMAGENET_MEAN, IMAGENET_STD, collate_samples, normalize_image
from babelseg.data.declaration import DatasetDecl
from babelseg.data.readers.base import DatasetReader
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.data.sampler import MultiDatasetBatchSampler
from babelseg.data.torch_dataset import AugmentedDataset, MultiDataset
from babelseg.labels.space import IGNORE_INDEX, LabelSpace


def _sample(h: int, w: int, *, value: int = 0, semantic: bool = True, name: str = "d") -> Sample:
    return Sample(
        image=np.full((h, w, 3), value, dtype=np.uint8),
        dataset=name,
        task=Task.SEMANTIC,
        annotation=Annotation.CLEAN,
        image_id=f"{name}{h}x{w}",
        semantic=np.full((h, w), 1, dtype=np.int64) if semantic else None,
    )


def test_normalize_image_known_values():
    image = np.array([[[255, 0, 128]]], dtype=np.uint8)
    x = normalize_image(image)
    assert x.shape == (3, 1, 1) and x.dtype == torch.float32
    expected = [
        (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0],
        (0.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1],
        (128 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2],
    ]
    torch.testing.assert_close(x.flatten(), torch.tensor(expected))
    torch.testing.assert_close(x.flatten()[:2], torch.tensor([2.2489083, -2.0357143]))
    with pytest.raises(ValueError, match="RGB"):
        normalize_image(np.zeros((4, 4), dtype=np.uint8))


def test_collate_pads_to_the_largest_image():
    a = _sample(2, 3, value=255)
    b = _sample(4, 2, value=0, semantic=False, name="e")
    batch = collate_samples([a, b])
    assert batch.images.shape == (2, 3, 4, 3) and batch.semantic.shape == (2, 4, 3)
    assert batch.datasets == ["d", "e"] and batch.image_sizes == [(2, 3), (4, 2)]
    white = [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    torch.testing.assert_close(batch.images[0, :, 0, 0], torch.tensor(white))
    assert torch.all(batch.images[0, :, 2:] == 0) and torch.all(batch.images[1, :, :, 2:] == 0)
    expected_sem = torch.full((4, 3), IGNORE_INDEX)
    expected_sem[:2, :3] = 1
    assert torch.equal(batch.semantic[0], expected_sem)
    assert torch.all(batch.semantic[1] == IGNORE_INDEX)  # no semantic map: all ignore
    assert batch.valid.tolist() == [
        [[True] * 3, [True] * 3, [False] * 3, [False] * 3],
        [[True, True, False]] * 4,
    ]


def test_collate_respects_augmentation_padding_and_missing_semantics():
    a = _sample(2, 2)
    valid = np.array([[True, False], [True, False]])
    a = a.replace(extras={"valid": valid})
    batch = collate_samples([a])
    assert batch.valid[0].tolist() == valid.tolist()
    assert batch.semantic[0].tolist() == [[1, IGNORE_INDEX], [1, IGNORE_INDEX]]
    assert collate_samples([_sample(2, 2, semantic=False)]).semantic is None
    # evaluation: image resized, targets at full resolution -> no batched semantic
    resized = _sample(4, 4).replace(image=np.zeros((2, 2, 3), dtype=np.uint8))
    assert collate_samples([resized]).semantic is None
    with pytest.raises(ValueError, match="at least one"):
        collate_samples([])


class _ListReader(DatasetReader):
    """A reader over in-memory samples: sample i has the constant image value i."""

    def __init__(self, name: str, n: int, size: int = 12) -> None:
        decl = DatasetDecl(
            name=name,
            format="semantic-png",
            root=Path("."),
            task=Task.SEMANTIC,
            annotation=Annotation.CLEAN,
            heldout=False,
            labels_spec=None,
            splits={},
        )
        super().__init__(decl, "train", LabelSpace.from_names(["a", "b"]))
        self._samples = [_sample(size, size, value=i, name=name) for i in range(n)]

    def __len__(self) -> int:
        return len(self._samples)

    def __getitem__(self, index: int) -> Sample:
        return self._samples[index]

    def image_ids(self) -> list[str]:
        return [s.image_id for s in self._samples]


def _multi(seed: int = 0) -> MultiDataset:
    aug = build_augmentation({"crop": [8, 8], "scale": [0.8, 1.2], "flip": True}, train=True)
    return MultiDataset(
        [
            AugmentedDataset(_ListReader("p", 3), aug, seed=seed),
            AugmentedDataset(_ListReader("q", 5, size=6), aug, seed=seed),
        ]
    )


def test_multidataset_addressing():
    multi = _multi()
    assert multi.sizes == [3, 5] and len(multi) == 8 and multi.names == ["p", "q"]
    s = multi[(1, 4)]
    assert s.dataset == "q" and s.image.max() == 4  # constant image value = sample index
    assert multi[6].dataset == "q" and multi[6].image.max() == 3  # flat index 6 = q[3]
    with pytest.raises(IndexError):
        multi[(0, 3)]
    # the 6x6 images of q are padded to the 8x8 crop
    assert s.image.shape == (8, 8, 3)


def test_call_seed_decides_the_augmentation():
    multi = _multi(seed=1)
    a, b = multi[(0, 1, 123)], multi[(0, 1, 123)]
    np.testing.assert_array_equal(a.extras["valid"], b.extras["valid"])
    np.testing.assert_array_equal(a.image, b.image)
    shapes = {multi[(1, 2, k)].extras["valid"].sum() for k in range(10)}
    assert len(shapes) > 1  # the random scale of a 6x6 image changes the valid area
    with pytest.raises(ValueError, match="call_seed"):
        multi[(0, 1, -1)]


def test_dataloader_batches_equal_direct_computation():
    multi = _multi()
    sampler = MultiDatasetBatchSampler(multi.sizes, batch_size=3, ratios="uniform", seed=9)
    sampler.start_step = 5
    loader = DataLoader(multi, batch_sampler=sampler, collate_fn=collate_samples, num_workers=0)
    batch = next(iter(loader))
    expected = collate_samples([multi[t] for t in sampler.indices(5)])
    assert batch.datasets == expected.datasets
    assert torch.equal(batch.images, expected.images)
    assert torch.equal(batch.valid, expected.valid)
    assert batch.images.shape == (3, 3, 8, 8)
