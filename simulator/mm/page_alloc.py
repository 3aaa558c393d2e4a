"""The order-0 paths of mm/page_alloc.c (Linux 5.12) and the bulk allocator (seed and 5.13 forms),
with the watermark checks they make. (Vectorised runs of back-to-back calls of these paths, a
simulator-only speed-up, are in mm/page_alloc_run.py.)

Every function named after a kernel function mirrors it; its docstring says which and what it
leaves out. Functions that may take zone->lock are generators (`yield from` them): the lock is
the one place where CPUs must be ordered in simulated time.

Costs charged, and where their numbers come from:
- instruction work per function: simulator/calibration.py (from the reference perf profile);
- IRQ toggles, spinlocks, atomics, calls: the hardware file's kernel_costs;
- every cache line touched: the cache model, priced in one vectorised step per batch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import simpy

from simulator.machine.cache import ASYNC
from simulator.machine.tape import Batch
from simulator.mm import buddy
from simulator.mm.gfp import (
    ALLOC_HARDER,
    ALLOC_HIGH,
    ALLOC_NOFRAGMENT,
    ALLOC_WMARK_LOW,
    ALLOC_WMARK_MASK,
    Gfp,
    gfp_to_alloc_flags,
)
from simulator.mm.mmzone import (
    MIGRATE_ISOLATE,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    NR_FREE_PAGES,
    PAGE_SIZE,
    ZONE_DMA32,
    ZONE_NORMAL,
)
from simulator.mm.vmstat import __mod_zone_page_state, zone_page_state
from simulator.mm.zone import Zone

if TYPE_CHECKING:
    from simulator.kernels import KernelConfig
    from simulator.machine.cpu import CPU
    from simulator.mm.machine import Machine
    from simulator.mm.pcp import PerCpuPages

Gen = Generator[simpy.Event, None, object]

FPI_NONE = buddy.FPI_NONE
# clear_highpage()'s own work around clear_page: kmap_atomic's pagefault_disabled++ (2) and
# page_address (2), kunmap_atomic's pagefault_disabled-- (2), the alternative call's target (1)
KMAP_ATOMIC_OPS = 7
_NO_CONTEXT = object()


@dataclass(frozen=True)
class AllocContext:
    """struct alloc_context: what prepare_alloc_pages() works out once per call."""

    zonelist: list[Zone]
    preferred_zone: Zone
    highest_zoneidx: int
    migratetype: int
    nodemask: frozenset[int] | None


@dataclass
class PageArray:
    """A caller's page array (page_pool's alloc.cache, nfsd's rq_pages, a pagevec's pages).

    Slots hold pfns or None (NULL). Slot i lives on cache line `line_base + i*8 // 64`."""

    slots: list[int | None]
    line_base: int

    def line(self, i: int) -> int:
        return self.line_base + (i * 8) // 64


@dataclass
class PageList:
    """A caller's list_head (on its stack) and the pages linked on it, head first."""

    pages: list[int]
    head_line: int


# ---------------------------------------------------------------------------------------------
# allocation
# ---------------------------------------------------------------------------------------------


def _list_work(cpu: CPU, touched: list[int], adds: int, dels: int) -> None:
    """Price list bookkeeping: the lines it touched (in program order, as the cache model takes
    them: a line whose content the code does not wait for overlaps with the rest), the
    instruction work per line, and under CONFIG_DEBUG_LIST one __list_add_valid per list_add and
    one __list_del_entry_valid per list_del."""
    c = cpu.costs
    cpu.touch(touched)
    cpu.spend(len(touched) * c.list_line)
    if cpu.machine.kconfig.debug_list:
        cpu.spend(adds * c.list_add_check + dels * c.list_del_check)


def prepare_alloc_pages(
    m: Machine, gfp: Gfp, preferred_nid: int, nodemask: frozenset[int] | None
) -> AllocContext | None:
    """Mirrors prepare_alloc_pages(): zonelist of the preferred node, highest zone, migratetype.

    Leaves out cpusets, fault injection and fs/io reclaim context flags. Zonelists are fixed at
    boot, so the result is worked out once per (node, zone, migratetype, nodemask) and shared:
    callers only read it."""
    key = (preferred_nid, gfp.highest_zoneidx, gfp.migratetype, nodemask)
    cached = m.alloc_contexts.get(key, _NO_CONTEXT)
    if cached is not _NO_CONTEXT:
        return cached  # type: ignore[return-value]
    zonelist = [
        z
        for z in m.nodes[preferred_nid].zonelist
        if z.zone_idx <= gfp.highest_zoneidx and (nodemask is None or z.node in nodemask)
    ]
    ac = None
    if zonelist:
        ac = AllocContext(zonelist, zonelist[0], gfp.highest_zoneidx, gfp.migratetype, nodemask)
    m.alloc_contexts[key] = ac
    return ac


