"""How the stages' cost grows with the corpus: spectrograms (MPI) and one training epoch.

For each ``--clips`` size (default 500 and 4000 synthetic 30-s clips, written once into
``--workdir`` and reused), in one run:

1. ``mpiexec -n RANKS genreflow spectrograms`` over all clips;
2. ``genreflow train --epochs 2`` on the features it wrote, timing the second (steady) epoch;

and prints, per size, seconds per clip of each stage, the peak resident memory of a rank and
of the training process (each stage runs under a small wrapper that reads its descendants'
``ru_maxrss``), and feature bytes per clip; then the ratios between the sizes. Linear cost
means the same seconds per clip at every size; bounded memory means the same peak RSS.

    python benchmarks/bench_scale.py --workdir /tmp/bench-scale
    python benchmarks/bench_scale.py --clips 100 --clips 400 --json out.json   # quicker

Machines are shared and noisy: the sizes run side by side in one invocation, so their ratios
are what to quote. ``--workdir`` holds ~1.3 MB of audio per clip (5.3 GB for 4000).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_resume import find_mpiexec, make_clips  # noqa: E402

DEFAULT_OUT = HERE / "out" / "scale.json"

#: Runs ``argv`` and prints the largest ``ru_maxrss`` (KiB) of its descendants: with mpiexec,
#: the biggest rank (the launcher and proxies are small).
_PEAK_WRAPPER = (
    "import resource, subprocess, sys; "
    "rc = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(rc)"
)


def run_measured(cmd: list[str], *, env: dict[str, str]) -> tuple[float, float]:
    """``(wall seconds, peak RSS MiB of the largest descendant)`` of ``cmd``."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_WRAPPER, *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        check=False,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    return wall, peak_kib / 1024


def clean_env() -> dict[str, str]:
    # Stages set their own thread counts; no inherited worker discovery either.
    return {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_NUM_THREADS") and k != "TF_CONFIG" and not k.startswith("SLURM_")
    }


def measure(work: Path, *, clips: list, ranks: int, threads: int) -> dict:
    """Spectrograms and one training epoch over ``clips``; seconds, peaks, bytes."""
    from genreflow.data.manifest import write_manifest

    n = len(clips)
    folder = work / f"n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.csv"
    write_manifest(manifest, clips, info={"source": "bench_scale"})
    features, model = folder / "features", folder / "model"
    env = clean_env()
    spec_cmd = [str(find_mpiexec()), "-n", str(ranks), sys.executable, "-m", "genreflow"]
    spec_cmd += ["spectrograms", "--manifest", str(manifest), "--out", str(features), "--fresh"]
    spec_cmd += ["--set", "preprocess.previews_per_genre=0"]
    spec_outer, spec_peak = run_measured(spec_cmd, env=env)
    timings = json.loads((features / "timings.json").read_text())
    feature_bytes = sum(p.stat().st_size for p in features.glob("part-*.npy"))

    if model.exists():
        import shutil

        shutil.rmtree(model)  # never resume: time a whole epoch
    train_cmd = [sys.executable, "-m", "genreflow", "train", "--features", str(features)]
    # Two epochs, the second timed: the first also traces the tf.functions (seconds that do
    # not grow with the corpus and would flatter the larger size).
    train_cmd += ["--out", str(model), "--epochs", "2", "--threads", str(threads)]
    train_outer, train_peak = run_measured(train_cmd, env=env)
    train = json.loads((model / "timings.json").read_text())
    epoch = train["epochs"][-1]
    epoch_seconds = float(epoch["seconds"])
    return {
        "clips": n,
        "spectrograms": {
            "work_seconds": timings["work_seconds"],
            "wall_seconds": timings["wall_seconds"],
            "outer_seconds": round(spec_outer, 3),
            "seconds_per_clip": timings["work_seconds"] / n,
            "peak_rss_mib_largest_rank": round(spec_peak, 1),
            "feature_bytes_per_clip": feature_bytes / n,
            "segments": timings["segments"],
        },
        "train_epoch": {
            "epoch_seconds": epoch_seconds,
            "outer_seconds": round(train_outer, 3),
            "seconds_per_clip": epoch_seconds / n,
            "peak_rss_mib": round(train_peak, 1),
            "samples": epoch.get("samples"),
            "samples_per_second": train.get("samples_per_second"),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clips", type=int, action="append", help="corpus sizes (repeat; default 500 and 4000)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (default 30)")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks of the spectrogram stage")
    parser.add_argument("--threads", type=int, default=2, help="training intra-op threads")
    parser.add_argument("--workdir", type=Path, help="keep clips here (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.clips or [500, 4000]))
    if sizes[0] < 10:
        parser.error("--clips must be at least 10")

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-scale-")
        work = Path(tmp.name)
    else:
        work = args.workdir
    try:
        t0 = time.perf_counter()
        all_clips = make_clips(work / "clips", n=sizes[-1], seconds=args.seconds)
        print(
            f"{len(all_clips)} clips of {args.seconds:g} s ready in {time.perf_counter() - t0:.1f} s"
        )
        rows = []
        for n in sizes:
            row = measure(work, clips=all_clips[:n], ranks=args.ranks, threads=args.threads)
            rows.append(row)
            spec, train = row["spectrograms"], row["train_epoch"]
            print(
                f"{n:6d} clips: spectrograms {1000 * spec['seconds_per_clip']:.1f} ms/clip, "
                f"peak rank RSS {spec['peak_rss_mib_largest_rank']:.0f} MiB, "
                f"{spec['feature_bytes_per_clip'] / 1024:.0f} KiB/clip; training epoch "
                f"{1000 * train['seconds_per_clip']:.1f} ms/clip, peak RSS "
                f"{train['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
    finally:
        if tmp is not None:
            tmp.cleanup()

    small, large = rows[0], rows[-1]

    def ratio(section: str, key: str) -> float:
        return large[section][key] / small[section][key]

    ratios = {
        "spectrograms_seconds_per_clip": ratio("spectrograms", "seconds_per_clip"),
        "spectrograms_peak_rss": ratio("spectrograms", "peak_rss_mib_largest_rank"),
        "feature_bytes_per_clip": ratio("spectrograms", "feature_bytes_per_clip"),
        "train_seconds_per_clip": ratio("train_epoch", "seconds_per_clip"),
        "train_peak_rss": ratio("train_epoch", "peak_rss_mib"),
    }
    print()
    print(f"{large['clips']} vs {small['clips']} clips (1.00 = linear time / flat memory):")
    print("what                              ratio")
    for key, value in ratios.items():
        print(f"{key:32s}  {value:5.2f}")
    record = {
        "benchmark": "scale",
        "seconds_per_clip_audio": args.seconds,
        "ranks": args.ranks,
        "threads": args.threads,
        "sizes": rows,
        "ratios_large_over_small": ratios,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
