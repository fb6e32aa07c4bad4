"""The genre CNN: a small fully-convolutional network over log-mel segments.

Input ``(n_mels, None, 1)``: any number of frames, so the same model trains on fixed segments
and can score longer windows. Design choices measured on 2 CPU cores (see the project notes):

- a stride-2 first convolution: ~4x the throughput of stride 1 at no measurable accuracy cost;
- BatchNormalization momentum 0.9 instead of Keras' 0.99: with a few hundred steps in a whole
  training run, 0.99 never lets the running statistics settle and validation stays at chance;
- ``pooling="global"``: global average pooling, so the frame count can vary and the model
  stays tiny; ``pooling="time"`` averages over time only and keeps the frequency axis (the
  spectral envelope, where much of a genre is) for the classifier: see docs/model.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Filters of the convolution blocks; each block halves both axes.
DEFAULT_FILTERS = (16, 32, 48, 64)


def build_model(
    *,
    n_mels: int,
    n_labels: int,
    filters: Sequence[int] = DEFAULT_FILTERS,
    dropout: float = 0.3,
    bn_momentum: float = 0.9,
    multilabel: bool = False,
    pooling: str = "global",
):
    """Build (uncompiled) the CNN.

    Parameters
    ----------
    n_mels : int
        Mel bands (the input's height).
    n_labels : int
        Output units.
    filters : sequence of int
        Filters per convolution block; the first block's convolution has stride 2.
    dropout : float
        Dropout before the classifier.
    bn_momentum : float
        BatchNormalization momentum.
    multilabel : bool
        Sigmoid outputs (independent labels) instead of a softmax.
    pooling : {"global", "time", "time_mean_max"}
        Average the last block over frequency and time, or over time only (the frequency
        bins and channels of the last block are then flattened for the classifier), or take
        both the mean and the maximum over time.

    Returns
    -------
    keras.Model
        Input ``(batch, n_mels, frames, 1)`` float32 -> output ``(batch, n_labels)`` probabilities.
    """
    import keras
    from keras import layers

    inputs = keras.Input((n_mels, None, 1), name="logmel")
    x = inputs
    for i, n in enumerate(filters):
        x = layers.Conv2D(
            n, 3, strides=2 if i == 0 else 1, padding="same", use_bias=False, name=f"conv{i + 1}"
        )(x)
        x = layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        if i < len(filters) - 1:
            x = layers.MaxPooling2D(2, padding="same", name=f"pool{i + 1}")(x)
    if pooling in ("time", "time_mean_max"):
        # (b, mels, frames, ch) -> (b, frames, mels * ch) -> mean over frames: any frame count.
        bins, channels = x.shape[1], x.shape[3]
        x = layers.Permute((2, 1, 3), name="frames_first")(x)
        x = layers.Reshape((-1, bins * channels), name="frame_vectors")(x)
        mean = layers.GlobalAveragePooling1D(name="time_pool")(x)
        if pooling == "time":
            x = mean
        else:
            peak = layers.GlobalMaxPooling1D(name="time_max_pool")(x)
            x = layers.Concatenate(name="time_stats")([mean, peak])
    elif pooling == "global":
        x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    else:
        raise ValueError(f"pooling must be 'global', 'time' or 'time_mean_max', got {pooling!r}")
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(
        n_labels,
        activation="sigmoid" if multilabel else "softmax",
        dtype="float32",  # probabilities stay float32 under a mixed-precision policy
        name="genre",
    )(x)
    return keras.Model(inputs, outputs, name="genre_cnn")


def compile_model(
    tcfg: Mapping[str, Any],
    *,
    n_mels: int,
    n_labels: int,
    multilabel: bool,
    steps_per_epoch: int,
    learning_rate: float,
    epochs: int,
    scope,
):
    """Build the CNN of ``train.model`` in ``scope`` and compile it with its schedule and loss.

    Parameters
    ----------
    tcfg : mapping
        The ``train`` configuration section.
    n_mels, n_labels, multilabel
        As for :func:`build_model`.
    steps_per_epoch : int
        Optimizer steps per epoch of one worker.
    learning_rate : float
        Peak learning rate (scaled for the global batch).
    epochs : int
        Epochs this run asks for; the schedule spans at least ``train.epochs``.
    scope : context manager
        The distribution strategy's scope (or a null context): where the model's and the
        optimizer's variables are created.

    Returns
    -------
    keras.Model
    """
    import keras

    # Cosine decay over the configured epochs (or more, when --epochs asks for more): large
    # steps early, small ones at the end, where the validation loss otherwise jumps around.
    # The schedule is part of the optimizer, so a resumed run keeps the one it started with.
    # A linear warm-up first (train.warmup_epochs): BatchNorm statistics and Adam's moment
    # estimates settle before the largest steps.
    warmup_steps = int(tcfg["warmup_epochs"]) * steps_per_epoch
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0 if warmup_steps else learning_rate,
        decay_steps=max(1, max(epochs, int(tcfg["epochs"])) * steps_per_epoch - warmup_steps),
        alpha=0.05,
        warmup_target=learning_rate if warmup_steps else None,
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
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=float(tcfg["label_smoothing"]))
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    mcfg = tcfg["model"]
    with scope:
        model = build_model(
            n_mels=n_mels,
            n_labels=n_labels,
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
    return model
