"""Every invariant detector fires on the fault it is there for.

- Machine.check_page_placement(): every managed pfn of every zone in exactly one place (a buddy
  free block, one CPU's pcp list of its own zone, allocated, the balloon). Each kind of fault is
  planted in a machine whose pages are spread over all those places, and caught with a message
  naming the pfn and the places; faults that keep every count right (a page in two places plus a
  page in none, two zones' pages swapped between their pcp lists) pass the count checks and are
  caught by this one alone.
- buddy.check_invariants(): each of its detectors, on a corrupted free area.
- The rest of Machine.check_invariants() (pcp counts, double allocation and free, negative
  counters, pfns in no zone) and the scheduler's run queue errors.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest
import simpy
from conftest import TINY_2NODE, new_machine, run_on

from simulator.errors import InvariantError
from simulator.machine.sched import THREAD, RunQueues
from simulator.mm import buddy
from simulator.mm.balloon import balloon_inflate
from simulator.mm.buddy import FPI_NONE, LAZY, FreeArea, FreeAreaLines, free_area_init_lazy
from simulator.mm.gfp import GFP_KERNEL, Gfp
from simulator.mm.machine import Machine, pcp_count_max
from simulator.mm.mmzone import (
    MAX_ORDER,
    MIGRATE_MOVABLE,
    MIGRATE_RECLAIMABLE,
    MIGRATE_UNMOVABLE,
    NR_FREE_PAGES,
    ZONE_DMA32,
    ZONE_NORMAL,
)
from simulator.mm.page_alloc import alloc_pages_node, free_unref_page
from simulator.mm.zone import Zone
from simulator.workloads.nfs import GFP_HIGHUSER_MOVABLE

GFP_DMA32 = Gfp(
    "GFP_KERNEL|__GFP_DMA32",
    high=False,
    atomic=False,
    direct_reclaim=True,
    kswapd_reclaim=True,
    highest_zoneidx=ZONE_DMA32,
)
GFP_RECLAIMABLE = Gfp("GFP_KERNEL|__GFP_RECLAIMABLE", False, False, True, True, MIGRATE_RECLAIMABLE)
TOP = MAX_ORDER - 1
NORMAL0 = "machine.node0.zone_normal"


# ---- a machine with pages in every place --------------------------------------------------------


def zone(m: Machine, node: int, zone_idx: int) -> Zone:
    z = m.nodes[node].zone(zone_idx)
    assert z is not None
    return z


def spread(m: Machine) -> dict[str, Any]:
    """tiny-2node (pcp batch 7) with node 0's Normal pages on cpu0's and cpu1's pcp lists, on
    cpu2's (remote frees), allocated, free in the buddy and in a balloon; DMA32 pages allocated
    and on cpu0's DMA32 list."""
    c0, c1, c2 = m.cpus[0], m.cpus[1], m.cpus[2]
    a = [run_on(c0, alloc_pages_node(c0, GFP_KERNEL, 0)) for _ in range(20)]  # 3 refills: 1 left
    b = [run_on(c1, alloc_pages_node(c1, GFP_KERNEL, 0)) for _ in range(10)]  # 2 refills: 4 left
    d = [run_on(c0, alloc_pages_node(c0, GFP_DMA32, 0)) for _ in range(3)]  # 1 refill: 4 left
    for pfn in a[:5]:
        run_on(c2, free_unref_page(c2, pfn))  # remote frees: onto cpu2's list of node 0's zone
    normal = zone(m, 0, ZONE_NORMAL)
    balloon_inflate(normal, 3000)
    m.check_invariants()
    assert [len(p.lists[MIGRATE_UNMOVABLE]) for p in normal.pcp] == [1, 4, 5, 0]
    assert normal.balloon_pages == 3000
    return {"normal": normal, "dma32": zone(m, 0, ZONE_DMA32), "held": a[5:] + b, "dma32_held": d}


@pytest.fixture
def spread_machine() -> tuple[Machine, dict[str, Any]]:
    m = new_machine(TINY_2NODE)
    return m, spread(m)


def test_the_unbroken_machine_passes(spread_machine: tuple[Machine, dict[str, Any]]) -> None:
    m, _ = spread_machine
    m.check_page_placement()
    m.check_invariants()


def placement_error(m: Machine) -> str:
    with pytest.raises(InvariantError) as info:
        m.check_page_placement()
    return str(info.value)


# Each planted fault, alone: check_page_placement() names the pfn and the places -----------------


