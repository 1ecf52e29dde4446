"""``recipe.mask.aux_matching``: the auxiliary (deep-supervision) layers matched on their own
predictions (``per_layer``, Mask2Former) or with the final layer's assignment (``last``,
DaTaSeg App. E): the criterion's losses by hand, how often the matcher runs, the recipe's match
groups in a mixed batch (MERGE and boxes-only data included) and the shipped configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_mask_recipe import tiny_mask_recipe

import babelseg.losses.mask_criterion as mask_criterion
import babelseg.matching.hungarian as hungarian
from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.config import load_config
from babelseg.losses.box_projection import box_projection_loss
from babelseg.losses.mask_criterion import LOSS_KEYS, LayerPrediction, MaskCriterion
from babelseg.matching.groups import MatchGroup
from babelseg.matching.hungarian import HungarianMatcher
from babelseg.matching.targets import MaskTargets, stack_targets
from babelseg.models.outputs import MaskOutput

P = 64  # sampled points per mask
NO_OBJECT = 0.1


def _criterion(aux_matching: str) -> MaskCriterion:
    matcher = HungarianMatcher(
        class_weight=1.0, mask_weight=1.0, dice_weight=1.0, num_points=P, mask_cost="ce"
    )
    return MaskCriterion(
        matcher=matcher, num_points=P, no_object_weight=NO_OBJECT, aux_matching=aux_matching
    )


def _example():
    """Two images, Q = 5 proposals, K = 3 classes: image 0 has mask targets (full and empty
    masks), image 1 one box. Every proposal's mask logit is the same at every pixel, so the
    point-sampled losses do not depend on where the points fall and are known in closed form."""
    g = torch.Generator().manual_seed(4)
    full, empty = torch.ones(8, 8, dtype=torch.bool), torch.zeros(8, 8, dtype=torch.bool)
    targets = [
        MaskTargets(classes=torch.tensor([0, 2, 1]), masks=torch.stack([full, empty, full])),
        MaskTargets(
            classes=torch.tensor([1]), boxes=torch.tensor([[1.0, 1.0, 5.0, 6.0]]), box_only=True
        ),
    ]
    layers = []
    for _ in range(3):  # the final layer, then two auxiliary ones
        levels = torch.randn(2, 5, 1, 1, generator=g) * 2
        masks = levels.expand(2, 5, 8, 8).clone()
        masks[1] = torch.randn(5, 8, 8, generator=g) * 3  # the box image: any masks
        layers.append(
            LayerPrediction(class_logits=torch.randn(2, 5, 4, generator=g) * 2, mask_logits=masks)
        )
    return layers, targets


def _by_hand(layer: LayerPrediction, targets, matches) -> dict[str, float]:
    """The losses of one layer with the given per-image ``(query, target)`` matches."""
    out = dict.fromkeys(LOSS_KEYS, 0.0)
    for b, (tgt, (query, target)) in enumerate(zip(targets, matches)):
        logits = layer.class_logits[b].double()
        label = torch.full((logits.shape[0],), logits.shape[1] - 1)
        label[query] = tgt.classes[target]
        ce = torch.nn.functional.cross_entropy(logits, label, reduction="none")
        w = torch.where(label == logits.shape[1] - 1, NO_OBJECT, 1.0).double()
        out["loss_class"] += float((w * ce).sum() / w.sum())
        if tgt.box_only:
            proj = box_projection_loss(layer.mask_logits[b, query], tgt.boxes[target])
            out["loss_projection"] += float(proj.sum())
            continue
        for q, t in zip(query.tolist(), target.tolist()):
            m = float(layer.mask_logits[b, q, 0, 0])
            y = float(tgt.masks[t].float().mean())  # 0 or 1 everywhere
            p = 1 / (1 + math.exp(-m))
            out["loss_mask"] += max(m, 0) - m * y + math.log1p(math.exp(-abs(m)))
            out["loss_dice"] += 1 - (2 * P * p * y + 1) / (P * p + P * y + 1)
    return out


def _own_matches(criterion, layer, targets):
    return criterion.matcher(list(layer.class_logits), layer.mask_logits, targets)


def _aux_losses(criterion, layers, targets):
    """What the auxiliary layers add: the losses of all layers less those of the final one."""
    gen = torch.Generator().manual_seed(0)
    every = criterion(layers, targets, generator=gen)
    final = criterion(layers[:1], targets, generator=gen)
    return {k: float(every[k] - final[k]) for k in LOSS_KEYS}


def test_last_uses_the_final_layers_matches_for_every_auxiliary_layer():
    layers, targets = _example()
    criterion = _criterion("last")
    final = _own_matches(criterion, layers[0], targets)
    own = [_own_matches(criterion, layer, targets) for layer in layers[1:]]
    # the example is only a test if an auxiliary layer would match differently on its own
    differs = [
        not torch.equal(o[0][0], final[0][0]) or not torch.equal(o[0][1], final[0][1]) for o in own
    ]
    assert any(differs)
    expected = [_by_hand(layer, targets, final) for layer in layers[1:]]
    got = _aux_losses(criterion, layers, targets)
    for key, value in got.items():
        assert value == pytest.approx(sum(e[key] for e in expected), rel=1e-4, abs=1e-5), key
    assert got["loss_projection"] > 0 and got["loss_mask"] > 0


def test_per_layer_matches_every_layer_on_its_own():
    layers, targets = _example()
    criterion = _criterion("per_layer")
    expected = [
        _by_hand(layer, targets, _own_matches(criterion, layer, targets)) for layer in layers[1:]
    ]
    got = _aux_losses(criterion, layers, targets)
    for key, value in got.items():
        assert value == pytest.approx(sum(e[key] for e in expected), rel=1e-4, abs=1e-5), key
    last = _aux_losses(_criterion("last"), layers, targets)
    assert abs(last["loss_class"] - got["loss_class"]) > 1e-3  # the two modes differ here


class _Count:
    """Counts calls of a wrapped function."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.mark.parametrize(("mode", "solves"), [("last", 2), ("per_layer", 6)])
