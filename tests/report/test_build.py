"""genreflow report: speed-ups from logged times, Amdahl fits, notes for missing inputs, HTML.

The report is built from the timing files of real tiny runs of the stages (``genreflow
spectrograms`` on 1 and 2 MPI ranks, ``genreflow train`` on 1 and 2 threads) where those
commands exist, and from a real Snakemake ``benchmark:`` file. The Amdahl fit is checked on
times generated from a known serial fraction, both directly and through timing files.
"""

from __future__ import annotations

import base64
import csv
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.cli import main
from genreflow.report import build_report, fit_amdahl, scaling, summary_lines
from genreflow.report.collect import collect
from tests.support.tone_data import write_manifest_rows

BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"
SNAKEMAKE = BIN / "snakemake"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TIMEOUT = 240
SR = 22050
#: A small, fast feature setting for the tiny real runs.
SETTINGS = ["mel.n_mels=32", "preprocess.previews_per_genre=0", "train.batch_size=8"]


def stage_available(name: str) -> bool:
    return importlib.util.find_spec(f"genreflow.commands.{name}") is not None


def genreflow_cmd(*args: str, ranks: int | None = None, settings: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "genreflow", *args]
    for setting in SETTINGS if settings else ():
        cmd += ["--set", setting]
    return [str(MPIEXEC), "-n", str(ranks), *cmd] if ranks else cmd


def run_together(*cmds: list[str]) -> None:
    """Run commands side by side (runs that overlap are left out of the report's sweeps)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        for cmd in cmds
    ]
    for cmd, proc in zip(cmds, procs, strict=True):
        output, _ = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{output[-3000:]}"


def run_in_turn(*cmds: list[str]) -> None:
    """Run commands one after the other, as timing runs must be."""
    for cmd in cmds:
        run_together(cmd)


def make_clips(folder: Path) -> Path:
    """Three "genres" x four 2-s tone-plus-noise WAVs and a manifest.csv (docs/formats.md)."""
    folder.mkdir(parents=True)
    rows = []
    for g, (genre, f0) in enumerate({"bass": 110.0, "mid": 660.0, "high": 3520.0}.items()):
        for i in range(4):
            rng = np.random.default_rng(10 * g + i)
            t = np.arange(int(2.0 * SR)) / SR
            y = 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.05 * i) * t)
            y = y + 0.03 * rng.standard_normal(len(t))
            path = folder / f"{genre}.{i:05d}.wav"
            sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
            split = ("train", "train", "valid", "test")[i]
            rows.append([path.stem, str(path), genre, genre, "", split])
    return write_manifest_rows(folder / "manifest.csv", rows)


@pytest.fixture(scope="module")
def real_results(tmp_path_factory):
    """A results tree from real tiny runs: spectrograms on 1 and 2 ranks, then (if the command
    exists) training on 1 and 2 threads and an evaluation, laid out like the workflow's."""
    if not stage_available("spectrograms"):
        pytest.skip("stage not available yet: genreflow spectrograms")
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec next to {sys.executable}")
    root = tmp_path_factory.mktemp("report-real")
    manifest = make_clips(root / "audio")
    results = root / "results"
    features = results / "tiny" / "features" / "fh"
    run_in_turn(
        genreflow_cmd(
            "spectrograms", "--manifest", str(manifest), "--out", str(features / "ranks1")
        ),
        genreflow_cmd(
            "spectrograms", "--manifest", str(manifest), "--out", str(features / "ranks2"), ranks=2
        ),
    )
    stages = {"spectrograms"}
    if stage_available("train"):
        models = results / "tiny" / "models" / "fh-th"
        run_in_turn(
            *(
                genreflow_cmd(
                    "train",
                    "--features",
                    str(features / "ranks2"),
                    "--out",
                    str(models / "sweep" / f"threads{n}"),
                    "--threads",
                    str(n),
                    "--epochs",
                    "1",
                    "--sweep-point",
                )
                for n in (1, 2)
            )
        )
        stages.add("train")
        if stage_available("evaluate"):
            run_together(
                genreflow_cmd(
                    "evaluate",
                    "--model",
                    str(models / "sweep" / "threads2"),
                    "--features",
                    str(features / "ranks2"),
                    "--out",
                    str(models / "eval"),
                    settings=False,  # the model directory carries its own settings
                )
            )
            stages.add("evaluate")
    return results, stages


