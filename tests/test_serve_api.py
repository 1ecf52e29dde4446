"""The JSON API of ``babelseg serve`` in process (FastAPI's TestClient, no browser, no socket)."""

import base64
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch.nn.functional as F
from PIL import Image

pytest.importorskip("fastapi", reason="babelseg serve needs FastAPI: pip install 'babelseg[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx (in the test extra)")

from fastapi.testclient import TestClient  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from serve_server import bomb_png, png_bytes  # noqa: E402

import babelseg  # noqa: E402
from babelseg.serving.app import create_app  # noqa: E402
from babelseg.serving.model import ServedModel  # noqa: E402
from babelseg.serving.uploads import ServeLimits  # noqa: E402

LABELS = "road, car, person, sky, tree"


@pytest.fixture(scope="module")
def model(tiny_trained_run, tmp_path_factory):
    cache = tmp_path_factory.mktemp("serve_embeddings")
    return ServedModel.from_run(tiny_trained_run, cache_dir=cache)


@pytest.fixture(scope="module")
def client(model):
    limits = ServeLimits(max_upload_bytes=200_000, max_pixels=400_000, max_labels=50)
    with TestClient(create_app(model=model, limits=limits)) as c:
        yield c


def _predict(client, image: bytes, **fields):
    return client.post("/api/predict", files={"image": ("photo.png", image)}, data=fields)


def _decode(data_url: str) -> np.ndarray:
    head, payload = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))))


def test_info_lists_the_model_its_datasets_and_the_limits(client):
    info = client.get("/api/info").json()
    assert info["recipe"] == "sentence" and info["text_encoder"] == "hash"
    assert info["datasets"]["metro_drive"]["trained"] is True
    assert info["datasets"]["night_drive"]["heldout"] is True
    assert "roadway" in info["datasets"]["night_drive"]["classes"]
    assert info["unified"] is False
    assert info["limits"] == {"max_upload_bytes": 200_000, "max_pixels": 400_000, "max_labels": 50}


def test_page_and_its_script_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="file-input"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    schema = client.get("/api/openapi.json").json()
    assert {"/api/predict", "/api/info", "/api/results/{result_id}/pixel"} <= set(schema["paths"])


def test_predict_typed_labels_matches_the_python_api(client, tiny_trained_run):
    image = png_bytes(45, 61, seed=1)
    response = _predict(client, image, labels=LABELS)
    assert response.status_code == 200, response.text
    got = response.json()
    assert (got["width"], got["height"]) == (61, 45)
    assert [v["name"] for v in got["vocabulary"]] == ["road", "car", "person", "sky", "tree"]
    labels = _decode(got["label_map"])
    overlay = _decode(got["overlay"])
    assert labels.shape == (45, 61) and overlay.shape == (45, 61, 3)

    pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    expected = babelseg.load(tiny_trained_run).predict(pixels, labels=LABELS)
    np.testing.assert_array_equal(labels, expected.label_map)

    legend = {e["name"]: e for e in got["legend"]}
    assert list(legend) == expected.present
    assert sum(e["percent"] for e in legend.values()) == pytest.approx(100.0)
    for segment in expected.segments:
        assert legend[segment.label]["score"] == pytest.approx(segment.score, abs=1e-6)
        assert legend[segment.label]["percent"] == pytest.approx(100 * segment.area / (45 * 61))


def test_predict_in_a_dataset_vocabulary(client):
    response = _predict(client, png_bytes(32, 40, seed=2), dataset="night_drive")
    assert response.status_code == 200, response.text
    names = [v["name"] for v in response.json()["vocabulary"]]
    assert names[:3] == ["roadway", "footpath", "building"]
    assert _decode(response.json()["label_map"]).max() < len(names)


def test_hover_top_label_is_the_label_shown_under_the_pixel(client):
    got = _predict(client, png_bytes(37, 53, seed=3), labels=LABELS).json()
    labels = _decode(got["label_map"])
    rng = np.random.default_rng(0)
    for x, y in [(0, 0), (52, 36), *zip(rng.integers(0, 53, 12), rng.integers(0, 37, 12))]:
        answer = client.get(f"/api/results/{got['id']}/pixel", params={"x": x, "y": y, "top": 3})
        assert answer.status_code == 200
        tops = answer.json()["labels"]
        assert len(tops) == 3
        assert tops[0]["index"] == labels[y, x]
        assert [t["score"] for t in tops] == sorted((t["score"] for t in tops), reverse=True)
        assert all(0.0 < t["probability"] < 1.0 for t in tops)
        assert sum(t["probability"] for t in tops) <= 1.0 + 1e-9


