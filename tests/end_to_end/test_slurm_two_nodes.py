"""Across nodes for real: the two-node cluster of ``slurm/local-cluster.sh up --nodes 2``.

Nodes n1 and n2 each run their slurmd in a network namespace of their own, with their own
hostname and their own node-local scratch; processes on the two nodes meet only over the
virtual network. These tests run the workflow through the repository's profile on it (MPI
ranks and training workers one per node), kill a node in the middle of a job, and check that
output written to node-local scratch is refused. Work folders are under ``tmp_path`` (/tmp),
which both nodes see, like a cluster's shared filesystem.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.slurm_utils import (
    TWO_NODE_CONF,
    TWO_NODES,
    cancel_jobs,
    require_slurm,
    submitted_job_ids,
    two_node_env,
)
from tests.support.workflow_runs import TINY, merged, run_dir, snakemake, workdir

pytestmark = [pytest.mark.slurm2, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "slurm" / "local-cluster.sh"
PROFILE = str(REPO / "slurm")
BIN = Path(sys.executable).parent
#: The node-local scratch folder of the two-node cluster (a private tmpfs on each node).
NODE_SCRATCH = Path("/var/tmp/genreflow-node-scratch")

#: One MPI rank and one training worker per node, each with 2 CPUs.
ACROSS = merged(
    TINY,
    {
        "preprocess": {
            "ranks": [2],
            "production_ranks": 2,
            "threads_per_rank": 2,
            "ranks_per_node": 1,
        },
        "train": {
            "threads": [1],
            "production_threads": 2,
            "workers": 2,
            "workers_per_node": 1,
        },
    },
)


#: Held for the whole of each test: one test at a time on the two-node cluster, whichever xdist
#: worker runs it (a test that kills a node must not do so under another test's job).
LOCK = Path("/tmp/genreflow-two-node-tests.lock")


@pytest.fixture
def two_nodes(monkeypatch):
    """The two-node cluster, for this test's SLURM commands (SLURM_CONF) and subprocesses."""
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        require_slurm(nodes=2)
        monkeypatch.setenv("SLURM_CONF", TWO_NODE_CONF)
        try:
            yield
        finally:
            # A test that killed a node brings it back, so the next one finds both idle.
            _cluster("up", "--nodes", "2")


