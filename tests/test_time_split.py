"""Every figure of a row covers one window per measured CPU (simulator/workloads/windows.py): each
CPU's time in it splits into run + spin + idle that sum to the window; the lock statistics fit in
it (a CPU cannot spin longer than it runs; lockstat's counts nest). Checked on every workload at
several CPU counts, short runs, including the SMT profile and its memory controllers."""

from __future__ import annotations

import pytest
import simpy
from conftest import ROOT

from simulator.machine.lock import ZONE_LOCK
from simulator.mm.swap import LRU_LOCK
from simulator.run import allocator_stats, point_context
from simulator.scenario import Overrides, Setting, load_scenario
from simulator.system import build_machine
from simulator.workloads import WORKLOADS
from simulator.workloads.api import Point

SKYLAKE = str(ROOT / "hardware" / "skylake-sp-2s.yaml")
HT = str(ROOT / "hardware" / "skylake-sp-2s-ht.yaml")

# (label, scenario, overrides, settings, strategy, batch, cpus)
CASES = [
    ("page_bench c1", "page_bench.yaml", {"duration": "30 us"}, {"warmup": "10 us"}, "single", 64, 1),
    ("page_bench c6", "page_bench.yaml", {"duration": "30 us"}, {"warmup": "10 us"}, "bulk_array", 512, 6),
    (
        "page_bench skylake c26",
        "page_bench.yaml",
        {"hardware": SKYLAKE, "duration": "20 us"},
        {"warmup": "10 us"},
        "single",
        1024,
        26,
    ),
    (
        "page_bench skylake-ht c112",
        "page_bench.yaml",
        {"hardware": HT, "duration": "10 us"},
        {"warmup": "5 us"},
        "bulk_array",
        512,  # past pcp->high: every CPU refills and drains under zone->lock, siblings busy
        112,
    ),
    ("xdp_redirect c1", "xdp_redirect.yaml", {"duration": "200 us"}, {"warmup": "100 us"}, "single", 64, 1),
    (
        "xdp_redirect_irq c1",
        "xdp_redirect_irq.yaml",
        {"duration": "300 us"},
        {"warmup": "100 us"},
        "bulk_array",
        16,
        1,
    ),
    (
        "xdp_redirect_multiqueue c8",
        "xdp_redirect_multiqueue.yaml",
        {"duration": "100 us"},
        {"warmup": "100 us"},
        "bulk_list",
        64,
        8,
    ),
    ("nfs", "nfs.yaml", {"duration": "3 ms"}, {"warmup": "1 ms"}, "bulk_array", 1, 6),
    ("nfs_numa", "nfs_numa.yaml", {"duration": "2 ms"}, {"warmup": "1 ms"}, "single", 1, 56),
    (
        "page_fault1 c4",
        "page_fault1.yaml",
        {"duration": "100 us"},
        {"warmup": "50 us", "page_fault1.mapping": "256 KiB"},
        "single",
        1,
        4,
    ),
    (
        "page_fault1 c112",
        "page_fault1.yaml",
        {"duration": "50 us"},
        {"warmup": "50 us", "page_fault1.mapping": "256 KiB"},
        "single",
        1,
        112,  # every thread of the HT profile: siblings busy, both lru_locks and zone locks contended
    ),
]


def _run(file: str, kw: dict, settings: dict, strategy: str, batch: int, cpus: int):
    ov = Overrides(**kw, settings=tuple(Setting(p, v, "test", p) for p, v in settings.items()))
    sc = load_scenario(ROOT / "scenarios" / file, ov)
    m = build_machine(simpy.Environment(), sc.hardware, sc.model.kernel.to_config(), sc.costs, sc.code)
    ctx = point_context(m, sc, Point(strategy, batch, cpus))
    figures = WORKLOADS[sc.model.workload].run(ctx)
    m.check_invariants()
    row = {**figures, **allocator_stats(m, ctx)}
    return m, ctx, row


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_cpus_time_splits_into_run_spin_idle_and_the_lock_figures_fit(case):
    _, file, kw, settings, strategy, batch, cpus = case
    m, ctx, row = _run(file, kw, settings, strategy, batch, cpus)
    split = ctx.time_split()
    assert split and len(split) == len(ctx.measured_cpus or m.cpus)
    for t in split:
        tol = 1e-9 * max(t.length, 1.0)
        assert t.run + t.spin + t.idle == pytest.approx(t.length, rel=1e-12, abs=tol)
        assert t.length >= 0 and t.spin >= 0 and t.run >= -tol and t.idle >= -tol, t
        assert t.spin <= t.run + t.spin + tol
    shares = row["cpu_run_share"] + row["cpu_spin_share"] + row["cpu_idle_share"]
    assert shares == pytest.approx(1.0, abs=1e-9)
    assert row["zone_lock_contentions"] == row["zone_lock_contended"] <= row["zone_lock_acquisitions"]
    assert row["zone_lock_con_bounces"] <= row["zone_lock_contentions"]
    assert row["zone_lock_acq_bounces"] <= row["zone_lock_acquisitions"]
    assert row["zone_lock_wait_ns_total"] == row["zone_lock_wait_ns"]
    assert row["zone_lock_wait_max_ns"] <= row["zone_lock_wait_ns_total"] + 1e-9
    # the zone locks and (page_fault1) the lru_locks are the only spinlocks these workloads take:
    # their waits are the CPUs' spin
    assert set(m.locks) == set(m.locks_of(ZONE_LOCK)) | set(m.locks_of(LRU_LOCK))
    spin = row["zone_lock_spin_share"] + row.get("lru_lock_spin_share", 0.0)
    assert spin == pytest.approx(row["cpu_spin_share"], rel=1e-6, abs=1e-9)
    if "ns_per_page" in row:
        # page_bench: time per page sums the CPUs' windows; a wait cannot outlast it
        assert row["zone_lock_wait_ns_per_page"] <= row["ns_per_page"] * (1 + 1e-9)
        assert sum(t.length for t in split) / row["pages"] == pytest.approx(row["ns_per_page"])
        assert row["cpu_idle_share"] == pytest.approx(0.0, abs=1e-9)  # a tight loop never idles
    if "faults_per_s" in row:
        # page_fault1: every task runs flat out (never idle); the lru_locks' waits fit in the time
        assert row["cpu_idle_share"] == pytest.approx(0.0, abs=1e-9)
        assert row["lru_lock_wait_ns_total"] <= sum(t.length for t in split) * (1 + 1e-9)
        assert row["lru_lock_con_bounces"] <= row["lru_lock_contentions"] <= row["lru_lock_acquisitions"]
