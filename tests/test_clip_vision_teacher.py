from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from babelseg.labels.encoders.clip_vision import ClipVisionTeacher  # noqa: E402
from babelseg.losses.box_distillation import (  # noqa: E402
    BoxDistillationHead,
    box_embedding_distillation,
)

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def _vision_config():
    return transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return transformers.CLIPVisionModelWithProjection(_vision_config()).eval()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """``uint8[40, 64, 3]`` whose right half (x 32..64) repeats its left half."""
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, size=(40, 32, 3), dtype=np.uint8)
    return np.concatenate([half, half], axis=1)


def _reference(model, crop: np.ndarray, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        return F.normalize(model(pixel_values=(x - mean) / std).image_embeds, dim=-1)[0]


def test_model_sized_crop_matches_a_hand_preprocessed_forward(tiny_model, image):
    teacher = ClipVisionTeacher(model=tiny_model)
    assert teacher.dim == 16 and teacher.image_size == 32
    out = teacher.embed_crops(image, np.array([[4.0, 3.0, 36.0, 35.0]]))
    assert out.shape == (1, 16) and out.dtype == torch.float32
    expected = _reference(tiny_model, image[3:35, 4:36])  # 32 x 32: no resize
    assert torch.allclose(out[0], expected, atol=1e-5)
    assert torch.allclose(out.norm(dim=1), torch.ones(1), atol=1e-5)


def test_same_content_same_embedding_and_resize(tiny_model, image):
    teacher = ClipVisionTeacher(model=tiny_model, batch_size=2)
    boxes = torch.tensor([[0.0, 0.0, 20.0, 40.0], [32.0, 0.0, 52.0, 40.0], [2.2, 5.7, 9.1, 30.0]])
    out = teacher.embed_crops(image, boxes)
    assert out.shape == (3, 16)
    assert torch.allclose(out[0], out[1], atol=1e-5)  # the two halves are equal
    assert not torch.allclose(out[0], out[2], atol=1e-3)
    # resize path: a fractional box is widened to whole pixels, then bicubic to 32 x 32
    crop = torch.from_numpy(image[5:30, 2:10]).permute(2, 0, 1)[None].float()
    resized = F.interpolate(crop, size=(32, 32), mode="bicubic", antialias=True).clamp(0, 255)
    x = (resized / 255.0 - CLIP_MEAN) / CLIP_STD
    with torch.no_grad():
        ref = F.normalize(tiny_model(pixel_values=x).image_embeds, dim=-1)[0]
    assert torch.allclose(out[2], ref, atol=1e-5)
    assert teacher.embed_crops(image, np.zeros((0, 4))).shape == (0, 16)


def test_thin_and_outside_boxes_still_get_a_row(tiny_model, image):
    teacher = ClipVisionTeacher(model=tiny_model)
    out = teacher.embed_crops(image, [[10.0, 10.0, 10.2, 30.0], [70.0, 50.0, 90.0, 60.0]])
    assert out.shape == (2, 16) and torch.isfinite(out).all()


def test_other_processor_size_interpolates_positions(tiny_model, image):
    teacher = ClipVisionTeacher(model=tiny_model, processor_size=48)
    out = teacher.embed_crops(image, [[0.0, 0.0, 64.0, 40.0]])
    assert teacher.image_size == 48 and out.shape == (1, 16)


def test_save_pretrained_folder_loads_with_its_mean_and_std(tiny_model, image, tmp_path):
    folder = tmp_path / "clip_vision"
    tiny_model.save_pretrained(folder)
    teacher = ClipVisionTeacher(str(folder))
    box = [[4.0, 3.0, 36.0, 35.0]]
    assert torch.allclose(
        teacher.embed_crops(image, box),
        ClipVisionTeacher(model=tiny_model).embed_crops(image, box),
        atol=1e-6,
    )
    assert teacher.id.startswith("clip-clip_vision-") and teacher.id.endswith("-vision")
    (folder / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]})
    )
    custom = ClipVisionTeacher(str(folder))
    assert custom.image_mean == [0.5, 0.5, 0.5]
    mean = torch.full((1, 3, 1, 1), 0.5)
    std = torch.full((1, 3, 1, 1), 0.25)
    expected = _reference(tiny_model, image[3:35, 4:36], mean=mean, std=std)
    assert torch.allclose(custom.embed_crops(image, box)[0], expected, atol=1e-5)


def test_full_clip_checkpoint_loads_its_vision_half(tmp_path, image):
    torch.manual_seed(1)
    config = transformers.CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "vocab_size": 64,
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config=_vision_config().to_dict(),
        projection_dim=16,
    )
    full = transformers.CLIPModel(config).eval()
    full.save_pretrained(tmp_path / "full")
    teacher = ClipVisionTeacher(str(tmp_path / "full"))
    x = (
        torch.from_numpy(image[:32, :32]).permute(2, 0, 1)[None].float() / 255 - CLIP_MEAN
    ) / CLIP_STD
    with torch.no_grad():
        feats = full.get_image_features(pixel_values=x)
    feats = feats if torch.is_tensor(feats) else feats.pooler_output
    out = teacher.embed_crops(image, [[0.0, 0.0, 32.0, 32.0]])
    assert torch.allclose(out[0], F.normalize(feats, dim=-1)[0], atol=1e-5)


def test_loading_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ClipVisionTeacher(str(tmp_path / "missing"))
    text_only = transformers.CLIPTextModelWithProjection(
        transformers.CLIPTextConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=1,
            num_attention_heads=4,
            vocab_size=64,
            projection_dim=16,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    text_only.save_pretrained(tmp_path / "text")
    with pytest.raises(FileNotFoundError, match="no CLIP vision weights"):
        ClipVisionTeacher(str(tmp_path / "text"))
    with pytest.raises(ValueError, match="exactly one"):
        ClipVisionTeacher()


def test_teacher_targets_drive_the_distillation_through_a_projection(tiny_model, image):
    teacher = ClipVisionTeacher(model=tiny_model)
    boxes = torch.tensor([[0.0, 0.0, 32.0, 32.0], [8.0, 8.0, 40.0, 36.0]])
    targets = teacher.embed_crops(image, boxes)
    head = BoxDistillationHead(8, teacher.dim)
    emb = torch.randn(1, 8, 10, 16, requires_grad=True)
    loss, n = box_embedding_distillation(
        emb, [boxes], (40, 64), [targets], pooled_size=2, projection=head
    )
    assert int(n) == 2 and 0.0 < float(loss.detach()) <= 2 * 2.0 * 16**0.5
    loss.backward()
    assert emb.grad.abs().sum() > 0 and head.proj.weight.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in tiny_model.parameters())
