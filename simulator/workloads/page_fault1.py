"""page_fault1: will-it-scale's anonymous page-fault test, processes mode
(antonblanchard/will-it-scale, tests/page_fault1.c).

Each task is a single-threaded process pinned to its own CPU (task i on CPU i: will-it-scale binds
task i to core i % cores through hwloc, and Linux numbers the second thread of core c as
c + cores, so on a machine with SMT the tasks past the core count land on the siblings). In a
loop, a task maps `mapping` bytes of anonymous memory, writes one byte in each 4 KiB page (one
first-write fault each: mm/memory.py's handle_mm_fault) and unmaps it all (do_munmap). An
iteration is one page touched; will-it-scale reports the iterations per second summed over the
tasks.

Shared between the tasks, and so what limits scaling: each zone's zone->lock (the pcp lists
refill with rmqueue_bulk and drain with free_pcppages_bulk), each node's lruvec->lru_lock (the
15-page pagevec drains of the faults, release_pages' 32-page holds in munmap), the memory
bandwidth of each node (every fault clears a page: __GFP_ZERO), and the cache lines they share.

Each task's first mapping is a random part of the full size, so that the tasks' munmaps are
spread over time as they are once a real run has gone on for a while (all tasks start together
and would otherwise unmap together).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal

import simpy
from pydantic import BaseModel, ConfigDict, Field

from simulator.calibration import Calibration
from simulator.errors import ConfigError
from simulator.fault_path import FaultPathFile, fault_costs, load_fault_path
from simulator.hardware import Hardware
from simulator.machine.cpu import CPU
from simulator.machine.lock import lock_fields
from simulator.mm.fault_costs import FaultCosts
from simulator.mm.memory import AnonMapping, do_mmap, do_munmap, handle_mm_fault
from simulator.mm.mmzone import PAGE_SIZE
from simulator.mm.swap import LRU_LOCK
from simulator.units import Size
from simulator.workloads.api import PointContext, Workload
from simulator.workloads.page_bench import select_cpus

MIB = 1 << 20


class PageFault1Params(BaseModel):
    """The `page_fault1:` section of a scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mapping: Size = 128 * MIB  # page_fault1.c MEMSIZE: 128 MiB per task
    # page-table isolation: on for Meltdown-affected Intel cores (Skylake-SP, Broadwell), off for
    # Cascade Lake and AMD; it adds its CR3 switches to every fault and system call
    pti: bool = True
    cpu_placement: Literal["pack", "spread"] = "pack"
    stagger: bool = True  # a random first mapping size per task (see the module docstring)
    # multiplies every step counted from the source (simulator/fault_path.yaml): the sensitivity
    # of a prediction to the counts, 1 as counted
    path_scale: float = Field(default=1.0, gt=0, le=100)


def check(model: Any, params: BaseModel, hw: Hardware, file: str) -> None:
    """page_fault1 allocates one page per fault and has no batch size."""
    p: PageFault1Params = params  # type: ignore[assignment]
    if model.strategies != ["single"]:
        raise ConfigError.one(
            file, "strategies", "page_fault1 allocates one page per fault: give [single]", model.strategies
        )
    if model.batches != [1]:
        raise ConfigError.one(file, "batches", "page_fault1 has no batch size: give [1]", model.batches)
    if p.mapping < PAGE_SIZE or p.mapping % PAGE_SIZE:
        raise ConfigError.one(file, "page_fault1.mapping", "a whole number of 4 KiB pages", p.mapping)


def derive(params: BaseModel, cal: Calibration) -> FaultPathFile:
    """The fault path's counts (simulator/fault_path.yaml), read once per scenario."""
    return load_fault_path()


# the unmap phase's cost per page is measured from at least this many unmapped pages (pooled over
# the tasks; a task's window stays open past the end until they are seen): enough that the
# per-munmap costs (syscall, lru_add_drain, the last TLB flush) weigh as little as in a whole run
MIN_UNMAPPED_PAGES = 4096


@dataclass
class Observed:
    """What the tasks' windows saw, pooled: each phase's time and the pages it did."""

    faults: int = 0  # faults completed in the windows
    fault_ns: float = 0.0  # the time they took
    unmapped: int = 0  # mapped pages of the munmaps started in the windows
    unmap_ns: float = 0.0  # the time those munmaps (and the next mmap) took
    munmaps: int = 0


@dataclass
class TaskTally:
    t0: float = -1.0  # the task's window (its local time)
    t1: float = -1.0


