"""The dataseg recipe: MERGE per task, box-only targets with the projection loss, per-dataset
loss weights, one dataset per batch end to end."""

import json

import numpy as np
import pytest
import torch

from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.builders import build_recipe
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.labels.space import ClassDef, LabelSpace
from babelseg.models.outputs import MaskOutput
from babelseg.recipes.base import RecipeContext
from babelseg.recipes.dataseg import DaTaSegRecipe
from babelseg.recipes.mask_common import batch_targets

TINY = [
    "recipe.name=dataseg",
    "model.backbone_kwargs={widths: [8, 8, 8, 8], depths: [1, 1, 1, 1], norm: gn}",
    "model.decoder_dim=16",
    "model.num_queries=4",
    "model.query_layers=1",
    "model.query_ffn_dim=32",
    "recipe.mask.num_points=64",
    "recipe.learn_temperature=false",
    "labels.encoder=hash",
]
# three classes: "sky" (stuff), "car" (thing), "road" (stuff)
SPACE = LabelSpace([ClassDef("sky"), ClassDef("car", is_thing=True), ClassDef("road")], name="pan")


def _recipe(*overrides) -> DaTaSegRecipe:
    torch.manual_seed(0)
    cfg = load_config(None, [*TINY, *overrides])
    context = RecipeContext(
        label_spaces={"pan": SPACE, "sem": SPACE, "box": SPACE},
        texts={},
        label_texts={},
        train_datasets=["pan", "sem", "box"],
        embed_dim=4,
    )
    return build_recipe(cfg, embed_dim=4, context=context)


def _sample(name, task, annotation):
    image = np.full((64, 64, 3), 80, np.uint8)  # GroupNorm needs > 1x1 at stride 32
    if annotation == Annotation.BOXES:
        return Sample(
            image=image,
            dataset=name,
            task=task,
            annotation=annotation,
            image_id=name,
            boxes=np.array([[4, 8, 20, 28], [0, 0, 64, 64]], np.float32),
            classes=np.array([1, 1]),
            iscrowd=np.array([False, True]),
        )
    masks = np.zeros((2, 64, 64), bool)
    masks[0, :32] = True
    masks[1, 32:] = True
    return Sample(
        image=image,
        dataset=name,
        task=task,
        annotation=annotation,
        image_id=name,
        semantic=np.where(masks[0], 0, 1).astype(np.int64),
        masks=masks,
        classes=np.array([0, 1]),
        iscrowd=np.array([False, False]),
    )


def test_merge_classes_follow_the_task():
    recipe = _recipe()
    things = torch.tensor([False, True, False])
    assert recipe.merge_classes(Task.SEMANTIC, things).tolist() == [True, True, True]
    assert recipe.merge_classes(Task.PANOPTIC, things).tolist() == [True, False, True]
    assert recipe.merge_classes(Task.INSTANCE, things) is None
    assert recipe.merge_classes(Task.PANOPTIC, things, box_only=True) is None
    assert _recipe("recipe.dataseg.merge=false").merge_classes(Task.SEMANTIC, things) is None


class _Capture:
    """Wraps the criterion and records the match groups the recipe passes to it."""

    def __init__(self, criterion):
        self.criterion = criterion
        self.default_weights = criterion.default_weights
        self.aux_matching = criterion.aux_matching
        self.groups = []

    def step(self, groups, targets, **kwargs):
        self.groups.append(groups)
        return self.criterion.step(groups, targets, **kwargs)

    def total(self, losses, normalisers, **kwargs):
        return self.criterion.total(losses, normalisers, **kwargs)


def _hand_output():
    """Q = 4 proposals whose class embeddings equal the texts of classes 0, 0, 1 and the
    background, so their arg-max classes are 0, 0, 1, background."""
    eye = torch.eye(4)
    emb = torch.stack([eye[0], eye[0], eye[1], eye[3]])[None]
    masks = torch.zeros(1, 4, 8, 8)
    masks[0, 0, :4] = 5.0  # class-0 proposals: top half ...
    masks[0, 1, :, :4] = 3.0  # ... and left half
    return MaskOutput(mask_logits=masks - 1.0, class_embeddings=emb, aux=[])