def alloc_flags_nofragment(m: Machine, zone: Zone) -> int:
    """Mirrors alloc_flags_nofragment(): ALLOC_NOFRAGMENT for ZONE_NORMAL when the node also
    has a populated ZONE_DMA32 (or there is only one node)."""
    if zone.zone_idx != ZONE_NORMAL:
        return 0
    if len(m.nodes) > 1 and m.nodes[zone.node].zone(ZONE_DMA32) is None:
        return 0
    return ALLOC_NOFRAGMENT


def __alloc_pages_nodemask(
    cpu: CPU, gfp: Gfp, order: int, preferred_nid: int, nodemask: frozenset[int] | None = None
) -> Generator[simpy.Event, None, int | None]:
    """Mirrors __alloc_pages_nodemask(): the fast path at the low watermark, then the slow path.

    Order 0 only (pagesim models order-0 traffic)."""
    if order != 0:
        raise ValueError("pagesim models order-0 allocations only")
    m = cpu.machine
    c = cpu.costs
    cpu.spend(c.call + c.alloc_pages_nodemask)
    ac = prepare_alloc_pages(m, gfp, preferred_nid, nodemask)
    if ac is None:
        return None
    alloc_flags = ALLOC_WMARK_LOW | alloc_flags_nofragment(m, ac.preferred_zone)
    page = yield from get_page_from_freelist(cpu, gfp, order, alloc_flags, ac)
    if page is None:
        page = yield from __alloc_pages_slowpath(cpu, gfp, order, ac)
    return page


def alloc_pages_node(cpu: CPU, gfp: Gfp, nid: int) -> Generator[simpy.Event, None, int | None]:
    """Mirrors alloc_pages_node(nid, gfp, 0) (which calls __alloc_pages_nodemask)."""
    return (yield from __alloc_pages_nodemask(cpu, gfp, 0, nid))


def __zone_watermark_unusable_free(zone: Zone, order: int, alloc_flags: int) -> int:
    """Mirrors __zone_watermark_unusable_free() (no CMA pages in this model)."""
    unusable = (1 << order) - 1
    if not alloc_flags & ALLOC_HARDER:
        unusable += zone.nr_reserved_highatomic
    return unusable


def __zone_watermark_ok(
    zone: Zone, order: int, mark: int, highest_zoneidx: int, alloc_flags: int, free_pages: int
) -> bool:
    """Mirrors __zone_watermark_ok() for order 0 (the higher-order free-list scan is left out)."""
    min_ = mark
    free_pages -= __zone_watermark_unusable_free(zone, order, alloc_flags)
    if alloc_flags & ALLOC_HIGH:
        min_ -= min_ // 2
    if alloc_flags & ALLOC_HARDER:  # ALLOC_OOM (min/2) is not modelled
        min_ -= min_ // 4
    if free_pages <= min_ + zone.lowmem_reserve[highest_zoneidx]:
        return False
    return order == 0


def zone_watermark_fast(
    zone: Zone, order: int, mark: int, highest_zoneidx: int, alloc_flags: int, gfp: Gfp
) -> bool:
    """Mirrors zone_watermark_fast(): the order-0 fast check, then the full check."""
    free_pages = zone_page_state(zone, NR_FREE_PAGES)
    if order == 0:
        fast_free = free_pages - __zone_watermark_unusable_free(zone, 0, alloc_flags)
        if fast_free > mark + zone.lowmem_reserve[highest_zoneidx]:
            return True
    return __zone_watermark_ok(zone, order, mark, highest_zoneidx, alloc_flags, free_pages)


def get_page_from_freelist(
    cpu: CPU, gfp: Gfp, order: int, alloc_flags: int, ac: AllocContext
) -> Generator[simpy.Event, None, int | None]:
    """Mirrors get_page_from_freelist(): first zone of the zonelist passing the watermark.

    Leaves out cpusets, dirty limits and node_reclaim (node_reclaim_mode is 0 by default)."""
    m = cpu.machine
    cpu.spend(cpu.costs.get_page_from_freelist)
    while True:
        no_fallback = bool(alloc_flags & ALLOC_NOFRAGMENT)
        retry = False
        for zone in ac.zonelist:
            if no_fallback and len(m.nodes) > 1 and zone.node != ac.preferred_zone.node:
                # a remote node before fragmenting the local one: retry locally first
                alloc_flags &= ~ALLOC_NOFRAGMENT
                retry = True
                break
            cpu.touch([zone.lines.read_mostly, zone.lines.vm_stat], False)
            mark = zone.wmark_pages(alloc_flags & ALLOC_WMARK_MASK)
            if not zone_watermark_fast(zone, order, mark, ac.highest_zoneidx, alloc_flags, gfp):
                m.stats.watermark_fails += 1
                continue
            page = yield from rmqueue(cpu, ac.preferred_zone, zone, order, gfp, alloc_flags, ac.migratetype)
            if page is not None:
                prep_new_page(cpu, [page], order, gfp, alloc_flags)
                if gfp.zero:
                    yield from kernel_init_free_pages(cpu, [page])
                if zone.node != cpu.node:
                    m.stats.remote_node_allocs += 1
                return page
        if retry:
            continue
        if no_fallback:
            alloc_flags &= ~ALLOC_NOFRAGMENT
            continue
        return None


