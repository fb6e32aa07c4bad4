"""Training throughput with 1 and N data-parallel workers, and the projected scaling.

Usage::

    .venv/bin/python benchmarks/bench_workers.py                       # demo features, 1 and 2 workers
    .venv/bin/python benchmarks/bench_workers.py --features DIR --workers 1,2 --threads 1 --repeat 2

Every run is ``genreflow train --workers N --threads T --epochs E`` in fresh processes (N
workers on 127.0.0.1, started by the command itself), runs interleaved (1, 2, 1, 2, ...) so
that load changes hit every count alike. From each run's ``timings.json``: global samples/s
(steady epochs), every worker's samples/s, and the all-reduce time of one gradient-sized
tensor measured between the workers (``workers.allreduce_seconds``).

Projection (weak scaling: every worker keeps ``batch_size`` examples per step, each on its own
node): with ``t_c`` the compute time of one step on one worker (batch / 1-worker samples/s)
and ``a(N)`` the all-reduce time, ``S(N) = N * t_c / (t_c + a(N))``; a ring all-reduce moves
``2 (N - 1) / N`` times the gradient size, so ``a(N) = a(2) * 2 (N - 1) / N`` from the measured
2-worker value. On one machine the workers also share its cores, so the measured 2-worker
speed-up is below the projection; loopback also hides network latency (the projection is
optimistic for slow interconnects).

Prints a table and writes ``benchmarks/out/workers.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import DEFAULT_WORKDIR, demo_features, train_once  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "workers.json"


def project(*, step_compute: float, allreduce_2: float, n: int) -> float:
    """Projected weak-scaling speed-up of ``n`` workers (see the module docstring)."""
    if n == 1:
        return 1.0
    allreduce = allreduce_2 * 2 * (n - 1) / n
    return n * step_compute / (step_compute + allreduce)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=Path, default=None, help="feature directory")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="demo data cache")
    parser.add_argument("--clips-per-genre", type=int, default=10, help="demo clips per genre")
    parser.add_argument("--seconds", type=float, default=10.0, help="demo clip length (s)")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per worker")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (first = warm-up)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per count (interleaved)")
    parser.add_argument("--project", default="2,4,8,16", help="worker counts to project")
    parser.add_argument(
        "--set", dest="settings", action="append", default=[], help="extra config KEY=VALUE"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    counts = [int(t) for t in args.workers.split(",") if t.strip()]
    if 1 not in counts or not any(n > 1 for n in counts):
        parser.error("--workers needs 1 and at least one count > 1")
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch is warm-up and not counted")

    features = args.features or demo_features(
        args.workdir, clips_per_genre=args.clips_per_genre, seconds=args.seconds
    )
    load_before = os.getloadavg()
    runs: dict[int, list[dict]] = {n: [] for n in counts}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for r in range(args.repeat):
            for n in counts:
                out = Path(tmp) / f"model-w{n}-r{r}"
                t = train_once(
                    features,
                    out,
                    threads=args.threads,
                    epochs=args.epochs,
                    settings=args.settings,
                    extra=("--workers", str(n)),
                )
                runs[n].append(t)
                extra = ""
                if n > 1:
                    w = t["workers"]
                    extra = (
                        f", all-reduce {1000 * w['allreduce_seconds']:.2f} ms/step "
                        f"({100 * w['allreduce_fraction']:.1f}% of training time)"
                    )
                print(
                    f"  run {r + 1}/{args.repeat}, {n} worker(s): "
                    f"{t['samples_per_second']:.1f} samples/s{extra}",
                    flush=True,
                )
    load_after = os.getloadavg()

    rows = []
    for n in counts:
        rates = [t["samples_per_second"] for t in runs[n]]
        row = {
            "workers": n,
            "threads_per_worker": args.threads,
            "samples_per_second_median": statistics.median(rates),
            "samples_per_second_runs": rates,
        }
        if n > 1:
            per = [w["samples_per_second"] for t in runs[n] for w in t["workers"]["per_worker"]]
            row["worker_samples_per_second_median"] = statistics.median(per)
            row["allreduce_seconds_median"] = statistics.median(
                t["workers"]["allreduce_seconds"] for t in runs[n]
            )
            row["allreduce_fraction_median"] = statistics.median(
                t["workers"]["allreduce_fraction"] for t in runs[n]
            )
            row["gradient_values"] = runs[n][0]["workers"]["gradient_values"]
        rows.append(row)
    base = next(r for r in rows if r["workers"] == 1)
    for row in rows:
        row["speedup"] = row["samples_per_second_median"] / base["samples_per_second_median"]
        row["efficiency"] = row["speedup"] / row["workers"]

    batch = runs[1][0]["batch_size"]
    step_compute = batch / base["samples_per_second_median"]
    two = next((r for r in rows if r["workers"] == 2), None)
    projection = []
    if two is not None:
        for n in (int(x) for x in args.project.split(",") if x.strip()):
            s = project(step_compute=step_compute, allreduce_2=two["allreduce_seconds_median"], n=n)
            projection.append({"workers": n, "speedup": s, "efficiency": s / n})

    print()
    print(
        f"data-parallel training, {features}, {args.threads} thread(s) per worker, "
        f"{args.epochs} epochs x {args.repeat} run(s) per count"
    )
    print(
        f"{'workers':>7} {'samples/s':>10} {'per worker':>10} {'all-reduce':>11} "
        f"{'comm share':>10} {'speed-up':>8} {'efficiency':>10}"
    )
    for row in rows:
        per = row.get("worker_samples_per_second_median")
        ar = row.get("allreduce_seconds_median")
        share = row.get("allreduce_fraction_median")
        print(
            f"{row['workers']:>7} {row['samples_per_second_median']:>10.1f} "
            f"{(f'{per:.1f}' if per else '-'):>10} "
            f"{(f'{1000 * ar:.2f} ms' if ar else '-'):>11} "
            f"{(f'{100 * share:.1f}%' if share is not None else '-'):>10} "
            f"{row['speedup']:>8.2f} {row['efficiency']:>10.2f}"
        )
    if projection:
        print(
            f"projected (one worker per node, compute {1000 * step_compute:.1f} ms/step, "
            f"all-reduce {1000 * two['allreduce_seconds_median']:.2f} ms at 2 workers): "
            + ", ".join(f"{p['workers']}: {p['speedup']:.2f}x" for p in projection)
        )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; {os.cpu_count()} CPUs"
    )

    from genreflow.core.atomic import write_json

    write_json(
        args.out,
        {
            "benchmark": "workers",
            "features": str(features),
            "epochs": args.epochs,
            "repeat": args.repeat,
            "threads_per_worker": args.threads,
            "settings": args.settings,
            "rows": rows,
            "step_compute_seconds": step_compute,
            "projection": projection,
            "runs": {str(n): runs[n] for n in counts},
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
