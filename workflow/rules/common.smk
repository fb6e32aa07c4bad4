"""Paths and keys shared by the rules.

Outputs are keyed so that a change reruns only what depends on it:

    {results}/{dataset}/config/<stage>.yaml                config snapshots the stages read
    {results}/{dataset}/audio/                             demo clips (only for the demo dataset)
    {results}/{dataset}/manifest.csv, manifest.json
    {results}/{dataset}/features/{fhash}/ranks{n}/         one spectrogram job per rank count
    {results}/{dataset}/features/{fhash}/production.json   the sweep's fastest (ranks: auto),
    {results}/{dataset}/features/{fhash}/production        ...and a symlink to its folder
    {results}/{dataset}/features/{fhash}/weak{c}/ranks{n}/ weak scaling: n x c clips
    {results}/{dataset}/embeddings/{fhash}-{backbone}/threads{n}/  with a backbone: embedding
    {results}/{dataset}/embeddings/{fhash}-{backbone}/production   ...jobs, and the fastest
    {results}/{dataset}/models/{fhash}-{thash}/sweep/threads{n}/   thread-sweep training runs
    {results}/{dataset}/models/{fhash}-{thash}/sweep/workers{n}/   workers-sweep training runs
    {results}/{dataset}/models/{fhash}-{thash}/sweep/production.json  the thread sweep's choice
    {results}/{dataset}/models/{fhash}-{thash}/model/      the production model
    {results}/{dataset}/models/{fhash}-{thash}/eval/       metrics.json, confusion.png
    {results}/{dataset}/report/                            speed-up report (report.html, ...)
    {results}/{dataset}/logs/..., usage/...                 job logs; Snakemake benchmark: files (time, RSS, I/O per job)

``fhash`` hashes the ``audio`` and ``mel`` sections, ``thash`` the parts of ``train`` that change
the model (not the thread counts) plus ``fhash``: the key lists and hashes live in
``genreflow.snakefile.keys``, shared with the package and unit-tested there.

Each stage reads its own snapshot of the validated config (``--config``): the whole config as
it was when the sections that stage depends on last changed. The snapshot rule's ``params``
digest covers only those sections, so Snakemake's params trigger rewrites a snapshot (and so
reruns the stage and what follows) exactly when they change: a new ``train.threads`` adds
training sweep runs but leaves manifest, spectrograms and the production model alone.
(Snapshots are ordinary inputs: ``ancient()`` inputs would hide downstream jobs from
Snakemake 9's rerun detection when the snapshot itself reruns.)
"""

import os
import re
import sys
from pathlib import Path

from snakemake.logging import logger

from genreflow.core.config import validate_config
from genreflow.snakefile.keys import (
    dataset_key,
    feature_hash,
    is_demo,
    snapshot_digests,
    train_hash,
)

# Cross-field checks (fmax vs Nyquist, split fractions...) that a JSON schema cannot express.
validate_config(config, source="snakemake config")


def _env_bin() -> Path:
    """The bin folder of the Python environment that runs Snakemake."""
    return Path(sys.executable).parent


def _uses_conda() -> bool:
    methods = getattr(workflow.deployment_settings, "deployment_method", ()) or ()
    return any(str(m).lower().endswith("conda") for m in methods)


def use_snakemakes_environment() -> None:
    """Jobs run the ``genreflow`` installed beside the Python running Snakemake (activated or
    not); with ``--use-conda`` each rule's environment provides it instead."""
    if _uses_conda():
        return
    from genreflow.snakefile.env import use_environment_of

    use_environment_of(sys.executable)


use_snakemakes_environment()


def local_mpiexec() -> str:
    """The ``mpiexec`` next to ``sys.executable`` (the venv's MPICH), else ``mpiexec``.

    With ``--use-conda`` the jobs run in the rule's environment, whose ``mpiexec`` is on PATH.
    """
    if _uses_conda():
        return "mpiexec"
    candidate = _env_bin() / "mpiexec"
    return str(candidate) if candidate.exists() else "mpiexec"


