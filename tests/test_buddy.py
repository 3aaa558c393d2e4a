"""Tests of simulator/mm/buddy.py: the buddy allocator of one zone (Linux 5.12 semantics)."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from simulator.errors import InvariantError
from simulator.machine.cache import ASYNC
from simulator.mm import buddy
from simulator.mm.buddy import (
    ALLOC_NOFRAGMENT,
    FPI_NONE,
    FPI_TO_TAIL,
    FreeArea,
    FreeAreaLines,
    check_invariants,
    free_area_init_lazy,
    free_blocks,
    get_pageblock_migratetype,
)
from simulator.mm.buddy import __free_one_page as free_one_page_locked
from simulator.mm.buddy import __rmqueue as rmqueue
from simulator.mm.buddy import __rmqueue_smallest as rmqueue_smallest
from simulator.mm.mmzone import (
    FREE_AREA_SIZE,
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_PCPTYPES,
    MIGRATE_RECLAIMABLE,
    MIGRATE_TYPES,
    MIGRATE_UNMOVABLE,
    PAGEBLOCK_ORDER,
)

LINE_BASE = 1 << 50
LINES = FreeAreaLines(base=LINE_BASE)
TOP = MAX_ORDER - 1


def make_zone(start: int, end: int) -> FreeArea:
    area = FreeArea(start, end, LINES)
    free_area_init_lazy(area, start, end)
    check_invariants(area)
    return area


def alloc(area: FreeArea, order: int, mt: int = MIGRATE_MOVABLE, flags: int = 0) -> int | None:
    return rmqueue(area, order, mt, flags, [])


def free(area: FreeArea, pfn: int, order: int, fpi: int = FPI_NONE) -> None:
    mt = get_pageblock_migratetype(area, pfn, [])
    free_one_page_locked(area, pfn, order, mt, fpi, [])


def list_of(area: FreeArea, order: int, mt: int) -> list[int]:
    return [pfn for pfn, o, m in free_blocks(area) if o == order and m == mt]


def maximal_blocks(start: int, end: int) -> set[tuple[int, int]]:
    """The largest naturally aligned blocks (capped at MAX_ORDER-1) covering [start, end)."""
    out = set()
    pfn = start
    while pfn < end:
        order = TOP if pfn == 0 else min(TOP, (pfn & -pfn).bit_length() - 1)
        while pfn + (1 << order) > end:
            order -= 1
        out.add((pfn, order))
        pfn += 1 << order
    return out


# ---------------------------------------------------------------------------------------
# Line ids


def test_free_area_lines_layout() -> None:
    assert FREE_AREA_SIZE == 104
    assert LINES.free_area_head(0, 0) == LINE_BASE
    assert LINES.free_area_head(0, 3) == LINE_BASE  # bytes 48..63
    assert LINES.free_area_head(0, 4) == LINE_BASE + 1  # bytes 64..79
    assert LINES.free_area_nr_free(0) == LINE_BASE + 1  # byte 96
    assert LINES.free_area_head(1, 0) == LINE_BASE + 1  # byte 104
    assert LINES.free_area_nr_free(10) == LINE_BASE + (10 * 104 + 96) // 64
    pb0 = LINES.pageblock_flags(0)
    assert pb0 > LINES.free_area_nr_free(10)  # the bitmap follows the free_area array
    # 4 bits per pageblock: 128 pageblocks (2^16 pages) per 64-byte line
    assert LINES.pageblock_flags((128 << PAGEBLOCK_ORDER) - 1) == pb0
    assert LINES.pageblock_flags(128 << PAGEBLOCK_ORDER) == pb0 + 1
    assert FreeAreaLines(base=0, pageblock_base=7).pageblock_flags(1 << 16) == 8


def test_touch_log_of_a_simple_allocation() -> None:
    area = make_zone(0, 1 << TOP)
    touched: list[int] = []
    pfn = rmqueue(area, 0, MIGRATE_MOVABLE, 0, touched)
    assert pfn == 0
    head10 = LINES.free_area_head(TOP, MIGRATE_MOVABLE)
    assert touched[0] == LINES.free_area_head(0, MIGRATE_MOVABLE)  # first list looked at
    assert head10 in touched and LINES.free_area_nr_free(TOP) in touched
    # expand() wrote every new block's struct page (a store nothing waits for: ASYNC) and its
    # list head
    for order in range(TOP):
        assert (1 << order) | ASYNC in touched
        assert LINES.free_area_head(order, MIGRATE_MOVABLE) in touched
    assert all(isinstance(x, int) for x in touched)
    # freeing reads the buddy's struct page first
    touched.clear()
    free_one_page_locked(area, 0, 0, MIGRATE_MOVABLE, FPI_NONE, touched)
    assert touched[0] == 1


# ---------------------------------------------------------------------------------------
# Hand-worked cases


def test_split_order10_gives_ascending_pfns_and_merges_back() -> None:
    area = make_zone(0, 1 << TOP)
    assert area.nr_free == [0] * TOP + [1]
    first = alloc(area, 0)
    assert first == 0
    # expand() left one block of each lower order: pfn 2^k at order k, all MOVABLE
    assert area.nr_free == [1] * TOP + [0]
    assert {(p, o) for p, o, _ in free_blocks(area)} == {(1 << k, k) for k in range(TOP)}
    got = [first] + [alloc(area, 0) for _ in range((1 << TOP) - 1)]
    assert got == list(range(1 << TOP))
    assert alloc(area, 0) is None
    assert area.nr_free_pages == 0
    check_invariants(area)
    for pfn in got:
        free(area, pfn, 0)
    check_invariants(area)
    assert list(free_blocks(area)) == [(0, TOP, MIGRATE_MOVABLE)]
    assert area.nr_free_pages == 1 << TOP


def test_higher_order_split_and_merge() -> None:
    area = make_zone(0, 1 << TOP)
    a = alloc(area, 3)
    b = alloc(area, 3)
    c = alloc(area, 1)
    assert (a, b, c) == (0, 8, 16)
    check_invariants(area)
    free(area, b, 3)
    free(area, a, 3)  # merges with b into an order-4 block at 0
    assert 0 in list_of(area, 4, MIGRATE_MOVABLE)
    free(area, c, 1)
    assert list(free_blocks(area)) == [(0, TOP, MIGRATE_MOVABLE)]


def test_buddy_merge_likely_puts_block_at_the_tail() -> None:
    area = make_zone(0, 1 << TOP)
    for want in range(6):
        assert alloc(area, 0) == want
    # free blocks now: 6 (order 1), 8 (order 3), 16, 32, ... 512
    free(area, 2, 0)  # buddy 3 in use, next-order buddy 0 in use: head
    assert list_of(area, 0, MIGRATE_MOVABLE) == [2]
    free(area, 4, 0)  # buddy 5 in use, but next-order buddy 6 is free: tail
    assert list_of(area, 0, MIGRATE_MOVABLE) == [2, 4]
    free(area, 0, 0)  # next-order buddy 2 is free only at order 0: head
    assert list_of(area, 0, MIGRATE_MOVABLE) == [0, 2, 4]
    check_invariants(area)


def test_fpi_to_tail_and_lazy_list_order() -> None:
    area = make_zone(0, 4 << TOP)
    assert area.lazy_hi - area.lazy_lo == 4 << TOP and area.nr_free[TOP] == 4
    assert alloc(area, TOP) == 0
    assert alloc(area, TOP) == 1024
    check_invariants(area)
    free(area, 0, TOP, FPI_TO_TAIL)  # behind the lazy blocks
    free(area, 1024, TOP)  # order-10 blocks go to the head (no merge_likely check)
    assert list_of(area, TOP, MIGRATE_MOVABLE) == [1024, 2048, 3072, 0]
    check_invariants(area)
    assert [alloc(area, TOP) for _ in range(4)] == [1024, 2048, 3072, 0]
    assert alloc(area, 0) is None
    assert area.lazy_lo == area.lazy_hi
    check_invariants(area)


def test_boot_edges_are_materialised_in_ascending_order() -> None:
    start, end = (1 << 20) + 3, (1 << 20) + (5 << TOP) + 700
    area = make_zone(start, end)
    assert {(p, o) for p, o, _ in free_blocks(area)} == maximal_blocks(start, end)
    assert area.nr_free_pages == end - start
    # the unaligned head pageblock keeps the zeroed bitmap value (UNMOVABLE), as
    # memmap_init_zone() only marks aligned pfns MOVABLE; its blocks went to UNMOVABLE lists
    assert get_pageblock_migratetype(area, start, []) == MIGRATE_UNMOVABLE
    assert get_pageblock_migratetype(area, start + 512, []) == MIGRATE_MOVABLE
    assert area.nr_free_mt[MIGRATE_UNMOVABLE] == 512 - 3
    assert area.nr_free_mt[MIGRATE_MOVABLE] == end - start - (512 - 3)
    assert list_of(area, 0, MIGRATE_UNMOVABLE) == [start]
    # lazy range: the four order-10 blocks between the edges
    assert (area.lazy_hi - area.lazy_lo) >> TOP == 4


def test_unmovable_request_steals_whole_movable_pageblocks() -> None:
    area = make_zone(0, 1 << TOP)
    pfn = alloc(area, 0, MIGRATE_UNMOVABLE)
    assert pfn == 0
    # an order-10 block spans two pageblocks: change_pageblock_range() claimed both
    assert area.pageblock_mt == {0: MIGRATE_UNMOVABLE, 1: MIGRATE_UNMOVABLE}
    assert area.nr_free_mt[MIGRATE_UNMOVABLE] == (1 << TOP) - 1
    assert area.nr_free_mt[MIGRATE_MOVABLE] == 0
    check_invariants(area)
    # the next UNMOVABLE allocations come from the claimed block, in order
    assert [alloc(area, 0, MIGRATE_UNMOVABLE) for _ in range(3)] == [1, 2, 3]


def test_unmovable_steal_below_pageblock_order_moves_the_pageblock() -> None:
    area = make_zone(0, 1 << PAGEBLOCK_ORDER)
    assert alloc(area, 0) == 0  # MOVABLE; free: 1, 2, 4, ..., 256 (orders 0..8)
    pfn = alloc(area, 0, MIGRATE_UNMOVABLE)
    # largest fallback block is 256 (order 8); move_freepages_block() moved all 511 free
    # pages of the pageblock, free + alike >= half a pageblock so the pageblock is claimed;
    # the retry then takes the smallest UNMOVABLE block: pfn 1
    assert pfn == 1
    assert area.pageblock_mt == {0: MIGRATE_UNMOVABLE}
    assert area.nr_free_mt[MIGRATE_UNMOVABLE] == 510
    assert area.nr_free_mt[MIGRATE_MOVABLE] == 0
    check_invariants(area)


def test_unmovable_steal_counts_used_movable_pages_as_alike() -> None:
    area = make_zone(0, 1 << PAGEBLOCK_ORDER)
    assert [alloc(area, 0) for _ in range(400)] == list(range(400))
    # 112 free pages (400/o4, 416/o5, 448/o6): 112 < 256, but the 400 used pages of a
    # MOVABLE pageblock count as alike (no LRU pages in pagesim), so the block is claimed
    assert alloc(area, 0, MIGRATE_UNMOVABLE) == 400
    assert area.pageblock_mt == {0: MIGRATE_UNMOVABLE}
    assert area.nr_free_mt[MIGRATE_UNMOVABLE] == 111
    check_invariants(area)


def test_reclaimable_steal_from_unmovable_needs_half_a_pageblock() -> None:
    area = make_zone(0, 1 << PAGEBLOCK_ORDER)
    assert alloc(area, 0, MIGRATE_UNMOVABLE) == 0  # claims the pageblock for UNMOVABLE
    for _ in range(300):  # use up most of it: 211 free pages remain
        assert alloc(area, 0, MIGRATE_UNMOVABLE) is not None
    assert area.nr_free_pages == 211
    pfn = alloc(area, 0, MIGRATE_RECLAIMABLE)
    assert pfn is not None
    # UNMOVABLE -> RECLAIMABLE: alike_pages = 0 and 211 < 256, so the free pages moved to
    # the RECLAIMABLE lists but the pageblock stays UNMOVABLE
    assert area.pageblock_mt == {0: MIGRATE_UNMOVABLE}
    assert area.nr_free_mt[MIGRATE_RECLAIMABLE] == 210
    check_invariants(area)


def test_movable_fallback_takes_the_smallest_block() -> None:
    area = make_zone(0, 16)  # one order-4 block; its pageblock is not inside the zone
    assert alloc(area, 0, MIGRATE_UNMOVABLE) == 0
    # move_freepages_block() refused (pageblock end outside the zone): only the block moved,
    # and the pageblock stayed MOVABLE
    assert area.pageblock_mt == {}
    assert [list_of(area, o, MIGRATE_UNMOVABLE) for o in range(4)] == [[1], [2], [4], [8]]
    # MOVABLE cannot steal a whole pageblock at order 3 -> find_smallest: pfn 1, not 8
    assert alloc(area, 0, MIGRATE_MOVABLE, ALLOC_NOFRAGMENT) is None
    assert alloc(area, 0, MIGRATE_MOVABLE) == 1
    check_invariants(area)


def test_nofragment_still_takes_whole_pageblocks() -> None:
    area = make_zone(0, 1 << TOP)
    assert alloc(area, 0, MIGRATE_RECLAIMABLE, ALLOC_NOFRAGMENT) == 0
    assert area.pageblock_mt == {0: MIGRATE_RECLAIMABLE, 1: MIGRATE_RECLAIMABLE}


def test_rmqueue_smallest_does_not_fall_back() -> None:
    area = make_zone(0, 1 << TOP)
    assert rmqueue_smallest(area, 0, MIGRATE_UNMOVABLE, []) is None
    assert rmqueue_smallest(area, 0, MIGRATE_MOVABLE, []) == 0


def test_check_invariants_catches_corruption() -> None:
    area = make_zone(0, 1 << TOP)
    alloc(area, 0)
    area.nr_free[3] += 1
    with pytest.raises(InvariantError, match="nr_free"):
        check_invariants(area)
    area.nr_free[3] -= 1
    check_invariants(area)
    # an unmerged buddy pair: put pfn 0 back on the order-0 list by hand
    buddy.add_to_free_list(area, 0, 0, MIGRATE_MOVABLE, [])
    buddy.set_buddy_order(area, 0, 0, [])
    area.nr_free_pages += 1
    with pytest.raises(InvariantError, match="unmerged"):
        check_invariants(area)


def test_lazy_boot_of_a_1tib_zone() -> None:
    """Memory stays flat whatever the zone's size (its boot time is benchmarks/run.py's)."""
    pages = 1 << 28  # 1 TiB of 4 KiB pages
    start = (1 << 20) + 5  # unaligned edges
    end = start + pages
    tracemalloc.start()
    area = make_zone(start, end)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1 << 20  # under 1 MiB
    assert area.nr_free_pages == pages
    assert sum(n << o for o, n in enumerate(area.nr_free)) == pages
    rng = random.Random(1)
    held: list[tuple[int, int]] = []
    seen: set[int] = set()
    for _ in range(4000):
        order = rng.randrange(4)
        mt = rng.randrange(MIGRATE_PCPTYPES)
        pfn = alloc(area, order, mt)
        assert pfn is not None and pfn & ((1 << order) - 1) == 0
        assert start <= pfn and pfn + (1 << order) <= end
        assert pfn not in seen
        seen.update(range(pfn, pfn + (1 << order)))
        held.append((pfn, order))
    check_invariants(area)
    assert area.nr_free_pages + sum(1 << o for _, o in held) == pages
    for pfn, order in held:
        free(area, pfn, order)
    check_invariants(area)
    assert area.nr_free_pages == pages
    assert sum(n << o for o, n in enumerate(area.nr_free)) == pages


def test_random_churn_against_a_page_map() -> None:
    """Long seeded run on a 2^16-page zone: no pfn handed out twice, pages conserved."""
    rng = random.Random(12345)
    start, end = 3 * (1 << 16) + 77, 4 * (1 << 16) + 1000
    area = make_zone(start, end)
    held: dict[int, int] = {}
    in_use: set[int] = set()
    for step in range(20000):
        if held and (rng.random() < 0.45 or area.nr_free_pages < 64):
            pfn = rng.choice(list(held)) if step % 50 == 0 else next(iter(held))
            order = held.pop(pfn)
            in_use.difference_update(range(pfn, pfn + (1 << order)))
            free(area, pfn, order)
        else:
            order = rng.choice((0, 0, 0, 1, 2, 3))
            mt = rng.randrange(MIGRATE_PCPTYPES)
            pfn = alloc(area, order, mt, ALLOC_NOFRAGMENT if rng.random() < 0.2 else 0)
            if pfn is None:
                continue
            block = set(range(pfn, pfn + (1 << order)))
            assert not block & in_use, f"pfn {pfn:#x} handed out twice"
            in_use |= block
            held[pfn] = order
        if step % 1000 == 0:
            check_invariants(area)
            assert area.nr_free_pages + len(in_use) == end - start
    for pfn, order in held.items():
        free(area, pfn, order)
    check_invariants(area)
    assert {(p, o) for p, o, _ in free_blocks(area)} == maximal_blocks(start, end)


# ---------------------------------------------------------------------------------------
# Hypothesis: random sequences of allocations and frees on small unaligned zones


class BuddyMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.area: FreeArea | None = None
        self.in_use: dict[int, int] = {}  # pfn -> order of each allocated block
        self.pages_in_use = 0

    @initialize(
        log_size=st.integers(12, 16),
        start_off=st.integers(0, (1 << 12) - 1),
        end_trim=st.integers(0, (1 << 11) - 1),
        base=st.sampled_from([0, 1 << 12, 1 << 22]),
    )
    def boot(self, log_size: int, start_off: int, end_trim: int, base: int) -> None:
        start = base + start_off
        end = max(base + (1 << log_size) - end_trim, start + 64)
        self.area = make_zone(start, end)
        assert self.area.nr_free_pages == end - start

    @rule(
        order=st.integers(0, 3),
        mt=st.sampled_from([MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE]),
        nofrag=st.booleans(),
        count=st.integers(1, 60),
    )
    def allocate(self, order: int, mt: int, nofrag: bool, count: int) -> None:
        area = self.area
        assert area is not None
        for _ in range(count):
            pfn = rmqueue(area, order, mt, ALLOC_NOFRAGMENT if nofrag else 0, [])
            if pfn is None:
                break
            assert pfn & ((1 << order) - 1) == 0
            assert area.start_pfn <= pfn and pfn + (1 << order) <= area.end_pfn
            for other, o in self.in_use.items():
                assert pfn + (1 << order) <= other or other + (1 << o) <= pfn, (
                    f"{pfn:#x}/{order} overlaps allocated {other:#x}/{o}"
                )
            self.in_use[pfn] = order
            self.pages_in_use += 1 << order

    @precondition(lambda self: bool(self.in_use))
    @rule(pick=st.integers(0, 1 << 20), count=st.integers(1, 60), to_tail=st.booleans())
    def free_some(self, pick: int, count: int, to_tail: bool) -> None:
        area = self.area
        assert area is not None
        held = sorted(self.in_use)
        for k in range(min(count, len(held))):
            pfn = held[(pick + k * 7919) % len(held)]
            if pfn not in self.in_use:
                continue
            order = self.in_use.pop(pfn)
            self.pages_in_use -= 1 << order
            free(area, pfn, order, FPI_TO_TAIL if to_tail else FPI_NONE)

    @invariant()
    def consistent(self) -> None:
        area = self.area
        if area is None:
            return
        check_invariants(area)
        assert area.nr_free_pages + self.pages_in_use == area.end_pfn - area.start_pfn
        assert sum(area.nr_free_mt[:MIGRATE_TYPES]) == area.nr_free_pages

    def teardown(self) -> None:
        area = self.area
        if area is None:
            return
        for pfn, order in list(self.in_use.items()):
            free(area, pfn, order)
        self.in_use.clear()
        check_invariants(area)
        assert area.nr_free_pages == area.end_pfn - area.start_pfn
        assert {(p, o) for p, o, _ in free_blocks(area)} == maximal_blocks(area.start_pfn, area.end_pfn)


BuddyMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBuddyMachine = BuddyMachine.TestCase
