"""Decode an audio file into a mono float32 signal at the configured sample rate.

Every reason a clip cannot be used (unsupported format, empty, corrupt, too short, silent) is an
:class:`~genreflow.errors.AudioError` carrying the path and a one-line reason, so callers can
record it and carry on with the next clip.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreflow.errors import AudioError

#: Extensions soundfile's bundled libsndfile decodes without ffmpeg.
SUPPORTED_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")


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
    """

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    source_channels: int
    bytes_in: int
    seconds: dict = field(default_factory=dict)

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
        Reject files longer than this (checked from the header, before decoding).

    Returns
    -------
    DecodedAudio

    Raises
    ------
    AudioError
        With the path and the reason: unsupported, empty, undecodable, non-finite, too long,
        too short or silent.
    """
    import soundfile as sf

    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise AudioError(
            path,
            f"unsupported format '{ext or '(none)'}' (supported: {' '.join(SUPPORTED_EXTENSIONS)})",
        )
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(path, f"cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioError(path, "empty file (0 bytes)")

    t0 = time.perf_counter()
    try:
        with sf.SoundFile(path) as fh:
            source_rate, channels, frames = fh.samplerate, fh.channels, fh.frames
            cut = _cut_data_chunk(fh.extra_info)
            if cut is not None:
                raise AudioError(
                    path,
                    f"truncated: header says {cut[0]} bytes of audio data, the file holds {cut[1]}",
                )
            if max_seconds is not None and frames > max_seconds * source_rate:
                raise AudioError(
                    path, f"too long: {frames / source_rate:.1f} s (maximum {max_seconds:g} s)"
                )
            data = fh.read(dtype="float32", always_2d=True)
    except AudioError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(path, f"cannot decode: {_short(exc)}") from None
    if data.shape[0] == 0:
        raise AudioError(path, "no audio samples (truncated or empty stream)")
    if data.shape[0] < frames * 0.99:
        # libsndfile stops at the end of the data; a header promising more means a cut-off file.
        raise AudioError(
            path, f"truncated: header says {frames} frames, file holds {data.shape[0]}"
        )
    samples = data.mean(axis=1, dtype=np.float32) if channels > 1 else data[:, 0]
    if not np.isfinite(samples).all():
        raise AudioError(path, "cannot decode: non-finite samples (NaN or Inf)")
    t1 = time.perf_counter()

    if source_rate != sample_rate:
        import soxr

        samples = soxr.resample(samples, source_rate, sample_rate, quality="HQ").astype(np.float32)
    t2 = time.perf_counter()

    duration = len(samples) / sample_rate
    if duration < min_seconds:
        raise AudioError(path, f"too short: {duration:.2f} s (minimum {min_seconds:g} s)")
    if silence_dbfs is not None:
        level = rms_dbfs(samples)
        if level < silence_dbfs:
            raise AudioError(
                path, f"silent: RMS {level:.1f} dBFS (threshold {silence_dbfs:g} dBFS)"
            )
    return DecodedAudio(
        samples=np.ascontiguousarray(samples, dtype=np.float32),
        sample_rate=sample_rate,
        source_rate=source_rate,
        source_channels=channels,
        bytes_in=size,
        seconds={"decode": t1 - t0, "resample": t2 - t1},
    )


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level of ``samples`` (shape (n,)) in dB relative to full scale; ``-inf`` for digital silence."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20.0 * np.log10(rms) if rms > 0 else float("-inf")


#: libsndfile's log line for a WAV/AIFF ``data`` chunk or AU data size that the file cannot hold.
_CUT_DATA = re.compile(r"^\s*(?:data|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _cut_data_chunk(log: str) -> tuple[int, int] | None:
    """``(promised, present)`` data bytes when the header promises more than the file holds.

    libsndfile quietly shortens such a file to the samples present (so ``frames`` looks
    fine) and only notes it in its log. A header promising less than present, or the sizes
    0 and 0xFFFFFFFF that streaming writers use for "unknown", is not a cut file.
    """
    for match in _CUT_DATA.finditer(log or ""):
        promised, present = int(match.group(1)), int(match.group(2))
        if present < promised < 0xFFFFFFFF:
            return promised, present
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