def _cluster(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["bash", str(CLUSTER), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=two_node_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _srun(*args: str) -> list[str]:
    done = subprocess.run(["srun", *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return sorted(line for line in done.stdout.splitlines() if line)


def test_each_node_has_its_own_host_and_scratch_and_tasks_get_the_cpus_they_ask_for(
    two_nodes, tmp_path
):
    mark = f"{NODE_SCRATCH}/seen-{tmp_path.name}"
    _srun("-N2", "--ntasks-per-node=1", "sh", "-c", f"touch {mark}-$(hostname)")
    # (nproc without OMP_*: GNU nproc reports OMP_NUM_THREADS when it is set.)
    cpus = "$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)"
    show = f"echo $(hostname) {cpus} $(ls {mark}-* | xargs -n1 basename | tr '\\n' ,)"
    # Task binding is on (task/affinity): -c 2 gives 2 CPUs, nothing gives 1. Each node sees
    # only the file it wrote into its own scratch.
    assert _srun("-N2", "--ntasks-per-node=1", "-c", "2", "sh", "-c", show) == [
        f"{node} 2 seen-{tmp_path.name}-{node}," for node in TWO_NODES
    ]
    one = _srun("-N2", "--ntasks-per-node=1", "sh", "-c", show)
    assert [line.split()[1] for line in one] == ["1", "1"]
    assert not Path(f"{mark}-n1").exists()  # nor does this host see either


def _on_one_host(tmp_path: Path, *cmd: str) -> None:
    """Run ``cmd`` on this host, outside SLURM (mpiexec ranks or workers on loopback)."""
    env = {k: v for k, v in two_node_env().items() if not k.startswith("SLURM")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, check=False, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _local_spectrograms(tmp_path: Path, run: Path) -> Path:
    """The run's manifest and feature config, 2 ranks by mpiexec on this host."""
    (features_cfg,) = (run / "config").glob("features-*.yaml")
    out = tmp_path / "local-features"
    _on_one_host(
        tmp_path,
        *[str(BIN / "mpiexec"), "-n", "2", "genreflow", "spectrograms"],
        *[
            "--manifest",
            str(run / "manifest.csv"),
            "--out",
            str(out),
            "--config",
            str(features_cfg),
        ],
    )
    return out


def _local_training(tmp_path: Path, run: Path, features: Path) -> Path:
    """The run's training config on ``features``, 2 workers on loopback on this host."""
    (train_cfg,) = (run / "config").glob("train-*.yaml")
    out = tmp_path / "local-model"
    _on_one_host(
        tmp_path,
        *["genreflow", "train", "--features", str(features), "--out", str(out)],
        *["--config", str(train_cfg), "--threads", "2", "--workers", "2"],
    )
    return out


def _same_feature_bytes(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir() if p.suffix in (".npy", ".csv"))
    assert any(n.endswith(".npy") for n in names) and "index.csv" in names, names
    assert names == sorted(p.name for p in b.iterdir() if p.suffix in (".npy", ".csv"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    meta_a, meta_b = (json.loads((d / "features.json").read_text()) for d in (a, b))
    meta_a.pop("created"), meta_b.pop("created")
    meta_a.pop("manifest"), meta_b.pop("manifest")
    assert meta_a == meta_b


def test_spectrograms_and_training_span_both_nodes_through_the_profile(two_nodes, tmp_path):
    cwd = workdir(tmp_path / "run", ACROSS)
    result = snakemake(cwd, "--profile", PROFILE, "--until", "train_workers", timeout=1200)
    cancel_jobs(submitted_job_ids(result.stdout))
    assert result.returncode == 0, result.stdout[-8000:]
    run = run_dir(cwd, ACROSS)
    (features,) = (run / "features").glob("*/ranks2")
    timings = json.loads((features / "timings.json").read_text())
    # One rank per node, each with the 2 CPUs of preprocess.threads_per_rank (the job step's
    # srun repeats -c: without it each rank would be bound to 1 CPU).
    assert timings["hosts"] == list(TWO_NODES)
    assert [(r["rank"], r["host"], len(r["cpus"])) for r in timings["ranks"]] == [
        (0, "n1", 2),
        (1, "n2", 2),
    ]
    assert timings["launcher"] == "srun" and timings["cpus_per_rank"] == [2]
    model = next((run / "models").glob("*/model"))
    production = json.loads((model / "timings.json").read_text())
    workers = production["workers"]
    assert (workers["count"], workers["source"]) == (2, "slurm")
    assert [a.split(":")[0] for a in workers["addresses"]] == list(TWO_NODES)
    assert len(production["threads"]["cpus"]) == 2
    # The chief alone wrote: one model folder, no second copy from worker 1.
    assert sorted(p.name for p in model.iterdir() if p.is_file()) == [
        "genreflow.json",
        "history.json",
        "model.keras",
        "timings.json",
    ]

    # The report shows both hosts for the spectrogram run.
    report = subprocess.run(
        [str(BIN / "genreflow"), "report", "--results", str(run), "--out", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert report.returncode == 0, report.stderr[-3000:]
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    (sweep,) = [s for s in summary["stages"] if s["stage"] == "spectrograms"]
    assert [p["hosts"] for p in sweep["points"]] == [list(TWO_NODES)]

    _same_feature_bytes(features, _local_spectrograms(tmp_path, run))
    local_model = _local_training(tmp_path, run, features)
    # Two workers on one host and two workers on two nodes: same seed, same shards, and a
    # two-value all-reduce sums in either order to the same float, so the same numbers.
    across = json.loads((model / "history.json").read_text())["epochs"]
    alone = json.loads((local_model / "history.json").read_text())["epochs"]
    assert len(across) == len(alone) == ACROSS["train"]["epochs"]
    for a, b in zip(across, alone, strict=True):
        for key in ("loss", "val_loss", "accuracy"):
            assert a[key] == pytest.approx(b[key], rel=1e-6), (key, a, b)


#: What the workflow prints when it gives up on a job that waits for the lost node.
NAMED = re.compile(r"needs 2 node\(s\) but partition 'main' has 1 usable now \(down: n2")


def _run_and_lose_a_node(cwd: Path, path_glob: str, *args: str, node: str = "n2") -> dict:
    """Run the workflow through the profile; kill ``node`` once ``path_glob`` exists under ``cwd``.

    Returns the output, the exit status, when the node was killed, when the output first named
    it, and when the run ended (epoch seconds).
    """
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--profile", PROFILE, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: dict = {"lines": []}

    def read() -> None:
        for line in proc.stdout:
            seen["lines"].append(line)
            if "named" not in seen and NAMED.search(line):
                seen["named"] = time.time()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.time() + 900
    try:
        while "killed" not in seen and time.time() < deadline and proc.poll() is None:
            if list(cwd.glob(path_glob)):
                time.sleep(2)
                _cluster("kill-node", node)
                seen["killed"] = time.time()
            time.sleep(0.5)
        proc.wait(timeout=max(1.0, deadline - time.time()))
    except subprocess.TimeoutExpired:
        proc.kill()
    seen["ended"] = time.time()
    reader.join(timeout=10)
    seen["output"] = "".join(seen["lines"])
    seen["returncode"] = proc.returncode
    cancel_jobs(submitted_job_ids(seen["output"]))
    return seen


def _assert_node_loss_reported(seen: dict) -> None:
    out = seen["output"]
    assert "killed" in seen, "the node was never killed: " + out[-4000:]
    assert seen["returncode"] not in (0, None), out[-6000:]
    # Named: the lost node, by the watcher that cancels jobs waiting for it, within 2 minutes.
    assert "named" in seen, out[-6000:]
    assert seen["named"] - seen["killed"] < 120, seen["named"] - seen["killed"]
    # Bounded: the run itself ends once the profile's retries have found the node still down.
    assert seen["ended"] - seen["killed"] < 420, seen["ended"] - seen["killed"]


def test_a_node_lost_mid_spectrograms_fails_soon_naming_it_and_the_rerun_resumes(
    two_nodes, tmp_path, monkeypatch
):
    # Enough clips for several 1-MB shards per rank, and every rank sleeps after each clip, so
    # the job runs long enough to lose a node after some shards are complete.
    cfg = merged(
        ACROSS,
        {"data": {"demo": {"clips_per_genre": 10, "seconds": 10}}, "preprocess": {"shard_mb": 1}},
    )
    cwd = workdir(tmp_path / "run", cfg)
    monkeypatch.setenv("GENREFLOW_FAULT_INJECT", "delay=0.5")
    seen = _run_and_lose_a_node(
        cwd, "results/*/features/*/ranks2/journal/part-1-1.json", "--until", "spectrograms"
    )
    _assert_node_loss_reported(seen)

    _cluster("up", "--nodes", "2")
    monkeypatch.delenv("GENREFLOW_FAULT_INJECT")
    again = snakemake(cwd, "--profile", PROFILE, "--until", "spectrograms", timeout=900)
    cancel_jobs(submitted_job_ids(again.stdout))
    assert again.returncode == 0, again.stdout[-8000:]
    run = run_dir(cwd, cfg)
    (features,) = (run / "features").glob("*/ranks2")
    log = (run / "logs" / "spectrograms" / "ranks2.log").read_text()
    assert "resuming the earlier run" in log, log[-3000:]
    timings = json.loads((features / "timings.json").read_text())
    assert timings["resumed_clips"] > 0 and timings["hosts"] == list(TWO_NODES)
    # The resumed run wrote what an uninterrupted one writes.
    _same_feature_bytes(features, _local_spectrograms(tmp_path, run))


def test_a_node_lost_mid_training_fails_soon_naming_it_and_the_rerun_resumes(two_nodes, tmp_path):
    cfg = merged(ACROSS, {"train": {"epochs": 40, "patience": None}})
    cwd = workdir(tmp_path / "run", cfg)
    seen = _run_and_lose_a_node(
        cwd, "results/*/models/*/model/checkpoints/epoch-0002*", "--until", "train_workers"
    )
    _assert_node_loss_reported(seen)
    run = run_dir(cwd, cfg)
    log = (run / "logs" / "train.log").read_text()
    # The chief saw its peer go and said so in one line (the first attempt's log is overwritten
    # by the retries, which never started: the log shows the last attempt that ran).
    assert "lost contact with another worker" in log or "Node failure on n2" in log, log[-4000:]

    _cluster("up", "--nodes", "2")
    again = snakemake(cwd, "--profile", PROFILE, "--until", "train_workers", timeout=1200)
    cancel_jobs(submitted_job_ids(again.stdout))
    assert again.returncode == 0, again.stdout[-8000:]
    log = (run / "logs" / "train.log").read_text()
    assert re.search(r"train: resuming after epoch [1-9]\d*", log), log[-3000:]
    model = next((run / "models").glob("*/model"))
    history = json.loads((model / "history.json").read_text())
    assert len(history["epochs"]) == cfg["train"]["epochs"]


def test_output_on_node_local_scratch_is_refused_naming_the_rank_that_cannot_see_it(
    two_nodes, tmp_path
):
    cwd = workdir(tmp_path / "run", ACROSS)
    result = snakemake(cwd, "--profile", PROFILE, "--until", "manifest", timeout=600)
    assert result.returncode == 0, result.stdout[-6000:]
    run = run_dir(cwd, ACROSS)
    features_cfg = cwd / "config" / "config.yaml"
    out = NODE_SCRATCH / f"features-{tmp_path.name}"
    done = subprocess.run(
        ["srun", "-N2", "--ntasks-per-node=1", "--mpi=pmi2", str(BIN / "genreflow"), "spectrograms"]
        + ["--manifest", str(run / "manifest.csv"), "--out", str(out)]
        + ["--config", str(features_cfg)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )
    assert done.returncode != 0, done.stdout[-3000:]
    text = done.stdout + done.stderr
    assert f"the output folder {out} is not on a filesystem every rank sees" in text, text[-3000:]
    assert "rank 1 on n2 cannot see what rank 0 on n1 wrote" in text, text[-3000:]
