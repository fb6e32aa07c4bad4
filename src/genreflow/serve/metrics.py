"""Prometheus metrics of one server (``GET /metrics``) and the ASGI middleware that counts requests.

Every application gets its own :class:`~prometheus_client.CollectorRegistry`, so several in one
process (tests) do not share counters or clash on names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

#: Methods kept as they are in the ``method`` label; any other becomes ``other``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

#: ``reason`` of ``genreflow_requests_rejected_total``, by status; other 4xx are
#: ``client_error``, other 5xx ``server_error``.
REJECT_REASONS = {401: "unauthorized", 404: "not_found", 413: "too_large", 503: "overloaded"}


def reject_reason(status: int) -> str | None:
    """The ``reason`` label of a refused request, ``None`` for a success."""
    if status < 400:
        return None
    return REJECT_REASONS.get(status, "client_error" if status < 500 else "server_error")


class ServeMetrics:
    """The server's counters, histograms and gauge, in a registry of their own.

    Parameters
    ----------
    pending : callable
        Returns the uploads in flight, read at each scrape.
    """

    def __init__(self, *, pending: Callable[[], int]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "genreflow_requests",
            "HTTP requests answered, by route template ('other': unknown path), method, status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "genreflow_request_seconds",
            "Time from a request's arrival to the end of its answer",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.rejected = Counter(
            "genreflow_requests_rejected",
            "Requests answered 4xx or 5xx, by reason",
            ["reason"],
            registry=self.registry,
        )
        for reason in {*REJECT_REASONS.values(), "client_error", "server_error"}:
            self.rejected.labels(reason)  # present at 0 from the start, for rate() queries
        self.batch_clips = Histogram(
            "genreflow_model_batch_clips",
            "Clips per model call (micro-batching)",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128),
            registry=self.registry,
        )
        self.batch_segments = Histogram(
            "genreflow_model_batch_segments",
            "Segments per model call (serve.max_batch_segments at most)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=self.registry,
        )
        self.pending = Gauge(
            "genreflow_uploads_pending",
            "POST /predict requests in flight: receiving, waiting, preparing or in the model",
            registry=self.registry,
        )
        self.pending.set_function(pending)

    def observe_batch(self, *, clips: int, segments: int) -> None:
        """Record one model call."""
        self.batch_clips.observe(clips)
        self.batch_segments.observe(segments)

    def observe_request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        reason = reject_reason(status)
        if reason is not None:
            self.rejected.labels(reason).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """Pure ASGI middleware: time and count every HTTP request, refused ones included.

    Parameters
    ----------
    app : ASGI application
    metrics : ServeMetrics
    routes : collection of str
        The application's route templates; any other path is counted as ``other``, so that
        scanners probing random paths cannot grow the label set.
    """

    def __init__(self, app, *, metrics: ServeMetrics, routes: Collection[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception that escapes the application became a 500 on its way out.
        status = 500

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            method = scope["method"]
            self.metrics.observe_request(
                route=scope["path"] if scope["path"] in self.routes else "other",
                method=method if method in METHODS else "other",
                status=status,
                seconds=time.perf_counter() - started,
            )
