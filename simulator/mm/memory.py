"""A process's anonymous memory (mm/memory.c, mm/mmap.c, Linux 5.12): the first-write fault that
maps a page (handle_mm_fault -> do_anonymous_page), and the munmap that takes them all back
(unmap_region -> zap_pte_range -> the mmu_gather's release_pages -> free_unref_page_list).

Each path's own code is priced by what it runs: C-level operations, atomics, calls, lock and
IRQ pairs, counted from the source (simulator/fault_path.yaml, turned into ns by
simulator/fault_path.py: FaultCosts). The shared state is the model's: the page allocator (every
page and page-table page comes from it, zeroed by __GFP_ZERO through the node's memory
bandwidth), the node's lruvec and its lru_lock (mm/swap.py), and the cache lines of struct pages
and page tables. The exception entry and return are a measured cost (FaultCosts.entry).

A process here is single-threaded and pinned (will-it-scale's processes mode): its mm, VMA,
page-table locks and TLB are its own, so its mmap_lock and PTE locks never contend and an munmap
flushes only the local TLB.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import simpy

from simulator.machine.cache import ASYNC
from simulator.mm.fault_costs import FaultCosts
from simulator.mm.gfp import GFP_HIGHUSER_MOVABLE_ZERO, GFP_PGTABLE_USER
from simulator.mm.mmu_gather import MmuGather, tlb_finish_mmu, tlb_remove_page
from simulator.mm.page_alloc import __alloc_pages_nodemask
from simulator.mm.swap import lru_add_drain, lru_cache_add

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU

PTRS_PER_PTE = 512  # one PTE page maps 2 MiB
PTES_PER_LINE = 8  # 64-byte line / 8-byte pte_t
# Line ids of page-table pages' contents: priced like struct page lines (owned, aged, sparse).
PTE_LINE_BASE = 1 << 46


@dataclass
class AnonMapping:
    """One process's MAP_PRIVATE|MAP_ANONYMOUS mapping (`machine.task3.vma`): its pages in
    fault order, its PTE pages, and the lines of its mm_struct and vm_area_struct."""

    scope: str
    npages: int  # the mapping's size in pages
    mm_line: int  # mm_struct: mmap_lock, rss_stat, pgd (private: one process per CPU)
    vma_line: int
    pages: list[int] = field(default_factory=list)
    pte_pages: list[int] = field(default_factory=list)
    mapped: bool = False

    def pte_line(self, i: int) -> int:
        """The line of page i's pte_t in its PTE page."""
        return PTE_LINE_BASE + self.pte_pages[i // PTRS_PER_PTE] * 64 + (i % PTRS_PER_PTE) // PTES_PER_LINE


def do_mmap(cpu: CPU, vma: AnonMapping, fc: FaultCosts) -> None:
    """Mirrors vm_mmap_pgoff() -> do_mmap() -> mmap_region() for an anonymous private mapping: a
    new VMA (no page is mapped until it is touched)."""
    cpu.spend(fc.syscall + fc.mmap)
    cpu.touch([vma.mm_line, vma.vma_line])
    vma.mapped = True


def handle_mm_fault(cpu: CPU, vma: AnonMapping, fc: FaultCosts) -> Generator[simpy.Event, None, int | None]:
    """One first-write fault on the mapping's next untouched page (exc_page_fault ->
    do_user_addr_fault -> handle_mm_fault -> do_anonymous_page): a new PTE page every 512 pages,
    alloc_pages_vma(GFP_HIGHUSER_MOVABLE | __GFP_ZERO) (zeroed by the allocator's
    post_alloc_hook), mem_cgroup_charge, page_add_new_anon_rmap, lru_cache_add, set_pte_at.
    Returns the page, or None if the allocator found none (VM_FAULT_OOM)."""
    i = len(vma.pages)
    cpu.spend(fc.entry + fc.fault + fc.fault_stat_flush + (fc.first_fault if i == 0 else 0.0))
    cpu.touch([vma.mm_line, vma.vma_line])
    if i % PTRS_PER_PTE == 0:
        pte = yield from __pte_alloc(cpu, vma, fc)
        if pte is None:
            return None
    page = yield from alloc_pages_vma(cpu)
    if page is None:
        return None
    # __SetPageUptodate, page_add_new_anon_rmap (mapping, index, _mapcount), memcg_data: the
    # struct page line prep_new_page left in this CPU's cache. The PTE line is not priced: its
    # PTE page was zeroed by this CPU when it was allocated, and the faults since wrote it.
    cpu.touch([page])
    yield from lru_cache_add(cpu, page, fc)
    vma.pages.append(page)
    return page


def alloc_pages_vma(cpu: CPU) -> Generator[simpy.Event, None, int | None]:
    """Mirrors alloc_pages_vma() with the default (local) policy: the page allocator on this CPU's
    node (its policy lookups are part of FaultCosts.fault)."""
    return (yield from __alloc_pages_nodemask(cpu, GFP_HIGHUSER_MOVABLE_ZERO, 0, cpu.node))


def __pte_alloc(cpu: CPU, vma: AnonMapping, fc: FaultCosts) -> Generator[simpy.Event, None, int | None]:
    """Mirrors __pte_alloc() -> pte_alloc_one(): a zeroed page-table page (GFP_PGTABLE_USER),
    populated into the PMD under the PMD's split lock."""
    cpu.spend(fc.pte_alloc)
    page = yield from __alloc_pages_nodemask(cpu, GFP_PGTABLE_USER, 0, cpu.node)
    if page is None:
        return None
    cpu.touch([page, vma.mm_line])
    vma.pte_pages.append(page)
    return page


def do_munmap(cpu: CPU, vma: AnonMapping, fc: FaultCosts) -> Generator[simpy.Event, None, None]:
    """Mirrors __vm_munmap() -> __do_munmap() -> unmap_region() for the whole mapping:
    lru_add_drain, then unmap_vmas (zap_pte_range gathering every page into the mmu_gather,
    which frees them in batches) and free_pgtables (the PTE pages into the same gather), then
    tlb_finish_mmu (the last flush and frees)."""
    cpu.spend(fc.syscall + fc.munmap)
    cpu.touch([vma.mm_line, vma.vma_line])
    yield from lru_add_drain(cpu, fc)
    tlb = MmuGather()
    pages = vma.pages
    for j in range(len(vma.pte_pages)):
        cpu.spend(fc.zap_pte_page)
        lo, hi = j * PTRS_PER_PTE, min(len(pages), (j + 1) * PTRS_PER_PTE)
        for i in range(lo, hi):
            # ptent = *pte (a sequential walk of the PTE page: the prefetcher streams it), then
            # page_remove_rmap's atomic on the page's _mapcount (the page was found from the pte)
            if i % PTES_PER_LINE == 0:
                cpu.touch([vma.pte_line(i) | ASYNC, pages[i]])
            else:
                cpu.touch([pages[i]])
            cpu.spend(fc.zap_pte)
            yield from tlb_remove_page(cpu, tlb, pages[i], fc)
    # free_pgtables -> free_pte_range -> pte_free_tlb: each PTE page into the same gather
    for pte in vma.pte_pages:
        cpu.spend(fc.free_pte_page)
        cpu.touch([pte])
        yield from tlb_remove_page(cpu, tlb, pte, fc)
    yield from tlb_finish_mmu(cpu, tlb, fc)
    vma.pages = []
    vma.pte_pages = []
    vma.mapped = False
