"""Vectorised runs of back-to-back calls price exactly what the per-call loop prices.

alloc_pages_node_run(n) must equal n calls of alloc_pages_node(), and free_unref_page_run(pfns)
must equal a free_unref_page() per pfn: same pages, same pcp state, same simulated time and
IRQ-off windows, same cache outcomes, whether the run crosses pcp refills and drains or not.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
import simpy
from conftest import TINY_1NODE, TINY_2NODE, new_machine, run_on
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.machine.machine import Machine
from simulator.mm.gfp import GFP_ATOMIC, GFP_KERNEL
from simulator.mm.page_alloc import (
    alloc_pages_node,
    alloc_pages_node_run,
    free_unref_page,
    free_unref_page_run,
)


def _loop_alloc(cpu, gfp, nid, n) -> Generator[simpy.Event, None, list[int]]:
    out = []
    for _ in range(n):
        page = yield from alloc_pages_node(cpu, gfp, nid)
        if page is None:
            break
        out.append(page)
    return out


def _loop_free(cpu, pfns) -> Generator[simpy.Event, None, None]:
    for pfn in pfns:
        yield from free_unref_page(cpu, pfn)


def _state(m: Machine) -> dict:
    cpu = m.cpus[0]
    irq = {fn: (h.n, round(h.total, 6), round(h.max, 6)) for fn, h in cpu.irq_windows.items()}
    return {
        "now": round(cpu.env.now, 6),
        "irq": irq,
        "irq_off_ns": round(cpu.irq_off_ns, 6),
        "pcp": [(z.scope, p.count, [list(lst) for lst in p.lists]) for z in m.zones for p in z.pcp],
        "allocated": sorted(m.allocated),
        "free": [z.free_area.nr_free_pages for z in m.zones],
        "levels": m.cache.level_counts.tolist(),
        "stats": (m.stats.numa_hit, m.stats.pages_allocated, m.stats.pages_freed),
    }


def _pair(path, program):
    """Run `program(machine, use_runs)` on two fresh machines; return both states."""
    a = new_machine(path)
    b = new_machine(path)
    program(a, True)
    program(b, False)
    return _state(a), _state(b)


def _alloc(m: Machine, runs: bool, n: int, gfp=GFP_ATOMIC, nid: int = 0) -> list[int]:
    cpu = m.cpus[0]
    gen = alloc_pages_node_run(cpu, gfp, nid, n) if runs else _loop_alloc(cpu, gfp, nid, n)
    return run_on(cpu, gen)


def _free(m: Machine, runs: bool, pfns: list[int]) -> None:
    cpu = m.cpus[0]
    run_on(cpu, free_unref_page_run(cpu, pfns) if runs else _loop_free(cpu, pfns))


@pytest.mark.parametrize("n", [2, 5, 62, 63, 64, 200, 500])
def test_alloc_run_equals_the_loop_across_refills(n: int) -> None:
    def program(m: Machine, runs: bool) -> None:
        _alloc(m, runs, n)

    a, b = _pair(TINY_1NODE, program)
    assert a == b


@pytest.mark.parametrize("n", [2, 40, 377, 378, 379, 800])
def test_free_run_equals_the_loop_across_drains(n: int) -> None:
    def program(m: Machine, runs: bool) -> None:
        pages = _alloc(m, False, n)
        _free(m, runs, pages)

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

    def program(m: Machine, runs: bool) -> None:
        held: list[int] = []
        for op, n, nid in program_ops:
            if op == "alloc":
                held += _alloc(m, runs, n, GFP_KERNEL, nid)
            else:
                take, held[:] = held[:n], held[n:]
                _free(m, runs, take)
        m.check_invariants()

    a, b = _pair(TINY_2NODE, program)
    assert a == b


def test_runs_record_one_irq_window_per_call() -> None:
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    pages = _alloc(m, False, 10)  # the first call refills the pcp list
    before = cpu.irq_windows["rmqueue_pcplist"].n
    more = run_on(cpu, alloc_pages_node_run(cpu, GFP_ATOMIC, 0, 20))
    assert cpu.irq_windows["rmqueue_pcplist"].n == before + 20
    run_on(cpu, free_unref_page_run(cpu, pages + more))
    assert cpu.irq_windows["free_unref_page"].n == 30
    m.check_invariants()
