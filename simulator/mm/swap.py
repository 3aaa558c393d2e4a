"""The LRU lists' page traffic (mm/swap.c, Linux 5.12): the per-CPU lru_add pagevec a fault fills
(lru_cache_add), its drain onto the node's lruvec under `lruvec->lru_lock` (__pagevec_lru_add),
and release_pages, which takes pages off the LRU under the same lock before they are freed.

With memcg on and every page in the root memcg, a node's lruvec is the root memcg's one: one
`lru_lock` per NUMA node, taken irqsave by every task of the node (5.11 replaced
pgdat->lru_lock with lruvec->lru_lock; for the root memcg the contention domain is the same).

What the code costs (C-level operations, atomics, calls) is counted from the source
(simulator/fault_path.yaml, FaultCosts); the locks, the IRQ-off windows and the shared cache lines
(the lock word, the inactive-anon list head, the neighbours' struct pages) are the model's.

The LRU list itself is kept only as far as the costs need it: each page remembers the page that
was first on the list when it was added (its older neighbour), which a list_del writes.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import simpy

from simulator.machine.lock import SpinLock
from simulator.mm.fault_costs import FaultCosts
from simulator.mm.mmzone import PAGEVEC_SIZE

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU
    from simulator.mm.machine import Machine

LRU_LOCK = "&lruvec->lru_lock"  # the lock class, as lockdep names it
SWAP_CLUSTER_MAX = 32  # include/linux/swap.h: release_pages drops lru_lock every 32 pages


@dataclass
class Lruvec:
    """struct lruvec of the root memcg on one node (`machine.node0.lruvec`): its lru_lock and
    the head of its inactive-anon list (the only list page_fault1's pages are on)."""

    scope: str
    lock: SpinLock
    head_line: int  # lists[LRU_INACTIVE_ANON] (and lru_zone_size beside it)
    first: int | None = None  # the page at the head of the list (the last one added)
    older: dict[int, int | None] = field(default_factory=dict)  # page -> its older neighbour
    pages: int = 0


@dataclass
class Pagevec:
    """This CPU's lru_pvecs.lru_add (struct pagevec: 15 pointers + header = 2 lines)."""

    line: int
    pages: list[int] = field(default_factory=list)


def lruvec_of(m: Machine, nid: int) -> Lruvec:
    """mem_cgroup_lruvec(root_mem_cgroup, NODE_DATA(nid)): the node's lruvec, made on first use."""
    table = m.lruvecs
    lv = table.get(nid)
    if lv is None:
        scope = f"machine.node{nid}.lruvec"
        lock = m.spinlock(f"{scope}.lru_lock", LRU_LOCK, nid)
        lv = table[nid] = Lruvec(scope, lock, m.registry.alloc(f"{scope}.lists", nid))
    return lv


def lru_pvec_of(cpu: CPU) -> Pagevec:
    """this_cpu_ptr(&lru_pvecs.lru_add)."""
    table = cpu.machine.lru_pvecs
    pv = table.get(cpu.id)
    if pv is None:
        pv = table[cpu.id] = Pagevec(cpu.machine.registry.alloc(f"{cpu.scope}.lru_pvecs.lru_add", cpu.node))
    return pv


def lru_cache_add(cpu: CPU, pfn: int, fc: FaultCosts) -> Generator[simpy.Event, None, None]:
    """Mirrors lru_cache_add_inactive_or_unevictable() -> lru_cache_add(): get_page() and the page
    into this CPU's pagevec; the 15th add drains it (__pagevec_lru_add)."""
    pv = lru_pvec_of(cpu)
    cpu.touch([pfn, pv.line])
    cpu.spend(fc.lru_cache_add)
    pv.pages.append(pfn)
    if len(pv.pages) >= PAGEVEC_SIZE:
        yield from __pagevec_lru_add(cpu, pv, fc)


def __pagevec_lru_add(cpu: CPU, pv: Pagevec, fc: FaultCosts) -> Generator[simpy.Event, None, None]:
    """Mirrors __pagevec_lru_add() (5.12): with the node's lru_lock held irqsave, each page onto
    the inactive-anon list (__pagevec_lru_add_fn: TestClearPageUnevictable, SetPageLRU, the LRU
    statistics, list_add at the head); then release_pages() drops the pagevec's references
    (2 -> 1, nothing is freed)."""
    pages = pv.pages
    pv.pages = []
    if not pages:
        return
    m = cpu.machine
    cpu.spend(fc.pagevec_drain)
    # every page of a pagevec is on one node: the CPU's (alloc_pages_vma's local policy); a
    # page from another node (a fallback allocation) still goes to its own node's lruvec
    by_node: dict[int, list[int]] = {}
    for pfn in pages:
        by_node.setdefault(m.page_zone(pfn).node, []).append(pfn)
    for nid, group in by_node.items():
        lv = lruvec_of(m, nid)
        cpu.local_irq_save("__pagevec_lru_add")
        yield from lv.lock.spin_lock(cpu)
        cpu.spend(fc.lru_lock_take)
        for k, pfn in enumerate(group):
            # list_add(&page->lru, &lruvec->lists[lru]): the head and the old first page's lru.prev
            old = lv.first
            cpu.touch([pfn, lv.head_line] if old is None else [pfn, lv.head_line, old])
            cpu.spend(fc.pagevec_lru_add_page if k == 0 else fc.pagevec_lru_add_page + fc.lru_relock_check)
            lv.older[pfn] = old
            lv.first = pfn
            lv.pages += 1
        lv.lock.spin_unlock(cpu)
        cpu.local_irq_restore()
    # release_pages(pvec->pages, 15): put_page_testzero on each, none reaches 0
    cpu.touch(pages)
    cpu.spend(len(pages) * fc.pagevec_release_page)


def lru_add_drain(cpu: CPU, fc: FaultCosts) -> Generator[simpy.Event, None, None]:
    """Mirrors lru_add_drain() -> lru_add_drain_cpu(): this CPU's lru_add pagevec onto the LRU."""
    pv = lru_pvec_of(cpu)
    cpu.spend(fc.lru_add_drain)
    if pv.pages:
        yield from __pagevec_lru_add(cpu, pv, fc)


def del_page_from_lru_list(cpu: CPU, lv: Lruvec, pfn: int) -> list[int]:
    """Mirrors del_page_from_lru_list(): list_del(&page->lru) (and the LRU statistics); returns
    the lines it writes: the page's and its two neighbours' (the head when the page was first)."""
    older = lv.older.pop(pfn)
    lines = [pfn, lv.head_line]
    if older is not None and older in lv.older:
        lines.append(older)
    if lv.first == pfn:
        lv.first = older if older in lv.older else None
    lv.pages -= 1
    return lines


def release_pages(
    cpu: CPU, pages: list[int], fc: FaultCosts
) -> Generator[simpy.Event, None, tuple[list[int], int]]:
    """Mirrors release_pages() (5.12) for pages whose last reference this drops (an munmap's
    mmu_gather batch): put_page_testzero, then, for a page on the LRU, del_page_from_lru_list
    with the node's lru_lock held irqsave, dropped and re-taken every SWAP_CLUSTER_MAX pages;
    returns the pages to free (free_unref_page_list, after mem_cgroup_uncharge_list) and how
    many of them were on an LRU."""
    m = cpu.machine
    cpu.spend(fc.release_pages_call)
    lv: Lruvec | None = None
    batch = 0
    on_lrus = 0
    for pfn in pages:
        if lv is not None:
            batch += 1
            if batch == SWAP_CLUSTER_MAX:
                lv.lock.spin_unlock(cpu)
                cpu.local_irq_restore()
                lv = None
        cpu.spend(fc.release_page)
        on_lru = _on_lru(m, pfn)
        if on_lru is None:
            cpu.touch([pfn])
            cpu.spend(fc.release_nonlru_page)
            continue
        on_lrus += 1
        if lv is not on_lru:
            if lv is not None:
                lv.lock.spin_unlock(cpu)
                cpu.local_irq_restore()
            lv = on_lru
            batch = 0
            cpu.local_irq_save("release_pages")
            yield from lv.lock.spin_lock(cpu)
            cpu.spend(fc.lru_lock_take)
        else:
            cpu.spend(fc.lru_relock_check)
        cpu.touch(del_page_from_lru_list(cpu, lv, pfn))
        cpu.spend(fc.release_lru_page)
    if lv is not None:
        lv.lock.spin_unlock(cpu)
        cpu.local_irq_restore()
    return pages, on_lrus


def _on_lru(m: Machine, pfn: int) -> Lruvec | None:
    """PageLRU(page) and its lruvec (page-table pages are not on an LRU)."""
    for lv in m.lruvecs.values():
        if pfn in lv.older:
            return lv
    return None
