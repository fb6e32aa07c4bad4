"""The FastAPI application: ``POST /predict``, ``GET /genres``, ``/health``, ``/metrics``."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# FastAPI resolves the handlers' annotations (``request: Request``) from module globals.
from fastapi import Request

from genreflow.serve.auth import OPEN_PATHS, BearerAuth
from genreflow.serve.metrics import RequestMetrics, ServeMetrics
from genreflow.serve.upload import FORM_OVERHEAD_BYTES, ApiError, UploadReceiver, mib
from genreflow.serve.worker import InferenceWorker, PendingGate

log = logging.getLogger("genreflow.serve")


@dataclass(frozen=True)
class ServeLimits:
    """Per-request limits and defaults of the API (config section ``serve``).

    Attributes
    ----------
    max_upload_bytes : int
        Largest accepted file, in bytes.
    max_audio_seconds : float
        Longest accepted clip (checked from the header of WAV, AU and FLAC, before decoding;
        MP3 and Ogg are decoded up to this length).
    top_k : int
        Genres listed under ``top`` unless the request asks for another number.
    prepare_threads : int
        Uploads decoded and cut into segments at once.
    max_batch_segments : int
        Most segments in one batched model call.
    max_pending : int
        Most ``POST /predict`` requests in flight; one more is answered 503 at once.
    """

    max_upload_bytes: int
    max_audio_seconds: float
    top_k: int
    prepare_threads: int = 2
    max_batch_segments: int = 256
    max_pending: int = 16

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ServeLimits:
        serve = cfg["serve"]
        return cls(
            max_upload_bytes=int(serve["max_upload_mb"] * 1024 * 1024),
            max_audio_seconds=float(serve["max_audio_seconds"]),
            top_k=int(serve["top_k"]),
            prepare_threads=int(serve["prepare_threads"]),
            max_batch_segments=int(serve["max_batch_segments"]),
            max_pending=int(serve["max_pending"]),
        )


def prediction_record(prediction, *, top_k: int, segments: bool) -> dict[str, Any]:
    """The JSON answer of ``POST /predict`` for one prediction.

    ``segments`` adds one ``{"offset", "label", "probabilities"}`` entry per segment; the
    count is always there as ``n_segments``.
    """
    record = prediction.to_dict(top_k=top_k)
    record["n_segments"] = record.pop("segments")
    if segments:
        labels = prediction.labels
        record["segments"] = [
            {
                "offset": round(float(offset), 3),
                "label": labels[int(probs.argmax())],
                "probabilities": {
                    name: round(float(p), 6) for name, p in zip(labels, probs, strict=True)
                },
            }
            for offset, probs in zip(
                prediction.offsets, prediction.segment_probabilities, strict=True
            )
        ]
    return record


def create_app(
    *,
    predictor,
    limits: ServeLimits,
    temp_dir: str | os.PathLike,
    threads: Mapping[str, Any] | None = None,
    token: str | None = None,
):
    """The FastAPI application around a loaded :class:`~genreflow.prediction.predictor.Predictor`.

    Parameters
    ----------
    predictor : genreflow.prediction.predictor.Predictor
    limits : ServeLimits
    temp_dir : path-like
        This server's own folder for uploads; removed when the application shuts down.
    threads : mapping, optional
        The TensorFlow thread settings in force, reported by ``/health``.
    token : str, optional
        Every path but ``/health`` then needs ``Authorization: Bearer <token>``.

    Returns
    -------
    fastapi.FastAPI
    """
    from fastapi import FastAPI, Query
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from python_multipart.multipart import parse_options_header
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    from genreflow import __version__

    ErrorResponse, PredictResponse, GenresResponse, HealthResponse = _models()
    temp_dir = Path(temp_dir)
    gate = PendingGate(max_pending=limits.max_pending)
    metrics = ServeMetrics(pending=lambda: gate.pending)
    worker = InferenceWorker(
        predictor,
        max_audio_seconds=limits.max_audio_seconds,
        prepare_threads=limits.prepare_threads,
        max_batch_segments=limits.max_batch_segments,
        on_batch=metrics.observe_batch,
    )
    stats = {"served": 0, "rejected": 0, "started": time.time(), "t0": time.monotonic()}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            worker.close()
            shutil.rmtree(temp_dir, ignore_errors=True)

    app = FastAPI(
        title="genreflow",
        version=__version__,
        description="Music genre classification: upload an audio clip, get its genre.",
        lifespan=lifespan,
    )

    def error_response(
        status: int, error: str, detail: str, headers: Mapping[str, str] | None = None
    ) -> JSONResponse:
        stats["rejected"] += 1
        return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        log.info(
            "%s %s -> %d %s: %s",
            request.method,
            request.url.path,
            exc.status,
            exc.error,
            exc.detail,
        )
        return error_response(exc.status, exc.error, exc.detail, exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        from http import HTTPStatus

        phrase = HTTPStatus(exc.status_code).phrase.lower()
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(
            exc.status_code, phrase, f"{request.method} {request.url.path}: {detail}"
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return error_response(422, "invalid request", problems)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(500, "internal server error", type(exc).__name__)

    @app.post(
        "/predict",
        summary="Predict the genre of one audio clip",
        response_model=PredictResponse,
        response_model_exclude_none=True,
        responses={
            400: {"model": ErrorResponse, "description": "empty upload, no `file` field"},
            401: {"model": ErrorResponse, "description": "missing or wrong bearer token"},
            413: {"model": ErrorResponse, "description": "upload or audio too long"},
            415: {"model": ErrorResponse, "description": "not multipart, not an audio type"},
            422: {
                "model": ErrorResponse,
                "description": "the file cannot be decoded, or is silent or too short",
            },
            503: {
                "model": ErrorResponse,
                "description": "serve.max_pending uploads in flight already; retry after "
                "the Retry-After header's seconds",
            },
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {
                                    "type": "string",
                                    "format": "binary",
                                    "description": "wav, flac, ogg, mp3 or au; any rate",
                                }
                            },
                        }
                    }
                },
            }
        },
    )
    async def predict(
        request: Request,
        segments: bool = Query(False, description="add per-segment probabilities"),
        top_k: int | None = Query(None, ge=1, description="genres under `top` (default: config)"),
        allow_unusable: bool = Query(
            False,
            description="predict a silent or too-short clip anyway, flagged `unusable`, "
            "instead of answering 422",
        ),
    ):
        # Before anything else, the body included: a refused request costs next to nothing.
        with gate.admit():
            return await receive_and_predict(
                request, segments=segments, top_k=top_k, allow_unusable=allow_unusable
            )

    async def receive_and_predict(
        request: Request, *, segments: bool, top_k: int | None, allow_unusable: bool
    ) -> dict[str, Any]:
        mime, options = parse_options_header(request.headers.get("content-type", ""))
        if mime != b"multipart/form-data":
            shown = mime.decode("latin-1") or "no Content-Type"
            raise ApiError(
                415,
                "unsupported media type",
                f"expected multipart/form-data with the audio in a field named 'file', got {shown}",
            )
        boundary = options.get(b"boundary")
        if not boundary:
            raise ApiError(400, "malformed multipart body", "no boundary in the Content-Type")
        body_limit = limits.max_upload_bytes + FORM_OVERHEAD_BYTES
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > body_limit:
            raise ApiError(
                413,
                "upload too large",
                f"request body of {mib(int(declared))} exceeds {mib(limits.max_upload_bytes)} "
                "(serve.max_upload_mb)",
            )
        receiver = UploadReceiver(
            boundary=boundary, temp_dir=temp_dir, max_bytes=limits.max_upload_bytes
        )
        try:
            try:
                async for chunk in request.stream():
                    receiver.feed(chunk)
            except ClientDisconnect:
                # Nobody is left to answer; the status only goes to the log.
                raise ApiError(400, "upload interrupted", "the client disconnected") from None
            upload = receiver.finish()
            prediction = await worker.predict(upload, allow_unusable=allow_unusable)
        finally:
            receiver.cleanup()
        stats["served"] += 1
        return prediction_record(prediction, top_k=top_k or limits.top_k, segments=segments)

    @app.get("/genres", summary="The genres the model knows", response_model=GenresResponse)
    async def genres():
        return {"genres": list(predictor.labels)}

    @app.get("/health", summary="Liveness and counters", response_model=HealthResponse)
    async def health():
        return {
            "status": "ok",
            "model": str(predictor.model_dir.resolve()),
            "labels": len(predictor.labels),
            "uptime_seconds": round(time.monotonic() - stats["t0"], 3),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(stats["started"])),
            "requests": {"served": stats["served"], "rejected": stats["rejected"]},
            "in_flight": worker.in_flight,
            "pending": gate.pending,
            "batches": {"model_calls": worker.batches, "clips": worker.batched_clips},
            "limits": {
                "max_upload_bytes": limits.max_upload_bytes,
                "max_audio_seconds": limits.max_audio_seconds,
                "top_k": limits.top_k,
                "prepare_threads": limits.prepare_threads,
                "max_batch_segments": limits.max_batch_segments,
                "max_pending": limits.max_pending,
            },
            "threads": dict(threads or {}),
            "version": __version__,
        }

    @app.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
    async def prometheus_metrics():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # Starlette puts the last middleware added outermost: metrics see the refusals of auth.
    if token is not None:

        def refused() -> None:
            stats["rejected"] += 1

        app.add_middleware(BearerAuth, token=token, open_paths=OPEN_PATHS, on_reject=refused)
    app.add_middleware(RequestMetrics, metrics=metrics, routes=[route.path for route in app.routes])
    return app


# ------------------------------------------------------------------ OpenAPI response models


def _models():
    """The response schemas shown on ``/docs`` (built on first use: pydantic is not light)."""
    from pydantic import BaseModel, Field

    class ErrorResponse(BaseModel):
        error: str = Field(description="what went wrong, in a few words")
        detail: str = Field(description="the file and the reason")

    class TopGenre(BaseModel):
        label: str
        probability: float

    class SegmentDetail(BaseModel):
        offset: float = Field(description="segment start in seconds")
        label: str
        probabilities: dict[str, float]

    class PredictResponse(BaseModel):
        file: str | None = Field(description="the uploaded file's name")
        label: str = Field(description="most probable genre")
        labels: list[str] | None = Field(
            default=None,
            description="multi-label models only: every genre whose probability reaches its "
            "threshold, most probable first (may be empty)",
        )
        top: list[TopGenre]
        probabilities: dict[str, float] = Field(
            description="every genre; they sum to 1 for a single-label model, not for a "
            "multi-label (sigmoid) one"
        )
        unusable: str | None = Field(
            default=None,
            description="only with ?allow_unusable=true, for a silent or too-short clip: why "
            "its genre means little",
        )
        duration: float = Field(description="clip length in seconds")
        padded: bool = Field(description="the clip or its tail was zero-padded to a segment")
        n_segments: int
        notes: list[str] = Field(
            default_factory=list,
            description="remarks from decoding, e.g. an MP3 whose header misjudged its length",
        )
        segments: list[SegmentDetail] | None = Field(
            default=None, description="only with ?segments=true"
        )
        seconds: dict[str, float] = Field(description="queue, decode, features, model, total")

    class GenresResponse(BaseModel):
        genres: list[str]

    class HealthResponse(BaseModel):
        status: str
        model: str
        labels: int
        uptime_seconds: float
        started: str
        requests: dict[str, int]
        in_flight: int
        pending: int
        batches: dict[str, int]
        limits: dict[str, int | float]
        threads: dict[str, Any]
        version: str

    return ErrorResponse, PredictResponse, GenresResponse, HealthResponse
