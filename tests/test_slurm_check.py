"""Checking SLURM requests against the partitions before anything is submitted (no cluster needed)."""

from __future__ import annotations

import pytest

from genreflow.workflow.slurm_check import (
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
        JobRequest("train_bench", label="threads=8", partition=None, cpus_per_task=8),
    ]
    with pytest.raises(SlurmRequestError) as caught:
        check_requests(requests, nodes=nodes, default=default)
    text = str(caught.value)
    assert "nothing was submitted" in text
    assert "rule spectrograms (ranks=16) asks for 16 task(s) x 1 CPU(s) = 16 CPUs" in text
    assert "change preprocess.ranks" in text and "at most 4 task(s) of 1 CPU(s) fit" in text
    assert "rule train_bench (threads=8) asks for 8 CPUs per task" in text
    assert "change train.threads: at most 2 CPUs fit one task" in text
    # Jobs that fit are not listed.
    assert "ranks=2)" not in text and "spectrograms_single" not in text