def test_the_matcher_runs_once_per_image_with_last(monkeypatch, mode, solves):
    layers, targets = _example()
    solver = _Count(hungarian.linear_sum_assignment)
    monkeypatch.setattr(hungarian, "linear_sum_assignment", solver)
    _criterion(mode)(layers, targets)
    assert solver.calls == solves  # 2 images x (1 or 3 layers)


def test_unknown_aux_matching_is_an_error():
    with pytest.raises(ValueError, match="Unknown aux_matching 'first'; valid: per_layer, last"):
        _criterion("first")


# ---------------------------------------------------------------- the recipe


def _recipe(name, *overrides):
    return tiny_mask_recipe(name, *overrides, datasets=("pan", "box"))


def _samples():
    image = np.full((64, 64, 3), 80, np.uint8)
    masks = np.zeros((2, 64, 64), bool)
    masks[0, :32], masks[1, 32:] = True, True
    pan = Sample(
        image=image,
        dataset="pan",
        task=Task.PANOPTIC,
        annotation=Annotation.CLEAN,
        image_id="pan",
        masks=masks,
        classes=np.array([0, 1]),
        iscrowd=np.array([False, False]),
    )
    box = Sample(
        image=image,
        dataset="box",
        task=Task.INSTANCE,
        annotation=Annotation.BOXES,
        image_id="box",
        boxes=np.array([[4, 8, 20, 28]], np.float32),
        classes=np.array([1]),
        iscrowd=np.array([False]),
    )
    return [pan, box]


def _output():
    """B = 2 (pan, box), Q = 4; the final layer's proposals predict classes 0, 0, 1 and the
    background (as in test_dataseg_recipe), two auxiliary layers predict class 1 with every
    proposal, so MERGE by their own classes would give them another layout."""
    eye = torch.eye(4)
    g = torch.Generator().manual_seed(2)

    def layer(rows):
        emb = torch.stack([eye[r] for r in rows])[None].expand(2, 4, 4).clone()
        return MaskOutput(mask_logits=torch.randn(2, 4, 16, 16, generator=g), class_embeddings=emb)

    aux = [layer([1, 1, 1, 1]), layer([1, 1, 1, 1])]
    final = layer([0, 0, 1, 3])
    return MaskOutput(
        mask_logits=final.mask_logits, class_embeddings=final.class_embeddings, aux=aux
    )


