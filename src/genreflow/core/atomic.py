"""Atomic file output: write to a temporary name in the same folder, then rename.

A killed job therefore never leaves a half-written file under the final name, and a full
disk is one :class:`~genreflow.core.errors.DiskFullError` naming the file instead of an
``OSError`` without a path (see :func:`reporting_full_disk`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from genreflow.core.errors import DiskFullError

#: ``errno`` values of a write that failed for want of space: a full file system, a quota.
NO_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}


@contextlib.contextmanager
def reporting_full_disk(path: str | os.PathLike) -> Iterator[None]:
    """Turn a full-disk ``OSError`` raised in the block into a :class:`DiskFullError` on ``path``.

    ``write()`` reports ``ENOSPC`` without a file name; the message names the file the block
    was writing and the space left on its file system.
    """
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise DiskFullError(no_space_message(path, exc.errno)) from None


def no_space_message(path: str | os.PathLike, code: int = errno.ENOSPC) -> str:
    """``<path>: no space left on device (<free> free ...)``: the line a full disk gets."""
    path = Path(path)
    folder = next((p for p in (path.parent, *path.parents) if p.is_dir()), None)
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free there" if folder else ""
    except OSError:
        free = ""
    return (
        f"{path}: {NO_SPACE.get(code, os.strerror(code))}"
        + (f" ({free})" if free else "")
        + "; free some space and run again: finished work is kept and the rerun resumes"
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the final suffix (``.name.tmp-XXXX.npy``) so that libraries
    which append an extension (``np.save``, ``savefig``) write exactly where we expect.
    """
    path = Path(path)
    with reporting_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600; outputs on a shared cluster file system must stay readable by the
    # group's other jobs, so apply the usual umask-derived mode instead.
    os.chmod(tmp_path, 0o666 & ~_UMASK)
    try:
        with reporting_full_disk(path):
            yield tmp_path
            _fsync_file(tmp_path)
            os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """``open()`` that only shows the file under ``path`` once it is completely written."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=_json_default)
        fh.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths: the common non-JSON types in our records.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _read_umask() -> int:
    # os.umask can only be read by setting it; do it once, at import, before any threads exist.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
