"""The HTTP inference API behind ``genreflow serve``: FastAPI on uvicorn.

Endpoints (see ``docs/serving.md``):

- ``POST /predict``: a multipart upload with one audio file in the field ``file``; answers the
  clip's genre, the top-k genres, every genre's probability, for a multi-label model the genres
  over their thresholds (``labels``), the decoder's ``notes``, and (``?segments=true``) the
  per-segment detail. A silent or too-short clip (the model's ``audio.silence_dbfs`` and
  ``audio.min_seconds``) is refused with 422 unless ``?allow_unusable=true``, which predicts it
  and flags it (``unusable``: the reason).
- ``GET /genres``: the model's labels.
- ``GET /health``: status, model path, label count, uptime and request counters.
- ``GET /docs``: the OpenAPI (Swagger) page FastAPI generates.

The model is loaded once, before the socket accepts connections. Uploads are decoded and cut
into segments by a small pool of threads (``serve.prepare_threads``); the model runs on one
thread, over every clip ready at that moment in one batched call (micro-batching, up to
``serve.max_batch_segments`` segments), so concurrent uploads share model calls. The
upload is parsed while it streams in: its bytes go straight into a temporary file that keeps
the original extension (soundfile picks the decoder from it), counted as they arrive, so a
body over ``serve.max_upload_mb`` is refused without buffering it. Every temporary file lives
in one folder per server under :func:`tempfile.gettempdir` and is removed when its request
ends; the folder itself is removed at shutdown.

Every refusal is a 4xx JSON body ``{"error": "...", "detail": "..."}``; see :data:`AUDIO_STATUS`
for how decoding problems map to status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# FastAPI resolves the handlers' annotations (``request: Request``) from module globals.
from fastapi import Request

from genreflow.audio import SUPPORTED_EXTENSIONS
from genreflow.errors import AudioError

log = logging.getLogger(__name__)

#: Prefix of each server's temporary folder (followed by its process id).
TEMP_PREFIX = "genreflow-serve-"

#: Multipart overhead (boundaries, part headers, small extra fields) allowed beyond the file.
FORM_OVERHEAD_BYTES = 64 * 1024

#: Content types accepted for the file part besides ``audio/*`` (what browsers and curl send
#: for files they do not recognise, and Ogg's registered types).
GENERIC_CONTENT_TYPES = ("application/octet-stream", "application/ogg", "video/ogg")

#: How the reason of an :class:`~genreflow.errors.AudioError` maps to an HTTP status.
#: Matched by prefix, first match wins; anything else is 422 (cannot decode).
AUDIO_STATUS = (
    ("too long", 413, "audio too long"),
    ("empty", 400, "empty upload"),
    ("unsupported format", 415, "unsupported media type"),
    ("silent", 422, "silent audio"),
    ("too short", 422, "audio too short"),
)


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
    """

    max_upload_bytes: int
    max_audio_seconds: float
    top_k: int
    prepare_threads: int = 2
    max_batch_segments: int = 256

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ServeLimits:
        serve = cfg["serve"]
        return cls(
            max_upload_bytes=int(serve["max_upload_mb"] * 1024 * 1024),
            max_audio_seconds=float(serve["max_audio_seconds"]),
            top_k=int(serve["top_k"]),
            prepare_threads=int(serve["prepare_threads"]),
            max_batch_segments=int(serve["max_batch_segments"]),
        )


class ApiError(Exception):
    """A refused request: ``status``, a short ``error`` and a ``detail`` naming the problem."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


@dataclass
class Upload:
    """The received file: the client's file name and content type, where it lies, its size."""

    filename: str
    content_type: str | None
    path: Path
    size: int


