"""The device TensorFlow computes on, as recorded in every ``timings.json``.

Imports TensorFlow when called: set thread settings (``genreflow.core.threads``) first.
"""

from __future__ import annotations

import platform

__all__ = ["describe_device"]


def describe_device() -> dict:
    """``{"device": "CPU"|"GPU", "device_name": str, "devices": [...]}`` as TensorFlow sees them."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    devices = [d.name for d in tf.config.list_physical_devices()]
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return {
            "device": "GPU",
            "device_name": details.get("device_name", gpus[0].name),
            "devices": devices,
        }
    return {"device": "CPU", "device_name": _cpu_name(), "devices": devices}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
