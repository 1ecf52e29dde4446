"""Initial unified classes from cross-dataset validation on hand-made associations."""

import numpy as np

from babelseg.unify.node_count import initial_unified_classes, merge_groups, shares


def _assoc():
    # A: [road (road+lane), car]; B: [road, lane, car]; C: [background (road+lane), car]
    A = np.array
    return {
        "A": {
            "A": A([[95, 5], [5, 95]]),
            "B": A([[80, 18, 2], [5, 5, 90]]),  # B's classifier finds lanes in 18% of A-road
            "C": A([[97, 3], [10, 90]]),
        },
        "B": {
            "A": A([[95, 5], [90, 10], [4, 96]]),
            "B": A([[90, 8, 2], [8, 90, 2], [2, 2, 96]]),
            "C": A([[96, 4], [92, 8], [6, 94]]),
        },
        "C": {
            "A": A([[94, 6], [7, 93]]),
            "B": A([[75, 20, 5], [5, 5, 90]]),
            "C": A([[95, 5], [5, 95]]),
        },
    }


def test_shares_are_row_normalised():
    s = shares(_assoc(), "A", "B")
    assert np.allclose(s[0], [0.8, 0.18, 0.02])


def test_mutual_best_labels_merge_and_lane_stays_its_own_class():
    sizes = {"A": 2, "B": 3, "C": 2}
    groups = merge_groups(_assoc(), ["A", "B", "C"], sizes, min_share=0.3)
    assert groups == [{"A": 0, "B": 0, "C": 0}, {"A": 1, "B": 2, "C": 1}, {"B": 1}]
    classes = initial_unified_classes(_assoc(), ["A", "B", "C"], sizes)
    # lane maps to A's road and C's background: A's and C's classifiers call 90% / 92% of lane
    # pixels road / background, B's lane classifier finds lanes in 18% / 20% of those labels'
    # pixels: sqrt(0.9 * 0.18) = 0.40 and sqrt(0.92 * 0.2) = 0.43, both >= 0.08
    assert classes == [
        {"A": 0, "B": 0, "C": 0},
        {"A": 1, "B": 2, "C": 1},
        {"A": 0, "B": 1, "C": 0},
    ]
    assert len(classes) == 3  # the initial N


def test_a_class_one_dataset_never_labels_maps_to_none_there():
    assoc = _assoc()
    # B's lane classifier finds no lanes in C's background: C leaves lanes unlabelled (C's car
    # scores sqrt(0.08 * 0.05) = 0.063 < 0.08)
    assoc["C"]["B"] = np.array([[95, 0, 5], [5, 5, 90]])
    classes = initial_unified_classes(assoc, ["A", "B", "C"], {"A": 2, "B": 3, "C": 2})
    assert classes[2] == {"A": 0, "B": 1, "C": None}


def test_a_single_coarse_label_gathered_by_other_classes_is_dropped():
    A = np.array
    # A: [road, lane]; B: [ground (road+lane)] with a weak match both ways (no merge)
    assoc = {
        "A": {"A": A([[95, 5], [5, 95]]), "B": A([[100], [100]])},
        "B": {"A": A([[50, 50]]), "B": A([[100]])},
    }
    groups = merge_groups(assoc, ["A", "B"], {"A": 2, "B": 1}, min_share=0.6)
    assert len(groups) == 3
    classes = initial_unified_classes(assoc, ["A", "B"], {"A": 2, "B": 1}, min_share=0.6)
    assert classes == [{"A": 0, "B": 0}, {"A": 1, "B": 0}]


def test_identical_label_texts_tip_a_weak_visual_match_into_a_merge():
    A = np.array
    # A: [pole, wall]; B: [pole, building]: a young classifier calls most pole pixels wall
    assoc = {
        "A": {"A": A([[90, 10], [5, 95]]), "B": A([[35, 65], [5, 95]])},
        "B": {"A": A([[30, 70], [5, 95]]), "B": A([[90, 10], [5, 95]])},
    }
    sizes = {"A": 2, "B": 2}
    assert len(merge_groups(assoc, ["A", "B"], sizes)) == 3  # walls merge, poles do not
    sim = {"A": {"B": A([[1.0, 0.3], [0.3, 0.7]])}, "B": {"A": A([[1.0, 0.3], [0.3, 0.7]])}}
    # pole-pole: 0.35 + 0.5 (cos 1) beats 0.65 + 0 (cos 0.3, below the 0.6 floor)
    groups = merge_groups(assoc, ["A", "B"], sizes, text_similarity=sim, text_weight=0.5)
    assert groups == [{"A": 0, "B": 0}, {"A": 1, "B": 1}]