def _recipe_step(recipe, monkeypatch):
    """One loss on the mixed batch; the match groups, the matches every group got, and how often
    the costs were computed and the assignment problems solved."""
    with torch.no_grad():
        recipe.classifier.background.copy_(torch.eye(4)[3])
    seen = {}
    real_shared = mask_criterion.shared_matches

    def shared(groups, own):
        seen["groups"], seen["matches"] = groups, real_shared(groups, own)
        return seen["matches"]

    monkeypatch.setattr(mask_criterion, "shared_matches", shared)
    costs = _Count(recipe.criterion.matcher.batch_costs)
    monkeypatch.setattr(recipe.criterion.matcher, "batch_costs", costs)
    solver = _Count(hungarian.linear_sum_assignment)
    monkeypatch.setattr(hungarian, "linear_sum_assignment", solver)
    batch = collate_samples(_samples())
    texts = {"pan": torch.eye(4)[:3], "box": torch.eye(4)[:3]}
    result = recipe.loss(_output(), batch, texts, normalisers=recipe.loss_counts(batch))
    return result, seen["groups"], seen["matches"], costs.calls, solver.calls


def test_recipe_last_matches_each_dataset_once_and_merges_aux_layers_alike(monkeypatch):
    recipe = _recipe("dataseg", "recipe.mask.aux_matching=last")
    assert recipe.criterion.aux_matching == "last"
    result, groups, matches, costs, solves = _recipe_step(recipe, monkeypatch)
    assert (costs, solves) == (2, 2)  # one cost call per dataset, one assignment per image
    assert [g.match_from for g in groups] == [None, 0, 0, None, 3, 3]  # pan layers, box layers
    for i, g in enumerate(groups):
        first = 0 if i < 3 else 3
        assert g.images == groups[first].images and matches[i] is matches[first]
    # pan (panoptic: stuff classes 0 and 2 merged) by the final layer's classes: 2 kept
    # proposals (classes 1 and background) + 2 merged classes, in every layer
    assert [g.num_valid for g in groups[:3]] == [[4], [4], [4]]
    aux_masks = _output().aux[0].mask_logits[0]
    merged = torch.maximum(aux_masks[0], aux_masks[1])  # the final layer's class-0 proposals
    assert torch.equal(groups[1].mask_logits[0, 2], merged)
    assert torch.equal(groups[1].mask_logits[0, 0], aux_masks[2])
    assert all(g.query_valid is None for g in groups[3:])  # boxes: no MERGE
    assert float(result.logs["loss_projection"]) > 0 and float(result.logs["loss_mask"]) > 0
    result.total.backward()


def test_recipe_per_layer_matches_every_layer(monkeypatch):
    recipe = _recipe("dataseg")  # the dataclass default
    assert recipe.criterion.aux_matching == "per_layer"
    _, groups, _, costs, solves = _recipe_step(recipe, monkeypatch)
    assert (costs, solves) == (6, 6)
    assert all(g.match_from is None for g in groups)
    # each auxiliary layer MERGEd by its own classes: all 4 proposals kept (class 1) + 2 merged
    assert [g.num_valid for g in groups[:3]] == [[4], [6], [6]]


# ---------------------------------------------------------------- configs


def test_shipped_configs_pick_per_layer_matching():
    # dataseg: per-layer, the evidence row's choice over App. E's last-layer matching
    assert load_config("configs/dataseg.yaml").recipe.mask.aux_matching == "per_layer"
    assert load_config("configs/lmseg.yaml").recipe.mask.aux_matching == "per_layer"
    assert load_config(None, []).recipe.mask.aux_matching == "per_layer"


@pytest.mark.parametrize("name", ["dataseg", "lmseg"])
def test_bad_aux_matching_in_the_config_is_a_clear_error(name):
    message = r"recipe.mask.aux_matching must be one of \['per_layer', 'last'\], got 'final'"
    with pytest.raises(ValueError, match=message):
        _recipe(name, "recipe.mask.aux_matching=final")


def test_reusing_matches_of_another_layout_is_an_error():
    layers, targets = _example()
    groups = [
        MatchGroup(
            class_logits=layers[0].class_logits, mask_logits=layers[0].mask_logits, images=[0, 1]
        ),
        MatchGroup(
            class_logits=layers[1].class_logits[:1],
            mask_logits=layers[1].mask_logits[:1],
            images=[0],
            segment=1,
            match_from=0,
        ),
    ]
    with pytest.raises(ValueError, match="reuses the matches of group 0, but their images"):
        _criterion("last").step(groups, stack_targets(targets), num_tags=1)
