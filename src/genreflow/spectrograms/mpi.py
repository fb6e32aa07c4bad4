"""MPI plumbing for the spectrogram stage: who launched us, the world, and aborting it.

:func:`init_world` gives a :class:`World` with ``rank``, ``size`` and the three collectives the
stage uses (``scatter``, ``gather``, ``bcast``). ``mpi4py`` is imported only when a launcher
is detected (``mpiexec``/``mpirun`` of any MPI, ``srun``), so a plain ``python``/``genreflow``
run is a one-rank world that never touches MPI (robust on login nodes where singleton MPI
start-up can fail); under a launcher the size comes from mpi4py.

:meth:`World.abort_on_error` turns an unexpected exception on any rank into a printed
``rank r/N on host`` header plus traceback and ``MPI_Abort``, so no rank is left waiting
forever in a collective. MPI start-up itself is given :data:`MPI_INIT_TIMEOUT` seconds
(``GENREFLOW_MPI_INIT_TIMEOUT``): a rank that has not finished by then exits with status 1.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import socket
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from genreflow.core.errors import GenreflowError, StageError

#: Environment variables that only exist inside a process started by an MPI launcher
#: (``srun`` is recognised by ``SLURM_STEP_ID``, see :func:`detect_launcher`).
LAUNCHER_MARKERS = (
    "PMI_RANK",
    "PMI_SIZE",
    "PMI_FD",
    "PMIX_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "MPI_LOCALNRANKS",
    "MV2_COMM_WORLD_SIZE",
    "ALPS_APP_PE",
)

#: Seconds a rank may spend in MPI start-up (``MPI_Init``) before it exits with status 1; the
#: environment variable ``GENREFLOW_MPI_INIT_TIMEOUT`` overrides it.
MPI_INIT_TIMEOUT = 120.0

#: Pause between printing the traceback and MPI_Abort (see World.abort_on_error).
ABORT_GRACE_SECONDS = 0.5

#: Environment variables copied into ``timings.json`` to show how a run was launched.
RECORDED_ENV = (
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "SLURM_NTASKS",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_JOB_NODELIST",
    "PMI_SIZE",
    "PMIX_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "MPI_LOCALNRANKS",
)


def detect_launcher(env: Mapping[str, str] | None = None) -> str:
    """How this process was started: ``"mpiexec"``, ``"srun"`` or ``"none"``.

    MPICH/Intel hydra set ``MPI_LOCALNRANKS``/``PMI_HOSTNAME`` and Open MPI sets
    ``OMPI_COMM_WORLD_SIZE`` even when they start their proxies through SLURM, so those win over
    ``SLURM_STEP_ID``, which marks a task started by ``srun``. Other PMI variables without SLURM
    mean some other ``mpiexec``.
    """
    env = os.environ if env is None else env
    if any(k in env for k in ("MPI_LOCALNRANKS", "PMI_HOSTNAME", "OMPI_COMM_WORLD_SIZE")) or any(
        k.startswith("HYDRA_") for k in env
    ):
        return "mpiexec"
    if env.get("SLURM_STEP_ID", "") not in ("", "batch", "extern"):
        return "srun"
    if any(k in env for k in LAUNCHER_MARKERS):
        return "mpiexec"
    return "none"


def expected_size(env: Mapping[str, str] | None = None) -> int | None:
    """The number of processes the launcher says it started, or ``None`` when it does not say."""
    env = os.environ if env is None else env
    keys = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"]
    if detect_launcher(env) == "srun":
        keys.append("SLURM_STEP_NUM_TASKS")
    for key in keys:
        with contextlib.suppress(ValueError):
            if key in env:
                return int(env[key])
    return None


class World:
    """The ranks of one run: ``rank``/``size``, ``scatter``/``gather``/``bcast`` and abort.

    ``World(comm=None)`` is the one-rank world, whose collectives are identities.

    Parameters
    ----------
    comm : mpi4py.MPI.Comm or None
    launcher : str
        ``"mpiexec"``, ``"srun"`` or ``"none"`` (recorded, not acted on).
    """

    def __init__(self, comm: Any = None, *, launcher: str = "none") -> None:
        self.comm = comm
        self.launcher = launcher
        self.rank = comm.Get_rank() if comm is not None else 0
        self.size = comm.Get_size() if comm is not None else 1
        self.host = socket.gethostname()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def scatter(self, shares: Sequence[Any] | None) -> Any:
        """Rank 0 passes one item per rank (others pass ``None``); each rank gets its item."""
        if self.comm is None:
            return shares[0]
        self._wait_idle()
        return self.comm.scatter(shares, root=0)

    def gather(self, item: Any) -> list[Any] | None:
        """Every rank's ``item`` as a list on rank 0 (``None`` elsewhere)."""
        if self.comm is None:
            return [item]
        self._wait_idle()
        return self.comm.gather(item, root=0)

    def bcast(self, item: Any) -> Any:
        """Rank 0's ``item`` on every rank."""
        if self.comm is None:
            return item
        self._wait_idle()
        return self.comm.bcast(item, root=0)

    def _wait_idle(self, poll_seconds: float = 0.002) -> None:
        """Wait for every rank to arrive, sleeping instead of spinning.

        MPICH busy-polls inside a blocking collective: a rank that finished its share (or
        waits for rank 0's plan or outputs) would burn a core that a working rank needs
        whenever ranks outnumber cores. A non-blocking barrier tested every few ms costs
        nothing measurable and leaves the cores to the ranks still working.
        """
        request = self.comm.Ibarrier()
        while not request.Test():
            time.sleep(poll_seconds)

    @contextlib.contextmanager
    def abort_on_error(self, *, what: str = "genreflow") -> Iterator[None]:
        """Abort every rank when the block raises on this one.

        With more than one rank, any exception (a bug, a full disk, Ctrl-C) prints
        ``<what>: rank r/N on host: …`` to stderr (with the traceback unless it is a
        :class:`~genreflow.core.errors.GenreflowError`, whose message is the news), then calls
        ``MPI_Abort(1)``: the launcher kills the other ranks even when they are blocked in a
        collective. In a one-rank world the exception propagates unchanged.
        """
        try:
            yield
        except BaseException as exc:
            if self.comm is None or self.size == 1:
                raise
            where = f"{what}: rank {self.rank}/{self.size} on {self.host}"
            if isinstance(exc, GenreflowError):
                # Meant for the user (a full disk names its file): one line, no traceback.
                print(f"{where}: error: {exc}; aborting all ranks", file=sys.stderr)
            else:
                print(f"{where}: unexpected error, aborting all ranks", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
            sys.stdout.flush()
            sys.stderr.flush()
            # The launcher tears its output forwarding down on abort: give it a moment to pass
            # the traceback on first, or the reason for the abort can be lost.
            time.sleep(ABORT_GRACE_SECONDS)
            self.comm.Abort(1)
            os._exit(1)  # Abort does not return; should a broken MPI return, still end here


def _init_timeout(env: Mapping[str, str]) -> float:
    """:data:`MPI_INIT_TIMEOUT`, or ``GENREFLOW_MPI_INIT_TIMEOUT`` when set."""
    value = env.get("GENREFLOW_MPI_INIT_TIMEOUT", "")
    if not value:
        return MPI_INIT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise StageError(
            f"GENREFLOW_MPI_INIT_TIMEOUT must be a number of seconds > 0, got '{value}'"
        )
    return seconds


def _import_mpi_within(seconds: float):
    """``mpi4py.MPI``, whose import runs ``MPI_Init``; the process exits if that takes longer.

    ``MPI_Init`` blocks in C without releasing the GIL, so no Python thread can end a start-up
    that never finishes, such as a PMI exchange the launcher could not parse (MPICH 5.0 under
    SLURM 22.05's ``--mpi=pmi2``, about one start in ten on the two-node test cluster: the
    ranks wait for a reply that never comes). faulthandler's watchdog is a C thread: after
    ``seconds`` it prints ``Timeout`` with this function in the traceback and exits with
    status 1, and the launcher ends the other ranks (``srun --kill-on-bad-exit``, ``mpiexec``)
    so the workflow's retry can start the job again.
    """
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        from mpi4py import MPI
    finally:
        faulthandler.cancel_dump_traceback_later()
    return MPI


def init_world(env: Mapping[str, str] | None = None) -> World:
    """The MPI world this process belongs to.

    Returns
    -------
    World
        One rank without a launcher; otherwise ``mpi4py.MPI.COMM_WORLD``.

    Raises
    ------
    StageError
        A launcher is present but mpi4py cannot be imported, or the launcher started several
        processes while MPI sees a world of one (``srun`` without ``--mpi=pmi2``, or an
        ``mpiexec`` from a different MPI than the one mpi4py was built against): every process
        would otherwise write the same rank-0 files.
    """
    env = os.environ if env is None else env
    launcher = detect_launcher(env)
    if launcher == "none":
        return World(None, launcher="none")
    try:
        MPI = _import_mpi_within(_init_timeout(env))
    except ImportError as exc:
        raise StageError(
            f"started by {launcher} but mpi4py cannot be imported ({exc}); install mpi4py "
            "against this MPI, or run without a launcher for one rank"
        ) from None
    world = World(MPI.COMM_WORLD, launcher=launcher)
    expected = expected_size(env)
    if world.size == 1 and expected is not None and expected > 1:
        hint = (
            "use `srun --mpi=pmi2` (or MpiDefault=pmi2 in slurm.conf)"
            if launcher == "srun"
            else "use the mpiexec that belongs to mpi4py's MPI library "
            f"({MPI.Get_library_version().splitlines()[0].strip()})"
        )
        raise StageError(
            f"{launcher} started {expected} processes but MPI reports a world of 1, so every "
            f"process would act as rank 0; {hint}"
        )
    return world


def launcher_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The launcher-related environment variables that are set (for the timings record)."""
    env = os.environ if env is None else env
    return {k: env[k] for k in RECORDED_ENV if k in env}
