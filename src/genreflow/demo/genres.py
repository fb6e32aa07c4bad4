"""The ten demo genres as parameter rows, plus the scales, chords and patterns they share.

Each row is read top to bottom by :func:`genreflow.demo.arranger.arrange`; the order of its
draws is the order of the clip's random numbers, so reordering a row changes the audio (and
needs a new ``GENERATOR_VERSION``). What each genre sounds like, and what it borrows from its
neighbours: ``docs/demo-dataset.md``.
"""

from __future__ import annotations

from genreflow.demo.spec import (
    Borrow,
    BpmBelow,
    Chance,
    Either,
    Genre,
    Head,
    I,
    If,
    Let,
    Level,
    Maybe,
    OnHits,
    Pick,
    Ref,
    U,
    When,
    arpeggio,
    bassline,
    comp,
    drive,
    drums,
    either,
    maybe,
    melody,
    swell,
    vinyl,
    voice,
    walking_bass,
)

# Scales as semitones above the key.
MAJOR = (0, 2, 4, 5, 7, 9, 11)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
PENTA_MAJOR = (0, 2, 4, 7, 9)
PENTA_MINOR = (0, 3, 5, 7, 10)
BLUES_SCALE = (0, 3, 5, 6, 7, 10)

# Chord qualities as semitones above the chord root.
MAJ = (0, 4, 7)
MIN = (0, 3, 7)
DIM = (0, 3, 6)
DOM7 = (0, 4, 7, 10)
MIN7 = (0, 3, 7, 10)
MAJ7 = (0, 4, 7, 11)
MIN9 = (0, 3, 7, 10, 14)
DOM9 = (0, 4, 10, 14)
MAJ9 = (0, 4, 7, 11, 14)
ADD9 = (0, 4, 7, 14)
POWER = (0, 7, 12)

TWELVE_BAR = tuple((root, DOM7) for root in (0, 0, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7))

# Drum patterns (16 steps a bar) that several genres use.
EIGHTHS = "x.x.x.x.x.x.x.x."
SIXTEENTHS = "xxxxxxxxxxxxxxxx"
GHOSTED = "xoxoxoxoxoxoxoxo"  # 16ths, every other one a ghost note
FOUR = "x...x...x...x..."
BACKBEAT = "....x.......x..."
ACCENTS = "....X.......X..."  # an accented backbeat
OFFBEATS = "..x...x...x...x."
CRASH_ONE = "x..............."
THREE = "........x......."


def _every(step: int, length: float) -> list[tuple[float, float]]:
    """A comp rhythm: a chord every ``step`` 16ths, ``length`` steps long."""
    return [(float(s), length) for s in range(0, 16, step)]


def _on_eighths(intervals: tuple[int, ...], length: float) -> list[tuple[float, int, float]]:
    """A bassline: one note an 8th, ``intervals`` above the chord root."""
    return [(float(s), iv, length) for s, iv in zip(range(0, 16, 2), intervals, strict=True)]


ROOTS = (0,) * 8

