"""prometheus_client's multiprocess mode, for a service served by several worker processes.

The parent creates an empty directory and names it in `PROMETHEUS_MULTIPROC_DIR` before
any worker starts: prometheus_client picks its value class when it is imported, so each
worker, a fresh process inheriting the environment, then keeps its series in files there,
and `/metrics` (Litestar's `PrometheusController`) sums them over workers per scrape.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import multiprocess

__all__ = ("MULTIPROC_DIR_ENV", "mark_worker_dead", "multiprocess_enabled", "multiprocess_metrics")

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_enabled() -> bool:
    return MULTIPROC_DIR_ENV in os.environ or MULTIPROC_DIR_ENV.lower() in os.environ


@contextmanager
def multiprocess_metrics(path: Path) -> Iterator[Path]:
    """An empty `path` named in the environment for the duration, removed afterwards."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    previous = os.environ.get(MULTIPROC_DIR_ENV)
    os.environ[MULTIPROC_DIR_ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_DIR_ENV, None)
        else:
            os.environ[MULTIPROC_DIR_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def mark_worker_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (its counters and histograms keep counting)."""
    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
