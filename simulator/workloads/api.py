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
from simulator.workloads.windows import CpuTime, CpuWindow, close_window, cpu_time, open_window

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
    and their measurement windows: simulator/workloads/windows.py)."""

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
    windows: dict[int, CpuWindow] = field(default_factory=dict)  # by CPU id
    per_cpu_windows: bool = False  # each CPU measured over its own window (measure_each_cpu)
    warmed_up: bool = False  # the statistics were zeroed at the end of warm-up

    def rng(self, part: str) -> np.random.Generator:
        """An independent random stream for one stochastic part of this replication.

        Derived from (root seed, replication, part name) only, so every strategy and batch of
        a replication sees the same arrivals (common random numbers), and results do not depend
        on which process runs the point."""
        key = (self.point.replication, zlib.crc32(part.encode()))
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))

    def measure_window(self, start: float, cpus: list[CPU]) -> None:
        """Statistics count from simulated time `start` on (warm-up excluded), over one window
        for all of `cpus` that ends with the run."""
        self.measured_cpus = list(cpus)
        self.window_start = start

        def reset() -> Generator[simpy.Event, None, None]:
            yield self.machine.env.timeout(start)
            self.end_warmup()

        if start > 0:
            self.machine.env.process(reset())
        else:
            self._open_all()

    def measure_each_cpu(self, start: float, cpus: list[CPU]) -> None:
        """Each of `cpus` is measured over its own window, which the workload opens and closes
        (open_window, close_window) after the statistics are zeroed at `start` (warmed_up)."""
        self.per_cpu_windows = True
        for c in cpus:
            c.measuring = False
        self.measure_window(start, cpus)

    def open_window(self, cpu: CPU) -> None:
        """`cpu`'s own window opens now (its local time)."""
        self.windows[cpu.id] = open_window(self.machine, cpu, cpu.now(), True)
        cpu.measuring = True

    def close_window(self, cpu: CPU) -> None:
        """`cpu`'s own window closes now (its local time)."""
        close_window(self.machine, self.windows[cpu.id], cpu.now())
        cpu.measuring = False

    def end_warmup(self) -> None:
        """Warm-up is over: zero every statistic of the machine (reset_stats); a window for all
        measured CPUs opens."""
        reset_stats(self.machine)
        self._open_all()

    def _open_all(self) -> None:
        """Warm-up is over: the window for all measured CPUs opens (per-CPU windows: each CPU's
        opens when its workload says)."""
        self.warmed_up = True
        if self.per_cpu_windows:
            return
        t = self.machine.env.now
        for c in self.measured_cpus:
            self.windows[c.id] = open_window(self.machine, c, t, False)

    def time_split(self) -> list[CpuTime]:
        """Each measured CPU's window split into run, spin and idle; a window still open closes
        at the end of the run (a measured CPU with no window: from time 0, or an empty one when
        each CPU opens its own)."""
        m = self.machine
        now = m.env.now
        out = []
        for c in self.measured_cpus or m.cpus:
            w = self.windows.get(c.id)
            if w is None and self.per_cpu_windows:  # it measured nothing: an empty window
                w = self.windows[c.id] = open_window(m, c, now, True)
            elif w is None:
                w = self.windows[c.id] = open_window(m, c, 0.0, False)
                w.busy0 = w.spin0 = 0.0
            if w.end is None:
                close_window(m, w, now)
            out.append(cpu_time(w))
        return out


def reset_stats(m: Machine) -> None:
    """Zero every statistic (not the state): the end of warm-up."""
    m.stats = AllocStats()
    m.cache.reset_counts()
    for lk in m.locks:
        lk.reset_stats()
    for mc in m.memory:
        mc.reset_stats()
    for z in m.zones:
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
