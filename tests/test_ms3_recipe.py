"""The ms3 recipe end to end: union label space, stages, exact resume of the memory bank,
init_from full and frozen-backbone fine-tuning, and eq. 1 as plain union cross-entropy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from babelseg.data.collate import collate_samples
from babelseg.data.sample import Annotation, Sample, Task
from babelseg.engine import checkpoint as ckpt
from babelseg.engine.config import load_config
from babelseg.engine.trainer import Trainer, train
from babelseg.losses.memory_bank import cell_labels
from babelseg.models.builders import build_pixel_model
from babelseg.models.heads.projection import ProjectionHead
from babelseg.models.two_head import TwoHeadPixelModel
from babelseg.recipes.label_matching import union_label_space
from babelseg.recipes.ms3 import MS3Recipe
from babelseg.recipes.ms3_settings import MS3Config

MS3 = {
    "name": "ms3",
    "ms3": {"context_length": 0, "bank_size": 8, "momentum": 0.9, "head_width": 8, "visual_dim": 8},
}


def _three_class_recipe(
    settings: MS3Config, text: torch.Tensor | None = None
) -> tuple[MS3Recipe, torch.Tensor]:
    """An ms3 recipe over {car, road, tree}, dataset "a" = car + road, "b" = road + tree, with
    the texts ``float[3, 4]`` given or random unit ones (returned)."""
    torch.manual_seed(0)
    text = F.normalize(torch.randn(3, 4), dim=1) if text is None else text
    recipe = MS3Recipe(
        network=_two_heads(),
        union_texts=["car", "road", "tree"],
        dataset_classes={"a": [0, 1], "b": [1, 2]},
        language_embeddings=text,
        settings=settings,
    )
    return recipe, text


def _weights(run_dir) -> dict[str, torch.Tensor]:
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest is not None
    return load_file(str(latest / "model.safetensors"))


def test_union_label_space_merges_identical_texts():
    texts, classes, emb = union_label_space(
        "ms3",
        label_texts={"a": ["car", "road"], "b": ["road", "tree"]},
        texts={"a": torch.eye(3)[:2], "b": torch.eye(3)[[1, 2]]},
        train_datasets=["a", "b"],
    )
    assert texts == ["car", "road", "tree"]
    assert classes == {"a": [0, 1], "b": [1, 2]}
    torch.testing.assert_close(emb, torch.eye(3))


def test_cell_labels_take_each_stride_4_cell_centre():
    sem = torch.arange(36).reshape(1, 6, 6)
    # cells of 6 px at stride 4: centres at rows/cols 2 and min(6, 5) = 5
    assert cell_labels(sem, (2, 2)).tolist() == [[[14, 17], [32, 35]]]


def _two_heads(embed_dim: int = 4) -> TwoHeadPixelModel:
    body = build_pixel_model(
        backbone="tiny", backbone_kwargs={"widths": [8, 8, 8, 8]}, decoder_dim=8, embed_dim=4
    )

    def head(width: int) -> ProjectionHead:
        return ProjectionHead(in_dim=8, hidden_dim=8, embed_dim=width, layers=3)

    return TwoHeadPixelModel(
        backbone=body.backbone, decoder=body.decoder, language_head=head(embed_dim),
        visual_head=head(6),
    )  # fmt: skip


@pytest.mark.parametrize("pairing", ["union", "dataset"])
def test_language_only_loss_is_cross_entropy_over_the_union_space(pairing):
    """The paper's eq. 1 over every union class; the "dataset" diagnostic over the pixel's own
    dataset's classes only (the other classes leave the softmax)."""
    recipe, text = _three_class_recipe(
        MS3Config(context_length=0, visual=False, multi_label=False, pairing=pairing)
    )
    recipe.eval()
    rng = np.random.default_rng(0)
    samples = []
    for name in ("a", "b", "a"):
        sem = rng.integers(0, 2, (16, 16)).astype(np.int64)
        sem[:3] = 255
        samples.append(
            Sample(
                image=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
                dataset=name,
                task=Task.SEMANTIC,
                annotation=Annotation.CLEAN,
                image_id=name,
                semantic=sem,
            )
        )
    batch = collate_samples(samples)
    out = recipe(batch.images)
    texts = recipe.step_texts({"a": text[:2], "b": text[1:]})
    counts = recipe.loss_counts(batch)
    res = recipe.loss(out, batch, texts, normalisers={"pixels": counts["pixels"]})
    # by hand: logits against all 3 union classes, targets mapped to union indices
    logits = torch.einsum("bdhw,kd->bkhw", F.normalize(out.embeddings, dim=1), text) / 0.07
    logits = F.interpolate(logits, size=(16, 16), mode="bilinear", align_corners=False)
    if pairing == "dataset":  # a's images leave out "tree", b's image "car"
        logits[[0, 2], 2] = logits[1, 0] = float("-inf")
    target = batch.semantic.clone()
    target[1][target[1] != 255] += 1  # dataset b: local 0, 1 -> union 1, 2
    want = F.cross_entropy(logits, target, ignore_index=255)
    assert counts["pixels"] == 3 * 13 * 16
    torch.testing.assert_close(res.total, want)


