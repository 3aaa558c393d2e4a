"""bench_page_pool_simple (prototype-kernel) in the model: page_pool's own costs checked against
their published micro-benchmark figures.

The machine boots through the composition root (simulator/system.py) with the costs derived from
the hardware file's calibration, as a scenario's points do; the benchmark's loops are plain
generator processes on its first CPU.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from simulator.calibration import Calibration, derive, net_costs
from simulator.code import code_paths
from simulator.hardware import Hardware
from simulator.kernels import KernelConfig
from simulator.machine.cpu import CPU
from simulator.mm.page_alloc import put_page
from simulator.net.page_pool import (
    PagePool,
    page_pool_alloc_pages,
    page_pool_put_page,
    page_pool_recycle_direct,
    page_pool_release_page,
)
from simulator.net.tally import NetTally
from simulator.system import build_machine

TESTS = ("fast_path", "ptr_ring", "slow")  # the module's three returns


def bench_page_pool(hw: Hardware, test: str, loops: int = 20000) -> float:
    """bench_page_pool_simple (prototype-kernel, 6.13 selftests) on one CPU, cycles(tsc) per page.

    As the module does: a pool of 1024 (flags 0, order 0), its ptr_ring pre-filled with 64 pages
    (pp_fill_ptr_ring), then a loop of page_pool_alloc_pages() and one of three returns:
    - fast_path: page_pool_recycle_direct() (into alloc.cache);
    - ptr_ring: page_pool_put_page(allow_direct=false) (into the ptr_ring);
    - slow: get_page(); page_pool_put_page() (the refcount is 2, so the page is released from the
      pool and put once); put_page() (the last reference: the page allocator frees it).
    The pool's slow path takes its 6.13 form, alloc_pages_bulk_array() of 64. The published
    figures were taken on 6.13, whose page allocator (pcp spin lock, not IRQ toggles) is not
    5.12's; only the page_pool side is like for like."""
    cal = Calibration(hw)
    costs, _ = derive(hw, cal.profile, reference=cal.reference)
    env = simpy.Environment()
    m = build_machine(env, hw, KernelConfig(), costs, code_paths())
    cpu = m.cpus[0]
    pool = PagePool(m, f"{cpu.scope}.bench_pool", cpu.node, "bulk_array", 64, 1024, net_costs(cal, 1.0))
    out: dict[str, float] = {}
    env.process(bench(cpu, pool, NetTally(), test, loops, out))
    env.run()
    return out["ns"] * hw.cpu.tsc


def bench(
    cpu: CPU, pool: PagePool, t: NetTally, test: str, loops: int, out: dict[str, float]
) -> Generator[simpy.Event, None, None]:
    """The module's run: fill the ptr_ring, warm up, then time `loops` iterations (ns each, in
    out["ns"])."""
    yield from pp_fill_ptr_ring(cpu, pool, t, 64)
    yield from bench_loop(cpu, pool, t, test, loops // 4)  # warm-up
    t0 = cpu.env.now
    yield from bench_loop(cpu, pool, t, test, loops)
    out["ns"] = (cpu.env.now - t0) / loops


def pp_fill_ptr_ring(cpu: CPU, pool: PagePool, t: NetTally, elems: int) -> Generator[simpy.Event, None, None]:
    """Mirrors the module's pp_fill_ptr_ring(): `elems` pages allocated, then returned to the ring."""
    pages = []
    for _ in range(elems):
        page = yield from page_pool_alloc_pages(cpu, pool, t)
        pages.append(page)
    for page in pages:
        yield from page_pool_put_page(cpu, pool, page, False, t)


def bench_loop(
    cpu: CPU, pool: PagePool, t: NetTally, test: str, n: int
) -> Generator[simpy.Event, None, None]:
    """`n` iterations of the module's loop for `test`: an allocation and its return."""
    c = cpu.costs
    for _ in range(n):
        page = yield from page_pool_alloc_pages(cpu, pool, t)
        assert page is not None
        if test == "fast_path":
            yield from page_pool_recycle_direct(cpu, pool, page, t)
        elif test == "ptr_ring":
            yield from page_pool_put_page(cpu, pool, page, False, t)
        else:
            cpu.spend(c.atomic)  # get_page()
            cpu.touch([page])  # page_pool_put_page(): page_ref_count(page) == 2, so
            cpu.spend(pool.costs.pp_recycle)  # page_pool_return_page(): release, and
            page_pool_release_page(cpu, pool, page)
            cpu.spend(c.atomic)  # a put_page() that is not the last reference
            yield from put_page(cpu, page)  # the last reference
        yield cpu.sync()
