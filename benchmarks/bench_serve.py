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

Authentication and load shedding, each on a server of its own::

    .venv/bin/python benchmarks/bench_serve.py --token                 # the same, with a token
    .venv/bin/python benchmarks/bench_serve.py --compare-auth --concurrency 4
    .venv/bin/python benchmarks/bench_serve.py --unauthorized 1000     # 1000 x 401, no model call
    .venv/bin/python benchmarks/bench_serve.py --shed                  # 32 clients, max_pending 8

``--compare-auth`` starts a server without a token and one with a token (``--token-file``;
the clients send ``Authorization: Bearer``), runs each load level on one then the other, and
prints both and their ratio. ``--unauthorized N`` sends N uploads without the token to a server that wants one: all
must be 401 and ``/health`` must count no model call. ``--shed`` starts a server with
``serve.max_pending`` = ``--shed-max-pending`` (8), runs 4 clients, then ``--shed-clients``
(32): only 200 and 503 may come back, and the p95 of the accepted requests is set beside the
4-client p95.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
    model: Path,
    *,
    threads: int,
    log: Path,
    settings: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
) -> tuple[subprocess.Popen, str]:
    """``genreflow serve`` on a free loopback port; returns the process and its base URL.

    ``extra`` are more command-line arguments (``--token-file FILE``).
    """
    import httpx

    cmd = [sys.executable, "-m", "genreflow", "serve", str(model), "--port", "0"]
    cmd += ["--threads", str(threads), "--no-access-log", "--log-level", "warning"]
    for setting in settings:
        cmd += ["--set", setting]
    cmd += list(extra)
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


@dataclass
class Running:
    """A started server: its process, base URL and the headers its clients send."""

    proc: subprocess.Popen
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    startup_seconds: float = 0.0


@contextlib.contextmanager
def serving(
    model: Path,
    *,
    threads: int,
    folder: Path,
    settings: tuple[str, ...] = (),
    token: bool = False,
    name: str = "server",
) -> Iterator[Running]:
    """A server for the ``with`` block; ``token`` protects it with a fresh random token.

    Its log is ``folder/<name>.log``; it is stopped when the block ends.
    """
    extra: tuple[str, ...] = ()
    headers = {}
    if token:
        secret = secrets.token_urlsafe(32)
        token_file = folder / f"{name}.token"
        token_file.write_text(secret + "\n")
        token_file.chmod(0o600)
        extra = ("--token-file", str(token_file))
        headers = {"Authorization": f"Bearer {secret}"}
    started = time.perf_counter()
    proc, url = start_server(
        model, threads=threads, log=folder / f"{name}.log", settings=settings, extra=extra
    )
    try:
        yield Running(proc, url, headers, time.perf_counter() - started)
    finally:
        stop_server(proc)


def run_load(
    url: str,
    uploads: list[tuple[str, bytes]],
    *,
    requests: int,
    concurrency: int,
    max_seconds: float,
    headers: dict[str, str] | None = None,
) -> tuple[list[dict], float]:
    """Send up to ``requests`` uploads, ``concurrency`` at a time, for at most ``max_seconds``.

    Returns one ``{"status", "seconds", "server"}`` record per answered request and the wall
    time from the first request to the last answer. ``headers`` go with every request.
    """
    import threading

    import httpx

    lock = threading.Lock()
    issued = [0]
    start = time.perf_counter()
    deadline = start + max_seconds

    def client_loop() -> list[dict]:
        records = []
        with httpx.Client(timeout=max(60.0, max_seconds), headers=headers) as client:
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
                    status = r.status_code
                    body = r.json()
                except httpx.HTTPError as exc:
                    status, body = 0, {"error": type(exc).__name__}
                except ValueError:  # not JSON: a proxy's page, a crash
                    body = {}
                records.append(
                    {
                        "status": status,
                        "seconds": time.perf_counter() - t0,
                        "server": body.get("seconds", {}),
                    }
                )
                if status == 503:
                    # A well-behaved client waits as told instead of hammering the server.
                    time.sleep(float(r.headers.get("retry-after", "1")))
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