def test_a_page_on_two_cpus_pcp_lists(spread_machine):
    m, s = spread_machine
    normal = s["normal"]
    pfn = normal.pcp[0].lists[MIGRATE_UNMOVABLE][0]
    normal.pcp[1].lists[MIGRATE_UNMOVABLE].append(pfn)
    normal.pcp[1].count += 1
    assert placement_error(m) == (
        f"pages misplaced: machine.node0.zone_normal: pfn {pfn} is in 2 places:"
        " pcp.cpu0 Unmovable list, pcp.cpu1 Unmovable list"
    )


def test_a_page_twice_on_one_pcp_list(spread_machine):
    m, s = spread_machine
    lst = s["normal"].pcp[1].lists[MIGRATE_UNMOVABLE]
    lst.append(lst[0])
    s["normal"].pcp[1].count += 1
    assert placement_error(m) == (
        f"pages misplaced: machine.node0.zone_normal: pfn {lst[0]} is in 2 places:"
        " pcp.cpu1 Unmovable list (2 times)"
    )


def test_a_pcp_page_also_free_in_the_buddy(spread_machine):
    m, s = spread_machine
    normal = s["normal"]
    pfn = normal.pcp[2].lists[MIGRATE_UNMOVABLE][0]
    buddy.__free_one_page(normal.free_area, pfn, 0, MIGRATE_UNMOVABLE, FPI_NONE, [])
    assert placement_error(m) == (
        f"pages misplaced: machine.node0.zone_normal: pfn {pfn} is in 2 places:"
        " buddy, pcp.cpu2 Unmovable list"
    )


def test_a_leaked_page(spread_machine):
    m, s = spread_machine
    pfn = s["held"][3]
    m.allocated.discard(pfn)  # dropped without being freed
    assert placement_error(m) == f"pages misplaced: {NORMAL0}: pfn {pfn} is in no place (lost)"


def test_a_page_of_zone_a_on_zone_bs_pcp_list(spread_machine):
    m, s = spread_machine
    pfn = s["dma32_held"][0]
    m.take_back([pfn])
    s["normal"].pcp[0].lists[MIGRATE_UNMOVABLE].appendleft(pfn)  # freed onto the wrong zone's list
    s["normal"].pcp[0].count += 1
    assert placement_error(m) == (
        f"pages misplaced: machine.node0.zone_dma32: pfn {pfn} is in no place (lost); pfn {pfn} on"
        f" machine.node0.zone_normal.pcp.cpu0's Unmovable list is a page of machine.node0.zone_dma32"
    )


def test_a_page_allocated_and_free_at_once(spread_machine):
    m, s = spread_machine
    normal = s["normal"]
    pfn = s["held"][0]
    mt = buddy.get_pageblock_migratetype(normal.free_area, pfn, [])
    buddy.__free_one_page(normal.free_area, pfn, 0, mt, FPI_NONE, [])  # freed, never taken back
    assert placement_error(m) == (
        f"pages misplaced: machine.node0.zone_normal: pfn {pfn} is in 2 places: buddy, allocated"
    )


def test_a_balloon_block_over_allocated_pages(spread_machine):
    m, s = spread_machine
    normal = s["normal"]
    pfn = s["held"][4]
    normal.balloon.append((pfn, 0))
    normal.balloon_pages += 1
    assert placement_error(m) == (
        f"pages misplaced: machine.node0.zone_normal: pfn {pfn} is in 2 places: allocated, balloon"
    )


def test_allocated_pages_of_no_zone(spread_machine):
    m, s = spread_machine
    normal = s["normal"]
    tail = normal.start_pfn + normal.managed  # first pfn of the reserved tail (memmap)
    m.allocated.update({0, tail})
    assert placement_error(m) == f"pages misplaced: allocated pfns [0, {tail}] are no zone's managed pages"


def test_a_free_block_in_the_reserved_tail(spread_machine):
    m, s = spread_machine
    normal = s["normal"]
    pfn = normal.start_pfn + normal.managed + 1  # odd, so it does not merge: an order-0 block
    buddy.__free_one_page(normal.free_area, pfn, 0, MIGRATE_MOVABLE, FPI_NONE, [])
    assert placement_error(m) == (
        f"pages misplaced: machine.node0.zone_normal: buddy holds pfns [{pfn}, {pfn + 1}) outside its"
        f" managed pages [{normal.start_pfn}, {normal.start_pfn + normal.managed})"
    )


