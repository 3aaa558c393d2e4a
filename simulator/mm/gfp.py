"""GFP masks and ALLOC_* flags (include/linux/gfp.h, mm/internal.h, Linux 5.12).

A GFP mask is modelled by the properties the order-0 paths read, not by its bits.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.mm.mmzone import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, ZONE_NORMAL

# mm/internal.h
ALLOC_WMARK_MIN = 0
ALLOC_WMARK_LOW = 1
ALLOC_WMARK_HIGH = 2
ALLOC_NO_WATERMARKS = 0x04
ALLOC_WMARK_MASK = ALLOC_NO_WATERMARKS - 1
ALLOC_HARDER = 0x10
ALLOC_HIGH = 0x20
ALLOC_CPUSET = 0x40
ALLOC_CMA = 0x80
ALLOC_NOFRAGMENT = 0x100
ALLOC_KSWAPD = 0x800


@dataclass(frozen=True)
class Gfp:
    """A gfp_t, by what the allocator does with it."""

    name: str
    high: bool  # __GFP_HIGH: may dip below the min watermark (ALLOC_HIGH)
    atomic: bool  # __GFP_ATOMIC: cannot sleep, ALLOC_HARDER
    direct_reclaim: bool  # __GFP_DIRECT_RECLAIM: may reclaim and sleep
    kswapd_reclaim: bool  # __GFP_KSWAPD_RECLAIM: wakes kswapd
    migratetype: int = MIGRATE_UNMOVABLE  # gfp_migratetype(): no __GFP_MOVABLE/RECLAIMABLE
    highest_zoneidx: int = ZONE_NORMAL  # gfp_zone(): no zone modifier
    zero: bool = False  # __GFP_ZERO: post_alloc_hook clears the page (kernel_init_free_pages)


GFP_ATOMIC = Gfp("GFP_ATOMIC", high=True, atomic=True, direct_reclaim=False, kswapd_reclaim=True)
GFP_KERNEL = Gfp("GFP_KERNEL", high=False, atomic=False, direct_reclaim=True, kswapd_reclaim=True)
GFP_NOWAIT = Gfp("GFP_NOWAIT", high=False, atomic=False, direct_reclaim=False, kswapd_reclaim=True)
# A user page fault's allocation (alloc_zeroed_user_highpage_movable, arch/x86/include/asm/page.h:
# GFP_HIGHUSER_MOVABLE | __GFP_ZERO). __GFP_HIGHMEM | __GFP_MOVABLE make gfp_zone() ZONE_MOVABLE,
# which is empty unless movablecore= is given: the zonelist walk then stops at ZONE_NORMAL, as here.
GFP_HIGHUSER_MOVABLE_ZERO = Gfp(
    "GFP_HIGHUSER_MOVABLE|__GFP_ZERO",
    high=False,
    atomic=False,
    direct_reclaim=True,
    kswapd_reclaim=True,
    migratetype=MIGRATE_MOVABLE,
    zero=True,
)
# A user page table's page (pte_alloc_one: GFP_PGTABLE_USER = GFP_KERNEL | __GFP_ACCOUNT | __GFP_ZERO)
GFP_PGTABLE_USER = Gfp(
    "GFP_PGTABLE_USER", high=False, atomic=False, direct_reclaim=True, kswapd_reclaim=True, zero=True
)
GFP_MASKS = {g.name: g for g in (GFP_ATOMIC, GFP_KERNEL, GFP_NOWAIT)}


def gfp_to_alloc_flags(gfp: Gfp) -> int:
    """Mirrors gfp_to_alloc_flags(): the slow path's flags (min watermark, HIGH, HARDER)."""
    flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    if gfp.high:
        flags |= ALLOC_HIGH
    if gfp.kswapd_reclaim:
        flags |= ALLOC_KSWAPD
    if gfp.atomic:
        flags |= ALLOC_HARDER
        flags &= ~ALLOC_CPUSET
    return flags