def run_levels(
    server: Running,
    uploads: list[tuple[str, bytes]],
    *,
    levels: list[int],
    args: argparse.Namespace,
) -> list[dict]:
    """Warm up, then one :func:`run_level` per client count in ``levels``."""
    warm_up(server, uploads, requests=args.warmup)
    return [run_level(server, uploads, concurrency=c, args=args) for c in levels]


def warm_up(server: Running, uploads: list[tuple[str, bytes]], *, requests: int) -> None:
    """Untimed uploads, one at a time: the first calls pay for lazy set-up."""
    import httpx

    for i in range(requests):
        name, data = uploads[i % len(uploads)]
        httpx.post(
            f"{server.url}/predict",
            files={"file": (name, data)},
            headers=server.headers,
            timeout=120,
        )


def run_level(server: Running, uploads: list[tuple[str, bytes]], *, concurrency: int, args) -> dict:
    """One load level: :func:`summarise` of ``args.requests`` uploads plus their statuses."""
    records, wall = run_load(
        server.url,
        uploads,
        requests=args.requests,
        concurrency=concurrency,
        max_seconds=args.max_seconds,
        headers=server.headers,
    )
    run = summarise(records, wall, concurrency=concurrency, clip_seconds=args.seconds)
    run["statuses"] = status_counts(records)
    return run


def status_counts(records: list[dict]) -> dict[str, int]:
    """How many answers had each status (0: no answer, a transport error)."""
    return {str(k): v for k, v in sorted(Counter(r["status"] for r in records).items())}


def unauthorized_check(
    server: Running, uploads: list[tuple[str, bytes]], *, requests: int, max_seconds: float
) -> dict:
    """``requests`` uploads without the token: every one 401, and no model call."""
    import httpx

    before = httpx.get(f"{server.url}/health", timeout=30).json()
    records, wall = run_load(
        server.url, uploads, requests=requests, concurrency=4, max_seconds=max_seconds
    )
    after = httpx.get(f"{server.url}/health", timeout=30).json()
    statuses = status_counts(records)
    calls = [before["batches"]["model_calls"], after["batches"]["model_calls"]]
    return {
        "requests": len(records),
        "statuses": statuses,
        "requests_per_second": len(records) / wall if wall > 0 else 0.0,
        "latency": percentiles_ms([r["seconds"] for r in records]),
        "model_calls_before_after": calls,
        "passed": bool(
            len(records) == requests and statuses == {"401": requests} and calls[0] == calls[1]
        ),
    }


def shed_check(server: Running, uploads: list[tuple[str, bytes]], *, args) -> dict:
    """4 clients, then ``args.shed_clients``, against ``serve.max_pending`` =
    ``args.shed_max_pending``: only 200 and 503, and the accepted requests' p95 beside the
    4-client p95."""
    import httpx

    calm, crowd = run_levels(server, uploads, levels=[4, args.shed_clients], args=args)
    health = httpx.get(f"{server.url}/health", timeout=30).json()
    calm_p95 = calm["latency"].get("p95_ms")
    crowd_p95 = crowd["latency"].get("p95_ms")
    return {
        "max_pending": args.shed_max_pending,
        "runs": [calm, crowd],
        "p95_ratio": crowd_p95 / calm_p95 if calm_p95 and crowd_p95 else None,
        "passed": bool(set(crowd["statuses"]) | set(calm["statuses"]) <= {"200", "503"}),
        "server_health": health,
    }


def print_runs(runs: list[dict]) -> None:
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


