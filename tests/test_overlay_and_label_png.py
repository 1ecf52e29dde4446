"""Coloured overlays with a legend, and label PNGs written in a label space's on-disk values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from babelseg.inference.label_png import (
    ignore_value_of,
    indices_to_values,
    read_label_values,
    write_label_png,
)
from babelseg.inference.visualize import (
    BOUNDARY_COLOR,
    legend_entries,
    overlay,
    save_overlay,
)
from babelseg.labels.space import ClassDef, LabelSpace

I = 255  # noqa: E741  (ignore)
PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
NAMES = ["road", "car", "sky"]
H, W = 24, 16


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A 24x16 image and label map: sky on top (rows 0-7), road below, an ignore block."""
    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, size=(H, W, 3), dtype=np.uint8)
    lab = np.zeros((H, W), dtype=np.int64)  # road
    lab[:8] = 2  # sky: 8 rows
    lab[16:, :8] = I  # ignore: 8 x 8
    return image, lab


def _blocks(panel: np.ndarray, color: np.ndarray) -> tuple[int, tuple[int, int, int, int] | None]:
    """Pixels of exactly ``color`` in ``panel`` and their bounding box (y0, y1, x0, x1)."""
    hit = np.all(panel == color, axis=-1)
    if not hit.any():
        return 0, None
    ys, xs = np.nonzero(hit)
    return int(hit.sum()), (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1)


def test_legend_entries_list_present_classes_largest_first() -> None:
    _, lab = _scene()
    entries = legend_entries(lab, names=NAMES)
    assert [(e.index, e.name) for e in entries] == [(0, "road"), (2, "sky")]
    # road: 24*16 - 8*16 - 8*8 = 192 pixels of 384; sky 128 of 384 (percent of all pixels).
    assert entries[0].percent == pytest.approx(50.0)
    assert entries[1].percent == pytest.approx(100.0 / 3)
    assert legend_entries(np.full((2, 2), I), names=NAMES) == []
    ties = legend_entries(np.array([[2, 1]]), names=NAMES)
    assert [e.index for e in ties] == [1, 2]  # equal share: lower index first


def test_overlay_pixels_and_legend_swatches() -> None:
    image, lab = _scene()
    out = overlay(image, lab, names=NAMES, palette=PALETTE, alpha=0.5)
    assert out.dtype == np.uint8 and out.ndim == 3
    assert out.shape[1] > W and out.shape[0] >= H
    body = out[:H, :W]

    ignore = lab == I
    np.testing.assert_array_equal(body[ignore], image[ignore])  # ignore pixels untouched

    # Row 7/8 is the sky/road boundary; column 7/8 the road/ignore boundary of rows 16+.
    np.testing.assert_array_equal(body[7, 3], BOUNDARY_COLOR)
    interior_sky, interior_road = (2, 3), (12, 3)
    for (y, x), cls in ((interior_sky, 2), (interior_road, 0)):
        expected = np.round(0.5 * image[y, x] + 0.5 * PALETTE[cls].astype(np.float64))
        np.testing.assert_array_equal(body[y, x], expected.astype(np.uint8))

    panel = out[:, W:]
    red_n, red_box = _blocks(panel, PALETTE[0])
    green_n, _ = _blocks(panel, PALETTE[1])
    blue_n, blue_box = _blocks(panel, PALETTE[2])
    assert green_n == 0  # car is absent: no swatch
    assert red_box is not None and blue_box is not None
    side = red_box[1] - red_box[0]
    assert side >= 12  # the smallest font size
    assert red_n == blue_n == side * side  # one full square swatch each
    assert red_box[3] - red_box[2] == side
    assert red_box[0] < blue_box[0]  # road (larger) is listed above sky
    assert red_box[2] == blue_box[2]  # same column
    # The space under the image (when the legend is taller) is blank panel colour.
    if out.shape[0] > H:
        assert np.all(out[H:, :W] == 255)


def test_long_legends_wrap_and_list_every_present_class_once() -> None:
    k = 40
    palette = np.array([[255, 4 * i, 0] for i in range(k)], dtype=np.uint8)
    names = [f"class {i}" for i in range(k)]
    lab = np.repeat(np.arange(k)[None], 6, axis=0)  # one column per class, 6 x 40
    lab[:, 30:] = I  # classes 30..39 absent
    image = np.zeros((6, k, 3), dtype=np.uint8)
    out = overlay(image, lab, names=names, palette=palette)
    assert out.shape[0] > 6  # the legend is taller than the tiny image
    panel = out[:, k:]
    counts = [_blocks(panel, palette[i])[0] for i in range(k)]
    side = int(np.sqrt(counts[0]))
    assert side >= 12
    assert counts[:30] == [side * side] * 30
    assert counts[30:] == [0] * 10
    lefts = {_blocks(panel, palette[i])[1][2] for i in range(30)}  # type: ignore[index]
    assert len(lefts) == 3  # 30 entries wrap into 3 columns of 10


