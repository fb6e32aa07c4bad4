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

Modules: :mod:`~genreflow.serve.upload` (the multipart receiver),
:mod:`~genreflow.serve.worker` (preparation pool and batched model calls),
:mod:`~genreflow.serve.app` (the FastAPI application), :mod:`~genreflow.serve.server`
(start-up and shutdown).
"""

from genreflow.serve.app import ServeLimits, create_app, prediction_record
from genreflow.serve.server import TEMP_PREFIX, bind_socket, make_temp_dir, run_server
from genreflow.serve.upload import ApiError, Upload, UploadReceiver
from genreflow.serve.worker import AUDIO_STATUS, InferenceWorker

__all__ = [
    "AUDIO_STATUS",
    "TEMP_PREFIX",
    "ApiError",
    "InferenceWorker",
    "ServeLimits",
    "Upload",
    "UploadReceiver",
    "bind_socket",
    "create_app",
    "make_temp_dir",
    "prediction_record",
    "run_server",
]
