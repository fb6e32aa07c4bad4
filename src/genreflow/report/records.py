"""The records a results tree is read into: one dataclass per kind of file, and their phases.

:mod:`genreflow.report.readers` fills them from files; :mod:`genreflow.report.collect` gathers
them into a :class:`Collected` for the summary, the document and the plots.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from genreflow.core.errors import GenreflowError

#: Per-rank phases of the spectrogram stage, in pipeline order (``ranks[].seconds``).
RANK_PHASES = ("import", "warmup", "setup", "decode", "resample", "mel", "write", "previews")

#: Phases before a rank's first clip: imports, warm-up, and waiting for rank 0's plan.
STARTUP_PHASES = ("import", "warmup", "setup")

#: First columns of a Snakemake ``benchmark:`` file (snakemake/benchmark.py, 9.x).
BENCHMARK_HEADER = ("s", "h:m:s", "max_rss", "max_vms", "max_uss", "max_pss")


class UnusableFile(GenreflowError):
    """A file is not usable for the report; the message says why."""


@dataclass(frozen=True)
class RankTiming:
    """One MPI rank of a spectrogram run: its host, work and per-phase seconds."""

    rank: int
    host: str | None
    files: int | None
    segments: int | None
    seconds: Mapping[str, float]

    @property
    def total(self) -> float:
        """The rank's total seconds (``seconds.total``, else the sum of its phases)."""
        if "total" in self.seconds:
            return self.seconds["total"]
        return sum(v for k, v in self.seconds.items() if k != "total")

    @property
    def work(self) -> float:
        """Seconds spent on clips: total minus the start-up phases."""
        return max(self.total - sum(self.seconds.get(k, 0.0) for k in STARTUP_PHASES), 0.0)


@dataclass(frozen=True)
class SpectrogramRun:
    """One ``genreflow spectrograms`` job, read from its ``timings.json``."""

    path: Path
    n_ranks: int
    wall_seconds: float
    startup_seconds: float
    hosts: tuple[str, ...]
    threads_per_rank: int | None
    files: int | None
    segments: int | None
    config_hash: str | None
    launcher: str | None
    ranks: tuple[RankTiming, ...]
    cores: int | None
    cores_source: str | None
    work_seconds: float | None = None
    start_time: float | None = None  # epoch seconds: the first rank started
    end_time: float | None = None  # epoch seconds: the outputs were written
    blas_threads: tuple[int, ...] = ()
    scaling: str = "strong"  # strong: the whole manifest; weak: clips_per_rank x ranks clips
    clips_per_rank: int | None = None

    @property
    def compute_seconds(self) -> float:
        """The part that parallel ranks can shorten: from the scatter to the last rank's last
        shard (older records: wall time without start-up)."""
        if self.work_seconds is not None:
            return self.work_seconds
        return max(self.wall_seconds - self.startup_seconds, 0.0)

    @property
    def fixed_seconds(self) -> float:
        """Wall time outside the parallel work: start-up, previews, writing the outputs."""
        return max(self.wall_seconds - self.compute_seconds, 0.0)

    @property
    def nodes(self) -> int:
        return max(len(set(self.hosts)), 1)


@dataclass(frozen=True)
class EpochTiming:
    """One epoch; ``warmup`` marks a run's first epoch (it includes graph tracing)."""

    epoch: int
    seconds: float
    samples: int | None
    samples_per_second: float | None
    warmup: bool = False
    train_seconds: float | None = None  # the epoch's steps only, without validation/callbacks


@dataclass(frozen=True)
class EmbedRun:
    """One ``genreflow embed`` job: the backbone over every train/valid segment, N threads."""

    path: Path
    intra_op: int
    host: str | None
    device: str | None
    seconds: float  # the forward passes (loading the backbone apart)
    segments: int
    clips: int
    segments_per_second: float | None
    seconds_per_30s_clip: float | None
    config_hash: str | None
    cores: int | None
    cores_source: str | None
    bound_cpus: int | None = None
    start_time: float | None = None
    end_time: float | None = None

    @property
    def hosts(self) -> tuple[str, ...]:
        return (self.host,) if self.host else ()


