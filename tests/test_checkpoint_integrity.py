"""Bit-rot in a checkpoint is caught on load (a SHA-256 per file in state.json), checkpoints
written before the digests existed load without a false alarm, and a corrupt ``model.weights``
file is an error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from babelseg.cli.main import main
from babelseg.engine.checkpoint import (
    list_checkpoints,
    load_checkpoint,
    load_model_weights,
    save_checkpoint,
)
from babelseg.engine.integrity import DIGEST_KEY
from babelseg.models.backbones.weights import load_backbone_weights


def _saved(tmp_path: Path, steps: tuple[int, ...] = (1, 2)) -> tuple[nn.Module, list[Path]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 16)).sum().backward()
    opt.step()
    paths = [
        save_checkpoint(tmp_path, step=s, model=model, optimizer=opt, keep_last=5) for s in steps
    ]
    return model, paths


def _flip_bytes_in_tensor_data(path: Path) -> None:
    """Overwrite 8 bytes in the middle of the tensor data (after the header), same file size."""
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    middle = header + (len(data) - header) // 2
    data[middle : middle + 8] = bytes(255 - b for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("file", ["model.safetensors", "optimizer.safetensors"])
def test_bit_rot_inside_tensor_data_is_caught_naming_the_file(tmp_path, file):
    model, (first, second) = _saved(tmp_path)
    size = (second / file).stat().st_size
    _flip_bytes_in_tensor_data(second / file)
    assert (second / file).stat().st_size == size  # the size check alone cannot see it
    with pytest.raises(ValueError, match=rf"{second / file} is corrupt.*{first}"):
        load_checkpoint(second, model=model, optimizer=torch.optim.AdamW(model.parameters()))
    load_checkpoint(first, model=model)  # the previous one is whole


def test_predicting_from_a_rotten_checkpoint_fails_instead_of_returning_garbage(tmp_path):
    model, (_, second) = _saved(tmp_path)
    _flip_bytes_in_tensor_data(second / "model.safetensors")
    with pytest.raises(ValueError, match=r"SHA-256 mismatch"):
        load_model_weights(tmp_path, model)


def test_checkpoints_without_digests_still_load(tmp_path):
    model, (_, second) = _saved(tmp_path)
    meta_path = second / "state.json"
    meta = json.loads(meta_path.read_text())
    assert set(meta[DIGEST_KEY]) == set(meta["files"])
    del meta[DIGEST_KEY]  # as written before digests existed
    meta_path.write_text(json.dumps(meta))
    loaded = load_checkpoint(second, model=model, optimizer=torch.optim.AdamW(model.parameters()))
    assert loaded.step == 2


def test_rotation_keeps_the_checkpoint_asked_to_keep(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(2, 2)
    kept = save_checkpoint(tmp_path, step=1, model=model, optimizer=None, keep_last=1)
    save_checkpoint(tmp_path, step=2, model=model, optimizer=None, keep_last=1, keep=kept)
    save_checkpoint(tmp_path, step=3, model=model, optimizer=None, keep_last=1, keep=kept)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_0000001", "ckpt_0000003"]


@pytest.mark.parametrize("content", ["random", "pickle"])
def test_a_corrupt_weights_file_is_named(tmp_path, content):
    path = tmp_path / "backbone.safetensors"
    if content == "random":
        path.write_bytes(bytes(range(256)) * 4)
    else:
        torch.save({"weight": torch.zeros(2)}, path)  # a pickle under a safetensors name
    with pytest.raises(ValueError, match=rf"Weights file {path} is not a readable safetensors"):
        load_backbone_weights(nn.Linear(2, 2), path)


def test_train_with_a_corrupt_model_weights_is_one_message(tiny_run_config, tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x00" * 100)
    code = main(["train", tiny_run_config("w"), f"model.weights={path}", "--no-eval"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "Traceback" not in err
