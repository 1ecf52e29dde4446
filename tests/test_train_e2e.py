"""End to end: train -> checkpoint -> resume -> eval -> predict, on a tiny SynthWorld."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from babelseg.cli.main import main
from babelseg.engine.config import load_config
from babelseg.engine.trainer import TrainingDiverged, train
from babelseg.recipes.sentence import SentenceRecipe


def _weights(run_dir: str | Path) -> dict[str, torch.Tensor]:
    latest = (Path(run_dir) / "latest").read_text().strip()
    return load_file(str(Path(run_dir) / latest / "model.safetensors"))


def test_cli_train_eval_predict(tiny_run_config, tiny_synthworld, tmp_path, capsys):
    cfg_path = tiny_run_config("cli")
    assert main(["train", cfg_path, "train.steps=4"]) == 0
    run_dir = tmp_path / "cli"
    out = capsys.readouterr().out
    assert "mIoU" in out and "metro_drive" in out  # the table is printed at the end

    # the run directory holds what the docs promise
    assert (run_dir / "config.yaml").is_file()
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3, 4]
    assert all(np.isfinite(x["loss"]) for x in lines)
    assert any((run_dir / "tb").iterdir())

    metrics = json.loads((run_dir / "metrics.json").read_text())
    ds = metrics["datasets"]
    assert ds["metro_drive"]["task"] == "semantic" and not ds["metro_drive"]["heldout"]
    assert 0.0 <= ds["metro_drive"]["mIoU"] <= 100.0
    assert ds["night_drive"]["heldout"] is True
    assert metrics["mean_heldout_mIoU"] is not None
    expected_mean = np.mean([v["mIoU"] for v in ds.values() if "mIoU" in v and not v["heldout"]])
    assert metrics["mean_mIoU"] == pytest.approx(expected_mean)

    # eval reproduces the table written at the end of training
    again = tmp_path / "again.json"
    assert main(["eval", "--run", str(run_dir), "--out", str(again)]) == 0
    assert json.loads(again.read_text()) == metrics

    # predict: any vocabulary, images of any size, folders
    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)).save(
        images / "odd.png"
    )
    src = sorted((tiny_synthworld / "metro_drive" / "images" / "val").iterdir())[0]
    Image.open(src).save(images / "street.jpg")
    pred = tmp_path / "pred"
    code = main(
        [
            "predict",
            "--run",
            str(run_dir),
            "--labels",
            "roadway, automobile, pedestrian, sky",
            str(images),
            "--out",
            str(pred),
        ]
    )
    assert code == 0
    label = np.array(Image.open(pred / "odd.png"))
    assert label.shape == (37, 53) and label.max() < 4
    overlay = Image.open(pred / "odd_overlay.png")
    assert overlay.size[1] >= 37 and overlay.size[0] > 53  # legend to the right
    assert (pred / "street_overlay.png").is_file()
    assert (
        main(
            [
                "predict",
                "--run",
                str(run_dir),
                "--dataset",
                "metro_drive",
                str(src),
                "--out",
                str(tmp_path / "pred2"),
            ]
        )
        == 0
    )


def test_resume_after_kill_matches_uninterrupted_run(tiny_run_config, monkeypatch):
    from babelseg.engine.trainer import Trainer

    end_rng = []  # the global torch generator when each run ends
    original_close = Trainer.close
    monkeypatch.setattr(
        Trainer, "close", lambda self: (end_rng.append(torch.get_rng_state()), original_close(self))
    )
    straight = load_config(tiny_run_config("straight"))
    train(straight)

    killed = load_config(tiny_run_config("killed"))
    calls = {"n": 0}
    original = SentenceRecipe.loss

    def dying_loss(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # after the checkpoint at step 3, in the middle of step 5
            raise KeyboardInterrupt("simulated kill")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SentenceRecipe, "loss", dying_loss)
    with pytest.raises(KeyboardInterrupt):
        train(killed)
    monkeypatch.setattr(SentenceRecipe, "loss", original)
    assert (Path(killed.run_dir) / "latest").read_text().strip() == "ckpt_0000003"

    result = train(killed, resume=True)
    assert result.steps == 6
    a, b = _weights(straight.run_dir), _weights(killed.run_dir)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(x)["step"] for x in (Path(killed.run_dir) / "metrics.jsonl").open()]
    assert steps == [1, 2, 3, 4, 5, 6]  # no duplicated lines after the resume
    # recipes drawing from the global generator (e.g. sampling) see the same numbers after resume
    assert torch.equal(end_rng[0], end_rng[-1])


def test_nan_loss_stops_naming_dataset_and_step(tiny_run_config, monkeypatch):
    cfg = load_config(tiny_run_config("nan"))
    original = SentenceRecipe.loss
    calls = {"n": 0}

    def nan_loss(self, output, batch, texts, *, normalisers):
        calls["n"] += 1
        result = original(self, output, batch, texts, normalisers=normalisers)
        if calls["n"] == 5:
            name = batch.datasets[0]
            result.total = result.total * float("nan")
            result.per_dataset[name] = torch.tensor(float("nan"))
        return result

    monkeypatch.setattr(SentenceRecipe, "loss", nan_loss)
    with pytest.raises(TrainingDiverged, match=r"step 5.*dataset.*ckpt_0000003"):
        train(cfg)
    assert (Path(cfg.run_dir) / "latest").read_text().strip() == "ckpt_0000003"
    for tensor in _weights(cfg.run_dir).values():
        assert torch.isfinite(tensor).all()


def test_bad_inputs_give_clear_errors(tiny_run_config, tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    cfg = tiny_run_config("bad", data={"train": ["metro_drive", "no_such_dataset"]})
    assert main(["train", cfg]) == 2
    assert "no_such_dataset" in capsys.readouterr().err
    assert main(["train", tiny_run_config("bad2"), "train.stpes=3"]) == 2
    assert "Did you mean 'train.steps'" in capsys.readouterr().err
    assert main(["train", tiny_run_config("bad3"), "recipe.name=lmsg"]) == 2
    assert "Unknown recipe 'lmsg'; valid recipes: sentence, " in capsys.readouterr().err
    assert main(["train", tiny_run_config("bad4"), "data.ratios={metro_drive: 1}"]) == 2
    assert "vista_roads" in capsys.readouterr().err
    assert main(["eval", "--run", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
