"""``recipe.mask``'s loss and matching terms reach the criterion and the matcher: the mask loss
type (focal / ce), the loss and matching weights, the no-object weight and the per-dataset
overrides (DaTaSeg Table 10), with clear errors for bad names and values."""

import numpy as np
import pytest
import torch
from tiny_mask_recipe import tiny_mask_recipe

from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine.config import load_config
from babelseg.matching.costs import CostWeights
from babelseg.models.outputs import MaskOutput

TERMS = ("loss_class", "loss_mask", "loss_dice")


def _recipe(name, *overrides, datasets=("pan", "sem")):
    return tiny_mask_recipe(name, *overrides, datasets=datasets)


def _sample(name):
    masks = np.zeros((2, 64, 64), bool)
    masks[0, :32] = True
    masks[1, 32:] = True
    return Sample(
        image=np.full((64, 64, 3), 80, np.uint8),
        dataset=name,
        task=Task.PANOPTIC,
        annotation=Annotation.CLEAN,
        image_id=name,
        masks=masks,
        classes=np.array([0, 1]),
        iscrowd=np.array([False, False]),
    )


def _output(batch_size=1):
    """Q = 4 fixed proposals per image (no auxiliary layers)."""
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(batch_size, 4, 4, generator=gen)
    masks = torch.randn(batch_size, 4, 16, 16, generator=gen) * 3
    return MaskOutput(mask_logits=masks, class_embeddings=emb, aux=[])


def _loss(recipe, names):
    batch = collate_samples([_sample(n) for n in names])
    texts = {n: torch.eye(4)[:3] for n in set(names)}
    torch.manual_seed(2)  # the sampled points
    return recipe.loss(_output(len(names)), batch, texts, normalisers=recipe.loss_counts(batch))


def _weighted(result, weights):
    """The total rebuilt from the unweighted per-term logs (one layer)."""
    return sum(w * float(result.logs[k]) for k, w in zip(TERMS, weights))


def test_shipped_configs_carry_the_papers_weights():
    mask = load_config("configs/lmseg.yaml").recipe.mask
    assert (mask.mask_loss, mask.class_weight, mask.mask_weight, mask.dice_weight) == (
        "focal",
        1.0,
        20.0,
        1.0,
    )
    assert load_config("configs/lmseg.yaml").recipe.lmseg.prompt_length == 8
    cfg = load_config("configs/dataseg.yaml")
    assert cfg.recipe.mask.no_object_weight == pytest.approx(0.05)
    datasets = list(cfg.data.train)
    recipe = _recipe("dataseg", *_mask_overrides(cfg.recipe.mask), datasets=datasets)
    boxes = recipe.dataset_weights("open_boxes", task="instance", box_only=True)
    assert (boxes.projection_weight, boxes.match_projection_weight) == (2.0, 0.5)
    coco = recipe.dataset_weights("vista_roads", task="panoptic")
    assert (coco.match_mask_weight, coco.match_dice_weight, coco.mask_weight) == (0.0, 1.0, 20.0)
    ade = recipe.dataset_weights("home_scenes", task="semantic")
    assert (ade.class_weight, ade.mask_weight, ade.dice_weight) == (1.0, 20.0, 5.0)
    assert (ade.match_mask_weight, ade.match_dice_weight, ade.no_object_weight) == (20.0, 5.0, 0.05)


def _mask_overrides(mask):
    """``recipe.mask`` of a loaded config as overrides (the tiny model, the config's terms)."""
    per = ", ".join(
        f"{d}: {{{', '.join(f'{k}: {v}' for k, v in t.items())}}}"
        for d, t in mask.per_dataset.items()
    )
    keys = ("mask_loss", "class_weight", "mask_weight", "dice_weight", "no_object_weight")
    out = [f"recipe.mask.{k}={getattr(mask, k)}" for k in keys]
    out.append(f"recipe.mask.match_projection_weight={mask.match_projection_weight}")
    return [*out, f"recipe.mask.per_dataset={{{per}}}"]


@pytest.mark.parametrize("name", ["lmseg", "dataseg"])
def test_mask_loss_type_reaches_criterion_and_matcher(name):
    focal, ce = _recipe(name), _recipe(name, "recipe.mask.mask_loss=ce")
    assert (focal.criterion.mask_loss, focal.criterion.matcher.mask_cost) == ("focal", "focal")
    assert (ce.criterion.mask_loss, ce.criterion.matcher.mask_cost) == ("ce", "ce")
    a, b = _loss(focal, ["pan"]), _loss(ce, ["pan"])
    assert abs(float(a.logs["loss_mask"]) - float(b.logs["loss_mask"])) > 1e-3


def test_focal_parameters_change_the_mask_loss():
    a = _loss(_recipe("lmseg", "recipe.mask.focal_gamma=0"), ["pan"])
    b = _loss(_recipe("lmseg", "recipe.mask.focal_gamma=2"), ["pan"])
    assert float(a.logs["loss_mask"]) > float(b.logs["loss_mask"]) + 1e-4  # gamma damps


def test_loss_weights_scale_their_terms():
    base = _loss(_recipe("lmseg"), ["pan"])
    assert float(base.total.detach()) == pytest.approx(_weighted(base, (1, 20, 1)), rel=1e-5)
    over = (
        "recipe.mask.class_weight=3",
        "recipe.mask.mask_weight=0.5",
        "recipe.mask.dice_weight=7",
    )
    # matching weights pinned to the defaults: same matches, only the loss weights change
    pins = ("recipe.mask.match_class_weight=1", "recipe.mask.match_mask_weight=20")
    scaled = _loss(_recipe("lmseg", *over, *pins, "recipe.mask.match_dice_weight=1"), ["pan"])
    for key in TERMS:
        assert float(scaled.logs[key]) == pytest.approx(float(base.logs[key]), rel=1e-5)
    assert float(scaled.total.detach()) == pytest.approx(_weighted(base, (3, 0.5, 7)), rel=1e-5)


