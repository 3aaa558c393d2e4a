"""page_fault1 (simulator/workloads/page_fault1.py) and the kernel paths it drives: the anonymous
fault (mm/memory.py), the LRU pagevecs and release_pages (mm/swap.py), the mmu_gather
(mm/mmu_gather.py) and __GFP_ZERO's clear_page through the node's memory controller.

Machine for the path tests: tests/data/tiny-1node.yaml (one node, two CPUs)."""

from __future__ import annotations

import math
from collections.abc import Generator

import pytest
import simpy
from conftest import ROOT, TINY_1NODE, new_machine, run_on

from simulator.errors import ConfigError
from simulator.fault_path import fault_costs, load_fault_path
from simulator.mm.memory import PTRS_PER_PTE, AnonMapping, do_mmap, do_munmap, handle_mm_fault
from simulator.mm.mmzone import PAGE_SIZE, PAGEVEC_SIZE
from simulator.mm.swap import LRU_LOCK, SWAP_CLUSTER_MAX, lruvec_of
from simulator.run import expand, run_point
from simulator.scenario import Overrides, Setting, load_scenario

SCENARIO = ROOT / "scenarios" / "page_fault1.yaml"


def _fc(m, pti: bool = True, scale: float = 1.0):
    return fault_costs(load_fault_path(), m.costs, m.hw, pti, scale)


def _mapping(m, cpu, npages: int) -> AnonMapping:
    scope = f"machine.task{cpu.id}"
    return AnonMapping(
        scope, npages, m.registry.alloc(f"{scope}.mm", cpu.node), m.registry.alloc(f"{scope}.vma", cpu.node)
    )


def _fault(cpu, vma, fc, n: int) -> Generator[simpy.Event, None, list[int]]:
    do_mmap(cpu, vma, fc)
    pages = []
    for _ in range(n):
        page = yield from handle_mm_fault(cpu, vma, fc)
        assert page is not None
        pages.append(page)
    return pages


def test_a_fault_allocates_a_zeroed_page_and_a_pte_page_every_512():
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    fc = _fc(m)
    vma = _mapping(m, cpu, 1024)
    n = PTRS_PER_PTE + 3
    pages = run_on(cpu, _fault(cpu, vma, fc, n))
    assert len(set(pages)) == n and vma.pages == pages
    assert len(vma.pte_pages) == 2  # pages 0..511 and 512..514
    # every page and page-table page came from the allocator and was cleared (__GFP_ZERO) through
    # the node's memory controller
    assert m.stats.pages_allocated == n + 2
    assert m.memory[0].streams == n + 2 and m.memory[0].bytes == (n + 2) * PAGE_SIZE
    assert set(pages) | set(vma.pte_pages) <= m.allocated
    m.check_invariants()


def test_the_lru_pagevec_drains_every_15_pages_under_the_nodes_lru_lock():
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    fc = _fc(m)
    vma = _mapping(m, cpu, 1024)
    run_on(cpu, _fault(cpu, vma, fc, 2 * PAGEVEC_SIZE + 4))
    lv = lruvec_of(m, 0)
    assert lv.pages == 2 * PAGEVEC_SIZE  # two full pagevecs on the LRU, four pages still in this CPU's
    assert len(m.lru_pvecs[cpu.id].pages) == 4
    assert [lk.scope for lk in m.locks_of(LRU_LOCK)] == ["machine.node0.lruvec.lru_lock"]
    assert lv.lock.acquisitions == 2 and lv.lock.contended == 0


def test_munmap_gives_every_page_back_and_takes_lru_lock_per_32_pages():
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    fc = _fc(m)
    free0 = sum(z.free_area.nr_free_pages + z.pcp_pages() for z in m.zones)
    vma = _mapping(m, cpu, 1024)
    n = 100
    run_on(cpu, _fault(cpu, vma, fc, n))
    lock = lruvec_of(m, 0).lock
    before = lock.acquisitions
    run_on(cpu, do_munmap(cpu, vma, fc))
    # lru_add_drain: the last 10 pages onto the LRU (one hold), then release_pages drops the
    # lock every SWAP_CLUSTER_MAX pages: ceil(100 / 32) holds
    assert lock.acquisitions - before == 1 + math.ceil(n / SWAP_CLUSTER_MAX)
    assert lruvec_of(m, 0).pages == 0 and not vma.pages and not vma.pte_pages
    assert not m.allocated  # the data pages, the PTE page, the gather's batch pages: all back
    free1 = sum(z.free_area.nr_free_pages + z.pcp_pages() for z in m.zones)
    assert free1 == free0
    m.check_invariants()


