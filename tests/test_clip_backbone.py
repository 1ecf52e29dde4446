"""The CLIP image encoder backbone (``model.backbone: clip``), offline with a tiny random CLIP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from babelseg.data.collate import normalize_image
from babelseg.models.builders import build_backbone

transformers = pytest.importorskip("transformers")

VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 16,
}
TEXT = {
    "vocab_size": 60,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "max_position_embeddings": 24,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "pad_token_id": 1,
}


def _save_clip_model(folder: Path) -> transformers.CLIPModel:
    """A whole tiny CLIP (text and vision towers), as ``openai/clip-vit-base-patch16`` is."""
    torch.manual_seed(0)
    config = transformers.CLIPConfig(vision_config=VISION, text_config=TEXT, projection_dim=16)
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(folder)
    return model


def _shapes(features: list[torch.Tensor]) -> list[tuple[int, ...]]:
    return [tuple(f.shape) for f in features]


@pytest.mark.parametrize("patch_size", [16, 32])
def test_pyramid_strides_and_every_parameter_trains(patch_size: int) -> None:
    torch.manual_seed(0)
    backbone = build_backbone("clip", config={**VISION, "patch_size": patch_size})
    assert backbone.out_channels == [8, 16, 32, 32] and backbone.strides == [4, 8, 16, 32]
    # 70 x 100 is padded to 96 x 128, a grid unlike the 32 x 32 the position embeddings have.
    features = backbone(torch.randn(2, 3, 70, 100))
    assert _shapes(features) == [
        (2, c, 96 // s, 128 // s) for c, s in zip([8, 16, 32, 32], [4, 8, 16, 32])
    ]
    sum(f.square().mean() for f in features).backward()
    unused = [n for n, p in backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []  # DistributedDataParallel needs no find_unused_parameters


def test_input_is_renormalised_with_clips_constants() -> None:
    backbone = build_backbone("clip", config=VISION)
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    got = backbone.to_clip_input(normalize_image(image).unsqueeze(0))[0]
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    expected = (torch.from_numpy(image).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_at_the_pretraining_size_the_vit_sees_clip_input_and_its_own_position_embeddings() -> None:
    torch.manual_seed(0)
    backbone = build_backbone("clip", config=VISION).eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        features = backbone(images)
        plain = backbone.model(pixel_values=backbone.to_clip_input(images))  # no interpolation
    tokens = backbone.model.post_layernorm(plain.last_hidden_state[:, 1:])
    # stride-16 level: the 2 x 2 patch grid, channels = post_layernorm(tokens)
    torch.testing.assert_close(features[2], tokens.transpose(1, 2).reshape(1, 32, 2, 2))


def test_frozen_vit_gets_no_gradient_and_stays_in_eval_mode() -> None:
    torch.manual_seed(0)
    backbone = build_backbone("clip", config=VISION, frozen=True)
    backbone.train()
    assert not backbone.model.training and backbone.pyramid.training
    features = backbone(torch.randn(2, 3, 48, 64))
    sum(f.square().mean() for f in features).backward()
    assert all(p.grad is None and not p.requires_grad for p in backbone.model.parameters())
    assert all(p.grad is not None for p in backbone.pyramid.parameters())


def test_loads_the_vision_half_of_a_whole_clip_checkpoint(tmp_path: Path) -> None:
    source = _save_clip_model(tmp_path / "clip")
    backbone = build_backbone("clip", name_or_path=str(tmp_path / "clip"))
    expected = source.vision_model.state_dict()
    got = backbone.model.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value)


def test_clear_errors_for_missing_or_wrong_weights(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="local_files_only=false"):
        build_backbone("clip", name_or_path="nobody/no-such-clip")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone("clip", name_or_path=str(tmp_path / "absent"))
    folder = tmp_path / "convnext"
    transformers.ConvNextModel(transformers.ConvNextConfig(depths=[1, 1, 1, 1])).save_pretrained(
        folder
    )
    with pytest.raises(ValueError, match="does not hold a whole CLIP image encoder"):
        build_backbone("clip", name_or_path=str(folder))
    with pytest.raises(ValueError, match="not both"):
        build_backbone("clip", name_or_path=str(folder), config=VISION)
    with pytest.raises(ValueError, match="model.backbone=hf"):
        build_backbone("clip", config={"model_type": "convnext"})


def test_lmseg_trains_from_clip_weights_and_predicts_after_the_folder_moves(
    tiny_run_config, tmp_path: Path
) -> None:
    from babelseg.cli.main import main
    from babelseg.engine import checkpoint as ckpt
    from babelseg.engine.portable_backbone import STATE_KEY
    from babelseg.inference.predictor import Predictor

    source = _save_clip_model(tmp_path / "clip")
    cfg = tiny_run_config(
        "clip_run",
        data={"train": ["metro_drive", "home_scenes"], "batch_size": 2},
        model={"backbone_kwargs": {}, "decoder_dim": 16},  # no tiny-backbone arguments
    )
    argv = [
        "train",
        cfg,
        "recipe.name=lmseg",
        "recipe.lmseg.prompt_length=0",  # hash labels have no transformer
        "model.num_queries=6",
        "model.query_layers=1",
        "recipe.mask.num_points=64",
        "model.backbone=clip",
        f"model.backbone_kwargs.name_or_path={tmp_path / 'clip'}",
        "train.steps=3",
        "train.checkpoint_every=3",
        "train.backbone_lr_mult=0.1",
        "train.eval_at_end=false",
    ]
    assert main(argv) == 0
    run = tmp_path / "clip_run"
    losses = [json.loads(x)["loss"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and all(np.isfinite(losses))
    weights = load_file(str(run / (run / "latest").read_text().strip() / "model.safetensors"))
    vit = {
        k.split("backbone.model.", 1)[1]: v for k, v in weights.items() if "backbone.model." in k
    }
    pretrained = source.vision_model.state_dict()
    assert set(vit) == set(pretrained)
    assert any(not torch.equal(vit[k], pretrained[k]) for k in vit)  # the ViT trained

    image = np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    before = Predictor.from_checkpoint(run)
    _, text = before.dataset_vocabulary("metro_drive")
    logits_before = before.logits(image, text, dataset="metro_drive")
    shutil.move(str(tmp_path / "clip"), str(tmp_path / "moved_away"))
    after = Predictor.from_checkpoint(run)
    torch.testing.assert_close(after.logits(image, text, dataset="metro_drive"), logits_before)
    _, state = ckpt.read_checkpoint_state(run)
    portable = state[STATE_KEY]["backbone_kwargs"]
    assert "name_or_path" not in portable
    assert portable["config"]["model_type"] == "clip_vision_model"
    assert portable["config"]["hidden_size"] == VISION["hidden_size"]
