"""MPEG audio (MP3) helpers for decoding: find the first frame, and feed libsndfile a pipe.

libsndfile never reads an MP3 past the length its header estimates, and without a Xing/Info
frame that estimate is a guess from the file size and the first frame's bitrate. Fed through a
pipe from its first audio frame on, the same stream has no length and is decoded to its end.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: Bytes searched for the first MPEG audio frame after the ID3v2 tags.
_MPEG_SEARCH_BYTES = 64 * 1024


def read_mpeg_pipe(
    *,
    path: Path,
    start: int,
    rate: int,
    channels: int,
    read: Callable[[Any], np.ndarray],
) -> np.ndarray | None:
    """Decode the MPEG audio of ``path`` from byte ``start`` on, fed to libsndfile through a pipe.

    Parameters
    ----------
    path : Path
    start : int
        Byte offset of the first audio frame (:func:`mpeg_stream_start`).
    rate, channels : int
        What libsndfile found in the file: the piped stream must agree.
    read : callable
        Reads the open ``soundfile.SoundFile`` to its end (the caller's frame limit included).

    Returns
    -------
    np.ndarray or None
        ``read``'s frames; None when libsndfile does not take the piped stream for the same
        MP3, or fails on it (the caller then decodes the file itself).
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
                return read(fh)
        except (sf.LibsndfileError, RuntimeError):
            return None
    finally:
        os.close(read_fd)  # a feeder still writing gets EPIPE and stops
        feeder.join()


def _feed_pipe(path: Path, start: int, fd: int) -> None:
    """Thread body: write ``path`` from byte ``start`` on into pipe ``fd``, then close it."""
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


def mpeg_frame(data: bytes, i: int) -> tuple[int, int, int, int, int] | None:
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


def looks_like_mpeg(head: bytes) -> bool:
    """Whether a file's first bytes are an ID3v2 tag or an MPEG audio frame sync."""
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def mpeg_stream_start(path: Path) -> int | None:
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
        frame = mpeg_frame(data, i)
        if frame is None:
            continue
        length, version, layer, rate, mode = frame
        following = mpeg_frame(data, i + length)
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