@pytest.fixture(scope="module")
def real_report(real_results, tmp_path_factory):
    results, stages = real_results
    out = tmp_path_factory.mktemp("report-out")
    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    return results, stages, out, json.loads((out / "summary.json").read_text())


# ---- helpers that read what the stages logged, independently of genreflow.report ---------


def logged_times(results: Path, stage: str) -> dict[int, list[float]]:
    """``{workers: [seconds, ...]}`` straight from the timings.json files of one stage.

    Spectrograms: the work seconds (scatter to the last shard). Training: median seconds of
    the epochs' training steps over the epochs after a run's first (all of them when there is
    only one).
    """
    times: dict[int, list[float]] = {}
    for path in results.rglob("timings.json"):
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # the report skips it too, with a note
        if data.get("stage") != stage or data.get("resumed_clips"):
            continue  # resumed runs: the report leaves them out, with a note
        if stage == "spectrograms":
            # Records with a start time give the work window; older ones wall minus start-up.
            work = (
                data["work_seconds"]
                if "start_time" in data
                else data["wall_seconds"] - data["startup_seconds"]
            )
            times.setdefault(data["n_ranks"], []).append(work)
        else:
            epochs = [e for e in data["epochs"] if not e.get("warmup")] or data["epochs"]
            times.setdefault(data["threads"]["intra_op"], []).append(
                statistics.median(e["train_seconds"] for e in epochs)
            )
    return times


def check_speedups(entry: dict, times: dict[int, list[float]]) -> None:
    """The summary's speed-ups are the ratios of the logged times."""
    medians = {n: statistics.median(ts) for n, ts in times.items()}
    base = min(medians)
    best = min(medians, key=lambda n: (medians[n], n))
    assert entry["baseline"]["count"] == base
    assert entry["best"]["count"] == best
    assert entry["baseline"]["seconds"] == pytest.approx(medians[base], rel=1e-9)
    assert entry["best"]["seconds"] == pytest.approx(medians[best], rel=1e-9)
    assert entry["speedup"] == pytest.approx(medians[base] / medians[best], rel=1e-9)
    for point in entry["points"]:
        n = point["count"]
        assert point["speedup"] == pytest.approx(medians[base] / medians[n], rel=1e-9)
        assert point["efficiency"] == pytest.approx(point["speedup"] / (n / base), rel=1e-9)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def check_self_contained(out: Path) -> list[bytes]:
    """report.html references nothing outside itself; returns the embedded PNGs."""
    text = (out / "report.html").read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(text)
    embedded = []
    for tag, attrs in parser.tags:
        assert tag not in ("link", "script", "iframe", "object", "embed"), tag
        for key in ("src", "href", "srcset", "data"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), f"<{tag} {key}={attrs[key][:60]!r}>"
        if tag == "img":
            prefix = "data:image/png;base64,"
            assert attrs["src"].startswith(prefix)
            png = base64.b64decode(attrs["src"][len(prefix) :], validate=True)
            assert png[:8] == PNG_MAGIC
            embedded.append(png)
    assert "url(" not in text and "@import" not in text
    # Each embedded image is one of the PNGs written beside the report.
    files = {p.read_bytes() for p in out.glob("*.png")}
    assert all(png in files for png in embedded)
    return embedded


# ---- the Amdahl fit ------------------------------------------------------------------------


def amdahl_times(*, f: float, t1: float, counts, noise: float, seed: int) -> np.ndarray:
    """Times from Amdahl's law with multiplicative Gaussian noise."""
    n = np.asarray(counts, dtype=float)
    rng = np.random.default_rng(seed)
    return t1 * (f + (1 - f) / n) * (1 + noise * rng.standard_normal(len(n)))


