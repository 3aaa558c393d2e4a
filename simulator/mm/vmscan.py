"""Page reclaim (mm/vmscan.c, Linux 5.12): a kswapd per node and direct reclaim, freeing page cache.

What is reclaimed is clean, unmapped page cache. pagesim does not simulate who filled the page
cache: a scenario puts it in each zone's balloon (mm/balloon.py), and reclaim hands it back to
the buddy allocator SWAP_CLUSTER_MAX pages at a time (balloon_deflate). Installed on a
machine, `Reclaim` sets the two hooks the allocator calls: `machine.kswapd` (wakeup_kswapd() from
the slow path) and `machine.direct_reclaim` (__alloc_pages_direct_reclaim()).

Cost of reclaim, per page: `reclaim_ns_per_page()`, derived from a published measurement of a
kswapd that was the bottleneck of a page-cache streaming workload (LUMPKIN_2018 below). It covers
the LRU scan, shrink_page_list() and the freeing of the page; zone->lock is also taken once per
batch (as free_pcppages_bulk() would), priced by the lock model.

Left out: anonymous memory and swap, dirty pages and writeback, the active/inactive balance and
scan priorities (every scanned page is reclaimed: efficiency 100 %), shrinkers (slab), memcg,
compaction and high-order reclaim, watermark boosting, kswapd's premature-sleep check, the
kswapd_failures count (a node with nothing left to reclaim simply stops), reclaim throttling
(congestion_wait, too_many_isolated) and the OOM killer.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import simpy

from simulator.machine.cpu import CPU
from simulator.machine.sched import THREAD, RunQueues
from simulator.mm.balloon import balloon_deflate
from simulator.mm.machine import Machine
from simulator.mm.mmzone import NR_FREE_PAGES, ZONE_NORMAL
from simulator.mm.page_alloc import __zone_watermark_ok as _watermark_ok  # no __ name in a class body
from simulator.mm.vmstat import zone_page_state, zone_page_state_snapshot
from simulator.mm.zone import Zone

SWAP_CLUSTER_MAX = 32  # include/linux/swap.h: pages reclaimed per shrink_inactive_list() batch
MAX_RECLAIM_RETRIES = 16  # mm/internal.h


@dataclass(frozen=True)
class ReclaimMeasurement:
    """A kswapd-bound page-cache workload: reclaim throughput and the kswapd CPU it took."""

    source: str
    throughput_kb_per_s: float  # buffered-read throughput = page cache reclaimed, steady state
    kswapd_cpu_percent: tuple[float, ...]  # one kswapd per node
    pgscan_kswapd: int
    pgscan_direct: int
    page_kb: int = 4


# Buddy Lumpkin (Oracle), linux-mm, 2 April 2018, "[RFC PATCH 0/1] mm: Support multiple kswapd
# threads per node", table "shadow entries DISABLED, 1 kswapd thread per node", row dd=22: 22 dd
# readers streaming through the page cache of a 2-node server (4.16-rc7), one kswapd per node at
# 93.99 % and 99.33 % CPU, direct reclaim scanning 1.1 % as many pages as kswapd.
LUMPKIN_2018 = ReclaimMeasurement(
    source="linux-mm 2018-04-02, Buddy Lumpkin, RFC 'mm: Support multiple kswapd threads per node', "
    "shadow entries disabled, 1 kswapd/node, dd=22",
    throughput_kb_per_s=13_130_613.60,
    kswapd_cpu_percent=(93.99, 99.33),
    pgscan_kswapd=1_037_654_473,
    pgscan_direct=11_268_334,
)


def reclaim_ns_per_page(meas: ReclaimMeasurement = LUMPKIN_2018) -> tuple[float, str]:
    """The named calibration of reclaim cost: kswapd CPU time per page it reclaimed.

    pages/s reclaimed by kswapd = throughput / page size * pgscan_kswapd / (pgscan_kswapd +
    pgscan_direct); ns/page = sum(kswapd CPU) * 1e9 / that. The host's CPU is not published, so
    the figure is used in ns on every simulated host (not scaled by clock)."""
    kswapd_share = meas.pgscan_kswapd / (meas.pgscan_kswapd + meas.pgscan_direct)
    pages_per_s = meas.throughput_kb_per_s / meas.page_kb * kswapd_share
    cpu_s = sum(meas.kswapd_cpu_percent) / 100.0
    ns = cpu_s * 1e9 / pages_per_s
    formula = (
        f"{cpu_s:.4f} CPU-s / ({meas.throughput_kb_per_s:,.1f} KB/s / {meas.page_kb} KB"
        f" * {kswapd_share:.4f} kswapd share) = {ns:.1f} ns/page [{meas.source}]"
    )
    return ns, formula


@dataclass
class ReclaimStats:
    kswapd_wakeups: int = 0  # wakeups that found kswapd asleep and the node unbalanced
    kswapd_reclaimed: int = 0
    direct_reclaims: int = 0  # try_to_free_pages() calls
    direct_reclaimed: int = 0
    direct_reclaim_ns: float = 0.0  # time allocating CPUs spent in direct reclaim


class Reclaim:
    """The reclaim model of one machine: kswapd processes and the direct-reclaim hook."""

    def __init__(
        self,
        m: Machine,
        rq: RunQueues,
        kswapd_cpus: dict[int, CPU],
        cost_per_page_ns: float,
        highest_zoneidx: int = ZONE_NORMAL,
    ) -> None:
        self.m = m
        self.env = m.env
        self.rq = rq
        self.kswapd_cpus = kswapd_cpus
        self.cost = cost_per_page_ns
        self.highest_zoneidx = highest_zoneidx
        self.stats = ReclaimStats()
        self.stopping = False
        self._wait: dict[int, simpy.Event | None] = {}
        m.kswapd = self.wakeup_kswapd
        m.direct_reclaim = self.try_to_free_pages
        for node in kswapd_cpus:
            self._wait[node] = None
            self.env.process(self.kswapd(node))

    # ---- balance checks ---------------------------------------------------------------------
    def _eligible(self, node: int) -> list[Zone]:
        return [z for z in self.m.nodes[node].zones if z.zone_idx <= self.highest_zoneidx]

    def pgdat_balanced(self, node: int) -> bool:
        """Mirrors pgdat_balanced() for order 0: some eligible zone is above its high watermark
        (zone_watermark_ok_safe: the free count with every CPU's vmstat delta folded in)."""
        zones = self._eligible(node)
        if not zones:
            return True
        for z in zones:
            free = zone_page_state_snapshot(z, NR_FREE_PAGES)
            if _watermark_ok(z, 0, z.high_wmark, self.highest_zoneidx, 0, free):
                return True
        return False

    def reclaimable(self, node: int) -> int:
        """Page cache left to reclaim on `node` (the balloons of its eligible zones)."""
        return sum(z.balloon_pages for z in self._eligible(node))

    # ---- kswapd -----------------------------------------------------------------------------
    def wakeup_kswapd(self, zone: Zone) -> None:
        """Mirrors wakeup_kswapd(): nothing if kswapd is already running (its wait queue is not
        active), if the node is balanced, or if it has nothing left to reclaim; else wake it."""
        node = zone.node
        ev = self._wait.get(node)
        if ev is None or self.pgdat_balanced(node) or not self.reclaimable(node):
            return
        self.stats.kswapd_wakeups += 1
        self._wait[node] = None
        ev.succeed()

    def kswapd(self, node: int) -> Generator[simpy.Event, None, None]:
        """Mirrors kswapd(): sleep on kswapd_wait until woken, balance_pgdat(), sleep again.
        Runs on one CPU of its node (the kernel binds it to the node's cpumask)."""
        cpu = self.kswapd_cpus[node]
        while True:
            ev = self.env.event()
            self._wait[node] = ev
            yield ev
            if self.stopping:
                return
            yield from self.balance_pgdat(cpu, node)

    def balance_pgdat(self, cpu: CPU, node: int) -> Generator[simpy.Event, None, None]:
        """Mirrors balance_pgdat() for order 0: shrink the node SWAP_CLUSTER_MAX pages at a
        time until it is balanced (a zone above its high watermark) or nothing is left to
        reclaim. kswapd gives its CPU up between batches (cond_resched). While it runs, the
        node's eligible zones carry ZONE_RECLAIM_ACTIVE (set_reclaim_active(), 5.14, which
        5.14's nr_pcp_high() reads; earlier kernels have no such flag and never read it)."""
        eligible = self._eligible(node)
        for z in eligible:
            z.reclaim_active = True
        while not self.stopping and not self.pgdat_balanced(node):
            yield from self.rq.acquire(cpu, THREAD)
            got = yield from self.shrink_node(cpu, node, SWAP_CLUSTER_MAX)
            yield from self.rq.release(cpu)
            self.stats.kswapd_reclaimed += got
            if not got:
                break
        for z in eligible:
            z.reclaim_active = False

    def shrink_node(self, cpu: CPU, node: int, nr_to_reclaim: int) -> Generator[simpy.Event, None, int]:
        """Mirrors shrink_node() -> shrink_inactive_list() -> shrink_page_list() for one batch of
        clean page cache: the CPU spends the per-page reclaim cost, then the pages go back to
        the buddy under zone->lock. The node's LRU holds pages of all its zones; the model
        takes them from the zone holding the most page cache. Returns pages reclaimed."""
        zones = [z for z in self._eligible(node) if z.balloon_pages]
        if not zones:
            return 0
        zone = max(zones, key=lambda z: z.balloon_pages)
        n = min(nr_to_reclaim, zone.balloon_pages)
        cpu.spend(n * self.cost)
        yield from zone.lock.spin_lock(cpu)
        freed = balloon_deflate(zone, n)
        zone.lock.spin_unlock(cpu)
        return freed

    # ---- direct reclaim ---------------------------------------------------------------------
    def try_to_free_pages(self, cpu: CPU, zone: Zone) -> Generator[simpy.Event, None, int]:
        """Mirrors try_to_free_pages() (nr_to_reclaim = SWAP_CLUSTER_MAX) on the allocating CPU,
        together with the retry loop of __alloc_pages_slowpath() (should_reclaim_retry), which
        the core's slow path leaves out: reclaim batches until the preferred zone is above its
        min watermark again, no progress is made, or MAX_RECLAIM_RETRIES batches were done.
        The caller already holds its CPU. Returns pages reclaimed."""
        self.stats.direct_reclaims += 1
        t0 = cpu.now()
        total = 0
        for _ in range(MAX_RECLAIM_RETRIES):
            got = yield from self.shrink_node(cpu, zone.node, SWAP_CLUSTER_MAX)
            total += got
            free = zone_page_state(zone, NR_FREE_PAGES)
            if not got or _watermark_ok(zone, 0, zone.min_wmark, self.highest_zoneidx, 0, free):
                break
        self.stats.direct_reclaimed += total
        self.stats.direct_reclaim_ns += cpu.now() - t0
        return total

    # ---- run control ------------------------------------------------------------------------
    def stop(self) -> None:
        """kthread_stop() every kswapd: sleeping ones exit now, running ones after this batch."""
        self.stopping = True
        for node, ev in self._wait.items():
            if ev is not None:
                self._wait[node] = None
                ev.succeed()

    def reset_stats(self) -> None:
        self.stats = ReclaimStats()
