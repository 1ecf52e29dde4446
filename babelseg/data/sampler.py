"""Step-based multi-dataset batch sampler, exact under resume and data-parallel sharding.

Datasets are numbered ``0..n-1``. For global step ``s`` the sampler draws a *global* batch of
``batch_size * world_size`` slots identically on every rank; rank ``r`` keeps the slots
``[r * batch_size, (r + 1) * batch_size)``. Everything is a pure function of ``(seed, step)``:

- **Which dataset fills each slot.** Steps are grouped in blocks of ``BLOCK_STEPS``; block ``b``
  draws the datasets of all its slots from ``default_rng([seed, 0, b])`` with the sampling
  ratios. ``mixed`` draws every slot independently; ``per_dataset`` draws one dataset per step
  for the whole global batch (DaTaSeg.txt section 3.5).
- **Which sample of that dataset.** The ``k``-th draw ever made from dataset ``d`` (``k`` counts
  earlier steps, then earlier slots of the same step) takes position ``k % size`` of the
  permutation ``default_rng([seed, 2, d, k // size]).permutation(size)``: every dataset is walked
  without repetition within each of its own epochs, and reshuffled per epoch. ``k`` comes from
  per-block dataset counts, cached as prefix sums, so in-order requests cost O(1) amortised and
  a resume at step ``s`` costs one vectorised pass over ``s / BLOCK_STEPS`` blocks.
- **Augmentation seed of each slot.** ``default_rng([seed, 1, b])`` draws one 63-bit seed per
  slot of block ``b``; ``indices(step)`` returns it as the third element so that the dataset
  augments a slot identically whatever the rank count, worker count or resume point.

Use ``indices`` (triples) with ``babelseg.data.torch_dataset.MultiDataset`` as the
``batch_sampler`` of a ``DataLoader``; ``batch`` gives the ``(dataset, sample)`` pairs alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

MODES = ("mixed", "per_dataset")
RATIO_PRESETS = ("proportional", "uniform")
BLOCK_STEPS = 256
"""Steps whose dataset choices are drawn together (changing it changes every batch)."""

_TAG_CHOICE, _TAG_AUG, _TAG_PERM = 0, 1, 2
_AUG_SEED_BOUND = 2**63


def resolve_ratios(sizes: Sequence[int], ratios: str | Sequence[float]) -> np.ndarray:
    """Sampling probabilities of the datasets.

    Args:
        sizes: Number of samples of each dataset.
        ratios: ``"proportional"`` (to sizes), ``"uniform"``, or one non-negative weight per
            dataset (normalised to sum 1).
    Returns:
        ``float64[n]`` probabilities summing to 1.
    Raises:
        ValueError: unknown preset, wrong length, negative or all-zero weights.
    """
    n = len(sizes)
    if isinstance(ratios, str):
        if ratios == "proportional":
            weights = np.asarray(sizes, dtype=np.float64)
        elif ratios == "uniform":
            weights = np.ones(n, dtype=np.float64)
        else:
            raise ValueError(
                f"Unknown sampling ratios '{ratios}'; use one of {list(RATIO_PRESETS)} or a list "
                "of one weight per dataset."
            )
    else:
        weights = np.asarray(list(ratios), dtype=np.float64)
        if weights.shape != (n,):
            raise ValueError(
                f"Sampling ratios {list(ratios)} give {weights.size} weights for {n} datasets; "
                "give one weight per dataset."
            )
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"Sampling ratios {list(ratios)} must be finite and non-negative.")
    total = weights.sum()
    if total <= 0:
        raise ValueError(f"Sampling ratios {list(weights)} sum to zero; give a positive weight.")
    return weights / total


class MultiDatasetBatchSampler:
    """Draws the samples of each training step from several datasets.

    Args:
        sizes: ``sizes[i]`` is the number of samples of dataset ``i`` (all positive).
        batch_size: Samples per step on this rank.
        ratios: ``"proportional"``, ``"uniform"`` or one weight per dataset.
        mode: ``"mixed"`` (each slot's dataset drawn by the ratios) or ``"per_dataset"`` (one
            dataset per global batch, drawn by the ratios).
        seed: Non-negative seed; with the step it fixes every batch.
        rank: This process's rank.
        world_size: Number of data-parallel processes.

    Attributes:
        start_step: First step ``__iter__`` yields (set it when resuming).
        probabilities: ``float64[n]`` normalised sampling ratios.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        *,
        batch_size: int,
        ratios: str | Sequence[float] = "proportional",
        mode: str = "mixed",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.sizes = np.asarray([int(s) for s in sizes], dtype=np.int64)
        if self.sizes.size == 0:
            raise ValueError("MultiDatasetBatchSampler needs at least one dataset size.")
        if np.any(self.sizes <= 0):
            bad = [i for i, s in enumerate(self.sizes) if s <= 0]
            raise ValueError(f"Datasets {bad} have no samples (sizes {list(sizes)}); remove them.")
        if mode not in MODES:
            raise ValueError(f"Unknown sampling mode '{mode}'; use one of {list(MODES)}.")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        if world_size <= 0 or not 0 <= rank < world_size:
            raise ValueError(
                f"Need 0 <= rank < world_size, got rank={rank}, world_size={world_size}."
            )
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}.")
        self.probabilities = resolve_ratios(self.sizes.tolist(), ratios)
        self.batch_size = int(batch_size)
        self.mode = mode
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start_step = 0
        n = len(self.sizes)
        self._prefix: list[np.ndarray] = [np.zeros(n, dtype=np.int64)]  # counts before block b
        self._blocks: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._perms: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    @property
    def num_datasets(self) -> int:
        return len(self.sizes)

    @property
    def global_batch_size(self) -> int:
        """Slots per step over all ranks."""
        return self.batch_size * self.world_size

    # ------------------------------------------------------------------ random streams
    def _choices(self, block: int) -> np.ndarray:
        """``int64[BLOCK_STEPS, G]`` dataset of every slot of every step of ``block``."""
        rng = np.random.default_rng([self.seed, _TAG_CHOICE, block])
        n, g = self.num_datasets, self.global_batch_size
        if self.mode == "mixed":
            return rng.choice(n, size=(BLOCK_STEPS, g), p=self.probabilities)
        per_step = rng.choice(n, size=BLOCK_STEPS, p=self.probabilities)
        return np.repeat(per_step[:, None], g, axis=1)

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Choices ``int64[BLOCK_STEPS, G]`` and counts before each step ``int64[BLOCK_STEPS, n]``
        (relative to the block start), cached for the two most recent blocks."""
        if block in self._blocks:
            self._blocks.move_to_end(block)
            return self._blocks[block]
        choices = self._choices(block)
        per_step = np.stack([np.bincount(c, minlength=self.num_datasets) for c in choices])
        before = np.cumsum(per_step, axis=0) - per_step
        self._blocks[block] = (choices, before)
        if len(self._blocks) > 2:
            self._blocks.popitem(last=False)
        return choices, before

    def _counts_before_block(self, block: int) -> np.ndarray:
        """``int64[n]`` draws of each dataset in all steps before ``block``."""
        while len(self._prefix) <= block:
            b = len(self._prefix) - 1
            totals = np.bincount(self._choices(b).ravel(), minlength=self.num_datasets)
            self._prefix.append(self._prefix[-1] + totals)
        return self._prefix[block]

    def _permutation(self, dataset: int, epoch: int) -> np.ndarray:
        key = (dataset, epoch)
        if key not in self._perms:
            rng = np.random.default_rng([self.seed, _TAG_PERM, dataset, epoch])
            self._perms[key] = rng.permutation(int(self.sizes[dataset]))
            if len(self._perms) > 2 * self.num_datasets + 2:
                self._perms.popitem(last=False)
        return self._perms[key]

    # ------------------------------------------------------------------ public API
    def _global(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """Datasets ``int64[G]`` and sample indices ``int64[G]`` of the global batch."""
        if step < 0:
            raise ValueError(f"step must be non-negative, got {step}.")
        block, offset = divmod(int(step), BLOCK_STEPS)
        choices, before = self._block(block)
        datasets = choices[offset]
        base = self._counts_before_block(block) + before[offset]
        samples = np.empty_like(datasets)
        for d in np.unique(datasets):
            slots = np.flatnonzero(datasets == d)
            draws = base[d] + np.arange(slots.size)
            size = int(self.sizes[d])
            for epoch in np.unique(draws // size):
                sel = draws // size == epoch
                samples[slots[sel]] = self._permutation(int(d), int(epoch))[draws[sel] % size]
        return datasets, samples

    def _rank_slice(self) -> slice:
        return slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)

    def batch(self, step: int) -> list[tuple[int, int]]:
        """This rank's ``(dataset index, sample index)`` pairs for global step ``step``."""
        datasets, samples = self._global(step)
        sl = self._rank_slice()
        return [(int(d), int(i)) for d, i in zip(datasets[sl], samples[sl])]

    def augmentation_seeds(self, step: int) -> np.ndarray:
        """``int64[batch_size]`` augmentation seeds of this rank's slots at ``step``."""
        block, offset = divmod(int(step), BLOCK_STEPS)
        rng = np.random.default_rng([self.seed, _TAG_AUG, block])
        seeds = rng.integers(_AUG_SEED_BOUND, size=(BLOCK_STEPS, self.global_batch_size))
        return seeds[offset, self._rank_slice()]

    def indices(self, step: int) -> list[tuple[int, int, int]]:
        """This rank's ``(dataset index, sample index, augmentation seed)`` triples at ``step``."""
        seeds = self.augmentation_seeds(step)
        return [(d, i, int(s)) for (d, i), s in zip(self.batch(step), seeds)]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        """Yields ``indices(step)`` for ``step = start_step, start_step + 1, ...`` forever."""
        step = int(self.start_step)
        while True:
            yield self.indices(step)
            step += 1

    def dataset_counts(self, steps: int, *, start: int = 0) -> np.ndarray:
        """``int64[n]``: samples of each dataset this rank draws in steps start..start+steps-1."""
        counts = np.zeros(self.num_datasets, dtype=np.int64)
        sl = self._rank_slice()
        step = start
        while step < start + steps:
            block, offset = divmod(step, BLOCK_STEPS)
            stop = min(BLOCK_STEPS, offset + start + steps - step)
            chosen = self._choices(block)[offset:stop, sl]
            counts += np.bincount(chosen.ravel(), minlength=self.num_datasets)
            step += stop - offset
        return counts
