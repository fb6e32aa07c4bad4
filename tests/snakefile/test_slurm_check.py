"""Checking SLURM requests against the partitions before anything is submitted (no cluster needed)."""

from __future__ import annotations

import pytest

from genreflow.snakefile.slurm_check import (
    JobRequest,
    SlurmRequestError,
    check_requests,
    default_partition,
    parse_sinfo,
    parse_time_limit,
    unfit_reason,
)

#: ``sinfo -h -N -o '%N|%c|%m|%P|%l'`` of a small cluster: two 2-CPU nodes in `main`, one
#: 8-CPU node in `big` (and, as a second row, in `main` too is not the case here).
SINFO = """\
n1|2|3900|main*|infinite
n2|2|3900|main*|infinite
fat|8|64000|big|2:00:00
"""


@pytest.fixture
def cluster():
    return parse_sinfo(SINFO), default_partition(SINFO)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("infinite", None),
        ("30", 30),
        ("30:30", 30.5),
        ("2:00:00", 120),
        ("1-00:00:00", 1440),
        ("2-12", 2 * 1440 + 720),
    ],
)
def test_parse_time_limit(text, minutes):
    assert parse_time_limit(text) == minutes


def test_parse_sinfo_reads_nodes_and_the_default_partition(cluster):
    nodes, default = cluster
    assert default == "main"
    assert [(n.name, n.cpus, n.memory_mb, n.partition) for n in nodes] == [
        ("n1", 2, 3900, "main"),
        ("n2", 2, 3900, "main"),
        ("fat", 8, 64000, "big"),
    ]
    assert nodes[2].time_limit_minutes == 120


def test_requests_that_fit_pass(cluster):
    nodes, default = cluster
    fitting = [
        JobRequest("spectrograms", label="ranks=4", partition=None, tasks=4),  # 2 + 2 nodes
        JobRequest("train", label="", partition="main", cpus_per_task=2, mem_mb=3000),
        JobRequest("train", label="", partition="big", cpus_per_task=8, runtime_minutes=120),
    ]
    for request in fitting:
        assert unfit_reason(request, nodes, default) is None, request
    check_requests(fitting, nodes=nodes, default=default)


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (JobRequest("spectrograms", label="ranks=8", partition=None, tasks=8), "8 task(s)"),
        # 3 tasks of 2 CPUs: 6 CPUs but only 2 whole slots on two 2-CPU nodes.
        (
            JobRequest("train_workers", label="", partition=None, tasks=3, cpus_per_task=2),
            "3 task(s) x 2 CPU(s)",
        ),
        (JobRequest("train", label="", partition=None, cpus_per_task=4), "4 CPUs per task"),
        (JobRequest("evaluate", label="", partition=None, mem_mb=8000), "8000 MB"),
        (JobRequest("train", label="", partition="big", runtime_minutes=600), "600 minutes"),
        (JobRequest("train", label="", partition="gpu"), "partition 'gpu' does not exist"),
        (JobRequest("train", label="", partition=None, nodes=3), "3 nodes"),
    ],
)
def test_requests_that_can_never_start_are_named(cluster, request_, words):
    nodes, default = cluster
    reason = unfit_reason(request_, nodes, default)
    assert reason is not None and words in reason, reason


def test_the_error_names_rule_request_config_key_and_what_fits(cluster):
    nodes, default = cluster
    requests = [
        JobRequest("spectrograms_single", label="", partition=None),
        JobRequest("spectrograms", label="ranks=2", partition=None, tasks=2),
        JobRequest("spectrograms", label="ranks=16", partition=None, tasks=16),
        JobRequest("train_sweep", label="threads=8", partition=None, cpus_per_task=8),
    ]
    with pytest.raises(SlurmRequestError) as caught:
        check_requests(requests, nodes=nodes, default=default)
    text = str(caught.value)
    assert "nothing was submitted" in text
    assert "rule spectrograms (ranks=16) asks for 16 task(s) x 1 CPU(s) = 16 CPUs" in text
    assert "change preprocess.ranks" in text and "at most 4 task(s) of 1 CPU(s) fit" in text
    assert "rule train_sweep (threads=8) asks for 8 CPUs per task" in text
    assert "change train.threads: at most 2 CPUs fit one task" in text
    # Jobs that fit are not listed.
    assert "ranks=2)" not in text and "spectrograms_single" not in text


# --- the plugin's own sbatch line -------------------------------------------------------------


