"""`babelseg synth` touches nothing outside --out: names that become folders are one path
component, and only folders a previous synth marked as its own are ever deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from babelseg.cli.main import main
from babelseg.data.synth import generate, parse_world
from babelseg.data.synth.generate import MARKER
from babelseg.data.synth.world_yaml import DEFAULT_WORLD_PATH


def _world_dict(name: str = "metro_drive") -> dict:
    """The default world with only its first dataset, renamed, one image per split."""
    data = yaml.safe_load(DEFAULT_WORLD_PATH.read_text())
    view = data["datasets"][0]
    view["name"] = name
    view["splits"]["tiny"] = {"train": 1, "val": 1}
    view.pop("novel_labels", None)
    data["datasets"] = [view]
    return data


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    return victim


def _generate(out: Path, world: dict | None = None) -> None:
    world_obj = parse_world(world or _world_dict())
    generate(out, world=world_obj, scale="tiny", workers=1, progress=False)


@pytest.mark.parametrize("listed", ["../victim", "ABSOLUTE"])
def test_a_stale_relations_json_never_deletes_outside_out(tmp_path, listed):
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    _generate(out)
    relations = json.loads((out / "relations.json").read_text())
    name = str(victim) if listed == "ABSOLUTE" else listed
    relations["datasets"][name] = {"heldout": False, "labels": {}, "ignored": []}
    (out / "relations.json").write_text(json.dumps(relations))

    _generate(out)  # regenerating replaces the previous output ...

    assert (victim / "precious.txt").read_text() == "keep me"  # ... and nothing else
    assert (out / "metro_drive" / MARKER).is_file()


def test_a_symlinked_or_unmarked_folder_inside_out_is_never_deleted(tmp_path):
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    _generate(out)
    (out / "linked").symlink_to(victim, target_is_directory=True)
    (out / "mine").mkdir()
    (out / "mine" / "notes.txt").write_text("user data")
    relations = json.loads((out / "relations.json").read_text())
    for name in ("linked", "mine"):
        relations["datasets"][name] = {"heldout": False, "labels": {}, "ignored": []}
    (out / "relations.json").write_text(json.dumps(relations))

    _generate(out)

    assert (victim / "precious.txt").is_file() and (out / "linked").is_symlink()
    assert (out / "mine" / "notes.txt").read_text() == "user data"


def test_an_unmarked_dataset_folder_in_the_way_is_an_error(tmp_path):
    out = tmp_path / "out"
    (out / "metro_drive").mkdir(parents=True)
    (out / "metro_drive" / "mine.txt").write_text("x")
    with pytest.raises(ValueError, match=r"metro_drive exists and was not written by"):
        generate(out, world=parse_world(_world_dict()), scale="tiny", workers=1, overwrite=True)
    assert (out / "metro_drive" / "mine.txt").read_text() == "x"


@pytest.mark.parametrize("name", ["../escaped", "a/b", "..", "/abs/path", "c:x"])
def test_a_world_dataset_name_that_is_not_one_folder_is_refused(tmp_path, name, capsys):
    world = tmp_path / "world.yaml"
    world.write_text(yaml.safe_dump(_world_dict(name)))
    out = tmp_path / "out"
    code = main(["synth", "--out", str(out), "--world", str(world), "--scale", "tiny"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(world) in err and "one path component" in err
    assert not (tmp_path / "escaped").exists() and not any(tmp_path.glob("**/images"))


def test_a_split_name_that_is_not_one_folder_is_refused(tmp_path):
    data = _world_dict()
    data["datasets"][0]["splits"]["tiny"] = {"../train": 1}
    with pytest.raises(ValueError, match=r"split name becomes a folder name"):
        parse_world(data)
