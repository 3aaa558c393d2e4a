"""The buddy allocator of one zone: struct zone's free_area[MAX_ORDER], Linux 5.12.

Mirrors mm/page_alloc.c of v5.12 in names and semantics (read against the 5.10.228 stable
tree; the 5.11/5.12 changes to these functions, e.g. the reshaped max_order loop of
__free_one_page() and FPI_SKIP_KASAN_POISON, do not change what is modelled here), but
represents FREE BLOCKS, not pages: memory and time never scale with the zone's page count.

State lives in :class:`FreeArea` (one per zone); the kernel functions are module-level
functions taking the area first, where the kernel takes the zone (and a pfn where the
kernel takes a struct page).

Free lists
    Per (order, migratetype) a doubly linked list with kernel list_head semantics, kept in
    two dicts shared by all lists (``next``/``prev``, keyed by pfn) plus one negative
    sentinel key per list: ``_list_key(order, mt) == -1 - (order * MIGRATE_TYPES + mt)``.
    ``buddy_order[pfn]`` marks free block heads (PageBuddy + buddy_order()), and
    ``free_list_mt[pfn]`` records which migratetype list a free block is on (the kernel
    does not store that; pagesim needs it for the per-migratetype free page counts).

Lazy boot
    :func:`free_area_init_lazy` frees a pfn range as memblock_free_all() does, except that
    its run of order-10 (MAX_ORDER-1) blocks is kept as one pfn range
    [``lazy_lo``, ``lazy_hi``) represented in the order-10 MOVABLE list by a single node
    (key ``LAZY``): blocks added at the head of that list sit before it, blocks added at the
    tail after it. When the node reaches the head of the list (get_page_from_free_area()),
    its first block is materialised as an ordinary list entry just in front of it, so every
    other function only ever sees ordinary entries. That is correct because an order-10
    block only ever leaves a list from its head: merging stops at MAX_ORDER-1 (so an order-10
    block is never removed as a buddy), page_is_buddy()/buddy_merge_likely() only test orders
    below 10, move_freepages() only runs inside a pageblock holding an allocated or sub-
    pageblock free block (never inside a free order-10 block), and every allocation or
    fallback steal takes the head entry.

Touch log
    Every function takes ``touched: list[int]`` and appends, in program order, the ids of the
    cache lines the kernel reads or writes, for the caller to price in one vectorised step:
    a struct page line is its pfn (one 64 B struct page per page); free_area list heads,
    nr_free and the pageblock bitmap get their ids from a :class:`FreeAreaLineMap` (see
    :class:`FreeAreaLines`). The zone's vmstat counters (NR_FREE_PAGES) and zone->lock are the
    caller's to log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from simulator.errors import InvariantError
from simulator.machine.cache import ASYNC
from simulator.mm.mmzone import (
    FALLBACKS,
    FREE_AREA_SIZE,
    LIST_HEAD_SIZE,
    MAX_ORDER,
    MIGRATE_HIGHATOMIC,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    PAGEBLOCK_NR_PAGES,
    PAGEBLOCK_ORDER,
)

# fpi_t flags of __free_one_page() (mm/page_alloc.c, v5.12)
FPI_NONE = 0
FPI_TO_TAIL = 2  # BIT(1)

# alloc_flags bit (mm/internal.h, v5.12, CONFIG_ZONE_DMA32=y)
ALLOC_NOFRAGMENT = 0x100

CACHE_LINE = 64
MAX_ORDER_NR_PAGES = 1 << (MAX_ORDER - 1)
_TOP = MAX_ORDER - 1
# The node standing for the lazy order-10 range inside the order-10 MOVABLE list.
LAZY = -1 - MAX_ORDER * MIGRATE_TYPES
_PAGEBLOCK_BITS = 4  # NR_PAGEBLOCK_BITS
_PAGEBLOCKS_PER_LINE = CACHE_LINE * 8 // _PAGEBLOCK_BITS


def _list_key(order: int, migratetype: int) -> int:
    """Sentinel key of free_area[order].free_list[migratetype] in the next/prev dicts."""
    return -1 - (order * MIGRATE_TYPES + migratetype)


class FreeAreaLineMap(Protocol):
    """Where the zone's free_area array and pageblock bitmap sit, as cache-line ids."""

    def free_area_head(self, order: int, mt: int) -> int: ...

    def free_area_nr_free(self, order: int) -> int: ...

    def pageblock_flags(self, pfn: int) -> int: ...


