"""MP3 files that real encoders and taggers produce and libsndfile misjudges, built in tmp_path.

libsndfile writes MPEG-2 Layer III at 22050 Hz with a leading Xing/Info frame, whose exact
frame count libsndfile then reports. Real files often lack that frame (other encoders, stream
rips, cutters) and carry large ID3v2 tags (cover art) in front; libsndfile's frame count is
then only libmpg123's guess from the file size and the first frame's bitrate:

- :func:`write_mp3_without_info_frame`: too LOW a guess (libsndfile stops there: 1.4 s of 15 s);
- ... with ``tag_bytes``: too HIGH a guess (the file looked truncated);
- :func:`write_mp3_with_glitch`: junk between two frames, which makes libmpg123 print
  ``Note: Illegal Audio-MPEG-Header ...`` lines on stderr while it resyncs.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050


def tone(seconds: float, *, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A harmonic tone with tremolo (varying bitrate frames in VBR), shape (n,), float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.2 / h * np.sin(2 * np.pi * 220 * h * t + rng.uniform(0, 6)) for h in (1, 2, 3))
    y = y * (0.6 + 0.4 * np.sin(2 * np.pi * 0.7 * t))
    return (y + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def write_mp3(path: Path, *, seconds: float, seed: int = 0) -> Path:
    """An MP3 as libsndfile writes it: a Xing/Info frame, then the audio frames."""
    sf.write(path, tone(seconds, seed=seed), SR, format="MP3")
    return path


def id3v2_tag(size: int) -> bytes:
    """An ID3v2.3 tag of about ``size`` bytes: one PRIV frame of junk (as cover art would be)."""
    junk = np.random.default_rng(size).bytes(size)
    body = b"genreflow-test\x00" + junk
    frame = b"PRIV" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    n = len(frame)
    synchsafe = bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])
    return b"ID3\x03\x00\x00" + synchsafe + frame


def frame_length(data: bytes, at: int) -> int:
    """Length of the MPEG-2 Layer III frame (22050 Hz) whose header starts at ``at``."""
    b1, b2 = data[at + 1], data[at + 2]
    assert data[at] == 0xFF and b1 & 0xE0 == 0xE0, f"no frame sync at {at}: {data[at : at + 4]!r}"
    assert (b1 >> 3) & 3 == 2 and (b1 >> 1) & 3 == 1, "expected MPEG-2 Layer III"
    kbps = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)[b2 >> 4]
    return 72 * kbps * 1000 // SR + ((b2 >> 1) & 1)


def without_info_frame(data: bytes) -> bytes:
    """``data`` (libsndfile's MP3) without its leading Xing/Info frame."""
    first = frame_length(data, 0)
    assert first == 208  # 64 kbit/s at 22050 Hz
    assert b"Xing" in data[:first] or b"Info" in data[:first]
    frame_length(data, first)  # the next frame starts right after it
    return data[first:]


def write_mp3_without_info_frame(path: Path, *, seconds: float, tag_bytes: int = 0) -> Path:
    """An MP3 with no Xing/Info frame, behind an ID3v2 tag of ``tag_bytes`` (0: no tag)."""
    write_mp3(path, seconds=seconds)
    audio = without_info_frame(path.read_bytes())
    path.write_bytes((id3v2_tag(tag_bytes) if tag_bytes else b"") + audio)
    return path


def write_mp3_with_glitch(path: Path, *, seconds: float) -> Path:
    """An MP3 with 300 junk bytes between two frames halfway through."""
    write_mp3(path, seconds=seconds)
    data = path.read_bytes()
    at = 0
    while at < len(data) // 2:
        at += frame_length(data, at)
    path.write_bytes(data[:at] + np.random.default_rng(5).bytes(300) + data[at:])
    return path


def is_decoder_chatter(line: str) -> bool:
    """A libmpg123 message (``Note: ...``, ``Warning: ...``, ``[src/libmpg123/...] ...``)."""
    return line.startswith(("Note:", "Warning:")) or re.match(r"\[[^\]]*mpg123", line) is not None