def test_an_empty_zone_is_all_lost():
    m = new_machine(TINY_2NODE)
    dma = m.zones[0]
    area = dma.free_area
    dma.free_area = FreeArea(area.start_pfn, area.end_pfn, area.lines)  # the buddy forgot its pages
    assert placement_error(m).startswith(
        f"pages misplaced: machine.node0.zone_dma: pfns [{dma.start_pfn}, {dma.start_pfn + dma.managed})"
        " are in no place (lost)"
    )


# Faults that keep every count right: only the placement check sees them ------------------------


def _count_checks_pass(m: Machine) -> None:
    """Machine.check_invariants() without its placement check."""
    real = m.check_page_placement
    m.check_page_placement = lambda: None  # type: ignore[method-assign]
    try:
        m.check_invariants()
    finally:
        m.check_page_placement = real  # type: ignore[method-assign]


def test_a_duplicated_page_plus_a_leaked_one_keeps_the_counts(spread_machine):
    m, s = spread_machine
    normal = s["normal"]
    dup = normal.pcp[1].lists[MIGRATE_UNMOVABLE][1]
    normal.pcp[0].lists[MIGRATE_UNMOVABLE].append(dup)
    normal.pcp[0].count += 1
    lost = s["held"][2]
    m.allocated.discard(lost)
    _count_checks_pass(m)
    with pytest.raises(InvariantError) as info:
        m.check_invariants()
    assert str(info.value) == (
        f"pages misplaced: machine.node0.zone_normal: pfn {dup} is in 2 places: pcp.cpu0 Unmovable list,"
        f" pcp.cpu1 Unmovable list; machine.node0.zone_normal: pfn {lost} is in no place (lost)"
    )


def test_pages_swapped_between_two_zones_pcp_lists_keep_the_counts(spread_machine):
    m, s = spread_machine
    normal, dma32 = s["normal"], s["dma32"]
    n_lst, d_lst = normal.pcp[0].lists[MIGRATE_UNMOVABLE], dma32.pcp[0].lists[MIGRATE_UNMOVABLE]
    n_pfn, d_pfn = n_lst[0], d_lst[0]
    n_lst[0], d_lst[0] = d_pfn, n_pfn
    _count_checks_pass(m)
    message = placement_error(m)
    assert f"pfn {n_pfn} on machine.node0.zone_dma32.pcp.cpu0's Unmovable list is a page of" in message
    assert f"pfn {d_pfn} on machine.node0.zone_normal.pcp.cpu0's Unmovable list is a page of" in message
    assert f"machine.node0.zone_normal: pfn {n_pfn} is in no place (lost)" in message
    assert f"machine.node0.zone_dma32: pfn {d_pfn} is in no place (lost)" in message


def test_a_pcp_page_freed_into_the_buddy_too_with_its_counter_keeps_the_counts(spread_machine):
    """The page stays on cpu1's list and is freed into the buddy as well, NR_FREE_PAGES counting
    it; an allocated page is dropped to balance the books."""
    m, s = spread_machine
    normal = s["normal"]
    pfn = normal.pcp[1].lists[MIGRATE_UNMOVABLE][2]
    buddy.__free_one_page(normal.free_area, pfn, 0, MIGRATE_UNMOVABLE, FPI_NONE, [])
    normal.vm_stat[NR_FREE_PAGES] += 1
    lost = s["held"][7]
    m.allocated.discard(lost)
    _count_checks_pass(m)
    message = placement_error(m)
    assert f"pfn {pfn} is in 2 places: buddy, pcp.cpu1 Unmovable list" in message
    assert f"pfn {lost} is in no place (lost)" in message


# ---- buddy.check_invariants(): each detector ------------------------------------------------------


LINES = FreeAreaLines(base=1 << 50)


def area_with_holes() -> tuple[FreeArea, list[int]]:
    """Four order-10 blocks (lazy, then materialised as needed) with 40 pages allocated."""
    area = FreeArea(0, 4 << TOP, LINES)
    free_area_init_lazy(area, 0, 4 << TOP)
    got = [buddy.__rmqueue(area, 0, MIGRATE_MOVABLE, 0, []) for _ in range(40)]
    assert got == list(range(40)) and area.lazy_hi - area.lazy_lo == 3 << TOP
    buddy.check_invariants(area)
    return area, got  # type: ignore[return-value]


def _unlink(area: FreeArea, key: int) -> None:
    p, n = area.prev.pop(key), area.next.pop(key)
    area.next[p] = n
    area.prev[n] = p


def _link_after(area: FreeArea, after: int, key: int) -> None:
    n = area.next[after]
    area.next[after], area.prev[key] = key, after
    area.next[key], area.prev[n] = n, key


