"""A simulated CPU: where kernel code paths spend time, hold IRQs off and touch cache lines.

Time is lazy: a code path adds its cost to `pending` and only yields to SimPy (`sync()`) where
another CPU could observe the order of events — before taking a lock, or between work items.
So a CPU's local time is `env.now + pending`, and a batch of work is priced in one step.

SMT: while a CPU's sibling thread is busy, its work runs `1 / throughput` slower. The factor
(`slowdown`) is fixed for one work item, the stretch between two syncs: it is decided when the CPU
resumes from a sync, from whether its sibling is busy then, and local time runs at
`env.now + pending x slowdown`. Waiting (a spinlock's spin, a memory controller's queue) passes in
real time whatever the sibling does (`stall()`).

Every CPU keeps, since boot, the time it was busy (its synced work items, spinning included) and
the time it spun, each readable at any time of its current work item (busy_at(), spin_at()): the
run / spin / idle split of a measurement window (simulator/workloads/windows.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import simpy

from simulator.errors import InvariantError
from simulator.stats import Histogram

if TYPE_CHECKING:
    from simulator.costs import Costs
    from simulator.machine.cache import CacheModel
    from simulator.machine.frontend import CodeRegion, FrontEnd

RECENT_WINDOWS = 4096  # IRQ-off windows kept for interrupt-delivery lookups (bounded)


_NO_WINDOWS = np.zeros(0)


class WindowRing:
    """A CPU's last RECENT_WINDOWS IRQ-off windows, (start, end) in the order they closed, in two
    preallocated float arrays: the same memory from the first window to the last."""

    __slots__ = ("starts", "ends", "n", "head")

    def __init__(self) -> None:
        # allocated at the first window (a CPU that never disables IRQs costs nothing)
        self.starts = _NO_WINDOWS
        self.ends = _NO_WINDOWS
        self.n = 0  # windows held
        self.head = 0  # where the next one goes

    def _allocate(self) -> None:
        self.starts = np.zeros(RECENT_WINDOWS)
        self.ends = np.zeros(RECENT_WINDOWS)

    def __len__(self) -> int:
        return self.n

    def append(self, start: float, end: float) -> None:
        if not self.n:
            self._allocate()
        i = self.head
        self.starts[i] = start
        self.ends[i] = end
        self.head = (i + 1) % RECENT_WINDOWS
        if self.n < RECENT_WINDOWS:
            self.n += 1

    def extend(self, starts: np.ndarray, ends: np.ndarray) -> None:
        """append() each window in turn."""
        if not self.n:
            self._allocate()
        k = min(len(starts), RECENT_WINDOWS)
        starts, ends = starts[len(starts) - k :], ends[len(ends) - k :]
        i = self.head
        first = min(k, RECENT_WINDOWS - i)
        self.starts[i : i + first] = starts[:first]
        self.ends[i : i + first] = ends[:first]
        self.starts[: k - first] = starts[first:]
        self.ends[: k - first] = ends[first:]
        self.head = (i + k) % RECENT_WINDOWS
        self.n = min(self.n + k, RECENT_WINDOWS)

    def newest_first(self) -> Iterator[tuple[float, float]]:
        """(start, end) of each window held, the most recent first."""
        i = self.head
        starts, ends = self.starts, self.ends
        for _ in range(self.n):
            i = i - 1 if i else RECENT_WINDOWS - 1
            yield float(starts[i]), float(ends[i])

    def __iter__(self) -> Iterator[tuple[float, float]]:
        """Oldest first."""
        return reversed(list(self.newest_first()))


class CPU:
    """One logical CPU (`machine.cpu3`)."""

    def __init__(
        self,
        env: simpy.Environment,
        cpu_id: int,
        node: int,
        llc: int,
        socket: int,
        cache: CacheModel,
        costs: Costs,
    ) -> None:
        self.env = env
        self.id = cpu_id
        self.node = node
        self.llc = llc
        self.socket = socket
        self.scope = f"machine.cpu{cpu_id}"
        self.cache = cache
        self.costs = costs
        self.pending = 0.0
        # IRQ-off state: depth of nested local_irq_save, start and owner of the open window.
        self._irq_depth = 0
        self._irq_start = 0.0
        self._irq_fn = ""
        self.irq_windows: dict[str, Histogram] = {}
        self.irq_off_ns = 0.0  # IRQ-off time since `window_floor` (the end of warm-up)
        self.window_floor = 0.0
        self.recent_windows = WindowRing()
        self.cache_cost_ns = 0.0
        self.frontend: FrontEnd | None = None  # set by build_machine (None: no front-end model)
        self.frontend_ns = 0.0  # front-end stall since `window_floor`
        # its node's memory controller (machine/memory.py, set by build_machine: that module
        # imports this one)
        self.memory: Any = None
        # time accounts since boot (never reset): busy = synced work items, spinning included
        self.busy_ns = 0.0
        self.busy_to = -1.0  # when the last synced work item ends (none yet)
        self.spin_ns = 0.0
        self.spin_end = 0.0  # local time the last spin ended
        # statistics gate: lock events and IRQ-off windows of this CPU count while it is True
        # (a workload measuring each CPU over its own window closes it outside; api.py)
        self.measuring = True
        # SMT: the other thread of this core, and how much slower work runs while it is busy
        self.sibling: CPU | None = None
        self.busy_slowdown = 1.0  # 1 / smt throughput
        self.slowdown = 1.0  # this work item's factor

    # ---- time -------------------------------------------------------------------------------
    def now(self) -> float:
        """This CPU's local time (ns): SimPy time plus work priced but not yet yielded."""
        return self.env.now + self.pending * self.slowdown

    def spend(self, ns: float) -> None:
        self.pending += ns

    def stall(self, ns: float) -> None:
        """Wait `ns` of real time on this CPU, busy (a memory controller's queue): unlike work,
        not slowed by a busy SMT sibling."""
        self.pending += ns / self.slowdown

    def spin(self, ns: float) -> None:
        """Spin `ns` of real time (waiting for a lock), counted in spin_ns."""
        self.spin_end = self.now() + ns
        self.spin_ns += ns
        self.pending += ns / self.slowdown

    def spend_each(self, ns: np.ndarray) -> None:
        """spend(v) for each value in turn (the same running sum, to the last bit)."""
        if len(ns):
            self.pending = float(np.cumsum(np.concatenate(([self.pending], ns)))[-1])

    def sync(self) -> simpy.Timeout:
        """An event that lets simulated time catch up with this CPU's pending work."""
        d = self.pending * self.slowdown
        self.pending = 0.0
        self.busy_ns += d
        self.busy_to = self.env.now + d
        ev = self.env.timeout(d)
        if self.sibling is not None:
            ev.callbacks.append(self._next_item)  # runs before the process resumes
        return ev

    def _next_item(self, _: simpy.Event) -> None:
        """SMT: the next work item runs slower if the sibling is busy as it starts."""
        sibling = self.sibling
        assert sibling is not None
        # a sibling whose item ends just now is taken as busy: a loop goes on with its next one
        self.slowdown = self.busy_slowdown if sibling.busy_to >= self.env.now else 1.0

    def busy_at(self, t: float) -> float:
        """Busy time since boot up to time `t`, for `t` no earlier than the start of this CPU's
        current (or last) work item."""
        done = self.busy_ns - max(0.0, self.busy_to - t)
        return done + min(max(t - self.env.now, 0.0), self.pending * self.slowdown)

    def spin_at(self, t: float) -> float:
        """Spin time since boot up to time `t` (as busy_at)."""
        return self.spin_ns - max(0.0, self.spin_end - t)

    # ---- cache lines ------------------------------------------------------------------------
    def touch(self, lines: np.ndarray | list[int], write: bool = True) -> float:
        """Touch lines one after another (dependent accesses); spends and returns their cost."""
        t = self.cache.access(self.id, lines, write)
        self.pending += t
        self.cache_cost_ns += t
        return t

    def touch_overlapped(self, lines: list[int]) -> float:
        """Touch independent lines together (prefetches): their misses overlap."""
        t = self.cache.overlapped(self.id, lines)
        self.pending += t
        self.cache_cost_ns += t
        return t

    # ---- instructions -----------------------------------------------------------------------
    def run_code(self, path: Sequence[CodeRegion], iterations: int = 1) -> float:
        """Run a code path (`iterations` times back to back): spends and returns the front-end
        stall of fetching, decoding and predicting it (simulator/machine/frontend.py)."""
        if self.frontend is None or not path:
            return 0.0
        t = self.frontend.loop(path, iterations) if iterations != 1 else self.frontend.run(path)
        self.pending += t
        self.frontend_ns += t
        return t

    def occupy_code(self, path: Sequence[CodeRegion]) -> None:
        """Code whose work is priced in an assumed lump (nfsd's request processing) still evicts
        the kernel's other code from this CPU's front end."""
        if self.frontend is not None:
            self.frontend.occupy(path)

    # ---- IRQs -------------------------------------------------------------------------------
    def local_irq_save(self, fn: str) -> None:
        """local_irq_save(): half the save+restore pair's cost falls before the window opens."""
        self.pending += self.costs.irq_save_restore * 0.5
        if self._irq_depth == 0:
            self._irq_start = self.now()
            self._irq_fn = fn
        self._irq_depth += 1

    def local_irq_restore(self) -> None:
        """local_irq_restore(): closes the window opened by the outermost save."""
        if self._irq_depth <= 0:
            raise InvariantError(f"{self.scope}: local_irq_restore without a matching save")
        self._irq_depth -= 1
        if self._irq_depth == 0:
            self._close_window(self.now())
        self.pending += self.costs.irq_save_restore * 0.5

    def record_irq_windows(self, fn: str, starts: np.ndarray, ends: np.ndarray) -> None:
        """Record back-to-back windows of one function computed in a vectorised step, leaving
        every statistic exactly as closing them one by one (_close_window) would."""
        if self._irq_depth:
            raise InvariantError(f"{self.scope}: vectorised IRQ windows inside an open window")
        if len(starts) == 0:
            return
        if not self.measuring:
            self.recent_windows.extend(starts, ends)
            self._irq_start = float(starts[-1])
            self._irq_fn = fn
            return
        h = self.irq_windows.get(fn)
        if h is None:
            h = self.irq_windows[fn] = Histogram()
        h.add_each(ends - starts)
        counted = np.maximum(ends - np.maximum(starts, self.window_floor), 0.0)
        self.irq_off_ns = float(np.cumsum(np.concatenate(([self.irq_off_ns], counted)))[-1])
        self.recent_windows.extend(starts, ends)
        self._irq_start = float(starts[-1])
        self._irq_fn = fn

    def _close_window(self, end: float) -> None:
        if not self.measuring:  # still a window an interrupt can wait on
            self.recent_windows.append(self._irq_start, end)
            return
        length = end - self._irq_start
        h = self.irq_windows.get(self._irq_fn)
        if h is None:
            h = self.irq_windows[self._irq_fn] = Histogram()
        h.add(length)
        # a window that opened before the measurement began counts only from its start
        self.irq_off_ns += max(0.0, end - max(self._irq_start, self.window_floor))
        self.recent_windows.append(self._irq_start, end)

    @property
    def irqs_disabled(self) -> bool:
        return self._irq_depth > 0

    def irq_delivery_delay(self, t: float) -> float:
        """How long an interrupt raised at time `t` waits for IRQs to come back on."""
        if self._irq_depth and t >= self._irq_start:
            return max(0.0, self.now() - t)
        for start, end in self.recent_windows.newest_first():
            if start <= t < end:
                return end - t
            if end <= t:
                break
        return 0.0

    def all_irq_windows(self) -> Histogram:
        h = Histogram()
        for w in self.irq_windows.values():
            h.merge(w)
        return h

    def check_quiescent(self) -> None:
        """Invariant at the end of a run: no IRQ-off window left open."""
        if self._irq_depth:
            raise InvariantError(
                f"{self.scope}: IRQs still disabled at the end of the run (opened by {self._irq_fn})"
            )