def __alloc_pages_slowpath(
    cpu: CPU, gfp: Gfp, order: int, ac: AllocContext
) -> Generator[simpy.Event, None, int | None]:
    """Mirrors the part of __alloc_pages_slowpath() that order-0 traffic reaches.

    Wakes kswapd (the machine's reclaim model, if the workload set one), retries at the min
    watermark with ALLOC_HIGH/ALLOC_HARDER as gfp_to_alloc_flags() gives, then lets a workload's
    direct-reclaim model run for __GFP_DIRECT_RECLAIM callers. Leaves out compaction, OOM and
    __GFP_NOFAIL; an allocation that still fails returns None."""
    m = cpu.machine
    m.stats.slowpath += 1
    alloc_flags = gfp_to_alloc_flags(gfp)
    if gfp.kswapd_reclaim:
        # wake_all_kswapds(): one wakeup per node, for the node's first zone in the zonelist
        last_node = None
        for zone in ac.zonelist:
            if zone.node != last_node:
                m.wakeup_kswapd(zone)
            last_node = zone.node
    page = yield from get_page_from_freelist(cpu, gfp, order, alloc_flags, ac)
    if page is not None or not gfp.direct_reclaim or m.direct_reclaim is None:
        if page is None:
            m.stats.alloc_failures += 1
        return page
    reclaimed = yield from m.direct_reclaim(cpu, ac.preferred_zone)
    if reclaimed:
        page = yield from get_page_from_freelist(cpu, gfp, order, alloc_flags, ac)
    if page is None:
        m.stats.alloc_failures += 1
    return page


def rmqueue(
    cpu: CPU,
    preferred_zone: Zone,
    zone: Zone,
    order: int,
    gfp: Gfp,
    alloc_flags: int,
    migratetype: int,
) -> Generator[simpy.Event, None, int | None]:
    """Mirrors rmqueue() for order 0: straight to the per-cpu lists."""
    return (yield from rmqueue_pcplist(cpu, preferred_zone, zone, gfp, migratetype, alloc_flags))


def rmqueue_pcplist(
    cpu: CPU, preferred_zone: Zone, zone: Zone, gfp: Gfp, migratetype: int, alloc_flags: int
) -> Generator[simpy.Event, None, int | None]:
    """Mirrors rmqueue_pcplist(): IRQs off (5.14: local_lock_irqsave(&pagesets.lock), the same
    instructions), this_cpu_ptr(zone->pageset), __rmqueue_pcplist, then PGALLOC and NUMA
    statistics: inside the IRQ-off window up to 5.13, after it from 5.14 (43c95bcc51e4), where
    free_factor is also halved (3b12e7e97938)."""
    k = cpu.machine.kconfig
    c = cpu.costs
    cpu.local_irq_save("rmqueue_pcplist")
    pcp = zone.pcp[cpu.id]
    cpu.spend(c.rmqueue_call + c.pcp_alloc_extra)
    if k.pcp_free == "nr_pcp_free":
        pcp.free_factor >>= 1
    pages = yield from __rmqueue_pcplist(cpu, zone, migratetype, alloc_flags, pcp, 1)
    after = k.bulk_statistics == "after_irq"
    if pages and not after:
        __count_zid_vm_events_and_zone_statistics(cpu, preferred_zone, zone, pcp)
    cpu.local_irq_restore()
    if pages and after:
        __count_zid_vm_events_and_zone_statistics(cpu, preferred_zone, zone, pcp)
    return pages[0] if pages else None


def __count_zid_vm_events_and_zone_statistics(
    cpu: CPU, preferred: Zone, zone: Zone, pcp: PerCpuPages, nr_account: int = 1, calls: int = 1
) -> None:
    """Mirrors `calls` runs of __count_zid_vm_events(PGALLOC, nr) + zone_statistics(preferred,
    zone[, nr]): per-CPU counters (5.11-5.13: two or three out-of-line __inc_numa_state; 5.14:
    plain per-cpu adds), counting `nr_account` pages in all."""
    c = cpu.costs
    cpu.spend(calls * (c.statistics if zone.node == preferred.node else c.statistics_remote))
    cpu.touch([pcp.stats_line, cpu.vm_event_line] * calls)
    m = cpu.machine
    if zone.node == preferred.node:
        m.stats.numa_hit += nr_account
    else:
        m.stats.numa_miss += nr_account


