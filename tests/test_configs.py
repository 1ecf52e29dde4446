"""Every shipped file in configs/ loads, names a catalog recipe, and trains on datasets that
SynthWorld declares with annotation kinds that recipe supports."""

from pathlib import Path

import pytest

from babelseg.data.declaration import load_declarations
from babelseg.engine.config import config_from_dict, load_config
from babelseg.recipes.base import check_annotations
from babelseg.recipes.catalog import supported_annotations

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_the_configs_folder_is_not_empty():
    assert len(CONFIGS) >= 9


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_fits_synthworld(path, tiny_synthworld):
    cfg = load_config(path)
    assert config_from_dict(cfg.to_dict()) == cfg  # what checkpoints store rebuilds it
    supported = supported_annotations(cfg.recipe.name)  # raises for an unknown recipe
    decls = load_declarations(tiny_synthworld / "datasets.yaml")
    unknown = [n for n in [*cfg.data.train, *cfg.data.eval] if n not in decls]
    assert not unknown, f"{path.name} names datasets SynthWorld does not declare: {unknown}"
    check_annotations(cfg.recipe.name, supported, {n: decls[n].annotation for n in cfg.data.train})
