"""A recipe built from the dataclass defaults is the recipe its shipped config trains: the
settings chosen by evidence rows agree in both places (the docstrings name the rows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from babelseg.engine.config import load_config
from babelseg.recipes.autounify_config import AutoUnifyConfig
from babelseg.recipes.ms3_settings import MS3Config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize(
    "name", ["momentum", "multi_label", "multi_label_recognised_only", "pairing"]
)
def test_ms3_evidence_chosen_settings_agree(name):
    shipped = load_config(CONFIGS / "ms3.yaml").recipe.ms3
    assert getattr(shipped, name) == getattr(MS3Config(), name)


def test_autounify_pruning_agrees():
    shipped = load_config(CONFIGS / "autounify.yaml").recipe.autounify
    assert shipped.drop_redundant is AutoUnifyConfig().drop_redundant is False


def test_autounify_merge_rule_agrees():
    shipped = load_config(CONFIGS / "autounify.yaml").recipe.autounify
    assert shipped.merge_rule == AutoUnifyConfig().merge_rule == "stable"