def __rmqueue_pcplist(
    cpu: CPU, zone: Zone, migratetype: int, alloc_flags: int, pcp: PerCpuPages, want: int
) -> Generator[simpy.Event, None, list[int]]:
    """Mirrors `want` back-to-back calls of __rmqueue_pcplist() (one from rmqueue_pcplist, a
    batch from the bulk allocator's loop): take pages from the head of the list, refilling it
    with rmqueue_bulk(zone, 0, pcp->batch) whenever it is empty. Returns the pages (fewer
    than `want` if a refill found the buddy empty). IRQs are off (the caller's)."""
    lst = pcp.lists[migratetype]
    out: list[int] = []
    while len(out) < want:
        if not lst:
            got = yield from rmqueue_bulk(cpu, zone, 0, pcp.batch, pcp, migratetype, alloc_flags)
            pcp.count += got
            if not lst:
                break
        out.extend(_pcplist_take(cpu, pcp, lst, min(want - len(out), len(lst))))
    return out


def _pcplist_take(cpu: CPU, pcp: PerCpuPages, lst: deque[int], k: int) -> list[int]:
    """k back-to-back __rmqueue_pcplist() calls that find pages on the list: list_del of the
    head entry each (the page, the next entry's prev pointer, the list head in pcp)."""
    c = cpu.costs
    debug = cpu.machine.kconfig.debug_list
    taken = [lst.popleft() for _ in range(k)]
    nxt = taken[1:]
    nxt.append(lst[0] if lst else pcp.line)
    lines: list[int] = []
    head = pcp.line
    for pg, nx in zip(taken, nxt):
        lines += (head, pg, nx)
    cpu.touch(lines)
    cpu.spend(k * (c.rmqueue_page + (c.list_del_check if debug else 0.0)))
    pcp.count -= k
    return taken


def rmqueue_bulk(
    cpu: CPU,
    zone: Zone,
    order: int,
    count: int,
    pcp: PerCpuPages,
    migratetype: int,
    alloc_flags: int,
) -> Generator[simpy.Event, None, int]:
    """Mirrors rmqueue_bulk(): under one zone->lock, `count` calls of __rmqueue, each page
    added to the tail of the pcp list; one NR_FREE_PAGES update. Returns pages added.

    check_pcp_refill() never fails here (no bad pages are modelled)."""
    lst = pcp.lists[migratetype]
    yield from zone.lock.spin_lock(cpu)
    cpu.run_code(cpu.machine.code["rmqueue_bulk"])
    touched: list[int] = []
    area = zone.free_area
    adds0, dels0 = area.list_adds, area.list_dels
    i = 0
    while i < count:
        pfn = buddy.__rmqueue(area, order, migratetype, alloc_flags, touched)
        if pfn is None:
            break
        # list_add_tail(&page->lru, list): the page, the old tail (or the head), the head
        touched.append(pfn)
        touched.append(lst[-1] if lst else pcp.line)
        touched.append(pcp.line)
        lst.append(pfn)
        i += 1
    # buddy list ops plus one list_add_tail per page onto the pcp list
    _list_work(cpu, touched, area.list_adds - adds0 + i, area.list_dels - dels0)
    __mod_zone_page_state(cpu, zone, NR_FREE_PAGES, -i)
    zone.lock.spin_unlock(cpu)
    pcp.refills += 1
    pcp.refilled_pages += i
    return i


def prep_new_page(cpu: CPU, pages: list[int], order: int, gfp: Gfp, alloc_flags: int) -> None:
    """Mirrors prep_new_page() for each page: post_alloc_hook (refcount, private, flags) on the
    struct page. Debug hooks (KASAN, page owner) are off, and no modelled caller passes
    __GFP_ZERO (page_pool and svc_alloc_arg do not), so pages are never cleared here.

    Also where pagesim records that the page is handed out (to catch double allocation)."""
    c = cpu.costs
    cpu.touch(pages)
    cpu.spend(len(pages) * c.prep_new_page)
    cpu.machine.hand_out(pages)


def kernel_init_free_pages(cpu: CPU, pages: list[int]) -> Generator[simpy.Event, None, None]:
    """Mirrors kernel_init_free_pages(), which post_alloc_hook runs for __GFP_ZERO (with IRQs on,
    after the pcp's window): clear_highpage() of each page: kmap_atomic (pagefault_disabled++,
    page_address), clear_page (`rep stosb`: 4 KiB of streaming stores, priced by the node's
    memory bandwidth), kunmap_atomic."""
    c = cpu.costs
    for _ in pages:
        cpu.spend(KMAP_ATOMIC_OPS * c.op + c.call)
        yield from cpu.memory.stream_write(cpu, PAGE_SIZE)


