"""Resuming the spectrogram stage after a kill: what it saves, and that the output is the same.

Usage::

    .venv/bin/python benchmarks/bench_resume.py --workdir /tmp/bench-resume   # 2000 clips of 30 s
    .venv/bin/python benchmarks/bench_resume.py --clips 200 --ranks 2 --shard-mb 16

On ``--clips`` synthetic WAV clips (tones and noise, ``--seconds`` long, made once and reused
with ``--workdir``) and a manifest written by
:func:`genreflow.data.manifest.write_manifest`, three ``mpiexec -n RANKS genreflow
spectrograms`` runs:

(a) ``full``: an uninterrupted run (``--fresh``) into ``full/``;
(b) ``killed``: the same run (``--fresh``) into ``resumed/``, SIGKILLed (launcher, proxies and
    ranks at once, as a SLURM time limit would) once ``--kill-at`` of (a)'s shards are done;
(c) ``rerun``: the same command again on ``resumed/``, which resumes (b).

Prints the wall time of (a) and (c) (``wall_seconds`` of their ``timings.json``: process start
to results written; and the launcher's outer time), the clips (c) took over, the ratio
(c)/(a), and whether (c)'s directory is byte for byte (a)'s (every file but ``timings.json``;
``features.json`` without ``created``). Writes ``benchmarks/out/resume.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
SR = 22050
DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "resume.json"
GENRES = ("low", "mid", "high", "bright", "noisy")


def make_clips(folder: Path, *, n: int, seconds: float) -> list:
    """``n`` clips of tones and noise, ``seconds`` s, 16-bit 22050 Hz (reused if already there)."""
    import numpy as np
    import soundfile as sf

    from genreflow.data.manifest import Clip

    folder.mkdir(parents=True, exist_ok=True)
    t = (np.arange(int(seconds * SR)) / SR).astype(np.float32)
    clips = []
    for i in range(n):
        genre = GENRES[i % len(GENRES)]
        path = folder / f"{genre}.{i:05d}.wav"
        if not path.exists() or sf.info(path).frames != len(t):
            rng = np.random.default_rng(i)
            f0 = 55.0 * (1 + i % len(GENRES)) * (1 + 0.01 * (i % 17))
            y = sum(
                np.float32(0.2 / h) * np.sin(np.float32(2 * np.pi * f0 * h) * t + rng.uniform(0, 6))
                for h in (1, 2, 3)
            )
            y = y + (0.02 + 0.01 * (i % 5)) * rng.standard_normal(len(t), dtype=np.float32)
            sf.write(path, y.astype(np.float32), SR, subtype="PCM_16")
        split = ("train", "valid", "test")[i % 3]
        clips.append(Clip(path.stem, str(path), genre, (genre,), "", split))
    return clips


def find_mpiexec() -> Path:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if mpiexec.exists():
        return mpiexec
    found = shutil.which("mpiexec")
    if found is None:
        raise SystemExit("no mpiexec next to the interpreter or on PATH")
    return Path(found)


def spectrograms_cmd(args, manifest: Path, out: Path, *extra: str) -> list[str]:
    cmd = [str(find_mpiexec()), "-n", str(args.ranks), sys.executable, "-m", "genreflow"]
    cmd += ["spectrograms", "--manifest", str(manifest), "--out", str(out), *extra]
    cmd += ["--set", f"preprocess.shard_mb={args.shard_mb}"]
    return cmd


def run_env() -> dict[str, str]:
    # The stage sets its own threads per rank (preprocess.threads_per_rank).
    return {k: v for k, v in os.environ.items() if k not in THREAD_ENV}


def run(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=run_env(), check=False)
    outer = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return outer, done


def descendants(pid: int) -> list[int]:
    """``pid`` and all its descendants, parents first (hydra starts its proxies and ranks in
    sessions of their own, so one process group does not hold them all)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    pids = descendants(proc.pid)
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.time() + 60
    while any(_alive(p) for p in pids):
        if time.time() > deadline:
            raise SystemExit("ranks survived SIGKILL")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def run_killed(cmd: list[str], out: Path, *, journals: int, log: Path) -> dict:
    """Start ``cmd``; SIGKILL it once ``out/journal`` holds ``journals`` journals."""
    t0 = time.perf_counter()
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=run_env(), start_new_session=True
        )
        try:
            while len(list((out / "journal").glob("part-*.json"))) < journals:
                if proc.poll() is not None:
                    raise SystemExit(f"the run to kill ended first:\n{log.read_text()}")
                time.sleep(0.05)
        finally:
            kill_tree(proc)
    return {
        "killed_after_seconds": round(time.perf_counter() - t0, 3),
        "journals_at_kill": len(list((out / "journal").glob("part-*.json"))),
        "shards_at_kill": len(list(out.glob("part-*.npy"))),
    }


