"""Checkpoints and resuming: the run's identity, its saved state and the per-epoch callback.

After every epoch the model (with its optimizer state) is saved to
``MODEL_DIR/checkpoints/epoch-NNNN.keras`` and ``checkpoints/state.json`` records the epoch,
the history, the early-stopping state and the timings so far. A run started again on the same
features and training settings continues after the last completed epoch. The best weights
(lowest validation loss) are kept in ``checkpoints/best.keras``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from genreflow.core.atomic import atomic_path, write_json
from genreflow.core.config import RUN_LENGTH_KEYS, config_hash
from genreflow.spectrograms.shards import FeatureSet
from genreflow.training.distributed import any_worker, gather_rows
from genreflow.training.pipeline import SegmentSampler

__all__ = ["STATE_VERSION", "TrainingRecord", "load_state", "new_state", "resume_key"]

log = logging.getLogger(__name__)

STATE_VERSION = 1


def resume_key(cfg: Mapping[str, Any], features: FeatureSet, *, workers: int = 1) -> str:
    """Identity of a training run: its features and every ``train`` setting that shapes the weights.

    The features count by content, not only by settings: the index (which clips, splits and
    rows) and the marker's creation time, so a regenerated feature directory never resumes
    checkpoints trained on the previous one. The number of data-parallel ``workers`` counts
    too: it sets the global batch and the learning-rate schedule.
    """
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


def new_state(run_key: str) -> dict:
    """The resumable state of a run that has not trained an epoch yet (``state.json``)."""
    return {
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
