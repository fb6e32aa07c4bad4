"""HTTP API throughput and latency: ``genreflow serve`` under a bounded load on loopback.

Usage::

    .venv/bin/python benchmarks/bench_serve.py                      # 50 requests, 4 at a time
    .venv/bin/python benchmarks/bench_serve.py --model results/model --requests 200 --threads 2

Starts ``genreflow serve`` in a subprocess on 127.0.0.1 (any free port), waits for
``/health``, sends a few warm-up requests, then uploads 30 s demo clips (22050 Hz mono
16-bit WAV, a few different ones in turn) with ``--concurrency`` client threads until
``--requests`` have been answered or ``--max-seconds`` have passed. The server decodes and
predicts one upload at a time (``--threads`` TensorFlow threads), so extra concurrency only
queues; it shows in the latency, not in the throughput.

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


def start_server(model: Path, *, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    """``genreflow serve`` on a free loopback port; returns the process and its base URL."""
    import httpx

    cmd = [sys.executable, "-m", "genreflow", "serve", str(model), "--port", "0"]
    cmd += ["--threads", str(threads), "--no-access-log", "--log-level", "warning"]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: untrained)")
    parser.add_argument("--requests", type=int, default=50, help="requests to send")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="stop sending after this")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (s)")
    parser.add_argument("--clips", type=int, default=4, help="different clips, sent in turn")
    parser.add_argument("--threads", type=int, default=1, help="server's TensorFlow threads")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests first")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    if min(args.requests, args.concurrency, args.clips, args.threads) < 1:
        parser.error("--requests, --concurrency, --clips and --threads must be >= 1")

    import httpx

    from genreflow.atomic import write_json

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
        proc, url = start_server(model, threads=args.threads, log=log)
        startup = time.perf_counter() - started
        try:
            for i in range(args.warmup):
                name, data = uploads[i % len(uploads)]
                httpx.post(f"{url}/predict", files={"file": (name, data)}, timeout=120)
            records, wall = run_load(
                url,
                uploads,
                requests=args.requests,
                concurrency=args.concurrency,
                max_seconds=args.max_seconds,
            )
            health = httpx.get(f"{url}/health", timeout=30).json()
        finally:
            stop_server(proc)
    load_after = os.getloadavg()

    ok = [r for r in records if r["status"] == 200]
    latency = percentiles_ms([r["seconds"] for r in ok])
    parts = {
        part: percentiles_ms([r["server"][part] for r in ok if part in r["server"]])
        for part in ("queue", "decode", "features", "model", "total")
    }
    result = {
        "benchmark": "serve",
        "model": str(args.model) if args.model else "untrained default architecture",
        "clip_seconds": args.seconds,
        "clip_bytes": len(uploads[0][1]),
        "requests": len(records),
        "ok": len(ok),
        "errors": len(records) - len(ok),
        "concurrency": args.concurrency,
        "server_threads": args.threads,
        "wall_seconds": wall,
        "requests_per_second": len(ok) / wall if wall > 0 else 0.0,
        "audio_seconds_per_second": len(ok) * args.seconds / wall if wall > 0 else 0.0,
        "latency": latency,
        "server_parts": parts,
        "server_startup_seconds": startup,
        "server_health": health,
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

    print(
        f"genreflow serve on loopback: {args.seconds:g} s WAV clips ({len(uploads[0][1]) / 1e6:.2f} MB), "
        f"{args.concurrency} client threads, server --threads {args.threads}; "
        f"start-up {startup:.1f} s"
    )
    print(f"{'requests':>9} {'ok':>5} {'errors':>6} {'wall s':>7} {'req/s':>7} {'audio x':>8}")
    print(
        f"{len(records):>9} {len(ok):>5} {len(records) - len(ok):>6} {wall:>7.1f} "
        f"{result['requests_per_second']:>7.2f} {result['audio_seconds_per_second']:>8.1f}"
    )
    print()
    print(f"{'latency':<18} {'p50 ms':>8} {'p95 ms':>8} {'min':>7} {'max':>7}")
    for name, s in [
        ("client round trip", latency),
        *((f"server {k}", v) for k, v in parts.items()),
    ]:
        if s:
            print(
                f"{name:<18} {s['p50_ms']:>8.1f} {s['p95_ms']:>8.1f} {s['min_ms']:>7.1f} "
                f"{s['max_ms']:>7.1f}"
            )
    print(
        f"\nload average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
        f"{os.cpu_count()} CPUs (client and server share them)"
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
