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

This module imports TensorFlow; set thread settings (``genreflow.core.threads``) before importing it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from genreflow.core.errors import AudioError, ModelError
from genreflow.metrics.multilabel import thresholds_array
from genreflow.prediction.model_info import read_model_info
from genreflow.prediction.records import Prediction, PreparedClip


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