def test_fit_recovers_known_serial_fraction():
    counts = [1, 2, 4, 8, 16]
    fit = fit_amdahl(
        counts=counts, times=amdahl_times(f=0.1, t1=100.0, counts=counts, noise=0.01, seed=1)
    )
    assert fit.serial_fraction == pytest.approx(0.1, abs=0.01)
    assert fit.serial_fraction_se is not None and 0 < fit.serial_fraction_se < 0.01
    assert abs(fit.serial_fraction - 0.1) < 4 * fit.serial_fraction_se
    assert fit.t1 == pytest.approx(100.0, rel=0.02)
    assert fit.max_speedup == pytest.approx(1 / fit.serial_fraction)
    # The fitted curve passes through the measured speed-ups.
    speedups = fit.speedup(counts)
    assert speedups[0] == pytest.approx(1.0)
    assert speedups[-1] == pytest.approx(1 / (0.1 + 0.9 / 16), rel=0.05)


def test_fit_on_exact_times_is_exact_and_certain():
    counts = [1, 2, 3, 4, 6, 8]
    times = amdahl_times(f=0.25, t1=40.0, counts=counts, noise=0.0, seed=0)
    fit = fit_amdahl(counts=counts, times=times)
    assert fit.serial_fraction == pytest.approx(0.25, abs=1e-12)
    assert fit.serial_fraction_se == pytest.approx(0.0, abs=1e-9)
    assert fit.note is None


def test_fit_with_two_points_has_no_uncertainty_and_says_why():
    fit = fit_amdahl(counts=[1, 2], times=[10.0, 6.0])
    assert fit.serial_fraction == pytest.approx(0.2)  # 6 = 10 (f + (1 - f) / 2)
    assert fit.serial_fraction_se is None
    assert "two points" in fit.note


def test_fit_needs_two_distinct_counts():
    fit = fit_amdahl(counts=[2, 2], times=[5.0, 5.2])
    assert not fit.ok and fit.serial_fraction is None
    assert "not enough points for a fit" in fit.note


def test_fit_flags_slowdown():
    fit = fit_amdahl(counts=[1, 2, 4], times=[10.0, 11.0, 12.0])
    assert not fit.ok and fit.serial_fraction is None and fit.intercept is None
    assert "slower" in fit.note and "overhead dominates" in fit.note
    faster = fit_amdahl(counts=[1, 2, 4], times=[10.0, 4.0, 1.5])  # super-linear
    assert not faster.ok and "super-linear" in faster.note


def test_scaling_efficiency_per_core_and_oversubscription():
    counts = [1, 2, 4, 4]
    times = amdahl_times(f=0.05, t1=50.0, counts=counts, noise=0.02, seed=3)
    result = scaling(counts=counts, times=times, cores=2)
    assert [p.count for p in result.points] == [1, 2, 4]
    assert [p.runs for p in result.points] == [1, 1, 2]
    assert [p.oversubscribed for p in result.points] == [False, False, True]
    four = result.points[2]
    assert four.seconds == pytest.approx(statistics.median(times[2:]))
    assert four.speedup == pytest.approx(times[0] / four.seconds)
    assert four.efficiency == pytest.approx(four.speedup / 4)
    assert four.core_efficiency == pytest.approx(four.speedup / 2)  # only 2 cores to use
    assert result.best.count == 4 and result.baseline.count == 1
    # The fit uses every run, not the medians, but only where each worker had a core.
    assert result.fit.n_points == 2
    assert scaling(counts=counts, times=times).fit.n_points == 4  # cores unknown: every run


# ---- a report through timing files ---------------------------------------------------------


def write_sweep(results: Path, *, f: float, t1: float, counts, cores: int, seed: int) -> dict:
    """Spectrogram timings.json files (docs/formats.md) with work times from Amdahl's law.

    Returns ``{n_ranks: compute seconds}``.
    """
    times = amdahl_times(f=f, t1=t1, counts=counts, noise=0.01, seed=seed)
    compute = {}
    for n, work in zip(counts, times, strict=True):
        startup = 1.5 + 0.25 * n  # launching more ranks takes longer, and does not parallelise
        share = work / n
        ranks = [
            {
                "rank": r,
                "host": "node01",
                "files": 100 // n,
                "segments": 1000 // n,
                "seconds": {
                    "import": 1.0,
                    "warmup": 0.2,
                    "setup": 0.1,
                    "decode": 0.2 * share,
                    "resample": 0.1 * share,
                    "mel": 0.6 * share,
                    "write": 0.1 * share,
                    "total": 1.3 + share,
                },
            }
            for r in range(n)
        ]
        record = {
            "stage": "spectrograms",
            "n_ranks": n,
            "wall_seconds": startup + work,
            "startup_seconds": startup,
            "hosts": ["node01"],
            "threads_per_rank": 1,
            "cpu_count": cores,
            "files": 100,
            "segments": 1000,
            "config_hash": "feedc0de",
            "launcher": "mpiexec",
            "ranks": ranks,
        }
        folder = results / "demo" / "features" / "feedc0de" / f"ranks{n}"
        folder.mkdir(parents=True)
        (folder / "timings.json").write_text(json.dumps(record))
        compute[n] = work
    return compute