def test_no_object_weight_reaches_the_class_loss():
    a = _loss(_recipe("lmseg", "recipe.mask.no_object_weight=0.1"), ["pan"])
    b = _loss(_recipe("lmseg", "recipe.mask.no_object_weight=1.0"), ["pan"])
    assert abs(float(a.logs["loss_class"]) - float(b.logs["loss_class"])) > 1e-4


def test_matching_weights_reach_the_matcher():
    recipe = _recipe(
        "dataseg", "recipe.mask.match_class_weight=0", "recipe.mask.match_dice_weight=4"
    )
    assert recipe.criterion.matcher.weights == CostWeights(
        class_weight=0.0, mask_weight=20.0, dice_weight=4.0, projection_weight=5.0
    )
    assert recipe.criterion.default_weights.dice_weight == 1.0  # the loss keeps its own


class _Spy:
    """Wraps the criterion; records the per-tag weights and sums of each step."""

    def __init__(self, criterion):
        self.criterion, self.calls = criterion, []
        self.default_weights = criterion.default_weights
        self.aux_matching = criterion.aux_matching

    def step(self, groups, targets, **kwargs):
        out = self.criterion.step(groups, targets, **kwargs)
        self.calls.append((kwargs["tag_weights"], out))
        return out

    def total(self, losses, normalisers, **kwargs):
        return self.criterion.total(losses, normalisers, **kwargs)


def test_per_dataset_override_picks_the_steps_dataset():
    per = "recipe.mask.per_dataset={pan: {class_weight: 3, match_mask_weight: 0}}"
    recipe = _recipe("dataseg", per)
    assert recipe.dataset_weights("pan").class_weight == 3.0
    assert recipe.dataset_weights("pan").match_mask_weight == 0.0
    assert recipe.dataset_weights("pan").mask_weight == 20.0  # not overridden
    assert recipe.dataset_weights("sem") == recipe.criterion.default_weights
    recipe.criterion = _Spy(recipe.criterion)
    pan = _loss(recipe, ["pan"])
    assert float(pan.total.detach()) == pytest.approx(_weighted(pan, (3, 20, 1)), rel=1e-5)
    sem = _loss(recipe, ["sem"])
    assert float(sem.total.detach()) == pytest.approx(_weighted(sem, (1, 20, 1)), rel=1e-5)
    assert [w[0].class_weight for w, _ in recipe.criterion.calls] == [3.0, 1.0]
    assert recipe.criterion.calls[0][0][0].cost_weights().mask_weight == 0.0


def test_kind_keys_apply_to_every_dataset_of_that_kind():
    per = "recipe.mask.per_dataset={panoptic: {class_weight: 3}, pan: {class_weight: 5}}"
    recipe = _recipe("dataseg", per)
    assert recipe.dataset_weights("sem", task="panoptic").class_weight == 3.0
    assert recipe.dataset_weights("pan", task="panoptic").class_weight == 5.0  # own entry wins
    assert recipe.dataset_weights("sem", task="semantic").class_weight == 1.0
    sem = _loss(recipe, ["sem"])  # a panoptic sample of dataset "sem"
    assert float(sem.total.detach()) == pytest.approx(_weighted(sem, (3, 20, 1)), rel=1e-5)
    boxes = _recipe("dataseg", "recipe.mask.per_dataset={boxes: {projection_weight: 2}}")
    assert boxes.dataset_weights("sem", task="instance", box_only=True).projection_weight == 2.0
    assert boxes.dataset_weights("sem", task="instance").projection_weight == 5.0


def test_mixed_batch_weights_each_image_by_its_dataset():
    recipe = _recipe("lmseg", "recipe.mask.per_dataset={pan: {class_weight: 3}}")
    recipe.criterion = _Spy(recipe.criterion)
    batch = collate_samples([_sample("pan"), _sample("sem")])
    result = _loss(recipe, ["pan", "sem"])
    weights, per_tag = recipe.criterion.calls[0]
    per_tag = [{k: float(v.detach()) for k, v in sums.items()} for sums in per_tag]
    assert [w.class_weight for w in weights] == [3.0, 1.0]
    norm = recipe.loss_counts(batch)
    expected = sum(
        3 ** (t == 0) * per_tag[t]["loss_class"] / norm["num_images"]
        + 20 * per_tag[t]["loss_mask"] / norm["num_masks"]
        + per_tag[t]["loss_dice"] / norm["num_masks"]
        for t in range(2)
    )
    assert float(result.total.detach()) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("recipe.mask.mask_loss=bce", "recipe.mask.mask_loss must be one of"),
        ("recipe.mask.per_dataset={coco: {class_weight: 1}}", r"unknown datasets \['coco'\]"),
        ("recipe.mask.per_dataset={pan: {focal: 1}}", r"pan names unknown loss terms \['focal'\]"),
        ("recipe.mask.per_dataset={pan: {dice_weight: -1}}", "per_dataset.pan: .*dice_weight"),
        ("recipe.mask.match_dice_weight=-2", "recipe.mask: .*match_dice_weight must be >= 0"),
    ],
)
def test_bad_terms_are_clear_errors(override, message):
    with pytest.raises(ValueError, match=message):
        _recipe("dataseg", override)


def test_unknown_mask_key_is_an_error():
    with pytest.raises(Exception, match="mask_los"):
        load_config(None, ["recipe.mask.mask_los=focal"])
