"""Soak test of ``genreflow serve``: minutes of mixed traffic, no 5xx, no memory growth.

Usage::

    .venv/bin/python benchmarks/bench_soak.py                 # 10 minutes
    .venv/bin/python benchmarks/bench_soak.py --minutes 1     # a quick try

Starts ``genreflow serve`` on loopback with a bearer token (``bench_serve.serving``;
``serve.max_pending`` = ``--max-pending``, 64 by default: above the most clients, so that no
request is shed), warms it up, then for ``--minutes`` sends a mix of requests from a number of
client threads that cycles through ``--clients`` (4, 8, 16, 32), changing every
``--phase-seconds`` (15: every minute sees every level):

- ``good`` (70 %): a demo clip (``bench_serve.write_clips``) with the token: expects 200;
- ``text`` (5 %): a text file named ``.wav``: 422; ``empty`` (5 %): a 0-byte ``.wav``: 400;
  ``truncated`` (5 %): the first half of a WAV, whose header promises more: 422;
- ``no-token`` (10 %) and ``wrong-token`` (5 %): a good clip without the right token: 401.

Per minute (by the time a request started) it records the count of each status, the 5xx, the
answers that were not what their kind expects, the p50/p95/p99 latency of the accepted good
uploads, and the server's resident memory (``VmRSS`` of ``/proc/<pid>/status``, sampled every
``--rss-every`` s; the table shows the last sample of each minute). At the end it prints the
table and PASS/FAIL for:

- **no 5xx**: every 5xx counts as a failure, 503 included (with ``--max-pending`` above the
  largest client count, nothing should be shed);
- **RSS growth <= 10 %** from the end of minute 1 to the end of the last minute (one minute:
  compared with itself, so it always passes);
- **as expected**: every request got its kind's status and none failed at the transport level.

Writes ``benchmarks/out/soak.json``. Exit status 0 when every check passes.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench_serve import (
    add_server_arguments,
    percentiles_ms,
    server_model,
    serving,
    warm_up,
    write_clips,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "soak.json"

#: Request kinds: (weight, the status they must get).
KINDS = {
    "good": (70, 200),
    "text": (5, 422),
    "empty": (5, 400),
    "truncated": (5, 422),
    "no-token": (10, 401),
    "wrong-token": (5, 401),
}

#: Largest accepted growth of the server's RSS, last minute against the first.
RSS_GROWTH_LIMIT = 0.10


def rss_kib(pid: int) -> int | None:
    """Resident memory of process ``pid`` in KiB (``VmRSS``), ``None`` once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def make_payloads(clips: list[Path]) -> dict[str, list[tuple[str, bytes]]]:
    """The files each kind uploads: ``(name, bytes)``."""
    good = [(p.name, p.read_bytes()) for p in clips]
    whole = good[0][1]
    return {
        "good": good,
        "text": [("notes.wav", b"this is a text file, not audio\n" * 20)],
        "empty": [("empty.wav", b"")],
        "truncated": [("truncated.wav", whole[: len(whole) // 2])],
        "no-token": good,
        "wrong-token": good,
    }


def percentiles(values: list[float]) -> dict:
    """p50/p95/p99 (and min/max) in ms; empty when there are no values."""
    import numpy as np

    out = percentiles_ms(values)
    if values:
        out["p99_ms"] = float(np.percentile(np.asarray(values) * 1000.0, 99))
    return out


def soak(
    url: str,
    *,
    pid: int,
    token_headers: dict[str, str],
    payloads: dict[str, list[tuple[str, bytes]]],
    minutes: float,
    levels: list[int],
    phase_seconds: float,
    rss_every: float,
    seed: int,
) -> tuple[list[dict], list[tuple[float, int]], float]:
    """Run the mixed traffic; returns the request records, the RSS samples and the start time.

    Each record: ``{"t", "kind", "status", "seconds", "clients"}`` (``t``: start, seconds
    since the soak began; ``status`` 0: no answer).
    """
    import httpx

    kinds = list(KINDS)
    weights = [KINDS[k][0] for k in kinds]
    start = time.monotonic()
    end = start + minutes * 60.0
    records: list[dict] = []
    samples: list[tuple[float, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def level_at(now: float) -> int:
        return levels[int((now - start) // phase_seconds) % len(levels)]

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        headers_for = {
            "no-token": {},
            "wrong-token": {"Authorization": "Bearer not-the-token"},
        }
        with httpx.Client(timeout=300) as session:
            while (now := time.monotonic()) < end:
                clients = level_at(now)
                if index >= clients:
                    time.sleep(0.05)  # this thread sits out the current level
                    continue
                kind = rng.choices(kinds, weights)[0]
                name, data = rng.choice(payloads[kind])
                headers = headers_for.get(kind, token_headers)
                t0 = time.monotonic()
                try:
                    response = session.post(
                        f"{url}/predict",
                        files={"file": (name, data, "audio/wav")},
                        headers=headers,
                    )
                    status = response.status_code
                except httpx.HTTPError:
                    status = 0
                record = {
                    "t": t0 - start,
                    "kind": kind,
                    "status": status,
                    "seconds": time.monotonic() - t0,
                    "clients": clients,
                }
                with lock:
                    records.append(record)

    def sampler() -> None:
        while not stop.is_set():
            value = rss_kib(pid)
            if value is not None:
                samples.append((time.monotonic() - start, value))
            stop.wait(rss_every)

    watcher = threading.Thread(target=sampler, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(max(levels))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    watcher.join()
    return records, samples, start


def per_minute(
    records: list[dict], samples: list[tuple[float, int]], *, minutes: int
) -> list[dict]:
    """One summary per minute of the soak (requests by the minute they started in)."""
    rows = []
    for m in range(minutes):
        mine = [r for r in records if min(int(r["t"] // 60), minutes - 1) == m]
        rss = [kib for t, kib in samples if m * 60 <= t < (m + 1) * 60]
        if m == minutes - 1:  # the last sample, taken as the clients finish, counts too
            rss += [kib for t, kib in samples if t >= minutes * 60]
        statuses = Counter(r["status"] for r in mine)
        good_ok = [r["seconds"] for r in mine if r["kind"] == "good" and r["status"] == 200]
        rows.append(
            {
                "minute": m + 1,
                "requests": len(mine),
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "5xx": sum(v for k, v in statuses.items() if k >= 500),
                "unexpected": sum(1 for r in mine if r["status"] != KINDS[r["kind"]][1]),
                "clients": sorted({r["clients"] for r in mine}),
                "good_latency": percentiles(good_ok),
                "rss_mib": rss[-1] / 1024 if rss else None,
                "rss_max_mib": max(rss) / 1024 if rss else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, default=10, help="length of the soak")
    add_server_arguments(parser)
    parser.add_argument("--clients", default="4,8,16,32", help="client counts, cycled through")
    parser.add_argument(
        "--phase-seconds", type=float, default=15.0, help="seconds at each client count"
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=64,
        help="serve.max_pending (above the most clients: nothing shed)",
    )
    parser.add_argument("--rss-every", type=float, default=5.0, help="RSS sampling period (s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result file")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.clients.split(",") if x.strip()]
    if args.minutes < 1 or not levels or min(levels) < 1 or args.phase_seconds <= 0:
        parser.error("--minutes, --clients must be >= 1 and --phase-seconds > 0")

    import httpx

    from genreflow.core.atomic import write_json

    settings = (f"serve.max_pending={args.max_pending}", *args.settings)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        tmp = Path(tmp)
        model = server_model(args, folder=tmp)
        payloads = make_payloads(write_clips(tmp, n=args.clips, seconds=args.seconds))
        with serving(
            model, threads=args.threads, folder=tmp, settings=settings, token=True, name="soak"
        ) as server:
            warm_up(server, payloads["good"], requests=4)
            rss_start = rss_kib(server.proc.pid)
            print(
                f"soak: {args.minutes} min against {server.url} (token, serve.max_pending "
                f"{args.max_pending}), clients {levels} changing every {args.phase_seconds:g} s; "
                f"server RSS after warm-up {rss_start / 1024:.0f} MiB",
                flush=True,
            )
            records, samples, _ = soak(
                server.url,
                pid=server.proc.pid,
                token_headers=server.headers,
                payloads=payloads,
                minutes=args.minutes,
                levels=levels,
                phase_seconds=args.phase_seconds,
                rss_every=args.rss_every,
                seed=args.seed,
            )
            health = httpx.get(f"{server.url}/health", timeout=30).json()
            alive = server.proc.poll() is None
    load_after = os.getloadavg()

    rows = per_minute(records, samples, minutes=args.minutes)
    total_5xx = sum(row["5xx"] for row in rows)
    unexpected = sum(row["unexpected"] for row in rows)
    first, last = rows[0]["rss_mib"], rows[-1]["rss_mib"]
    growth = (last - first) / first if first and last else None
    checks = {
        "no_5xx": {"passed": total_5xx == 0 and alive, "count": total_5xx, "alive": alive},
        "rss_growth": {
            "passed": growth is not None and growth <= RSS_GROWTH_LIMIT,
            "first_minute_mib": first,
            "last_minute_mib": last,
            "growth": growth,
            "limit": RSS_GROWTH_LIMIT,
        },
        "as_expected": {"passed": unexpected == 0, "unexpected": unexpected},
    }
    result = {
        "benchmark": "soak",
        "model": str(args.model) if args.model else "untrained default architecture",
        "minutes": args.minutes,
        "clients": levels,
        "phase_seconds": args.phase_seconds,
        "max_pending": args.max_pending,
        "clip_seconds": args.seconds,
        "kinds": {k: {"weight": w, "expects": s} for k, (w, s) in KINDS.items()},
        "server_threads": args.threads,
        "server_settings": list(settings),
        "minutes_table": rows,
        "by_kind": {
            kind: {
                str(k): v
                for k, v in sorted(
                    Counter(r["status"] for r in records if r["kind"] == kind).items()
                )
            }
            for kind in KINDS
        },
        "checks": checks,
        "passed": all(c["passed"] for c in checks.values()),
        "server_health": health,
        "rss_samples_kib": samples,
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "python": platform.python_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

    print(
        f"{'min':>3} {'clients':>11} {'req':>6} {'req/s':>6} {'5xx':>4} {'unexp':>5} "
        f"{'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'RSS MiB':>8}  statuses"
    )
    for row in rows:
        lat = row["good_latency"]
        clients = ",".join(str(c) for c in row["clients"])
        rss = f"{row['rss_mib']:.0f}" if row["rss_mib"] is not None else "-"
        statuses = " ".join(f"{k}:{v}" for k, v in row["statuses"].items())
        print(
            f"{row['minute']:>3} {clients:>11} {row['requests']:>6} {row['requests'] / 60:>6.1f} "
            f"{row['5xx']:>4} {row['unexpected']:>5} {lat.get('p50_ms', float('nan')):>7.0f} "
            f"{lat.get('p95_ms', float('nan')):>7.0f} {lat.get('p99_ms', float('nan')):>7.0f} "
            f"{rss:>8}  {statuses}"
        )
    print("by kind: " + "; ".join(f"{k} {v}" for k, v in result["by_kind"].items()))
    verdict = {True: "PASS", False: "FAIL"}
    print(
        f"no 5xx (503 counted too; server {'alive' if alive else 'DEAD'}): {total_5xx} -> "
        f"{verdict[checks['no_5xx']['passed']]}"
    )
    shown = "-" if growth is None else f"{growth:+.1%}"
    print(
        f"RSS growth minute 1 -> {args.minutes}: {first or float('nan'):.0f} -> "
        f"{last or float('nan'):.0f} MiB ({shown}, limit +{RSS_GROWTH_LIMIT:.0%}) -> "
        f"{verdict[checks['rss_growth']['passed']]}"
    )
    print(
        f"every answer as its kind expects: {unexpected} unexpected -> "
        f"{verdict[checks['as_expected']['passed']]}"
    )
    print(
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
        f"{os.cpu_count()} CPUs (client and server share them)"
    )
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
