"""The FastAPI application: ``POST /predict``, ``GET /genres``, ``/health``, ``/metrics``.

:class:`PredictionService` holds the state (model worker, pending gate, metrics, counters) and
answers each route; :func:`create_app` builds the FastAPI application and registers its
methods as routes, exception handlers and lifespan.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

# FastAPI resolves the route methods' annotations (``request: Request``) from module globals.
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from python_multipart.multipart import parse_options_header
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from genreflow import __version__
from genreflow.serve.auth import OPEN_PATHS, BearerAuth
from genreflow.serve.metrics import RequestMetrics, ServeMetrics
from genreflow.serve.upload import FORM_OVERHEAD_BYTES, ApiError, Upload, UploadReceiver, mib
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


class PredictionService:
    """The state behind the API, and one method per route and per kind of error.

    Parameters
    ----------
    predictor : genreflow.prediction.predictor.Predictor
    limits : ServeLimits
    temp_dir : path-like
        This server's own folder for uploads; removed when the application shuts down.
    threads : mapping, optional
        The TensorFlow thread settings in force, reported by ``/health``.
    """

    def __init__(
        self,
        *,
        predictor,
        limits: ServeLimits,
        temp_dir: str | os.PathLike,
        threads: Mapping[str, Any] | None = None,
    ) -> None:
        self.predictor = predictor
        self.limits = limits
        self.temp_dir = Path(temp_dir)
        self.threads = threads
        self.gate = PendingGate(max_pending=limits.max_pending)
        self.metrics = ServeMetrics(pending=lambda: self.gate.pending)
        self.worker = InferenceWorker(
            predictor,
            max_audio_seconds=limits.max_audio_seconds,
            prepare_threads=limits.prepare_threads,
            max_batch_segments=limits.max_batch_segments,
            on_batch=self.metrics.observe_batch,
        )
        self.served = 0
        self.rejected = 0
        self.started = time.time()
        # Uptime from the monotonic clock: a wall-clock step must not make it jump.
        self._t0 = time.monotonic()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Run the application; at shutdown stop the worker and remove the upload folder."""
        try:
            yield
        finally:
            self.worker.close()
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    # ------------------------------------------------------------------------------- routes

    async def predict(
        self,
        request: Request,
        *,
        segments: Annotated[bool, Query(description="add per-segment probabilities")] = False,
        top_k: Annotated[
            int | None, Query(ge=1, description="genres under `top` (default: config)")
        ] = None,
        allow_unusable: Annotated[
            bool,
            Query(
                description="predict a silent or too-short clip anyway, flagged `unusable`, "
                "instead of answering 422",
            ),
        ] = False,
    ) -> dict[str, Any]:
        """``POST /predict``: receive one upload, predict it, answer :func:`prediction_record`."""
        # Before anything else, the body included: a refused request costs next to nothing.
        with self.gate.admit():
            receiver = self._receiver_for(request)
            try:
                upload = await self._receive(request, receiver)
                prediction = await self.worker.predict(upload, allow_unusable=allow_unusable)
            finally:
                receiver.cleanup()
            self.served += 1
            return prediction_record(
                prediction, top_k=top_k or self.limits.top_k, segments=segments
            )

    async def genres(self) -> dict[str, Any]:
        """``GET /genres``: the model's labels."""
        return {"genres": list(self.predictor.labels)}

    async def health(self) -> dict[str, Any]:
        """``GET /health``: status, model, uptime, counters, limits, thread settings."""
        limits = self.limits
        return {
            "status": "ok",
            "model": str(self.predictor.model_dir.resolve()),
            "labels": len(self.predictor.labels),
            "uptime_seconds": round(time.monotonic() - self._t0, 3),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self.started)),
            "requests": {"served": self.served, "rejected": self.rejected},
            "in_flight": self.worker.in_flight,
            "pending": self.gate.pending,
            "batches": {"model_calls": self.worker.batches, "clips": self.worker.batched_clips},
            "limits": {
                "max_upload_bytes": limits.max_upload_bytes,
                "max_audio_seconds": limits.max_audio_seconds,
                "top_k": limits.top_k,
                "prepare_threads": limits.prepare_threads,
                "max_batch_segments": limits.max_batch_segments,
                "max_pending": limits.max_pending,
            },
            "threads": dict(self.threads or {}),
            "version": __version__,
        }

    async def prometheus_metrics(self) -> Response:
        """``GET /metrics``: the Prometheus text format."""
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    # ------------------------------------------------------------------------------- errors

    def count_rejection(self) -> None:
        """Count a request refused outside the application (the bearer-token check)."""
        self.rejected += 1

    def error_response(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        """The ``{"error", "detail"}`` body every refusal gets; counted as rejected."""
        self.rejected += 1
        return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)

    async def api_error(self, request: Request, exc: ApiError) -> JSONResponse:
        """A request refused by this API (:class:`ApiError`): logged, answered as raised."""
        log.info(
            "%s %s -> %d %s: %s",
            request.method,
            request.url.path,
            exc.status,
            exc.error,
            exc.detail,
        )
        return self.error_response(exc.status, exc.error, exc.detail, headers=exc.headers)

    async def http_error(self, request: Request, exc: HTTPException) -> JSONResponse:
        """A refusal by the framework (unknown path, wrong method) in this API's JSON shape."""
        phrase = HTTPStatus(exc.status_code).phrase.lower()
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return self.error_response(
            exc.status_code, phrase, f"{request.method} {request.url.path}: {detail}"
        )

    async def invalid_request(self, request: Request, exc: RequestValidationError) -> JSONResponse:
        """Query parameters FastAPI could not validate: 422 naming each one."""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return self.error_response(422, "invalid request", problems)

    async def unexpected_error(self, request: Request, exc: Exception) -> JSONResponse:
        """A bug: the traceback goes to the log, the client only sees the exception's type."""
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return self.error_response(500, "internal server error", type(exc).__name__)

    def _receiver_for(self, request: Request) -> UploadReceiver:
        """An :class:`UploadReceiver` for ``request``, once its headers promise a usable body."""
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
        max_bytes = self.limits.max_upload_bytes
        declared = request.headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > max_bytes + FORM_OVERHEAD_BYTES
        ):
            raise ApiError(
                413,
                "upload too large",
                f"request body of {mib(int(declared))} exceeds {mib(max_bytes)} "
                "(serve.max_upload_mb)",
            )
        return UploadReceiver(boundary=boundary, temp_dir=self.temp_dir, max_bytes=max_bytes)

    @staticmethod
    async def _receive(request: Request, receiver: UploadReceiver) -> Upload:
        """Stream ``request``'s body into ``receiver``; the received file."""
        try:
            async for chunk in request.stream():
                receiver.feed(chunk)
        except ClientDisconnect:
            # Nobody is left to answer; the status only goes to the log.
            raise ApiError(400, "upload interrupted", "the client disconnected") from None
        return receiver.finish()