# The rows are laid out by hand, a part to a line or a few, so that a genre reads at a glance
# and genres compare line by line; the formatter would give every argument a line of its own.
# fmt: off
BLUES = Genre(
    flags={"straight": Chance(0.2)},  # a straight blues-rock feel, borrowed from rock
    tempo=U(70, 100), key=I(40, 52), swing8=If("straight", 0.0, U(0.7, 1.0)),
    progression=TWELVE_BAR, kit="acoustic",
    parts=(
        Let(hats=Either(0.6, EIGHTHS, "x...x.x.x...x.x."), cymbal=Either(0.4, "ride", "hat")),
        either(0.2,  # brushes, borrowed from jazz
               drums(patterns=(("brush", FOUR), ("kick", "x.......x.......")), gain=Level(-4)),
               drums(patterns=(("kick", Either(0.5, "x.......x.x.....", "x.....x.x.......")),
                               ("snare", BACKBEAT), (Ref("cymbal"), Ref("hats"))),
                     gain=Level())),
        Let(bass=voice("bass", bright=U(3, 8), decay=U(0.2, 0.5))),
        either(0.7,  # a boogie line, else a walking one
               bassline(voice=Ref("bass"), pattern=_on_eighths((0, 4, 7, 9, 10, 9, 7, 4), 1.8),
                        low=33, gain=Level(-2)),
               walking_bass(voice=Ref("bass"), low=33, gain=Level(-2))),
        either(0.5,  # organ or piano stabs, else a guitar riff
               comp(voice=Either(0.5, voice("organ"), voice("keys", bright=U(4, 10), decay=0.6)),
                    stem="chords", rhythm=[(4, 2), (12, 2)], low=55, gain=Level(-6), skip=0.2),
               bassline(voice=voice("pluck", bright=U(6, 14), decay=U(0.3, 0.8)), stem="chords",
                        pattern=_on_eighths((0, 7, 0, 9, 0, 10, 0, 9), 1.8), low=45,
                        gain=Level(-5))),
        maybe(0.75, melody(
            voice=Either(0.3, voice("reed", bright=U(4, 10), vibrato=U(10, 30)),  # harmonica
                         voice("pluck", bright=U(8, 20), decay=U(0.4, 1.2))),
            scale=BLUES_SCALE, low=60, high=79, durations=(2.0, 2.0, 4.0, 1.0, 6.0),
            rest=0.35, bend=0.35, gain=Level(-6))),
    ),
    reverb={"chords": 0.3, "lead": 0.35, "drums": 0.15, "rt": U(0.6, 1.4)},
)

CLASSICAL = Genre(
    flags={"minor": Chance(0.4)},
    tempo=U(60, 110), key=I(38, 50), jitter=0.015,
    progression=If("minor",
                   [(0, MIN), (5, MIN), (7, MAJ), (0, MIN), (8, MAJ), (2, DIM), (7, DOM7)],
                   [(0, MAJ), (5, MAJ), (7, MAJ), (0, MAJ), (9, MIN), (2, MIN), (7, DOM7)]),
    parts=(
        either(0.15,
               (  # a piano piece, close to jazz ballads and pop
                   Let(piano=voice("keys", bright=U(4, 10), decay=U(0.6, 1.5))),
                   arpeggio(voice=Ref("piano"), low=48, every=Pick(1.0, 2.0), gain=Level(-4)),
                   melody(voice=Ref("piano"), scale=If("minor", HARMONIC_MINOR, MAJOR),
                          low=67, high=84, durations=(2.0, 4.0, 4.0, 8.0), rest=0.1,
                          gain=Level(-2)),
               ),
               (  # strings, cellos, maybe pizzicato or harp, maybe a solo
                   comp(voice=voice("bowed", bright=U(4, 12), attack=U(0.08, 0.4)),
                        stem="chords", rhythm=[(0, 16)], low=I(50, 57), gain=Level(-2)),
                   bassline(voice=voice("bowed", bright=U(3, 8), attack=U(0.08, 0.3)),
                            pattern=[(0, 0, 8), (8, Either(0.5, 0, 7), 8)], low=36,
                            gain=Level(-4)),
                   maybe(0.5, arpeggio(voice=voice("pluck", bright=U(3, 8), decay=U(0.15, 0.4)),
                                       low=55, every=Pick(2.0, 4.0), gain=Level(-8))),
                   maybe(0.8, melody(
                       voice=Either(0.4, voice("flute"),
                                    Either(0.5, voice("reed", bright=U(3, 9), vibrato=U(5, 20)),
                                           voice("bowed", bright=U(6, 14), attack=0.06))),
                       scale=If("minor", HARMONIC_MINOR, MAJOR), low=67, high=88,
                       durations=(2.0, 4.0, 4.0, 8.0, 12.0), rest=0.15, legato=1.0,
                       gain=Level(-3))),
               )),
        # Orchestral dynamics: a slow swell or fade over the whole clip.
        swell(depth=U(-0.6, 0.6), rate=U(0.5, 1.5), phase=U(0, 1)),
    ),
    reverb={"chords": 0.6, "bass": 0.4, "lead": 0.5, "rt": U(1.6, 3.0)},
)

