"""Real-time genre classification of a live audio stream (``genreflow stream``).

The module reads in the order the audio meets its pieces:

1. Bytes to samples. :class:`ByteSource` reads bytes as they arrive from a pipe, or from a
   file that is still being written (``follow``: at its end, wait for it to grow until it has
   not grown for a while). :func:`read_wav_header` takes a WAV header off the front of the
   stream (streaming WAVs, whose sizes are 0 or 0xFFFFFFFF, included); :class:`PcmDecoder`
   turns the bytes that follow, or headerless raw PCM, into mono float32, whatever the chunk
   boundaries. :class:`StreamResampler` brings the audio to the model's rate with soxr's
   streaming resampler; :func:`stream_samples` chains the three.
2. Windows. :class:`SlidingWindow` cuts windows of ``window`` samples every ``hop`` samples
   from chunks of any size; :class:`WindowResult` is one window's result (its own
   probabilities and the smoothed decision), printed as a line or JSON.
3. Classification. :class:`StreamClassifier` turns each window into log-mel segments (the
   model's segment length and hop, as in ``genreflow predict``), calls
   :meth:`~genreflow.prediction.predictor.Predictor.predict_segments` once, averages the
   segments and updates an exponential moving average of the probabilities: the smoothed
   decision (the most probable genre; for a multi-label model, also every genre whose
   smoothed probability reaches its threshold from ``genreflow.json``).
   :func:`classify_stream` runs the whole chain and yields one :class:`WindowResult` per hop;
   :func:`run_stream` is the command: load the model, classify, write the lines.

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

import os
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from genreflow.core.errors import AudioError

#: Bytes read per system call: small enough to pass audio on as it arrives.
READ_BYTES = 16384

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


class ByteSource:
    """Bytes from a file descriptor, as soon as they arrive.

    Parameters
    ----------
    fd : int
        A pipe, a terminal or a regular file.
    name : str
        Shown in errors (``<stdin>`` or the path).
    follow : bool
        At the end of the data, wait for more (a file still being written) instead of stopping;
        the stream ends when nothing new arrived for ``idle_timeout`` seconds.
    idle_timeout : float
        Seconds without growth that end a followed file.
    poll : float
        Seconds between checks for growth.
    """

    def __init__(
        self,
        fd: int,
        *,
        name: str = "<stdin>",
        follow: bool = False,
        idle_timeout: float = 2.0,
        poll: float = 0.05,
    ) -> None:
        self.fd = fd
        self.name = name
        self.follow = follow
        self.idle_timeout = idle_timeout
        self.poll = poll
        self.bytes_read = 0
        self._pushback = b""

    @classmethod
    def open(cls, path: str, *, follow: bool = False, idle_timeout: float = 2.0) -> ByteSource:
        """The stream of ``path`` (``-``: standard input), for use in a ``with`` block.

        With ``follow``, a file that does not exist yet is waited for up to ``idle_timeout``
        seconds (a recorder that starts a moment later).

        Raises
        ------
        AudioError
            The file cannot be opened (or did not appear in time).
        """
        if path == "-":
            # A duplicate, so that closing the source leaves sys.stdin alone.
            fd = os.dup(sys.stdin.buffer.fileno())
            return cls(fd, name="<stdin>", follow=follow, idle_timeout=idle_timeout)
        deadline = time.monotonic() + (idle_timeout if follow else 0)
        while True:
            try:
                fd = os.open(path, os.O_RDONLY)
                break
            except FileNotFoundError:
                if time.monotonic() >= deadline:
                    raise AudioError(path, "cannot read: no such file") from None
                time.sleep(0.05)
            except OSError as exc:
                raise AudioError(path, f"cannot read: {exc.strerror or exc}") from None
        return cls(fd, name=path, follow=follow, idle_timeout=idle_timeout)

    def close(self) -> None:
        """Close the file descriptor."""
        os.close(self.fd)

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def read(self, n: int = READ_BYTES) -> bytes:
        """Up to ``n`` bytes, as soon as any are there; ``b""`` at the end of the stream."""
        if self._pushback:
            data, self._pushback = self._pushback[:n], self._pushback[n:]
            return data
        idle_since = None
        while True:
            data = os.read(self.fd, n)
            if data or not self.follow:
                self.bytes_read += len(data)
                return data
            now = time.monotonic()
            idle_since = idle_since if idle_since is not None else now
            if now - idle_since >= self.idle_timeout:
                return b""
            time.sleep(self.poll)

    def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes, fewer only at the end of the stream."""
        parts, got = [], 0
        while got < n:
            data = self.read(n - got)
            if not data:
                break
            parts.append(data)
            got += len(data)
        return b"".join(parts)

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of the stream (after peeking at a header)."""
        self._pushback = data + self._pushback


@dataclass(frozen=True)
class PcmFormat:
    """Layout of interleaved PCM samples.

    Attributes
    ----------
    sample_rate : int
    channels : int
    sample_bytes : int
        1 (unsigned 8-bit), 2, 3, 4 (signed integers) or 4, 8 (floats).
    floating : bool
        IEEE floats rather than integers.
    data_bytes : int or None
        Length of the audio data, or None to read to the end of the stream.
    """

    sample_rate: int
    channels: int
    sample_bytes: int
    floating: bool = False
    data_bytes: int | None = None

    def describe(self) -> str:
        kind = f"float{8 * self.sample_bytes}" if self.floating else f"{8 * self.sample_bytes}-bit"
        layout = "mono" if self.channels == 1 else f"{self.channels} channels"
        return f"{kind} {layout} at {self.sample_rate} Hz"


def read_wav_header(source: ByteSource, *, trust_size: bool = True) -> PcmFormat:
    """Read a RIFF/WAVE (or RF64) header up to the start of the audio data.

    Parameters
    ----------
    source : ByteSource
        Positioned at the first byte of the file.
    trust_size : bool
        Stop at the data length the header gives. False reads to the end of the stream (a
        file still being written, whose header is updated as it grows).

    Returns
    -------
    PcmFormat
        ``data_bytes`` is None for streaming WAVs (length 0 or 0xFFFFFFFF) or when not
        ``trust_size``.

    Raises
    ------
    AudioError
        Not a WAV stream, a header cut short, or an encoding other than integer PCM/float.
    """
    head = source.read_exact(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise AudioError(source.name, "not a WAV stream (no RIFF/WAVE header); use --format raw")
    fmt = None
    while True:
        chunk = source.read_exact(8)
        if len(chunk) < 8:
            raise AudioError(source.name, "WAV header cut short: no data chunk")
        chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if chunk_id == b"data":
            break
        if size > 1 << 20:
            raise AudioError(source.name, f"WAV header chunk {chunk_id!r} is implausibly large")
        body = source.read_exact(size + (size & 1))
        if len(body) < size:
            raise AudioError(source.name, f"WAV header cut short in chunk {chunk_id!r}")
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(body, source.name)
    if fmt is None:
        raise AudioError(source.name, "WAV stream has no fmt chunk before its data")
    tag, channels, rate, bits = fmt
    data_bytes = None if (size in _UNKNOWN_SIZES or head[:4] == b"RF64" or not trust_size) else size
    return PcmFormat(
        sample_rate=rate,
        channels=channels,
        sample_bytes=bits // 8,
        floating=tag == _WAVE_FORMAT_FLOAT,
        data_bytes=data_bytes,
    )


def _parse_fmt(body: bytes, name: str) -> tuple[int, int, int, int]:
    if len(body) < 16:
        raise AudioError(name, "WAV fmt chunk too short")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]  # first two bytes of the sub-format GUID
    valid = {_WAVE_FORMAT_PCM: (8, 16, 24, 32), _WAVE_FORMAT_FLOAT: (32, 64)}
    if tag not in valid or bits not in valid[tag]:
        raise AudioError(
            name,
            f"unsupported WAV encoding (format tag {tag:#06x}, {bits} bits); "
            "stream 8/16/24/32-bit integer PCM or 32/64-bit float",
        )
    if channels < 1 or rate < 1:
        raise AudioError(name, f"invalid WAV format: {channels} channels at {rate} Hz")
    return tag, channels, rate, bits


class PcmDecoder:
    """Interleaved PCM bytes -> mono float32 in [-1, 1], across arbitrary chunk boundaries.

    Parameters
    ----------
    fmt : PcmFormat
    """

    def __init__(self, fmt: PcmFormat) -> None:
        self.fmt = fmt
        self.frame_bytes = fmt.sample_bytes * fmt.channels
        self._rest = b""

    def decode(self, data: bytes) -> np.ndarray:
        """The whole frames in ``self``'s leftover bytes + ``data``, shape (n,), float32."""
        data = self._rest + data
        usable = len(data) - len(data) % self.frame_bytes
        self._rest = data[usable:]
        samples = self._to_float(data[:usable])
        if self.fmt.channels > 1:
            samples = samples.reshape(-1, self.fmt.channels).mean(axis=1, dtype=np.float32)
        return samples

    @property
    def leftover(self) -> int:
        """Bytes of an incomplete frame held back (dropped if the stream ends there)."""
        return len(self._rest)

    def _to_float(self, raw: bytes) -> np.ndarray:
        width = self.fmt.sample_bytes
        if self.fmt.floating:
            return np.frombuffer(raw, dtype=f"<f{width}").astype(np.float32)
        if width == 1:
            return (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
        if width == 3:
            b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            ints = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)  # sign from the top byte
            return (ints >> 8).astype(np.float32) / float(1 << 23)
        ints = np.frombuffer(raw, dtype=f"<i{width}")
        return ints.astype(np.float32) / float(1 << (8 * width - 1))


