"""DaTaSeg's post-processing (App. F): segments under 4 pixels dropped, panoptic confidence
thresholds 0.8 / 0.85 per dataset, at most 100 instances at a score threshold of 0.0; the other
mask recipes keep Mask2Former's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from babelseg.engine.builders import build_recipe
from babelseg.engine.config import load_config
from babelseg.labels.space import ClassDef, LabelSpace
from babelseg.models.outputs import MaskOutput
from babelseg.models.postprocess import instance_masks, panoptic_segments
from babelseg.recipes import mask_common
from babelseg.recipes.base import RecipeContext

BIG = 10.0
SPACE = LabelSpace([ClassDef("sky"), ClassDef("car", is_thing=True)], name="s")
TINY = [
    "model.backbone_kwargs={widths: [8, 8, 8, 8], depths: [1, 1, 1, 1], norm: gn}",
    "model.decoder_dim=16",
    "model.num_queries=4",
    "model.query_layers=1",
    "labels.encoder=hash",
]


def _mask(cells: list[tuple[int, int]], value: float = BIG) -> torch.Tensor:
    logits = torch.full((4, 4), -BIG)
    for r, c in cells:
        logits[r, c] = value
    return logits


def _masks() -> torch.Tensor:
    """q0: 4 pixels, q1: 2 pixels, q2: 1 pixel."""
    return torch.stack(
        [
            _mask([(0, 0), (0, 1), (1, 0), (1, 1)], value=math.log(3)),  # sigmoid 0.75
            _mask([(3, 3), (3, 2)]),
            _mask([(2, 2)]),
        ]
    )


def test_instances_under_the_minimum_area_are_dropped() -> None:
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.1, 0.5, 0.4], [0.2, 0.7, 0.1]])
    kept = instance_masks(_masks(), probs, (4, 4), top_k=10, min_area=4)
    # only q0 (4 px) is left, once per class: 0.6 * 0.75 and 0.3 * 0.75
    assert kept.classes.tolist() == [0, 1]
    np.testing.assert_allclose(kept.scores, [0.45, 0.225], rtol=1e-5)
    assert all(int(m.sum()) == 4 for m in kept.masks)
    two = instance_masks(_masks(), probs, (4, 4), top_k=10, min_area=2)
    assert int(min(m.sum() for m in two.masks)) == 2 and len(two.scores) == 4
    everything = instance_masks(_masks(), probs, (4, 4), top_k=10)
    assert len(everything.scores) == 6  # no minimum: the 1-pixel q2 is there too


def test_instance_score_threshold_drops_scores_not_above_it() -> None:
    probs = torch.tensor([[0.6, 0.4, 0.0], [0.0, 0.0, 1.0], [0.5, 0.2, 0.3]])
    all_pairs = instance_masks(_masks(), probs, (4, 4), top_k=6)
    assert (all_pairs.scores == 0).sum() == 2  # q1's two zero-probability pairs
    positive = instance_masks(_masks(), probs, (4, 4), top_k=6, score_threshold=0.0)
    assert len(positive.scores) == 4 and bool((positive.scores > 0).all())
    high = instance_masks(_masks(), probs, (4, 4), top_k=6, score_threshold=0.35)
    np.testing.assert_allclose(high.scores, [0.5, 0.45], rtol=1e-4)


def test_instances_are_capped_at_top_k() -> None:
    torch.manual_seed(0)
    logits = torch.randn(120, 16, 16) * 4
    probs = torch.rand(120, 4).softmax(-1)
    pred = instance_masks(logits, probs, (16, 16), top_k=100, min_area=4, score_threshold=0.0)
    assert len(pred.scores) == 100
    assert bool((pred.masks.reshape(100, -1).sum(1) >= 4).all())


def test_panoptic_segments_under_the_minimum_area_are_dropped() -> None:
    probs = torch.tensor([[0.9, 0.0, 0.1], [0.0, 0.95, 0.05], [0.0, 0.9, 0.1]])
    is_thing = torch.tensor([False, True])
    pred = panoptic_segments(
        _masks(), probs, (4, 4), is_thing=is_thing, object_mask_threshold=0.8, min_area=4
    )
    assert [s.category for s in pred.segments] == [0]  # the 2- and 1-pixel cars are gone
    assert int((pred.segment_ids > 0).sum()) == 4
    small = panoptic_segments(_masks(), probs, (4, 4), is_thing=is_thing, min_area=1)
    assert len(small.segments) == 3


def _recipe(name: str, *overrides: str):
    context = RecipeContext(
        label_spaces={"coco_like": SPACE, "ade_like": SPACE},
        texts={},
        label_texts={},
        train_datasets=["coco_like", "ade_like"],
        embed_dim=4,
    )
    cfg = load_config(None, [f"recipe.name={name}", *TINY, *overrides])
    return build_recipe(cfg, embed_dim=4, context=context)


class _Spy:
    def __init__(self, function):
        self.function, self.calls = function, []

    def __call__(self, *args, **kwargs):
        self.calls.append(kwargs)
        return self.function(*args, **kwargs)


@pytest.fixture
def spies(monkeypatch):
    panoptic, instance = _Spy(panoptic_segments), _Spy(instance_masks)
    monkeypatch.setattr(mask_common, "panoptic_segments", panoptic)
    monkeypatch.setattr(mask_common, "instance_masks", instance)
    return panoptic, instance


@torch.no_grad()
def _predict(recipe, dataset: str) -> None:
    torch.manual_seed(0)
    out = MaskOutput(mask_logits=torch.randn(1, 4, 4, 4), class_embeddings=torch.randn(1, 4, 4))
    text = torch.randn(2, 4)
    recipe.panoptic(
        out, text, is_thing=torch.tensor([False, True]), dataset=dataset, sizes=[(16, 16)]
    )
    recipe.instances(out, text, dataset=dataset, sizes=[(16, 16)])


def test_dataseg_uses_the_papers_post_processing_by_default(spies) -> None:
    panoptic, instance = spies
    recipe = _recipe("dataseg", "recipe.dataseg.panoptic_thresholds={coco_like: 0.85}")
    _predict(recipe, "coco_like")
    _predict(recipe, "ade_like")
    assert [c["object_mask_threshold"] for c in panoptic.calls] == [0.85, 0.8]
    assert {c["min_area"] for c in panoptic.calls} == {4}
    assert instance.calls[0]["top_k"] == 100
    assert instance.calls[0]["min_area"] == 4 and instance.calls[0]["score_threshold"] == 0.0


def test_lmseg_keeps_mask2formers_post_processing(spies) -> None:
    panoptic, instance = spies
    _predict(_recipe("lmseg", "recipe.lmseg.prompt_length=0"), "coco_like")
    assert panoptic.calls[0]["object_mask_threshold"] == 0.5
    assert panoptic.calls[0]["min_area"] == 0
    assert instance.calls[0]["top_k"] == 50 and instance.calls[0]["score_threshold"] is None


def test_dataseg_refuses_bad_post_processing_settings() -> None:
    with pytest.raises(ValueError, match="recipe.dataseg.instance_top_k"):
        _recipe("dataseg", "recipe.mask.instance_top_k=20")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        _recipe("dataseg", "recipe.dataseg.panoptic_thresholds={coco_like: 1.5}")
