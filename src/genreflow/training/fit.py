"""Train the genre CNN on a feature directory and export a self-contained model directory.

Set the thread pools first (``genreflow.core.threads``): this module imports TensorFlow.

Resuming: after every epoch the model (with its optimizer state) is saved to
``MODEL_DIR/checkpoints/epoch-NNNN.keras`` and ``checkpoints/state.json`` records the epoch,
the history, the early-stopping state and the timings so far. A run started again on the same
features and training settings continues after the last completed epoch. The best weights
(lowest validation loss) are kept in ``checkpoints/best.keras`` and exported at the end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import platform
import socket
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from genreflow import __version__
from genreflow.core.atomic import atomic_path, write_json
from genreflow.core.config import config_hash
from genreflow.core.errors import DatasetError, StageError
from genreflow.training.dataset import (
    ClipTable,
    FeatureSet,
    SegmentSampler,
    balanced_class_weights,
    band_statistics,
    clip_table,
    is_multilabel,
    make_dataset,
    open_features,
)
from genreflow.training.distributed import (
    WorkerGroup,
    allreduce_seconds,
    any_worker,
    build_for_distribution,
    describe_group,
    gather_rows,
)
from genreflow.training.model import build_model
from genreflow.workflow.keys import RUN_LENGTH_KEYS

log = logging.getLogger(__name__)

STATE_VERSION = 1


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
    strategy=None,
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

    Returns
    -------
    TrainResult
    """
    started = time.perf_counter()
    cpu_started = time.process_time()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    tcfg = cfg["train"]
    epochs = int(epochs if epochs is not None else tcfg["epochs"])
    max_seconds = max_seconds if max_seconds is not None else tcfg["max_seconds"]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    out = Path(out_dir)
    checkpoint_dir = out / "checkpoints"
    group = workers or WorkerGroup(count=1, index=0, source="single")
    if group.distributed and strategy is None:
        raise ValueError("several workers need their MultiWorkerMirroredStrategy")
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    batch = worker_batch(tcfg, workers=group.count)

    features = open_features(features_dir)
    labels = features.labels
    multilabel = is_multilabel(features)
    train_clips = clip_table(features, split="train", labels=labels, multilabel=multilabel)
    valid_clips = clip_table(features, split="valid", labels=labels, multilabel=multilabel)
    if len(train_clips) == 0:
        raise DatasetError(f"{features.path}: no 'train' clips; training needs a train split")
    # The valid split chooses the exported epoch (train.export: best), the early stop and the
    # multi-label thresholds; a single-label model that exports its last epoch can do without.
    validated = len(valid_clips) > 0
    if not validated and (tcfg["export"] == "best" or multilabel):
        raise DatasetError(
            f"{features.path}: no 'valid' clips; training needs train and valid splits "
            + (
                "(multi-label thresholds are tuned on valid)"
                if multilabel
                else "(or set train.export: last to train without one)"
            )
        )
    mean, std = band_statistics(features, train_clips)

    device = describe_device()
    if tcfg["mixed_precision"] and device["device"] == "GPU":
        keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(int(tcfg["seed"]))

    run_key = resume_key(cfg, features, workers=group.count)
    state = load_state(checkpoint_dir, run_key)
    if state is None:
        state = {
            "version": STATE_VERSION,
            "run_key": run_key,
            "epochs_done": 0,
            "checkpoint": None,
            "best_val_loss": None,
            "best_epoch": 0,
            "wait": 0,
            "stopped": None,
            "history": [],
            "epoch_timings": [],
        }
        train_examples = len(train_clips) * int(tcfg["segments_per_clip"])
        steps_per_epoch = math.ceil((train_examples // group.count) / batch["per_worker"])
        # Cosine decay over the configured epochs (or more, when --epochs asks for more): large
        # steps early, small ones at the end, where the validation loss otherwise jumps around.
        # The schedule is part of the optimizer, so a resumed run keeps the one it started with.
        # A linear warm-up first (train.warmup_epochs): BatchNorm statistics and Adam's moment
        # estimates settle before the largest steps.
        warmup_steps = int(tcfg["warmup_epochs"]) * steps_per_epoch
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup_steps else batch["learning_rate"],
            decay_steps=max(1, max(epochs, int(tcfg["epochs"])) * steps_per_epoch - warmup_steps),
            alpha=0.05,
            warmup_target=batch["learning_rate"] if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
        if multilabel:
            # Independent labels: a sigmoid per label. "accuracy" is per (segment, label) at 0.5,
            # so history keys stay the same; the PR-AUC does not depend on a threshold.
            loss = keras.losses.BinaryCrossentropy()
            metrics = [
                keras.metrics.BinaryAccuracy(name="accuracy"),
                keras.metrics.AUC(curve="PR", name="pr_auc"),
            ]
        else:
            # One-hot targets, so that label smoothing and mixup can soften them.
            loss = keras.losses.CategoricalCrossentropy(
                label_smoothing=float(tcfg["label_smoothing"])
            )
            metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
        mcfg = tcfg["model"]
        with scope:
            model = build_model(
                n_mels=features.n_mels,
                n_labels=len(labels),
                multilabel=multilabel,
                filters=mcfg["filters"],
                pooling=mcfg["pooling"],
                dropout=float(mcfg["dropout"]),
            )
            model.compile(
                optimizer=keras.optimizers.Adam(learning_rate=schedule),
                loss=loss,
                metrics=metrics,
                jit_compile=bool(tcfg["jit_compile"]),
            )
    else:
        # Every worker loads the same checkpoint (the chief wrote it).
        with scope:
            model = keras.models.load_model(checkpoint_dir / state["checkpoint"])
        log.info(
            "resuming from %s: %d epoch(s) done",
            checkpoint_dir / state["checkpoint"],
            state["epochs_done"],
        )
    resumed_from = int(state["epochs_done"])
    if resumed_from:
        print(f"train: resuming after epoch {resumed_from} from {checkpoint_dir}", flush=True)

    seed = int(tcfg["seed"])
    shard = (group.index, group.count)
    train_sampler = SegmentSampler(
        features=features,
        clips=train_clips,
        segments_per_clip=int(tcfg["segments_per_clip"]),
        seed=seed,
        shuffle=True,
        shard=shard,
    )
    valid_sampler = SegmentSampler(
        features=features,
        clips=valid_clips,
        segments_per_clip=None,
        seed=seed,
        shuffle=False,
        shard=shard,
    )
    batch_size = batch["per_worker"]
    crop_frames = round(float(tcfg["crop_fraction"]) * features.n_frames)
    one_hot = None if multilabel else len(labels)
    class_weights = (
        balanced_class_weights(train_clips, n_labels=len(labels))
        if tcfg["class_balance"] and not multilabel
        else None
    )

    def train_data(context=None):
        return make_dataset(
            train_sampler,
            mean=mean,
            std=std,
            batch_size=batch_size,
            spec_augment=tcfg["spec_augment"],
            crop_frames=crop_frames,
            gain_db=float(tcfg["gain_db"]),
            one_hot=one_hot,
            mixup=float(tcfg["mixup"]),
            class_weights=class_weights,
        )

    def valid_data(context=None):
        return make_dataset(
            valid_sampler, mean=mean, std=std, batch_size=batch_size, one_hot=one_hot
        )

    allreduce = 0.0
    gradient_values = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    if strategy is None:
        train_ds, valid_ds = train_data(), valid_data() if validated else None
    else:
        # Each worker's pipeline reads only its shard of the plan (the samplers above), so the
        # datasets come from functions, one per worker, with no automatic re-sharding.
        train_ds = strategy.distribute_datasets_from_function(train_data)
        valid_ds = strategy.distribute_datasets_from_function(valid_data) if validated else None
        build_for_distribution(model, input_spec=train_data().element_spec)
        allreduce = allreduce_seconds(strategy, n_values=gradient_values)

    record = TrainingRecord(
        checkpoint_dir=checkpoint_dir,
        state=state,
        sampler=train_sampler,
        batch_size=batch_size,
        patience=tcfg["patience"],
        max_seconds=max_seconds,
        strategy=strategy,
        chief=group.is_chief,
        validated=validated,
    )
    if state["stopped"] == "early_stopping":
        print(
            f"train: early stopping already ended this run at epoch {state['epochs_done']}; "
            f"exporting (delete {checkpoint_dir} to train from scratch)",
            flush=True,
        )
    elif resumed_from >= epochs:
        print(
            f"train: the checkpoint has {resumed_from} epoch(s), {epochs} asked for; exporting",
            flush=True,
        )
    else:
        print(
            f"train: {len(train_clips)} train clips x {train_sampler.segments_per_clip} segments, "
            f"{len(valid_sampler)} valid segments, {len(labels)} labels, epochs "
            f"{resumed_from + 1}..{epochs}, threads intra={threads.get('intra_op')} "
            f"inter={threads.get('inter_op')}, {device['device']}"
            + (
                f", worker {group.index + 1} of {group.count} (global batch {batch['global']}, "
                f"learning rate {batch['learning_rate']:.3g})"
                if group.distributed
                else ""
            ),
            flush=True,
        )
        try:
            model.fit(
                train_ds,
                validation_data=valid_ds,
                epochs=epochs,
                initial_epoch=resumed_from,
                callbacks=[record],
                shuffle=False,  # the sampler shuffles, reproducibly per epoch
                verbose=verbose,
            )
        except tf.errors.OpError as exc:
            if not group.distributed:
                raise
            raise StageError(
                lost_worker_message(exc, state=state, checkpoint_dir=checkpoint_dir)
            ) from None
    if state["stopped"] is None:
        state["stopped"] = "epochs"
    if not group.is_chief:
        # The chief exports; the other workers' part ends with the last collective step.
        print(f"train: worker {group.index} done", flush=True)
        return TrainResult(
            model_dir=out,
            epochs_done=int(state["epochs_done"]),
            best_epoch=int(state["best_epoch"]),
            stopped=str(state["stopped"]),
            resumed_from=resumed_from,
            history=state["history"],
            timings={},
        )

    if state["best_epoch"] == 0:
        raise DatasetError(f"{out}: no epoch completed; nothing to export")
    if tcfg["export"] == "last":
        # The end of the schedule, not the epoch a small validation split liked best. The model
        # in memory already holds it: the last checkpoint is the last epoch trained (or the one
        # a finished run was resumed from).
        state["best_epoch"] = int(state["epochs_done"])
    else:
        model.load_weights(checkpoint_dir / "best.keras")
    export_model(model, out / "model.keras")
    model_info = {
        "labels": labels,
        "audio": features.info["audio"],
        "mel": features.info["mel"],
        "norm": {"mean": mean.tolist(), "std": std.tolist()},
        "multilabel": multilabel,
        "thresholds": None,
        "ensemble": None,
        "config_hash": config_hash(cfg, ("train",)),
        "features_hash": features.info["config_hash"],
        "segment_frames": features.n_frames,
        "n_mels": features.n_mels,
        "best_epoch": state["best_epoch"],
        "genreflow_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if tcfg["ensemble"] and not multilabel:
        model_info["ensemble"] = fit_ensemble_baseline(
            out, features=features, clips=[train_clips, valid_clips], n_labels=len(labels)
        )
    if multilabel:
        model_info["thresholds"] = tune_valid_thresholds(
            out, model_info=model_info, features=features, clips=valid_clips
        )
    write_json(out / "genreflow.json", model_info)
    history = {
        "epochs": state["history"],
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_val_loss"],
        "stopped": state["stopped"],
    }
    write_json(out / "history.json", history)
    timings = training_timings(
        state["epoch_timings"],
        threads=threads,
        device=device,
        total_seconds=time.perf_counter() - started,
        cpu_seconds=time.process_time() - cpu_started,
        started=started_at,
        resumed_from=resumed_from,
        batch_size=batch_size,
    )
    if group.distributed:
        timings["workers"] = workers_timings(
            group,
            batch=batch,
            allreduce=allreduce,
            gradient_values=gradient_values,
            epoch_timings=state["epoch_timings"],
        )
    write_json(out / "timings.json", timings)
    best = state["history"][state["best_epoch"] - 1]
    scores = (
        f"val_loss {best['val_loss']:.4f}, val_accuracy {best['val_accuracy']:.3f}"
        if "val_loss" in best
        else f"loss {best['loss']:.4f}, no valid split"
    )
    print(
        f"train: exported {out / 'model.keras'} ({tcfg['export']} epoch {state['best_epoch']}: "
        f"{scores}; stopped: {state['stopped']}; {timings['samples_per_second']:.1f} samples/s)",
        flush=True,
    )
    return TrainResult(
        model_dir=out,
        epochs_done=int(state["epochs_done"]),
        best_epoch=int(state["best_epoch"]),
        stopped=str(state["stopped"]),
        resumed_from=resumed_from,
        history=state["history"],
        timings=timings,
    )


# --------------------------------------------------------------------------- checkpoints


def resume_key(cfg: Mapping[str, Any], features: FeatureSet, *, workers: int = 1) -> str:
    """Identity of a training run: its features and every ``train`` setting that shapes the weights.

    The features count by content, not only by settings: the index (which clips, splits and
    rows) and the marker's creation time, so a regenerated feature directory never resumes
    checkpoints trained on the previous one. The number of data-parallel ``workers`` counts
    too: it sets the global batch and the learning-rate schedule.
    """
    import hashlib

    shaping = {k: v for k, v in cfg["train"].items() if k not in RUN_LENGTH_KEYS}
    shaping["workers"] = int(workers)
    index = hashlib.sha256((features.path / "index.csv").read_bytes()).hexdigest()
    identity = {
        "config_hash": features.info["config_hash"],
        "created": features.info.get("created"),
        "index": index,
    }
    return config_hash({"train": shaping, "features": identity})


def load_state(checkpoint_dir: Path, run_key: str) -> dict | None:
    """The saved state if ``checkpoint_dir`` holds a resumable run with key ``run_key``, else None."""
    import json

    path = checkpoint_dir / "state.json"
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); training from scratch", path, exc)
        return None
    if state.get("version") != STATE_VERSION or state.get("run_key") != run_key:
        print(
            f"train: checkpoints in {checkpoint_dir} are from other features or training "
            "settings; training from scratch",
            flush=True,
        )
        return None
    if not state.get("checkpoint") or not (checkpoint_dir / state["checkpoint"]).is_file():
        log.warning("%s: checkpoint file missing; training from scratch", path)
        return None
    return state


class TrainingRecord(keras.callbacks.Callback):
    """Per-epoch bookkeeping: timings, history, early stopping, time limit, checkpoints.

    Early stopping lives here rather than in ``keras.callbacks.EarlyStopping`` because its
    state (best loss, epochs without improvement) must survive a restart with the checkpoint.

    Parameters
    ----------
    checkpoint_dir : Path
    state : dict
        The resumable state; updated in place and saved after every epoch.
    sampler : SegmentSampler
        Told the epoch number before each epoch (its draw depends on it).
    batch_size : int
    patience : int or None
        Stop after this many epochs without a lower validation loss (None: never).
    max_seconds : float or None
        Stop (mid-epoch if need be) once this run has trained this long. With several workers
        the limit is checked at the end of each epoch, and all workers stop together.
    strategy : tf.distribute.Strategy or None
        Several workers: the per-epoch bookkeeping gathers every worker's figures, and
        decisions are taken alike on all workers.
    chief : bool
        Only the chief writes checkpoints.
    validated : bool
        There is a valid split; without one every epoch is the "best" so far (the run
        exports its last epoch) and nothing stops early.
    """

    def __init__(
        self,
        *,
        checkpoint_dir: Path,
        state: dict,
        sampler: SegmentSampler,
        batch_size: int,
        patience: int | None,
        max_seconds: float | None,
        strategy=None,
        chief: bool = True,
        validated: bool = True,
    ) -> None:
        super().__init__()
        self.validated = validated
        self.strategy = strategy
        self.chief = chief
        self.checkpoint_dir = Path(checkpoint_dir)
        self.state = state
        self.sampler = sampler
        self.batch_size = batch_size
        self.patience = patience
        self.max_seconds = max_seconds
        self.hit_time_limit = False
        self._run_start = time.perf_counter()
        self._first_epoch_of_run = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.sampler.epoch = epoch
        self._epoch_start = time.perf_counter()
        self._train_seconds: float | None = None
        self._steps = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._steps += 1
        if (
            self.strategy is None
            and self.max_seconds is not None
            and time.perf_counter() - self._run_start >= self.max_seconds
        ):
            self.hit_time_limit = True
            self.model.stop_training = True

    def on_test_begin(self, logs: dict | None = None) -> None:
        if self._train_seconds is None:
            self._train_seconds = time.perf_counter() - self._epoch_start

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        now = time.perf_counter()
        seconds = now - self._epoch_start
        train_seconds = self._train_seconds if self._train_seconds is not None else seconds
        samples = min(self._steps * self.batch_size, len(self.sampler))
        complete = samples == len(self.sampler)
        per_worker = None
        if self.strategy is not None:
            # Every worker's figures, on every worker (a collective: all workers are here).
            rows = gather_rows(
                self.strategy,
                [samples, self.sampler.yielded, self.sampler.yielded_digest, train_seconds],
            )
            samples = int(rows[:, 0].sum())
            train_seconds = float(rows[:, 3].max())  # the step is as slow as the slowest worker
            per_worker = {
                "worker_samples": [int(v) for v in rows[:, 1]],
                "worker_digests": [int(v) for v in rows[:, 2]],
                "worker_train_seconds": [round(float(v), 4) for v in rows[:, 3]],
            }
            if self.max_seconds is not None:
                elapsed = time.perf_counter() - self._run_start
                self.hit_time_limit = any_worker(self.strategy, elapsed >= self.max_seconds)
                if self.hit_time_limit:
                    self.model.stop_training = True
        state = self.state
        entry = {"epoch": epoch + 1, "learning_rate": _learning_rate(self.model)}
        entry.update({k: float(v) for k, v in logs.items() if k != "learning_rate"})
        entry["complete"] = complete
        state["history"].append(entry)
        state["epoch_timings"].append(
            {
                "epoch": epoch + 1,
                "seconds": round(seconds, 4),
                "train_seconds": round(train_seconds, 4),
                "samples": samples,
                "samples_per_second": round(samples / train_seconds, 2)
                if train_seconds > 0
                else None,
                "warmup": self._first_epoch_of_run,
                **(per_worker or {}),
            }
        )
        self._first_epoch_of_run = False
        state["epochs_done"] = epoch + 1

        val_loss = logs.get("val_loss")
        if not self.validated:
            # No valid split (train.export: last): nothing to stop early on or to choose.
            state["best_epoch"] = epoch + 1
        elif (
            val_loss is not None
            and math.isfinite(val_loss)
            and (state["best_val_loss"] is None or val_loss < state["best_val_loss"])
        ):
            state["best_val_loss"] = float(val_loss)
            state["best_epoch"] = epoch + 1
            state["wait"] = 0
            if self.chief:
                # A whole .keras file: atomic_path keeps its suffix (save_weights wants ".weights.h5").
                with atomic_path(self.checkpoint_dir / "best.keras") as tmp:
                    self.model.save(tmp)
        else:
            state["wait"] += 1
            if self.patience is not None and state["wait"] >= self.patience:
                state["stopped"] = "early_stopping"
                self.model.stop_training = True
                print(
                    f"train: early stopping after epoch {epoch + 1} "
                    f"(no val_loss improvement for {self.patience} epochs)",
                    flush=True,
                )
        if self.hit_time_limit and state["stopped"] is None:
            state["stopped"] = "max_seconds"
            print(f"train: stopping after {self.max_seconds:g} s (max_seconds)", flush=True)
        self._save_checkpoint(epoch + 1)

    def _save_checkpoint(self, epoch: int) -> None:
        name = f"epoch-{epoch:04d}.keras"
        previous = self.state.get("checkpoint")
        if not self.chief:
            self.state["checkpoint"] = name
            return
        with atomic_path(self.checkpoint_dir / name) as tmp:
            self.model.save(tmp)
        self.state["checkpoint"] = name
        # A resumed run carries on from here; a time-limited stop is not a finished run.
        stopped = self.state["stopped"]
        saved = dict(self.state, stopped=None if stopped == "max_seconds" else stopped)
        write_json(self.checkpoint_dir / "state.json", saved)
        if previous and previous != name:
            (self.checkpoint_dir / previous).unlink(missing_ok=True)


def _learning_rate(model) -> float | None:
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- workers


def worker_batch(tcfg: Mapping[str, Any], *, workers: int) -> dict[str, Any]:
    """Per-worker and global batch and the learning rate for ``workers`` data-parallel workers.

    ``train.worker_batch``: ``per_worker`` (each worker takes ``batch_size``) or ``split``
    (``batch_size`` is the global batch). ``train.learning_rate_scaling`` (``sqrt``,
    ``linear``, ``none``) scales ``learning_rate`` by global batch / ``batch_size``.
    """
    size = int(tcfg["batch_size"])
    per_worker = max(1, size // workers) if tcfg["worker_batch"] == "split" else size
    total = per_worker * workers
    factor = {"sqrt": math.sqrt, "linear": float, "none": lambda _: 1.0}[
        tcfg["learning_rate_scaling"]
    ](total / size)
    return {
        "per_worker": per_worker,
        "global": total,
        "learning_rate": float(tcfg["learning_rate"]) * factor,
    }


def lost_worker_message(exc: Exception, *, state: Mapping[str, Any], checkpoint_dir: Path) -> str:
    """One clear line for a collective that failed because another worker went away."""
    first = str(getattr(exc, "message", exc)).strip().splitlines()
    reason = next((line for line in first if "unhealthy" in line or "heartbeat" in line), None)
    reason = reason or (first[0] if first else type(exc).__name__)
    done = int(state.get("epochs_done", 0))
    where = (
        f"the chief's checkpoint after epoch {done} in {checkpoint_dir} is kept: "
        "start all workers again to resume from it"
        if done
        else "no epoch was completed: start all workers again"
    )
    return f"lost contact with another worker ({reason.rstrip('.:')}); {where}"


def workers_timings(
    group: WorkerGroup,
    *,
    batch: Mapping[str, Any],
    allreduce: float,
    gradient_values: int,
    epoch_timings: list[dict],
) -> dict:
    """The ``workers`` part of ``timings.json`` (docs/distributed.md)."""
    steady = [e for e in epoch_timings if not e["warmup"] and "worker_samples" in e] or [
        e for e in epoch_timings if "worker_samples" in e
    ]
    per_worker = []
    for k in range(group.count):
        samples = sum(e["worker_samples"][k] for e in steady)
        seconds = sum(e["worker_train_seconds"][k] for e in steady)
        per_worker.append(
            {
                "worker": k,
                "address": group.addresses[k] if k < len(group.addresses) else None,
                "samples": samples,
                "train_seconds": round(seconds, 3),
                "samples_per_second": round(samples / seconds, 2) if seconds > 0 else 0.0,
            }
        )
    train_seconds = sum(e["train_seconds"] for e in steady)
    steps = sum(math.ceil(e["worker_samples"][0] / batch["per_worker"]) for e in steady)
    return {
        **describe_group(group),
        "per_worker_batch_size": batch["per_worker"],
        "global_batch_size": batch["global"],
        "learning_rate": round(batch["learning_rate"], 8),
        "gradient_values": int(gradient_values),
        "allreduce_seconds": round(allreduce, 6),
        "steps": steps,
        "allreduce_fraction": round(min(1.0, allreduce * steps / train_seconds), 4)
        if train_seconds > 0
        else 0.0,
        "per_worker": per_worker,
    }


# --------------------------------------------------------------------------- export and records


def tune_valid_thresholds(
    model_dir: Path, *, model_info: Mapping[str, Any], features: FeatureSet, clips: ClipTable
) -> dict[str, float]:
    """Per-label thresholds of the exported multi-label model, tuned on ``clips`` (valid split).

    Clip probabilities are the mean of the segment probabilities, as ``genreflow evaluate``
    and ``genreflow predict`` compute them; each label's threshold maximises its F1.

    Returns
    -------
    dict
        ``{label: threshold}`` for every label, in model order.
    """
    from genreflow.metrics.multilabel import micro_f1, over_threshold, tune_thresholds
    from genreflow.prediction.predictor import Predictor
    from genreflow.prediction.segment_scores import clip_probabilities

    predictor = Predictor(model_dir, info=model_info)
    probabilities = clip_probabilities(predictor, features=features, clips=clips)
    thresholds = tune_thresholds(clips.targets, probabilities)
    score = micro_f1(clips.targets, over_threshold(probabilities, thresholds))
    print(
        f"train: thresholds tuned on {len(clips)} valid clips (valid micro-F1 {score:.3f})",
        flush=True,
    )
    return {name: float(t) for name, t in zip(model_info["labels"], thresholds, strict=True)}


def fit_ensemble_baseline(
    model_dir: Path, *, features: FeatureSet, clips: list[ClipTable], n_labels: int
) -> dict:
    """Fit the MFCC + SVM baseline on ``clips`` and store it beside the model (``train.ensemble``).

    Returns
    -------
    dict
        ``genreflow.json``'s ``ensemble`` record: ``{"file", "weight", "method"}``; prediction
        then averages the CNN's and the baseline's clip probabilities with ``weight``.
    """
    from genreflow.training.classical import ENSEMBLE_FILE, ENSEMBLE_WEIGHT, MfccSvm, save_baseline

    svm = MfccSvm(n_labels=n_labels).fit(features, clips)
    save_baseline(svm, model_dir / ENSEMBLE_FILE)
    print(
        f"train: ensemble baseline fitted in {svm.fit_seconds:.1f} s -> {ENSEMBLE_FILE}", flush=True
    )
    return {"file": ENSEMBLE_FILE, "weight": ENSEMBLE_WEIGHT, "method": svm.method}


def export_model(model, path: Path) -> None:
    """Save an inference copy of ``model`` (no optimizer state) to ``path`` atomically."""
    clean = keras.models.clone_model(model)
    clean.set_weights(model.get_weights())
    with atomic_path(path) as tmp:
        clean.save(tmp)


def describe_device() -> dict:
    """``{"device": "CPU"|"GPU", "device_name": str, "devices": [...]}`` as TensorFlow sees them."""
    gpus = tf.config.list_physical_devices("GPU")
    devices = [d.name for d in tf.config.list_physical_devices()]
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return {
            "device": "GPU",
            "device_name": details.get("device_name", gpus[0].name),
            "devices": devices,
        }
    return {"device": "CPU", "device_name": _cpu_name(), "devices": devices}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def training_timings(
    epoch_timings: list[dict],
    *,
    threads: Mapping[str, Any],
    device: Mapping[str, Any],
    total_seconds: float,
    cpu_seconds: float,
    started: str,
    resumed_from: int,
    batch_size: int,
) -> dict:
    """The ``timings.json`` record (docs/formats.md).

    ``samples_per_second`` is the steady-state rate: total samples over total training time of
    the epochs that are not a run's first (which includes graph tracing), or of all epochs
    when there is only the first.
    """
    steady = [e for e in epoch_timings if not e["warmup"]] or list(epoch_timings)
    samples = sum(e["samples"] for e in steady)
    seconds = sum(e["train_seconds"] for e in steady)
    return {
        "stage": "train",
        "threads": dict(threads),
        "device": device["device"],
        "device_name": device["device_name"],
        "devices": device["devices"],
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "batch_size": batch_size,
        "epochs": epoch_timings,
        "resumed_from": resumed_from,
        "total_seconds": round(total_seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "training_seconds": round(sum(e["seconds"] for e in epoch_timings), 3),
        "samples_per_second": round(samples / seconds, 2) if seconds > 0 else 0.0,
        "started": started,
        "tensorflow_version": tf.__version__,
        "numpy_version": np.__version__,
    }
