"""Real-time genre classification of a live audio stream (``genreflow stream``).

The pieces, in the order the audio meets them:

1. :class:`~genreflow.prediction.pcm.ByteSource` reads bytes as they arrive from a pipe, or
   from a file that is still being written (``follow``: at its end, wait for it to grow until
   it has not grown for a while).
2. :func:`~genreflow.prediction.pcm.read_wav_header` takes a WAV header off the front of the
   stream (streaming WAVs, whose sizes are 0 or 0xFFFFFFFF, included);
   :class:`~genreflow.prediction.pcm.PcmDecoder` turns the bytes that follow, or headerless raw
   PCM, into mono float32, whatever the chunk boundaries.
3. :class:`~genreflow.prediction.pcm.StreamResampler` brings the audio to the model's rate with
   soxr's streaming resampler.
4. :class:`SlidingWindow` cuts windows of ``window`` samples every ``hop`` samples.
5. :class:`StreamClassifier` turns each window into log-mel segments (the model's segment
   length and hop, as in ``genreflow predict``), calls
   :meth:`~genreflow.prediction.predictor.Predictor.predict_segments` once, averages the segments and
   updates an exponential moving average of the probabilities: the smoothed decision (the
   most probable genre; for a multi-label model, also every genre whose smoothed probability
   reaches its threshold from ``genreflow.json``).

:func:`classify_stream` runs the whole chain and yields one :class:`WindowResult` per hop.
When the stream ends between two hops, a last result covers the final ``window`` seconds
(zero-padded only when the whole stream is shorter than one model segment) and is flagged
``final``.

A window that training would have skipped as a clip (quieter than the model's
``audio.silence_dbfs``, or shorter than ``audio.min_seconds``: only a whole stream that short)
gets no genre: its result has ``unusable`` (the reason) and no probabilities, and the smoothed
decision carries over unchanged, so a pause between two songs neither gets a genre nor moves
the decision.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genreflow.prediction.pcm import ByteSource, open_pcm, stream_samples

#: Default time between windows, seconds.
DEFAULT_HOP_SECONDS = 1.0

#: Default weight of the newest window in the moving average (1 = no smoothing).
DEFAULT_SMOOTHING = 0.5

#: The final partial window is reported only if it adds at least this much new audio
#: (or half a hop, if that is less): a few samples left over by the resampler are no news.
FINAL_MIN_SECONDS = 0.1


class SlidingWindow:
    """Windows of ``window`` samples every ``hop`` samples over a stream pushed in chunks.

    Window ``i`` covers samples ``[i * hop, i * hop + window)`` of the stream. Only what a
    future window (or the final partial one) still needs is kept.

    Parameters
    ----------
    window, hop : int
        Lengths in samples (> 0).
    """

    def __init__(self, *, window: int, hop: int) -> None:
        if window < 1 or hop < 1:
            raise ValueError(f"window and hop must be >= 1 sample, got {window}, {hop}")
        self.window = window
        self.hop = hop
        self.total = 0  # samples pushed so far
        self.next_end = window  # end of the next full window
        self.last_end = 0  # end of the last window handed out
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # stream index of self._buf[0]; _buf_start + len(_buf) == total

    def push(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add samples; return ``(end, window_samples)`` for every window now complete."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.size:
            self._buf = np.concatenate([self._buf, samples]) if self._buf.size else samples
            self.total += samples.size
        ready = []
        while self.total >= self.next_end:
            end = self.next_end
            lo = end - self.window - self._buf_start
            ready.append((end, self._buf[lo : lo + self.window].copy()))
            self.last_end = end
            self.next_end += self.hop
        # Keep from the start of the window ending at last_end on: the next full window starts
        # later, and a final partial window ends after last_end.
        keep_from = max(self.last_end - self.window, self.next_end - self.window - self.hop, 0)
        cut = min(max(keep_from - self._buf_start, 0), self._buf.size)
        if cut:
            self._buf = self._buf[cut:]
            self._buf_start += cut
        return ready

    def tail(self, *, min_new: int) -> tuple[int, np.ndarray] | None:
        """The final partial window at the end of the stream: ``(end, samples)`` or None.

        It is the last ``window`` samples (all of them when the stream is shorter), returned
        only when it ends at least ``min_new`` samples after the last full window (or the
        stream has samples but no full window yet).
        """
        new = self.total - self.last_end
        if self.total == 0 or new <= 0 or (self.last_end > 0 and new < min_new):
            return None
        start = max(self.total - self.window, 0)
        return self.total, self._buf[start - self._buf_start :].copy()


@dataclass
class WindowResult:
    """The prediction for one window of the stream.

    Attributes
    ----------
    time : float
        End of the window in stream seconds (the "now" of this line).
    start : float
        Start of the window in stream seconds.
    probabilities : np.ndarray, shape (n_labels,), or None
        This window's genre probabilities (mean over its model segments); None for an
        ``unusable`` window.
    smoothed : np.ndarray, shape (n_labels,), or None
        Exponential moving average of ``probabilities`` up to this window (unusable windows
        left out); None while no window had a genre yet.
    padded : bool
        The window was shorter than one model segment and was zero-padded.
    final : bool
        The last, partial window at the end of the stream.
    seconds : float
        Processing time of this window (features and model).
    labels : list of str
        The model's labels, in output order.
    thresholds : np.ndarray, shape (n_labels,), or None
        Per-label thresholds of a multi-label model; None for a single-label one.
    unusable : str or None
        Why this window has no genre (``"silent: RMS -72.4 dBFS (threshold -60 dBFS)"``,
        ``"too short: ..."``); None for a classified window.
    """

    time: float
    start: float
    probabilities: np.ndarray | None
    smoothed: np.ndarray | None
    padded: bool = False
    final: bool = False
    seconds: float = 0.0
    labels: list[str] = field(default_factory=list)
    thresholds: np.ndarray | None = None
    unusable: str | None = None

    @property
    def label(self) -> str | None:
        """This window's most probable label; None for an unusable window."""
        if self.probabilities is None:
            return None
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def smoothed_label(self) -> str | None:
        """The smoothed decision's most probable label; None before any window had a genre."""
        if self.smoothed is None:
            return None
        return self.labels[int(np.argmax(self.smoothed))]

    @property
    def smoothed_labels(self) -> list[str]:
        """Multi-label decision: the labels whose smoothed probability reaches their threshold.

        Most probable first; ``[smoothed_label]`` for a single-label model; empty before any
        window had a genre.
        """
        if self.smoothed is None:
            return []
        if self.thresholds is None:
            return [self.smoothed_label]
        over = self.smoothed >= self.thresholds
        order = np.argsort(-self.smoothed, kind="stable")
        return [self.labels[i] for i in order if over[i]]

    def to_dict(self, *, top_k: int = 3) -> dict[str, Any]:
        """A JSON-ready record (one line of ``genreflow stream --json``).

        For a multi-label model ``smoothed`` also has ``labels``: the decision. An unusable
        window has ``"unusable": reason``, ``"label": null``, an empty ``top`` and
        ``"probabilities": null``; ``smoothed`` is null until a window had a genre.
        """
        over = {"labels": self.smoothed_labels} if self.thresholds is not None else {}
        flagged = {"unusable": self.unusable} if self.unusable is not None else {}
        smoothed = None
        if self.smoothed is not None:
            smoothed = {
                "label": self.smoothed_label,
                **over,
                "top": _top(self.labels, self.smoothed, top_k),
                "probabilities": _rounded(self.labels, self.smoothed),
            }
        classified = self.probabilities is not None
        return {
            "time": round(self.time, 3),
            "start": round(self.start, 3),
            "label": self.label,
            **flagged,
            "top": _top(self.labels, self.probabilities, top_k) if classified else [],
            "probabilities": _rounded(self.labels, self.probabilities) if classified else None,
            "smoothed": smoothed,
            "padded": self.padded,
            "final": self.final,
            "seconds": round(self.seconds, 4),
        }

    def to_line(self, *, top_k: int = 3) -> str:
        """One human-readable line: time, the top genres, the smoothed decision.

        An unusable window shows ``(no genre: REASON)`` in place of the genres.
        """
        if self.probabilities is None:
            tops = f"(no genre: {self.unusable})"
        else:
            order = np.argsort(-self.probabilities, kind="stable")[:top_k]
            tops = "  ".join(f"{self.labels[i]} {self.probabilities[i]:4.0%}" for i in order)
        flags = "".join(
            f" ({name})" for name, on in (("final", self.final), ("padded", self.padded)) if on
        )
        if self.smoothed is None:
            return f"{self.time:8.2f} s  {tops}  | smoothed: (none yet){flags}"
        if self.thresholds is not None:
            position = {name: i for i, name in enumerate(self.labels)}
            decision = ", ".join(
                f"{name} {self.smoothed[position[name]]:4.0%}" for name in self.smoothed_labels
            )
            return f"{self.time:8.2f} s  {tops}  | smoothed: {decision or '(none)'}{flags}"
        smoothed = self.smoothed[int(np.argmax(self.smoothed))]
        return (
            f"{self.time:8.2f} s  {tops}  | smoothed: {self.smoothed_label} {smoothed:4.0%}{flags}"
        )


