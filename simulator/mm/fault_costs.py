"""What a process's fault, munmap and mmap paths cost besides what the model prices itself (the
allocator, clearing pages, the shared locks and cache lines): ns per step on the simulated host.

simulator/fault_path.py turns the counts of simulator/fault_path.yaml (C-level operations,
atomics, calls, lock and IRQ pairs, read from the kernel source) into these figures once per
scenario; mm/memory.py, mm/swap.py and mm/mmu_gather.py charge them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FaultCosts:
    """What the fault, munmap and mmap paths cost besides the allocator, the clearing of pages and
    the shared locks and lines the model prices itself (ns on the simulated host; each field's
    counts and sources: simulator/fault_path.yaml)."""

    entry: float  # page-fault exception entry and iret, with PTI's CR3 switches
    syscall: float  # a system call's entry and return (mmap, munmap), with PTI's
    fault: float  # exc_page_fault .. do_anonymous_page, besides lru_cache_add (per fault)
    fault_stat_flush: float  # vmstat/memcg counter folds, amortized per fault
    first_fault: float  # the first fault of a new VMA (rbtree walk, anon_vma_prepare)
    pte_alloc: float  # a new PTE page: __pte_alloc, pte_alloc_one besides the allocation
    lru_cache_add: float  # get_page + pagevec_add (per fault)
    pagevec_drain: float  # __pagevec_lru_add's fixed part and its release_pages call
    lru_lock_take: float  # lock_page_lruvec_irqsave besides the lock and IRQ pair
    lru_relock_check: float  # relock_page_lruvec_irqsave with the lock already held
    pagevec_lru_add_page: float  # __pagevec_lru_add_fn per page, under lru_lock
    pagevec_release_page: float  # the drain's release_pages per page (refcount 2 -> 1)
    lru_add_drain: float  # lru_add_drain_cpu with empty pagevecs
    mmap: float  # do_mmap of the mapping, besides the syscall
    munmap: float  # __do_munmap's fixed work, besides the syscall
    zap_pte_page: float  # zap_pte_range's per-PTE-page work (PTE lock, rss fold)
    zap_pte: float  # zap_pte_range's loop body per PTE: clear, rmap, gather
    free_pte_page: float  # free_pgtables per PTE page (pte_free_tlb)
    gather_batch: float  # tlb_batch_pages_flush per batch: free_pages_and_swap_cache's fixed part
    release_pages_call: float  # release_pages' fixed part
    release_page: float  # release_pages per page: free_swap_cache, put_page_testzero
    release_lru_page: float  # under lru_lock: del_page_from_lru_list, flags, list_add to free
    release_nonlru_page: float  # a page-table page: not on an LRU
    uncharge_page: float  # uncharge_list per LRU page (root memcg)
    uncharge_batch: float  # uncharge_batch per release_pages call
    tlb_flush: float  # flush_tlb_mm_range, local full flush (CR3 write)
