"""Kernel versions as data (simulator/kernels.py, kernels.yaml) and what distinguishes each preset
on the modelled paths; the fidelity mechanisms of issue 12 on small machines, hand-worked.

Each expected number below is worked from the machine's own cost table (derived from the profile
in tests/test_calibration.py), so the tests check where the model charges what, not the values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, TINY_1NODE, boot, hardware, new_machine, run_on

from simulator.errors import ConfigError
from simulator.kernels import KernelConfig, presets, versions
from simulator.machine.cache import ASYNC, combine
from simulator.mm.gfp import GFP_ATOMIC, GFP_KERNEL
from simulator.mm.mmzone import ZONE_NORMAL
from simulator.mm.page_alloc import (
    PageArray,
    PageList,
    __alloc_pages_bulk,
    alloc_pages_node,
    nr_pcp_free,
    put_page,
)
from simulator.mm.page_alloc_run import free_unref_page_run
from simulator.mm.strategies import CallerBuffers, alloc_attempt, free_attempt, free_list_attempt
from simulator.mm.zone_setup import boot_numbers, zone_highsize
from simulator.run import run_point
from simulator.scenario import Overrides, Setting, load_scenario
from simulator.workloads.api import Point

PAGE_BENCH = ROOT / "scenarios" / "page_bench.yaml"


def normal(m):
    return next(z for z in m.zones if z.zone_idx == ZONE_NORMAL)


# ---- the presets as data -------------------------------------------------------------------------


def test_four_presets_each_naming_commits_except_the_baseline() -> None:
    assert versions() == ("5.11", "5.12", "5.13", "5.14")
    p = presets()
    assert not p["5.11"].mechanisms.bulk_api and p["5.11"].mechanisms.irq_restore == "popf"
    assert all(
        p[v].mechanisms.bulk_api and p[v].mechanisms.irq_restore == "sti" for v in ("5.12", "5.13", "5.14")
    )
    assert p["5.12"].mechanisms == p["5.13"].mechanisms  # the same paths, as far as pagesim models them
    m14 = p["5.14"].mechanisms
    assert (m14.bulk_statistics, m14.numa_statistics, m14.pcp_lock) == (
        "after_irq",
        "count_numa_events",
        "local_lock",
    )
    assert (m14.pcp_high, m14.pcp_free) == ("zone_highsize", "nr_pcp_free")
    for v in ("5.12", "5.13", "5.14"):
        assert p[v].commits
    ids = [c.id for v in versions() for c in p[v].commits if c.id]
    assert "ab234a260b1f" in ids and "3e23060b2d0b" in ids and "dbbee9d5cd83" in ids


def test_kernel_config_default_is_5_12_and_presets_fill_the_mechanisms() -> None:
    assert KernelConfig() == KernelConfig.for_version("5.12")
    k = KernelConfig.for_version("5.14", debug_list=False)
    assert k.version == "5.14" and k.debug_list is False and k.is_preset()
    assert not k.replace(bulk_statistics="per_page").is_preset()
    with pytest.raises(ValueError, match="unknown kernel version"):
        KernelConfig.for_version("6.1")


def _scenario(tmp_path: Path, kernel: dict, strategies: list[str]) -> Path:
    doc = yaml.safe_load(PAGE_BENCH.read_text())
    doc["hardware"] = str((PAGE_BENCH.parent / doc["hardware"]).resolve())
    doc["kernel"] = {**doc["kernel"], **kernel}
    doc["strategies"] = strategies
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def test_a_bulk_strategy_on_5_11_and_an_unknown_version_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"kernel\.version: kernel 5\.11 has no bulk allocator, which strategy 'bulk_list'"
    ):
        load_scenario(_scenario(tmp_path, {"version": "5.11"}, ["single", "bulk_list"]))
    with pytest.raises(ConfigError, match=r"kernel\.version: unknown kernel version"):
        load_scenario(_scenario(tmp_path, {"version": "4.19"}, ["single"]))
    # `version: 5.14` unquoted in YAML is a number: it reads as the version it spells
    sc = load_scenario(_scenario(tmp_path, {"version": 5.14}, ["single"]))
    assert sc.model.kernel.version == "5.14"


def test_rows_carry_the_kernel_and_a_setting_or_grid_can_change_it(tmp_path: Path) -> None:
    ov = Overrides(
        strategies=["single"],
        batches=[1],
        duration="5 us",
        settings=(Setting("kernel.version", "5.11", "t", "t"),),
    )
    sc = load_scenario(PAGE_BENCH, ov)
    row = run_point(sc, Point("single", 1, 1))
    assert row["kernel"] == "5.11"
    grid = Overrides(
        strategies=["single"],
        batches=[1],
        duration="5 us",
        grid=(Setting("kernel.version", ["5.13", "5.14"], "t", "t"),),
    )
    sc = load_scenario(PAGE_BENCH, grid)
    rows = [
        run_point(sc, Point("single", 1, 1, 0, g))
        for g in ((("kernel.version", "5.13"),), (("kernel.version", "5.14"),))
    ]
    assert [r["kernel"] for r in rows] == ["5.13", "5.14"]


# ---- what each preset does differently ------------------------------------------------------------


def _one_alloc_window(version: str) -> tuple[float, float]:
    """(IRQ-off window, whole call) of one single-page allocation from a warm pcp list."""
    m = new_machine(TINY_1NODE, version)
    cpu = m.cpus[0]
    run_on(cpu, alloc_pages_node(cpu, GFP_ATOMIC, 0))  # refills the pcp list
    t0 = cpu.now()
    run_on(cpu, alloc_pages_node(cpu, GFP_ATOMIC, 0))
    start, end = next(cpu.recent_windows.newest_first())
    return end - start, cpu.now() - t0


def test_each_kernel_charges_its_own_irq_toggle_and_5_14_counts_after_the_window() -> None:
    c = new_machine(TINY_1NODE).costs
    w11, t11 = _one_alloc_window("5.11")
    w13, t13 = _one_alloc_window("5.13")
    w14, t14 = _one_alloc_window("5.14")
    # the whole call: 5.11 pays the popf toggle where 5.13 pays the sti one
    assert t11 - t13 == pytest.approx(c.irq_popf - c.irq_sti, rel=1e-9)
    # 5.14: the counters leave the window (statistics without calls), free_factor halves inside it
    assert w13 - w14 == pytest.approx(c.statistics_inc - c.pcp_free_factor, rel=1e-9)
    assert t13 - t14 == pytest.approx(c.statistics_inc - c.statistics_count - c.pcp_free_factor, rel=1e-9)


def _bulk_window_and_time(version: str, n: int, **kconfig) -> tuple[float, float]:
    m = new_machine(TINY_1NODE, version, **kconfig)
    cpu = m.cpus[0]
    arr = PageArray([None] * n, m.registry.alloc("test.array", 0, n))
    run_on(cpu, alloc_pages_node(cpu, GFP_KERNEL, 0))  # a warm pcp list
    t0 = cpu.now()
    assert run_on(cpu, __alloc_pages_bulk(cpu, GFP_KERNEL, 0, None, n, page_array=arr)) == n
    start, end = next(cpu.recent_windows.newest_first())
    return end - start, cpu.now() - t0


@pytest.mark.parametrize("n", [8, 40])
def test_bulk_statistics_per_page_in_5_13_once_after_the_window_in_5_14(n: int) -> None:
    c = new_machine(TINY_1NODE).costs
    per_page, t_pp = _bulk_window_and_time("5.13", n)
    per_call, t_pc = _bulk_window_and_time("5.13", n, bulk_statistics="per_call")  # v1
    after, t_after = _bulk_window_and_time("5.14", n)
    # v3..5.13: n updates inside the window; v1: one
    assert per_page - per_call == pytest.approx((n - 1) * c.statistics_inc, rel=1e-9)
    assert t_pp - t_pc == pytest.approx((n - 1) * c.statistics_inc, rel=1e-9)
    # 5.14: none inside the window, one (without calls) after it
    assert per_call - after == pytest.approx(c.statistics_inc, rel=1e-9)
    assert t_pc - t_after == pytest.approx(c.statistics_inc - c.statistics_count, rel=1e-9)


def test_5_14_pcp_high_is_the_low_watermark_split_over_the_node_cpus() -> None:
    hw = hardware(ROOT / "hardware" / "broadwell-e5-1650v4.yaml")
    b12 = boot_numbers(hw, thp=True)
    b14 = boot_numbers(hw, thp=True, pcp_high="zone_highsize")
    for z12, z14 in zip(b12.zones, b14.zones):
        assert z12.pcp_high == 6 * z12.pcp_batch or z12.pcp_batch == 1
        assert z14.pcp_high == max(z14.wmark_low // 6, z14.pcp_batch * 4)  # one node, six CPUs
    normal14 = b14.zones[-1]
    assert normal14.pcp_high > 3000  # ~22.9k low-watermark pages over 6 CPUs, vs 378 on 5.12
    assert zone_highsize(100, 63, 0, 4) == 63 * 4  # a CPU-less node splits over the online CPUs


def test_5_14_drains_grow_without_allocations_and_allocations_shrink_them() -> None:
    m = new_machine(TINY_1NODE, "5.14")
    pcp = normal(m).pcp[0]
    high, batch = 1000, 63
    sizes = [nr_pcp_free(pcp, high, batch) for _ in range(6)]
    assert sizes == [63, 126, 252, 504, 937, 937]  # x2 per drain, at most high - batch
    cpu = m.cpus[0]
    run_on(cpu, alloc_pages_node(cpu, GFP_ATOMIC, 0))
    assert pcp.free_factor == 4 >> 1  # rmqueue_pcplist: free_factor >>= 1
    assert nr_pcp_free(pcp, 10, 63) == 1  # high below batch: one page


def test_5_14_reclaim_active_caps_the_high_mark() -> None:
    m = new_machine(TINY_1NODE, "5.14")
    z = normal(m)
    cpu = m.cpus[0]
    buf = CallerBuffers.create(m, "t", 0, 400)
    pages = run_on(cpu, alloc_attempt(cpu, "bulk_array", GFP_KERNEL, 0, 300, buf))
    z.reclaim_active = True  # kswapd balancing the node (set_reclaim_active)
    run_on(cpu, free_attempt(cpu, "one_by_one", pages, buf))
    pcp = z.pcp[0]
    assert pcp.drains >= 1 and pcp.count < 4 * pcp.batch  # drained at 4 x batch, not pcp->high
    m.check_invariants()


# ---- page_bench frees as page_bench04_bulk does ---------------------------------------------------


def test_the_list_variant_frees_with_list_del_and___free_pages_the_array_with_put_page() -> None:
    """Per page, freeing from the array costs put_page's layers plus the slot's load and NULL
    store; from the list, a list_del (3 lines, a __list_del_entry_valid) and __free_pages."""
    n = 20
    out = {}
    for form in ("list", "array"):
        m = new_machine(TINY_1NODE)
        cpu = m.cpus[0]
        buf = CallerBuffers.create(m, "t", 0, n)
        if form == "list":
            plist = PageList([], buf.list_head_line)
            run_on(cpu, __alloc_pages_bulk(cpu, GFP_KERNEL, 0, None, n, page_list=plist))
            t0, k0 = cpu.now(), cpu.cache_cost_ns
            run_on(cpu, free_list_attempt(cpu, "one_by_one", plist))
        else:
            got = run_on(cpu, alloc_attempt(cpu, "bulk_array", GFP_KERNEL, 0, n, buf))
            t0, k0 = cpu.now(), cpu.cache_cost_ns
            run_on(cpu, free_attempt(cpu, "one_by_one", got, buf, from_array=True))
        assert not m.allocated
        out[form] = (cpu.now() - t0) - (cpu.cache_cost_ns - k0)  # work, lines apart
        c = m.costs
    array_layer = c.atomic + c.put_page + 2 * c.op
    list_layer = c.call + c.atomic + 3 * c.list_line + c.list_del_check
    assert out["array"] - out["list"] == pytest.approx(n * (array_layer - list_layer), rel=1e-9)
    assert c.put_page > c.call  # put_page goes through more than __free_pages


# ---- memory-level parallelism ---------------------------------------------------------------------


def test_combine_pays_the_chain_in_full_and_overlaps_the_rest() -> None:
    costs = np.array([90.0, 90.0, 90.0, 10.0])
    none = np.zeros(4, dtype=bool)
    assert combine(costs, none, 10) == 280.0  # all dependent: the sum
    asyn = np.array([False, True, True, True])
    assert combine(costs, asyn, 10) == 90.0  # chain 90 >= slowest 90 >= 280/10
    assert combine(costs, asyn, 2) == 140.0  # two fill buffers: 280 / 2
    assert combine(np.array([0.0, 50.0]), np.array([False, True]), 10) == 50.0  # the slowest store


def test_async_stores_overlap_in_a_touch_and_the_cache_state_is_the_same() -> None:
    a = new_machine(TINY_1NODE)
    b = new_machine(TINY_1NODE)
    lines = [a.registry.alloc(f"t{i}", 0) for i in range(6)]
    b.registry.alloc("x", 0, 6)
    chain = a.cpus[0].touch(lines)
    overlapped = b.cpus[0].touch([lines[0], *(ln | ASYNC for ln in lines[1:])])
    dram = chain / 6
    assert chain == pytest.approx(6 * dram) and overlapped == pytest.approx(
        dram
    )  # all misses: 1 chain + 5 in flight
    assert a.cache.level_counts.tolist() == b.cache.level_counts.tolist()
    # without memory-level parallelism every access is on the chain again
    c = new_machine(TINY_1NODE)
    c.registry.alloc("x", 0, 6)
    c.cache.mlp = False
    assert c.cpus[0].touch([lines[0], *(ln | ASYNC for ln in lines[1:])]) == pytest.approx(chain)


def test_runs_of_calls_with_async_steps_price_like_the_loop() -> None:
    """A tape's ASYNC step (a caller's array store) combines per call as cpu.touch does."""
    from simulator.machine.tape import Spend, Touch

    def program(use_runs: bool):
        m = new_machine(TINY_1NODE)
        cpu = m.cpus[0]
        buf = CallerBuffers.create(m, "t", 0, 64)
        got = run_on(cpu, alloc_attempt(cpu, "single", GFP_KERNEL, 0, 64, buf))  # ASYNC epilogue stores
        lines = np.array([buf.array.line(i) | ASYNC for i in range(64)], dtype=np.int64)
        steps = (Touch((lines,)), Spend(1.0))
        if use_runs:
            run_on(cpu, free_unref_page_run(cpu, got, epilogue=steps))
        else:
            m.tapes = False
            run_on(cpu, free_unref_page_run(cpu, got, epilogue=steps))
        return cpu.now(), cpu.cache_cost_ns, m.cache.level_counts.tolist()

    assert program(True) == program(False)


def test_the_profiled_run_replay_attributes_lines_to_the_profiled_functions() -> None:
    """On a cold machine the first allocations miss: the replaying CPU puts those costs under
    rmqueue (which the profile names for rmqueue_pcplist, __rmqueue_pcplist, rmqueue_bulk)."""
    from simulator.replay import ProfilingCPU

    m = boot(TINY_1NODE, KernelConfig(), ProfilingCPU)
    cpu = m.cpus[0]
    for _ in range(3):
        page = run_on(cpu, alloc_pages_node(cpu, GFP_ATOMIC, 0))
        run_on(cpu, put_page(cpu, page))
    assert isinstance(cpu, ProfilingCPU)
    assert cpu.stalls["rmqueue"] > 0  # the refill's struct pages under zone->lock, cold
    assert set(cpu.stalls) <= {
        "rmqueue",
        "get_page_from_freelist",
        "prep_new_page",
        "free_unref_page_commit",
        "free_pcp_prepare",
        "free_unref_page_prepare",
        "__alloc_pages_nodemask",
    }
    assert sum(cpu.stalls.values()) == pytest.approx(cpu.cache_cost_ns)
