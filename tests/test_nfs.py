"""The NFS server workload: rows for every strategy, short fills and sleeps under pressure only,
pagevec's round trips, the bulk allocator staying local, remote frees, determinism."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.machine.sched import THREAD, RunQueues
from simulator.mm.machine import Machine
from simulator.mm.mmzone import MIGRATE_MOVABLE, ZONE_NORMAL
from simulator.run import expand, point_context, run_point
from simulator.scenario import Overrides, Scenario, load_scenario
from simulator.sunrpc.svc import SvcPool, SvcRqst, SvcServ, svc_alloc_arg, svc_rqst_pages
from simulator.system import build_machine
from simulator.workloads import WORKLOADS
from simulator.workloads.api import Point
from simulator.workloads.nfs import (
    DEFAULT_MIX,
    NfsParams,
    RequestKind,
    draw_request_kind,
    request_kind_cdf,
)

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "scenarios"
STRATEGIES = ["single", "bulk_list", "bulk_array", "pagevec"]
FIELDS = (
    "ops_per_s",
    "latency_us_p50",
    "latency_us_p99",
    "latency_us_p999",
    "svc_alloc_arg_us_mean",
    "svc_alloc_arg_us_p99",
    "pages_per_call_mean",
    "partial_fills",
    "sleeps",
    "remote_node_allocs",
    # allocator statistics every row carries
    "zone_lock_acquisitions",
    "pcp_refills",
    "irq_off_max_ns",
    "slowpath",
    "bulk_fallback_single",
)


def short(path: Path, warmup: float | None = None, **ov: Any) -> Scenario:
    """The scenario with command-line overrides, and its warm-up changed (ns) if given."""
    sc = load_scenario(path, Overrides(**ov))
    if warmup is None:
        return sc
    model = sc.model.model_copy(update={"warmup": warmup})
    return dataclasses.replace(sc, model=model)


def with_params(sc: Scenario, **changes: Any) -> Scenario:
    """The scenario with its nfs section changed (validated as a scenario file would be)."""
    doc = sc.params.model_dump(mode="python")
    for key, value in changes.items():
        doc[key] = value
    params = NfsParams.model_validate(_as_yaml_values(doc))
    return dataclasses.replace(sc, params=params)


def _as_yaml_values(doc: Any) -> Any:
    """model_dump gives numbers where the YAML gives units; turn sizes and durations back."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k in ("payload", "mss", "header", "max_payload", "free") and isinstance(v, int):
                out[k] = f"{v} B"
            elif k in (
                "rpc",
                "per_wire_packet",
                "delay",
                "think",
                "hold",
                "sleep",
                "reclaim_cost",
                "sample",
            ) and (isinstance(v, (int, float)) and not isinstance(v, bool)):
                out[k] = f"{v} ns"
            else:
                out[k] = _as_yaml_values(v)
        return out
    if isinstance(doc, list):
        return [_as_yaml_values(v) for v in doc]
    return doc


def run_with_machine(sc: Scenario, strategy: str) -> tuple[dict[str, Any], Machine]:
    """run_point's steps, keeping the machine for inspection."""
    env = simpy.Environment()
    m = build_machine(env, sc.hardware, sc.model.kernel.to_config(), sc.costs, sc.code)
    ctx = point_context(m, sc, Point(strategy, 1, 1))
    figures = WORKLOADS["nfs"].run(ctx)
    m.check_invariants()
    return figures, m


@pytest.fixture(scope="module")
def nfs_rows() -> list[dict[str, Any]]:
    sc = short(SCEN / "nfs.yaml", duration="3 ms")
    return [run_point(sc, p) for p in expand(sc)]


def test_nfs_yaml_gives_a_row_per_strategy(nfs_rows):
    assert [r["strategy"] for r in nfs_rows] == STRATEGIES
    for r in nfs_rows:
        for f in FIELDS:
            assert f in r, f
        assert r["requests"] > 300
        assert r["ops_per_s"] > 0
        assert 0 < r["latency_us_p50"] <= r["latency_us_p99"] <= r["latency_us_p999"]
        assert r["svc_alloc_arg_us_mean"] > 0 and r["svc_alloc_arg_us_p99"] > 0
        assert r["pages_per_call_mean"] > 1
        # plenty of free memory: never short, never asleep, never remote
        assert r["partial_fills"] == 0 and r["sleeps"] == 0
        assert r["remote_node_allocs"] == 0


def test_bulk_strategies_are_cheaper_than_single_page_loop(nfs_rows):
    by = {r["strategy"]: r for r in nfs_rows}
    # same arrivals (common random numbers): the same requests, the same pages per refill
    assert len({r["requests"] for r in nfs_rows}) == 1
    assert by["bulk_array"]["svc_alloc_arg_us_mean"] < by["single"]["svc_alloc_arg_us_mean"]
    assert by["bulk_list"]["svc_alloc_arg_us_mean"] < by["single"]["svc_alloc_arg_us_mean"]


