"""One-hot class rows for the mask recipes (LMSeg Tables 2-3's union / multi-head baselines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from babelseg.data.declaration import load_declarations
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.evaluation.runner import evaluate_datasets
from babelseg.inference.predictor import Predictor
from babelseg.recipes.onehot_mask import OneHotClassEmbeddings

NAMES = {"a": ["road", "car", "sky"], "b": ["Car", "tree"]}


def _texts(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {d: torch.randn(len(n), 4, generator=generator) for d, n in NAMES.items()}


def test_union_merges_identical_names_and_multihead_keeps_one_row_per_dataset_class():
    texts = _texts(torch.Generator().manual_seed(0))
    union = OneHotClassEmbeddings(mode="union", class_names=NAMES, label_texts=texts, embed_dim=4)
    rows = union(texts)
    assert union.weight.shape == (4, 4)  # road, car (= Car), sky, tree
    assert torch.equal(rows["a"][1], rows["b"][0])
    multi = OneHotClassEmbeddings(
        mode="multihead", class_names=NAMES, label_texts=texts, embed_dim=4
    )
    rows = multi(texts)
    assert multi.weight.shape == (5, 4)
    assert not torch.equal(rows["a"][1], rows["b"][0])
    assert rows["a"].requires_grad  # the rows are what trains


def test_untrained_vocabularies_get_the_nearest_training_labels_rows():
    texts = _texts(torch.Generator().manual_seed(1))
    multi = OneHotClassEmbeddings(
        mode="multihead", class_names=NAMES, label_texts=texts, embed_dim=4
    )
    asked = torch.stack([texts["b"][1] * 2.0, texts["a"][2] + 1e-3])  # ~tree, ~sky
    rows = multi({"held_out": asked})["held_out"]
    assert torch.equal(rows[0], multi.weight[4])
    assert torch.equal(rows[1], multi.weight[2])
    with pytest.raises(ValueError, match="union"):
        OneHotClassEmbeddings(mode="onehot", class_names=NAMES, label_texts=texts, embed_dim=4)


@pytest.mark.parametrize("classifier", ["union", "multihead"])
def test_lmseg_with_one_hot_classes_trains_and_predicts_held_out_labels(
    classifier, tiny_run_config, tmp_path, tiny_synthworld
):
    path = tiny_run_config(
        classifier,
        data={"train": ["metro_drive", "vista_roads"], "crop": [32, 32]},
        model={"num_queries": 6, "query_layers": 1, "query_ffn_dim": 32},
        recipe={
            "name": "lmseg",
            "learn_temperature": False,
            "mask": {"num_points": 64},
            "lmseg": {"prompt_length": 0, "category_guided": False, "classifier": classifier},
        },
        train={"steps": 2, "checkpoint_every": 2, "eval_at_end": False},
    )
    result = train(load_config(path))
    assert np.isfinite(result.final_loss)
    predictor = Predictor.from_checkpoint(tmp_path / classifier)
    decls = load_declarations(tiny_synthworld / "datasets.yaml")
    metrics = evaluate_datasets(predictor, decls, ["metro_drive", "night_drive"], max_images=1)
    assert 0.0 <= metrics["datasets"]["night_drive"]["mIoU"] <= 100.0  # zero-shot, nearest rows
    rows = predictor.texts["night_drive"]
    assert torch.equal(rows[0], predictor.texts["metro_drive"][0])  # roadway -> road's row
    with pytest.raises(ValueError, match="prompt_length=0"):
        cfg = load_config(
            path,
            [
                "recipe.lmseg.prompt_length=8",
                "labels.encoder=minilm",
                f"run_dir={tmp_path / 'with_prompts'}",  # a fresh folder: the first run owns its
            ],
        )
        train(cfg)
