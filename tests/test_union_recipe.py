"""The `union` baseline: merged one-hot label space, per-dataset partial softmax, text lookup."""

import json
import math

import pytest
import torch

from babelseg.cli.main import main
from babelseg.data.collate import Batch
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.inference.predictor import Predictor
from babelseg.models.outputs import PixelOutput
from babelseg.recipes.label_matching import name_key, nearest_labels, union_of_names
from babelseg.recipes.union import UnionRecipe


def _batch(datasets, semantic):
    semantic = torch.tensor(semantic, dtype=torch.long)
    b, h, w = semantic.shape
    return Batch(
        images=torch.zeros(b, 3, h, w),
        semantic=semantic,
        valid=torch.ones(b, h, w, dtype=torch.bool),
        datasets=list(datasets),
        samples=[],
        image_sizes=[(h, w)] * b,
    )


def _recipe():
    """Union of a = [road, car] and b = [Road, person]: classes road=0, car=1, person=2.

    With embeddings (1, 1) everywhere the classifier gives road=2, car=0, person=100.
    """
    texts = {
        "a": torch.tensor([[1.0, 0, 0], [0, 1, 0]]),
        "b": torch.tensor([[1.0, 0, 0], [0, 0, 1]]),
    }
    recipe = UnionRecipe(
        model=torch.nn.Identity(),
        embed_dim=2,
        class_names={"a": ["road", "car"], "b": [" Road", "person"]},
        label_embeddings=texts,
    )
    with torch.no_grad():
        recipe.classifier.weight.copy_(torch.tensor([[2.0, 0], [0, 0], [50, 50]])[:, :, None, None])
        recipe.classifier.bias.zero_()
    return recipe, texts


def test_union_merges_identical_names_case_and_whitespace_insensitively():
    assert name_key("  Traffic \t Light ") == "traffic light"
    names, index = union_of_names(
        {
            "a": ["Road", "car", "Traffic  light"],
            "b": ["road ", "CAR", "pedestrian", "traffic light"],
            "c": ["person", "pedestrian"],
        }
    )
    assert names == ["Road", "car", "Traffic  light", "pedestrian", "person"]
    assert index == {"a": [0, 1, 2], "b": [0, 1, 3, 2], "c": [4, 3]}


def test_a_datasets_loss_ignores_the_other_datasets_classes():
    recipe, texts = _recipe()
    emb = torch.ones(2, 2, 1, 2)
    # image 0 (a): road, ignore; image 1 (b): person (index 1 of b), road (index 0 of b)
    batch = _batch(["a", "b"], [[[0, 255]], [[1, 0]]])
    counts = recipe.loss_counts(batch)
    assert counts == {"pixels": 3.0}
    result = recipe.loss(PixelOutput(emb), batch, texts, normalisers=counts)
    # a's softmax sees road=2, car=0 only (person's 100 would make it ~98)
    a_road = math.log(1 + math.exp(-2))
    # b's softmax sees road=2, person=100 only
    b_person = math.log(1 + math.exp(-98))
    b_road = math.log(1 + math.exp(98))
    assert result.per_dataset["a"].item() == pytest.approx(a_road, rel=1e-5)
    assert result.per_dataset["b"].item() == pytest.approx((b_person + b_road) / 2, rel=1e-5)
    assert result.total.item() == pytest.approx((a_road + b_person + b_road) / 3, rel=1e-5)


def test_semantic_logits_own_classes_or_nearest_training_label():
    recipe, texts = _recipe()
    out = PixelOutput(torch.ones(1, 2, 1, 1))
    # a training dataset, named or recognised by its texts
    assert recipe.semantic_logits(out, texts["b"], dataset="b").flatten().tolist() == [2, 100]
    assert recipe.semantic_logits(out, texts["b"]).flatten().tolist() == [2, 100]
    assert recipe.semantic_logits(out, texts["a"]).flatten().tolist() == [2, 0]
    # any other vocabulary: nearest training text -> its union class
    asked = torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.2, 1.0], [0.9, 0.0, 0.1]])
    assert nearest_labels(asked, recipe.label_embeddings).tolist() == [1, 3, 0]
    logits = recipe.semantic_logits(out, asked, dataset="held_out", pixel_major=True)
    assert logits.shape == (1, 1, 1, 3)
    assert logits.flatten().tolist() == [0, 100, 2]
    with pytest.raises(ValueError, match="has 2 classes but 3 texts"):
        recipe.semantic_logits(out, asked, dataset="a")


def test_union_trains_evaluates_and_predicts_through_the_cli(tiny_run_config, tmp_path):
    cfg = load_config(
        tiny_run_config("union", recipe={"name": "union"}, train={"steps": 4, "eval_at_end": False})
    )
    result = train(cfg, show_progress=False)
    assert math.isfinite(result.final_loss)
    out = tmp_path / "metrics.json"
    datasets = "metro_drive,vista_roads,night_drive"
    args = ["--datasets", datasets, "--max-images", "3", "--out", str(out)]
    assert main(["eval", "--run", cfg.run_dir, *args]) == 0
    metrics = json.loads(out.read_text())["datasets"]
    assert set(metrics) == {"metro_drive", "vista_roads", "night_drive"}
    assert metrics["night_drive"]["heldout"] and 0.0 <= metrics["night_drive"]["mIoU"] <= 100.0

    predictor = Predictor.from_checkpoint(cfg.run_dir)
    recipe = predictor.recipe
    assert isinstance(recipe, UnionRecipe)
    metro, vista = predictor.label_spaces["metro_drive"], predictor.label_spaces["vista_roads"]
    road = recipe.dataset_index["metro_drive"][metro.index("road")]
    assert recipe.dataset_index["vista_roads"][vista.index("road")] == road
    person = recipe.dataset_index["metro_drive"][metro.index("person")]
    assert recipe.dataset_index["vista_roads"][vista.index("pedestrian")] != person
    assert recipe.union_names.count("road") == 1
    # the stored lookup texts survive the checkpoint: a training vocabulary maps to itself
    assert recipe.classes_for(predictor.texts["vista_roads"]).tolist() == (
        recipe.dataset_index["vista_roads"].tolist()
    )
