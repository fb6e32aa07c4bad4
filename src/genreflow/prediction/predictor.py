"""Genre prediction with an exported model directory.

:class:`Predictor` loads ``model.keras`` and ``genreflow.json`` once and then answers for
files (:meth:`Predictor.predict_file`), decoded signals (:meth:`Predictor.predict_samples`,
used by the HTTP API and streaming) or ready-made segments (:meth:`Predictor.predict_segments`,
used by ``genreflow evaluate``). Features are rebuilt from the ``audio``/``mel`` sections stored
in ``genreflow.json``, so no training config is needed. A clip's probabilities are the average
of its segments' outputs; a clip shorter than one segment is zero-padded (and
:attr:`Prediction.padded` says so). A single-label model's genre is the most probable one; a
multi-label model (sigmoid outputs, ``"multilabel": true``) gives every label whose probability
reaches the label's threshold from ``genreflow.json`` (:attr:`Prediction.predicted_labels`).

A clip the spectrogram stage would skip (shorter than ``audio.min_seconds`` or quieter than
``audio.silence_dbfs``, from the model's ``genreflow.json``) is refused with an
:class:`~genreflow.core.errors.AudioError`, unless the caller passes ``allow_unusable=True``: then it
is predicted and :attr:`Prediction.unusable` gives the reason.

The module holds the model directory's reader, :func:`read_model_info` (``genreflow.json``,
checked for the keys prediction needs; numpy and the standard library only, so a command can
check a model directory before TensorFlow starts), the records prediction passes around
(:class:`PreparedClip`, a clip ready for the model, and :class:`Prediction`), the
:class:`Predictor`, and a model's scores over stored segments
(:func:`segment_probabilities`, :func:`clip_probabilities`: training's threshold tuning at
export, evaluation and the classical baseline score a feature set this way).

:class:`Predictor` imports TensorFlow when it is built; set the thread settings
(``genreflow.core.threads``) first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from genreflow.core.errors import AudioError, ModelError
from genreflow.metrics.multilabel import over_threshold, thresholds_array
from genreflow.spectrograms.clips import ClipTable, clip_average, iter_segment_chunks
from genreflow.spectrograms.shards import FeatureSet

#: Keys ``genreflow.json`` must have (docs/formats.md, "Model directory").
MODEL_INFO_KEYS = (
    "labels",
    "audio",
    "mel",
    "norm",
    "multilabel",
    "features_hash",
    "segment_frames",
)


def read_model_info(model_dir: str | os.PathLike) -> dict:
    """``genreflow.json`` of ``model_dir``, checked for the keys prediction needs.

    Raises
    ------
    ModelError
        Missing folder/file, unreadable JSON or missing keys.
    """
    model_dir = Path(model_dir)
    path = model_dir / "genreflow.json"
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: model directory not found")
    if not path.is_file():
        raise ModelError(f"{model_dir}: no genreflow.json (not a trained model directory?)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable: {exc}") from None
    missing = [k for k in MODEL_INFO_KEYS if k not in info]
    if missing:
        raise ModelError(f"{path}: missing key(s) {', '.join(missing)}")
    return info


@dataclass
class Prediction:
    """One clip's prediction.

    Attributes
    ----------
    labels : list of str
        Label names, in model output order.
    probabilities : np.ndarray, shape (n_labels,)
        Clip probabilities (mean over segments); they sum to 1 for a softmax model, not for a
        multi-label (sigmoid) one.
    segment_probabilities : np.ndarray, shape (k, n_labels)
    offsets : np.ndarray, shape (k,)
        Segment start times in seconds.
    padded : bool
        The clip (or its last segment) was zero-padded to a whole segment.
    short : bool
        The clip is shorter than one segment: its only segment is mostly padding.
    duration : float
        Clip length in seconds.
    source : str or None
        The file it came from.
    seconds : dict
        Wall time of ``decode``, ``features``, ``model`` and ``total``.
    thresholds : np.ndarray, shape (n_labels,), or None
        Per-label decision thresholds of a multi-label model; None for a single-label one.
    notes : list of str
        Remarks from decoding a clip that was still usable (an MP3 whose header misjudged
        its length).
    unusable : str or None
        Why the clip is not fit for a genre (``"silent: ..."``, ``"too short: ..."``) when it
        was predicted anyway (``allow_unusable``); None for a normal clip.
    """

    labels: list[str]
    probabilities: np.ndarray
    segment_probabilities: np.ndarray
    offsets: np.ndarray
    padded: bool
    duration: float
    source: str | None = None
    short: bool = False
    seconds: dict = field(default_factory=dict)
    thresholds: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    unusable: str | None = None

    @property
    def multilabel(self) -> bool:
        """From a multi-label model (it has per-label thresholds)."""
        return self.thresholds is not None

    @property
    def label(self) -> str:
        """The most probable label."""
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def predicted_labels(self) -> list[str]:
        """The predicted labels, most probable first.

        Multi-label: every label whose probability is ``>=`` its threshold (possibly none);
        single-label: ``[label]``.
        """
        if self.thresholds is None:
            return [self.label]
        over = over_threshold(self.probabilities, self.thresholds)
        order = np.argsort(-self.probabilities, kind="stable")
        return [self.labels[i] for i in order if over[i]]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(label, probability)`` pairs, most probable first."""
        order = np.argsort(-self.probabilities, kind="stable")[: max(1, k)]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def to_dict(self, *, top_k: int | None = None) -> dict[str, Any]:
        """A JSON-ready record: file, label, top-k, all probabilities, segments, padding, notes,
        timings.

        A multi-label prediction also has ``labels``: the labels over their thresholds; one
        predicted despite being silent or too short has ``unusable``: the reason.
        """
        top = self.top(top_k or len(self.labels))
        over = {"labels": self.predicted_labels} if self.multilabel else {}
        flagged = {"unusable": self.unusable} if self.unusable is not None else {}
        return {
            "file": self.source,
            "label": self.label,
            **over,
            **flagged,
            "top": [{"label": name, "probability": round(p, 6)} for name, p in top],
            "probabilities": {
                name: round(float(p), 6)
                for name, p in zip(self.labels, self.probabilities, strict=True)
            },
            "segments": int(len(self.offsets)),
            "padded": bool(self.padded),
            "short": bool(self.short),
            "duration": round(float(self.duration), 3),
            "notes": list(self.notes),
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
        }


