"""Timing records of a training run: the device, the epochs and the workers (``timings.json``).

docs/formats.md describes ``timings.json``; docs/distributed.md its ``workers`` part.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from genreflow.core.device import describe_device
from genreflow.training.distributed import WorkerGroup, describe_group

__all__ = ["describe_device", "run_timings", "training_timings", "workers_timings"]


def training_timings(
    epoch_timings: list[dict],
    *,
    threads: Mapping[str, Any],
    device: Mapping[str, Any],
    total_seconds: float,
    cpu_seconds: float,
    started: str,
    resumed_from: int,
    batch_size: int,
) -> dict:
    """The ``timings.json`` record (docs/formats.md).

    ``samples_per_second`` is the steady-state rate: total samples over total training time of
    the epochs that are not a run's first (which includes graph tracing), or of all epochs
    when there is only the first.
    """
    steady = [e for e in epoch_timings if not e["warmup"]] or list(epoch_timings)
    samples = sum(e["samples"] for e in steady)
    seconds = sum(e["train_seconds"] for e in steady)
    return {
        "stage": "train",
        "threads": dict(threads),
        "device": device["device"],
        "device_name": device["device_name"],
        "devices": device["devices"],
        "precision": device.get("precision", "float32"),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "batch_size": batch_size,
        "epochs": epoch_timings,
        "resumed_from": resumed_from,
        "total_seconds": round(total_seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "training_seconds": round(sum(e["seconds"] for e in epoch_timings), 3),
        "samples_per_second": round(samples / seconds, 2) if seconds > 0 else 0.0,
        "started": started,
        "tensorflow_version": tf.__version__,
        "numpy_version": np.__version__,
    }


def workers_timings(
    group: WorkerGroup,
    *,
    batch: Mapping[str, Any],
    allreduce: float,
    gradient_values: int,
    epoch_timings: list[dict],
) -> dict:
    """The ``workers`` part of ``timings.json`` (docs/distributed.md)."""
    steady = [e for e in epoch_timings if not e["warmup"] and "worker_samples" in e] or [
        e for e in epoch_timings if "worker_samples" in e
    ]
    per_worker = []
    for k in range(group.count):
        samples = sum(e["worker_samples"][k] for e in steady)
        seconds = sum(e["worker_train_seconds"][k] for e in steady)
        per_worker.append(
            {
                "worker": k,
                "address": group.addresses[k] if k < len(group.addresses) else None,
                "samples": samples,
                "train_seconds": round(seconds, 3),
                "samples_per_second": round(samples / seconds, 2) if seconds > 0 else 0.0,
            }
        )
    train_seconds = sum(e["train_seconds"] for e in steady)
    steps = sum(math.ceil(e["worker_samples"][0] / batch["per_worker"]) for e in steady)
    return {
        **describe_group(group),
        "per_worker_batch_size": batch["per_worker"],
        "global_batch_size": batch["global"],
        "learning_rate": round(batch["learning_rate"], 8),
        "gradient_values": int(gradient_values),
        "allreduce_seconds": round(allreduce, 6),
        "steps": steps,
        "allreduce_fraction": round(min(1.0, allreduce * steps / train_seconds), 4)
        if train_seconds > 0
        else 0.0,
        "per_worker": per_worker,
    }


def run_timings(
    epoch_timings: list[dict],
    *,
    clock: tuple[float, float, str],
    threads: Mapping[str, Any],
    device: Mapping[str, Any],
    resumed_from: int,
    group: WorkerGroup,
    batch: Mapping[str, Any],
    allreduce: float,
    gradient_values: int,
) -> dict:
    """The whole ``timings.json`` of a run that ends now, with its ``workers`` part if distributed.

    ``clock`` is the run's start: ``(time.perf_counter(), time.process_time(), ISO start time)``.
    """
    started, cpu_started, started_at = clock
    now = time.perf_counter()
    timings = training_timings(
        epoch_timings,
        threads=threads,
        device=device,
        total_seconds=now - started,
        cpu_seconds=time.process_time() - cpu_started,
        started=started_at,
        resumed_from=resumed_from,
        batch_size=batch["per_worker"],
    )
    # Epoch seconds, so that the report can tell runs that shared a host at the same time.
    timings["end_time"] = round(time.time(), 3)
    timings["start_time"] = round(timings["end_time"] - (now - started), 3)
    if group.distributed:
        timings["workers"] = workers_timings(
            group,
            batch=batch,
            allreduce=allreduce,
            gradient_values=gradient_values,
            epoch_timings=epoch_timings,
        )
    return timings
