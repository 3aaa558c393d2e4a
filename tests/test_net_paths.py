"""The XDP-redirect page paths no workload test pins: mlx5's fast paths against its per-call
and per-frame code, a WQE's rollback, release without recycling, veth's drops on a full ring, and
a hypothesis state machine that keeps the books of every page page_pool, mlx5 and veth hold.

Differential tests compare, with ==, two fresh machines that run the same program: one through
the fast path (mlx5e_page_alloc_pool_run's stretches; mlx5e_poll_rx_cq's one-step redirect), one
through the code it stands for (mlx5e_page_alloc_pool() per call; the per-frame redirect loop).
As tests/test_runs.py does for the allocator's runs: a fast path is a speed change, never a
model change.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import pytest
import simpy
from conftest import TINY_1NODE, new_machine, run_on
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from test_runs import _state

from simulator.calibration import Calibration, net_costs
from simulator.machine.cpu import CPU
from simulator.mm.balloon import balloon_deflate, balloon_inflate
from simulator.mm.machine import Machine
from simulator.mm.mmzone import MIGRATE_UNMOVABLE
from simulator.mm.strategies import STRATEGIES
from simulator.net import mlx5
from simulator.net.mlx5 import (
    MLX5_MPWRQ_PAGES_PER_WQE,
    MLX5E_CACHE_SIZE,
    Mlx5eRq,
    mlx5_nic_receive,
    mlx5e_page_alloc_pool,
    mlx5e_page_alloc_pool_run,
    mlx5e_page_release,
    mlx5e_poll_rx_cq,
    mlx5e_post_rx_mpwqes,
    mlx5e_rx_cache_put,
)
from simulator.net.page_pool import PagePool, page_pool_alloc_pages, page_pool_put_page
from simulator.net.tally import NetTally
from simulator.net.veth import VETH_RING_SIZE, Frame, VethRq, veth_poll, veth_xdp_xmit

L1_NS = 4 / 3.6  # tiny-1node: 4 cycles at 3.6 GHz
DRAM = 95 - L1_NS  # its only NUMA distance


@dataclass
class Stack:
    """One CPU's RX queue on tiny-1node: page_pool, mlx5e_rq, the veth queue, the tallies."""

    m: Machine
    cpu: CPU
    pool: PagePool
    rq: Mlx5eRq
    vrq: VethRq
    t: NetTally

    def run(self, gen: Generator[simpy.Event, None, Any]) -> Any:
        return run_on(self.cpu, gen)


def stack(
    strategy: str = "single",
    refill: int = 64,
    ring_size: int = 256,
    recycle: float = 0.0,
    recycle_in_mlx5: bool = False,
) -> Stack:
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    nc = net_costs(Calibration(m.hw), 100.0)
    pool = PagePool(m, f"{cpu.scope}.rq0.page_pool", cpu.node, strategy, refill, ring_size, nc)
    rq = Mlx5eRq(
        m, 0, cpu, pool, nc, nic_node=0, ring_size=ring_size, recycle=recycle, recycle_in_mlx5=recycle_in_mlx5
    )
    vrq = VethRq(cpu, 0.0 if recycle_in_mlx5 else recycle)
    return Stack(m, cpu, pool, rq, vrq, NetTally())


def net_state(s: Stack) -> dict[str, Any]:
    """Everything a run leaves behind: the machine (tests/test_runs.py's _state), the pool, the
    queue, veth and the tallies."""
    out = _state(s.m)
    p, rq, v = s.pool, s.rq, s.vrq
    out["pool"] = (
        p.count,
        list(p.alloc.array.slots),
        list(p.ring),
        vars(p.stats).copy(),
        (p.hold_cnt, p.release_cnt, p.producer, p.consumer),
    )
    out["rq"] = (
        list(rq.page_cache),
        (rq.cache_head, rq.cache_tail, rq.cache_reuse, rq.cache_full),
        list(rq.posted),
        list(rq.cq),
        (rq.redirected, rq.xdp_drops, rq.wqe_alloc_failures, rq._recycle_acc, rq._footprint_acc),
    )
    out["veth"] = ([(f.pfn, f.pool is p) for f in v.ring], v.napi_scheduled, v.xmit_drops, v.passed)
    out["tally"] = {k: getattr(s.t, k) for k in NetTally.__dataclass_fields__ if k != "irq_latency"}
    return out