def on_slurm() -> bool:
    """True when jobs are SLURM jobs: submitted by the slurm executor, or this is the Snakemake
    that runs one job inside its SLURM allocation (remote mode, where the resources are
    evaluated before any executor is set)."""
    plugin = workflow.executor_plugin
    if plugin is not None and getattr(plugin, "name", "") in ("slurm", "slurm-jobstep"):
        return True
    return workflow.remote_exec and "SLURM_JOB_ID" in os.environ


def mpi_launcher(kind: str):
    """The ``mpi`` resource of the multi-process rules; ``kind`` is "ranks" or "workers".

    Under SLURM ``srun`` (genreflow.snakefile.launch.LAUNCHERS); locally the environment's
    ``mpiexec`` for ranks, nothing for workers (``genreflow train --workers N`` starts them).
    ``--set-resources RULE:mpi=...`` replaces it.
    """
    from genreflow.snakefile.launch import LAUNCHERS

    def resource(wildcards) -> str:
        if on_slurm():
            return LAUNCHERS[kind]
        return local_mpiexec() if kind == "ranks" else ""

    return resource


def launch_command(wildcards, resources) -> str:
    """The launcher with the job's tasks, CPUs per task and nodes spelled out (see
    genreflow.snakefile.launch: the job step's ``srun`` inherits none of them)."""
    from genreflow.snakefile.launch import launch_prefix

    return launch_prefix(resources)


def layout(tasks, per_node: int | None) -> dict:
    """The ``nodes`` resource for at most ``per_node`` tasks per node (nothing if unset).

    ``tasks``: a count, or a function of the wildcards that gives one.
    """
    from genreflow.snakefile.launch import nodes_for

    if not per_node:
        return {}
    if callable(tasks):
        return {"nodes": lambda wildcards: nodes_for(tasks(wildcards), per_node)}
    return {"nodes": nodes_for(tasks, per_node)}


DATASET = dataset_key(config)
FHASH = feature_hash(config)
THASH = train_hash(config)
RUN_DIR = f"{config['results']}/{DATASET}"
DEMO_DIR = f"{RUN_DIR}/audio"
MANIFEST = f"{RUN_DIR}/manifest.csv"
MANIFEST_JSON = f"{RUN_DIR}/manifest.json"
FEATURES_DIR = f"{RUN_DIR}/features/{FHASH}"
MODELS_DIR = f"{RUN_DIR}/models/{FHASH}-{THASH}"
LOG_DIR = f"{RUN_DIR}/logs"
USAGE_DIR = f"{RUN_DIR}/usage"
SNAPSHOT_DIR = f"{RUN_DIR}/config"
REPORT_DIR = f"{RUN_DIR}/report"

TIMING_RANKS = sorted(config["preprocess"]["ranks"])
#: A rank count, or "auto": the fastest point of the ranks sweep (rule production_features).
PRODUCTION_RANKS = config["preprocess"]["production_ranks"]
THREADS_PER_RANK = config["preprocess"]["threads_per_rank"]
RANKS_PER_NODE = config["preprocess"]["ranks_per_node"]
WEAK_CLIPS_PER_RANK = config["preprocess"]["weak_scaling"]

#: Timing jobs (the rank and thread sweeps) ask for at least every core of the machine that
#: runs Snakemake: locally that schedules them one at a time, so no two timings share cores
#: (Snakemake scales the request down to --cores). On SLURM, cpus_per_task sizes the job instead.
TIMING_CORES = os.cpu_count() or 1


#: What every timing job (a sweep point) adds to its SLURM request: its node(s) to itself, so no
#: other job competes for its cores. Sites that forbid or charge for whole nodes:
#: `--set-resources RULE:slurm_extra=""` (the report then names the points that overlapped).
EXCLUSIVE = "--exclusive"


def timing_threads(n: int) -> int:
    return max(int(n), TIMING_CORES)


