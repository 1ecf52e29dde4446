"""The evidence harness reads dataset roles from a generated world, never from names."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.world import prepare_world, read_roles  # noqa: E402


def test_roles_of_the_default_world(tiny_synthworld):
    roles = read_roles(tiny_synthworld)
    assert roles.clean == ["metro_drive", "vista_roads", "pascal_objects"]
    assert roles.noisy == ["home_scenes"]
    assert roles.boxes == ["open_boxes"]
    assert roles.heldout == ["night_drive", "living_zero"]
    assert roles.clean_with_task("panoptic") == ["vista_roads"]
    novel = roles.novel_labels()
    assert "lorry" in novel["night_drive"] and "person" not in novel["night_drive"]
    # living_zero's flooring (floor + rug) and night_drive's roadway (road + markings) are each
    # covered by one trained label (pascal's background; metro's road): not coarser
    assert roles.coarse_labels() == {}


def test_the_evidence_world_has_every_role_the_papers_need(tmp_path):
    roles = prepare_world("evidence", scale="tiny", seed=0, cache=tmp_path, workers=1)
    assert len(roles.clean) >= 4 and roles.noisy and roles.boxes and len(roles.heldout) >= 2
    assert roles.clean_with_task("panoptic")
    coarse = {lab for labs in roles.coarse_labels().values() for lab in labs}
    assert coarse == {"vehicle", "furniture", "greenery", "beast"}
    novel = {lab for labs in roles.novel_labels().values() for lab in labs}
    assert {"omnibus", "velocipede", "davenport"} <= novel
    again = prepare_world("evidence", scale="tiny", seed=0, cache=tmp_path, workers=1)
    assert again.root == roles.root  # generated once, then reused
    assert len(list(tmp_path.iterdir())) == 1
