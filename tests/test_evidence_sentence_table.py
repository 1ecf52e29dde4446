"""The SentenceLabels rows of the evidence harness: the paper's configuration and weights, and
the CLIP-teacher rows only when CLIP weights are given."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.papers import sentence  # noqa: E402
from evidence_harness.world import read_roles  # noqa: E402

from babelseg.engine.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _loaded(cfg, world: Path):
    return load_config(ROOT / cfg.config, [*cfg.overrides, f"data.datasets_yaml={world}"])


def test_table_3_rows_train_the_papers_configuration(tiny_synthworld, monkeypatch):
    monkeypatch.delenv(sentence.CLIP_ENV, raising=False)
    table = sentence.table(read_roles(tiny_synthworld))
    assert list(table.configs) == [
        "HD",
        "HD + noisy (L_HD)",
        "HD + noisy (L_LD)",
        "HD + boxes (L_WD)",
        sentence.WD_SCALED_ROW,
        "HD + noisy (L_LD) + boxes (L_WD)",
        sentence.EVERYTHING_SCALED_ROW,
        "HD, words",
    ]
    every = _loaded(table.configs["HD + noisy (L_LD) + boxes (L_WD)"], tiny_synthworld)
    assert every.data.train == [
        "metro_drive", "vista_roads", "pascal_objects", "home_scenes", "open_boxes"
    ]  # fmt: skip
    # the paper's weights: L_LD ignores 30 % of each noisy image, L_WD is added with weight 1
    assert every.recipe.noisy_drop_fraction == pytest.approx(0.3)
    assert every.recipe.box_loss_weight == pytest.approx(1.0)
    assert every.recipe.box_teacher == "text" and every.labels.text_mode == "description"
    hd_noisy = _loaded(table.configs["HD + noisy (L_HD)"], tiny_synthworld)
    assert hd_noisy.recipe.noisy_drop_fraction == 0.0
    words = _loaded(table.configs["HD, words"], tiny_synthworld)
    assert words.labels.text_mode == "name" and words.data.train == every.data.train[:3]
    assert any(
        "CLIP image teacher" in note and sentence.CLIP_ENV in note for note in table.not_measured
    )
    assert not any("CLIP" in c.claim for c in table.claims)
    # our deviation row: the same data at L_WD weight 0.1, compared with the paper's weight 1
    scaled = _loaded(table.configs[sentence.WD_SCALED_ROW], tiny_synthworld)
    assert scaled.recipe.box_loss_weight == pytest.approx(0.1)
    assert scaled.data.train == hd_noisy.data.train[:3] + ["open_boxes"]
    versus = {c.claim: c for c in table.claims}[
        "L_WD at weight 0.1 (our choice) beats the paper's weight 1"
    ]
    assert versus.treatment.runs == (sentence.WD_SCALED_ROW,)
    assert versus.control.runs == ("HD + boxes (L_WD)",)


def test_clip_weights_add_the_clip_teacher_rows(tiny_synthworld, monkeypatch, tmp_path):
    monkeypatch.setenv(sentence.CLIP_ENV, str(tmp_path / "clip"))
    table = sentence.table(read_roles(tiny_synthworld))
    clip = _loaded(table.configs[sentence.CLIP_ROW], tiny_synthworld)
    assert clip.recipe.box_teacher == "clip"
    assert clip.recipe.clip_vision_model == str(tmp_path / "clip")
    assert clip.data.train[-1] == "open_boxes" and clip.recipe.box_loss_weight == 1.0
    claims = {c.claim: c for c in table.claims}
    versus = claims["L_WD, CLIP teacher vs text teacher"]
    assert versus.treatment.runs == (sentence.CLIP_ROW,)
    assert versus.control.runs == ("HD + boxes (L_WD)",)
    assert claims["adding boxes-only data with L_WD (CLIP teacher) helps"].control.runs == ("HD",)
    assert not any("CLIP" in note for note in table.not_measured)
