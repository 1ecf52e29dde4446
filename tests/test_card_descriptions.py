"""Every evaluation class of every built-in card has a one-sentence description (issue 15), and the
name-list cards (ADE20K-847, Pascal Context 459) give the release's canonical names theirs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from babelseg.cli import datasets_cmd
from babelseg.data.card_data import CARD_DIR, class_name_key, known_descriptions, load_card_file
from babelseg.data.cards import CARDS, card_space
from babelseg.data.check import check_dataset
from babelseg.data.declaration import parse_declaration
from babelseg.labels.space import LabelSpace
from babelseg.labels.texts import label_texts

NAME_LIST_CARDS = {"ade20k-847": 847, "pascal-context-459": 459}


def _sentence(text: str | None) -> bool:
    return bool(text) and text.strip() == text and text.endswith(".") and len(text.split()) >= 4


def _known(stem: str) -> list[dict]:
    return load_card_file(stem)["known_classes"]


def _undescribed(space: LabelSpace) -> list[str]:
    return [c.name for c in space.classes if not _sentence(c.description)]


@pytest.mark.parametrize("path", sorted(CARD_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_class_entry_of_every_card_file_is_described(path: Path):
    data = load_card_file(path.stem)
    entries = data["classes"] + data.get("known_classes", [])
    assert entries, f"{path.name} carries no class with a description"
    assert [e["name"] for e in entries if not _sentence(e.get("description"))] == []


@pytest.mark.parametrize(
    "card", sorted(set(CARDS) - {"coco-json", "ade20k-150"} - set(NAME_LIST_CARDS))
)
def test_carried_cards_give_every_evaluation_class_a_description(card: str, tmp_path: Path):
    space = card_space(card, root=tmp_path)
    assert len(space) > 0 and _undescribed(space) == []


def test_cityscapes_label_ids_classes_are_described():
    """The void ids of `ids: label` are ignore values (never evaluated, never encoded)."""
    spec = {"card": "cityscapes", "ids": "label"}
    space = CARDS["cityscapes"](spec, _decl(Path("."), spec))
    void = [e["label_id"] for e in load_card_file("cityscapes")["other_label_ids"]]
    assert len(space) == 19 and _undescribed(space) == []
    assert set(void) <= set(space.ignore_values)


def test_ade20k_150_metadata_file_classes_are_described(tmp_path: Path):
    """objectInfo150.txt (inside ADEChallengeData2016.zip): synonyms after ', '."""
    rows = ["Idx\tRatio\tTrain\tVal\tName"]
    rows += [f"{e['value']}\t0.01\t10\t1\t{e['name']}, other" for e in _classes("ade20k-150")]
    (tmp_path / "objectInfo150.txt").write_text("\n".join(rows) + "\n")
    space = card_space("ade20k-150", root=tmp_path)
    assert len(space) == 150 and _undescribed(space) == []


def test_coco_json_with_the_panoptic_categories_is_described(tmp_path: Path):
    cats = [{"id": e["value"], "name": e["name"]} for e in _classes("coco-panoptic-133")]
    (tmp_path / "panoptic_val2017.json").write_text(json.dumps({"categories": cats}))
    space = card_space("coco-json", file=tmp_path / "panoptic_val2017.json")
    assert len(space) == 133 and _undescribed(space) == []


@pytest.mark.parametrize(("stem", "count"), sorted(NAME_LIST_CARDS.items()))
def test_name_list_cards_describe_every_canonical_name(stem: str, count: int):
    known = _known(stem)
    assert len(known) == count and [e for e in known if not _sentence(e["description"])] == []
    keys = [class_name_key(e["name"]) for e in known]
    assert len(set(keys)) == count  # one entry per canonical name
    descriptions = [e["description"] for e in known]
    assert len(set(descriptions)) == count  # written per class: neighbours stay apart


def test_canonical_lists_are_the_releases():
    ade = [(e["value"], e["name"]) for e in _known("ade20k-847")]
    assert ade[:3] == [(0, "wall"), (1, "building, edifice"), (2, "sky")]
    assert ade[150] == (150, "blanket, cover")
    assert ade[-1] == (846, "adding machine, totalizer, totaliser")
    ctx = [(e["value"], e["name"]) for e in _known("pascal-context-459")]
    assert ctx[:3] == [(1, "accordion"), (2, "aeroplane"), (3, "air conditioner")]
    assert ctx[-1] == (459, "wool") and (427, "tvmonitor") in ctx


def test_shared_classes_reuse_the_existing_wording():
    ctx = {e["name"]: e["description"] for e in _known("pascal-context-459")}
    for e in _classes("pascal-context-59"):
        assert ctx[e["name"]] == e["description"]
    ade847 = {e["description"] for e in _known("ade20k-847")}
    assert {e["description"] for e in _classes("ade20k-150")} <= ade847


def _classes(stem: str) -> list[dict]:
    return load_card_file(stem)["classes"]


@pytest.mark.parametrize(
    ("stem", "line"),
    [
        ("ade20k-847", lambda i, e: f"{i}:{e['name'].replace(', ', ',')}"),  # ODISE's format
        ("ade20k-847", lambda i, e: e["name"]),  # Mask2Former's names, one per line
        ("pascal-context-459", lambda i, e: f"{e['value']}: {e['name']}"),  # labels.txt
    ],
)
def test_a_canonical_metadata_file_yields_described_classes(stem, line, tmp_path: Path):
    known = _known(stem)
    path = tmp_path / "names.txt"
    path.write_text("\n".join(line(i, e) for i, e in enumerate(known)) + "\n")
    space = card_space(stem, file=path)
    assert len(space) == len(known) and _undescribed(space) == []
    assert [c.description for c in space.classes] == [e["description"] for e in known]
    texts = label_texts(space, mode="description")
    # the sentence form may re-case the description's first letter or end; its body is kept
    assert texts[0].startswith(f"{space.names[0]}: ") and known[0]["description"][1:-1] in texts[0]
    assert len(set(texts)) == len(known)


def test_names_outside_the_release_keep_working_without_a_description(tmp_path: Path):
    path = tmp_path / "labels.txt"
    path.write_text("1: accordion\n2: my own widget\n3: Air  Conditioner\n")
    space = card_space("pascal-context-459", file=path)
    assert space.names == ["accordion", "my own widget", "Air  Conditioner"]
    assert space.classes[0].description and space.classes[2].description
    assert space.classes[1].description is None
    # no description: the sentence template alone (labels/texts.py), never a borrowed description
    assert label_texts(space, mode="description")[1] == "my own widget: An image of my own widget."


def test_first_synonym_matches_only_when_unambiguous():
    ade = known_descriptions("ade20k-847")
    edifice = next(e for e in _known("ade20k-847") if e["name"] == "building, edifice")
    assert ade.get("building") == ade.get("Building,Edifice") == edifice["description"]
    assert ade.get("screen") is None  # "screen, crt screen" or the projection screen?
    assert ade.get("bag") != ade.get("bag, handbag, pocketbook, purse")  # "bag" is its own class
    assert known_descriptions("cityscapes").get("road") is None  # no known_classes: no table


def _decl(root: Path, labels: dict):
    entry = {
        "name": "full",
        "format": "semantic-png",
        "root": str(root),
        "labels": labels,
        "splits": {"val": {"images": "img", "labels": "lab"}},
    }
    return parse_declaration(entry, root, source="test.yaml")


def test_datasets_check_notes_classes_without_a_description(tmp_path: Path, capsys):
    (tmp_path / "names.txt").write_text("wall\nmy own widget\nsky\n")
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(_mkdir(tmp_path / "img") / "a.png")
    Image.fromarray(np.array([[0, 1], [2, 2]], np.uint8)).save(_mkdir(tmp_path / "lab") / "a.png")
    report = check_dataset(_decl(tmp_path, {"card": "ade20k-847", "file": "names.txt"}))
    assert report.ok and report.undescribed == ["my own widget"]
    assert report.to_dict()["undescribed"] == ["my own widget"]
    datasets_cmd._print_report(report)
    out = capsys.readouterr().out
    assert "1/3 classes have no description" in out and "my own widget" in out


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