COUNTRY = Genre(
    flags={"shuffle": Chance(0.15)},  # a swung, bluesy feel
    tempo=U(90, 125), key=I(40, 52), swing8=If("shuffle", U(0.5, 0.9), 0.0),
    progression=Either(0.5, [(0, MAJ), (0, MAJ), (5, MAJ), (7, MAJ)],
                       [(0, MAJ), (5, MAJ), (0, MAJ), (7, MAJ)]),
    kit="acoustic",
    parts=(
        either(0.2,  # a rock beat
               drums(patterns=(("kick", "x.....x.x......."), ("snare", BACKBEAT), ("hat", EIGHTHS)),
                     gain=Level()),
               # the train beat: a backbeat on rim, snare or brushes
               drums(patterns=(("kick", "x.......x......."),
                               Either(0.4, ("rim", BACKBEAT),
                                      Either(0.3, ("brush", "oxoxoxoxoxoxoxox"),
                                             ("snare", BACKBEAT))),
                               ("hat", EIGHTHS)),
                     gain=Level(-2), drop=0.05)),
        bassline(voice=voice("bass", bright=U(3, 7), decay=U(0.2, 0.4)),
                 pattern=[(0, 0, 3.5), (8, 7, 3.5)], low=33, gain=Level(-1)),
        comp(voice=voice("pluck", bright=U(10, 25), decay=U(0.3, 0.8), twang=U(0.0, 1.5)),
             stem="chords", rhythm=Either(0.6, _every(2, 1.6), [(4, 2), (6, 1), (12, 2), (14, 1)]),
             low=52, gain=Level(-4), strum=U(0.008, 0.025)),
        maybe(0.8, melody(
            voice=Either(0.4,
                         voice("bowed", bright=U(8, 16), attack=0.03,  # a fiddle
                               then={"detune_cents": 0.0}),
                         # a twangy lead guitar with slides
                         voice("pluck", bright=U(15, 30), decay=U(0.3, 0.7), twang=U(0.5, 2.0))),
            scale=PENTA_MAJOR, low=62, high=81, durations=(1.0, 2.0, 2.0, 4.0), rest=0.25,
            slide=0.3, bend=If("shuffle", 0.1, 0.0), gain=Level(-5))),
    ),
    reverb={"chords": 0.2, "lead": 0.25, "drums": 0.1, "rt": U(0.5, 1.2)},
)

DISCO = Genre(
    tempo=U(110, 130), key=I(38, 50), jitter=0.003,
    progression=Either(0.5, [(0, MIN7), (5, MIN7)], [(0, MIN7), (5, DOM7)]),
    bars_per_chord=Pick(1, 2), kit="disco",
    parts=(
        Let(back=Either(0.6, "clap", "snare")),
        drums(patterns=Either(0.2,  # a pop beat instead of four on the floor
                              (("kick", "x.......x.x....."), (Ref("back"), BACKBEAT),
                               ("hat", EIGHTHS)),
                              (("kick", FOUR), (Ref("back"), BACKBEAT), ("open_hat", OFFBEATS),
                               Maybe(0.7, ("hat", GHOSTED)))),
              gain=Level(1)),
        bassline(voice=voice("bass", bright=U(4, 10), decay=U(0.1, 0.25), sustain=0.2),
                 pattern=_on_eighths((0, 12) * 4, 1.5), low=31, gain=Level()),  # octaves
        either(0.75,  # strings, else a synth pad as in pop
               comp(voice=voice("bowed", bright=U(6, 14), attack=U(0.03, 0.15)), stem="chords",
                    rhythm=Either(0.5, [(0, 14)], [(2, 1.5), (6, 1.5), (10, 1.5), (14, 1.5)]),
                    low=60, gain=Level(-5)),
               comp(voice=voice("synth", bright=U(3, 8), square=Chance(0.3), sustain=0.7),
                    stem="chords", rhythm=[(0, 15)], low=57, gain=Level(-6))),
        maybe(0.6,  # muted funk guitar on 16ths
              comp(voice=voice("pluck", bright=U(10, 20), decay=U(0.04, 0.09)), stem="guitar",
                   rhythm=[(float(s), 0.5) for s in range(16) if s % 4 != 0], low=64,
                   gain=Level(-9), skip=0.3)),
        maybe(0.4, melody(
            voice=Either(0.5, voice("flute"),
                         voice("synth", bright=U(4, 10), square=True, sustain=0.8)),
            scale=DORIAN, low=67, high=84, durations=(1.0, 2.0, 2.0, 4.0), rest=0.35,
            gain=Level(-8))),
    ),
    reverb={"chords": 0.35, "lead": 0.3, "drums": 0.1, "rt": U(0.8, 1.6)},
)

