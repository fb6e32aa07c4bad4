"""The pretrained musicnn backbone: the Keras port against the checkpoint's own graph, its front
end, the embedding job, the head and the model directory that predict/evaluate use unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genreflow.cli import main
from genreflow.core.config import load_config
from genreflow.core.errors import ConfigError, StageError
from tests.support.tone_data import (
    GENRES,
    TIMEOUT,
    genreflow_subprocess,
    read_json,
    write_manifest_rows,
    write_tone_clip,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).parents[1] / "support" / "musicnn_msd_reference.npz"
CONFIG = ROOT / "config" / "config.yaml"


def test_keras_port_reproduces_the_checkpoint_graph_on_a_reference_patch():
    """scripts/convert_musicnn.py computed these outputs from the checkpoint with plain
    TensorFlow ops (musicnn/models.py op for op); the Keras port must give the same."""
    from genreflow.backbones.musicnn import MSD_TAGS, build_backbone

    ref = np.load(REFERENCE)
    model = build_backbone()
    out = model(ref["patch"][None, :, :, None], training=True)  # frozen: BN stays in inference
    np.testing.assert_allclose(out["tags"].numpy()[0], ref["tags"], atol=1e-5)
    np.testing.assert_allclose(out["penultimate"].numpy()[0], ref["penultimate"], atol=1e-4)
    top = [MSD_TAGS[i] for i in np.argsort(ref["tags"])[::-1][:2]]
    assert top == ["electronic", "ambient"]  # a synthetic bass-and-hi-hat loop
    assert model.count_params() == 792_079
    assert not model.trainable_weights


def test_the_port_accepts_any_number_of_frames():
    from genreflow.backbones.musicnn import build_backbone

    model = build_backbone()
    x = np.random.default_rng(0).uniform(0, 3, size=(2, 96, 120, 1)).astype(np.float32)
    out = model(x)
    assert out["tags"].shape == (2, 50) and out["penultimate"].shape == (2, 200)
    assert np.all((out["tags"].numpy() > 0) & (out["tags"].numpy() < 1))


def test_logc_front_end_matches_librosa():
    from genreflow.spectrograms.logmel import LogMel, librosa_logmel

    mel = {"n_fft": 512, "hop_length": 256, "n_mels": 96, "fmin": 0.0, "fmax": None}
    rng = np.random.default_rng(1)
    t = np.arange(16000 * 2) / 16000
    y = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
    ours = LogMel(sample_rate=16000, compression="logc", **mel)(y)
    reference = librosa_logmel(y, sample_rate=16000, mel={**mel, "compression": "logc"})
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=2e-3, rtol=1e-3)
    assert ours.min() >= 0.0  # log10(1 + 10000 S) of a power


def test_the_default_config_is_the_backbone_with_its_front_end():
    cfg = load_config(CONFIG)
    assert cfg["train"]["model"]["backbone"] == "musicnn-msd"
    assert cfg["mel"]["compression"] == "logc"
    sr, hop = cfg["audio"]["sample_rate"], cfg["mel"]["hop_length"]
    assert round(cfg["audio"]["segment_seconds"] * sr / hop) == 187  # musicnn's patch


@pytest.mark.parametrize(
    ("override", "key", "wanted"),
    [
        ({"mel.n_mels": 128}, "mel.n_mels", "96"),
        ({"audio.sample_rate": 22050}, "audio.sample_rate", "16000"),
        ({"mel.compression": "db"}, "mel.compression", '"logc"'),
    ],
)
def test_a_backbone_with_another_front_end_is_refused_naming_the_key(override, key, wanted):
    with pytest.raises(ConfigError) as info:
        load_config(CONFIG, overrides=override)
    message = str(info.value)
    assert f"'{key}'" in message and wanted in message and "musicnn-msd" in message


def _tone_set(root: Path, *, settings: tuple[str, ...]) -> Path:
    rows = []
    for g, (genre, f0) in enumerate(GENRES.items()):
        for i, split in enumerate(("train", "train", "train", "valid", "test")):
            path = root / "audio" / genre / f"{genre}.{i:05d}.wav"
            write_tone_clip(path, f0=f0 * (1 + 0.03 * i), seconds=6.0, seed=100 * g + i)
            rows.append([path.stem, str(path), genre, genre, "", split])
    manifest = write_manifest_rows(root / "manifest.csv", rows)
    args = ["spectrograms", "--manifest", str(manifest), "--out", str(root / "features")]
    for setting in ("preprocess.previews_per_genre=0", *settings):
        args += ["--set", setting]
    assert main([*args[:5], "--config", str(CONFIG), *args[5:]]) == 0
    return root / "features"


@pytest.fixture(scope="module")
def backbone_run(tmp_path_factory):
    """Backbone features of tone clips, embedded with 1 and 2 threads, and a head on them."""
    root = tmp_path_factory.mktemp("backbone")
    features = _tone_set(root, settings=())
    for n in (1, 2):  # own processes: TensorFlow's thread pools are set once per process
        args = ["embed", "--features", str(features), "--out", str(root / f"emb/threads{n}")]
        proc = genreflow_subprocess(*args, "--config", str(CONFIG), "--threads", str(n))
        out, err = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0, err
    model = root / "model"
    args = ["train", "--features", str(features), "--out", str(model), "--config", str(CONFIG)]
    assert main([*args, "--threads", "2", "--embeddings", str(root / "emb/threads2")]) == 0
    return root


def test_embeddings_cover_every_train_and_valid_segment(backbone_run):
    from genreflow.backbones.embed import read_embeddings
    from genreflow.spectrograms.shards import open_features

    features = open_features(backbone_run / "features")
    emb = read_embeddings(backbone_run / "emb/threads1")
    wanted = [r for split in ("train", "valid") for r in features.rows(split=split)]
    assert emb.clip_ids == [r.clip_id for r in wanted]
    assert int(emb.row_stop[-1]) == sum(r.n_segments for r in wanted)
    assert emb.outputs["tags"].shape == (emb.row_stop[-1], 50)
    timings = read_json(backbone_run / "emb/threads1/timings.json")
    assert timings["stage"] == "embed" and timings["threads"]["intra_op"] == 1
    assert timings["segments_per_30s_clip"] == 19 and timings["seconds_per_30s_clip"] > 0
    other = read_embeddings(backbone_run / "emb/threads2")
    np.testing.assert_allclose(other.outputs["tags"], emb.outputs["tags"], atol=1e-5)


def test_the_model_directory_holds_backbone_and_head_and_predicts_unchanged(backbone_run, capsys):
    from genreflow.backbones.embed import read_embeddings
    from genreflow.prediction.predictor import Predictor
    from genreflow.spectrograms.clips import clip_table
    from genreflow.spectrograms.shards import open_features

    model = backbone_run / "model"
    info = read_json(model / "genreflow.json")
    assert info["backbone"] == "musicnn-msd" and info["mel"]["compression"] == "logc"
    assert read_json(model / "timings.json")["stage"] == "head"
    predictor = Predictor(model)
    # The exported Keras model gives the head's probabilities on the embedding job's outputs.
    features = open_features(backbone_run / "features")
    train = clip_table(features, split="train", labels=features.labels)
    emb = read_embeddings(backbone_run / "emb/threads2")
    first = features.read_rows(train.shards[0], train.row_start[0], train.row_stop[0])
    probs = predictor.predict_segments(np.asarray(first, np.float32))
    assert probs.shape == (len(first), 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    x, _ = emb.rows(train, embedding=info["head"]["embedding"])
    head = predictor.model.get_layer("head")
    norm = predictor.model.get_layer("head_standardise")
    logits = head(norm(x[: len(first)])).numpy()
    np.testing.assert_allclose(probs, logits, atol=1e-4)
    # predict and evaluate take the directory as they take a CNN's
    test_clip = next(backbone_run.glob("audio/high/high.00004.wav"))
    capsys.readouterr()
    assert main(["predict", str(model), str(test_clip), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["predictions"][0]["top"][0]["label"] == "high"
    out = backbone_run / "eval"
    args = ["evaluate", "--model", str(model), "--features", str(backbone_run / "features")]
    assert main([*args, "--out", str(out)]) == 0
    assert read_json(out / "metrics.json")["clip_accuracy"] == 1.0


def test_training_without_embeddings_embeds_in_process_and_fits_the_same_head(
    backbone_run, tmp_path
):
    args = ["train", "--features", str(backbone_run / "features"), "--out", str(tmp_path / "m")]
    assert main([*args, "--config", str(CONFIG), "--threads", "1"]) == 0
    import keras

    a = keras.models.load_model(backbone_run / "model" / "model.keras", compile=False)
    b = keras.models.load_model(tmp_path / "m" / "model.keras", compile=False)
    np.testing.assert_allclose(
        a.get_layer("head").get_weights()[0], b.get_layer("head").get_weights()[0], atol=1e-3
    )


def test_embed_refuses_features_of_another_front_end(tone_features, tmp_path):
    from genreflow.backbones.embed import embed_features
    from genreflow.spectrograms.shards import open_features

    with pytest.raises(StageError, match=r"audio.sample_rate = 22050.*musicnn-msd needs 16000"):
        embed_features(
            open_features(tone_features), out_dir=tmp_path, backbone="musicnn-msd", threads={}
        )
    assert not (tmp_path / "timings.json").exists()


def test_embed_with_the_cnn_config_names_the_key(tone_features, tmp_path, capsys):
    assert main(["embed", "--features", str(tone_features), "--out", str(tmp_path / "e")]) != 0
    assert "key 'train.model.backbone' has value \"none\"" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()


def test_the_embedding_sweep_chooses_and_reports(backbone_run, tmp_path):
    """choose picks the faster embedding job; the report has an embedding sweep and the head."""
    results = tmp_path / "results"
    shutil.copytree(backbone_run / "emb", results / "emb")
    shutil.copytree(backbone_run / "model", results / "model")
    timings = [str(results / f"emb/threads{n}/timings.json") for n in (1, 2)]
    choice = results / "emb" / "production.json"
    link = results / "emb" / "production"
    assert main(["choose", "--timings", *timings, "--out", str(choice), "--link", str(link)]) == 0
    chosen = read_json(choice)
    assert chosen["stage"] == "embed" and chosen["chosen"] in (1, 2)
    assert link.resolve() == (results / f"emb/threads{chosen['chosen']}").resolve()
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "report")]) == 0
    summary = read_json(tmp_path / "report" / "summary.json")
    embed = [s for s in summary["stages"] if s["stage"] == "embed"]
    assert len(embed) == 1 and [p["count"] for p in embed[0]["points"]] == [1, 2]
    assert all(p["seconds_per_30s_clip"] > 0 for p in embed[0]["points"])
    assert summary["heads"][0]["backbone"] == "musicnn-msd"
    assert not any("history.json" in n for n in summary["notes"]["files"])
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "Embedding: the pretrained backbone's forward pass vs threads" in markdown


def test_stream_classifies_a_file_with_the_backbone_model(backbone_run, capsys):
    """`genreflow stream` takes the backbone's model directory as it takes a CNN's: windows of
    its own segment length, probabilities that agree with `predict` on the same samples."""
    from genreflow.prediction.predictor import Predictor
    from genreflow.prediction.stream import StreamClassifier

    model = backbone_run / "model"
    clip = next(backbone_run.glob("audio/mid/mid.00004.wav"))
    capsys.readouterr()
    assert main(["stream", str(model), "--input", str(clip), "--json", "--hop", "1.0"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records and all(r["top"][0]["label"] == "mid" for r in records)

    predictor = Predictor(model)
    samples = predictor.extractor.load(clip).samples
    # 4.48 s = 281 frames: two whole 187-frame segments 94 frames apart, as predict cuts it
    classifier = StreamClassifier(predictor, window_seconds=4.48, hop_seconds=1.5, smoothing=1.0)
    results = classifier.push(samples) + classifier.finish()
    sr = predictor.sample_rate
    for r in [r for r in results if not r.final]:
        reference = predictor.predict_samples(samples[round(r.start * sr) : round(r.time * sr)])
        assert len(reference.offsets) == 2 and not reference.padded
        np.testing.assert_allclose(r.probabilities, reference.probabilities, atol=1e-5)


def test_serve_answers_with_the_backbone_model(backbone_run, tmp_path):
    """The HTTP API loads the backbone's model directory and answers like `predict`."""
    import httpx

    from tests.support.server_process import start_server, stop_server

    model = backbone_run / "model"
    clip = next(backbone_run.glob("audio/high/high.00004.wav"))
    server = start_server(model, tmp_path)
    try:
        response = httpx.post(
            f"{server.url}/predict",
            files={"file": ("clip.wav", clip.read_bytes(), "audio/wav")},
            timeout=120,
        )
    finally:
        stop_server(server)
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["label"] == "high" and record["n_segments"] == 4  # 6 s: 0, 1.5, 3, 4.5 s

    from genreflow.prediction.predictor import Predictor

    expected = Predictor(model).predict_file(clip).probabilities
    served = [
        record["probabilities"][label] for label in read_json(model / "genreflow.json")["labels"]
    ]
    np.testing.assert_allclose(served, expected, atol=1e-4)


def test_a_multilabel_head_stays_multilabel_when_its_train_clips_have_one_label_each():
    """The feature set decides (as for the CNN): sigmoid outputs, one regression per label."""
    from genreflow.training.head import fit_head

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5))
    targets = np.eye(3)[np.arange(60) % 2]  # one label per row, label 2 never present
    multi = fit_head(x, targets, multilabel=True, c=1.0, seed=0)
    single = fit_head(x, targets, multilabel=False, c=1.0, seed=0)
    assert multi["multilabel"] and not single["multilabel"]
    assert multi["bias"][2] == single["bias"][2] == -30.0  # absent label: never predicted
    # one-vs-rest: label 0's and label 1's regressions are mirror images, not softmax halves
    np.testing.assert_allclose(multi["kernel"][:, 0], -multi["kernel"][:, 1], atol=1e-6)