def compare(a: Path, b: Path) -> list[str]:
    """Files that differ between two feature directories (but timings.json and ``created``)."""
    names = {
        p.relative_to(root).as_posix()
        for root in (a, b)
        for p in root.rglob("*")
        if p.is_file() and p.name != "timings.json"
    }
    differ = []
    for name in sorted(names):
        fa, fb = a / name, b / name
        if not (fa.is_file() and fb.is_file()):
            differ.append(name)
        elif name == "features.json":
            info = [json.loads(f.read_text()) for f in (fa, fb)]
            for d in info:
                d.pop("created", None)
            if info[0] != info[1]:
                differ.append(name)
        elif not filecmp.cmp(fa, fb, shallow=False):
            differ.append(name)
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=2000, help="number of clips")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (s)")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks of every run")
    parser.add_argument(
        "--shard-mb",
        type=int,
        default=64,
        help="preprocess.shard_mb: smaller shards lose less work to a kill (default 64)",
    )
    parser.add_argument(
        "--kill-at",
        type=float,
        default=0.5,
        help="kill (b) once this share of (a)'s shards have journals (default 0.5)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep clips and outputs here")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUT, help="result file")
    args = parser.parse_args(argv)
    if not 0 < args.kill_at < 1:
        parser.error("--kill-at must be between 0 and 1")
    from genreflow.data.manifest import write_manifest

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-resume-")
        work = Path(tmp.name)
    else:
        work = args.workdir
    try:
        t0 = time.perf_counter()
        clips = make_clips(work / "clips", n=args.clips, seconds=args.seconds)
        print(f"{len(clips)} clips of {args.seconds:g} s ready in {time.perf_counter() - t0:.1f} s")
        manifest = work / "manifest.csv"
        write_manifest(manifest, clips, info={"source": "bench_resume"})
        full, resumed = work / "full", work / "resumed"

        outer_a, _ = run(spectrograms_cmd(args, manifest, full, "--fresh"))
        timings_a = json.loads((full / "timings.json").read_text())
        n_shards = len(list(full.glob("part-*.npy")))
        at = max(1, round(args.kill_at * n_shards))
        print(f"(a) full: {timings_a['wall_seconds']:.1f} s, {n_shards} shards")

        killed = run_killed(
            spectrograms_cmd(args, manifest, resumed, "--fresh"),
            resumed,
            journals=at,
            log=work / "killed.log",
        )
        print(f"(b) killed after {killed['killed_after_seconds']:.1f} s, {killed}")

        outer_c, done_c = run(spectrograms_cmd(args, manifest, resumed))
        timings_c = json.loads((resumed / "timings.json").read_text())
        differ = compare(full, resumed)
        disk = sum(p.stat().st_size for p in (full / "journal").glob("*.json"))
    finally:
        if tmp is not None:
            tmp.cleanup()

    wall_a, wall_c = timings_a["wall_seconds"], timings_c["wall_seconds"]
    result = {
        "clips": len(clips),
        "seconds_per_clip": args.seconds,
        "ranks": args.ranks,
        "shard_mb": args.shard_mb,
        "shards": n_shards,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
        "full": {"wall_seconds": wall_a, "outer_seconds": round(outer_a, 3)},
        "killed": killed,
        "rerun": {
            "wall_seconds": wall_c,
            "outer_seconds": round(outer_c, 3),
            "resumed_clips": timings_c["resumed_clips"],
            "converted_clips": timings_c["files"],
            "resume": timings_c["resume"],
        },
        "ratio_rerun_to_full": round(wall_c / wall_a, 3),
        "identical": not differ,
        "differing_files": differ,
        "journal_bytes": disk,
        "journal_bytes_per_clip": round(disk / len(clips), 1),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")

    print(
        f"\n{len(clips)} clips of {args.seconds:g} s, {args.ranks} ranks, "
        f"shard_mb {args.shard_mb} ({n_shards} shards), killed at {killed['journals_at_kill']} "
        "journals"
    )
    print(f"{'run':<12}{'wall s':>9}{'outer s':>9}{'converted':>11}{'resumed':>9}")
    print(f"{'(a) full':<12}{wall_a:>9.2f}{outer_a:>9.2f}{timings_a['files']:>11}{0:>9}")
    print(
        f"{'(c) rerun':<12}{wall_c:>9.2f}{outer_c:>9.2f}{timings_c['files']:>11}"
        f"{timings_c['resumed_clips']:>9}"
    )
    print(f"(c)/(a) wall: {wall_c / wall_a:.3f}")
    print(
        "(c) byte-identical to (a): "
        + ("yes" if not differ else f"NO ({len(differ)} files differ: {', '.join(differ[:5])})")
    )
    print(done_c.stdout.strip())
    print(f"\nwrote {args.json}")
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