HIPHOP = Genre(
    tempo=U(80, 100), key=I(36, 47), swing16=U(0.2, 0.7), jitter=0.004,
    late_flags={"jazzy": Chance(0.3)},  # jazz-hop: 7th/9th chords, maybe a walking upright
    progression=If("jazzy", [(0, MIN9), (8, MAJ7)], [(0, MIN7), (0, MIN7), (8, MAJ), (7, MIN)]),
    bars_per_chord=Pick(1, 2), kit=Either(0.7, "808", "acoustic"),
    parts=(
        Let(kick=Pick("x......x..x.....", "x.........x..x..", "x..x......x....."),
            snare=Either(0.3, "clap", "snare")),
        drums(patterns=(("kick", Ref("kick")), (Ref("snare"), ACCENTS),
                        ("hat", Either(0.5, EIGHTHS, SIXTEENTHS))),
              gain=Level(2), drop=0.05),
        When(If("jazzy", Chance(0.5), False),
             walking_bass(voice=voice("bass", bright=U(2, 5), decay=0.5), low=31, gain=Level(-2)),
             # an 808 sub-bass on the kick
             bassline(voice=voice("bass", bright=U(1, 2.5), decay=U(0.3, 0.7), sustain=0.3),
                      pattern=OnHits("kick", length=3.0), low=28, gain=Level(1))),
        # The "sample": a looped, low-passed chord loop from an old record; sometimes an
        # off-beat skank borrowed from reggae.
        comp(voice=Either(0.6, voice("keys", bright=U(3, 7), decay=U(0.5, 1.5)),
                          voice("bowed", bright=U(3, 6), attack=0.1)),
             stem="sample",
             rhythm=Borrow(Either(0.5, [(0, 6), (6, 2), (10, 6)], [(0, 14)]),
                           0.15, [(4, 1), (12, 1)]),
             low=55, gain=Level(4), skip=0.1),
        drive(stem="sample", lo=U(150, 400), hi=U(1500, 4000)),  # no drive: the band alone
        maybe(0.3, melody(voice=voice("flute"), scale=PENTA_MINOR, low=60, high=76,
                          durations=(2.0, 4.0), rest=0.6, gain=Level(-10))),
        vinyl(per_second=U(5, 40), db=-4, spread=4),
    ),
    reverb={"sample": 0.25, "drums": 0.05, "rt": U(0.5, 1.2)},
)

