"""HTTP API throughput and latency: ``genreflow serve`` under a bounded load on loopback.

Usage::

    .venv/bin/python benchmarks/bench_serve.py                      # 1 client, then 4
    .venv/bin/python benchmarks/bench_serve.py --model results/model --requests 200 --threads 2

Starts ``genreflow serve`` in a subprocess on 127.0.0.1 (any free port), waits for
``/health``, sends a few warm-up requests, then uploads 30 s demo clips (22050 Hz mono
16-bit WAV, a few different ones in turn) with ``--concurrency`` client threads until
``--requests`` have been answered or ``--max-seconds`` have passed, once for each client count
of ``--concurrency`` (default ``1,4``: one client alone, then four in flight), against the
same server. The server prepares uploads in ``serve.prepare_threads`` threads and runs the
model over every clip ready at once (micro-batching), on ``--threads`` TensorFlow threads.

Without ``--model`` it uses an untrained model of the default architecture and input size
(``bench_predict.untrained_model_dir``): the cost of a request does not depend on the weights.

Prints requests/s, latency percentiles and the server-side split of a request (queue, decode,
features, model, from the responses), and writes ``benchmarks/out/serve.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "serve.json"
STARTUP_TIMEOUT = 180


def write_clips(folder: Path, *, n: int, seconds: float) -> list[Path]:
    """``n`` different demo clips of ``seconds`` s as 22050 Hz mono 16-bit WAVs."""
    import soundfile as sf

    from genreflow.demo import GENRES, synthesize_clip

    paths = []
    for i in range(n):
        genre = GENRES[i % len(GENRES)]
        y = synthesize_clip(genre=genre, index=i, seed=0, seconds=seconds, sample_rate=22050)
        path = folder / f"{genre}.{i:05d}.wav"
        sf.write(path, y, 22050, subtype="PCM_16")
        paths.append(path)
    return paths


def start_server(
    model: Path, *, threads: int, log: Path, settings: tuple[str, ...] = ()
) -> tuple[subprocess.Popen, str]:
    """``genreflow serve`` on a free loopback port; returns the process and its base URL."""
    import httpx

    cmd = [sys.executable, "-m", "genreflow", "serve", str(model), "--port", "0"]
    cmd += ["--threads", str(threads), "--no-access-log", "--log-level", "warning"]
    for setting in settings:
        cmd += ["--set", setting]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    deadline, url = time.monotonic() + STARTUP_TIMEOUT, ""
    while time.monotonic() < deadline and proc.poll() is None:
        if not url:
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
            url = found.group(1) if found else ""
        if url:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    return proc, url
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    stop_server(proc)
    raise SystemExit(f"server did not start:\n{log.read_text(errors='replace')}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_load(
    url: str,
    uploads: list[tuple[str, bytes]],
    *,
    requests: int,
    concurrency: int,
    max_seconds: float,
) -> tuple[list[dict], float]:
    """Send up to ``requests`` uploads, ``concurrency`` at a time, for at most ``max_seconds``.

    Returns one ``{"status", "seconds", "server"}`` record per answered request and the wall
    time from the first request to the last answer.
    """
    import threading

    import httpx

    lock = threading.Lock()
    issued = [0]
    start = time.perf_counter()
    deadline = start + max_seconds

    def client_loop() -> list[dict]:
        records = []
        with httpx.Client(timeout=max(60.0, max_seconds)) as client:
            while time.perf_counter() < deadline:
                with lock:
                    if issued[0] >= requests:
                        break
                    i = issued[0]
                    issued[0] += 1
                name, data = uploads[i % len(uploads)]
                t0 = time.perf_counter()
                try:
                    r = client.post(f"{url}/predict", files={"file": (name, data, "audio/wav")})
                    status, body = r.status_code, r.json()
                except httpx.HTTPError as exc:
                    status, body = 0, {"error": type(exc).__name__}
                records.append(
                    {
                        "status": status,
                        "seconds": time.perf_counter() - t0,
                        "server": body.get("seconds", {}),
                    }
                )
        return records

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(client_loop) for _ in range(concurrency)]
        records = [r for f in futures for r in f.result()]
    return records, time.perf_counter() - start


def percentiles_ms(values: list[float]) -> dict:
    import numpy as np

    if not values:
        return {}
    ms = np.asarray(values) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


TARGETS = {  # issue 14, 30-s WAV uploads on 2 cores
    "alone_p50_ms": 100.0,
    "concurrent_clients": 4,
    "concurrent_requests_per_second": 20.0,
    "concurrent_p95_ms": 250.0,
}


def summarise(records: list[dict], wall: float, *, concurrency: int, clip_seconds: float) -> dict:
    """Throughput, client latency and the server's split of a request, for one load level."""
    ok = [r for r in records if r["status"] == 200]
    return {
        "concurrency": concurrency,
        "requests": len(records),
        "ok": len(ok),
        "errors": len(records) - len(ok),
        "wall_seconds": wall,
        "requests_per_second": len(ok) / wall if wall > 0 else 0.0,
        "audio_seconds_per_second": len(ok) * clip_seconds / wall if wall > 0 else 0.0,
        "latency": percentiles_ms([r["seconds"] for r in ok]),
        "server_parts": {
            part: percentiles_ms([r["server"][part] for r in ok if part in r["server"]])
            for part in ("queue", "decode", "features", "model", "total")
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: untrained)")
    parser.add_argument("--requests", type=int, default=60, help="requests per load level")
    parser.add_argument(
        "--concurrency", default="1,4", help="client threads, one load level each (e.g. 1,4,16)"
    )
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per load level")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (s)")
    parser.add_argument("--clips", type=int, default=4, help="different clips, sent in turn")
    parser.add_argument("--threads", type=int, default=2, help="server's TensorFlow threads")
    parser.add_argument("--warmup", type=int, default=4, help="untimed requests first")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        help="server config KEY=VALUE, e.g. serve.prepare_threads=1 (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if not levels or min(args.requests, args.clips, args.threads, *levels) < 1:
        parser.error("--requests, --concurrency, --clips and --threads must be >= 1")

    import httpx

    from genreflow.core.atomic import write_json

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        if args.model is None:
            from bench_predict import untrained_model_dir

            model = untrained_model_dir(tmp / "model")
        else:
            model = args.model
        clips = write_clips(tmp, n=args.clips, seconds=args.seconds)
        uploads = [(p.name, p.read_bytes()) for p in clips]
        log = tmp / "server.log"
        started = time.perf_counter()
        proc, url = start_server(model, threads=args.threads, log=log, settings=args.settings)
        startup = time.perf_counter() - started
        runs = []
        try:
            for i in range(args.warmup):
                name, data = uploads[i % len(uploads)]
                httpx.post(f"{url}/predict", files={"file": (name, data)}, timeout=120)
            for concurrency in levels:
                records, wall = run_load(
                    url,
                    uploads,
                    requests=args.requests,
                    concurrency=concurrency,
                    max_seconds=args.max_seconds,
                )
                runs.append(
                    summarise(records, wall, concurrency=concurrency, clip_seconds=args.seconds)
                )
            health = httpx.get(f"{url}/health", timeout=30).json()
        finally:
            stop_server(proc)
    load_after = os.getloadavg()

    by_level = {run["concurrency"]: run for run in runs}
    targets = dict(TARGETS)
    alone, busy = by_level.get(1), by_level.get(TARGETS["concurrent_clients"])
    if alone and busy and alone["ok"] and busy["ok"]:
        targets["met"] = bool(
            alone["latency"]["p50_ms"] <= TARGETS["alone_p50_ms"]
            and busy["requests_per_second"] >= TARGETS["concurrent_requests_per_second"]
            and busy["latency"]["p95_ms"] <= TARGETS["concurrent_p95_ms"]
        )
    result = {
        "benchmark": "serve",
        "model": str(args.model) if args.model else "untrained default architecture",
        "clip_seconds": args.seconds,
        "clip_bytes": len(uploads[0][1]),
        "server_threads": args.threads,
        "server_settings": args.settings,
        "runs": runs,
        "targets": targets,
        "server_startup_seconds": startup,
        "server_health": health,
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

    print(
        f"genreflow serve on loopback: {args.seconds:g} s WAV clips "
        f"({len(uploads[0][1]) / 1e6:.2f} MB), server --threads {args.threads}; "
        f"start-up {startup:.1f} s"
    )
    print(
        f"{'clients':>7} {'ok':>5} {'err':>4} {'wall s':>7} {'req/s':>7} {'p50 ms':>7} "
        f"{'p95 ms':>7}  server p50 ms: queue decode features model"
    )
    for run in runs:
        lat, parts = run["latency"], run["server_parts"]
        split = " ".join(
            f"{parts[p]['p50_ms']:.1f}" if parts[p] else "-"
            for p in ("queue", "decode", "features", "model")
        )
        print(
            f"{run['concurrency']:>7} {run['ok']:>5} {run['errors']:>4} {run['wall_seconds']:>7.1f} "
            f"{run['requests_per_second']:>7.2f} {lat.get('p50_ms', float('nan')):>7.1f} "
            f"{lat.get('p95_ms', float('nan')):>7.1f}  {split}"
        )
    batches = health.get("batches", {})
    if batches.get("model_calls"):
        print(
            f"model calls {batches['model_calls']} for {batches['clips']} clips "
            f"({batches['clips'] / batches['model_calls']:.2f} clips per call)"
        )
    print(
        f"targets: alone p50 <= {TARGETS['alone_p50_ms']:g} ms; "
        f"{TARGETS['concurrent_clients']} clients >= {TARGETS['concurrent_requests_per_second']:g} "
        f"req/s at p95 <= {TARGETS['concurrent_p95_ms']:g} ms: met = {targets.get('met')}"
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
        f"{os.cpu_count()} CPUs (client and server share them)"
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0 if all(run["ok"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
