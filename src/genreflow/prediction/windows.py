"""The windows of a live stream: cutting them from the samples, and one window's result.

:class:`SlidingWindow` cuts ``window`` samples every ``hop`` samples from audio that arrives
in chunks of any size; :class:`WindowResult` is what :mod:`genreflow.prediction.stream`
reports per window (the window's own probabilities and the smoothed decision), as JSON lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class SlidingWindow:
    """Windows of ``window`` samples every ``hop`` samples over a stream pushed in chunks.

    Window ``i`` covers samples ``[i * hop, i * hop + window)`` of the stream. Only what a
    future window (or the final partial one) still needs is kept.

    Parameters
    ----------
    window, hop : int
        Lengths in samples (> 0).
    """

    def __init__(self, *, window: int, hop: int) -> None:
        if window < 1 or hop < 1:
            raise ValueError(f"window and hop must be >= 1 sample, got {window}, {hop}")
        self.window = window
        self.hop = hop
        self.total = 0  # samples pushed so far
        self.next_end = window  # end of the next full window
        self.last_end = 0  # end of the last window handed out
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # stream index of self._buf[0]; _buf_start + len(_buf) == total

    def push(self, samples: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add samples; return ``(end, window_samples)`` for every window now complete."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.size:
            self._buf = np.concatenate([self._buf, samples]) if self._buf.size else samples
            self.total += samples.size
        ready = []
        while self.total >= self.next_end:
            end = self.next_end
            lo = end - self.window - self._buf_start
            ready.append((end, self._buf[lo : lo + self.window].copy()))
            self.last_end = end
            self.next_end += self.hop
        # Keep from the start of the window ending at last_end on: the next full window starts
        # later, and a final partial window ends after last_end.
        keep_from = max(self.last_end - self.window, self.next_end - self.window - self.hop, 0)
        cut = min(max(keep_from - self._buf_start, 0), self._buf.size)
        if cut:
            self._buf = self._buf[cut:]
            self._buf_start += cut
        return ready

    def tail(self, *, min_new: int) -> tuple[int, np.ndarray] | None:
        """The final partial window at the end of the stream: ``(end, samples)`` or None.

        It is the last ``window`` samples (all of them when the stream is shorter), returned
        only when it ends at least ``min_new`` samples after the last full window (or the
        stream has samples but no full window yet).
        """
        new = self.total - self.last_end
        if self.total == 0 or new <= 0 or (self.last_end > 0 and new < min_new):
            return None
        start = max(self.total - self.window, 0)
        return self.total, self._buf[start - self._buf_start :].copy()


@dataclass
class WindowResult:
    """The prediction for one window of the stream.

    Attributes
    ----------
    time : float
        End of the window in stream seconds (the "now" of this line).
    start : float
        Start of the window in stream seconds.
    probabilities : np.ndarray, shape (n_labels,), or None
        This window's genre probabilities (mean over its model segments); None for an
        ``unusable`` window.
    smoothed : np.ndarray, shape (n_labels,), or None
        Exponential moving average of ``probabilities`` up to this window (unusable windows
        left out); None while no window had a genre yet.
    padded : bool
        The window was shorter than one model segment and was zero-padded.
    final : bool
        The last, partial window at the end of the stream.
    seconds : float
        Processing time of this window (features and model).
    labels : list of str
        The model's labels, in output order.
    thresholds : np.ndarray, shape (n_labels,), or None
        Per-label thresholds of a multi-label model; None for a single-label one.
    unusable : str or None
        Why this window has no genre (``"silent: RMS -72.4 dBFS (threshold -60 dBFS)"``,
        ``"too short: ..."``); None for a classified window.
    """

    time: float
    start: float
    probabilities: np.ndarray | None
    smoothed: np.ndarray | None
    padded: bool = False
    final: bool = False
    seconds: float = 0.0
    labels: list[str] = field(default_factory=list)
    thresholds: np.ndarray | None = None
    unusable: str | None = None

    @property
    def label(self) -> str | None:
        """This window's most probable label; None for an unusable window."""
        if self.probabilities is None:
            return None
        return self.labels[int(np.argmax(self.probabilities))]

    @property
    def smoothed_label(self) -> str | None:
        """The smoothed decision's most probable label; None before any window had a genre."""
        if self.smoothed is None:
            return None
        return self.labels[int(np.argmax(self.smoothed))]

    @property
    def smoothed_labels(self) -> list[str]:
        """Multi-label decision: the labels whose smoothed probability reaches their threshold.

        Most probable first; ``[smoothed_label]`` for a single-label model; empty before any
        window had a genre.
        """
        if self.smoothed is None:
            return []
        if self.thresholds is None:
            return [self.smoothed_label]
        over = self.smoothed >= self.thresholds
        order = np.argsort(-self.smoothed, kind="stable")
        return [self.labels[i] for i in order if over[i]]

    def to_dict(self, *, top_k: int = 3) -> dict[str, Any]:
        """A JSON-ready record (one line of ``genreflow stream --json``).

        For a multi-label model ``smoothed`` also has ``labels``: the decision. An unusable
        window has ``"unusable": reason``, ``"label": null``, an empty ``top`` and
        ``"probabilities": null``; ``smoothed`` is null until a window had a genre.
        """
        over = {"labels": self.smoothed_labels} if self.thresholds is not None else {}
        flagged = {"unusable": self.unusable} if self.unusable is not None else {}
        smoothed = None
        if self.smoothed is not None:
            smoothed = {
                "label": self.smoothed_label,
                **over,
                "top": _top(self.labels, self.smoothed, top_k),
                "probabilities": _rounded(self.labels, self.smoothed),
            }
        classified = self.probabilities is not None
        return {
            "time": round(self.time, 3),
            "start": round(self.start, 3),
            "label": self.label,
            **flagged,
            "top": _top(self.labels, self.probabilities, top_k) if classified else [],
            "probabilities": _rounded(self.labels, self.probabilities) if classified else None,
            "smoothed": smoothed,
            "padded": self.padded,
            "final": self.final,
            "seconds": round(self.seconds, 4),
        }

    def to_line(self, *, top_k: int = 3) -> str:
        """One human-readable line: time, the top genres, the smoothed decision.

        An unusable window shows ``(no genre: REASON)`` in place of the genres.
        """
        if self.probabilities is None:
            tops = f"(no genre: {self.unusable})"
        else:
            order = np.argsort(-self.probabilities, kind="stable")[:top_k]
            tops = "  ".join(f"{self.labels[i]} {self.probabilities[i]:4.0%}" for i in order)
        flags = "".join(
            f" ({name})" for name, on in (("final", self.final), ("padded", self.padded)) if on
        )
        if self.smoothed is None:
            return f"{self.time:8.2f} s  {tops}  | smoothed: (none yet){flags}"
        if self.thresholds is not None:
            position = {name: i for i, name in enumerate(self.labels)}
            decision = ", ".join(
                f"{name} {self.smoothed[position[name]]:4.0%}" for name in self.smoothed_labels
            )
            return f"{self.time:8.2f} s  {tops}  | smoothed: {decision or '(none)'}{flags}"
        smoothed = self.smoothed[int(np.argmax(self.smoothed))]
        return (
            f"{self.time:8.2f} s  {tops}  | smoothed: {self.smoothed_label} {smoothed:4.0%}{flags}"
        )


def _top(labels: list[str], probs: np.ndarray, k: int) -> list[dict[str, Any]]:
    order = np.argsort(-probs, kind="stable")[: max(1, k)]
    return [{"label": labels[i], "probability": round(float(probs[i]), 6)} for i in order]


def _rounded(labels: list[str], probs: np.ndarray) -> dict[str, float]:
    return {name: round(float(p), 6) for name, p in zip(labels, probs, strict=True)}
