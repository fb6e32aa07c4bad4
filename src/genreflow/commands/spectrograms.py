"""``genreflow spectrograms``: manifest -> float16 log-mel segment shards, on 1..N MPI ranks."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

from genreflow.commands._common import add_config_arguments, config_from_args

#: Taken when the CLI imports this module: the fallback start time where /proc is missing.
CLI_ENTRY = time.time()

HELP = "convert the manifest's clips into log-mel spectrogram shards (MPI-parallel)"
DESCRIPTION = (
    "Decode every clip of a manifest, resample to audio.sample_rate, cut it into log-mel "
    "segments and write float16 shards part-<rank>-<k>.npy, index.csv, bad_files.csv, "
    "timings.json, previews/ and, last, features.json. Runs on one rank under plain `genreflow`, "
    "or on N ranks under `mpiexec -n N genreflow spectrograms ...` or `srun` (with --mpi=pmi2). "
    "Clips that cannot be decoded are listed in bad_files.csv and skipped; the command fails "
    "(without features.json) when more than preprocess.max_failed_fraction of them are bad. "
    "A rerun in the same --out after a kill (time limit, preemption) resumes: it keeps the "
    "shards that the killed run finished (journal/part-<rank>-<k>.json vouches for each) and "
    "converts only the other clips, with the same result as an uninterrupted run; a changed "
    "manifest, clip file, audio/mel config, preprocess.shard_mb or .previews_per_genre, or rank "
    "count starts over (one line on stderr says why)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", metavar="CSV", required=True, help="manifest.csv to convert")
    parser.add_argument(
        "--out",
        metavar="DIR",
        required=True,
        help="feature directory (a previous run's outputs there are replaced; an interrupted "
        "run's finished shards are kept and not converted again, unless --fresh)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="do not resume an interrupted earlier run in --out: delete its shards and journals "
        "and convert every clip again (default: keep the shards it finished when the manifest, "
        "clip files, config and rank count are unchanged)",
    )
    parser.add_argument(
        "--weak-clips-per-rank",
        metavar="C",
        type=int,
        default=None,
        help="weak scaling: convert only C x (rank count) clips, spread evenly over the "
        "manifest, and record the run as a weak-scaling point (its features are a subset: not "
        "for training)",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.weak_clips_per_rank is not None and args.weak_clips_per_rank < 1:
        from genreflow.core.errors import ConfigError

        raise ConfigError(f"--weak-clips-per-rank must be >= 1, got {args.weak_clips_per_rank}")
    cfg = config_from_args(args)  # yaml + jsonschema only: numpy is not imported yet
    apply_thread_env(cfg["preprocess"]["threads_per_rank"])
    default_numba_cache(Path(args.out))

    from genreflow.spectrograms.stage import PeerStageError, process_start_time, run_spectrograms

    started = process_start_time() if Path("/proc/self/stat").exists() else CLI_ENTRY
    try:
        summary = run_spectrograms(
            manifest=args.manifest,
            out=args.out,
            cfg=cfg,
            started=started,
            fresh=args.fresh,
            weak_clips_per_rank=args.weak_clips_per_rank,
        )
    except PeerStageError:
        return 2  # rank 0 prints the reason once
    if summary.rank == 0:
        print(summary.line(), flush=True)
    return 0


def apply_thread_env(threads: int) -> None:
    """Set the BLAS/OpenMP thread variables to ``threads``, replacing inherited values.

    ``preprocess.threads_per_rank`` is the setting, whatever the environment says: Snakemake
    exports ``OMP_NUM_THREADS`` = the job's ``threads`` (ranks x threads per rank), and a
    SLURM job or a user's shell may set others. Must run before numpy is imported (OpenBLAS
    and MKL read them once, at load time); the stage also sets the loaded pools with
    threadpoolctl and records what is in force.
    """
    from genreflow.core.threads import BLAS_ENV

    for name in BLAS_ENV:
        os.environ[name] = str(threads)
    if "numpy" in sys.modules:
        print(
            "genreflow spectrograms: warning: numpy was imported before the thread settings "
            "were applied; the BLAS pools are resized with threadpoolctl instead",
            file=sys.stderr,
        )


def default_numba_cache(out: Path) -> None:
    """Point ``NUMBA_CACHE_DIR`` beside ``out`` when numba cannot cache in site-packages.

    librosa compiles numba kernels on first use and caches them next to numba's package; on
    a read-only install every rank would recompile them in every job.
    """
    if "NUMBA_CACHE_DIR" in os.environ:
        return
    spec = importlib.util.find_spec("numba")
    if spec is None or not spec.origin:
        return
    site = Path(spec.origin).parent.parent
    if not os.access(site, os.W_OK):
        os.environ["NUMBA_CACHE_DIR"] = str(out.resolve().parent / ".numba_cache")
