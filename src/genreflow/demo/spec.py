"""The vocabulary of a genre row: random draws, instruments, parts and the row itself.

A :class:`Genre` row is data. Its values are constants or *draws* (:class:`U`, :class:`I`,
:class:`Pick`, :class:`Chance`, :class:`Either`, ...), evaluated by :func:`evaluate` in the
order they are written; a :class:`Part`'s arguments are drawn in the order its function
declares them. The arranger walks a row top to bottom, so a row consumes the clip's random
generator in exactly the order it reads, and that order is what fixes a clip's audio for a
seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from inspect import signature
from typing import Any

import numpy as np

from genreflow.demo import parts
from genreflow.demo.dsp import level
from genreflow.demo.parts import Song
from genreflow.demo.voices import INSTRUMENTS

#: A constant, a :class:`Draw`, or a list/tuple/dict holding draws.
Value = Any


@dataclass
class Context:
    """What draws see while a row is arranged: the generator, named values, the song."""

    rng: np.random.Generator
    env: dict[str, Any] = field(default_factory=dict)
    song: Song | None = None


def evaluate(value: Value, ctx: Context) -> Any:
    """``value`` with every draw in it made, in written order (dict keys before their values)."""
    if isinstance(value, Draw):
        return value.draw(ctx)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            key = evaluate(key, ctx)
            out[key] = evaluate(item, ctx)
        return out
    if isinstance(value, list):
        return [evaluate(item, ctx) for item in value]
    if isinstance(value, tuple):
        return tuple(evaluate(item, ctx) for item in value)
    return value


# --------------------------------------------------------------------------- draws


class Draw:
    """A value made when the row is arranged; ``draw`` may consume the clip's generator."""

    def draw(self, ctx: Context) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class U(Draw):
    """A uniform float in ``[lo, hi)``."""

    lo: float
    hi: float

    def draw(self, ctx: Context) -> float:
        return ctx.rng.uniform(self.lo, self.hi)


@dataclass(frozen=True)
class I(Draw):  # noqa: E742 - short on purpose: rows read like U(70, 100), I(40, 52)
    """A uniform integer in ``[lo, hi)``."""

    lo: int
    hi: int

    def draw(self, ctx: Context) -> int:
        return int(ctx.rng.integers(self.lo, self.hi))


@dataclass(frozen=True, init=False)
class Pick(Draw):
    """One of ``options``, uniformly (``rng.choice``), as a plain Python value."""

    options: tuple

    def __init__(self, *options: Any) -> None:
        object.__setattr__(self, "options", options)

    def draw(self, ctx: Context) -> Any:
        return ctx.rng.choice(list(self.options)).item()


@dataclass(frozen=True)
class Chance(Draw):
    """True with probability ``p``."""

    p: float

    def draw(self, ctx: Context) -> bool:
        return bool(ctx.rng.random() < self.p)


@dataclass(frozen=True)
class Either(Draw):
    """``yes`` with probability ``p``, else ``no``; only the chosen one is drawn."""

    p: float
    yes: Value
    no: Value

    def draw(self, ctx: Context) -> Any:
        return evaluate(self.yes if ctx.rng.random() < self.p else self.no, ctx)


def Maybe(p: float, value: Value) -> Either:  # noqa: N802 - reads as a draw, like Either
    """``value`` with probability ``p``, else ``None`` (an optional drum pattern, say)."""
    return Either(p, value, None)


@dataclass(frozen=True)
class Borrow(Draw):
    """``base``, then with probability ``p`` ``other`` instead: an element borrowed late."""

    base: Value
    p: float
    other: Value

    def draw(self, ctx: Context) -> Any:
        value = evaluate(self.base, ctx)
        return evaluate(self.other, ctx) if ctx.rng.random() < self.p else value


@dataclass(frozen=True)
class Ref(Draw):
    """The value named ``name`` by a flag or a :class:`Let` earlier in the row."""

    name: str

    def draw(self, ctx: Context) -> Any:
        return ctx.env[self.name]


@dataclass(frozen=True)
class If(Draw):
    """``yes`` if the named flag is true, else ``no``; only the chosen one is drawn."""

    name: str
    yes: Value
    no: Value

    def draw(self, ctx: Context) -> Any:
        return evaluate(self.yes if ctx.env[self.name] else self.no, ctx)


@dataclass(frozen=True)
class BpmBelow(Draw):
    """``yes`` if the song's tempo is below ``bpm``, else ``no``."""

    bpm: float
    yes: Value
    no: Value

    def draw(self, ctx: Context) -> Any:
        return evaluate(self.yes if ctx.song.bpm < self.bpm else self.no, ctx)


