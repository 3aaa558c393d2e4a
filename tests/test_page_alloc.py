"""The order-0 allocator paths (simulator/mm/page_alloc.py) and the caller strategies
(simulator/mm/strategies.py), run on booted test machines.

Two parts:
- a hypothesis state machine driving random programs through the real paths on the tiny 2-node
  machine (four strategies, three free strategies, eight GFP masks: zone modifiers, the three
  pcp migratetypes, atomic and sleeping callers; bulk refills of partly populated arrays under
  both kernel.bulk_fallback rules; a balloon pushing zones to their watermarks; the reclaim
  model's kswapd and direct reclaim; CPUs running concurrently), checking after every step that
  every page is in exactly one place, none is handed out twice, bulk allocations stay on their
  node, the watermarks decide who gets memory and reclaim frees only what the balloons held;
- hand-worked cases: pcp refill and drain at batch/high, free_pcppages_bulk's round-robin, the
  bulk API's edge cases, the state in which the two bulk_fallback rules differ, and the bulk
  API's IRQ-off window.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Generator
from typing import Any

import pytest
import simpy
from conftest import SKYLAKE, TINY_1NODE, TINY_2NODE, new_machine, run_on
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from simulator.machine.cpu import CPU
from simulator.machine.sched import THREAD, RunQueues
from simulator.mm import buddy
from simulator.mm.balloon import balloon_deflate, balloon_inflate
from simulator.mm.gfp import GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT, Gfp
from simulator.mm.machine import Machine
from simulator.mm.mmzone import (
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    NR_FREE_PAGES,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_NORMAL,
)
from simulator.mm.page_alloc import (
    PageArray,
    PageList,
    __alloc_pages_bulk,
    alloc_pages_node,
    free_pcppages_bulk,
    free_unref_page,
)
from simulator.mm.strategies import (
    FREE_STRATEGIES,
    STRATEGIES,
    CallerBuffers,
    alloc_attempt,
    free_attempt,
)
from simulator.mm.vmscan import Reclaim
from simulator.mm.vmstat import zone_page_state
from simulator.mm.zone import Zone
from simulator.mm.zone_setup import pcp_high_and_batch
from simulator.workloads.nfs import GFP_HIGHUSER_MOVABLE

BULK_STRATEGIES = ("bulk_list", "bulk_array", "pagevec")
alloc_pages_bulk = __alloc_pages_bulk  # no __ name inside a class body (name mangling)


# ---- helpers -----------------------------------------------------------------------------------


def slowpath_mark(zone: Zone, gfp: Gfp) -> int:
    """The min watermark as __zone_watermark_ok() lowers it for gfp_to_alloc_flags(gfp)."""
    mark = zone.min_wmark
    if gfp.high:  # ALLOC_HIGH
        mark -= mark // 2
    if gfp.atomic:  # ALLOC_HARDER
        mark -= mark // 4
    return mark


def passes_min(zone: Zone, gfp: Gfp) -> bool:
    """Would the slow path's watermark check let `gfp` allocate from `zone` now?"""
    free = zone_page_state(zone, NR_FREE_PAGES)
    return free > slowpath_mark(zone, gfp) + zone.lowmem_reserve[gfp.highest_zoneidx]


def zonelist(m: Machine, nid: int, gfp: Gfp) -> list[Zone]:
    return [z for z in m.nodes[nid].zonelist if z.zone_idx <= gfp.highest_zoneidx]


def managed_zone(m: Machine, pfn: int) -> Zone:
    """The zone of `pfn`, which must be one of its managed pages."""
    z = m.page_zone(pfn)
    assert z.start_pfn <= pfn < z.start_pfn + z.managed, f"pfn {pfn} outside {z.scope}'s managed pages"
    return z


def set_buddy_free(zone: Zone, target: int) -> None:
    """Balloon the zone's buddy to `target` free pages (or as near as whole blocks allow)."""
    free = zone.free_area.nr_free_pages
    if free > target:
        balloon_inflate(zone, free - target)
    elif free < target:
        balloon_deflate(zone, target - free)


# ---- boot: the tiny machines are what their files say --------------------------------------------


def test_tiny_machines_boot_with_the_kernel_pcp_numbers():
    m = new_machine(TINY_2NODE)
    got = {(z.node, z.zone_idx): (z.managed, z.pcp[0].batch, z.pcp[0].high) for z in m.zones}
    assert got == {
        (0, ZONE_DMA): (4095, 1, 0),
        (0, ZONE_DMA32): (28672, 7, 42),
        (0, ZONE_NORMAL): (30720, 7, 42),
        (1, ZONE_NORMAL): (32256, 7, 42),
    }
    for z in m.zones:
        assert len(z.pcp) == 4
        assert all((p.high, p.batch) == pcp_high_and_batch(z.managed) for p in z.pcp)
    # zonelists: own node's zones highest first, then the other node's
    names = [[z.scope for z in n.zonelist] for n in m.nodes]
    assert names == [
        [
            "machine.node0.zone_normal",
            "machine.node0.zone_dma32",
            "machine.node0.zone_dma",
            "machine.node1.zone_normal",
        ],
        [
            "machine.node1.zone_normal",
            "machine.node0.zone_normal",
            "machine.node0.zone_dma32",
            "machine.node0.zone_dma",
        ],
    ]
    one = new_machine(TINY_1NODE)
    assert {(z.zone_idx, z.pcp[0].batch, z.pcp[0].high) for z in one.zones if z.zone_idx} == {
        (ZONE_DMA32, 63, 378),
        (ZONE_NORMAL, 63, 378),
    }
    m.check_invariants()


# ---- the state machine ----------------------------------------------------------------------------


