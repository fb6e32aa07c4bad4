"""genreflow predict: the Predictor API and the CLI, on real audio files and a real model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from genreflow.cli import main
from genreflow.core.errors import AudioError, ModelError
from tests.support.tone_data import GENRES, SR, write_tone_clip


@pytest.fixture(scope="module")
def model(tone_model):
    return tone_model


@pytest.fixture(scope="module")
def predictor(model):
    from genreflow.prediction.predictor import Predictor

    return Predictor(model)


@pytest.fixture
def fresh_clip(tmp_path):
    """A clip the model has never seen (a new seed), 7 s of the "mid" tone."""
    return write_tone_clip(tmp_path / "fresh.wav", f0=GENRES["mid"] * 1.01, seconds=7.0, seed=999)


def test_predict_file_returns_a_known_genre_with_probabilities(predictor, fresh_clip):
    p = predictor.predict_file(fresh_clip)
    assert p.label in GENRES and p.labels == sorted(GENRES)
    assert p.probabilities.shape == (len(GENRES),)
    assert p.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    # 7 s with 3 s segments every 1.5 s, the tail padded: starts 0, 1.5, 3, 4.5 -> 4 segments.
    assert p.segment_probabilities.shape == (4, len(GENRES))
    # (on the STFT frame grid: a 1.5 s hop is 65 frames of 512 samples = 1.509 s)
    np.testing.assert_allclose(p.offsets, np.arange(4) * 65 * 512 / SR, rtol=1e-6)
    np.testing.assert_allclose(p.probabilities, p.segment_probabilities.mean(axis=0), rtol=1e-6)
    assert p.duration == pytest.approx(7.0, abs=1e-3)
    assert p.padded and not p.short  # the tail segment is padded, the clip is not short
    assert p.source == str(fresh_clip)
    assert {"decode", "features", "model", "total"} <= set(p.seconds)
    top = p.top(2)
    assert [name for name, _ in top][0] == p.label and top[0][1] >= top[1][1]
    record = p.to_dict(top_k=2)
    json.dumps(record)
    assert record["label"] == p.label and len(record["top"]) == 2


def test_other_rates_channels_and_formats_give_the_same_answer(predictor, fresh_clip, tmp_path):
    reference = predictor.predict_file(fresh_clip)
    samples, sr = sf.read(fresh_clip, dtype="float32")
    import soxr

    # The same sound at 44.1 kHz, in two channels, as FLAC.
    resampled = soxr.resample(samples, sr, 44100)
    stereo = tmp_path / "fresh-44k-stereo.flac"
    sf.write(stereo, np.stack([resampled, resampled], axis=1), 44100)
    other = predictor.predict_file(stereo)
    assert other.label == reference.label
    np.testing.assert_allclose(other.probabilities, reference.probabilities, atol=0.02)
    # The same signal handed over as samples at another rate (the API's path).
    from_samples = predictor.predict_samples(resampled, sample_rate=44100, source="upload")
    np.testing.assert_allclose(from_samples.probabilities, other.probabilities, atol=1e-4)
    assert from_samples.source == "upload"


def test_short_clip_is_padded_and_says_so(predictor, tmp_path, capsys):
    short = write_tone_clip(tmp_path / "short.wav", f0=GENRES["bass"], seconds=1.0, seed=5)
    p = predictor.predict_file(short)
    assert p.padded and p.short and len(p.offsets) == 1
    assert p.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert main(["predict", str(predictor.model_dir), str(short)]) == 0
    assert "shorter than one segment: zero-padded" in capsys.readouterr().out


def test_predict_segments_and_bad_inputs(predictor):
    segments = np.zeros((3, 32, 40), np.float16)
    probs = predictor.predict_segments(segments)
    assert probs.shape == (3, len(GENRES)) and probs.dtype == np.float32
    with pytest.raises(ModelError, match="shape"):
        predictor.predict_segments(np.zeros((3, 64, 40)))
    with pytest.raises(AudioError, match="no audio samples"):
        predictor.predict_samples(np.zeros(0, np.float32))


def test_cli_table_with_bad_files_reports_each_and_predicts_the_rest(
    model, fresh_clip, tmp_path, capsys
):
    empty = tmp_path / "empty.wav"
    empty.touch()
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    missing = tmp_path / "missing.wav"
    second = write_tone_clip(tmp_path / "second.ogg", f0=GENRES["high"], seconds=4.0, seed=7)
    files = [empty, fresh_clip, garbage, missing, second]
    assert main(["predict", str(model), *map(str, files), "--top-k", "2"]) == 1
    captured = capsys.readouterr()
    # Both good files are predicted, each with two ranked genres.
    for good in (fresh_clip, second):
        assert str(good) in captured.out
    ranked = [line.split() for line in captured.out.splitlines() if line.startswith("   ")]
    assert len(ranked) == 4 and all(words[1] in GENRES for words in ranked)
    # One line per bad file, naming it.
    errors = captured.err.strip().splitlines()
    assert len(errors) == 3
    for bad, line in zip((empty, garbage, missing), errors, strict=True):
        assert str(bad) in line and line.startswith("genreflow predict: error:")
    assert "empty" in errors[0] and "cannot" in errors[1] and "cannot read" in errors[2]


def test_cli_json_lists_predictions_and_errors(model, fresh_clip, tmp_path, capsys):
    missing = tmp_path / "missing.mp3"
    assert (
        main(["predict", str(model), str(fresh_clip), str(missing), "--json", "--top-k", "1"]) == 1
    )
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    good, bad = doc["predictions"]
    assert good["file"] == str(fresh_clip) and good["label"] in GENRES
    assert len(good["top"]) == 1 and sum(good["probabilities"].values()) == pytest.approx(
        1, abs=1e-4
    )
    assert bad["file"] == str(missing) and "cannot read" in bad["error"]
    assert str(missing) in captured.err


def test_cli_all_good_exits_zero_and_bad_model_dir_is_an_error(model, fresh_clip, tmp_path, capsys):
    assert main(["predict", str(model), str(fresh_clip)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(fresh_clip)) and "4 segment(s)" in out
    assert "zero-padded" not in out  # only its tail segment was padded, which is normal
    assert main(["predict", str(tmp_path), str(fresh_clip)]) == 2
    assert "no genreflow.json" in capsys.readouterr().err


def test_sample_rate_of_the_model_is_used(predictor):
    assert predictor.sample_rate == SR
    assert predictor.extractor.sample_rate == SR


# --------------------------------------------------------------------------- unusable clips


def write_silence(path, *, seconds: float):
    sf.write(path, np.zeros(int(seconds * SR), np.float32), SR)
    return path


def test_silent_and_too_short_files_are_refused_like_in_training(
    model, fresh_clip, tmp_path, capsys
):
    silent = write_silence(tmp_path / "silent.wav", seconds=4.0)
    blip = write_tone_clip(tmp_path / "blip.wav", f0=GENRES["high"], seconds=0.1, seed=3)
    files = [silent, fresh_clip, blip]
    assert main(["predict", str(model), *map(str, files)]) == 1
    captured = capsys.readouterr()
    assert str(fresh_clip) in captured.out
    assert str(silent) not in captured.out and str(blip) not in captured.out
    assert captured.err.splitlines() == [
        f"genreflow predict: error: {silent}: silent: RMS -inf dBFS (threshold -60 dBFS)",
        f"genreflow predict: error: {blip}: too short: 0.10 s (minimum 1 s)",
    ]


def test_allow_unusable_predicts_them_flagged(model, tmp_path, capsys):
    silent = write_silence(tmp_path / "silent.wav", seconds=4.0)
    blip = write_tone_clip(tmp_path / "blip.wav", f0=GENRES["high"], seconds=0.1, seed=3)
    assert main(["predict", str(model), str(silent), str(blip), "--allow-unusable", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["predictions"]
    assert [r["unusable"] for r in records] == [
        "silent: RMS -inf dBFS (threshold -60 dBFS)",
        "too short: 0.10 s (minimum 1 s)",
    ]
    assert all(r["label"] in GENRES for r in records)
    assert main(["predict", str(model), str(silent), "--allow-unusable"]) == 0
    out = capsys.readouterr().out
    assert "  unusable: silent: RMS -inf dBFS (threshold -60 dBFS); predicted anyway" in out


def test_predictor_applies_the_models_audio_rules(predictor, fresh_clip):
    assert predictor.info["audio"]["min_seconds"] == 1.0
    with pytest.raises(AudioError, match="silent: RMS -inf dBFS"):
        predictor.predict_samples(np.zeros(4 * SR, np.float32), source="quiet")
    with pytest.raises(AudioError, match=r"too short: 0\.10 s \(minimum 1 s\)"):
        predictor.predict_samples(np.full(int(0.1 * SR), 0.1, np.float32))
    flagged = predictor.predict_samples(np.zeros(4 * SR, np.float32), allow_unusable=True)
    assert flagged.unusable.startswith("silent") and flagged.to_dict()["unusable"] == (
        flagged.unusable
    )
    normal = predictor.predict_file(fresh_clip)
    assert normal.unusable is None and "unusable" not in normal.to_dict()


# --------------------------------------------------------------------------- real-world MP3s


def test_mp3s_libsndfile_misjudges_are_predicted_with_notes_and_no_decoder_chatter(
    model, tmp_path, capfd
):
    from tests.support.mp3_files import (
        is_decoder_chatter,
        write_mp3_with_glitch,
        write_mp3_without_info_frame,
    )

    tagged = write_mp3_without_info_frame(tmp_path / "tagged.mp3", seconds=8, tag_bytes=200_000)
    stripped = write_mp3_without_info_frame(tmp_path / "stripped.mp3", seconds=8)
    glitch = write_mp3_with_glitch(tmp_path / "glitch.mp3", seconds=8)
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    files = [tagged, stripped, glitch, noise]
    assert main(["predict", str(model), *map(str, files), "--json"]) == 1
    captured = capfd.readouterr()
    assert [line for line in captured.err.splitlines() if is_decoder_chatter(line)] == []
    assert captured.err.splitlines() == [
        f"genreflow predict: error: {noise}: cannot decode: not a recognised audio format"
    ]
    records = {r["file"]: r for r in json.loads(captured.out)["predictions"]}
    for path in (tagged, stripped):
        record = records[str(path)]
        assert record["label"] in GENRES and 8.0 <= record["duration"] < 8.15
        (note,) = record["notes"]
        assert "the MP3 header estimated" in note
    assert records[str(glitch)]["notes"] == [] and records[str(glitch)]["label"] in GENRES
    assert records[str(noise)]["error"] == "cannot decode: not a recognised audio format"
    # The table shows the note under the file.
    assert main(["predict", str(model), str(stripped)]) == 0
    assert "  note: decoded " in capfd.readouterr().out


def test_prediction_records_labels_only_for_multilabel_models():
    from genreflow.prediction.predictor import Prediction

    def prediction(thresholds):
        return Prediction(
            labels=["a", "b", "c"],
            probabilities=np.array([0.2, 0.7, 0.6]),
            segment_probabilities=np.array([[0.2, 0.7, 0.6]]),
            offsets=np.array([0.0]),
            padded=False,
            duration=3.0,
            thresholds=thresholds,
        )

    single = prediction(None)
    assert "labels" not in single.to_dict() and single.predicted_labels == ["b"]
    multi = prediction(np.array([0.1, 0.8, 0.6]))
    # a (0.2 >= 0.1) and c (0.6 >= 0.6) pass, b (0.7 < 0.8) does not; most probable first.
    assert multi.to_dict()["labels"] == multi.predicted_labels == ["c", "a"]
    assert multi.label == "b"  # the single most probable label is still there
