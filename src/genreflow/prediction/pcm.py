"""Live PCM audio for ``genreflow stream``: bytes as they arrive -> mono float32 at the model's rate.

:class:`ByteSource` reads bytes as they arrive from a pipe, or from a file that is still being
written (``follow``: at its end, wait for it to grow until it has not grown for a while).
:func:`read_wav_header` takes a WAV header off the front of the stream (streaming WAVs, whose
sizes are 0 or 0xFFFFFFFF, included); :class:`PcmDecoder` turns the bytes that follow, or
headerless raw PCM, into mono float32, whatever the chunk boundaries. :class:`StreamResampler`
brings the audio to the model's rate with soxr's streaming resampler; :func:`stream_samples`
chains the three.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass

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
