"""genreflow stream: real pipes, real WAV/PCM bytes, a real model.

The building blocks (windowing, WAV parsing, PCM decoding, streaming resampling) are checked
against whole-signal references; the classifier against ``Predictor.predict_samples`` on the
same audio; the command end to end through a subprocess's stdin and on a growing file.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.cli import main
from genreflow.core.errors import AudioError
from genreflow.prediction.stream import (
    ByteSource,
    SlidingWindow,
    StreamClassifier,
    StreamResampler,
    open_pcm,
    stream_samples,
)
from tests.support.demo_model import model_labels, write_clip

SR = 22050
SEGMENT_SECONDS = 3.0  # the tiny model's audio.segment_seconds (the default)
STARTUP_TIMEOUT = 120


@pytest.fixture(scope="module")
def model(demo_model) -> Path:
    return demo_model


@pytest.fixture(scope="module")
def predictor(model):
    from genreflow.prediction.predictor import Predictor

    return Predictor(model)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> np.ndarray:
    """7.5 s of demo music at the model's rate, float32."""
    path = write_clip(tmp_path_factory.mktemp("stream") / "clip.wav", seconds=7.5, subtype="FLOAT")
    samples, sr = sf.read(path, dtype="float32")
    assert sr == SR
    return samples


def pipe_source(data: bytes, *, chunk: int = 1001, **kwargs) -> ByteSource:
    """A ByteSource on the read end of a real pipe that a thread fills in odd-sized chunks."""
    read_fd, write_fd = os.pipe()

    def writer():
        with os.fdopen(write_fd, "wb", buffering=0) as fh:
            for start in range(0, len(data), chunk):
                fh.write(data[start : start + chunk])

    threading.Thread(target=writer, daemon=True).start()
    return ByteSource(read_fd, name="<pipe>", **kwargs)


def expected_ends(duration: float, *, window: float, hop: float) -> list[float]:
    """Stream times of the full windows: window, window + hop, ... up to ``duration``."""
    n = int(np.floor((duration - window) / hop + 1e-9)) + 1 if duration >= window else 0
    return [window + i * hop for i in range(n)]


# --------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize(("window", "hop"), [(300, 100), (100, 250), (256, 256), (7, 2)])
def test_sliding_window_gives_exact_windows_whatever_the_chunks(window, hop):
    signal = np.arange(5050, dtype=np.float32)  # never ends on a window
    rng = np.random.default_rng(window + hop)
    windows, pos = SlidingWindow(window=window, hop=hop), 0
    got = []
    while pos < len(signal):
        step = int(rng.integers(1, 700))
        got += windows.push(signal[pos : pos + step])
        pos += step
    ends = [window + i * hop for i in range((len(signal) - window) // hop + 1)]
    assert [end for end, _ in got] == ends
    for end, samples in got:
        np.testing.assert_array_equal(samples, signal[end - window : end])
    end, samples = windows.tail(min_new=1)
    assert end == len(signal) != ends[-1]
    np.testing.assert_array_equal(samples, signal[-window:])
    # Nothing new since the last full window: no final window.
    exact = SlidingWindow(window=window, hop=hop)
    exact.push(signal[: ends[-1]])
    assert exact.tail(min_new=1) is None
    # A stream shorter than one window: all of it.
    short = SlidingWindow(window=window, hop=hop)
    assert short.push(signal[: window - 1]) == []
    np.testing.assert_array_equal(short.tail(min_new=10**6)[1], signal[: window - 1])


@pytest.mark.parametrize(
    ("subtype", "atol"),
    [("PCM_U8", 0), ("PCM_16", 0), ("PCM_24", 0), ("PCM_32", 0), ("FLOAT", 0), ("DOUBLE", 1e-7)],
)
def test_wav_header_and_samples_from_a_pipe_match_soundfile(subtype, atol):
    rng = np.random.default_rng(0)
    stereo = (0.5 * rng.standard_normal((3001, 2))).clip(-1, 0.99).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, stereo, 16000, format="WAV", subtype=subtype)
    # A chunk after the audio data must not be read as audio.
    data = buffer.getvalue() + b"LIST\x04\x00\x00\x00abcd"
    source = pipe_source(data)
    fmt = open_pcm(source, format="auto")
    assert (fmt.sample_rate, fmt.channels) == (16000, 2)
    got = np.concatenate(list(stream_samples(source, fmt, out_rate=16000)))
    reference = sf.read(io.BytesIO(buffer.getvalue()), dtype="float32")[0].mean(axis=1)
    np.testing.assert_allclose(got, reference, atol=atol + 1e-7, rtol=0)


def test_streaming_wav_of_unknown_length_and_raw_pcm_are_read_to_the_end():
    samples = (np.sin(np.arange(4000) / 7) * 20000).astype("<i2")
    buffer = io.BytesIO()
    sf.write(buffer, samples, 8000, format="WAV", subtype="PCM_16")
    data = bytearray(buffer.getvalue())
    data[4:8] = data[40:44] = (
        b"\xff\xff\xff\xff"  # RIFF and data sizes as streaming writers set them
    )
    source = pipe_source(
        bytes(data) + samples.tobytes()
    )  # the "stream" goes on past the header's file
    fmt = open_pcm(source, format="wav")
    assert fmt.data_bytes is None
    got = np.concatenate(list(stream_samples(source, fmt, out_rate=8000)))
    np.testing.assert_array_equal(got, np.tile(samples, 2) / 32768.0)
    raw = pipe_source(samples.tobytes() + b"\x01")  # a dangling half sample is dropped
    fmt = open_pcm(raw, format="auto", rate=8000)
    assert (fmt.sample_rate, fmt.channels, fmt.sample_bytes) == (8000, 1, 2)
    np.testing.assert_array_equal(
        np.concatenate(list(stream_samples(raw, fmt, out_rate=8000))), samples / 32768.0
    )


def test_bad_wav_streams_are_refused_with_a_reason():
    with pytest.raises(AudioError, match="not a WAV stream"):
        open_pcm(pipe_source(b"OggS" + bytes(100)), format="wav")
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(100, np.float32), 8000, format="WAV", subtype="ULAW")
    with pytest.raises(AudioError, match="unsupported WAV encoding"):
        open_pcm(pipe_source(buffer.getvalue()), format="auto")
    with pytest.raises(AudioError, match="cut short"):
        open_pcm(pipe_source(buffer.getvalue()[:30]), format="wav")


