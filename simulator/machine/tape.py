"""Pricing k back-to-back calls of one code path in one vectorised step, bit for bit.

A kernel path that a caller runs once per page (free_unref_page() per SKB, alloc_pages_node()
per array slot) does the same steps on every call: touch some cache lines, spend some work, open
and close an IRQ-off window. A `Tape` records those steps once, for k calls at once (a step's
lines or work may differ per call: an array with one value per call), and `run()` prices them:

- every line goes through `CacheModel.access_each()` in program order (call 0's lines, then call
  1's...), which prices each access exactly as the per-call touches would;
- every floating-point sum is done in the order the per-call code does it: a touch's cost is the
  sequential sum of its lines' costs (CacheModel.access's scalar path); the CPU's `pending` time,
  its `cache_cost_ns` and `irq_off_ns`, and the histograms' totals are running sums, computed with
  np.cumsum, which adds left to right like the per-call code (np.sum would not: it adds pairwise).

So a tape leaves the CPU, the cache and the statistics exactly (==, not approximately) as the
k per-call executions would, and returns the local times a caller needs for its own tallies.
`LiveSteps` runs the same step descriptions one call at a time on the CPU (the per-call path).
`Batch` does the same for one stretch of one call: it stands in for the CPU while a code path
only touches lines and spends work, and prices the stretch with one access_each() call.

Runs in simulator/mm/page_alloc.py and simulator/net/ build on this; tests/test_runs.py and
tests/test_tape.py check both against the per-call code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.machine.cache import ASYNC, PAIRWISE_MIN, combine
from simulator.machine.cache_core import tape_sums

_NO_COSTS = np.empty(0)
_NO_FLAGS = np.empty(0, dtype=bool)

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU

PAGE = -1  # in a Touch of a run's prologue or epilogue: the call's own page


@dataclass(frozen=True)
class Touch:
    """cpu.touch(lines, write): one line id per entry, or an array with one line id per call of
    the run, or PAGE (the call's page, in the runs that know it before the call)."""

    lines: tuple[int | np.ndarray, ...]
    write: bool = True


@dataclass(frozen=True)
class Spend:
    """cpu.spend(ns): the same on every call."""

    ns: float


Step = Touch | Spend


class Tape:
    """k back-to-back calls of one code path, recorded step by step and priced by run()."""

    def __init__(self, cpu: CPU, k: int) -> None:
        self.cpu = cpu
        self.k = k
        self._lines: list[int | np.ndarray] = []
        self._writes: list[bool] = []
        self._incs: list[float | np.ndarray | slice] = []  # pending increments, in order
        self._marks: list[int] = []  # increments before each mark
        self._window: tuple[str, int, int] | None = None  # (fn, increments at open, at close)
        self._open: tuple[str, int] | None = None

    # ---- recording ----------------------------------------------------------------------------
    def spend(self, ns: float | np.ndarray) -> None:
        """cpu.spend(ns): a float, or an array with one value per call."""
        self._incs.append(ns)

    def touch(self, lines: Sequence[int | np.ndarray], write: bool = True) -> None:
        """cpu.touch(lines, write): each entry a line id or an array of one line id per call."""
        if len(lines) >= PAIRWISE_MIN:
            raise ValueError("a tape prices small touches only (CacheModel.access sums big ones pairwise)")
        start = len(self._lines)
        self._lines.extend(lines)
        self._writes.extend([write] * len(lines))
        self._incs.append(slice(start, start + len(lines)))

    def mark(self) -> int:
        """Ask run() for each call's local time (cpu.now()) at this point; returns its column."""
        self._marks.append(len(self._incs))
        return len(self._marks) - 1

    def irq_save(self, fn: str) -> None:
        """local_irq_save() with IRQs on: half the pair's cost, then the window opens."""
        if self._open is not None or self._window is not None:
            raise ValueError("a tape records one IRQ-off window per call")
        self.spend(self.cpu.costs.irq_save_restore * 0.5)
        self._open = (fn, len(self._incs))

    def irq_restore(self) -> None:
        """local_irq_restore(): the window closes, then the other half of the pair's cost."""
        if self._open is None:
            raise ValueError("irq_restore without irq_save")
        fn, at = self._open
        self._window = (fn, at, len(self._incs))
        self._open = None
        self.spend(self.cpu.costs.irq_save_restore * 0.5)

    def _async(self, col: int) -> bool:
        """Is column `col` an ASYNC access (every call's line in a column plays one role)?"""
        v = self._lines[col]
        if isinstance(v, np.ndarray):
            return bool(v.size) and bool(v[0] >= ASYNC)
        return v >= ASYNC

    # ---- pricing ------------------------------------------------------------------------------
    def run(self) -> np.ndarray:
        """Price the k calls on the CPU; returns the local times at each mark, shape (k, marks)."""
        if self._open is not None:
            raise ValueError("an IRQ-off window is left open")
        cpu = self.cpu
        k = self.k
        if cpu.irqs_disabled and self._window is not None:
            raise ValueError("a tape's IRQ-off windows need IRQs on")
        cache = cpu.cache
        ncol = len(self._lines)
        if ncol:
            # constant lines as one row broadcast over the calls, then the per-call columns
            lines = np.empty((k, ncol), dtype=np.int64)
            lines[:] = [0 if isinstance(v, np.ndarray) else v for v in self._lines]
            for j, v in enumerate(self._lines):
                if isinstance(v, np.ndarray):
                    lines[:, j] = v
            flat = lines.ravel()
            # every line in program order; a write flag per column
            costs = cache.access_each(cpu.id, flat, np.array(self._writes, dtype=bool))
            # every call's line in a column plays one role (_async)
            col_async = flat[:ncol] >= ASYNC if k else np.zeros(ncol, dtype=bool)
        else:
            costs = _NO_COSTS
            col_async = _NO_FLAGS
        ninc = len(self._incs)
        inc_const = np.zeros(ninc)
        touch_a = np.full(ninc, -1, dtype=np.int64)
        touch_b = np.full(ninc, -1, dtype=np.int64)
        arr_col = np.full(ninc, -1, dtype=np.int64)
        arrays = []
        for j, v in enumerate(self._incs):
            if isinstance(v, slice):
                touch_a[j] = v.start
                touch_b[j] = v.stop
            elif isinstance(v, np.ndarray):
                arr_col[j] = len(arrays)
                arrays.append(v)
            else:
                inc_const[j] = v
        inc_arr = np.column_stack(arrays) if arrays else np.empty((k, 0))
        w = self._window
        window = np.array([w[1], w[2]] if w is not None else [-1, -1], dtype=np.int64)
        times, cpu.pending, cpu.cache_cost_ns, starts, ends = tape_sums(
            costs, k, ncol, inc_const, inc_arr, arr_col, touch_a, touch_b, col_async, cache.mlp,
            cache.fill_buffers, cpu.pending, cpu.cache_cost_ns, cpu.env.now, cpu.slowdown,
            np.array(self._marks, dtype=np.int64), window,
        )  # fmt: skip
        if w is not None:
            cpu.record_irq_windows(w[0], starts, ends)
        return times


class Batch:
    """Stands in for a CPU in a stretch of one code path that only touches lines and spends work
    (no yield, no reading of the time in between): records each touch and spend, then run()
    prices every line with one CacheModel.access_each() call and applies the touches and spends
    in their order, each touch's cost summed as CacheModel.access() sums it. Anything else a
    kernel function asks of its `cpu` (costs, machine, line ids) comes from the real CPU; asking
    for the time, or for anything that needs it, is an error until run()."""

    _TIMED = frozenset(
        ("now", "pending", "sync", "local_irq_save", "local_irq_restore", "spend_each", "touch_overlapped")
    )

    def __init__(self, cpu: CPU) -> None:
        self._cpu = cpu
        self._lines: list[int] = []
        self._writes: list[bool] = []
        self._ops: list[float | tuple[int, int]] = []

    def __getattr__(self, name: str) -> object:
        if name in Batch._TIMED:
            raise AttributeError(f"{name}: a Batch stands in for a CPU only to touch lines and spend work")
        return getattr(self._cpu, name)

    def touch(self, lines: Sequence[int], write: bool = True) -> None:
        self._ops.append((len(self._lines), len(lines)))
        self._lines.extend(lines)
        self._writes.extend([write] * len(lines))

    def spend(self, ns: float) -> None:
        self._ops.append(ns)

    def run(self) -> None:
        """Price and apply everything recorded, in order."""
        cpu = self._cpu
        costs = cpu.cache.access_each(cpu.id, self._lines, self._writes) if self._lines else None
        pending = cpu.pending
        cache_ns = cpu.cache_cost_ns
        lines = self._lines
        for op in self._ops:
            if isinstance(op, tuple):
                a, n = op
                if n and cpu.cache.mlp and max(lines[a : a + n]) >= ASYNC:
                    flags = np.array(lines[a : a + n], dtype=np.int64) >= ASYNC
                    t = combine(costs[a : a + n], flags, cpu.cache.fill_buffers)  # type: ignore[index]
                elif n >= PAIRWISE_MIN:
                    t = float(costs[a : a + n].sum())  # type: ignore[index]
                else:
                    t = 0.0
                    for v in costs[a : a + n].tolist():  # type: ignore[index]
                        t += v
                pending += t
                cache_ns += t
            else:
                pending += op
        cpu.pending = pending
        cpu.cache_cost_ns = cache_ns
        self._ops.clear()
        self._lines.clear()
        self._writes.clear()


class LiveSteps:
    """The same step descriptions, executed at once on the CPU for call `i` (the per-call path)."""

    def __init__(self, cpu: CPU) -> None:
        self.cpu = cpu

    def run(self, steps: Sequence[Step], i: int, page: int | None = None) -> None:
        cpu = self.cpu
        for st in steps:
            if isinstance(st, Spend):
                cpu.spend(st.ns)
            else:
                cpu.touch([_one(v, i, page) for v in st.lines], st.write)


def _one(v: int | np.ndarray, i: int, page: int | None) -> int:
    if isinstance(v, np.ndarray):
        return int(v[i])
    if v == PAGE:
        if page is None:
            raise ValueError("PAGE in a step of a run whose page is not known before the call")
        return page
    return v


def tape_steps(tape: Tape, steps: Sequence[Step], sl: slice, pages: np.ndarray | None = None) -> None:
    """Record `steps` for the run's calls `sl` (per-call arrays sliced; PAGE: `pages`)."""
    for st in steps:
        if isinstance(st, Spend):
            tape.spend(st.ns)
            continue
        out: list[int | np.ndarray] = []
        for v in st.lines:
            if isinstance(v, np.ndarray):
                out.append(v[sl])
            elif v == PAGE:
                if pages is None:
                    raise ValueError("PAGE in a step of a run whose page is not known before the call")
                out.append(pages)
            else:
                out.append(v)
        tape.touch(out, st.write)


def running_sum(start: float, values: np.ndarray) -> float:
    """`start` plus each value in turn, left to right (as `x += v` in a loop)."""
    if len(values) == 0:
        return start
    return float(np.cumsum(np.concatenate(([start], values)))[-1])


def running_sums(start: float, values: np.ndarray) -> np.ndarray:
    """The running values of `x` after each `x += v` (left to right), starting from `start`."""
    return np.cumsum(np.concatenate(([start], values)))[1:]


__all__ = [
    "PAGE",
    "Batch",
    "LiveSteps",
    "Spend",
    "Step",
    "Tape",
    "Touch",
    "running_sum",
    "running_sums",
    "tape_steps",
]
