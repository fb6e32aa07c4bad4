"""Data-parallel training: worker discovery, the loopback launcher, and real 2-worker runs.

The 2-worker runs are real: two TensorFlow processes on 127.0.0.1 (``TF_CONFIG``), talking
gRPC collectives, training the tiny tone data of ``training/test_fit.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from genreflow.core.errors import ConfigError
from genreflow.training.distributed import detect_workers, slurm_port_base
from genreflow.training.launch import free_ports, tf_config, worker_command
from tests.support.tone_data import TIMEOUT, TRAIN_SETTINGS, read_json

# --------------------------------------------------------------------------- discovery


def test_tf_config_gives_count_and_index():
    env = {"TF_CONFIG": tf_config(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], 2)}
    group = detect_workers(requested=None, environ=env)
    assert (group.count, group.index, group.source, group.is_chief) == (3, 2, "tf_config", False)
    assert group.addresses == ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
    chief = {
        "TF_CONFIG": json.dumps(
            {
                "cluster": {"chief": ["a:1"], "worker": ["b:2"]},
                "task": {"type": "chief", "index": 0},
            }
        )
    }
    assert detect_workers(requested=2, environ=chief).is_chief


@pytest.mark.parametrize(
    "value, words",
    [
        ("{not json", "could not read it"),
        ('{"cluster": {"worker": ["a:1"]}}', "could not read it"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "'ps'"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "index 3"),
    ],
)
def test_bad_tf_config_is_a_clear_error(value, words):
    with pytest.raises(ConfigError, match="TF_CONFIG") as info:
        detect_workers(requested=None, environ={"TF_CONFIG": value})
    assert words in str(info.value)


def test_slurm_step_tasks_are_workers_but_the_batch_script_is_not():
    step = {
        "SLURM_JOB_ID": "77",
        "SLURM_STEP_ID": "0",
        "SLURM_PROCID": "1",
        "SLURM_STEP_NUM_TASKS": "2",
    }
    group = detect_workers(requested=None, environ=step)
    assert (group.count, group.index, group.source) == (2, 1, "slurm")
    batch_script = {"SLURM_JOB_ID": "77", "SLURM_NTASKS": "2", "SLURM_PROCID": "0"}
    assert detect_workers(requested=None, environ=batch_script).count == 1
    # Ports: configured, or spread by job id so that jobs sharing a node differ.
    assert slurm_port_base(configured=31000, environ=step) == 31000
    assert slurm_port_base(configured=None, environ=step) != slurm_port_base(
        configured=None, environ=dict(step, SLURM_JOB_ID="78")
    )


def test_requested_count_must_match_the_environment():
    with pytest.raises(ConfigError, match=r"--workers 2 but TF_CONFIG lists 3") as info:
        detect_workers(requested=2, environ={"TF_CONFIG": tf_config(["a:1", "b:2", "c:3"], 0)})
    assert "srun -n 2" in str(info.value)
    assert detect_workers(requested=1, environ={}).count == 1


def test_local_workers_run_the_command_they_were_started_with():
    from genreflow.cli import build_parser

    argv = ["train", "--features", "F", "--out", "O", "--workers", "2", "--threads-from"]
    argv += ["p.json", "--max-seconds", "5", "--sweep-point", "--config", "c.yaml"]
    argv += ["--set", "a=1", "--set", "b=2"]
    args = build_parser().parse_args(argv)
    command = worker_command(
        features_dir=args.features,
        out_dir=args.out,
        workers=2,
        threads=3,  # read from threads_from: the workers read that file themselves
        threads_from=args.threads_from,
        max_seconds=args.max_seconds,
        role="sweep",
        config_file=args.config,
        overrides=args.overrides,
    )
    assert command[:4] == [sys.executable, "-m", "genreflow", "train"]
    assert vars(build_parser().parse_args(command[3:])) == vars(args)


def test_free_ports_are_distinct():
    ports = free_ports(4)
    assert len(set(ports)) == 4 and all(1024 <= p < 65536 for p in ports)


# --------------------------------------------------------------------------- real workers


@pytest.fixture(scope="module")
def features(tone_features) -> Path:
    return tone_features


def _train_command(features: Path, out: Path, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "genreflow", "train", "--features", str(features)]
    args += ["--out", str(out), "--threads", "1", *extra]
    for setting in TRAIN_SETTINGS:
        args += ["--set", setting]
    return args


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_NUM_THREADS") and not k.startswith(("SLURM_", "PMI_", "TF_CONFIG"))
    }
    env.update(extra)
    return env


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _worker_index(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"TF_CONFIG="):
            return json.loads(item.split(b"=", 1)[1])["task"]["index"]
    return None


def test_two_local_workers_share_each_epoch_and_export_one_model(features, tmp_path):
    """`train --workers 2` starts two loopback workers; every example is seen once per epoch."""
    from genreflow.core.config import load_config
    from genreflow.spectrograms.clips import clip_table
    from genreflow.spectrograms.shards import open_features
    from genreflow.training.pipeline import SegmentSampler

    out = tmp_path / "model"
    proc = subprocess.run(
        _train_command(features, out, "--workers", "2", "--epochs", "2"),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "starting 2 local workers" in proc.stdout
    assert "[worker 1]" in proc.stdout  # the other worker's lines, relayed

    timings = read_json(out / "timings.json")
    workers = timings["workers"]
    assert workers["count"] == 2 and workers["source"] == "tf_config"
    assert workers["global_batch_size"] == 2 * workers["per_worker_batch_size"] == 16
    assert (
        workers["gradient_values"] > 1000
        and workers["allreduce_seconds"] > 0
        and 0 <= workers["allreduce_fraction"] < 1
    )
    assert [w["worker"] for w in workers["per_worker"]] == [0, 1]
    assert all(w["samples_per_second"] > 0 for w in workers["per_worker"])

    # Count what the two generators actually yielded, per epoch, against the epoch's plan.
    cfg = load_config(
        None, overrides={k: yaml.safe_load(v) for k, v in (x.split("=") for x in TRAIN_SETTINGS)}
    )
    fs = open_features(features)
    clips = clip_table(fs, split="train", labels=fs.labels)
    sampler = SegmentSampler(
        features=fs,
        clips=clips,
        segments_per_clip=int(cfg["train"]["segments_per_clip"]),
        seed=int(cfg["train"]["seed"]),
        shuffle=True,
    )
    for epoch, entry in enumerate(timings["epochs"]):
        plan = sampler.plan(epoch)
        kept = len(plan) - len(plan) % 2
        counts = entry["worker_samples"]
        assert counts == [kept // 2, kept // 2], entry
        assert sum(entry["worker_digests"]) == sampler.digest(plan[:kept])
        assert entry["samples"] == kept

    # One model, from the chief, that predicts.
    meta = read_json(out / "genreflow.json")
    assert meta["labels"] == fs.labels
    assert not list(out.glob("*.tmp*")) and (out / "model.keras").is_file()
    clip = next(Path(fs.index[0].path).parent.glob("*.wav"))
    pred = subprocess.run(
        [sys.executable, "-m", "genreflow", "predict", "--json", str(out), str(clip)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
    )
    assert pred.returncode == 0, pred.stderr
    probs = json.loads(pred.stdout)["predictions"][0]["probabilities"]
    assert abs(sum(probs.values()) - 1) < 1e-3


def test_killed_worker_fails_the_run_promptly_and_a_rerun_resumes(features, tmp_path):
    out = tmp_path / "model"
    state = out / "checkpoints" / "state.json"
    launcher = subprocess.Popen(
        _train_command(features, out, "--workers", "2", "--epochs", "200"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not state.exists():
            assert launcher.poll() is None, launcher.communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        victim = next(p for p in _children(launcher.pid) if _worker_index(p) == 1)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, err = launcher.communicate(timeout=60)
        assert time.monotonic() - killed < 30
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "worker 1 exited with signal SIGKILL" in err
    assert "run the same command again to resume" in err
    done = read_json(state)["epochs_done"]
    assert done >= 1

    rerun = subprocess.run(
        _train_command(features, out, "--workers", "2", "--epochs", str(done + 1)),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
    )
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert f"resuming after epoch {done}" in rerun.stdout
    history = read_json(out / "history.json")
    assert [e["epoch"] for e in history["epochs"]] == list(range(1, done + 2))


def test_a_worker_whose_peer_dies_stops_with_a_clear_message(features, tmp_path):
    """Without the launcher (TF_CONFIG set by hand), TensorFlow's heartbeats end the survivor."""
    out = tmp_path / "model"
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    command = _train_command(features, out, "--workers", "2", "--epochs", "200")
    procs = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(TF_CONFIG=tf_config(addresses, i), PYTHONWARNINGS="always::ResourceWarning"),
        )
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (out / "checkpoints" / "state.json").exists():
            assert all(p.poll() is None for p in procs), procs[0].communicate()
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        procs[1].kill()
        killed = time.monotonic()
        _, err = procs[0].communicate(timeout=90)
        assert time.monotonic() - killed < 60
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode not in (0, None)
    assert "lost contact with another worker" in err
    assert "resume" in err
    # No traceback noise: one clear error line from genreflow, nothing left to die at exit.
    assert "Traceback" not in err and "unclosed running multiprocessing pool" not in err


