"""The one arranger that reads a genre row, the mastering, and clip synthesis.

:func:`arrange` walks a :class:`~genreflow.demo.spec.Genre` row in order, making its draws
from the clip's generator and playing each part into the song; :func:`master` mixes the
stems into the clip. :func:`synthesize_multilabel_clip` mixes two genres' clips.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from genreflow.core.errors import ConfigError
from genreflow.data.splits import GTZAN_GENRES
from genreflow.demo.dsp import band, chance, fast_len, level, rms
from genreflow.demo.genres import GENRE_ROWS
from genreflow.demo.kit import Kit
from genreflow.demo.parts import Song
from genreflow.demo.spec import Context, Genre, Let, When, evaluate

#: GTZAN's ten genre names, in GTZAN's (alphabetical) order: the demo mimics its layout.
GENRES: tuple[str, ...] = GTZAN_GENRES

#: Bumped whenever a change to the synthesis changes the audio for a given seed.
GENERATOR_VERSION = 1

#: ``generator`` in ``demo.json`` of the single-label and the multi-label demo datasets.
#: Format identifiers, not module paths: they must not change. The multi-label one also
#: seeds the draw of each clip's labels.
GENERATOR = "genreflow.demo"
MULTILABEL_GENERATOR = "genreflow.demo.multilabel"

#: Bumped whenever a change to the mixing changes a multi-label clip for a given seed.
MULTILABEL_GENERATOR_VERSION = 1

#: Chance that a multi-label demo clip mixes in a second genre (otherwise it has one genre).
MIX_FRACTION = 2 / 3

#: Second-genre clips use indices from here on, one per (primary genre, index): no partner
#: audio is ever a primary clip or another clip's partner, so no audio repeats across clips.
PARTNER_INDEX_BASE = 1_000_000

assert set(GENRE_ROWS) == set(GENRES), "every GTZAN genre needs a demo row"


def arrange(row: Genre, rng: np.random.Generator, *, sr: int, n: int) -> Song:
    """The song of one clip: ``row`` read top to bottom, drawing from ``rng`` as it goes."""
    ctx = Context(rng)
    _let(ctx, row.flags)
    song = Song(
        rng,
        sr=sr,
        n=n,
        bpm=evaluate(row.tempo, ctx),
        key=evaluate(row.key, ctx),
        swing8=evaluate(row.swing8, ctx),
        swing16=evaluate(row.swing16, ctx),
        jitter=row.jitter,
    )
    ctx.song = song
    _let(ctx, row.late_flags)
    song.progression(
        evaluate(row.progression, ctx), bars_per_chord=evaluate(row.bars_per_chord, ctx)
    )
    if row.kit is not None:
        song.kit = Kit(rng, sr, style=evaluate(row.kit, ctx))
    _run(ctx, row.parts)
    song.reverb = evaluate(row.reverb, ctx)
    return song


def _let(ctx: Context, values: dict) -> None:
    # One at a time, so that a value may refer to the ones before it.
    for name, value in values.items():
        ctx.env[name] = evaluate(value, ctx)


def _run(ctx: Context, steps: tuple) -> None:
    for step in steps:
        if isinstance(step, When):
            branch = step.then if evaluate(step.cond, ctx) else step.otherwise
            _run(ctx, branch if isinstance(branch, tuple) else (branch,))
        elif isinstance(step, Let):
            _let(ctx, step.values)
        else:
            step.play(ctx.song, **step.draw_args(ctx))


def master(song: Song, rng: np.random.Generator) -> np.ndarray:
    """Mix the stems, add reverb, "record" (band limits, tilt, hiss) and set the gain.

    Everything after the mix is linear, so it happens in one FFT pass over the song.
    """
    sr = song.sr
    mix = np.zeros(song.total)
    send = np.zeros(song.total)
    for name, stem in song.stems.items():
        gain = level(rng, 0.0, 2.5)
        mix += gain * stem
        send += gain * song.reverb.get(name, 0.1) * stem
    rt = song.reverb.get("rt", 1.0)
    t = np.arange(int(rt * sr)) / sr
    tail = band(rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt), sr, hi=rng.uniform(3000, 8000))
    tail *= rng.uniform(0.5, 1.2) / np.sqrt(np.sum(tail**2))  # unit energy keeps the send's level
    size = fast_len(song.total + len(tail))
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
    mix_rms = np.sqrt(2.0 * np.sum(np.abs(spectrum) ** 2) / size / song.total)  # Parseval
    hiss = (rng.standard_normal(len(f)) + 1j * rng.standard_normal(len(f))) * np.sqrt(size / 2.0)
    if chance(rng, 0.5):  # pink-ish (-3 dB/octave) instead of white
        hiss *= np.exp(-0.5 * log_f)
    spectrum += hiss * mix_rms * 10.0 ** (-rng.uniform(22, 45) / 20.0)
    clip = np.fft.irfft(spectrum, size)[song.lead : song.lead + song.n]

    clip *= 10.0 ** (rng.uniform(-20, -13) / 20.0) / max(float(np.sqrt(np.mean(clip**2))), 1e-12)
    peak = float(np.max(np.abs(clip)))
    if peak > 0.98:  # a limiter, not clipping
        clip *= 0.98 / peak
    return clip.astype(np.float32)


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
    if genre not in GENRE_ROWS:
        raise ConfigError(f"unknown demo genre {genre!r}; allowed: {', '.join(GENRES)}")
    if index < 0:
        raise ConfigError(f"demo clip index must be >= 0, got {index}")
    check_positive(seconds=seconds, sample_rate=sample_rate)
    n = int(round(seconds * sample_rate))
    rng = clip_rng(genre=genre, index=index, seed=seed)
    song = arrange(GENRE_ROWS[genre], rng, sr=sample_rate, n=n)
    return master(song, rng)


def multilabel_clip_labels(*, genre: str, index: int, seed: int) -> tuple[str, ...]:
    """The labels of multi-label demo clip ``(genre, index)``: ``(genre,)`` or ``(genre, other)``.

    Drawn from ``(seed, genre, index)`` only; the second genre is uniform over the others.
    """
    if genre not in GENRE_ROWS:
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
    if not 0 <= index < PARTNER_INDEX_BASE // len(GENRES):
        raise ConfigError(
            f"multi-label demo clip index must be in [0, {PARTNER_INDEX_BASE // len(GENRES)}), "
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
        index=PARTNER_INDEX_BASE + index * len(GENRES) + GENRES.index(genre),
        seed=seed,
        seconds=seconds,
        sample_rate=sample_rate,
    )
    a, b = primary.astype(np.float64), partner.astype(np.float64)
    loudness = rms(a)
    mix = a + b * (loudness / max(rms(b), 1e-12))
    mix *= loudness / max(rms(mix), 1e-12)
    peak = float(np.max(np.abs(mix)))
    if peak > 0.98:  # a limiter, not clipping
        mix *= 0.98 / peak
    return mix.astype(np.float32), labels


def check_positive(*, seconds: float, sample_rate: int) -> None:
    """Refuse a clip length or sample rate that cannot make a clip."""
    if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"demo clip length must be a number of seconds > 0, got {seconds!r}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1000:
        raise ConfigError(f"sample_rate must be an integer >= 1000 Hz, got {sample_rate!r}")
    if round(seconds * sample_rate) < 1:
        raise ConfigError(f"demo clips of {seconds} s at {sample_rate} Hz would hold no samples")
