"""Vectorised runs of back-to-back calls price exactly what the per-call loop prices.

alloc_pages_node_run(n) must equal n calls of alloc_pages_node(), and free_unref_page_run(pfns)
must equal a free_unref_page() per pfn: same pages, same pcp state, same simulated time and
IRQ-off windows, same cache outcomes, whether the run crosses pcp refills and drains or not.
"Same" is ==, to the last bit: a run is a speed change, never a model change. The same holds with
a caller's prologue and epilogue steps around each call, and for the times a run returns.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import numpy as np
import pytest
import simpy
from conftest import TINY_1NODE, TINY_2NODE, new_machine, run_on
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.machine.tape import PAGE, Spend, Step, Touch
from simulator.mm.balloon import balloon_inflate
from simulator.mm.gfp import GFP_ATOMIC, GFP_KERNEL
from simulator.mm.machine import Machine
from simulator.mm.mmzone import NR_FREE_PAGES, ZONE_NORMAL
from simulator.mm.page_alloc import alloc_pages_node, put_page
from simulator.mm.page_alloc_run import alloc_pages_node_run, free_unref_page_run
from simulator.mm.vmstat import zone_page_state


def _steps(cpu, steps: Sequence[Step], i: int, page: int | None) -> None:
    """What a caller's loop does around call i, one touch and spend at a time."""
    for s in steps:
        if isinstance(s, Spend):
            cpu.spend(s.ns)
            continue
        lines = []
        for v in s.lines:
            if isinstance(v, np.ndarray):
                lines.append(int(v[i]))
            elif v == PAGE:
                lines.append(page)
            else:
                lines.append(v)
        cpu.touch(lines, s.write)


def _loop_alloc(cpu, gfp, nid, n, pro=(), epi=(), times=None) -> Generator[simpy.Event, None, list[int]]:
    out = []
    for i in range(n):
        t0 = cpu.now()
        _steps(cpu, pro, i, None)
        t1 = cpu.now()
        page = yield from alloc_pages_node(cpu, gfp, nid)
        t2 = cpu.now()
        if page is not None:
            _steps(cpu, epi, i, page)
        if times is not None:
            times.append((t0, t1, t2, cpu.now()))
        if page is None:
            break
        out.append(page)
    return out


def _loop_free(cpu, pfns, pro=(), epi=(), times=None) -> Generator[simpy.Event, None, None]:
    for i, pfn in enumerate(pfns):
        t0 = cpu.now()
        _steps(cpu, pro, i, pfn)
        t1 = cpu.now()
        yield from put_page(cpu, pfn)  # free_unref_page_run's default layer
        t2 = cpu.now()
        _steps(cpu, epi, i, pfn)
        if times is not None:
            times.append((t0, t1, t2, cpu.now()))


def _state(m: Machine) -> dict:
    out: dict = {
        "allocated": sorted(m.allocated),
        "free": [z.free_area.nr_free_pages for z in m.zones],
        "levels": m.cache.level_counts.tolist(),
        "clocks": (list(m.cache.clock), list(m.cache.llc_clock)),
        "stats": vars(m.stats).copy(),
        "pcp": [(z.scope, p.count, [list(lst) for lst in p.lists]) for z in m.zones for p in z.pcp],
    }
    for cpu in m.cpus:
        irq = {fn: (h.n, h.total, h.max, h.counts.tolist()) for fn, h in sorted(cpu.irq_windows.items())}
        out[cpu.scope] = {
            "now": cpu.env.now,
            "pending": cpu.pending,
            "irq": irq,
            "irq_off_ns": cpu.irq_off_ns,
            "cache_cost_ns": cpu.cache_cost_ns,
            "recent": list(cpu.recent_windows),
        }
    return out


def _pair(path, program):
    """Run `program(machine, use_runs)` on two fresh machines; return both states."""
    a = new_machine(path)
    b = new_machine(path)
    ra = program(a, True)
    rb = program(b, False)
    return (_state(a), ra), (_state(b), rb)


def _alloc(m: Machine, runs: bool, n: int, gfp=GFP_ATOMIC, nid: int = 0, pro=(), epi=()):
    cpu = m.cpus[0]
    if runs:
        pages, times = run_on(cpu, alloc_pages_node_run(cpu, gfp, nid, n, pro, epi))
        return pages, times.tolist()
    times: list = []
    pages = run_on(cpu, _loop_alloc(cpu, gfp, nid, n, pro, epi, times))
    return pages, [list(t) for t in times]


def _free(m: Machine, runs: bool, pfns: list[int], pro=(), epi=()):
    cpu = m.cpus[0]
    if runs:
        return run_on(cpu, free_unref_page_run(cpu, pfns, pro, epi)).tolist()
    times: list = []
    run_on(cpu, _loop_free(cpu, pfns, pro, epi, times))
    return [list(t) for t in times]


