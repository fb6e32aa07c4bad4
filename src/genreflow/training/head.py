"""A classifier head on a frozen pretrained backbone (``train.model.backbone`` other than none).

The head is a standardised logistic regression on the backbone's per-segment outputs
(``train.head.embedding``): scikit-learn fits it on the train split's segment embeddings
(``genreflow embed``; computed here when none are given) in seconds, and its coefficients
become a Keras ``Normalization`` + ``Dense`` on top of the backbone, so the exported model
maps segments to genre probabilities like the from-scratch CNN: ``predict``, ``serve``,
``stream`` and ``evaluate`` use it unchanged, with the backbone inside ``model.keras``.

This module imports TensorFlow; set thread settings (``genreflow.core.threads``) first.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from genreflow.backbones.embed import (
    HEAD_INPUTS,
    Embeddings,
    check_front_end,
    embed_clips,
    head_clips,
    read_embeddings,
)
from genreflow.core.atomic import write_json
from genreflow.core.device import describe_device
from genreflow.core.errors import DatasetError, StageError
from genreflow.spectrograms.clips import ClipTable, clip_average
from genreflow.spectrograms.shards import FeatureSet
from genreflow.training.dataset import read_training_data
from genreflow.training.export import (
    export_model,
    fit_ensemble_baseline,
    model_record,
    tune_valid_thresholds,
)

__all__ = ["build_classifier", "fit_head", "train_head"]

#: A genre with no training clips gets this logit: never predicted.
_ABSENT_LOGIT = -30.0


def fit_head(
    x: np.ndarray, targets: np.ndarray, *, multilabel: bool, c: float, seed: int
) -> dict[str, np.ndarray]:
    """Standardised logistic regression on segment embeddings.

    Parameters
    ----------
    x : np.ndarray, shape (n_segments, d)
    targets : np.ndarray, shape (n_segments, n_labels)
        One-hot or multi-hot.
    multilabel : bool
        The feature set's (:attr:`TrainingData.multilabel`): one regression per label, sigmoid
        outputs; else one multinomial regression, softmax. Not inferred from ``targets``: a
        multi-label set's train split may hold only single-label clips.
    c : float
        scikit-learn's ``C``.

    Returns
    -------
    dict
        ``mean``, ``variance`` (d,); ``kernel`` (d, n_labels); ``bias`` (n_labels,);
        ``iterations``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    n_labels = targets.shape[1]
    kernel = np.zeros((x.shape[1], n_labels))
    bias = np.full(n_labels, _ABSENT_LOGIT)
    iterations = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        if multilabel:
            for j in range(n_labels):
                y = targets[:, j] > 0
                if y.all() or not y.any():
                    bias[j] = -_ABSENT_LOGIT if y.all() else _ABSENT_LOGIT
                    continue
                lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(z, y)
                kernel[:, j], bias[j] = lr.coef_[0], lr.intercept_[0]
                iterations = max(iterations, int(lr.n_iter_.max()))
        else:
            y = targets.argmax(axis=1)
            present = np.unique(y)
            if len(present) < 2:
                raise DatasetError("the head needs training clips of at least two genres")
            lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(z, y)
            if len(present) == 2:  # one logit for the second class: softmax of [-z/2, z/2]
                coef = np.stack([-lr.coef_[0] / 2, lr.coef_[0] / 2])
                intercept = np.array([-lr.intercept_[0] / 2, lr.intercept_[0] / 2])
            else:
                coef, intercept = lr.coef_, lr.intercept_
            kernel[:, present] = coef.T
            bias[present] = intercept
            iterations = int(lr.n_iter_.max())
    return {
        "mean": scaler.mean_,
        "variance": scaler.var_,
        "kernel": kernel,
        "bias": bias,
        "iterations": iterations,
        "multilabel": multilabel,
    }


def build_classifier(backbone_model, head: Mapping[str, Any], *, embedding: str, labels: int):
    """Segments -> backbone -> ``embedding`` outputs -> standardise -> softmax (or sigmoid).

    Returns
    -------
    keras.Model
        Input ``(batch, n_mels, frames, 1)``, output ``(batch, labels)``.
    """
    import keras
    from keras import layers

    segments = keras.Input(shape=backbone_model.input_shape[1:], name="segments")
    outputs = backbone_model(segments)
    picked = [outputs[name] for name in HEAD_INPUTS[embedding]]
    x = picked[0] if len(picked) == 1 else layers.Concatenate(name="embedding")(picked)
    norm = layers.Normalization(
        mean=np.asarray(head["mean"], np.float32),
        variance=np.maximum(np.asarray(head["variance"], np.float32), 1e-12),
        name="head_standardise",
    )
    x = norm(x)
    dense = layers.Dense(
        labels, activation="sigmoid" if head["multilabel"] else "softmax", name="head"
    )
    probabilities = dense(x)
    dense.set_weights(
        [np.asarray(head["kernel"], np.float32), np.asarray(head["bias"], np.float32)]
    )
    return keras.Model(segments, probabilities, name="genreflow_head")


