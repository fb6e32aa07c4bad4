"""A `genreflow serve` process for the tests: start it on a free port, wait until healthy, stop it."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT = 120


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    temp_root: Path  # TMPDIR of the server process
    log: Path
    verify: ssl.SSLContext | bool = True  # what httpx needs to trust an HTTPS server

    @property
    def upload_dir(self) -> Path:
        """The server's own upload folder under its TMPDIR."""
        found = list(self.temp_root.glob(f"genreflow-serve-{self.process.pid}-*"))
        assert len(found) == 1, found
        return found[0]

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_server(
    model: Path,
    root: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> Server:
    """Start ``genreflow serve MODEL --port 0 *extra`` and wait until ``/health`` answers.

    ``env`` is added to the environment; ``verify`` trusts an HTTPS server's certificate. A server
    on all interfaces (``--host 0.0.0.0``) is reached through 127.0.0.1.
    """
    temp_root = root / "tmp"
    temp_root.mkdir()
    log = root / "server.log"
    cmd = [sys.executable, "-m", "genreflow", "serve", str(model), "--port", "0"]
    cmd += ["--threads", "1", *extra]
    env = {**os.environ, "TMPDIR": str(temp_root), **(env or {})}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    server = Server(url="", process=proc, temp_root=temp_root, log=log, verify=verify)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{server.log_text()}")
        if not server.url:
            found = re.search(r"on (https?)://(127\.0\.0\.1|0\.0\.0\.0):(\d+)", server.log_text())
            server.url = f"{found[1]}://127.0.0.1:{found[3]}" if found else ""
        if server.url:
            try:
                health = httpx.get(f"{server.url}/health", timeout=5, verify=verify)
                if health.status_code == 200:
                    return server
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    stop_server(server)
    pytest.fail(f"server not healthy after {STARTUP_TIMEOUT} s:\n{server.log_text()}")


def stop_server(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode
