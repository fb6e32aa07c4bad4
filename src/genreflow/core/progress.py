"""Progress reporting: a bar on a terminal, plain periodic lines in batch logs."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(
    iterable: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    enabled: bool = True,
    every_seconds: float = 10.0,
) -> Iterator[T]:
    """Wrap ``iterable`` with a tqdm bar (TTY) or a line every ``every_seconds`` (logs)."""
    if not enabled:
        yield from iterable
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)
        return
    start = last = time.monotonic()
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every_seconds:
            last = now
            of = f"/{total}" if total else ""
            print(f"{desc}: {done}{of} done, {now - start:.1f} s", file=sys.stderr, flush=True)
    of = f"/{total}" if total else ""
    print(
        f"{desc}: {done}{of} done in {time.monotonic() - start:.1f} s", file=sys.stderr, flush=True
    )