#: A thread count, or "auto": the fastest point of the thread sweep (rule production_threads).
PRODUCTION_THREADS = config["train"]["production_threads"]
AUTO_THREADS = PRODUCTION_THREADS == "auto"
#: Threads of each data-parallel worker (the production run's, or the smallest of the sweep
#: when that is chosen at run time) and the cores the production jobs ask for.
WORKER_THREADS = min(config["train"]["threads"]) if AUTO_THREADS else PRODUCTION_THREADS
PRODUCTION_CORES = (
    max(config["train"]["threads"]) if AUTO_THREADS else PRODUCTION_THREADS
)
TRAIN_WORKERS = config["train"]["workers"]
WORKERS_PER_NODE = config["train"]["workers_per_node"]
#: A pretrained backbone ("none": the from-scratch CNN): its embedding jobs take the thread
#: sweep, the head trains in one process, and the CNN's training sweeps do not run.
BACKBONE = config["train"]["model"]["backbone"]
USES_BACKBONE = BACKBONE != "none"
SWEEP_WORKERS = [] if USES_BACKBONE else sorted(config["train"]["sweep_workers"])
# The workers sweep's 1-worker point is the thread sweep's run with the workers' threads.
SWEEP_THREADS = (
    []
    if USES_BACKBONE
    else sorted(
        set(config["train"]["threads"]) | ({WORKER_THREADS} if SWEEP_WORKERS else set())
    )
)


def features_marker(ranks: int | str) -> str:
    """``features.json`` of the ``ranks``-rank spectrogram job (written last: complete)."""
    return f"{FEATURES_DIR}/ranks{ranks}/features.json"


def weak_marker(ranks: int | str) -> str:
    """``timings.json`` of the ``ranks``-rank weak-scaling job (ranks x weak_scaling clips)."""
    return f"{FEATURES_DIR}/weak{WEAK_CLIPS_PER_RANK}/ranks{ranks}/timings.json"


if PRODUCTION_RANKS == "auto":
    # Written when the sweep is done; `production` is a symlink to the fastest run's folder.
    PRODUCTION_FEATURES = f"{FEATURES_DIR}/production.json"
else:
    PRODUCTION_FEATURES = features_marker(PRODUCTION_RANKS)


def marker_folder(path) -> str:
    """The folder a production input stands for: the marker's folder, or for a sweep's choice
    (``production.json``) the ``production`` link beside it."""
    path = str(path)
    if os.path.basename(path) == "production.json":
        return path.removesuffix(".json")
    return os.path.dirname(path)


def features_dir(wildcards, input) -> str:
    """The folder of the production features."""
    return marker_folder(input.features)


#: Embeddings of the production features by the backbone (keyed by features and backbone).
EMBED_DIR = f"{RUN_DIR}/embeddings/{FHASH}-{BACKBONE}"
EMBED_CHOICE = f"{EMBED_DIR}/production.json"
if AUTO_THREADS:
    PRODUCTION_EMBEDDINGS = EMBED_CHOICE
else:
    PRODUCTION_EMBEDDINGS = f"{EMBED_DIR}/threads{PRODUCTION_THREADS}/timings.json"

#: This config's folders under RUN_DIR: the report covers them, not earlier configurations'.
CURRENT_FOLDERS = [
    f"features/{FHASH}",
    f"models/{FHASH}-{THASH}",
    *([f"embeddings/{FHASH}-{BACKBONE}"] if USES_BACKBONE else []),
]

#: The thread sweep's choice for the production jobs (train.production_threads: auto): of
#: the training sweep, or with a backbone of the embedding sweep.
THREADS_CHOICE = (
    EMBED_CHOICE if USES_BACKBONE else f"{MODELS_DIR}/sweep/production.json"
)


def production_inputs(wildcards) -> dict:
    """Inputs of a production training job: features, its config, the sweep's choice, and
    with a backbone the embeddings."""
    inputs = {"features": PRODUCTION_FEATURES, "config": TRAIN_CONFIG}
    if AUTO_THREADS:
        inputs["choice"] = THREADS_CHOICE
    if USES_BACKBONE:
        inputs["embeddings"] = PRODUCTION_EMBEDDINGS
    return inputs


def embeddings_option(wildcards, input) -> str:
    """``--embeddings DIR`` for a head on a backbone (the chosen run's folder), else nothing."""
    if not USES_BACKBONE:
        return ""
    return f"--embeddings {marker_folder(input.embeddings)}"


def production_threads_option(wildcards, input) -> str:
    """``--threads N``, or ``--threads-from production.json`` when the sweep chooses."""
    if AUTO_THREADS:
        return f"--threads-from {input.choice}"
    return f"--threads {PRODUCTION_THREADS}"


