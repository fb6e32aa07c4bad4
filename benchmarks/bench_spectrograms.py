"""Spectrogram speed: the descended project's per-clip method vs plain librosa vs genreflow.

Usage::

    .venv/bin/python benchmarks/bench_spectrograms.py                  # 40 clips of 30 s
    .venv/bin/python benchmarks/bench_spectrograms.py --clips 200 --ranks 1,2,4
    .venv/bin/python benchmarks/bench_spectrograms.py --data DIR --ranks ''   # real audio

On the same clips (real audio files under ``--data``, in their own format; otherwise real 30 s
WAV files of synthetic demo music from :mod:`genreflow.demo`, or tones and noise when it is
missing), one process and one BLAS/OpenMP thread:

(a) ``descended``: the method this project grew out of, per clip ``librosa.load(sr=None)``,
    ``librosa.feature.melspectrogram`` with defaults, ``power_to_db(ref=np.max)``, and
    ``librosa.display.specshow`` into a 0.72 x 0.72 inch figure saved as a 400 dpi JPG;
(b) ``librosa``: the same load + melspectrogram + power_to_db without the image;
(c) ``genreflow``: :class:`~genreflow.spectrograms.logmel.FeatureExtractor` (decode, resample, log-mel
    segments) plus the float16 shard write, split into those parts.

Each method runs ``--repeat`` interleaved passes over all clips (after a one-clip warm-up) and
the fastest pass counts, which keeps the numbers steady on a shared machine.

Then (d) ``mpiexec -n N genreflow spectrograms`` for each N of ``--ranks`` on the same clips:
wall time, the start-up part of it (process start to every rank ready, from
``timings.json``), and speed-up and efficiency of the work part and of the whole.

Prints a table and writes ``benchmarks/out/spectrograms.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# numpy, librosa and genreflow are imported inside the functions, after main() has pinned the
# BLAS/OpenMP threads to one (they read the variables once, when first loaded).
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

SR = 22050
TARGET_RATIO = 10.0  # vs the descended project's method
TARGET_LIBROSA_RATIO = 4.0
TARGET_MS = 10.0
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "spectrograms.json"


def make_clips(folder: Path, *, n: int, seconds: float) -> list:
    """``n`` clips of ``seconds`` s as 16-bit 22050 Hz WAVs (reused if already there)."""
    import soundfile as sf

    from genreflow.data.manifest import Clip

    try:
        from genreflow.demo import GENRES, synthesize_clip
    except ImportError:
        GENRES, synthesize_clip = ("low", "mid", "high"), None
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        genre = GENRES[i % len(GENRES)]
        path = folder / f"{genre}.{i:05d}.wav"
        if not path.exists() or sf.info(path).duration != seconds:
            if synthesize_clip is not None:
                y = synthesize_clip(genre=genre, index=i, seed=0, seconds=seconds, sample_rate=SR)
            else:
                y = _tones(i, seconds)
            sf.write(path, y, SR, subtype="PCM_16")
        split = ("train", "valid", "test")[i % 3]
        clips.append(Clip(path.stem, str(path), genre, (genre,), "", split))
    return clips


def find_clips(folder: Path, *, n: int) -> list:
    """The first ``n`` audio files under ``folder`` (sorted), labelled by their parent folder."""
    from genreflow.data.manifest import Clip

    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)[:n]
    if not paths:
        raise SystemExit(f"no audio files ({' '.join(AUDIO_EXTENSIONS)}) under {folder}")
    return [
        Clip(p.stem, str(p.resolve()), p.parent.name, (p.parent.name,), "", "train") for p in paths
    ]


def _duration(path: str) -> float:
    import soundfile as sf

    return sf.info(path).duration


def _tones(i: int, seconds: float):
    import numpy as np

    rng = np.random.default_rng(i)
    t = np.arange(int(seconds * SR)) / SR
    y = sum(0.2 / h * np.sin(2 * np.pi * 110 * (1 + i % 7) * h * t) for h in (1, 2, 3))
    return (y + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def bench_descended(paths: list[str], image_dir: Path, *, image: bool) -> dict:
    """(a) with ``image=True``, (b) without: seconds per part, summed over clips."""
    import librosa
    import librosa.display
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def one(path: str, out: Path, parts: dict) -> None:
        t0 = time.perf_counter()
        y, sr = librosa.load(path, sr=None)
        t1 = time.perf_counter()
        power = librosa.feature.melspectrogram(y=y, sr=sr)
        db = librosa.power_to_db(power, ref=np.max)
        t2 = time.perf_counter()
        parts["load"] += t1 - t0
        parts["mel"] += t2 - t1
        if image:
            fig = plt.figure(figsize=(0.72, 0.72))
            ax = fig.add_axes((0, 0, 1, 1))
            ax.set_axis_off()
            librosa.display.specshow(db, sr=sr, ax=ax)
            fig.savefig(out, dpi=400)
            plt.close(fig)
            parts["image"] += time.perf_counter() - t2

    parts = {"load": 0.0, "mel": 0.0, "image": 0.0}
    one(paths[0], image_dir / "warmup.jpg", dict(parts))  # first-call costs (numba, fonts)
    start = time.perf_counter()
    for i, path in enumerate(paths):
        one(path, image_dir / f"{i:05d}.jpg", parts)
    parts["total"] = time.perf_counter() - start
    if not image:
        del parts["image"]
    return parts


def bench_genreflow(paths: list[str], out: Path, cfg: dict) -> dict:
    """(c) decode + resample + log-mel segments + float16 shard write, one process."""
    import numpy as np

    from genreflow.spectrograms.logmel import FeatureExtractor
    from genreflow.spectrograms.shards import ShardWriter

    fx = FeatureExtractor.from_config(cfg)
    fx.segments(fx.load(paths[0]).samples)  # warm-up
    parts = {"decode": 0.0, "resample": 0.0, "mel": 0.0, "write": 0.0}
    start = time.perf_counter()
    with ShardWriter(
        directory=out, rank=0, row_shape=(fx.n_mels, fx.segment_frames), max_bytes=256 << 20
    ) as writer:
        for path in paths:
            audio = fx.load(path)
            clip = fx.segments(audio.samples, dtype=np.float16)
            t0 = time.perf_counter()
            writer.append(clip.segments)
            parts["write"] += time.perf_counter() - t0
            parts["decode"] += audio.seconds["decode"]
            parts["resample"] += audio.seconds["resample"]
            parts["mel"] += clip.seconds["mel"]
        t0 = time.perf_counter()
    parts["write"] += time.perf_counter() - t0
    parts["total"] = time.perf_counter() - start
    return parts


def bench_mpi(manifest: Path, work: Path, ranks: list[int]) -> list[dict]:
    """(d) ``mpiexec -n N genreflow spectrograms`` for each N; times from timings.json."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        found = shutil.which("mpiexec")
        if found is None:
            print("no mpiexec: skipping the scaling runs", file=sys.stderr)
            return []
        mpiexec = Path(found)
    rows = []
    for n in ranks:
        out = work / f"ranks{n}"
        cmd = [str(mpiexec), "-n", str(n), sys.executable, "-m", "genreflow", "spectrograms"]
        cmd += ["--manifest", str(manifest), "--out", str(out)]
        cmd += ["--set", "preprocess.previews_per_genre=0"]
        env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        outer = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
        t = json.loads((out / "timings.json").read_text())
        rows.append(
            {
                "ranks": n,
                "outer_seconds": round(outer, 3),
                "wall_seconds": t["wall_seconds"],
                "startup_seconds": t["startup_seconds"],
                "work_seconds": t["work_seconds"],
                "rank_import_seconds": [r["seconds"]["import"] for r in t["ranks"]],
                "rank_files": [r["files"] for r in t["ranks"]],
            }
        )
    base = rows[0] if rows and rows[0]["ranks"] == 1 else None
    for row in rows:
        if base:
            row["speedup_work"] = round(base["work_seconds"] / row["work_seconds"], 3)
            row["speedup_wall"] = round(base["wall_seconds"] / row["wall_seconds"], 3)
            row["efficiency_work"] = round(row["speedup_work"] / row["ranks"], 3)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40, help="number of clips")
    parser.add_argument("--seconds", type=float, default=30.0, help="synthetic clip length (s)")
    parser.add_argument(
        "--data", type=Path, default=None, help="folder of real audio files to use instead"
    )
    parser.add_argument("--ranks", default="1,2,4", help="MPI rank counts ('' skips them)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="passes per method; the fastest pass is reported"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep clips and outputs here")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUT, help="result file")
    args = parser.parse_args(argv)
    for name in THREAD_ENV:  # one core per method
        os.environ.setdefault(name, "1")
    if "numpy" in sys.modules:
        print("warning: numpy was loaded before the thread settings", file=sys.stderr)
    from genreflow.core.config import load_config
    from genreflow.data.manifest import write_manifest

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-spectrograms-")
        work = Path(tmp.name)
    else:
        work = args.workdir
    try:
        t0 = time.perf_counter()
        if args.data is not None:
            clips = find_clips(args.data, n=args.clips)
            source = str(args.data)
        else:
            clips = make_clips(work / "clips", n=args.clips, seconds=args.seconds)
            source = "synthetic"
        print(f"{len(clips)} clips ({source}) ready in {time.perf_counter() - t0:.1f} s")
        manifest = work / "manifest.csv"
        write_manifest(manifest, clips, info={"source": "bench_spectrograms"})
        paths = [c.path for c in clips]
        clip_seconds = sum(_duration(p) for p in paths)
        cfg = load_config(None)
        images = work / "jpg"
        images.mkdir(exist_ok=True)
        shards = work / "shards"
        shards.mkdir(exist_ok=True)

        runners = {
            "descended": lambda: bench_descended(paths, images, image=True),
            "librosa": lambda: bench_descended(paths, images, image=False),
            "genreflow": lambda: bench_genreflow(paths, shards, cfg),
        }
        # Interleaved passes, keeping each method's fastest: other load on the machine only
        # ever adds time, so the minimum is the steadiest estimate of the method's own cost.
        methods: dict[str, dict] = {}
        for _ in range(args.repeat):
            for name, runner in runners.items():
                parts = runner()
                if name not in methods or parts["total"] < methods[name]["total"]:
                    methods[name] = parts
        ranks = [int(x) for x in args.ranks.split(",") if x.strip()]
        scaling = bench_mpi(manifest, work, ranks) if ranks else []
    finally:
        if tmp is not None:
            tmp.cleanup()

    n = len(paths)
    per_clip = {
        name: {part: round(1000 * s / n, 3) for part, s in parts.items()}
        for name, parts in methods.items()
    }
    ours_ms = per_clip["genreflow"]["total"]
    ratio = per_clip["descended"]["total"] / ours_ms
    librosa_ratio = per_clip["librosa"]["total"] / ours_ms
    result = {
        "clips": n,
        "source": source,
        "formats": sorted({Path(p).suffix.lower() for p in paths}),
        "seconds_per_clip": round(clip_seconds / n, 3),
        "sample_rate": SR,
        "threads": os.environ["OMP_NUM_THREADS"],
        "repeat": args.repeat,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "ms_per_clip": per_clip,
        "speedup_vs_descended": round(ratio, 2),
        "speedup_vs_librosa": round(librosa_ratio, 2),
        "targets": {
            "speedup_vs_descended": TARGET_RATIO,
            "speedup_vs_librosa": TARGET_LIBROSA_RATIO,
            "ms_per_clip": TARGET_MS,
            "met": bool(
                ratio >= TARGET_RATIO
                and librosa_ratio >= TARGET_LIBROSA_RATIO
                and ours_ms <= TARGET_MS
            ),
        },
        "scaling": scaling,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"\nper clip ({source}, {' '.join(result['formats'])}, mean {clip_seconds / n:.1f} s), "
        f"one process, 1 thread (ms), {n} clips, fastest of {args.repeat} pass(es)"
    )
    print(f"{'method':<11}{'total':>9}  parts")
    for name, parts in per_clip.items():
        detail = "  ".join(f"{k} {v:.2f}" for k, v in parts.items() if k != "total")
        print(f"{name:<11}{parts['total']:>9.2f}  {detail}")
    print(
        f"genreflow vs descended: {ratio:.1f}x (target >= {TARGET_RATIO:g}x); "
        f"vs librosa: {librosa_ratio:.2f}x (target >= {TARGET_LIBROSA_RATIO:g}x); "
        f"{ours_ms:.2f} ms per clip (target <= {TARGET_MS:g} ms)"
    )
    if scaling:
        print(
            f"\n{'ranks':>5}{'wall s':>9}{'startup s':>11}{'work s':>9}{'speed-up':>10}{'eff.':>7}"
        )
        for row in scaling:
            print(
                f"{row['ranks']:>5}{row['wall_seconds']:>9.2f}{row['startup_seconds']:>11.2f}"
                f"{row['work_seconds']:>9.2f}{row.get('speedup_work', float('nan')):>10.2f}"
                f"{row.get('efficiency_work', float('nan')):>7.2f}"
            )
        print("speed-up and efficiency of the work part (wall minus start-up) vs 1 rank")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
