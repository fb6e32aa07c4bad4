"""Signal helpers shared by the demo's instruments, drums, song parts and mastering."""

from __future__ import annotations

import numpy as np


def band(
    x: np.ndarray, sr: int, *, lo: float = 0.0, hi: float | None = None, order: int = 2
) -> np.ndarray:
    """Zero-phase band-pass of ``x`` by Butterworth-shaped magnitudes in the FFT domain."""
    n = fast_len(len(x))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    gain = np.ones_like(f)
    if lo > 0:
        gain /= np.sqrt(1.0 + (lo / np.maximum(f, 1e-3)) ** (2 * order))
    if hi is not None:
        gain /= np.sqrt(1.0 + (f / hi) ** (2 * order))
    return np.fft.irfft(np.fft.rfft(x, n) * gain, n)[: len(x)]


def fast_len(n: int) -> int:
    """The smallest 2**a * 3**b * 5**c >= n: sizes that numpy's FFT handles fastest."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def level(rng: np.random.Generator, db: float = 0.0, spread: float = 3.0) -> float:
    """A mix level: ``db`` plus a random spread, as a linear gain."""
    return 10.0 ** ((db + rng.normal(0.0, spread)) / 20.0)


def chance(rng: np.random.Generator, p: float) -> bool:
    """True with probability ``p`` (one draw from ``rng``)."""
    return bool(rng.random() < p)


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x``."""
    return float(np.sqrt(np.mean(np.square(x))))
