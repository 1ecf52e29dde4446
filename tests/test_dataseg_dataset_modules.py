"""DaTaSeg's dataset-specific modules (section 4.7, supp. Fig. 8): per-dataset queries, class
heads and backgrounds, off by default; each image uses its own dataset's, in mixed batches too."""

import numpy as np
import pytest
import torch
from test_dataseg_recipe import _recipe, _sample

from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Task
from babelseg.engine.config import load_config
from babelseg.engine.trainer import train
from babelseg.inference.predictor import Predictor

DATASETS = ["pan", "sem", "box"]  # _recipe's training datasets, in row order
BOTH = ("recipe.dataseg.dataset_queries=3", "recipe.dataseg.dataset_classification=true")
C, D, QD = 16, 4, 3  # query width (model.decoder_dim), text dim, Q_d
TEXTS = {name: torch.eye(4)[:3] for name in DATASETS}


def _batch(*names):
    kinds = {"pan": (Task.PANOPTIC, Annotation.CLEAN), "sem": (Task.SEMANTIC, Annotation.CLEAN)}
    samples = [_sample(n, *kinds.get(n, (Task.INSTANCE, Annotation.BOXES))) for n in names]
    return collate_samples(samples, targets=_recipe().target_spec)


def test_default_config_adds_no_parameters():
    recipe = _recipe()
    names = [n for n, _ in recipe.named_parameters()]
    assert not [n for n in names if "dataset" in n or "backgrounds" in n]
    assert "model.query_decoder.class_head.weight" in names
    assert recipe.classifier.background.shape == (D,)
    assert not recipe.forward_takes_datasets and recipe.extra_state() == {}
    assert recipe(_batch("pan").images).mask_logits.shape[1] == 4  # model.num_queries only


def test_parameter_shapes_and_count():
    base = sum(p.numel() for p in _recipe().parameters())
    recipe = _recipe(*BOTH)
    qd = recipe.model.query_decoder
    assert qd.dataset_queries.query_feat.weight.shape == (len(DATASETS) * QD, C)
    assert qd.dataset_class_heads.weight.shape == (len(DATASETS), D, C)
    assert qd.dataset_class_heads.bias.shape == (len(DATASETS), D)
    assert recipe.classifier.backgrounds.shape == (len(DATASETS), D)
    assert qd.class_head is None and not hasattr(recipe.classifier, "background")
    t = len(DATASETS)
    added = 2 * t * QD * C + (t - 1) * (C * D + D) + (t - 1) * D  # queries; heads, backgrounds
    assert sum(p.numel() for p in recipe.parameters()) == base + added
    assert recipe.extra_state() == {"module_datasets": DATASETS}
    assert recipe(_batch("pan").images, datasets=["pan"]).mask_logits.shape[1] == 4 + QD


def _grads_by_dataset(recipe):
    """``{parameter: gradient float[T, ...]}`` of the dataset-specific parameters present."""
    qd, t = recipe.model.query_decoder, len(DATASETS)
    out = {}
    if qd.dataset_queries is not None:
        out["query_feat"] = qd.dataset_queries.query_feat.weight.grad.view(t, -1)
        out["query_pos"] = qd.dataset_queries.query_pos.weight.grad.view(t, -1)
    if qd.dataset_class_heads is not None:
        out["head_weight"] = qd.dataset_class_heads.weight.grad
        out["head_bias"] = qd.dataset_class_heads.bias.grad
        out["background"] = recipe.classifier.backgrounds.grad
    return out


@pytest.mark.parametrize(("settings", "num_params"), [(BOTH, 5), (BOTH[:1], 2), (BOTH[1:], 3)])
def test_an_image_of_one_dataset_leaves_the_others_untouched(settings, num_params):
    recipe = _recipe(*settings)
    batch = _batch("pan")
    out = recipe(batch.images, datasets=batch.datasets)
    recipe.loss(out, batch, TEXTS, normalisers=recipe.loss_counts(batch)).total.backward()
    grads = _grads_by_dataset(recipe)
    assert len(grads) == num_params
    for name, grad in grads.items():
        assert float(grad[0].abs().sum()) > 0, name  # pan's rows learn
        assert torch.equal(grad[1:], torch.zeros_like(grad[1:])), name  # sem's, box's: exactly 0


