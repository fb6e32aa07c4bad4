"""genreflow.data.audio: decoding real-world files (MP3 length estimates, decoder messages, errors)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf

from genreflow.core.errors import AudioError
from genreflow.data.audio import load_audio
from tests.support.mp3_files import (
    SR,
    is_decoder_chatter,
    tone,
    write_mp3,
    write_mp3_with_glitch,
    write_mp3_without_info_frame,
)
from tests.support.tone_data import music_like

#: libmpg123's decoder delay and the encoder's padding: a few frames of 576 samples.
CODEC_SLACK_SECONDS = 4 * 576 / SR


def header_frames(path) -> int:
    with sf.SoundFile(path) as fh:
        return fh.frames


def test_mp3_behind_a_large_id3_tag_is_not_refused_as_truncated(tmp_path):
    path = write_mp3_without_info_frame(tmp_path / "tagged.mp3", seconds=15, tag_bytes=200_000)
    estimate = header_frames(path)
    audio = load_audio(path, sample_rate=SR)
    decoded = len(audio.samples)
    assert decoded < 0.99 * estimate  # the header over-estimates: the old "truncated" case
    assert 15.0 <= audio.duration <= 15.0 + CODEC_SLACK_SECONDS
    (note,) = audio.notes
    assert note == (
        f"decoded {decoded} frames, the MP3 header estimated {estimate} "
        "(compressed formats only estimate their length)"
    )


def test_mp3_without_info_frame_is_decoded_to_its_end(tmp_path):
    path = write_mp3_without_info_frame(tmp_path / "stripped.mp3", seconds=15)
    estimate = header_frames(path)
    assert estimate < 10 * SR  # libsndfile alone would stop there, seconds before the end
    audio = load_audio(path, sample_rate=SR)
    assert 15.0 <= audio.duration <= 15.0 + CODEC_SLACK_SECONDS
    assert f"the MP3 header estimated {estimate}" in audio.notes[0]
    # The same audio as the intact file, delayed by the decoder delay that only the Info
    # frame lets libmpg123 trim.
    reference = load_audio(write_mp3(tmp_path / "intact.mp3", seconds=15), sample_rate=SR)
    assert reference.notes == [] and reference.duration == 15.0
    middle = reference.samples[SR : 14 * SR]
    errors = [
        np.sqrt(np.mean((audio.samples[SR + lag : 14 * SR + lag] - middle) ** 2))
        for lag in range(len(audio.samples) - len(reference.samples) + 1)
    ]
    assert min(errors) < 1e-3


def test_mp3_max_seconds_counts_decoded_audio_not_the_estimate(tmp_path):
    low = write_mp3_without_info_frame(tmp_path / "low.mp3", seconds=15)
    # The header says less than 10 s; the file holds 15 s: refused while decoding.
    with pytest.raises(AudioError, match=r"too long: more than 12 s \(maximum 12 s\)"):
        load_audio(low, sample_rate=SR, max_seconds=12)
    high = write_mp3_without_info_frame(tmp_path / "high.mp3", seconds=15, tag_bytes=200_000)
    estimated_seconds = header_frames(high) / SR
    assert estimated_seconds > 15.5
    # The header says more than 15.5 s, the audio is 15.07 s: accepted.
    assert load_audio(high, sample_rate=SR, max_seconds=15.5).duration < 15.5
    # Exact headers are still checked before decoding.
    wav = tmp_path / "long.wav"
    sf.write(wav, tone(6.0), SR)
    with pytest.raises(AudioError, match=r"too long: 6.0 s \(maximum 5 s\)"):
        load_audio(wav, sample_rate=SR, max_seconds=5)


def test_cut_pcm_and_flac_files_are_still_refused(tmp_path):
    # Their headers are exact: a shorter file is cut, not misjudged (no MP3 leniency here).
    for name in ("full.wav", "full.au", "full.flac"):
        path = tmp_path / name
        sf.write(path, tone(6.0), SR)
        whole = path.read_bytes()
        cut = tmp_path / f"cut{path.suffix}"
        cut.write_bytes(whole[: len(whole) // 2])
        with pytest.raises(AudioError, match="truncated|flac decoder lost sync"):
            load_audio(cut, sample_rate=SR)


def test_decoder_errors_say_what_is_wrong(tmp_path):
    noise = np.random.default_rng(0).bytes(4096)
    (tmp_path / "noise.mp3").write_bytes(noise)
    (tmp_path / "noise.wav").write_bytes(noise)
    (tmp_path / "text.ogg").write_bytes(b"not audio at all\n" * 50)
    (tmp_path / "folder.wav").mkdir()
    expected = {
        "noise.mp3": "cannot decode: not a recognised audio format",
        "noise.wav": "cannot decode: not a recognised audio format",
        "text.ogg": "cannot decode: not a recognised audio format",
        "folder.wav": "cannot read: is a directory",
        "missing.flac": "cannot read: no such file",
    }
    for name, reason in expected.items():
        with pytest.raises(AudioError) as info:
            load_audio(tmp_path / name, sample_rate=SR)
        assert info.value.reason == reason, name
        assert info.value.path == str(tmp_path / name)


def test_mpg123_messages_stay_off_stderr(tmp_path, capfd):
    glitch = write_mp3_with_glitch(tmp_path / "glitch.mp3", seconds=6)
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    assert load_audio(glitch, sample_rate=SR).duration == pytest.approx(6.0, abs=0.05)
    with pytest.raises(AudioError):
        load_audio(noise, sample_rate=SR)
    err = capfd.readouterr().err
    assert err == "", err


def test_mpg123_messages_provoked_in_a_subprocess_never_reach_its_stderr(tmp_path):
    glitch = write_mp3_with_glitch(tmp_path / "glitch.mp3", seconds=6)
    tagged = write_mp3_without_info_frame(tmp_path / "tagged.mp3", seconds=6, tag_bytes=200_000)
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(1).bytes(4096))
    # Without genreflow, libsndfile lets libmpg123 talk:
    code = "import soundfile as sf, sys\nfor p in sys.argv[1:]:\n try: sf.read(p)\n except Exception: pass"
    raw = subprocess.run([sys.executable, "-c", code, glitch, noise], capture_output=True)
    assert any(is_decoder_chatter(line) for line in raw.stderr.decode().splitlines())
    code = (
        "import sys\nfrom genreflow.data.audio import load_audio\n"
        "for p in sys.argv[1:]:\n"
        " try: print(round(load_audio(p, sample_rate=22050).duration, 1))\n"
        " except Exception as e: print(e, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, glitch, tagged, noise], capture_output=True, text=True
    )
    assert [line for line in done.stderr.splitlines() if is_decoder_chatter(line)] == []
    assert done.stdout.split() == ["6.0", "6.1"]
    assert done.stderr.splitlines() == [f"{noise}: cannot decode: not a recognised audio format"]


def test_quiet_decoder_passes_other_stderr_lines_through(capfd):
    from genreflow.data.decoder_log import quiet_decoder

    with quiet_decoder():
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 4092.\n")
        os.write(2, b"a log line from another thread\n")
        os.write(2, b"[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length\n")
    assert capfd.readouterr().err == "a log line from another thread\n"


def test_concurrent_mp3_decodes_in_threads_agree(tmp_path, capfd):
    files = [
        write_mp3_with_glitch(tmp_path / "glitch.mp3", seconds=4),
        write_mp3_without_info_frame(tmp_path / "tagged.mp3", seconds=4, tag_bytes=50_000),
        write_mp3(tmp_path / "plain.mp3", seconds=4),
    ] * 4
    alone = [load_audio(p, sample_rate=SR).samples for p in files[:3]]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: load_audio(p, sample_rate=SR).samples, files))
    for i, samples in enumerate(together):
        np.testing.assert_array_equal(samples, alone[i % 3])
    assert capfd.readouterr().err == ""


def test_unusable_reason_applies_min_seconds_and_silence():
    from genreflow.data.audio import unusable_reason

    rules = {"sample_rate": SR, "min_seconds": 1.0, "silence_dbfs": -60.0}
    assert unusable_reason(np.zeros(2 * SR, np.float32), **rules) == (
        "silent: RMS -inf dBFS (threshold -60 dBFS)"
    )
    assert unusable_reason(tone(0.1), **rules) == "too short: 0.10 s (minimum 1 s)"
    assert unusable_reason(tone(1.0), **rules) is None
    assert unusable_reason(np.zeros(10, np.float32), sample_rate=SR) is None


@pytest.mark.parametrize(("fmt", "suffix"), [("WAV", ".wav"), ("AU", ".au"), ("FLAC", ".flac")])
@pytest.mark.parametrize("channels", [1, 2])
def test_16_bit_pcm_read_by_numpy_gives_libsndfiles_floats_bit_for_bit(
    tmp_path, fmt, suffix, channels
):
    # 16-bit PCM (and GTZAN's big-endian AU) skips libsndfile's float conversion; the
    # samples must be exactly what libsndfile's own float32 read gives, extremes included.
    rng = np.random.default_rng(channels)
    pcm = rng.integers(-32768, 32768, size=(3000, channels), dtype=np.int32).astype(np.int16)
    pcm[:2] = [[-32768] * channels, [32767] * channels]
    path = tmp_path / f"pcm{suffix}"
    sf.write(path, pcm, 22050, format=fmt, subtype="PCM_16")
    expected = sf.read(path, dtype="float32", always_2d=True)[0]
    expected = expected[:, 0] if channels == 1 else expected.mean(axis=1, dtype=np.float32)
    decoded = load_audio(path, sample_rate=22050).samples
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, expected)


def test_load_audio_resamples_stereo_44k_to_mono_22k(tmp_path):
    path = tmp_path / "stereo.wav"
    t = np.arange(2 * 44100) / 44100
    tone = np.sin(2 * np.pi * 440.0 * t)
    sf.write(path, np.stack([0.5 * tone, 0.3 * tone], axis=1), 44100, subtype="FLOAT")
    audio = load_audio(path, sample_rate=SR)
    assert audio.samples.shape == (SR * 2,)
    assert audio.samples.dtype == np.float32
    assert (audio.source_rate, audio.source_channels, audio.sample_rate) == (44100, 2, SR)
    assert audio.duration == pytest.approx(2.0)
    assert audio.bytes_in == path.stat().st_size
    assert set(audio.seconds) == {"decode", "resample"}
    # The mono mix is the channel mean (0.4 x the tone), sampled at 22050 Hz.
    expected = 0.4 * np.sin(2 * np.pi * 440.0 * np.arange(2 * SR) / SR)
    assert np.abs(audio.samples - expected)[200:-200].max() < 1e-3


@pytest.mark.parametrize(("fmt", "ext"), [("FLAC", ".flac"), ("OGG", ".ogg")])
def test_load_audio_reads_flac_and_ogg(tmp_path, fmt, ext):
    path = tmp_path / f"clip{ext}"
    signal = music_like(1.5)[:, 0]
    sf.write(path, signal, SR, format=fmt)
    audio = load_audio(path, sample_rate=SR)
    assert abs(len(audio.samples) - len(signal)) <= 1
    n = min(len(signal), len(audio.samples))
    tolerance = 1e-3 if fmt == "FLAC" else 0.2  # Vorbis is lossy
    assert np.sqrt(np.mean((audio.samples[:n] - signal[:n]) ** 2)) < tolerance


def test_load_audio_errors_name_path_and_reason(tmp_path):
    good = music_like(2.0)[:, 0]
    cases = {}
    cases["song.m4a"] = b"\x00\x00\x00\x20ftypM4A "
    cases["empty.wav"] = b""
    cases["noise.wav"] = np.random.default_rng(3).bytes(5000)
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    sf.write(tmp_path / "full.wav", good, SR, subtype="PCM_16")
    whole = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[: len(whole) // 2])
    sf.write(tmp_path / "short.wav", good[: int(0.2 * SR)], SR)
    sf.write(tmp_path / "silent.wav", np.zeros(SR * 2, dtype=np.float32), SR)

    expected = {
        "song.m4a": "unsupported format '.m4a'",
        "empty.wav": "empty file",
        "noise.wav": "cannot decode",
        "cut.wav": "truncated",
        "short.wav": "too short: 0.20 s",
        "silent.wav": "silent",
    }
    for name, reason in expected.items():
        path = tmp_path / name
        with pytest.raises(AudioError) as info:
            load_audio(path, sample_rate=SR, min_seconds=1.0, silence_dbfs=-60.0)
        assert info.value.path == str(path)
        assert reason in info.value.reason, (name, info.value.reason)
        assert str(info.value).startswith(str(path))
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="cannot read"):
        load_audio(missing, sample_rate=SR)
    # The same checks pass a normal clip.
    assert load_audio(tmp_path / "full.wav", sample_rate=SR, min_seconds=1.0).duration == 2.0
