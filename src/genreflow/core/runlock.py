"""One run per output folder: an advisory lock held for as long as a stage writes there.

Two runs writing the same ``--out`` at once (a job resubmitted while the first still runs, two
sweeps pointed at one folder) would interleave shards, journals and checkpoints, and the later
marker would vouch for a mix. :func:`output_lock` takes a POSIX record lock (``fcntl.lockf``)
on ``<folder>/.genreflow.lock`` and writes its holder there (command, host, PID, start time);
a second run refuses at once, naming that holder. The kernel (or the NFS lock manager)
releases the lock when its process ends however it ends, so a run killed by ``SIGKILL``, a
time limit or a lost node never blocks the next one. POSIX locks rather than ``flock``:
Lustre and NFS support them across nodes (Lustre's ``flock`` needs a mount option). They
belong to the process, so the holder must not open the lock file a second time: closing any
descriptor of it would drop the lock. On a file system without locking the run goes on with a
warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from genreflow.core.errors import StageError

log = logging.getLogger(__name__)

#: The lock file inside the output folder, there while a run holds it (and after a kill).
LOCK_FILE = ".genreflow.lock"

#: ``lockf`` errors meaning "another process holds it" (POSIX allows either).
_HELD = (errno.EACCES, errno.EAGAIN)
#: ``lockf`` errors meaning "this file system does not lock".
_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, *, command: str) -> Iterator[Path]:
    """Hold the lock of ``folder`` (created if missing) for the block; yields the lock file.

    Parameters
    ----------
    folder : path-like
        The run's output folder.
    command : str
        What holds it, shown to a second run (``genreflow spectrograms``).

    Raises
    ------
    StageError
        Another live process holds the folder: names it (command, PID, host, since when).
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    fd = _locked_file(path, folder=folder)
    try:
        holder = {
            "command": command,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        # Only for the message of a second run: a full disk fails the run where it writes
        # its outputs, with the name of the file that did not fit.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(holder, sort_keys=True) + "\n").encode(), 0)
        yield path
        # Removed while still locked: a run that opened it meanwhile finds it unlinked
        # (_locked_file) and locks the next one instead.
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)  # closing releases the lock


def _locked_file(path: Path, *, folder: Path) -> int:
    """An open descriptor of ``path`` holding its lock (the file created if missing)."""
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise StageError(f"{path}: cannot create the run lock: {exc.strerror or exc}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _HELD:
                holder = _holder(fd)
                os.close(fd)
                raise StageError(
                    f"{folder} is in use by another run ({holder}); wait for it to end or "
                    "write elsewhere. A run that was killed releases the folder by itself"
                ) from None
            if exc.errno not in _UNSUPPORTED:
                os.close(fd)
                raise
            log.warning("%s: the file system does not lock; not guarding %s", path, folder)
            return fd
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed it as we opened it: lock the new one


def _holder(fd: int) -> str:
    """The holder recorded in the lock file, in words."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"{info['command']}, PID {info['pid']} on {info['host']}, since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its holder did not record itself yet"
