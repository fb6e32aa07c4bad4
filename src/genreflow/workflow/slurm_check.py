"""Check SLURM job requests against what the cluster's partitions can ever give.

A job that asks for more CPUs, memory or time than any node or partition has never starts:
depending on the site's ``EnforcePartLimits`` it either pends for ever (reason
``PartitionConfig``) or is refused by ``sbatch``. The workflow checks every job it is about to
submit before the first submission and stops with the rule, the request, what the partition
has and the config key to change (``workflow/rules/common.smk``, ``onstart``).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from genreflow.core.errors import GenreflowError


class SlurmRequestError(GenreflowError):
    """A job of the workflow can never start on the cluster (names rule, request and fix)."""


@dataclass(frozen=True)
class Node:
    """One node of a partition as ``sinfo`` reports it."""

    name: str
    cpus: int
    memory_mb: int
    partition: str
    time_limit_minutes: float | None  # ``None``: no limit


@dataclass(frozen=True)
class JobRequest:
    """What one job asks SLURM for (the plugin's ``sbatch`` options)."""

    rule: str
    label: str  # e.g. "ranks=4": tells jobs of one rule apart
    partition: str | None
    tasks: int = 1
    cpus_per_task: int = 1
    mem_mb: int | None = None  # per node (``--mem``)
    runtime_minutes: float | None = None
    nodes: int | None = None


#: The config keys that size each rule's request, for the message.
CONFIG_KEYS = {
    "spectrograms": "preprocess.ranks / preprocess.production_ranks (x preprocess.threads_per_rank)",
    "spectrograms_single": "preprocess.threads_per_rank",
    "train_bench": "train.threads",
    "train": "train.production_threads",
    "evaluate": "train.production_threads",
    "train_workers": "train.workers (x train.production_threads)",
    "train_bench_workers": "train.bench_workers (x train.production_threads)",
}


#: Rules whose request is a number of tasks (MPI ranks, training workers).
MULTI_TASK_RULES = frozenset({"spectrograms", "train_workers", "train_bench_workers"})


def parse_time_limit(text: str) -> float | None:
    """SLURM time (``infinite``, ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in minutes."""
    text = text.strip()
    if text in {"infinite", "UNLIMITED", "n/a", ""}:
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
        parts = [int(p) for p in text.split(":")] + [0, 0]
        hours, minutes, seconds = parts[:3]
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, (minutes, seconds) = 0, parts
        else:
            hours, minutes, seconds = parts[:3]
    return days * 1440 + hours * 60 + minutes + seconds / 60


def parse_sinfo(text: str) -> list[Node]:
    """Nodes from ``sinfo -h -N -o '%N|%c|%m|%P|%l'`` (a node in two partitions: two rows)."""
    nodes = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 5:
            continue
        name, cpus, memory, partition, limit = fields[:5]
        memory_mb = int(re.sub(r"\D", "", memory) or 0)
        nodes.append(
            Node(
                name=name,
                cpus=int(re.sub(r"\D", "", cpus) or 0),
                memory_mb=memory_mb,
                partition=partition.rstrip("*"),
                time_limit_minutes=parse_time_limit(limit),
            )
        )
    return nodes


def default_partition(text: str) -> str | None:
    """The default partition (marked ``*``) in the same ``sinfo`` output."""
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) >= 4 and fields[3].endswith("*"):
            return fields[3].rstrip("*")
    return None


def query_nodes() -> tuple[list[Node], str | None]:
    """Every node of every partition (``sinfo``), and the default partition."""
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N|%c|%m|%P|%l"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmRequestError(
            f"cannot ask SLURM what its partitions hold (sinfo: {exc})"
        ) from None
    if done.returncode != 0:
        first = (done.stderr or done.stdout).strip().splitlines()[:1]
        raise SlurmRequestError(
            f"cannot ask SLURM what its partitions hold: sinfo failed: {' '.join(first)}"
        )
    return parse_sinfo(done.stdout), default_partition(done.stdout)