@dataclass
class PreparedClip:
    """A clip ready for the model (:meth:`Predictor.prepare_file`).

    Attributes
    ----------
    segments : np.ndarray, shape (k, n_mels, frames), float32
    offsets : np.ndarray, shape (k,)
    padded : bool
    duration : float
        Seconds of audio.
    source : str or None
    unusable : str or None
        Why the clip is unfit (silent, too short), when it was prepared anyway.
    notes : list of str
        The decoder's notes.
    seconds : dict
        ``decode`` (files) and ``features`` wall times.
    """

    segments: np.ndarray
    offsets: np.ndarray
    padded: bool
    duration: float
    source: str | None = None
    unusable: str | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class Predictor:
    """A loaded model directory, ready to predict clips.

    Parameters
    ----------
    model_dir : path-like
        Output of ``genreflow train``.
    batch_size : int
        Segments per model call when a clip has many (bounds memory for long files).
    info : mapping or None
        Use this model record instead of reading ``genreflow.json`` (training tunes the
        thresholds with the exported model before it writes that file).

    Raises
    ------
    ModelError
        The directory is not a complete model directory.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        *,
        batch_size: int = 64,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        import keras
        import tensorflow as tf

        self.model_dir = Path(model_dir)
        self.info = dict(info) if info is not None else read_model_info(self.model_dir)
        self.labels: list[str] = list(self.info["labels"])
        self.multilabel = bool(self.info.get("multilabel"))
        #: Per-label thresholds (multi-label models), else None.
        self.thresholds: np.ndarray | None = (
            thresholds_array(self.info.get("thresholds"), labels=self.labels)
            if self.multilabel
            else None
        )
        self.batch_size = int(batch_size)
        model_path = self.model_dir / "model.keras"
        if not model_path.is_file():
            raise ModelError(f"{self.model_dir}: no model.keras")
        try:
            self.model = keras.models.load_model(model_path, compile=False)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{model_path}: cannot load: {exc}") from None
        self.mean = np.asarray(self.info["norm"]["mean"], dtype=np.float32)[:, None]
        self.std = np.asarray(self.info["norm"]["std"], dtype=np.float32)[:, None]
        self.n_mels = len(self.mean)
        if self.model.output_shape[-1] != len(self.labels):
            raise ModelError(
                f"{model_path}: {self.model.output_shape[-1]} outputs but genreflow.json "
                f"lists {len(self.labels)} labels"
            )
        # One traced graph for any number of segments and frames: no retracing per clip, and
        # far less per-call overhead than eager execution or model.predict.
        self._forward = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=[tf.TensorSpec((None, self.n_mels, None, 1), tf.float32)],
        )

    @cached_property
    def extractor(self):
        """The :class:`~genreflow.spectrograms.logmel.FeatureExtractor` the model was trained with."""
        from genreflow.spectrograms.logmel import FeatureExtractor

        return FeatureExtractor(audio=self.info["audio"], mel=self.info["mel"])

    @property
    def sample_rate(self) -> int:
        return int(self.info["audio"]["sample_rate"])

    def unusable_reason(self, samples: np.ndarray) -> str | None:
        """Why ``samples`` (mono, the model's rate) would be skipped in training, or None.

        The model's own ``audio.min_seconds`` and ``audio.silence_dbfs`` (from
        ``genreflow.json``; a model without them accepts everything), applied as the
        spectrogram stage applies them (:func:`genreflow.data.audio.unusable_reason`).
        """
        from genreflow.data.audio import unusable_reason

        audio = self.info["audio"]
        return unusable_reason(
            samples,
            sample_rate=self.sample_rate,
            min_seconds=float(audio.get("min_seconds") or 0.0),
            silence_dbfs=audio.get("silence_dbfs"),
        )

    def predict_segments(self, segments: np.ndarray) -> np.ndarray:
        """Probabilities of each segment.

        Parameters
        ----------
        segments : np.ndarray, shape (k, n_mels, frames)
            Log-mel dB segments (float16 or float32), not yet standardised.

        Returns
        -------
        np.ndarray, shape (k, n_labels), float32
        """
        segments = np.asarray(segments)
        if segments.ndim != 3 or segments.shape[1] != self.n_mels:
            raise ModelError(
                f"expected segments of shape (k, {self.n_mels}, frames), got {segments.shape}"
            )
        out = np.empty((len(segments), len(self.labels)), dtype=np.float32)
        for start in range(0, len(segments), self.batch_size):
            batch = segments[start : start + self.batch_size].astype(np.float32)
            x = ((batch - self.mean) / self.std)[..., np.newaxis]
            out[start : start + len(batch)] = self._forward(x).numpy()
        return out

    @cached_property
    def baseline(self):
        """The ensemble's MFCC + SVM baseline (``"ensemble"`` in ``genreflow.json``), or None."""
        record = self.info.get("ensemble")
        if not record:
            return None
        from genreflow.classical import load_baseline

        return load_baseline(self.model_dir / record["file"])

    def clip_probabilities(self, segments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A clip's probabilities from its segments, and the CNN's per-segment probabilities.

        Returns
        -------
        clip : np.ndarray, shape (n_labels,)
            See :meth:`combine`.
        segment : np.ndarray, shape (k, n_labels)
        """
        segment_probs = self.predict_segments(segments)
        return self.combine(segments, segment_probs), segment_probs

    def combine(self, segments: np.ndarray, segment_probs: np.ndarray) -> np.ndarray:
        """A clip's probabilities, shape (n_labels,), from its segments' CNN probabilities.

        The mean of the segments' probabilities or, for a model trained with
        ``train.ensemble``, that mean averaged (``weight``) with the MFCC + SVM baseline's
        (computed from ``segments``, shape (k, n_mels, frames)).
        """
        clip = segment_probs.mean(axis=0)
        if self.baseline is not None:
            from genreflow.classical import ensemble_probabilities, segment_mfcc_statistics

            svm = self.baseline.segment_probabilities(segment_mfcc_statistics(segments))
            clip = ensemble_probabilities(
                clip, svm.mean(axis=0), weight=float(self.info["ensemble"]["weight"])
            )
        return clip

    def prepare_samples(
        self,
        samples: np.ndarray,
        *,
        sample_rate: int | None = None,
        source: str | None = None,
        allow_unusable: bool = False,
    ) -> PreparedClip:
        """Everything a prediction needs before the model: checks, resampling, segments.

        Thread-safe and free of TensorFlow, so several threads can prepare clips while
        another runs the model (``genreflow serve``); :meth:`predict_prepared` finishes them.
        Parameters and errors as :meth:`predict_samples`.
        """
        t0 = time.perf_counter()
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise AudioError(
                source or "<samples>", f"expected mono samples (n,), got shape {samples.shape}"
            )
        if samples.size == 0:
            raise AudioError(source or "<samples>", "no audio samples")
        if sample_rate is not None and sample_rate != self.sample_rate:
            import soxr

            samples = soxr.resample(samples, sample_rate, self.sample_rate, quality="HQ").astype(
                np.float32
            )
        unusable = self.unusable_reason(samples)
        if unusable is not None and not allow_unusable:
            raise AudioError(source or "<samples>", unusable)
        clip = self.extractor.segments(samples, pad_short=True)
        return PreparedClip(
            segments=clip.segments,
            offsets=clip.offsets,
            padded=clip.padded,
            duration=len(samples) / self.sample_rate,
            source=source,
            unusable=unusable,
            seconds={"features": time.perf_counter() - t0},
        )

    def prepare_file(
        self,
        path: str | os.PathLike,
        *,
        max_seconds: float | None = None,
        allow_unusable: bool = False,
    ) -> PreparedClip:
        """Decode ``path`` and prepare it (:meth:`prepare_samples`); errors as :meth:`predict_file`."""
        t0 = time.perf_counter()
        audio = self.extractor.load(path, min_seconds=0, silence=False, max_seconds=max_seconds)
        decoded = time.perf_counter() - t0
        prepared = self.prepare_samples(
            audio.samples, source=str(path), allow_unusable=allow_unusable
        )
        prepared.notes = list(audio.notes)
        prepared.seconds = {"decode": decoded, **prepared.seconds}
        return prepared

    def predict_prepared(self, clips: list[PreparedClip]) -> list[Prediction]:
        """Predict prepared clips with one model call over all their segments.

        Returns
        -------
        list of Prediction
            In the order of ``clips``; ``seconds["model"]`` is the whole call's time (the clips
            shared it) and ``seconds["total"]`` runs from each clip's preparation to the end.
        """
        if not clips:
            return []
        t0 = time.perf_counter()
        counts = [len(c.segments) for c in clips]
        segments = (
            clips[0].segments if len(clips) == 1 else np.concatenate([c.segments for c in clips])
        )
        segment_probs = self.predict_segments(segments)
        predictions = []
        for clip, probs in zip(clips, np.split(segment_probs, np.cumsum(counts)[:-1]), strict=True):
            predictions.append(self._finish(clip, probs))
        model = time.perf_counter() - t0
        for prediction in predictions:
            spent = sum(prediction.seconds.values())
            prediction.seconds = {**prediction.seconds, "model": model, "total": spent + model}
        return predictions

    def _finish(self, clip: PreparedClip, segment_probs: np.ndarray) -> Prediction:
        probabilities = self.combine(clip.segments, segment_probs)
        return Prediction(
            labels=self.labels,
            probabilities=probabilities,
            segment_probabilities=segment_probs,
            offsets=clip.offsets,
            padded=clip.padded,
            duration=clip.duration,
            source=clip.source,
            short=clip.duration < float(self.info["audio"]["segment_seconds"]),
            seconds=dict(clip.seconds),
            thresholds=self.thresholds,
            unusable=clip.unusable,
            notes=list(clip.notes),
        )

    def predict_samples(
        self,
        samples: np.ndarray,
        *,
        sample_rate: int | None = None,
        source: str | None = None,
        allow_unusable: bool = False,
    ) -> Prediction:
        """Predict a decoded mono signal.

        Parameters
        ----------
        samples : np.ndarray, shape (n,)
            Mono float samples.
        sample_rate : int or None
            Their rate; resampled to the model's when different (None = already the model's).
        source : str or None
            Recorded in the prediction (a file name).
        allow_unusable : bool
            Predict a silent or too-short signal (:meth:`unusable_reason`) instead of refusing
            it; :attr:`Prediction.unusable` then says why it is unfit.

        Returns
        -------
        Prediction

        Raises
        ------
        AudioError
            Not mono, empty, or (unless ``allow_unusable``) silent or too short.
        """
        prepared = self.prepare_samples(
            samples, sample_rate=sample_rate, source=source, allow_unusable=allow_unusable
        )
        return self.predict_prepared([prepared])[0]

    def predict_file(
        self,
        path: str | os.PathLike,
        *,
        max_seconds: float | None = None,
        allow_unusable: bool = False,
    ) -> Prediction:
        """Decode ``path`` (any supported format, rate and channel count) and predict it.

        Parameters
        ----------
        path : path-like
        max_seconds : float or None
            Refuse longer clips (see :func:`genreflow.data.audio.load_audio`).
        allow_unusable : bool
            Predict a silent or too-short clip anyway, flagged (see :meth:`predict_samples`).

        Returns
        -------
        Prediction
            With the decoder's :attr:`~Prediction.notes`.

        Raises
        ------
        AudioError
            The file cannot be read or decoded, or (unless ``allow_unusable``) it is silent or
            shorter than ``audio.min_seconds`` (the message names it and says why).
        """
        prepared = self.prepare_file(path, max_seconds=max_seconds, allow_unusable=allow_unusable)
        return self.predict_prepared([prepared])[0]


def segment_probabilities(predictor, *, features: FeatureSet, clips: ClipTable) -> np.ndarray:
    """Model outputs for every segment of ``clips``, in clip order.

    Parameters
    ----------
    predictor : genreflow.prediction.predictor.Predictor
    features : FeatureSet
    clips : ClipTable

    Returns
    -------
    np.ndarray, shape (total segments, n_labels), float32
        Row order of ``clips.segment_clip()``.
    """
    chunks = [
        predictor.predict_segments(chunk) for _, chunk in iter_segment_chunks(features, clips)
    ]
    if not chunks:
        return np.zeros((0, len(predictor.labels)), dtype=np.float32)
    return np.concatenate(chunks)


def clip_probabilities(predictor, *, features: FeatureSet, clips: ClipTable) -> np.ndarray:
    """Clip probabilities of ``clips``: the mean of each clip's segment probabilities.

    Returns
    -------
    np.ndarray, shape (n_clips, n_labels), float64
    """
    segment_probs = segment_probabilities(predictor, features=features, clips=clips)
    return clip_average(segment_probs, clips.segment_clip(), n_clips=len(clips))
