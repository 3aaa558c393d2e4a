"""Boot-time zone layout and per-zone numbers of Linux 5.12 on x86-64.

Pure functions: each computes what one boot-time kernel function leaves in struct zone (or in a
global such as min_free_kbytes), so that the simulator starts from the numbers a real 5.12 kernel
would show in /proc/zoneinfo for the same memory layout.

Kernel source read: no 5.12 tree with mm/ was at hand, so mm/page_alloc.c was read in a 5.11.4
tree (amwtkes/linux-5.11.4-back, commit 000866fdbab3c7928054e083ca3a35e48934f0ac), mm/vmstat.c
and mm/khugepaged.c in other trees whose versions of these functions match it, and the result
was bracketed with the patches that changed the functions before and after 5.12 (named in each
docstring). The 5.13 zone_set_pageset_high_and_batch(), seen as the removed side of the 5.14
patch that dropped percpu_pagelist_fraction, is identical to 5.11's.

The memory layout (x86_64_zone_layout) is a model, not the kernel's e820/memblock walk; its
assumptions are listed in that function's docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.mm.mmzone import (
    MAX_NR_ZONES,
    MIGRATE_PCPTYPES,
    PAGE_SHIFT,
    PAGE_SIZE,
    PAGEBLOCK_NR_PAGES,
    STRUCT_PAGE_SIZE,
    ZONE_DMA,
    ZONE_DMA32,
    ZONE_NAMES,
    ZONE_NORMAL,
)

if TYPE_CHECKING:
    from simulator.hardware import Hardware

# sysctl defaults of a 5.12 kernel (mm/page_alloc.c, mm/vmstat.c).
LOWMEM_RESERVE_RATIO = (256, 256, 32, 0)  # sysctl_lowmem_reserve_ratio[DMA, DMA32, Normal, Movable]
WATERMARK_SCALE_FACTOR = 10  # vm.watermark_scale_factor, in units of 1/10000 of the zone
MIN_FREE_KBYTES_FLOOR = 128
MIN_FREE_KBYTES_CEILING = 262144  # 256 MiB
MIN_PERCPU_PAGELIST_FRACTION = 8  # the sysctl handler refuses smaller nonzero fractions
STAT_THRESHOLD_MAX = 125  # the per-cpu diffs are s8 (max 127): a diff must fit before it folds

# x86-64 zone boundaries (arch/x86/mm/init.c zone_sizes_init()).
MAX_DMA_PFN = (16 << 20) >> PAGE_SHIFT  # ZONE_DMA ends at 16 MiB (ISA DMA)
MAX_DMA32_PFN = (4 << 30) >> PAGE_SHIFT  # ZONE_DMA32 ends at 4 GiB
FIRST_RAM_PFN = 1  # e820 hands page 0 to the BIOS, so memblock.memory starts at pfn 1

_PCP_BATCH_BYTES_MAX = 1 << 20  # zone_batchsize(): "no more than a meg"


# ---------------------------------------------------------------------------------------------
# Arithmetic helpers with the kernel's integer semantics
# ---------------------------------------------------------------------------------------------


def int_sqrt(x: int) -> int:
    """Mirrors int_sqrt() in lib/math/int_sqrt.c: floor(sqrt(x)) of an unsigned long.

    Leaves out: nothing (the kernel's bit-by-bit method and math.isqrt agree for all x >= 0).
    """
    if x < 0:
        raise ValueError(f"int_sqrt of a negative number: {x}")
    return math.isqrt(x)


def rounddown_pow_of_two(x: int) -> int:
    """Mirrors rounddown_pow_of_two() in include/linux/log2.h: the largest 2^k <= x.

    Leaves out: nothing; the kernel leaves x == 0 undefined, here it is a ValueError.
    """
    if x < 1:
        raise ValueError(f"rounddown_pow_of_two needs x >= 1, got {x}")
    return 1 << (x.bit_length() - 1)


def fls(x: int) -> int:
    """Mirrors fls() in include/asm-generic/bitops/fls.h: 1-based index of the top set bit.

    Leaves out: the 32-bit argument width (callers here never pass more than 2^31).
    """
    if x < 0:
        raise ValueError(f"fls of a negative number: {x}")
    return x.bit_length()


def mult_frac(x: int, numer: int, denom: int) -> int:
    """Mirrors mult_frac() in include/linux/kernel.h: x * numer / denom without the overflow.

    Leaves out: nothing; for non-negative integers it equals floor(x * numer / denom).
    """
    quot, rem = divmod(x, denom)
    return quot * numer + rem * numer // denom


# ---------------------------------------------------------------------------------------------
# Per-cpu page lists
# ---------------------------------------------------------------------------------------------


def zone_batchsize(managed_pages: int) -> int:
    """Mirrors zone_batchsize() in mm/page_alloc.c, v5.12 (CONFIG_MMU=y).

    Leaves out: the !CONFIG_MMU variant, which returns 0.

    Any zone of 1 GiB or more gives 63; a 16 MiB ZONE_DMA gives 0.
    """
    batch = managed_pages // 1024  # ~0.1% of the zone
    if batch * PAGE_SIZE > _PCP_BATCH_BYTES_MAX:
        batch = _PCP_BATCH_BYTES_MAX // PAGE_SIZE
    batch //= 4  # the result is scaled back up by ~1.5 below and by 6 for pcp->high
    batch = max(batch, 1)
    # 2^n - 1 rather than 2^n: two tasks alternately refilling power-of-two batches were found
    # to split the page colours between them (the kernel comment's cache-aliasing argument).
    return rounddown_pow_of_two(batch + batch // 2) - 1


def pcp_high_and_batch(managed_pages: int, percpu_pagelist_fraction: int = 0) -> tuple[int, int]:
    """Mirrors zone_set_pageset_high_and_batch() in mm/page_alloc.c, v5.12: (pcp->high, pcp->batch).

    Leaves out: the per-CPU stores and the pageset_high/pageset_batch cache that skips them.

    5.10 computed the same numbers in pageset_set_high_and_batch() via pageset_set_high() and
    pageset_set_batch(); 5.11 folded them into this function unchanged. 5.14 replaced
    "high = 6 * batch" with zone_highsize() (scaled by zone size and CPUs) and the
    percpu_pagelist_fraction sysctl with percpu_pagelist_high_fraction, so neither applies here.
    """
    if percpu_pagelist_fraction:
        if percpu_pagelist_fraction < MIN_PERCPU_PAGELIST_FRACTION:
            raise ValueError(
                f"percpu_pagelist_fraction must be 0 or >= {MIN_PERCPU_PAGELIST_FRACTION}, "
                f"got {percpu_pagelist_fraction} (the 5.12 sysctl handler returns -EINVAL)"
            )
        high = managed_pages // percpu_pagelist_fraction
        batch = max(1, high // 4)
        # A huge high must not turn into a huge batch: one batch is moved with zone->lock held.
        if high // 4 > PAGE_SHIFT * 8:
            batch = PAGE_SHIFT * 8
        return high, batch
    batch = zone_batchsize(managed_pages)
    # high is derived before batch is raised to 1, so a tiny zone (ZONE_DMA) gets high 0:
    # every freed page goes straight back to the buddy lists.
    high = 6 * batch
    return high, max(1, batch)


# ---------------------------------------------------------------------------------------------
# Watermarks and reserves
# ---------------------------------------------------------------------------------------------


def init_per_zone_wmark_min(lowmem_kbytes: int) -> int:
    """Mirrors init_per_zone_wmark_min() in mm/page_alloc.c, v5.12: the new min_free_kbytes.

    Leaves out: a min_free_kbytes set by the user (user_min_free_kbytes), and the calls to the
    setup functions below, which the caller makes. khugepaged raises the result later: see
    set_recommended_min_free_kbytes().

    4 * sqrt(lowmem_kbytes), clamped to [128 KiB, 256 MiB]: e.g. 16 GiB of lowmem gives 16384.
    """
    min_free = int_sqrt(lowmem_kbytes * 16)
    return min(max(min_free, MIN_FREE_KBYTES_FLOOR), MIN_FREE_KBYTES_CEILING)


def set_recommended_min_free_kbytes(
    nr_lowmem_zones: int, nr_free_buffer_pages: int, min_free_kbytes: int
) -> int:
    """Mirrors set_recommended_min_free_kbytes() in mm/khugepaged.c, v5.12: the raised value.

    Leaves out: the follow-up setup_per_zone_wmarks() call and the log message.

    khugepaged runs this when it starts (THP "always" or "madvise", the distro defaults), after
    init_per_zone_wmark_min(); on a 3-zone machine it raises min_free_kbytes to 67584 whenever
    lowmem exceeds ~1.3 GiB. nr_lowmem_zones counts populated zones at or below ZONE_NORMAL;
    nr_free_buffer_pages is taken with the watermarks already set.
    """
    # Two free pageblocks per zone, plus MIGRATE_PCPTYPES^2 so each type has a fallback block.
    recommended = PAGEBLOCK_NR_PAGES * nr_lowmem_zones * 2
    recommended += PAGEBLOCK_NR_PAGES * nr_lowmem_zones * MIGRATE_PCPTYPES * MIGRATE_PCPTYPES
    recommended = min(recommended, nr_free_buffer_pages // 20)  # never more than 5% of lowmem
    recommended <<= PAGE_SHIFT - 10
    return max(recommended, min_free_kbytes)


def setup_per_zone_wmarks(
    managed: list[int], min_free_kbytes: int, watermark_scale_factor: int = WATERMARK_SCALE_FACTOR
) -> list[tuple[int, int, int]]:
    """Mirrors __setup_per_zone_wmarks() in mm/page_alloc.c, v5.12: (min, low, high) per zone.

    Leaves out: the ZONE_HIGHMEM branch (no highmem on x86-64), watermark_boost (reset to 0
    here) and calculate_totalreserve_pages().

    `managed` is every zone of every node in for_each_zone order (node 0's DMA..Movable, then
    node 1's, ...). Later kernels leave ZONE_MOVABLE out of lowmem_pages; 5.12 counts it, which
    makes no difference while ZONE_MOVABLE is empty.
    """
    pages_min = min_free_kbytes >> (PAGE_SHIFT - 10)
    lowmem_pages = sum(managed)
    out = []
    for zone_managed in managed:
        # The kernel would divide by zero with no lowmem at all; such a machine cannot boot.
        wmark_min = pages_min * zone_managed // lowmem_pages if lowmem_pages else 0
        # The min->low->high gaps follow watermark_scale_factor of the zone, not min_free_kbytes,
        # so big zones get kswapd headroom even though min grows only with sqrt(memory).
        tmp = max(wmark_min >> 2, mult_frac(zone_managed, watermark_scale_factor, 10000))
        out.append((wmark_min, wmark_min + tmp, wmark_min + 2 * tmp))
    return out


def setup_per_zone_lowmem_reserve(
    node_managed: list[int], ratios: tuple[int, ...] = LOWMEM_RESERVE_RATIO
) -> list[list[int]]:
    """Mirrors setup_per_zone_lowmem_reserve() in mm/page_alloc.c, v5.12, for one node.

    Leaves out: calculate_totalreserve_pages().

    Returns reserve[i][j]: the pages an allocation whose highest allowed zone is j must leave in
    zone i (zone->lowmem_reserve[j] of zone i); entries with j <= i are 0. reserve[i][j] is the
    managed pages of zones i+1..j divided by ratios[i], or 0 when ratios[i] is 0 or zone i has
    no managed pages. 5.10 computed the same sums walking down from each upper zone; Lorenzo
    Stoakes' 5.11 refactor walks up from each lower zone (same result for these ratios). An
    empty upper zone is not special-cased in 5.12: ZONE_MOVABLE's column repeats ZONE_NORMAL's.
    (Commit 96a5c186efff zeroed those columns in 6.x and was reverted in 2025.)
    """
    n = len(node_managed)
    if len(ratios) != n:
        raise ValueError(f"need one lowmem_reserve ratio per zone: {n} zones, {len(ratios)} ratios")
    reserve = [[0] * n for _ in range(n)]
    for i in range(n - 1):
        ratio = ratios[i]
        clear = not ratio or not node_managed[i]
        upper_managed = 0
        for j in range(i + 1, n):
            upper_managed += node_managed[j]
            reserve[i][j] = 0 if clear else upper_managed // ratio
    return reserve


# ---------------------------------------------------------------------------------------------
# vmstat per-cpu counter thresholds
# ---------------------------------------------------------------------------------------------


def calculate_normal_threshold(managed_pages: int, online_cpus: int) -> int:
    """Mirrors calculate_normal_threshold() in mm/vmstat.c, v5.12: the per-cpu counter threshold.

    Leaves out: nothing; refresh_zone_stat_thresholds() applies it to every online CPU.

    Unchanged since 3.x apart from present_pages -> managed_pages; the sample table in the
    kernel comment predates that and does not all match the formula.
    """
    mem = managed_pages >> (27 - PAGE_SHIFT)  # zone size in 128 MiB units
    # fls() makes both terms logarithmic: more CPUs contend more on the zone counter, a bigger
    # zone tolerates more drift.
    threshold = 2 * fls(online_cpus) * (1 + fls(mem))
    return min(STAT_THRESHOLD_MAX, threshold)


def calculate_pressure_threshold(*, low_wmark: int, min_wmark: int, online_cpus: int) -> int:
    """Mirrors calculate_pressure_threshold() in mm/vmstat.c, v5.12: the threshold under kswapd.

    Leaves out: nothing. Keyword-only because the kernel reads num_online_cpus(), not the zone's
    size: (low - min) / online_cpus, at least 1, at most 125.
    """
    # While kswapd runs, the drift of all CPUs together must not hide a breach of min.
    threshold = max(1, (low_wmark - min_wmark) // online_cpus)
    return min(STAT_THRESHOLD_MAX, threshold)


# ---------------------------------------------------------------------------------------------
# Zone layout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneSpan:
    """One struct zone's extent: what free_area_init() and memblock_free_all() leave in it."""

    node: int
    zone_type: int
    name: str
    start_pfn: int
    spanned_pages: int
    present_pages: int
    managed_pages: int

    @property
    def end_pfn(self) -> int:
        return self.start_pfn + self.spanned_pages

    @property
    def populated(self) -> bool:
        """populated_zone(): the zone has present pages (and so gets per-cpu pagesets)."""
        return self.present_pages > 0


def _pages_up(nbytes: int) -> int:
    return -(-nbytes // PAGE_SIZE)


def x86_64_zone_layout(node_memory: list[int], below_4g: int, reserved: int) -> list[list[ZoneSpan]]:
    """Mirrors free_area_init() in mm/page_alloc.c, v5.12, fed by x86-64's zone_sizes_init(),
    plus the managed_pages that memblock_free_all() leaves behind.

    Leaves out: the real e820 map (holes such as 640 KiB-1 MiB), ZONE_MOVABLE sizing
    (kernelcore=/movablecore=), SPARSEMEM section rounding and every boot allocation other than
    the memmap and `reserved`.

    Model assumptions:
    - node_memory[i] bytes of RAM on node i; RAM has no holes except the 32-bit PCI hole.
    - Node 0's RAM starts at physical 0 but pfn 0 belongs to the BIOS, so it starts at pfn 1.
      Its first min(below_4g, node_memory[0]) bytes lie below 4 GiB: ZONE_DMA is pfns
      [1, 4096) (below 16 MiB), ZONE_DMA32 the rest of that; the remainder of node 0 is
      ZONE_NORMAL from 4 GiB up.
    - Node i > 0 is ZONE_NORMAL only, starting where node i-1's memory ended (never below 4 GiB).
    - ZONE_MOVABLE is always empty, but listed, so each node has MAX_NR_ZONES entries in
      zone_type order (pgdat->node_zones). An empty zone has start_pfn 0, as the kernel sets it.
    - spanned == present (no holes inside a zone).
    - managed = present minus the node's memmap (STRUCT_PAGE_SIZE bytes per present page,
      rounded up to whole pages) and, on node 0, `reserved` bytes rounded up to pages (kernel
      image, firmware tables). memblock allocates top-down, so both come out of the node's
      highest populated zone, spilling into the next lower zone if that one runs out.
    """
    if not node_memory:
        raise ValueError("need at least one node")
    if any(m < 0 for m in node_memory) or below_4g < 0 or reserved < 0:
        raise ValueError("memory sizes must be non-negative")
    if below_4g > MAX_DMA32_PFN << PAGE_SHIFT:
        raise ValueError("below_4g cannot exceed 4 GiB")

    layout: list[list[ZoneSpan]] = []
    prev_end_pfn = 0
    for nid, mem in enumerate(node_memory):
        ranges = [(0, 0)] * MAX_NR_ZONES  # [start, end) pfns per zone type
        if nid == 0:
            low_bytes = min(below_4g, mem)
            low_end = low_bytes >> PAGE_SHIFT
            ranges[ZONE_DMA] = (FIRST_RAM_PFN, min(MAX_DMA_PFN, low_end))
            ranges[ZONE_DMA32] = (MAX_DMA_PFN, low_end)
            high_pages = (mem - low_bytes) >> PAGE_SHIFT
            ranges[ZONE_NORMAL] = (MAX_DMA32_PFN, MAX_DMA32_PFN + high_pages)
        else:
            start = max(prev_end_pfn, MAX_DMA32_PFN)
            ranges[ZONE_NORMAL] = (start, start + (mem >> PAGE_SHIFT))

        sizes = [max(0, end - start) for start, end in ranges]
        starts = [start if size else 0 for (start, _), size in zip(ranges, sizes, strict=True)]
        managed = list(sizes)
        present_total = sum(sizes)
        deduct = _pages_up(present_total * STRUCT_PAGE_SIZE)
        if nid == 0:
            deduct += _pages_up(reserved)
        for zt in reversed(range(MAX_NR_ZONES)):
            take = min(deduct, managed[zt])
            managed[zt] -= take
            deduct -= take

        layout.append(
            [
                ZoneSpan(
                    node=nid,
                    zone_type=zt,
                    name=ZONE_NAMES[zt],
                    start_pfn=starts[zt],
                    spanned_pages=sizes[zt],
                    present_pages=sizes[zt],
                    managed_pages=managed[zt],
                )
                for zt in range(MAX_NR_ZONES)
            ]
        )
        ends = [start + size for start, size in zip(starts, sizes, strict=True) if size]
        if ends:
            prev_end_pfn = max(ends)
    return layout


# ---------------------------------------------------------------------------------------------
# Everything together, for one hardware file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneInfo:
    """One populated zone as /proc/zoneinfo of a freshly booted 5.12 kernel would show it."""

    node: int
    zone_type: int
    name: str
    start_pfn: int
    spanned_pages: int
    present_pages: int
    managed_pages: int
    wmark_min: int
    wmark_low: int
    wmark_high: int
    lowmem_reserve: tuple[int, ...]  # "protection:" — indexed by the allocation's highest zone
    pcp_high: int
    pcp_batch: int
    stat_threshold: int  # calculate_normal_threshold(): the value outside of kswapd runs
    pressure_threshold: int  # calculate_pressure_threshold(): the value while kswapd runs

    @property
    def watermarks(self) -> tuple[int, int, int]:
        """_watermark[WMARK_MIN, WMARK_LOW, WMARK_HIGH]."""
        return (self.wmark_min, self.wmark_low, self.wmark_high)


@dataclass(frozen=True)
class BootNumbers:
    """The boot-time globals and every populated zone, in for_each_populated_zone order."""

    min_free_kbytes: int
    lowmem_kbytes: int  # nr_free_buffer_pages() * 4 when init_per_zone_wmark_min() ran
    online_cpus: int
    zones: tuple[ZoneInfo, ...]

    def zone(self, node: int, zone_type: int) -> ZoneInfo:
        for z in self.zones:
            if z.node == node and z.zone_type == zone_type:
                return z
        raise KeyError(f"node {node} has no populated {ZONE_NAMES[zone_type]} zone")

    def node_zones(self, node: int) -> list[ZoneInfo]:
        return [z for z in self.zones if z.node == node]


def zone_highsize(low_wmark: int, batch: int, node_cpus: int, online_cpus: int) -> int:
    """Mirrors zone_highsize() in mm/page_alloc.c, v5.14 (commits b92ca18e8ca5, 04f8cfeaed08),
    at steady state (no CPU coming online; percpu_pagelist_high_fraction 0): the zone's low
    watermark split over the CPUs of its node, at least 4 batches.

    Leaves out: the sysctl percpu_pagelist_high_fraction."""
    nr_split_cpus = node_cpus or online_cpus
    return max(low_wmark // nr_split_cpus, batch << 2)


def boot_numbers(
    hw: Hardware,
    *,
    thp: bool = False,
    watermark_scale_factor: int = WATERMARK_SCALE_FACTOR,
    percpu_pagelist_fraction: int = 0,
    pcp_high: str = "batch",
) -> BootNumbers:
    """Mirrors the boot sequence free_area_init() -> memblock_free_all() -> setup_per_cpu_pageset()
    -> init_per_zone_wmark_min() (setup_per_zone_wmarks(), refresh_zone_stat_thresholds(),
    setup_per_zone_lowmem_reserve()) of Linux 5.12, for one hardware description.

    Leaves out: memory hotplug and sysctl writes after boot; with thp=True, khugepaged's
    set_recommended_min_free_kbytes() is applied (real distro kernels do this), otherwise not.
    pcp_high="zone_highsize" sizes pcp->high as 5.14 does (zone_highsize()); "batch" as 5.12.
    """
    layout = x86_64_zone_layout([n.memory for n in hw.topology.nodes], hw.memory.below_4g, hw.memory.reserved)
    flat = [z for node in layout for z in node]
    online_cpus = hw.ncpus

    # nr_free_buffer_pages() sums managed - high over zones up to ZONE_NORMAL in the (all-node)
    # fallback zonelist; on this first call every high watermark is still 0.
    lowmem_zones = [z for z in flat if z.zone_type <= ZONE_NORMAL and z.managed_pages]
    lowmem_kbytes = sum(z.managed_pages for z in lowmem_zones) << (PAGE_SHIFT - 10)
    min_free_kbytes = init_per_zone_wmark_min(lowmem_kbytes)
    managed = [z.managed_pages for z in flat]
    wmarks = setup_per_zone_wmarks(managed, min_free_kbytes, watermark_scale_factor)

    if thp:
        high_of = {(z.node, z.zone_type): wmarks[k][2] for k, z in enumerate(flat)}
        free_buffer_pages = sum(
            max(0, z.managed_pages - high_of[(z.node, z.zone_type)]) for z in lowmem_zones
        )
        nr_lowmem_zones = sum(1 for z in flat if z.zone_type <= ZONE_NORMAL and z.populated)
        min_free_kbytes = set_recommended_min_free_kbytes(nr_lowmem_zones, free_buffer_pages, min_free_kbytes)
        wmarks = setup_per_zone_wmarks(managed, min_free_kbytes, watermark_scale_factor)

    reserves = [setup_per_zone_lowmem_reserve([z.managed_pages for z in node]) for node in layout]

    zones = []
    for k, z in enumerate(flat):
        if not z.populated:
            continue
        wmin, wlow, whigh = wmarks[k]
        high, batch = pcp_high_and_batch(z.managed_pages, percpu_pagelist_fraction)
        if pcp_high == "zone_highsize":
            node_cpus = len(hw.topology.nodes[z.node].cpus)
            batch = max(1, zone_batchsize(z.managed_pages))
            high = zone_highsize(wlow, batch, node_cpus, online_cpus)
        zones.append(
            ZoneInfo(
                node=z.node,
                zone_type=z.zone_type,
                name=z.name,
                start_pfn=z.start_pfn,
                spanned_pages=z.spanned_pages,
                present_pages=z.present_pages,
                managed_pages=z.managed_pages,
                wmark_min=wmin,
                wmark_low=wlow,
                wmark_high=whigh,
                lowmem_reserve=tuple(reserves[z.node][z.zone_type]),
                pcp_high=high,
                pcp_batch=batch,
                stat_threshold=calculate_normal_threshold(z.managed_pages, online_cpus),
                pressure_threshold=calculate_pressure_threshold(
                    low_wmark=wlow, min_wmark=wmin, online_cpus=online_cpus
                ),
            )
        )
    return BootNumbers(
        min_free_kbytes=min_free_kbytes,
        lowmem_kbytes=lowmem_kbytes,
        online_cpus=online_cpus,
        zones=tuple(zones),
    )


def boot_zone_numbers(hw: Hardware, *, thp: bool = False) -> list[ZoneInfo]:
    """Every populated zone of `hw` after a 5.12 boot; see boot_numbers() for the globals.

    Leaves out: what boot_numbers() leaves out.
    """
    return list(boot_numbers(hw, thp=thp).zones)


def check_node_memory(hw: Hardware, *, thp: bool = False) -> list[str]:
    """One message per node too small to run the allocator model: its ZONE_NORMAL (or its highest
    populated zone) must have more managed pages than its high watermark plus a full pcp list
    (pcp->high) on every CPU of the node. Not a kernel function: the kernel boots such a node
    and reclaims at once.

    Leaves out: nothing else is checked; the loader turns these messages into errors.
    """
    nums = boot_numbers(hw, thp=thp)
    messages = []
    for nid, node in enumerate(hw.topology.nodes):
        zones = nums.node_zones(nid)
        if not zones:
            messages.append(
                f"node {nid}: {node.memory} bytes of memory leave no populated zone "
                f"(a node needs at least one {PAGE_SIZE}-byte page beyond its memmap)"
            )
            continue
        normal = [z for z in zones if z.zone_type == ZONE_NORMAL]
        zone = normal[0] if normal else max(zones, key=lambda z: z.zone_type)
        ncpus = len(node.cpus)
        needed = zone.wmark_high + zone.pcp_high * ncpus
        if zone.managed_pages <= needed:
            messages.append(
                f"node {nid}: zone {zone.name} has {zone.managed_pages} managed pages "
                f"({zone.managed_pages * PAGE_SIZE >> 20} MiB), not more than its high watermark "
                f"({zone.wmark_high}) plus pcp high ({zone.pcp_high}) x {ncpus} CPUs = {needed} "
                f"pages: give node {nid} more memory"
            )
    return messages