def train_head(
    *,
    features_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: Mapping[str, Any],
    threads: Mapping[str, Any],
    embeddings_dir: str | os.PathLike | None = None,
) -> dict:
    """Fit the head on the train split and export a self-contained model directory.

    Parameters
    ----------
    features_dir : path-like
        Output of ``genreflow spectrograms`` with the backbone's front end.
    out_dir : path-like
        Model directory to write (``model.keras``, ``genreflow.json``, ``history.json``,
        ``timings.json``).
    cfg : mapping
        Validated configuration.
    threads : mapping
        Thread settings in force, recorded.
    embeddings_dir : path-like or None
        Output of ``genreflow embed`` for these features; None embeds here.

    Returns
    -------
    dict
        The ``timings.json`` record.
    """
    from genreflow.core.runlock import output_lock

    with output_lock(out_dir, command="genreflow train"):
        return _train_head(
            features_dir=features_dir,
            out_dir=out_dir,
            cfg=cfg,
            threads=threads,
            embeddings_dir=embeddings_dir,
        )


def _train_head(
    *,
    features_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    cfg: Mapping[str, Any],
    threads: Mapping[str, Any],
    embeddings_dir: str | os.PathLike | None,
) -> dict:
    from genreflow.backbones.musicnn import build_backbone

    tcfg = cfg["train"]
    backbone = tcfg["model"]["backbone"]
    hcfg = tcfg["head"]
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0, wall0 = time.perf_counter(), time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timings.json").unlink(missing_ok=True)
    data = read_training_data(features_dir, tcfg=tcfg, band_stats=False)
    features, labels, multilabel = data.features, data.labels, data.multilabel
    train, valid = data.train_clips, data.valid_clips
    check_front_end(features, backbone=backbone)
    model = build_backbone()
    t_load = time.perf_counter()
    embeddings = _embeddings(model, features, embeddings_dir=embeddings_dir, backbone=backbone)
    t_embed = time.perf_counter()
    x, segment_clip = embeddings.rows(train, embedding=hcfg["embedding"])
    targets = train.targets[segment_clip]
    head = fit_head(x, targets, multilabel=multilabel, c=float(hcfg["c"]), seed=int(tcfg["seed"]))
    t_fit = time.perf_counter()
    classifier = build_classifier(model, head, embedding=hcfg["embedding"], labels=len(labels))
    accuracy = {"train": _accuracy(head, embeddings, train, hcfg["embedding"])}
    if len(valid):
        accuracy["valid"] = _accuracy(head, embeddings, valid, hcfg["embedding"])
    export_model(classifier, out / "model.keras")
    info = model_record(cfg, data=data, best_epoch=0)
    info["backbone"] = backbone
    info["head"] = {"embedding": hcfg["embedding"], "c": float(hcfg["c"])}
    if tcfg["ensemble"] and not multilabel:
        info["ensemble"] = fit_ensemble_baseline(
            out, features=features, clips=[train, valid], n_labels=len(labels)
        )
    if multilabel:
        info["thresholds"] = tune_valid_thresholds(
            out, model_info=info, features=features, clips=valid
        )
    write_json(out / "genreflow.json", info)
    write_json(
        out / "history.json",
        {
            "epochs": [],
            "head": {
                "method": "standardised logistic regression (scikit-learn) on "
                f"{backbone} {hcfg['embedding']} per segment, C={hcfg['c']}",
                "iterations": head["iterations"],
                "train_segments": int(len(x)),
                "clip_accuracy": accuracy,
            },
        },
    )
    timings = {
        "stage": "head",
        "role": "production",
        "backbone": backbone,
        "started": started_at,
        "host": socket.gethostname(),
        **describe_device(),
        "threads": dict(threads),
        "features_hash": features.info.get("config_hash"),
        "embeddings": str(embeddings_dir) if embeddings_dir else None,
        "train_clips": len(train),
        "train_segments": int(len(x)),
        "seconds": {
            "load_backbone": round(t_load - t0, 4),
            "embed": round(t_embed - t_load, 4),
            "fit": round(t_fit - t_embed, 4),
            "export": round(time.perf_counter() - t_fit, 4),
        },
        "start_time": round(wall0, 3),
    }
    timings["total_seconds"] = round(time.perf_counter() - t0, 4)
    timings["end_time"] = round(wall0 + timings["total_seconds"], 3)
    write_json(out / "timings.json", timings)
    shown = ", ".join(f"{k} {v:.1%}" for k, v in accuracy.items() if v is not None)
    print(
        f"train: head fitted on {len(x)} segments of {len(train)} clips in {t_fit - t_embed:.1f} s"
        + (f" (clip accuracy {shown})" if shown else "")
        + f" -> {out}",
        flush=True,
    )
    return timings


def _embeddings(model, features: FeatureSet, *, embeddings_dir, backbone: str) -> Embeddings:
    if embeddings_dir is None:
        return embed_clips(model, features, head_clips(features), name=backbone)
    embeddings = read_embeddings(embeddings_dir)
    if embeddings.backbone != backbone:
        raise StageError(
            f"{embeddings_dir}: embeddings of backbone '{embeddings.backbone}', but "
            f"train.model.backbone is '{backbone}'"
        )
    return embeddings


def _accuracy(head, embeddings: Embeddings, clips: ClipTable, embedding: str) -> float | None:
    """Clip accuracy of a single-label head on stored embeddings (numpy: the Keras head's
    numbers); None for a multi-label head or no clips."""
    if len(clips) == 0 or clips.multilabel:
        return None
    x, segment_clip = embeddings.rows(clips, embedding=embedding)
    logits = (x - head["mean"]) / np.sqrt(np.maximum(head["variance"], 1e-12)) @ head[
        "kernel"
    ] + head["bias"]
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    per_clip = clip_average(probs, segment_clip, n_clips=len(clips))
    return float((per_clip.argmax(axis=1) == clips.labels).mean())