JAZZ = Genre(
    flags={"bossa": Chance(0.15)},  # straight eighths, as in bossa nova
    tempo=U(90, 170), key=I(38, 50), swing8=If("bossa", 0.0, U(0.55, 1.0)), jitter=0.01,
    progression=Either(0.5, [(2, MIN9), (7, DOM9), (0, MAJ9), (9, DOM7)],
                       [(2, MIN7), (7, DOM7), (0, MAJ7), (0, MAJ7)]),
    kit="jazz",
    parts=(
        When(Chance(0.1), (),  # a drummerless trio: close to classical and blues ballads
             When(Ref("bossa"),
                  drums(patterns=(("rim", "x..x..x...x..x.."), ("kick", "x..xx..xx..xx..x"),
                                  ("shaker", GHOSTED)), gain=Level(-5)),
                  either(0.45,
                         drums(patterns=(("brush", FOUR), ("hat", BACKBEAT),
                                         ("kick", "o...o...o...o...")), gain=Level(-3)),
                         drums(patterns=(("ride", "x...x.x.x...x.x."), ("hat", BACKBEAT),
                                         ("kick", "o.......o.......")),
                               gain=Level(-3), drop=0.05)))),
        walking_bass(voice=voice("bass", bright=U(2, 5), decay=U(0.3, 0.7), sustain=0.1),
                     low=31, gain=Level()),  # an upright
        comp(voice=voice("keys", bright=U(3, 9), decay=U(0.4, 1.2)), stem="chords",
             rhythm=Either(0.5, [(0.0, 3.0), (6.0, 2.0)], [(2.0, 2.0), (10.0, 3.0), (14.0, 2.0)]),
             low=53, gain=Level(-4), skip=0.3),
        maybe(0.7, melody(
            voice=voice("reed", bright=U(4, 12), vibrato=U(5, 20)),  # sax or trumpet
            scale=Either(0.5, DORIAN, MIXOLYDIAN), low=58, high=80,
            durations=(2.0, 2.0, 2.0, 4.0, 1.0, 6.0), rest=0.25, legato=0.85, gain=Level(-4))),
    ),
    reverb={"chords": 0.3, "lead": 0.35, "drums": 0.2, "bass": 0.1, "rt": U(0.8, 1.8)},
)

METAL = Genre(
    flags={"halftime": Chance(0.2)},  # a slower, rock-like groove
    tempo=If("halftime", U(110, 140), U(140, 200)), key=I(38, 45), jitter=0.003,
    progression=Head([(0, POWER), (1, POWER), (0, POWER), (8, POWER), (10, POWER)], I(2, 6)),
    kit="metal",
    parts=(
        drums(patterns=If("halftime",
                          (("kick", "x.x...x.x.x....."), ("snare", "........X......."),
                           ("crash", CRASH_ONE), ("hat", EIGHTHS)),
                          Either(0.3,  # a blast beat
                                 (("kick", EIGHTHS), ("snare", ".x.x.x.x.x.x.x.x"),
                                  ("crash", FOUR)),
                                 (("kick", BpmBelow(170, SIXTEENTHS, EIGHTHS)),
                                  ("snare", ACCENTS), ("crash", CRASH_ONE), ("ride", EIGHTHS)))),
              gain=Level(1)),
        comp(voice=voice("synth", bright=U(8, 20), square=False, sustain=0.0,
                         then={"decay": U(0.08, 0.2)}),  # palm-muted chugs
             stem="guitar", rhythm=BpmBelow(170, _every(1, 0.9), _every(2, 0.9)), low=28,
             gain=Level(), skip=0.1),
        maybe(0.5,  # ringing chords
              comp(voice=voice("synth", bright=U(8, 20), square=False, sustain=0.6),
                   stem="guitar", rhythm=[(0, 8), (8, 8)], low=40, gain=Level(-3))),
        drive(stem="guitar", drive=U(6, 25), lo=80, hi=U(2500, 5000), order=3),
        bassline(voice=voice("bass", bright=U(4, 10), decay=0.2, sustain=0.5),
                 pattern=_on_eighths(ROOTS, 1.8), low=28, gain=Level(-3)),
        maybe(0.3,
              melody(voice=voice("synth", bright=U(6, 12), square=False, sustain=0.7),
                     scale=HARMONIC_MINOR, low=64, high=88, durations=(1.0, 1.0, 2.0), rest=0.3,
                     bend=0.1, gain=Level(-6)),
              drive(stem="lead", drive=U(3, 10), gain=0.3)),
    ),
    reverb={"guitar": 0.1, "drums": 0.1, "lead": 0.3, "rt": U(0.5, 1.5)},
)