def test_train_resume_is_exact_and_the_bank_fills(tiny_run_config):
    path = tiny_run_config(
        "ms3", recipe=MS3, train={"steps": 6, "checkpoint_every": 3, "eval_at_end": False}
    )
    cfg = load_config(path)
    whole = train(cfg)
    weights = _weights(whole.run_dir)
    assert int(weights["visual_bank.count"].sum()) > 0  # the bank is part of the weights
    assert any(k.startswith("momentum.model.backbone.") for k in weights)
    assert any(k.startswith("network.visual_head.") for k in weights)  # two heads
    # resume from step 3 in a copy of the run: every tensor (network, bank, V_old) matches
    import shutil

    half = whole.run_dir.parent / "ms3_half"
    shutil.copytree(whole.run_dir, half)
    shutil.rmtree(half / "ckpt_0000006")
    (half / "latest").write_text("ckpt_0000003\n")
    cfg_half = load_config(path, [f"run_dir={half}"])
    train(cfg_half, resume=True)
    resumed = _weights(half)
    for name, value in weights.items():
        torch.testing.assert_close(resumed[name], value, atol=1e-6, rtol=0, msg=name)


def test_minilm_language_stage_trains_only_the_context_then_fixes_t(tiny_run_config):
    recipe = {
        "name": "ms3",
        "ms3": {"context_length": 2, "language_stage_steps": 2, "bank_size": 8, "head_width": 8,
                "visual_dim": 8},
    }  # fmt: skip
    path = tiny_run_config(
        "ms3_minilm",
        labels={"encoder": "minilm", "text_mode": "name"},
        recipe=recipe,
        data={"train": ["metro_drive", "home_scenes"], "batch_size": 2, "crop": [32, 32]},
        train={"steps": 2, "checkpoint_every": 2, "eval_at_end": False, "warmup_steps": 1},
    )
    trainer = Trainer(load_config(path))
    trainer._setup()
    r = trainer.recipe
    context0 = r.prompt.context.detach().clone()
    network0 = {k: v.clone() for k, v in r.network.state_dict().items()}
    momentum0 = {k: v.clone() for k, v in r.momentum.state_dict().items()}
    trainer.train()  # builds the recipe again, from the same seed
    r = trainer.recipe
    assert r.language_stage  # both steps were the stage
    assert float((r.prompt.context.detach() - context0).abs().max()) > 0  # the context learnt
    for name, value in r.network.state_dict().items():  # the network did not
        assert torch.equal(value, network0[name]), name
    for name, value in r.momentum.state_dict().items():
        assert torch.equal(value, momentum0[name]), name
    assert int(r.visual_bank.count.sum()) == 0  # no bank rows from the frozen stage
    # the next step ends the stage: T is the prompt's, fixed, and Table 1 has its "after"
    r.on_step_start(2)
    assert bool(r.language_frozen) and not r.language_stage
    with torch.no_grad():
        torch.testing.assert_close(r.prompt(r.union_texts), r.language_embeddings)
    assert {"frozen_encoder", "before", "after", "pairs"} <= set(r.table1)
    assert len(r.table1["pairs"]) == 3 and -1 <= r.table1["after"]["mean"] <= 1
    weights = _weights(trainer.run_dir)
    assert "prompt.context" in weights
    assert not any("auto_model" in k or "encoder.layer" in k for k in weights)
    # zero-shot with a new vocabulary goes through the learned prompt
    from babelseg.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(trainer.run_dir)
    assert predictor.recipe.table1["before"] == r.table1["before"]
    space = predictor.space_from_names(["roadway", "automobile"])
    emb = predictor.vocabulary(space)
    with torch.no_grad():
        want = predictor.recipe.prompt(["roadway", "automobile"])
    torch.testing.assert_close(emb, want)