def test_report_recovers_serial_fraction_and_notes_missing_stages(tmp_path, capsys):
    results = tmp_path / "results"
    counts = [1, 2, 4, 8, 16]
    write_sweep(results, f=0.1, t1=100.0, counts=counts, cores=4, seed=5)
    # Files the report cannot use: named in a note, the rest goes on.
    bad = results / "demo" / "broken"
    bad.mkdir(parents=True)
    (bad / "timings.json").write_text("{not json")
    (bad / "other_timings.json").write_text(json.dumps({"stage": "serve", "seconds": 1}))
    # A run that resumed an interrupted one timed only part of the stage: left out, with why.
    first = json.loads((results / "demo/features/feedc0de/ranks2/timings.json").read_text())
    resumed = bad.parent / "resumed"
    resumed.mkdir()
    (resumed / "timings.json").write_text(
        json.dumps({**first, "resumed_clips": 7, "files": 3, "wall_seconds": 1.0})
    )
    out = results / "report"  # inside the results: must not be read back as input

    assert main(["report", "--results", str(results), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())

    (entry,) = summary["stages"]
    assert entry["stage"] == "spectrograms" and entry["axis"] == "ranks"
    fit = entry["fit"]
    assert fit["serial_fraction"] == pytest.approx(0.1, abs=0.015)
    assert fit["serial_fraction_se"] is not None and fit["serial_fraction_se"] < 0.02
    check_speedups(entry, logged_times(results, "spectrograms"))
    assert [p["oversubscribed"] for p in entry["points"]] == [False, False, False, True, True]
    assert entry["cores"] == 4 and entry["cores_source"] == "recorded (cpu_count)"
    assert [p["startup_seconds"] for p in entry["points"]] == [1.5 + 0.25 * n for n in counts]

    notes = summary["notes"]
    assert any("no training timings found" in n for n in notes["train"])
    assert any("no evaluation metrics found" in n for n in notes["quality"])
    assert any("broken/timings.json" in n and "not valid JSON" in n for n in notes["files"])
    assert any("broken/other_timings.json" in n and "'serve'" in n for n in notes["files"])
    assert any("resumed/timings.json" in n and "a resumed run" in n for n in notes["files"])
    markdown = (out / "report.md").read_text()
    for text in ("no training timings found", "no evaluation metrics found", "not valid JSON"):
        assert text in markdown
    assert "162 s -> 26.0 s" in markdown and "not measured here" in markdown  # their figures

    embedded = check_self_contained(out)
    drawn = summary["files"]["plots"]
    assert set(drawn) == {"scaling_ranks", "load_balance"}
    assert sorted(embedded) == sorted((out / Path(p).name).read_bytes() for p in drawn.values())
    # Figures without data still exist (a workflow may declare them) but are not in the report.
    for name in ("scaling_threads.png", "training_curves.png", "confusion.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
        assert name not in markdown

    table = list(csv.DictReader((out / "summary_table.csv").read_text().splitlines()))
    assert len(table) == 1 and float(table[0]["speedup"]) == pytest.approx(entry["speedup"], 1e-3)
    lines = summary_lines(summary)
    assert any(line.startswith("spectrograms: 1 rank") for line in lines)
    assert lines[0] in printed


def _edit_timings(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_runs_that_overlapped_on_a_host_are_named_and_left_out(tmp_path):
    results = tmp_path / "results"
    write_sweep(results, f=0.1, t1=100.0, counts=[1, 2, 4], cores=4, seed=2)
    folder = results / "demo" / "features" / "feedc0de"
    spans = {1: (1000.0, 1100.0), 2: (2000.0, 2060.0), 4: (2050.0, 2090.0)}  # 2 and 4 overlap
    for n, (start, end) in spans.items():
        _edit_timings(folder / f"ranks{n}" / "timings.json", start_time=start, end_time=end)
    summary = build_report(results=results, out=tmp_path / "report")
    (entry,) = summary["stages"]
    assert [p["count"] for p in entry["points"]] == [1]
    notes = " ".join(summary["notes"]["spectrograms"])
    assert "ranks2/timings.json ran at the same time as" in notes and "ranks4" in notes
    assert "node01" in notes and "left out" in notes

    # Runs on different hosts share no cores: both stay.
    _edit_timings(folder / "ranks4" / "timings.json", hosts=["node02"])
    summary = build_report(results=results, out=tmp_path / "report2")
    (entry,) = summary["stages"]
    assert [p["count"] for p in entry["points"]] == [1, 2, 4]
    assert not any("same time" in n for n in summary["notes"]["spectrograms"])


def test_slower_with_more_ranks_says_overhead_dominates_and_gives_the_break_even(tmp_path):
    results = tmp_path / "results"
    write_sweep(results, f=0.1, t1=10.0, counts=[1, 2], cores=2, seed=0)
    folder = results / "demo" / "features" / "feedc0de"
    # 100 clips: 1 rank works 2.0 s with 1 s of fixed costs; 2 ranks work 1.5 s (faster per
    # clip) but pay 2 s of fixed costs, so their work alone is faster and the wall time not.
    for n, (start, wall, startup, work) in {
        1: (0.0, 3.0, 0.5, 2.0),
        2: (10.0, 3.5, 1.0, 1.5),
    }.items():
        _edit_timings(
            folder / f"ranks{n}" / "timings.json",
            start_time=start,
            end_time=start + wall,
            wall_seconds=wall,
            startup_seconds=startup,
            work_seconds=work,
        )
    summary = build_report(results=results, out=tmp_path / "report")
    (entry,) = summary["stages"]
    two = entry["points"][1]
    assert two["fixed_seconds"] == pytest.approx(2.0)
    # Pays off from C clips with 2 + 0.015 C < 1 + 0.02 C: C = 200, 100 per rank.
    assert two["break_even_clips_per_rank"] == pytest.approx(100.0)
    assert entry["fastest"] == 2 and "verdict" not in entry

    _edit_timings(folder / "ranks2" / "timings.json", work_seconds=2.5)
    summary = build_report(results=results, out=tmp_path / "report2")
    (entry,) = summary["stages"]
    assert entry["fastest"] == 1 and entry["fit"]["serial_fraction"] is None
    assert "overhead dominates at this size" in entry["verdict"]
    assert entry["points"][1]["break_even_clips_per_rank"] is None  # slower per clip too
    line = next(x for x in summary_lines(summary) if x.startswith("spectrograms:"))
    assert "fastest 1 rank" in line and "overhead dominates" in line and "Amdahl" not in line


def test_weak_scaling_runs_form_their_own_sweep(tmp_path):
    results = tmp_path / "results"
    write_sweep(results, f=0.1, t1=10.0, counts=[1, 2], cores=2, seed=0)
    weak = results / "demo" / "features" / "feedc0de" / "weak25"
    for n, work in ((1, 1.0), (2, 1.25)):
        record = json.loads((weak.parent / f"ranks{n}" / "timings.json").read_text())
        record.update(
            scaling="weak",
            clips_per_rank=25,
            files=25 * n,
            work_seconds=work,
            start_time=100.0 * n,
            end_time=100.0 * n + 5,
        )
        (weak / f"ranks{n}").mkdir(parents=True)
        (weak / f"ranks{n}" / "timings.json").write_text(json.dumps(record))
    summary = build_report(results=results, out=tmp_path / "report")
    stages = {s["stage"]: s for s in summary["stages"]}
    assert set(stages) == {"spectrograms", "spectrograms_weak"}
    assert [p["count"] for p in stages["spectrograms"]["points"]] == [1, 2]
    points = stages["spectrograms_weak"]["points"]
    assert [p["efficiency"] for p in points] == pytest.approx([1.0, 0.8])
    assert [p["speedup"] for p in points] == pytest.approx([1.0, 1.6])
    assert "weak scaling" in (tmp_path / "report" / "report.md").read_text()
    line = next(x for x in summary_lines(summary) if x.startswith("spectrograms, weak"))
    assert "2 ranks 1.25 s (efficiency 80.0%)" in line
    assert not any("above 100 %" in n for n in summary["notes"]["spectrograms"])

    _edit_timings(weak / "ranks2" / "timings.json", work_seconds=0.9)  # "faster" with 2x work
    summary = build_report(results=results, out=tmp_path / "report2")
    assert any(
        "weak-scaling efficiency above 100 % at 2 ranks" in n and "noise" in n
        for n in summary["notes"]["spectrograms"]
    )


def test_one_point_sweep_and_empty_results_give_notes(tmp_path):
    results = tmp_path / "results"
    write_sweep(results, f=0.1, t1=10.0, counts=[2], cores=2, seed=0)
    summary = build_report(results=results, out=tmp_path / "report")
    (entry,) = summary["stages"]
    assert entry["speedup"] == 1.0 and entry["fit"]["serial_fraction"] is None
    notes = summary["notes"]["spectrograms"]
    assert any("not enough points for a fit" in n for n in notes)
    assert any("no 1-rank run" in n for n in notes)

    empty = tmp_path / "empty"
    empty.mkdir()
    summary = build_report(results=empty, out=tmp_path / "report-empty")
    assert summary["stages"] == [] and summary["files"]["plots"] == {}
    assert "no stage timings found" in " ".join(summary_lines(summary))
    check_self_contained(tmp_path / "report-empty")


# ---- real Snakemake benchmark files ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not SNAKEMAKE.exists(), reason="no snakemake in the environment")
def test_snakemake_benchmark_files_are_read(tmp_path):
    workdir = tmp_path / "results" / "demo"
    workdir.mkdir(parents=True)
    (workdir / "Snakefile").write_text(
        "rule all:\n"
        '    input: "out/ranks2.txt"\n'
        "rule work:\n"
        '    output: "out/ranks{n}.txt"\n'
        '    benchmark: repeat("benchmarks/work/ranks{n}.tsv", 2)\n'
        f"    shell: \"{sys.executable} -c 'sum(range(10**6))' && echo done > {{output}}\"\n"
    )
    done = subprocess.run(
        [str(SNAKEMAKE), "-c1", "-q", "--directory", str(workdir), "-s", "Snakefile"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tsv = workdir / "benchmarks" / "work" / "ranks2.tsv"
    rows = list(csv.DictReader(tsv.read_text().splitlines(), delimiter="\t"))
    assert len(rows) == 2

    (bench,) = collect(results=tmp_path / "results").benchmarks
    assert (bench.rule, bench.count_kind, bench.count, len(bench.rows)) == ("work", "ranks", 2, 2)
    assert bench.median("s") == pytest.approx(statistics.median(float(r["s"]) for r in rows))
    summary = build_report(results=tmp_path / "results", out=tmp_path / "report")
    (entry,) = summary["benchmarks"]
    assert entry["path"] == "demo/benchmarks/work/ranks2.tsv" and entry["repeats"] == 2


# ---- real tiny runs of the stages ------------------------------------------------------------


@pytest.mark.slow
def test_speedups_are_the_ratios_of_the_logged_times(real_report):
    results, stages, out, summary = real_report
    by_stage = {s["stage"]: s for s in summary["stages"]}
    check_speedups(by_stage["spectrograms"], logged_times(results, "spectrograms"))
    assert {p["count"] for p in by_stage["spectrograms"]["points"]} == {1, 2}
    if "train" not in stages:
        pytest.skip("stage not available yet: genreflow train")
    check_speedups(by_stage["train"], logged_times(results, "train"))
    assert {p["count"] for p in by_stage["train"]["points"]} == {1, 2}
    assert "training_curves" in summary["files"]["plots"]


@pytest.mark.slow
def test_real_report_is_self_contained(real_report):
    _, stages, out, summary = real_report
    embedded = check_self_contained(out)
    assert len(embedded) == len(summary["files"]["plots"]) >= 2
    (balance,) = [e for e in summary["load_balance"] if e["n_ranks"] == 2]
    totals = [r["seconds"]["total"] for r in balance["per_rank"]]
    assert balance["imbalance"] == pytest.approx(max(totals) / statistics.fmean(totals))
    env = summary["environment"]
    assert env["packages"]["numpy"] == np.__version__
    assert env["mpi_library"]  # the venv's MPICH answers Get_library_version
    if "evaluate" in stages:
        assert "confusion" in summary["files"]["plots"]


# ---- the command line ------------------------------------------------------------------------


def test_report_help():
    done = subprocess.run(
        [sys.executable, "-m", "genreflow", "report", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "--results" in done.stdout and "--out" in done.stdout


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_results_path_is_a_one_line_error(tmp_path, kind):
    results = tmp_path / "nowhere"
    if kind == "file":
        results.write_text("not a folder")
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "genreflow", "report", "--results", str(results), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(results) in lines[0] and "error" in lines[0]
    assert not out.exists()


def test_superlinear_efficiency_is_flagged_as_a_slow_baseline(tmp_path):
    results = tmp_path / "results"
    write_sweep(results, f=0.1, t1=10.0, counts=[1, 2], cores=2, seed=0)
    folder = results / "demo" / "features" / "feedc0de"
    for n, work in ((1, 4.0), (2, 1.5)):  # 2.67x on 2 ranks
        _edit_timings(
            folder / f"ranks{n}" / "timings.json",
            wall_seconds=work + 0.5,
            startup_seconds=0.5,
            work_seconds=work,
        )
    summary = build_report(results=results, out=tmp_path / "report")
    notes = " ".join(summary["notes"]["spectrograms"])
    assert "efficiency above 100 % at ranks 2 (133%)" in notes and "repeat the sweep" in notes
    line = next(x for x in summary_lines(summary) if x.startswith("spectrograms:"))
    assert "above 100 %: a slow baseline run" in line


def _write_train_sweep(results: Path, *, cpu_share_1: float) -> None:
    """Two thread-sweep runs whose 1-thread epochs are 2.6x the 2-thread ones."""
    for n, epoch, total in ((1, 2.6, 30.0), (2, 1.0, 12.0)):
        folder = results / "demo" / "models" / "feedc0de-0ddba11" / "sweep" / f"threads{n}"
        folder.mkdir(parents=True)
        epochs = [{"epoch": 1, "seconds": 4.0, "samples": 400, "warmup": True}] + [
            {"epoch": e, "seconds": epoch, "train_seconds": epoch, "samples": 400}
            for e in (2, 3, 4)
        ]
        share = cpu_share_1 if n == 1 else 0.7
        timings = {
            "stage": "train",
            "role": "sweep",
            "host": "node01",
            "cpu_count": 2,
            "features_hash": "feedc0de",
            "threads": {"intra_op": n, "inter_op": n, "cpus": list(range(n))},
            "epochs": epochs,
            "total_seconds": total,
            "cpu_seconds": share * total * n,
        }
        (folder / "timings.json").write_text(json.dumps(timings))


@pytest.mark.parametrize(("share", "told"), [(0.61, True), (0.97, False)])
def test_a_slow_baseline_note_gives_the_cpu_time_it_had(tmp_path, share, told):
    results = tmp_path / "results"
    _write_train_sweep(results, cpu_share_1=share)
    summary = build_report(results=results, out=tmp_path / "report")
    (train,) = [s for s in summary["stages"] if s["stage"] == "train"]
    assert train["baseline"]["cpu_share"] == pytest.approx(share)
    (note,) = [n for n in summary["notes"]["train"] if "efficiency above 100 %" in n]
    assert ("it had 61% of the CPU time its cores could give" in note) is told


def test_only_keeps_the_current_configuration_and_names_the_others(tmp_path):
    results = tmp_path / "results"
    write_sweep(results, f=0.1, t1=10.0, counts=[1, 2], cores=2, seed=0)
    old = results / "demo" / "features" / "0ldc0de0"
    shutil.copytree(results / "demo" / "features" / "feedc0de", old)
    everything = build_report(results=results / "demo", out=tmp_path / "all")
    assert [p["runs"] for p in everything["stages"][0]["points"]] == [2, 2]  # both folders
    current = build_report(
        results=results / "demo", out=tmp_path / "current", only=["features/feedc0de"]
    )
    (entry,) = current["stages"]
    assert [p["runs"] for p in entry["points"]] == [1, 1]
    assert any("features/0ldc0de0" in n and "--only" in n for n in current["notes"]["files"])
