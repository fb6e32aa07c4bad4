"""The Snakemake workflow: planning (dry runs), lint, and full runs (slow) locally and on SLURM.

Every run happens in ``tmp_path`` (its own ``config/config.yaml``, ``results/`` and
``.snakemake/``) with the repository's Snakefile, so tests never write into the repository.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.slurm_utils import cancel_jobs, require_slurm, submitted_job_ids
from tests.support.workflow_runs import BIN, REPO, TINY, merged, run_dir, snakemake, workdir


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table of a Snakemake run: rule -> number of jobs."""
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def planned_jobs(output: str) -> list[dict]:
    """Each job a dry run prints: rule, inputs, outputs, resources and shell command."""
    jobs = []
    for block in re.split(r"^\[[^\]]+\]\n", output, flags=re.M)[1:]:
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        job = {"rule": head.group(1), "input": [], "output": [], "resources": {}, "shell": ""}
        for key in ("input", "output"):
            found = re.search(rf"^    {key}: (.*)$", block, flags=re.M)
            if found:
                job[key] = found.group(1).split(", ")
        found = re.search(r"^    resources: (.*)$", block, flags=re.M)
        if found:
            job["resources"] = dict(kv.split("=", 1) for kv in found.group(1).split(", "))
        found = re.search(r"^Shell command: (.*)$", block, flags=re.M)
        if found:
            job["shell"] = found.group(1)
        jobs.append(job)
    return jobs


def dry_run(path: Path, cfg: dict, *args: str) -> list[dict]:
    result = snakemake(workdir(path, cfg), "-n", "-p", "--cores", "2", *args)
    assert result.returncode == 0, result.stdout[-6000:]
    return planned_jobs(result.stdout)


def outputs_of(jobs: list[dict], rule: str) -> list[str]:
    return sorted(out for job in jobs if job["rule"] == rule for out in job["output"])


# --- planning ---------------------------------------------------------------------------------


def test_dry_run_plans_every_stage_once(tmp_path: Path):
    result = snakemake(workdir(tmp_path, TINY), "-n", "-p", "--cores", "2")
    assert result.returncode == 0, result.stdout[-6000:]
    # ranks [1, 2] with production 2: the production features are the 2-rank timing job's.
    counts = job_counts(result.stdout)
    assert counts == {
        "config_snapshot": 3,  # manifest, features, training: one snapshot per stage
        "demo_data": 1,
        "manifest": 1,
        "spectrograms": 1,
        "spectrograms_single": 1,
        "train_sweep": 2,
        "train": 1,
        "evaluate": 1,
        "report": 1,
        "all": 1,
    }
    jobs = planned_jobs(result.stdout)
    assert not (tmp_path / "results").exists(), "a dry run must not write results"

    (mpi_job,) = [j for j in jobs if j["rule"] == "spectrograms"]
    mpi_dir = Path(mpi_job["output"][0]).parent
    assert sorted(mpi_job["output"]) == [
        str(mpi_dir / name) for name in ("features.json", "index.csv", "timings.json")
    ]
    assert mpi_dir.parent.parent == Path("results/demo-4x4s-seed0/features")
    assert mpi_dir.name == "ranks2"
    assert mpi_job["resources"]["tasks"] == "2"
    # Default launcher: the MPICH mpiexec of the environment that runs Snakemake.
    assert mpi_job["resources"]["mpi"] == str(BIN / "mpiexec")
    assert mpi_job["shell"].startswith(f"{BIN / 'mpiexec'} -n 2 genreflow spectrograms ")
    fhash = mpi_dir.parent.name
    features_config = f"results/demo-4x4s-seed0/config/features-{fhash}.yaml"
    assert mpi_job["input"] == ["results/demo-4x4s-seed0/manifest.csv", features_config]
    assert f"--config {features_config}" in mpi_job["shell"]
    (single,) = [j for j in jobs if j["rule"] == "spectrograms_single"]
    assert single["input"] == mpi_job["input"]
    assert single["output"] == [p.replace("/ranks2/", "/ranks1/") for p in mpi_job["output"]]
    assert "--out " + str(mpi_dir.parent / "ranks1") in single["shell"]

    # Training (benchmarks and production) reads the production features and one training
    # snapshot, and the sweep passes each thread count on.
    train_inputs = {tuple(j["input"]) for j in jobs if j["rule"] in ("train", "train_sweep")}
    ((features, train_config),) = train_inputs
    assert features == str(mpi_dir / "features.json")
    assert re.fullmatch(
        rf"results/demo-4x4s-seed0/config/train-{fhash}-[0-9a-f]{{16}}\.yaml", train_config
    )
    snapshots = sorted(out for j in jobs if j["rule"] == "config_snapshot" for out in j["output"])
    assert snapshots == sorted(
        [train_config, features_config, "results/demo-4x4s-seed0/config/manifest.yaml"]
    )
    bench = sorted(j["shell"] for j in jobs if j["rule"] == "train_sweep")
    assert [re.search(r"--threads (\d+) --epochs 1 ", s).group(1) for s in bench] == ["1", "2"]


