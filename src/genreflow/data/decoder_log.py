"""Decoder messages: libsndfile's errors in words, and libmpg123's stderr chatter kept quiet."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator


def decoder_message(exc: BaseException) -> str:
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


def cut_data_chunk(log: str) -> tuple[int, int] | None:
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