class StreamClassifier:
    """Sliding-window genre classification of samples at the model's rate.

    Parameters
    ----------
    predictor : genreflow.prediction.predictor.Predictor
    window_seconds : float or None
        Window length; None = the model's segment length (``audio.segment_seconds``).
    hop_seconds : float
        Time between windows (one result per hop).
    smoothing : float
        Weight in (0, 1] of the newest window in the moving average of probabilities.
    """

    def __init__(
        self,
        predictor,
        *,
        window_seconds: float | None = None,
        hop_seconds: float = DEFAULT_HOP_SECONDS,
        smoothing: float = DEFAULT_SMOOTHING,
    ) -> None:
        from genreflow.core.errors import ConfigError
        from genreflow.spectrograms.logmel import SegmentGrid

        if window_seconds is None:
            window_seconds = float(predictor.info["audio"]["segment_seconds"])
        if window_seconds <= 0 or hop_seconds <= 0:
            raise ConfigError(
                f"window and hop must be > 0 s, got window {window_seconds}, hop {hop_seconds}"
            )
        if not 0 < smoothing <= 1:
            raise ConfigError(f"smoothing must be in (0, 1], got {smoothing}")
        self.predictor = predictor
        self.labels = list(predictor.labels)
        self.sample_rate = predictor.sample_rate
        self.extractor = predictor.extractor
        self.window_seconds = window_seconds
        self.hop_seconds = hop_seconds
        self.smoothing = smoothing
        audio = predictor.info["audio"]
        #: The model's ``audio.min_seconds`` and ``audio.silence_dbfs`` (windows failing them
        #: get no genre).
        self.min_seconds = float(audio.get("min_seconds") or 0.0)
        self.silence_dbfs = audio.get("silence_dbfs")
        window = max(1, round(window_seconds * self.sample_rate))
        hop = max(1, round(hop_seconds * self.sample_rate))
        self.windows = SlidingWindow(window=window, hop=hop)
        self.min_final = max(1, round(min(FINAL_MIN_SECONDS, hop_seconds / 2) * self.sample_rate))
        grid = self.extractor.grid
        # "drop": segments lie inside the window; a window of exactly one segment gives one.
        self._grid = SegmentGrid(grid.segment_frames, grid.hop_frames, "drop")
        self._smoothed: np.ndarray | None = None

    def push(self, samples: np.ndarray) -> list[WindowResult]:
        """Add samples (shape (n,), model rate); a result for every window now complete."""
        return [
            self._classify(chunk, end=end, final=False) for end, chunk in self.windows.push(samples)
        ]

    def finish(self) -> list[WindowResult]:
        """End of stream: the final partial window's result, if there is new audio for one."""
        tail = self.windows.tail(min_new=self.min_final)
        if tail is None:
            return []
        end, chunk = tail
        return [self._classify(chunk, end=end, final=True)]

    def window_segments(self, samples: np.ndarray) -> tuple[np.ndarray, bool]:
        """Log-mel segments of one window, as ``genreflow predict`` cuts a clip.

        Returns
        -------
        segments : np.ndarray, shape (k, n_mels, segment_frames)
        padded : bool
            The window was shorter than one segment and was zero-padded to it.
        """
        logmel = self.extractor.logmel
        power = logmel.power(samples)
        seg = self._grid.segment_frames
        padded = power.shape[1] < seg
        if padded:
            power = np.pad(power, ((0, 0), (0, seg - power.shape[1])))
        starts = self._grid.starts(power.shape[1])
        db = logmel.to_db(power)
        windows = np.lib.stride_tricks.sliding_window_view(db, seg, axis=1)
        return np.ascontiguousarray(windows[:, starts].transpose(1, 0, 2)), padded

    def _classify(self, samples: np.ndarray, *, end: int, final: bool) -> WindowResult:
        from genreflow.data.audio import unusable_reason

        t0 = time.perf_counter()
        unusable = unusable_reason(
            samples,
            sample_rate=self.sample_rate,
            min_seconds=self.min_seconds,
            silence_dbfs=self.silence_dbfs,
        )
        if unusable is not None:
            return WindowResult(
                time=end / self.sample_rate,
                start=(end - len(samples)) / self.sample_rate,
                probabilities=None,
                smoothed=None if self._smoothed is None else self._smoothed.copy(),
                final=final,
                seconds=time.perf_counter() - t0,
                labels=self.labels,
                thresholds=getattr(self.predictor, "thresholds", None),
                unusable=unusable,
            )
        segments, padded = self.window_segments(samples)
        probs, _ = self.predictor.clip_probabilities(segments)
        if self._smoothed is None:
            self._smoothed = probs.astype(np.float64)
        else:
            self._smoothed = self.smoothing * probs + (1 - self.smoothing) * self._smoothed
        return WindowResult(
            time=end / self.sample_rate,
            start=(end - len(samples)) / self.sample_rate,
            probabilities=probs,
            smoothed=self._smoothed.copy(),
            padded=padded,
            final=final,
            seconds=time.perf_counter() - t0,
            labels=self.labels,
            thresholds=getattr(self.predictor, "thresholds", None),
        )