#: TINY with the pretrained backbone and its front end, as config/config.yaml has them.
TINY_BACKBONE = merged(
    TINY,
    {
        "audio": {"sample_rate": 16000, "segment_seconds": 2.992},
        "mel": {"n_fft": 512, "hop_length": 256, "n_mels": 96, "compression": "logc"},
        "train": {"model": {"backbone": "musicnn-msd"}, "production_threads": "auto"},
    },
)


def test_a_backbone_replaces_the_training_sweep_by_an_embedding_sweep(tmp_path: Path):
    """One embedding job per thread count, the fastest feeds the head; no CNN training sweep;
    a head setting reruns the head only, the embeddings stay."""
    jobs = dry_run(tmp_path, TINY_BACKBONE)
    rules = sorted({j["rule"] for j in jobs})
    assert "train_sweep" not in rules and "production_threads" not in rules
    embeds = sorted(j["shell"] for j in jobs if j["rule"] == "embed")
    assert [re.search(r"--threads (\d+) ", s).group(1) for s in embeds] == ["1", "2"]
    assert all("--set train.model.backbone=musicnn-msd" in s for s in embeds)
    (choice,) = [j for j in jobs if j["rule"] == "production_embeddings"]
    embed_dir = Path(choice["output"][0]).parent
    assert embed_dir.parent.name == "embeddings" and embed_dir.name.endswith("-musicnn-msd")
    (train,) = [j for j in jobs if j["rule"] == "train"]
    assert str(embed_dir / "production.json") in train["input"]
    assert f"--threads-from {embed_dir}/production.json" in train["shell"]
    assert f"--embeddings {embed_dir}/production " in train["shell"] + " "
    # The head's C keys the model folder, not the embeddings.
    other = dry_run(tmp_path / "c", merged(TINY_BACKBONE, {"train": {"head": {"c": 0.1}}}))
    (train_c,) = [j for j in other if j["rule"] == "train"]
    assert outputs_of(other, "embed") == outputs_of(jobs, "embed")
    assert train_c["output"] != train["output"]


@pytest.mark.parametrize(
    ("ranks", "production", "mpi_ranks", "single"),
    [
        ([1, 2, 4], 2, ["ranks2", "ranks4"], 1),  # production reuses the 2-rank timing run
        ([1, 2], 4, ["ranks2", "ranks4"], 1),  # production outside the sweep: one more job
        ([2], 1, ["ranks2"], 1),  # 1-rank production runs without a launcher
    ],
)
def test_one_spectrogram_job_per_rank_count(tmp_path, ranks, production, mpi_ranks, single):
    cfg = merged(TINY, {"preprocess": {"ranks": ranks, "production_ranks": production}})
    jobs = dry_run(tmp_path, cfg)
    assert sorted({Path(p).parent.name for p in outputs_of(jobs, "spectrograms")}) == mpi_ranks
    assert sum(j["rule"] == "spectrograms_single" for j in jobs) == single
    (train,) = [j for j in jobs if j["rule"] == "train"]
    assert train["input"][0].endswith(f"/ranks{production}/features.json")


