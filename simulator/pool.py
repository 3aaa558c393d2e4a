"""The local process pool that `pagesim run` and `pagesim sweep` run points on.

One place for how worker processes start (forkserver: a clean process, not a fork of one that
may run threads such as the progress bar's; spawn where forkserver is missing), how they treat
signals (the parent handles Ctrl-C and SIGTERM and ends the workers itself), and how a pool is
torn down when the parent is interrupted.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any


def quiet_worker() -> None:
    """In a worker: ignore Ctrl-C (no KeyboardInterrupt tracebacks) and die at once on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def process_pool(
    workers: int, initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> ProcessPoolExecutor:
    """A pool of `workers` processes, each set up by `initializer(*initargs)` (which should call
    quiet_worker())."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=initializer, initargs=initargs
    )


def abort_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel queued points and end the running ones now (a row is kept only once finished)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    for proc in procs:
        proc.join(timeout=5)
