"""A memory balloon: pages taken out of a zone's buddy in high-order blocks, and given back.

Like virtio_balloon (drivers/virtio/virtio_balloon.c) it holds memory nobody else can use, which
is how a scenario puts a zone near its watermarks ("free memory near min/low") without
simulating who really used that memory; a reclaim model can shrink it to stand for page cache
that kswapd or direct reclaim frees. Blocks are taken largest first, so holding gigabytes costs
a few thousand list entries, not one per page. Conservation: buddy + pcp + allocated + balloon
= managed, per zone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.mm import buddy
from simulator.mm.mmzone import MAX_ORDER, MIGRATE_MOVABLE, NR_FREE_PAGES

if TYPE_CHECKING:
    from simulator.mm.zone import Zone


def balloon_inflate(zone: Zone, pages: int) -> int:
    """Take up to `pages` free pages from `zone`'s buddy (largest blocks first); returns how
    many were taken. Not a kernel path: no cost is charged."""
    area = zone.free_area
    taken = 0
    order = MAX_ORDER - 1
    scratch: list[int] = []
    while taken < pages and order >= 0:
        if (1 << order) > pages - taken:
            order -= 1
            continue
        pfn = None
        for mt in (MIGRATE_MOVABLE, *[m for m in range(3) if m != MIGRATE_MOVABLE]):
            pfn = buddy.__rmqueue_smallest(area, order, mt, scratch)
            if pfn is not None:
                break
        scratch.clear()
        if pfn is None:
            order -= 1
            continue
        zone.balloon.append((pfn, order))
        taken += 1 << order
    zone.balloon_pages += taken
    zone.vm_stat[NR_FREE_PAGES] -= taken
    return taken


def balloon_deflate(zone: Zone, pages: int) -> int:
    """Give back exactly min(`pages`, held) pages to the buddy, most recent blocks first; a
    block larger than what is still wanted is split, its upper halves staying in the balloon
    (so a reclaim model can free SWAP_CLUSTER_MAX pages at a time). Returns how many went back."""
    area = zone.free_area
    freed = 0
    scratch: list[int] = []
    while freed < pages and zone.balloon:
        pfn, order = zone.balloon.pop()
        while (1 << order) > pages - freed:
            order -= 1
            zone.balloon.append((pfn + (1 << order), order))
        mt = buddy.get_pageblock_migratetype(area, pfn, scratch)
        buddy.__free_one_page(area, pfn, order, mt, buddy.FPI_NONE, scratch)
        scratch.clear()
        freed += 1 << order
    zone.balloon_pages -= freed
    zone.vm_stat[NR_FREE_PAGES] += freed
    return freed
