"""Overlay legends scale with the image and fit the names (see also test_overlay_and_label_png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from babelseg.inference.visualize import MAX_NAME_CHARS, overlay

PALETTE = np.array([[250, 10, 10], [10, 10, 250]], dtype=np.uint8)
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def _swatch_side(panel: np.ndarray, color: np.ndarray) -> int:
    hit = np.all(panel == color, axis=-1)
    ys, xs = np.nonzero(hit)
    side = int(ys.max() - ys.min() + 1)
    assert xs.max() - xs.min() + 1 == side and hit.sum() == side * side  # one full square
    return side


@pytest.mark.parametrize(("height", "side"), [(32, 12), (512, 16), (1024, 32), (4096, 64)])
def test_legend_text_and_swatches_scale_with_image_height(height: int, side: int) -> None:
    # font size = clip(round(H / 32), 12, 64); the swatch is one font size square.
    lab = np.zeros((height, 4), dtype=np.int64)
    lab[height // 2 :] = 1
    out = overlay(np.zeros((height, 4, 3), np.uint8), lab, names=["a", "b"], palette=PALETTE)
    assert out.shape[0] == max(height, 48)  # 2 rows of 1.5 font sizes + padding
    assert _swatch_side(out[:, 4:], PALETTE[0]) == side
    assert _swatch_side(out[:, 4:], PALETTE[1]) == side


def test_legend_width_fits_the_longest_name_and_long_names_are_cut() -> None:
    lab = np.array([[0, 1]] * 64)
    image = np.zeros((64, 2, 3), np.uint8)

    def width(names: list[str]) -> int:
        return overlay(image, lab, names=names, palette=PALETTE).shape[1]

    short, longer = width(["a", "b"]), width(["a", "a much longer class name"])
    assert longer > short + 100
    cut = width(["a", "x" * MAX_NAME_CHARS + "y" * 200])  # cut at MAX_NAME_CHARS characters
    assert cut == width(["a", "x" * (MAX_NAME_CHARS - 1) + "\u2026"])


def test_cityscapes_overlay_looks_right(tmp_path: Path) -> None:
    root = FIXTURES / "cityscapes_sample"
    stem = "frankfurt_000000_000294"
    if not (root / "leftImg8bit" / f"{stem}_leftImg8bit.png").is_file():
        pytest.skip("shared Cityscapes fixture not available")
    image = np.asarray(Image.open(root / "leftImg8bit" / f"{stem}_leftImg8bit.png").convert("RGB"))
    lab = np.asarray(Image.open(root / "gtFine" / f"{stem}_gtFine_labelTrainIds.png"))
    palette = np.array([[(37 * i) % 256, (91 * i) % 256, (151 * i) % 256] for i in range(19)])
    out = overlay(image, lab, names=[f"class{i}" for i in range(19)], palette=palette)
    h, w = lab.shape
    # 10 classes present: one column of 10 rows (MIN_ROWS), taller than the 128-px image.
    assert out.shape[0] == 192 and out.shape[1] > w
    assert np.all(out[h:, :w] == 255)
    ignore = lab == 255
    assert ignore.any()
    np.testing.assert_array_equal(out[:h, :w][ignore], image[ignore])
    panel = out[:, w:]
    for i in range(19):
        shown = np.all(panel == palette[i], axis=-1).any()
        assert shown == bool((lab == i).any()), f"class {i}"
