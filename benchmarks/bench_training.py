"""Training throughput against TensorFlow's intra-op thread count.

Usage::

    .venv/bin/python benchmarks/bench_training.py                      # demo features, 1 and 2 threads
    .venv/bin/python benchmarks/bench_training.py --features DIR --threads 1,2,4 --repeat 3

For every thread count, ``genreflow train --threads N --epochs E`` runs in a fresh process
(TensorFlow fixes its thread pools when it starts), on the same features, with the runs
interleaved (1, 2, 1, 2, ...) so that a change in machine load hits every count alike. The
samples per second of each run come from its ``timings.json``: training samples over training
time of every epoch but the first (which includes graph tracing). The thread settings printed
are the ones read back from TensorFlow.

Without ``--features`` the script makes the demo data set (``genreflow demo-data``, then
``manifest`` and ``spectrograms``) in ``--workdir`` once and reuses it.

Prints a table and writes ``benchmarks/out/training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "training.json"
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "out" / "work-training"


def genreflow(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m genreflow ARGS`` and fail loudly with its stderr."""
    cmd = [sys.executable, "-m", "genreflow", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return done


def demo_features(workdir: Path, *, clips_per_genre: int, seconds: float) -> Path:
    """The demo data set's feature directory in ``workdir`` (made once, then reused)."""
    features = workdir / "features"
    marker = workdir / "made-with.json"
    recipe = {"clips_per_genre": clips_per_genre, "seconds": seconds}
    made = marker.is_file() and json.loads(marker.read_text()) == recipe
    if made and (features / "features.json").is_file():
        return features
    print(f"making demo features in {workdir} ...", flush=True)
    audio = workdir / "audio"
    genreflow(
        "demo-data",
        "--out",
        str(audio),
        "--clips-per-genre",
        str(clips_per_genre),
        "--seconds",
        str(seconds),
        "--no-progress",
    )
    genreflow("manifest", "--data", str(audio), "--out", str(workdir / "manifest.csv"))
    genreflow("spectrograms", "--manifest", str(workdir / "manifest.csv"), "--out", str(features))
    marker.write_text(json.dumps(recipe))
    return features


def train_once(
    features: Path,
    out: Path,
    *,
    threads: int,
    epochs: int,
    settings: list[str],
    extra: tuple[str, ...] = (),
) -> dict:
    """One ``genreflow train`` run in a fresh process (+ ``extra`` options); its ``timings.json``."""
    args = ["train", "--features", str(features), "--out", str(out), *extra]
    args += ["--threads", str(threads), "--epochs", str(epochs)]
    for setting in settings:
        args += ["--set", setting]
    # The command sets the thread variables itself; drop any inherited ones, and any worker
    # discovery (TF_CONFIG, a SLURM step) that would join this run to others.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_NUM_THREADS") and k != "TF_CONFIG" and not k.startswith("SLURM_")
    }
    started = time.perf_counter()
    genreflow(*args, env=env)
    timings = json.loads((out / "timings.json").read_text())
    timings["process_seconds"] = time.perf_counter() - started
    return timings


#: Times float32 matrix products in a fresh process whose BLAS uses ``argv[1]`` threads and
#: prints the best GFLOP/s: the machine's practical matmul peak for that many cores.
_SGEMM_PROBE = """
import sys, time
import numpy as np
n, repeat = int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
a @ b
best = float("inf")
for _ in range(repeat):
    t0 = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t0)
print(2 * n**3 / best / 1e9)
"""


def sgemm_gflops(threads: int, *, n: int = 2048, repeat: int = 5) -> float:
    """Best float32 GEMM rate (GFLOP/s) of numpy's BLAS on ``threads`` threads, in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    done = subprocess.run(
        [sys.executable, "-c", _SGEMM_PROBE, str(threads), str(n), str(repeat)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


#: Iterates the training input pipeline alone (no model) in a fresh process bound to
#: ``argv[2]`` cores: samples per second of the tf.data work an epoch needs, as
#: ``genreflow train`` builds it (``genreflow.training.pipeline.train_input``).
_INPUT_PROBE = """
import json, sys, time
from genreflow.core.threads import start_tensorflow
threads, epochs = int(sys.argv[2]), int(sys.argv[3])
start_tensorflow(intra_op=threads, inter_op=threads, bind=True)
from genreflow.commands._common import config_from_args
import argparse
cfg = config_from_args(argparse.Namespace(config=None, overrides=json.loads(sys.argv[4])))
from genreflow.training.dataset import read_training_data
from genreflow.training.distributed import WorkerGroup
from genreflow.training.pipeline import train_input, training_samplers
tcfg = cfg["train"]
data = read_training_data(sys.argv[1], tcfg=tcfg)
sampler, _ = training_samplers(tcfg, data=data, group=WorkerGroup(count=1, index=0, source="single"))
ds = train_input(tcfg, data=data, sampler=sampler, batch_size=int(tcfg["batch_size"]))
rates = []
for epoch in range(epochs):
    sampler.epoch = epoch
    t0, n = time.perf_counter(), 0
    for batch in ds:
        n += int(batch[0].shape[0])
    if epoch:  # the first epoch traces the pipeline's functions
        rates.append(n / (time.perf_counter() - t0))