#: A worker that meets its peer in one epoch-end exchange, then either leaves (index 1) or
#: waits for the peer in the next collective (index 0): our epoch-end exchanges, or an eager
#: one, as Keras's reset of a metric between epochs runs.
_EXCHANGE = """
import os, sys
import keras
import tensorflow as tf
from genreflow.training.distributed import any_worker, close_leaked_pools, gather_rows
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    metric = keras.metrics.Mean()
print("rows", gather_rows(strategy, [1.0, 2.0]).tolist(), flush=True)
if strategy.cluster_resolver.task_id == 1:
    os._exit(0)
try:
    if sys.argv[1] == "any":
        any_worker(strategy, True)
    elif sys.argv[1] == "gather":
        gather_rows(strategy, [3.0, 4.0])
    else:
        metric.reset_state()
except tf.errors.OpError as exc:
    closed = close_leaked_pools()
    print("lost contact:", type(exc).__name__, "pools closed:", closed, file=sys.stderr, flush=True)
    sys.exit(3)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("collective", "leaked"), [("any", 0), ("gather", 0), ("metric", 1)])
def test_a_peer_lost_inside_an_exchange_leaves_nothing_to_die_at_exit(collective, leaked):
    """Run eagerly, the strategy's reduction leaks a thread pool on failure, and its ``__del__``
    could print a traceback at interpreter exit: our epoch-end exchanges run as graphs (no
    pool), and what Keras runs eagerly is cleaned up by ``close_leaked_pools``. Python's
    development mode reports any pool left running, every time."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-X", "dev", "-c", _EXCHANGE, collective],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(TF_CONFIG=tf_config(addresses, i), TF_CPP_MIN_LOG_LEVEL="3"),
        )
        for i in range(2)
    ]
    try:
        results = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    (out, err), _ = results
    assert "rows [[1.0, 2.0], [1.0, 2.0]]" in out  # the first exchange worked
    assert procs[0].returncode == 3 and "lost contact: " in err
    assert f"pools closed: {leaked}" in err
    assert "unclosed running multiprocessing pool" not in err
    assert "Exception ignored" not in err and "Bad file descriptor" not in err


def test_epoch_plan_shards_are_disjoint_and_cover_the_plan(features):
    from genreflow.spectrograms.clips import clip_table
    from genreflow.spectrograms.shards import open_features
    from genreflow.training.pipeline import SegmentSampler

    fs = open_features(features)
    clips = clip_table(fs, split="train", labels=fs.labels)
    whole = SegmentSampler(features=fs, clips=clips, segments_per_clip=3, seed=5, shuffle=True)
    plan = whole.plan(1)
    parts = [
        SegmentSampler(
            features=fs,
            clips=clips,
            segments_per_clip=3,
            seed=5,
            shuffle=True,
            shard=(i, 3),
        ).plan(1)
        for i in range(3)
    ]
    kept = len(plan) - len(plan) % 3
    assert [len(p) for p in parts] == [kept // 3] * 3
    joined = np.concatenate(parts)
    keys = {tuple(x) for x in joined}
    assert len(joined) == kept and len(keys) == len({tuple(x) for x in plan[:kept]})
    assert sorted(map(tuple, joined)) == sorted(map(tuple, plan[:kept]))