@dataclass(frozen=True)
class Level(Draw):
    """A mix level: ``db`` plus a normal spread of ``spread`` dB, as a linear gain."""

    db: float = 0.0
    spread: float = 3.0

    def draw(self, ctx: Context) -> float:
        return level(ctx.rng, self.db, self.spread)


@dataclass(frozen=True)
class Head(Draw):
    """The first ``n`` of ``items``."""

    items: Value
    n: Value

    def draw(self, ctx: Context) -> Any:
        return evaluate(self.items, ctx)[: evaluate(self.n, ctx)]


@dataclass(frozen=True)
class OnHits(Draw):
    """Bassline notes (root, ``length`` steps) on the hits of the named drum pattern."""

    name: str
    length: float

    def draw(self, ctx: Context) -> list[tuple[float, int, float]]:
        return [(float(i), 0, self.length) for i, c in enumerate(ctx.env[self.name]) if c == "x"]


@dataclass(frozen=True)
class VoiceSpec(Draw):
    """An instrument: ``INSTRUMENTS[kind](rng, **params)``, then attributes set from ``then``."""

    kind: str
    params: dict
    then: dict

    def draw(self, ctx: Context) -> Any:
        voice = INSTRUMENTS[self.kind](ctx.rng, **evaluate(self.params, ctx))
        for name, value in self.then.items():
            setattr(voice, name, evaluate(value, ctx))
        return voice


def voice(kind: str, *, then: dict | None = None, **params: Value) -> VoiceSpec:
    """A :class:`VoiceSpec`; ``then`` tweaks the made instrument (drawn after it)."""
    return VoiceSpec(kind, params, then or {})


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True, init=False)
class Let:
    """Draw named values now, for later :class:`Ref`/:class:`If`/:class:`OnHits`."""

    values: dict

    def __init__(self, **values: Value) -> None:
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class When:
    """Run ``then`` if ``cond`` draws true, else ``otherwise`` (steps or one step each)."""

    cond: Value
    then: Any = ()
    otherwise: Any = ()


def maybe(p: float, *steps: Any) -> When:
    """``steps`` with probability ``p``."""
    return When(Chance(p), steps)


def either(p: float, yes: Any, no: Any) -> When:
    """Step(s) ``yes`` with probability ``p``, else ``no``."""
    return When(Chance(p), yes, no)


@dataclass(frozen=True)
class Part:
    """A call ``play(song, **args)`` of a part function in :mod:`genreflow.demo.parts`.

    ``args`` are drawn in the order of ``play``'s keyword parameters, whatever order the
    row writes them in: that order is part of every clip's random sequence.
    """

    play: Callable[..., None]
    args: dict

    def __post_init__(self) -> None:
        signature(self.play).bind(None, **self.args)  # a misspelt argument fails at import

    def draw_args(self, ctx: Context) -> dict[str, Any]:
        """``args`` with their draws made, in the order of ``play``'s parameters."""
        return {
            name: evaluate(self.args[name], ctx)
            for name in signature(self.play).parameters
            if name in self.args
        }


def _part(play: Callable[..., None]) -> Callable[..., Part]:
    def make(**args: Value) -> Part:
        return Part(play, args)

    make.__doc__ = f"A :class:`Part` that plays :func:`genreflow.demo.parts.{play.__name__}`."
    return make


drums = _part(parts.drums)
comp = _part(parts.comp)
bassline = _part(parts.bassline)
walking_bass = _part(parts.walking_bass)
melody = _part(parts.melody)
arpeggio = _part(parts.arpeggio)
drive = _part(parts.drive)
swell = _part(parts.swell)
vinyl = _part(parts.vinyl)


# --------------------------------------------------------------------------- the row


@dataclass(frozen=True, kw_only=True)
class Genre:
    """One genre's arrangement, read top to bottom by :func:`arranger.arrange`.

    ``flags`` are drawn before the song (they may set its tempo or swing), ``late_flags``
    after the song's timing and before its harmony: the split only keeps each genre's
    draws in their historical order. ``parts`` are steps: :class:`Let`, :class:`When` and
    :class:`Part`. ``reverb`` is each stem's reverb send plus ``rt``, the reverb time in
    seconds; ``kit`` the drum kit's style (``None``: no drums).
    """

    tempo: Value
    key: Value
    progression: Value
    parts: tuple
    reverb: dict
    flags: dict = field(default_factory=dict)
    late_flags: dict = field(default_factory=dict)
    swing8: Value = 0.0
    swing16: Value = 0.0
    jitter: float = 0.006
    bars_per_chord: Value = 1
    kit: Value = None
