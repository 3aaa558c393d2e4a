"""One point of a scenario -> one result row.

A point (simulator/workloads/api.py) is (strategy, batch, cpus, replication), plus the values of
the scenario's `grid:` axes if it has any; expand() lists a scenario's points. run_point() boots a
fresh machine, lets the workload build and run its processes, checks the simulation's invariants,
and returns a flat record: the point's identity, the workload's figures and the allocator
statistics. It is a pure function of (scenario, point): the same inputs give the same row, in any
process.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import simpy

from simulator.machine.cache import L2
from simulator.machine.cache_core import NLEVELS
from simulator.machine.lock import ZONE_LOCK, lock_fields
from simulator.mm.machine import Machine
from simulator.scenario import Scenario
from simulator.stats import Histogram
from simulator.system import build_machine
from simulator.workloads import WORKLOADS
from simulator.workloads.api import Point, PointContext
from simulator.workloads.windows import DRAINS, FRONTEND, REFILLS, counter_sums, time_shares


def grid_combinations(sc: Scenario) -> list[tuple[tuple[str, Any], ...]]:
    """Every combination of the scenario's `grid:` axes (first axis outermost); [()] without."""
    g = sc.model.grid
    paths = list(g)
    return [tuple(zip(paths, values)) for values in itertools.product(*(g[p] for p in paths))]


def expand(sc: Scenario) -> list[Point]:
    """The scenario's grid: [grid axes x] strategies x batches x cpus x replications, in that order."""
    m = sc.model
    return [
        Point(s, b, c, r, g)
        for g in grid_combinations(sc)
        for s, b, c, r in itertools.product(m.strategies, m.batches, m.cpus, range(m.replications))
    ]


def point_context(m: Machine, sc: Scenario, point: Point) -> PointContext:
    """What the workload of `sc` gets to run `point` on machine `m`."""
    return PointContext(m, sc.params, point, sc.model.seed, sc.model.warmup, sc.model.duration, sc.derived)


def allocator_stats(m: Machine, ctx: PointContext) -> dict[str, float]:
    """The allocator statistics every row carries, over the point's measurement windows
    (simulator/workloads/windows.py)."""
    split = ctx.time_split()
    cpu_ns = sum(t.length for t in split)
    zone = lock_fields(m.locks_of(ZONE_LOCK), "zone_lock", cpu_ns)
    irq = Histogram()
    cpus = ctx.measured_cpus or m.cpus
    for c in cpus:
        irq.merge(c.all_irq_windows())
    if ctx.per_cpu_windows:
        # each CPU's own counters over its own window; pages: those of the windows
        sums = counter_sums([ctx.windows[c.id] for c in cpus])
        counts = sums[:NLEVELS]
        misses, lines = int(counts[L2:].sum()), int(counts.sum())
        frontend = float(sums[NLEVELS + FRONTEND])
        refills, drains = int(sums[NLEVELS + REFILLS]), int(sums[NLEVELS + DRAINS])
        span = max(cpu_ns, 1e-9)
        pages = max(ctx.pages_measured, 1)
    else:
        misses = int(m.cache.level_counts[:, L2:].sum())
        lines = int(m.cache.level_counts.sum())
        frontend = sum(c.frontend_ns for c in cpus)
        refills = sum(p.refills for z in m.zones for p in z.pcp)
        drains = sum(p.drains for z in m.zones for p in z.pcp)
        span = max(m.env.now - ctx.window_start, 1e-9) * len(cpus)
        pages = max(ctx.pages_measured, m.stats.pages_allocated, 1)
    return {
        "zone_lock_acquisitions": zone["zone_lock_acquisitions"],
        "zone_lock_contended": zone["zone_lock_contentions"],
        "zone_lock_wait_ns": zone["zone_lock_wait_ns_total"],
        "zone_lock_wait_p99_ns": zone["zone_lock_wait_p99_ns"],
        "zone_lock_hold_p99_ns": zone["zone_lock_hold_p99_ns"],
        "pcp_refills": refills,
        "pcp_drains": drains,
        "irq_off_max_ns": irq.max,
        "irq_off_p99_ns": irq.quantile(0.99),
        "irq_off_mean_ns": irq.mean,
        "irq_off_share": sum(c.irq_off_ns for c in cpus) / span,
        "cache_misses_per_page": misses / pages,
        # distributions (sweeps plot them: IRQ-off window tail, zone->lock wait per page)
        "irq_off_windows": irq.n,
        "irq_off_p50_ns": irq.quantile(0.5),
        "irq_off_p90_ns": irq.quantile(0.9),
        "irq_off_p999_ns": irq.quantile(0.999),
        "zone_lock_wait_ns_per_page": zone["zone_lock_wait_ns_total"] / pages,
        "cache_lines_per_page": lines / pages,
        # instruction fetch, decode and BTB stalls (simulator/machine/frontend.py)
        "frontend_ns_per_page": frontend / pages,
        "vmstat_folds": sum(z.stat_folds for z in m.zones),
        "slowpath": m.stats.slowpath,
        "alloc_failures": m.stats.alloc_failures,
        "remote_node_allocs": m.stats.remote_node_allocs,
        "bulk_fallback_single": m.stats.bulk_fallback_single,
        "bulk_empty": m.stats.bulk_empty,
        # lockstat's figures of &zone->lock, and where the measured CPUs' time went
        **zone,
        **time_shares(split),
    }