def unfit_reason(request: JobRequest, nodes: Sequence[Node], default: str | None) -> str | None:
    """Why ``request`` can never start on ``nodes``, or ``None`` when it can."""
    partition = request.partition or default
    members = [n for n in nodes if n.partition == partition]
    if not members:
        known = sorted({n.partition for n in nodes})
        return f"partition '{partition}' does not exist (partitions: {', '.join(known) or 'none'})"
    cpus = request.tasks * request.cpus_per_task
    biggest = max(n.cpus for n in members)
    total = sum(n.cpus for n in members)
    shape = f"{len(members)} node(s), {total} CPUs in all, at most {biggest} per node"
    if request.cpus_per_task > biggest:
        return f"{request.cpus_per_task} CPUs per task, but partition '{partition}' has {shape}"
    if request.nodes is not None and request.nodes > len(members):
        return f"{request.nodes} nodes, but partition '{partition}' has {shape}"
    # Tasks are packed whole onto nodes: count how many fit.
    slots = sum(n.cpus // request.cpus_per_task for n in members)
    if request.tasks > slots:
        return (
            f"{request.tasks} task(s) x {request.cpus_per_task} CPU(s) = {cpus} CPUs, but "
            f"partition '{partition}' has {shape}"
        )
    memory = max(n.memory_mb for n in members)
    if request.mem_mb is not None and request.mem_mb > memory:
        return (
            f"{request.mem_mb} MB of memory per node (mem_mb), but the largest node of "
            f"partition '{partition}' has {memory} MB"
        )
    limits = [n.time_limit_minutes for n in members]
    if request.runtime_minutes is not None and None not in limits:
        limit = max(limits)
        if request.runtime_minutes > limit:
            return (
                f"{request.runtime_minutes:g} minutes (runtime), but partition '{partition}' "
                f"allows at most {limit:g}"
            )
    return None


def check_requests(
    requests: Iterable[JobRequest], *, nodes: Sequence[Node], default: str | None
) -> None:
    """Raise :class:`SlurmRequestError` listing every request that can never start.

    Each line names the rule (and job), what it asks for, what the partition has, and the
    config key (or profile resource) that sets the request.
    """
    lines = []
    seen = set()
    for request in requests:
        reason = unfit_reason(request, nodes, default)
        if reason is None or (request.rule, request.label, reason) in seen:
            continue
        seen.add((request.rule, request.label, reason))
        job = f"{request.rule} ({request.label})" if request.label else request.rule
        key = CONFIG_KEYS.get(request.rule)
        fix = _what_fits(request, nodes, default)
        hint = f"\n    change {key}{fix}" if key else f"\n    change its resources{fix}"
        lines.append(f"  rule {job} asks for {reason};{hint}")
    if lines:
        raise SlurmRequestError(
            "these SLURM jobs could never start (the cluster has no room of that size), so "
            "nothing was submitted:\n" + "\n".join(lines)
        )


def _what_fits(request: JobRequest, nodes: Sequence[Node], default: str | None) -> str:
    partition = request.partition or default
    members = [n for n in nodes if n.partition == partition]
    if not members or request.cpus_per_task < 1:
        return ""
    slots = sum(n.cpus // request.cpus_per_task for n in members)
    biggest = max(n.cpus for n in members)
    if request.tasks > 1 or request.rule in MULTI_TASK_RULES:
        return f": at most {slots} task(s) of {request.cpus_per_task} CPU(s) fit"
    if request.cpus_per_task > biggest:
        return f": at most {biggest} CPUs fit one task"
    return " (slurm/config.yaml: set-resources)"


# --------------------------------------------------------------------------- pending jobs

#: ``squeue`` pending reasons that waiting never clears for that job: a request beyond the
#: partition's or the QOS/association's per-job limits, or a dependency that failed.
HOPELESS_REASONS = frozenset(
    {
        "PartitionConfig",
        "PartitionNodeLimit",
        "PartitionTimeLimit",
        "BadConstraints",
        "DependencyNeverSatisfied",
        "InvalidAccount",
        "InvalidQOS",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxNodePerJobLimit",
        "QOSMaxMemoryPerJob",
        "QOSMaxWallDurationPerJobLimit",
        "AssocMaxCpuPerJobLimit",
        "AssocMaxNodesPerJobLimit",
        "AssocMaxWallDurationPerJobLimit",
    }
)

#: ``squeue`` format of :func:`parse_pending`: job id, reason, comment, working directory.
SQUEUE_FORMAT = "%i|%r|%k|%Z"


@dataclass(frozen=True)
class PendingJob:
    job_id: str
    reason: str
    comment: str  # the SLURM plugin's "rule_<name>[_wildcards_<...>]"
    workdir: str


def parse_pending(text: str) -> list[PendingJob]:
    """Jobs from ``squeue -h -t PENDING -o '%i|%r|%k|%Z'``."""
    jobs = []
    for line in text.splitlines():
        fields = line.strip().split("|", 3)
        if len(fields) == 4:
            jobs.append(PendingJob(*fields))
    return jobs


def hopeless_jobs(jobs: Iterable[PendingJob], *, workdir: str) -> list[PendingJob]:
    """This workflow's jobs (submitted from ``workdir``) pending for a reason that never clears."""
    return [
        job
        for job in jobs
        if job.reason in HOPELESS_REASONS
        and job.comment.startswith("rule_")
        and job.workdir.rstrip("/") == workdir.rstrip("/")
    ]


def cancel_hopeless_jobs(*, workdir: str, report) -> list[PendingJob]:
    """Cancel (``scancel``) this workflow's hopeless pending jobs, reporting each through ``report``.

    The SLURM plugin then sees the job cancelled and Snakemake fails it with its log, instead of
    waiting for a start that can never come.
    """
    import getpass

    try:
        done = subprocess.run(
            ["squeue", "-h", "-t", "PENDING", "-u", getpass.getuser(), "-o", SQUEUE_FORMAT],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    found = hopeless_jobs(parse_pending(done.stdout), workdir=workdir)
    for job in found:
        report(
            f"SLURM job {job.job_id} ({job.comment}) is pending with reason '{job.reason}', "
            "which never clears: cancelling it (scontrol show job "
            f"{job.job_id} shows its request; see slurm/README.md)"
        )
        subprocess.run(["scancel", job.job_id], capture_output=True, timeout=60, check=False)
    return found


def watch_pending_jobs(*, workdir: str, report, interval: float = 30.0):
    """Start a daemon thread that runs :func:`cancel_hopeless_jobs` every ``interval`` seconds."""
    import threading

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            cancel_hopeless_jobs(workdir=workdir, report=report)

    thread = threading.Thread(target=loop, name="genreflow-pending-watch", daemon=True)
    thread.start()
    return stop
