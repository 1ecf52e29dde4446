"""Taxonomy naming, YAML export and scoring against hand-made relations."""

import yaml

from babelseg.unify.taxonomy import (
    UnifiedClass,
    predicted_pairs,
    score_taxonomy,
    taxonomy_yaml,
    true_pairs,
    unified_classes,
)

RELATIONS = {
    "world_classes": ["road", "lane", "car", "dog", "sky"],
    "datasets": {
        "a": {"labels": {"road": ["road", "lane"], "car": ["car"]}, "ignored": ["dog", "sky"]},
        "b": {
            "labels": {"road": ["road"], "lane": ["lane"], "car": ["car"], "dog": ["dog"]},
            "ignored": ["sky"],
        },
        "c": {"labels": {"sky": ["sky"]}, "ignored": []},
    },
}


def test_scores_a_hand_made_mapping():
    classes = [
        UnifiedClass("road", {"a": "road", "b": "road"}),
        UnifiedClass("lane", {"a": "road", "b": "lane"}),
        UnifiedClass("car?", {"a": "car", "b": "dog"}),  # wrong
        UnifiedClass("car", {"a": None, "b": "car"}),  # misses (a car, b car)
    ]
    # truth: (a road, b road), (a road, b lane), (a car, b car)
    assert true_pairs(RELATIONS, ["a", "b"]) == {
        (("a", "road"), ("b", "road")),
        (("a", "road"), ("b", "lane")),
        (("a", "car"), ("b", "car")),
    }
    assert len(predicted_pairs(classes)) == 3
    s = score_taxonomy(classes, RELATIONS, ["a", "b"])
    assert s["correct_pairs"] == 2 and s["predicted_pairs"] == 3 and s["true_pairs"] == 3
    assert abs(s["precision"] - 2 / 3) < 1e-9 and abs(s["recall"] - 2 / 3) < 1e-9
    assert abs(s["f1"] - 2 / 3) < 1e-9
    # world classes labelled by a or b: road, lane, car, dog (sky only by c)
    assert s["num_unified"] == 4 and s["num_world"] == 4


def test_perfect_mapping_scores_one_and_empty_mapping_zero():
    perfect = [
        UnifiedClass("road", {"a": "road", "b": "road"}),
        UnifiedClass("lane", {"a": "road", "b": "lane"}),
        UnifiedClass("car", {"a": "car", "b": "car"}),
        UnifiedClass("dog", {"a": None, "b": "dog"}),
    ]
    s = score_taxonomy(perfect, RELATIONS, ["a", "b"])
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)
    s = score_taxonomy([UnifiedClass("x", {"a": "road", "b": None})], RELATIONS, ["a", "b"])
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)


def test_names_come_from_the_finest_label_and_merged_nodes_are_one_class():
    assign = {"a": [0, 0, 1, 1], "b": [0, 1, 2, 2]}
    names = {"a": ["road", "car"], "b": ["road", "lane marking", "automobile"]}
    classes = unified_classes(assign, names, class_of_slot=[0, 1, 2, 2])
    assert [c.name for c in classes] == ["road", "lane marking", "car"]
    # a's "road" gathers two classes, so the lane class is named after b's finer label;
    # the car class: both labels have one child, ties go to the first most common name
    assert classes[1].labels == {"a": "road", "b": "lane marking"}
    data = yaml.safe_load(taxonomy_yaml(classes))
    assert data["num_unified"] == 3
    assert data["unified_classes"][2] == {"name": "car", "labels": {"a": "car", "b": "automobile"}}


def test_repeated_names_are_made_unique():
    classes = unified_classes({"a": [0, 0, -1]}, {"a": ["thing"]}, None)
    assert [c.name for c in classes] == ["thing", "thing (2)", "unlabelled"]