def create_app(
    *,
    predictor,
    limits: ServeLimits,
    temp_dir: str | os.PathLike,
    threads: Mapping[str, Any] | None = None,
    token: str | None = None,
) -> FastAPI:
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
    service = PredictionService(
        predictor=predictor, limits=limits, temp_dir=temp_dir, threads=threads
    )
    app = FastAPI(
        title="genreflow",
        version=__version__,
        description="Music genre classification: upload an audio clip, get its genre.",
        lifespan=service.lifespan,
    )
    app.add_exception_handler(ApiError, service.api_error)
    app.add_exception_handler(HTTPException, service.http_error)
    app.add_exception_handler(RequestValidationError, service.invalid_request)
    app.add_exception_handler(Exception, service.unexpected_error)
    _add_routes(app, service=service)
    # Starlette puts the last middleware added outermost: metrics see the refusals of auth.
    if token is not None:
        app.add_middleware(
            BearerAuth, token=token, open_paths=OPEN_PATHS, on_reject=service.count_rejection
        )
    app.add_middleware(
        RequestMetrics, metrics=service.metrics, routes=[route.path for route in app.routes]
    )
    return app


def _add_routes(app: FastAPI, *, service: PredictionService) -> None:
    """Register the service's route methods with their OpenAPI descriptions."""
    ErrorResponse, PredictResponse, GenresResponse, HealthResponse = _models()
    # FastAPI shows an endpoint's docstring on /docs unless given a description; the text
    # before the first form feed is the description, so "\f" is none: the methods'
    # docstrings are for readers of this code, the summaries for API users.
    no_description = "\f"
    app.add_api_route(
        "/predict",
        service.predict,
        methods=["POST"],
        description=no_description,
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
        # The body is parsed by hand as it streams in (UploadReceiver): FastAPI cannot infer it.
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
    app.add_api_route(
        "/genres",
        service.genres,
        methods=["GET"],
        description=no_description,
        summary="The genres the model knows",
        response_model=GenresResponse,
    )
    app.add_api_route(
        "/health",
        service.health,
        methods=["GET"],
        description=no_description,
        summary="Liveness and counters",
        response_model=HealthResponse,
    )
    app.add_api_route(
        "/metrics",
        service.prometheus_metrics,
        methods=["GET"],
        description=no_description,
        summary="Prometheus metrics (text format)",
        response_class=Response,
    )


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
