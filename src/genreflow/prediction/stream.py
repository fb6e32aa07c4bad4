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
4. :class:`~genreflow.prediction.windows.SlidingWindow` cuts windows of ``window`` samples every
   ``hop`` samples.
5. :class:`StreamClassifier` turns each window into log-mel segments (the model's segment
   length and hop, as in ``genreflow predict``), calls
   :meth:`~genreflow.prediction.predictor.Predictor.predict_segments` once, averages the segments and
   updates an exponential moving average of the probabilities: the smoothed decision (the
   most probable genre; for a multi-label model, also every genre whose smoothed probability
   reaches its threshold from ``genreflow.json``).

:func:`classify_stream` runs the whole chain and yields one
:class:`~genreflow.prediction.windows.WindowResult` per hop.
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
from typing import IO

import numpy as np

from genreflow.prediction.pcm import ByteSource, open_pcm, stream_samples
from genreflow.prediction.windows import SlidingWindow, WindowResult

#: Default time between windows, seconds.
DEFAULT_HOP_SECONDS = 1.0

#: Default weight of the newest window in the moving average (1 = no smoothing).
DEFAULT_SMOOTHING = 0.5

#: The final partial window is reported only if it adds at least this much new audio
#: (or half a hop, if that is less): a few samples left over by the resampler are no news.
FINAL_MIN_SECONDS = 0.1


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
    classifier: StreamClassifier,
    *,
    format: str = "auto",
    rate: int | None = None,
    channels: int = 1,
    final: bool = True,
    on_format=None,
) -> Iterator[WindowResult]:
    """Classify ``source`` window by window, yielding each result as soon as it is ready.

    Parameters
    ----------
    source : ByteSource
    classifier : StreamClassifier
        The model, window, hop and smoothing.
    format, rate, channels
        See :func:`open_pcm`.
    final : bool
        Yield the final partial window when the stream ends between hops.
    on_format : callable, optional
        Called with the :class:`~genreflow.prediction.pcm.PcmFormat` once it is known (for a log line).

    Yields
    ------
    WindowResult
    """
    fmt = open_pcm(source, format=format, rate=rate, channels=channels)
    if on_format is not None:
        on_format(fmt)
    for samples in stream_samples(source, fmt, out_rate=classifier.sample_rate):
        yield from classifier.push(samples)
    if final:
        yield from classifier.finish()


def run_stream(
    source: ByteSource,
    *,
    model_dir,
    format: str = "auto",
    rate: int | None = None,
    channels: int = 1,
    window_seconds: float | None = None,
    hop_seconds: float = DEFAULT_HOP_SECONDS,
    smoothing: float = DEFAULT_SMOOTHING,
    final: bool = True,
    top_k: int = 3,
    json_lines: bool = False,
    follow: bool = False,
    out: IO[str],
    log: IO[str],
) -> None:
    """``genreflow stream``: load the model, classify ``source``, write one line per window.

    Status lines (ready, the input's format, a window slower than the hop once, the count at
    the end) go to ``log``; results to ``out``, flushed line by line (JSON with
    ``json_lines``). Set the TensorFlow threads first: this loads the model.

    Raises
    ------
    BrokenPipeError
        ``out``'s reader went away (``| head``); the caller ends quietly.
    """
    import json

    from genreflow.prediction.predictor import Predictor

    predictor = Predictor(model_dir)
    # Built before any audio is read: a bad window, hop or smoothing fails here.
    classifier = StreamClassifier(
        predictor, window_seconds=window_seconds, hop_seconds=hop_seconds, smoothing=smoothing
    )
    # Trace the model graph now, so the first window does not pay for it.
    predictor.predict_segments(
        np.zeros((1, predictor.n_mels, predictor.extractor.segment_frames), np.float32)
    )
    print(
        f"genreflow stream: ready: model {model_dir} ({len(predictor.labels)} genres), "
        f"window {classifier.window_seconds:g} s, hop {hop_seconds:g} s, input {source.name}"
        + (" (following)" if follow else ""),
        file=log,
        flush=True,
    )

    def on_format(fmt) -> None:
        resampled = (
            f", resampled to {predictor.sample_rate} Hz"
            if fmt.sample_rate != predictor.sample_rate
            else ""
        )
        print(f"genreflow stream: input {fmt.describe()}{resampled}", file=log, flush=True)

    results = classify_stream(
        source,
        classifier,
        format=format,
        rate=rate if rate is not None else predictor.sample_rate,
        channels=channels,
        final=final,
        on_format=on_format,
    )
    count, unusable, slow, started = 0, 0, 0, time.perf_counter()
    for result in results:
        line = (
            json.dumps(result.to_dict(top_k=top_k)) if json_lines else result.to_line(top_k=top_k)
        )
        out.write(line + "\n")
        out.flush()
        count += 1
        unusable += result.unusable is not None
        if result.seconds > hop_seconds and not result.final:
            slow += 1
            if slow == 1:
                print(
                    f"genreflow stream: warning: a window took {result.seconds:.2f} s, more "
                    f"than the {hop_seconds:g} s hop; output falls behind real time "
                    "(try a longer --hop or more --threads)",
                    file=log,
                    flush=True,
                )
    without = f" ({unusable} without a genre: silent or too short)" if unusable else ""
    print(
        f"genreflow stream: {count} window(s){without} from {source.bytes_read} bytes "
        f"in {time.perf_counter() - started:.1f} s",
        file=log,
        flush=True,
    )
