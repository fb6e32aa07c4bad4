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
(file descriptor 2); they are kept off it (:func:`quiet_decoder`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreflow.core.errors import AudioError

#: Extensions soundfile's bundled libsndfile decodes without ffmpeg.
SUPPORTED_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")

#: libsndfile formats whose header only estimates the number of frames.
ESTIMATED_LENGTH_FORMATS = ("MP3", "OGG")

#: Frames read per call when decoding to the end of a stream.
READ_BLOCK_FRAMES = 1 << 18

#: A frame count this large means "unknown" (libsndfile's SF_COUNT_MAX for streams).
_UNKNOWN_FRAMES = 1 << 62

#: Bytes searched for the first MPEG audio frame after the ID3v2 tags.
_MPEG_SEARCH_BYTES = 64 * 1024


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
    mpeg = ext == ".mp3" or _looks_like_mpeg(head)
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
            cut = _cut_data_chunk(fh.extra_info)
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
                start = _mpeg_stream_start(path) if fmt == "MP3" else None
                data = None if start is not None else _read_to_end(fh, limit=limit)
        if data is None:
            # No Xing/Info frame: the length is a guess from the file size, which libsndfile
            # would not read past. A pipe has no size: it decodes the stream to its end.
            data = _read_mpeg_pipe(path, start, rate=rate, channels=channels, limit=limit)
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
        raise AudioError(path, f"cannot decode: {_decoder_message(exc)}") from None
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


def _read_mpeg_pipe(
    path: Path, start: int, *, rate: int, channels: int, limit: int | None
) -> np.ndarray | None:
    """Decode the MPEG audio of ``path`` from byte ``start`` on, fed to libsndfile through a pipe.

    Returns None when libsndfile does not take the piped stream for the same MP3, or fails on
    it (the caller then decodes the file itself).
    """
    import soundfile as sf

    read_fd, write_fd = os.pipe()
    feeder = threading.Thread(
        target=_feed_pipe, args=(path, start, write_fd), name="genreflow-mp3-pipe", daemon=True
    )
    feeder.start()
    try:
        try:
            with sf.SoundFile(read_fd, closefd=False) as fh:
                if (fh.format, fh.samplerate, fh.channels) != ("MP3", rate, channels):
                    return None
                return _read_to_end(fh, limit=limit)
        except (sf.LibsndfileError, RuntimeError):
            return None
    finally:
        os.close(read_fd)  # a feeder still writing gets EPIPE and stops
        feeder.join()


def _feed_pipe(path: Path, start: int, fd: int) -> None:
    try:
        with open(path, "rb") as src:
            src.seek(start)
            while chunk := src.read(1 << 16):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
    except OSError:
        pass  # the reader stopped early (EPIPE), or the file went away: the reader sees EOF
    finally:
        os.close(fd)


# MPEG audio frame headers: bitrates (kbit/s) by (MPEG-1?, layer bits) and bitrate index,
# sample rates by version bits and rate index.
_MPEG_BITRATES = {
    (True, 3): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 1): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 1): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame(data: bytes, i: int) -> tuple[int, int, int, int, int] | None:
    """``(length, version, layer, rate, channel mode)`` of an MPEG audio frame header at ``i``."""
    if i + 4 > len(data):
        return None
    b0, b1, b2, b3 = data[i : i + 4]
    if b0 != 0xFF or b1 & 0xE0 != 0xE0:
        return None
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
    if version == 1 or layer == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    rate = _MPEG_RATES[version][rate_index]
    bits = _MPEG_BITRATES[(version == 3, layer)][bitrate_index] * 1000
    if layer == 3:  # Layer I
        length = (12 * bits // rate + padding) * 4
    elif layer == 2 or version == 3:  # Layer II, Layer III of MPEG-1
        length = 144 * bits // rate + padding
    else:  # Layer III of MPEG-2 and 2.5
        length = 72 * bits // rate + padding
    return length, version, layer, rate, b3 >> 6


def _looks_like_mpeg(head: bytes) -> bool:
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _mpeg_stream_start(path: Path) -> int | None:
    """Byte offset of the first MPEG audio frame of ``path``, or None to decode it as a file.

    None when the first frame is a Xing/Info (or VBRI) frame, whose frame count is exact and
    which also carries the encoder delay that libsndfile trims, or when no frame is found in
    the first 64 KiB after the ID3v2 tags.
    """
    with open(path, "rb") as fh:
        offset = 0
        while True:  # ID3v2 tags, possibly several, each maybe with a footer
            fh.seek(offset)
            tag = fh.read(10)
            if len(tag) < 10 or tag[:3] != b"ID3":
                break
            size = 0
            for byte in tag[6:10]:
                size = (size << 7) | (byte & 0x7F)
            offset += 10 + size + (10 if tag[5] & 0x10 else 0)
        fh.seek(offset)
        data = fh.read(_MPEG_SEARCH_BYTES + 2 * 1441 + 4)
    for i in range(min(len(data), _MPEG_SEARCH_BYTES)):
        frame = _mpeg_frame(data, i)
        if frame is None:
            continue
        length, version, layer, rate, mode = frame
        following = _mpeg_frame(data, i + length)
        if i + length != len(data) and (following is None or following[1:4] != frame[1:4]):
            continue
        if layer == 1:  # Layer III: a Xing/Info tag follows the side information
            side = (17 if mode == 3 else 32) if version == 3 else (9 if mode == 3 else 17)
            if data[i + 4 + side : i + 8 + side] in (b"Xing", b"Info"):
                return None
            if data[i + 36 : i + 40] == b"VBRI":
                return None
        return offset + i
    return None


# --------------------------------------------------------------------------- messages


def _decoder_message(exc: BaseException) -> str:
    """libsndfile's error in words that fit what happened to a file that exists."""
    text = _short(exc)
    if "Format not recognised" in text or "not a regular file" in text:
        # libmpg123 finds no MPEG frame in a .mp3 and libsndfile then blames the file system.
        return "not a recognised audio format"
    return re.sub(r"^Error opening \S+: ", "", text)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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


# --------------------------------------------------------------------------- stderr

#: What libmpg123 prints on stderr while decoding: ``Note: Illegal Audio-MPEG-Header ...``,
#: ``Warning: Xing stream size off ...``, ``[src/libmpg123/layer3.c:...] error: ...``.
DECODER_CHATTER = re.compile(r"^(?:Note: |Warning: |Error: |\[[^\]]*mpg123[^\]]*\] )")

_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_decoder() -> Iterator[None]:
    """Keep libmpg123's messages off the process's stderr (file descriptor 2) meanwhile.

    C libraries write to descriptor 2 directly, so it is pointed at a temporary file while
    the block runs. Afterwards every captured line that is not decoder chatter
    (:data:`DECODER_CHATTER`), e.g. a log line another thread wrote meanwhile, is written to
    stderr after all. One block at a time (a lock): concurrent decoders take turns.
    """
    with _STDERR_LOCK:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no stderr at all: nothing to protect
            yield
            return
        with tempfile.TemporaryFile() as capture:
            os.dup2(capture.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                _pass_on(capture.read())


def _pass_on(captured: bytes) -> None:
    """Write the lines of ``captured`` that are not decoder chatter to stderr."""
    lines = captured.decode("utf-8", "replace").splitlines(keepends=True)
    kept = "".join(line for line in lines if not DECODER_CHATTER.match(line))
    if kept:
        with contextlib.suppress(OSError):
            os.write(2, kept.encode("utf-8", "replace"))
