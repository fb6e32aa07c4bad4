"""Train the genre CNN on a feature directory and export a self-contained model directory.

Set the thread pools first (``genreflow.core.threads``): this module imports TensorFlow.

A run reads its inputs (:mod:`genreflow.training.dataset`), builds and compiles the model or
resumes it from its checkpoints (:mod:`genreflow.training.checkpoints`), fits it on the
``tf.data`` pipeline (:mod:`genreflow.training.pipeline`), then exports the model directory
(:mod:`genreflow.training.export`) and its timings (:mod:`genreflow.training.timing`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from genreflow.core.atomic import write_json
from genreflow.core.device import describe_device
from genreflow.core.errors import StageError
from genreflow.core.runlock import output_lock
from genreflow.training.checkpoints import TrainingRecord, load_state, new_state, resume_key
from genreflow.training.dataset import TrainingData, read_training_data
from genreflow.training.distributed import (
    WorkerGroup,
    close_leaked_pools,
    lost_worker_message,
    worker_batch,
)
from genreflow.training.export import export_run
from genreflow.training.model import compile_model
from genreflow.training.pipeline import TrainingPipelines, training_pipelines
from genreflow.training.timing import run_timings

__all__ = ["TrainResult", "train_model"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes
    ----------
    model_dir : Path
    epochs_done : int
        Epochs completed in total (this run and the ones it resumed).
    best_epoch : int
        1-based epoch whose weights were exported.
    stopped : str
        ``"epochs"``, ``"early_stopping"`` or ``"max_seconds"``.
    resumed_from : int
        Epochs already done when this run started (0 = fresh start).
    history : list of dict
    timings : dict
    """

    model_dir: Path
    epochs_done: int
    best_epoch: int
    stopped: str
    resumed_from: int
    history: list[dict]
    timings: dict


@dataclass(frozen=True)
class _Run:
    """One run's settings, fixed before its data is read.

    ``epochs`` counts the resumed epochs too; ``batch`` is
    :func:`genreflow.training.distributed.worker_batch` of ``group``; ``clock`` is the start:
    ``time.perf_counter()``, ``time.process_time()`` and the ISO start time.
    """

    cfg: Mapping[str, Any]
    epochs: int
    max_seconds: float | None
    verbose: int
    out: Path
    group: WorkerGroup
    strategy: tf.distribute.Strategy | None
    batch: dict[str, Any]
    threads: Mapping[str, Any]
    clock: tuple[float, float, str]
    role: str = "production"

    @property
    def tcfg(self) -> Mapping[str, Any]:
        """The ``train`` configuration section."""
        return self.cfg["train"]

    @property
    def checkpoint_dir(self) -> Path:
        """Where the checkpoints and ``state.json`` live."""
        return self.out / "checkpoints"


def train_model(
    *,
    features_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: Mapping[str, Any],
    threads: Mapping[str, Any],
    epochs: int | None = None,
    max_seconds: float | None = None,
    verbose: int | None = None,
    workers: WorkerGroup | None = None,
    strategy: tf.distribute.Strategy | None = None,
    role: str = "production",
) -> TrainResult:
    """Train (or resume training) and export ``out_dir``.

    Parameters
    ----------
    features_dir : path-like
        Output of ``genreflow spectrograms`` (needs train and valid clips).
    out_dir : path-like
        The model directory (see docs/formats.md, "Model directory").
    cfg : mapping
        Validated configuration; uses the ``train`` section.
    threads : mapping
        Thread settings in force (from :func:`genreflow.core.threads.configure_tensorflow`), recorded.
    epochs, max_seconds : optional
        Override ``train.epochs`` / ``train.max_seconds`` (short benchmark runs).
    verbose : int or None
        Keras verbosity; default 1 (progress bar) on a terminal, else 2 (one line per epoch).
    workers : WorkerGroup, optional
        This process's place among data-parallel workers (default: one worker).
    strategy : tf.distribute.MultiWorkerMirroredStrategy, optional
        The strategy of ``workers`` (from :func:`genreflow.training.distributed.build_strategy`);
        required when there are several workers. Only the chief (worker 0) writes files.
    role : {"production", "sweep"}
        Recorded in ``timings.json``: a sweep run is a timing point of the report; a
        production run is not (it may share its node with other jobs).

    Returns
    -------
    TrainResult
    """
    run = _settings(
        cfg,
        out_dir=out_dir,
        threads=threads,
        epochs=epochs,
        max_seconds=max_seconds,
        verbose=verbose,
        workers=workers,
        strategy=strategy,
        role=role,
    )
    # Only the chief writes to out_dir, so only the chief holds it.
    lock = output_lock(run.out, command="genreflow train") if run.group.is_chief else None
    with lock or contextlib.nullcontext():
        return _train(run, features_dir=features_dir)


