"""Logging for workflow jobs: progress lines go to the rule's log file and to stderr."""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def setup(log_path: str | Path | None = None, rank: int | None = None) -> logging.Logger:
    """Log to stderr and to `log_path` (started afresh). A rank of a run on several devices appends to the job's
    log instead, each line marked with its rank: rank 0 logs progress, the others only warnings and errors."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w" if rank is None else "a"))
    logging.basicConfig(
        level=logging.INFO if not rank else logging.WARNING,
        format="%(asctime)s %(levelname)s " + ("" if rank is None else f"[rank {rank}] ") + "%(message)s",
        datefmt="%H:%M:%S",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    log = logging.getLogger("pathgeo")

    def log_uncaught(kind, error, traceback):
        # The job's log file is what a cluster user reads; the error that ended the job belongs in it.
        log.error("job failed: %s", error, exc_info=(kind, error, traceback))

    sys.excepthook = log_uncaught
    return log