def print_auth_comparison(plain: list[dict], tokened: list[dict]) -> list[dict]:
    """Both servers' runs side by side; returns the rows (ratio = with token / without)."""
    rows = []
    print("auth comparison (a server without a token, then one with; ratio = token / none):")
    print(
        f"{'clients':>7} {'req/s none':>10} {'req/s token':>11} {'ratio':>6} "
        f"{'p95 none':>9} {'p95 token':>10} {'ratio':>6}"
    )
    for a, b in zip(plain, tokened, strict=True):
        rps = b["requests_per_second"] / a["requests_per_second"] if a["ok"] else float("nan")
        p95a, p95b = a["latency"].get("p95_ms", float("nan")), b["latency"].get("p95_ms")
        p95b = float("nan") if p95b is None else p95b
        rows.append(
            {
                "concurrency": a["concurrency"],
                "requests_per_second": [a["requests_per_second"], b["requests_per_second"]],
                "p95_ms": [p95a, p95b],
                "requests_per_second_ratio": rps,
                "p95_ratio": p95b / p95a if p95a else float("nan"),
            }
        )
        print(
            f"{a['concurrency']:>7} {a['requests_per_second']:>10.2f} "
            f"{b['requests_per_second']:>11.2f} {rps:>6.3f} {p95a:>9.1f} {p95b:>10.1f} "
            f"{rows[-1]['p95_ratio']:>6.3f}"
        )
    return rows


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the server under test and of its clips (shared with bench_soak.py)."""
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: untrained)")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length (s)")
    parser.add_argument("--clips", type=int, default=4, help="different clips, sent in turn")
    parser.add_argument("--threads", type=int, default=2, help="server's TensorFlow threads")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        help="server config KEY=VALUE, e.g. serve.prepare_threads=1 (repeatable)",
    )


def server_model(args: argparse.Namespace, *, folder: Path) -> Path:
    """``--model``, or an untrained model of the default architecture written in ``folder``."""
    if args.model is not None:
        return args.model
    from bench_predict import untrained_model_dir

    return untrained_model_dir(folder / "model")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_server_arguments(parser)
    parser.add_argument("--requests", type=int, default=60, help="requests per load level")
    parser.add_argument(
        "--concurrency", default="1,4", help="client threads, one load level each (e.g. 1,4,16)"
    )
    parser.add_argument("--max-seconds", type=float, default=60.0, help="per load level")
    parser.add_argument("--warmup", type=int, default=4, help="untimed requests first")
    parser.add_argument(
        "--token", action="store_true", help="the server wants a bearer token; clients send it"
    )
    parser.add_argument(
        "--compare-auth",
        action="store_true",
        help="run the load levels without a token, then with one, and print the ratio",
    )
    parser.add_argument(
        "--unauthorized",
        metavar="N",
        type=int,
        default=0,
        help="then send N uploads without the token: all must be 401, no model call",
    )
    parser.add_argument(
        "--shed",
        action="store_true",
        help="shedding check: 4 clients, then --shed-clients, at serve.max_pending = "
        "--shed-max-pending",
    )
    parser.add_argument("--shed-clients", type=int, default=32, help="clients of --shed")
    parser.add_argument("--shed-max-pending", type=int, default=8, help="max_pending of --shed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    if not levels or min(args.requests, args.clips, args.threads, *levels) < 1:
        parser.error("--requests, --concurrency, --clips and --threads must be >= 1")
    if min(args.shed_clients, args.shed_max_pending) < 1 or args.unauthorized < 0:
        parser.error("--shed-clients and --shed-max-pending must be >= 1, --unauthorized >= 0")

    import httpx

    from genreflow.core.atomic import write_json

    load_before = os.getloadavg()
    checks = {}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        model = server_model(args, folder=tmp)
        clips = write_clips(tmp, n=args.clips, seconds=args.seconds)
        uploads = [(p.name, p.read_bytes()) for p in clips]
        common = {"threads": args.threads, "folder": tmp, "settings": tuple(args.settings)}
        # The main runs: with a token for --token, without one otherwise.
        # --compare-auth starts the other kind beside it and alternates the two, level by
        # level, so that both see the same machine (2 cores shared with the clients).
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(serving(model, token=args.token, name="main", **common))
            other = None
            if args.compare_auth or (args.unauthorized and not args.token):
                other = stack.enter_context(
                    serving(model, token=not args.token, name="other", **common)
                )
            startup = server.startup_seconds
            warm_up(server, uploads, requests=args.warmup)
            if args.compare_auth:
                warm_up(other, uploads, requests=args.warmup)
            runs, other_runs = [], []
            for concurrency in levels:
                runs.append(run_level(server, uploads, concurrency=concurrency, args=args))
                if args.compare_auth:
                    other_runs.append(run_level(other, uploads, concurrency=concurrency, args=args))
            if args.unauthorized:
                checks["unauthorized"] = unauthorized_check(
                    server if args.token else other,
                    uploads,
                    requests=args.unauthorized,
                    max_seconds=args.max_seconds,
                )
            health = httpx.get(f"{server.url}/health", timeout=30).json()
        if args.compare_auth:
            checks["auth_comparison"] = {
                "without_token": other_runs if args.token else runs,
                "with_token": runs if args.token else other_runs,
            }
        if args.shed:
            shed_settings = (*args.settings, f"serve.max_pending={args.shed_max_pending}")
            with serving(model, name="shed", **{**common, "settings": shed_settings}) as server:
                checks["shedding"] = shed_check(server, uploads, args=args)
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
        "token": args.token,
        "runs": runs,
        "targets": targets,
        "checks": checks,
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
        f"({len(uploads[0][1]) / 1e6:.2f} MB), server --threads {args.threads}"
        f"{', bearer token' if args.token else ''}; start-up {startup:.1f} s"
    )
    print_runs(runs)
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
    passed = all(run["ok"] for run in runs)
    if "auth_comparison" in checks:
        both = checks["auth_comparison"]
        both["rows"] = print_auth_comparison(both["without_token"], both["with_token"])
        # Repeat a level (--concurrency 4,4,4,4) for several alternating rounds: the median
        # ratio is what a token costs, the spread what the shared machine adds.
        ratios = sorted(
            r["requests_per_second_ratio"] for r in both["rows"] if r["requests_per_second_ratio"]
        )
        if ratios:
            both["rps_ratio_median"] = ratios[len(ratios) // 2]
            print(
                f"req/s with token / without, median of {len(ratios)} round(s): "
                f"{both['rps_ratio_median']:.3f} (range {ratios[0]:.3f}-{ratios[-1]:.3f})"
            )
        passed = passed and all(run["ok"] for run in both["without_token"] + both["with_token"])
    if "unauthorized" in checks:
        check = checks["unauthorized"]
        calls = check["model_calls_before_after"]
        print(
            f"unauthorized: {check['requests']} uploads without the token -> {check['statuses']}, "
            f"p50 {check['latency'].get('p50_ms', float('nan')):.1f} ms; model calls "
            f"{calls[0]} -> {calls[1]}: {'PASS' if check['passed'] else 'FAIL'}"
        )
        passed = passed and check["passed"]
    if "shedding" in checks:
        check = checks["shedding"]
        calm, crowd = check["runs"]
        print(f"shedding, serve.max_pending = {check['max_pending']}:")
        for run in (calm, crowd):
            print(
                f"  {run['concurrency']:>3} clients: {run['statuses']}, accepted p95 "
                f"{run['latency'].get('p95_ms', float('nan')):.1f} ms"
            )
        ratio = check["p95_ratio"]
        print(
            f"  accepted p95 at {crowd['concurrency']} clients / at 4: "
            f"{'-' if ratio is None else f'{ratio:.2f}'}; only 200 and 503: "
            f"{'PASS' if check['passed'] else 'FAIL'}"
        )
        passed = passed and check["passed"]
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
        f"{os.cpu_count()} CPUs (client and server share them)"
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
