"""Server start-up: load the model, bind the socket, run uvicorn, clean temporary files."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genreflow.serve.app import ServeLimits, create_app
from genreflow.serve.auth import is_loopback_host

log = logging.getLogger("genreflow.serve")

#: Prefix of each server's temporary folder (followed by its process id).
TEMP_PREFIX = "genreflow-serve-"


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
    genreflow.core.errors.ConfigError
        The address cannot be bound (in use, not a local address).
    """
    from genreflow.core.errors import ConfigError

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
    token: str | None = None,
    ssl_certfile: str | os.PathLike | None = None,
    ssl_keyfile: str | os.PathLike | None = None,
) -> None:
    """Load the model, bind ``host:port`` and serve until SIGINT/SIGTERM.

    Set the TensorFlow thread settings (:mod:`genreflow.core.threads`) before calling this: it
    imports TensorFlow. ``token`` turns on bearer-token authentication
    (:class:`~genreflow.serve.auth.BearerAuth`); ``ssl_certfile`` and ``ssl_keyfile`` (PEM)
    serve HTTPS.
    """
    import numpy as np
    import uvicorn

    from genreflow.prediction.predictor import Predictor

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
        app = create_app(
            predictor=predictor, limits=limits, temp_dir=temp_dir, threads=threads, token=token
        )
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if token is None and not is_loopback_host(bound_host):
            log.warning(
                "listening on %s, reachable from other machines; the API has no authentication",
                bound_host,
            )
        base = f"{'https' if ssl_certfile else 'http'}://{shown}:{bound_port}"
        print(
            f"genreflow serve: model {model_dir} ({len(predictor.labels)} genres, loaded in "
            f"{time.perf_counter() - t0:.1f} s) on {base} (docs: {base}/docs); "
            f"auth: {'bearer token' if token else 'none'}; uploads in {temp_dir}",
            flush=True,
        )
        config = uvicorn.Config(
            app,
            log_level=log_level,
            access_log=access_log,
            timeout_graceful_shutdown=10,
            lifespan="on",
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
        )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
