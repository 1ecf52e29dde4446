"""DaTaSeg's per-dataset learning-rate multipliers (App. F): the step of a dataset's batch runs
at the scheduled learning rate times that dataset's factor, resumes exactly, and bad settings
are clear errors."""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from babelseg.engine.builders import build_recipe
from babelseg.engine.config import load_config
from babelseg.engine.schedule import poly_lr_factor
from babelseg.engine.step_lr import scaled_learning_rates
from babelseg.engine.trainer import train
from babelseg.labels.space import ClassDef, LabelSpace
from babelseg.recipes.base import RecipeContext
from babelseg.recipes.dataseg import DaTaSegRecipe

MULTIPLIERS = {"metro_drive": 3.0, "vista_roads": 5.0}  # home_scenes: 1
LR = 1e-3


def _config(tiny_run_config, name: str, **recipe) -> str:
    return tiny_run_config(
        name,
        data={"sampling": "per_dataset", "batch_size": 2},
        model={"num_queries": 4, "query_layers": 1, "query_ffn_dim": 32},
        recipe={
            "name": "dataseg",
            "learn_temperature": False,
            "mask": {"num_points": 32},
            "dataseg": {"lr_multipliers": MULTIPLIERS, **recipe},
        },
        train={"steps": 6, "checkpoint_every": 3, "warmup_steps": 2, "lr": LR},
    )


def _weights(run_dir) -> dict[str, torch.Tensor]:
    return load_file(str(Path(run_dir) / "ckpt_0000006" / "model.safetensors"))


def test_scaled_learning_rates_restores_the_exact_scheduled_values():
    param = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [param], "lr": 0.1}, {"params": [], "lr": 0.07}])
    with scaled_learning_rates(opt, 3.0):
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.3, 0.21])
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.07]  # bit-exact, not 0.3 / 3
    with pytest.raises(ValueError, match="positive"):
        with scaled_learning_rates(opt, 0.0):
            pass


def test_each_step_runs_at_its_datasets_factor_and_resume_is_exact(tiny_run_config, monkeypatch):
    seen: list[tuple[set[str], list[float]]] = []
    step_datasets: list[set[str]] = []
    original_loss, original_step = DaTaSegRecipe.loss, torch.optim.AdamW.step

    def recording_loss(self, output, batch, texts, *, normalisers):
        step_datasets.append(set(batch.datasets))
        return original_loss(self, output, batch, texts, normalisers=normalisers)

    def recording_step(self, *args, **kwargs):
        seen.append((step_datasets[-1], [g["lr"] for g in self.param_groups]))
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(DaTaSegRecipe, "loss", recording_loss)
    monkeypatch.setattr(torch.optim.AdamW, "step", recording_step)
    path = _config(tiny_run_config, "straight")
    whole = train(load_config(path), show_progress=False)

    assert len(seen) == 6
    for step, (datasets, lrs) in enumerate(seen):
        assert len(datasets) == 1  # one dataset per step
        factor = MULTIPLIERS.get(next(iter(datasets)), 1.0)
        scheduled = LR * poly_lr_factor(step, total_steps=6, warmup_steps=2)
        # groups other than the backbone's (backbone_lr_mult) run at lr * schedule * factor
        assert lrs[-1] == pytest.approx(scheduled * factor, rel=1e-9)
    factors = {MULTIPLIERS.get(next(iter(d)), 1.0) for d, _ in seen}
    assert len(factors) > 1, "the tiny run should visit datasets with different factors"

    # resume from step 3 in a copy of the run: the same weights as the uninterrupted run
    half = Path(whole.run_dir).parent / "half"
    shutil.copytree(whole.run_dir, half)
    shutil.rmtree(half / "ckpt_0000006")
    (half / "latest").write_text("ckpt_0000003\n")
    seen.clear()
    train(load_config(path, [f"run_dir={half}"]), resume=True, show_progress=False)
    assert len(seen) == 3
    a, b = _weights(whole.run_dir), _weights(half)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=0, msg=name)


def test_multipliers_are_refused_with_mixed_sampling(tiny_run_config):
    cfg = load_config(_config(tiny_run_config, "mixed"), ["data.sampling=mixed"])
    with pytest.raises(ValueError, match="data.sampling=per_dataset"):
        train(cfg, show_progress=False)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("recipe.dataseg.lr_multipliers={metro_driv: 3}", r"unknown datasets \['metro_driv'\]"),
        ("recipe.dataseg.lr_multipliers={metro_drive: 0}", "must be positive"),
        ("recipe.dataseg.panoptic_thresholds={nowhere: 0.85}", "unknown datasets"),
        ("recipe.mask.object_mask_threshold=0.3", "recipe.dataseg.panoptic_threshold"),
    ],
)
def test_bad_settings_are_clear_errors(tiny_run_config, override, message):
    cfg = load_config(_config(tiny_run_config, "bad"), [override])
    with pytest.raises(ValueError, match=message):
        train(cfg, show_progress=False)


def test_a_mixed_batch_with_different_factors_is_an_error():
    space = LabelSpace([ClassDef("sky"), ClassDef("car", is_thing=True)], name="s")
    names = ["metro_drive", "vista_roads", "home_scenes"]
    context = RecipeContext(
        label_spaces=dict.fromkeys(names, space),
        texts={},
        label_texts={},
        train_datasets=names,
        embed_dim=4,
    )
    overrides = [
        "recipe.name=dataseg",
        "data.sampling=per_dataset",
        "model.backbone_kwargs={widths: [8, 8, 8, 8], depths: [1, 1, 1, 1], norm: gn}",
        "model.decoder_dim=16",
        "model.num_queries=4",
        "model.query_layers=1",
        "labels.encoder=hash",
        "recipe.dataseg.lr_multipliers={metro_drive: 3, vista_roads: 5}",
    ]
    recipe = build_recipe(load_config(None, overrides), embed_dim=4, context=context)
    assert recipe.lr_multiplier(["vista_roads", "vista_roads"]) == 5.0
    assert recipe.lr_multiplier(["home_scenes"]) == 1.0
    with pytest.raises(ValueError, match="per_dataset"):
        recipe.lr_multiplier(["metro_drive", "vista_roads"])
