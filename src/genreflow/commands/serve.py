"""``genreflow serve``: an HTTP API that predicts the genre of uploaded clips."""

from __future__ import annotations

import argparse

from genreflow.commands._common import add_config_arguments, config_from_args

HELP = "serve genre predictions over HTTP (POST /predict, GET /genres, /health, /metrics, /docs)"
DESCRIPTION = (
    "Load MODEL_DIR once and answer HTTP requests: POST /predict with a multipart upload of "
    "one audio file in the field 'file' (wav, flac, ogg, mp3, au) returns its genre as JSON; "
    "GET /genres lists the genres, GET /health reports status and counters, GET /metrics "
    "gives Prometheus metrics, /docs is the OpenAPI page. Uploads are decoded by "
    "serve.prepare_threads threads; the model runs on one thread over every clip ready at "
    "once (micro-batching, up to serve.max_batch_segments segments). "
    "Limits come from the config section serve (max_upload_mb, max_audio_seconds, top_k, "
    "max_pending: more uploads in flight than that get 503 with Retry-After). "
    "A silent or too-short clip (the model's audio.silence_dbfs, audio.min_seconds) gets a 422 "
    "unless the request adds ?allow_unusable=true. "
    "With a token (--token-file or the environment variable GENREFLOW_API_TOKEN) every path "
    "but /health needs the header 'Authorization: Bearer TOKEN'. Binds to 127.0.0.1 unless "
    "--host says otherwise; an address other machines can reach needs a token or --no-auth. "
    "--ssl-certfile and --ssl-keyfile serve HTTPS. See docs/serving.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_DIR", help="model directory from `genreflow train`")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 exposes the API to the network: needs a token "
        "or --no-auth)",
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="TCP port (0 = any free port, printed at start)"
    )
    parser.add_argument(
        "--token-file",
        metavar="FILE",
        default=None,
        help="file holding the API token (surrounding whitespace ignored); without it the "
        "environment variable GENREFLOW_API_TOKEN, if set, gives the token",
    )
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="serve a non-loopback --host without a token (e.g. behind a proxy that authenticates)",
    )
    parser.add_argument(
        "--ssl-certfile", metavar="PEM", default=None, help="TLS certificate chain: serve HTTPS"
    )
    parser.add_argument(
        "--ssl-keyfile", metavar="PEM", default=None, help="TLS private key of --ssl-certfile"
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
    from genreflow.prediction.predictor import read_model_info
    from genreflow.serve.auth import access_token, check_tls

    cfg = config_from_args(args)
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {args.port}")
    # Refused before the model and TensorFlow load: an exposed address without a token,
    # a token that cannot be read, TLS files that do not load.
    token = access_token(token_file=args.token_file, no_auth=args.no_auth, host=args.host)
    check_tls(certfile=args.ssl_certfile, keyfile=args.ssl_keyfile)
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
        token=token,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0