def test_pti_and_the_path_scale_price_the_counted_path():
    m = new_machine(TINY_1NODE)
    on, off, double = _fc(m, True), _fc(m, False), _fc(m, True, 2.0)
    assert on.entry > off.entry > 0
    assert on.syscall > off.syscall > 0
    assert double.fault == pytest.approx(2 * on.fault)
    assert double.entry == on.entry  # the measured exception entry is not a counted step


def _scenario(cpus: int = 4, **settings: object):
    kw = {"duration": "100 us"}
    s = {"warmup": "50 us", "page_fault1.mapping": "512 KiB", **settings}
    ov = Overrides(**kw, cpus=[cpus], settings=tuple(Setting(p, v, "test", p) for p, v in s.items()))
    return load_scenario(SCENARIO, ov)


def _row(cpus: int = 4, **settings: object) -> dict:
    sc = _scenario(cpus, **settings)
    (point,) = expand(sc)
    return run_point(sc, point)


def test_a_row_adds_up():
    row = _row(4)
    assert row["faults"] > 0 and row["munmaps"] >= 1 and row["unmapped_pages"] >= 4096
    assert row["ns_per_fault"] == pytest.approx(row["fault_ns"] + row["unmap_ns_per_page"])
    assert row["faults_per_s"] == pytest.approx(4 * row["faults_per_s_per_task"])
    assert row["faults_per_s_per_task"] == pytest.approx(1e9 / row["ns_per_fault"])
    assert row["cpu_spin_share"] == pytest.approx(row["zone_lock_spin_share"] + row["lru_lock_spin_share"])
    assert row["lru_lock_acquisitions"] > 0 and row["lru_lock_contentions"] <= row["lru_lock_acquisitions"]
    # the fault path is a microsecond or so: the exception alone is ~1,045 cycles plus PTI
    assert 300 < row["fault_ns"] < 10_000


def test_the_same_seed_gives_the_same_row():
    a, b = _row(3), _row(3)
    a.pop("wall_s"), b.pop("wall_s")
    assert a == b


def test_more_tasks_on_a_node_contend_for_its_lru_lock():
    one, many = _row(1), _row(28)  # 28 tasks on node 0's cores
    assert one["lru_lock_spin_share"] == 0.0
    assert many["lru_lock_spin_share"] > 0.0
    assert many["faults_per_s_per_task"] < one["faults_per_s_per_task"]


def test_percpu_pagelist_fraction_sets_pcp_high_and_batch():
    default = new_machine(TINY_1NODE)
    tuned = new_machine(TINY_1NODE, percpu_pagelist_fraction=8)
    z0, z1 = default.zones[-1], tuned.zones[-1]
    p0, p1 = z0.pcp[0], z1.pcp[0]
    assert p1.high == z1.managed // 8
    assert p1.batch == min(p1.high // 4, 96)
    assert (p0.high, p0.batch) != (p1.high, p1.batch)


@pytest.mark.parametrize(
    "ov, settings, message",
    [
        (
            {"strategies": ["bulk_array"]},
            {},
            "--strategy: page_fault1 allocates one page per fault: give [single]",
        ),
        ({"batches": [64]}, {}, "--batch: page_fault1 has no batch size: give [1]"),
        ({}, {"page_fault1.mapping": "6 KiB"}, "page_fault1.mapping: a whole number of 4 KiB pages"),
        ({}, {"page_fault1.mapping": "2 GiB"}, "page_fault1.mapping: from 4 KiB to 1 GiB"),
        (
            {},
            {"kernel.percpu_pagelist_fraction": 4},
            "kernel.percpu_pagelist_fraction: expected 0 or at least 8",
        ),
        (
            {},
            {"kernel.percpu_pagelist_fraction": 16, "kernel.version": "5.14"},
            "percpu_pagelist_fraction: kernel 5.14 has no such sysctl",
        ),
    ],
)
def test_bad_page_fault1_input_is_named(ov: dict, settings: dict, message: str) -> None:
    o = Overrides(**ov, settings=tuple(Setting(p, v, "test", p) for p, v in settings.items()))
    with pytest.raises(ConfigError) as e:
        load_scenario(SCENARIO, o)
    assert message in str(e.value)