def pressured(strategy: str, bulk_fallback: str = "nr_populated") -> dict[str, Any]:
    """Two threads, node 0's zones just above their low watermark, only 256 KiB READs: the very
    first refill of rq_pages (259 entries) crosses low + nr_pages."""
    sc = short(SCEN / "nfs_pressure.yaml", duration="2 ms", warmup=0.0, strategies=[strategy])
    kernel = sc.model.kernel.model_copy(update={"bulk_fallback": bulk_fallback})
    sc = dataclasses.replace(sc, model=sc.model.model_copy(update={"kernel": kernel}))
    sc = with_params(
        sc,
        threads_per_node=2,
        clients={"model": "open", "rate": 20000.0},
        mix=[{"name": "read_256k", "weight": 1.0, "op": "read", "payload": "256 KiB"}],
        background={"rate": 0.0},
        memory={"free_wmark": 1.01},
    )
    return run_point(sc, expand(sc)[0])


@pytest.mark.parametrize("strategy", ["bulk_list", "bulk_array", "pagevec"])
def test_pressure_makes_bulk_refills_short_and_sleep(strategy):
    """Every short fill is a bulk call refused by its watermark (low + nr_pages) and answered
    by the single-page path with one page; none is an empty pcp loop (bulk_empty). So the two
    kernel.bulk_fallback rules give the same row here: the stall is svc_alloc_arg's 500 ms sleep
    after any short fill (5.13), not the fallback rule (for that, see test_page_alloc.py's
    test_bulk_fallback_rules_differ_when_vmstat_drift_hides_an_empty_zone)."""
    r = pressured(strategy)
    assert r["partial_fills"] >= 1
    assert r["sleeps"] == r["partial_fills"]  # short_fill: each sleeps (none was cut by a stop)
    assert r["bulk_fallback_single"] == r["partial_fills"] and r["bulk_empty"] == 0
    # a sleeping thread's requests wait: 500 ms shows in the tail
    assert r["svc_alloc_arg_us_max"] >= 500_000
    assert r["latency_us_p999"] >= r["latency_us_p50"]
    fixed = pressured(strategy, "nr_account")
    r.pop("wall_s")
    fixed.pop("wall_s")
    assert fixed == r


def test_pressure_single_page_loop_reclaims_instead_of_sleeping():
    r = pressured("single")
    assert r["partial_fills"] == 0 and r["sleeps"] == 0
    assert r["slowpath"] >= 1 and r["kswapd_wakeups"] >= 1


@pytest.mark.parametrize("missing", [1, 14, 15, 16, 65, 258])
def test_pagevec_makes_ceil_n_over_15_bulk_calls_per_refill(missing):
    sc = short(SCEN / "nfs.yaml")
    m = build_machine(simpy.Environment(), sc.hardware, sc.model.kernel.to_config(), sc.costs, sc.code)
    rq = RunQueues(m.env, m.cpus)
    serv = SvcServ(m, rq, "pagevec")
    r = SvcRqst(serv, 0, m.cpus[0], SvcPool(serv, 0))
    n = svc_rqst_pages()
    calls: list[int] = []

    def refill() -> Any:
        yield from rq.acquire(r.cpu, THREAD)
        assert (yield from svc_alloc_arg(r))  # fills all 259 entries
        # consume `missing` entries, as a request would, and refill
        for i in range(1, 1 + missing):
            r.rq_pages[i] = None
        before = m.stats.bulk_calls
        assert (yield from svc_alloc_arg(r))
        calls.append(m.stats.bulk_calls - before)
        yield from rq.release(r.cpu)

    m.env.process(refill())
    m.env.run()
    assert n == 259
    assert calls == [math.ceil(missing / 15)]
    assert r.missing() == 0


def numa(strategy: str, **changes: Any) -> tuple[dict[str, Any], Machine]:
    sc = short(SCEN / "nfs_numa.yaml", duration="1 ms", warmup=0.0)
    base: dict[str, Any] = {
        "threads_per_node": 2,
        "clients": {"model": "open", "rate": 20000.0},
        # node 0 about 100 pages above its low watermark: a first refill of 259 crosses it
        "memory": {"nodes": [0], "free_wmark": 1.002},
    }
    base.update(changes)
    return run_with_machine(with_params(sc, **base), strategy)


def test_bulk_allocates_remote_pages_only_through_its_single_page_fallback():
    single, _ = numa("single")
    assert single["remote_node_allocs"] > 0  # alloc_page() spills to node 1
    for strategy in ("bulk_array", "bulk_list", "pagevec"):
        r, _ = numa(strategy)
        # the bulk loop takes pages only from the local node's pcp lists; a remote page can
        # only be the one page of a call's single-page fallback
        assert r["remote_node_allocs"] <= r["bulk_calls"], strategy
        assert r["remote_node_allocs"] < single["remote_node_allocs"], strategy
        assert r["sleeps"] >= 1, strategy


def _foreign_pcp_pages(m: Machine) -> int:
    """Pages of node 0's ZONE_NORMAL on, or drained from, the pcp lists of node 1's CPUs."""
    z = m.nodes[0].zone(ZONE_NORMAL)
    assert z is not None
    return sum(p.count + p.drained_pages for p in z.pcp if m.cpus[p.cpu].node != 0)