def test_streaming_resampler_matches_whole_signal_resampling(clip):
    import soxr

    signal = soxr.resample(clip, SR, 44100)  # the clip as a 44.1 kHz source
    resampler = StreamResampler(in_rate=44100, out_rate=SR)
    rng = np.random.default_rng(3)
    pieces, pos = [], 0
    while pos < len(signal):
        step = int(rng.integers(100, 9000))
        pieces.append(resampler.process(signal[pos : pos + step]))
        pos += step
    pieces.append(resampler.process(np.zeros(0, np.float32), last=True))
    streamed = np.concatenate(pieces)
    whole = soxr.resample(signal, 44100, SR, quality="HQ")
    assert abs(len(streamed) - len(whole)) <= 1
    n = min(len(streamed), len(whole))
    np.testing.assert_allclose(streamed[:n], whole[:n], atol=1e-4)


# --------------------------------------------------------------------------- the classifier


def test_windows_get_the_same_probabilities_as_predict(predictor, clip):
    # 4.5 s windows hold two whole 3 s segments (at 0 and 1.5 s), as predict cuts a 4.5 s clip.
    classifier = StreamClassifier(predictor, window_seconds=4.5, hop_seconds=1.5, smoothing=1.0)
    results = []
    for start in range(0, len(clip), 5000):
        results += classifier.push(clip[start : start + 5000])
    results += classifier.finish()
    ends = expected_ends(7.5, window=4.5, hop=1.5)  # 4.5, 6.0, 7.5: ends on a hop, no final
    assert [r.time for r in results] == pytest.approx(ends)
    for r in results:
        window = clip[round(r.start * SR) : round(r.time * SR)]
        reference = predictor.predict_samples(window)
        assert len(reference.offsets) == 2 and not reference.padded
        np.testing.assert_allclose(r.probabilities, reference.probabilities, atol=1e-6)
        np.testing.assert_allclose(r.smoothed, r.probabilities, atol=1e-6)  # smoothing=1
        assert not r.final and not r.padded