POP = Genre(
    tempo=U(100, 130), key=I(40, 52), jitter=0.003,
    progression=Either(0.3, [(0, ADD9), (7, MAJ), (9, MIN), (5, ADD9)],
                       [(0, MAJ), (7, MAJ), (9, MIN), (5, MAJ)]),
    kit=Either(0.5, "disco", "acoustic"),
    parts=(
        drums(patterns=(("kick", Either(0.2, FOUR, Pick("x.......x.x.....", "x.....x...x....."))),
                        ("clap", BACKBEAT), ("hat", EIGHTHS), Maybe(0.5, ("snare", BACKBEAT)),
                        Maybe(0.4, ("shaker", GHOSTED))),
              gain=Level()),
        bassline(voice=voice("synth", bright=U(2, 6), square=Chance(0.5), sustain=0.4),
                 pattern=_on_eighths(ROOTS, 1.6), low=31, gain=Level(-2)),
        maybe(0.15,  # a rock guitar
              comp(voice=voice("synth", bright=U(6, 12), square=False, sustain=0.5),
                   stem="guitar", rhythm=_every(2, 1.8), low=40, gain=Level(-4)),
              drive(stem="guitar", drive=U(2, 5), lo=80, hi=4500)),
        comp(voice=voice("synth", bright=U(3, 10), square=Chance(0.4), sustain=U(0.2, 0.8)),
             stem="chords",
             rhythm=Borrow(Either(0.4, [(0, 15)], _every(2, 1.5)),
                           0.1, [(2, 1), (6, 1), (10, 1), (14, 1)]),  # off-beats, as in reggae
             low=57, gain=Level(-5)),
        maybe(0.8, melody(
            voice=Either(0.6, voice("flute"), voice("keys", bright=U(2, 5), decay=0.5)),
            scale=PENTA_MAJOR, low=64, high=81, durations=(1.0, 2.0, 2.0, 3.0, 4.0), rest=0.3,
            gain=Level(-3))),
    ),
    reverb={"chords": 0.3, "lead": 0.35, "drums": 0.12, "rt": U(0.8, 1.8)},
)

REGGAE = Genre(
    tempo=U(70, 90), key=I(38, 50), swing8=U(0.0, 0.4), jitter=0.006,
    late_flags={"minor": Chance(0.5)},
    progression=If("minor", [(0, MIN), (5, MIN)], [(0, MAJ), (5, MAJ), (0, MAJ), (7, MAJ)]),
    bars_per_chord=Pick(1, 2), kit=Either(0.15, "808", "acoustic"),
    parts=(
        drums(patterns=Either(0.25,
                              # rockers / steppers: a kick on every beat
                              (("kick", FOUR), ("rim", THREE), ("hat", EIGHTHS)),
                              # the one-drop: kick and rim together on beat three only
                              (("kick", THREE), ("rim", THREE),
                               ("hat", Either(0.6, EIGHTHS, OFFBEATS)))),
              gain=Level(-1), drop=0.05),
        bassline(voice=voice("bass", bright=U(1.5, 3.5), decay=U(0.3, 0.6), sustain=0.4),
                 pattern=Either(0.5,
                                [(0.0, 0, 3.0), (6.0, If("minor", 3, 4), 1.0), (8.0, 7, 3.0),
                                 (12.0, 5, 1.0), (14.0, 7, 2.0)],
                                [(2.0, 0, 2.0), (4.0, 0, 1.0), (6.0, 7, 2.0), (10.0, 12, 1.0),
                                 (12.0, 10, 2.0), (14.0, 7, 1.5)]),
                 low=28, gain=Level(2)),
        comp(voice=Either(0.7, voice("pluck", bright=U(8, 20), decay=U(0.05, 0.12)),
                          voice("organ")),  # the skank
             stem="chords",
             rhythm=Either(0.5, [(4.0, 0.8), (12.0, 0.8)],
                           [(2.0, 0.8), (6.0, 0.8), (10.0, 0.8), (14.0, 0.8)]),
             low=60, gain=Level(-3)),
        maybe(0.5,  # the organ "bubble"
              comp(voice=voice("organ"), stem="organ",
                   rhythm=[(2.0, 0.7), (3.0, 0.7), (10.0, 0.7), (11.0, 0.7)], low=52,
                   gain=Level(-9))),
        maybe(0.4, melody(
            voice=voice("reed", bright=U(3, 8), vibrato=U(5, 15)),  # melodica / horns
            scale=If("minor", PENTA_MINOR, PENTA_MAJOR), low=62, high=79,
            durations=(2.0, 4.0, 4.0), rest=0.4, gain=Level(-7))),
    ),
    reverb={"chords": 0.4, "drums": 0.25, "lead": 0.3, "rt": U(0.8, 2.0)},
)