# a GFP mask per thing the allocator reads: zone modifiers, migratetypes, HIGH/ATOMIC, reclaim
GFP_DMA = Gfp("GFP_KERNEL|GFP_DMA", False, False, True, True, highest_zoneidx=ZONE_DMA)
GFP_DMA32 = Gfp("GFP_KERNEL|__GFP_DMA32", False, False, True, True, highest_zoneidx=ZONE_DMA32)
GFP_RECLAIMABLE = Gfp("GFP_KERNEL|__GFP_RECLAIMABLE", False, False, True, True, MIGRATE_RECLAIMABLE)
GFP_ATOMIC_MOVABLE = Gfp("GFP_ATOMIC|__GFP_MOVABLE", True, True, False, True, MIGRATE_MOVABLE)
GFPS = [
    GFP_ATOMIC,
    GFP_KERNEL,
    GFP_NOWAIT,
    GFP_HIGHUSER_MOVABLE,
    GFP_DMA,
    GFP_DMA32,
    GFP_RECLAIMABLE,
    GFP_ATOMIC_MOVABLE,
]


class AllocatorMachine(RuleBasedStateMachine):
    """Random programs of (cpu, action) on tiny-2node, through the real allocator paths.

    Booted with either kernel.bulk_fallback rule, and with or without the reclaim model (kswapd
    per node and direct reclaim, reclaiming the balloons): with it, every action holds its CPU's
    run queue slot, as kswapd does."""

    def __init__(self) -> None:
        super().__init__()
        self.m: Machine | None = None
        self.bufs: list[CallerBuffers] = []
        self.held: set[int] = set()
        self.rq: RunQueues | None = None
        self.reclaim: Reclaim | None = None

    @initialize(
        prep=st.sampled_from(["irq_off", "second_pass"]),
        debug_list=st.booleans(),
        fallback=st.sampled_from(["nr_populated", "nr_account"]),
        reclaim=st.booleans(),
    )
    def boot(self, prep: str, debug_list: bool, fallback: str, reclaim: bool) -> None:
        self.m = new_machine(TINY_2NODE, prep_new_page=prep, debug_list=debug_list, bulk_fallback=fallback)
        self.bufs = [CallerBuffers.create(self.m, f"test.cpu{c.id}", c.node, 300) for c in self.m.cpus]
        if reclaim:
            self.rq = RunQueues(self.m.env, self.m.cpus)
            kswapd_cpus = {
                n.node_id: [c for c in self.m.cpus if c.node == n.node_id][-1] for n in self.m.nodes
            }
            self.reclaim = Reclaim(self.m, self.rq, kswapd_cpus, 600.0)

    def _on_cpu(self, cpu: CPU, gen: Generator[simpy.Event, None, Any]) -> Generator[simpy.Event, None, Any]:
        """A kernel path in a context that holds `cpu` (when the reclaim model shares the CPUs)."""
        if self.rq is not None:
            yield from self.rq.acquire(cpu, THREAD)
        value = yield from gen
        if self.rq is not None:
            yield from self.rq.release(cpu)
        return value

    def _run(self, cpu: CPU, gen: Generator[simpy.Event, None, Any]) -> Any:
        """Run to the end of everything it sets off: kswapd included."""
        before = self._reclaim_books()
        value = run_on(cpu, self._on_cpu(cpu, gen))
        self._check_reclaim_books(before)
        return value

    def _reclaim_books(self) -> tuple[int, int, int, int]:
        m = self.m
        assert m is not None
        rs = self.reclaim.stats if self.reclaim else None
        return (
            sum(z.balloon_pages for z in m.zones),
            (rs.kswapd_reclaimed + rs.direct_reclaimed) if rs else 0,
            rs.kswapd_wakeups if rs else 0,
            rs.kswapd_reclaimed if rs else 0,
        )

    def _check_reclaim_books(self, before: tuple[int, int, int, int]) -> None:
        """Every page reclaim frees leaves a balloon (and nothing else empties one during an
        action); kswapd only reclaims after a wake-up."""
        balloon, reclaimed, wakeups, by_kswapd = before
        now = self._reclaim_books()
        assert balloon - now[0] == now[1] - reclaimed
        if now[2] == wakeups:
            assert now[3] == by_kswapd, "kswapd reclaimed without being woken"

    # -- actions --

    def _pre(self, cpu: int, gfp: Gfp, nid: int) -> dict[str, Any]:
        m = self.m
        assert m is not None
        zl = zonelist(m, nid, gfp)
        return {
            "blocked": not any(passes_min(z, gfp) for z in zl),
            "possible": any(
                passes_min(z, gfp)
                and (z.free_area.nr_free_pages > 0 or bool(z.pcp[cpu].lists[gfp.migratetype]))
                for z in zl
            ),
            # direct reclaim may free pages of the preferred node even when every zone is blocked
            "reclaimable": bool(
                self.reclaim is not None and gfp.direct_reclaim and self.reclaim.reclaimable(zl[0].node)
            ),
            "direct_reclaims": self.reclaim.stats.direct_reclaims if self.reclaim else 0,
        }

    def _check_allocation(
        self, cpu: int, strategy: str, gfp: Gfp, nid: int, n: int, got: list[int], pre: dict[str, Any]
    ) -> None:
        m = self.m
        assert m is not None
        assert len(got) <= n
        assert len(set(got)) == len(got), "a page twice in one attempt"
        assert not set(got) & self.held, "a page handed out while still held"
        zones = [managed_zone(m, p) for p in got]
        assert all(z.zone_idx <= gfp.highest_zoneidx for z in zones)
        # the caller's array holds exactly the pages, in order, from slot 0
        slots = self.bufs[cpu].array.slots
        assert slots[: len(got)] == got
        assert all(s is None for s in slots[len(got) : n])
        # watermarks: below the gfp's lowest mark everywhere, nothing (unless direct reclaim
        # frees some); above it somewhere, something
        if pre["blocked"] and not pre["reclaimable"]:
            event(f"{gfp.name} below min everywhere")
            assert got == [], f"{gfp.name} allocated below every zone's min watermark"
        if pre["blocked"] and pre["reclaimable"] and got:
            event("direct reclaim got pages below min")
        if not pre["blocked"] and not pre["possible"]:
            event("watermark passes but no pages")
        if len(got) < n:
            event(f"{strategy}: short")
        if pre["possible"]:
            assert got, f"{gfp.name} got nothing although a zone passes its watermark and has pages"
        # only a caller that may sleep reclaims
        if self.reclaim is not None and not gfp.direct_reclaim:
            assert self.reclaim.stats.direct_reclaims == pre["direct_reclaims"]
        # bulk is local only (to the preferred zone's node): a remote page can only be the one
        # page of the single-page fallback
        if strategy in BULK_STRATEGIES:
            home = zonelist(m, nid, gfp)[0].node
            remote = [p for p, z in zip(got, zones) if z.node != home]
            assert len(remote) <= 1, f"{strategy} returned {len(remote)} remote pages"
            if remote:
                event(f"{strategy}: remote fallback page")
                assert remote[0] == got[-1]
                if strategy != "pagevec":
                    assert got == remote

    @rule(
        cpu=st.integers(0, 3),
        strategy=st.sampled_from(STRATEGIES),
        n=st.integers(1, 300),
        gfp=st.sampled_from(GFPS),
        nid=st.integers(0, 1),
    )
    def alloc(self, cpu: int, strategy: str, n: int, gfp: Gfp, nid: int) -> None:
        m = self.m
        assert m is not None
        c = m.cpus[cpu]
        buf = self.bufs[cpu]
        buf.array.slots[:] = [None] * len(buf.array.slots)
        pre = self._pre(cpu, gfp, nid)
        before = dataclasses.replace(m.stats)
        got = self._run(c, alloc_attempt(c, strategy, gfp, nid, n, buf))
        self._check_allocation(cpu, strategy, gfp, nid, n, got, pre)
        # statistics count pages: NUMA misses against the preferred zone's node (the first zone
        # of the zonelist the gfp may use: node 0's DMA for a GFP_DMA caller on node 1),
        # remote against the CPU's
        nodes = [m.page_zone(p).node for p in got]
        home = zonelist(m, nid, gfp)[0].node
        assert m.stats.pages_allocated - before.pages_allocated == len(got)
        assert m.stats.numa_miss - before.numa_miss == sum(nd != home for nd in nodes)
        assert m.stats.numa_hit - before.numa_hit == sum(nd == home for nd in nodes)
        assert m.stats.remote_node_allocs - before.remote_node_allocs == sum(nd != c.node for nd in nodes)
        self.held.update(got)

    @precondition(lambda self: bool(self.held))
    @rule(
        cpu=st.integers(0, 3),
        keep=st.integers(1, 8),
        holes=st.integers(1, 120),
        gfp=st.sampled_from(GFPS),
        nid=st.integers(0, 1),
    )
    def refill(self, cpu: int, keep: int, holes: int, gfp: Gfp, nid: int) -> None:
        """alloc_pages_bulk_array() into an array whose first entries hold pages, as nfsd
        refills rq_pages: only the NULL entries are filled, from the first one on; the return
        value counts the populated prefix. Under 5.13's rule a call that got no page from its
        pcp loop returns without any (bulk_empty); under the fix it never does, so a caller with
        memory to be had always gets a page."""
        m = self.m
        assert m is not None
        c = m.cpus[cpu]
        kept = sorted(self.held)[:keep]
        arr = PageArray([*kept, *[None] * holes], self.bufs[cpu].array.line_base)
        pre = self._pre(cpu, gfp, nid)
        empty = m.stats.bulk_empty
        n = self._run(c, alloc_pages_bulk(c, gfp, nid, None, len(arr.slots), page_array=arr))
        got = [p for p in arr.slots[len(kept) :] if p is not None]
        assert arr.slots[: len(kept)] == kept
        assert arr.slots[len(kept) : len(kept) + len(got)] == got, "filled with a gap"
        assert n == len(kept) + len(got)
        assert len(set(got)) == len(got) and not set(got) & self.held
        assert all(managed_zone(m, p).zone_idx <= gfp.highest_zoneidx for p in got)
        if m.stats.bulk_empty > empty:
            event("bulk call returned empty-handed (5.13's rule)")
            assert m.kconfig.bulk_fallback == "nr_populated" and got == []
        if pre["possible"] and m.kconfig.bulk_fallback == "nr_account":
            assert got, "the fixed rule always tries for one page"
        if pre["blocked"] and not pre["reclaimable"]:
            assert got == []
        self.held.update(got)

    @precondition(lambda self: bool(self.held))
    @rule(
        cpu=st.integers(0, 3),
        how=st.sampled_from(FREE_STRATEGIES),
        fraction=st.integers(1, 4),
        seed=st.integers(0, 1 << 16),
    )
    def free(self, cpu: int, how: str, fraction: int, seed: int) -> None:
        m = self.m
        assert m is not None
        c = m.cpus[cpu]
        held = sorted(self.held)
        pages = random.Random(seed).sample(held, math.ceil(len(held) * fraction / 4))
        counts = {z.scope: [p.count for p in z.pcp] for z in m.zones}
        self._run(c, free_attempt(c, how, pages, self.bufs[cpu]))
        self.held.difference_update(pages)
        if how == "free_pages_bulk":
            # the seed's free_pages_bulk goes straight to the buddy: no pcp list changes
            assert counts == {z.scope: [p.count for p in z.pcp] for z in m.zones}
        else:
            # a free that brings count to high drains a batch: frees never take a pcp past
            # high - 1, nor past where it already was (refills of three lists can have put it
            # above high, up to machine.pcp_count_max)
            for z in {m.page_zone(p) for p in pages}:
                pcp = z.pcp[cpu]
                before = counts[z.scope][cpu]
                assert pcp.count <= max(before, pcp.high - 1), f"{pcp.scope}: {before} -> {pcp.count}"
            for z in m.zones:  # other CPUs' lists are never touched
                for p in z.pcp:
                    if p.cpu != cpu:
                        assert p.count == counts[z.scope][p.cpu]

    @rule(
        zone=st.integers(0, 3),
        where=st.sampled_from(["atomic_min", "min", "low", "high"]),
        offset=st.integers(-64, 64),
    )
    def balloon(self, zone: int, where: str, offset: int) -> None:
        """Put a zone's free pages near one of its marks, as a Normal allocation sees them."""
        m = self.m
        assert m is not None
        z = m.zones[zone]
        mark = {
            "atomic_min": slowpath_mark(z, GFP_ATOMIC),
            "min": z.min_wmark,
            "low": z.low_wmark,
            "high": z.high_wmark,
        }[where]
        set_buddy_free(z, max(0, mark + z.lowmem_reserve[ZONE_NORMAL] + offset))

    @rule(
        where=st.sampled_from(["atomic_min", "min", "low"]),
        offset=st.integers(-16, 16),
    )
    def squeeze_all(self, where: str, offset: int) -> None:
        """Every zone near the same mark: the zonelist has nowhere else to go."""
        for zone in range(len(self.m.zones)):  # type: ignore[union-attr]
            self.balloon(zone, where, offset)

    @rule(zone=st.integers(0, 3))
    def deflate_all(self, zone: int) -> None:
        z = self.m.zones[zone]  # type: ignore[union-attr]
        balloon_deflate(z, z.balloon_pages)
        assert z.balloon_pages == 0 and not z.balloon

    @rule(
        cpus=st.lists(st.integers(0, 3), min_size=2, max_size=4, unique=True),
        strategy=st.sampled_from(STRATEGIES),
        n=st.integers(1, 200),
        nid=st.integers(0, 1),
        how=st.sampled_from(FREE_STRATEGIES),
        gfp=st.sampled_from([GFP_ATOMIC, GFP_KERNEL, GFP_HIGHUSER_MOVABLE]),
    )
    def concurrent(self, cpus: list[int], strategy: str, n: int, nid: int, how: str, gfp: Gfp) -> None:
        """CPUs allocate at the same simulated time (contending for zone->lock), free half."""
        m = self.m
        assert m is not None
        results: dict[int, list[int]] = {}

        def worker(cpu_id: int) -> Generator[simpy.Event, None, None]:
            c = m.cpus[cpu_id]
            buf = self.bufs[cpu_id]
            buf.array.slots[:] = [None] * len(buf.array.slots)

            def work() -> Generator[simpy.Event, None, None]:
                got = yield from alloc_attempt(c, strategy, gfp, nid, n, buf)
                yield c.sync()
                yield from free_attempt(c, how, got[::2], buf)
                yield c.sync()
                results[cpu_id] = got

            yield from self._on_cpu(c, work())

        contended = sum(z.lock.contended for z in m.zones)
        before = self._reclaim_books()
        for cpu_id in cpus:
            m.env.process(worker(cpu_id))
        m.env.run()
        self._check_reclaim_books(before)
        assert set(results) == set(cpus)
        if sum(z.lock.contended for z in m.zones) > contended:
            event("zone->lock contended")
        # a page one CPU freed may go to another (machine.hand_out catches a page handed out while
        # still allocated); the pages kept must all be distinct and new
        kept = [p for got in results.values() for p in got[1::2]]
        assert len(set(kept)) == len(kept), "two CPUs hold the same page"
        assert not set(kept) & self.held
        self.held.update(kept)

    # -- after every step --

    @invariant()
    def consistent(self) -> None:
        m = self.m
        if m is None:
            return
        # conservation per zone, every page in exactly one place, pcp counts, NR_FREE_PAGES,
        # locks, IRQs
        m.check_invariants()
        assert m.allocated == self.held
        assert m.stats.pages_allocated - m.stats.pages_freed == len(self.held)
        assert m.stats.numa_hit + m.stats.numa_miss == m.stats.pages_allocated
        for p in self.held:
            managed_zone(m, p)
        for z in m.zones:
            assert z.free_area.nr_free_pages >= 0 and z.balloon_pages >= 0
        for c in m.cpus:
            assert c.pending == 0 and not c.irqs_disabled
        if self.rq is not None:
            assert not any(self.rq.held(c) for c in m.cpus)

    def teardown(self) -> None:
        m = self.m
        if m is None:
            return
        # give everything back: every page returns to its zone
        self._run(m.cpus[0], free_attempt(m.cpus[0], "one_by_one", sorted(self.held), self.bufs[0]))
        self.held.clear()
        if self.reclaim is not None:
            self.reclaim.stop()
            m.env.run()
        for z in m.zones:
            balloon_deflate(z, z.balloon_pages)
        m.check_invariants()
        for z in m.zones:
            assert z.free_area.nr_free_pages + z.pcp_pages() == z.managed


AllocatorMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestAllocatorMachine = AllocatorMachine.TestCase


# ---- watermarks, by hand ---------------------------------------------------------------------------


def test_below_min_gfp_kernel_fails_and_gfp_atomic_digs_into_the_reserve():
    """With every zone between the atomic mark (min - min/2 - (min - min/2)/4) and min, GFP_KERNEL
    fails (no reclaim model) and GFP_ATOMIC succeeds; at the atomic mark, both fail."""
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    zones = zonelist(m, 0, GFP_KERNEL)
    normal = m.nodes[0].zone(ZONE_NORMAL)
    assert normal is not None
    assert slowpath_mark(normal, GFP_ATOMIC) == 8245 - 4122 - 1030  # min 8245
    for z in zones:
        reserve = z.lowmem_reserve[ZONE_NORMAL]
        set_buddy_free(z, (slowpath_mark(z, GFP_ATOMIC) + z.min_wmark) // 2 + reserve)
        assert not passes_min(z, GFP_KERNEL) and passes_min(z, GFP_ATOMIC)
    assert run_on(cpu, alloc_pages_node(cpu, GFP_KERNEL, 0)) is None
    assert (m.stats.slowpath, m.stats.alloc_failures) == (1, 1)
    assert m.stats.kswapd_wakeups == 1  # wake_all_kswapds(): once per node, not per zone
    page = run_on(cpu, alloc_pages_node(cpu, GFP_ATOMIC, 0))
    assert page is not None and managed_zone(m, page) is normal
    assert m.stats.alloc_failures == 1
    # GFP_ATOMIC is refused too once every zone is at its atomic mark
    for z in zones:
        set_buddy_free(z, slowpath_mark(z, GFP_ATOMIC) + z.lowmem_reserve[ZONE_NORMAL])
        assert not passes_min(z, GFP_ATOMIC)
    assert run_on(m.cpus[1], alloc_pages_node(m.cpus[1], GFP_ATOMIC, 0)) is None
    # ... but pages already on this CPU's pcp list are no help either: the check comes first
    assert normal.pcp[0].count > 0
    assert run_on(cpu, alloc_pages_node(cpu, GFP_ATOMIC, 0)) is None
    m.check_invariants()


def test_bulk_fails_over_to_one_remote_page_when_the_local_node_is_short():
    m = new_machine(TINY_2NODE)
    cpu = m.cpus[0]
    for z in m.nodes[0].zones:  # node 0 below min for GFP_KERNEL: bulk can't use it
        set_buddy_free(z, z.min_wmark + z.lowmem_reserve[ZONE_NORMAL] - 1)
    buf = CallerBuffers.create(m, "test", 0, 64)
    got = run_on(cpu, alloc_attempt(cpu, "bulk_array", GFP_KERNEL, 0, 64, buf))
    assert len(got) == 1 and m.page_zone(got[0]).node == 1
    assert m.stats.bulk_fallback_single == 1 and m.stats.remote_node_allocs == 1
    # the single-page strategy simply keeps taking remote pages
    buf.array.slots[:] = [None] * 64
    got = run_on(cpu, alloc_attempt(cpu, "single", GFP_KERNEL, 0, 64, buf))
    assert len(got) == 64 and all(m.page_zone(p).node == 1 for p in got)
    m.check_invariants()


# ---- pcp refill and drain, by hand (tiny-1node: batch 63, high 378) ---------------------------------


def normal_zone(m: Machine) -> Zone:
    z = m.nodes[0].zone(ZONE_NORMAL)
    assert z is not None
    return z


def test_first_allocation_refills_one_batch():
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    z = normal_zone(m)
    pcp = z.pcp[0]
    assert (pcp.batch, pcp.high, pcp.count) == (63, 378, 0)
    free0 = z.free_area.nr_free_pages
    page = run_on(cpu, alloc_pages_node(cpu, GFP_KERNEL, 0))
    assert (pcp.refills, pcp.refilled_pages, pcp.count) == (1, 63, 62)
    assert z.lock.acquisitions == 1
    assert z.free_area.nr_free_pages == free0 - 63
    assert zone_page_state(z, NR_FREE_PAGES) == free0 - 63  # 63 > stat_threshold 16: folded
    assert page not in pcp.lists[MIGRATE_UNMOVABLE] and len(pcp.lists[MIGRATE_UNMOVABLE]) == 62
    # the next allocation takes the head of the list without the lock
    head = pcp.lists[MIGRATE_UNMOVABLE][0]
    assert run_on(cpu, alloc_pages_node(cpu, GFP_KERNEL, 0)) == head
    assert (pcp.refills, pcp.count, z.lock.acquisitions) == (1, 61, 1)
    assert cpu.irq_windows["rmqueue_pcplist"].n == 2
    m.check_invariants()


def test_freeing_up_to_high_drains_one_batch():
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    z = normal_zone(m)
    pcp = z.pcp[0]
    buf = CallerBuffers.create(m, "test", 0, 400)
    pages = run_on(cpu, alloc_attempt(cpu, "single", GFP_KERNEL, 0, 400, buf))
    assert len(pages) == 400
    assert pcp.refills == math.ceil(400 / 63) == 7
    assert pcp.count == 7 * 63 - 400 == 41
    locks = z.lock.acquisitions
    for i, pfn in enumerate(pages, 1):
        before, buddy_before = pcp.count, z.free_area.nr_free_pages
        run_on(cpu, free_unref_page(cpu, pfn))
        if before + 1 < pcp.high:
            assert (pcp.count, pcp.drains) == (before + 1, 0)
            continue
        assert i == 378 - 41  # the free that brings count to high
        assert pcp.drains == 1 and pcp.drained_pages == 63
        assert pcp.count == 378 - 63
        assert z.free_area.nr_free_pages == buddy_before + 63
        assert z.lock.acquisitions == locks + 1
        break
    else:
        pytest.fail("count never reached high")
    m.check_invariants()


def _pcp_with_lists(m: Machine, lists: list[int]) -> tuple[list[list[int]], Any]:
    """Put freshly allocated pages by hand on cpu1's (empty) Normal pcp lists: lists[mt] pages."""
    z = normal_zone(m)
    cpu0 = m.cpus[0]
    buf = CallerBuffers.create(m, "test", 0, sum(lists))
    pages = run_on(cpu0, alloc_attempt(cpu0, "single", GFP_KERNEL, 0, sum(lists), buf))
    m.take_back(pages)  # they are "freed" onto the pcp list below
    pcp = z.pcp[1]
    out = []
    for mt, k in enumerate(lists):
        chunk, pages = pages[:k], pages[k:]
        pcp.lists[mt].extend(chunk)  # head .. tail
        out.append(chunk)
    pcp.count = sum(lists)
    return out, pcp


def _record_frees(monkeypatch) -> list[tuple[int, int]]:
    freed: list[tuple[int, int]] = []
    real = buddy.__free_one_page

    def spy(area, pfn, order, mt, fpi, touched):
        freed.append((pfn, mt))
        return real(area, pfn, order, mt, fpi, touched)

    monkeypatch.setattr(buddy, "__free_one_page", spy)
    return freed


def test_free_pcppages_bulk_round_robin_takes_tails_like_the_kernel(monkeypatch):
    """Worked through the 5.12 loop: migratetype starts at 0 and is pre-incremented, batch_free
    grows by one per list looked at (so after an empty list the next list gives two pages), and
    the only non-empty list gives everything that is left."""
    m = new_machine(TINY_1NODE)
    (a, b, c), pcp = _pcp_with_lists(m, [5, 2, 6])
    freed = _record_frees(monkeypatch)
    run_on(m.cpus[1], free_pcppages_bulk(m.cpus[1], normal_zone(m), 10, pcp))
    U, M, R = MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE
    assert freed == [
        (b[1], M),
        (c[5], R),
        (a[4], U),
        (b[0], M),
        (c[4], R),
        (a[3], U),
        (c[3], R),  # Movable is empty: batch_free 2 for Reclaimable
        (c[2], R),
        (a[2], U),
        (c[1], R),
    ]
    assert [list(lst) for lst in pcp.lists] == [a[:2], [], c[:1]]
    assert pcp.count == 3 and pcp.drains == 1 and pcp.drained_pages == 10
    m.check_invariants()  # 10 pages back in the buddy, 3 still on the list


def test_free_pcppages_bulk_one_list_left_gives_everything_and_count_is_clamped(monkeypatch):
    m = new_machine(TINY_1NODE)
    (_, _, c), pcp = _pcp_with_lists(m, [0, 0, 6])
    freed = _record_frees(monkeypatch)
    run_on(m.cpus[1], free_pcppages_bulk(m.cpus[1], normal_zone(m), 4, pcp))
    assert [p for p, _ in freed] == c[::-1][:4]
    run_on(m.cpus[1], free_pcppages_bulk(m.cpus[1], normal_zone(m), 100, pcp))
    assert [p for p, _ in freed] == c[::-1]
    assert pcp.count == 0 and pcp.drains == 2
    m.check_invariants()


# ---- the bulk API's edge cases -----------------------------------------------------------------


def test_bulk_of_one_page_takes_the_single_page_path():
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    plist = PageList([], m.registry.alloc("test.list_head", 0))
    n = run_on(cpu, __alloc_pages_bulk(cpu, GFP_KERNEL, 0, None, 1, page_list=plist))
    assert n == 1 and len(plist.pages) == 1
    assert "__alloc_pages_bulk" not in cpu.irq_windows
    assert cpu.irq_windows["rmqueue_pcplist"].n == 1
    assert (m.stats.bulk_calls, m.stats.bulk_pages) == (1, 0)
    assert m.allocated == set(plist.pages)


def _array(m: Machine, layout: str) -> tuple[PageArray, dict[int, int]]:
    """A page array from a layout string: 'X' a page the caller already holds, '.' NULL."""
    cpu = m.cpus[1]
    kept = {}
    for i, ch in enumerate(layout):
        if ch == "X":
            kept[i] = run_on(cpu, alloc_pages_node(cpu, GFP_KERNEL, 0))
    slots = [kept.get(i) for i in range(len(layout))]
    return PageArray(slots, m.registry.alloc("test.array", 0, 8)), kept


@pytest.mark.parametrize(
    ("layout", "windows"),
    [
        ("X.X..X", 1),  # holes between and around populated entries
        (".X..X", 1),  # populated entries after the last hole still count
        ("XX....", 1),  # leading populated entries are skipped before IRQs go off
        ("X.X", 1),  # one hole but not at the end of the leading run: still the batch path
        ("XX.", 0),  # exactly one entry missing: the single-page allocator
        ("XXX", 0),  # nothing to do
        ("......", 1),
    ],
)
def test_bulk_array_fills_only_null_entries_and_returns_the_populated_count(layout, windows):
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    arr, kept = _array(m, layout)
    held_before = set(m.allocated)
    n = run_on(cpu, __alloc_pages_bulk(cpu, GFP_KERNEL, 0, None, len(layout), page_array=arr))
    assert n == len(layout)  # every entry populated
    assert all(arr.slots[i] == p for i, p in kept.items())  # held pages untouched
    new = [arr.slots[i] for i in range(len(layout)) if i not in kept]
    assert None not in new and len(set(new)) == len(new)
    assert m.allocated == held_before | set(new)
    bulk = cpu.irq_windows.get("__alloc_pages_bulk")
    assert (bulk.n if bulk else 0) == windows
    m.check_invariants()


def test_bulk_array_short_fill_returns_the_index_of_the_first_unfilled_hole():
    """When the pcp list cannot be refilled (buddy empty), the kernel's loop stops at the next
    hole: nr_populated counts the populated entries up to it, not the ones after it."""
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    z = normal_zone(m)
    arr, kept = _array(m, "X..XX...")  # cpu1 allocated 3 pages: cpu0's pcp is still empty
    balloon_inflate(z, z.free_area.nr_free_pages - 2)  # two pages left in the buddy...
    z.vm_stat[NR_FREE_PAGES] += 100_000  # ...but the (stale) counter lets the watermark pass
    n = run_on(cpu, __alloc_pages_bulk(cpu, GFP_KERNEL, 0, None, 8, page_array=arr))
    assert arr.slots[1] is not None and arr.slots[2] is not None
    assert arr.slots[5:] == [None, None, None]
    assert n == 5  # entries 0-4 are populated; the loop stopped at hole 5
    z.vm_stat[NR_FREE_PAGES] -= 100_000
    m.check_invariants()


@pytest.mark.parametrize("rule", ["nr_populated", "nr_account"])
def test_bulk_fallback_rules_differ_when_vmstat_drift_hides_an_empty_zone(rule):
    """The state where kernel.bulk_fallback matters: the preferred zone passes the bulk
    watermark (low + nr_pages) but its buddy is empty, so the pcp loop gets no page.

    It arises from vmstat drift, which the watermark check does not fold: on skylake-sp-2s
    (56 CPUs) DMA32's stat_threshold is 72 and its pcp batch 63, so a CPU's refill leaves its
    -63 as a per-CPU delta. 21 CPUs that each refilled once from a DMA32 holding exactly their
    21 x 63 pages leave its buddy empty and zone_page_state() at 1323, above low 959 + 10.
    cpu0 (its DMA32 list empty) then bulk-allocates into an array whose first two entries hold
    pages:
    - 5.13 ("nr_populated"): nothing was allocated, but two entries are populated, so no
      single-page fallback: the call returns 2 with no new page (the nfsd hang of bugzilla
      216007: the caller sleeps and retries the same way);
    - the fix ("nr_account"): this call allocated nothing, so it takes the single-page path,
      whose zonelist goes on to ZONE_DMA (free 4095 > low 4 + protection 3056): one page, the
      DMA zone's first (pfn 1: its pageblock starts below the zone, so it is Unmovable)."""
    m = new_machine(SKYLAKE, bulk_fallback=rule)
    dma32 = m.nodes[0].zone(ZONE_DMA32)
    dma = m.nodes[0].zone(ZONE_DMA)
    assert dma32 is not None and dma is not None
    assert (dma32.low_wmark, dma32.stat_threshold, dma32.pcp[0].batch) == (959, 72, 63)
    assert (dma.low_wmark, dma.lowmem_reserve[ZONE_DMA32], dma.managed) == (4, 3056, 4095)
    refillers = m.cpus[35:56]
    held = [run_on(refillers[0], alloc_pages_node(refillers[0], GFP_DMA32, 0)) for _ in range(2)]
    balloon_inflate(dma32, dma32.free_area.nr_free_pages - 20 * 63)  # what the other 20 take
    got = {run_on(c, alloc_pages_node(c, GFP_DMA32, 0)) for c in refillers[1:]}
    assert dma32.free_area.nr_free_pages == 0
    assert [d[NR_FREE_PAGES] for d in dma32.vm_stat_diff[35:]] == [-63] * 21
    assert zone_page_state(dma32, NR_FREE_PAGES) == 21 * 63 == 1323

    cpu = m.cpus[0]
    arr = PageArray([*held, *[None] * 8], m.registry.alloc("test.array", 0, 2))
    n = run_on(cpu, __alloc_pages_bulk(cpu, GFP_DMA32, 0, None, 10, page_array=arr))
    assert cpu.irq_windows["__alloc_pages_bulk"].n == 1
    assert m.stats.bulk_pages == 0 and m.stats.slowpath == 0
    if rule == "nr_populated":
        assert n == 2 and arr.slots == [*held, *[None] * 8]
        assert (dma32.pcp[0].refills, dma32.pcp[0].refilled_pages) == (1, 0)  # the loop's refill
        assert (m.stats.bulk_empty, m.stats.bulk_fallback_single) == (1, 0)
        assert m.allocated == set(held) | got
    else:
        assert n == 3 and arr.slots == [*held, 1, *[None] * 7]
        # the single-page path tries DMA32 first (its refill finds nothing too), then DMA
        assert (dma32.pcp[0].refills, dma32.pcp[0].refilled_pages) == (2, 0)
        assert (dma.pcp[0].refills, dma.pcp[0].refilled_pages) == (1, 1)
        assert m.page_zone(1) is dma
        assert (m.stats.bulk_empty, m.stats.bulk_fallback_single) == (0, 1)
        assert m.allocated == set(held) | got | {1}
    m.check_invariants()


@pytest.mark.parametrize("n", [1, 14, 15, 16, 30, 31, 64, 300])
def test_pagevec_makes_one_bulk_call_per_15_pages(n):
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    buf = CallerBuffers.create(m, "test", 0, n)
    got = run_on(cpu, alloc_attempt(cpu, "pagevec", GFP_KERNEL, 0, n, buf))
    assert len(got) == n and buf.array.slots == got
    assert m.stats.bulk_calls == math.ceil(n / 15)
    windows = cpu.irq_windows.get("__alloc_pages_bulk")
    # every call of 2..15 pages is one IRQ-off window; a call for one page goes to rmqueue_pcplist
    assert (windows.n if windows else 0) == n // 15 + (n % 15 > 1)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_returns_n_distinct_local_pages_on_a_roomy_machine(strategy):
    m = new_machine(TINY_2NODE)
    for cpu in m.cpus:
        buf = CallerBuffers.create(m, f"test{cpu.id}", cpu.node, 100)
        got = run_on(cpu, alloc_attempt(cpu, strategy, GFP_ATOMIC, cpu.node, 100, buf))
        assert len(got) == 100
        assert all(managed_zone(m, p).node == cpu.node for p in got)
    assert len(m.allocated) == 400
    assert m.stats.remote_node_allocs == 0
    m.check_invariants()


# ---- the bulk allocator's IRQ-off window -----------------------------------------------------------


def _bulk_window(n: int, prep: str, calls: int = 1) -> tuple[float, int]:
    """(longest, count) of __alloc_pages_bulk's IRQ-off windows for `calls` calls of n pages."""
    m = new_machine(TINY_1NODE, prep_new_page=prep)
    cpu = m.cpus[0]
    for _ in range(calls):
        plist = PageList([], m.registry.alloc("test.list_head", 0))
        assert run_on(cpu, __alloc_pages_bulk(cpu, GFP_KERNEL, 0, None, n, page_list=plist)) == n
    h = cpu.irq_windows["__alloc_pages_bulk"]
    return h.max, h.n


def test_bulk_records_one_irq_window_per_call():
    assert _bulk_window(32, "irq_off", calls=3)[1] == 3
    assert _bulk_window(200, "second_pass", calls=2)[1] == 2


def test_bulk_irq_window_grows_with_nr_pages():
    windows = [_bulk_window(n, "irq_off")[0] for n in (2, 8, 32, 62, 200)]
    assert windows == sorted(windows) and len(set(windows)) == len(windows)


@pytest.mark.parametrize("n", [8, 62, 200])
def test_prep_new_page_in_a_second_pass_shortens_the_window(n):
    m = new_machine(TINY_1NODE)
    inside, _ = _bulk_window(n, "irq_off")
    outside, _ = _bulk_window(n, "second_pass")
    # the v3 layout moves at least the prep_new_page work out of the window
    assert inside - outside >= n * m.costs.prep_new_page * (1 - 1e-9)


# ---- free strategies and statistics -----------------------------------------------------------------


def test_free_strategies_irq_windows_and_lock_round_trips():
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    z = normal_zone(m)
    buf = CallerBuffers.create(m, "test", 0, 300)
    pages = run_on(cpu, alloc_attempt(cpu, "bulk_array", GFP_KERNEL, 0, 300, buf))
    assert len(pages) == 300
    # release_pages' path: IRQs back on every SWAP_CLUSTER_MAX (32) pages
    run_on(cpu, free_attempt(cpu, "free_unref_page_list", pages[:100], buf))
    assert cpu.irq_windows["free_unref_page_list"].n == math.ceil(100 / 32)
    # put_page one by one: one window per page
    run_on(cpu, free_attempt(cpu, "one_by_one", pages[100:150], buf))
    assert cpu.irq_windows["free_unref_page"].n == 50
    # the seed's free_pages_bulk: each page straight to the buddy, one zone->lock round trip each
    locks, pcp_count = z.lock.acquisitions, z.pcp[0].count
    run_on(cpu, free_attempt(cpu, "free_pages_bulk", pages[150:], buf))
    assert cpu.irq_windows["__free_pages_ok"].n == 150
    assert z.lock.acquisitions - locks == 150
    assert z.pcp[0].count == pcp_count
    assert m.stats.pages_freed == 300 and not m.allocated
    m.check_invariants()


def test_numa_statistics_count_pages_not_calls():
    """zone_statistics(preferred, zone, nr_account): the bulk allocator counts every page of its
    batch as a NUMA hit, as 64 single-page calls would."""
    m = new_machine(TINY_2NODE)
    cpu = m.cpus[0]
    buf = CallerBuffers.create(m, "test", 0, 64)
    run_on(cpu, alloc_attempt(cpu, "bulk_array", GFP_ATOMIC, 0, 64, buf))
    assert (m.stats.numa_hit, m.stats.numa_miss, m.stats.bulk_calls) == (64, 0, 1)
    buf.array.slots[:] = [None] * 64
    run_on(cpu, alloc_attempt(cpu, "single", GFP_ATOMIC, 1, 64, buf))  # node 1 from a node-0 CPU
    assert (m.stats.numa_hit, m.stats.numa_miss) == (128, 0)
    assert m.stats.remote_node_allocs == 64
    assert m.stats.pages_allocated == 128


def test_slow_path_wakes_each_node_kswapd_once_for_its_first_zone():
    m = new_machine(TINY_2NODE)
    woken: list[str] = []
    m.kswapd = lambda zone: woken.append(zone.scope)
    for z in m.zones:  # every zone between low and min: the fast path fails, the slow path works
        set_buddy_free(z, z.min_wmark + z.lowmem_reserve[ZONE_NORMAL] + 8)
    cpu = m.cpus[0]
    assert run_on(cpu, alloc_pages_node(cpu, GFP_KERNEL, 0)) is not None
    assert woken == ["machine.node0.zone_normal", "machine.node1.zone_normal"]
    assert m.stats.kswapd_wakeups == 2 and m.stats.slowpath == 1
