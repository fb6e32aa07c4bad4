"""How a multi-process job of the workflow starts its processes: MPI ranks and training workers.

Two launchers exist. Locally, the spectrogram job's ranks are started by the ``mpiexec`` of the
environment (MPICH) and the training workers by ``genreflow train --workers N`` itself (on
loopback). Inside a SLURM job, ``srun`` starts one task per rank or worker.

That ``srun`` must repeat what the job was given. snakemake-executor-plugin-slurm runs the rule's
command with every ``SLURM_*``/``SRUN_*`` variable removed except the job id (jobstep plugin
0.6.1), and SLURM 22.05's ``srun`` does not inherit ``--cpus-per-task`` from ``sbatch`` anyway
(``man srun``): a bare ``srun -n N`` gives every task one CPU and places the tasks wherever one
CPU is free. :func:`srun_command` therefore spells out tasks, CPUs per task, nodes and tasks per
node, and GPUs per task when the job has GPUs.
"""

from __future__ import annotations

import math
import re
import shlex

__all__ = ["LAUNCHERS", "launch_prefix", "nodes_for", "srun_command"]

#: The ``mpi`` resource of each kind of job under SLURM. ``--kill-on-bad-exit=1`` ends the whole
#: step at once when one task fails, instead of leaving the others blocked in a collective.
LAUNCHERS = {
    "ranks": "srun --mpi=pmi2 --kill-on-bad-exit=1",
    "workers": "srun --kill-on-bad-exit=1",
}


def nodes_for(tasks: int, per_node: int | None) -> int | None:
    """Nodes a job of ``tasks`` tasks needs with at most ``per_node`` on each (``None``: SLURM's choice)."""
    if not per_node:
        return None
    return max(1, math.ceil(int(tasks) / int(per_node)))


def srun_command(
    launcher: str,
    *,
    tasks: int,
    cpus_per_task: int,
    nodes: int | None = None,
    gpus_per_task: int | None = None,
) -> str:
    """``launcher`` with the job's layout spelled out (see the module docstring).

    Parameters
    ----------
    launcher : str
        ``srun ...`` (other launchers, e.g. ``mpiexec``, get ``-n tasks`` only: Hydra reads the
        allocation itself).
    tasks, cpus_per_task : int
        Tasks of the step and CPUs of each.
    nodes : int, optional
        Spread the tasks evenly over this many nodes (``--ntasks-per-node``).
    gpus_per_task : int, optional
        GPUs of each task (``--gpus-per-task``).

    Returns
    -------
    str
        The command prefix, e.g. ``srun --mpi=pmi2 -n 4 -c 2 -N 2 --ntasks-per-node=2``.
    """
    words = shlex.split(launcher)
    if not words or words[0].rsplit("/", 1)[-1] != "srun":
        return f"{launcher} -n {int(tasks)}"
    parts = [launcher, f"-n {int(tasks)}", f"-c {max(1, int(cpus_per_task))}"]
    if nodes:
        parts += [f"-N {int(nodes)}", f"--ntasks-per-node={math.ceil(int(tasks) / int(nodes))}"]
    if gpus_per_task:
        parts.append(f"--gpus-per-task={int(gpus_per_task)}")
    return " ".join(parts)


def launch_prefix(resources) -> str:
    """The command prefix of a multi-process rule from its Snakemake ``resources``.

    Empty when the ``mpi`` resource is empty (local training workers start themselves).
    """
    launcher = str(resources.get("mpi") or "")
    if not launcher:
        return ""
    nodes = resources.get("nodes")
    # GPUs per task are asked for in the profile's slurm_extra (the plugin has no resource for
    # them: its `gpu` is the job's total, shared by all tasks); the step must ask again.
    gpus = re.search(r"--gpus-per-task[= ](\d+)", str(resources.get("slurm_extra") or ""))
    return srun_command(
        launcher,
        tasks=int(resources.get("tasks") or 1),
        cpus_per_task=int(resources.get("cpus_per_task") or 1),
        nodes=int(nodes) if nodes else None,
        gpus_per_task=int(gpus[1]) if gpus else None,
    )
