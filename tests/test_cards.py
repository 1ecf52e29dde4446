"""Built-in label cards: every card loads with its class count, values and descriptions, and the
cards that read a dataset's metadata read the public formats (files written here, in the test)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from babelseg.data.card_data import load_card_file
from babelseg.data.cards import CARDS, card_space

# card -> (classes, {class name: on-disk value}, ignore values)
EXPECTED = {
    "coco-panoptic-133": (133, {"person": 1, "toothbrush": 90, "rug-merged": 200}, (0, 255)),
    "coco-stuff-171": (171, {"person": 0, "toothbrush": 89, "banner": 91, "wood": 181}, (255,)),
    "coco-stuff-182": (182, {"street sign": 11, "hair brush": 90, "wood": 181}, (255,)),
    "cityscapes": (19, {"road": 0, "sky": 10, "bicycle": 18}, (255,)),
    "bdd100k": (19, {"road": 0, "train": 16}, (255,)),
    "idd": (26, {"road": 0, "autorickshaw": 8, "sky": 25}, (255,)),
    "mapillary-v1.2": (65, {"Bird": 0, "Car": 55, "Ego Vehicle": 64}, (65, 255)),
    "mapillary-v2.0": (123, {"Bird": 0, "Car": 108, "Static": 122}, (123, 255)),
    "pascal-voc": (21, {"background": 0, "aeroplane": 1, "tvmonitor": 20}, (255,)),
    "pascal-context-59": (59, {"aeroplane": 1, "table": 11, "wood": 59}, (0, 255)),
    "sun-rgbd": (37, {"wall": 1, "bag": 37}, (0, 255)),
    "loveda": (7, {"background": 1, "agricultural": 7}, (0, 255)),
    "camvid": (11, {"Sky": 0, "Bicyclist": 10}, (11, 255)),
    "camvid-32": (31, {"Animal": 0, "Wall": 30}, (255,)),
}

ADE_CSV_ROWS = {1: "wall", 2: "building;edifice", 13: "person;individual", 150: "flag"}


def _ade_csv(path: Path) -> None:
    """objectInfo150.csv in the CSAIL format (synonyms after ';', Stuff column)."""
    rows = ["Idx,Ratio,Train,Val,Stuff,Name"]
    for i in range(1, 151):
        rows.append(f"{i},0.01,10,1,{int(i in (1, 2))},{ADE_CSV_ROWS.get(i, f'class{i}')}")
    path.write_text("\n".join(rows) + "\n")


def test_every_card_is_covered_here():
    assert set(CARDS) == set(EXPECTED) | {"coco-json", "ade20k-150", "ade20k-847"} | {
        "pascal-context-459"
    }


@pytest.mark.parametrize("card", sorted(EXPECTED))
def test_carried_card(card: str, tmp_path: Path):
    count, values, ignore = EXPECTED[card]
    space = card_space(card, root=tmp_path)  # no metadata file: the carried list
    assert len(space) == count and space.ignore_values == ignore
    for name, value in values.items():
        assert space.value_of(space.index(name)) == value
    descriptions = [c.description for c in space.classes]
    assert all(d and d.endswith(".") and len(d.split()) >= 4 for d in descriptions)
    assert len(set(descriptions)) >= 0.9 * count  # written per class, not one template
    for c in space.classes:
        assert c.name.lower() not in ("", c.description.lower().rstrip("."))


def test_thing_flags_and_colours():
    cs = card_space("cityscapes")
    assert [n for n, t in zip(cs.names, cs.thing_mask) if t][:2] == ["person", "rider"]
    assert cs.color_of(0) == (128, 64, 128)
    pan = card_space("coco-panoptic-133")
    assert int(pan.thing_mask.sum()) == 80
    stuff = card_space("coco-stuff-171")
    assert int(stuff.thing_mask.sum()) == 80 and stuff.classes[0].color == (0, 192, 64)


def test_ade_csv_and_txt(tmp_path: Path):
    _ade_csv(tmp_path / "objectInfo150.csv")
    ade = card_space("ade20k-150", root=tmp_path)
    assert len(ade) == 150 and ade.names[:2] == ["wall", "building"] and ade.names[12] == "person"
    assert ade.value_of(0) == 1 and ade.value_of(149) == 150 and ade.ignore_values == (0, 255)
    assert ade.classes[0].description and "surface" in ade.classes[0].description
    assert ade.classes[3].description is None  # "class4" is not the standard class of Idx 4
    assert not ade.thing_mask[0] and ade.thing_mask[12]
    # objectInfo150.txt from ADEChallengeData2016.zip: tab-separated, ", " synonyms, no Stuff.
    lines = ["Idx\tRatio\tTrain\tVal\tName"]
    names = load_card_file("ade20k-150")["classes"]
    for i, e in enumerate(names, start=1):
        lines.append(f"{i}\t0.01\t10\t1\t{e['name']}, synonym")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "objectInfo150.txt").write_text("\n".join(lines) + "\n")
    txt = card_space("ade20k-150", root=tmp_path / "txt")
    assert txt.names[44] == "chest of drawers" and txt.names[123] == "trade name"
    assert all(c.description for c in txt.classes)
    assert txt.thing_mask[12] and not txt.thing_mask[0]  # flags from the card when absent
    indexed = CARDS["ade20k-150"]({"card": "ade20k-150", "values": "index"}, _decl(tmp_path))
    assert indexed.value_of(0) == 0 and indexed.value_of(149) == 149
    assert indexed.ignore_values == (255,)
    with pytest.raises(ValueError, match="values: disk"):
        CARDS["ade20k-150"]({"card": "ade20k-150", "values": "bogus"}, _decl(tmp_path))


def _decl(root: Path):
    from babelseg.data.declaration import parse_declaration

    return parse_declaration(
        {
            "name": "d",
            "format": "semantic-png",
            "root": str(root),
            "labels": {"card": "x"},
            "splits": {"val": {"images": "i", "labels": "l"}},
        },
        root,
    )


@pytest.mark.parametrize(("version", "count"), [("1.2", 65), ("2.0", 123)])
def test_mapillary_reads_config_json(version: str, count: int, tmp_path: Path):
    entries = load_card_file(f"mapillary-v{version}")["classes"]
    labels = [
        {
            "name": e["config_name"],
            "readable": e["name"],
            "instances": e["is_thing"],
            "evaluate": True,
            "color": list(e["color"]),
        }
        for e in entries
    ]
    labels.append(
        {"name": "void--unlabeled", "readable": "Unlabeled", "instances": False, "color": [0] * 3}
    )
    labels[0]["color"] = [1, 2, 3]  # the file is read, not the carried list
    (tmp_path / f"config_v{version}.json").write_text(json.dumps({"labels": labels}))
    space = card_space(f"mapillary-v{version}", root=tmp_path)
    assert len(space) == count and space.ignore_values == (count, 255)
    assert space.classes[0].color == (1, 2, 3) and space.classes[0].description
    assert space.thing_mask[space.index("Car")] and not space.thing_mask[space.index("Road")]
    other = "2.0" if version == "1.2" else "1.2"
    with pytest.raises(ValueError, match=f"use card 'mapillary-v{version}'"):
        card_space(f"mapillary-v{other}", file=tmp_path / f"config_v{version}.json")


def test_coco_json_gets_descriptions(tmp_path: Path):
    cats = [
        {"id": 1, "name": "person", "isthing": 1},
        {"id": 187, "name": "sky-other-merged", "isthing": 0},
        {"id": 900, "name": "my own class", "isthing": 0},
    ]
    (tmp_path / "cats.json").write_text(json.dumps({"categories": cats}))
    space = card_space("coco-json", file=tmp_path / "cats.json")
    assert space.names == ["person", "sky-other-merged", "my own class"]
    assert space.classes[0].description and "sky" in space.classes[1].description.lower()
    assert space.classes[2].description is None and space.value_of(2) == 900


def test_name_list_cards(tmp_path: Path):
    (tmp_path / "labels.txt").write_text("1: accordion\n2: aeroplane\n3: air conditioner\n")
    ctx = card_space("pascal-context-459", file=tmp_path / "labels.txt")
    assert ctx.names == ["accordion", "aeroplane", "air conditioner"]
    assert ctx.value_of(2) == 3 and ctx.ignore_values == (0, 65535)
    (tmp_path / "ade847.txt").write_text("wall\nbuilding, edifice\nsky\n")
    full = card_space("ade20k-847", file=tmp_path / "ade847.txt")
    assert full.names == ["wall", "building, edifice", "sky"] and full.value_of(0) == 0
    np.testing.assert_array_equal(full.encode(np.array([0, 2, 65535])), [0, 2, 255])
    with pytest.raises(ValueError, match="give `file:"):
        card_space("ade20k-847")


def test_values_index_layout(tmp_path: Path):
    disk = card_space("coco-stuff-171")
    assert disk.value_of(disk.index("banner")) == 91  # COCO id 92 - 1
    index = CARDS["coco-stuff-171"]({"card": "coco-stuff-171", "values": "index"}, _decl(tmp_path))
    assert index.value_of(index.index("banner")) == 80 and index.value_of(170) == 170
    assert index.ignore_values == (255,)


def test_cityscapes_reads_the_label_table(tmp_path: Path):
    """cityscapesScripts' helpers/labels.py rows, written here in its public format."""
    data = load_card_file("cityscapes")
    rows = [
        (e["name"], e["label_id"], e["value"], e["is_thing"], e["color"]) for e in data["classes"]
    ]
    rows += [(e["name"], e["label_id"], 255, False, [0, 0, 0]) for e in data["other_label_ids"]]
    rows.append(("license plate", -1, -1, True, [0, 0, 142]))
    rows = [r if r[0] != "road" else (*r[:4], [1, 2, 3]) for r in rows]
    text = ["labels = ["]
    for name, label_id, train_id, inst, (r, g, b) in sorted(rows, key=lambda r: r[1]):
        text.append(
            f"    Label(  '{name}' , {label_id:>3} , {train_id:>5} , 'flat' , 1 , "
            f"{inst} , False , ({r:>3},{g:>3},{b:>3}) ),"
        )
    (tmp_path / "labels.py").write_text("\n".join([*text, "]"]) + "\n")
    train = card_space("cityscapes", file=tmp_path / "labels.py")
    assert len(train) == 19 and train.names[0] == "road" and train.classes[0].color == (1, 2, 3)
    assert train.value_of(18) == 18 and train.classes[0].description
    assert int(train.thing_mask.sum()) == 8
    label = CARDS["cityscapes"](
        {"card": "cityscapes", "ids": "label", "file": str(tmp_path / "labels.py")},
        _decl(tmp_path),
    )
    np.testing.assert_array_equal(label.encode(np.array([7, 33, 0, 6, 34])), [0, 18, 255, 255, 255])
    assert label.unknown_values(np.array([0, 3, 15, 34])) == {34: 1}
    (tmp_path / "bad.py").write_text("print('hello')\n")
    with pytest.raises(ValueError, match="labels.py"):
        card_space("cityscapes", file=tmp_path / "bad.py")
