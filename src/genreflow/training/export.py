"""Export a trained model directory: the inference model, ``genreflow.json`` and ``history.json``.

The layout is in docs/formats.md ("Model directory"). Multi-label models get per-label
thresholds tuned on the valid split; ``train.ensemble`` fits the MFCC + SVM baseline that is
stored beside the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras

from genreflow import __version__
from genreflow.core.atomic import atomic_path, write_json
from genreflow.core.config import config_hash
from genreflow.core.errors import DatasetError
from genreflow.spectrograms.clips import ClipTable
from genreflow.spectrograms.shards import FeatureSet
from genreflow.training.dataset import TrainingData

__all__ = [
    "export_model",
    "export_run",
    "fit_ensemble_baseline",
    "model_record",
    "tune_valid_thresholds",
]


def export_run(
    model,
    *,
    out: Path,
    checkpoint_dir: Path,
    cfg: Mapping[str, Any],
    data: TrainingData,
    state: dict,
) -> None:
    """Write ``model.keras``, ``genreflow.json`` and ``history.json`` of a finished run.

    Parameters
    ----------
    model : keras.Model
        The trained model; with ``train.export: best`` it is given the best checkpoint's weights.
    out, checkpoint_dir : Path
        The model directory and its ``checkpoints`` folder.
    cfg : mapping
        Validated configuration (the ``train`` section).
    data : TrainingData
    state : dict
        The run's state (:mod:`genreflow.training.checkpoints`); ``best_epoch`` becomes the
        exported epoch.

    Raises
    ------
    DatasetError
        No epoch was completed.
    """
    tcfg = cfg["train"]
    if state["best_epoch"] == 0:
        raise DatasetError(f"{out}: no epoch completed; nothing to export")
    if tcfg["export"] == "last":
        # The end of the schedule, not the epoch a small validation split liked best. The model
        # in memory already holds it: the last checkpoint is the last epoch trained (or the one
        # a finished run was resumed from).
        state["best_epoch"] = int(state["epochs_done"])
    else:
        model.load_weights(checkpoint_dir / "best.keras")
    # genreflow.json marks a complete model directory: gone first, back last, so that an
    # export that fails half-way (a full disk) never leaves an older marker vouching for it.
    (out / "genreflow.json").unlink(missing_ok=True)
    export_model(model, out / "model.keras")
    model_info = model_record(cfg, data=data, best_epoch=state["best_epoch"])
    if tcfg["ensemble"] and not data.multilabel:
        model_info["ensemble"] = fit_ensemble_baseline(
            out,
            features=data.features,
            clips=[data.train_clips, data.valid_clips],
            n_labels=len(data.labels),
        )
    if data.multilabel:
        model_info["thresholds"] = tune_valid_thresholds(
            out, model_info=model_info, features=data.features, clips=data.valid_clips
        )
    write_json(out / "genreflow.json", model_info)
    history = {
        "epochs": state["history"],
        "best_epoch": state["best_epoch"],
        "best_val_loss": state["best_val_loss"],
        "stopped": state["stopped"],
    }
    write_json(out / "history.json", history)


def model_record(cfg: Mapping[str, Any], *, data: TrainingData, best_epoch: int) -> dict:
    """``genreflow.json`` of a model trained on ``data``, before thresholds and ensemble are set."""
    features = data.features
    return {
        "labels": data.labels,
        "audio": features.info["audio"],
        "mel": features.info["mel"],
        "norm": {"mean": data.mean.tolist(), "std": data.std.tolist()},
        "multilabel": data.multilabel,
        "thresholds": None,
        "ensemble": None,
        "config_hash": config_hash(cfg, ("train",)),
        "features_hash": features.info["config_hash"],
        "segment_frames": features.n_frames,
        "n_mels": features.n_mels,
        "best_epoch": best_epoch,
        "genreflow_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }


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
    from genreflow.prediction.predictor import Predictor, clip_probabilities

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
    from genreflow.classical import ENSEMBLE_FILE, ENSEMBLE_WEIGHT, MfccSvm, save_baseline

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