def test_smoothing_final_window_and_short_streams(predictor, clip):
    labels = predictor.labels
    classifier = StreamClassifier(predictor, hop_seconds=1.0, smoothing=0.3)
    cut = int(6.4 * SR)  # ends 0.4 s after the window ending at 6 s
    results = classifier.push(clip[:cut]) + classifier.finish()
    assert [r.time for r in results] == pytest.approx([3, 4, 5, 6, 6.4], abs=1e-4)
    assert [r.final for r in results] == [False] * 4 + [True]
    assert results[-1].start == pytest.approx(3.4, abs=1e-4) and not results[-1].padded
    for prev, cur in zip(results, results[1:], strict=False):
        np.testing.assert_allclose(
            cur.smoothed, 0.3 * cur.probabilities + 0.7 * prev.smoothed, atol=1e-6
        )
    for r in results:
        assert r.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert r.smoothed.sum() == pytest.approx(1.0, abs=1e-5)
        record = r.to_dict(top_k=2)
        assert record["label"] == r.label in labels and len(record["top"]) == 2
        assert r.label in r.to_line()
    # Only a few samples after the last window: no final line.
    few = StreamClassifier(predictor, hop_seconds=1.0)
    assert len(few.push(clip[: 4 * SR + 100])) == 2 and few.finish() == []
    # Shorter than one segment: one final line, zero-padded.
    short = StreamClassifier(predictor)
    assert short.push(clip[: int(1.2 * SR)]) == []
    (last,) = short.finish()
    assert last.final and last.padded and last.time == pytest.approx(1.2, abs=1e-4)
    assert last.start == 0 and last.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_silent_windows_get_no_genre_and_leave_the_smoothed_decision(predictor, clip):
    # 4 s of music, 3 s of digital silence, 3 s of music; a 3 s window every second.
    stream = np.concatenate([clip[: 4 * SR], np.zeros(3 * SR, np.float32), clip[: 3 * SR]])
    classifier = StreamClassifier(predictor, hop_seconds=1.0, smoothing=0.5)
    results = classifier.push(stream) + classifier.finish()
    assert [r.time for r in results] == pytest.approx(range(3, 11), abs=1e-4)
    flagged = [r for r in results if r.unusable is not None]
    assert [r.time for r in flagged] == pytest.approx([7.0])  # the window 4..7 s is all silence
    (silent,) = flagged
    assert silent.unusable == "silent: RMS -inf dBFS (threshold -60 dBFS)"
    assert silent.probabilities is None and silent.label is None
    before, after = results[3], results[5]  # the windows ending at 6 s and 8 s
    np.testing.assert_allclose(silent.smoothed, before.smoothed)  # carried over unchanged
    np.testing.assert_allclose(after.smoothed, 0.5 * after.probabilities + 0.5 * before.smoothed)
    record = json.loads(json.dumps(silent.to_dict(top_k=2)))
    assert record["label"] is None and record["unusable"] == silent.unusable
    assert record["top"] == [] and record["probabilities"] is None
    assert record["smoothed"]["label"] == before.smoothed_label
    line = silent.to_line()
    assert (
        "(no genre: silent: RMS -inf dBFS" in line and f"smoothed: {before.smoothed_label}" in line
    )


def test_silence_before_any_music_and_a_blip_of_a_stream_get_no_genre(predictor, clip):
    quiet = StreamClassifier(predictor, hop_seconds=1.0)
    (first,) = quiet.push(np.zeros(3 * SR, np.float32))
    assert first.unusable.startswith("silent") and first.smoothed is None
    assert first.to_dict()["smoothed"] is None and "smoothed: (none yet)" in first.to_line()
    (second,) = quiet.push(clip[:SR])  # music from 3 s: the window 1..4 s is not silent
    assert second.unusable is None and second.label in predictor.labels
    np.testing.assert_allclose(second.smoothed, second.probabilities)  # silence did not count
    blip = StreamClassifier(predictor)
    assert blip.push(clip[: int(0.1 * SR)]) == []
    (last,) = blip.finish()
    assert last.final and last.unusable == "too short: 0.10 s (minimum 1 s)"


# --------------------------------------------------------------------------- the command


