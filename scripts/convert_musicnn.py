"""Rebuild ``src/genreflow/backbones/musicnn_msd.npz`` from the ``musicnn`` 0.1.0 wheel.

    python scripts/convert_musicnn.py                  # downloads the wheel with pip
    python scripts/convert_musicnn.py --wheel musicnn-0.1.0-py3-none-any.whl

``pip`` cannot install ``musicnn`` beside numpy 2 (it pins numpy < 1.17), but its wheel is a
zip holding TensorFlow 1 checkpoints that ``tf.train.load_checkpoint`` reads. This script keeps
the MSD_musicnn checkpoint's model variables (not Adam's slots) as float32 arrays, copies the
wheel's ISC licence beside them, and writes the reference outputs the port is tested against
(``tests/support/musicnn_msd_reference.npz``): a 3-s synthetic patch and the tags and penultimate
layer computed from the checkpoint by a forward pass written here in plain TensorFlow ops, the
graph of musicnn/models.py (``build_musicnn``) op for op, independent of the Keras port.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "genreflow" / "backbones"
REFERENCE = ROOT / "tests" / "support" / "musicnn_msd_reference.npz"
WHEEL = "musicnn==0.1.0"
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"


def fetch_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(folder), WHEEL],
        check=True,
    )
    return next(folder.glob("musicnn-*.whl"))


def read_checkpoint(wheel: Path, folder: Path) -> dict[str, np.ndarray]:
    import tensorflow as tf

    with zipfile.ZipFile(wheel) as zf:
        for suffix in (".index", ".data-00000-of-00001"):
            # the wheel names the files by an empty prefix; TensorFlow wants <prefix>.index
            (folder / f"msd{suffix}").write_bytes(zf.read(f"musicnn/MSD_musicnn/{suffix}"))
        (folder / "LICENSE").write_bytes(zf.read("musicnn-0.1.0.dist-info/LICENSE.md"))
    reader = tf.train.load_checkpoint(str(folder / "msd"))
    return {
        name: reader.get_tensor(name).astype(np.float32)
        for name in sorted(reader.get_variable_to_shape_map())
        if "Adam" not in name and not name.startswith("beta")
    }


def synthetic_patch() -> np.ndarray:
    """3 s of a plucked-bass-and-hi-hat pattern as musicnn's front end sees it, (96, 187)."""
    import librosa

    sr, rng = 16000, np.random.default_rng(0)
    t = np.arange(3 * sr) / sr
    y = np.zeros_like(t)
    for beat in np.arange(0, 3, 0.25):
        k = t >= beat
        y[k] += (
            0.3
            * np.sin(2 * np.pi * 110 * (1 + (beat % 1.0)) * (t[k] - beat))
            * np.exp(-6 * (t[k] - beat))
        )
        y[k] += 0.05 * rng.standard_normal(k.sum()) * np.exp(-40 * (t[k] - beat))
    mel = librosa.feature.melspectrogram(
        y=y.astype(np.float32), sr=sr, n_fft=512, hop_length=256, n_mels=96
    )
    return np.log10(1 + 10000 * mel)[:, :187].astype(np.float32)


def reference_forward(w: dict[str, np.ndarray], patch: np.ndarray) -> dict[str, np.ndarray]:
    """musicnn/models.py's build_musicnn in inference mode, in plain TensorFlow ops."""
    import tensorflow as tf

    def bn(x, i):
        p = "batch_normalization" + (f"_{i}" if i else "")
        return tf.nn.batch_normalization(
            x,
            w[f"{p}/moving_mean"],
            w[f"{p}/moving_variance"],
            w[f"{p}/beta"],
            w[f"{p}/gamma"],
            1e-3,
        )

    def conv(x, i, padding):
        p = "conv2d" + (f"_{i}" if i else "")
        return tf.nn.relu(tf.nn.conv2d(x, w[f"{p}/kernel"], 1, padding) + w[f"{p}/bias"])

    def pool_squeeze(x):
        return tf.squeeze(tf.reduce_max(x, axis=2, keepdims=True), [2])

    x = tf.constant(patch.T[None])  # (1, frames, mels)
    x = bn(tf.expand_dims(x, 3), 0)
    pad7 = tf.pad(x, [[0, 0], [3, 3], [0, 0], [0, 0]])
    f74 = pool_squeeze(bn(conv(pad7, 0, "VALID"), 1))
    f77 = pool_squeeze(bn(conv(pad7, 1, "VALID"), 2))
    s = [pool_squeeze(bn(conv(x, 2 + i, "SAME"), 3 + i)) for i in range(3)]
    front = tf.expand_dims(tf.concat([f74, f77, *s], 2), 3)
    c1 = tf.transpose(
        bn(conv(tf.pad(front, [[0, 0], [3, 3], [0, 0], [0, 0]]), 5, "VALID"), 6), [0, 1, 3, 2]
    )
    c2 = (
        tf.transpose(
            bn(conv(tf.pad(c1, [[0, 0], [3, 3], [0, 0], [0, 0]]), 6, "VALID"), 7), [0, 1, 3, 2]
        )
        + c1
    )
    c3 = (
        tf.transpose(
            bn(conv(tf.pad(c2, [[0, 0], [3, 3], [0, 0], [0, 0]]), 7, "VALID"), 8), [0, 1, 3, 2]
        )
        + c2
    )
    mid = tf.concat([front, c1, c2, c3], 2)
    pools = tf.concat([tf.reduce_max(mid, axis=1), tf.reduce_mean(mid, axis=1)], 2)
    flat = bn(tf.reshape(pools, [1, -1]), 9)
    penultimate = bn(tf.nn.relu(flat @ w["dense/kernel"] + w["dense/bias"]), 10)
    tags = tf.sigmoid(penultimate @ w["dense_1/kernel"] + w["dense_1/bias"])
    return {"tags": tags.numpy()[0], "penultimate": penultimate.numpy()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="musicnn-0.1.0 wheel (default: pip download)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wheel = args.wheel or fetch_wheel(folder)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            sys.exit(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256} (musicnn 0.1.0 from PyPI)")
        weights = read_checkpoint(wheel, folder)
        np.savez_compressed(PACKAGE / "musicnn_msd.npz", **weights)
        (PACKAGE / "LICENSE.musicnn").write_bytes((folder / "LICENSE").read_bytes())
    count = sum(v.size for v in weights.values())
    print(f"{len(weights)} variables, {count:,} parameters -> {PACKAGE / 'musicnn_msd.npz'}")
    patch = synthetic_patch()
    out = reference_forward(weights, patch)
    np.savez_compressed(REFERENCE, patch=patch, **out)
    sys.path.insert(0, str(ROOT / "src"))
    from genreflow.backbones.musicnn import MSD_TAGS

    top = np.argsort(out["tags"])[::-1][:5]
    print("reference top tags:", ", ".join(f"{MSD_TAGS[i]} {out['tags'][i]:.2f}" for i in top))


if __name__ == "__main__":
    main()