#: Config snapshot name -> digest of the sections its stage reads.
SNAPSHOT_DIGESTS = snapshot_digests(config)


def snapshot(name: str) -> str:
    """Path of the config snapshot ``name`` (a key of ``SNAPSHOT_DIGESTS``)."""
    return f"{SNAPSHOT_DIR}/{name}.yaml"


MANIFEST_CONFIG = snapshot("manifest")
FEATURES_CONFIG = snapshot(f"features-{FHASH}")
TRAIN_CONFIG = snapshot(f"train-{FHASH}-{THASH}")


def data_input(wildcards):
    """What the manifest reads: the demo folder (a rule makes it) or the user's data."""
    if is_demo(config):
        return {"data": DEMO_DIR}
    files = {}
    if config["data"]["root"]:
        files["data"] = config["data"]["root"]
    if config["data"]["csv"]:
        files["csv"] = config["data"]["csv"]
    return files


def manifest_source(wildcards, input) -> str:
    """``--data DIR`` and/or ``--csv FILE`` options of ``genreflow manifest``."""
    from shlex import quote

    options = [
        f"--{key} {quote(str(input[key]))}"
        for key in ("data", "csv")
        if key in input.keys()
    ]
    return " ".join(options)


def write_config_snapshot(*, path: str, log: str, digest: str) -> None:
    """Write the validated ``config`` (all defaults filled in) as YAML, atomically."""
    import yaml

    from genreflow.core.atomic import write_text

    write_text(path, yaml.safe_dump(config, sort_keys=False))
    with open(log, "w", encoding="utf-8") as handle:
        print(f"wrote {path} (config hash {digest})", file=handle)


def stage_targets() -> list[str]:
    """Every stage's final output: timing features, thread-sweep runs, model, evaluation."""
    ranks = set(TIMING_RANKS) | (
        {PRODUCTION_RANKS} if PRODUCTION_RANKS != "auto" else set()
    )
    targets = [features_marker(n) for n in sorted(ranks)]
    targets += [PRODUCTION_FEATURES]
    if WEAK_CLIPS_PER_RANK:
        targets += [weak_marker(n) for n in TIMING_RANKS]
    targets += [f"{MODELS_DIR}/sweep/threads{n}/timings.json" for n in SWEEP_THREADS]
    if USES_BACKBONE:
        targets += [
            f"{EMBED_DIR}/threads{n}/timings.json" for n in config["train"]["threads"]
        ]
    if AUTO_THREADS:
        targets += [THREADS_CHOICE]
    targets += [f"{MODELS_DIR}/sweep/workers{n}/timings.json" for n in SWEEP_WORKERS]
    targets += [
        f"{MODELS_DIR}/model/model.keras",
        f"{MODELS_DIR}/eval/metrics.json",
        f"{MODELS_DIR}/eval/confusion.png",
    ]
    return targets


def all_targets() -> list[str]:
    """The targets of the default target (`all`): every stage's output and the report over them."""
    return [*stage_targets(), f"{REPORT_DIR}/summary.json"]


def check_slurm_requests() -> None:
    """Before the first submission: stop if a job could never start on this SLURM cluster
    (the plugin's own sbatch line for every job, judged by ``sbatch --test-only``)."""
    plugin = workflow.executor_plugin
    if plugin is None or getattr(plugin, "name", "") != "slurm":
        return
    from genreflow.snakefile.slurm_check import (
        check_requests,
        job_request,
        prune_slurm_logs,
        query_nodes,
        watch_pending_jobs,
    )

    settings = workflow.executor_settings
    nodes, default = query_nodes()
    requests = [
        job_request(job, settings=settings)
        for job in workflow.dag.needrun_jobs()
        if not job.is_local
    ]
    check_requests(requests, nodes=nodes, default=default)
    # The plugin never fails a job for why it pends: cancel those that wait for ever, with why.
    watch_pending_jobs(workdir=os.getcwd(), report=lambda text: logger.error(text))
    # slurm-keep-successful-logs switches the plugin's age-based clean-up off: do it here.
    if getattr(settings, "keep_successful_logs", False):
        prune_slurm_logs(
            Path(".snakemake/slurm_logs"),
            days=float(getattr(settings, "delete_logfiles_older_than", 0) or 0),
        )