def lazy_range_unaligned(area: FreeArea, held: list[int]) -> str:
    area.lazy_lo += 1
    return "bad lazy range [0x401, 0x1000)"


def lazy_range_without_its_node(area: FreeArea, held: list[int]) -> str:
    _unlink(area, LAZY)
    return "lazy range set but no LAZY node in the list"


def lazy_node_without_a_range(area: FreeArea, held: list[int]) -> str:
    area.lazy_lo = area.lazy_hi = 0
    return "LAZY node present but the lazy range is empty"


def lazy_node_on_another_list(area: FreeArea, held: list[int]) -> str:
    _unlink(area, LAZY)
    _link_after(area, buddy._list_key(TOP - 1, MIGRATE_MOVABLE), LAZY)
    return f"LAZY node on list ({TOP - 1}, {MIGRATE_MOVABLE})"


def broken_link(area: FreeArea, held: list[int]) -> str:
    area.prev[64] = 96  # pfn 64's predecessor is its list head, not pfn 96
    head = buddy._list_key(6, MIGRATE_MOVABLE)
    return f"list (6, {MIGRATE_MOVABLE}): broken link at {head} -> 64"


def sentinel_on_a_list(area: FreeArea, held: list[int]) -> str:
    h0, h1 = buddy._list_key(0, MIGRATE_UNMOVABLE), buddy._list_key(0, MIGRATE_RECLAIMABLE)
    area.next[h0], area.prev[h1] = h1, h0
    return f"list (0, {MIGRATE_UNMOVABLE}) holds sentinel {h1}"


def head_of_another_order(area: FreeArea, held: list[int]) -> str:
    area.buddy_order[64] = 5
    return "pfn 0x40 on order-6 list: order 5"


def head_of_another_migratetype(area: FreeArea, held: list[int]) -> str:
    area.free_list_mt[64] = MIGRATE_UNMOVABLE
    return f"pfn 0x40 on mt-{MIGRATE_MOVABLE} list: free_list_mt {MIGRATE_UNMOVABLE}"


def head_on_no_list(area: FreeArea, held: list[int]) -> str:
    area.buddy_order[7] = 0
    return "buddy_order heads not on any list: [7]"


def migratetype_of_no_block(area: FreeArea, held: list[int]) -> str:
    area.free_list_mt[7] = MIGRATE_MOVABLE
    return "free_list_mt keys differ from the listed blocks"


def stray_link(area: FreeArea, held: list[int]) -> str:
    area.next[7] = area.prev[7] = 7
    return "stray link keys: [7]"


def _fake_block(area: FreeArea, pfn: int, order: int) -> None:
    """Put [pfn, pfn + 2^order) on its free list as if it had been freed, counts and all."""
    buddy.add_to_free_list(area, pfn, order, MIGRATE_MOVABLE, [])
    buddy.set_buddy_order(area, pfn, order, [])
    area.nr_free_pages += 1 << order


def unaligned_block(area: FreeArea, held: list[int]) -> str:
    _fake_block(area, 9, 1)
    return "block 0x9 not aligned to order 1"


def block_outside_the_zone(area: FreeArea, held: list[int]) -> str:
    _fake_block(area, area.end_pfn, 0)
    return "block 0x1000 order 0 outside the zone"


def unmerged_buddies(area: FreeArea, held: list[int]) -> str:
    _fake_block(area, 38, 0)
    _fake_block(area, 39, 0)
    return "block 0x26 and buddy 0x27 (order 0) unmerged"


def overlapping_blocks(area: FreeArea, held: list[int]) -> str:
    _fake_block(area, 16, 2)
    _fake_block(area, 18, 0)
    return "free blocks at 0x10 and 0x12 overlap"


def nr_free_off(area: FreeArea, held: list[int]) -> str:
    area.nr_free[3] += 1
    return "nr_free [0, 0, 0, 2, 1, 0, 1, 1, 1, 1, 3] != counted [0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 3]"


def nr_free_mt_off(area: FreeArea, held: list[int]) -> str:
    area.nr_free_mt[MIGRATE_UNMOVABLE] += 2
    return "nr_free_mt [2, 4056, 0, 0, 0, 0] != counted [0, 4056, 0, 0, 0, 0]"


def nr_free_pages_off(area: FreeArea, held: list[int]) -> str:
    area.nr_free_pages -= 1
    return "nr_free_pages 4055 != counted 4056"