@dataclass(frozen=True)
class FreeAreaLines:
    """Cache-line ids of one zone's free_area[] array and of its pageblock bitmap.

    ``base`` is the line id of &zone->free_area[0] (assumed 64 B aligned); a free_area is
    MIGRATE_TYPES list heads of 16 B followed by nr_free (FREE_AREA_SIZE = 104 B).
    ``pageblock_base`` is the line id of the packed pageblock bitmap (4 bits per pageblock,
    NR_PAGEBLOCK_BITS; 128 pageblocks = 256 MiB per line), indexed by absolute pfn as the
    per-node usemaps of SPARSEMEM are laid out back to back. By default it follows the
    free_area array. Choose the bases so that no id collides with a pfn (a struct page line).
    """

    base: int
    pageblock_base: int | None = None

    def free_area_head(self, order: int, mt: int) -> int:
        return self.base + (order * FREE_AREA_SIZE + mt * LIST_HEAD_SIZE) // CACHE_LINE

    def free_area_nr_free(self, order: int) -> int:
        return self.base + (order * FREE_AREA_SIZE + MIGRATE_TYPES * LIST_HEAD_SIZE) // CACHE_LINE

    def pageblock_flags(self, pfn: int) -> int:
        pb_base = self.pageblock_base
        if pb_base is None:
            pb_base = self.base + -(-MAX_ORDER * FREE_AREA_SIZE // CACHE_LINE)
        return pb_base + (pfn >> PAGEBLOCK_ORDER) // _PAGEBLOCKS_PER_LINE


class FreeArea:
    """State of one zone's buddy allocator (zone->free_area[] and the pageblock flags).

    Fields (read freely, change only through the module functions):
      start_pfn, end_pfn  the zone span [start_pfn, end_pfn) (no holes)
      next, prev          list links keyed by pfn or list sentinel key
      buddy_order         pfn -> order of each materialised free block head
      free_list_mt        pfn -> migratetype of the list that block is on
      nr_free[order]      free blocks per order (lazy ones included)
      nr_free_mt[mt]      free pages per migratetype list (lazy ones included)
      nr_free_pages       free pages in this zone's buddy (its NR_FREE_PAGES share)
      pageblock_mt        pfn >> PAGEBLOCK_ORDER -> migratetype, only for pageblocks
                          not MIGRATE_MOVABLE (the boot default)
      lazy_lo, lazy_hi    the lazy order-10 MOVABLE range (empty when equal)
    """

    __slots__ = (
        "start_pfn",
        "end_pfn",
        "lines",
        "next",
        "prev",
        "buddy_order",
        "free_list_mt",
        "nr_free",
        "nr_free_mt",
        "nr_free_pages",
        "pageblock_mt",
        "lazy_lo",
        "lazy_hi",
        "_line_as_next",
        "_line_as_prev",
        "_nr_free_line",
        "list_adds",
        "list_dels",
    )

    def __init__(self, start_pfn: int, end_pfn: int, lines: FreeAreaLineMap) -> None:
        if not 0 <= start_pfn < end_pfn:
            raise ValueError(f"zone span [{start_pfn}, {end_pfn}) is empty or negative")
        self.start_pfn = start_pfn
        self.end_pfn = end_pfn
        self.lines = lines
        self.next: dict[int, int] = {}
        self.prev: dict[int, int] = {}
        self.buddy_order: dict[int, int] = {}
        self.free_list_mt: dict[int, int] = {}
        self.nr_free = [0] * MAX_ORDER
        self.nr_free_mt = [0] * MIGRATE_TYPES
        self.nr_free_pages = 0
        self.pageblock_mt: dict[int, int] = {}
        self.lazy_lo = 0
        self.lazy_hi = 0
        # list_add/list_add_tail and list_del operations performed: under CONFIG_DEBUG_LIST each
        # is a __list_add_valid or a __list_del_entry_valid call, which the caller prices
        self.list_adds = 0
        self.list_dels = 0
        # Line id of a list node when it is the next (resp. prev) neighbour of an entry.
        # Sentinels: their list head; LAZY: the first (resp. last) lazy block's struct page.
        self._line_as_next: dict[int, int] = {}
        self._line_as_prev: dict[int, int] = {}
        self._nr_free_line = [lines.free_area_nr_free(o) for o in range(MAX_ORDER)]
        for order in range(MAX_ORDER):
            for mt in range(MIGRATE_TYPES):
                key = _list_key(order, mt)
                self.next[key] = key
                self.prev[key] = key
                line = lines.free_area_head(order, mt)
                self._line_as_next[key] = line
                self._line_as_prev[key] = line
        # memmap_init_zone() marks a pageblock MOVABLE only at pageblock-aligned pfns inside
        # the zone: a pageblock that starts below an unaligned zone start keeps the zeroed
        # bitmap value, MIGRATE_UNMOVABLE (the DMA zone's one Unmovable block).
        if start_pfn & (PAGEBLOCK_NR_PAGES - 1):
            self.pageblock_mt[start_pfn >> PAGEBLOCK_ORDER] = MIGRATE_UNMOVABLE

    def __repr__(self) -> str:
        return (
            f"FreeArea([{self.start_pfn:#x}, {self.end_pfn:#x}), free={self.nr_free_pages}, "
            f"nr_free={self.nr_free}, lazy={(self.lazy_hi - self.lazy_lo) >> _TOP})"
        )


# ---------------------------------------------------------------------------------------
# Pageblock flags


def get_pageblock_migratetype(area: FreeArea, pfn: int, touched: list[int]) -> int:
    """Mirrors get_pageblock_migratetype() in include/linux/mmzone.h, v5.12.

    Reads the 4-bit pageblock bitmap entry; the other pageblock flag (skip) is left out.
    """
    touched.append(area.lines.pageblock_flags(pfn))
    return area.pageblock_mt.get(pfn >> PAGEBLOCK_ORDER, MIGRATE_MOVABLE)


def set_pageblock_migratetype(area: FreeArea, pfn: int, migratetype: int, touched: list[int]) -> None:
    """Mirrors set_pageblock_migratetype() in mm/page_alloc.c, v5.12.

    Writes the bitmap line (not the struct page); page_group_by_mobility_disabled is left out.
    """
    touched.append(area.lines.pageblock_flags(pfn))
    idx = pfn >> PAGEBLOCK_ORDER
    if migratetype == MIGRATE_MOVABLE:
        area.pageblock_mt.pop(idx, None)
    else:
        area.pageblock_mt[idx] = migratetype


# ---------------------------------------------------------------------------------------
# Free list helpers


def set_buddy_order(
    area: FreeArea, pfn: int, order: int, touched: list[int], stores_async: bool = False
) -> None:
    """Mirrors set_buddy_order() in mm/page_alloc.c, v5.12 (private = order, PageBuddy).

    stores_async: nothing waits for the store (expand()'s split halves): its miss overlaps."""
    area.buddy_order[pfn] = order
    touched.append(pfn | ASYNC if stores_async else pfn)


def page_is_buddy(area: FreeArea, pfn: int, buddy_pfn: int, order: int, touched: list[int]) -> bool:
    """Mirrors page_is_buddy() in mm/page_alloc.c, v5.12.

    Reads the buddy's struct page. Guard pages are left out; the zone check is implicit
    (buddy_order only holds this zone's pfns).
    """
    touched.append(buddy_pfn)
    return area.buddy_order.get(buddy_pfn) == order


def free_area_empty(area: FreeArea, order: int, migratetype: int, touched: list[int]) -> bool:
    """Mirrors free_area_empty() in include/linux/mmzone.h, v5.12 (reads the list head)."""
    key = -1 - (order * MIGRATE_TYPES + migratetype)
    touched.append(area._line_as_prev[key])
    return area.next[key] == key


def add_to_free_list(
    area: FreeArea, pfn: int, order: int, migratetype: int, touched: list[int], stores_async: bool = False
) -> None:
    """Mirrors add_to_free_list() in mm/page_alloc.c, v5.12: list_add at the head, nr_free++.

    Nothing left out (page reporting state is not modelled). stores_async: the stores to the
    entry and its new neighbour are not waited for (expand(), __free_one_page()): their misses
    overlap with the caller's chain.
    """
    head = -1 - (order * MIGRATE_TYPES + migratetype)
    nxt = area.next
    prv = area.prev
    n = nxt[head]
    nxt[pfn] = n
    prv[pfn] = head
    prv[n] = pfn
    nxt[head] = pfn
    area.free_list_mt[pfn] = migratetype
    area.nr_free[order] += 1
    area.nr_free_mt[migratetype] += 1 << order
    area.list_adds += 1
    a = ASYNC if stores_async else 0
    touched.append(area._line_as_prev[head])
    touched.append((n if n >= 0 else area._line_as_next[n]) | a)
    touched.append(pfn | a)
    touched.append(area._nr_free_line[order])


def add_to_free_list_tail(
    area: FreeArea, pfn: int, order: int, migratetype: int, touched: list[int], stores_async: bool = False
) -> None:
    """Mirrors add_to_free_list_tail() in mm/page_alloc.c, v5.12: list_add_tail, nr_free++.

    Nothing left out. stores_async as for add_to_free_list().
    """
    head = -1 - (order * MIGRATE_TYPES + migratetype)
    nxt = area.next
    prv = area.prev
    p = prv[head]
    nxt[pfn] = head
    prv[pfn] = p
    nxt[p] = pfn
    prv[head] = pfn
    area.free_list_mt[pfn] = migratetype
    area.nr_free[order] += 1
    area.nr_free_mt[migratetype] += 1 << order
    area.list_adds += 1
    a = ASYNC if stores_async else 0
    touched.append(area._line_as_prev[head])
    touched.append(pfn | a)
    touched.append((p if p >= 0 else area._line_as_prev[p]) | a)
    touched.append(area._nr_free_line[order])


def del_page_from_free_list(
    area: FreeArea, pfn: int, order: int, touched: list[int], stores_async: bool = False
) -> None:
    """Mirrors del_page_from_free_list() in mm/page_alloc.c, v5.12.

    list_del, __ClearPageBuddy, private = 0, nr_free--. Page reporting is left out.
    stores_async: the neighbours' pointer stores are not waited for (a merge in
    __free_one_page(); not an allocation's pop, whose next entry the next pop loads).
    """
    nxt = area.next
    prv = area.prev
    n = nxt.pop(pfn)
    p = prv.pop(pfn)
    nxt[p] = n
    prv[n] = p
    del area.buddy_order[pfn]
    area.nr_free_mt[area.free_list_mt.pop(pfn)] -= 1 << order
    area.nr_free[order] -= 1
    area.list_dels += 1
    a = ASYNC if stores_async else 0
    touched.append(pfn)
    touched.append((n if n >= 0 else area._line_as_next[n]) | a)
    touched.append((p if p >= 0 else area._line_as_prev[p]) | a)
    touched.append(area._nr_free_line[order])


def move_to_free_list(area: FreeArea, pfn: int, order: int, migratetype: int, touched: list[int]) -> None:
    """Mirrors move_to_free_list() in mm/page_alloc.c, v5.12: list_move_tail, no nr_free change.

    Nothing left out.
    """
    nxt = area.next
    prv = area.prev
    n = nxt[pfn]
    p = prv[pfn]
    nxt[p] = n
    prv[n] = p
    touched.append(pfn)
    touched.append(n if n >= 0 else area._line_as_next[n])
    touched.append(p if p >= 0 else area._line_as_prev[p])
    head = -1 - (order * MIGRATE_TYPES + migratetype)
    t = prv[head]
    nxt[pfn] = head
    prv[pfn] = t
    nxt[t] = pfn
    prv[head] = pfn
    touched.append(area._line_as_prev[head])
    touched.append(t if t >= 0 else area._line_as_prev[t])
    size = 1 << order
    mts = area.nr_free_mt
    mts[area.free_list_mt[pfn]] -= size
    mts[migratetype] += size
    area.free_list_mt[pfn] = migratetype
    area.list_dels += 1  # list_move_tail: __list_del_entry and list_add_tail
    area.list_adds += 1


def _materialise_lazy_head(area: FreeArea) -> int:
    """Turn the first lazy block into an ordinary entry in front of the LAZY node.

    Only called when LAZY is the first node of the order-10 MOVABLE list; the logical list
    order is unchanged, so nothing is logged (the model's bookkeeping, not the kernel's).
    """
    head = _list_key(_TOP, MIGRATE_MOVABLE)
    nxt = area.next
    prv = area.prev
    pfn = area.lazy_lo
    nxt[head] = pfn
    prv[pfn] = head
    nxt[pfn] = LAZY
    prv[LAZY] = pfn
    area.buddy_order[pfn] = _TOP
    area.free_list_mt[pfn] = MIGRATE_MOVABLE
    area.lazy_lo = lo = pfn + MAX_ORDER_NR_PAGES
    if lo == area.lazy_hi:
        n = nxt.pop(LAZY)
        del prv[LAZY]
        nxt[pfn] = n
        prv[n] = pfn
        del area._line_as_next[LAZY]
        del area._line_as_prev[LAZY]
        area.lazy_lo = area.lazy_hi = 0
    else:
        area._line_as_next[LAZY] = lo
    return pfn


def get_page_from_free_area(area: FreeArea, order: int, migratetype: int, touched: list[int]) -> int | None:
    """Mirrors get_page_from_free_area() in include/linux/mmzone.h, v5.12: the list's head.

    Reads the list head. Nothing left out.
    """
    head = -1 - (order * MIGRATE_TYPES + migratetype)
    touched.append(area._line_as_prev[head])
    pfn = area.next[head]
    if pfn >= 0:
        return pfn
    if pfn == head:
        return None
    return _materialise_lazy_head(area)  # pfn == LAZY


# ---------------------------------------------------------------------------------------
# Allocation


def expand(area: FreeArea, pfn: int, low: int, high: int, migratetype: int, touched: list[int]) -> None:
    """Mirrors expand() in mm/page_alloc.c, v5.12: upper halves go to the list heads.

    Debug guard pages (CONFIG_DEBUG_PAGEALLOC) are left out.
    """
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        # the split half's struct page and its list neighbour are only written
        add_to_free_list(area, pfn + size, high, migratetype, touched, stores_async=True)
        set_buddy_order(area, pfn + size, high, touched, stores_async=True)


def __rmqueue_smallest(area: FreeArea, order: int, migratetype: int, touched: list[int]) -> int | None:
    """Mirrors __rmqueue_smallest() in mm/page_alloc.c, v5.12.

    Also subtracts the pages from nr_free_pages (the kernel's callers rmqueue()/
    rmqueue_bulk() update NR_FREE_PAGES; its vmstat line is the caller's to log).
    set_pcppage_migratetype() is logged as a write of the page but not stored.
    """
    for current_order in range(order, MAX_ORDER):
        pfn = get_page_from_free_area(area, current_order, migratetype, touched)
        if pfn is None:
            continue
        del_page_from_free_list(area, pfn, current_order, touched)
        if current_order > order:
            expand(area, pfn, order, current_order, migratetype, touched)
        touched.append(pfn)  # set_pcppage_migratetype(): page->index
        area.nr_free_pages -= 1 << order
        return pfn
    return None


def move_freepages(area: FreeArea, start_pfn: int, end_pfn: int, migratetype: int, touched: list[int]) -> int:
    """Mirrors move_freepages() in mm/page_alloc.c, v5.12, over pfns [start_pfn, end_pfn].

    Returns pages moved. num_movable is left out (always 0: pagesim has no LRU or
    __PageMovable pages); pfn_valid_within() holes are left out (a zone has none).
    """
    bo = area.buddy_order
    moved = 0
    pfn = start_pfn
    while pfn <= end_pfn:
        touched.append(pfn)  # PageBuddy(page)
        order = bo.get(pfn)
        if order is None:
            pfn += 1
            continue
        move_to_free_list(area, pfn, order, migratetype, touched)
        pfn += 1 << order
        moved += 1 << order
    return moved


def move_freepages_block(area: FreeArea, pfn: int, migratetype: int, touched: list[int]) -> int:
    """Mirrors move_freepages_block() in mm/page_alloc.c, v5.12.

    Returns pages moved; num_movable is left out (always 0, see move_freepages()).
    """
    start_pfn = pfn & ~(PAGEBLOCK_NR_PAGES - 1)
    end_pfn = start_pfn + PAGEBLOCK_NR_PAGES - 1
    if not area.start_pfn <= start_pfn < area.end_pfn:
        start_pfn = pfn
    if not area.start_pfn <= end_pfn < area.end_pfn:
        return 0
    return move_freepages(area, start_pfn, end_pfn, migratetype, touched)


def change_pageblock_range(
    area: FreeArea, pfn: int, start_order: int, migratetype: int, touched: list[int]
) -> None:
    """Mirrors change_pageblock_range() in mm/page_alloc.c, v5.12. Nothing left out."""
    for _ in range(1 << (start_order - PAGEBLOCK_ORDER)):
        set_pageblock_migratetype(area, pfn, migratetype, touched)
        pfn += PAGEBLOCK_NR_PAGES


def can_steal_fallback(order: int, start_mt: int) -> bool:
    """Mirrors can_steal_fallback() in mm/page_alloc.c, v5.12.

    page_group_by_mobility_disabled is left out (false on any machine over ~100 MiB).
    """
    if order >= PAGEBLOCK_ORDER:
        return True
    return order >= PAGEBLOCK_ORDER // 2 or start_mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)


def steal_suitable_fallback(
    area: FreeArea,
    pfn: int,
    alloc_flags: int,
    start_type: int,
    whole_block: bool,
    touched: list[int],
) -> None:
    """Mirrors steal_suitable_fallback() in mm/page_alloc.c, v5.12.

    Watermark boosting (boost_watermark(), ZONE_BOOSTED_WATERMARK) is left out;
    movable_pages is always 0 (no LRU pages in pagesim), page_group_by_mobility_disabled false.
    """
    touched.append(pfn)  # buddy_order(page)
    current_order = area.buddy_order[pfn]
    old_block_type = get_pageblock_migratetype(area, pfn, touched)
    if old_block_type != MIGRATE_HIGHATOMIC:
        if current_order >= PAGEBLOCK_ORDER:
            change_pageblock_range(area, pfn, current_order, start_type, touched)
        elif whole_block:
            free_pages = move_freepages_block(area, pfn, start_type, touched)
            movable_pages = 0
            if start_type == MIGRATE_MOVABLE:
                alike_pages = movable_pages
            elif old_block_type == MIGRATE_MOVABLE:
                alike_pages = PAGEBLOCK_NR_PAGES - (free_pages + movable_pages)
            else:
                alike_pages = 0
            if free_pages:
                if free_pages + alike_pages >= 1 << (PAGEBLOCK_ORDER - 1):
                    set_pageblock_migratetype(area, pfn, start_type, touched)
                return
    move_to_free_list(area, pfn, current_order, start_type, touched)


def find_suitable_fallback(
    area: FreeArea, order: int, migratetype: int, only_stealable: bool, touched: list[int]
) -> tuple[int, bool]:
    """Mirrors find_suitable_fallback() in mm/page_alloc.c, v5.12.

    Returns (fallback_mt or -1, can_steal) instead of writing *can_steal. Nothing left out.
    """
    touched.append(area._nr_free_line[order])
    if area.nr_free[order] == 0:
        return -1, False
    can_steal = False
    for fallback_mt in FALLBACKS[migratetype]:
        if free_area_empty(area, order, fallback_mt, touched):
            continue
        if can_steal_fallback(order, migratetype):
            can_steal = True
        if not only_stealable or can_steal:
            return fallback_mt, can_steal
    return -1, can_steal


def __rmqueue_fallback(
    area: FreeArea, order: int, start_migratetype: int, alloc_flags: int, touched: list[int]
) -> bool:
    """Mirrors __rmqueue_fallback() in mm/page_alloc.c, v5.12.

    The mm_page_alloc_extfrag tracepoint is left out. start_migratetype must be one of
    the three pcp types (the kernel never falls back for HIGHATOMIC/CMA/ISOLATE).
    """
    min_order = PAGEBLOCK_ORDER if alloc_flags & ALLOC_NOFRAGMENT else order
    current_order = _TOP
    while current_order >= min_order:
        fallback_mt, can_steal = find_suitable_fallback(
            area, current_order, start_migratetype, False, touched
        )
        if fallback_mt != -1:
            break
        current_order -= 1
    else:
        return False
    if not can_steal and start_migratetype == MIGRATE_MOVABLE and current_order > order:
        # find_smallest: steal and split the smallest block rather than the largest.
        for current_order in range(order, MAX_ORDER):
            fallback_mt, can_steal = find_suitable_fallback(
                area, current_order, start_migratetype, False, touched
            )
            if fallback_mt != -1:
                break
        else:  # cannot happen: a fallback was found above
            raise InvariantError("__rmqueue_fallback: find_smallest found no fallback block")
    pfn = get_page_from_free_area(area, current_order, fallback_mt, touched)
    if pfn is None:
        raise InvariantError(f"__rmqueue_fallback: list ({current_order}, {fallback_mt}) empty")
    steal_suitable_fallback(area, pfn, alloc_flags, start_migratetype, can_steal, touched)
    return True


def __rmqueue(
    area: FreeArea, order: int, migratetype: int, alloc_flags: int, touched: list[int]
) -> int | None:
    """Mirrors __rmqueue() in mm/page_alloc.c, v5.12.

    The CMA paths (ALLOC_CMA, __rmqueue_cma_fallback) are left out: pagesim has no CMA area.
    """
    while True:
        pfn = __rmqueue_smallest(area, order, migratetype, touched)
        if pfn is not None:
            return pfn
        if not __rmqueue_fallback(area, order, migratetype, alloc_flags, touched):
            return None


# ---------------------------------------------------------------------------------------
# Freeing


def buddy_merge_likely(area: FreeArea, pfn: int, buddy_pfn: int, order: int, touched: list[int]) -> bool:
    """Mirrors buddy_merge_likely() in mm/page_alloc.c, v5.12: is the next-order buddy free?

    Nothing left out (pfn_valid_within() is always true: no holes).
    """
    if order >= MAX_ORDER - 2:
        return False
    higher_buddy = (buddy_pfn & pfn) ^ (1 << (order + 1))
    touched.append(higher_buddy)
    return area.buddy_order.get(higher_buddy) == order + 1


def __free_one_page(
    area: FreeArea, pfn: int, order: int, migratetype: int, fpi_flags: int, touched: list[int]
) -> None:
    """Mirrors __free_one_page() in mm/page_alloc.c, v5.12.

    Left out: pageblock-isolation checks (no MIGRATE_ISOLATE blocks, so merging always
    continues to MAX_ORDER-1), compaction capture, guard pages, page shuffling
    (is_shuffle_order(): shuffle is off by default) and page-reporting notification.
    Adds the pages to nr_free_pages as __mod_zone_freepage_state() does (its vmstat line is
    the caller's to log).
    """
    area.nr_free_pages += 1 << order
    bo = area.buddy_order
    buddy_pfn = pfn
    while order < _TOP:
        buddy_pfn = pfn ^ (1 << order)
        touched.append(buddy_pfn)  # page_is_buddy(page, buddy, order)
        if bo.get(buddy_pfn) != order:
            break
        del_page_from_free_list(area, buddy_pfn, order, touched, stores_async=True)
        pfn &= buddy_pfn
        order += 1
    # done_merging:
    bo[pfn] = order  # set_buddy_order()
    touched.append(pfn)
    if fpi_flags & FPI_TO_TAIL or buddy_merge_likely(area, pfn, buddy_pfn, order, touched):
        add_to_free_list_tail(area, pfn, order, migratetype, touched, stores_async=True)
    else:
        add_to_free_list(area, pfn, order, migratetype, touched, stores_async=True)


# ---------------------------------------------------------------------------------------
# Boot


def free_area_init_lazy(area: FreeArea, start_pfn: int, end_pfn: int) -> None:
    """Mirrors memblock_free_all() -> __free_pages_memory() -> __free_pages_core(), v5.12.

    Frees [start_pfn, end_pfn) as the largest naturally aligned blocks in ascending pfn
    order, each with FPI_TO_TAIL to its pageblock's migratetype list (MOVABLE, except a
    pageblock starting below an unaligned zone start). The run of order-10 blocks becomes
    the lazy range, appended at the tail of the order-10 MOVABLE list; if the area already
    has a lazy range (a second call), they are freed one by one instead. Merging is checked
    as __free_one_page() does (at boot nothing merges: the blocks are maximal). Left out:
    managed_pages accounting, page poisoning/init-on-free, and the touch log (boot is not
    priced).
    """
    if not area.start_pfn <= start_pfn <= end_pfn <= area.end_pfn:
        raise ValueError(
            f"range [{start_pfn}, {end_pfn}) is outside the zone [{area.start_pfn}, {area.end_pfn})"
        )
    scratch: list[int] = []
    pfn = start_pfn
    while pfn < end_pfn:
        order = min(_TOP, (pfn & -pfn).bit_length() - 1) if pfn else _TOP
        while pfn + (1 << order) > end_pfn:
            order -= 1
        if order == _TOP and area.lazy_lo == area.lazy_hi:
            n = (end_pfn - pfn) >> _TOP
            hi = pfn + (n << _TOP)
            # Append the LAZY node at the tail of the order-10 MOVABLE list.
            head = _list_key(_TOP, MIGRATE_MOVABLE)
            t = area.prev[head]
            area.next[t] = LAZY
            area.prev[LAZY] = t
            area.next[LAZY] = head
            area.prev[head] = LAZY
            area.lazy_lo, area.lazy_hi = pfn, hi
            area._line_as_next[LAZY] = pfn
            area._line_as_prev[LAZY] = hi - MAX_ORDER_NR_PAGES
            area.nr_free[_TOP] += n
            area.nr_free_mt[MIGRATE_MOVABLE] += n << _TOP
            area.nr_free_pages += n << _TOP
            pfn = hi
            continue
        mt = area.pageblock_mt.get(pfn >> PAGEBLOCK_ORDER, MIGRATE_MOVABLE)
        __free_one_page(area, pfn, order, mt, FPI_TO_TAIL, scratch)
        scratch.clear()
        pfn += 1 << order


# ---------------------------------------------------------------------------------------
# Inspection (tests, reports): not on the hot path


def free_blocks(area: FreeArea) -> Iterator[tuple[int, int, int]]:
    """Yield (pfn, order, migratetype) of every free block, in list order, lazy ones included."""
    nxt = area.next
    for order in range(MAX_ORDER):
        for mt in range(MIGRATE_TYPES):
            head = _list_key(order, mt)
            node = nxt[head]
            while node != head:
                if node == LAZY:
                    for pfn in range(area.lazy_lo, area.lazy_hi, MAX_ORDER_NR_PAGES):
                        yield pfn, order, mt
                else:
                    yield node, order, mt
                node = nxt[node]


def free_intervals(area: FreeArea) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the pfn range [lo, hi) of every free block, materialised heads first (in
    buddy_order's order), then the lazy order-10 range as one interval. For the machine's
    page-placement invariant: its cost is that of the materialised blocks, whatever the zone's
    size."""
    bo = area.buddy_order
    n = len(bo)
    lo = np.fromiter(bo.keys(), dtype=np.int64, count=n)
    hi = lo + (np.int64(1) << np.fromiter(bo.values(), dtype=np.int64, count=n))
    if area.lazy_lo != area.lazy_hi:
        lo = np.append(lo, np.int64(area.lazy_lo))
        hi = np.append(hi, np.int64(area.lazy_hi))
    return lo, hi


def check_invariants(area: FreeArea) -> None:
    """Raise InvariantError unless the free lists, counts and blocks are consistent.

    Checks: list links (next/prev agree, so every list closes and no pfn is on two lists; no
    stray keys); each free block head is on a list of its order, and free_list_mt agrees;
    every block is aligned to its order and inside the zone; no two blocks overlap; no block below
    MAX_ORDER-1 has a free buddy of the same order (it would have merged); nr_free,
    nr_free_mt and nr_free_pages match the blocks; the lazy range is well formed.
    Cost is proportional to the number of materialised blocks (the lazy range is one
    interval).
    """
    nxt, prv, bo = area.next, area.prev, area.buddy_order
    problems: list[str] = []
    lazy_n = (area.lazy_hi - area.lazy_lo) >> _TOP
    if area.lazy_lo != area.lazy_hi:
        if (
            area.lazy_lo >= area.lazy_hi
            or area.lazy_lo & (MAX_ORDER_NR_PAGES - 1)
            or area.lazy_hi & (MAX_ORDER_NR_PAGES - 1)
            or area.lazy_lo < area.start_pfn
            or area.lazy_hi > area.end_pfn
        ):
            problems.append(f"bad lazy range [{area.lazy_lo:#x}, {area.lazy_hi:#x})")
        if LAZY not in nxt:
            problems.append("lazy range set but no LAZY node in the list")
    elif LAZY in nxt:
        problems.append("LAZY node present but the lazy range is empty")
    seen: dict[int, tuple[int, int]] = {}
    nr_free = [0] * MAX_ORDER
    nr_free_mt = [0] * MIGRATE_TYPES
    lazy_seen = False
    for order in range(MAX_ORDER):
        for mt in range(MIGRATE_TYPES):
            head = _list_key(order, mt)
            node = head
            # The walk ends: every step checks prv[next] == node, so the first node seen twice
            # would have to be the head (its predecessor was seen twice earlier, down to the
            # head), and reaching the head stops the walk.
            while True:
                n = nxt.get(node)
                if n is None or prv.get(n) != node:
                    problems.append(f"list ({order}, {mt}): broken link at {node} -> {n}")
                    break
                node = n
                if node == head:
                    break
                if node == LAZY:
                    if (order, mt) != (_TOP, MIGRATE_MOVABLE) or lazy_seen:
                        problems.append(f"LAZY node on list ({order}, {mt})")
                    lazy_seen = True
                    nr_free[order] += lazy_n
                    nr_free_mt[mt] += lazy_n << order
                    continue
                if node < 0:
                    problems.append(f"list ({order}, {mt}) holds sentinel {node}")
                    break
                # (No pfn is seen on two lists: the prv chain back from it is unique, so a
                # second walk reaching it would have passed the first list's sentinel.)
                seen[node] = (order, mt)
                got_order, got_mt = bo.get(node), area.free_list_mt.get(node)
                if got_order != order:
                    problems.append(f"pfn {node:#x} on order-{order} list: order {got_order}")
                if got_mt != mt:
                    problems.append(f"pfn {node:#x} on mt-{mt} list: free_list_mt {got_mt}")
                nr_free[order] += 1
                nr_free_mt[mt] += 1 << order
    if set(bo) != set(seen):
        problems.append(f"buddy_order heads not on any list: {sorted(set(bo) - set(seen))[:8]}")
    if set(area.free_list_mt) != set(seen):
        problems.append("free_list_mt keys differ from the listed blocks")
    stray = {k for k in nxt if k >= 0} - set(seen)
    if stray or len(nxt) != len(prv):
        problems.append(f"stray link keys: {sorted(stray)[:8]}")
    intervals = [(pfn, pfn + (1 << o), o) for pfn, (o, _mt) in seen.items()]
    for pfn, end, o in intervals:
        if pfn & ((1 << o) - 1):
            problems.append(f"block {pfn:#x} not aligned to order {o}")
        if pfn < area.start_pfn or end > area.end_pfn:
            problems.append(f"block {pfn:#x} order {o} outside the zone")
        if o < _TOP and bo.get(pfn ^ (1 << o)) == o:
            problems.append(f"block {pfn:#x} and buddy {pfn ^ (1 << o):#x} (order {o}) unmerged")
    if lazy_n:
        intervals.append((area.lazy_lo, area.lazy_hi, _TOP))
    intervals.sort()
    for (a, a_end, _), (b, _b_end, _) in zip(intervals, intervals[1:], strict=False):
        if b < a_end:
            problems.append(f"free blocks at {a:#x} and {b:#x} overlap")
    if nr_free != area.nr_free:
        problems.append(f"nr_free {area.nr_free} != counted {nr_free}")
    if nr_free_mt != area.nr_free_mt:
        problems.append(f"nr_free_mt {area.nr_free_mt} != counted {nr_free_mt}")
    if sum(nr_free_mt) != area.nr_free_pages:
        problems.append(f"nr_free_pages {area.nr_free_pages} != counted {sum(nr_free_mt)}")
    if problems:
        shown = "; ".join(problems[:20])
        more = f" (+{len(problems) - 20} more)" if len(problems) > 20 else ""
        raise InvariantError(f"buddy invariants broken in {area!r}: {shown}{more}")