def test_remote_frees_happen_when_configured():
    free_memory = {"nodes": [0], "free_wmark": None}
    _, m_remote = numa("bulk_array", nodes=[0], reply_free={"cpu": "remote"}, memory=free_memory)
    _, m_same = numa("bulk_array", nodes=[0], reply_free={"cpu": "same_node"}, memory=free_memory)
    assert _foreign_pcp_pages(m_remote) > 0
    assert _foreign_pcp_pages(m_same) == 0


def test_same_seed_same_row():
    sc = short(SCEN / "nfs.yaml", duration="1 ms", strategies=["bulk_array"])
    a, b = (run_point(sc, expand(sc)[0]) for _ in range(2))
    a.pop("wall_s")
    b.pop("wall_s")
    assert a == b
    other = load_scenario(SCEN / "nfs.yaml", Overrides(duration="1 ms", strategies=["bulk_array"], seed=2))
    c = run_point(other, expand(other)[0])
    assert c["latency_us_p99"] != a["latency_us_p99"] or c["requests"] != a["requests"]


def test_closed_loop_keeps_n_requests_in_flight():
    sc = short(SCEN / "nfs.yaml", duration="2 ms", strategies=["bulk_array"])
    sc = with_params(sc, clients={"model": "closed", "outstanding": 4}, pool_mode="pernode")
    r = run_point(sc, expand(sc)[0])
    assert r["requests"] > 50
    # Little's law: throughput = N / (mean latency), with at most N in flight
    mean_latency_s = 1 / r["ops_per_s"] * 4
    assert r["latency_us_p50"] * 1e-6 <= mean_latency_s * 1.05


@settings(max_examples=30, deadline=None)
@given(
    mix=st.one_of(
        st.just(list(DEFAULT_MIX)),
        st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=8).map(
            lambda ws: [RequestKind(name=f"k{i}", weight=w, op="small") for i, w in enumerate(ws)]
        ),
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_request_kinds_are_drawn_as_generator_choice_draws_them(mix, seed):
    """The workload's draw of a request's kind (request_kind_cdf, draw_request_kind: what run()
    calls) is Generator.choice(p=weights)'s: the same kinds, and the same random stream after."""
    weights = np.array([k.weight for k in mix]) / sum(k.weight for k in mix)
    cdf = request_kind_cdf(mix)
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    ours = [draw_request_kind(cdf, a) for _ in range(500)]
    theirs = [int(b.choice(len(mix), p=weights)) for _ in range(500)]
    assert ours == theirs
    assert a.random() == b.random()


# ---- the background allocator ---------------------------------------------------------------------


def background_run(**background: Any) -> tuple[dict[str, Any], Machine]:
    """nfs.yaml with no RPCs to speak of (one per second: none in 5.5 ms) and a steady background
    allocator on node 0: 32-page bursts every 1 ms (32,000 pages/s), at 1, 2, 3, 4 and 5 ms;
    the window starts at 2.5 ms."""
    sc = short(SCEN / "nfs.yaml", duration="3 ms", warmup=2.5e6, strategies=["bulk_array"])
    sc = with_params(
        sc,
        clients={"model": "open", "rate": 1.0},
        background={"rate": 32000.0, "burst": 32, "pattern": "steady", "node": 0, **background},
    )
    return run_with_machine(sc, "bulk_array")


def test_background_allocator_keeps_its_pages_and_counts_the_window_only():
    r, m = background_run()
    assert r["requests"] == 0
    # five bursts of 32 on the node's last CPU; the three after the window opened are counted
    assert r["background_pages"] == 3 * 32 and r["background_failures"] == 0
    threads = 8  # nfs.yaml: 8 per node, one node: each filled its 259 rq_pages at start
    assert len(m.allocated) == threads * 259 + 5 * 32
    # GFP_HIGHUSER_MOVABLE on cpu5: three refills of 63 onto its Movable list, 160 taken
    normal = m.nodes[0].zone(ZONE_NORMAL)
    assert normal is not None
    assert len(normal.pcp[5].lists[MIGRATE_MOVABLE]) == 3 * 63 - 5 * 32


def test_background_allocator_frees_what_it_held_longer_than_hold():
    """hold 2.5 ms: the burst at 4 ms frees the one of 1 ms, the burst at 5 ms the one of 2 ms;
    the bursts of 3, 4 and 5 ms are still held at the end."""
    r, m = background_run(hold="2.5 ms")
    assert r["background_pages"] == 3 * 32
    assert len(m.allocated) == 8 * 259 + 3 * 32
    # cpu5's Movable list, head first in, head first out: 1 ms: refill 63, take 32 (31 left);
    # 2 ms: take 31, refill, take 1 (62); 3 ms: 30; 4 ms: take 30, refill, take 2 (61), free 32
    # (93); 5 ms: take 32, free 32 (93)
    normal = m.nodes[0].zone(ZONE_NORMAL)
    assert normal is not None
    assert len(normal.pcp[5].lists[MIGRATE_MOVABLE]) == 93