def __alloc_pages_bulk(
    cpu: CPU,
    gfp: Gfp,
    preferred_nid: int,
    nodemask: frozenset[int] | None,
    nr_pages: int,
    page_list: PageList | None = None,
    page_array: PageArray | None = None,
) -> Generator[simpy.Event, None, int]:
    """Mirrors __alloc_pages_bulk() as merged in 5.13 (list or array) and as changed in 5.14;
    with page_list it is the series' __alloc_pages_bulk_nodemask (v6: prep_new_page inside the
    IRQ-off loop).

    Returns pages now in the list, or populated array entries. The watermark must hold with
    nr_pages to spare; the zone must be on the preferred node, else one page comes from the
    single-page allocator, as it does when only one entry is missing. The kernel's mechanisms
    choose: where PGALLOC and zone_statistics run (kconfig.bulk_statistics: once per call in
    the IRQ-off window as in v1, per page in it as in v3..5.13, or once after it with nr_account
    as in 5.14), where prep_new_page runs ("irq_off": v6, merged; "second_pass": v3), and whether
    an empty pcp loop falls back as 5.13 did ("nr_populated") or as fixed later ("nr_account",
    bugzilla 216007)."""
    m = cpu.machine
    c = cpu.costs
    debug = m.kconfig.debug_list
    stats = m.kconfig.bulk_statistics
    nr_populated = 0
    if page_array is not None:
        # Skip populated array elements.
        while nr_populated < nr_pages and page_array.slots[nr_populated] is not None:
            nr_populated += 1
        cpu.touch([page_array.line(i) for i in range(max(1, nr_populated))], False)
        if nr_pages - nr_populated == 0:
            return nr_populated
    m.stats.bulk_calls += 1
    if nr_pages - nr_populated == 1:
        return (
            yield from _bulk_failed(cpu, gfp, preferred_nid, nodemask, page_list, page_array, nr_populated)
        )
    cpu.spend(c.call + c.alloc_pages_nodemask)
    ac = prepare_alloc_pages(m, gfp, preferred_nid, nodemask)
    if ac is None:
        return 0
    alloc_flags = ALLOC_WMARK_LOW
    cpu.spend(c.get_page_from_freelist)
    zone = _bulk_zone(cpu, gfp, ac, alloc_flags, nr_pages)
    if zone is None:
        return (
            yield from _bulk_failed(cpu, gfp, preferred_nid, nodemask, page_list, page_array, nr_populated)
        )

    # Attempt the batch allocation.
    cpu.local_irq_save("__alloc_pages_bulk")
    pcp = zone.pcp[cpu.id]
    cpu.spend(c.rmqueue_call)  # this_cpu_ptr(zone->pageset), the list of the migratetype
    if page_array is not None:
        slots = page_array.slots
        holes = [i for i in range(nr_populated, nr_pages) if slots[i] is None]
    else:
        holes = list(range(nr_pages))
    # the rest of the IRQ-off loop only touches lines and spends work: priced in one step, from
    # the pcp list's list_dels on when the list holds every page asked for (no refill)
    b = Batch(cpu)
    lst = pcp.lists[ac.migratetype]
    if holes and len(lst) >= len(holes):
        pages = _pcplist_take(b, pcp, lst, len(holes))  # type: ignore[arg-type]
    else:
        pages = yield from __rmqueue_pcplist(cpu, zone, ac.migratetype, alloc_flags, pcp, len(holes))
    if not pages:
        cpu.local_irq_restore()
        # 5.13: "Try and get at least one page" only if nothing is populated at all, so an
        # array whose leading entries are filled gets no page and no fallback (the nfsd hang of
        # bugzilla 216007); the later fix tests what this call allocated instead.
        if nr_populated and m.kconfig.bulk_fallback == "nr_populated":
            m.stats.bulk_empty += 1
            return nr_populated
        return (
            yield from _bulk_failed(cpu, gfp, preferred_nid, nodemask, page_list, page_array, nr_populated)
        )
    prep_in_loop = m.kconfig.prep_new_page == "irq_off"
    if prep_in_loop:
        prep_new_page(b, pages, 0, gfp, alloc_flags)  # type: ignore[arg-type]
    if page_list is not None:
        _list_add_pages(b, page_list, pages, debug)  # type: ignore[arg-type]
        nr_populated = len(page_list.pages)
    else:
        assert page_array is not None
        for slot, pfn in zip(holes, pages):
            page_array.slots[slot] = pfn
        b.touch([page_array.line(s) | ASYNC for s in holes[: len(pages)]])  # the stores
        b.spend(len(pages) * c.list_line)
        # The kernel's loop walks the array to nr_pages, counting populated entries as it skips
        # them, and stops at the first hole it cannot fill: every entry before that is populated.
        nr_populated = holes[len(pages)] if len(pages) < len(holes) else nr_pages
    if stats != "after_irq":
        # v1: once per call; v3..5.13: per page ("Ideally this would be batched ...")
        calls = len(pages) if stats == "per_page" else 1
        __count_zid_vm_events_and_zone_statistics(b, ac.preferred_zone, zone, pcp, len(pages), calls)  # type: ignore[arg-type]
    b.run()
    cpu.local_irq_restore()
    if stats == "after_irq":
        __count_zid_vm_events_and_zone_statistics(cpu, ac.preferred_zone, zone, pcp, len(pages))
    if not prep_in_loop:
        # v3: a second pass with IRQs on walks the pages again
        prep_new_page(cpu, pages, 0, gfp, alloc_flags)
    m.stats.bulk_pages += len(pages)
    if zone.node != cpu.node:
        m.stats.remote_node_allocs += len(pages)
    return nr_populated


