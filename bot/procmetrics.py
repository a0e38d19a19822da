"""Prometheus metrics across worker processes.

With `--workers N` each worker counts in its own memory, and a scrape of the shared port
reaches one of them at random. In multiprocess mode every worker writes its samples to files
in one directory and `/metrics` sums them, so any worker answers for all. The directory must
be chosen before `prometheus_client` is first imported (it picks its storage at import),
which is why this module imports nothing from it at module level.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(workers: int, data_dir: Path) -> Path | None:
    """Before importing the app: an empty shared samples directory when several workers will run."""
    if workers <= 1:
        return None
    if "prometheus_client" in __import__("sys").modules and ENV not in os.environ:
        raise RuntimeError("prepare() must run before prometheus_client is imported")
    base = Path(os.environ.get(ENV) or data_dir / "metrics")
    if base.exists():
        shutil.rmtree(base)  # samples of a previous run would be summed in
    base.mkdir(parents=True)
    os.environ[ENV] = str(base)
    return base


def registry() -> Any:
    """The registry `/metrics` renders: all workers' samples in multiprocess mode, else this process's."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if not os.environ.get(ENV):
        return REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)
    return combined


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (counters and histograms keep their totals)."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
