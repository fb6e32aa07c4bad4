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
    """Set TensorFlow's thread pools (and the loaded BLAS/OpenMP pools to ``intra_op``) and
    return what is in force, read back from the libraries.

    If TensorFlow's runtime has already started (another stage ran ops in this process) the
    pools can no longer change; a warning is logged and the settings actually in force are
    returned, so the record never claims a setting that did not apply.

    Returns
    -------
    dict
        :func:`thread_settings`: ``{"intra_op", "inter_op", "blas", "openmp", "cpus",
        "requested", "env"}``; an op count of 0 means "TensorFlow's default" (one thread per
        core).
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
    # BLAS libraries loaded before the environment was set keep their pools: size them now.
    limit_blas_threads(intra_op)
    return thread_settings(requested={"intra_op": intra_op, "inter_op": inter_op})


def start_tensorflow(*, intra_op: int, inter_op: int, bind: bool = False) -> dict:
    """Core binding, thread environment, then TensorFlow's pools: the one way a command sets
    its threads.

    Must run before anything imports TensorFlow (:func:`set_thread_env`); imports it.

    Parameters
    ----------
    intra_op, inter_op : int
    bind : bool
        Bind the process to ``intra_op`` cores first (:func:`bind_to_cores`; a local
        worker's slot comes from ``GENREFLOW_WORKER_SLOT``).

    Returns
    -------
    dict
        What :func:`configure_tensorflow` reads back.
    """
    if bind:
        bind_to_cores(intra_op, slot=worker_slot())
    set_thread_env(intra_op=intra_op, inter_op=inter_op)
    return configure_tensorflow(intra_op=intra_op, inter_op=inter_op)


def thread_settings(*, requested: dict | None = None) -> dict:
    """The thread settings in force: TensorFlow's pools and the BLAS/OpenMP pools (read back
    from the libraries), the CPUs the process may run on, and the thread environment."""
    import tensorflow as tf

    names = INTRA_OP_ENV + INTER_OP_ENV
    pools = blas_threads()
    return {
        "intra_op": int(tf.config.threading.get_intra_op_parallelism_threads()),
        "inter_op": int(tf.config.threading.get_inter_op_parallelism_threads()),
        "blas": pools["blas"],
        "openmp": pools["openmp"],
        "cpus": allowed_cpus(),
        "requested": dict(requested or {}),
        "env": {name: os.environ[name] for name in names if name in os.environ},
    }


def limit_blas_threads(threads: int) -> None:
    """Size every loaded BLAS/OpenMP pool to ``threads`` now, whatever the environment said.

    The environment variables (:data:`BLAS_ENV`) only count if they were set before the
    library loaded; a launcher (Snakemake exports ``OMP_NUM_THREADS`` = the job's ``threads``),
    a SLURM job or a user's shell can have set others. threadpoolctl sets the pools of the
    libraries already loaded, so call this after numpy is imported.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(threads))


def blas_threads() -> dict:
    """The BLAS/OpenMP thread pools in force in this process, read back from the libraries.

    Returns
    -------
    dict
        ``{"blas": int | None, "openmp": int | None, "libraries": [{"api", "library",
        "threads"}, ...]}``: ``blas`` and ``openmp`` are the largest pool of that kind loaded
        (``None`` where none is loaded).
    """
    from threadpoolctl import threadpool_info

    libraries = [
        {
            "api": info.get("user_api"),
            "library": info.get("internal_api"),
            "threads": int(info.get("num_threads") or 0),
        }
        for info in threadpool_info()
    ]

    def largest(api: str) -> int | None:
        counts = [lib["threads"] for lib in libraries if lib["api"] == api]
        return max(counts) if counts else None

    return {"blas": largest("blas"), "openmp": largest("openmp"), "libraries": libraries}


#: Set by ``genreflow train --workers N`` for each local worker it starts: its slot on this
#: machine, so that bound workers take different cores.
WORKER_SLOT_ENV = "GENREFLOW_WORKER_SLOT"


def worker_slot(environ: dict | None = None) -> int:
    """This process's slot among the workers started on its machine: the one
    ``genreflow train --workers N`` gave it, else the SLURM task's node-local id, else 0."""
    env = os.environ if environ is None else environ
    for name in (WORKER_SLOT_ENV, "SLURM_LOCALID"):
        value = env.get(name, "")
        if value.isdigit():
            return int(value)
    return 0


def bind_to_cores(count: int, *, slot: int = 0) -> list[int] | None:
    """Bind this process, and every thread it starts later, to ``count`` of its CPUs.

    A TensorFlow process with one intra-op thread still runs ops on the calling thread
    beside its pool thread, and tf.data sizes its own pool by the CPUs it may use: unbound,
    a "1-thread" run spreads over every core of the machine, and a thread sweep measures
    nothing. Bound, N threads get N cores, as SLURM's ``--cpus-per-task=N`` gives through
    cgroups. Call before importing TensorFlow.

    Parameters
    ----------
    count : int
        Cores to keep.
    slot : int
        Which ``count`` cores of the allowed ones: slot k takes the k-th block (local
        data-parallel workers each take their own).

    Returns
    -------
    list of int or None
        The CPUs bound to; None where the platform has no affinity call (nothing changed).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if count >= len(allowed) and slot == 0:
        return allowed
    start = (slot * count) % len(allowed)
    chosen = sorted({allowed[(start + i) % len(allowed)] for i in range(count)})
    os.sched_setaffinity(0, chosen)
    return chosen


def allowed_cpus() -> list[int] | None:
    """The CPUs this process may run on (its affinity: what a scheduler's binding left it);
    None where the platform cannot say."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity), else the machine's count."""
    allowed = allowed_cpus()
    return (len(allowed) if allowed is not None else os.cpu_count()) or 1


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