def _bulk_zone(cpu: CPU, gfp: Gfp, ac: AllocContext, alloc_flags: int, nr_pages: int) -> Zone | None:
    """__alloc_pages_bulk()'s zonelist walk: the first zone whose watermark holds with `nr_pages`
    to spare; None when none does, or when the walk reaches a zone of another node first (both
    take the `failed:` path)."""
    m = cpu.machine
    for zone in ac.zonelist:
        if len(m.nodes) > 1 and zone is not ac.preferred_zone and zone.node != ac.preferred_zone.node:
            return None
        cpu.touch([zone.lines.read_mostly, zone.lines.vm_stat], False)
        mark = zone.wmark_pages(alloc_flags & ALLOC_WMARK_MASK) + nr_pages
        if zone_watermark_fast(zone, 0, mark, ac.highest_zoneidx, alloc_flags, gfp):
            return zone
        m.stats.watermark_fails += 1
    return None


def _list_add_pages(cpu: CPU, page_list: PageList, pages: list[int], debug: bool) -> None:
    """list_add(&page->lru, list) for each page: the page, the old first entry, the head."""
    c = cpu.costs
    k = len(pages)
    prev_first = [page_list.pages[0] if page_list.pages else page_list.head_line, *pages[:-1]]
    lines: list[int] = []
    head = page_list.head_line
    for pg, pf in zip(pages, prev_first):
        lines += (pg, pf, head)
    cpu.touch(lines)
    cpu.spend(k * (3 * c.list_line + (c.list_add_check if debug else 0.0)))
    page_list.pages[:0] = pages[::-1]


def _bulk_failed(
    cpu: CPU,
    gfp: Gfp,
    preferred_nid: int,
    nodemask: frozenset[int] | None,
    page_list: PageList | None,
    page_array: PageArray | None,
    nr_populated: int,
) -> Generator[simpy.Event, None, int]:
    """The bulk allocator's `failed:` label: one page from __alloc_pages_nodemask."""
    cpu.machine.stats.bulk_fallback_single += 1
    page = yield from __alloc_pages_nodemask(cpu, gfp, 0, preferred_nid, nodemask)
    if page is None:
        return nr_populated
    if page_list is not None:
        _list_add_pages(cpu, page_list, [page], cpu.machine.kconfig.debug_list)
        return len(page_list.pages)
    assert page_array is not None
    page_array.slots[nr_populated] = page
    cpu.touch([page_array.line(nr_populated) | ASYNC])
    cpu.spend(cpu.costs.list_line)
    return nr_populated + 1


# ---------------------------------------------------------------------------------------------
# freeing
# ---------------------------------------------------------------------------------------------


def free_unref_page(cpu: CPU, pfn: int) -> Generator[simpy.Event, None, None]:
    """Mirrors free_unref_page() for an order-0 page whose last reference is gone (the caller,
    __free_pages(), page_frag_free() or put_page(), dropped it): free_unref_page_prepare
    (free_pcp_prepare's checks, the pageblock's migratetype), then with IRQs off
    free_unref_page_commit: list_add at the head of the pcp list, and free_pcppages_bulk once
    count reaches pcp->high (5.14: nr_pcp_high(), draining nr_pcp_free() pages)."""
    m = cpu.machine
    c = cpu.costs
    zone = m.page_zone(pfn)
    m.take_back([pfn])
    cpu.spend(c.call + c.free_unref_page)  # page_to_pfn
    mt = free_unref_page_prepare(cpu, zone, pfn)
    cpu.local_irq_save("free_unref_page")
    yield from free_unref_page_commit(cpu, zone, pfn, mt)
    cpu.local_irq_restore()


def free_unref_page_prepare(cpu: CPU, zone: Zone, pfn: int) -> int:
    """Mirrors free_unref_page_prepare(): free_pcp_prepare(), then the pageblock's migratetype
    (get_pfnblock_migratetype: the section's pageblock bitmap), cached in page->index."""
    free_pcp_prepare(cpu, pfn)
    cpu.spend(cpu.costs.free_unref_page_prepare)
    touched: list[int] = []
    mt = buddy.get_pageblock_migratetype(zone.free_area, pfn, touched)
    cpu.touch(touched)
    return mt


def free_pcp_prepare(cpu: CPU, pfn: int) -> None:
    """Mirrors free_pcp_prepare() -> free_pages_prepare(page, 0, false) with debug options off:
    the struct page's flags, mapping, memcg_data and cpupid, reset for the free."""
    cpu.spend(cpu.costs.free_pcp_prepare)
    cpu.touch([pfn])


FreeLayer = Literal["put_page", "__free_pages", "page_frag_free"]


def free_layer(cpu: CPU, via: FreeLayer) -> float:
    """The work a caller's free function does before it calls free_unref_page() for a page whose
    last reference it drops (each includes put_page_testzero, an atomic on the struct page):
    - put_page() (inline) -> __put_page -> __put_single_page -> __page_cache_release,
      mem_cgroup_uncharge (mm/swap.c, mm/memcontrol.c): two more real calls and their checks;
    - __free_pages(page, 0): a real call, free_the_page() inline;
    - page_frag_free() (an SKB head): a real call, virt_to_head_page, compound_order."""
    c = cpu.costs
    if via == "put_page":
        return c.atomic + c.put_page
    if via == "__free_pages":
        return c.call + c.atomic
    return c.call + c.page_frag_free + c.atomic


