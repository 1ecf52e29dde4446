"""``babelseg bench``: the real trainer's step measured on the CPU (figures, not timings)."""

import json
import math
from pathlib import Path

import pytest

from babelseg.cli.main import main
from babelseg.engine.bench import PHASES, bench_config

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "lmseg.yaml")


def test_bench_lmseg_reports_finite_positive_figures(tiny_synthworld, tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            CONFIG,
            "--steps",
            "2",
            "--warmup",
            "1",
            "--json",
            str(out),
            f"data.datasets_yaml={tiny_synthworld / 'datasets.yaml'}",
            f"labels.cache_dir={tmp_path / 'cache'}",
            "labels.encoder=hash",
            "recipe.lmseg.prompt_length=0",
            "data.num_workers=1",
            "data.batch_size=2",
            "data.crop=[48,48]",
        ]
    )
    assert code == 0
    figures = json.loads(out.read_text())
    for key in (
        "train_step_ms",
        "train_images_per_s",
        "inference_ms",
        "inference_images_per_s",
        "model_gflop_per_step",
        "model_tflop_per_s",
        "matmul_peak_tflop_per_s",
        "mfu",
    ):
        assert math.isfinite(figures[key]) and figures[key] > 0, key
    assert set(figures["step_split_ms"]) == set(PHASES)
    assert all(v > 0 for v in figures["step_split_ms"].values())
    assert figures["batch"] == 2 and figures["device"] == "cpu"
    crossings = figures["per_step"]
    assert set(crossings) == {
        "scalar_reads",
        "copies",
        "non_blocking_copies",
        "host_to_device",
        "synchronizations",
    }
    assert crossings["host_to_device"] == 0 and crossings["synchronizations"] == 0  # CPU
    assert crossings["copies"] > 0  # the step converts and copies tensors; a trace was read
    table = capsys.readouterr().out
    assert "MFU" in table and "loss matching" in table


def test_r50_shape_sets_mask2formers_published_sizes(tmp_path):
    cfg = bench_config(CONFIG, [], shape="r50-512", device="cpu", run_dir=str(tmp_path))
    assert cfg.model.backbone == "resnet50"
    assert list(cfg.data.crop) == [512, 512] and cfg.data.batch_size == 8
    assert (cfg.model.num_queries, cfg.model.query_layers) == (100, 9)
    assert cfg.recipe.mask.num_points == 12544


def test_unknown_shape_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="--shape 'vit'"):
        bench_config(CONFIG, [], shape="vit", device=None, run_dir=str(tmp_path))