ROCK = Genre(
    flags={"shuffle": Chance(0.15)},  # a blues-rock shuffle
    tempo=U(100, 140), key=I(40, 50), swing8=If("shuffle", U(0.6, 0.9), 0.0), jitter=0.005,
    progression=Either(0.5, [(0, POWER), (10, POWER), (5, POWER), (0, POWER)],
                       [(9, POWER), (5, POWER), (0, POWER), (7, POWER)]),
    kit="acoustic",
    parts=(
        Let(kick=Pick("x.....x.x.......", "x.......x.x.....", "x.x.....x......."),
            cymbal=Either(0.25, "ride", "hat")),
        drums(patterns=(("kick", Ref("kick")), ("snare", ACCENTS), (Ref("cymbal"), EIGHTHS),
                        ("crash", "x" + "." * 63),
                        Maybe(0.1, ("open_hat", OFFBEATS))),  # disco hats
              gain=Level()),
        # A clean, strummed guitar (as in country and pop) sometimes replaces the distorted
        # one, which is drawn all the same: that draw is part of every rock clip's sequence.
        Let(clean=Chance(0.15),
            distorted=voice("synth", bright=U(6, 15), square=False, sustain=U(0.3, 0.7))),
        comp(voice=If("clean", voice("pluck", bright=U(8, 18), decay=U(0.4, 0.9)),
                      Ref("distorted")),
             stem="guitar", rhythm=_every(2, 1.8), low=40, gain=Level(),
             strum=If("clean", 0.01, 0.0)),
        When(Ref("clean"), (), drive(stem="guitar", drive=U(2, 8), lo=80, hi=U(3000, 6000))),
        bassline(voice=voice("bass", bright=U(3, 8), decay=0.25, sustain=0.5),
                 pattern=_on_eighths(ROOTS, 1.8), low=28, gain=Level(-2)),
        maybe(0.4,
              melody(voice=voice("pluck", bright=U(8, 20), decay=U(0.5, 1.2)),
                     scale=PENTA_MINOR, low=62, high=84, durations=(1.0, 2.0, 2.0, 4.0),
                     rest=0.3, bend=0.3, gain=Level(-6)),
              drive(stem="lead", drive=U(2, 6), gain=0.4)),
    ),
    reverb={"guitar": 0.15, "drums": 0.15, "lead": 0.3, "rt": U(0.6, 1.6)},
)
# fmt: on

#: Every genre's row, by name.
GENRE_ROWS: dict[str, Genre] = {
    "blues": BLUES,
    "classical": CLASSICAL,
    "country": COUNTRY,
    "disco": DISCO,
    "hiphop": HIPHOP,
    "jazz": JAZZ,
    "metal": METAL,
    "pop": POP,
    "reggae": REGGAE,
    "rock": ROCK,
}