def free_via(cpu: CPU, pfn: int, via: FreeLayer) -> Generator[simpy.Event, None, None]:
    """Free an order-0 page whose last reference the caller holds, through `via`."""
    cpu.spend(free_layer(cpu, via))
    yield from free_unref_page(cpu, pfn)


def put_page(cpu: CPU, pfn: int) -> Generator[simpy.Event, None, None]:
    """Mirrors put_page() of an order-0 page's last reference (include/linux/mm.h, mm/swap.c):
    compound_head, put_page_testzero, __put_page -> __put_single_page (__page_cache_release,
    mem_cgroup_uncharge) -> free_unref_page(). No LRU page and no memcg charge is modelled."""
    return (yield from free_via(cpu, pfn, "put_page"))


def __free_pages(cpu: CPU, pfn: int) -> Generator[simpy.Event, None, None]:
    """Mirrors __free_pages(page, 0): put_page_testzero, free_the_page() -> free_unref_page()."""
    return (yield from free_via(cpu, pfn, "__free_pages"))


def page_frag_free(cpu: CPU, pfn: int) -> Generator[simpy.Event, None, None]:
    """Mirrors page_frag_free(), the free of an SKB's page-fragment head (skb_free_frag):
    virt_to_head_page, put_page_testzero, compound_order, free_the_page() -> free_unref_page()."""
    return (yield from free_via(cpu, pfn, "page_frag_free"))


def nr_pcp_high(pcp: PerCpuPages, zone: Zone, kconfig: KernelConfig) -> int:
    """The count at which free_unref_page_commit() drains: pcp->high up to 5.13; 5.14's
    nr_pcp_high(): min(4 * batch, high) while kswapd reclaims the zone (c49c2c47dab6)."""
    if kconfig.pcp_free != "nr_pcp_free" or not zone.reclaim_active or not pcp.high:
        return pcp.high
    return min(pcp.batch << 2, pcp.high)


def nr_pcp_free(pcp: PerCpuPages, high: int, batch: int) -> int:
    """Mirrors nr_pcp_free() (5.14, 3b12e7e97938): pages to drain, doubling with each drain
    without an allocation in between (free_factor), within [batch, high - batch]."""
    if high < batch:
        return 1
    min_nr_free = batch
    max_nr_free = high - batch
    batch <<= pcp.free_factor
    if batch < max_nr_free:
        pcp.free_factor += 1
    return max(min_nr_free, min(batch, max_nr_free))


def free_unref_page_commit(
    cpu: CPU, zone: Zone, pfn: int, migratetype: int
) -> Generator[simpy.Event, None, None]:
    """Mirrors free_unref_page_commit(): onto this CPU's pcp list for the page's zone (which may
    be a remote node's zone), draining past the high mark: pcp->batch pages up to 5.13,
    nr_pcp_free() pages in 5.14. Isolated pageblocks go straight back to the buddy; HIGHATOMIC
    pages are treated as movable."""
    c = cpu.costs
    k = cpu.machine.kconfig
    if migratetype >= MIGRATE_PCPTYPES:
        if migratetype == MIGRATE_ISOLATE:
            yield from free_one_page(cpu, zone, pfn, migratetype)
            return
        migratetype = MIGRATE_MOVABLE
    pcp = zone.pcp[cpu.id]
    lst = pcp.lists[migratetype]
    cpu.touch([pcp.line, pfn, lst[0] if lst else pcp.line, cpu.vm_event_line])
    cpu.spend(c.free_unref_page_commit + c.pcp_free_extra + (c.list_add_check if k.debug_list else 0.0))
    lst.appendleft(pfn)
    pcp.count += 1
    high = nr_pcp_high(pcp, zone, k)
    if pcp.count >= high:
        count = nr_pcp_free(pcp, high, pcp.batch) if k.pcp_free == "nr_pcp_free" else pcp.batch
        yield from free_pcppages_bulk(cpu, zone, count, pcp)


