"""Vectorised runs of back-to-back calls: a simulator-only speed-up of mm/page_alloc.py's paths.

Callers that loop over pages with the single-page API (5.11's page_pool slow path, 5.12's
svc_alloc_arg, an SKB free per packet) use these: the calls that take the fast path are priced
together in one step (simulator/machine/tape.py), with one IRQ-off window each, leaving every state
and statistic exactly (to the last bit) as the per-call functions of mm/page_alloc.py leave them;
any call that needs more (a pcp refill or drain, a watermark miss, the slow path, an isolated
pageblock) runs alone through the per-call function. The kernel has no such functions: each one
below names the kernel function it batches.

A caller's own work around each call (page_pool's ring check and params line before it, mlx5's
DMA map after it, the caller's array store) comes as `prologue` and `epilogue` steps (Touch and
Spend), priced in program order around every call, fast or not. Runs return each call's local
times: before its prologue, at the call, after it, after its epilogue, for the caller's tallies.
tests/test_runs.py checks a run against the loop it replaces.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import simpy

from simulator.machine.tape import LiveSteps, Step, Tape, tape_steps
from simulator.mm.gfp import ALLOC_WMARK_LOW, Gfp
from simulator.mm.mmzone import MIGRATE_MOVABLE, MIGRATE_PCPTYPES, PAGEBLOCK_ORDER
from simulator.mm.page_alloc import (
    FreeLayer,
    alloc_flags_nofragment,
    alloc_pages_node,
    free_layer,
    free_via,
    nr_pcp_high,
    prepare_alloc_pages,
    zone_watermark_fast,
)
from simulator.mm.zone import PAGEBLOCK_LINE_BASE, PAGEBLOCKS_PER_LINE

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU

RUN_MIN = 3  # shorter stretches of fast calls go through the per-call functions


# Batches alloc_pages_node() (include/linux/gfp.h: __alloc_pages_nodemask(), mm/page_alloc.c).
def alloc_pages_node_run(
    cpu: CPU,
    gfp: Gfp,
    nid: int,
    n: int,
    prologue: Sequence[Step] = (),
    epilogue: Sequence[Step] = (),
) -> Generator[simpy.Event, None, tuple[list[int], np.ndarray]]:
    """`n` back-to-back alloc_pages_node(nid, gfp, 0) calls, each between its prologue and
    epilogue steps; stops at the first call that fails (as a caller's loop would: that call's
    epilogue is not run). Returns the pages and each call's times, shape (calls made, 4)."""
    m = cpu.machine
    c = cpu.costs
    debug = m.kconfig.debug_list
    live = LiveSteps(cpu)
    out: list[int] = []
    rows: list[np.ndarray] = []
    entry = c.call + c.alloc_pages_nodemask
    per_page = 1 * (c.rmqueue_page + (c.list_del_check if debug else 0.0))
    prep = 1 * c.prep_new_page
    after = m.kconfig.bulk_statistics == "after_irq"  # 5.14: counters after the IRQ-off window
    halve = m.kconfig.pcp_free == "nr_pcp_free"  # 5.14: free_factor >>= 1 per allocation
    while len(out) < n:
        i = len(out)
        ac = prepare_alloc_pages(m, gfp, nid, None)
        k = 0
        if ac is not None and not cpu.irqs_disabled:
            zone = ac.zonelist[0]
            alloc_flags = ALLOC_WMARK_LOW | alloc_flags_nofragment(m, zone)
            pcp = zone.pcp[cpu.id]
            lst = pcp.lists[ac.migratetype]
            if lst and zone_watermark_fast(
                zone, 0, zone.wmark_pages(ALLOC_WMARK_LOW), ac.highest_zoneidx, alloc_flags, gfp
            ):
                k = min(n - i, len(lst))
        if k < RUN_MIN or not m.tapes:
            t0 = cpu.now()
            live.run(prologue, i)
            t1 = cpu.now()
            page = yield from alloc_pages_node(cpu, gfp, nid)
            t2 = cpu.now()
            if page is not None:
                live.run(epilogue, i)
            rows.append(np.array([[t0, t1, t2, cpu.now()]]))
            if page is None:
                break
            out.append(page)
            continue
        # k calls that each take a page from the pcp list (none empties it before the next)
        pages = [lst.popleft() for _ in range(k)]
        nxt = pages[1:]
        nxt.append(lst[0] if lst else pcp.line)
        pg = np.array(pages, dtype=np.int64)
        sl = slice(i, i + k)
        tape = Tape(cpu, k)
        tape.mark()
        tape_steps(tape, prologue, sl)
        tape.mark()
        tape.spend(entry)  # __alloc_pages_nodemask
        tape.spend(c.get_page_from_freelist)
        tape.touch([zone.lines.read_mostly, zone.lines.vm_stat], False)
        tape.irq_save("rmqueue_pcplist")
        tape.spend(c.rmqueue_call + c.pcp_alloc_extra)  # this_cpu_ptr(zone->pageset) ...
        tape.touch([pcp.line, pg, np.array(nxt, dtype=np.int64)])  # __rmqueue_pcplist's list_del
        tape.spend(per_page)
        if not after:
            tape.spend(1 * c.statistics)  # __count_zid_vm_events + zone_statistics
            tape.touch([pcp.stats_line, cpu.vm_event_line])
        tape.irq_restore()
        if after:
            tape.spend(1 * c.statistics)
            tape.touch([pcp.stats_line, cpu.vm_event_line])
        tape.touch([pg])  # prep_new_page
        tape.spend(prep)
        tape.mark()
        tape_steps(tape, epilogue, sl)
        tape.mark()
        rows.append(tape.run())
        pcp.count -= k
        if halve:
            pcp.free_factor >>= k
        m.hand_out(pages)
        if zone.node == ac.preferred_zone.node:  # type: ignore[union-attr]
            m.stats.numa_hit += k
        else:
            m.stats.numa_miss += k
        if zone.node != cpu.node:
            m.stats.remote_node_allocs += k
        out.extend(pages)
    return out, (np.concatenate(rows) if rows else np.empty((0, 4)))


