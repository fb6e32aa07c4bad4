"""musicnn (Pons & Serra 2019) in Keras 3, with the MSD_musicnn weights of the ``musicnn`` wheel.

``musicnn`` 0.1.0 (ISC licence, ``LICENSE.musicnn`` beside this file) builds its network with
``tf.compat.v1.layers``, which Keras 3 no longer has, and pins numpy < 1.17. The architecture is
written out here layer for layer; ``musicnn_msd.npz`` holds its MSD_musicnn checkpoint's
weights, converted by ``scripts/convert_musicnn.py`` (which rebuilds the file from the wheel and
saves the reference outputs ``tests/backbones/test_musicnn.py`` checks this port against).

Input: ``log10(1 + 10000 * S)`` of a 96-band Slaney mel power spectrogram of 16 kHz audio
(512-point FFT, hop 256), laid out as genreflow's segments are: shape ``(batch, 96, frames, 1)``.
The network was trained on 187-frame patches (~3 s); its back end pools over time, so any
length works. Outputs: the 50 MSD tag probabilities and the 200-unit penultimate layer.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

#: The front end the weights expect is ``genreflow.core.config.BACKBONE_FRONT_ENDS["musicnn-msd"]``.
#: Frames of the patches the network was trained on (3 s at 16 kHz, hop 256).
PATCH_FRAMES = 187
WEIGHTS_FILE = "musicnn_msd.npz"

#: The Million Song Dataset's top-50 tags, in output order (musicnn/configuration.py).
MSD_TAGS = (
    "rock",
    "pop",
    "alternative",
    "indie",
    "electronic",
    "female vocalists",
    "dance",
    "00s",
    "alternative rock",
    "jazz",
    "beautiful",
    "metal",
    "chillout",
    "male vocalists",
    "classic rock",
    "soul",
    "indie rock",
    "Mellow",
    "electronica",
    "80s",
    "folk",
    "90s",
    "chill",
    "instrumental",
    "punk",
    "oldies",
    "blues",
    "hard rock",
    "ambient",
    "acoustic",
    "experimental",
    "female vocalist",
    "guitar",
    "Hip-Hop",
    "70s",
    "party",
    "country",
    "easy listening",
    "sexy",
    "catchy",
    "funk",
    "electro",
    "heavy metal",
    "Progressive rock",
    "60s",
    "rnb",
    "indie pop",
    "sad",
    "House",
    "happy",
)

_N_MELS = 96
_TIMBRAL = ((7, 38), (7, 67))  # int(0.4 * 96), int(0.7 * 96) mel bands
_TEMPORAL = (128, 64, 32)  # frames
_FRONT_FILTERS = (204, 51)  # int(1.6 * 128), int(1.6 * 32)
_MID_FILTERS = 64
_BACK_UNITS = 200
_N_TAGS = 50


def weights_path() -> Path:
    """The converted MSD_musicnn weights shipped in the package."""
    return Path(str(resources.files("genreflow.backbones") / WEIGHTS_FILE))


def load_weights(path: str | Path | None = None) -> dict[str, np.ndarray]:
    """The converted weights, ``{checkpoint variable name: array}``."""
    with np.load(weights_path() if path is None else path) as npz:
        return {name: npz[name] for name in npz.files}


def build_backbone(*, weights: dict[str, np.ndarray] | None = None, name: str = "musicnn_msd"):
    """MSD_musicnn as a Keras model: segments -> (tags, penultimate).

    Parameters
    ----------
    weights : dict or None
        Checkpoint variables (:func:`load_weights`); None loads the shipped file.

    Returns
    -------
    keras.Model
        Input shape ``(batch, 96, frames, 1)``; outputs ``tags`` ``(batch, 50)`` (sigmoid) and
        ``penultimate`` ``(batch, 200)``. Batch normalisation runs in inference mode whatever
        ``training`` says: the backbone is frozen.
    """
    import keras
    from keras import layers

    weights = load_weights() if weights is None else weights
    loaded: list[tuple[layers.Layer, list[np.ndarray]]] = []

    def bn(index: int, label: str):
        prefix = "batch_normalization" + (f"_{index}" if index else "")
        layer = layers.BatchNormalization(epsilon=1e-3, name=f"{name}_{label}_bn")
        loaded.append(
            (
                layer,
                [
                    weights[f"{prefix}/{k}"]
                    for k in ("gamma", "beta", "moving_mean", "moving_variance")
                ],
            )
        )
        return layer

    def conv(index: int, label: str, cls, filters: int, kernel, **kwargs):
        prefix = "conv2d" + (f"_{index}" if index else "")
        layer = cls(filters, kernel, activation="relu", name=f"{name}_{label}", **kwargs)
        kernel_value = weights[f"{prefix}/kernel"]
        if cls is layers.Conv1D:  # a (7, width, 1, filters) kernel over full-width input
            kernel_value = kernel_value[:, :, 0, :]
        loaded.append((layer, [kernel_value, weights[f"{prefix}/bias"]]))
        return layer

    def dense(index: int, label: str, units: int, activation=None):
        prefix = "dense" + (f"_{index}" if index else "")
        layer = layers.Dense(units, activation=activation, name=f"{name}_{label}")
        loaded.append((layer, [weights[f"{prefix}/kernel"], weights[f"{prefix}/bias"]]))
        return layer

    def pool_bands(x, bands: int, filters: int, label: str):
        # max over the remaining mel bands: (B, T, bands, C) -> (B, T, C)
        x = layers.MaxPooling2D(pool_size=(1, bands), name=f"{name}_{label}_pool")(x)
        return layers.Reshape((-1, filters), name=f"{name}_{label}_squeeze")(x)

    segments = keras.Input(shape=(_N_MELS, None, 1), name="segments")
    # genreflow's segments are (mels, frames); musicnn's patches (frames, mels)
    x = layers.Permute((2, 1, 3), name=f"{name}_time_first")(segments)
    x = bn(0, "input")(x)
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name=f"{name}_pad_time")(x)
    front = []
    for i, (kernel, label) in enumerate(zip(_TIMBRAL, ("timbral74", "timbral77"), strict=True)):
        y = conv(i, label, layers.Conv2D, _FRONT_FILTERS[0], kernel)(padded)
        y = bn(1 + i, label)(y)
        front.append(pool_bands(y, _N_MELS - kernel[1] + 1, _FRONT_FILTERS[0], label))
    for i, frames in enumerate(_TEMPORAL):
        label = f"temporal{frames}"
        y = conv(2 + i, label, layers.Conv2D, _FRONT_FILTERS[1], (frames, 1), padding="same")(x)
        y = bn(3 + i, label)(y)
        front.append(pool_bands(y, _N_MELS, _FRONT_FILTERS[1], label))
    front_end = layers.Concatenate(axis=-1, name=f"{name}_front_end")(front)  # (B, T, 561)

    mid = [front_end]
    y = front_end
    for i in range(3):
        label = f"mid{i + 1}"
        z = layers.ZeroPadding1D(3, name=f"{name}_{label}_pad")(y)
        z = conv(5 + i, label, layers.Conv1D, _MID_FILTERS, 7)(z)
        z = bn(6 + i, label)(z)
        y = z if i == 0 else layers.Add(name=f"{name}_{label}_residual")([z, y])
        mid.append(y)
    features = layers.Concatenate(axis=-1, name=f"{name}_mid_end")(mid)  # (B, T, 753)

    # musicnn flattens (753 channels, [max, mean]): the two pools interleave channel by channel
    channels = 561 + 3 * _MID_FILTERS
    pools = [
        layers.Reshape((channels, 1), name=f"{name}_{label}_col")(
            pool(name=f"{name}_{label}_pool")(features)
        )
        for label, pool in (
            ("max", layers.GlobalMaxPooling1D),
            ("mean", layers.GlobalAveragePooling1D),
        )
    ]
    x = layers.Concatenate(axis=-1, name=f"{name}_pools")(pools)
    x = layers.Flatten(name=f"{name}_flat")(x)  # (B, 1506)
    x = bn(9, "pools")(x)
    x = dense(0, "dense", _BACK_UNITS, activation="relu")(x)
    penultimate = bn(10, "penultimate")(x)
    tags = dense(1, "tags", _N_TAGS, activation="sigmoid")(penultimate)

    model = keras.Model(segments, {"tags": tags, "penultimate": penultimate}, name=name)
    for layer, values in loaded:
        layer.set_weights(values)
    model.trainable = False
    return model