class StreamResampler:
    """soxr's streaming resampler (``soxr.ResampleStream``), or a pass-through at equal rates.

    Parameters
    ----------
    in_rate, out_rate : int
    """

    def __init__(self, *, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = None
        if in_rate != out_rate:
            import soxr

            self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")

    def process(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        """Resample the next chunk, shape (n,) -> (m,); ``last=True`` flushes the filter."""
        if self._stream is None:
            return samples
        return self._stream.resample_chunk(np.ascontiguousarray(samples, np.float32), last=last)


def open_pcm(
    source: ByteSource,
    *,
    format: str = "auto",
    rate: int | None = None,
    channels: int = 1,
) -> PcmFormat:
    """Work out the stream's PCM layout: from its WAV header, or raw s16le as given.

    Parameters
    ----------
    source : ByteSource
    format : {"auto", "wav", "raw"}
        ``auto`` peeks at the first four bytes for ``RIFF``/``RF64``.
    rate : int or None
        Sample rate of raw input (required for it).
    channels : int
        Channels of raw input.
    """
    if format == "auto":
        head = source.read_exact(4)
        source.unread(head)
        format = "wav" if head in (b"RIFF", b"RF64") else "raw"
    if format == "wav":
        return read_wav_header(source, trust_size=not source.follow)
    if rate is None:
        raise AudioError(source.name, "raw PCM needs its sample rate (--rate)")
    return PcmFormat(sample_rate=rate, channels=channels, sample_bytes=2)


def stream_samples(source: ByteSource, fmt: PcmFormat, *, out_rate: int) -> Iterator[np.ndarray]:
    """Mono float32 chunks at ``out_rate`` as the bytes arrive, until the stream ends."""
    decoder = PcmDecoder(fmt)
    resampler = StreamResampler(in_rate=fmt.sample_rate, out_rate=out_rate)
    remaining = fmt.data_bytes
    while remaining is None or remaining > 0:
        data = source.read(READ_BYTES if remaining is None else min(READ_BYTES, remaining))
        if not data:
            break
        if remaining is not None:
            remaining -= len(data)
        samples = resampler.process(decoder.decode(data))
        if samples.size:
            yield samples
    tail = resampler.process(np.zeros(0, np.float32), last=True)
    if tail.size:
        yield tail


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


def _top(labels: list[str], probs: np.ndarray, k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[: max(1, k)]
    return [{"label": labels[i], "probability": round(float(probs[i]), 6)} for i in order]


def _rounded(labels: list[str], probs: np.ndarray) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(labels, probs, strict=True)}


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
        Called with the :class:`PcmFormat` once it is known (for a log line).

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