class _Resources(dict):
    """Snakemake's resources: mapping access and attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class _FakeJob:
    def __init__(self, name: str, threads: int = 1, **resources):
        self.name = name
        self.threads = threads
        self.resources = _Resources(resources)
        self.wildcards_dict = {}

        class _Rule:
            pass

        self.rule = _Rule()
        self.rule.name = name


def test_the_request_is_the_plugins_own_sbatch_line():
    from genreflow.snakefile.slurm_check import parse_sbatch, sbatch_command

    job = _FakeJob(
        "spectrograms",
        tasks=4,
        cpus_per_task=2,
        mpi="srun --mpi=pmi2",
        nodes=2,
        mem_mb_per_cpu=1000,
        runtime=30,
        slurm_partition="main",
        slurm_extra="--exclusive",
    )
    command = sbatch_command(job)
    assert command.startswith("sbatch ")
    request = parse_sbatch(command, rule="spectrograms", label="ranks=4")
    assert (request.tasks, request.cpus_per_task, request.nodes) == (4, 2, 2)
    assert (request.mem_mb_per_cpu, request.mem_mb, request.partition) == (1000, None, "main")
    assert request.runtime_minutes == 30
    assert "--exclusive" in request.options and "--output" not in request.options
    # No account unless one is named (plugin 2.8 ignores slurm-no-account).
    assert " -A " not in command
    named = sbatch_command(_FakeJob("train", slurm_account="proj", runtime=5))
    assert " -A proj" in named


def test_memory_per_cpu_that_no_node_holds_is_named(cluster):
    nodes, default = cluster
    request = JobRequest(
        "spectrograms", label="ranks=2", partition=None, tasks=2, mem_mb_per_cpu=5000
    )
    reason = unfit_reason(request, nodes, default)
    assert reason is not None and "5000 MB per CPU (mem_mb_per_cpu)" in reason, reason
    fits = JobRequest("spectrograms", label="ranks=2", partition=None, tasks=2, mem_mb_per_cpu=1000)
    assert unfit_reason(fits, nodes, default) is None


def test_a_refusal_by_sbatch_test_only_is_reported_even_when_the_shape_fits(cluster):
    nodes, default = cluster
    request = JobRequest(
        "train",
        label="",
        partition=None,
        refusal="Invalid qos specification",
        options="-p main --qos=gold",
    )
    with pytest.raises(SlurmRequestError) as caught:
        check_requests([request], nodes=nodes, default=default)
    text = str(caught.value)
    assert "-p main --qos=gold, which sbatch --test-only refuses: Invalid qos specification" in text


def test_jobs_that_need_more_nodes_than_are_up_are_named_with_the_down_nodes():
    from genreflow.snakefile.slurm_check import (
        PendingJob,
        parse_node_states,
        parse_pending,
        short_of_nodes,
    )

    (job,) = parse_pending("45|Nodes required for job are DOWN|rule_train_workers|2|main|/w\n")
    assert (job.nodes, job.partition, job.workdir) == (2, "main", "/w")
    states = parse_node_states("n1|main*|idle|none\nn2|main*|down*|Not responding\n")
    why = short_of_nodes(job, states)
    assert why is not None and "needs 2 node(s)" in why and "n2 down (not responding)" in why
    one = PendingJob("46", "Resources", "rule_train", "/w", nodes=1, partition="main")
    assert short_of_nodes(one, states) is None


def test_old_slurm_logs_are_pruned_and_recent_ones_kept(tmp_path):
    import os
    import time

    from genreflow.snakefile.slurm_check import prune_slurm_logs

    old = tmp_path / "rule_train" / "1.log"
    new = tmp_path / "rule_train" / "2.log"
    old.parent.mkdir()
    old.write_text("old")
    new.write_text("new")
    now = time.time()
    os.utime(old, (now - 11 * 86400, now - 11 * 86400))
    assert prune_slurm_logs(tmp_path, days=10, now=now) == [old]
    assert not old.exists() and new.exists()
    assert prune_slurm_logs(tmp_path, days=0, now=now + 100 * 86400) == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"tasks": 4, "cpus_per_task": 2}, "srun --mpi=pmi2 -n 4 -c 2"),
        (
            {"tasks": 4, "cpus_per_task": 1, "nodes": 2},
            "srun --mpi=pmi2 -n 4 -c 1 -N 2 --ntasks-per-node=2",
        ),
        (
            {"tasks": 2, "cpus_per_task": 1, "gpus_per_task": 1},
            "srun --mpi=pmi2 -n 2 -c 1 --gpus-per-task=1",
        ),
    ],
)
def test_srun_repeats_the_jobs_layout(kwargs, expected):
    from genreflow.snakefile.launch import srun_command

    assert srun_command("srun --mpi=pmi2", **kwargs) == expected


def test_other_launchers_get_the_task_count_only_and_layout_comes_from_resources():
    from genreflow.snakefile.launch import launch_prefix, nodes_for, srun_command

    assert srun_command("/venv/bin/mpiexec", tasks=3, cpus_per_task=2) == "/venv/bin/mpiexec -n 3"
    assert launch_prefix(_Resources(mpi="", tasks=2)) == ""
    resources = _Resources(
        mpi="srun", tasks=2, cpus_per_task=2, nodes=2, slurm_extra="--gpus-per-task=1"
    )
    assert launch_prefix(resources) == "srun -n 2 -c 2 -N 2 --ntasks-per-node=1 --gpus-per-task=1"
    assert [nodes_for(4, None), nodes_for(4, 1), nodes_for(5, 2)] == [None, 4, 3]
