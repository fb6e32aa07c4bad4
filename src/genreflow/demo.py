"""Synthetic GTZAN-like music: deterministic demo clips for ten genres that overlap.

Every clip is a small arrangement (drums, bass, chords, a lead line) rendered with numpy:
wavetable instruments built from harmonic spectra and envelopes, noise-based drums, a
reverb, a "recording" colour (band limits, tilt, hiss) and a gain. Each genre has its own
tempo range, groove, harmony, register and instruments; each clip draws its key, tempo,
timbres, mix, noise and gain at random, and sometimes borrows an element from a
neighbouring genre, so that the classes overlap the way real genres do. The genre
descriptions are in ``docs/demo-dataset.md``.

A clip's randomness comes only from ``(seed, genre, index)``: the same arguments give the
same samples, and clip ``i`` does not depend on how many clips are generated.

:func:`write_multilabel_demo_dataset` writes a multi-label variant: each clip has a primary
genre and, most of the time, a second genre mixed in at equal loudness, with a ``labels.csv``
(``path,label,labels``) for ``genreflow manifest --csv``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreflow.core.errors import ConfigError, DatasetError
from genreflow.data.splits import GTZAN_GENRES

log = logging.getLogger(__name__)

#: GTZAN's ten genre names, in GTZAN's (alphabetical) order: the demo mimics its layout.
GENRES: tuple[str, ...] = GTZAN_GENRES

#: Bumped whenever a change to the synthesis changes the audio for a given seed.
GENERATOR_VERSION = 1

#: ``generator`` in ``demo.json`` of the single-label and the multi-label demo datasets.
GENERATOR = "genreflow.demo"
MULTILABEL_GENERATOR = "genreflow.demo.multilabel"

#: Bumped whenever a change to the mixing changes a multi-label clip for a given seed.
MULTILABEL_GENERATOR_VERSION = 1

#: Chance that a multi-label demo clip mixes in a second genre (otherwise it has one genre).
MIX_FRACTION = 2 / 3

#: Second-genre clips use indices from here on, one per (primary genre, index): no partner
#: audio is ever a primary clip or another clip's partner, so no audio repeats across clips.
_PARTNER_INDEX_BASE = 1_000_000

_TABLE_SIZE = 8192
_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<index>\d{5})\.wav$")
_MULTILABEL_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)-ml\.(?P<index>\d{5})\.wav$")

# Scales as semitones above the key.
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_DORIAN = (0, 2, 3, 5, 7, 9, 10)
_MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
_HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
_PENTA_MAJOR = (0, 2, 4, 7, 9)
_PENTA_MINOR = (0, 3, 5, 7, 10)
_BLUES_SCALE = (0, 3, 5, 6, 7, 10)

# Chord qualities as semitones above the chord root.
_MAJ = (0, 4, 7)
_MIN = (0, 3, 7)
_DOM7 = (0, 4, 7, 10)
_MIN7 = (0, 3, 7, 10)
_MAJ7 = (0, 4, 7, 11)
_MIN9 = (0, 3, 7, 10, 14)
_DOM9 = (0, 4, 10, 14)
_MAJ9 = (0, 4, 7, 11, 14)
_POWER = (0, 7, 12)

Chord = tuple[int, tuple[int, ...]]  # (root above the key, quality)

_TWELVE_BAR: tuple[Chord, ...] = tuple(
    (root, _DOM7) for root in (0, 0, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7)
)


# --------------------------------------------------------------------------- instruments


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
class _Voice:
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


def _render(
    voice: _Voice,
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


def _pluck(rng: np.random.Generator, *, bright: float, decay: float, twang: float = 0.0) -> _Voice:
    """Plucked string (guitar, banjo-ish twang, pizzicato, harp): bright attack, dull tail."""
    amps = _spectrum(rng, n=40, slope=rng.uniform(0.8, 1.3), cutoff=bright)
    # A pluck near the bridge removes harmonics at multiples of 1/position.
    position = int(rng.integers(5, 12))
    amps[position - 1 :: position] *= 0.15
    if twang:
        amps[4:18] *= 1.0 + twang
    return _Voice(amps, decay=decay, dull=decay * rng.uniform(0.15, 0.4), release=0.03)


def _bowed(rng: np.random.Generator, *, bright: float, attack: float) -> _Voice:
    """Bowed strings: sawtooth-like spectrum, slow attack, vibrato, an ensemble of three."""
    amps = _spectrum(rng, n=36, slope=rng.uniform(0.9, 1.4), cutoff=bright)
    return _Voice(
        amps,
        decay=0.6,
        attack=attack,
        sustain=rng.uniform(0.6, 0.9),
        release=rng.uniform(0.15, 0.4),
        vibrato_hz=rng.uniform(4.5, 6.5),
        vibrato_cents=rng.uniform(8, 25),
        detune_cents=rng.uniform(4, 12),
    )


def _reed(rng: np.random.Generator, *, bright: float, vibrato: float) -> _Voice:
    """Woodwind/reed (clarinet, sax, harmonica): odd harmonics stronger, vibrato."""
    amps = _spectrum(
        rng, n=30, slope=rng.uniform(0.9, 1.6), odd=rng.uniform(0.15, 0.7), cutoff=bright
    )
    return _Voice(
        amps,
        decay=0.3,
        attack=rng.uniform(0.02, 0.06),
        sustain=rng.uniform(0.7, 0.95),
        release=0.06,
        vibrato_hz=rng.uniform(4.5, 6.0),
        vibrato_cents=vibrato,
    )


def _flute(rng: np.random.Generator) -> _Voice:
    """Flute or a vocal-like lead: nearly a sine, gentle vibrato."""
    amps = _spectrum(rng, n=8, slope=rng.uniform(2.0, 3.0), jitter_db=4.0)
    return _Voice(
        amps,
        decay=0.4,
        attack=rng.uniform(0.03, 0.08),
        sustain=0.8,
        release=0.08,
        vibrato_hz=rng.uniform(4.5, 6.0),
        vibrato_cents=rng.uniform(10, 30),
    )


def _keys(rng: np.random.Generator, *, bright: float, decay: float) -> _Voice:
    """Piano / electric piano: fast attack, decaying, brighter at the start."""
    amps = _spectrum(rng, n=24, slope=rng.uniform(1.2, 2.0), cutoff=bright)
    return _Voice(amps, decay=decay, sustain=0.05, release=0.08, dull=decay * 0.3)


def _organ(rng: np.random.Generator) -> _Voice:
    """Drawbar organ: a few loud harmonics (1, 2, 3, 4, 6, 8), flat envelope."""
    amps = np.zeros(8)
    amps[[0, 1, 2, 3, 5, 7]] = rng.uniform(0.1, 1.0, 6)
    amps[0] = 1.0
    return _Voice(amps, decay=0.1, attack=0.006, sustain=1.0, release=0.03)


def _synth(rng: np.random.Generator, *, bright: float, square: bool, sustain: float) -> _Voice:
    """Analogue-style synth: sawtooth or square spectrum, filter-like roll-off."""
    amps = _spectrum(
        rng, n=40, slope=1.0, odd=0.05 if square else 1.0, cutoff=bright, jitter_db=1.0
    )
    return _Voice(
        amps,
        decay=rng.uniform(0.15, 0.6),
        attack=rng.uniform(0.004, 0.03),
        sustain=sustain,
        release=0.08,
        detune_cents=rng.uniform(0.0, 9.0),
    )


def _bass(rng: np.random.Generator, *, bright: float, decay: float, sustain: float = 0.3) -> _Voice:
    """Bass guitar / upright / synth bass: strong low harmonics."""
    amps = _spectrum(rng, n=16, slope=rng.uniform(1.3, 2.2), cutoff=bright)
    return _Voice(amps, decay=decay, sustain=sustain, release=0.05, dull=decay * 0.5)


# --------------------------------------------------------------------------- drums


def _band(
    x: np.ndarray, sr: int, *, lo: float = 0.0, hi: float | None = None, order: int = 2
) -> np.ndarray:
    """Zero-phase band-pass of ``x`` by Butterworth-shaped magnitudes in the FFT domain."""
    n = _fast_len(len(x))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    gain = np.ones_like(f)
    if lo > 0:
        gain /= np.sqrt(1.0 + (lo / np.maximum(f, 1e-3)) ** (2 * order))
    if hi is not None:
        gain /= np.sqrt(1.0 + (f / hi) ** (2 * order))
    return np.fft.irfft(np.fft.rfft(x, n) * gain, n)[: len(x)]


class _Kit:
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
        if name not in self._hits:
            level = self.LEVELS[name] * _level(self.rng, 0.0, 2.0)
            takes = [getattr(self, f"_{name}")() for _ in range(2)]
            head = int(0.1 * self.sr)
            self._hits[name] = [level * x / np.sqrt(np.mean(x[:head] ** 2)) for x in takes]
        return self._hits[name][int(self.rng.integers(2))]

    def _t(self, seconds: float) -> np.ndarray:
        return np.arange(int(seconds * self.sr)) / self.sr

    def _noise(self, n: int, lo: float, hi: float | None) -> np.ndarray:
        return _band(self.rng.standard_normal(n), self.sr, lo=lo, hi=hi)

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
        return _band(partials * 0.15 + noise, self.sr, lo=3500) * np.exp(-t / decay)

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


# --------------------------------------------------------------------------- the song


class _Song:
    """Time grid, harmony and stems of one clip.

    The grid has 16 steps per 4/4 bar; ``swing8``/``swing16`` in [0, 1] delay the off-beat
    8ths/16ths up to a triplet feel. The song starts ``lead`` samples before the clip, so
    clips do not all begin on a downbeat.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        sr: int,
        n: int,
        bpm: float,
        key: int,
        swing8: float = 0.0,
        swing16: float = 0.0,
        jitter: float = 0.006,
    ) -> None:
        self.rng, self.sr, self.n, self.bpm, self.key = rng, sr, n, bpm, key
        self.swing8, self.swing16, self.jitter = swing8, swing16, jitter
        self.beat = 60.0 / bpm
        self.bar = 4 * self.beat
        self.lead = int(rng.uniform(0, self.bar) * sr)
        self.total = n + self.lead
        self.n_bars = int(self.total / sr / self.bar) + 1
        self.chords: list[Chord] = [(0, _MAJ)] * self.n_bars
        self.stems: dict[str, np.ndarray] = {}
        self.reverb: dict[str, float] = {}

    def time(self, bar: int, step: float) -> float:
        beat, sub = divmod(step, 4)
        late = max(self.swing8, self.swing16) / 12.0
        offsets = (0.0, 0.25 + self.swing16 / 12.0, 0.5 + self.swing8 / 6.0, 0.75 + late)
        frac = sub - int(sub)
        return (bar * 4 + beat + offsets[int(sub)] + frac * 0.25) * self.beat

    def steps(self, n_steps: float) -> float:
        return n_steps * self.beat / 4.0

    def add(self, stem: str, sound: np.ndarray, at: float, gain: float = 1.0) -> None:
        start = int(round((at + self.rng.normal(0.0, self.jitter)) * self.sr))
        if stem not in self.stems:
            self.stems[stem] = np.zeros(self.total)
        track = self.stems[stem]
        if start >= self.total:
            return
        if start < 0:
            sound, start = sound[-start:], 0
        end = min(self.total, start + len(sound))
        track[start:end] += gain * sound[: end - start]

    def progression(self, pattern: list[Chord], *, bars_per_chord: int = 1) -> None:
        offset = int(self.rng.integers(len(pattern)))
        self.chords = [
            pattern[(offset + bar // bars_per_chord) % len(pattern)] for bar in range(self.n_bars)
        ]

    def chord_notes(self, bar: int, *, low: int, extensions: bool = True) -> list[int]:
        root, quality = self.chords[bar]
        base = low + (self.key + root - low) % 12
        notes = sorted(low + (base + iv - low) % 12 for iv in quality if iv < 12)
        # Octaves and 9ths sit above the root, whatever the voicing below.
        notes += [base + iv for iv in quality if iv == 12 or (iv > 12 and extensions)]
        return notes

    def root(self, bar: int, *, low: int) -> int:
        return low + (self.key + self.chords[bar][0] - low) % 12


def _vel(rng: np.random.Generator, char: str) -> float:
    base = {"X": 1.0, "x": 0.7, "o": 0.3}[char]
    return base * rng.uniform(0.85, 1.1)


def _drums(
    song: _Song, kit: _Kit, patterns: dict[str, str], *, gain: float = 1.0, drop: float = 0.0
) -> None:
    """Loop step patterns, 16 steps a bar (``X`` accent, ``x`` hit, ``o`` ghost, ``.`` rest)."""
    rng = song.rng
    for name, pattern in patterns.items():
        for bar in range(song.n_bars):
            for i, char in enumerate(pattern[(bar % (len(pattern) // 16)) * 16 :][:16]):
                if char == "." or (drop and rng.random() < drop):
                    continue
                song.add("drums", kit.hit(name), song.time(bar, i), gain * _vel(rng, char))


def _comp(
    song: _Song,
    voice: _Voice,
    *,
    stem: str,
    rhythm: list[tuple[float, float]],
    low: int,
    gain: float = 1.0,
    strum: float = 0.0,
    skip: float = 0.0,
) -> None:
    """Chords on ``(step, length_in_steps)`` positions of every bar, voiced from ``low`` up."""
    rng = song.rng
    cache: dict[tuple, np.ndarray] = {}
    for bar in range(song.n_bars):
        notes = song.chord_notes(bar, low=low)
        for step, length in rhythm:
            if skip and rng.random() < skip:
                continue
            down = rng.random() < 0.5
            for j, note in enumerate(notes if down else notes[::-1]):
                key = (note, length)
                if key not in cache:
                    cache[key] = _render(voice, midi=note, seconds=song.steps(length), sr=song.sr)
                at = song.time(bar, step) + j * strum
                song.add(stem, cache[key], at, gain * rng.uniform(0.75, 1.0) / len(notes) ** 0.5)


def _bassline(
    song: _Song,
    voice: _Voice,
    *,
    pattern: list[tuple[float, int, float]],
    low: int,
    gain: float = 1.0,
    stem: str = "bass",
) -> None:
    """``(step, semitones above the chord root, length)`` notes in every bar."""
    rng = song.rng
    cache: dict[tuple, np.ndarray] = {}
    for bar in range(song.n_bars):
        root = song.root(bar, low=low)
        for step, interval, length in pattern:
            key = (root + interval, length)
            if key not in cache:
                cache[key] = _render(
                    voice, midi=root + interval, seconds=song.steps(length), sr=song.sr
                )
            song.add(stem, cache[key], song.time(bar, step), gain * rng.uniform(0.8, 1.0))


def _walking_bass(song: _Song, voice: _Voice, *, low: int, gain: float = 1.0) -> None:
    """Quarter notes through chord tones, approaching the next root by a semitone."""
    rng = song.rng
    for bar in range(song.n_bars):
        root = song.root(bar, low=low)
        quality = song.chords[bar][1]
        nxt = song.root(min(bar + 1, song.n_bars - 1), low=low)
        line = [root, root + quality[int(rng.integers(1, len(quality)))] % 12, root + 7]
        line.append(nxt + (1 if rng.random() < 0.5 else -1))
        for beat, note in enumerate(line):
            tone = _render(voice, midi=note, seconds=song.beat * 0.9, sr=song.sr)
            song.add("bass", tone, song.time(bar, beat * 4), gain * rng.uniform(0.8, 1.0))


def _melody(
    song: _Song,
    voice: _Voice,
    *,
    scale: tuple[int, ...],
    low: int,
    high: int,
    durations: tuple[float, ...],
    rest: float = 0.2,
    bend: float = 0.0,
    slide: float = 0.0,
    legato: float = 0.9,
    gain: float = 1.0,
    stem: str = "lead",
) -> None:
    """A random walk on ``scale`` between ``low`` and ``high`` (MIDI), in phrases."""
    rng = song.rng
    pitches = [m for m in range(low, high + 1) if (m - song.key) % 12 in scale]
    pos = int(rng.integers(len(pitches)))
    step = 0.0
    end = song.n_bars * 16
    while step < end:
        length = float(rng.choice(durations))
        if rng.random() < rest:
            step += length
            continue
        pos = int(np.clip(pos + rng.choice([-2, -1, -1, 0, 1, 1, 2]), 0, len(pitches) - 1))
        midi = pitches[pos]
        how = None
        if bend and rng.random() < bend:
            how = (
                float(rng.choice([1.0, 2.0])),
                song.steps(length) * 0.2,
                song.steps(length) * 0.3,
            )
        elif slide and rng.random() < slide:
            midi, how = midi - 2, (2.0, 0.0, 0.06)
        bar, within = divmod(step, 16)
        tone = _render(voice, midi=midi, seconds=song.steps(length) * legato, sr=song.sr, bend=how)
        song.add(stem, tone, song.time(int(bar), within), gain * rng.uniform(0.7, 1.0))
        step += length


def _arpeggio(song: _Song, voice: _Voice, *, low: int, every: float, gain: float = 1.0) -> None:
    """Broken chords: chord tones up and down, one every ``every`` steps."""
    rng = song.rng
    for bar in range(song.n_bars):
        notes = song.chord_notes(bar, low=low, extensions=False)
        notes = notes + [n + 12 for n in notes]
        order = notes + notes[-2:0:-1]
        for i, step in enumerate(np.arange(0, 16, every)):
            tone = _render(
                voice, midi=order[i % len(order)], seconds=song.steps(every) * 1.5, sr=song.sr
            )
            song.add("chords", tone, song.time(bar, float(step)), gain * rng.uniform(0.7, 1.0))


def _level(rng: np.random.Generator, db: float = 0.0, spread: float = 3.0) -> float:
    """A mix level: ``db`` plus a random spread, as a linear gain."""
    return 10.0 ** ((db + rng.normal(0.0, spread)) / 20.0)


def _chance(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


# --------------------------------------------------------------------------- genres


def _blues(rng: np.random.Generator, sr: int, n: int) -> _Song:
    straight = _chance(rng, 0.2)  # a straight blues-rock feel, borrowed from rock
    song = _Song(
        rng,
        sr=sr,
        n=n,
        bpm=rng.uniform(70, 100),
        key=int(rng.integers(40, 52)),
        swing8=0.0 if straight else rng.uniform(0.7, 1.0),
    )
    song.progression(list(_TWELVE_BAR))
    kit = _Kit(rng, sr, style="acoustic")
    hats = "x.x.x.x.x.x.x.x." if _chance(rng, 0.6) else "x...x.x.x...x.x."
    cymbal = "ride" if _chance(rng, 0.4) else "hat"
    if _chance(rng, 0.2):  # brushes, borrowed from jazz
        _drums(
            song,
            kit,
            {"brush": "x...x...x...x...", "kick": "x.......x......."},
            gain=_level(rng, -4),
        )
    else:
        kick = "x.......x.x....." if _chance(rng, 0.5) else "x.....x.x......."
        _drums(
            song, kit, {"kick": kick, "snare": "....x.......x...", cymbal: hats}, gain=_level(rng)
        )
    bass = _bass(rng, bright=rng.uniform(3, 8), decay=rng.uniform(0.2, 0.5))
    if _chance(rng, 0.7):
        boogie = [
            (float(s), iv, 1.8)
            for s, iv in zip(range(0, 16, 2), (0, 4, 7, 9, 10, 9, 7, 4), strict=True)
        ]
        _bassline(song, bass, pattern=boogie, low=33, gain=_level(rng, -2))
    else:
        _walking_bass(song, bass, low=33, gain=_level(rng, -2))
    if _chance(rng, 0.5):
        comp = (
            _organ(rng) if _chance(rng, 0.5) else _keys(rng, bright=rng.uniform(4, 10), decay=0.6)
        )
        _comp(
            song,
            comp,
            stem="chords",
            rhythm=[(4, 2), (12, 2)],
            low=55,
            gain=_level(rng, -6),
            skip=0.2,
        )
    else:
        guitar = _pluck(rng, bright=rng.uniform(6, 14), decay=rng.uniform(0.3, 0.8))
        riff = [
            (float(s), iv, 1.8)
            for s, iv in zip(range(0, 16, 2), (0, 7, 0, 9, 0, 10, 0, 9), strict=True)
        ]
        _bassline(song, guitar, pattern=riff, low=45, gain=_level(rng, -5), stem="chords")
    if _chance(rng, 0.75):
        lead = (
            _reed(rng, bright=rng.uniform(4, 10), vibrato=rng.uniform(10, 30))  # harmonica
            if _chance(rng, 0.3)
            else _pluck(rng, bright=rng.uniform(8, 20), decay=rng.uniform(0.4, 1.2))
        )
        _melody(
            song,
            lead,
            scale=_BLUES_SCALE,
            low=60,
            high=79,
            durations=(2.0, 2.0, 4.0, 1.0, 6.0),
            rest=0.35,
            bend=0.35,
            gain=_level(rng, -6),
        )
    song.reverb = {"chords": 0.3, "lead": 0.35, "drums": 0.15, "rt": rng.uniform(0.6, 1.4)}
    return song


def _classical(rng: np.random.Generator, sr: int, n: int) -> _Song:
    minor = _chance(rng, 0.4)
    song = _Song(
        rng, sr=sr, n=n, bpm=rng.uniform(60, 110), key=int(rng.integers(38, 50)), jitter=0.015
    )
    if minor:
        song.progression(
            [(0, _MIN), (5, _MIN), (7, _MAJ), (0, _MIN), (8, _MAJ), (2, (0, 3, 6)), (7, _DOM7)]
        )
    else:
        song.progression(
            [(0, _MAJ), (5, _MAJ), (7, _MAJ), (0, _MAJ), (9, _MIN), (2, _MIN), (7, _DOM7)]
        )
    scale = _HARMONIC_MINOR if minor else _MAJOR
    if _chance(rng, 0.15):  # a piano piece, close to jazz ballads and pop
        piano = _keys(rng, bright=rng.uniform(4, 10), decay=rng.uniform(0.6, 1.5))
        _arpeggio(song, piano, low=48, every=float(rng.choice([1.0, 2.0])), gain=_level(rng, -4))
        _melody(
            song,
            piano,
            scale=scale,
            low=67,
            high=84,
            durations=(2.0, 4.0, 4.0, 8.0),
            rest=0.1,
            gain=_level(rng, -2),
        )
    else:
        strings = _bowed(rng, bright=rng.uniform(4, 12), attack=rng.uniform(0.08, 0.4))
        _comp(
            song,
            strings,
            stem="chords",
            rhythm=[(0, 16)],
            low=int(rng.integers(50, 57)),
            gain=_level(rng, -2),
        )
        cello = _bowed(rng, bright=rng.uniform(3, 8), attack=rng.uniform(0.08, 0.3))
        _bassline(
            song,
            cello,
            pattern=[(0, 0, 8), (8, 0 if _chance(rng, 0.5) else 7, 8)],
            low=36,
            gain=_level(rng, -4),
        )
        if _chance(rng, 0.5):
            # Pizzicato or harp.
            pizz = _pluck(rng, bright=rng.uniform(3, 8), decay=rng.uniform(0.15, 0.4))
            _arpeggio(song, pizz, low=55, every=float(rng.choice([2.0, 4.0])), gain=_level(rng, -8))
        if _chance(rng, 0.8):
            lead = (
                _flute(rng)
                if _chance(rng, 0.4)
                else (
                    _reed(rng, bright=rng.uniform(3, 9), vibrato=rng.uniform(5, 20))
                    if _chance(rng, 0.5)
                    else _bowed(rng, bright=rng.uniform(6, 14), attack=0.06)
                )
            )
            _melody(
                song,
                lead,
                scale=scale,
                low=67,
                high=88,
                durations=(2.0, 4.0, 4.0, 8.0, 12.0),
                rest=0.15,
                legato=1.0,
                gain=_level(rng, -3),
            )
    # Orchestral dynamics: a slow swell or fade over the whole clip.
    t = np.linspace(0.0, 1.0, song.total)
    swell = 1.0 + rng.uniform(-0.6, 0.6) * np.sin(
        np.pi * (t * rng.uniform(0.5, 1.5) + rng.uniform(0, 1))
    )
    for name in song.stems:
        song.stems[name] *= swell
    song.reverb = {"chords": 0.6, "bass": 0.4, "lead": 0.5, "rt": rng.uniform(1.6, 3.0)}
    return song


def _country(rng: np.random.Generator, sr: int, n: int) -> _Song:
    shuffle = _chance(rng, 0.15)  # a swung, bluesy feel
    song = _Song(
        rng,
        sr=sr,
        n=n,
        bpm=rng.uniform(90, 125),
        key=int(rng.integers(40, 52)),
        swing8=rng.uniform(0.5, 0.9) if shuffle else 0.0,
    )
    song.progression(
        [(0, _MAJ), (0, _MAJ), (5, _MAJ), (7, _MAJ)]
        if _chance(rng, 0.5)
        else [(0, _MAJ), (5, _MAJ), (0, _MAJ), (7, _MAJ)]
    )
    kit = _Kit(rng, sr, style="acoustic")
    if _chance(rng, 0.2):  # a rock beat
        _drums(
            song,
            kit,
            {"kick": "x.....x.x.......", "snare": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."},
            gain=_level(rng),
        )
    else:
        back = "rim" if _chance(rng, 0.4) else ("brush" if _chance(rng, 0.3) else "snare")
        train = "oxoxoxoxoxoxoxox" if back == "brush" else "....x.......x..."
        _drums(
            song,
            kit,
            {"kick": "x.......x.......", back: train, "hat": "x.x.x.x.x.x.x.x."},
            gain=_level(rng, -2),
            drop=0.05,
        )
    bass = _bass(rng, bright=rng.uniform(3, 7), decay=rng.uniform(0.2, 0.4))
    _bassline(song, bass, pattern=[(0, 0, 3.5), (8, 7, 3.5)], low=33, gain=_level(rng, -1))
    guitar = _pluck(
        rng, bright=rng.uniform(10, 25), decay=rng.uniform(0.3, 0.8), twang=rng.uniform(0.0, 1.5)
    )
    strum = (
        [(float(s), 1.6) for s in range(0, 16, 2)]
        if _chance(rng, 0.6)
        else [(4, 2), (6, 1), (12, 2), (14, 1)]
    )
    _comp(
        song,
        guitar,
        stem="chords",
        rhythm=strum,
        low=52,
        gain=_level(rng, -4),
        strum=rng.uniform(0.008, 0.025),
    )
    if _chance(rng, 0.8):
        if _chance(rng, 0.4):  # fiddle
            lead = _bowed(rng, bright=rng.uniform(8, 16), attack=0.03)
            lead.detune_cents = 0.0
        else:  # twangy lead guitar with slides
            lead = _pluck(
                rng,
                bright=rng.uniform(15, 30),
                decay=rng.uniform(0.3, 0.7),
                twang=rng.uniform(0.5, 2.0),
            )
        _melody(
            song,
            lead,
            scale=_PENTA_MAJOR,
            low=62,
            high=81,
            durations=(1.0, 2.0, 2.0, 4.0),
            rest=0.25,
            slide=0.3,
            bend=0.1 if shuffle else 0.0,
            gain=_level(rng, -5),
        )
    song.reverb = {"chords": 0.2, "lead": 0.25, "drums": 0.1, "rt": rng.uniform(0.5, 1.2)}
    return song


def _disco(rng: np.random.Generator, sr: int, n: int) -> _Song:
    song = _Song(
        rng, sr=sr, n=n, bpm=rng.uniform(110, 130), key=int(rng.integers(38, 50)), jitter=0.003
    )
    song.progression(
        [(0, _MIN7), (5, _MIN7)] if _chance(rng, 0.5) else [(0, _MIN7), (5, _DOM7)],
        bars_per_chord=int(rng.choice([1, 2])),
    )
    kit = _Kit(rng, sr, style="disco")
    back = "clap" if _chance(rng, 0.6) else "snare"
    if _chance(rng, 0.2):  # a pop beat instead of four on the floor
        pattern = {"kick": "x.......x.x.....", back: "....x.......x...", "hat": "x.x.x.x.x.x.x.x."}
    else:
        pattern = {
            "kick": "x...x...x...x...",
            back: "....x.......x...",
            "open_hat": "..x...x...x...x.",
        }
        if _chance(rng, 0.7):
            pattern["hat"] = "xoxoxoxoxoxoxoxo"
    _drums(song, kit, pattern, gain=_level(rng, 1))
    bass = _bass(rng, bright=rng.uniform(4, 10), decay=rng.uniform(0.1, 0.25), sustain=0.2)
    octave = [(float(s), 12 * (i % 2), 1.5) for i, s in enumerate(range(0, 16, 2))]
    _bassline(song, bass, pattern=octave, low=31, gain=_level(rng))
    if _chance(rng, 0.75):
        strings = _bowed(rng, bright=rng.uniform(6, 14), attack=rng.uniform(0.03, 0.15))
        _comp(
            song,
            strings,
            stem="chords",
            rhythm=[(0, 14)] if _chance(rng, 0.5) else [(2, 1.5), (6, 1.5), (10, 1.5), (14, 1.5)],
            low=60,
            gain=_level(rng, -5),
        )
    else:  # a synth pad, as in pop
        pad = _synth(rng, bright=rng.uniform(3, 8), square=_chance(rng, 0.3), sustain=0.7)
        _comp(song, pad, stem="chords", rhythm=[(0, 15)], low=57, gain=_level(rng, -6))
    if _chance(rng, 0.6):  # muted funk guitar on 16ths
        funk = _pluck(rng, bright=rng.uniform(10, 20), decay=rng.uniform(0.04, 0.09))
        _comp(
            song,
            funk,
            stem="guitar",
            rhythm=[(float(s), 0.5) for s in range(16) if s % 4 != 0],
            low=64,
            gain=_level(rng, -9),
            skip=0.3,
        )
    if _chance(rng, 0.4):
        lead = (
            _flute(rng)
            if _chance(rng, 0.5)
            else _synth(rng, bright=rng.uniform(4, 10), square=True, sustain=0.8)
        )
        _melody(
            song,
            lead,
            scale=_DORIAN,
            low=67,
            high=84,
            durations=(1.0, 2.0, 2.0, 4.0),
            rest=0.35,
            gain=_level(rng, -8),
        )
    song.reverb = {"chords": 0.35, "lead": 0.3, "drums": 0.1, "rt": rng.uniform(0.8, 1.6)}
    return song


def _hiphop(rng: np.random.Generator, sr: int, n: int) -> _Song:
    song = _Song(
        rng,
        sr=sr,
        n=n,
        bpm=rng.uniform(80, 100),
        key=int(rng.integers(36, 47)),
        swing16=rng.uniform(0.2, 0.7),
        jitter=0.004,
    )
    jazzy = _chance(rng, 0.3)  # jazz-hop: 7th/9th chords, sometimes a walking upright
    song.progression(
        [(0, _MIN9), (8, _MAJ7)] if jazzy else [(0, _MIN7), (0, _MIN7), (8, _MAJ), (7, _MIN)],
        bars_per_chord=int(rng.choice([1, 2])),
    )
    kit = _Kit(rng, sr, style="808" if _chance(rng, 0.7) else "acoustic")
    kick = str(rng.choice(["x......x..x.....", "x.........x..x..", "x..x......x....."]))
    snare = "clap" if _chance(rng, 0.3) else "snare"
    hats = "x.x.x.x.x.x.x.x." if _chance(rng, 0.5) else "xxxxxxxxxxxxxxxx"
    _drums(
        song,
        kit,
        {"kick": kick, snare: "....X.......X...", "hat": hats},
        gain=_level(rng, 2),
        drop=0.05,
    )
    if jazzy and _chance(rng, 0.5):
        _walking_bass(
            song, _bass(rng, bright=rng.uniform(2, 5), decay=0.5), low=31, gain=_level(rng, -2)
        )
    else:  # an 808 sub-bass on the kick
        sub = _bass(rng, bright=rng.uniform(1, 2.5), decay=rng.uniform(0.3, 0.7), sustain=0.3)
        pattern = [(float(i), 0, 3.0) for i, c in enumerate(kick) if c == "x"]
        _bassline(song, sub, pattern=pattern, low=28, gain=_level(rng, 1))
    # The "sample": a looped, low-passed chord loop from an old record.
    sample = (
        _keys(rng, bright=rng.uniform(3, 7), decay=rng.uniform(0.5, 1.5))
        if _chance(rng, 0.6)
        else (_bowed(rng, bright=rng.uniform(3, 6), attack=0.1))
    )
    rhythm = [(0, 6), (6, 2), (10, 6)] if _chance(rng, 0.5) else [(0, 14)]
    if _chance(rng, 0.15):  # an off-beat skank, borrowed from reggae
        rhythm = [(4, 1), (12, 1)]
    _comp(song, sample, stem="sample", rhythm=rhythm, low=55, gain=_level(rng, 4), skip=0.1)
    song.stems["sample"] = _band(
        song.stems.get("sample", np.zeros(song.total)),
        sr,
        lo=rng.uniform(150, 400),
        hi=rng.uniform(1500, 4000),
    )
    if _chance(rng, 0.3):
        lead = _flute(rng)
        _melody(
            song,
            lead,
            scale=_PENTA_MINOR,
            low=60,
            high=76,
            durations=(2.0, 4.0),
            rest=0.6,
            gain=_level(rng, -10),
        )
    # Vinyl crackle: sparse clicks.
    clicks = np.zeros(song.total)
    where = rng.integers(0, song.total, int(rng.uniform(5, 40) * song.total / sr))
    clicks[where] = rng.standard_normal(len(where))
    song.stems["vinyl"] = _band(clicks, sr, lo=1000, hi=8000) * _level(rng, -4, 4)
    song.reverb = {"sample": 0.25, "drums": 0.05, "rt": rng.uniform(0.5, 1.2)}
    return song


def _jazz(rng: np.random.Generator, sr: int, n: int) -> _Song:
    bossa = _chance(rng, 0.15)  # straight eighths, as in bossa nova
    song = _Song(
        rng,
        sr=sr,
        n=n,
        bpm=rng.uniform(90, 170),
        key=int(rng.integers(38, 50)),
        swing8=0.0 if bossa else rng.uniform(0.55, 1.0),
        jitter=0.01,
    )
    song.progression(
        [(2, _MIN9), (7, _DOM9), (0, _MAJ9), (9, _DOM7)]
        if _chance(rng, 0.5)
        else [(2, _MIN7), (7, _DOM7), (0, _MAJ7), (0, _MAJ7)]
    )
    kit = _Kit(rng, sr, style="jazz")
    if _chance(rng, 0.1):
        pass  # a drummerless trio: close to classical and blues ballads
    elif bossa:
        _drums(
            song,
            kit,
            {"rim": "x..x..x...x..x..", "kick": "x..xx..xx..xx..x", "shaker": "xoxoxoxoxoxoxoxo"},
            gain=_level(rng, -5),
        )
    elif _chance(rng, 0.45):
        _drums(
            song,
            kit,
            {"brush": "x...x...x...x...", "hat": "....x.......x...", "kick": "o...o...o...o..."},
            gain=_level(rng, -3),
        )
    else:
        _drums(
            song,
            kit,
            {"ride": "x...x.x.x...x.x.", "hat": "....x.......x...", "kick": "o.......o......."},
            gain=_level(rng, -3),
            drop=0.05,
        )
    upright = _bass(rng, bright=rng.uniform(2, 5), decay=rng.uniform(0.3, 0.7), sustain=0.1)
    _walking_bass(song, upright, low=31, gain=_level(rng))
    piano = _keys(rng, bright=rng.uniform(3, 9), decay=rng.uniform(0.4, 1.2))
    comp_steps = (
        [(0.0, 3.0), (6.0, 2.0)] if _chance(rng, 0.5) else [(2.0, 2.0), (10.0, 3.0), (14.0, 2.0)]
    )
    _comp(song, piano, stem="chords", rhythm=comp_steps, low=53, gain=_level(rng, -4), skip=0.3)
    if _chance(rng, 0.7):
        horn = _reed(rng, bright=rng.uniform(4, 12), vibrato=rng.uniform(5, 20))  # sax or trumpet
        _melody(
            song,
            horn,
            scale=_DORIAN if _chance(rng, 0.5) else _MIXOLYDIAN,
            low=58,
            high=80,
            durations=(2.0, 2.0, 2.0, 4.0, 1.0, 6.0),
            rest=0.25,
            legato=0.85,
            gain=_level(rng, -4),
        )
    song.reverb = {
        "chords": 0.3,
        "lead": 0.35,
        "drums": 0.2,
        "bass": 0.1,
        "rt": rng.uniform(0.8, 1.8),
    }
    return song


def _metal(rng: np.random.Generator, sr: int, n: int) -> _Song:
    halftime = _chance(rng, 0.2)  # a slower, rock-like groove
    song = _Song(
        rng,
        sr=sr,
        n=n,
        bpm=rng.uniform(110, 140) if halftime else rng.uniform(140, 200),
        key=int(rng.integers(38, 45)),
        jitter=0.003,
    )
    song.progression(
        [(0, _POWER), (1, _POWER), (0, _POWER), (8, _POWER), (10, _POWER)][
            : int(rng.integers(2, 6))
        ]
    )
    kit = _Kit(rng, sr, style="metal")
    if halftime:
        pattern = {
            "kick": "x.x...x.x.x.....",
            "snare": "........X.......",
            "crash": "x...............",
            "hat": "x.x.x.x.x.x.x.x.",
        }
    elif _chance(rng, 0.3):  # blast beat
        pattern = {
            "kick": "x.x.x.x.x.x.x.x.",
            "snare": ".x.x.x.x.x.x.x.x",
            "crash": "x...x...x...x...",
        }
    else:
        kicks = "xxxxxxxxxxxxxxxx" if song.bpm < 170 else "x.x.x.x.x.x.x.x."
        pattern = {
            "kick": kicks,
            "snare": "....X.......X...",
            "crash": "x...............",
            "ride": "x.x.x.x.x.x.x.x.",
        }
    _drums(song, kit, pattern, gain=_level(rng, 1))
    guitar = _synth(rng, bright=rng.uniform(8, 20), square=False, sustain=0.0)
    guitar.decay = rng.uniform(0.08, 0.2)  # palm-muted chugs
    chug = [(float(s), 0.9) for s in range(0, 16, 1 if song.bpm < 170 else 2)]
    _comp(song, guitar, stem="guitar", rhythm=chug, low=28, gain=_level(rng), skip=0.1)
    if _chance(rng, 0.5):
        ring = _synth(rng, bright=rng.uniform(8, 20), square=False, sustain=0.6)
        _comp(song, ring, stem="guitar", rhythm=[(0, 8), (8, 8)], low=40, gain=_level(rng, -3))
    drive = rng.uniform(6, 25)
    song.stems["guitar"] = _band(
        np.tanh(drive * song.stems["guitar"]), sr, lo=80, hi=rng.uniform(2500, 5000), order=3
    )
    bass = _bass(rng, bright=rng.uniform(4, 10), decay=0.2, sustain=0.5)
    _bassline(
        song,
        bass,
        pattern=[(float(s), 0, 1.8) for s in range(0, 16, 2)],
        low=28,
        gain=_level(rng, -3),
    )
    if _chance(rng, 0.3):
        lead = _synth(rng, bright=rng.uniform(6, 12), square=False, sustain=0.7)
        _melody(
            song,
            lead,
            scale=_HARMONIC_MINOR,
            low=64,
            high=88,
            durations=(1.0, 1.0, 2.0),
            rest=0.3,
            bend=0.1,
            gain=_level(rng, -6),
        )
        song.stems["lead"] = np.tanh(rng.uniform(3, 10) * song.stems["lead"]) * 0.3
    song.reverb = {"guitar": 0.1, "drums": 0.1, "lead": 0.3, "rt": rng.uniform(0.5, 1.5)}
    return song


def _pop(rng: np.random.Generator, sr: int, n: int) -> _Song:
    song = _Song(
        rng, sr=sr, n=n, bpm=rng.uniform(100, 130), key=int(rng.integers(40, 52)), jitter=0.003
    )
    add9 = (0, 4, 7, 14) if _chance(rng, 0.3) else _MAJ
    song.progression([(0, add9), (7, _MAJ), (9, _MIN), (5, add9)])
    kit = _Kit(rng, sr, style="disco" if _chance(rng, 0.5) else "acoustic")
    kick = (
        "x...x...x...x..."
        if _chance(rng, 0.2)
        else str(rng.choice(["x.......x.x.....", "x.....x...x....."]))
    )
    pattern = {"kick": kick, "clap": "....x.......x...", "hat": "x.x.x.x.x.x.x.x."}
    if _chance(rng, 0.5):
        pattern["snare"] = "....x.......x..."
    if _chance(rng, 0.4):
        pattern["shaker"] = "xoxoxoxoxoxoxoxo"
    _drums(song, kit, pattern, gain=_level(rng))
    bass = _synth(rng, bright=rng.uniform(2, 6), square=_chance(rng, 0.5), sustain=0.4)
    _bassline(
        song,
        bass,
        pattern=[(float(s), 0, 1.6) for s in range(0, 16, 2)],
        low=31,
        gain=_level(rng, -2),
    )
    if _chance(rng, 0.15):  # a rock guitar
        guitar = _synth(rng, bright=rng.uniform(6, 12), square=False, sustain=0.5)
        _comp(
            song,
            guitar,
            stem="guitar",
            rhythm=[(float(s), 1.8) for s in range(0, 16, 2)],
            low=40,
            gain=_level(rng, -4),
        )
        song.stems["guitar"] = _band(
            np.tanh(rng.uniform(2, 5) * song.stems["guitar"]), sr, lo=80, hi=4500
        )
    synth = _synth(
        rng, bright=rng.uniform(3, 10), square=_chance(rng, 0.4), sustain=rng.uniform(0.2, 0.8)
    )
    rhythm = [(0, 15)] if _chance(rng, 0.4) else [(float(s), 1.5) for s in range(0, 16, 2)]
    if _chance(rng, 0.1):  # off-beat chords, as in reggae
        rhythm = [(2, 1), (6, 1), (10, 1), (14, 1)]
    _comp(song, synth, stem="chords", rhythm=rhythm, low=57, gain=_level(rng, -5))
    if _chance(rng, 0.8):
        voice = (
            _flute(rng) if _chance(rng, 0.6) else _keys(rng, bright=rng.uniform(2, 5), decay=0.5)
        )
        _melody(
            song,
            voice,
            scale=_PENTA_MAJOR,
            low=64,
            high=81,
            durations=(1.0, 2.0, 2.0, 3.0, 4.0),
            rest=0.3,
            gain=_level(rng, -3),
        )
    song.reverb = {"chords": 0.3, "lead": 0.35, "drums": 0.12, "rt": rng.uniform(0.8, 1.8)}
    return song


def _reggae(rng: np.random.Generator, sr: int, n: int) -> _Song:
    song = _Song(
        rng,
        sr=sr,
        n=n,
        bpm=rng.uniform(70, 90),
        key=int(rng.integers(38, 50)),
        swing8=rng.uniform(0.0, 0.4),
        jitter=0.006,
    )
    minor = _chance(rng, 0.5)
    song.progression(
        [(0, _MIN), (5, _MIN)] if minor else [(0, _MAJ), (5, _MAJ), (0, _MAJ), (7, _MAJ)],
        bars_per_chord=int(rng.choice([1, 2])),
    )
    kit = _Kit(rng, sr, style="808" if _chance(rng, 0.15) else "acoustic")
    if _chance(rng, 0.25):  # rockers / steppers: a kick on every beat
        pattern = {"kick": "x...x...x...x...", "rim": "........x.......", "hat": "x.x.x.x.x.x.x.x."}
    else:  # the one-drop: kick and rim together on beat three only
        pattern = {
            "kick": "........x.......",
            "rim": "........x.......",
            "hat": "x.x.x.x.x.x.x.x." if _chance(rng, 0.6) else "..x...x...x...x.",
        }
    _drums(song, kit, pattern, gain=_level(rng, -1), drop=0.05)
    bass = _bass(rng, bright=rng.uniform(1.5, 3.5), decay=rng.uniform(0.3, 0.6), sustain=0.4)
    line = [
        (2.0, 0, 2.0),
        (4.0, 0, 1.0),
        (6.0, 7, 2.0),
        (10.0, 12, 1.0),
        (12.0, 10, 2.0),
        (14.0, 7, 1.5),
    ]
    if _chance(rng, 0.5):
        line = [
            (0.0, 0, 3.0),
            (6.0, 3 if minor else 4, 1.0),
            (8.0, 7, 3.0),
            (12.0, 5, 1.0),
            (14.0, 7, 2.0),
        ]
    _bassline(song, bass, pattern=line, low=28, gain=_level(rng, 2))
    skank = (
        _pluck(rng, bright=rng.uniform(8, 20), decay=rng.uniform(0.05, 0.12))
        if _chance(rng, 0.7)
        else _organ(rng)
    )
    offbeats = (
        [(4.0, 0.8), (12.0, 0.8)]
        if _chance(rng, 0.5)
        else [(2.0, 0.8), (6.0, 0.8), (10.0, 0.8), (14.0, 0.8)]
    )
    _comp(song, skank, stem="chords", rhythm=offbeats, low=60, gain=_level(rng, -3))
    if _chance(rng, 0.5):  # the organ "bubble"
        _comp(
            song,
            _organ(rng),
            stem="organ",
            rhythm=[(2.0, 0.7), (3.0, 0.7), (10.0, 0.7), (11.0, 0.7)],
            low=52,
            gain=_level(rng, -9),
        )
    if _chance(rng, 0.4):
        horn = _reed(rng, bright=rng.uniform(3, 8), vibrato=rng.uniform(5, 15))  # melodica / horns
        _melody(
            song,
            horn,
            scale=_PENTA_MINOR if minor else _PENTA_MAJOR,
            low=62,
            high=79,
            durations=(2.0, 4.0, 4.0),
            rest=0.4,
            gain=_level(rng, -7),
        )
    song.reverb = {"chords": 0.4, "drums": 0.25, "lead": 0.3, "rt": rng.uniform(0.8, 2.0)}
    return song


def _rock(rng: np.random.Generator, sr: int, n: int) -> _Song:
    shuffle = _chance(rng, 0.15)  # a blues-rock shuffle
    song = _Song(
        rng,
        sr=sr,
        n=n,
        bpm=rng.uniform(100, 140),
        key=int(rng.integers(40, 50)),
        swing8=rng.uniform(0.6, 0.9) if shuffle else 0.0,
        jitter=0.005,
    )
    song.progression(
        [(0, _POWER), (10, _POWER), (5, _POWER), (0, _POWER)]
        if _chance(rng, 0.5)
        else [(9, _POWER), (5, _POWER), (0, _POWER), (7, _POWER)]
    )
    kit = _Kit(rng, sr, style="acoustic")
    kick = str(rng.choice(["x.....x.x.......", "x.......x.x.....", "x.x.....x......."]))
    cymbal = "ride" if _chance(rng, 0.25) else "hat"
    pattern = {
        "kick": kick,
        "snare": "....X.......X...",
        cymbal: "x.x.x.x.x.x.x.x.",
        "crash": "x" + "." * 63,
    }
    if _chance(rng, 0.1):  # disco hats
        pattern["open_hat"] = "..x...x...x...x."
    _drums(song, kit, pattern, gain=_level(rng))
    clean = _chance(rng, 0.15)  # clean, strummed guitar as in country and pop
    guitar = _synth(rng, bright=rng.uniform(6, 15), square=False, sustain=rng.uniform(0.3, 0.7))
    if clean:
        guitar = _pluck(rng, bright=rng.uniform(8, 18), decay=rng.uniform(0.4, 0.9))
    _comp(
        song,
        guitar,
        stem="guitar",
        rhythm=[(float(s), 1.8) for s in range(0, 16, 2)],
        low=40,
        gain=_level(rng),
        strum=0.01 if clean else 0.0,
    )
    if not clean:
        song.stems["guitar"] = _band(
            np.tanh(rng.uniform(2, 8) * song.stems["guitar"]), sr, lo=80, hi=rng.uniform(3000, 6000)
        )
    bass = _bass(rng, bright=rng.uniform(3, 8), decay=0.25, sustain=0.5)
    _bassline(
        song,
        bass,
        pattern=[(float(s), 0, 1.8) for s in range(0, 16, 2)],
        low=28,
        gain=_level(rng, -2),
    )
    if _chance(rng, 0.4):
        lead = _pluck(rng, bright=rng.uniform(8, 20), decay=rng.uniform(0.5, 1.2))
        _melody(
            song,
            lead,
            scale=_PENTA_MINOR,
            low=62,
            high=84,
            durations=(1.0, 2.0, 2.0, 4.0),
            rest=0.3,
            bend=0.3,
            gain=_level(rng, -6),
        )
        song.stems["lead"] = np.tanh(rng.uniform(2, 6) * song.stems["lead"]) * 0.4
    song.reverb = {"guitar": 0.15, "drums": 0.15, "lead": 0.3, "rt": rng.uniform(0.6, 1.6)}
    return song


_ARRANGERS: dict[str, Callable[[np.random.Generator, int, int], _Song]] = {
    "blues": _blues,
    "classical": _classical,
    "country": _country,
    "disco": _disco,
    "hiphop": _hiphop,
    "jazz": _jazz,
    "metal": _metal,
    "pop": _pop,
    "reggae": _reggae,
    "rock": _rock,
}


# --------------------------------------------------------------------------- mastering


def _master(song: _Song, rng: np.random.Generator) -> np.ndarray:
    """Mix the stems, add reverb, "record" (band limits, tilt, hiss) and set the gain.

    Everything after the mix is linear, so it happens in one FFT pass over the song.
    """
    sr = song.sr
    mix = np.zeros(song.total)
    send = np.zeros(song.total)
    for name, stem in song.stems.items():
        level = _level(rng, 0.0, 2.5)
        mix += level * stem
        send += level * song.reverb.get(name, 0.1) * stem
    rt = song.reverb.get("rt", 1.0)
    t = np.arange(int(rt * sr)) / sr
    tail = _band(
        rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt), sr, hi=rng.uniform(3000, 8000)
    )
    tail *= rng.uniform(0.5, 1.2) / np.sqrt(np.sum(tail**2))  # unit energy keeps the send's level
    size = _fast_len(song.total + len(tail))
    spectrum = np.fft.rfft(mix, size) + np.fft.rfft(send, size) * np.fft.rfft(tail, size)

    # The "recording": its bandwidth, tone and noise floor vary from clip to clip.
    f = np.fft.rfftfreq(size, 1.0 / sr)
    log_f = np.log(np.maximum(f, 20.0) / 1000.0)
    tilt_db_per_octave = rng.uniform(-2.0, 2.0)
    response = np.exp(tilt_db_per_octave * np.log(10.0) / 20.0 / np.log(2.0) * log_f)
    low = (rng.uniform(20, 120) / np.maximum(f, 1e-3)) ** 2
    high = (f / np.exp(rng.uniform(np.log(3500), np.log(11000)))) ** 2
    response /= np.sqrt((1.0 + low * low) * (1.0 + high * high))
    spectrum *= response
    rms = np.sqrt(2.0 * np.sum(np.abs(spectrum) ** 2) / size / song.total)  # Parseval
    hiss = (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))) * np.sqrt(size / 2.0)
    if _chance(rng, 0.5):  # pink-ish (-3 dB/octave) instead of white
        hiss *= np.exp(-0.5 * log_f)
    spectrum += hiss * rms * 10.0 ** (-rng.uniform(22, 45) / 20.0)
    clip = np.fft.irfft(spectrum, size)[song.lead : song.lead + song.n]

    clip *= 10.0 ** (rng.uniform(-20, -13) / 20.0) / max(float(np.sqrt(np.mean(clip**2))), 1e-12)
    peak = float(np.max(np.abs(clip)))
    if peak > 0.98:  # a limiter, not clipping
        clip *= 0.98 / peak
    return clip.astype(np.float32)


def _fast_len(n: int) -> int:
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


# --------------------------------------------------------------------------- public API


def clip_rng(*, genre: str, index: int, seed: int) -> np.random.Generator:
    """The random generator of one clip, derived from ``(seed, genre, index)`` only."""
    genre_code = zlib.crc32(genre.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([seed % 2**64, genre_code, index]))


def synthesize_clip(
    *, genre: str, index: int, seed: int, seconds: float, sample_rate: int = 22050
) -> np.ndarray:
    """Synthesise one demo clip.

    Parameters
    ----------
    genre : str
        One of :data:`GENRES`.
    index : int
        Clip number within the genre (>= 0).
    seed : int
        Dataset seed; with ``genre`` and ``index`` it fixes every random choice.
    seconds : float
        Clip length in seconds (> 0).
    sample_rate : int
        Samples per second.

    Returns
    -------
    np.ndarray
        float32 samples in [-1, 1], shape ``(round(seconds * sample_rate),)``.
    """
    if genre not in _ARRANGERS:
        raise ConfigError(f"unknown demo genre {genre!r}; allowed: {', '.join(GENRES)}")
    if index < 0:
        raise ConfigError(f"demo clip index must be >= 0, got {index}")
    _check_positive(seconds=seconds, sample_rate=sample_rate)
    n = int(round(seconds * sample_rate))
    rng = clip_rng(genre=genre, index=index, seed=seed)
    song = _ARRANGERS[genre](rng, sample_rate, n)
    return _master(song, rng)


def clip_path(out: Path, *, genre: str, index: int) -> Path:
    """``out/<genre>/<genre>.<index:05d>.wav`` (the GTZAN layout)."""
    return Path(out) / genre / f"{genre}.{index:05d}.wav"


def write_demo_dataset(
    *,
    out: Path,
    clips_per_genre: int,
    seconds: float,
    seed: int,
    sample_rate: int = 22050,
    show_progress: bool = True,
) -> list[Path]:
    """Write the demo dataset in GTZAN layout, plus ``README.md`` and ``demo.json``.

    Each clip is a 16-bit PCM mono WAV written atomically. ``demo.json`` is written last,
    so a folder with it is complete. A folder that is neither empty nor an earlier demo
    dataset (no ``demo.json``) is refused rather than overwritten; in an earlier demo
    dataset, clips beyond ``clips_per_genre`` are removed so the folder matches the record.

    Returns
    -------
    list of Path
        The clip paths, genre by genre, in index order.
    """
    import soundfile as sf

    from genreflow import __version__
    from genreflow.core.atomic import atomic_path, write_json, write_text
    from genreflow.core.progress import progress

    if (
        isinstance(clips_per_genre, bool)
        or not isinstance(clips_per_genre, int)
        or clips_per_genre < 1
    ):
        raise ConfigError(f"clips_per_genre must be an integer >= 1, got {clips_per_genre!r}")
    _check_positive(seconds=seconds, sample_rate=sample_rate)
    out = Path(out)
    record = out / "demo.json"
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory")
    _check_writable(out, generator=GENERATOR)
    record.unlink(missing_ok=True)  # the folder is incomplete until the end
    _remove_surplus(out, clips_per_genre)

    start = time.monotonic()
    jobs = [(genre, index) for genre in GENRES for index in range(clips_per_genre)]
    paths = []
    for genre, index in progress(jobs, total=len(jobs), desc="demo-data", enabled=show_progress):
        samples = synthesize_clip(
            genre=genre, index=index, seed=seed, seconds=seconds, sample_rate=sample_rate
        )
        pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
        path = clip_path(out, genre=genre, index=index)
        with atomic_path(path) as tmp:
            sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format="WAV")
        paths.append(path)

    info = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "genreflow_version": __version__,
        "seed": seed,
        "clips_per_genre": clips_per_genre,
        "seconds": float(seconds),
        "sample_rate": sample_rate,
        "format": "WAV PCM_16 mono",
        "genres": list(GENRES),
        "n_clips": len(paths),
    }
    write_text(out / "README.md", _readme(info))
    write_json(record, info)
    log.debug("demo dataset: %d clips in %.1f s", len(paths), time.monotonic() - start)
    return paths


def multilabel_clip_labels(*, genre: str, index: int, seed: int) -> tuple[str, ...]:
    """The labels of multi-label demo clip ``(genre, index)``: ``(genre,)`` or ``(genre, other)``.

    Drawn from ``(seed, genre, index)`` only; the second genre is uniform over the others.
    """
    if genre not in _ARRANGERS:
        raise ConfigError(f"unknown demo genre {genre!r}; allowed: {', '.join(GENRES)}")
    rng = np.random.default_rng(
        np.random.SeedSequence(
            [seed % 2**64, zlib.crc32(MULTILABEL_GENERATOR.encode()), GENRES.index(genre), index]
        )
    )
    if rng.random() >= MIX_FRACTION:
        return (genre,)
    others = [g for g in GENRES if g != genre]
    return (genre, others[int(rng.integers(len(others)))])


def synthesize_multilabel_clip(
    *, genre: str, index: int, seed: int, seconds: float, sample_rate: int = 22050
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Synthesise one multi-label demo clip: a ``genre`` clip, maybe mixed with a second genre.

    The primary part is :func:`synthesize_clip` ``(genre, index, seed)``; a second genre's clip
    (an index of its own, never used elsewhere in the dataset) is scaled to the same RMS and
    added, and the mix is brought back to the primary's RMS (then limited to a 0.98 peak).

    Parameters
    ----------
    genre : str
        The primary genre, one of :data:`GENRES`.
    index : int
        Clip number within the genre, ``0 <= index < 100000``.
    seed : int
    seconds : float
    sample_rate : int

    Returns
    -------
    samples : np.ndarray, shape ``(round(seconds * sample_rate),)``, float32 in [-1, 1]
    labels : tuple of str
        ``(genre,)`` or ``(genre, second genre)``.
    """
    if not 0 <= index < _PARTNER_INDEX_BASE // len(GENRES):
        raise ConfigError(
            f"multi-label demo clip index must be in [0, {_PARTNER_INDEX_BASE // len(GENRES)}), "
            f"got {index}"
        )
    labels = multilabel_clip_labels(genre=genre, index=index, seed=seed)
    primary = synthesize_clip(
        genre=genre, index=index, seed=seed, seconds=seconds, sample_rate=sample_rate
    )
    if len(labels) == 1:
        return primary, labels
    partner = synthesize_clip(
        genre=labels[1],
        index=_PARTNER_INDEX_BASE + index * len(GENRES) + GENRES.index(genre),
        seed=seed,
        seconds=seconds,
        sample_rate=sample_rate,
    )
    a, b = primary.astype(np.float64), partner.astype(np.float64)
    level = _rms(a)
    mix = a + b * (level / max(_rms(b), 1e-12))
    mix *= level / max(_rms(mix), 1e-12)
    peak = float(np.max(np.abs(mix)))
    if peak > 0.98:  # a limiter, not clipping
        mix *= 0.98 / peak
    return mix.astype(np.float32), labels


def multilabel_clip_path(out: Path, *, genre: str, index: int) -> Path:
    """``out/<genre>/<genre>-ml.<index:05d>.wav``: not GTZAN names, so no GTZAN split applies."""
    return Path(out) / genre / f"{genre}-ml.{index:05d}.wav"


def write_multilabel_demo_dataset(
    *,
    out: Path,
    clips_per_genre: int,
    seconds: float,
    seed: int,
    sample_rate: int = 22050,
    show_progress: bool = True,
) -> list[Path]:
    """Write the multi-label demo dataset: clips, ``labels.csv``, ``README.md``, ``demo.json``.

    ``clips_per_genre`` clips have each genre as their primary (first) label; about
    :data:`MIX_FRACTION` of them mix in a second genre. ``labels.csv`` has the columns
    ``path,label,labels`` (paths relative to ``out``; ``labels`` ``;``-separated, the primary
    first) for ``genreflow manifest --csv``. Same seed, same files; clip ``i`` of a genre does
    not depend on ``clips_per_genre``. ``demo.json`` is written last. A folder that is neither
    empty nor an earlier multi-label demo dataset is refused; clips beyond ``clips_per_genre``
    of an earlier run are removed.

    Returns
    -------
    list of Path
        The clip paths, genre by genre, in index order.
    """
    import csv
    import io

    import soundfile as sf

    from genreflow import __version__
    from genreflow.core.atomic import atomic_path, write_json, write_text
    from genreflow.core.progress import progress

    if (
        isinstance(clips_per_genre, bool)
        or not isinstance(clips_per_genre, int)
        or not 1 <= clips_per_genre <= _PARTNER_INDEX_BASE // len(GENRES)
    ):
        raise ConfigError(
            "clips_per_genre must be an integer in [1, "
            f"{_PARTNER_INDEX_BASE // len(GENRES)}] for the multi-label demo, got {clips_per_genre!r}"
        )
    _check_positive(seconds=seconds, sample_rate=sample_rate)
    out = Path(out)
    record = out / "demo.json"
    _check_writable(out, generator=MULTILABEL_GENERATOR)
    record.unlink(missing_ok=True)  # the folder is incomplete until the end
    _remove_surplus(out, clips_per_genre, pattern=_MULTILABEL_CLIP_NAME)

    jobs = [(genre, index) for genre in GENRES for index in range(clips_per_genre)]
    paths, rows = [], []
    for genre, index in progress(jobs, total=len(jobs), desc="demo-data", enabled=show_progress):
        samples, labels = synthesize_multilabel_clip(
            genre=genre, index=index, seed=seed, seconds=seconds, sample_rate=sample_rate
        )
        pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
        path = multilabel_clip_path(out, genre=genre, index=index)
        with atomic_path(path) as tmp:
            sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format="WAV")
        paths.append(path)
        rows.append((path.relative_to(out).as_posix(), genre, ";".join(labels)))

    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(("path", "label", "labels"))
    writer.writerows(rows)
    write_text(out / "labels.csv", table.getvalue())
    label_counts = {g: sum(g in r[2].split(";") for r in rows) for g in GENRES}
    info = {
        "generator": MULTILABEL_GENERATOR,
        "generator_version": MULTILABEL_GENERATOR_VERSION,
        "clip_generator_version": GENERATOR_VERSION,
        "genreflow_version": __version__,
        "multilabel": True,
        "seed": seed,
        "clips_per_genre": clips_per_genre,
        "seconds": float(seconds),
        "sample_rate": sample_rate,
        "format": "WAV PCM_16 mono",
        "genres": list(GENRES),
        "mix_fraction": MIX_FRACTION,
        "n_clips": len(paths),
        "n_mixed": sum(";" in r[2] for r in rows),
        "label_counts": label_counts,
        "labels_csv": "labels.csv",
    }
    write_text(out / "README.md", _multilabel_readme(info))
    write_json(record, info)
    return paths


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x))))


def _check_writable(out: Path, *, generator: str) -> None:
    """Refuse a path that is a file, or a non-empty folder not written by ``generator``."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory")
    if not out.is_dir() or not any(out.iterdir()):
        return
    record = out / "demo.json"
    if not record.exists():
        raise DatasetError(
            f"{out}: folder is not empty and holds no demo.json; refusing to write demo clips "
            "over files the demo generator did not make (choose an empty or new folder)"
        )
    try:
        made_by = json.loads(record.read_text(encoding="utf-8")).get("generator")
    except (OSError, ValueError, AttributeError):
        made_by = None
    if made_by not in (None, generator):
        raise DatasetError(
            f"{out}: holds a dataset made by {made_by}, not {generator}; "
            "choose an empty or new folder"
        )


def _check_positive(*, seconds: float, sample_rate: int) -> None:
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"demo clip length must be a number of seconds > 0, got {seconds!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1000:
        raise ConfigError(f"sample_rate must be an integer >= 1000 Hz, got {sample_rate!r}")
    if round(seconds * sample_rate) < 1:
        raise ConfigError(f"demo clips of {seconds} s at {sample_rate} Hz would hold no samples")


def _remove_surplus(out: Path, clips_per_genre: int, *, pattern: re.Pattern = _CLIP_NAME) -> None:
    """Delete this generator's clips numbered ``clips_per_genre`` and up (a smaller rerun)."""
    for genre in GENRES:
        folder = out / genre
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = pattern.match(path.name)
            if match and match["genre"] == genre and int(match["index"]) >= clips_per_genre:
                log.info("removing %s (beyond --clips-per-genre %d)", path, clips_per_genre)
                path.unlink()


def _readme(info: dict) -> str:
    genres = ", ".join(info["genres"])
    return (
        "# genreflow synthetic demo dataset\n\n"
        "Synthetic music made by `genreflow demo-data` (module `genreflow.demo`): no recordings,\n"
        "free to share. GTZAN layout: `<genre>/<genre>.NNNNN.wav`, "
        f"{info['sample_rate']} Hz mono 16-bit PCM.\n\n"
        f"- genres: {genres}\n"
        f"- clips per genre: {info['clips_per_genre']}\n"
        f"- seconds per clip: {info['seconds']}\n"
        f"- seed: {info['seed']}\n"
        f"- generator version: {info['generator_version']} (genreflow {info['genreflow_version']})\n\n"
        "The same seed and generator version give bit-identical files. Regenerate with:\n\n"
        f"    genreflow demo-data --out DIR --clips-per-genre {info['clips_per_genre']} "
        f"--seconds {info['seconds']} --seed {info['seed']}\n\n"
        "What each genre sounds like: docs/demo-dataset.md in the genreflow repository.\n"
    )


def _multilabel_readme(info: dict) -> str:
    genres = ", ".join(info["genres"])
    return (
        "# genreflow synthetic multi-label demo dataset\n\n"
        "Synthetic music made by `genreflow demo-data --multilabel` (module `genreflow.demo`):\n"
        "no recordings, free to share. Files `<genre>/<genre>-ml.NNNNN.wav`, "
        f"{info['sample_rate']} Hz mono 16-bit PCM. `<genre>` is the clip's first label; about\n"
        f"{info['mix_fraction']:.0%} of the clips mix in a second genre at equal loudness.\n"
        "`labels.csv` (`path,label,labels`, labels `;`-separated) lists every clip's labels:\n\n"
        "    genreflow manifest --csv DIR/labels.csv --out manifest.csv\n\n"
        f"- genres: {genres}\n"
        f"- clips per genre (as first label): {info['clips_per_genre']}, "
        f"{info['n_mixed']} of {info['n_clips']} clips mixed\n"
        f"- seconds per clip: {info['seconds']}\n"
        f"- seed: {info['seed']}\n"
        f"- generator version: {info['generator_version']} "
        f"(clips: {info['clip_generator_version']}, genreflow {info['genreflow_version']})\n\n"
        "The same seed and generator version give bit-identical files. Regenerate with:\n\n"
        f"    genreflow demo-data --multilabel --out DIR --clips-per-genre "
        f"{info['clips_per_genre']} --seconds {info['seconds']} --seed {info['seed']}\n"
    )