def test_mixed_batch_uses_each_images_own_modules():
    recipe = _recipe(*BOTH).eval()
    batch = _batch("pan", "box", "sem")
    with torch.no_grad():
        mixed = recipe(batch.images, datasets=batch.datasets)
        for b, name in enumerate(batch.datasets):  # GroupNorm: images are independent
            alone = recipe(batch.images[b : b + 1], datasets=[name])
            torch.testing.assert_close(mixed.mask_logits[b], alone.mask_logits[0])
            torch.testing.assert_close(mixed.class_embeddings[b], alone.class_embeddings[0])
        other = recipe(batch.images[:1], datasets=["sem"])  # same image, another dataset
    assert not torch.allclose(other.class_embeddings[0], mixed.class_embeddings[0])
    logits = {
        n: recipe.classifier(mixed.class_embeddings[0], TEXTS[n], dataset=n) for n in DATASETS
    }
    assert not torch.allclose(logits["pan"][:, -1], logits["box"][:, -1])  # own backgrounds
    torch.testing.assert_close(logits["pan"][:, :-1], logits["box"][:, :-1])  # same texts


def test_untrained_vocabulary_is_an_error_unless_a_transfer_dataset_is_set():
    recipe = _recipe(*BOTH).eval()
    images = _batch("pan").images
    with pytest.raises(ValueError, match="transfer_dataset"):
        recipe(images, datasets=[None])
    with pytest.raises(ValueError, match="needs each image's dataset"):
        recipe(images)
    out = recipe(images, datasets=["pan"])
    with pytest.raises(ValueError, match="transfer_dataset"):
        recipe.semantic_logits(out, TEXTS["pan"], dataset="held_out")
    torch.manual_seed(0)
    transfer = _recipe(*BOTH, "recipe.dataseg.transfer_dataset=box").eval()
    transfer.load_state_dict(recipe.state_dict())
    with torch.no_grad():
        own = transfer.semantic_logits(
            transfer(images, datasets=["box"]), TEXTS["box"], dataset="box"
        )
        other = transfer.semantic_logits(
            transfer(images, datasets=["held_out"]), TEXTS["box"], dataset=None
        )
    torch.testing.assert_close(own, other)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("recipe.dataseg.dataset_queries=-1",), "dataset_queries must be an integer >= 0"),
        (("recipe.dataseg.transfer_dataset=pan",), "only chooses among dataset-specific"),
        ((*BOTH, "recipe.dataseg.transfer_dataset=nope"), "is not a training dataset"),
    ],
)
def test_bad_settings_are_clear_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        _recipe(*overrides)


def test_state_dict_round_trip_and_row_order_check():
    recipe = _recipe(*BOTH).eval()
    torch.manual_seed(5)
    fresh = _recipe(*BOTH).eval()
    fresh.load_state_dict(recipe.state_dict(), strict=True)
    images = _batch("sem").images
    with torch.no_grad():
        torch.testing.assert_close(
            fresh(images, datasets=["sem"]).class_embeddings,
            recipe(images, datasets=["sem"]).class_embeddings,
        )
    fresh.load_extra_state(recipe.extra_state())
    with pytest.raises(ValueError, match="rebuild it with the checkpoint's train_datasets"):
        fresh.load_extra_state({"module_datasets": ["sem", "pan", "box"]})


def test_tiny_mixed_batch_training_and_prediction(tiny_run_config, tmp_path):
    path = tiny_run_config(
        "dsmod",
        data={
            "train": ["vista_roads", "open_boxes"],
            "crop": [32, 32],
            "sampling": "mixed",
            "batch_size": 2,
        },
        model={"num_queries": 4, "query_layers": 1, "query_ffn_dim": 32},
        recipe={
            "name": "dataseg",
            "learn_temperature": False,
            "mask": {"num_points": 32},
            "dataseg": {"dataset_queries": 2, "dataset_classification": True},
        },
        train={"steps": 3, "checkpoint_every": 3, "eval_at_end": False},
    )
    train(load_config(path), show_progress=False)
    predictor = Predictor.from_checkpoint(tmp_path / "dsmod")
    assert predictor.recipe.dataset_index.datasets == ["vista_roads", "open_boxes"]
    image = np.full((64, 64, 3), 90, np.uint8)  # GroupNorm needs > 1x1 at stride 32
    text = predictor.texts["vista_roads"]
    things = predictor.label_spaces["vista_roads"].thing_mask
    result = predictor.predict_tasks(
        image, text, tasks=("semantic", "panoptic"), is_thing=things, dataset="vista_roads"
    )
    assert result.semantic.shape == (64, 64) and result.panoptic is not None
    with pytest.raises(ValueError, match="transfer_dataset"):
        predictor.predict(image, text, dataset=None)
