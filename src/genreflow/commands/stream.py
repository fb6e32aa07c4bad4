"""``genreflow stream``: classify a live audio stream window by window."""

from __future__ import annotations

import argparse

HELP = "classify a live audio stream (stdin or a growing file) in sliding windows"
DESCRIPTION = (
    "Read audio as it arrives: raw PCM (signed 16-bit little-endian at --rate) or a WAV stream "
    "on stdin, or a file still being written (--input FILE --follow). Every --hop seconds, "
    "classify the last --window seconds with the model and print one line (or one JSON line "
    "with --json): the stream time, the top genres and a smoothed decision (exponential moving "
    "average of the probabilities). Audio at another rate is resampled with soxr's streaming "
    "resampler. When the stream ends between two hops, a last line covers the final window "
    "and is marked final. A window quieter than the model's audio.silence_dbfs (or a whole "
    "stream shorter than audio.min_seconds) gets no genre: its line says why ('unusable' in "
    "the JSON) and the smoothed decision carries over unchanged. Example: "
    "sox in.mp3 -t raw -r 22050 -e signed -b 16 -c 1 - | genreflow stream MODEL --format raw "
    "--rate 22050. See docs/serving.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_DIR", help="model directory from `genreflow train`")
    parser.add_argument(
        "--input", metavar="FILE", default="-", help="'-' for stdin, or a file path"
    )
    parser.add_argument(
        "--format",
        choices=("auto", "wav", "raw"),
        default="auto",
        help="input encoding; auto = WAV if it starts with a RIFF header, else raw",
    )
    parser.add_argument(
        "--rate",
        metavar="HZ",
        type=int,
        default=None,
        help="sample rate of raw input (default: the model's rate)",
    )
    parser.add_argument(
        "--channels", metavar="N", type=int, default=1, help="channels of raw input (mixed to mono)"
    )
    parser.add_argument(
        "--window",
        metavar="S",
        type=float,
        default=None,
        help="window length in seconds (default: the model's segment length)",
    )
    parser.add_argument(
        "--hop", metavar="S", type=float, default=1.0, help="seconds between two output lines"
    )
    parser.add_argument(
        "--smoothing",
        metavar="A",
        type=float,
        default=0.5,
        help="weight of the newest window in the moving average, in (0, 1]; 1 = none",
    )
    parser.add_argument("--top-k", metavar="K", type=int, default=3, help="genres per line")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="--input is a file still being written: read it as it grows",
    )
    parser.add_argument(
        "--follow-timeout",
        metavar="S",
        type=float,
        default=2.0,
        help="with --follow, stop when the file has not grown for this long",
    )
    parser.add_argument(
        "--no-final",
        action="store_true",
        help="no last line for a partial window when the stream ends between hops",
    )
    parser.add_argument(
        "--threads",
        metavar="N",
        type=int,
        default=1,
        help="TensorFlow intra-op threads (and OpenMP/BLAS threads)",
    )


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from genreflow.core.errors import ConfigError
    from genreflow.core.threads import start_tensorflow
    from genreflow.prediction.predictor import read_model_info
    from genreflow.prediction.stream import ByteSource, run_stream

    _check_arguments(args, ConfigError)
    read_model_info(args.model)  # fail fast, before TensorFlow starts
    with ByteSource.open(
        args.input, follow=args.follow, idle_timeout=args.follow_timeout
    ) as source:
        start_tensorflow(intra_op=args.threads, inter_op=1)
        try:
            run_stream(
                source,
                model_dir=args.model,
                format=args.format,
                rate=args.rate,
                channels=args.channels,
                window_seconds=args.window,
                hop_seconds=args.hop,
                smoothing=args.smoothing,
                final=not args.no_final,
                top_k=args.top_k,
                json_lines=args.json,
                follow=args.follow,
                out=sys.stdout,
                log=sys.stderr,
            )
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, and keep Python from complaining
            # about the closed stdout at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _check_arguments(args: argparse.Namespace, error) -> None:
    if args.follow and args.input == "-":
        raise error("--follow needs --input FILE (a pipe simply ends when its writer closes it)")
    checks = (
        ("--hop", args.hop, args.hop is not None and args.hop > 0, "> 0"),
        ("--window", args.window, args.window is None or args.window > 0, "> 0"),
        ("--smoothing", args.smoothing, 0 < args.smoothing <= 1, "in (0, 1]"),
        ("--top-k", args.top_k, args.top_k >= 1, ">= 1"),
        ("--threads", args.threads, args.threads >= 1, ">= 1"),
        ("--channels", args.channels, args.channels >= 1, ">= 1"),
        ("--follow-timeout", args.follow_timeout, args.follow_timeout > 0, "> 0"),
        ("--rate", args.rate, args.rate is None or 1000 <= args.rate <= 768000, "1000..768000"),
    )
    for flag, value, ok, allowed in checks:
        if not ok:
            raise error(f"{flag} must be {allowed}, got {value}")
