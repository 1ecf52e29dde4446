"""Pruning the final mappings: a unified class with no label of its own is dropped when
``recipe.autounify.drop_redundant`` asks for it (off by default, as the paper)."""

from __future__ import annotations

import numpy as np

from babelseg.labels.space import LabelSpace
from babelseg.unify.mappings import SlotMappings, redundant_slots
from babelseg.unify.transport import NO_LABEL


def test_a_slot_whose_labels_all_belong_to_other_slots_is_dropped():
    person, rider_ped, rider_cyc = {("m", 0), ("v", 0)}, {("m", 1), ("v", 0)}, {("m", 1), ("v", 1)}
    assert redundant_slots({0: person, 1: rider_ped, 2: rider_cyc}) == [1]
    # every slot has a label of its own: nothing to drop
    assert redundant_slots({0: person, 1: rider_cyc}) == []
    # identical label sets are one class, not each other's cover
    assert redundant_slots({0: person, 1: set(person)}) == []
    # re-checked after each drop: of a merged pair and its two halves, the merged pair stays
    a, b = ("m", 0), ("v", 0)
    assert redundant_slots({0: {a, b}, 1: {a}, 2: {b}}) == [2, 1]


def test_prune_drops_redundant_slots_only_when_asked():
    spaces = {
        "m": LabelSpace.from_names(["person", "rider"], name="m"),
        "v": LabelSpace.from_names(["pedestrian", "cyclist"], name="v"),
    }
    assign = {"m": [0, 1, 1, NO_LABEL], "v": [0, 0, 1, NO_LABEL]}
    counts = {}
    for drop in (False, True):
        slots = SlotMappings(spaces=spaces, num_slots=4)
        slots.start(4)
        slots.assign = {n: list(a) for n, a in assign.items()}
        slots.prune(drop_redundant=drop)
        counts[drop] = len(slots.classes())
        assert slots.active[3] is False  # mapped to nothing: always dropped
        assert slots.active[1] is (not drop)
        names = [sorted(c.labels.items()) for c in slots.classes()]
        assert [("m", "rider"), ("v", "cyclist")] in names and [
            ("m", "person"),
            ("v", "pedestrian"),
        ] in names
    assert counts == {False: 3, True: 2}
    assert np.array_equal(slots.mapping("v").sum(0).numpy(), [1, 1])  # every label still mapped


def test_the_recipe_prunes_with_its_setting(monkeypatch):
    from test_autounify_recipe import _recipe

    from babelseg.recipes.autounify_config import AutoUnifyConfig

    for drop in (False, True):
        recipe, _ = _recipe(drop_redundant=drop)
        seen: dict = {}
        monkeypatch.setattr(recipe.slots, "prune", lambda seen=seen, **kw: seen.update(kw))
        recipe.prune()
        assert seen == {"drop_redundant": drop}
    assert AutoUnifyConfig().drop_redundant is False
