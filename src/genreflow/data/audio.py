"""Decode an audio file into a mono float32 signal at the configured sample rate.

Every reason a clip cannot be used (unsupported format, missing, empty, corrupt, too short,
silent) is an :class:`~genreflow.core.errors.AudioError` carrying the path and a one-line reason, so
callers can record it and carry on with the next clip.

Lengths. A WAV/AU/FLAC header gives the exact number of frames, so a file holding fewer is
reported as truncated. An MP3 or Ogg header only *estimates* it (MP3 without a Xing/Info
frame: from the file size and the first frame's bitrate), so those files are decoded to the
end of their stream whatever the estimate says, and a difference is recorded in
:attr:`DecodedAudio.notes` instead. libsndfile never reads past its own estimate, so an MP3
without a Xing/Info frame is fed to it through a pipe, from its first audio frame on: a
stream of unknown length, which it decodes to the end.

libmpg123 (libsndfile's MP3 decoder) prints ``Note: ...`` lines on the process's stderr
(file descriptor 2); they are kept off it
(:func:`genreflow.data.decoder_log.quiet_decoder`). MPEG parsing and the pipe:
:mod:`genreflow.data.mpeg`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreflow.core.errors import AudioError
from genreflow.data.decoder_log import cut_data_chunk, decoder_message, quiet_decoder
from genreflow.data.mpeg import looks_like_mpeg, mpeg_stream_start, read_mpeg_pipe

#: Extensions soundfile's bundled libsndfile decodes without ffmpeg.
SUPPORTED_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")

#: libsndfile formats whose header only estimates the number of frames.
ESTIMATED_LENGTH_FORMATS = ("MP3", "OGG")

#: Frames read per call when decoding to the end of a stream.
READ_BLOCK_FRAMES = 1 << 18

#: A frame count this large means "unknown" (libsndfile's SF_COUNT_MAX for streams).
_UNKNOWN_FRAMES = 1 << 62


@dataclass
class DecodedAudio:
    """A decoded clip.

    Attributes
    ----------
    samples : np.ndarray, shape (n,), float32
        Mono signal at ``sample_rate``.
    sample_rate : int
    source_rate : int
        The file's own sample rate.
    source_channels : int
    bytes_in : int
        Size of the file on disk.
    seconds : dict
        Wall time spent in ``decode`` and ``resample``.
    notes : list of str
        Things worth knowing about a clip that was still usable, e.g. that an MP3 decoded to
        more or fewer frames than its header estimated.
    """

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    source_channels: int
    bytes_in: int
    seconds: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def load_audio(
    path: str | os.PathLike,
    *,
    sample_rate: int,
    min_seconds: float = 0.0,
    silence_dbfs: float | None = None,
    max_seconds: float | None = None,
) -> DecodedAudio:
    """Decode ``path``, mix to mono and resample to ``sample_rate``.

    Parameters
    ----------
    path : path-like
        A ``.wav .au .flac .ogg .mp3`` file (any channel count and rate).
    sample_rate : int
        Target rate; soxr (high quality) resamples when the file differs.
    min_seconds : float
        Reject clips shorter than this (after decoding).
    silence_dbfs : float or None
        Reject clips whose RMS level is below this many dBFS; ``None`` disables the check.
    max_seconds : float or None
        Reject files longer than this: from the header where it gives the exact length
        (WAV, AU, FLAC), before decoding; MP3 and Ogg, whose header only estimates it, are
        decoded up to this length and refused when there is more.

    Returns
    -------
    DecodedAudio

    Raises
    ------
    AudioError
        With the path and the reason: unsupported, missing, a directory, empty, not a
        recognised audio format, undecodable, truncated, non-finite, too long, too short or
        silent.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise AudioError(
            path,
            f"unsupported format '{ext or '(none)'}' (supported: {' '.join(SUPPORTED_EXTENSIONS)})",
        )
    size, head = _probe(path)
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")

    t0 = time.perf_counter()
    mpeg = ext == ".mp3" or looks_like_mpeg(head)
    with quiet_decoder() if mpeg else contextlib.nullcontext():
        data, source_rate, channels, notes = _decode(path, max_seconds=max_seconds)
    samples = data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0]
    if not np.isfinite(samples).all():
        raise AudioError(path, "cannot decode: non-finite samples (NaN or Inf)")
    t1 = time.perf_counter()

    if source_rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, source_rate, sample_rate, quality="HQ").astype(np.float32)
    t2 = time.perf_counter()

    problem = unusable_reason(
        samples, sample_rate=sample_rate, min_seconds=min_seconds, silence_dbfs=silence_dbfs
    )
    if problem is not None:
        raise AudioError(path, problem)
    return DecodedAudio(
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        sample_rate=sample_rate,
        source_rate=source_rate,
        source_channels=channels,
        bytes_in=size,
        seconds={"decode": t1 - t0, "resample": t2 - t1},
        notes=notes,
    )


