"""The HTTP inference API behind ``genreflow serve``: FastAPI on uvicorn.

Endpoints (see ``docs/serving.md``):

- ``POST /predict``: a multipart upload with one audio file in the field ``file``; answers the
  clip's genre, the top-k genres, every genre's probability, for a multi-label model the genres
  over their thresholds (``labels``), the decoder's ``notes``, and (``?segments=true``) the
  per-segment detail. A silent or too-short clip (the model's ``audio.silence_dbfs`` and
  ``audio.min_seconds``) is refused with 422 unless ``?allow_unusable=true``, which predicts it
  and flags it (``unusable``: the reason).
- ``GET /genres``: the model's labels.
- ``GET /health``: status, model path, label count, uptime, request counters and limits;
  always open (load balancers probe it).
- ``GET /metrics``: Prometheus metrics (requests by route and status, latency, refusals by
  reason, clips and segments per model call, uploads in flight).
- ``GET /docs``: the OpenAPI (Swagger) page FastAPI generates.

With a token (``--token-file`` or ``GENREFLOW_API_TOKEN``) every path but ``/health`` needs
``Authorization: Bearer <token>``; the check (:class:`~genreflow.serve.auth.BearerAuth`, an
ASGI middleware) answers 401 before the application reads the body or calls the model.
``genreflow serve`` refuses to listen on a non-loopback address without a token unless
``--no-auth`` is given. ``--ssl-certfile``/``--ssl-keyfile`` serve HTTPS.

The model is loaded once, before the socket accepts connections. Uploads are decoded and cut
into segments by a small pool of threads (``serve.prepare_threads``); the model runs on one
thread, over every clip ready at that moment in one batched call (micro-batching, up to
``serve.max_batch_segments`` segments), so concurrent uploads share model calls. The
upload is parsed while it streams in: its bytes go straight into a temporary file that keeps
the original extension (soundfile picks the decoder from it), counted as they arrive, so a
body over ``serve.max_upload_mb`` is refused without buffering it. Every temporary file lives
in one folder per server under :func:`tempfile.gettempdir` and is removed when its request
ends; the folder itself is removed at shutdown. At most ``serve.max_pending`` uploads are in
flight (receiving, waiting, preparing, in the model); one more is answered 503 with
``Retry-After: 1`` at once, before its body is read (:class:`~genreflow.serve.worker.PendingGate`).

Every refusal is a JSON body ``{"error": "...", "detail": "..."}`` (4xx, or 503 when
overloaded); see :data:`AUDIO_STATUS` for how decoding problems map to status codes.

Modules: :mod:`~genreflow.serve.upload` (the multipart receiver),
:mod:`~genreflow.serve.worker` (preparation pool, batched model calls, the pending gate),
:mod:`~genreflow.serve.auth` (token and bearer check), :mod:`~genreflow.serve.metrics`
(Prometheus), :mod:`~genreflow.serve.app` (the FastAPI application),
:mod:`~genreflow.serve.server` (start-up and shutdown).
"""

from genreflow.serve.app import ServeLimits, create_app, prediction_record
from genreflow.serve.auth import TOKEN_ENV, BearerAuth, read_token
from genreflow.serve.metrics import ServeMetrics
from genreflow.serve.server import TEMP_PREFIX, bind_socket, make_temp_dir, run_server
from genreflow.serve.upload import ApiError, Upload, UploadReceiver
from genreflow.serve.worker import AUDIO_STATUS, InferenceWorker, PendingGate

__all__ = [
    "AUDIO_STATUS",
    "TEMP_PREFIX",
    "TOKEN_ENV",
    "ApiError",
    "BearerAuth",
    "InferenceWorker",
    "PendingGate",
    "ServeLimits",
    "ServeMetrics",
    "Upload",
    "UploadReceiver",
    "bind_socket",
    "create_app",
    "make_temp_dir",
    "prediction_record",
    "read_token",
    "run_server",
]
