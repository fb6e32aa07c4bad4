"""Single-clip prediction latency on one core: decode + log-mel features + the CNN.

Usage::

    .venv/bin/python benchmarks/bench_predict.py                   # untrained default-size model
    .venv/bin/python benchmarks/bench_predict.py --model results/model --repeat 50
    .venv/bin/python benchmarks/bench_predict.py --model OLD --model NEW   # side by side

The process pins itself to one CPU core and one thread (TensorFlow intra/inter-op, OpenMP,
BLAS) before importing anything heavy, loads the model once with
:class:`genreflow.prediction.predictor.Predictor` (the object ``genreflow predict`` and the web service
use), then times ``Predictor.predict_file`` on a 30 s demo clip: as a 22050 Hz mono WAV and as
a 44.1 kHz stereo FLAC (which adds resampling), interleaved, after a warm-up. It also times
three ways of running the model on the same segments: the traced ``tf.function`` the
predictor uses, an eager ``model(x, training=False)`` and ``model.predict(x)``.

Without ``--model`` it builds an untrained model of the default architecture and input size:
latency does not depend on the weights.

Prints p50/p95 per part and writes ``benchmarks/out/predict.json``. Target: p50 total of the
WAV clip <= 150 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "predict.json"
TARGET_MS = 150.0


def pin_to_one_core() -> int:
    """Restrict this process to one CPU and every thread pool to one thread; returns the CPU."""
    from genreflow.core.threads import set_thread_env

    cpu = max(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else -1
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    set_thread_env(intra_op=1, inter_op=1)
    from genreflow.core.threads import configure_tensorflow

    configure_tensorflow(intra_op=1, inter_op=1)
    return cpu


def untrained_model_dir(folder: Path) -> Path:
    """A model directory with the default architecture, config and labels, untrained."""
    from genreflow.core.atomic import write_json
    from genreflow.core.config import config_hash, load_config
    from genreflow.demo import GENRES
    from genreflow.spectrograms.logmel import FeatureExtractor
    from genreflow.training.export import export_model
    from genreflow.training.model import build_model

    cfg = load_config(None)
    fx = FeatureExtractor.from_config(cfg)
    shape = cfg["train"]["model"]
    model = build_model(
        n_mels=fx.n_mels,
        n_labels=len(GENRES),
        filters=shape["filters"],
        pooling=shape["pooling"],
        dropout=shape["dropout"],
    )
    export_model(model, folder / "model.keras")
    write_json(
        folder / "genreflow.json",
        {
            "labels": list(GENRES),
            "audio": cfg["audio"],
            "mel": cfg["mel"],
            "norm": {"mean": [-40.0] * fx.n_mels, "std": [20.0] * fx.n_mels},
            "multilabel": False,
            "thresholds": None,
            "config_hash": config_hash(cfg, ("train",)),
            "features_hash": config_hash(cfg, ("audio", "mel")),
            "segment_frames": fx.segment_frames,
        },
    )
    return folder


def write_clips(folder: Path, *, seconds: float) -> dict[str, Path]:
    """The same demo clip as a 22050 Hz mono WAV and a 44.1 kHz stereo FLAC."""
    import numpy as np
    import soundfile as sf
    import soxr

    from genreflow.demo import synthesize_clip

    y = synthesize_clip(genre="rock", index=0, seed=0, seconds=seconds, sample_rate=22050)
    wav = folder / "clip-22k-mono.wav"
    sf.write(wav, y, 22050, subtype="PCM_16")
    hi = soxr.resample(y, 22050, 44100)
    flac = folder / "clip-44k-stereo.flac"
    sf.write(flac, np.stack([hi, hi], axis=1), 44100, subtype="PCM_16")
    return {"wav 22.05 kHz mono": wav, "flac 44.1 kHz stereo": flac}


def percentiles(values: list[float]) -> dict:
    import numpy as np

    ms = np.asarray(values) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        default=None,
        help="model directory (default: untrained); repeat to time several side by side",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (s)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)

    cpu = pin_to_one_core()
    import numpy as np

    from genreflow.core.atomic import write_json
    from genreflow.core.threads import thread_settings
    from genreflow.prediction.predictor import Predictor

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        tmp = Path(tmp)
        model_dirs = args.model or [untrained_model_dir(tmp / "model")]
        started = time.perf_counter()
        predictors = [Predictor(model_dir) for model_dir in model_dirs]
        load_seconds = (time.perf_counter() - started) / len(predictors)
        predictor = predictors[0]
        clips = write_clips(tmp, seconds=args.seconds)

        # Every model on every clip in turn, so that machine load hits them alike.
        cases = {
            (f"{name} [{m}]" if len(predictors) > 1 else name): (pred, path)
            for m, pred in enumerate(predictors)
            for name, path in clips.items()
        }
        for _ in range(args.warmup):
            for pred, path in cases.values():
                pred.predict_file(path)
        parts: dict[str, dict[str, list[float]]] = {name: {} for name in cases}
        segments = 0
        for _ in range(args.repeat):
            for name, (pred, path) in cases.items():
                p = pred.predict_file(path)
                segments = len(p.offsets)
                for part, seconds in p.seconds.items():
                    parts[name].setdefault(part, []).append(seconds)

        # Three ways to run the model on one clip's segments, interleaved.
        import tensorflow as tf

        audio = predictor.extractor.load(clips["wav 22.05 kHz mono"])
        x = predictor.extractor.segments(audio.samples, pad_short=True).segments
        x = ((x - predictor.mean) / predictor.std)[..., np.newaxis].astype(np.float32)
        calls = {
            "tf.function (Predictor)": lambda: predictor._forward(x).numpy(),
            "model(x) eager": lambda: predictor.model(tf.constant(x), training=False).numpy(),
            "model.predict(x)": lambda: predictor.model.predict(x, verbose=0),
        }
        call_times: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.warmup):
            for call in calls.values():
                call()
        for _ in range(args.repeat):
            for name, call in calls.items():
                t0 = time.perf_counter()
                call()
                call_times[name].append(time.perf_counter() - t0)
    load_after = os.getloadavg()

    summary = {name: {part: percentiles(v) for part, v in p.items()} for name, p in parts.items()}
    model_calls = {name: percentiles(v) for name, v in call_times.items()}
    print(
        f"single-clip prediction, {args.seconds:g} s clip ({segments} segments), one core "
        f"(CPU {cpu}), {args.repeat} runs after {args.warmup} warm-up; model load {load_seconds:.2f} s"
    )
    for m, model_dir in enumerate(model_dirs):
        if len(model_dirs) > 1:
            print(f"[{m}] {model_dir}")
    print(f"{'file':<26} {'part':<9} {'p50 ms':>8} {'p95 ms':>8} {'min':>7} {'max':>7}")
    for name, by_part in summary.items():
        for part in ("decode", "features", "model", "total"):
            s = by_part[part]
            print(
                f"{name:<26} {part:<9} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} "
                f"{s['min_ms']:>7.1f} {s['max_ms']:>7.1f}"
            )
    print()
    print(f"{'model call on the segments':<28} {'p50 ms':>8} {'p95 ms':>8}")
    for name, s in model_calls.items():
        print(f"{name:<28} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f}")
    total = next(v for k, v in summary.items() if k.startswith("wav"))["total"]
    verdict = "meets" if total["p50_ms"] <= TARGET_MS else "MISSES"
    print(f"\nWAV total p50 {total['p50_ms']:.1f} ms {verdict} the {TARGET_MS:g} ms target")
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} CPUs"
    )

    write_json(
        args.out,
        {
            "benchmark": "predict",
            "model": [str(m) for m in args.model]
            if args.model
            else "untrained default architecture",
            "clip_seconds": args.seconds,
            "segments": segments,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "cpu": cpu,
            "threads": thread_settings(),
            "model_load_seconds": load_seconds,
            "latency": summary,
            "model_calls": model_calls,
            "target_ms": TARGET_MS,
            "meets_target": total["p50_ms"] <= TARGET_MS,
            "host": platform.node(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_after,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
