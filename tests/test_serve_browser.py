"""``babelseg serve`` end to end in a real headless Chromium: load the page, upload an image,
see the overlay and legend, hover a pixel, open a heat map, drop an image and pick a dataset,
see a refusal."""

import shutil

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="babelseg serve needs FastAPI: pip install 'babelseg[serve]'")
pytest.importorskip("uvicorn", reason="babelseg serve needs uvicorn: pip install 'babelseg[serve]'")

from serve_browser import ServePage, missing_browser  # noqa: E402
from serve_server import bomb_png, serve  # noqa: E402

REASON = missing_browser()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser test: {REASON}")

LABELS = "road, car, person, sky, building, tree"


@pytest.fixture
def street(tiny_synthworld, tmp_path):
    src = sorted((tiny_synthworld / "metro_drive" / "images" / "val").iterdir())[0]
    dest = tmp_path / f"street{src.suffix}"
    shutil.copy(src, dest)
    return dest


def test_page_uploads_an_image_and_shows_overlay_legend_hover_and_heat_map(
    tiny_trained_run, street, tmp_path
):
    width, height = Image.open(street).size
    with (
        serve(tiny_trained_run, workdir=tmp_path / "server") as (base, _, _),
        ServePage() as page,
    ):
        page.open(base)
        page.choose_image(street)
        page.type_labels(LABELS)
        page.segment()

        sizes = page.image_sizes()
        assert (sizes["overlay_w"], sizes["overlay_h"]) == (width, height)
        assert (sizes["photo_w"], sizes["photo_h"]) == (width, height)
        legend = page.legend()
        assert legend and set(legend) <= {n.strip() for n in LABELS.split(",")}

        rows = page.hover(0.5, 0.5)
        assert rows[0][1:] == ["score", "p"]  # header: pixel, score, probability
        assert 1 < len(rows) <= 6 and all(r[0] in LABELS for r in rows[1:])
        shot = page.screenshot(tmp_path / "serve.png")

        title = page.show_heat_map(0)
        assert title == f"heat map: {legend[0]} (score)"
        page.show_overlay()

        dropped = tmp_path / "dropped.png"
        shutil.copy(street, dropped)
        page.drop_image(dropped)
        assert page.find("#drop-text").text.startswith("dropped.png")
        page.pick_dataset("night_drive")
        assert page.find("#labels").get_attribute("disabled") is not None
        page.segment()
        assert set(page.legend()) <= set(page.find("#labels").get_attribute("value").split("\n"))

        bomb = tmp_path / "bomb.png"
        bomb.write_bytes(bomb_png(30000, 30000))
        page.choose_image(bomb)
        page.segment(expect="error")
        assert "bomb" in page.status()

    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[0] >= 600 and pixels.shape[1] >= 1000
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # a rendered page, not a blank