def test_heat_map_is_brightest_where_the_class_scores_highest(client, model):
    image = png_bytes(40, 44, seed=4)
    got = _predict(client, image, labels=LABELS).json()
    heat = client.get(f"/api/results/{got['id']}/heatmap", params={"class_index": 1}).json()
    assert heat["name"] == "car" and heat["kind"] == "score" and heat["low"] < heat["high"]
    colours = _decode(heat["image"])
    assert colours.shape == (40, 44, 3)

    pixels = np.asarray(Image.open(io.BytesIO(image)).convert("RGB"))
    scores = model.model.predict(pixels, labels=LABELS).scores[1]
    up = F.interpolate(scores[None, None], size=(40, 44), mode="bilinear", align_corners=False)
    up = up[0, 0].numpy()  # 40 x 44 is the stride-4 grid times 4: the same as scaling by 4
    assert heat["low"] == pytest.approx(float(up.min()), abs=1e-5)
    assert heat["high"] == pytest.approx(float(up.max()), abs=1e-5)
    inferno = colormaps["inferno"]
    top, bottom = np.unravel_index(up.argmax(), up.shape), np.unravel_index(up.argmin(), up.shape)
    np.testing.assert_array_equal(colours[top], inferno(1.0, bytes=True)[:3])
    np.testing.assert_array_equal(colours[bottom], inferno(0.0, bytes=True)[:3])

    prob = client.get(
        f"/api/results/{got['id']}/heatmap", params={"class_index": 1, "kind": "probability"}
    ).json()
    assert (prob["low"], prob["high"]) == (0.0, 1.0)


def test_oversized_upload_is_refused_with_413(client):
    rng = np.random.default_rng(5)
    huge = rng.integers(0, 255, 600_000, dtype=np.uint8).tobytes()  # body over limit + form room
    response = _predict(client, huge, labels=LABELS)
    assert response.status_code == 413
    assert "larger than this server's limit of 462144 bytes" in response.json()["detail"]
    big = rng.integers(0, 255, 270_000, dtype=np.uint8).tobytes()  # the file over its limit
    response = _predict(client, big, labels=LABELS)
    assert response.status_code == 413
    assert "photo.png is 270000 bytes" in response.json()["detail"]
    assert "up to 200000 bytes" in response.json()["detail"]


def test_oversized_chunked_upload_is_refused_while_streaming(client):
    def chunks():
        for _ in range(64):
            yield b"x" * 8192

    response = client.post(
        "/api/predict",
        content=chunks(),
        headers={"Content-Type": "multipart/form-data; boundary=abc"},
    )
    assert response.status_code == 413


def test_decompression_bombs_are_refused_with_400_before_decoding(client):
    over_limit = _predict(client, bomb_png(1000, 1000), labels=LABELS)
    assert over_limit.status_code == 400
    detail = over_limit.json()["detail"]
    assert "declares 1000x1000" in detail and "400000 pixels" in detail
    huge = _predict(client, bomb_png(30000, 30000), labels=LABELS)
    assert huge.status_code == 400
    assert "decompression bomb" in huge.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "image", "status", "words"),
    [
        ({"labels": LABELS}, b"not an image at all", 400, "not a readable image"),
        ({"labels": LABELS}, b"", 400, "empty"),
        ({"labels": " , ,"}, None, 400, "vocabulary is empty"),
        ({"labels": ",".join(f"c{i}" for i in range(51))}, None, 400, "up to 50"),
        ({"labels": LABELS, "dataset": "metro_drive"}, None, 400, "not both"),
        ({}, None, 400, "either 'labels'"),
        ({"dataset": "atlantis"}, None, 400, "Unknown dataset 'atlantis'"),
        ({"dataset": "unified"}, None, 400, "no unified label space"),
        ({"labels": LABELS, "alpha": "2"}, None, 400, "alpha"),
    ],
)
def test_bad_requests_get_one_clear_message(client, fields, image, status, words):
    response = _predict(client, png_bytes(16, 16) if image is None else image, **fields)
    assert response.status_code == status
    assert words in response.json()["detail"]


