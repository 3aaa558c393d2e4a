"""The mmu_gather an munmap batches its page frees in (mm/mmu_gather.c, include/asm-generic/tlb.h,
Linux 5.12).

zap_pte_range hands every unmapped page to __tlb_remove_page(). The gather holds them in batches:
the on-stack one of MMU_GATHER_BUNDLE (8) pages, then up to MAX_GATHER_BATCH_COUNT (19) pages of
MAX_GATHER_BATCH (510) pointers each, allocated with __get_free_pages(GFP_NOWAIT) the first time
they are needed and kept until tlb_finish_mmu. When all are full (9,698 pages) zap_pte_range
forces a flush: the TLB (a full local flush for a range over tlb_single_page_flush_ceiling = 33
pages) and then every batch through free_pages_and_swap_cache() -> release_pages() ->
free_unref_page_list(). On x86 bare metal page-table pages go into the same batches
(paravirt tlb_remove_table = tlb_remove_page).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import simpy

from simulator.mm.fault_costs import FaultCosts
from simulator.mm.gfp import GFP_NOWAIT
from simulator.mm.page_alloc import __alloc_pages_nodemask, free_unref_page, free_unref_page_list
from simulator.mm.swap import release_pages

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU

MMU_GATHER_BUNDLE = 8
MAX_GATHER_BATCH = 510  # (PAGE_SIZE - sizeof(struct mmu_gather_batch)) / sizeof(void *)
MAX_GATHER_BATCH_COUNT = 19  # 10000 / MAX_GATHER_BATCH


@dataclass
class MmuGather:
    """struct mmu_gather: its batches of pages to free (the first one on the stack) and the
    batch pages it allocated."""

    batches: list[list[int]] = field(default_factory=lambda: [[]])
    batch_pages: list[int] = field(default_factory=list)
    active: int = 0

    def capacity(self, b: int) -> int:
        return MMU_GATHER_BUNDLE if b == 0 else MAX_GATHER_BATCH


def tlb_remove_page(cpu: CPU, tlb: MmuGather, pfn: int, fc: FaultCosts) -> Generator[simpy.Event, None, None]:
    """Mirrors __tlb_remove_page() -> __tlb_remove_page_size(): the page into the active batch;
    when no batch is left, zap_pte_range's forced flush (tlb_flush_mmu)."""
    batch = tlb.batches[tlb.active]
    batch.append(pfn)
    if len(batch) < tlb.capacity(tlb.active):
        return
    # tlb_next_batch(): the next batch page, allocated the first time
    if tlb.active + 1 < len(tlb.batches):
        tlb.active += 1
        return
    if len(tlb.batches) - 1 < MAX_GATHER_BATCH_COUNT:
        page = yield from __alloc_pages_nodemask(cpu, GFP_NOWAIT, 0, cpu.node)
        if page is not None:
            tlb.batch_pages.append(page)
            tlb.batches.append([])
            tlb.active += 1
            return
    yield from tlb_flush_mmu(cpu, tlb, fc)


def tlb_flush_mmu(cpu: CPU, tlb: MmuGather, fc: FaultCosts) -> Generator[simpy.Event, None, None]:
    """Mirrors tlb_flush_mmu(): tlb_flush_mmu_tlbonly() (flush_tlb_mm_range: a full flush of this
    CPU's TLB; no other CPU uses the mm) then tlb_batch_pages_flush()."""
    cpu.spend(fc.tlb_flush)
    for batch in tlb.batches:
        if not batch:
            break
        yield from free_pages_and_swap_cache(cpu, batch, fc)
        batch.clear()
    tlb.active = 0


def free_pages_and_swap_cache(
    cpu: CPU, pages: list[int], fc: FaultCosts
) -> Generator[simpy.Event, None, None]:
    """Mirrors free_pages_and_swap_cache(): lru_add_drain (the pagevecs are empty), free_swap_cache
    per page (none is in the swap cache), release_pages, then mem_cgroup_uncharge_list and
    free_unref_page_list of the pages whose last reference it dropped."""
    cpu.spend(fc.gather_batch + fc.lru_add_drain)
    freed, on_lru = yield from release_pages(cpu, list(pages), fc)
    # mem_cgroup_uncharge_list: each page that was charged (the LRU pages), then uncharge_batch
    cpu.spend(on_lru * fc.uncharge_page + fc.uncharge_batch)
    yield from free_unref_page_list(cpu, freed)


def tlb_finish_mmu(cpu: CPU, tlb: MmuGather, fc: FaultCosts) -> Generator[simpy.Event, None, None]:
    """Mirrors tlb_finish_mmu(): the last flush and frees, then tlb_batch_list_free(): the batch
    pages back (free_pages)."""
    yield from tlb_flush_mmu(cpu, tlb, fc)
    for page in tlb.batch_pages:
        yield from free_unref_page(cpu, page)
    tlb.batch_pages.clear()
