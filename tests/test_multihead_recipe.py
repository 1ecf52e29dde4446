"""The `multihead` baseline: shared body, one classifier per dataset, text lookup elsewhere."""

import json
import math

import numpy as np
import pytest
import torch

from babelseg.cli.main import main
from babelseg.data.collate import Batch, normalize_image
from babelseg.data.declaration import load_declarations
from babelseg.data.readers import make_reader
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.inference.predictor import Predictor
from babelseg.models.outputs import PixelOutput
from babelseg.recipes.multihead import MultiHeadRecipe


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
    """Head a (2 classes) gives logits (2, 0), head b (3 classes) (0, 0, 3) for embedding 1."""
    texts = {
        "a": torch.tensor([[1.0, 0, 0], [0, 1, 0]]),
        "b": torch.tensor([[0.0, 0, 1], [1, 1, 0], [1, 0, 1]]),
    }
    recipe = MultiHeadRecipe(
        model=torch.nn.Identity(), embed_dim=1, num_classes={"a": 2, "b": 3}, label_embeddings=texts
    )
    with torch.no_grad():
        recipe.heads[0].weight.copy_(torch.tensor([2.0, 0])[:, None, None, None])
        recipe.heads[1].weight.copy_(torch.tensor([0.0, 0, 3])[:, None, None, None])
        for head in recipe.heads:
            head.bias.zero_()
    return recipe, texts


def test_each_image_is_scored_by_its_own_head():
    recipe, texts = _recipe()
    batch = _batch(["a", "b", "a"], [[[0]], [[2]], [[255]]])
    counts = recipe.loss_counts(batch)
    assert counts == {"pixels": 2.0}
    result = recipe.loss(PixelOutput(torch.ones(3, 1, 1, 1)), batch, texts, normalisers=counts)
    a = math.log(1 + math.exp(-2))  # head a, class 0 of (2, 0)
    b = math.log(1 + 2 * math.exp(-3))  # head b, class 2 of (0, 0, 3)
    assert result.per_dataset["a"].item() == pytest.approx(a, rel=1e-5)
    assert result.per_dataset["b"].item() == pytest.approx(b, rel=1e-5)
    assert result.total.item() == pytest.approx((a + b) / 2, rel=1e-5)


def test_an_idle_head_gets_a_zero_gradient():
    recipe, texts = _recipe()
    batch = _batch(["a"], [[[1]]])
    out = PixelOutput(torch.ones(1, 1, 1, 1))
    recipe.loss(out, batch, texts, normalisers=recipe.loss_counts(batch)).total.backward()
    assert recipe.heads[1].weight.grad is not None
    assert torch.count_nonzero(recipe.heads[1].weight.grad) == 0
    # embedding 1: d/dw of -log softmax(w)[1] at w = (2, 0) is (p0, p1 - 1) = (p0, -p0)
    p0 = math.exp(2) / (math.exp(2) + 1)
    assert recipe.heads[0].weight.grad.flatten().tolist() == pytest.approx([p0, -p0])


def test_semantic_logits_route_to_a_head_or_to_the_nearest_label_of_any_head():
    recipe, texts = _recipe()
    out = PixelOutput(torch.ones(1, 1, 1, 1))
    assert recipe.semantic_logits(out, texts["b"], dataset="b").flatten().tolist() == [0, 0, 3]
    assert recipe.semantic_logits(out, texts["a"]).flatten().tolist() == [2, 0]
    # nearest labels: a/1, b/0, b/2 -> each head's own log-probabilities
    asked = torch.tensor([[0.1, 0.9, 0.0], [0.1, 0.0, 1.0], [0.8, 0.1, 0.7]])
    logits = recipe.semantic_logits(out, asked, pixel_major=True)
    assert logits.shape == (1, 1, 1, 3)
    expected = [
        -math.log(1 + math.exp(2)),
        -math.log(2 + math.exp(3)),
        -math.log(1 + 2 / math.e**3),
    ]
    assert logits.flatten().tolist() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="has 3 classes but 2 texts"):
        recipe.semantic_logits(out, texts["a"], dataset="b")


def test_multihead_trains_evaluates_and_predicts_through_the_cli(tiny_run_config, tmp_path):
    cfg = load_config(
        tiny_run_config(
            "multihead", recipe={"name": "multihead"}, train={"steps": 4, "eval_at_end": False}
        )
    )
    result = train(cfg, show_progress=False)
    assert math.isfinite(result.final_loss)
    out = tmp_path / "metrics.json"
    args = ["--datasets", "home_scenes,living_zero", "--max-images", "3", "--out", str(out)]
    assert main(["eval", "--run", cfg.run_dir, *args]) == 0
    metrics = json.loads(out.read_text())["datasets"]
    assert not metrics["home_scenes"]["heldout"] and metrics["living_zero"]["heldout"]

    predictor = Predictor.from_checkpoint(cfg.run_dir)
    recipe = predictor.recipe
    assert isinstance(recipe, MultiHeadRecipe)
    assert recipe.datasets == ["metro_drive", "vista_roads", "home_scenes"]
    assert recipe.num_classes == [len(predictor.label_spaces[d]) for d in recipe.datasets]
    # a training dataset's vocabulary is answered by exactly its own head
    space, text = predictor.dataset_vocabulary("vista_roads")
    decl = load_declarations(cfg.data.datasets_yaml)["vista_roads"]
    image = make_reader(decl, "val", space)[0].image
    logits = predictor.logits(image, text)
    with torch.inference_mode():
        direct = recipe.heads[1](recipe(normalize_image(image)[None]).embeddings)
    assert torch.allclose(logits, direct[0].permute(1, 2, 0), atol=1e-6)
    assert predictor.predict(image, text).max() < len(space)
    assert isinstance(predictor.predict(image, text), np.ndarray)
