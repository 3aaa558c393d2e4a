"""Where points run: in this process, in a pool of worker processes, or on a Dask cluster.

Every point is a pure function of (scenario, point) (simulator.run.run_point), so it gives the same
row wherever it runs: an executor only decides where, and reports each row as it finishes (in the
order they finish). `pagesim run` and `pagesim sweep` run their points through the same
LocalExecutor; a sweep may also go to a DaskExecutor, whose workers must run the same model code
(code_fingerprint). This module never prints.
"""

from __future__ import annotations

import contextlib
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import simulator
from simulator import run as run_module
from simulator.errors import ConfigError
from simulator.pool import abort_pool, process_pool, quiet_worker
from simulator.scenario import Scenario
from simulator.workloads.api import Point

if TYPE_CHECKING:
    from distributed import Client

# modules that present results: editing them does not change a row, so they are not in the key
PRESENTATION = {
    "cli.py",
    "plots.py",
    "compare.py",
    "sweep.py",
    "executor.py",
    "results.py",
    "docgen.py",
    "limits.py",
}

Done = Callable[["Task", dict[str, Any]], None]


@dataclass(frozen=True)
class Task:
    """One point to run: its place in the table, its scenario (an index into the scenarios the
    executor is given) and the key that names it (a sweep's point key; the Dask future's name)."""

    index: int
    scenario: int
    point: Point
    key: str = ""


@cache
def code_fingerprint() -> str:
    """sha256 of the model's source (simulator/**/*.py but the presentation modules): a point
    computed by other model code is another point. Dask workers must report the same."""
    root = Path(simulator.__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).as_posix()
        if rel in PRESENTATION:
            continue
        h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def run_task(sc: Scenario, point: Point, progress: run_module.Progress | None = None) -> dict[str, Any]:
    """One point's row (what a worker process or a Dask worker runs); `progress`: see run_point."""
    if progress is None:
        return run_module.run_point(sc, point)  # looked up per call: tests stand in for it
    return run_module.run_point(sc, point, progress=progress)


_WORKER_SCENARIOS: tuple[Scenario, ...] = ()


def _worker_init(scenarios: tuple[Scenario, ...]) -> None:
    quiet_worker()
    global _WORKER_SCENARIOS
    _WORKER_SCENARIOS = scenarios


def _worker_run(scenario: int, point: Point) -> dict[str, Any]:
    return run_task(_WORKER_SCENARIOS[scenario], point)


def _cost(sc: Scenario, p: Point) -> float:
    """A rough relative cost of a point: simulated time x CPUs (longest submitted first, so the
    last points to finish are short ones and no worker idles long at the end)."""
    return (sc.model.warmup + sc.model.duration) * p.cpus


class Executor(ABC):
    """Runs tasks and reports each row as it finishes; `describe()` goes into metadata.json."""

    @abstractmethod
    def run(self, scenarios: Sequence[Scenario], tasks: Sequence[Task], done: Done) -> None: ...

    @abstractmethod
    def describe(self) -> dict[str, Any]: ...


@dataclass
class LocalExecutor(Executor):
    """This process (jobs=1) or a pool of `jobs` worker processes (forkserver). In this process,
    `inside(task)` may give a progress callback for the task's point (None: none)."""

    jobs: int = 1
    inside: Callable[[Task], run_module.Progress | None] | None = None

    def run(self, scenarios: Sequence[Scenario], tasks: Sequence[Task], done: Done) -> None:
        if self.jobs <= 1 or len(tasks) <= 1:
            for t in tasks:
                shown = self.inside(t) if self.inside is not None else None
                done(t, run_task(scenarios[t.scenario], t.point, shown))
            return
        pool = process_pool(min(self.jobs, len(tasks)), _worker_init, (tuple(scenarios),))
        order = sorted(tasks, key=lambda t: -_cost(scenarios[t.scenario], t.point))
        try:
            futures: dict[Future[dict[str, Any]], Task] = {
                pool.submit(_worker_run, t.scenario, t.point): t for t in order
            }
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
        except BaseException:
            abort_pool(pool)
            raise
        pool.shutdown()

    def describe(self) -> dict[str, Any]:
        return {"backend": "serial" if self.jobs <= 1 else "processes", "jobs": self.jobs}


@dataclass
class DaskExecutor(Executor):
    """A Dask distributed cluster: a scheduler address, or a Client (tests: a LocalCluster's).

    Workers must run the same pagesim (checked: code_fingerprint). They read no scenario, hardware
    or calibration file: a scenario reaches them with its hardware and the costs derived from its
    calibration."""

    scheduler: str | Client
    timeout: str = "15s"  # to connect to the scheduler
    workers: int = 0
    _address: str = field(default="", init=False)

    def run(self, scenarios: Sequence[Scenario], tasks: Sequence[Task], done: Done) -> None:
        from distributed import Client, as_completed

        own = not isinstance(self.scheduler, Client)
        client = self._connect() if own else self.scheduler
        assert isinstance(client, Client)
        futures: list[Any] = []
        try:
            self._address = str(client.scheduler.address)
            self._check_workers(client)
            shared = client.scatter(list(scenarios), broadcast=True, hash=False)
            order = sorted(tasks, key=lambda t: -_cost(scenarios[t.scenario], t.point))
            by_key: dict[str, Task] = {}
            for t in order:
                key = f"pagesim-point-{t.key}"
                by_key[key] = t
                futures.append(client.submit(run_task, shared[t.scenario], t.point, key=key, pure=False))
            for fut in as_completed(futures):
                done(by_key[fut.key], fut.result())
        except BaseException:
            with contextlib.suppress(Exception):
                client.cancel(futures, force=True)
            raise
        finally:
            if own:
                with contextlib.suppress(Exception):
                    client.close()

    def _connect(self) -> Client:
        from distributed import Client

        try:
            return Client(self.scheduler, timeout=self.timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError.one(
                "command line", "--scheduler", f"cannot connect to the Dask scheduler: {exc}", self.scheduler
            ) from None

    def _check_workers(self, client: Client) -> None:
        try:
            prints = client.run(code_fingerprint)
        except Exception as exc:
            msg = f"the Dask workers cannot run pagesim: {type(exc).__name__}: {exc}"
            raise ConfigError.one("command line", "--scheduler", msg) from None
        if not prints:
            raise ConfigError.one("command line", "--scheduler", "the Dask cluster has no workers")
        here = code_fingerprint()
        for worker, fp in sorted(prints.items()):
            if fp != here:
                msg = (
                    f"worker {worker} runs other pagesim model code (fingerprint {fp[:12]}, here"
                    f" {here[:12]}): install this pagesim on every worker"
                )
                raise ConfigError.one("command line", "--scheduler", msg)
        self.workers = len(prints)

    def describe(self) -> dict[str, Any]:
        return {"backend": "dask", "scheduler": self._address, "workers": self.workers}
