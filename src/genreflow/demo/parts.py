"""The song of one demo clip (time grid, harmony, stems) and the parts that fill it.

Each part (drums, comp, bassline, walking bass, melody, arpeggio) writes notes into a stem;
the stem effects (drive, swell, vinyl) then colour whole stems. Every function draws from
``song.rng`` in a fixed order, which is what keeps a clip's audio fixed by its seed; a genre
row draws a part's arguments in the order of its keyword parameters, so reordering those
parameters changes the audio too.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from genreflow.demo.dsp import band, level
from genreflow.demo.kit import Kit
from genreflow.demo.voices import Voice, render

Chord = tuple[int, tuple[int, ...]]  # (root above the key, quality)


class Song:
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
        # A major triad on the key until progression() sets the harmony.
        self.chords: list[Chord] = [(0, (0, 4, 7))] * self.n_bars
        self.stems: dict[str, np.ndarray] = {}
        self.kit: Kit | None = None  # the drum sounds, for genres that have drums
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


def drums(
    song: Song,
    *,
    patterns: Iterable[tuple[str, str] | None],
    gain: float = 1.0,
    drop: float = 0.0,
) -> None:
    """Loop ``(sound, pattern)`` step patterns, 16 steps a bar; ``None`` entries are skipped.

    Steps: ``X`` accent, ``x`` hit, ``o`` ghost, ``.`` rest.
    """
    rng = song.rng
    for name, pattern in (p for p in patterns if p is not None):
        for bar in range(song.n_bars):
            for i, char in enumerate(pattern[(bar % (len(pattern) // 16)) * 16 :][:16]):
                if char == "." or (drop and rng.random() < drop):
                    continue
                song.add("drums", song.kit.hit(name), song.time(bar, i), gain * _vel(rng, char))


def comp(
    song: Song,
    *,
    voice: Voice,
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
                    cache[key] = render(voice, midi=note, seconds=song.steps(length), sr=song.sr)
                at = song.time(bar, step) + j * strum
                song.add(stem, cache[key], at, gain * rng.uniform(0.75, 1.0) / len(notes) ** 0.5)


def bassline(
    song: Song,
    *,
    voice: Voice,
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
                cache[key] = render(
                    voice, midi=root + interval, seconds=song.steps(length), sr=song.sr
                )
            song.add(stem, cache[key], song.time(bar, step), gain * rng.uniform(0.8, 1.0))


def walking_bass(song: Song, *, voice: Voice, low: int, gain: float = 1.0) -> None:
    """Quarter notes through chord tones, approaching the next root by a semitone."""
    rng = song.rng
    for bar in range(song.n_bars):
        root = song.root(bar, low=low)
        quality = song.chords[bar][1]
        nxt = song.root(min(bar + 1, song.n_bars - 1), low=low)
        line = [root, root + quality[int(rng.integers(1, len(quality)))] % 12, root + 7]
        line.append(nxt + (1 if rng.random() < 0.5 else -1))
        for beat, note in enumerate(line):
            tone = render(voice, midi=note, seconds=song.beat * 0.9, sr=song.sr)
            song.add("bass", tone, song.time(bar, beat * 4), gain * rng.uniform(0.8, 1.0))


def melody(
    song: Song,
    *,
    voice: Voice,
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
        tone = render(voice, midi=midi, seconds=song.steps(length) * legato, sr=song.sr, bend=how)
        song.add(stem, tone, song.time(int(bar), within), gain * rng.uniform(0.7, 1.0))
        step += length


def arpeggio(song: Song, *, voice: Voice, low: int, every: float, gain: float = 1.0) -> None:
    """Broken chords: chord tones up and down, one every ``every`` steps."""
    rng = song.rng
    for bar in range(song.n_bars):
        notes = song.chord_notes(bar, low=low, extensions=False)
        notes = notes + [n + 12 for n in notes]
        order = notes + notes[-2:0:-1]
        for i, step in enumerate(np.arange(0, 16, every)):
            tone = render(
                voice, midi=order[i % len(order)], seconds=song.steps(every) * 1.5, sr=song.sr
            )
            song.add("chords", tone, song.time(bar, float(step)), gain * rng.uniform(0.7, 1.0))


# --------------------------------------------------------------------------- stem effects


def drive(
    song: Song,
    *,
    stem: str,
    drive: float | None = None,
    lo: float = 0.0,
    hi: float | None = None,
    order: int = 2,
    gain: float | None = None,
) -> None:
    """Overdrive (``tanh(drive * x)``), then band-limit, then scale one stem; each optional."""
    x = song.stems.get(stem, np.zeros(song.total))
    if drive is not None:
        x = np.tanh(drive * x)
    if lo or hi is not None:
        x = band(x, song.sr, lo=lo, hi=hi, order=order)
    if gain is not None:
        x = x * gain
    song.stems[stem] = x


def swell(song: Song, *, depth: float, rate: float, phase: float) -> None:
    """Orchestral dynamics: a slow sine swell or fade of every stem over the whole clip."""
    t = np.linspace(0.0, 1.0, song.total)
    gain = 1.0 + depth * np.sin(np.pi * (t * rate + phase))
    for name in song.stems:
        song.stems[name] *= gain


def vinyl(song: Song, *, per_second: float, db: float, spread: float, stem: str = "vinyl") -> None:
    """Vinyl crackle: ``per_second`` sparse random clicks, band-passed, at a random level."""
    rng = song.rng
    clicks = np.zeros(song.total)
    where = rng.integers(0, song.total, int(per_second * song.total / song.sr))
    clicks[where] = rng.standard_normal(len(where))
    song.stems[stem] = band(clicks, song.sr, lo=1000, hi=8000) * level(rng, db, spread)