def _train(run: _Run, *, features_dir: str | os.PathLike) -> TrainResult:
    """The body of :func:`train_model`, with the output folder held."""
    tcfg, group, strategy = run.tcfg, run.group, run.strategy
    data = read_training_data(features_dir, tcfg=tcfg)
    device = describe_device()
    policy = precision_policy(tcfg["mixed_precision"], device=device["device"])
    if policy != "float32":
        keras.mixed_precision.set_global_policy(policy)
    device = {**device, "precision": policy}
    keras.utils.set_random_seed(int(tcfg["seed"]))

    model, state = _model_and_state(run, data=data)
    resumed_from = int(state["epochs_done"])
    if resumed_from:
        print(f"train: resuming after epoch {resumed_from} from {run.checkpoint_dir}", flush=True)
    pipelines = training_pipelines(
        tcfg, data=data, group=group, batch=run.batch, model=model, strategy=strategy
    )
    plan = _plan_line(run, data=data, pipelines=pipelines, resumed_from=resumed_from, device=device)
    _fit(model, run=run, data=data, state=state, pipelines=pipelines, plan=plan)
    if state["stopped"] is None:
        state["stopped"] = "epochs"
    if not group.is_chief:
        # The chief exports; the other workers' part ends with the last collective step.
        print(f"train: worker {group.index} done", flush=True)
        return _result(run, state=state, resumed_from=resumed_from, timings={})
    return _export(
        model,
        run=run,
        data=data,
        state=state,
        pipelines=pipelines,
        device=device,
        resumed_from=resumed_from,
    )


# --------------------------------------------------------------------------- model


def precision_policy(setting: bool | str, *, device: str) -> str:
    """The Keras dtype policy for ``train.mixed_precision`` on ``device`` ("CPU" or "GPU").

    ``auto`` takes bfloat16 on a CPU only where it has AMX bfloat16 tiles: with AVX512_BF16
    alone, mixed_bfloat16 measured slower than float32 on this project's CPUs (the casts
    cost more than the narrower arithmetic saves; benchmarks/README.md).
    """
    if setting == "bfloat16":
        return "mixed_bfloat16"
    if setting == "auto":
        if device == "GPU":
            return "mixed_float16"
        return "mixed_bfloat16" if "amx_bf16" in _cpu_flags() else "float32"
    return "mixed_float16" if setting is True and device == "GPU" else "float32"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _settings(
    cfg: Mapping[str, Any],
    *,
    out_dir: str | os.PathLike,
    threads: Mapping[str, Any],
    epochs: int | None,
    max_seconds: float | None,
    verbose: int | None,
    workers: WorkerGroup | None,
    strategy: tf.distribute.Strategy | None,
    role: str,
) -> _Run:
    """The run's settings from :func:`train_model`'s arguments, its clock started now."""
    clock = (
        time.perf_counter(),
        time.process_time(),
        datetime.now(UTC).isoformat(timespec="seconds"),
    )
    tcfg = cfg["train"]
    group = workers or WorkerGroup(count=1, index=0, source="single")
    if group.distributed and strategy is None:
        raise ValueError("several workers need their MultiWorkerMirroredStrategy")
    return _Run(
        cfg=cfg,
        epochs=int(epochs if epochs is not None else tcfg["epochs"]),
        max_seconds=max_seconds if max_seconds is not None else tcfg["max_seconds"],
        verbose=verbose if verbose is not None else 1 if sys.stdout.isatty() else 2,
        out=Path(out_dir),
        group=group,
        strategy=strategy,
        batch=worker_batch(tcfg, workers=group.count),
        threads=threads,
        clock=clock,
        role=role,
    )


