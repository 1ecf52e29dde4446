"""Decoding uploads for ``babelseg serve``: byte and pixel limits before decoding, 16-bit
scaling, EXIF orientation, one clear message per refusal."""

import io

import numpy as np
import pytest
from PIL import Image
from serve_server import bomb_png, png_bytes

from babelseg.serving.uploads import ServeLimits, UploadRejected, decode_upload

LIMITS = ServeLimits(max_upload_bytes=100_000, max_pixels=10_000)


def _encode(im: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_decodes_rgb_pixels_exactly():
    data = png_bytes(30, 40, seed=0)
    expected = np.asarray(Image.open(io.BytesIO(data)))
    got = decode_upload(data, name="a.png", limits=LIMITS)
    assert got.dtype == np.uint8 and got.shape == (30, 40, 3)
    np.testing.assert_array_equal(got, expected)


def test_too_many_bytes_is_413_naming_the_file_and_the_limit():
    with pytest.raises(UploadRejected) as e:
        decode_upload(b"\0" * 100_001, name="big.jpg", limits=LIMITS)
    assert e.value.status == 413
    assert "big.jpg is 100001 bytes" in e.value.message and "100000" in e.value.message


@pytest.mark.parametrize("size", [(101, 100), (5000, 5000), (30000, 30000)])
def test_bombs_are_refused_from_their_header(size):
    with pytest.raises(UploadRejected) as e:
        decode_upload(bomb_png(*size), name="bomb.png", limits=LIMITS)
    assert e.value.status == 400
    assert "bomb" in e.value.message and "bomb.png" in e.value.message


def test_sixteen_bit_grey_is_scaled_not_clipped():
    values = np.linspace(0, 65535, 50 * 60).reshape(50, 60).astype(np.uint16)
    got = decode_upload(_encode(Image.fromarray(values)), name="deep.png", limits=LIMITS)
    assert got.shape == (50, 60, 3)
    np.testing.assert_array_equal(got[..., 0], np.round(values / 257.0).astype(np.uint8))
    assert (got == 255).mean() < 0.01  # clipping would make ~99 % of pixels 255


def test_exif_orientation_is_applied():
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :10] = 255
    im = Image.fromarray(pixels)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    got = decode_upload(_encode(im, "JPEG", exif=exif, quality=95), name="r.jpg", limits=LIMITS)
    assert got.shape == (40, 20, 3)
    assert got[:10].mean() > 200 and got[-10:].mean() < 50  # the white band is now on top


@pytest.mark.parametrize(
    ("data", "words"), [(b"", "is empty"), (b"GIF89a-broken", "not a readable image")]
)
def test_unreadable_uploads_are_400(data, words):
    with pytest.raises(UploadRejected) as e:
        decode_upload(data, name="x.gif", limits=LIMITS)
    assert e.value.status == 400 and words in e.value.message and "x.gif" in e.value.message


def test_truncated_png_is_400():
    data = png_bytes(60, 60)
    with pytest.raises(UploadRejected) as e:
        decode_upload(data[: len(data) // 2], name="cut.png", limits=LIMITS)
    assert e.value.status == 400 and "cut.png" in e.value.message


@pytest.mark.parametrize("field", ["max_upload_bytes", "max_pixels", "concurrency", "max_labels"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        ServeLimits(**{field: 0})


def test_concurrency_is_capped_below_the_vocabulary_cache():
    with pytest.raises(ValueError, match="concurrency must be at most 8"):
        ServeLimits(concurrency=9)