@pytest.mark.parametrize("n", [2, 5, 62, 63, 64, 200, 500])
def test_alloc_run_equals_the_loop_across_refills(n: int) -> None:
    def program(m: Machine, runs: bool):
        return _alloc(m, runs, n)

    a, b = _pair(TINY_1NODE, program)
    assert a == b


@pytest.mark.parametrize("n", [2, 40, 377, 378, 379, 800])
def test_free_run_equals_the_loop_across_drains(n: int) -> None:
    def program(m: Machine, runs: bool):
        pages, _ = _alloc(m, False, n)
        return _free(m, runs, pages)

    a, b = _pair(TINY_1NODE, program)
    assert a == b


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["alloc", "free"]), st.integers(1, 120), st.sampled_from([0, 1])),
        min_size=1,
        max_size=8,
    )
)
def test_mixed_programs_agree(program_ops) -> None:
    """Interleaved allocations (both nodes, GFP_KERNEL) and frees of held pages agree too."""

    def program(m: Machine, runs: bool):
        held: list[int] = []
        for op, n, nid in program_ops:
            if op == "alloc":
                held += _alloc(m, runs, n, GFP_KERNEL, nid)[0]
            else:
                take, held[:] = held[:n], held[n:]
                _free(m, runs, take)
        m.check_invariants()

    a, b = _pair(TINY_2NODE, program)
    assert a == b


def _hooks(m: Machine, n: int, page_hook: bool) -> tuple[list[Step], list[Step]]:
    """A prologue and an epilogue like page_pool's and mlx5's: metadata lines read and written,
    per-call lines (an array slot per call), the call's own page (frees only), work in ns."""
    ring = m.registry.alloc("test.ring", 0)
    params = m.registry.alloc("test.params", 0)
    slots = m.registry.alloc("test.array", 0, 64)
    per_call = np.array([slots + (i * 8 // 64) % 64 for i in range(n)], dtype=np.int64)
    pro: list[Step] = [Spend(3.7), Touch((ring,), False), Spend(1.3), Touch((params,))]
    if page_hook:
        pro.insert(0, Touch((PAGE,)))
    epi: list[Step] = [Touch((per_call,)), Spend(0.6), Spend(11.25)]
    return pro, epi


@pytest.mark.parametrize("n", [3, 64, 300])
def test_alloc_run_with_hooks_equals_the_loop(n: int) -> None:
    def program(m: Machine, runs: bool):
        pro, epi = _hooks(m, n, False)
        return _alloc(m, runs, n, pro=pro, epi=epi)

    a, b = _pair(TINY_1NODE, program)
    assert a == b
    assert len(a[1][1]) == n


@pytest.mark.parametrize("n", [3, 64, 400])
def test_free_run_with_hooks_equals_the_loop(n: int) -> None:
    def program(m: Machine, runs: bool):
        pro, epi = _hooks(m, n, True)
        pages, _ = _alloc(m, False, n)
        m.cpus[0].cache.advance(0, 5000)  # the pages' lines are cold again
        return _free(m, runs, pages, pro, epi)

    a, b = _pair(TINY_1NODE, program)
    assert a == b


def test_a_failing_call_ends_the_run_without_its_epilogue() -> None:
    """Pages on the pcp list, an exhausted buddy behind it: the run takes the listed pages, then
    stops at the call that fails, without that call's epilogue, as the loop does."""

    def program(m: Machine, runs: bool):
        pro, epi = _hooks(m, 4000, False)
        pages, _ = _alloc(m, False, 12)
        _free(m, False, pages)  # 12 + the refill's rest stay on cpu0's pcp list
        for z in m.zones:  # 20 pages above the low watermark (fast path); the min one stops it
            target = z.low_wmark + z.lowmem_reserve[ZONE_NORMAL] + 20
            balloon_inflate(z, zone_page_state(z, NR_FREE_PAGES) - target)
        return _alloc(m, runs, 4000, GFP_KERNEL, 0, pro, epi)  # no reclaim: fails at min

    a, b = _pair(TINY_2NODE, program)
    assert a == b
    pages, times = a[1]
    assert 12 <= len(pages) < 4000 and len(times) == len(pages) + 1
    assert times[-1][2] == times[-1][3]  # no epilogue after the failed call


def test_runs_record_one_irq_window_per_call() -> None:
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    pages, _ = _alloc(m, False, 10)  # the first call refills the pcp list
    before = cpu.irq_windows["rmqueue_pcplist"].n
    more, times = run_on(cpu, alloc_pages_node_run(cpu, GFP_ATOMIC, 0, 20))
    assert cpu.irq_windows["rmqueue_pcplist"].n == before + 20
    assert times.shape == (20, 4) and (np.diff(times.ravel()) >= 0).all()
    run_on(cpu, free_unref_page_run(cpu, pages + more))
    assert cpu.irq_windows["free_unref_page"].n == 30
    m.check_invariants()
