"""MS3 Tables 2-3 and 9 in the evidence harness: fine-tuning configurations on one clean
training dataset, each starting from the right pretraining run, and rows reading that dataset's
mIoU in the right runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.papers import ms3  # noqa: E402
from evidence_harness.papers import ms3_finetune as ft  # noqa: E402
from evidence_harness.report import claim_row  # noqa: E402
from evidence_harness.world import read_roles  # noqa: E402

from babelseg.engine.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _loaded(cfg, world: Path):
    return load_config(ROOT / cfg.config, [*cfg.overrides, f"data.datasets_yaml={world}"])


def test_finetuning_configurations_start_from_the_right_runs(tiny_synthworld):
    roles = read_roles(tiny_synthworld)
    table = ms3.table(roles)
    target = ft.target_dataset(roles)
    assert target == "metro_drive"  # the first clean semantic dataset of the default world
    starts = {n: c.init_from for n, c in table.configs.items() if c.init_from}
    assert starts == {
        ft.FULL: ft.PRETRAINED,
        ft.FROZEN: ft.PRETRAINED,
        ft.SINGLE_FULL: ft.SINGLE,
        ft.SINGLE_FROZEN: ft.SINGLE,
        ft.MATCHED_FULL: ft.MATCHED,
        **{ft.frozen_probe(run): run for run in ft.PROBED},  # VISUAL and CE among them
    }
    assert {ft.PROBE_VISUAL, ft.PROBE_CE} <= set(starts)
    assert table.configs[ft.SCRATCH].init_from is None
    single = _loaded(table.configs[ft.SINGLE], tiny_synthworld)
    assert single.recipe.name == "ms3" and single.data.train == [target]
    # as many target images as the pretraining on all clean datasets (uniform mixed batches)
    assert table.configs[ft.MATCHED].steps_fraction == pytest.approx(1 / len(roles.clean))
    assert _loaded(table.configs[ft.MATCHED], tiny_synthworld).data.train == [target]
    assert _loaded(table.configs[ft.PRETRAINED], tiny_synthworld).data.train == roles.clean
    finetuned = (ft.SCRATCH, ft.FULL, ft.FROZEN, ft.SINGLE_FULL, ft.SINGLE_FROZEN, ft.MATCHED_FULL)
    for name in (*finetuned, *map(ft.frozen_probe, ft.PROBED)):
        cfg = _loaded(table.configs[name], tiny_synthworld)
        assert cfg.recipe.name == "union" and cfg.data.train == [target], name
        assert cfg.train.freeze_encoder == ("frozen" in name), name
        assert table.configs[name].eval == (target,)
    assert not any("no dependent runs" in note for note in table.not_measured)


def test_finetuning_rows_read_the_target_miou(tiny_synthworld):
    roles = read_roles(tiny_synthworld)
    claims = {c.claim: c for c in ms3.table(roles).claims}
    miou = {ft.SCRATCH: 10.0, ft.FULL: 40.0, ft.FROZEN: 30.0, ft.SINGLE_FULL: 35.0}
    miou[ft.SINGLE_FROZEN] = 20.0
    miou |= {ft.VISUAL: 12.0, ft.PROBE_VISUAL: 25.0, ft.PROBE_CE: 28.0, "FT frozen from L": 33.0}
    results = {
        (name, s): {"metrics": {"datasets": {"metro_drive": {"mIoU": v + s}, "x": {"mIoU": 99}}}}
        for name, v in miou.items()
        for s in (0, 1)
    }
    meta = {"paper": "ms3", "steps": 3, "device": "cpu", "quick": False}
    want = {
        "fine-tuning from MS3 pretraining beats training from scratch": (30.0, "MS3 Table 2"),
        "multi-dataset pretraining beats pretraining on the target alone": (5.0, "MS3 Table 9"),
        "with the encoder frozen, MS3 pretraining beats single-dataset pretraining": (
            10.0,
            "MS3 Table 3",
        ),
        "freezing the MS3 encoder costs mIoU": (-10.0, "MS3 Table 3"),
        "on visual alone's frozen encoder a learned head beats its class means V "
        "(diagnostic, ours)": (13.0, "MS3 Table 4"),
        # Table 4 read through frozen encoders: L + V's probe (FROZEN) against L's
        "language + visual beats language alone (each pretraining's encoder frozen, a CE head "
        "on metro_drive)": (-3.0, "MS3 Table 4"),
    }
    for claim, (effect, where) in want.items():
        row = claim_row(claims[claim], results, [0, 1], meta)
        assert row["mean"] == pytest.approx(effect, abs=1e-6), claim
        assert row["table"] == where and "metro_drive mIoU" in row["metric"]
        verdict = "reproduced" if effect > 0 or "freezing" in claim else "contradicted"
        assert row["verdict"] == verdict, claim
    ce_row = claims[
        "visual alone's encoder, frozen, serves a learned head as well as single-head CE's "
        "(diagnostic, ours)"
    ]
    row = claim_row(ce_row, results, [0, 1], meta)
    assert row["mean"] == pytest.approx(-3.0) and row["verdict"] == "contradicted"