def test_an_image_too_small_for_the_network_is_a_clear_400(client):
    response = _predict(client, png_bytes(8, 8), labels=LABELS)
    assert response.status_code == 400
    assert "could not segment this 8x8 image" in response.json()["detail"]


def test_requests_without_a_form_or_an_image_are_refused(client):
    not_form = client.post("/api/predict", json={"labels": LABELS})
    assert not_form.status_code == 400 and "multipart/form-data" in not_form.json()["detail"]
    no_image = client.post("/api/predict", data={"labels": LABELS}, files={"x": ("a", b"1")})
    assert no_image.status_code == 400 and "'image'" in no_image.json()["detail"]


def test_a_malformed_form_is_a_400(client):
    response = client.post(
        "/api/predict",
        content=b"--xyz\r\nContent-Disposition: form-data\r\n\r\n\x00\x01",
        headers={"Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert response.status_code == 400
    assert (
        "form could not be read" in response.json()["detail"]
        or "'image'" in response.json()["detail"]
    )


def test_unknown_results_pixels_and_classes(client):
    assert client.get("/api/results/nope/pixel", params={"x": 0, "y": 0}).status_code == 404
    got = _predict(client, png_bytes(40, 50), labels=LABELS).json()
    outside = client.get(f"/api/results/{got['id']}/pixel", params={"x": 50, "y": 0})
    assert outside.status_code == 400 and "outside the 50x40 image" in outside.json()["detail"]
    wrong = client.get(f"/api/results/{got['id']}/heatmap", params={"class_index": 5})
    assert wrong.status_code == 400 and "outside 0..4" in wrong.json()["detail"]


def test_concurrent_requests_are_all_answered_and_run_within_the_gate(model):
    limits = ServeLimits(concurrency=2, queue=16)
    app = create_app(model=model, limits=limits)
    image = png_bytes(48, 64, seed=6)
    with TestClient(app) as c, ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: _predict(c, image, labels=LABELS), range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    maps = [_decode(r.json()["label_map"]) for r in responses]
    assert all(np.array_equal(m, maps[0]) for m in maps)
    assert 1 <= app.state.gate.peak_running <= 2
    assert app.state.gate.admitted == 0 and len(app.state.store) == 8


def test_large_images_are_predicted_in_sliding_windows(model):
    pixels = np.asarray(Image.open(io.BytesIO(png_bytes(72, 96, seed=7))))
    vocab = model.vocabulary(labels=LABELS, dataset=None, max_labels=50)
    slid = model.predict(pixels, vocab, limits=ServeLimits(slide_above_pixels=72 * 96 - 1))
    whole = model.predict(pixels, vocab, limits=ServeLimits(slide_above_pixels=72 * 96))
    api = model.model
    expected = api.predict(pixels, labels=LABELS, mode="slide", batch_size=1)
    np.testing.assert_array_equal(slid.label_map, expected.label_map)
    np.testing.assert_array_equal(whole.label_map, api.predict(pixels, labels=LABELS).label_map)


def test_score_budget_refuses_huge_vocabulary_on_a_big_image(model):
    limits = ServeLimits(max_score_bytes=5000)
    with TestClient(create_app(model=model, limits=limits)) as c:
        response = _predict(c, png_bytes(64, 64), labels=LABELS)
    assert response.status_code == 400
    assert "5 labels on a 64x64 image need 5120 bytes" in response.json()["detail"]


def test_new_vocabularies_are_embedded_into_the_server_cache_only(tiny_trained_run, tmp_path):
    from serve_server import tree_state

    from babelseg.engine.config import load_config

    run_cache = Path(load_config(tiny_trained_run / "config.yaml").labels.cache_dir)
    before = tree_state(run_cache, tiny_trained_run)
    model = ServedModel.from_run(tiny_trained_run, cache_dir=tmp_path / "emb")
    with TestClient(create_app(model=model, limits=ServeLimits())) as c:
        answer = _predict(c, png_bytes(40, 40), labels="zebra crossing, lamp post")
        assert answer.status_code == 200
    assert tree_state(run_cache, tiny_trained_run) == before
    assert any(p.is_file() for p in (tmp_path / "emb").rglob("*"))
