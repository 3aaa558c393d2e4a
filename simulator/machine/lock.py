"""A kernel spinlock (qspinlock): FIFO hand-off, waiters spin on their own CPU.

Model: a CPU first lets SimPy time catch up with its pending work (so acquisitions are processed
in the order they happen), then takes the lock at once if it is free or waits — spinning, so the
wait is busy time on that CPU, and inside any IRQ-off window it is in — until the holder's
release time. The lock word's cache line moves to each new holder at the hardware's
cache-to-cache transfer cost, priced by the cache model; with a queued lock each hand-off costs
about one such transfer whatever the number of waiters (hardware-costs.md §2d).

Critical sections never yield to SimPy (kernel code cannot sleep under a spinlock), so a holder's
release time is known as soon as it unlocks, and a waiter that arrives later simply waits for it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import simpy

from simulator.errors import InvariantError
from simulator.stats import Histogram

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU


class SpinLock:
    """spinlock_t, e.g. `machine.node0.zone_normal.lock`."""

    def __init__(self, scope: str, line: int) -> None:
        self.scope = scope
        self.line = line
        self.holder: int | None = None
        self.free_at = 0.0  # local time at which the last holder released it
        self.acquisitions = 0
        self.contended = 0
        self.wait_ns = 0.0
        self.wait_hist = Histogram()
        self.hold_hist = Histogram()
        self._acquired_at = 0.0

    def spin_lock(self, cpu: CPU) -> Generator[simpy.Event, None, None]:
        """spin_lock(): order with other CPUs, wait for the holder, pull the lock line over."""
        if cpu.pending:
            yield cpu.sync()
        if self.holder is not None:
            raise InvariantError(
                f"{self.scope}: cpu{cpu.id} takes a lock held by cpu{self.holder} across a yield"
            )
        now = cpu.now()
        wait = self.free_at - now
        if wait > 0:
            self.contended += 1
            self.wait_ns += wait
            self.wait_hist.add(wait)
            cpu.spin(wait)
        else:
            self.wait_hist.add(0.0)
        cpu.touch([self.line])
        cpu.spend(cpu.costs.spin_lock_unlock * 0.5)
        self.holder = cpu.id
        self.acquisitions += 1
        self._acquired_at = cpu.now()

    def spin_unlock(self, cpu: CPU) -> None:
        """spin_unlock(): the lock is free from this CPU's current local time."""
        if self.holder != cpu.id:
            raise InvariantError(f"{self.scope}: cpu{cpu.id} unlocks a lock held by {self.holder}")
        cpu.spend(cpu.costs.spin_lock_unlock * 0.5)
        t = cpu.now()
        self.hold_hist.add(t - self._acquired_at)
        self.free_at = t
        self.holder = None

    def check_released(self) -> None:
        if self.holder is not None:
            raise InvariantError(f"{self.scope}: still held by cpu{self.holder} at the end of the run")