# Batches free_unref_page() (mm/page_alloc.c), called through put_page(), __free_pages() or page_frag_free().
def free_unref_page_run(
    cpu: CPU,
    pfns: list[int],
    prologue: Sequence[Step] = (),
    epilogue: Sequence[Step] = (),
    via: FreeLayer = "put_page",
) -> Generator[simpy.Event, None, np.ndarray]:
    """`len(pfns)` back-to-back frees through `via` (put_page(), __free_pages() or, for an SKB's
    head, page_frag_free()) -> free_unref_page(), each between its prologue and epilogue steps
    (PAGE in a Touch: the page being freed). Returns each call's times, shape (len(pfns), 4)."""
    m = cpu.machine
    c = cpu.costs
    k_cfg = m.kconfig
    debug = k_cfg.debug_list
    live = LiveSteps(cpu)
    n = len(pfns)
    times = np.empty((n, 4))
    layer = free_layer(cpu, via)
    entry = c.call + c.free_unref_page
    commit = c.free_unref_page_commit + c.pcp_free_extra + (c.list_add_check if debug else 0.0)
    i = 0
    while i < n:
        zone = m.page_zone(pfns[i])
        pcp = zone.pcp[cpu.id]
        area = zone.free_area
        # the calls up to (not including) the one that reaches the high mark, within one zone, up
        # to a page of an isolated or high-atomic pageblock
        room = nr_pcp_high(pcp, zone, k_cfg) - 1 - pcp.count
        lo, hi = zone.start_pfn, zone.end_pfn
        # get_pageblock_migratetype() of each page (and the bitmap line it reads), inlined
        pb_mt = area.pageblock_mt
        mts: list[int] = []
        j = i
        while j < n and j - i < room and lo <= pfns[j] < hi:
            mt = pb_mt.get(pfns[j] >> PAGEBLOCK_ORDER, MIGRATE_MOVABLE)
            if mt >= MIGRATE_PCPTYPES:
                break
            mts.append(mt)
            j += 1
        k = j - i
        if k < RUN_MIN or cpu.irqs_disabled or not m.tapes:
            pfn = pfns[i]
            t0 = cpu.now()
            live.run(prologue, i, pfn)
            t1 = cpu.now()
            yield from free_via(cpu, pfn, via)
            t2 = cpu.now()
            live.run(epilogue, i, pfn)
            times[i] = (t0, t1, t2, cpu.now())
            i += 1
            continue
        batch = pfns[i:j]
        m.take_back(batch)
        # free_unref_page_commit's list_add: the old first page of the page's list (or the head)
        mt0 = mts[0]
        if mts.count(mt0) == k:
            lst = pcp.lists[mt0]
            heads = [lst[0] if lst else pcp.line, *batch[:-1]]
            lst.extendleft(batch)
        else:
            heads = []
            for pfn, mt in zip(batch, mts):
                lst = pcp.lists[mt]
                heads.append(lst[0] if lst else pcp.line)
                lst.appendleft(pfn)
        pg = np.array(batch, dtype=np.int64)
        pb_lines = PAGEBLOCK_LINE_BASE + (pg >> PAGEBLOCK_ORDER) // PAGEBLOCKS_PER_LINE
        sl = slice(i, j)
        tape = Tape(cpu, k)
        tape.mark()
        tape_steps(tape, prologue, sl, pg)
        tape.mark()
        tape.spend(layer)  # the caller's free function, its put_page_testzero
        tape.spend(entry)  # free_unref_page, page_to_pfn
        tape.spend(c.free_pcp_prepare)
        tape.touch([pg])
        tape.spend(c.free_unref_page_prepare)
        tape.touch([pb_lines])
        tape.irq_save("free_unref_page")
        tape.touch([pcp.line, pg, np.array(heads, dtype=np.int64), cpu.vm_event_line])
        tape.spend(commit)
        tape.irq_restore()
        tape.mark()
        tape_steps(tape, epilogue, sl, pg)
        tape.mark()
        times[i:j] = tape.run()
        pcp.count += k
        i = j
    return times
