"""genreflow.spectrograms.logmel: log-mel segments of real audio files, against librosa."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from genreflow.core.config import load_config
from genreflow.data.audio import load_audio
from genreflow.spectrograms.logmel import FeatureExtractor, LogMel, SegmentGrid, librosa_logmel
from tests.support.tone_data import music_like

SR = 22050


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, music_like(5.0), SR, subtype="PCM_16")
    return path


def extractor(**overrides) -> FeatureExtractor:
    return FeatureExtractor.from_config(load_config(None, overrides=overrides))


@pytest.mark.parametrize("top_db", [None, 30.0])
def test_logmel_matches_librosa_on_decoded_audio(wav, top_db):
    cfg = load_config(None, overrides={"mel.top_db": top_db})
    audio = load_audio(wav, sample_rate=SR)
    ours = FeatureExtractor.from_config(cfg).logmel(audio.samples)
    reference = librosa_logmel(audio.samples, sample_rate=SR, mel=cfg["mel"])
    assert ours.shape == reference.shape == (128, 1 + len(audio.samples) // 512)
    assert ours.dtype == np.float32
    assert np.abs(ours - reference).max() < 1e-3
    if top_db is not None:
        assert ours.max() - ours.min() <= top_db + 1e-3
        assert np.isclose(ours.min(), ours.max() - top_db, atol=1e-3)  # the floor is reached


def test_float32_fft_error_is_confined_to_bands_far_below_the_frame_peak():
    # The FFT runs in float32: its rounding is relative to each frame's loudest bins, so it
    # shows only in bands far below them. Worst case, a loud pure tone over faint noise
    # (120 dB of range in every frame); on 10 real GTZAN clips the largest error anywhere
    # was 0.017 dB. float16 shards round by up to 1/32 dB anyway.
    t = np.arange(5 * SR) / SR
    noise = 3e-5 * np.random.default_rng(0).standard_normal(len(t))
    y = (0.9 * np.sin(2 * np.pi * 110 * t) + 0.3 * np.sin(2 * np.pi * 220 * t) + noise).astype(
        np.float32
    )
    mel = load_config(None)["mel"]
    ours = LogMel(sample_rate=SR, n_fft=2048, hop_length=512, n_mels=128)(y)
    reference = librosa_logmel(y, sample_rate=SR, mel=mel)
    error = np.abs(ours - reference)
    below_peak = reference.max(axis=0, keepdims=True) - reference
    assert error[below_peak < 80].max() < 1e-3
    assert error[below_peak < 100].max() < 0.02
    assert error.max() < 0.25


# librosa (the reference side) warns that a shorter signal than n_fft is padded: expected here.
@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large for input signal:UserWarning")
@pytest.mark.parametrize("n_samples", [1, 100, 2047, 2048, 4095, 4096, 5000, 22050, 22051])
def test_logmel_frames_at_the_edges_of_any_length_match_librosa(n_samples):
    # Frames that reach past either end come from small padded copies, the rest are read in
    # place (genreflow.spectrograms.stft.frame_blocks); short clips are padded whole.
    y = (0.1 * np.random.default_rng(n_samples).standard_normal(n_samples)).astype(np.float32)
    mel = load_config(None)["mel"]
    ours = LogMel(sample_rate=SR, n_fft=2048, hop_length=512, n_mels=128)(y)
    reference = librosa_logmel(y, sample_rate=SR, mel=mel)
    assert ours.shape == reference.shape == (128, 1 + n_samples // 512)
    assert np.abs(ours - reference).max() < 1e-3


def test_real_fft_without_its_fast_path_gives_the_same_spectra(monkeypatch):
    import genreflow.spectrograms.stft as stft

    frames = np.random.default_rng(0).standard_normal((5, 2048)).astype(np.float32)
    fast = np.empty((5, 1025), np.complex64)
    stft.real_fft()(frames, fast)
    monkeypatch.setattr(stft, "_real_fft", None)
    monkeypatch.setattr(stft, "_load_pocketfft", lambda: None)  # as if scipy had moved it
    slow = np.empty((5, 1025), np.complex64)
    stft.real_fft()(frames, slow)
    np.testing.assert_array_equal(fast, slow)  # the same pocketfft code either way
    np.testing.assert_allclose(fast, np.fft.rfft(frames.astype(np.float64)), atol=1e-3)


def test_segments_are_slices_of_the_whole_clip_spectrogram(wav):
    fx = extractor(**{"mel.n_mels": 64})
    audio = fx.load(wav)
    clip = fx.segments(audio.samples)
    whole = librosa_logmel(audio.samples, sample_rate=SR, mel=fx.mel)
    frames = fx.segment_frames
    assert frames == round(3.0 * SR / 512) == 129
    assert clip.segments.shape == (len(clip.offsets), 64, frames)
    for seg, offset in zip(clip.segments, clip.offsets, strict=True):
        start = round(offset * SR / 512)
        available = min(frames, whole.shape[1] - start)
        assert np.abs(seg[:, :available] - whole[:, start : start + available]).max() < 1e-3
        # Past the end of the clip, padded frames are silence: the -100 dB floor.
        assert np.all(seg[:, available:] == np.float32(-100.0))


@pytest.mark.parametrize(
    ("tail", "n_frames", "expected"),
    [
        ("pad", 431, 6),  # 5 s: starts 0, 65, ..., 325 (325 + 129 > 431: padded)
        ("drop", 431, 5),  # last full segment starts at 260
        ("pad", 129, 1),
        ("drop", 129, 1),
        ("pad", 50, 1),  # shorter than one segment: one padded segment
        ("drop", 50, 0),
    ],
)
def test_segment_grid_counts(tail, n_frames, expected):
    grid = SegmentGrid(segment_frames=129, hop_frames=65, tail=tail)
    starts = grid.starts(n_frames)
    assert len(starts) == expected
    assert np.array_equal(starts, np.arange(expected) * 65)
    if tail == "drop" and expected:
        assert starts[-1] + 129 <= n_frames
    if tail == "pad" and expected:
        assert starts[-1] + 129 >= n_frames or n_frames - starts[-1] - 129 < 65


def test_offsets_and_padded_flag():
    fx = extractor()
    hop_s = fx.grid.hop_frames * 512 / SR
    five = fx.segments(music_like(5.0)[:, 0])
    assert np.allclose(five.offsets, np.arange(len(five.offsets)) * hop_s)
    assert five.padded  # 431 frames do not end on the 65-frame grid
    short = fx.segments(music_like(1.2)[:, 0])
    assert short.segments.shape == (1, 128, 129)
    assert short.padded
    assert short.offsets.tolist() == [0.0]
    # A clip filling whole segments exactly is not padded: 129 frames = 128 hops of samples.
    exact = fx.segments(music_like(128 * 512 / SR)[:, 0])
    assert exact.segments.shape[0] == 1 and not exact.padded
    dropped = extractor(**{"audio.tail": "drop"}).segments(music_like(1.2)[:, 0])
    assert dropped.segments.shape == (0, 128, 129)
    forced = extractor(**{"audio.tail": "drop"}).segments(music_like(1.2)[:, 0], pad_short=True)
    assert forced.segments.shape == (1, 128, 129) and forced.padded


def test_float16_roundtrip_keeps_db_to_a_few_hundredths(wav, tmp_path):
    fx = extractor()
    segs = fx.segments(fx.load(wav).samples).segments
    path = tmp_path / "segs.npy"
    np.save(path, segs.astype(np.float16))
    back = np.load(path, mmap_mode="r")
    assert back.dtype == np.float16 and back.shape == segs.shape
    # float16 spacing is 1/16 dB between 64 and 128 dB magnitude, so rounding is <= 1/32 dB.
    assert np.abs(back.astype(np.float32) - segs).max() <= 1 / 32
    assert np.isfinite(back).all()


def test_logmel_standalone_matches_librosa_for_other_settings():
    mel = {"n_fft": 1024, "hop_length": 256, "n_mels": 40, "fmin": 50.0, "fmax": 8000.0}
    y = music_like(1.0, sr=16000)[:, 0]
    ours = LogMel(sample_rate=16000, **mel)(y)
    reference = librosa_logmel(y, sample_rate=16000, mel={**mel, "top_db": None})
    assert ours.shape == (40, 1 + len(y) // 256)
    assert np.abs(ours - reference).max() < 1e-3


@pytest.mark.parametrize(
    ("sample_rate", "n_fft", "n_mels", "fmin", "fmax"),
    [
        (22050, 2048, 128, 0.0, None),
        (16000, 512, 40, 50.0, 7000.0),
        (44100, 4096, 96, 20.0, 16000.0),
    ],
)
def test_mel_filterbank_and_window_equal_librosa_and_scipy(sample_rate, n_fft, n_mels, fmin, fmax):
    import librosa
    import scipy.signal

    from genreflow.spectrograms.logmel import hann_window, mel_filterbank

    ours = mel_filterbank(sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    ref = librosa.filters.mel(
        sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float64
    )
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(
        hann_window(n_fft), scipy.signal.get_window("hann", n_fft, fftbins=True), atol=1e-15
    )


def test_extractor_does_not_import_librosa_or_scipy_signal():
    import subprocess
    import sys

    code = (
        "import sys; from genreflow.spectrograms.logmel import LogMel;"
        "LogMel(sample_rate=22050, n_fft=2048, hop_length=512, n_mels=128);"
        "print(sorted(m for m in ('librosa', 'scipy.signal') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
