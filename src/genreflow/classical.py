"""The strong classical baseline: MFCC statistics per segment and an RBF support-vector machine.

Each stored log-mel segment (dB) becomes 80 numbers: the mean and standard deviation over its
frames of 20 MFCCs and of their deltas. MFCCs are the orthonormal DCT-II of the log-mel
spectrum, exactly ``librosa.feature.mfcc(S=segment_db, n_mfcc=20)``; deltas are
``librosa.feature.delta(width=9)``. The statistics are standardised with the training rows'
mean and standard deviation and fed to ``sklearn.svm.SVC(kernel="rbf", C=10, gamma="scale")``,
whose scores become probabilities by Platt scaling fitted on 5-fold cross-validated scores
(``CalibratedClassifierCV(..., ensemble=False)``, deterministic). A clip's probabilities are the mean of its segments', as
for the CNN, so the two can be compared (and averaged: the ensemble) clip by clip.

It needs no GPU, no epochs and no tuning, and on real music it is hard to beat: it is the
bar the CNN is measured against (``genreflow evaluate``, ``benchmarks/bench_accuracy.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from genreflow.spectrograms.clips import ClipTable, clip_average, iter_segment_chunks
from genreflow.spectrograms.shards import FeatureSet

MFCC_SVM_METHOD = (
    "MFCC(20) + delta mean/std per segment, standardised, RBF SVM (C=10); "
    "clip = mean of its segments' probabilities; trained on train + valid"
)

N_MFCC = 20
SVM_C = 10.0


def segment_mfcc_statistics(segments: np.ndarray, *, n_mfcc: int = N_MFCC) -> np.ndarray:
    """MFCC and delta-MFCC means and standard deviations of log-mel segments.

    Parameters
    ----------
    segments : np.ndarray, shape (k, n_mels, frames)
        Log-mel dB (float16 or float32).
    n_mfcc : int

    Returns
    -------
    np.ndarray, shape (k, 4 * n_mfcc), float64
        ``[mean(mfcc), std(mfcc), mean(delta), std(delta)]`` per segment.
    """
    import librosa
    import scipy.fft

    segments = np.asarray(segments, dtype=np.float64)
    mfcc = scipy.fft.dct(segments, type=2, norm="ortho", axis=1)[:, :n_mfcc, :]
    width = min(9, mfcc.shape[-1] - (1 - mfcc.shape[-1] % 2))  # odd, and no longer than the segment
    delta = librosa.feature.delta(mfcc, width=max(3, width), axis=-1)
    return np.concatenate(
        [mfcc.mean(axis=-1), mfcc.std(axis=-1), delta.mean(axis=-1), delta.std(axis=-1)], axis=1
    )


def clip_segment_statistics(
    features: FeatureSet, clips: ClipTable
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`segment_mfcc_statistics` of every segment of ``clips``, in clip order.

    Returns
    -------
    stats : np.ndarray, shape (total segments, 4 * N_MFCC)
    positions : np.ndarray, shape (total segments,), int
        Each row's clip (index into ``clips``).
    """
    stats, positions = [], []
    for where, chunk in iter_segment_chunks(features, clips):
        stats.append(segment_mfcc_statistics(chunk))
        positions.append(where)
    if not stats:
        return np.zeros((0, 4 * N_MFCC)), np.zeros(0, dtype=np.int64)
    return np.concatenate(stats), np.concatenate(positions)


class MfccSvm:
    """The baseline, fitted on some clips; scores clips of the same feature set.

    Parameters
    ----------
    n_labels : int
        Output width (labels never seen in training get probability 0).
    """

    method = MFCC_SVM_METHOD

    def __init__(self, *, n_labels: int) -> None:
        self.n_labels = int(n_labels)
        self.fit_seconds = 0.0

    def fit(self, features: FeatureSet, clips: Sequence[ClipTable]) -> MfccSvm:
        """Train on every segment of ``clips`` (several tables, e.g. train and valid)."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        started = time.perf_counter()
        xs, ys = [], []
        for table in clips:
            stats, positions = clip_segment_statistics(features, table)
            xs.append(stats)
            ys.append(table.labels[positions])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if len(np.unique(y)) < 2:
            from genreflow.core.errors import DatasetError

            raise DatasetError(f"{features.path}: the baseline needs clips of two labels or more")
        self.pipeline = make_pipeline(
            StandardScaler(),
            CalibratedClassifierCV(
                SVC(kernel="rbf", C=SVM_C, gamma="scale"),
                ensemble=False,
                cv=max(2, min(5, int(np.unique(y, return_counts=True)[1].min()))),
            ),
        )
        self.pipeline.fit(x, y)
        self.fit_seconds = time.perf_counter() - started
        return self

    def segment_probabilities(self, stats: np.ndarray) -> np.ndarray:
        """Probabilities of segment statistics rows, shape (k, n_labels), float64."""
        out = np.zeros((len(stats), self.n_labels))
        if len(stats):
            out[:, self.pipeline.classes_] = self.pipeline.predict_proba(stats)
        return out

    def clip_probabilities(self, features: FeatureSet, clips: ClipTable) -> np.ndarray:
        """Clip probabilities of ``clips`` (mean over each clip's segments), shape (n_clips, n_labels)."""
        stats, positions = clip_segment_statistics(features, clips)
        return clip_average(self.segment_probabilities(stats), positions, n_clips=len(clips))


#: File of the fitted baseline in a model directory (``train.ensemble: true``).
ENSEMBLE_FILE = "classical.joblib"

#: The baseline's share of the ensemble's clip probabilities.
ENSEMBLE_WEIGHT = 0.5


def ensemble_probabilities(
    cnn: np.ndarray, classical: np.ndarray, *, weight: float = ENSEMBLE_WEIGHT
) -> np.ndarray:
    """The ensemble's probabilities: ``(1 - weight) * cnn + weight * classical`` (any shape)."""
    return (1.0 - weight) * np.asarray(cnn) + weight * np.asarray(classical)


def save_baseline(svm: MfccSvm, path) -> None:
    """Write a fitted :class:`MfccSvm` to ``path`` atomically (joblib)."""
    import joblib

    from genreflow.core.atomic import atomic_path

    with atomic_path(path) as tmp:
        joblib.dump(svm, tmp)


def load_baseline(path) -> MfccSvm:
    """Read what :func:`save_baseline` wrote (only load files you made: joblib is pickle)."""
    import joblib

    from genreflow.core.errors import ModelError

    try:
        svm = joblib.load(path)
    except Exception as exc:  # unpickling fails in many ways (KeyError, UnpicklingError, ...)
        raise ModelError(f"{path}: cannot load the ensemble's baseline: {exc}") from None
    if not isinstance(svm, MfccSvm):
        raise ModelError(f"{path}: not a genreflow MFCC + SVM baseline")
    return svm