print(json.dumps({"samples_per_second": sorted(rates)[len(rates) // 2]}))
"""


def input_only_rate(features: Path, *, threads: int, epochs: int, settings: list[str]) -> float:
    """Samples/s of the training input pipeline alone (median over its epochs but the first)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("_NUM_THREADS") and k != "TF_CONFIG" and not k.startswith("SLURM_")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _INPUT_PROBE,
            str(features),
            str(threads),
            str(max(epochs, 2)),
            json.dumps(settings),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"input-only probe failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["samples_per_second"])


def training_crop_frames(model_dir: Path, settings: list[str]) -> int:
    """Frames of a training example: ``train.crop_fraction`` of the model's segment frames."""
    from genreflow.commands._common import config_from_args

    cfg = config_from_args(argparse.Namespace(config=None, overrides=settings))
    crop_fraction = float(cfg["train"]["crop_fraction"])
    info = json.loads((model_dir / "genreflow.json").read_text())
    return round(crop_fraction * int(info["segment_frames"]))


def training_flops_per_sample(model_path: Path, *, n_frames: int) -> dict[str, float]:
    """FLOPs of one training example through the saved model, counted layer by layer.

    Forward: 2 x multiply-adds of every Conv2D and Dense layer at the training input width
    (``n_frames``, the crop); batch normalisation, pooling and activations are left out (a few
    % more, memory-bound). Training ~ 3 x forward (the backward pass computes gradients for
    both the inputs and the weights of every layer: ~2 x forward).
    """
    import keras

    model = keras.models.load_model(model_path, compile=False)
    height = model.input_shape[1]
    fixed = keras.models.clone_model(
        model, input_tensors=keras.Input((height, n_frames, 1), name="logmel_fixed")
    )
    forward = 0.0
    for layer in fixed.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k_h, k_w = layer.kernel_size
            c_in = layer.input.shape[-1]
            forward += 2.0 * k_h * k_w * c_in * c_out * h * w
        elif isinstance(layer, keras.layers.Dense):
            forward += 2.0 * layer.input.shape[-1] * layer.units
    return {"forward": forward, "training": 3.0 * forward}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, default=None, help="feature directory to train on")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="demo data cache")
    parser.add_argument("--clips-per-genre", type=int, default=10, help="demo clips per genre")
    parser.add_argument("--seconds", type=float, default=10.0, help="demo clip length (s)")
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts, comma-separated")
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per run (the first is warm-up)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per thread count (interleaved)")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], help="extra config KEY=VALUE"
    )
    parser.add_argument(
        "--variant",
        dest="variants",
        action="append",
        default=[],
        help="also run every thread count with this KEY=VALUE (interleaved), e.g. "
        "train.jit_compile=true; repeatable, one variant each",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    counts = [int(t) for t in args.threads.split(",") if t.strip()]
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch is warm-up and not counted")

    features = args.features or demo_features(
        args.workdir, clips_per_genre=args.clips_per_genre, seconds=args.seconds
    )
    load_before = os.getloadavg()
    variants = ["", *args.variants]  # "" = the settings as given
    keys = [(n, v) for n in counts for v in variants]
    runs: dict[tuple[int, str], list[dict]] = {key: [] for key in keys}
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        for r in range(args.repeat):
            for i, (n, variant) in enumerate(keys):
                out = Path(tmp) / f"model-{i}-r{r}"
                settings = [*args.settings, *([variant] if variant else [])]
                t = train_once(features, out, threads=n, epochs=args.epochs, settings=settings)
                runs[(n, variant)].append(t)
                print(
                    f"  run {r + 1}/{args.repeat}, {n} thread(s) {variant}: "
                    f"{t['samples_per_second']:.1f} samples/s (TensorFlow "
                    f"intra_op={t['threads']['intra_op']}, inter_op={t['threads']['inter_op']})",
                    flush=True,
                )
        # The same machine's matmul peak, measured in this run, for each thread count, and
        # the input pipeline alone on as many cores.
        sgemm = {n: sgemm_gflops(n) for n in counts}
        input_only = {
            n: input_only_rate(features, threads=n, epochs=args.epochs, settings=args.settings)
            for n in counts
        }
        crop = training_crop_frames(Path(tmp) / "model-0-r0", args.settings)
        flops = training_flops_per_sample(Path(tmp) / "model-0-r0" / "model.keras", n_frames=crop)
    load_after = os.getloadavg()

    rows = []
    for n, variant in keys:
        done = runs[(n, variant)]
        rates = [t["samples_per_second"] for t in done]
        steady = [e for t in done for e in t["epochs"] if not e["warmup"]]
        epoch_seconds = [e["seconds"] for e in steady]
        # Validation, callbacks and checkpoint writes: outside the training steps.
        per_epoch = [e["seconds"] - e["train_seconds"] for e in steady]
        rows.append(
            {
                "threads": n,
                "variant": variant,
                "intra_op_read_back": sorted({t["threads"]["intra_op"] for t in done}),
                "inter_op_read_back": sorted({t["threads"]["inter_op"] for t in done}),
                "samples_per_second_median": statistics.median(rates),
                "samples_per_second_min": min(rates),
                "samples_per_second_max": max(rates),
                "samples_per_second_runs": rates,
                "epoch_seconds_median": statistics.median(epoch_seconds),
                "per_epoch_cost_seconds_median": statistics.median(per_epoch),
                "per_epoch_cost_fraction": statistics.median(per_epoch)
                / statistics.median(epoch_seconds),
                # Once per run, before the first epoch: every shard read for its SHA-256.
                "shard_check_seconds_median": statistics.median(
                    t.get("shard_check_seconds") or 0.0 for t in done
                ),
                "input_only_samples_per_second": input_only[n],
                "bound_cpus": sorted({len(t["threads"].get("cpus") or []) for t in done}),
                "precision": sorted({t.get("precision", "float32") for t in done}),
                "samples_per_epoch": done[0]["epochs"][-1]["samples"],
                "training_gflops": statistics.median(rates) * flops["training"] / 1e9,
                "sgemm_gflops": sgemm[n],
            }
        )
        rows[-1]["fraction_of_sgemm"] = rows[-1]["training_gflops"] / sgemm[n]
    for row in rows:  # against the fewest threads of the same variant
        base = next(b for b in rows if b["variant"] == row["variant"])
        row["speedup"] = row["samples_per_second_median"] / base["samples_per_second_median"]
        row["efficiency"] = row["speedup"] / (row["threads"] / base["threads"])

    print()
    print(f"training throughput, {features}, {args.epochs} epochs x {args.repeat} run(s) per count")
    print(
        f"model: {flops['forward'] / 1e6:.1f} MFLOP forward, ~{flops['training'] / 1e6:.1f} MFLOP "
        f"per training example ({crop} frames)"
    )
    print(
        f"{'variant':<32} {'threads':>7} {'cores':>5} {'samples/s':>10} {'(min-max)':>15} "
        f"{'s/epoch':>8} {'per-epoch':>9} {'input only':>10} {'speed-up':>8} {'efficiency':>10} "
        f"{'GFLOP/s':>8} {'SGEMM':>8} {'of SGEMM':>8}"
    )
    for row in rows:
        spread = f"({row['samples_per_second_min']:.1f}-{row['samples_per_second_max']:.1f})"
        print(
            f"{row['variant'] or '(as configured)':<32} {row['threads']:>7} "
            f"{','.join(map(str, row['bound_cpus'])):>5} "
            f"{row['samples_per_second_median']:>10.1f} {spread:>15} "
            f"{row['epoch_seconds_median']:>8.2f} {100 * row['per_epoch_cost_fraction']:>8.1f}% "
            f"{row['input_only_samples_per_second']:>10.0f} "
            f"{row['speedup']:>8.2f} {row['efficiency']:>10.2f} "
            f"{row['training_gflops']:>8.1f} {row['sgemm_gflops']:>8.1f} "
            f"{100 * row['fraction_of_sgemm']:>7.1f}%"
        )
    print(
        "samples/s: training steps only (epochs after the first); per-epoch: share of an epoch "
        "outside the steps (validation, callbacks, checkpoints); input only: the tf.data "
        "pipeline alone on the same cores; cores: CPUs the run was bound to"
    )
    check = rows[0]["shard_check_seconds_median"]
    print(
        f"shard check (SHA-256 of every shard, once per run): {check:.3f} s = "
        f"{100 * check / rows[0]['epoch_seconds_median']:.1f}% of one epoch "
        f"({rows[0]['epoch_seconds_median']:.2f} s, {rows[0]['threads']} thread(s))"
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} CPUs"
    )

    from genreflow.core.atomic import write_json

    write_json(
        args.out,
        {
            "benchmark": "training",
            "features": str(features),
            "epochs": args.epochs,
            "repeat": args.repeat,
            "settings": args.settings,
            "flops_per_example": flops,
            "crop_frames": crop,
            "rows": rows,
            "variants": args.variants,
            "runs": {f"{n} {v}".strip(): runs[(n, v)] for n, v in keys},
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