BUDDY_FAULTS: list[Callable[[FreeArea, list[int]], str]] = [
    lazy_range_unaligned,
    lazy_range_without_its_node,
    lazy_node_without_a_range,
    lazy_node_on_another_list,
    broken_link,
    sentinel_on_a_list,
    head_of_another_order,
    head_of_another_migratetype,
    head_on_no_list,
    migratetype_of_no_block,
    stray_link,
    unaligned_block,
    block_outside_the_zone,
    unmerged_buddies,
    overlapping_blocks,
    nr_free_off,
    nr_free_mt_off,
    nr_free_pages_off,
]


@pytest.mark.parametrize("fault", BUDDY_FAULTS, ids=[f.__name__ for f in BUDDY_FAULTS])
def test_each_buddy_detector_fires(fault: Callable[[FreeArea, list[int]], str]) -> None:
    area, held = area_with_holes()
    expected = fault(area, held)
    with pytest.raises(InvariantError) as info:
        buddy.check_invariants(area)
    assert expected in str(info.value)


def test_buddy_problems_past_twenty_are_counted_not_listed() -> None:
    area, held = area_with_holes()
    for pfn in held[::2]:  # 20 order-0 blocks: their odd buddies are still allocated
        buddy.__free_one_page(area, pfn, 0, MIGRATE_MOVABLE, FPI_NONE, [])
    buddy.check_invariants(area)
    for pfn in held[::2]:
        area.free_list_mt[pfn] = MIGRATE_UNMOVABLE  # 20 problems, and nr_free_mt's
    area.buddy_order[1] = 0  # and a head on no list
    with pytest.raises(InvariantError) as info:
        buddy.check_invariants(area)
    message = str(info.value)
    assert message.endswith(" (+2 more)")
    assert message.count("free_list_mt 0") == 20


# ---- the rest of Machine.check_invariants() and the page tracking -------------------------------


def test_a_pcp_count_out_of_step_with_its_lists(spread_machine):
    m, s = spread_machine
    s["normal"].pcp[1].count += 1
    with pytest.raises(InvariantError, match=r"^machine.node0.zone_normal.pcp.cpu1: count 5 but 4 pages"):
        m.check_invariants()


def test_three_refills_take_a_pcp_list_past_high_plus_batch():
    """A state 5.12 reaches, which the old bound (high + batch = 49) called broken: frees put
    high - 1 = 41 pages on cpu0's Unmovable list (no drain below high), then a Movable and a
    Reclaimable allocation each find their list empty and refill a batch of 7, taking one:
    41 + 6 + 6 = 53, the most a pcp can hold (machine.pcp_count_max)."""
    m = new_machine(TINY_2NODE)
    c0, c1 = m.cpus[0], m.cpus[1]
    pages = [run_on(c1, alloc_pages_node(c1, GFP_KERNEL, 0)) for _ in range(41)]
    for pfn in pages:
        run_on(c0, free_unref_page(c0, pfn))
    movable = run_on(c0, alloc_pages_node(c0, GFP_HIGHUSER_MOVABLE, 0))
    reclaimable = run_on(c0, alloc_pages_node(c0, GFP_RECLAIMABLE, 0))
    pcp = zone(m, 0, ZONE_NORMAL).pcp[0]
    assert m.page_zone(movable) is m.page_zone(reclaimable) is zone(m, 0, ZONE_NORMAL)
    assert [len(lst) for lst in pcp.lists] == [41, 6, 6]
    assert pcp.count == 53 == pcp_count_max(pcp.high, pcp.batch) > pcp.high + pcp.batch
    m.check_invariants()


def test_a_pcp_list_above_the_most_it_can_hold(spread_machine):
    m, s = spread_machine
    c3 = m.cpus[3]
    pages = [run_on(c3, alloc_pages_node(c3, GFP_KERNEL, 0)) for _ in range(50)]
    pcp = s["normal"].pcp[3]
    m.take_back(pages)  # put on the list by hand, past any drain
    pcp.lists[MIGRATE_UNMOVABLE].extendleft(pages)
    pcp.count += 50
    assert pcp.count == 50 + 6  # and the last refill's rest
    with pytest.raises(InvariantError, match=r"pcp.cpu3: count 56 outside \[0, 53\] \(high 42, batch 7\)$"):
        m.check_invariants()