def unusable_reason(
    samples: np.ndarray,
    *,
    sample_rate: int,
    min_seconds: float = 0.0,
    silence_dbfs: float | None = None,
) -> str | None:
    """Why a decoded clip is not worth classifying, or None when it is.

    The rules of ``audio.min_seconds`` and ``audio.silence_dbfs``, shared by the spectrogram
    stage (via :func:`load_audio`), ``predict``, ``serve`` and ``stream``.

    Parameters
    ----------
    samples : np.ndarray, shape (n,)
        Mono signal at ``sample_rate``.
    sample_rate : int
    min_seconds : float
        Shorter is ``"too short: ..."``.
    silence_dbfs : float or None
        An RMS level below it is ``"silent: ..."``; None disables the check.

    Returns
    -------
    str or None
        ``"too short: 0.10 s (minimum 1 s)"``, ``"silent: RMS -inf dBFS (threshold -60 dBFS)"``
        or None.
    """
    duration = len(samples) / sample_rate
    if duration < min_seconds:
        return f"too short: {duration:.2f} s (minimum {min_seconds:g} s)"
    if silence_dbfs is not None:
        level = rms_dbfs(samples)
        if level < silence_dbfs:
            return f"silent: RMS {level:.1f} dBFS (threshold {silence_dbfs:g} dBFS)"
    return None


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of ``samples`` (shape (n,)) in dB relative to full scale; ``-inf`` for digital silence."""
    if samples.size == 0:
        return float("-inf")
    # A float32 dot product (BLAS): ~9x faster than squaring in float64, and within 1e-5 dB.
    flat = np.ascontiguousarray(samples, dtype=np.float32).ravel()
    rms = math.sqrt(max(float(np.dot(flat, flat)), 0.0) / flat.size)
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


# --------------------------------------------------------------------------- decoding


def _probe(path: Path) -> tuple[int, bytes]:
    """``(size, first bytes)`` of ``path``; AudioError when it cannot be opened as a file."""
    if path.is_dir():
        raise AudioError(path, "cannot read: is a directory")
    try:
        with open(path, "rb") as fh:
            return os.fstat(fh.fileno()).st_size, fh.read(4)
    except FileNotFoundError:
        raise AudioError(path, "cannot read: no such file") from None
    except IsADirectoryError:
        raise AudioError(path, "cannot read: is a directory") from None
    except PermissionError:
        raise AudioError(path, "cannot read: permission denied") from None
    except OSError as exc:
        raise AudioError(path, f"cannot read: {exc.strerror or exc}") from None


def _decode(path: Path, *, max_seconds: float | None) -> tuple[np.ndarray, int, int, list[str]]:
    """``(frames (n, channels) float32, rate, channels, notes)`` of ``path``."""
    import soundfile as sf

    notes: list[str] = []
    start = None
    try:
        with sf.SoundFile(path) as fh:
            rate, channels, frames, fmt = fh.samplerate, fh.channels, fh.frames, fh.format
            limit = None if max_seconds is None else int(max_seconds * rate)
            cut = cut_data_chunk(fh.extra_info)
            if cut is not None:
                raise AudioError(
                    path,
                    f"truncated: header says {cut[0]} bytes of audio data, the file holds {cut[1]}",
                )
            estimated = fmt in ESTIMATED_LENGTH_FORMATS or frames >= _UNKNOWN_FRAMES
            if not estimated:
                if limit is not None and frames > limit:
                    raise AudioError(
                        path, f"too long: {frames / rate:.1f} s (maximum {max_seconds:g} s)"
                    )
                data = _read_exact(fh, path)
            else:
                start = mpeg_stream_start(path) if fmt == "MP3" else None
                data = None if start is not None else _read_to_end(fh, limit=limit)
        if data is None:
            # No Xing/Info frame: the length is a guess from the file size, which libsndfile
            # would not read past. A pipe has no size: it decodes the stream to its end.
            data = read_mpeg_pipe(
                path=path,
                start=start,
                rate=rate,
                channels=channels,
                read=functools.partial(_read_to_end, limit=limit),
            )
            if data is None:  # libsndfile would not take it from a pipe after all
                with sf.SoundFile(path) as fh:
                    data = _read_to_end(fh, limit=limit)
    except _TooLong:
        raise AudioError(
            path, f"too long: more than {max_seconds:g} s (maximum {max_seconds:g} s)"
        ) from None
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(path, f"cannot decode: {decoder_message(exc)}") from None
    except OSError as exc:  # reading the MP3's first bytes ourselves
        raise AudioError(path, f"cannot read: {exc.strerror or exc}") from None
    if data.shape[0] == 0:
        raise AudioError(path, "no audio samples (truncated or empty stream)")
    if estimated:
        if frames < _UNKNOWN_FRAMES and abs(data.shape[0] - frames) > 0.01 * frames:
            kind = "MP3" if fmt == "MP3" else "Ogg"
            notes.append(
                f"decoded {data.shape[0]} frames, the {kind} header estimated {frames} "
                "(compressed formats only estimate their length)"
            )
    elif data.shape[0] < frames * 0.99:
        # libsndfile stops at the end of the data; an exact header promising more is a cut file.
        raise AudioError(
            path, f"truncated: header says {frames} frames, file holds {data.shape[0]}"
        )
    return data, rate, channels, notes


def _read_exact(fh, path: Path) -> np.ndarray:
    """All frames of a file whose header gives the exact length, shape (n, channels), float32."""
    if fh.subtype != "PCM_16":
        return fh.read(dtype="float32", always_2d=True)
    # libsndfile turns 16-bit PCM into float as x / 32768; the same scaling in numpy gives the
    # same floats, bit for bit, ~4x faster (it is most of decoding a WAV). Big-endian AU
    # (GTZAN's format) is read by numpy too: libsndfile's byte swap costs ~3.5 ms per 30 s.
    pcm = _au_pcm16(path, frames=fh.frames, channels=fh.channels) if fh.format == "AU" else None
    if pcm is None:
        pcm = fh.read(dtype="int16", always_2d=True)
    return np.multiply(pcm, _PCM16_SCALE, dtype=np.float32)


def _au_pcm16(path: Path, *, frames: int, channels: int) -> np.ndarray | None:
    """The samples of a 16-bit PCM AU file, shape (n, channels) int16, or None if unsure."""
    with open(path, "rb") as fh:
        header = fh.read(24)
        if len(header) < 24 or header[:4] != b".snd":
            return None
        offset, _, encoding, _, file_channels = struct.unpack(">5I", header[4:24])
        if encoding != 3 or file_channels != channels or offset < 24:  # 3: 16-bit linear PCM
            return None
        fh.seek(offset)
        pcm = np.fromfile(fh, dtype=">i2", count=frames * channels)
    n = len(pcm) // channels  # a cut file holds fewer: reported as truncated by the caller
    return pcm[: n * channels].reshape(n, channels)


_PCM16_SCALE = np.float32(1.0 / 32768.0)


class _TooLong(Exception):
    """More frames than ``max_seconds`` allows came out of the decoder."""


def _read_to_end(fh, *, limit: int | None) -> np.ndarray:
    """Read ``fh`` block by block until the decoder returns no more frames.

    Parameters
    ----------
    fh : soundfile.SoundFile
    limit : int or None
        Most frames accepted: stop and raise :class:`_TooLong` as soon as there are more.

    Returns
    -------
    np.ndarray, shape (n, channels), float32
    """
    parts, total = [], 0
    while True:
        want = READ_BLOCK_FRAMES if limit is None else min(READ_BLOCK_FRAMES, limit + 1 - total)
        block = fh.read(want, dtype="float32", always_2d=True)
        if len(block) == 0:
            break
        parts.append(block)
        total += len(block)
        if limit is not None and total > limit:
            raise _TooLong
    if not parts:
        return np.zeros((0, fh.channels), np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
