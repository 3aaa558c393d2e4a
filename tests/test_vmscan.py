"""The reclaim model: its cost calibration, kswapd's wake/balance cycle, direct reclaim."""

from __future__ import annotations

import pytest
from conftest import BROADWELL, boot

from simulator.machine.sched import RunQueues
from simulator.mm.balloon import balloon_deflate, balloon_inflate
from simulator.mm.gfp import GFP_KERNEL
from simulator.mm.machine import Machine
from simulator.mm.mmzone import NR_FREE_PAGES, ZONE_NORMAL
from simulator.mm.page_alloc import alloc_pages_node
from simulator.mm.vmscan import LUMPKIN_2018, SWAP_CLUSTER_MAX, Reclaim, reclaim_ns_per_page
from simulator.mm.vmstat import zone_page_state


def machine() -> Machine:
    return boot(BROADWELL)


def squeeze(m: Machine, node: int, free_of: str) -> None:
    """Balloon every zone of `node` down to one of its watermarks (free_of: min/low/high)."""
    for z in m.nodes[node].zones:
        mark = {"min": z.min_wmark, "low": z.low_wmark, "high": z.high_wmark}[free_of]
        balloon_inflate(z, zone_page_state(z, NR_FREE_PAGES) - mark)


def test_reclaim_cost_is_derived_from_the_measurement():
    ns, formula = reclaim_ns_per_page()
    share = LUMPKIN_2018.pgscan_kswapd / (LUMPKIN_2018.pgscan_kswapd + LUMPKIN_2018.pgscan_direct)
    expect = (0.9399 + 0.9933) * 1e9 / (13_130_613.6 / 4 * share)
    assert ns == pytest.approx(expect)
    assert 550 < ns < 650  # about 0.6 us of kswapd CPU per reclaimed page
    assert "Lumpkin" in formula


def test_balloon_deflate_splits_blocks_and_conserves_pages():
    m = machine()
    z = m.nodes[0].zone(ZONE_NORMAL)
    assert z is not None
    held = balloon_inflate(z, 5000)
    assert held == 5000
    for n in (SWAP_CLUSTER_MAX, 1, 700, 32):
        before = z.balloon_pages
        assert balloon_deflate(z, n) == n
        assert z.balloon_pages == before - n
        m.check_invariants()


def test_kswapd_wakes_below_low_and_stops_at_high():
    m = machine()
    env = m.env
    rq = RunQueues(env, m.cpus)
    cost = 600.0
    rc = Reclaim(m, rq, {0: m.cpus[-1]}, cost)
    squeeze(m, 0, "low")
    z = m.nodes[0].zone(ZONE_NORMAL)
    assert z is not None
    assert not rc.pgdat_balanced(0)
    cpu = m.cpus[0]

    def alloc() -> object:
        yield from rq.acquire(cpu)
        page = yield from alloc_pages_node(cpu, GFP_KERNEL, 0)  # fails low -> slow path
        assert page is not None
        yield from rq.release(cpu)

    env.process(alloc())
    env.run()
    assert m.stats.kswapd_wakeups >= 1 and rc.stats.kswapd_wakeups == 1
    assert rc.pgdat_balanced(0)
    # reclaimed what it took to climb from low to high, in SWAP_CLUSTER_MAX batches, at the cost
    assert rc.stats.kswapd_reclaimed >= z.high_wmark - z.low_wmark
    assert rc.stats.kswapd_reclaimed % SWAP_CLUSTER_MAX == 0
    assert env.now >= rc.stats.kswapd_reclaimed * cost
    # balanced: a further wake-up is a no-op
    rc.wakeup_kswapd(z)
    assert rc.stats.kswapd_wakeups == 1
    rc.stop()
    env.run()
    m.check_invariants()


def test_direct_reclaim_below_min_gets_the_page():
    m = machine()
    env = m.env
    rq = RunQueues(env, m.cpus)
    rc = Reclaim(m, rq, {0: m.cpus[-1]}, 600.0)
    squeeze(m, 0, "min")
    z = m.nodes[0].zone(ZONE_NORMAL)
    assert z is not None
    cpu = m.cpus[0]
    got: list[int | None] = []

    def alloc() -> object:
        yield from rq.acquire(cpu)
        # the kswapd process has not run yet: the caller reclaims for itself
        got.append((yield from alloc_pages_node(cpu, GFP_KERNEL, 0)))
        yield from rq.release(cpu)

    env.process(alloc())
    env.run()
    assert got[0] is not None
    assert rc.stats.direct_reclaims == 1
    assert rc.stats.direct_reclaimed >= SWAP_CLUSTER_MAX
    assert rc.stats.direct_reclaim_ns >= rc.stats.direct_reclaimed * 600.0
    rc.stop()
    env.run()
    m.check_invariants()


def test_nothing_to_reclaim_leaves_kswapd_asleep():
    m = machine()
    rq = RunQueues(m.env, m.cpus)
    rc = Reclaim(m, rq, {0: m.cpus[-1]}, 600.0)
    z = m.nodes[0].zone(ZONE_NORMAL)
    assert z is not None
    m.env.run()
    rc.wakeup_kswapd(z)  # balanced (all memory free) and no page cache
    assert rc.stats.kswapd_wakeups == 0
