"""The DaTaSeg rows of the evidence harness: the App. E row compares the paper's last-layer
matching with the config's per-layer matching (Mask2Former's) on the same co-training data."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from evidence_harness.papers import dataseg  # noqa: E402
from evidence_harness.world import read_roles  # noqa: E402

from babelseg.engine.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _loaded(cfg, world: Path):
    return load_config(ROOT / cfg.config, [*cfg.overrides, f"data.datasets_yaml={world}"])


def test_app_e_row_compares_last_layer_with_per_layer_matching(tiny_synthworld):
    table = dataseg.table(read_roles(tiny_synthworld))
    cotrain = _loaded(table.configs[dataseg.COTRAIN], tiny_synthworld)
    last = _loaded(table.configs[dataseg.LAST_LAYER], tiny_synthworld)
    assert cotrain.recipe.mask.aux_matching == "per_layer"
    assert last.recipe.mask.aux_matching == "last"
    assert last.data.train == cotrain.data.train  # the same data, only the matching differs
    (row,) = [c for c in table.claims if c.table == "DaTaSeg App. E (design)"]
    assert row.treatment.runs == (dataseg.LAST_LAYER,)
    assert row.control.runs == (dataseg.COTRAIN,)
    assert row.paper_effect.startswith("not ablated") and "deviation row" in row.note


def test_dataset_specific_rows_compare_sharing_with_the_modules(tiny_synthworld):
    table = dataseg.table(read_roles(tiny_synthworld))
    cotrain = _loaded(table.configs[dataseg.COTRAIN], tiny_synthworld)
    ds_all = _loaded(table.configs[dataseg.DS_ALL], tiny_synthworld)
    ds_cls = _loaded(table.configs[dataseg.DS_CLS], tiny_synthworld)
    shared = cotrain.recipe.dataseg
    assert shared.dataset_queries == 0 and not shared.dataset_classification
    assert ds_all.recipe.dataseg.dataset_queries == dataseg.DS_QUERIES > 0
    assert ds_all.recipe.dataseg.dataset_classification
    assert (
        ds_cls.recipe.dataseg.dataset_queries == 0 and ds_cls.recipe.dataseg.dataset_classification
    )
    for cfg in (ds_all, ds_cls):  # the same data; held-out datasets scored through a transfer
        assert cfg.data.train == cotrain.data.train
        assert cfg.recipe.dataseg.transfer_dataset in cfg.data.train
    rows = {c.table: c for c in table.claims}
    pairs = {
        "DaTaSeg Table 5 / supp. Table 9": (dataseg.COTRAIN, dataseg.DS_ALL),
        "DaTaSeg supp. Table 8": (dataseg.COTRAIN, dataseg.DS_CLS),
        "DaTaSeg supp. Table 7": (dataseg.DS_CLS, dataseg.DS_ALL),
    }
    for name, (treatment, control) in pairs.items():
        row = rows[name]
        assert (row.treatment.runs, row.control.runs) == ((treatment,), (control,))
        assert row.paper_sign == +1  # the paper: sharing (or fewer modules) wins
    assert "+3.4 AP O365" in rows["DaTaSeg Table 5 / supp. Table 9"].paper_effect
    assert not any("no dataset-specific modules" in n for n in table.not_measured)
