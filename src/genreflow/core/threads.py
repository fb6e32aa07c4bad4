"""CPU thread settings for TensorFlow and the BLAS/OpenMP libraries beneath it.

Two steps, because the two kinds of setting take effect at different times:

1. :func:`set_thread_env` writes ``OMP_NUM_THREADS``, ``TF_NUM_INTRAOP_THREADS``, ... into the
   environment. OpenMP, MKL and OpenBLAS read them once, when TensorFlow (or numpy) first loads
   them, so this must run *before* ``import tensorflow``.
2. :func:`configure_tensorflow` calls ``tf.config.threading.set_{intra,inter}_op_parallelism_threads``.
   TensorFlow only accepts that before its runtime starts (before the first op), and reports
   what is actually in force through the matching ``get_*`` functions, which is what we record.

This module imports only the standard library at the top, so commands can use it before
TensorFlow is loaded.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: Environment variables that size the thread pools of TensorFlow and the libraries it loads.
INTRA_OP_ENV = (
    "TF_NUM_INTRAOP_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
INTER_OP_ENV = ("TF_NUM_INTEROP_THREADS",)
#: The OpenMP/BLAS pool sizes that ``genreflow spectrograms`` sets per rank (no TensorFlow there)
#: and records in ``timings.json``.
BLAS_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_thread_env(*, intra_op: int, inter_op: int) -> dict[str, str]:
    """Put the thread counts into ``os.environ`` (call before importing TensorFlow).

    Parameters
    ----------
    intra_op : int
        Threads inside one op (matrix products, convolutions); also the OpenMP/BLAS pool size.
    inter_op : int
        Independent ops run at the same time.

    Returns
    -------
    dict
        The variables that were set, ``{name: value}``.
    """
    if intra_op < 1 or inter_op < 1:
        from genreflow.core.errors import ConfigError

        raise ConfigError(
            f"thread counts must be >= 1, got intra_op={intra_op}, inter_op={inter_op}"
        )
    env = {name: str(intra_op) for name in INTRA_OP_ENV}
    env.update({name: str(inter_op) for name in INTER_OP_ENV})
    os.environ.update(env)
    quiet_tensorflow()
    return env


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ INFO lines (call before importing TensorFlow).

    The CPU-feature and oneDNN notices drown the epoch lines in batch logs; warnings and errors
    still show. A user's own ``TF_CPP_MIN_LOG_LEVEL`` wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def configure_tensorflow(*, intra_op: int, inter_op: int) -> dict:
    """Set TensorFlow's thread pools and return what is in force, read back from TensorFlow.

    If TensorFlow's runtime has already started (another stage ran ops in this process) the
    pools can no longer change; a warning is logged and the settings actually in force are
    returned, so the record never claims a setting that did not apply.

    Returns
    -------
    dict
        ``{"intra_op": int, "inter_op": int, "requested": {...}, "env": {...}}``; a count of 0
        means "TensorFlow's default" (one thread per core).
    """
    import tensorflow as tf

    threading = tf.config.threading
    try:
        if threading.get_intra_op_parallelism_threads() != intra_op:
            threading.set_intra_op_parallelism_threads(intra_op)
        if threading.get_inter_op_parallelism_threads() != inter_op:
            threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as exc:
        log.warning("TensorFlow already started; thread settings unchanged (%s)", exc)
    return thread_settings(requested={"intra_op": intra_op, "inter_op": inter_op})


def start_tensorflow(*, intra_op: int, inter_op: int) -> dict:
    """Thread environment, then TensorFlow's pools: the one way a command sets its threads.

    Must run before anything imports TensorFlow (:func:`set_thread_env`); imports it.

    Returns
    -------
    dict
        What :func:`configure_tensorflow` reads back.
    """
    set_thread_env(intra_op=intra_op, inter_op=inter_op)
    return configure_tensorflow(intra_op=intra_op, inter_op=inter_op)


def thread_settings(*, requested: dict | None = None) -> dict:
    """The thread settings in force: TensorFlow's pools (read back) and the thread environment."""
    import tensorflow as tf

    names = INTRA_OP_ENV + INTER_OP_ENV
    return {
        "intra_op": int(tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op": int(tf.config.threading.get_inter_op_parallelism_threads()),
        "requested": dict(requested or {}),
        "env": {name: os.environ[name] for name in names if name in os.environ},
    }


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory(*, mmap_threshold: int = 32 << 20, top_pad: int = 256 << 20) -> bool:
    """Make glibc's malloc reuse freed tensor buffers instead of returning them to the kernel.

    TensorFlow allocates and frees multi-megabyte activation buffers every training step. With
    glibc's defaults many of them are fresh ``mmap`` regions, so every step zero-fills them
    again through page faults: measured here, 1.7 M page faults and ~3 s of kernel time per
    epoch of the demo data, against 0.45 M with these settings (2 cores). Serving
    allocations below ``mmap_threshold`` from the heap, padding heap growth by ``top_pad`` and
    never trimming the heap lets later steps reuse the pages.

    Call it early (before TensorFlow allocates). A no-op returning False where glibc's
    ``mallopt`` is not available (macOS, musl).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = mallopt(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    ok &= mallopt(_M_TOP_PAD, top_pad) == 1
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return bool(ok)