def test_overlay_without_legend_and_with_alpha_zero() -> None:
    image, lab = _scene()
    plain = overlay(image, lab, names=NAMES, palette=PALETTE, alpha=0.0, legend=False)
    assert plain.shape == (H, W, 3)
    edge = np.all(plain == BOUNDARY_COLOR, axis=-1)
    np.testing.assert_array_equal(plain[~edge], image[~edge])
    assert edge[7].all() and not edge[0].any()
    only_ignore = overlay(image, np.full((H, W), I), names=NAMES, palette=PALETTE)
    np.testing.assert_array_equal(only_ignore, image)  # nothing to list: no legend


def test_overlay_accepts_torch_and_grey_and_saves(tmp_path: Path) -> None:
    image, lab = _scene()
    grey = image[..., 0]
    out = overlay(torch.from_numpy(grey), torch.from_numpy(lab), names=NAMES, palette=PALETTE)
    np.testing.assert_array_equal(out[:H, :W][lab == I], np.repeat(grey[lab == I, None], 3, 1))
    path = save_overlay(tmp_path / "a" / "o.png", image, lab, names=NAMES, palette=PALETTE)
    with Image.open(path) as im:
        assert im.mode == "RGB" and im.width > W


def test_overlay_errors() -> None:
    image, lab = _scene()
    with pytest.raises(ValueError, match="differs from image size"):
        overlay(image, lab[:-1], names=NAMES, palette=PALETTE)
    with pytest.raises(ValueError, match=r"\[5\]"):
        overlay(image, np.full((H, W), 5), names=NAMES, palette=PALETTE)
    with pytest.raises(ValueError, match="palette"):
        overlay(image, lab, names=NAMES[:2], palette=PALETTE)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, lab, names=NAMES, palette=PALETTE, alpha=1.5)


# ---------------------------------------------------------------------- label PNGs
def _space() -> LabelSpace:
    return LabelSpace(
        [ClassDef("road", value=7), ClassDef("car", value=3), ClassDef("sky", value=300)],
        name="d",
        ignore_values=(0,),
    )


def test_indices_to_values_maps_classes_and_ignore() -> None:
    idx = np.array([[0, 1], [2, I]])
    np.testing.assert_array_equal(indices_to_values(idx, _space()), [[7, 3], [300, 0]])
    default = LabelSpace.from_names(["a", "b"])  # values = indices, ignore 255
    np.testing.assert_array_equal(
        indices_to_values(torch.tensor([[1, I], [0, 1]]), default), [[1, 255], [0, 1]]
    )
    with pytest.raises(ValueError, match=r"\[3\]"):
        indices_to_values(np.array([[3]]), default)
    with pytest.raises(ValueError, match=r"\[-1\]"):
        indices_to_values(np.array([[-1]]), default)


def test_ignore_value_of() -> None:
    assert ignore_value_of(_space()) == 0
    no_ignore = LabelSpace([ClassDef("a"), ClassDef("b")], ignore_values=())
    assert ignore_value_of(no_ignore) == 255
    uses_255 = LabelSpace([ClassDef("a"), ClassDef("b", value=255)], name="x", ignore_values=())
    with pytest.raises(ValueError, match="ignore_values"):
        ignore_value_of(uses_255)


def test_8_bit_and_16_bit_files(tmp_path: Path) -> None:
    small = np.array([[0, 7], [3, 255]])
    p8 = write_label_png(tmp_path / "a" / "small.png", small)
    with Image.open(p8) as im:
        assert im.mode == "L"
    np.testing.assert_array_equal(read_label_values(p8), small)

    values = indices_to_values(np.array([[0, 1], [2, I]]), _space())  # holds 300
    p16 = write_label_png(tmp_path / "big.png", values)
    with Image.open(p16) as im:
        assert im.mode.startswith("I")  # 16-bit grey
    back = read_label_values(p16)
    np.testing.assert_array_equal(back, [[7, 3], [300, 0]])
    np.testing.assert_array_equal(_space().encode(back), [[0, 1], [2, I]])  # round trip


def test_palette_mode_keeps_the_values(tmp_path: Path) -> None:
    values = np.array([[0, 1, 2], [2, 1, 5]])
    path = write_label_png(tmp_path / "p.png", values, palette=PALETTE)
    with Image.open(path) as im:
        assert im.mode == "P"
        assert im.getpalette()[:9] == [255, 0, 0, 0, 255, 0, 0, 0, 255]
        np.testing.assert_array_equal(np.asarray(im), values)  # indices, not colours
    np.testing.assert_array_equal(read_label_values(path), values)
    # A 16-bit map ignores the palette.
    p16 = write_label_png(tmp_path / "p16.png", np.array([[0, 400]]), palette=PALETTE)
    np.testing.assert_array_equal(read_label_values(p16), [[0, 400]])


def test_write_label_png_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        write_label_png(tmp_path / "x.png", np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="integers"):
        write_label_png(tmp_path / "x.png", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="0..65535"):
        write_label_png(tmp_path / "x.png", np.array([[-1, 0]]))
    with pytest.raises(ValueError, match="256"):
        write_label_png(
            tmp_path / "x.png", np.zeros((2, 2), dtype=np.uint8), palette=np.zeros((300, 3))
        )
    assert not (tmp_path / "x.png").exists()
