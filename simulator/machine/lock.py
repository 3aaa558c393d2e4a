"""A kernel spinlock (qspinlock): FIFO hand-off, waiters spin on their own CPU.

Model: a CPU first lets SimPy time catch up with its pending work (so acquisitions are processed
in the order they happen), then takes the lock at once if it is free or waits — spinning, so the
wait is busy time on that CPU, and inside any IRQ-off window it is in — until the holder's
release time. The lock word's cache line moves to each new holder at the hardware's
cache-to-cache transfer cost, priced by the cache model; with a queued lock each hand-off costs
about one such transfer whatever the number of waiters (hardware-costs.md §2d).

Critical sections never yield to SimPy (kernel code cannot sleep under a spinlock), so a holder's
release time is known as soon as it unlocks, and a waiter that arrives later simply waits for it.

Statistics follow lockstat (Documentation/locking/lockstat.rst, kernel/locking/lockdep.c), per
lock; a lock's class (`&zone->lock`) groups them as /proc/lock_stat does:
- acquisitions: times the lock was taken; contentions (`contended`): acquisitions that had to wait;
- acq-bounces: acquisitions whose previous acquirer was another CPU; con-bounces: contentions
  whose previous acquirer was another CPU (lockdep's `lock->cpu`, updated at every acquisition);
- wait time of every acquisition (0 for an uncontended one) and hold time from acquisition to
  release, in bounded histograms.
An acquisition counts only while its CPU is measuring (`CPU.measuring`), its hold with it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING

import simpy

from simulator.errors import InvariantError
from simulator.stats import Histogram

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU

ZONE_LOCK = "&zone->lock"


class SpinLock:
    """spinlock_t, e.g. `machine.node0.zone_normal.lock` of class `&zone->lock`."""

    def __init__(self, scope: str, line: int, name: str = ZONE_LOCK) -> None:
        self.scope = scope
        self.line = line
        self.name = name  # the lock class, as lockdep names it
        self.holder: int | None = None
        self.free_at = 0.0  # local time at which the last holder released it
        self.last_cpu: int | None = None  # lockdep's lock->cpu: the last CPU to acquire it
        self._acquired_at = 0.0
        self._counted = False  # the current holder's acquisition counts (it was measuring)
        self.reset_stats()

    def reset_stats(self) -> None:
        """Zero the statistics (not the state): the end of warm-up."""
        self.acquisitions = 0
        self.contended = 0
        self.con_bounces = 0
        self.acq_bounces = 0
        self.wait_ns = 0.0
        self.wait_hist = Histogram()
        self.hold_hist = Histogram()

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
        counted = self._counted = cpu.measuring
        bounce = self.last_cpu is not None and self.last_cpu != cpu.id
        if wait > 0:
            if counted:
                self.contended += 1
                self.con_bounces += bounce
                self.wait_ns += wait
                self.wait_hist.add(wait)
            cpu.spin(wait)
        elif counted:
            self.wait_hist.add(0.0)
        cpu.touch([self.line])
        cpu.spend(cpu.costs.spin_lock_unlock * 0.5)
        self.holder = cpu.id
        self.last_cpu = cpu.id
        if counted:
            self.acquisitions += 1
            self.acq_bounces += bounce
        self._acquired_at = cpu.now()

    def spin_unlock(self, cpu: CPU) -> None:
        """spin_unlock(): the lock is free from this CPU's current local time."""
        if self.holder != cpu.id:
            raise InvariantError(f"{self.scope}: cpu{cpu.id} unlocks a lock held by {self.holder}")
        cpu.spend(cpu.costs.spin_lock_unlock * 0.5)
        t = cpu.now()
        if self._counted:
            self.hold_hist.add(t - self._acquired_at)
        self.free_at = t
        self.holder = None

    def check_released(self) -> None:
        if self.holder is not None:
            raise InvariantError(f"{self.scope}: still held by cpu{self.holder} at the end of the run")


LOCK_FIELDS = (
    "acquisitions",
    "contentions",
    "con_bounces",
    "acq_bounces",
    "wait_ns_total",
    "wait_p50_ns",
    "wait_p99_ns",
    "wait_max_ns",
    "hold_ns_total",
    "hold_p50_ns",
    "hold_p99_ns",
    "hold_max_ns",
    "spin_share",
)


def lock_fields(locks: Iterable[SpinLock], prefix: str, cpu_ns: float) -> dict[str, float]:
    """A lock class's lockstat figures as flat row fields, `{prefix}_{name}` for each name of
    LOCK_FIELDS: the sums over its locks (`locks`, e.g. every `&zone->lock`), the quantiles of
    its merged wait and hold histograms (waits over all acquisitions: an uncontended one waits
    0), and `spin_share`: the time spent spinning on them over `cpu_ns`, the measured CPUs' time."""
    locks = list(locks)
    wait = Histogram()
    hold = Histogram()
    for lk in locks:
        wait.merge(lk.wait_hist)
        hold.merge(lk.hold_hist)
    wait_total = sum(lk.wait_ns for lk in locks)
    values = (
        sum(lk.acquisitions for lk in locks),
        sum(lk.contended for lk in locks),
        sum(lk.con_bounces for lk in locks),
        sum(lk.acq_bounces for lk in locks),
        wait_total,
        wait.quantile(0.5),
        wait.quantile(0.99),
        wait.max,
        hold.total,
        hold.quantile(0.5),
        hold.quantile(0.99),
        hold.max,
        wait_total / cpu_ns if cpu_ns > 0 else 0.0,
    )
    return {f"{prefix}_{name}": v for name, v in zip(LOCK_FIELDS, values)}
