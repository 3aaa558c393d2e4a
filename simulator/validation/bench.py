"""bench_page_pool_simple (prototype-kernel) in the model: page_pool's own costs checked against
their published micro-benchmark figures."""

from __future__ import annotations

from collections.abc import Generator

import simpy

from simulator.hardware import Hardware
from simulator.machine.machine import build_machine
from simulator.net.costs import net_costs


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
    from simulator.mm.page_alloc import put_page
    from simulator.net.page_pool import (
        PagePool,
        page_pool_alloc_pages,
        page_pool_put_page,
        page_pool_recycle_direct,
        page_pool_release_page,
    )
    from simulator.net.tally import NetTally

    env = simpy.Environment()
    m = build_machine(env, hw)
    cpu = m.cpus[0]
    c = cpu.costs
    pool = PagePool(m, f"{cpu.scope}.bench_pool", cpu.node, "bulk_array", 64, 1024, net_costs(hw, 1.0))
    t = NetTally()
    out: dict[str, float] = {}

    def pp_fill_ptr_ring(elems: int) -> Generator[simpy.Event, None, None]:
        pages = []
        for _ in range(elems):
            page = yield from page_pool_alloc_pages(cpu, pool, t)
            pages.append(page)
        for page in pages:
            yield from page_pool_put_page(cpu, pool, page, False, t)

    def loop(n: int) -> Generator[simpy.Event, None, None]:
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

    def proc() -> Generator[simpy.Event, None, None]:
        yield from pp_fill_ptr_ring(64)
        yield from loop(loops // 4)  # warm-up
        t0 = env.now
        yield from loop(loops)
        out["ns"] = (env.now - t0) / loops

    env.process(proc())
    env.run()
    return out["ns"] * hw.cpu.tsc