def classify_stream(
    source: ByteSource,
    predictor,
    *,
    format: str = "auto",
    rate: int | None = None,
    channels: int = 1,
    window_seconds: float | None = None,
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    smoothing: float = DEFAULT_SMOOTHING,
    final: bool = True,
    on_format=None,
) -> Iterator[WindowResult]:
    """Classify ``source`` window by window, yielding each result as soon as it is ready.

    Parameters
    ----------
    source : ByteSource
    predictor : genreflow.prediction.predictor.Predictor
    format, rate, channels
        See :func:`open_pcm`.
    window_seconds, hop_seconds, smoothing
        See :class:`StreamClassifier`.
    final : bool
        Yield the final partial window when the stream ends between hops.
    on_format : callable, optional
        Called with the :class:`~genreflow.prediction.pcm.PcmFormat` once it is known (for a log line).

    Yields
    ------
    WindowResult
    """
    classifier = StreamClassifier(
        predictor, window_seconds=window_seconds, hop_seconds=hop_seconds, smoothing=smoothing
    )
    fmt = open_pcm(source, format=format, rate=rate, channels=channels)
    if on_format is not None:
        on_format(fmt)
    for samples in stream_samples(source, fmt, out_rate=classifier.sample_rate):
        yield from classifier.push(samples)
    if final:
        yield from classifier.finish()


def _top(labels: list[str], probs: np.ndarray, k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[: max(1, k)]
    return [{"label": labels[i], "probability": round(float(probs[i]), 6)} for i in order]


def _rounded(labels: list[str], probs: np.ndarray) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(labels, probs, strict=True)}