def squeeze(m: Machine) -> None:
    """Every zone's buddy emptied into a balloon: the allocator has nothing left to give."""
    for z in m.zones:
        balloon_inflate(z, z.free_area.nr_free_pages)
        assert z.free_area.nr_free_pages == 0


# ---- mlx5e_page_alloc_pool_run() against mlx5e_page_alloc_pool() per call ------------------------


def _loop_alloc(s: Stack, want: int) -> Generator[simpy.Event, None, list[int]]:
    """mlx5e_alloc_rx_mpwqe's loop, one mlx5e_page_alloc_pool() per page."""
    out: list[int] = []
    for _ in range(want):
        page = yield from mlx5e_page_alloc_pool(s.cpu, s.rq, s.t)
        if page is None:
            break
        out.append(page)
    return out


def _alloc(s: Stack, want: int, fast: bool) -> list[int]:
    if fast:
        return s.run(mlx5e_page_alloc_pool_run(s.cpu, s.rq, s.t, want))
    return s.run(_loop_alloc(s, want))


def _prep_mlx5_cache_and_ring(s: Stack, cached: int, ringed: int) -> None:
    """Pages from the pool into mlx5's page cache (`cached`) and the ptr_ring (`ringed`)."""
    pages = _alloc(s, cached + ringed, fast=False)
    for p in pages[:cached]:
        assert mlx5e_rx_cache_put(s.cpu, s.rq, p)
    for p in pages[cached:]:
        s.run(page_pool_put_page(s.cpu, s.pool, p, False, s.t))


