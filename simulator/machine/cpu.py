"""A simulated CPU: where kernel code paths spend time, hold IRQs off and touch cache lines.

Time is lazy: a code path adds its cost to `pending` and only yields to SimPy (`sync()`) where
another CPU could observe the order of events — before taking a lock, or between work items.
So a CPU's local time is `env.now + pending`, and a batch of work is priced in one step.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np
import simpy

from simulator.errors import InvariantError
from simulator.stats import Histogram

if TYPE_CHECKING:
    from simulator.calibration import Costs
    from simulator.machine.cache import CacheModel

RECENT_WINDOWS = 4096  # IRQ-off windows kept for interrupt-delivery lookups (bounded)


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
        self.recent_windows: deque[tuple[float, float]] = deque(maxlen=RECENT_WINDOWS)
        self.cache_cost_ns = 0.0
        self.spin_ns = 0.0

    # ---- time -------------------------------------------------------------------------------
    def now(self) -> float:
        """This CPU's local time (ns): SimPy time plus work priced but not yet yielded."""
        return self.env.now + self.pending

    def spend(self, ns: float) -> None:
        self.pending += ns

    def sync(self) -> simpy.Timeout:
        """An event that lets simulated time catch up with this CPU's pending work."""
        d = self.pending
        self.pending = 0.0
        return self.env.timeout(d)

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

    def record_irq_windows(self, fn: str, starts: np.ndarray, lengths: np.ndarray) -> None:
        """Record many back-to-back windows of one function computed in a vectorised step."""
        if self._irq_depth:
            raise InvariantError(f"{self.scope}: vectorised IRQ windows inside an open window")
        h = self.irq_windows.get(fn)
        if h is None:
            h = self.irq_windows[fn] = Histogram()
        h.add_many(lengths)
        ends = starts + lengths
        self.irq_off_ns += float(np.maximum(ends - np.maximum(starts, self.window_floor), 0.0).sum())
        tail = min(len(starts), RECENT_WINDOWS)
        for s, ln in zip(starts[-tail:].tolist(), lengths[-tail:].tolist()):
            self.recent_windows.append((s, s + ln))

    def _close_window(self, end: float) -> None:
        length = end - self._irq_start
        h = self.irq_windows.get(self._irq_fn)
        if h is None:
            h = self.irq_windows[self._irq_fn] = Histogram()
        h.add(length)
        # a window that opened before the measurement began counts only from its start
        self.irq_off_ns += max(0.0, end - max(self._irq_start, self.window_floor))
        self.recent_windows.append((self._irq_start, end))

    @property
    def irqs_disabled(self) -> bool:
        return self._irq_depth > 0

    def irq_delivery_delay(self, t: float) -> float:
        """How long an interrupt raised at time `t` waits for IRQs to come back on."""
        if self._irq_depth and t >= self._irq_start:
            return max(0.0, self.now() - t)
        for start, end in reversed(self.recent_windows):
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
