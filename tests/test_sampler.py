"""MultiDatasetBatchSampler: ratios, modes, determinism, sharding, epochs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from babelseg.data.sampler import BLOCK_STEPS, MultiDatasetBatchSampler, resolve_ratios


def test_resolve_ratios_known_values():
    np.testing.assert_allclose(resolve_ratios([100, 300], "proportional"), [0.25, 0.75])
    np.testing.assert_allclose(resolve_ratios([100, 300, 7], "uniform"), [1 / 3] * 3)
    np.testing.assert_allclose(resolve_ratios([1, 1, 1], [1, 1, 2]), [0.25, 0.25, 0.5])
    np.testing.assert_allclose(resolve_ratios([5, 5], [0, 3]), [0.0, 1.0])


@pytest.mark.parametrize(
    "ratios, message",
    [
        ([1.0, -1.0], "non-negative"),
        ([0.0, 0.0], "sum to zero"),
        ([1.0], "one weight per"),
        ("sqrt", "Unknown sampling ratios"),
    ],
)
def test_resolve_ratios_errors(ratios, message):
    with pytest.raises(ValueError, match=message):
        resolve_ratios([10, 20], ratios)


def test_constructor_errors():
    with pytest.raises(ValueError, match="no samples"):
        MultiDatasetBatchSampler([3, 0], batch_size=2)
    with pytest.raises(ValueError, match="mode"):
        MultiDatasetBatchSampler([3], batch_size=2, mode="round_robin")
    with pytest.raises(ValueError, match="rank"):
        MultiDatasetBatchSampler([3], batch_size=2, rank=2, world_size=2)


@pytest.mark.parametrize(
    "ratios, expected",
    [("proportional", [0.25, 0.75]), ("uniform", [0.5, 0.5]), ([3.0, 1.0], [0.75, 0.25])],
)
def test_mixed_frequencies_follow_ratios(ratios, expected):
    s = MultiDatasetBatchSampler([100, 300], batch_size=4, ratios=ratios, seed=1)
    counts = s.dataset_counts(2000)  # 8000 draws: 4 sigma is about 0.02
    np.testing.assert_allclose(counts / counts.sum(), expected, atol=0.02)
    # dataset_counts agrees with the batches themselves
    direct = np.zeros(2, dtype=np.int64)
    for step in range(300):
        for d, _ in s.batch(step):
            direct[d] += 1
    np.testing.assert_array_equal(direct, s.dataset_counts(300))


def test_zero_weight_dataset_is_never_drawn():
    s = MultiDatasetBatchSampler([10, 10, 10], batch_size=3, ratios=[1, 0, 1])
    assert s.dataset_counts(500)[1] == 0


def test_per_dataset_mode_one_dataset_per_global_batch():
    sizes = [50, 50, 100]
    ranks = [
        MultiDatasetBatchSampler(
            sizes, batch_size=3, mode="per_dataset", seed=4, rank=r, world_size=2
        )
        for r in range(2)
    ]
    for step in range(500):
        assert len({d for r in ranks for d, _ in r.batch(step)}) == 1
    # ratios apply to steps: proportional = [0.25, 0.25, 0.5]; 5000 steps, 5 sigma about 0.035
    steps = ranks[0].dataset_counts(5000) / 3
    np.testing.assert_allclose(steps / 5000, [0.25, 0.25, 0.5], atol=0.035)


@pytest.mark.parametrize("mode", ["mixed", "per_dataset"])
def test_batch_is_a_pure_function_of_seed_and_step(mode):
    fresh = MultiDatasetBatchSampler([13, 29, 7], batch_size=5, mode=mode, seed=7)
    walked = MultiDatasetBatchSampler([13, 29, 7], batch_size=5, mode=mode, seed=7)
    history = [walked.batch(step) for step in range(57)]
    assert fresh.batch(57) == walked.batch(57)
    # across a block boundary and out of order
    far = 2 * BLOCK_STEPS + 3
    assert fresh.batch(far) == MultiDatasetBatchSampler(
        [13, 29, 7], batch_size=5, mode=mode, seed=7
    ).batch(far)
    assert [fresh.batch(step) for step in range(57)] == history
    assert fresh.indices(12) == walked.indices(12)
    other = MultiDatasetBatchSampler([13, 29, 7], batch_size=5, mode=mode, seed=8)
    assert [other.batch(step) for step in range(57)] != history


def test_iter_resumes_at_start_step():
    s = MultiDatasetBatchSampler([10, 20], batch_size=2, seed=3)
    s.start_step = 40
    got = list(itertools.islice(iter(s), 3))
    assert got == [s.indices(40), s.indices(41), s.indices(42)]
    assert all(len(t) == 3 and t[2] >= 0 for t in got[0])


@pytest.mark.parametrize("mode", ["mixed", "per_dataset"])
def test_rank_slices_concatenate_to_single_process_batch(mode):
    b = 3
    single = MultiDatasetBatchSampler([11, 5, 40], batch_size=2 * b, mode=mode, seed=2)
    ranks = [
        MultiDatasetBatchSampler([11, 5, 40], batch_size=b, mode=mode, seed=2, rank=r, world_size=2)
        for r in range(2)
    ]
    for step in [0, 1, 17, BLOCK_STEPS + 5]:
        assert ranks[0].batch(step) + ranks[1].batch(step) == single.batch(step)
        assert ranks[0].indices(step) + ranks[1].indices(step) == single.indices(step)
        assert len(ranks[0].batch(step)) == b


def test_no_repeat_within_an_epoch_and_reshuffle_between_epochs():
    sizes = [5, 23]
    s = MultiDatasetBatchSampler(sizes, batch_size=4, ratios="uniform", seed=5)
    drawn: dict[int, list[int]] = {0: [], 1: []}
    for step in range(200):  # 800 draws: about 80 epochs of dataset 0, 17 of dataset 1
        for d, i in s.batch(step):
            drawn[d].append(i)
    for d, size in enumerate(sizes):
        seq = drawn[d]
        epochs = [seq[k : k + size] for k in range(0, len(seq) - size + 1, size)]
        assert len(epochs) >= 10
        for epoch in epochs:
            assert sorted(epoch) == list(range(size))
    assert drawn[1][:23] != drawn[1][23:46]


def test_augmentation_seeds_differ_per_slot_and_step():
    s = MultiDatasetBatchSampler([4], batch_size=4, seed=0)
    seeds = [t[2] for step in range(3) for t in s.indices(step)]
    assert len(set(seeds)) == 12
