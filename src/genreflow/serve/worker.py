"""Uploads to predictions: a small pool prepares clips, one thread runs the model in batches."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from genreflow.core.errors import AudioError
from genreflow.serve.upload import ApiError, Upload

#: How the reason of an :class:`~genreflow.core.errors.AudioError` maps to an HTTP status.
#: Matched by prefix, first match wins; anything else is 422 (cannot decode).
AUDIO_STATUS = (
    ("too long", 413, "audio too long"),
    ("empty", 400, "empty upload"),
    ("unsupported format", 415, "unsupported media type"),
    ("silent", 422, "silent audio"),
    ("too short", 422, "audio too short"),
)


class InferenceWorker:
    """Decode and features in a small thread pool; the model on one thread, in batches.

    Uploads are prepared (decoded, checked, cut into log-mel segments) by ``prepare_threads``
    threads at once. Prepared clips wait for the model thread, which takes every clip waiting
    (up to ``max_batch_segments`` segments) in one call: while it runs, the next batch
    gathers, so under load one call serves every request that became ready meanwhile, and a
    request alone is never held back waiting for company.

    Parameters
    ----------
    predictor : genreflow.prediction.predictor.Predictor
    max_audio_seconds : float
        Longer clips are refused from their header, before decoding.
    prepare_threads : int
        Uploads decoded and converted at once.
    max_batch_segments : int
        Most segments in one model call (a clip is never split across calls).
    on_batch : callable, optional
        Called after each model call with ``clips=`` and ``segments=`` (metrics).
    """

    def __init__(
        self,
        predictor,
        *,
        max_audio_seconds: float,
        prepare_threads: int = 2,
        max_batch_segments: int = 256,
        on_batch: Callable[..., None] | None = None,
    ) -> None:
        self.predictor = predictor
        self.max_audio_seconds = max_audio_seconds
        self.max_batch_segments = max_batch_segments
        self.on_batch = on_batch
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
        genreflow.prediction.predictor.Prediction
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
            if self.on_batch is not None:
                self.on_batch(clips=len(batch), segments=segments)
            for (_, future), prediction in zip(batch, predictions, strict=True):
                if not future.done():
                    future.set_result((prediction, started))

    def close(self) -> None:
        self._prepare.shutdown(wait=True, cancel_futures=True)
        self._model.shutdown(wait=True, cancel_futures=True)


class PendingGate:
    """Admit at most ``max_pending`` uploads at once; refuse the next one with 503 at once.

    Used from the event loop only, so the count needs no lock. An upload counts from before
    its body is read until its answer is ready: receiving, waiting, preparing, in the model.
    """

    def __init__(self, *, max_pending: int) -> None:
        self.max_pending = max_pending
        self.pending = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one place while the ``with`` block runs.

        Raises
        ------
        ApiError
            503 ``overloaded`` with ``Retry-After: 1`` when every place is taken.
        """
        if self.pending >= self.max_pending:
            raise ApiError(
                503,
                "overloaded",
                f"{self.pending} uploads are in flight, the most this server takes "
                f"(serve.max_pending = {self.max_pending}); retry in a moment",
                headers={"Retry-After": "1"},
            )
        self.pending += 1
        try:
            yield
        finally:
            self.pending -= 1


def _audio_status(reason: str) -> tuple[int, str]:
    for prefix, status, error in AUDIO_STATUS:
        if reason.startswith(prefix):
            return status, error
    return 422, "cannot decode audio"
