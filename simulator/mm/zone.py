"""struct zone and struct pglist_data (include/linux/mmzone.h), and zonelists.

A Zone holds its buddy free areas (mm/buddy.py), its zone->lock, its per-CPU pagesets, its
vmstat counters and watermarks, and the cache-line ids of each of those so the cache model can
price them. Layout follows 5.12's struct zone: the read-mostly part (watermarks, lowmem_reserve)
first, then free_area[MAX_ORDER] starting on a fresh line, then `flags` and `lock` (which lands on
the line after free_area), then vm_stat[] on its own line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.machine.cache import LineRegistry
from simulator.machine.lock import SpinLock
from simulator.mm import buddy
from simulator.mm.mmzone import (
    FREE_AREA_SIZE,
    LIST_HEAD_SIZE,
    MAX_ORDER,
    NR_FREE_PAGES,
    NR_VM_ZONE_STAT_ITEMS,
    PAGEBLOCK_ORDER,
    WMARK_HIGH,
    WMARK_LOW,
    WMARK_MIN,
    ZONE_NAMES,
)
from simulator.mm.pcp import PerCpuPages

# Line ids of the pageblock-flags bitmap (the usemap): priced like struct page lines, sparse.
PAGEBLOCK_LINE_BASE = 1 << 44
PAGEBLOCKS_PER_LINE = 64 * 8 // 4  # NR_PAGEBLOCK_BITS = 4


@dataclass(frozen=True)
class ZoneLines:
    """Cache-line ids of one zone's shared fields."""

    read_mostly: int  # _watermark[], lowmem_reserve[], zone_pgdat...
    free_area: int  # first of ceil(MAX_ORDER * FREE_AREA_SIZE / 64) lines
    lock: int
    vm_stat: int

    def free_area_head(self, order: int, mt: int) -> int:
        return self.free_area + (order * FREE_AREA_SIZE + mt * LIST_HEAD_SIZE) // 64

    def free_area_nr_free(self, order: int) -> int:
        return self.free_area + (order * FREE_AREA_SIZE + FREE_AREA_SIZE - 8) // 64

    def pageblock_flags(self, pfn: int) -> int:
        return PAGEBLOCK_LINE_BASE + (pfn >> PAGEBLOCK_ORDER) // PAGEBLOCKS_PER_LINE


FREE_AREA_LINES = -(-MAX_ORDER * FREE_AREA_SIZE // 64)


class Zone:
    """One populated zone, e.g. `machine.node1.zone_normal`."""

    def __init__(
        self,
        *,
        node: int,
        zone_idx: int,
        start_pfn: int,
        spanned: int,
        present: int,
        managed: int,
        watermark: tuple[int, int, int],
        lowmem_reserve: list[int],
        pcp_high: int,
        pcp_batch: int,
        stat_threshold: int,
        ncpus: int,
        registry: LineRegistry,
    ) -> None:
        self.node = node
        self.zone_idx = zone_idx
        self.name = ZONE_NAMES[zone_idx]
        self.scope = f"machine.node{node}.zone_{self.name.lower()}"
        self.start_pfn = start_pfn
        self.end_pfn = start_pfn + spanned
        self.spanned = spanned
        self.present = present
        self.managed = managed
        self.watermark = list(watermark)
        self.lowmem_reserve = list(lowmem_reserve)
        self.nr_reserved_highatomic = 0
        self.reclaim_active = False  # ZONE_RECLAIM_ACTIVE (5.14): kswapd is balancing the node
        self.stat_threshold = stat_threshold
        self.lines = ZoneLines(
            read_mostly=registry.alloc(f"{self.scope}.read_mostly", node),
            free_area=registry.alloc(f"{self.scope}.free_area", node, FREE_AREA_LINES),
            lock=registry.alloc(f"{self.scope}.lock", node),
            vm_stat=registry.alloc(f"{self.scope}.vm_stat", node),
        )
        self.lock = SpinLock(f"{self.scope}.lock", self.lines.lock)
        # Managed pages are the low part of the zone; the reserved rest never reaches the buddy.
        self.free_area = buddy.FreeArea(start_pfn, start_pfn + spanned, self.lines)
        buddy.free_area_init_lazy(self.free_area, start_pfn, start_pfn + managed)
        self.vm_stat = [0] * NR_VM_ZONE_STAT_ITEMS
        self.vm_stat[NR_FREE_PAGES] = managed
        self.vm_stat_diff = [[0] * NR_VM_ZONE_STAT_ITEMS for _ in range(ncpus)]
        self.stat_folds = 0
        # pages held by a balloon (mm/balloon.py): (pfn, order) blocks out of the buddy
        self.balloon: list[tuple[int, int]] = []
        self.balloon_pages = 0
        self.pcp: list[PerCpuPages] = []
        for c in range(ncpus):
            pscope = f"{self.scope}.pcp.cpu{c}"
            self.pcp.append(
                PerCpuPages(
                    pscope,
                    c,
                    pcp_high,
                    pcp_batch,
                    registry.alloc(pscope, node),
                    registry.alloc(f"{pscope}.stats", node),
                )
            )

    def wmark_pages(self, which: int) -> int:
        return self.watermark[which]

    @property
    def min_wmark(self) -> int:
        return self.watermark[WMARK_MIN]

    @property
    def low_wmark(self) -> int:
        return self.watermark[WMARK_LOW]

    @property
    def high_wmark(self) -> int:
        return self.watermark[WMARK_HIGH]

    def pcp_pages(self) -> int:
        return sum(p.count for p in self.pcp)

    def contains(self, pfn: int) -> bool:
        return self.start_pfn <= pfn < self.end_pfn


@dataclass
class Node:
    """struct pglist_data: a NUMA node's zones and its fallback zonelist."""

    node_id: int
    scope: str
    zones: list[Zone] = field(default_factory=list)  # populated zones, lowest first
    zonelist: list[Zone] = field(default_factory=list)  # ZONELIST_FALLBACK

    def zone(self, zone_idx: int) -> Zone | None:
        for z in self.zones:
            if z.zone_idx == zone_idx:
                return z
        return None


def build_zonelists(nodes: list[Node], distances: list[list[int]]) -> None:
    """Mirrors build_zonelists(): nodes by distance (nearest first, then by id), each node's
    zones highest first. Leaves out the load-balancing tie-breaks of find_next_best_node()."""
    for node in nodes:
        order = sorted(range(len(nodes)), key=lambda j: (distances[node.node_id][j], j))
        node.zonelist = [z for j in order for z in sorted(nodes[j].zones, key=lambda z: -z.zone_idx)]
