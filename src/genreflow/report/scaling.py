"""Speed-up, parallel efficiency and an Amdahl's-law fit of a strong-scaling sweep.

Amdahl's law says a job whose serial fraction is ``f`` runs in
``T(n) = T1 * (f + (1 - f) / n)`` on ``n`` workers, so ``S(n) = 1 / (f + (1 - f) / n)``.
``T(n)`` is linear in ``1/n`` (``T = a + b/n`` with ``a = T1 f``, ``b = T1 (1 - f)``), so the
least-squares fit is a closed-form linear regression and ``f = a / (a + b)``; its standard
error comes from the regression's covariance by the delta method.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AmdahlFit:
    """Least-squares fit of ``T(n) = a + b / n``.

    ``serial_fraction`` is ``a / (a + b)``; ``serial_fraction_se`` its standard error (None
    when the fit has no residual degrees of freedom); ``note`` says why a value is missing or
    what an unphysical one means.
    """

    intercept: float | None
    slope: float | None
    serial_fraction: float | None
    serial_fraction_se: float | None
    n_points: int
    n_counts: int
    note: str | None

    @property
    def ok(self) -> bool:
        return self.serial_fraction is not None

    @property
    def t1(self) -> float | None:
        """Fitted time on one worker, ``a + b``."""
        return self.intercept + self.slope if self.ok else None

    @property
    def max_speedup(self) -> float | None:
        """Amdahl's limit ``1 / f`` (None unless ``0 < f``)."""
        f = self.serial_fraction
        return 1.0 / f if f is not None and f > 0 else None

    def time(self, counts: np.ndarray | Sequence[float]) -> np.ndarray:
        """Fitted time at each worker count."""
        n = np.asarray(counts, dtype=float)
        return self.intercept + self.slope / n

    def speedup(self, counts: np.ndarray | Sequence[float], *, baseline: float = 1.0) -> np.ndarray:
        """Fitted speed-up ``T(baseline) / T(n)`` at each worker count."""
        return self.time([baseline])[0] / self.time(counts)

    def as_dict(self) -> dict:
        return {
            "model": "T(n) = T1 * (f + (1 - f) / n)",
            "serial_fraction": self.serial_fraction,
            "serial_fraction_se": self.serial_fraction_se,
            "t1_seconds": self.t1,
            "max_speedup": self.max_speedup,
            "points": self.n_points,
            "counts": self.n_counts,
            "note": self.note,
        }


def fit_amdahl(*, counts: Sequence[float], times: Sequence[float]) -> AmdahlFit:
    """Fit Amdahl's law to measured times.

    Parameters
    ----------
    counts : sequence of float, shape (k,)
        Worker count (ranks or threads) of each run; repeats at one count are allowed.
    times : sequence of float, shape (k,)
        Seconds of each run.

    Returns
    -------
    AmdahlFit
        With a note instead of numbers when fewer than two distinct counts are given, and
        no standard error when exactly two points determine the line exactly.
    """
    n = np.asarray(counts, dtype=float)
    t = np.asarray(times, dtype=float)
    if n.shape != t.shape or n.ndim != 1:
        raise ValueError(f"counts {n.shape} and times {t.shape} must be 1-D and the same length")
    k, distinct = len(n), len(set(n.tolist()))

    def no_fit(note: str) -> AmdahlFit:
        return AmdahlFit(None, None, None, None, k, distinct, note)

    if distinct < 2:
        return no_fit(
            f"not enough points for a fit: {distinct} distinct count(s), Amdahl's law needs 2"
        )
    design = np.column_stack([np.ones(k), 1.0 / n])
    (a, b), *_ = np.linalg.lstsq(design, t, rcond=None)
    a, b = float(a), float(b)
    if a + b <= 0:
        return AmdahlFit(
            a, b, None, None, k, distinct, "the fitted one-worker time is not positive"
        )
    f = a / (a + b)
    se = None
    note = None
    if k > 2:
        residual = t - design @ np.array([a, b])
        variance = float(residual @ residual) / (k - 2)
        covariance = variance * np.linalg.inv(design.T @ design)
        gradient = np.array([b, -a]) / (a + b) ** 2  # d f / d(a, b)
        se = math.sqrt(max(float(gradient @ covariance @ gradient), 0.0))
    else:
        note = "two points fix the line exactly: no residual left to estimate an uncertainty"
    # Outside [0, 1] the law does not describe the data: report why instead of a number.
    if f < 0:
        return no_fit("none: times fall faster than 1/n (super-linear: caches, or noise)")
    if f > 1:
        return no_fit("none: more workers made it slower (overhead dominates at this size)")
    return AmdahlFit(a, b, f, se, k, distinct, note)


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second


@dataclass(frozen=True)
class ScalingPoint:
    """One worker count of a sweep: median time over its runs and derived ratios."""

    count: int
    seconds: float
    runs: int
    speedup: float
    efficiency: float
    core_efficiency: float | None
    oversubscribed: bool | None


@dataclass(frozen=True)
class Scaling:
    """A strong-scaling sweep: points sorted by count, the core count and the Amdahl fit."""

    points: tuple[ScalingPoint, ...]
    cores: int | None
    fit: AmdahlFit

    @property
    def baseline(self) -> ScalingPoint:
        """The smallest worker count (1 when it was run)."""
        return self.points[0]

    @property
    def best(self) -> ScalingPoint:
        """The fastest worker count."""
        return min(self.points, key=lambda p: (p.seconds, p.count))


def scaling(*, counts: Sequence[int], times: Sequence[float], cores: int | None = None) -> Scaling:
    """Speed-up and efficiency of each worker count against the smallest one.

    Parameters
    ----------
    counts, times : sequences, shape (k,)
        Worker count and seconds of each run; repeats at one count are reduced to their median.
    cores : int, optional
        Physical cores available to the runs. With it, ``core_efficiency`` divides the speed-up
        by the cores actually usable (``min(n, cores)``) and ``oversubscribed`` marks
        ``n > cores``.

    Returns
    -------
    Scaling
        ``speedup = T(n0) / T(n)`` and ``efficiency = speedup / (n / n0)`` where ``n0`` is the
        smallest count; the fit uses every run (not the medians) with at most ``cores``
        workers.
    """
    if not counts or len(counts) != len(times):
        raise ValueError("need one time per count and at least one run")
    by_count: dict[int, list[float]] = {}
    for n, t in zip(counts, times, strict=True):
        by_count.setdefault(int(n), []).append(float(t))
    ordered = sorted(by_count)
    n0 = ordered[0]
    t0 = statistics.median(by_count[n0])
    points = []
    for n in ordered:
        tn = statistics.median(by_count[n])
        speedup = t0 / tn if tn > 0 else math.inf
        core_eff = oversub = None
        if cores:
            core_eff = speedup / (min(n, cores) / min(n0, cores))
            oversub = n > cores
        points.append(
            ScalingPoint(
                count=n,
                seconds=tn,
                runs=len(by_count[n]),
                speedup=speedup,
                efficiency=speedup / (n / n0),
                core_efficiency=core_eff,
                oversubscribed=oversub,
            )
        )
    # Amdahl's law assumes a core per worker: runs with more workers than cores stay out.
    fitted = [(n, t) for n, t in zip(counts, times, strict=True) if not cores or n <= cores]
    fit = fit_amdahl(counts=[n for n, _ in fitted], times=[t for _, t in fitted])
    return Scaling(points=tuple(points), cores=cores, fit=fit)
