"""What a workload is and what it gets: the Workload record a workload module registers, the Point
it runs, and the PointContext its run function receives (the booted machine, its parameters, the
seed and the simulated times), with the statistics reset that ends warm-up.

A point is (strategy, batch, cpus, replication), plus the values of the scenario's `grid:` axes
(dotted parameter paths such as `kernel.prep_new_page`) if it has any.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy
from pydantic import BaseModel

from simulator.mm.machine import AllocStats
from simulator.stats import Histogram

if TYPE_CHECKING:
    from simulator.calibration import Calibration
    from simulator.hardware import Hardware
    from simulator.machine.cpu import CPU
    from simulator.mm.machine import Machine


@dataclass(frozen=True)
class Point:
    strategy: str
    batch: int
    cpus: int
    replication: int = 0
    # the scenario's grid axes at this point: (dotted parameter path, value), in the grid's order
    grid: tuple[tuple[str, Any], ...] = ()


@dataclass
class PointContext:
    """What a workload's run function gets: the booted machine, the workload's parameters, the
    point, the root seed, the simulated time to warm up (ns) and then to measure (ns), and what
    the workload derived from the calibration when the scenario was loaded (Workload.derive). The
    run function leaves what the allocator statistics need here (pages measured, measured CPUs
    and the start of the measurement window)."""

    machine: Machine
    params: BaseModel
    point: Point
    seed: int
    warmup: float
    duration: float
    derived: Any = None
    pages_measured: int = 0
    measured_cpus: list[CPU] = field(default_factory=list)
    window_start: float = 0.0

    def rng(self, part: str) -> np.random.Generator:
        """An independent random stream for one stochastic part of this replication.

        Derived from (root seed, replication, part name) only, so every strategy and batch of
        a replication sees the same arrivals (common random numbers), and results do not depend
        on which process runs the point."""
        key = (self.point.replication, zlib.crc32(part.encode()))
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def measure_window(self, start: float, cpus: list[CPU]) -> None:
        """Statistics count from simulated time `start` on (warm-up excluded)."""
        self.measured_cpus = list(cpus)
        self.window_start = start

        def reset() -> Generator[simpy.Event, None, None]:
            yield self.machine.env.timeout(start)
            self.end_warmup()

        if start > 0:
            self.machine.env.process(reset())

    def end_warmup(self) -> None:
        """Warm-up is over: zero every statistic of the machine (reset_stats)."""
        reset_stats(self.machine)


def reset_stats(m: Machine) -> None:
    """Zero every statistic (not the state): the end of warm-up."""
    m.stats = AllocStats()
    m.cache.reset_counts()
    for mc in m.memory:
        mc.reset_stats()
    for z in m.zones:
        lk = z.lock
        lk.acquisitions = lk.contended = 0
        lk.wait_ns = 0.0
        lk.wait_hist = Histogram()
        lk.hold_hist = Histogram()
        z.stat_folds = 0
        for p in z.pcp:
            p.refills = p.drains = p.refilled_pages = p.drained_pages = 0
    for c in m.cpus:
        c.irq_windows.clear()
        c.irq_off_ns = 0.0
        c.window_floor = m.env.now
        c.cache_cost_ns = 0.0
        c.frontend_ns = 0.0


def _no_check(model: Any, params: BaseModel, hw: Hardware, file: str) -> None:
    return None


def _nothing(params: BaseModel, cal: Calibration) -> None:
    return None


@dataclass(frozen=True)
class Workload:
    """A workload module's entry in the registry (simulator/workloads/__init__.py): its parameter
    model (the scenario section named after it), a cross-check against the hardware, what it
    derives from the calibration once, when a scenario is loaded (its own costs: PointContext's
    `derived`), a run function returning the workload's own figures, and the columns worth
    showing in the CLI's table."""

    name: str
    params: type[BaseModel]
    run: Callable[[PointContext], dict[str, Any]]
    check: Callable[[Any, BaseModel, Hardware, str], None] = _no_check
    derive: Callable[[BaseModel, Calibration], Any] = _nothing
    summary: tuple[str, ...] = ()  # the workload's figures the CLI table shows