def free_pcppages_bulk(
    cpu: CPU, zone: Zone, count: int, pcp: PerCpuPages
) -> Generator[simpy.Event, None, None]:
    """Mirrors free_pcppages_bulk(): pick `count` pages round-robin over the three lists from
    their tails (a list found empty lets the next list give more), prefetching each page's
    buddy for the first pcp->batch pages; then under one zone->lock, __free_one_page for each."""
    count = min(pcp.count, count)
    if count <= 0:
        return
    cpu.run_code(cpu.machine.code["free_pcppages_bulk"])
    migratetype = 0
    batch_free = 0
    picked: list[tuple[int, int]] = []
    pick_lines: list[int] = [pcp.line]
    while count:
        while True:
            batch_free += 1
            migratetype += 1
            if migratetype == MIGRATE_PCPTYPES:
                migratetype = 0
            lst = pcp.lists[migratetype]
            if lst:
                break
        if batch_free == MIGRATE_PCPTYPES:
            batch_free = count
        while True:
            pfn = lst.pop()
            pcp.count -= 1
            picked.append((pfn, migratetype))
            # list_del from the tail writes the new tail; list_add_tail to the local list
            pick_lines.append(pfn)
            pick_lines.append(lst[-1] if lst else pcp.line)
            count -= 1
            batch_free -= 1
            if not (count and batch_free and lst):
                break
    # per page: list_del from the pcp list, list_add_tail onto the local list
    _list_work(cpu, pick_lines, len(picked), len(picked))
    prefetch = [pfn ^ 1 for pfn, _ in picked[: pcp.batch]]
    cpu.touch_overlapped(prefetch)

    yield from zone.lock.spin_lock(cpu)
    touched: list[int] = []
    area = zone.free_area
    adds0, dels0 = area.list_adds, area.list_dels
    for pfn, mt in picked:
        buddy.__free_one_page(area, pfn, 0, mt, FPI_NONE, touched)
    _list_work(cpu, touched, area.list_adds - adds0, area.list_dels - dels0)
    for _ in picked:
        __mod_zone_page_state(cpu, zone, NR_FREE_PAGES, 1)
    zone.lock.spin_unlock(cpu)
    pcp.drains += 1
    pcp.drained_pages += len(picked)


def free_one_page(cpu: CPU, zone: Zone, pfn: int, migratetype: int) -> Generator[simpy.Event, None, None]:
    """Mirrors free_one_page(): one page straight into the buddy under zone->lock."""
    yield from zone.lock.spin_lock(cpu)
    touched: list[int] = []
    area = zone.free_area
    adds0, dels0 = area.list_adds, area.list_dels
    buddy.__free_one_page(area, pfn, 0, migratetype, FPI_NONE, touched)
    _list_work(cpu, touched, area.list_adds - adds0, area.list_dels - dels0)
    __mod_zone_page_state(cpu, zone, NR_FREE_PAGES, 1)
    zone.lock.spin_unlock(cpu)


def __free_pages_ok(cpu: CPU, pfn: int) -> Generator[simpy.Event, None, None]:
    """Mirrors __free_pages_ok() for order 0, as the seed's free_pages_bulk() uses it: the
    page bypasses the pcp lists and takes zone->lock itself, with IRQs off."""
    m = cpu.machine
    c = cpu.costs
    zone = m.page_zone(pfn)
    m.take_back([pfn])
    cpu.spend(c.atomic + c.free_pcp_prepare + c.free_unref_page_prepare)
    touched = [pfn, cpu.vm_event_line]
    mt = buddy.get_pageblock_migratetype(zone.free_area, pfn, touched)
    cpu.touch(touched)
    cpu.local_irq_save("__free_pages_ok")
    yield from free_one_page(cpu, zone, pfn, mt)
    cpu.local_irq_restore()


def free_pages_bulk(cpu: CPU, page_list: PageList) -> Generator[simpy.Event, None, None]:
    """Mirrors the seed's free_pages_bulk(list): for each page, put_page_testzero, list_del and
    __free_pages_ok (so one zone->lock round trip per page)."""
    c = cpu.costs
    debug = cpu.machine.kconfig.debug_list
    cpu.spend(c.call)
    while page_list.pages:
        pfn = page_list.pages.pop(0)
        nxt = page_list.pages[0] if page_list.pages else page_list.head_line
        cpu.touch([pfn, nxt, page_list.head_line])
        cpu.spend(3 * c.list_line + (c.list_del_check if debug else 0.0))
        yield from __free_pages_ok(cpu, pfn)


def free_unref_page_list(cpu: CPU, pages: list[int]) -> Generator[simpy.Event, None, None]:
    """Mirrors free_unref_page_list() (release_pages' path): prepare every page with IRQs on,
    then commit them with IRQs off, re-enabling IRQs every SWAP_CLUSTER_MAX (32) pages."""
    m = cpu.machine
    c = cpu.costs
    swap_cluster_max = 32
    cpu.spend(c.call)
    prepared = []
    for pfn in pages:
        zone = m.page_zone(pfn)
        cpu.spend(c.atomic + c.free_pcp_prepare + c.free_unref_page_prepare)
        touched = [pfn]
        prepared.append((pfn, zone, buddy.get_pageblock_migratetype(zone.free_area, pfn, touched)))
        cpu.touch(touched)
    m.take_back(pages)
    cpu.local_irq_save("free_unref_page_list")
    for n, (pfn, zone, mt) in enumerate(prepared, 1):
        yield from free_unref_page_commit(cpu, zone, pfn, mt)
        if n % swap_cluster_max == 0:
            cpu.local_irq_restore()
            cpu.local_irq_save("free_unref_page_list")
    cpu.local_irq_restore()
