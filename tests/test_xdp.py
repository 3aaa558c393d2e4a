"""The XDP-redirect replay: page_pool, mlx5 and veth paths, and the workload's properties.

Workload runs use short warm-ups and durations (a few thousand packets) to keep the suite fast;
the calibration checks use the reference scenario as committed.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import simpy
import yaml
from conftest import BROADWELL, ROOT, TINY_1NODE, TINY_2NODE, hardware, new_machine, run_on

from simulator.calibration import Calibration, load_outside_file, net_costs, outside_path
from simulator.errors import ConfigError
from simulator.mm.page_alloc import alloc_pages_node
from simulator.net.mlx5 import MLX5E_CACHE_SIZE, Mlx5eRq, mlx5e_rx_cache_get, mlx5e_rx_cache_put
from simulator.net.page_pool import (
    PP_ALLOC_CACHE_SIZE,
    PagePool,
    page_pool_alloc_pages,
    page_pool_put_page,
    page_pool_recycle_direct,
)
from simulator.net.tally import NetTally
from simulator.run import run_point
from simulator.scenario import Overrides, Scenario, load_scenario
from simulator.validation import XDP_SCENARIO, fit_outside, scenario_with
from simulator.workloads.api import Point

TARGET_PPS = 3_677_958
ROW_FIELDS = (
    "pps",
    "pps_per_cpu",
    "ns_per_packet",
    "alloc_ns_per_packet",
    "irq_latency_p50_ns",
    "irq_latency_p99_ns",
    "irq_latency_max_ns",
    "drops",
    # the core's allocator statistics
    "zone_lock_acquisitions",
    "pcp_refills",
    "pcp_drains",
    "irq_off_max_ns",
    "cache_misses_per_page",
)


def xdp_scenario(
    tmp_path: Path,
    hw: Path = BROADWELL,
    strategies: tuple[str, ...] = ("single",),
    batches: tuple[int, ...] = (64,),
    cpus: tuple[int, ...] = (1,),
    warmup: str = "200 us",
    duration: str = "300 us",
    kernel: dict[str, Any] | None = None,
    **params: Any,
) -> Scenario:
    doc = {
        "name": "xdp_test",
        "workload": "xdp_redirect",
        "hardware": str(hw),
        "strategies": list(strategies),
        "batches": list(batches),
        "cpus": list(cpus),
        "warmup": warmup,
        "duration": duration,
        "kernel": kernel or {},
        "xdp_redirect": params,
    }
    path = tmp_path / "xdp_test.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return load_scenario(path)


def one(sc: Scenario, strategy: str = "single", batch: int = 64, cpus: int = 1) -> dict[str, Any]:
    return run_point(sc, Point(strategy, batch, cpus))


# ---------------------------------------------------------------------------------------------
# page_pool, mlx5 cache
# ---------------------------------------------------------------------------------------------


def _pool(strategy: str = "bulk_array", refill: int = 64, path: Path = TINY_1NODE) -> tuple[Any, PagePool]:
    m = new_machine(path)
    cpu = m.cpus[0]
    pool = PagePool(
        m, f"{cpu.scope}.pp", cpu.node, strategy, refill, 1024, net_costs(Calibration(m.hw), 100.0)
    )
    return m, pool


def _alloc(cpu: Any, pool: PagePool, t: NetTally) -> Generator[simpy.Event, None, int | None]:
    return page_pool_alloc_pages(cpu, pool, t)


@pytest.mark.parametrize("strategy", ["single", "bulk_list", "bulk_array", "pagevec"])
def test_slow_path_fills_alloc_cache_by_strategy(strategy: str) -> None:
    m, pool = _pool(strategy, 64)
    cpu, t = m.cpus[0], NetTally()
    page = run_on(cpu, _alloc(cpu, pool, t))
    assert page is not None
    pool.check()
    assert pool.stats.slow_calls == 1
    # 5.11 hands one page straight back; the bulk forms keep the rest of the refill in alloc.cache
    assert pool.count == (0 if strategy == "single" else 63)
    assert pool.hold_cnt == (1 if strategy == "single" else 64)
    assert t.alloc_ns > 0
    # the next 63 come from alloc.cache without the allocator
    before = m.stats.pages_allocated
    for _ in range(pool.count):
        assert run_on(cpu, _alloc(cpu, pool, t)) is not None
    assert m.stats.pages_allocated == before
    m.check_invariants()


def test_refill_above_cache_size_grows_alloc_cache() -> None:
    m, pool = _pool("bulk_array", 200)
    cpu = m.cpus[0]
    assert pool.cache_size == 200 > PP_ALLOC_CACHE_SIZE
    run_on(cpu, _alloc(cpu, pool, NetTally()))
    assert pool.count == 199
    pool.check()


def test_put_page_direct_to_cache_else_ring_else_released() -> None:
    m, pool = _pool("single", 64)
    cpu, t = m.cpus[0], NetTally()
    pool.ring_size = 2
    pages = [run_on(cpu, _alloc(cpu, pool, t)) for _ in range(4)]
    run_on(cpu, page_pool_recycle_direct(cpu, pool, pages[0], t))
    assert pool.count == 1 and pool.stats.recycle_cached == 1
    run_on(cpu, page_pool_put_page(cpu, pool, pages[1], False, t))
    run_on(cpu, page_pool_put_page(cpu, pool, pages[2], False, t))
    assert list(pool.ring) == pages[1:3] and pool.stats.recycle_ring == 2
    freed = m.stats.pages_freed
    run_on(cpu, page_pool_put_page(cpu, pool, pages[3], False, t))  # ring full: released
    assert pool.stats.recycle_ring_full == 1 and pool.stats.released == 1
    assert m.stats.pages_freed == freed + 1
    m.check_invariants()


def test_refill_from_ptr_ring_before_the_allocator() -> None:
    m, pool = _pool("bulk_list", 64)
    cpu, t = m.cpus[0], NetTally()
    pages = [run_on(cpu, _alloc(cpu, pool, t)) for _ in range(64)]  # one bulk refill
    assert pool.count == 0
    for p in pages[:10]:
        run_on(cpu, page_pool_put_page(cpu, pool, p, False, t))
    calls = pool.stats.slow_calls
    got = run_on(cpu, _alloc(cpu, pool, t))
    assert got == pages[9]  # moved 10 from the ring in order, popped the last
    assert pool.stats.refill_ring == 10 and pool.count == 9 and not pool.ring
    assert pool.stats.slow_calls == calls


def test_ring_page_of_another_node_goes_back_to_the_allocator() -> None:
    m, pool = _pool("single", 64, TINY_2NODE)
    cpu, t = m.cpus[0], NetTally()
    assert pool.nid == 0
    remote = run_on(cpu, alloc_pages_node(cpu, pool.gfp, 1))
    assert remote is not None and m.page_zone(remote).node == 1
    pool.hold_cnt += 1  # as if it had been the pool's
    run_on(cpu, page_pool_put_page(cpu, pool, remote, False, t))
    freed = m.stats.pages_freed
    page = run_on(cpu, _alloc(cpu, pool, t))
    assert pool.stats.numa_mismatch == 1 and m.stats.pages_freed == freed + 1
    assert page is not None and m.page_zone(page).node == 0  # then the slow path, on node 0
    m.check_invariants()


def test_mlx5_cache_holds_one_less_than_its_size() -> None:
    m, pool = _pool("single", 64)
    cpu = m.cpus[0]
    rq = Mlx5eRq(m, 0, cpu, pool, pool.costs, nic_node=0)
    t = NetTally()
    pages = [run_on(cpu, _alloc(cpu, pool, t)) for _ in range(MLX5E_CACHE_SIZE)]
    stored = [mlx5e_rx_cache_put(cpu, rq, p) for p in pages]
    assert stored.count(True) == MLX5E_CACHE_SIZE - 1 and stored[-1] is False
    assert mlx5e_rx_cache_get(cpu, rq) == pages[0]  # FIFO: head first
    assert rq.cache_reuse == 1 and rq.cache_full == 1


# ---------------------------------------------------------------------------------------------
# the workload
# ---------------------------------------------------------------------------------------------


def test_reference_scenario_rows_for_four_strategies_single_calibrated() -> None:
    sc = scenario_with(XDP_SCENARIO, Overrides(duration="1 ms"), {"warmup": "300 us"})
    rows = {r["strategy"]: r for r in (run_point(sc, p) for p in _points(sc))}
    assert set(rows) == {"single", "bulk_list", "bulk_array", "pagevec"}
    for r in rows.values():
        for f in ROW_FIELDS:
            assert f in r, f
        assert r["drops"] is None  # saturating load: the offered rate is unknown
        assert r["irqs"] == 0  # saturated: NAPI never re-arms
        # so no interrupt waited: no latency figure, rather than a 0 that reads as "no delay"
        assert r["irq_latency_p99_ns"] is None and r["irq_latency_max_ns"] is None
    single = rows["single"]
    assert abs(single["pps"] / TARGET_PPS - 1) < 0.03, (
        "recalibrate: python -m simulator.validation --calibrate"
    )
    assert single["allocator_calls_per_packet"] == pytest.approx(1.0)
    for st in ("bulk_list", "bulk_array", "pagevec"):
        r = rows[st]
        assert r["pps"] > single["pps"]
        assert r["alloc_ns_per_packet"] < single["alloc_ns_per_packet"]
        # the outside, DMA and free work do not depend on the strategy
        for k in ("outside_ns_per_packet", "dma_ns_per_packet", "free_ns_per_packet"):
            assert r[k] == pytest.approx(single[k], rel=0.02), k
    # one bulk call of 64 keeps IRQs off far longer than one page; a pagevec call of 15 less so
    assert rows["bulk_list"]["irq_off_max_ns"] > 20 * single["irq_off_max_ns"]
    assert rows["pagevec"]["irq_off_max_ns"] < rows["bulk_array"]["irq_off_max_ns"]


def _points(sc: Scenario) -> list[Point]:
    from simulator.run import expand

    return expand(sc)


def test_fitted_outside_cost_reproduces() -> None:
    hw = hardware(BROADWELL)
    committed = load_outside_file(outside_path(hw)).fitted
    assert committed is not None, "run python -m simulator.validation --calibrate"
    fit = fit_outside(XDP_SCENARIO, start=committed.outside_ns_per_packet)
    assert fit.outside_ns == pytest.approx(committed.outside_ns_per_packet, rel=1e-3), (
        "the model changed since the fit: rerun python -m simulator.validation --calibrate"
    )
    assert abs(fit.gap) < 1e-3


def test_drops_when_offered_load_exceeds_capacity_with_a_small_ring(tmp_path: Path) -> None:
    sc = xdp_scenario(tmp_path, offered_load=10e6, ring_size=64)
    r = one(sc)
    assert r["drops"] > 0
    assert r["pps"] < 10e6 * 0.6
    assert r["cpu_busy_share"] > 0.99


def test_no_drops_below_capacity(tmp_path: Path) -> None:
    sc = xdp_scenario(tmp_path, offered_load=1e6)
    r = one(sc)
    assert r["drops"] == 0
    assert r["pps"] == pytest.approx(1e6, rel=0.1)
    assert r["cpu_busy_share"] < 0.5


@pytest.mark.parametrize("path", ["ptr_ring", "mlx5_cache"])
def test_recycle_share_one_makes_allocator_calls_vanish(tmp_path: Path, path: str) -> None:
    sc = xdp_scenario(tmp_path, strategies=("bulk_list",), recycle=1.0, recycle_path=path)
    r = one(sc, "bulk_list")
    assert r["allocator_pages_per_packet"] < 0.01
    assert r["allocator_calls_per_packet"] < 0.01
    assert r["free_ns_per_packet"] < 0.5
    if path == "mlx5_cache":
        assert r["mlx5_cache_reuse"] > 0.9 * r["packets"]
        assert r["dma_ns_per_packet"] < 0.1  # pages stay mapped
    else:
        assert r["pool_refill_ring"] > 0.9 * r["packets"]


def test_half_recycled_halves_the_allocator_traffic(tmp_path: Path) -> None:
    sc = xdp_scenario(tmp_path, recycle=0.5)
    r = one(sc)
    assert r["allocator_pages_per_packet"] == pytest.approx(0.5, abs=0.05)


def test_irq_latency_when_napi_rearms_below_saturation(tmp_path: Path) -> None:
    sc = xdp_scenario(
        tmp_path, strategies=("bulk_list",), offered_load=3e6, queues_per_cpu=2, duration="500 us"
    )
    r = one(sc, "bulk_list")
    assert r["irqs"] > 0
    assert r["irq_latency_max_ns"] > 0
    assert r["irq_latency_p50_ns"] <= r["irq_latency_p99_ns"] <= r["irq_latency_max_ns"]
    # an interrupt waits at most for the longest IRQ-off window
    assert r["irq_latency_max_ns"] <= r["irq_off_max_ns"] + 1e-6


def test_deterministic(tmp_path: Path) -> None:
    sc = xdp_scenario(tmp_path, offered_load=2.5e6)
    a, b = one(sc), one(sc)
    for row in (a, b):
        row.pop("wall_s")
    assert a == b


def test_memory_pressure_bulk_falls_back_to_one_page(tmp_path: Path) -> None:
    sc = xdp_scenario(tmp_path, strategies=("bulk_array",), batches=(16, 64), free_pages_over_low=32)
    small, big = one(sc, "bulk_array", 16), one(sc, "bulk_array", 64)
    assert small["bulk_fallback_single"] == 0
    assert small["allocator_calls_per_packet"] == pytest.approx(1 / 16, rel=0.05)
    # low + 64 > free: every refill falls back to the single-page path, one page per call
    assert big["bulk_fallback_single"] > 0
    assert big["allocator_calls_per_packet"] == pytest.approx(1.0, rel=0.02)
    assert big["pps"] < small["pps"]


def test_nic_on_other_socket_costs_per_packet(tmp_path: Path) -> None:
    sc = xdp_scenario(tmp_path, hw=TINY_2NODE, cpus=(2,), cpu_placement="spread", nic_node=0)
    r = one(sc, cpus=2)
    assert r["queues"] == 2
    assert r["pps_per_cpu_other_socket"] < r["pps_per_cpu_nic_socket"]


def test_check_rejects_bad_refill_and_node(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refill"):
        xdp_scenario(tmp_path, batches=(257,))
    with pytest.raises(ConfigError, match="nic_node"):
        xdp_scenario(tmp_path, nic_node=1)
    with pytest.raises(ConfigError, match="ring_size"):
        xdp_scenario(tmp_path, ring_size=100)


def test_scenario_files_validate() -> None:
    for path in sorted((ROOT / "scenarios").glob("xdp_redirect*.yaml")):
        sc = load_scenario(path)
        assert sc.model.workload == "xdp_redirect"
