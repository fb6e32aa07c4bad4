"""The synthetic demo dataset: real WAV files in GTZAN layout, deterministic, distinct genres."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.cli import main
from genreflow.core.errors import ConfigError, DatasetError
from genreflow.demo import (
    GENRES,
    MIX_FRACTION,
    synthesize_clip,
    synthesize_multilabel_clip,
    write_demo_dataset,
    write_multilabel_demo_dataset,
)

SR = 22050
SECONDS = 3.0


def _write(out: Path, *, clips_per_genre: int, seed: int, seconds: float = SECONDS) -> list[Path]:
    return write_demo_dataset(
        out=out, clips_per_genre=clips_per_genre, seconds=seconds, seed=seed, show_progress=False
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("demo") / "gtzan"
    return out, _write(out, clips_per_genre=2, seed=0)


def _log_spectrum(path: Path) -> np.ndarray:
    """Mean log power spectrum (dB) of a clip over 2048-sample frames, shape (1025,)."""
    samples, _ = sf.read(path, dtype="float64")
    frames = np.lib.stride_tricks.sliding_window_view(samples, 2048)[::512] * np.hanning(2048)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return 10.0 * np.log10(power.mean(axis=0) + 1e-12)


def test_files_in_gtzan_layout_as_22050_hz_mono_pcm16(dataset):
    out, paths = dataset
    expected = [out / g / f"{g}.{i:05d}.wav" for g in GENRES for i in range(2)]
    assert paths == expected
    assert sorted(out.rglob("*.wav")) == sorted(expected)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name], "temporary files left behind"
    for path in paths:
        info = sf.info(path)
        assert (info.format, info.subtype) == ("WAV", "PCM_16"), path
        assert info.samplerate == SR and info.channels == 1, path
        assert info.frames == round(SECONDS * SR), path
        samples, sr = sf.read(path, dtype="int16")
        assert sr == SR and samples.shape == (round(SECONDS * SR),)


def test_record_and_readme_make_the_dataset_traceable(dataset):
    out, paths = dataset
    record = json.loads((out / "demo.json").read_text())
    assert record["seed"] == 0
    assert record["clips_per_genre"] == 2
    assert record["seconds"] == SECONDS
    assert record["sample_rate"] == SR
    assert record["genres"] == list(GENRES)
    assert record["n_clips"] == len(paths) == 20
    assert isinstance(record["generator_version"], int)
    readme = (out / "README.md").read_text()
    assert "seed: 0" in readme and "--clips-per-genre 2" in readme


def test_clips_are_audible_and_not_clipped(dataset):
    _, paths = dataset
    for path in paths:
        samples, _ = sf.read(path, dtype="float64")
        rms_dbfs = 20 * np.log10(np.sqrt(np.mean(samples**2)))
        assert -35.0 < rms_dbfs < -8.0, (path, rms_dbfs)
        at_full_scale = np.mean(np.abs(samples) >= 32767 / 32768)
        assert at_full_scale == 0.0, (path, at_full_scale)
        # Sound throughout, not one burst: every 0.5 s block has some level.
        blocks = samples[: len(samples) // 11025 * 11025].reshape(-1, 11025)
        assert np.all(np.sqrt(np.mean(blocks**2, axis=1)) > 10 ** (-60 / 20)), path


def test_same_seed_same_bytes_and_clip_i_independent_of_count(dataset, tmp_path):
    out, _ = dataset
    # Fewer clips per genre: clip 0 must still be byte-for-byte the same file.
    fewer = _write(tmp_path / "fewer", clips_per_genre=1, seed=0)
    assert len(fewer) == len(GENRES)
    for path in fewer:
        assert path.read_bytes() == (out / path.parent.name / path.name).read_bytes(), path
    again = synthesize_clip(genre="jazz", index=1, seed=0, seconds=SECONDS)
    assert np.array_equal(again, synthesize_clip(genre="jazz", index=1, seed=0, seconds=SECONDS))


def test_different_seed_gives_different_audio(dataset, tmp_path):
    out, _ = dataset
    for path in _write(tmp_path / "seed1", clips_per_genre=1, seed=1):
        other = out / path.parent.name / path.name
        a, _ = sf.read(path, dtype="int16")
        b, _ = sf.read(other, dtype="int16")
        assert not np.array_equal(a, b), path
        # Not just a shifted or rescaled copy: the waveforms are unrelated.
        assert abs(np.corrcoef(a.astype(float), b.astype(float))[0, 1]) < 0.5, path


def test_clips_within_a_genre_differ(dataset):
    out, _ = dataset
    for genre in GENRES:
        a, _ = sf.read(out / genre / f"{genre}.00000.wav", dtype="int16")
        b, _ = sf.read(out / genre / f"{genre}.00001.wav", dtype="int16")
        assert not np.array_equal(a, b), genre


def test_genres_have_distinct_spectra(dataset):
    out, _ = dataset
    spectra = {
        g: np.mean([_log_spectrum(p) for p in sorted((out / g).glob("*.wav"))], axis=0)
        for g in GENRES
    }
    band = slice(2, 900)  # ~20 Hz to ~9.7 kHz
    for i, a in enumerate(GENRES):
        for b in GENRES[i + 1 :]:
            diff = spectra[a][band] - spectra[b][band]
            # Compare shapes, not loudness: remove the mean level difference first.
            rms_db = np.sqrt(np.mean((diff - diff.mean()) ** 2))
            assert rms_db > 1.5, (a, b, rms_db)


def test_genre_character_shows_in_the_spectrum(dataset):
    out, _ = dataset

    def share(genre: str, lo: float, hi: float) -> float:
        power = np.mean([10 ** (_log_spectrum(p) / 10) for p in (out / genre).glob("*.wav")], 0)
        f = np.fft.rfftfreq(2048, 1 / SR)
        return float(power[(f >= lo) & (f < hi)].sum() / power.sum())

    # Distorted metal guitars are brighter than a string orchestra...
    assert share("metal", 2000, 8000) > share("classical", 2000, 8000)
    # ...and hip-hop's 808 sub-bass goes deeper than classical cellos.
    assert share("hiphop", 20, 60) > share("classical", 20, 60)


def test_synthesize_clip_shape_dtype_and_rate():
    clip = synthesize_clip(genre="reggae", index=0, seed=5, seconds=1.5, sample_rate=16000)
    assert clip.dtype == np.float32 and clip.shape == (24000,)
    assert 0.0 < float(np.max(np.abs(clip))) <= 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"genre": "polka", "index": 0, "seed": 0, "seconds": 1.0},
        {"genre": "rock", "index": -1, "seed": 0, "seconds": 1.0},
        {"genre": "rock", "index": 0, "seed": 0, "seconds": 0.0},
    ],
)
def test_synthesize_clip_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        synthesize_clip(**kwargs)


def test_refuses_to_write_into_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "blues").mkdir()
    precious = tmp_path / "blues" / "blues.00000.wav"
    precious.write_bytes(b"a real recording")
    with pytest.raises(DatasetError, match=str(tmp_path)):
        _write(tmp_path, clips_per_genre=1, seed=0, seconds=0.5)
    assert precious.read_bytes() == b"a real recording"


def test_rerun_with_fewer_clips_removes_the_surplus(tmp_path):
    _write(tmp_path, clips_per_genre=2, seed=0, seconds=0.5)
    paths = _write(tmp_path, clips_per_genre=1, seed=0, seconds=0.5)
    assert sorted(tmp_path.rglob("*.wav")) == sorted(paths)
    assert json.loads((tmp_path / "demo.json").read_text())["clips_per_genre"] == 1


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo-data", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--clips-per-genre", "--seconds", "--seed"):
        assert option in text


def test_cli_writes_the_dataset(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "demo-data",
        "--out",
        str(out),
        "--clips-per-genre",
        "1",
        "--seconds",
        "1",
        "--seed",
        "7",
    ]
    assert main([*argv, "--no-progress"]) == 0
    summary = capsys.readouterr().out.strip()
    assert summary.startswith("demo-data: 10 clips") and "seed 7" in summary
    assert len(summary.splitlines()) == 1
    assert sorted(p.relative_to(out) for p in out.rglob("*.wav")) == [
        Path(g) / f"{g}.00000.wav" for g in GENRES
    ]
    record = json.loads((out / "demo.json").read_text())
    assert (record["seed"], record["clips_per_genre"], record["seconds"]) == (7, 1, 1.0)
    expected = synthesize_clip(genre="pop", index=0, seed=7, seconds=1.0)
    written, _ = sf.read(out / "pop" / "pop.00000.wav", dtype="float32")
    assert np.max(np.abs(written - expected)) <= 0.5 / 32768


def test_cli_takes_defaults_from_the_config(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  demo:\n    clips_per_genre: 1\n    seconds: 0.5\n    seed: 3\n")
    out = tmp_path / "demo"
    assert main(["demo-data", "--out", str(out), "--config", str(config), "--seed", "4"]) == 0
    record = json.loads((out / "demo.json").read_text())
    assert (record["clips_per_genre"], record["seconds"], record["seed"]) == (1, 0.5, 4)


def test_cli_reports_bad_values_and_exits_nonzero(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo-data", "--out", str(out), "--clips-per-genre", "0"]) == 2
    err = capsys.readouterr().err
    assert "clips_per_genre" in err and "0" in err
    assert not out.exists()


# --------------------------------------------------------------------------- multi-label


def test_multilabel_demo_clips(tmp_path):
    labels = [
        synthesize_multilabel_clip(genre=g, index=i, seed=0, seconds=0.5)[1]
        for g in GENRES
        for i in range(6)
    ]
    mixed = [x for x in labels if len(x) == 2]
    assert all(x[0] != x[1] for x in mixed)
    assert 0.4 < len(mixed) / len(labels) < 0.9  # MIX_FRACTION = 2/3 of 60 clips
    assert 0 < MIX_FRACTION < 1

    # A single-genre clip is the single-label demo clip itself.
    genre, index = next((x[0], i % 6) for i, x in enumerate(labels) if len(x) == 1)
    solo, _ = synthesize_multilabel_clip(genre=genre, index=index, seed=0, seconds=0.5)
    np.testing.assert_array_equal(
        solo, synthesize_clip(genre=genre, index=index, seed=0, seconds=0.5)
    )
    # A mixed clip keeps the primary's level and carries both genres' audio.
    (genre, other), index = next((x, i % 6) for i, x in enumerate(labels) if len(x) == 2)
    mix, _ = synthesize_multilabel_clip(genre=genre, index=index, seed=0, seconds=0.5)
    primary = synthesize_clip(genre=genre, index=index, seed=0, seconds=0.5)
    rms = np.sqrt(np.mean(primary.astype(np.float64) ** 2))
    assert np.sqrt(np.mean(mix.astype(np.float64) ** 2)) == pytest.approx(rms, rel=0.02)
    assert 0.3 < np.corrcoef(mix, primary)[0, 1] < 0.95
    assert np.max(np.abs(mix)) <= 0.98 + 1e-6
    with pytest.raises(ConfigError, match="index"):
        synthesize_multilabel_clip(genre="rock", index=100_000, seed=0, seconds=0.5)


def test_multilabel_demo_dataset_is_deterministic_with_a_labels_csv(tmp_path):
    def write(out, seed):
        return write_multilabel_demo_dataset(
            out=out, clips_per_genre=2, seconds=0.5, seed=seed, show_progress=False
        )

    paths = write(tmp_path / "a", 4)
    again = write(tmp_path / "b", 4)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    other = write(tmp_path / "c", 5)
    assert [p.read_bytes() for p in paths] != [p.read_bytes() for p in other]

    rows = list(csv.DictReader(io.StringIO((tmp_path / "a" / "labels.csv").read_text())))
    assert [tmp_path / "a" / r["path"] for r in rows] == paths
    record = json.loads((tmp_path / "a" / "demo.json").read_text())
    assert record["generator"] == "genreflow.demo.multilabel" and record["multilabel"] is True
    assert record["n_clips"] == len(rows) == 2 * len(GENRES)
    assert record["n_mixed"] == sum(";" in r["labels"] for r in rows)
    for row, path in zip(rows, paths, strict=True):
        names = row["labels"].split(";")
        assert names[0] == row["label"] == path.parent.name and set(names) <= set(GENRES)
        assert sf.info(path).frames == round(0.5 * 22050)
        clip, labels = synthesize_multilabel_clip(
            genre=row["label"], index=int(path.stem[-5:]), seed=4, seconds=0.5
        )
        assert list(labels) == names
        written, _ = sf.read(path, dtype="float32")
        assert np.max(np.abs(written - clip)) <= 0.5 / 32768

    # Neither generator overwrites the other's folder.
    with pytest.raises(DatasetError, match="genreflow.demo.multilabel"):
        write_demo_dataset(
            out=tmp_path / "a", clips_per_genre=1, seconds=0.5, seed=0, show_progress=False
        )