def _model_and_state(run: _Run, *, data: TrainingData) -> tuple[keras.Model, dict]:
    """A new compiled model and a fresh state, or the model and state of the run to resume."""
    strategy, group, checkpoint_dir = run.strategy, run.group, run.checkpoint_dir
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    run_key = resume_key(run.cfg, data.features, workers=group.count)
    state = load_state(checkpoint_dir, run_key)
    if state is None:
        train_examples = len(data.train_clips) * int(run.tcfg["segments_per_clip"])
        model = compile_model(
            run.tcfg,
            n_mels=data.features.n_mels,
            n_labels=len(data.labels),
            multilabel=data.multilabel,
            steps_per_epoch=math.ceil((train_examples // group.count) / run.batch["per_worker"]),
            learning_rate=run.batch["learning_rate"],
            epochs=run.epochs,
            scope=scope,
        )
        return model, new_state(run_key)
    # Every worker loads the same checkpoint (the chief wrote it).
    with scope:
        model = keras.models.load_model(checkpoint_dir / state["checkpoint"])
    log.info(
        "resuming from %s: %d epoch(s) done",
        checkpoint_dir / state["checkpoint"],
        state["epochs_done"],
    )
    return model, state


# --------------------------------------------------------------------------- fit


def _plan_line(
    run: _Run,
    *,
    data: TrainingData,
    pipelines: TrainingPipelines,
    resumed_from: int,
    device: Mapping[str, Any],
) -> str:
    """The line announcing what this run trains on, and where."""
    group, batch, threads = run.group, run.batch, run.threads
    return (
        f"train: {len(data.train_clips)} train clips x "
        f"{pipelines.train_sampler.segments_per_clip} segments, "
        f"{len(pipelines.valid_sampler)} valid segments, {len(data.labels)} labels, epochs "
        f"{resumed_from + 1}..{run.epochs}, threads intra={threads.get('intra_op')} "
        f"inter={threads.get('inter_op')}, {device['device']}"
        + (
            f", worker {group.index + 1} of {group.count} (global batch {batch['global']}, "
            f"learning rate {batch['learning_rate']:.3g})"
            if group.distributed
            else ""
        )
    )


def _fit(
    model: keras.Model,
    *,
    run: _Run,
    data: TrainingData,
    state: dict,
    pipelines: TrainingPipelines,
    plan: str,
) -> None:
    """Train the epochs still to do (announced by ``plan``), unless the run has already ended."""
    resumed_from, checkpoint_dir = int(state["epochs_done"]), run.checkpoint_dir
    record = TrainingRecord(
        checkpoint_dir=checkpoint_dir,
        state=state,
        sampler=pipelines.train_sampler,
        batch_size=run.batch["per_worker"],
        patience=run.tcfg["patience"],
        max_seconds=run.max_seconds,
        strategy=run.strategy,
        chief=run.group.is_chief,
        validated=data.validated,
    )
    if state["stopped"] == "early_stopping":
        print(
            f"train: early stopping already ended this run at epoch {state['epochs_done']}; "
            f"exporting (delete {checkpoint_dir} to train from scratch)",
            flush=True,
        )
        return
    if resumed_from >= run.epochs:
        print(
            f"train: the checkpoint has {resumed_from} epoch(s), {run.epochs} asked for; exporting",
            flush=True,
        )
        return
    print(plan, flush=True)
    try:
        model.fit(
            pipelines.train,
            validation_data=pipelines.valid,
            epochs=run.epochs,
            initial_epoch=resumed_from,
            callbacks=[record],
            shuffle=False,  # the sampler shuffles, reproducibly per epoch
            verbose=run.verbose,
        )
    except tf.errors.OpError as exc:
        if not run.group.distributed:
            raise
        close_leaked_pools()
        raise StageError(
            lost_worker_message(exc, state=state, checkpoint_dir=checkpoint_dir)
        ) from None


# --------------------------------------------------------------------------- records


def _export(
    model: keras.Model,
    *,
    run: _Run,
    data: TrainingData,
    state: dict,
    pipelines: TrainingPipelines,
    device: Mapping[str, Any],
    resumed_from: int,
) -> TrainResult:
    """The chief's end of a run: the model directory, ``timings.json`` and the closing line."""
    export_run(
        model, out=run.out, checkpoint_dir=run.checkpoint_dir, cfg=run.cfg, data=data, state=state
    )
    timings = run_timings(
        state["epoch_timings"],
        clock=run.clock,
        threads=run.threads,
        device=device,
        resumed_from=resumed_from,
        group=run.group,
        batch=run.batch,
        allreduce=pipelines.allreduce,
        gradient_values=pipelines.gradient_values,
    )
    timings["role"] = run.role
    # What reading every shard once for its checksum cost, beside the epochs (docs/formats.md).
    verified = data.features.verify_seconds
    timings["shard_check_seconds"] = round(verified, 4) if verified is not None else None
    write_json(run.out / "timings.json", timings)
    _print_exported(run, state=state, timings=timings)
    return _result(run, state=state, resumed_from=resumed_from, timings=timings)


def _print_exported(run: _Run, *, state: Mapping[str, Any], timings: Mapping[str, Any]) -> None:
    """The closing line: the exported epoch, its scores, why training stopped, the speed."""
    best = state["history"][state["best_epoch"] - 1]
    scores = (
        f"val_loss {best['val_loss']:.4f}, val_accuracy {best['val_accuracy']:.3f}"
        if "val_loss" in best
        else f"loss {best['loss']:.4f}, no valid split"
    )
    print(
        f"train: exported {run.out / 'model.keras'} ({run.tcfg['export']} epoch "
        f"{state['best_epoch']}: {scores}; stopped: {state['stopped']}; "
        f"{timings['samples_per_second']:.1f} samples/s)",
        flush=True,
    )


def _result(
    run: _Run, *, state: Mapping[str, Any], resumed_from: int, timings: dict
) -> TrainResult:
    """The :class:`TrainResult` of a run whose ``state`` is final."""
    return TrainResult(
        model_dir=run.out,
        epochs_done=int(state["epochs_done"]),
        best_epoch=int(state["best_epoch"]),
        stopped=str(state["stopped"]),
        resumed_from=resumed_from,
        history=state["history"],
        timings=timings,
    )
