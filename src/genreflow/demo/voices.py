"""Pitched instruments of the demo music: wavetable voices and the note renderer.

An instrument is a harmonic spectrum shaped by envelopes (:class:`Voice`); the factories
(:func:`pluck`, :func:`bowed`, ...) draw one instrument's timbre from the clip's generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

_TABLE_SIZE = 8192


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _spectrum(
    rng: np.random.Generator,
    *,
    n: int = 32,
    slope: float = 1.0,
    odd: float = 1.0,
    jitter_db: float = 3.0,
    cutoff: float = 1e9,
) -> np.ndarray:
    """Harmonic amplitudes ``(n,)``: ``k**-slope``, even harmonics scaled by ``odd``."""
    k = np.arange(1, n + 1, dtype=np.float64)
    amps = k**-slope * np.exp(-k / cutoff)
    amps[1::2] *= odd
    return amps * 10.0 ** (rng.normal(0.0, jitter_db, n) / 20.0)


def _wavetable(amps: np.ndarray) -> np.ndarray:
    """One period ``(_TABLE_SIZE,)`` of the sum of sines with amplitudes ``amps``, peak 1."""
    spec = np.zeros(_TABLE_SIZE // 2 + 1, dtype=np.complex128)
    spec[1 : len(amps) + 1] = -1j * amps
    table = np.fft.irfft(spec, n=_TABLE_SIZE)
    return table / np.max(np.abs(table))


@dataclass
class Voice:
    """A pitched instrument: a harmonic spectrum shaped by envelopes.

    ``decay`` is the e-folding time from the attack down to ``sustain``; ``dull`` (if > 0)
    is how fast the upper harmonics die away, which makes plucked strings sound plucked.
    ``detune_cents`` > 0 renders two extra detuned copies (an ensemble).
    """

    harmonics: np.ndarray
    decay: float
    attack: float = 0.004
    sustain: float = 0.0
    release: float = 0.04
    dull: float = 0.0
    vibrato_hz: float = 0.0
    vibrato_cents: float = 0.0
    detune_cents: float = 0.0
    _tables: dict = field(default_factory=dict, repr=False)

    def table(self, f0: float, sr: int, *, dull: bool = False) -> np.ndarray:
        # Band-limit to the harmonics below 0.45 sr for this pitch: no aliasing.
        n = int(max(1, min(len(self.harmonics), 0.45 * sr // max(f0, 1.0))))
        key = (n, dull)
        if key not in self._tables:
            amps = self.harmonics[:n]
            if dull:
                amps = amps * np.exp(-1.2 * np.arange(n))
            self._tables[key] = _wavetable(amps)
        return self._tables[key]


def render(
    voice: Voice,
    *,
    midi: float,
    seconds: float,
    sr: int,
    bend: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """One note ``(samples,)`` lasting ``seconds`` plus the voice's release.

    ``bend`` is ``(semitones, start_s, glide_s)``: the pitch glides by ``semitones``.
    """
    n = max(1, int((seconds + voice.release) * sr))
    t = np.arange(n) / sr
    f0 = _hz(midi)
    if voice.vibrato_cents or bend is not None:
        cents = np.zeros(n)
        if voice.vibrato_cents:
            cents += (
                voice.vibrato_cents
                * np.sin(2 * np.pi * voice.vibrato_hz * t)
                * np.minimum(t / 0.35, 1.0)
            )
        if bend is not None:
            semis, start, glide = bend
            cents += 100.0 * semis * np.clip((t - start) / max(glide, 1e-3), 0.0, 1.0)
        phase = np.cumsum(f0 * 2.0 ** (cents / 1200.0)) / sr
    else:
        phase = f0 * t
    top = f0 * (2.0 ** (max(0.0, bend[0]) / 12.0) if bend else 1.0)
    copies = (0.0, voice.detune_cents, -voice.detune_cents) if voice.detune_cents else (0.0,)
    out = np.zeros(n)
    for i, cents in enumerate(copies):
        ph = phase * 2.0 ** (cents / 1200.0) + 0.37 * i
        idx = (ph * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)
        tone = voice.table(top, sr)[idx]
        if voice.dull:
            dull = voice.table(top, sr, dull=True)[idx]
            tone = dull + (tone - dull) * np.exp(-t / voice.dull)
        out += tone
    env = np.minimum(t / voice.attack, 1.0)
    env *= voice.sustain + (1.0 - voice.sustain) * np.exp(
        -np.maximum(t - voice.attack, 0) / voice.decay
    )
    env *= np.clip(1.0 - (t - seconds) / voice.release, 0.0, 1.0)
    return out * env / len(copies)


def pluck(rng: np.random.Generator, *, bright: float, decay: float, twang: float = 0.0) -> Voice:
    """Plucked string (guitar, banjo-ish twang, pizzicato, harp): bright attack, dull tail."""
    amps = _spectrum(rng, n=40, slope=rng.uniform(0.8, 1.3), cutoff=bright)
    # A pluck near the bridge removes harmonics at multiples of 1/position.
    position = int(rng.integers(5, 12))
    amps[position - 1 :: position] *= 0.15
    if twang:
        amps[4:18] *= 1.0 + twang
    return Voice(amps, decay=decay, dull=decay * rng.uniform(0.15, 0.4), release=0.03)


def bowed(rng: np.random.Generator, *, bright: float, attack: float) -> Voice:
    """Bowed strings: sawtooth-like spectrum, slow attack, vibrato, an ensemble of three."""
    amps = _spectrum(rng, n=36, slope=rng.uniform(0.9, 1.4), cutoff=bright)
    return Voice(
        amps,
        decay=0.6,
        attack=attack,
        sustain=rng.uniform(0.6, 0.9),
        release=rng.uniform(0.15, 0.4),
        vibrato_hz=rng.uniform(4.5, 6.5),
        vibrato_cents=rng.uniform(8, 25),
        detune_cents=rng.uniform(4, 12),
    )


def reed(rng: np.random.Generator, *, bright: float, vibrato: float) -> Voice:
    """Woodwind/reed (clarinet, sax, harmonica): odd harmonics stronger, vibrato."""
    amps = _spectrum(
        rng, n=30, slope=rng.uniform(0.9, 1.6), odd=rng.uniform(0.15, 0.7), cutoff=bright
    )
    return Voice(
        amps,
        decay=0.3,
        attack=rng.uniform(0.02, 0.06),
        sustain=rng.uniform(0.7, 0.95),
        release=0.06,
        vibrato_hz=rng.uniform(4.5, 6.0),
        vibrato_cents=vibrato,
    )


def flute(rng: np.random.Generator) -> Voice:
    """Flute or a vocal-like lead: nearly a sine, gentle vibrato."""
    amps = _spectrum(rng, n=8, slope=rng.uniform(2.0, 3.0), jitter_db=4.0)
    return Voice(
        amps,
        decay=0.4,
        attack=rng.uniform(0.03, 0.08),
        sustain=0.8,
        release=0.08,
        vibrato_hz=rng.uniform(4.5, 6.0),
        vibrato_cents=rng.uniform(10, 30),
    )


def keys(rng: np.random.Generator, *, bright: float, decay: float) -> Voice:
    """Piano / electric piano: fast attack, decaying, brighter at the start."""
    amps = _spectrum(rng, n=24, slope=rng.uniform(1.2, 2.0), cutoff=bright)
    return Voice(amps, decay=decay, sustain=0.05, release=0.08, dull=decay * 0.3)


def organ(rng: np.random.Generator) -> Voice:
    """Drawbar organ: a few loud harmonics (1, 2, 3, 4, 6, 8), flat envelope."""
    amps = np.zeros(8)
    amps[[0, 1, 2, 3, 5, 7]] = rng.uniform(0.1, 1.0, 6)
    amps[0] = 1.0
    return Voice(amps, decay=0.1, attack=0.006, sustain=1.0, release=0.03)


def synth(rng: np.random.Generator, *, bright: float, square: bool, sustain: float) -> Voice:
    """Analogue-style synth: sawtooth or square spectrum, filter-like roll-off."""
    amps = _spectrum(
        rng, n=40, slope=1.0, odd=0.05 if square else 1.0, cutoff=bright, jitter_db=1.0
    )
    return Voice(
        amps,
        decay=rng.uniform(0.15, 0.6),
        attack=rng.uniform(0.004, 0.03),
        sustain=sustain,
        release=0.08,
        detune_cents=rng.uniform(0.0, 9.0),
    )


def bass(rng: np.random.Generator, *, bright: float, decay: float, sustain: float = 0.3) -> Voice:
    """Bass guitar / upright / synth bass: strong low harmonics."""
    amps = _spectrum(rng, n=16, slope=rng.uniform(1.3, 2.2), cutoff=bright)
    return Voice(amps, decay=decay, sustain=sustain, release=0.05, dull=decay * 0.5)


#: The instrument factories by the name a genre row gives them.
INSTRUMENTS: dict[str, Callable[..., Voice]] = {
    "pluck": pluck,
    "bowed": bowed,
    "reed": reed,
    "flute": flute,
    "keys": keys,
    "organ": organ,
    "synth": synth,
    "bass": bass,
}