def test_handing_out_a_page_twice_and_freeing_one_not_out(spread_machine):
    m, s = spread_machine
    out = s["held"][0]
    new = out + 100_000
    with pytest.raises(InvariantError, match=rf"^page handed out twice in one batch: pfns \[{new}\]"):
        m.hand_out([new, new])
    with pytest.raises(InvariantError, match=r"^page handed out twice: one of pfns"):
        m.hand_out([out])
    free = s["normal"].pcp[0].lists[MIGRATE_UNMOVABLE][0]
    double_free = rf"^freeing pages that are not allocated \(double free\?\): \[{free}\]"
    with pytest.raises(InvariantError, match=double_free):
        m.take_back([free])


def test_a_pfn_in_no_zone(spread_machine):
    m, s = spread_machine
    with pytest.raises(InvariantError, match="^pfn 0 is in no zone$"):
        m.page_zone(0)
    gap = s["dma32"].end_pfn  # node 0 has no memory between 128 MiB and 4 GiB
    with pytest.raises(InvariantError, match=f"^pfn {gap} is in no zone$"):
        m.page_zone(gap)


def _negative(target: str) -> Callable[[Machine], None]:
    def plant(m: Machine) -> None:
        normal = zone(m, 0, ZONE_NORMAL)
        obj: Any = {
            "stats": m.stats,
            "free_area": normal.free_area,
            "pcp": normal.pcp[2],
            "lock": normal.lock,
            "cpu": m.cpus[1],
        }[target.split(".")[0]]
        setattr(obj, target.split(".")[1], -3)

    return plant


@pytest.mark.parametrize(
    ("target", "name"),
    [
        ("stats.bulk_empty", "stats.bulk_empty=-3"),
        ("free_area.nr_free_pages", "machine.node0.zone_normal.free_area.nr_free_pages=-3"),
        ("pcp.drained_pages", "machine.node0.zone_normal.pcp.cpu2.drained_pages=-3"),
        ("lock.wait_ns", "machine.node0.zone_normal.lock.wait_ns=-3"),
        ("cpu.cache_cost_ns", "machine.cpu1.cache_cost_ns=-3"),
    ],
)
def test_each_kind_of_negative_counter(spread_machine, target: str, name: str):
    m, _ = spread_machine
    _negative(target)(m)
    with pytest.raises(InvariantError, match=f"^negative counter\\(s\\): {name}$"):
        m.check_invariants()


def test_a_negative_vm_stat_counts_its_per_cpu_deltas(spread_machine):
    """vm_stat plus every CPU's delta: a delta may be negative (that is normal); the sum may not."""
    m, s = spread_machine
    normal = s["normal"]
    total = normal.vm_stat[NR_FREE_PAGES] + sum(d[NR_FREE_PAGES] for d in normal.vm_stat_diff)
    normal.vm_stat_diff[3][NR_FREE_PAGES] -= total + 2
    assert normal.vm_stat[NR_FREE_PAGES] > 0
    with pytest.raises(InvariantError, match=rf"^negative counter\(s\): {NORMAL0}.vm_stat\[0\]=-2$"):
        m.check_invariants()


# ---- the scheduler's run queues -------------------------------------------------------------------


def _run(m: Machine, *procs: Generator[simpy.Event, None, None]) -> None:
    for p in procs:
        m.env.process(p)
    m.env.run()


def test_taking_over_a_cpu_with_unsynced_work_is_an_error():
    """A context that priced work on cpu0 without holding its slot (a softirq that forgot to
    take it): the next context to take cpu0 would start before that work ends."""
    m = new_machine(TINY_2NODE)
    rq = RunQueues(m.env, m.cpus)
    m.cpus[0].spend(250.0)
    with pytest.raises(InvariantError, match=r"^machine.cpu0: taken over with 250.0 ns of unsynced work$"):
        _run(m, rq.acquire(m.cpus[0], THREAD))


def test_giving_up_a_cpu_with_irqs_off_is_an_error():
    m = new_machine(TINY_2NODE)
    rq = RunQueues(m.env, m.cpus)
    cpu = m.cpus[1]

    def leaky() -> Generator[simpy.Event, None, None]:
        yield from rq.acquire(cpu, THREAD)
        cpu.local_irq_save("leaky")
        cpu.spend(10.0)
        yield from rq.release(cpu)

    with pytest.raises(InvariantError, match=r"^machine.cpu1: gives up the CPU with IRQs disabled$"):
        _run(m, leaky())


def test_releasing_a_cpu_not_held_is_an_error():
    m = new_machine(TINY_2NODE)
    rq = RunQueues(m.env, m.cpus)
    with pytest.raises(InvariantError, match=r"^machine.cpu2: released without being held$"):
        _run(m, rq.release(m.cpus[2]))