PROGRAMS: dict[str, tuple[str, Callable[[Stack], None], list[int]]] = {
    # name: (strategy, preparation, the run lengths asked for in turn)
    "single: slow-path runs across pcp refills": ("single", lambda s: None, [64, 64, 200]),
    "single: mlx5 cache and ptr_ring first": (
        "single",
        lambda s: _prep_mlx5_cache_and_ring(s, 5, 3),
        [64, 64],
    ),
    "bulk_array: alloc.cache pops across refills": ("bulk_array", lambda s: None, [64, 10, 130, 64]),
    "bulk_list: alloc.cache pops across refills": ("bulk_list", lambda s: None, [3, 64, 200]),
    "pagevec: alloc.cache pops across refills": ("pagevec", lambda s: None, [64, 64, 1, 64]),
    "bulk_array: ring refill in the middle": (
        "bulk_array",
        lambda s: _prep_mlx5_cache_and_ring(s, 0, 20),
        [64, 64],
    ),
    "single: memory runs out mid-run": ("single", lambda s: (_alloc(s, 10, False), squeeze(s.m)), [64, 64]),
    "bulk_array: memory runs out mid-run": (
        "bulk_array",
        lambda s: (_alloc(s, 10, False), squeeze(s.m)),
        [64, 64],
    ),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_page_alloc_pool_run_equals_the_per_call_loop(name: str) -> None:
    strategy, prep, wants = PROGRAMS[name]
    results = []
    for fast in (True, False):
        s = stack(strategy)
        prep(s)
        got = [_alloc(s, want, fast) for want in wants]
        results.append((got, net_state(s)))
    (fast_got, fast_state), (loop_got, loop_state) = results
    assert fast_got == loop_got
    assert fast_state == loop_state
    if "runs out" in name:
        assert len(fast_got[0]) < 64 and fast_got[1] == []


# ---- mlx5e_poll_rx_cq(): the one-step redirect against the per-frame loop ------------------------


def _filled_cq(s: Stack, ring_frames: int) -> None:
    """Post every WQE (the ring's pages from the pool), the NIC fills them all (saturating), and
    veth's ring already holds `ring_frames` frames of earlier polls."""
    assert s.run(mlx5e_post_rx_mpwqes(s.cpu, s.rq, s.t)) is False
    mlx5_nic_receive(s.rq, s.cpu.now())
    assert len(s.rq.cq) == s.rq.ring_size and not s.rq.posted
    for _ in range(ring_frames):
        s.vrq.ring.append(Frame(s.rq.cq.popleft(), s.pool))


@pytest.mark.parametrize(("budget", "ring_frames"), [(64, 0), (64, 100), (17, 150), (64, 192)])
@pytest.mark.parametrize("strategy", ["single", "bulk_array"])
def test_poll_redirect_fast_path_equals_the_per_frame_loop(
    budget: int, ring_frames: int, strategy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every frame redirected and veth's ring has room: mlx5e_poll_rx_cq() prices the poll in
    one step. The per-frame loop (devmap bulk queues of 16, veth_xdp_xmit per bulk) leaves the
    same state, to the last bit; so do the veth poll and the WQE refill after it."""
    states = []
    for fast in (True, False):
        monkeypatch.setattr(mlx5, "REDIRECT_FAST_PATH", fast)
        s = stack(strategy, ring_size=256)
        _filled_cq(s, ring_frames)
        n = s.run(mlx5e_poll_rx_cq(s.cpu, s.rq, budget, s.vrq, s.t))
        assert n == budget and len(s.vrq.ring) == ring_frames + budget <= VETH_RING_SIZE
        s.run(veth_poll(s.cpu, s.vrq, s.t))
        s.run(mlx5e_post_rx_mpwqes(s.cpu, s.rq, s.t))
        states.append(net_state(s))
    assert states[0] == states[1]


# ---- hand-worked paths -------------------------------------------------------------------------


def test_mlx5_release_without_recycle_unmaps_releases_and_frees():
    """mlx5e_page_release(recycle=False): dma_unmap, page_pool_release_page (a call, an atomic and
    the pool's release counter line, a DRAM miss the first time), put_page -> free_unref_page."""
    s = stack("single")
    (page,) = _alloc(s, 1, fast=False)
    pcp = s.m.nodes[0].zones[-1].pcp[0]
    count = pcp.count
    t0 = s.t.pool_ns
    s.run(mlx5e_page_release(s.cpu, s.rq, page, False, s.t))
    c = s.m.costs
    assert s.t.dma_ns == s.rq.costs.dma_map + s.rq.costs.dma_unmap
    assert s.t.pool_ns - t0 == pytest.approx(c.call + c.atomic + DRAM, rel=1e-12)
    assert s.t.free_ns > 0
    assert (s.pool.release_cnt, s.pool.stats.released, s.pool.inflight()) == (1, 1, 0)
    assert page not in s.m.allocated and pcp.count == count + 1
    assert pcp.lists[MIGRATE_UNMOVABLE][0] == page  # free_unref_page: list_add at the head
    assert not s.rq.page_cache and s.pool.count == 0
    s.m.check_invariants()


def test_mlx5_release_with_recycle_into_a_full_cache_goes_to_the_pool():
    s = stack("single")
    pages = _alloc(s, MLX5E_CACHE_SIZE, fast=False)
    for p in pages[:-1]:
        s.run(mlx5e_page_release(s.cpu, s.rq, p, True, s.t))
    assert len(s.rq.page_cache) == MLX5E_CACHE_SIZE - 1 and s.pool.count == 0  # one slot kept free
    dma = s.t.dma_ns
    s.run(mlx5e_page_release(s.cpu, s.rq, pages[-1], True, s.t))
    assert s.rq.cache_full == 1
    assert s.t.dma_ns == dma + s.rq.costs.dma_unmap  # unmapped on its way to the pool
    assert s.pool.count == 1 and s.pool.alloc.array.slots[0] == pages[-1]
    assert s.pool.stats.recycle_cached == 1 and s.pool.inflight() == MLX5E_CACHE_SIZE
    s.m.check_invariants()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_wqe_whose_allocation_fails_gives_its_pages_back(strategy: str):
    """mlx5e_alloc_rx_mpwqe: 10 pages from mlx5's cache, then page_pool's slow path finds the
    allocator empty. The 10 go back, recycled into mlx5's cache in the order they came (so the
    cache is as before), the WQE is not posted, and mlx5e_post_rx_mpwqes reports the failure."""
    s = stack(strategy, ring_size=MLX5_MPWRQ_PAGES_PER_WQE)
    _prep_mlx5_cache_and_ring(s, 10, 0)
    while s.pool.count:  # the bulk forms' refill surplus: taken (and kept) by someone else
        assert s.run(page_pool_alloc_pages(s.cpu, s.pool, s.t)) is not None
    squeeze(s.m)
    cache = list(s.rq.page_cache)
    allocated = set(s.m.allocated)
    slow = s.pool.stats.slow_calls
    busy = s.run(mlx5e_post_rx_mpwqes(s.cpu, s.rq, s.t))
    assert busy is True and s.rq.wqe_alloc_failures == 1
    assert list(s.rq.page_cache) == cache and s.rq.cache_reuse == 10
    assert not s.rq.posted and s.m.allocated == allocated
    assert s.pool.stats.slow_calls == slow + 1 and s.pool.stats.slow_empty == 1
    assert s.t.dma_ns == 10 * s.rq.costs.dma_map  # the prep's maps only: cached pages stay mapped
    s.m.check_invariants()


def test_per_frame_loop_with_xdp_drop_recycles_every_other_frame_into_mlx5s_cache():
    """recycle 0.5 on the mlx5 cache path: the accumulator reaches 1 on every second frame, which
    gets XDP_DROP and goes back to mlx5's cache still mapped; the others are unmapped and
    redirected, in bulks of 16 (16, then the last 4) into veth's ring."""
    s = stack("single", recycle=0.5, recycle_in_mlx5=True)
    _filled_cq(s, 0)
    cq = list(s.rq.cq)[:40]
    dma = s.t.dma_ns
    assert s.run(mlx5e_poll_rx_cq(s.cpu, s.rq, 40, s.vrq, s.t)) == 40
    assert [f.pfn for f in s.vrq.ring] == cq[0::2]
    assert list(s.rq.page_cache) == cq[1::2]
    assert (s.rq.redirected, s.rq.xdp_drops, s.rq.cache_reuse) == (20, 20, 0)
    assert s.t.dma_ns == pytest.approx(dma + 20 * s.rq.costs.dma_unmap, rel=1e-12)
    assert s.vrq.napi_scheduled and s.vrq.xmit_drops == 0 and s.t.packets == 40


def test_veth_drops_frames_that_find_its_ring_full():
    """veth_xdp_xmit with 250 of 256 ring entries taken: a bulk of 16 puts 6 in, and returns 10
    to their page_pool (xdp_return_frame_rx_napi: direct recycling into alloc.cache)."""
    s = stack("single")
    pages = _alloc(s, 266, fast=False)
    s.vrq.ring.extend(Frame(p, s.pool) for p in pages[:250])
    bulk = [Frame(p, s.pool) for p in pages[250:]]
    s.run(veth_xdp_xmit(s.cpu, s.vrq, bulk, s.t))
    assert [f.pfn for f in s.vrq.ring][250:] == pages[250:256]
    assert s.vrq.xmit_drops == 10
    assert s.pool.count == 10 and s.pool.alloc.array.slots[:10] == pages[256:]
    assert s.pool.stats.recycle_cached == 10 and s.pool.inflight() == 266
    assert s.m.allocated == set(pages)


def test_poll_into_a_nearly_full_veth_ring_drops_the_overflow():
    """mlx5e_poll_rx_cq with 200 frames in veth's ring and 64 to redirect: the one-step path does
    not apply; the loop's fourth bulk of 16 finds 8 slots: 8 frames are dropped, back into the
    pool's alloc.cache."""
    s = stack("single", ring_size=512)
    _filled_cq(s, 200)
    cq = list(s.rq.cq)[:64]
    s.run(mlx5e_poll_rx_cq(s.cpu, s.rq, 64, s.vrq, s.t))
    assert len(s.vrq.ring) == VETH_RING_SIZE and [f.pfn for f in s.vrq.ring][200:] == cq[:56]
    assert s.vrq.xmit_drops == 8 and s.pool.alloc.array.slots[:8] == cq[56:]
    assert s.rq.redirected == 64  # redirected by mlx5, then dropped by veth
    s.m.check_invariants()


# ---- page accounting across page_pool, mlx5 and veth (hypothesis) -------------------------------


class NetPagesMachine(RuleBasedStateMachine):
    """Random programs over one RX queue: WQE refills, arrivals, mlx5 polls (XDP_REDIRECT, or
    XDP_DROP into mlx5's cache), veth polls (XDP_PASS frees the page; XDP_DROP returns it to the
    pool's ptr_ring), pages the driver holds released with or without recycling or put back,
    and memory squeezed and given back. After every step, every page handed out by the
    allocator is in exactly one of the pool's alloc.cache or ptr_ring, mlx5's cache, a posted
    descriptor, the completion queue, veth's ring or the driver's hands, and page_pool's
    in-flight count (hold - release) is exactly those pages."""

    def __init__(self) -> None:
        super().__init__()
        self.s: Stack | None = None
        self.driver: list[int] = []  # pages the test's "driver" holds (out of the pool)

    @initialize(
        strategy=st.sampled_from(STRATEGIES),
        refill=st.sampled_from([1, 15, 64, 200]),
        recycle=st.sampled_from([0.0, 0.3, 1.0]),
        in_mlx5=st.booleans(),
    )
    def boot(self, strategy: str, refill: int, recycle: float, in_mlx5: bool) -> None:
        self.s = stack(strategy, refill, ring_size=256, recycle=recycle, recycle_in_mlx5=in_mlx5)

    @rule()
    def refill_wqes(self) -> None:
        s = self.s
        assert s is not None
        before = len(s.rq.posted)
        busy = s.run(mlx5e_post_rx_mpwqes(s.cpu, s.rq, s.t))
        assert (len(s.rq.posted) - before) % MLX5_MPWRQ_PAGES_PER_WQE == 0
        if not busy:
            assert len(s.rq.posted) + len(s.rq.cq) > s.rq.ring_size - MLX5_MPWRQ_PAGES_PER_WQE

    @rule()
    def packets_arrive(self) -> None:
        s = self.s
        assert s is not None
        mlx5_nic_receive(s.rq, s.cpu.now())  # saturating: every posted descriptor is filled
        assert not s.rq.posted

    @rule(budget=st.integers(1, 128))
    def mlx5_poll(self, budget: int) -> None:
        s = self.s
        assert s is not None
        n = min(budget, len(s.rq.cq) + len(s.rq.posted))  # the poll lets the NIC fill them first
        before = (s.rq.redirected, s.rq.xdp_drops, s.vrq.xmit_drops)
        assert s.run(mlx5e_poll_rx_cq(s.cpu, s.rq, budget, s.vrq, s.t)) == n
        assert (s.rq.redirected - before[0]) + (s.rq.xdp_drops - before[1]) == n

    @rule()
    def veth_poll(self) -> None:
        s = self.s
        assert s is not None
        n = min(s.vrq.budget, len(s.vrq.ring))
        freed, passed, full = s.m.stats.pages_freed, s.vrq.passed, s.pool.stats.recycle_ring_full
        assert s.run(veth_poll(s.cpu, s.vrq, s.t)) == n
        # XDP_PASS frees the page; XDP_DROP puts it in the ptr_ring, or frees it if that is full
        assert s.m.stats.pages_freed - freed == (s.vrq.passed - passed) + (
            s.pool.stats.recycle_ring_full - full
        )

    @rule(k=st.integers(1, 80))
    def driver_takes(self, k: int) -> None:
        s = self.s
        assert s is not None
        self.driver += _alloc(s, k, fast=True)

    @precondition(lambda self: bool(self.driver))
    @rule(
        k=st.integers(1, 80),
        how=st.sampled_from(["release", "recycle", "put_direct", "put_ring"]),
    )
    def driver_gives_back(self, k: int, how: str) -> None:
        s = self.s
        assert s is not None
        pages, self.driver = self.driver[:k], self.driver[k:]
        for p in pages:
            if how in ("release", "recycle"):
                s.run(mlx5e_page_release(s.cpu, s.rq, p, how == "recycle", s.t))
            else:
                s.run(page_pool_put_page(s.cpu, s.pool, p, how == "put_direct", s.t))

    @rule(squeeze_it=st.booleans())
    def memory(self, squeeze_it: bool) -> None:
        s = self.s
        assert s is not None
        for z in s.m.zones:
            if squeeze_it:
                balloon_inflate(z, z.free_area.nr_free_pages)
            else:
                balloon_deflate(z, z.balloon_pages)

    @invariant()
    def books(self) -> None:
        s = self.s
        if s is None:
            return
        m, pool, rq, vrq = s.m, s.pool, s.rq, s.vrq
        m.check_invariants()
        pool.check()
        places = {
            "alloc.cache": pool.alloc.array.slots[: pool.count],
            "ptr_ring": list(pool.ring),
            "mlx5 cache": list(rq.page_cache),
            "posted": list(rq.posted),
            "cq": list(rq.cq),
            "veth ring": [f.pfn for f in vrq.ring],
            "driver": self.driver,
        }
        held = [p for pages in places.values() for p in pages]
        assert len(set(held)) == len(held), f"a page in two places: {places}"
        assert set(held) == m.allocated, "a page the allocator handed out is nowhere, or vice versa"
        assert pool.inflight() == len(held)
        assert pool.stats.released == pool.release_cnt
        assert (rq.cache_tail - rq.cache_head) % MLX5E_CACHE_SIZE == len(rq.page_cache)
        assert len(vrq.ring) <= VETH_RING_SIZE and len(pool.ring) <= pool.ring_size
        assert m.stats.pages_allocated - m.stats.pages_freed == len(held)


NetPagesMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestNetPagesMachine = NetPagesMachine.TestCase
