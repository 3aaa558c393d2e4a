"""Measurement windows: the stretch of each measured CPU's time that a row's figures cover, and
the split of that time into run, spin and idle.

Two kinds (PointContext, simulator/workloads/api.py):
- one window for every measured CPU, from the end of warm-up to the end of the run
  (`measure_window`, or `end_warmup` for a workload that declares its CPUs itself): xdp_redirect,
  nfs. The statistics are zeroed when it opens.
- one window per CPU, opened and closed by the workload at points of that CPU's own program
  (`measure_each_cpu`, `open_window`, `close_window`): page_bench measures each CPU from its first
  iteration after warm-up to the end of its last. Outside its window a CPU's lock acquisitions and
  IRQ-off windows do not count (CPU.measuring), and its own counters (cache accesses by level,
  front-end stalls, its pcp refills and drains) count by difference between the window's ends.

A CPU's time in its window splits into run (busy, not spinning), spin (waiting for a spinlock)
and idle (no work item), which sum to the window's length (CPU.busy_at, CPU.spin_at).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU
    from simulator.mm.machine import Machine

# a CPU's own counters, in cpu_counters()' order: accesses by cache level, then these
FRONTEND, REFILLS, DRAINS = 0, 1, 2


@dataclass
class CpuWindow:
    """One measured CPU's window: its start and end, and its accounts at each."""

    cpu: CPU
    start: float
    busy0: float
    spin0: float
    counters0: np.ndarray | None  # per-CPU windows only (cpu_counters)
    end: float | None = None
    busy1: float = 0.0
    spin1: float = 0.0
    counters1: np.ndarray | None = None


@dataclass(frozen=True)
class CpuTime:
    """One measured CPU's window, split: run + spin + idle = length (to float rounding)."""

    cpu: int
    length: float
    run: float
    spin: float
    idle: float


def cpu_counters(m: Machine, cpu: CPU) -> np.ndarray:
    """The counters of `cpu` a per-CPU window takes by difference: its accesses by cache level,
    its front-end stall (ns), its pcp lists' refills and drains (every zone)."""
    pcps = [z.pcp[cpu.id] for z in m.zones]
    own = [cpu.frontend_ns, sum(p.refills for p in pcps), sum(p.drains for p in pcps)]
    return np.concatenate((m.cache.level_counts[cpu.id].astype(np.float64), own))


def open_window(m: Machine, cpu: CPU, t: float, per_cpu: bool) -> CpuWindow:
    """`cpu`'s window opens at time `t` (its local time, or SimPy time between its work items)."""
    return CpuWindow(cpu, t, cpu.busy_at(t), cpu.spin_at(t), cpu_counters(m, cpu) if per_cpu else None)


def close_window(m: Machine, w: CpuWindow, t: float) -> None:
    """`w` closes at time `t`."""
    cpu = w.cpu
    w.end = t
    w.busy1 = cpu.busy_at(t)
    w.spin1 = cpu.spin_at(t)
    if w.counters0 is not None:
        w.counters1 = cpu_counters(m, cpu)


def cpu_time(w: CpuWindow) -> CpuTime:
    """The run / spin / idle split of a closed window."""
    assert w.end is not None
    length = w.end - w.start
    busy = w.busy1 - w.busy0
    spin = w.spin1 - w.spin0
    return CpuTime(w.cpu.id, length, busy - spin, spin, length - busy)


def counter_sums(windows: list[CpuWindow]) -> np.ndarray:
    """Each per-CPU counter summed over the windows (cpu_counters' order, level counts first)."""
    total = np.zeros(0)
    for w in windows:
        assert w.counters0 is not None and w.counters1 is not None
        d = w.counters1 - w.counters0
        total = d if not total.size else total + d
    return total


def time_shares(split: list[CpuTime]) -> dict[str, float]:
    """The row's time split: each part's share of all measured CPUs' time."""
    total = sum(t.length for t in split)
    if total <= 0:
        return {"cpu_run_share": 0.0, "cpu_spin_share": 0.0, "cpu_idle_share": 0.0}
    return {
        "cpu_run_share": sum(t.run for t in split) / total,
        "cpu_spin_share": sum(t.spin for t in split) / total,
        "cpu_idle_share": sum(t.idle for t in split) / total,
    }
