"""The records prediction passes around: a clip ready for the model, and one clip's prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genreflow.metrics.multilabel import over_threshold


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