@pytest.fixture(scope="module")
def pretrained_ms3(tmp_path_factory, tiny_synthworld):
    import yaml

    tmp = tmp_path_factory.mktemp("ms3pre")
    cfg = {
        "run_dir": str(tmp / "pre"),
        "data": {
            "datasets_yaml": str(tiny_synthworld / "datasets.yaml"),
            "train": ["metro_drive", "home_scenes"],
            "batch_size": 2,
            "crop": [32, 32],
            "num_workers": 0,
        },
        "labels": {"encoder": "hash", "cache_dir": str(tmp / "cache")},
        "model": {
            "backbone": "tiny",
            "backbone_kwargs": {"widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "norm": "gn"},
            "decoder_dim": 16,
        },
        "recipe": MS3,
        "train": {"steps": 3, "checkpoint_every": 3, "warmup_steps": 1, "eval_at_end": False},
    }
    path = tmp / "pre.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, train(load_config(path)).run_dir


@pytest.mark.parametrize("frozen", [False, True])
def test_finetuning_from_ms3_full_and_frozen_encoder(pretrained_ms3, tmp_path, frozen):
    """The paper's protocol: a fresh cross-entropy head on the target's classes; frozen = the
    whole image encoder (backbone and pixel decoder) bit-identical after the steps."""
    path, pre_dir = pretrained_ms3
    pre = _weights(pre_dir)
    cfg = load_config(
        path,
        [
            f"run_dir={tmp_path / 'ft'}",
            "data.train=[vista_roads]",
            "recipe.name=union",
            f"train.init_from={pre_dir}",
            f"train.freeze_encoder={str(frozen).lower()}",
            "train.lr=0.05",
        ],
    )
    tuned = _weights(train(cfg).run_dir)
    encoder = [k for k in pre if k.startswith(("network.backbone.", "network.decoder."))]
    assert any(".decoder." in k for k in encoder) and any(".backbone." in k for k in encoder)
    here = {k.replace("network.", "model.", 1): k for k in encoder}
    changed = [k for k, old in here.items() if not torch.equal(tuned[k], pre[old])]
    head = [k for k in tuned if k.startswith(("model.head.", "classifier."))]
    assert head  # the new head trains in both protocols
    if frozen:
        assert changed == []
    else:
        assert len(changed) > len(encoder) // 2


def _tiny_batch(names=("a", "b", "a")):
    rng = np.random.default_rng(0)
    samples = [
        Sample(
            image=rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
            dataset=name,
            task=Task.SEMANTIC,
            annotation=Annotation.CLEAN,
            image_id=f"{name}{i}",
            semantic=rng.integers(0, 2, (16, 16)).astype(np.int64),
        )
        for i, name in enumerate(names)
    ]
    return collate_samples(samples)


@pytest.mark.parametrize(("language", "visual"), [(True, False), (False, True), (True, True)])
def test_each_projection_head_feeds_its_own_loss(language, visual):
    recipe, text = _three_class_recipe(
        MS3Config(context_length=0, language=language, visual=visual, bank_size=4)
    )
    recipe.train()
    batch = _tiny_batch()
    for step in range(2):  # the first step fills the bank, the second pairs with V
        recipe.on_step_start(step)
        out = recipe(batch.images)
        assert out.visual_embeddings.shape[1] == 6 and out.embeddings.shape[1] == 4
        texts = recipe.step_texts({"a": text[:2], "b": text[1:]})
        res = recipe.loss(out, batch, texts, normalisers={"pixels": 768.0})
        recipe.network.zero_grad()
        res.total.backward()
        recipe.on_step_end(step)
    grads = {
        head: any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
        for head, module in (
            ("language", recipe.network.language_head),
            ("visual", recipe.network.visual_head),
        )
    }
    assert grads == {"language": language, "visual": visual}
    within = (text[0] @ text[1] + text[1] @ text[2]) / 2  # the pairs inside "a" and inside "b"
    assert float(res.logs["class_similarity/language"]) == pytest.approx(float(within), abs=1e-5)
    assert ("class_similarity/visual" in res.logs) == visual


def test_visual_loss_waits_for_visual_start_while_the_bank_fills():
    recipe, text = _three_class_recipe(MS3Config(context_length=0, bank_size=4, visual_start=2))
    recipe.train()
    batch, texts = _tiny_batch(), recipe.step_texts({"a": text[:2], "b": text[1:]})
    visual_grads = []
    for step in range(3):
        recipe.on_step_start(step)
        res = recipe.loss(recipe(batch.images), batch, texts, normalisers={"pixels": 768.0})
        recipe.network.zero_grad()
        res.total.backward()
        recipe.on_step_end(step)
        head = recipe.network.visual_head.parameters()
        visual_grads.append(any(p.grad is not None and p.grad.abs().sum() > 0 for p in head))
        assert (float(res.logs["loss_visual"]) > 0) == visual_grads[-1]
    assert visual_grads == [False, False, True]  # the bank filled meanwhile: step 2 pairs with V
    assert bool(recipe.visual_bank.valid().any())
    with pytest.raises(ValueError, match="visual_start"):
        MS3Config(visual_start=-1)


def test_multi_label_without_the_language_loss_is_refused():
    with pytest.raises(ValueError, match="multi_label=true needs language=true"):
        MS3Recipe(
            network=_two_heads(),
            union_texts=["car", "road"],
            dataset_classes={"a": [0], "b": [1]},
            language_embeddings=F.normalize(torch.randn(2, 4), dim=1),
            settings=MS3Config(context_length=0, language=False, multi_label=True),
        )


def test_pairing_names_its_two_choices():
    with pytest.raises(ValueError, match="pairing must be 'union' or 'dataset'"):
        MS3Config(pairing="own")


def test_multi_label_waits_for_the_start_step_and_full_banks_then_ramps():
    settings = MS3Config(
        context_length=0, visual=False, multi_label=True, bank_size=2,
        multi_label_start=5, multi_label_ramp=4, multi_label_max_extra=1,
    )  # fmt: skip
    recipe, text = _three_class_recipe(settings, torch.eye(4)[:3])
    bank = recipe.language_bank
    # class 0 ("car", dataset a) pixels look like "tree" (dataset b): an extra positive
    bank.enqueue(torch.tensor([[0.0, 0.0, 1.0, 0.0]] * 2), torch.tensor([0, 0]))
    recipe.on_step_start(4)
    assert recipe._extra_positives(text) == (None, 0.0)  # before the start step
    recipe.on_step_start(5)
    positives, weight = recipe._extra_positives(text)
    assert weight == 0.25  # first step of a 4-step ramp
    assert positives["a"][0].tolist() == [True, False, True]
    # class 2 has a bank row only (not full): no extra positives for it yet
    bank.enqueue(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([2]))
    positives, _ = recipe._extra_positives(text)
    assert positives["b"][1].tolist() == [False, False, True]
    bank.enqueue(torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([2]))  # now full
    positives, _ = recipe._extra_positives(text)
    assert positives["b"][1].tolist() == [True, False, True]
    # Table 8 in the checkpoint state: a's car -> b's tree, b's tree -> a's car
    state = recipe.extra_state()
    assert state["table8"] == [["a", 0, "b", 1], ["b", 1, "a", 0]]
    recipe.multi_label_pairs = []
    recipe.load_extra_state(state)
    assert recipe.multi_label_pairs == state["table8"]
