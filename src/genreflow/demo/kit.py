"""The demo's drum kit: noise- and sine-based drum sounds, drawn per clip."""

from __future__ import annotations

import numpy as np

from genreflow.demo.dsp import band, level


class Kit:
    """Drum sounds for one clip: two slightly different takes of each, made on demand."""

    def __init__(self, rng: np.random.Generator, sr: int, *, style: str) -> None:
        self.rng, self.sr, self.style = rng, sr, style
        self._hits: dict[str, list[np.ndarray]] = {}

    #: Loudness relative to the kick, each sound measured over its first 100 ms.
    LEVELS = {
        "kick": 1.0,
        "snare": 0.7,
        "rim": 0.35,
        "clap": 0.6,
        "hat": 0.25,
        "open_hat": 0.25,
        "ride": 0.25,
        "crash": 0.35,
        "brush": 0.3,
        "shaker": 0.15,
    }

    def hit(self, name: str) -> np.ndarray:
        """One of the two takes of drum sound ``name``, picked at random."""
        if name not in self._hits:
            gain = self.LEVELS[name] * level(self.rng, 0.0, 2.0)
            takes = [getattr(self, f"_{name}")() for _ in range(2)]
            head = int(0.1 * self.sr)
            self._hits[name] = [gain * x / np.sqrt(np.mean(x[:head] ** 2)) for x in takes]
        return self._hits[name][int(self.rng.integers(2))]

    def _t(self, seconds: float) -> np.ndarray:
        return np.arange(int(seconds * self.sr)) / self.sr

    def _noise(self, n: int, lo: float, hi: float | None) -> np.ndarray:
        return band(self.rng.standard_normal(n), self.sr, lo=lo, hi=hi)

    def _kick(self) -> np.ndarray:
        r = self.rng
        if self.style == "808":
            f_lo, f_hi, decay, click = (
                r.uniform(40, 55),
                r.uniform(90, 150),
                r.uniform(0.25, 0.6),
                0.1,
            )
        elif self.style == "metal":
            f_lo, f_hi, decay, click = (
                r.uniform(50, 65),
                r.uniform(140, 220),
                r.uniform(0.05, 0.12),
                0.8,
            )
        else:
            f_lo, f_hi, decay, click = (
                r.uniform(45, 65),
                r.uniform(100, 180),
                r.uniform(0.08, 0.25),
                0.3,
            )
        t = self._t(min(1.2, 6 * decay))
        freq = f_lo + (f_hi - f_lo) * np.exp(-t / r.uniform(0.02, 0.05))
        body = np.sin(2 * np.pi * np.cumsum(freq) / self.sr) * np.exp(-t / decay)
        click_t = t[: int(0.02 * self.sr)]
        body[: len(click_t)] += (
            self._noise(len(click_t), 1500, 8000) * np.exp(-click_t / 0.003) * click
        )
        return body

    def _snare(self) -> np.ndarray:
        r = self.rng
        t = self._t(0.5)
        tone = np.sin(2 * np.pi * r.uniform(160, 260) * t) * np.exp(-t / r.uniform(0.03, 0.08))
        rattle = self._noise(len(t), r.uniform(800, 2000), r.uniform(6000, 10000))
        rattle *= np.exp(-t / r.uniform(0.07, 0.2)) * r.uniform(1.5, 4.0)
        return tone + rattle

    def _rim(self) -> np.ndarray:
        t = self._t(0.12)
        click = np.sin(2 * np.pi * self.rng.uniform(1500, 2200) * t) + 0.6 * self._noise(
            len(t), 1000, 6000
        )
        return click * np.exp(-t / 0.012)

    def _clap(self) -> np.ndarray:
        r = self.rng
        t = self._t(0.4)
        env = np.exp(-t / r.uniform(0.08, 0.18))
        for burst in (0.0, 0.009, 0.018, 0.028)[: int(r.integers(2, 5))]:
            env = env + (t >= burst) * np.exp(-np.maximum(t - burst, 0) / 0.004) * 2.0
        return self._noise(len(t), r.uniform(700, 1200), r.uniform(3000, 6000)) * env * 3.0

    def _hat(self) -> np.ndarray:
        t = self._t(0.15)
        return self._noise(len(t), self.rng.uniform(5000, 8000), None) * np.exp(
            -t / self.rng.uniform(0.015, 0.05)
        )

    def _open_hat(self) -> np.ndarray:
        t = self._t(0.6)
        return self._noise(len(t), self.rng.uniform(5000, 8000), None) * np.exp(
            -t / self.rng.uniform(0.15, 0.35)
        )

    def _metal(self, decay: float, base: float) -> np.ndarray:
        # Cymbals: inharmonic square-wave partials (like the classic 808 cymbal) plus noise.
        t = self._t(4.0 * decay)
        ratios = np.array([1.0, 1.34, 1.72, 2.09, 2.51, 3.17]) * self.rng.uniform(0.97, 1.03, 6)
        partials = np.sign(np.sin(2 * np.pi * base * ratios[:, None] * t)).sum(0)
        noise = self.rng.standard_normal(len(t))
        return band(partials * 0.15 + noise, self.sr, lo=3500) * np.exp(-t / decay)

    def _ride(self) -> np.ndarray:
        return self._metal(self.rng.uniform(0.4, 0.9), self.rng.uniform(380, 520))

    def _crash(self) -> np.ndarray:
        return self._metal(self.rng.uniform(0.6, 1.2), self.rng.uniform(300, 420)) * 1.5

    def _brush(self) -> np.ndarray:
        # A brush swish: noise that swells in and fades, no sharp transient.
        r = self.rng
        t = self._t(0.45)
        swell = np.minimum(t / r.uniform(0.03, 0.08), 1.0) * np.exp(-t / r.uniform(0.1, 0.25))
        return self._noise(len(t), r.uniform(1500, 3000), r.uniform(7000, 10000)) * swell

    def _shaker(self) -> np.ndarray:
        t = self._t(0.12)
        swell = np.minimum(t / 0.015, 1.0) * np.exp(-t / 0.03)
        return self._noise(len(t), 4000, 12000) * swell
