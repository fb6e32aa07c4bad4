"""Check SLURM job requests against what the cluster can ever give, before submitting any.

A job that asks for more CPUs, memory, nodes or time than its partition has never starts:
depending on the site's ``EnforcePartLimits`` it either pends for ever (reason
``PartitionConfig``) or is refused by ``sbatch`` -- after the jobs before it ran, maybe hours
into a run. The workflow checks every job it is about to submit before the first submission
(``workflow/rules/common.smk``, ``onstart``) and stops with the rule, the request, what the
partition has and the config key to change.

What a job asks for is never recomputed here: :func:`sbatch_command` asks
snakemake-executor-plugin-slurm for the very ``sbatch`` line it will submit (its
``get_submit_command`` and ``set_gres_string``), and :func:`sbatch_test_only` hands that line to
``sbatch --test-only``, so SLURM itself judges every option (``--mem-per-cpu``, ``--nodes``,
``--ntasks-per-node``, ``--constraint``, ``--gpus``, QOS and partition limits). The plugin
checks none of this before submitting. :func:`parse_sbatch` reads the line back into a
:class:`JobRequest` only to explain a refusal in the config's terms (what fits instead).

The plugin also never looks at why a job is pending (it reads job id and state only), so a job
pending for a reason that never clears would keep the run waiting for ever; :func:`watch_pending_jobs`
cancels such jobs with the reason (see ``HOPELESS_REASONS``).
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

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
    mem_mb_per_cpu: int | None = None  # ``--mem-per-cpu``
    tasks_per_node: int | None = None
    refusal: str | None = None  # what ``sbatch --test-only`` answered, if it refused
    options: str = ""  # the sbatch options, as the plugin writes them


#: The config keys that size each rule's request, for the message.
CONFIG_KEYS = {
    "spectrograms": "preprocess.ranks / preprocess.production_ranks (x preprocess.threads_per_rank)"
    " / preprocess.ranks_per_node",
    "spectrograms_single": "preprocess.threads_per_rank",
    "spectrograms_weak": "preprocess.ranks (x preprocess.threads_per_rank)",
    "embed": "train.threads",
    "train_sweep": "train.threads",
    "train": "train.production_threads",
    "evaluate": "train.production_threads",
    "train_workers": "train.workers (x train.production_threads) / train.workers_per_node",
    "train_sweep_workers": "train.sweep_workers (x train.production_threads)",
}


#: Rules whose request is a number of tasks (MPI ranks, training workers).
MULTI_TASK_RULES = frozenset(
    {"spectrograms", "spectrograms_weak", "train_workers", "train_sweep_workers"}
)


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
    if request.tasks_per_node and request.tasks_per_node * request.cpus_per_task > biggest:
        return (
            f"{request.tasks_per_node} task(s) per node x {request.cpus_per_task} CPU(s), but "
            f"partition '{partition}' has {shape}"
        )
    # Tasks are packed whole onto nodes: count how many fit.
    slots = sum(n.cpus // request.cpus_per_task for n in members)
    if request.tasks > slots:
        return (
            f"{request.tasks} task(s) x {request.cpus_per_task} CPU(s) = {cpus} CPUs, but "
            f"partition '{partition}' has {shape}"
        )
    memory = max(n.memory_mb for n in members)
    if request.mem_mb_per_cpu is not None:
        per_cpu_fit = sum(
            n.cpus // request.cpus_per_task
            for n in members
            if request.mem_mb_per_cpu * request.cpus_per_task <= n.memory_mb
        )
        if request.tasks > per_cpu_fit:
            return (
                f"{request.mem_mb_per_cpu} MB per CPU (mem_mb_per_cpu) x {request.cpus_per_task} "
                f"CPU(s) per task for {request.tasks} task(s), but partition '{partition}' has "
                f"{shape} and at most {memory} MB per node"
            )
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
        if request.refusal:
            reason = (
                f"{reason} (sbatch --test-only: {request.refusal})"
                if reason
                else f"{request.options}, which sbatch --test-only refuses: {request.refusal}"
            )
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


# --------------------------------------------------------------------------- the plugin's request

#: ``sbatch`` options that size a job, as the plugin writes them (``--opt=v`` or ``--opt v``).
_SIZE_OPTIONS = {
    "-p": "partition",
    "--partition": "partition",
    "--ntasks": "tasks",
    "-n": "tasks",
    "--cpus-per-task": "cpus_per_task",
    "-c": "cpus_per_task",
    "--mem": "mem_mb",
    "--mem-per-cpu": "mem_mb_per_cpu",
    "--nodes": "nodes",
    "-N": "nodes",
    "--ntasks-per-node": "tasks_per_node",
    "-t": "runtime_minutes",
    "--time": "runtime_minutes",
}

#: Options of the plugin's line that only matter to a real submission.
_DROPPED_OPTIONS = {"--output", "--job-name", "--comment", "-D", "--chdir"}


def sbatch_command(job: Any, *, settings: Any = None) -> str:
    """The ``sbatch`` line snakemake-executor-plugin-slurm will submit for ``job`` (no script).

    Built by the plugin's own ``get_submit_command`` and ``set_gres_string``, with the account
    and partition arguments the plugin's executor adds (``-A`` only when ``slurm_account`` is
    set; genreflow never guesses an account).
    """
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    res = job.resources
    validate_slurm_extra(job)
    account = res.get("slurm_account")
    partition = res.get("slurm_partition")
    params = {
        "run_uuid": "genreflow-check",
        "slurm_logfile": "/dev/null",
        "comment_str": f"rule_{job.name}",
        "account": f" -A {shlex.quote(str(account))}" if account else "",
        "partition": f" -p {shlex.quote(str(partition))}" if partition else "",
        "workdir": ".",
    }
    return get_submit_command(job, params, settings=settings) + set_gres_string(job)


def parse_sbatch(command: str, *, rule: str, label: str) -> JobRequest:
    """The sizing options of an ``sbatch`` line as a :class:`JobRequest`."""
    words = shlex.split(command)
    values: dict[str, Any] = {}
    kept: list[str] = []
    i = 1
    while i < len(words):
        word = words[i]
        name, _, value = word.partition("=") if word.startswith("--") else (word, "", "")
        takes_value = name in _SIZE_OPTIONS or name in _DROPPED_OPTIONS
        if takes_value and not value and i + 1 < len(words):
            value = words[i + 1]
            i += 1
        i += 1
        if name in _DROPPED_OPTIONS or name in ("--parsable", "--export"):
            continue
        kept.append(
            f"{name}={value}"
            if takes_value and name.startswith("--")
            else f"{name} {value}"
            if takes_value
            else word
        )
        field = _SIZE_OPTIONS.get(name)
        if field == "partition":
            values[field] = value
        elif field == "runtime_minutes":
            values[field] = parse_time_limit(value)
        elif field:
            values[field] = int(re.sub(r"\D", "", value) or 0)
    request = JobRequest(rule, label=label, partition=values.pop("partition", None))
    return replace(request, options=" ".join(kept), **values)


@functools.cache
def sbatch_test_only(command: str, *, timeout: float = 60) -> str | None:
    """Ask SLURM whether ``command`` (an ``sbatch`` line) could ever run: ``None``, or its refusal.

    ``sbatch --test-only`` checks the request against the partitions, nodes, QOS and
    association limits and submits nothing. Remembered per line: jobs of one rule that ask
    for the same (a sweep's points often do) are asked about once per run.
    """
    try:
        done = subprocess.run(
            f"{command} --test-only --wrap=true",
            shell=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sbatch --test-only did not answer ({exc})"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    text = " ".join(lines) or f"exit status {done.returncode}"
    return re.sub(r"^sbatch: error: ", "", text)


def job_request(job: Any, *, settings: Any = None) -> JobRequest:
    """What ``job`` will ask SLURM for, per the plugin, with SLURM's verdict (``refusal``)."""
    label = ", ".join(f"{k}={v}" for k, v in dict(job.wildcards_dict).items())
    command = sbatch_command(job, settings=settings)
    request = parse_sbatch(command, rule=job.rule.name, label=label)
    return replace(request, refusal=sbatch_test_only(command))


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

#: ``squeue`` format of :func:`parse_pending`: id, reason, comment, nodes, partition, workdir.
SQUEUE_FORMAT = "%i|%r|%k|%D|%P|%Z"

#: ``sinfo`` node states (``%T``, lower case, ``*`` = not responding) a job cannot start on.
UNUSABLE_STATES = ("down", "drain", "fail", "maint", "not_responding")


@dataclass(frozen=True)
class PendingJob:
    job_id: str
    reason: str
    comment: str  # the SLURM plugin's "rule_<name>[_wildcards_<...>]"
    workdir: str
    nodes: int = 1
    partition: str = ""


def parse_pending(text: str) -> list[PendingJob]:
    """Jobs from ``squeue -h -t PENDING -o '%i|%r|%k|%D|%P|%Z'``."""
    jobs = []
    for line in text.splitlines():
        fields = line.strip().split("|", 5)
        if len(fields) == 6:
            job_id, reason, comment, nodes, partition, workdir = fields
            jobs.append(
                PendingJob(
                    job_id,
                    reason,
                    comment,
                    workdir,
                    nodes=int(re.sub(r"\D", "", nodes) or 1),
                    partition=partition,
                )
            )
    return jobs


def this_workflows(jobs: Iterable[PendingJob], *, workdir: str) -> list[PendingJob]:
    """The jobs the SLURM plugin submitted for the workflow run in ``workdir``."""
    return [
        job
        for job in jobs
        if job.comment.startswith("rule_") and job.workdir.rstrip("/") == workdir.rstrip("/")
    ]


def hopeless_jobs(jobs: Iterable[PendingJob], *, workdir: str) -> list[PendingJob]:
    """This workflow's jobs (submitted from ``workdir``) pending for a reason that never clears."""
    return [job for job in this_workflows(jobs, workdir=workdir) if job.reason in HOPELESS_REASONS]


def parse_node_states(text: str) -> dict[str, list[tuple[str, str, str]]]:
    """``sinfo -h -N -o '%N|%P|%T|%E'``: partition -> [(node, state, reason)]."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    for line in text.splitlines():
        fields = line.strip().split("|", 3)
        if len(fields) == 4:
            node, partition, state, reason = fields
            found.setdefault(partition.rstrip("*"), []).append((node, state, reason))
    return found


def short_of_nodes(job: PendingJob, states: dict[str, list[tuple[str, str, str]]]) -> str | None:
    """Why ``job`` cannot start now because nodes of its partition are down, or ``None``.

    A job that needs more nodes than its partition has usable (a node died, was drained) would
    pend until someone brings them back: the SLURM plugin would wait for it for ever.
    """
    members = states.get(job.partition, [])
    if not members:
        return None
    usable = [n for n, state, _ in members if not _unusable(state)]
    if job.nodes <= len(usable):
        return None
    down = "; ".join(
        f"{n} {state.rstrip('*')}{' (not responding)' if state.endswith('*') else ''}"
        f"{': ' + reason if reason and reason != 'none' else ''}"
        for n, state, reason in members
        if _unusable(state)
    )
    return (
        f"needs {job.nodes} node(s) but partition '{job.partition}' has {len(usable)} usable "
        f"now (down: {down})"
    )


def _unusable(state: str) -> bool:
    return state.endswith("*") or state.lower().startswith(UNUSABLE_STATES)


def _run_quiet(args: list[str]) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def cancel_hopeless_jobs(*, workdir: str, report) -> list[PendingJob]:
    """Cancel (``scancel``) this workflow's hopeless pending jobs, reporting each through ``report``.

    Hopeless: pending for a reason that never clears (:data:`HOPELESS_REASONS`), or needing
    more nodes than the partition has usable now (a node died mid-run). The SLURM plugin then
    sees the job cancelled and Snakemake fails it with its log, instead of waiting for a start
    that may never come.
    """
    import getpass

    text = _run_quiet(
        ["squeue", "-h", "-t", "PENDING", "-u", getpass.getuser(), "-o", SQUEUE_FORMAT]
    )
    pending = this_workflows(parse_pending(text), workdir=workdir)
    found: list[tuple[PendingJob, str]] = [
        (job, f"is pending with reason '{job.reason}', which never clears")
        for job in pending
        if job.reason in HOPELESS_REASONS
    ]
    if len(found) < len(pending):
        states = parse_node_states(_run_quiet(["sinfo", "-h", "-N", "-o", "%N|%P|%T|%E"]))
        for job in pending:
            why = None if job.reason in HOPELESS_REASONS else short_of_nodes(job, states)
            if why:
                found.append(
                    (
                        job,
                        f"{why}: it cannot start until they are back (scontrol update "
                        "NodeName=... State=RESUME once they answer); finished work is kept for "
                        "the rerun",
                    )
                )
    for job, why in found:
        report(
            f"SLURM job {job.job_id} ({job.comment}) {why}: cancelling it (scontrol show job "
            f"{job.job_id} shows its request; see slurm/README.md)"
        )
        subprocess.run(["scancel", job.job_id], capture_output=True, timeout=60, check=False)
    return [job for job, _ in found]


def watch_pending_jobs(*, workdir: str, report, interval: float = 10.0):
    """Start a daemon thread that runs :func:`cancel_hopeless_jobs` every ``interval`` seconds."""
    import threading

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            cancel_hopeless_jobs(workdir=workdir, report=report)

    thread = threading.Thread(target=loop, name="genreflow-pending-watch", daemon=True)
    thread.start()
    return stop


# --------------------------------------------------------------------------- logs


def prune_slurm_logs(folder, *, days: float, now: float | None = None) -> list:
    """Delete ``*.log`` under ``folder`` older than ``days`` (0 or less: keep all).

    snakemake-executor-plugin-slurm 2.8 skips its own age-based clean-up whenever
    ``slurm-keep-successful-logs`` is on (``clean_old_logs``), so logs would pile up for ever.

    Returns
    -------
    list of Path
        The files deleted.
    """
    import time
    from pathlib import Path

    if days <= 0:
        return []
    cutoff = (time.time() if now is None else now) - days * 86400
    deleted = []
    for path in Path(folder).rglob("*.log"):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                deleted.append(path)
        except OSError:
            continue
    return deleted
