"""The booted machine: the hardware (CPUs, caches: simulator/machine/) with the kernel's memory on
it (NUMA nodes and their zones, the allocator's event counters, the pages handed out), and the
invariants checked after every run.

simulator/system.py boots one (`build_machine`), elaborating the component tree (`machine.cpu3`,
`machine.node1.zone_normal.pcp.cpu7`, `machine.node0.zone_dma32.lock`...); workloads then run
kernel code paths on its CPUs, which reach it as `cpu.machine`.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import simpy

from simulator.code import CodePaths
from simulator.costs import Costs
from simulator.errors import InvariantError
from simulator.hardware import Hardware
from simulator.kernels import KernelConfig
from simulator.machine.cache import CacheModel, LineRegistry
from simulator.machine.cpu import CPU
from simulator.machine.lock import SpinLock
from simulator.machine.memory import MemoryController
from simulator.mm import buddy
from simulator.mm.mmzone import MIGRATE_PCPTYPES, MIGRATETYPE_NAMES, NR_FREE_PAGES
from simulator.mm.pcp import check_pcp_consistent
from simulator.mm.vmstat import zone_page_state_snapshot
from simulator.mm.zone import Node, Zone
from simulator.mm.zone_setup import BootNumbers


@dataclass
class AllocStats:
    """Allocator event counters for one run (the pcp and lock counters live on those objects)."""

    slowpath: int = 0
    alloc_failures: int = 0
    watermark_fails: int = 0
    remote_node_allocs: int = 0
    numa_hit: int = 0
    numa_miss: int = 0
    bulk_calls: int = 0
    bulk_pages: int = 0
    bulk_fallback_single: int = 0  # bulk calls that took the single-page path (failed:)
    bulk_empty: int = 0  # bulk calls that returned without a page and without the fallback
    kswapd_wakeups: int = 0
    pages_allocated: int = 0
    pages_freed: int = 0


@dataclass
class Machine:
    """`machine`: everything a workload's processes run on."""

    env: simpy.Environment
    hw: Hardware
    kconfig: KernelConfig
    costs: Costs
    boot: BootNumbers
    registry: LineRegistry
    cache: CacheModel
    cpus: list[CPU]
    nodes: list[Node]
    zones: list[Zone]
    # the kernel's code paths as the front end sees them (simulator/code.py)
    code: CodePaths
    stats: AllocStats = field(default_factory=AllocStats)
    allocated: set[int] = field(default_factory=set)
    # Hooks a workload may set: kswapd's wake-up and direct reclaim (None: no reclaim model).
    kswapd: Callable[[Zone], None] | None = None
    direct_reclaim: Callable[[CPU, Zone], Generator[simpy.Event, None, int]] | None = None
    _zone_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # False: every run of back-to-back calls goes through the per-call functions (the calibration
    # replay attributes each line to the function that touches it; runs never change a result)
    tapes: bool = True
    # prepare_alloc_pages() results by (preferred node, highest zone, migratetype, nodemask)
    alloc_contexts: dict[tuple[int, int, int, frozenset[int] | None], object] = field(default_factory=dict)
    # each node's memory controller (streamed stores, loaded latency): CPU.memory is its node's
    memory: list[MemoryController] = field(default_factory=list)
    # spinlocks besides the zones' (a workload's: spinlock()); `locks` lists them all
    other_locks: list[SpinLock] = field(default_factory=list)
    # mm/swap.py's state, made on first use: each node's lruvec, each CPU's lru_add pagevec
    lruvecs: dict[int, Any] = field(default_factory=dict)
    lru_pvecs: dict[int, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._zone_start_list: list[int] = self._zone_starts.tolist()

    # ---- lookups ----------------------------------------------------------------------------
    def page_zone(self, pfn: int) -> Zone:
        """page_zone(): the zone a pfn belongs to."""
        i = bisect_right(self._zone_start_list, pfn) - 1
        z = self.zones[i] if i >= 0 else None
        if z is None or not z.start_pfn <= pfn < z.end_pfn:
            raise InvariantError(f"pfn {pfn} is in no zone")
        return z

    @property
    def locks(self) -> list[SpinLock]:
        """Every spinlock of the machine: the zones' (`&zone->lock`), then the workload's."""
        return [z.lock for z in self.zones] + self.other_locks

    def locks_of(self, name: str) -> list[SpinLock]:
        """The spinlocks of one lock class (`&zone->lock`, `&lruvec->lru_lock`)."""
        return [lk for lk in self.locks if lk.name == name]

    def spinlock(self, scope: str, name: str, node: int) -> SpinLock:
        """A new spinlock of class `name` (`scope`: `machine.node0.lruvec.lru_lock`), its lock word
        on its own cache line homed on `node`. Like the zone locks, its statistics are zeroed at
        the end of warm-up and it must be released at the end of the run."""
        lk = SpinLock(scope, self.registry.alloc(scope, node), name)
        self.other_locks.append(lk)
        return lk

    def wakeup_kswapd(self, zone: Zone) -> None:
        self.stats.kswapd_wakeups += 1
        if self.kswapd is not None:
            self.kswapd(zone)

    # ---- page tracking ----------------------------------------------------------------------
    def hand_out(self, pages: list[int]) -> None:
        """Record pages leaving the allocator; a page handed out twice is an invariant error."""
        before = len(self.allocated)
        self.allocated.update(pages)
        if len(self.allocated) != before + len(pages):
            twice = sorted(pfn for pfn, k in Counter(pages).items() if k > 1)
            if twice:
                raise InvariantError(f"page handed out twice in one batch: pfns {twice[:8]}")
            raise InvariantError(f"page handed out twice: one of pfns {sorted(pages)[:8]} was out already")
        self.stats.pages_allocated += len(pages)

    def take_back(self, pages: list[int]) -> None:
        """Record pages coming back; freeing a page not handed out is an invariant error."""
        before = len(self.allocated)
        self.allocated.difference_update(pages)
        if len(self.allocated) != before - len(pages):
            raise InvariantError(f"freeing pages that are not allocated (double free?): {pages[:8]}")
        self.stats.pages_freed += len(pages)

    # ---- invariants -------------------------------------------------------------------------
    def negative_counters(self) -> list[str]:
        """'name=value' of every counter below zero: allocator statistics, each zone's vm_stat
        items (folded counter plus per-CPU deltas, before the clamp readers apply), pcp counts
        and statistics, lock statistics, per-CPU time accounts."""
        out = [f"stats.{k}={v}" for k, v in vars(self.stats).items() if v < 0]
        for z in self.zones:
            for item, v in enumerate(z.vm_stat):
                total = v + sum(d[item] for d in z.vm_stat_diff)
                if total < 0:
                    out.append(f"{z.scope}.vm_stat[{item}]={total}")
            if z.free_area.nr_free_pages < 0:
                out.append(f"{z.scope}.free_area.nr_free_pages={z.free_area.nr_free_pages}")
            for p in z.pcp:
                for k in ("count", "refills", "drains", "refilled_pages", "drained_pages"):
                    if getattr(p, k) < 0:
                        out.append(f"{p.scope}.{k}={getattr(p, k)}")
        for lk in self.locks:
            for k in ("acquisitions", "contended", "con_bounces", "acq_bounces", "wait_ns"):
                if getattr(lk, k) < 0:
                    out.append(f"{lk.scope}.{k}={getattr(lk, k)}")
        for c in self.cpus:
            for k in ("irq_off_ns", "cache_cost_ns", "spin_ns", "busy_ns"):
                if getattr(c, k) < 0:
                    out.append(f"{c.scope}.{k}={getattr(c, k)}")
        return out

    def check_invariants(self) -> None:
        """Pages conserved per zone, pcp counts right, locks released, IRQs on, no negatives."""
        negative = self.negative_counters()
        if negative:
            raise InvariantError(f"negative counter(s): {', '.join(negative[:8])}")
        alloc_by_zone: dict[int, int] = {}
        if self.allocated:
            arr = np.fromiter(self.allocated, dtype=np.int64, count=len(self.allocated))
            idx = np.searchsorted(self._zone_starts, arr, side="right") - 1
            counts = np.bincount(idx, minlength=len(self.zones))
            alloc_by_zone = {i: int(n) for i, n in enumerate(counts)}
        for i, z in enumerate(self.zones):
            buddy.check_invariants(z.free_area)
            for p in z.pcp:
                check_pcp_consistent(p)
                most = pcp_count_max(p.high, p.batch)
                if p.count < 0 or p.count > most:
                    raise InvariantError(
                        f"{p.scope}: count {p.count} outside [0, {most}] (high {p.high}, batch {p.batch})"
                    )
            free = z.free_area.nr_free_pages
            on_pcp = z.pcp_pages()
            held = alloc_by_zone.get(i, 0)
            if free + on_pcp + held + z.balloon_pages != z.managed:
                raise InvariantError(
                    f"{z.scope}: pages not conserved: buddy {free} + pcp {on_pcp} + allocated {held}"
                    f" + balloon {z.balloon_pages} = {free + on_pcp + held + z.balloon_pages},"
                    f" managed {z.managed}"
                )
            snap = zone_page_state_snapshot(z, NR_FREE_PAGES)
            if snap != free:
                raise InvariantError(f"{z.scope}: NR_FREE_PAGES {snap} but the buddy holds {free}")
        for lk in self.locks:
            lk.check_released()
        for c in self.cpus:
            c.check_quiescent()
        self.check_page_placement()

    def check_page_placement(self) -> None:
        """Every managed page of every zone is in exactly one place: a free block of the zone's
        buddy, one CPU's pcp list of that zone, handed out (allocated), or the zone's balloon;
        and no place holds a page of another zone, or one the zone does not manage.

        The counts (check_invariants) miss a page in two places plus a page in none; this does
        not. Each place is a set of pfn intervals (a free block or the lazy order-10 range is one
        interval), sorted and swept with numpy: the cost follows the blocks and pages held, never
        the zone's size."""
        problems: list[str] = []
        alloc = np.fromiter(self.allocated, dtype=np.int64, count=len(self.allocated))
        alloc.sort()
        # handed-out pages that are no zone's managed page
        zi = np.searchsorted(self._zone_starts, alloc, side="right") - 1
        managed_end = np.array([z.start_pfn + z.managed for z in self.zones], dtype=np.int64)
        stray = alloc[(zi < 0) | (alloc >= managed_end[np.maximum(zi, 0)])]
        if len(stray):
            problems.append(f"allocated pfns {stray[:8].tolist()} are no zone's managed pages")
        for z in self.zones:
            problems += _zone_placement(z, alloc, self)
        if problems:
            shown = "; ".join(problems[:10])
            more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
            raise InvariantError(f"pages misplaced: {shown}{more}")


def pcp_count_max(high: int, batch: int) -> int:
    """The most pages a pcp can hold, in 5.12's rules: a free that brings count to high drains
    a batch, so frees alone stop at high - 1; but rmqueue_bulk refills a list whenever that list
    is empty, whatever the count, and the allocation takes one page at once. So one list can
    hold high - 1 and each of the other two batch - 1 (checked exhaustively over the reachable
    states for (high, batch) = (42, 7), (84, 14), (12, 3), (6, 1), (0, 1))."""
    return max(high - 1, 0) + (MIGRATE_PCPTYPES - 1) * (batch - 1)


def _zone_placement(z: Zone, alloc: np.ndarray, m: Machine) -> list[str]:
    """check_page_placement() for one zone; `alloc` is every allocated pfn, sorted."""
    start, end = z.start_pfn, z.start_pfn + z.managed
    names: list[str] = []
    los: list[np.ndarray] = []
    his: list[np.ndarray] = []
    pcp_ids: list[int] = []  # places that are pcp lists (their foreign pages are named apart)
    problems: list[str] = []

    def place(name: str, lo: np.ndarray, hi: np.ndarray) -> None:
        names.append(name)
        los.append(lo)
        his.append(hi)

    place("buddy", *buddy.free_intervals(z.free_area))
    for p in z.pcp:
        for mt, lst in enumerate(p.lists):
            if not lst:
                continue
            pf = np.fromiter(lst, dtype=np.int64, count=len(lst))
            foreign = pf[(pf < start) | (pf >= end)]
            for pfn in foreign[:4].tolist():
                try:
                    owner = m.page_zone(pfn).scope
                except InvariantError:
                    owner = "no zone"
                problems.append(f"pfn {pfn} on {p.scope}'s {MIGRATETYPE_NAMES[mt]} list is a page of {owner}")
            pcp_ids.append(len(names))
            place(f"pcp.cpu{p.cpu} {MIGRATETYPE_NAMES[mt]} list", pf, pf + 1)
    held = alloc[np.searchsorted(alloc, start) : np.searchsorted(alloc, end)]
    place("allocated", held, held + 1)
    if z.balloon:
        flat = chain.from_iterable(z.balloon)
        b = np.fromiter(flat, dtype=np.int64, count=2 * len(z.balloon)).reshape(-1, 2)
        place("balloon", b[:, 0], b[:, 0] + (np.int64(1) << b[:, 1]))
    lo = np.concatenate(los)
    hi = np.concatenate(his)
    pid = np.repeat(np.arange(len(names)), [len(x) for x in los])
    out = (lo < start) | (hi > end)
    if out.any():
        # pcp pages of another zone are named above; anything else outside: a block or page
        # beyond the managed part (the reserved tail) or the zone's span
        for j in np.nonzero(out & ~np.isin(pid, pcp_ids))[0][:4].tolist():
            problems.append(
                f"{z.scope}: {names[pid[j]]} holds pfns [{lo[j]}, {hi[j]}) outside its managed"
                f" pages [{start}, {end})"
            )
        keep = ~out
        lo, hi, pid = lo[keep], hi[keep], pid[keep]
    order = np.argsort(lo, kind="stable")
    lo, hi, pid = lo[order], hi[order], pid[order]
    if len(lo):
        reach = np.maximum.accumulate(hi)
        # a pfn in two places: an interval starting before the ones before it have ended
        for j in (np.nonzero(lo[1:] < reach[:-1])[0] + 1)[:4].tolist():
            pfn = int(lo[j])
            holders = pid[(lo <= pfn) & (pfn < hi)]
            where = Counter(names[k] for k in holders.tolist())
            listed = ", ".join(n if c == 1 else f"{n} ({c} times)" for n, c in where.items())
            problems.append(f"{z.scope}: pfn {pfn} is in {len(holders)} places: {listed}")
        # pfns in no place: before the first interval, between the merged ones, after the last
        gap_lo = np.concatenate(([start], reach))
        gap_hi = np.concatenate((lo, [end]))
    else:
        gap_lo = np.array([start], dtype=np.int64)
        gap_hi = np.array([end], dtype=np.int64)
    for j in np.nonzero(gap_lo < gap_hi)[0][:4].tolist():
        a, b = int(gap_lo[j]), int(gap_hi[j])
        what = f"pfn {a} is" if b - a == 1 else f"pfns [{a}, {b}) are"
        problems.append(f"{z.scope}: {what} in no place (lost)")
    return problems