@pytest.mark.parametrize(
    ("task", "n_out", "merged_max"),
    [(Task.PANOPTIC, 4, True), (Task.SEMANTIC, 4, True), (Task.INSTANCE, 4, False)],
)
def test_loss_merges_the_right_classes(task, n_out, merged_max):
    recipe = _recipe()
    with torch.no_grad():
        recipe.classifier.background.copy_(torch.eye(4)[3])
    recipe.criterion = _Capture(recipe.criterion)
    name = {Task.PANOPTIC: "pan", Task.SEMANTIC: "sem", Task.INSTANCE: "box"}[task]
    batch = collate_samples([_sample(name, task, Annotation.CLEAN)])
    texts = {name: torch.eye(4)[:3]}
    recipe.loss(_hand_output(), batch, texts, normalisers=recipe.loss_counts(batch))
    (group,) = recipe.criterion.groups[0]
    masks, logits = group.mask_logits[0], group.class_logits[0]
    if group.query_valid is not None:  # MERGE pads to Q + M proposals; the valid ones first
        valid = group.query_valid[0]
        assert bool(valid[: int(valid.sum())].all())
        masks, logits = masks[valid], logits[valid]
    assert masks.shape[0] == logits.shape[0] == n_out
    out = _hand_output().mask_logits[0]
    union = torch.maximum(out[0], out[1])
    if task == Task.PANOPTIC:  # kept: the thing (class 1) and background proposals; then
        # merged stuff classes 0 (max of two proposals) and 2 (no proposal: -100)
        assert torch.equal(masks[0], out[2]) and torch.equal(masks[1], out[3])
        assert torch.equal(masks[2], union) and bool((masks[3] == -100).all())
    elif task == Task.SEMANTIC:  # kept: background; merged: classes 0, 1, 2
        assert torch.equal(masks[0], out[3]) and torch.equal(masks[1], union)
        assert torch.equal(masks[2], out[2]) and bool((masks[3] == -100).all())
    else:  # instance: no MERGE
        assert torch.equal(masks, out)
    assert any(torch.equal(m, union) for m in masks) == merged_max


def test_box_only_targets_use_the_projection_loss():
    recipe = _recipe()
    samples = [_sample("box", Task.INSTANCE, Annotation.BOXES)]
    batch = collate_samples(samples, targets=DaTaSegRecipe.target_spec)
    target = batch.targets
    assert target.box_only == [True] and target.classes.tolist() == [[1]]  # no crowd box
    assert target.boxes.tolist() == [[[1.0, 2.0, 5.0, 7.0]]]  # image pixels / stride 4
    assert torch.equal(batch_targets(collate_samples(samples)).boxes, target.boxes)
    counts = recipe.loss_counts(batch)
    assert counts == {"num_images": 1.0, "num_masks": 0.0, "num_boxes": 1.0}
    out = recipe(batch.images)
    result = recipe.loss(out, batch, {"box": torch.eye(4)[:3]}, normalisers=counts)
    assert result.logs["loss_projection"] > 0
    assert result.logs["loss_mask"] == 0 and result.logs["loss_dice"] == 0
    result.total.backward()
    assert recipe.model.query_decoder.parameters().__next__().grad is not None


def test_dataset_loss_weights_scale_that_dataset():
    batch = collate_samples([_sample("pan", Task.PANOPTIC, Annotation.CLEAN)])
    texts = {"pan": torch.eye(4)[:3]}
    totals = []
    for weights in ("{}", "{pan: 2.5}"):
        recipe = _recipe(f"recipe.dataseg.dataset_loss_weights={weights}")
        torch.manual_seed(1)
        out = recipe(batch.images)
        totals.append(recipe.loss(out, batch, texts, normalisers=recipe.loss_counts(batch)).total)
    assert float(totals[1].detach()) == pytest.approx(2.5 * float(totals[0].detach()), rel=1e-5)


def test_unknown_dataset_in_loss_weights_is_an_error():
    with pytest.raises(ValueError, match="dataset_loss_weights names unknown datasets"):
        _recipe("recipe.dataseg.dataset_loss_weights={nope: 2}")


def test_end_to_end_one_dataset_per_batch_with_boxes(tiny_run_config, tmp_path):
    path = tiny_run_config(
        "dataseg",
        data={
            "train": ["vista_roads", "open_boxes"],
            "crop": [32, 32],
            "sampling": "per_dataset",
            "batch_size": 2,
        },
        model={"num_queries": 6, "query_layers": 1, "query_ffn_dim": 32},
        recipe={"name": "dataseg", "learn_temperature": False, "mask": {"num_points": 64}},
        train={"steps": 4, "checkpoint_every": 4, "eval_at_end": False},
    )
    train(load_config(path))
    log = (tmp_path / "dataseg" / "metrics.jsonl").read_text().splitlines()
    lines = [json.loads(x) for x in log]
    assert all(np.isfinite(x["loss"]) for x in lines)
    for x in lines:  # one dataset per step; boxes train the projection loss only
        (name,) = [k for k in x if k.startswith("loss/")]
        if name == "loss/open_boxes":
            assert x["loss_projection"] > 0 and x["loss_mask"] == 0
        else:
            assert x["loss_projection"] == 0 and x["loss_mask"] > 0
