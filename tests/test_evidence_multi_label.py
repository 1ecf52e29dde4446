"""The evidence harness scores MS3's multi-label mapping (its Table 8 pairs) against the world's
true relations: which extra positives share a world class, and which are subset -> superset."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.job import multi_label_scores  # noqa: E402

from babelseg.labels.space import LabelSpace  # noqa: E402


def test_pairs_are_scored_against_the_relations(tmp_path):
    relations = {
        "world_classes": ["road", "lane", "car", "tree"],
        "datasets": {
            "a": {"labels": {"road": ["road", "lane"], "car": ["car"]}},
            "b": {"labels": {"road": ["road"], "lane": ["lane"], "tree": ["tree"]}},
        },
    }
    (tmp_path / "relations.json").write_text(json.dumps(relations))
    spaces = {
        "a": LabelSpace.from_names(["road", "car"], name="a"),
        "b": LabelSpace.from_names(["road", "lane", "tree"], name="b"),
    }
    # b's lane -> a's road (subset -> superset), a's road -> b's road (related, not inside),
    # a's car -> b's tree (wrong)
    pairs = [["b", 1, "a", 0], ["a", 0, "b", 0], ["a", 1, "b", 2]]
    scores = multi_label_scores(pairs, spaces, tmp_path / "datasets.yaml")
    assert (scores["pairs"], scores["related"], scores["contained"]) == (3, 2, 1)
    assert scores["named"][2] == ["a: car", "b: tree", False]
    assert multi_label_scores([], spaces, tmp_path / "datasets.yaml") is None
    assert multi_label_scores(pairs, spaces, tmp_path / "elsewhere" / "datasets.yaml") is None


def test_a_restricted_table_keeps_the_named_rows_their_starts_and_their_claims():
    from evidence_harness.claims import Claim, Measure, PaperTable, RunConfig

    def measure(run: str) -> Measure:
        return Measure(label=run, runs=(run,), value=lambda runs: 0.0)

    def claim(treatment: str, control: str) -> Claim:
        return Claim(claim=f"{treatment} vs {control}", table="T", paper_effect="+1",
                     paper_sign=1, metric="m", treatment=measure(treatment),
                     control=measure(control))  # fmt: skip

    configs = {n: RunConfig(config="configs/ms3.yaml", overrides=()) for n in ("L", "L + ML", "V")}
    configs["FT"] = RunConfig(config="configs/ms3.yaml", overrides=(), init_from="V")
    claims = [claim("L + ML", "L"), claim("V", "L"), claim("FT", "V")]
    table = PaperTable(paper="ms3", title="t", configs=configs, claims=claims)
    small = table.restricted(["L", "L + ML"])
    assert list(small.configs) == ["L", "L + ML"]
    assert [c.claim for c in small.claims] == ["L + ML vs L"]
    assert list(table.restricted(["FT"]).configs) == ["V", "FT"]  # its start trains too
    with pytest.raises(ValueError, match="no configuration"):
        table.restricted(["L + V"])


def test_the_report_lists_the_unrelated_extra_positives():
    from evidence_harness.report import _multi_label_lines, multi_label_mappings

    mapping = {"pairs": 2, "related": 1, "contained": 1,
               "named": [["b: lane", "a: road", True], ["a: car", "b: tree", False]]}  # fmt: skip
    results = {("L + ML", 0): {"metrics": {"multi_label": mapping}}, ("L", 0): {"metrics": {}}}
    table = type("T", (), {"configs": {"L": None, "L + ML": None}})
    found = multi_label_mappings(table, results, [0])
    assert list(found) == ["L + ML"]
    assert "| L + ML | 0 | 2 | 1 | 1 | a: car -> b: tree |" in _multi_label_lines(found)


def test_union_conflicts_list_other_datasets_labels_of_the_same_world_class():
    from union_conflicts import union_conflicts

    relations = {
        "world_classes": ["person", "road", "sky"],
        "datasets": {
            "a": {"labels": {"person": ["person"], "road": ["road"]}},
            "b": {"labels": {"pedestrian": ["person"], "background": ["road", "sky"]}},
        },
    }
    conflicts = union_conflicts(relations, ["a", "b"])
    assert conflicts == {
        ("a", "person"): ["pedestrian"],
        ("a", "road"): ["background"],
        ("b", "pedestrian"): ["person"],
        ("b", "background"): ["road"],
    }
    # a label two datasets share by name is one union class, never its own negative
    relations["datasets"]["b"]["labels"]["road"] = ["road"]
    assert union_conflicts(relations, ["a", "b"])[("a", "road")] == ["background"]


def test_configs_whose_names_hold_commas_are_named_with_semicolons():
    from evidence_harness.cli import parse_args

    names = "L;L + V, visual loss from mid-run"
    args = parse_args(["--paper", "ms3", "--configs", names, "--out", "x"])
    assert args.configs == ["L", "L + V, visual loss from mid-run"]
    args = parse_args(["--paper", "ms3", "--configs", "L, L + ML", "--out", "x"])
    assert args.configs == ["L", "L + ML"]
