"""Initial unified classes from cross-dataset validation, on associations of a made-up world.

:func:`world_associations` plays the warm-up: each dataset labels some world classes (several
may share a label, some are left unlabelled, some never appear in its images), and each
dataset's classifier calls a world class its own label with probability ``hit``, or, for a
class its dataset does not label, the label it looks most alike (``looks_like``).
"""

import numpy as np
import pytest

from babelseg.unify.node_count import (
    containment,
    initial_unified_classes,
    map_groups,
    merge_groups,
    placement,
    presence,
    recall,
)


def world_associations(world, looks_like=None, hit=0.9):
    """``assoc[S][T]`` (``float[|L_S| + 1, |L_T|]``) for a world given as
    ``{dataset: {world class: (label or None, pixels)}}``."""
    looks_like = looks_like or {}
    labels = {
        d: list(dict.fromkeys(lab for lab, _ in w.values() if lab is not None))
        for d, w in world.items()
    }

    def classify(target, cls):
        out = np.zeros(len(labels[target]))
        own = world[target].get(cls, (None, 0))[0]
        guess = own if own is not None else looks_like.get((target, cls), labels[target][0])
        out[labels[target].index(guess)] += hit
        out += (1 - hit) / len(out)
        return out

    assoc = {}
    for s, classes in world.items():
        assoc[s] = {}
        for t in world:
            m = np.zeros((len(labels[s]) + 1, len(labels[t])))
            for cls, (lab, pixels) in classes.items():
                row = labels[s].index(lab) if lab is not None else len(labels[s])
                m[row] += pixels * classify(t, cls)
            assoc[s][t] = m
    return assoc, labels


ROADS = {
    "A": {"road": ("road", 800), "lane": ("road", 100), "car": ("car", 300)},
    "B": {"road": ("road", 700), "lane": ("lane", 150), "car": ("car", 300)},
    "C": {"road": ("background", 800), "lane": ("background", 120), "car": ("car", 200)},
}


def test_recall_and_placement_are_normalised_over_the_right_axis():
    assoc, _ = world_associations(ROADS)
    rec = recall(assoc, "B", "A")  # A's classifier on B's labels
    assert rec.shape == (3, 2) and np.allclose(rec.sum(1), 1)
    assert rec[1, 0] == pytest.approx(0.95)  # B's lane pixels: A says road (0.9 + 0.1 / 2)
    place = placement(assoc, "A", "B")  # where A's labels put B's detections
    assert place.shape == (3, 3) and np.allclose(place.sum(0), 1)
    assert place[-1].sum() == 0  # A leaves nothing unlabelled
    # B's lane detections on A's images: A's lanes (100 * 0.933) vs false ones on A's road and
    # cars (800 * 0.033 + 300 * 0.033), all inside A's road but the ones on cars
    assert place[0, 1] == pytest.approx(
        (100 * (0.9 + 0.1 / 3) + 800 * 0.1 / 3) / (1200 * 0.1 / 3 + 90)
    )


def test_equal_labels_merge_and_a_fine_class_maps_into_the_coarse_labels():
    assoc, _ = world_associations(ROADS)
    datasets = ["A", "B", "C"]
    groups = merge_groups(assoc, datasets)
    assert groups == [{"A": 0, "B": 0, "C": 0}, {"A": 1, "B": 2, "C": 1}, {"B": 1}]
    classes = initial_unified_classes(assoc, datasets)
    assert classes == [
        {"A": 0, "B": 0, "C": 0},
        {"A": 1, "B": 2, "C": 1},
        {"A": 0, "B": 1, "C": 0},  # lane: inside A's road and C's background
    ]


def test_a_class_left_unlabelled_in_a_datasets_images_maps_to_none_there():
    world = {**ROADS, "C": {**ROADS["C"], "lane": (None, 120)}}  # C's lanes are unlabelled
    assoc, _ = world_associations(world)
    # C's classifier still calls lanes "background", but B's lane detections on C's images
    # fall where C's ground truth is unlabelled
    assert containment(assoc, "B", "C")[1, -1] > containment(assoc, "B", "C")[1, 0]
    classes = initial_unified_classes(assoc, ["A", "B", "C"])
    assert classes[2] == {"A": 0, "B": 1, "C": None}


def test_a_class_absent_from_a_datasets_images_maps_to_none_there():
    world = {**ROADS, "C": {"road": ("background", 800), "car": ("car", 200)}}  # no lanes
    assoc, _ = world_associations(world, hit=0.97)
    # B's lane classifier fires on C's images only by mistake: 1% of pixels, against 13.5% of
    # its own (a tenth of the rate); on A's images, where lanes are, at 2/3 of it
    assert presence(assoc, "B", 1, "C") < 0.15 < presence(assoc, "B", 1, "A")
    classes = initial_unified_classes(assoc, ["A", "B", "C"])
    assert classes[2] == {"A": 0, "B": 1, "C": None}
    # without the presence test, the look-alike label would be taken
    looser = initial_unified_classes(assoc, ["A", "B", "C"], min_presence=0.0)
    assert looser[2]["C"] == 0


def test_a_single_coarse_label_gathered_by_other_classes_is_dropped():
    # C's background is road + lane; no label of A or B contains it both ways
    assoc, _ = world_associations(ROADS)
    classes = initial_unified_classes(assoc, ["B", "C"])
    assert {"B": 0, "C": 0} in classes and {"B": 1, "C": 0} in classes
    assert all(c["B"] is not None for c in classes)  # no class of C's background alone


def test_a_mapping_that_contradicts_a_stronger_one_gives_way_to_the_next_label():
    # H: floor, table; P: background (= floor), dining table. H's classifier mistakes P's
    # tables for floor more often than for table (a domain gap), so "dining table lies in
    # floor" scores best; but floor lies in P's background, a label disjoint from P's dining
    # table, far more strongly: the dining table takes H's table instead.
    H = {"floor": ("floor", 500), "table": ("table", 200)}
    P = {"floor": ("background", 500), "table": ("dining table", 200)}
    assoc, labels = world_associations({"H": H, "P": P})
    assoc["P"]["H"][1] = [120, 80]  # H's classifier on P's dining-table pixels
    assoc["H"]["P"][:2] = [[350, 150], [100, 100]]  # P's classifier on H's floor and tables
    groups = [{"H": 0}, {"H": 1}, {"P": 0}, {"P": 1}]
    scores = containment(assoc, "P", "H")[1]
    assert scores[0] > scores[1] > 0.3  # floor would win on its own
    mappings = map_groups(groups, assoc, ["H", "P"])
    assert mappings[0]["P"] == 0  # floor lies in background
    assert mappings[3]["H"] == 1  # dining table lies in table, not floor


def test_identical_label_texts_tip_a_weak_visual_match_into_a_merge():
    # A's and B's pole classifiers are weak: most pole pixels are called wall / building
    world = {
        "A": {"pole": ("pole", 40), "wall": ("wall", 500)},
        "B": {"pole": ("pole", 40), "wall": ("building", 500)},
    }
    assoc, _ = world_associations(world, hit=0.9)
    for s, t in [("A", "B"), ("B", "A")]:
        assoc[s][t][0] = [10, 30]  # the other's classifier finds a quarter of the poles
    assert len(merge_groups(assoc, ["A", "B"])) == 3  # walls merge, poles do not
    sim = np.array([[1.0, 0.3], [0.3, 0.7]])
    groups = merge_groups(
        assoc, ["A", "B"], text_similarity={"A": {"B": sim}, "B": {"A": sim.T}}, text_weight=0.5
    )
    assert groups == [{"A": 0, "B": 0}, {"A": 1, "B": 1}]