class StreamProcess:
    """``genreflow stream`` in a subprocess, its output lines collected with arrival times."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "genreflow", "stream", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[tuple[float, str]] = []
        self.errors: list[str] = []
        self.ready = threading.Event()
        self._threads = [
            threading.Thread(target=self._collect_stdout, daemon=True),
            threading.Thread(target=self._collect_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _collect_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.decode()))

    def _collect_stderr(self) -> None:
        for line in self.proc.stderr:
            self.errors.append(line.decode())
            if "ready" in self.errors[-1]:
                self.ready.set()

    def wait_ready(self) -> None:
        if not self.ready.wait(STARTUP_TIMEOUT):
            self.proc.kill()
            pytest.fail("stream never became ready:\n" + "".join(self.errors))

    def finish(self, timeout: float = 60) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        for t in self._threads:
            t.join(10)
        return code

    def records(self) -> list[dict]:
        return [json.loads(line) for _, line in self.lines]


def check_records(records: list[dict], labels: list[str], *, ends: list[float], window: float):
    assert [r["time"] for r in records] == pytest.approx(ends, abs=2e-3)
    for r in records:
        assert r["start"] == pytest.approx(max(r["time"] - window, 0.0), abs=2e-3)
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert sum(r["smoothed"]["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert r["label"] in labels and r["label"] == r["top"][0]["label"]
    times = [r["time"] for r in records]
    assert all(a < b for a, b in zip(times, times[1:], strict=False))
    assert [r["final"] for r in records] == [False] * (len(records) - 1) + [True]


def test_raw_pcm_on_stdin_in_real_time_ending_mid_window(model, clip):
    stream = StreamProcess(str(model), "--format", "raw", "--rate", str(SR), "--json")
    pcm = (clip * 32767).astype("<i2").tobytes()
    stream.wait_ready()
    step = SR // 4 * 2  # bytes of 0.25 s
    for start in range(0, len(pcm), step):
        stream.proc.stdin.write(pcm[start : start + step])
        stream.proc.stdin.flush()
        time.sleep(0.125)  # twice real time
    fed = time.monotonic()
    stream.proc.stdin.close()
    assert stream.finish() == 0, "".join(stream.errors)
    # Full windows end at 3, 4, 5, 6, 7 s; the stream ends mid-window at 7.5 s: a final line.
    ends = expected_ends(7.5, window=SEGMENT_SECONDS, hop=1.0) + [7.5]
    check_records(stream.records(), model_labels(model), ends=ends, window=SEGMENT_SECONDS)
    # Lines come out while the audio is still coming in, not at the end.
    assert stream.lines[0][0] < fed - 0.5
    assert "Traceback" not in "".join(stream.errors)


def test_wav_at_another_rate_on_stdin(model, clip, monkeypatch, capsys):
    import soxr

    # In this process (TensorFlow is loaded already), stdin being the read end of a real pipe.
    resampled = soxr.resample(clip[: int(4.8 * SR)], SR, 44100)
    buffer = io.BytesIO()
    sf.write(buffer, np.stack([resampled, resampled], axis=1), 44100, format="WAV")
    source = pipe_source(buffer.getvalue(), chunk=4096)
    monkeypatch.setattr(sys, "stdin", os.fdopen(source.fd, "r"))
    assert main(["stream", str(model), "--json", "--hop", "0.5"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    ends = expected_ends(4.8, window=SEGMENT_SECONDS, hop=0.5) + [4.8]  # 3, 3.5, 4, 4.5, 4.8
    check_records(records, model_labels(model), ends=ends, window=SEGMENT_SECONDS)
    assert "16-bit 2 channels at 44100 Hz, resampled to 22050 Hz" in captured.err


def test_follow_reads_a_growing_file_to_its_end(model, clip, tmp_path, capsys):
    path = tmp_path / "recording.wav"
    seconds = 5.5

    def recorder():
        with sf.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as fh:
            for start in range(0, int(seconds * SR), SR // 2):
                fh.write(clip[start : min(start + SR // 2, int(seconds * SR))])
                fh.flush()
                time.sleep(0.1)

    writer = threading.Thread(target=recorder)
    writer.start()
    args = ["stream", str(model), "--input", str(path), "--follow", "--follow-timeout", "1.5"]
    code = main([*args, "--json", "--top-k", "2"])
    writer.join()
    assert code == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ends = expected_ends(seconds, window=SEGMENT_SECONDS, hop=1.0) + [seconds]  # 3, 4, 5, 5.5
    check_records(records, model_labels(model), ends=ends, window=SEGMENT_SECONDS)
    assert all(len(r["top"]) == 2 for r in records)


def test_silent_stretch_of_a_live_stream_is_flagged_in_the_output(model, clip, monkeypatch, capsys):
    pcm = np.concatenate([clip[: 4 * SR], np.zeros(3 * SR, np.float32), clip[: 3 * SR]])
    source = pipe_source((pcm * 32767).astype("<i2").tobytes(), chunk=8192)
    monkeypatch.setattr(sys, "stdin", os.fdopen(source.fd, "r"))
    assert main(["stream", str(model), "--format", "raw", "--json"]) == 0
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["time"] for r in records] == pytest.approx(range(3, 11), abs=2e-3)
    assert [r.get("unusable", "")[:6] for r in records] == [""] * 4 + ["silent"] + [""] * 3
    assert records[4]["label"] is None and records[4]["smoothed"]["label"] in model_labels(model)
    assert "8 window(s) (1 without a genre: silent or too short)" in captured.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--follow"], "--follow needs --input FILE"),
        (["--hop", "0"], "--hop must be > 0"),
        (["--smoothing", "1.5"], "--smoothing must be in (0, 1]"),
        (["--input", "/nonexistent/x.wav"], "no such file"),
    ],
)
def test_bad_arguments_fail_before_loading_the_model(model, extra, message, capsys):
    assert main(["stream", str(model), *extra]) == 2
    assert message in capsys.readouterr().err
