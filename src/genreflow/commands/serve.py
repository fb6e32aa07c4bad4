"""``genreflow serve``: an HTTP API that predicts the genre of uploaded clips."""

from __future__ import annotations

import argparse

from genreflow.commands._common import add_config_arguments, config_from_args

HELP = "serve genre predictions over HTTP (POST /predict, GET /genres, /health, /docs)"
DESCRIPTION = (
    "Load MODEL_DIR once and answer HTTP requests: POST /predict with a multipart upload of "
    "one audio file in the field 'file' (wav, flac, ogg, mp3, au) returns its genre as JSON; "
    "GET /genres lists the genres, GET /health reports status and counters, /docs is the "
    "OpenAPI page. Uploads are decoded and predicted one at a time on one worker thread. "
    "Limits come from the config section serve (max_upload_mb, max_audio_seconds, top_k). "
    "A silent or too-short clip (the model's audio.silence_dbfs, audio.min_seconds) gets a 422 "
    "unless the request adds ?allow_unusable=true. "
    "Binds to 127.0.0.1 unless --host says otherwise; the API has no authentication. "
    "See docs/serving.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_DIR", help="model directory from `genreflow train`")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 exposes the API to the network)",
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="TCP port (0 = any free port, printed at start)"
    )
    parser.add_argument(
        "--threads",
        metavar="N",
        type=int,
        default=1,
        help="TensorFlow intra-op threads (and OpenMP/BLAS threads) for inference",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn log level",
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="do not log one line per request"
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from genreflow.core.errors import ConfigError
    from genreflow.core.threads import start_tensorflow
    from genreflow.prediction.model_info import read_model_info

    cfg = config_from_args(args)
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    read_model_info(args.model)  # fail fast, before TensorFlow starts
    # The environment must be in place before TensorFlow (and its OpenMP/BLAS) is imported.
    threads = start_tensorflow(intra_op=args.threads, inter_op=1)

    from genreflow.serve import run_server

    run_server(
        model_dir=args.model,
        host=args.host,
        port=args.port,
        cfg=cfg,
        threads=threads,
        log_level=args.log_level,
        access_log=not args.no_access_log,
    )
    return 0
