"""Constants of include/linux/mmzone.h and friends (x86-64, Linux 5.12, distro-typical config).

Config assumed: CONFIG_CMA=y and CONFIG_MEMORY_ISOLATION=y (so MIGRATE_TYPES is 6 and a
struct free_area is 6 list heads + nr_free = 104 bytes), 4 KiB pages, 64-byte struct page.
"""

from __future__ import annotations

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
MAX_ORDER = 11  # orders 0..10: the largest buddy block is 4 MiB
PAGEBLOCK_ORDER = 9  # HUGETLB_PAGE_ORDER on x86-64: 2 MiB pageblocks
PAGEBLOCK_NR_PAGES = 1 << PAGEBLOCK_ORDER

# enum migratetype
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3  # the number of types on the pcp lists
MIGRATE_HIGHATOMIC = MIGRATE_PCPTYPES
MIGRATE_CMA = 4
MIGRATE_ISOLATE = 5
MIGRATE_TYPES = 6
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")

# fallbacks[] in mm/page_alloc.c: which lists a migratetype may steal from, in order.
FALLBACKS = {
    MIGRATE_UNMOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_MOVABLE),
    MIGRATE_MOVABLE: (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE),
    MIGRATE_RECLAIMABLE: (MIGRATE_UNMOVABLE, MIGRATE_MOVABLE),
}

# enum zone_type (x86-64: no HIGHMEM)
ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
ZONE_MOVABLE = 3
MAX_NR_ZONES = 4
ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")

# enum zone_stat_item (the only zone counter the order-0 paths need)
NR_FREE_PAGES = 0
NR_VM_ZONE_STAT_ITEMS = 1

# enum zone_watermarks
WMARK_MIN = 0
WMARK_LOW = 1
WMARK_HIGH = 2

# Sizes in bytes of the structures whose cache lines the model prices.
STRUCT_PAGE_SIZE = 64
LIST_HEAD_SIZE = 16
FREE_AREA_SIZE = MIGRATE_TYPES * LIST_HEAD_SIZE + 8  # free_list[MIGRATE_TYPES] + nr_free
PAGEVEC_SIZE = 15  # include/linux/pagevec.h