# (simulated ns so far, simulated ns of the whole point): called every REPORT_EVERY SimPy events
Progress = Callable[[float, float], None]
REPORT_EVERY = 256


class _ReportingEnvironment(simpy.Environment):
    """simpy.Environment that tells `report` how far simulated time has got, every REPORT_EVERY
    events. It schedules nothing, so the run is event for event the one a plain Environment
    makes (the progress of a long point, for the CLI to show; the model never prints)."""

    def __init__(self, report: Progress, end_ns: float) -> None:
        super().__init__()
        self._report = report
        self._end_ns = end_ns
        self.events = 0

    def step(self) -> None:
        self.events += 1
        if not self.events % REPORT_EVERY:
            self._report(self.now, self._end_ns)
        super().step()


# The model's pace on one core of the project's 2-core machine (CPython 3.11), wall seconds per
# simulated second, measured with the shipped scenarios; for the warning before a long run only.
PACE_WALL_PER_SIM_S = {
    "page_bench": 1000.0,  # per allocating CPU (single, batch 1; bulk at 64: about 350)
    "xdp_redirect": 60.0,  # per saturated RX queue
    "nfs": 50.0,  # at 150,000 RPC/s (the default open-loop rate), in proportion to the rate
    # per task (112 tasks, 2 ms: 12 s); a run goes on past its duration until the tasks have
    # unmapped 4,096 pages, so few tasks with a large mapping take longer (1 task, 128 MiB: 1.6 s)
    "page_fault1": 60.0,
}


def estimate_wall_s(sc: Scenario, point: Point) -> float:
    """Roughly how many wall seconds `point` of `sc` takes in one process: simulated time x the
    work running at once x the workload's measured pace (PACE_WALL_PER_SIM_S)."""
    m, params = sc.model, sc.params
    sim_s = (m.warmup + m.duration) / 1e9
    units = float(point.cpus)
    if m.workload == "xdp_redirect":
        queues = point.cpus * getattr(params, "queues_per_cpu", 1)
        load = getattr(params, "offered_load", "saturate")
        units = queues if load == "saturate" else min(queues, float(load) / 3.7e6)
    elif m.workload == "nfs":
        clients = getattr(params, "clients", None)
        rate = getattr(clients, "rate", None) if clients is not None else None
        units = (rate or 150_000.0) / 150_000.0
    return 0.2 + sim_s * units * PACE_WALL_PER_SIM_S.get(m.workload, 1000.0)


def run_point(sc: Scenario, point: Point, progress: Progress | None = None) -> dict[str, Any]:
    """Simulate one point; returns its result row (raises InvariantError on a model bug).

    A point of a grid axis runs the scenario with that axis's value set (Scenario.with_settings);
    the row carries the value in a column named by the axis's dotted path. `progress`, if given,
    is told how far simulated time has got as the point runs (the row does not change)."""
    wall0 = time.perf_counter()
    if point.grid:
        sc = sc.with_settings(point.grid)
    if progress is None:
        env = simpy.Environment()
    else:
        env = _ReportingEnvironment(progress, sc.model.warmup + sc.model.duration)
    m = build_machine(env, sc.hardware, sc.model.kernel.to_config(), sc.costs, sc.code)
    ctx = point_context(m, sc, point)
    workload = WORKLOADS[sc.model.workload]
    figures = workload.run(ctx)
    m.check_invariants()
    row: dict[str, Any] = {
        "scenario": sc.name,
        "workload": sc.model.workload,
        "hardware": sc.hardware.name,
        "kernel": sc.model.kernel.version,
        "strategy": point.strategy,
        "batch": point.batch,
        "cpus": point.cpus,
        "replication": point.replication,
        "seed": sc.model.seed,
    }
    row.update(point.grid)
    row["sim_ns"] = env.now
    row.update(figures)
    row.update(allocator_stats(m, ctx))
    row["wall_s"] = time.perf_counter() - wall0
    return row
