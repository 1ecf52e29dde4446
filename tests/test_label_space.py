"""LabelSpace and ClassDef: construction, validation, on-disk value mapping, round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from babelseg.labels.space import IGNORE_INDEX, ClassDef, LabelSpace, default_color


def _street() -> LabelSpace:
    # On-disk values deliberately differ from the indices (like COCO category ids).
    return LabelSpace(
        [
            ClassDef(name="road", value=7),
            ClassDef(name="person", is_thing=True, value=24, color=(220, 20, 60)),
            ClassDef(name="car", is_thing=True, value=26, description="A car is a road vehicle."),
        ],
        name="street",
        ignore_values=(0, 255),
    )


# ---------------------------------------------------------------------- access
def test_names_index_values_and_things() -> None:
    s = _street()
    assert len(s) == 3 and [c.name for c in s] == ["road", "person", "car"]
    assert s.names == ["road", "person", "car"]
    assert s.index("car") == 2
    assert [s.value_of(i) for i in range(3)] == [7, 24, 26]
    assert s.index_of_value(24) == 1 and s.index_of_value(8) is None
    assert s.thing_mask.tolist() == [False, True, True]


def test_index_of_a_missing_name_lists_the_classes() -> None:
    with pytest.raises(ValueError, match=r"No class 'bus'.*'road', 'person', 'car'"):
        _street().index("bus")


def test_value_defaults_to_the_index() -> None:
    s = LabelSpace.from_names(["sky", "tree"])
    assert [s.value_of(i) for i in range(2)] == [0, 1]
    assert s.index_of_value(1) == 1


def test_colours_explicit_and_default() -> None:
    s = _street()
    assert s.color_of(1) == (220, 20, 60)
    assert s.color_of(0) == default_color(0)
    assert s.palette.dtype == np.uint8 and s.palette.shape == (3, 3)
    assert s.palette[1].tolist() == [220, 20, 60]
    # Deterministic and distinct for the first few indices.
    assert default_color(5) == default_color(5)
    assert len({default_color(i) for i in range(20)}) == 20


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("classes", "kwargs", "message"),
    [
        ([], {}, "Empty label space"),
        (
            [ClassDef(name="a"), ClassDef(name="a")],
            {},
            r"Duplicate class name 'a'.*indices 0 and 1",
        ),
        ([ClassDef(name="  ")], {}, "empty name"),
        (
            [ClassDef(name="a", value=3), ClassDef(name="b", value=3)],
            {},
            "share the on-disk value 3",
        ),
        ([ClassDef(name="a", value=255)], {}, "ignore value"),
        ([ClassDef(name="a", value=70000)], {}, "outside 0..65535"),
        ([ClassDef(name="a", value=0)], {"ignore_values": (0,)}, "ignore value"),
    ],
)
def test_invalid_spaces_are_rejected(classes: list, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabelSpace(classes, name="bad", **kwargs)


# ---------------------------------------------------------------------- value mapping
def test_encode_maps_values_and_sends_ignore_and_unknown_to_255() -> None:
    s = _street()
    raw = np.array([[7, 24, 26], [0, 255, 99]], dtype=np.uint8)
    out = s.encode(raw)
    assert out.dtype == np.int64
    assert out.tolist() == [[0, 1, 2], [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]
    assert s.unknown_values(raw) == {99: 1}


def test_encode_reads_16_bit_values() -> None:
    s = LabelSpace([ClassDef(name="a", value=1000), ClassDef(name="b", value=65535)])
    raw = np.array([[1000, 65535, 3]], dtype=np.uint16)
    assert s.encode(raw).tolist() == [[0, 1, IGNORE_INDEX]]
    table = s.lookup_table()
    assert table.shape == (65536,) and table[1000] == 0 and table[65535] == 1
    assert int((table != IGNORE_INDEX).sum()) == 2


def test_encode_rejects_values_outside_the_table() -> None:
    s = _street()
    with pytest.raises(ValueError, match="must lie in 0..65535.*from -1 to 7"):
        s.encode(np.array([[-1, 7]], dtype=np.int32))
    with pytest.raises(ValueError, match="from 70000 to 70000"):
        s.encode(np.array([[70000]], dtype=np.int32))


def test_subset_keeps_values_order_and_ignore() -> None:
    sub = _street().subset(["car", "road"], name="cars")
    assert sub.names == ["car", "road"] and sub.name == "cars"
    assert [sub.value_of(i) for i in range(2)] == [26, 7]
    assert sub.ignore_values == (0, 255)
    assert sub.encode(np.array([[26, 7, 24]])).tolist() == [[0, 1, IGNORE_INDEX]]


# ---------------------------------------------------------------------- construction
def test_from_names_reads_descriptions_after_a_colon() -> None:
    s = LabelSpace.from_names(["bus: A bus is a road vehicle.", " sky ", "tree:"], name="n")
    assert s.names == ["bus", "sky", "tree"]
    assert s.classes[0].description == "A bus is a road vehicle."
    assert s.classes[1].description is None and s.classes[2].description is None


def test_from_dict_aliases_and_ignore_values() -> None:
    s = LabelSpace.from_dict(
        {
            "name": "d",
            "ignore_values": [254],
            "classes": [
                "sky",
                {"name": "person", "isthing": True, "id": 11, "color": [1, 2, 3]},
                {"name": "bus", "is_thing": True, "value": 5, "description": "big"},
            ],
        }
    )
    assert s.name == "d" and s.ignore_values == (254,)
    assert s.names == ["sky", "person", "bus"]
    assert s.classes[1] == ClassDef(name="person", is_thing=True, value=11, color=(1, 2, 3))
    assert [s.value_of(i) for i in range(3)] == [0, 11, 5]
    assert s.classes[2].description == "big"


def test_from_dict_errors_name_the_source_and_the_key() -> None:
    with pytest.raises(ValueError, match=r"in labels\.yaml needs a 'classes' list"):
        LabelSpace.from_dict({"names": []}, source="labels.yaml")
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        LabelSpace.from_dict({"classes": [{"name": "a", "colour": [1, 2, 3]}]})
    with pytest.raises(ValueError, match="mapping with 'name'"):
        LabelSpace.from_dict({"classes": [{"value": 3}]})


def test_yaml_round_trip_and_file_errors(tmp_path: Path) -> None:
    import yaml

    s = _street()
    path = tmp_path / "street.yaml"
    path.write_text(yaml.safe_dump(s.to_dict()))
    back = LabelSpace.from_yaml(path)
    assert back.names == s.names and back.name == "street"
    assert back.ignore_values == (0, 255)
    assert [back.value_of(i) for i in range(3)] == [7, 24, 26]
    assert back.thing_mask.tolist() == [False, True, True]
    assert back.classes[1].color == (220, 20, 60) and back.classes[0].color is None
    assert back.classes[2].description == "A car is a road vehicle."

    # A file without a name takes its stem.
    (tmp_path / "plain.yaml").write_text("classes: [a, b]\n")
    assert LabelSpace.from_yaml(tmp_path / "plain.yaml").name == "plain"
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        LabelSpace.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("classes: [a, b\n")
    with pytest.raises(ValueError, match="broken.yaml is not valid YAML"):
        LabelSpace.from_yaml(tmp_path / "broken.yaml")


def test_large_vocabularies_keep_index_255_as_a_class():
    from babelseg.inference.label_png import indices_to_values

    space = LabelSpace.from_names([f"label {i}" for i in range(300)])
    assert space.ignore_values == (65535,)
    assert space.index_of_value(255) == 255
    values = indices_to_values(np.array([[255, 299]]), space)
    assert values.tolist() == [[255, 299]]
    small = LabelSpace.from_names(["a", "b"])
    assert indices_to_values(np.array([[255, 1]]), small).tolist() == [[255, 1]]