class UploadReceiver:
    """Parse a ``multipart/form-data`` body as it arrives; write the ``file`` part to disk.

    Parameters
    ----------
    boundary : bytes
        The multipart boundary from the request's Content-Type.
    temp_dir : Path
        Where the temporary file goes.
    max_bytes : int
        Largest accepted file; one byte more raises :class:`ApiError` (413) at once.

    Feed the body with :meth:`feed`, end with :meth:`finish`; :meth:`cleanup` (always call it)
    removes the temporary file.
    """

    def __init__(self, *, boundary: bytes, temp_dir: Path, max_bytes: int) -> None:
        from python_multipart import MultipartParser

        self.temp_dir = temp_dir
        self.max_bytes = max_bytes
        self.upload: Upload | None = None
        self._other_bytes = 0
        self._fh = None
        self._in_file = False
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        """Parse the next piece of the body."""
        from python_multipart.exceptions import MultipartParseError

        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise ApiError(400, "malformed multipart body", str(exc)) from None

    def finish(self) -> Upload:
        """End of body: the received file.

        Raises
        ------
        ApiError
            400 when there was no ``file`` part or it was empty.
        """
        from python_multipart.exceptions import MultipartParseError

        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise ApiError(400, "malformed multipart body", str(exc)) from None
        self._close_file()
        if self.upload is None:
            raise ApiError(
                400,
                "no file",
                "the form has no file in a field named 'file' (curl -F file=@clip.wav)",
            )
        if self._in_file:
            raise ApiError(400, "malformed multipart body", "the body ended inside the file part")
        if self.upload.size == 0:
            raise ApiError(400, "empty upload", f"{self.upload.filename}: empty file (0 bytes)")
        return self.upload

    def cleanup(self) -> None:
        """Close and remove the temporary file (safe to call more than once)."""
        self._close_file()
        if self.upload is not None:
            with contextlib.suppress(FileNotFoundError):
                self.upload.path.unlink()

    # ---------------------------------------------------------------- parser callbacks

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._in_file = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _on_headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"file":
            return  # another form field: counted, not kept
        if self.upload is not None:
            raise ApiError(400, "more than one file", "send exactly one file per request")
        raw_name = options.get(b"filename")
        if raw_name is None:
            raise ApiError(
                400, "no file", "the field 'file' must be a file upload (curl -F file=@clip.wav)"
            )
        filename = _display_name(raw_name.decode("utf-8", "replace"))
        ext = Path(filename).suffix.lower()
        if ext not in SUPPORTED_EXTENSIONS:
            raise ApiError(
                415,
                "unsupported media type",
                f"{filename}: unsupported file type '{ext or '(none)'}' "
                f"(supported: {' '.join(SUPPORTED_EXTENSIONS)})",
            )
        content_type = self._headers.get(b"content-type")
        ctype = (
            content_type.decode("latin-1").split(";")[0].strip().lower() if content_type else None
        )
        if ctype and not (ctype.startswith("audio/") or ctype in GENERIC_CONTENT_TYPES):
            raise ApiError(
                415,
                "unsupported media type",
                f"{filename}: content type '{ctype}' is not audio "
                f"(send audio/* or application/octet-stream)",
            )
        fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=ext, dir=self.temp_dir)
        self._fh = os.fdopen(fd, "wb")
        self.upload = Upload(filename=filename, content_type=ctype, path=Path(tmp), size=0)
        self._in_file = True

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        n = end - start
        if not self._in_file:
            self._other_bytes += n
            if self._other_bytes > FORM_OVERHEAD_BYTES:
                raise ApiError(
                    413,
                    "upload too large",
                    f"form fields other than 'file' exceed {FORM_OVERHEAD_BYTES // 1024} KiB",
                )
            return
        self.upload.size += n
        if self.upload.size > self.max_bytes:
            raise ApiError(
                413,
                "upload too large",
                f"{self.upload.filename}: more than {_mib(self.max_bytes)} (serve.max_upload_mb)",
            )
        self._fh.write(data[start:end])

    def _on_part_end(self) -> None:
        if self._in_file:
            self._close_file()
            self._in_file = False

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class InferenceWorker:
    """Decode and features in a small thread pool; the model on one thread, in batches.

    Uploads are prepared (decoded, checked, cut into log-mel segments) by ``prepare_threads``
    threads at once. Prepared clips wait for the model thread, which takes every clip waiting
    (up to ``max_batch_segments`` segments) in one call: while it runs, the next batch
    gathers, so under load one call serves every request that became ready meanwhile, and a
    request alone is never held back waiting for company.

    Parameters
    ----------
    predictor : genreflow.predict.Predictor
    max_audio_seconds : float
        Longer clips are refused from their header, before decoding.
    prepare_threads : int
        Uploads decoded and converted at once.
    max_batch_segments : int
        Most segments in one model call (a clip is never split across calls).
    """

    def __init__(
        self,
        predictor,
        *,
        max_audio_seconds: float,
        prepare_threads: int = 2,
        max_batch_segments: int = 256,
    ) -> None:
        self.predictor = predictor
        self.max_audio_seconds = max_audio_seconds
        self.max_batch_segments = max_batch_segments
        self.in_flight = 0
        self.batches = 0  # model calls made
        self.batched_clips = 0  # clips they served
        self._prepare = ThreadPoolExecutor(
            max_workers=prepare_threads, thread_name_prefix="genreflow-prepare"
        )
        self._model = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genreflow-model")
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._batcher: asyncio.Task | None = None

    async def predict(self, upload: Upload, *, allow_unusable: bool = False):
        """Decode, prepare and predict ``upload``.

        ``allow_unusable`` predicts a silent or too-short clip (flagged) instead of refusing it.

        Returns
        -------
        genreflow.predict.Prediction
            With ``source`` set to the client's file name and ``seconds["queue"]`` the time
            spent waiting for a preparing thread and for the model.

        Raises
        ------
        ApiError
            The file cannot be used as audio (status from :data:`AUDIO_STATUS`).
        """
        loop = asyncio.get_running_loop()
        arrived = time.perf_counter()
        self.in_flight += 1
        try:
            prepared, started = await loop.run_in_executor(
                self._prepare, self._prepare_upload, upload, allow_unusable
            )
            ready = time.perf_counter()
            future = loop.create_future()
            self._waiting.append((prepared, future))
            if self._batcher is None or self._batcher.done():
                self._batcher = loop.create_task(self._run_batches())
            prediction, model_started = await future
        finally:
            self.in_flight -= 1
        prediction.source = upload.filename
        waited = (started - arrived) + (model_started - ready)
        prediction.seconds = {"queue": waited, **prediction.seconds}
        return prediction

    def _prepare_upload(self, upload: Upload, allow_unusable: bool):
        started = time.perf_counter()
        try:
            prepared = self.predictor.prepare_file(
                upload.path, max_seconds=self.max_audio_seconds, allow_unusable=allow_unusable
            )
        except AudioError as exc:
            status, error = _audio_status(exc.reason)
            # libsndfile's messages quote the path: show the client's name, not ours.
            reason = exc.reason.replace(str(upload.path), upload.filename)
            raise ApiError(status, error, f"{upload.filename}: {reason}") from None
        return prepared, started

    async def _run_batches(self) -> None:
        """Run the model on whatever is waiting, batch after batch, until nothing is."""
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, segments = [], 0
            while self._waiting:
                prepared, future = self._waiting[0]
                if batch and segments + len(prepared.segments) > self.max_batch_segments:
                    break
                self._waiting.pop(0)
                if not future.done():  # a cancelled request (client gone) is dropped
                    batch.append((prepared, future))
                    segments += len(prepared.segments)
            if not batch:
                continue
            started = time.perf_counter()
            try:
                predictions = await loop.run_in_executor(
                    self._model, self.predictor.predict_prepared, [p for p, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.batched_clips += len(batch)
            for (_, future), prediction in zip(batch, predictions, strict=True):
                if not future.done():
                    future.set_result((prediction, started))

    def close(self) -> None:
        self._prepare.shutdown(wait=True, cancel_futures=True)
        self._model.shutdown(wait=True, cancel_futures=True)


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
):
    """The FastAPI application around a loaded :class:`~genreflow.predict.Predictor`.

    Parameters
    ----------
    predictor : genreflow.predict.Predictor
    limits : ServeLimits
    temp_dir : path-like
        This server's own folder for uploads; removed when the application shuts down.
    threads : mapping, optional
        The TensorFlow thread settings in force, reported by ``/health``.

    Returns
    -------
    fastapi.FastAPI
    """
    from fastapi import FastAPI, Query
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from python_multipart.multipart import parse_options_header
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    from genreflow import __version__

    ErrorResponse, PredictResponse, GenresResponse, HealthResponse = _models()
    temp_dir = Path(temp_dir)
    worker = InferenceWorker(
        predictor,
        max_audio_seconds=limits.max_audio_seconds,
        prepare_threads=limits.prepare_threads,
        max_batch_segments=limits.max_batch_segments,
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

    def error_response(status: int, error: str, detail: str) -> JSONResponse:
        stats["rejected"] += 1
        return JSONResponse({"error": error, "detail": detail}, status_code=status)

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
        return error_response(exc.status, exc.error, exc.detail)

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
            413: {"model": ErrorResponse, "description": "upload or audio too long"},
            415: {"model": ErrorResponse, "description": "not multipart, not an audio type"},
            422: {
                "model": ErrorResponse,
                "description": "the file cannot be decoded, or is silent or too short",
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
                f"request body of {_mib(int(declared))} exceeds {_mib(limits.max_upload_bytes)} "
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
            "batches": {"model_calls": worker.batches, "clips": worker.batched_clips},
            "limits": {
                "max_upload_bytes": limits.max_upload_bytes,
                "max_audio_seconds": limits.max_audio_seconds,
                "top_k": limits.top_k,
                "prepare_threads": limits.prepare_threads,
                "max_batch_segments": limits.max_batch_segments,
            },
            "threads": dict(threads or {}),
            "version": __version__,
        }

    return app


def make_temp_dir() -> Path:
    """A fresh upload folder for this server; folders of servers no longer running are removed."""
    base = Path(tempfile.gettempdir())
    pattern = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-")
    for stale in base.glob(TEMP_PREFIX + "*"):
        match = pattern.match(stale.name)
        try:
            mine = stale.is_dir() and stale.stat().st_uid == os.getuid()
        except OSError:
            continue
        if match and mine and not _process_alive(int(match.group(1))):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=base))


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0 = any free port), not yet listening.

    Raises
    ------
    genreflow.errors.ConfigError
        The address cannot be bound (in use, not a local address).
    """
    from genreflow.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Connections inherit this: without it, a response whose body is sent after its headers
    # waits for the client's delayed ACK (~40 ms on Linux) on every request but the first.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run_server(
    *,
    model_dir: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 8000,
    cfg: Mapping[str, Any],
    threads: Mapping[str, Any] | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Load the model, bind ``host:port`` and serve until SIGINT/SIGTERM.

    Set the TensorFlow thread settings (:mod:`genreflow.threads`) before calling this: it
    imports TensorFlow.
    """
    import numpy as np
    import uvicorn

    from genreflow.predict import Predictor

    limits = ServeLimits.from_config(cfg)
    sock = bind_socket(host, port)
    temp_dir = None
    try:
        t0 = time.perf_counter()
        predictor = Predictor(model_dir)
        # Trace the model graph now, so the first request does not pay for it.
        predictor.predict_segments(
            np.zeros((1, predictor.n_mels, predictor.extractor.segment_frames), np.float32)
        )
        temp_dir = make_temp_dir()
        app = create_app(predictor=predictor, limits=limits, temp_dir=temp_dir, threads=threads)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if not _is_loopback(bound_host):
            log.warning(
                "listening on %s, reachable from other machines; the API has no authentication",
                bound_host,
            )
        print(
            f"genreflow serve: model {model_dir} ({len(predictor.labels)} genres, loaded in "
            f"{time.perf_counter() - t0:.1f} s) on http://{shown}:{bound_port} "
            f"(docs: http://{shown}:{bound_port}/docs); uploads in {temp_dir}",
            flush=True,
        )
        config = uvicorn.Config(
            app,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=10,
            lifespan="on",
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _audio_status(reason: str) -> tuple[int, str]:
    for prefix, status, error in AUDIO_STATUS:
        if reason.startswith(prefix):
            return status, error
    return 422, "cannot decode audio"


def _display_name(name: str) -> str:
    # Browsers send a bare name, some clients a path (C:\...\clip.wav); keep the last part,
    # printable characters only: it is echoed back and logged.
    base = re.split(r"[\\/]", name)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable())[:255]
    return cleaned or "upload"


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.3g} MiB"


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        batches: dict[str, int]
        limits: dict[str, int | float]
        threads: dict[str, Any]
        version: str

    return ErrorResponse, PredictResponse, GenresResponse, HealthResponse
