"""The FastAPI application of ``babelseg serve``: the page and its JSON API.

Routes:
    ``GET /``: the page. ``GET /static/...``: its script and style.
    ``GET /api/info``: the model, its datasets' vocabularies, the server's limits.
    ``POST /api/predict``: multipart form, ``image`` (file) and ``labels`` (text) or ``dataset``
        (a dataset's name, or ``unified``); optional ``alpha`` (overlay opacity, 0..1).
    ``GET /api/results/{id}/pixel?x=&y=&top=``: the top labels and scores under a pixel.
    ``GET /api/results/{id}/heatmap?class_index=&kind=score|probability``: one class's map.
    ``GET /api/openapi.json``: the OpenAPI schema of the above.

Every refusal is JSON ``{"detail": message}`` with status 400 (bad input), 404 (unknown result),
413 (body too large) or 503 (too many requests waiting). Request bodies are read into memory up
to the byte limit and never spooled to disk.
"""

from __future__ import annotations

import base64
import io
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from babelseg.serving.gate import Gate
from babelseg.serving.model import ServedModel
from babelseg.serving.results import ResultStore, StoredResult, heat_map, top_labels
from babelseg.serving.uploads import ServeLimits, UploadRejected, decode_upload

FORM_OVERHEAD_BYTES = 256 * 1024
"""Room in a request body for the form's fields and boundaries beside the image itself."""


class _InMemoryMultiPartParser(MultiPartParser):
    """Starlette's multipart parser with files kept in memory (``0``: never roll over to disk);
    the body it reads is already bounded by the byte limit."""

    spool_max_size = 0


def _png_data_url(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_big = UploadRejected(
        413,
        f"The request is larger than this server's limit of {limit} bytes "
        "(babelseg serve --max-upload-mb). Send a smaller or more compressed image.",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _parse_form(request: Request, limits: ServeLimits) -> FormData:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UploadRejected(
            400,
            "Send multipart/form-data with an 'image' file and 'labels' or 'dataset', e.g. "
            "curl -F image=@photo.jpg -F 'labels=road, car, person' URL/api/predict",
        )
    body = await _read_body(request, limits.max_upload_bytes + FORM_OVERHEAD_BYTES)

    async def stream():
        yield body

    parser = _InMemoryMultiPartParser(
        Headers(scope=request.scope), stream(), max_files=1, max_fields=8
    )
    try:
        return await parser.parse()
    except (MultiPartException, HTTPException, ValueError) as e:
        raise UploadRejected(400, f"The form could not be read ({e}).") from e


def _field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, str):
        return value
    raise UploadRejected(400, f"'{name}' must be a text field, not a file.")


def _predict_sync(
    *, model: ServedModel, store: ResultStore, limits: ServeLimits, form: dict, image: bytes
) -> dict:
    """Decode, predict and render one request (runs in a worker thread, inside the gate)."""
    pixels = decode_upload(image, name=form["filename"], limits=limits)
    vocab = model.vocabulary(
        labels=form["labels"], dataset=form["dataset"], max_labels=limits.max_labels
    )
    result = model.predict(pixels, vocab, limits=limits)
    height, width = result.label_map.shape
    result_id = store.add(StoredResult.of(result))
    palette = result.vocabulary.palette
    order = np.argsort(-result.class_area, kind="stable")
    dtype = np.uint8 if len(result.labels) <= 256 else np.uint16
    return {
        "id": result_id,
        "width": width,
        "height": height,
        "vocabulary": [
            {"index": k, "name": name, "color": [int(c) for c in palette[k]]}
            for k, name in enumerate(result.labels)
        ],
        "legend": [
            {
                "index": int(k),
                "name": result.labels[k],
                "percent": 100.0 * float(result.class_area[k]) / (height * width),
                "score": float(result.class_score[k]),
            }
            for k in order
            if result.class_area[k] > 0
        ],
        "overlay": _png_data_url(np.asarray(result.overlay(alpha=form["alpha"], legend=False))),
        "label_map": _png_data_url(result.label_map.astype(dtype)),
    }


def _read_alpha(raw: str | None) -> float:
    try:
        alpha = 0.5 if raw in (None, "") else float(raw)
    except ValueError as e:
        raise UploadRejected(400, f"alpha must be a number within 0..1, got '{raw}'.") from e
    if not 0.0 <= alpha <= 1.0:
        raise UploadRejected(400, f"alpha must be within 0..1, got {alpha}.")
    return alpha


def create_app(*, model: ServedModel, limits: ServeLimits) -> FastAPI:
    """The application serving ``model`` under ``limits``."""
    # The interactive docs pages load their scripts from a CDN: only the schema is served.
    app = FastAPI(title="babelseg", openapi_url="/api/openapi.json", docs_url=None, redoc_url=None)
    store = ResultStore(max_bytes=limits.cache_bytes)
    gate = Gate(concurrency=limits.concurrency, queue=limits.queue)
    static = Path(str(resources.files("babelseg.serving") / "static"))
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.state.store = store
    app.state.gate = gate

    @app.exception_handler(UploadRejected)
    async def refused(request: Request, exc: UploadRejected) -> JSONResponse:
        headers = {"Retry-After": "2"} if exc.status == 503 else None
        return JSONResponse({"detail": exc.message}, status_code=exc.status, headers=headers)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(static / "index.html")

    @app.get("/api/info")
    async def info() -> dict:
        limits_json = {
            "max_upload_bytes": limits.max_upload_bytes,
            "max_pixels": limits.max_pixels,
            "max_labels": limits.max_labels,
        }
        return {**model.describe(), "limits": limits_json}

    @app.post("/api/predict")
    async def predict(request: Request) -> dict:
        form = await _parse_form(request, limits)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise UploadRejected(400, "The form has no 'image' file; add one (-F image=@FILE).")
        image = await upload.read()
        fields = {
            "filename": upload.filename or "the image",
            "labels": _field(form, "labels"),
            "dataset": _field(form, "dataset"),
            "alpha": _read_alpha(_field(form, "alpha")),
        }
        with gate.ticket():
            return await run_in_threadpool(
                gate.run,
                _predict_sync,
                model=model,
                store=store,
                limits=limits,
                form=fields,
                image=image,
            )

    @app.get("/api/results/{result_id}/pixel")
    async def pixel(result_id: str, x: int, y: int, top: int = 5) -> dict:
        result = store.get(result_id)
        return {"x": x, "y": y, "labels": top_labels(result, x=x, y=y, top=min(top, 20))}

    @app.get("/api/results/{result_id}/heatmap")
    async def heatmap(result_id: str, class_index: int, kind: str = "score") -> dict:
        result = store.get(result_id)
        png, low, high = await run_in_threadpool(
            heat_map, result, class_index=class_index, kind=kind
        )
        return {
            "class_index": class_index,
            "name": result.names[class_index],
            "kind": kind,
            "low": low,
            "high": high,
            "image": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        }

    return app
