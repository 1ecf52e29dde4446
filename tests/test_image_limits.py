"""Decompression bombs and oversized images are one error naming the file and the setting; 16-bit
images are scaled to 8 bits, never clipped."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from babelseg.cli.main import main
from babelseg.data.image_io import read_rgb
from babelseg.data.image_limits import (
    DEFAULT_MAX_IMAGE_PIXELS,
    max_image_pixels,
    set_max_image_pixels,
)
from babelseg.data.workers import WorkerInit
from babelseg.engine.config import load_config


def write_bomb(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A tiny PNG whose header declares ``width x height`` pixels."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def default_limit():
    yield
    set_max_image_pixels(DEFAULT_MAX_IMAGE_PIXELS)


def test_a_bomb_header_is_refused_naming_the_file_and_the_setting(tmp_path, default_limit):
    bomb = write_bomb(tmp_path / "bomb.png")
    with pytest.raises(ValueError, match=r"bomb\.png.*data\.max_image_pixels.*--max-pixels"):
        read_rgb(bomb)


def test_the_limit_is_a_setting(tmp_path, default_limit):
    path = tmp_path / "big.png"
    Image.new("RGB", (64, 32)).save(path)
    assert read_rgb(path).shape == (32, 64, 3)
    set_max_image_pixels(64 * 32 - 1)
    with pytest.raises(ValueError, match=r"big\.png declares 64 x 32 = 2,048 pixels"):
        read_rgb(path)
    # raised above Pillow's own threshold, ours decides: the 200 M-pixel header passes the
    # check and only the (missing) pixel data fails
    set_max_image_pixels(400_000_000)
    with pytest.raises(ValueError, match=r"ok\.png is damaged or truncated"):
        read_rgb(write_bomb(tmp_path / "ok.png", 20_000, 10_000))


def test_config_refuses_a_nonpositive_limit():
    with pytest.raises(ValueError, match=r"data.max_image_pixels must be >= 1"):
        load_config(None, ["data.max_image_pixels=0"])


class _LimitSeen(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, index: int) -> int:
        return max_image_pixels()


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_data_workers_get_the_limit(default_limit, context):
    loader = torch.utils.data.DataLoader(
        _LimitSeen(),
        num_workers=1,
        worker_init_fn=WorkerInit(max_pixels=1234),
        multiprocessing_context=context,
    )
    assert [int(x) for x in loader] == [1234]
    assert max_image_pixels() == DEFAULT_MAX_IMAGE_PIXELS  # this process is unchanged


def test_training_on_an_oversized_image_is_one_message(tiny_run_config, capsys, default_limit):
    cfg = tiny_run_config("bomb", data={"num_workers": 1})
    code = main(["train", cfg, "data.max_image_pixels=100", "--no-eval"])
    err = capsys.readouterr().err
    assert code == 2
    assert "metro_drive" in err or "vista_roads" in err or "home_scenes" in err
    assert "data.max_image_pixels" in err
    assert "Traceback" not in err and "DataLoader worker" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_bit_grey_is_scaled_not_clipped(tmp_path, mode):
    values = np.linspace(0, 65535, 256 * 4).astype(np.int32).reshape(16, 64)
    if mode == "I;16":  # a 16-bit PNG
        path = tmp_path / "deep.png"
        Image.fromarray(values.astype(np.uint16)).save(path)
    else:  # 32-bit integer TIFF holding 16-bit values
        path = tmp_path / "deep.tif"
        Image.fromarray(values, mode="I").save(path)
    rgb = read_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (16, 64, 3)
    expected = np.round(values / 65535 * 255)
    np.testing.assert_allclose(rgb[..., 0], expected, atol=1)
    assert (rgb == 255).mean() < 0.01  # clipping made 98 % of such pixels 255


def test_float_images_are_refused(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.zeros((4, 4), dtype=np.float32), mode="F").save(path)
    with pytest.raises(ValueError, match=r"float\.tif holds floating-point pixels"):
        read_rgb(path)
