"""torch Datasets that read, then augment, samples with reproducible randomness.

Randomness contract (exact resume and DDP): the augmentation of a sample is seeded by
``default_rng([seed, 1, sample_index, call_seed])``, where ``seed`` is the dataset's own seed and
``call_seed`` comes from the batch sampler (``MultiDatasetBatchSampler.indices``: one seed per
global slot, a pure function of the sampler seed and the step). Nothing depends on worker ids,
the global RNG state, the number of ranks or how many steps ran before. A plain integer index
uses ``default_rng([seed, 0, sample_index])`` (the same augmentation on every call: meant for
evaluation, where the pipeline has no randomness anyway).

Training wiring::

    datasets = [AugmentedDataset(reader, build_augmentation(decl.augmentation, train=True),
                                 seed=cfg.seed) for reader, decl in ...]
    multi = MultiDataset(datasets)
    sampler = MultiDatasetBatchSampler(multi.sizes, batch_size=..., rank=..., world_size=...)
    sampler.start_step = resumed_step
    loader = DataLoader(multi, batch_sampler=sampler, collate_fn=collate_samples, num_workers=...)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from babelseg.data.augment import Augmentation
from babelseg.data.readers.base import DatasetReader
from babelseg.data.sample import Sample


def _check_index(index: int, size: int, name: str) -> int:
    i = int(index)
    if not 0 <= i < size:
        raise IndexError(f"Sample index {i} out of range for dataset '{name}' of {size} samples.")
    return i


class AugmentedDataset(Dataset):
    """One dataset split whose samples come out augmented.

    Args:
        reader: The split's reader.
        augmentation: The dataset's pipeline (``build_augmentation``).
        seed: Non-negative seed of this dataset's augmentation randomness.

    Indexing: ``ds[i]`` or ``ds[(i, call_seed)]`` returns the augmented Sample ``i`` (see the
    module docstring for how the randomness is seeded).
    """

    def __init__(self, reader: DatasetReader, augmentation: Augmentation, *, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        self.reader = reader
        self.augmentation = augmentation
        self.seed = int(seed)

    @property
    def name(self) -> str:
        return self.reader.name

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int | tuple[int, int]) -> Sample:
        if isinstance(index, tuple):
            if len(index) != 2:
                raise ValueError(f"Expected (sample_index, call_seed), got {index!r}.")
            i = _check_index(index[0], len(self), self.name)
            call_seed = int(index[1])
            if call_seed < 0:
                raise ValueError(f"call_seed must be non-negative, got {call_seed}.")
            rng = np.random.default_rng([self.seed, 1, i, call_seed])
        else:
            i = _check_index(index, len(self), self.name)
            rng = np.random.default_rng([self.seed, 0, i])
        return self.augmentation(self.reader[i], rng)


class MultiDataset(Dataset):
    """Several AugmentedDatasets addressed by ``(dataset index, sample index[, call_seed])``.

    Args:
        datasets: The datasets, numbered as in the batch sampler.

    Indexing: ``(d, i)``, ``(d, i, call_seed)`` (what ``MultiDatasetBatchSampler`` yields), or a
    flat integer over the concatenation (dataset 0 first), for plain samplers.
    """

    def __init__(self, datasets: Sequence[AugmentedDataset]) -> None:
        if not datasets:
            raise ValueError("MultiDataset needs at least one dataset.")
        self.datasets = list(datasets)
        self._offsets = np.cumsum([0] + [len(d) for d in self.datasets])

    @property
    def sizes(self) -> list[int]:
        """Number of samples of each dataset (the batch sampler's ``sizes``)."""
        return [len(d) for d in self.datasets]

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.datasets]

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, index: int | tuple[int, ...]) -> Sample:
        if isinstance(index, tuple):
            if len(index) not in (2, 3):
                raise ValueError(
                    f"Expected (dataset, sample) or (dataset, sample, call_seed), got {index!r}."
                )
            d = _check_index(index[0], len(self.datasets), "<dataset list>")
            inner = (int(index[1]), int(index[2])) if len(index) == 3 else int(index[1])
            return self.datasets[d][inner]
        flat = _check_index(index, len(self), "<concatenation>")
        d = int(np.searchsorted(self._offsets, flat, side="right") - 1)
        return self.datasets[d][flat - int(self._offsets[d])]
