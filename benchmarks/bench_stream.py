"""Streaming classification cost per hop on one core: the real-time factor of ``genreflow stream``.

Usage::

    .venv/bin/python benchmarks/bench_stream.py                       # hops 0.25, 0.5, 1, 2 s
    .venv/bin/python benchmarks/bench_stream.py --model results/model --hops 0.1,0.5,1 --repeat 5

The process pins itself to one CPU core and one thread (TensorFlow, OpenMP, BLAS), loads the
model once with :class:`genreflow.prediction.predictor.Predictor`, and plays a 30 s demo clip through the
same chain ``genreflow stream`` runs: 16-bit PCM bytes at ``--input-rate`` arrive one hop at a
time -> :class:`~genreflow.prediction.stream.PcmDecoder` -> :class:`~genreflow.prediction.stream.StreamResampler`
(soxr's streaming resampler, when the rate differs from the model's) ->
:class:`~genreflow.prediction.stream.StreamClassifier` (window = the model's segment length by default).
For every hop it times the work from the arrival of the hop's bytes to its result. Hop
lengths are interleaved over ``--repeat`` passes.

The real-time factor is (processing time per hop) / (hop length): below 1 the stream keeps up
with live audio on one core, and 1 - RTF of each hop is idle. Without ``--model`` it uses an
untrained model of the default architecture (``bench_predict.untrained_model_dir``): the cost
does not depend on the weights.

Prints a table and writes ``benchmarks/out/stream.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "stream.json"


def play(predictor, pcm: bytes, *, input_rate: int, window: float | None, hop: float) -> list:
    """Feed ``pcm`` (s16le mono) one hop at a time; seconds of work for each hop's bytes."""
    from genreflow.prediction.stream import PcmDecoder, PcmFormat, StreamClassifier, StreamResampler

    decoder = PcmDecoder(PcmFormat(sample_rate=input_rate, channels=1, sample_bytes=2))
    resampler = StreamResampler(in_rate=input_rate, out_rate=predictor.sample_rate)
    classifier = StreamClassifier(predictor, window_seconds=window, hop_seconds=hop)
    step = 2 * max(1, round(hop * input_rate))
    times, windows = [], 0
    for start in range(0, len(pcm), step):
        t0 = time.perf_counter()
        results = classifier.push(resampler.process(decoder.decode(pcm[start : start + step])))
        times.append(time.perf_counter() - t0)
        windows += len(results)
    return times, windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: untrained)")
    parser.add_argument("--hops", default="0.25,0.5,1,2", help="hop lengths in seconds")
    parser.add_argument("--window", type=float, default=None, help="window (default: segment)")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (s)")
    parser.add_argument("--input-rate", type=int, default=44100, help="rate of the PCM stream")
    parser.add_argument("--repeat", type=int, default=3, help="passes per hop length")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    hops = [float(h) for h in args.hops.split(",")]
    if min(hops) <= 0 or args.repeat < 1:
        parser.error("hops must be > 0 and --repeat >= 1")

    from bench_predict import pin_to_one_core, untrained_model_dir

    cpu = pin_to_one_core()
    import numpy as np
    import soxr

    from genreflow.core.atomic import write_json
    from genreflow.demo import synthesize_clip
    from genreflow.prediction.predictor import Predictor

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp:
        model_dir = args.model or untrained_model_dir(Path(tmp) / "model")
        predictor = Predictor(model_dir)
    y = synthesize_clip(genre="jazz", index=0, seed=0, seconds=args.seconds, sample_rate=22050)
    if args.input_rate != 22050:
        y = soxr.resample(y, 22050, args.input_rate)
    pcm = (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()
    window = args.window or float(predictor.info["audio"]["segment_seconds"])

    play(predictor, pcm[: 2 * args.input_rate * 8], input_rate=args.input_rate, window=None, hop=1)
    per_hop: dict[float, list[float]] = {hop: [] for hop in hops}
    windows: dict[float, int] = {}
    for _ in range(args.repeat):
        for hop in hops:
            times, n = play(predictor, pcm, input_rate=args.input_rate, window=args.window, hop=hop)
            # The hops before the first full window only buffer audio; time the ones that
            # produce a window.
            per_hop[hop] += times[int(np.ceil(window / hop)) - 1 :]
            windows[hop] = n
    load_after = os.getloadavg()

    rows = []
    for hop in hops:
        ms = np.asarray(per_hop[hop]) * 1000.0
        rows.append(
            {
                "hop_seconds": hop,
                "windows_per_pass": windows[hop],
                "p50_ms": float(np.percentile(ms, 50)),
                "p95_ms": float(np.percentile(ms, 95)),
                "max_ms": float(ms.max()),
                "rtf_p50": float(np.percentile(ms, 50)) / (1000.0 * hop),
                "rtf_p95": float(np.percentile(ms, 95)) / (1000.0 * hop),
            }
        )
    print(
        f"genreflow stream, one core (CPU {cpu}): {args.seconds:g} s clip as s16le at "
        f"{args.input_rate} Hz -> {predictor.sample_rate} Hz, window {window:g} s, "
        f"{args.repeat} pass(es) per hop"
    )
    print(
        f"{'hop s':>6} {'windows':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
        f"{'RTF p50':>8} {'RTF p95':>8}"
    )
    for r in rows:
        print(
            f"{r['hop_seconds']:>6g} {r['windows_per_pass']:>8} {r['p50_ms']:>8.1f} "
            f"{r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} {r['rtf_p50']:>8.3f} {r['rtf_p95']:>8.3f}"
        )
    print(
        f"\nRTF = processing time per hop / hop length (< 1 keeps up with live audio); "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
        f"{os.cpu_count()} CPUs"
    )
    write_json(
        args.out,
        {
            "benchmark": "stream",
            "model": str(args.model) if args.model else "untrained default architecture",
            "clip_seconds": args.seconds,
            "input_rate": args.input_rate,
            "model_rate": predictor.sample_rate,
            "window_seconds": window,
            "repeat": args.repeat,
            "cpu": cpu,
            "hops": rows,
            "host": platform.node(),
            "cpu_count": os.cpu_count(),
            "load_average": {"before": list(load_before), "after": list(load_after)},
            "python": platform.python_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