@dataclass(frozen=True)
class TrainRun:
    """One ``genreflow train`` job (a thread-sweep benchmark or the real training)."""

    path: Path
    intra_op: int
    inter_op: int | None
    device: str | None
    host: str | None
    epochs: tuple[EpochTiming, ...]
    total_seconds: float | None
    samples_per_second: float | None
    workers: int
    config_hash: str | None
    cores: int | None
    cores_source: str | None
    allreduce_fraction: float | None = None
    start_time: float | None = None  # epoch seconds
    end_time: float | None = None
    bound_cpus: int | None = None  # CPUs the process was bound to (None: not recorded)
    role: str = "sweep"  # sweep: a timing point; production: the model the workflow ships
    cpu_seconds: float | None = None  # CPU time of the whole process, over total_seconds

    @property
    def cpu_share(self) -> float | None:
        """CPU time over the wall time its cores could give: ``cpu_seconds`` / (``total_seconds``
        x bound cores, else intra-op threads). A one-thread run well below 1 lost its core to
        another load for that share of the time."""
        cores = self.bound_cpus or self.intra_op
        if self.cpu_seconds is None or not self.total_seconds or not cores:
            return None
        return self.cpu_seconds / (self.total_seconds * cores)

    @property
    def steady_epochs(self) -> tuple[EpochTiming, ...]:
        """The epochs after a run's first (warm-up) epoch; all of them if there are no others."""
        return tuple(e for e in self.epochs if not e.warmup) or self.epochs

    @property
    def epoch_seconds(self) -> float:
        """Median seconds of the steady epochs' training steps (the median keeps one slow
        epoch from skewing; validation, callbacks and checkpoints are per-epoch costs that
        :attr:`overhead_fraction` gives apart). Older records without ``train_seconds``:
        the whole epoch."""
        return statistics.median(
            e.train_seconds if e.train_seconds is not None else e.seconds
            for e in self.steady_epochs
        )

    @property
    def overhead_fraction(self) -> float | None:
        """Share of the steady epochs' time outside the training steps (validation,
        callbacks, checkpoints): per-epoch costs that more threads do not shorten."""
        steady = [e for e in self.steady_epochs if e.train_seconds is not None]
        total = sum(e.seconds for e in steady)
        if not steady or total <= 0:
            return None
        return max(0.0, 1.0 - sum(e.train_seconds for e in steady) / total)

    @property
    def samples_per_epoch(self) -> int | None:
        counts = [e.samples for e in self.epochs if e.samples]
        return int(statistics.median(counts)) if counts else None

    @property
    def throughput(self) -> float | None:
        """Training samples per second: the stage's own figure, else samples over seconds."""
        if self.samples_per_second:
            return self.samples_per_second
        samples = sum(e.samples or 0 for e in self.epochs)
        seconds = sum(e.seconds for e in self.epochs)
        return samples / seconds if samples and seconds > 0 else None


@dataclass(frozen=True)
class History:
    """Per-epoch training curves from a ``history.json``: ``{"loss": [...], ...}``."""

    path: Path
    curves: Mapping[str, tuple[float, ...]]

    @property
    def n_epochs(self) -> int:
        return max((len(v) for v in self.curves.values()), default=0)


@dataclass(frozen=True)
class Metrics:
    """An evaluation ``metrics.json``.

    A multi-label one (``multilabel``) has no accuracies or confusion matrix; its scores are
    ``micro_f1``, ``macro_f1`` and ``mean_ap``, and ``per_class`` holds its ``per_label``
    rows (with ``average_precision`` and ``threshold``).
    """

    path: Path
    clip_accuracy: float | None
    segment_accuracy: float | None
    macro_f1: float | None
    labels: tuple[str, ...] | None
    confusion: tuple[tuple[float, ...], ...] | None
    per_class: Mapping[str, Mapping[str, float]]
    baseline: Mapping[str, float]
    baseline_method: str | None = None
    classical: Mapping[str, float] = field(default_factory=dict)
    ensemble: Mapping[str, float] = field(default_factory=dict)
    verdict: str | None = None
    model_name: str = "CNN"
    multilabel: bool = False
    micro_f1: float | None = None
    mean_ap: float | None = None
    subset_accuracy: float | None = None


@dataclass(frozen=True)
class BenchmarkFile:
    """A Snakemake ``benchmark:`` file; ``rows`` holds one dict per repeat."""

    path: Path
    rule: str
    count_kind: str | None
    count: int | None
    rows: tuple[Mapping[str, float | str | None], ...]

    def median(self, column: str) -> float | None:
        values = [r[column] for r in self.rows if isinstance(r.get(column), float)]
        return statistics.median(values) if values else None


@dataclass
class Collected:
    """Everything read from one results tree, plus a note for each file that was skipped."""

    results: Path
    spectrograms: list[SpectrogramRun] = field(default_factory=list)
    train: list[TrainRun] = field(default_factory=list)
    embed: list[EmbedRun] = field(default_factory=list)
    heads: list[dict] = field(default_factory=list)  # timings.json of heads on a backbone
    histories: list[History] = field(default_factory=list)
    metrics: list[Metrics] = field(default_factory=list)
    benchmarks: list[BenchmarkFile] = field(default_factory=list)
    choices: list[dict] = field(default_factory=list)  # production.json: settings chosen
    config_hashes: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def relative(self, path: Path) -> str:
        """``path`` relative to the results folder (as shown in the report)."""
        try:
            return path.relative_to(self.results).as_posix()
        except ValueError:
            return str(path)