def page_fault1_task(
    ctx: PointContext,
    cpu: CPU,
    vma: AnonMapping,
    fc: FaultCosts,
    first: int,
    end: float,
    seen: Observed,
    tally: TaskTally,
) -> Generator[simpy.Event, None, None]:
    """One task's loop (a SimPy process): mmap, touch every page, munmap. Its measurement window
    opens at its first fault boundary after warm-up and closes at its first fault boundary at or
    after `end` once the tasks' windows have seen MIN_UNMAPPED_PAGES unmapped (every figure of the
    row covers these windows: simulator/workloads/windows.py); the task stops there, its last
    mapping left mapped. Each phase's time goes to `seen`: a fault's to the fault phase, an
    munmap's (started in the window, finished even past `end`) with the next mmap to the unmap
    phase."""
    n = first
    do_mmap(cpu, vma, fc)
    while True:
        for _ in range(n):
            t = cpu.now()
            page = yield from handle_mm_fault(cpu, vma, fc)
            if page is None:
                raise RuntimeError(f"{vma.scope}: out of memory (the mappings do not fit the node)")
            if tally.t0 >= 0:
                now = cpu.now()
                seen.faults += 1
                seen.fault_ns += now - t
                if now >= end and seen.unmapped >= MIN_UNMAPPED_PAGES:
                    tally.t1 = now
                    ctx.close_window(cpu)
                    return
            elif ctx.warmed_up:
                tally.t0 = cpu.now()
                ctx.open_window(cpu)
        t = cpu.now()
        pages = len(vma.pages)
        yield from do_munmap(cpu, vma, fc)
        do_mmap(cpu, vma, fc)
        if tally.t0 >= 0:
            seen.unmapped += pages
            seen.unmap_ns += cpu.now() - t
            seen.munmaps += 1
        n = vma.npages
        yield cpu.sync()


def run(ctx: PointContext) -> dict[str, float]:
    """Run page_fault1 for one point; returns the fault rates, each phase's cost and the
    lru_lock's statistics."""
    m, p = ctx.machine, ctx.point
    params: PageFault1Params = ctx.params  # type: ignore[assignment]
    fc = fault_costs(ctx.derived, m.costs, m.hw, params.pti, params.path_scale)
    cpus = select_cpus(m, p.cpus, params.cpu_placement)
    npages = params.mapping // PAGE_SIZE
    rng = ctx.rng("page_fault1.stagger")
    end = ctx.warmup + ctx.duration
    seen = Observed()
    tallies = []
    for cpu in cpus:
        scope = f"machine.task{cpu.id}"
        vma = AnonMapping(
            scope,
            npages,
            m.registry.alloc(f"{scope}.mm", cpu.node),
            m.registry.alloc(f"{scope}.vma", cpu.node),
        )
        first = int(rng.integers(1, npages + 1)) if params.stagger else npages
        tally = TaskTally()
        tallies.append(tally)
        m.env.process(page_fault1_task(ctx, cpu, vma, fc, first, end, seen, tally))
    ctx.measure_each_cpu(ctx.warmup, cpus)
    m.env.run()
    if seen.faults <= 0 or any(t.t1 < 0 for t in tallies):
        raise RuntimeError("page_fault1 measured no faults on some CPU: duration too short")
    ctx.pages_measured = seen.faults
    # a task's steady state: one mapping's faults, then its munmap and the next mmap, so a page
    # costs a fault plus its share of the unmap phase (each phase's cost per page from the time
    # the windows saw it take: the windows cover a part of a cycle, not its phases' proportions)
    fault_ns = seen.fault_ns / seen.faults
    unmap_ns = seen.unmap_ns / max(seen.unmapped, 1)
    per_task = 1e9 / (fault_ns + unmap_ns)
    cpu_ns = sum(t.t1 - t.t0 for t in tallies)
    lru = lock_fields(m.locks_of(LRU_LOCK), "lru_lock", cpu_ns)
    # clear_page (every page and page-table page is zeroed): its mean time, the channel's queue
    # included; over every stream since warm-up (the memory controllers' statistics)
    streams = sum(mc.streams for mc in m.memory)
    stream_ns = sum(mc.queued_ns + mc.bytes / mc.thread for mc in m.memory)
    return {
        "faults_per_s": per_task * len(cpus),
        "faults_per_s_per_task": per_task,
        "ns_per_fault": fault_ns + unmap_ns,
        "fault_ns": fault_ns,
        "unmap_ns_per_page": unmap_ns,
        "faults": seen.faults,
        "munmaps": seen.munmaps,
        "unmapped_pages": seen.unmapped,
        "clear_page_ns": stream_ns / streams if streams else 0.0,
        "lru_lock_wait_ns_per_fault": lru["lru_lock_wait_ns_total"] / seen.faults,
        **lru,
    }


WORKLOAD = Workload(
    "page_fault1",
    PageFault1Params,
    run,
    check,
    derive,
    summary=(
        "faults_per_s",
        "faults_per_s_per_task",
        "ns_per_fault",
        "zone_lock_spin_share",
        "lru_lock_spin_share",
    ),
)