def test_auto_production_waits_for_the_sweeps_and_takes_their_choice(tmp_path):
    auto = {"production_ranks": "auto", "weak_scaling": 3}
    cfg = merged(TINY, {"preprocess": auto, "train": {"production_threads": "auto"}})
    jobs = dry_run(tmp_path, cfg)
    (ranks_choice,) = [j for j in jobs if j["rule"] == "production_features"]
    assert (
        sorted(Path(p).parent.name for p in ranks_choice["input"])
        == ["ranks1"] * 2 + ["ranks2"] * 2
    )
    assert ranks_choice["output"][0].endswith("/production.json")
    (threads_choice,) = [j for j in jobs if j["rule"] == "production_threads"]
    assert sorted(Path(p).parent.name for p in threads_choice["input"]) == ["threads1", "threads2"]
    (train,) = [j for j in jobs if j["rule"] == "train"]
    assert ranks_choice["output"][0] in train["input"]
    assert threads_choice["output"][0] in train["input"]
    assert "--threads-from " in train["shell"] and "/features/" in train["shell"]
    assert re.search(r"--features \S*/production ", train["shell"]), train["shell"]
    # The production job asks for the most cores any sweep point had.
    assert train["resources"]["cpus_per_task"] == "2"
    weak = sorted(
        Path(p).parent.name
        for j in jobs
        if j["rule"] in ("spectrograms_weak", "spectrograms_weak_single")
        for p in j["output"]
    )
    assert weak == ["ranks1", "ranks2"]
    (weak2,) = [j for j in jobs if j["rule"] == "spectrograms_weak"]
    assert "--weak-clips-per-rank 3" in weak2["shell"] and "/weak3/ranks2" in weak2["shell"]


def test_feature_path_follows_mel_and_model_path_ignores_threads(tmp_path: Path):
    base = dry_run(tmp_path / "base", TINY)
    mel = dry_run(tmp_path / "mel", merged(TINY, {"mel": {"n_mels": 64}}))
    threads = dry_run(
        tmp_path / "threads",
        merged(TINY, {"train": {"threads": [1, 4], "production_threads": 1}}),
        "--set-resources",
        "spectrograms:mpi=srun",
    )

    def feature_dirs(jobs):
        return {str(Path(p).parent) for p in outputs_of(jobs, "spectrograms")}

    def model_dirs(jobs):
        return {str(Path(p).parent) for p in outputs_of(jobs, "train")}

    # New mel parameters: new features and a new model; the dataset folder stays.
    assert feature_dirs(mel).isdisjoint(feature_dirs(base))
    assert model_dirs(mel).isdisjoint(model_dirs(base))
    assert outputs_of(mel, "manifest") == outputs_of(base, "manifest")
    # New thread counts: the same features and model paths; only the sweep's folders differ.
    assert feature_dirs(threads) == feature_dirs(base)
    assert model_dirs(threads) == model_dirs(base)
    assert {Path(p).parent.name for p in outputs_of(threads, "train_sweep")} == {
        "threads1",
        "threads4",
    }
    # A launcher set with --set-resources: srun gets the job's layout spelled out (the job
    # step's srun inherits neither tasks nor CPUs per task).
    (mpi_job,) = [j for j in threads if j["rule"] == "spectrograms"]
    assert mpi_job["shell"].startswith("srun -n 2 -c 1 genreflow spectrograms ")


def test_real_dataset_folder_replaces_the_demo(tmp_path: Path):
    data = tmp_path / "My GTZAN"
    (data / "genres" / "blues").mkdir(parents=True)
    jobs = dry_run(tmp_path / "run", merged(TINY, {"data": {"root": str(data)}}))
    rules = {j["rule"] for j in jobs}
    assert "demo_data" not in rules
    (manifest,) = [j for j in jobs if j["rule"] == "manifest"]
    assert manifest["input"][0] == str(data)
    assert re.fullmatch(r"results/My-GTZAN-[0-9a-f]{8}/manifest.csv", manifest["output"][0])
    assert f"--data '{data}'" in manifest["shell"]


