"""Synthetic GTZAN-like music: deterministic demo clips for ten genres that overlap.

Every clip is a small arrangement (drums, bass, chords, a lead line) rendered with numpy:
wavetable instruments built from harmonic spectra and envelopes, noise-based drums, a
reverb, a "recording" colour (band limits, tilt, hiss) and a gain. Each genre is a row of
parameters (:mod:`genreflow.demo.genres`) read by one arranger (:mod:`genreflow.demo.arranger`):
its tempo range, groove, harmony, register and instruments. Each clip draws its key, tempo,
timbres, mix, noise and gain at random, and sometimes borrows an element from a
neighbouring genre, so that the classes overlap the way real genres do. The genre
descriptions are in ``docs/demo-dataset.md``.

A clip's randomness comes only from ``(seed, genre, index)``: the same arguments give the
same samples, and clip ``i`` does not depend on how many clips are generated.

:func:`write_multilabel_demo_dataset` writes a multi-label variant: each clip has a primary
genre and, most of the time, a second genre mixed in at equal loudness, with a ``labels.csv``
(``path,label,labels``) for ``genreflow manifest --csv``.

Modules: ``voices`` (instruments), ``kit`` (drums), ``parts`` (the song and its parts),
``spec`` (the vocabulary of a row), ``genres`` (the rows), ``arranger`` (the arranger,
mastering, clip synthesis) and ``datasets`` (the dataset writers).
"""

from genreflow.demo.arranger import (
    GENERATOR,
    GENERATOR_VERSION,
    GENRES,
    MIX_FRACTION,
    MULTILABEL_GENERATOR,
    MULTILABEL_GENERATOR_VERSION,
    clip_rng,
    multilabel_clip_labels,
    synthesize_clip,
    synthesize_multilabel_clip,
)
from genreflow.demo.datasets import (
    clip_path,
    multilabel_clip_path,
    write_demo_dataset,
    write_multilabel_demo_dataset,
)

__all__ = [
    "GENERATOR",
    "GENERATOR_VERSION",
    "GENRES",
    "MIX_FRACTION",
    "MULTILABEL_GENERATOR",
    "MULTILABEL_GENERATOR_VERSION",
    "clip_path",
    "clip_rng",
    "multilabel_clip_labels",
    "multilabel_clip_path",
    "synthesize_clip",
    "synthesize_multilabel_clip",
    "write_demo_dataset",
    "write_multilabel_demo_dataset",
]
