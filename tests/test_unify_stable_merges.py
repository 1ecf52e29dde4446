"""Cross-dataset validation's merge rules: mutual best matches, and the stable matching by
deferred acceptance (``recipe.autounify.merge_rule``), which keeps every mutual pair and can also
pair a label whose best match is a catch-all held by a better partner."""

import numpy as np
import pytest

from babelseg.recipes.autounify_config import AutoUnifyConfig
from babelseg.unify.node_count import mutual_pairs, stable_pairs

# B = (table, wall), A = (background, dining table); last columns: "unlabelled".
FORWARD = np.array(  # B's labels in A's
    [
        [0.39, 0.38, 0.05],  # table: "background" first, "dining table" a close second
        [0.60, 0.02, 0.30],  # wall: inside background
    ]
)
BACKWARD = np.array(  # A's labels in B's
    [
        [0.20, 0.55, 0.25],  # background: mostly wall
        [0.40, 0.05, 0.30],  # dining table: table
    ]
)


def test_mutual_best_matches_leave_the_table_out():
    assert mutual_pairs(FORWARD, BACKWARD) == [(1, 0)]


def test_deferred_acceptance_pairs_the_table_with_its_second_choice():
    assert stable_pairs(FORWARD, BACKWARD) == [(0, 1), (1, 0)]


def test_a_label_that_prefers_unlabelled_is_not_paired():
    forward = np.array([[0.2, 0.1, 0.7]])  # mostly unlabelled in A
    backward = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert stable_pairs(forward, backward) == [] == mutual_pairs(forward, backward)
    refused = np.array([[0.1, 0.9], [0.1, 0.9]])  # A's labels prefer "unlabelled" to it
    assert stable_pairs(np.array([[0.6, 0.3, 0.1]]), refused) == []


@pytest.mark.parametrize("seed", range(20))
def test_every_mutual_pair_is_stable_and_no_label_is_paired_twice(seed):
    rng = np.random.default_rng(seed)
    forward, backward = rng.random((5, 7)), rng.random((6, 6))
    stable = stable_pairs(forward, backward)
    assert set(mutual_pairs(forward, backward)) <= set(stable)
    assert len({b for b, _ in stable}) == len(stable) == len({a for _, a in stable})
    for b, a in stable:  # no blocking pair: nobody both prefer each other to what they have
        for a2 in range(6):
            if forward[b, a2] > max(forward[b, a], forward[b, -1]):
                holder = [b2 for b2, x in stable if x == a2]
                mine = backward[a2, b]
                assert mine <= backward[a2, -1] or (holder and backward[a2, holder[0]] >= mine)


def test_merge_rule_is_checked():
    assert AutoUnifyConfig().merge_rule == "stable"
    with pytest.raises(ValueError, match="merge_rule"):
        AutoUnifyConfig(merge_rule="greedy")