def test_invalid_config_stops_before_any_job(tmp_path: Path):
    bad_type = snakemake(
        workdir(tmp_path / "a", merged(TINY, {"mel": {"n_mels": 8}})), "-n", "--cores", "1"
    )
    assert bad_type.returncode != 0
    assert "n_mels" in bad_type.stdout and "8" in bad_type.stdout
    # Cross-field rules come from genreflow.core.config (a JSON schema cannot express them).
    bad_fmax = snakemake(
        workdir(
            tmp_path / "b",
            merged(TINY, {"mel": {"fmax": 20000.0}, "audio": {"sample_rate": 16000}}),
        ),
        "-n",
        "--cores",
        "1",
    )
    assert bad_fmax.returncode != 0
    assert "mel.fmax" in bad_fmax.stdout and "20000" in bad_fmax.stdout


def test_lint_has_no_findings(tmp_path: Path):
    result = snakemake(workdir(tmp_path, TINY), "--lint")
    # `--lint` exits 1 and prints "Lints for ..." blocks when it finds anything.
    assert result.returncode == 0, result.stdout[-6000:]
    assert "Lints for" not in result.stdout
    assert "Congratulations, your workflow is in a good condition!" in result.stdout


# --- full runs (need every genreflow stage command) ------------------------------------------


