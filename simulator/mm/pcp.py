"""struct per_cpu_pages (include/linux/mmzone.h, Linux 5.12): one per zone per CPU.

Three lists (one per pcp migratetype) of order-0 pages, a count, and the zone's `high` and
`batch` (mm/zone_setup.py computes them as zone_set_pageset_high_and_batch() does). Lists are
deques of pfns: index 0 is the list head (list_add puts pages there, __rmqueue_pcplist takes
them from there), the right end is the tail (rmqueue_bulk appends there, free_pcppages_bulk
takes from there).
"""

from __future__ import annotations

from collections import deque

from simulator.errors import InvariantError
from simulator.mm.mmzone import MIGRATE_PCPTYPES


class PerCpuPages:
    """`machine.node0.zone_normal.pcp.cpu7`."""

    __slots__ = (
        "scope",
        "cpu",
        "count",
        "high",
        "batch",
        "lists",
        "line",
        "stats_line",
        "refills",
        "drains",
        "refilled_pages",
        "drained_pages",
        "free_factor",
    )

    def __init__(self, scope: str, cpu: int, high: int, batch: int, line: int, stats_line: int) -> None:
        self.scope = scope
        self.cpu = cpu
        self.count = 0
        self.high = high
        self.batch = batch
        self.lists: list[deque[int]] = [deque() for _ in range(MIGRATE_PCPTYPES)]
        self.line = line  # count, high, batch and the three list heads: one cache line
        self.stats_line = stats_line  # vm_stat_diff / vm_numa_stat_diff of the pageset
        self.refills = 0  # rmqueue_bulk() calls on behalf of this pcp
        self.drains = 0  # free_pcppages_bulk() calls
        self.refilled_pages = 0
        self.drained_pages = 0
        # 5.14 (3b12e7e97938): drains grow x2 per drain without an allocation in between
        self.free_factor = 0

    def pages(self) -> int:
        """Pages on the lists (must equal count)."""
        return sum(len(lst) for lst in self.lists)


def check_pcp_consistent(pcp: PerCpuPages) -> None:
    """Invariant: pcp->count equals the pages on its lists."""
    if pcp.count != pcp.pages():
        raise InvariantError(f"{pcp.scope}: count {pcp.count} but {pcp.pages()} pages on the lists")