def _check_outputs(path: Path, cfg: dict) -> dict:
    """Assert every stage's outputs, logs and benchmarks exist and agree with the config."""
    run = run_dir(path, cfg)
    production_ranks = cfg["preprocess"].get("production_ranks", "auto")
    production_threads = cfg["train"].get("production_threads", "auto")
    weak = cfg["preprocess"].get("weak_scaling")
    ranks = sorted(
        set(cfg["preprocess"]["ranks"])
        | ({production_ranks} if production_ranks != "auto" else set())
    )
    sweep_workers = sorted(cfg["train"].get("sweep_workers", []))
    worker_threads = (
        min(cfg["train"]["threads"]) if production_threads == "auto" else production_threads
    )
    threads = sorted(set(cfg["train"]["threads"]) | ({worker_threads} if sweep_workers else set()))
    workers = cfg["train"].get("workers", 1)

    snapshots = {p.stem.split("-")[0]: p for p in (run / "config").glob("*.yaml")}
    assert sorted(snapshots) == ["features", "manifest", "train"]
    train_cfg = yaml.safe_load(snapshots["train"].read_text())
    assert train_cfg["train"]["epochs"] == cfg["train"]["epochs"]
    assert (run / "audio" / "demo.json").is_file()
    assert (run / "manifest.csv").is_file() and (run / "manifest.json").is_file()

    (features,) = (run / "features").iterdir()
    expected = [f"ranks{n}" for n in ranks] + ([f"weak{weak}"] if weak else [])
    if production_ranks == "auto":
        expected += ["production", "production.json"]
    assert sorted(p.name for p in features.iterdir()) == sorted(expected)
    timings = {}
    for n in ranks:
        folder = features / f"ranks{n}"
        for name in ("features.json", "timings.json", "index.csv", "bad_files.csv"):
            assert (folder / name).is_file(), folder / name
        timing = json.loads((folder / "timings.json").read_text())
        assert timing["n_ranks"] == n
        # Every rank reported its own work: N distinct ranks 0..N-1.
        assert sorted(r["rank"] for r in timing["ranks"]) == list(range(n))
        timings[n] = timing

    if weak:
        for n in cfg["preprocess"]["ranks"]:
            timing = json.loads(
                (features / f"weak{weak}" / f"ranks{n}" / "timings.json").read_text()
            )
            assert (timing["scaling"], timing["files"]) == ("weak", weak * n)
    if production_ranks == "auto":
        # Training read the sweep's fastest run, through the link the choice wrote.
        choice = json.loads((features / "production.json").read_text())
        work = {n: t["work_seconds"] for n, t in timings.items()}
        assert choice["chosen"] == min(work, key=lambda n: (work[n], n))
        assert (features / "production").resolve() == (features / f"ranks{choice['chosen']}")
    # Every rank of every run had the BLAS threads the config names, read back.
    for timing in timings.values():
        assert timing["blas_threads"] == [cfg["preprocess"].get("threads_per_rank", 1)]

    backbone = cfg["train"].get("model", {}).get("backbone", "none")
    if backbone != "none":
        # The thread sweep times the backbone's embedding jobs; the head trains on the fastest.
        sweep_workers, threads = [], []
        (embeddings,) = (run / "embeddings").iterdir()
        assert embeddings.name == f"{features.name}-{backbone}"
        sweep = sorted(cfg["train"]["threads"])
        assert sorted(p.name for p in embeddings.iterdir()) == sorted(
            [f"threads{n}" for n in sweep]
            + (["production", "production.json"] if production_threads == "auto" else [])
        )
        for n in sweep:
            embed = json.loads((embeddings / f"threads{n}" / "timings.json").read_text())
            assert embed["threads"]["intra_op"] == n and embed["segments"] > 0

    (models,) = (run / "models").iterdir()
    if backbone == "none":
        assert sorted(p.name for p in (models / "sweep").iterdir()) == sorted(
            [f"threads{n}" for n in threads]
            + [f"workers{n}" for n in sweep_workers]
            + (["production.json"] if production_threads == "auto" else [])
        )
    else:
        assert not (models / "sweep").exists()
    for n in threads:
        bench = json.loads((models / "sweep" / f"threads{n}" / "timings.json").read_text())
        assert bench["threads"]["intra_op"] == n
        assert len(bench["epochs"]) == cfg["train"]["sweep_epochs"]
    for n in sweep_workers:
        bench = json.loads((models / "sweep" / f"workers{n}" / "timings.json").read_text())
        assert bench["workers"]["count"] == n
        assert len(bench["epochs"]) == cfg["train"]["sweep_epochs"]
    for name in ("model.keras", "genreflow.json", "history.json", "timings.json"):
        assert (models / "model" / name).is_file()
    production = json.loads((models / "model" / "timings.json").read_text())
    assert production.get("workers", {"count": 1})["count"] == (
        1 if backbone != "none" else workers
    )
    assert production["role"] == "production"
    if backbone != "none":
        assert production["stage"] == "head" and production["backbone"] == backbone
    if production_threads == "auto":
        chooser = embeddings if backbone != "none" else models / "sweep"
        choice = json.loads((chooser / "production.json").read_text())
        assert production["threads"]["intra_op"] == choice["chosen"]
    else:
        assert production["threads"]["intra_op"] == production_threads
    metrics = json.loads((models / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["clip_accuracy"] <= 1.0
    assert (models / "eval" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((run / "report" / "summary.json").read_text())
    assert Path(summary["files"]["html"]) == (run / "report" / "report.html").resolve()
    assert (run / "report" / "report.html").stat().st_size > 0
    # No two timing runs shared a host at the same time: every sweep point is in the report.
    notes = [n for section in summary["notes"].values() for n in section]
    assert not [n for n in notes if "at the same time" in n], notes
    (sweep,) = [s for s in summary["stages"] if s["stage"] == "spectrograms"]
    assert sorted(p["count"] for p in sweep["points"]) == ranks
    if backbone != "none":
        (sweep,) = [s for s in summary["stages"] if s["stage"] == "embed"]
        assert sorted(p["count"] for p in sweep["points"]) == sorted(cfg["train"]["threads"])

    jobs = ["demo_data", "manifest", "train", "evaluate", "report"]
    jobs += [f"spectrograms/ranks{n}" for n in ranks] + [f"train_sweep/threads{n}" for n in threads]
    if weak:
        jobs += [f"spectrograms/weak{weak}-ranks{n}" for n in cfg["preprocess"]["ranks"]]
    jobs += [f"train_sweep/workers{n}" for n in sweep_workers]
    if backbone != "none":
        jobs += [f"embed/threads{n}" for n in cfg["train"]["threads"]]
    jobs += [f"config_snapshot/{p.stem}" for p in snapshots.values()]
    for job in jobs:
        assert (run / "logs" / f"{job}.log").is_file(), f"no log of {job}"
        assert (run / "usage" / f"{job}.tsv").is_file(), f"no benchmark of {job}"
    return {
        "run": run,
        "features": features,
        "models": models,
        "timings": timings,
        "production": production,
    }


#: The local run also times 2 data-parallel workers (started by `genreflow train` on loopback).
TINY_LOCAL = merged(TINY, {"train": {"sweep_workers": [2]}})

#: On SLURM the production model is trained by 2 workers: one job with 2 tasks of 1 CPU.
TINY_SLURM = merged(TINY, {"train": {"workers": 2, "production_threads": 1}})


@pytest.mark.slow
def test_full_run_local_and_what_a_config_change_reruns(tmp_path: Path):
    result = snakemake(workdir(tmp_path, TINY_LOCAL), "--cores", "2", timeout=1200)
    assert result.returncode == 0, result.stdout[-8000:]
    found = _check_outputs(tmp_path, TINY_LOCAL)
    assert found["timings"][2]["launcher"] == "mpiexec"
    assert found["timings"][1]["launcher"] == "none"
    # The report has a workers axis: the 1-worker point is the 2-thread run of the sweep.
    summary = json.loads((found["run"] / "report" / "summary.json").read_text())
    (workers,) = [s for s in summary["stages"] if s["axis"] == "workers"]
    assert [p["count"] for p in workers["points"]] == [1, 2]
    assert workers["points"][1]["allreduce_fraction"] is not None

    again = snakemake(tmp_path, "-n", "--cores", "2")
    assert "Nothing to be done" in again.stdout, again.stdout[-4000:]

    # Only the thread sweep changes: no spectrograms, no production training, no evaluation.
    workdir(tmp_path, merged(TINY_LOCAL, {"train": {"threads": [1, 3]}}))
    plan = snakemake(tmp_path, "-n", "--cores", "2")
    assert plan.returncode == 0, plan.stdout[-4000:]
    assert job_counts(plan.stdout) == {"train_sweep": 1, "report": 1, "all": 1}

    # A preprocessing setting that keeps the feature path still reruns the spectrograms (their
    # snapshot's params digest changed), and with them what reads them; not the manifest.
    workdir(tmp_path, merged(TINY_LOCAL, {"preprocess": {"shard_mb": 1}}))
    plan = snakemake(tmp_path, "-n", "--cores", "2")
    assert job_counts(plan.stdout) == {
        "config_snapshot": 1,
        "spectrograms": 1,
        "spectrograms_single": 1,
        "train_sweep": 2,
        "train_sweep_workers": 1,
        "train": 1,
        "evaluate": 1,
        "report": 1,
        "all": 1,
    }

    # A split setting reruns the manifest and everything after it, but not the demo data.
    workdir(tmp_path, merged(TINY_LOCAL, {"split": {"seed": 7}}))
    counts = job_counts(snakemake(tmp_path, "-n", "--cores", "2").stdout)
    assert counts.get("manifest") == 1 and "demo_data" not in counts


#: The failure tests need one spectrogram job only.
ONE_MPI_JOB = {"preprocess": {"ranks": [2], "production_ranks": 2}}


def _corrupt_dataset(path: Path) -> Path:
    """A GTZAN-layout folder in which no file is audio."""
    for genre in ("blues", "rock"):
        folder = path / "genres" / genre
        folder.mkdir(parents=True)
        for k in range(6):
            (folder / f"{genre}.{k:05d}.wav").write_bytes(b"RIFF\x00\x00not audio at all" * (k + 1))
    return path


def _assert_failure_names_log(result: subprocess.CompletedProcess, cwd: Path) -> None:
    """The run failed, named the failing rule's log, and that log leads to the bad files."""
    assert result.returncode != 0
    failed = re.findall(r"Error in rule (\w+):", result.stdout)
    assert failed, result.stdout[-6000:]
    logs = re.findall(
        rf"Error in rule {failed[0]}:.*?\n    log: (.*?) \(check log", result.stdout, re.S
    )
    assert logs, result.stdout[-6000:]
    stage_log = cwd / logs[0].split(", ")[0]
    text = stage_log.read_text()
    assert "error" in text.lower(), text
    # The log names the bad clips, or a file that lists them (e.g. bad_files.csv), which must
    # still exist after Snakemake cleaned up the failed job's outputs.
    named = [Path(t) for t in re.findall(r"(/\S+\.(?:csv|json|txt))", text)]
    listing = text + "".join(p.read_text() for p in named if p.is_file())
    assert "blues.00000.wav" in listing, (text, named)


@pytest.mark.slow
def test_failing_stage_stops_the_run_with_its_log(tmp_path: Path):
    data = _corrupt_dataset(tmp_path / "corrupt")
    cwd = workdir(tmp_path / "run", merged(TINY, {"data": {"root": str(data)}, **ONE_MPI_JOB}))
    result = snakemake(cwd, "--cores", "2", timeout=600)
    _assert_failure_names_log(result, cwd)


@pytest.mark.slow
@pytest.mark.slurm
def test_full_run_on_slurm(tmp_path: Path):
    require_slurm()
    profile = str(REPO / "slurm")
    result = snakemake(workdir(tmp_path, TINY_SLURM), "--profile", profile, timeout=1800)
    job_ids = submitted_job_ids(result.stdout)
    assert result.returncode == 0, result.stdout[-8000:]
    found = _check_outputs(tmp_path, TINY_SLURM)
    assert found["timings"][2]["launcher"] == "srun"
    assert found["timings"][1]["launcher"] == "none"
    # The production model came from one SLURM job whose two tasks were the two workers.
    workers = found["production"]["workers"]
    assert (workers["count"], workers["source"]) == (2, "slurm")
    assert len({w["address"] for w in workers["per_worker"]}) == 2
    # One SLURM job per stage job (config_snapshot and all run inside Snakemake), each log at
    # .snakemake/slurm_logs/rule_<rule>/[<wildcards>/]<jobid>.log.
    assert len(job_ids) == len(set(job_ids)) == 9, result.stdout[-4000:]
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs"
    logs = {p.stem: p.relative_to(slurm_logs).parts[0] for p in slurm_logs.glob("rule_*/**/*.log")}
    assert set(job_ids) <= set(logs), (job_ids, logs)
    assert sorted(logs[j] for j in job_ids) == sorted(
        ["rule_demo_data", "rule_manifest", "rule_spectrograms", "rule_spectrograms_single"]
        + ["rule_train_sweep", "rule_train_sweep", "rule_train_workers", "rule_evaluate"]
        + ["rule_report"]
    )


@pytest.mark.slow
@pytest.mark.slurm
def test_failing_slurm_job_stops_the_run_with_its_log(tmp_path: Path):
    require_slurm()
    data = _corrupt_dataset(tmp_path / "corrupt")
    cwd = workdir(tmp_path / "run", merged(TINY, {"data": {"root": str(data)}, **ONE_MPI_JOB}))
    result = snakemake(cwd, "--profile", str(REPO / "slurm"), timeout=600)
    _assert_failure_names_log(result, cwd)
    # The SLURM log of the failed job is named too.
    assert re.search(r"\.snakemake/slurm_logs/rule_\w+/(\w+/)?\d+\.log", result.stdout), (
        result.stdout[-4000:]
    )


def _default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.slurm
def test_impossible_slurm_request_stops_the_run_before_submitting(tmp_path: Path):
    """A rank count no partition can hold fails at once, naming the key; it never pends."""
    require_slurm()
    cfg = merged(TINY, {"preprocess": {"ranks": [1, 2, 512], "production_ranks": 2}})
    result = snakemake(workdir(tmp_path, cfg), "--profile", str(REPO / "slurm"), timeout=180)
    cancel_jobs(submitted_job_ids(result.stdout))
    assert result.returncode != 0, result.stdout[-4000:]
    assert not submitted_job_ids(result.stdout), result.stdout[-4000:]
    text = result.stdout
    assert "rule spectrograms (ranks=512) asks for 512 task(s) x 1 CPU(s)" in text, text[-4000:]
    assert "change preprocess.ranks" in text and "task(s) of 1 CPU(s) fit" in text, text[-4000:]


@pytest.mark.slow
@pytest.mark.slurm
def test_default_config_completes_on_slurm_without_an_activated_environment(tmp_path: Path):
    """The config a user gets, through `.venv/bin/snakemake --profile slurm`, venv not active."""
    require_slurm()
    cfg = _default_config()
    result = snakemake(
        workdir(tmp_path, cfg), "--profile", str(REPO / "slurm"), timeout=3000, activated=False
    )
    job_ids = submitted_job_ids(result.stdout)
    cancel_jobs(job_ids)
    assert result.returncode == 0, result.stdout[-8000:]
    found = _check_outputs(tmp_path, cfg)
    assert sorted(found["timings"]) == sorted(set(cfg["preprocess"]["ranks"]))
    assert found["timings"][4]["launcher"] == "srun"
    slurm_logs = "".join(
        p.read_text(errors="replace")
        for p in (tmp_path / ".snakemake" / "slurm_logs").glob("rule_*/**/*.log")
    )
    assert "command not found" not in slurm_logs


def _slurm_profile(path: Path, *, retries: int | None = None, **train_resources) -> Path:
    """A copy of the repository's profile with the `train` rule's resources (and retries) changed."""
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    profile.setdefault("set-resources", {}).setdefault("train", {}).update(train_resources)
    if retries is not None:
        profile["retries"] = retries
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(profile))
    return path


@pytest.mark.slow
@pytest.mark.slurm
def test_training_cut_by_its_time_limit_resumes_and_completes(tmp_path: Path):
    """A 1-minute limit cuts training; the profile retries it and it resumes from its checkpoint."""
    require_slurm()
    # 150-250 s of epochs on 2 cores: longer than the first attempt can ever run (1 minute,
    # plus slurmctld's periodic limit check and KillWait), and a retry budget (9 attempts of
    # 1 minute) far above what is left, however fast or loaded the machine.
    cfg = merged(
        TINY,
        {
            "preprocess": {"ranks": [2], "production_ranks": 2},
            "train": {"epochs": 250, "production_threads": 2, "patience": None},
        },
    )
    profile = _slurm_profile(tmp_path / "profile", retries=8, runtime=1)
    cwd = workdir(tmp_path / "run", cfg)
    result = snakemake(cwd, "--profile", str(profile), "--until", "train", timeout=1200)
    cancel_jobs(submitted_job_ids(result.stdout))
    assert result.returncode == 0, result.stdout[-8000:]
    run = run_dir(cwd, cfg)
    (models,) = (run / "models").iterdir()
    assert (models / "model" / "model.keras").is_file()
    history = json.loads((models / "model" / "history.json").read_text())
    assert len(history["epochs"]) == cfg["train"]["epochs"]
    # Each attempt is its own SLURM job; the first was cut by its limit, the last resumed.
    logs = sorted(
        (cwd / ".snakemake" / "slurm_logs" / "rule_train").glob("*.log"),
        key=lambda p: int(p.stem),
    )
    assert len(logs) >= 2, result.stdout[-6000:]
    assert "DUE TO TIME LIMIT" in logs[0].read_text(errors="replace"), logs[0].read_text()[-3000:]
    train_log = (run / "logs" / "train.log").read_text()
    assert re.search(r"train: resuming after epoch \d+", train_log), train_log[-3000:]
