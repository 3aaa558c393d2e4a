"""struct page_pool and its paths (net/core/page_pool.c, include/net/page_pool.h, Linux 5.12),
with the slow path of the bulk allocator series (seed PATCH 5/5, and the array form merged in 5.13).

A pool serves one RX queue from softirq on one CPU. Pages come, in order, from
- `alloc.cache`: an array of PP_ALLOC_CACHE_SIZE (128) pointers used as a stack, lock-free;
- the `ptr_ring` (pool_size entries, the RX queue's size): pages other contexts returned;
  page_pool_refill_alloc_cache() moves up to PP_ALLOC_CACHE_REFILL (64) of them into
  alloc.cache under the ring's consumer lock;
- the page allocator (the slow path): one alloc_pages_node() per call in 5.11/5.12 (`single`),
  or one bulk call of `refill` pages whose surplus lands in alloc.cache (`bulk_list`: the seed's
  list API; `bulk_array`: 5.13's alloc_pages_bulk_array() straight into alloc.cache; `pagevec`:
  bulk calls of at most 15 pages into a pagevec, copied into alloc.cache).

Pages leave the pool with page_pool_release_page() (XDP_PASS turned them into SKBs: the SKB's
free returns them to the page allocator) or come back with page_pool_put_page().

The pool models mlx5's pool: no PP_FLAG_DMA_MAP (mlx5 maps pages itself, KF §5), order 0,
GFP_ATOMIC (softirq; page_pool_dev_alloc_pages adds __GFP_NOWARN, which changes nothing here).
Costs: page_pool's own instruction work from bench_page_pool_simple (simulator/net/costs.py),
the ptr_ring locks at the hardware's spin_lock_unlock, the release counter at its atomic, every
line (alloc.cache slots, ring slots, the pool's counters, struct pages) through the cache model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import simpy

from simulator.errors import InvariantError
from simulator.machine.cache import ASYNC
from simulator.mm.gfp import GFP_ATOMIC, Gfp
from simulator.mm.page_alloc import alloc_pages_node, put_page
from simulator.mm.strategies import STRATEGIES, CallerBuffers, alloc_attempt

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU
    from simulator.mm.machine import Machine
    from simulator.net.costs import NetCosts
    from simulator.net.tally import NetTally

PP_ALLOC_CACHE_SIZE = 128  # include/net/page_pool.h
PP_ALLOC_CACHE_REFILL = 64  # include/net/page_pool.h
PTR_SIZE = 8


@dataclass
class PoolStats:
    """Where the pool's pages came from and went (a superset of CONFIG_PAGE_POOL_STATS, 5.19)."""

    alloc_fast: int = 0  # pages popped from alloc.cache
    slow_calls: int = 0  # __page_pool_alloc_pages_slow() calls
    slow_pages: int = 0  # pages the page allocator gave those calls
    slow_empty: int = 0  # slow-path calls that got no page
    refill_ring: int = 0  # pages moved from the ptr_ring into alloc.cache
    numa_mismatch: int = 0  # ring pages of another node, given back to the allocator
    recycle_cached: int = 0  # pages put back into alloc.cache
    recycle_ring: int = 0  # pages put into the ptr_ring
    recycle_ring_full: int = 0  # pages released because the ptr_ring was full
    released: int = 0  # page_pool_release_page(): pages leaving the pool


class PagePool:
    """`machine.cpu0.rq0.page_pool`: struct page_pool of one RX queue."""

    def __init__(
        self,
        m: Machine,
        scope: str,
        nid: int,
        strategy: str,
        refill: int,
        pool_size: int,
        costs: NetCosts,
        cache_size: int = PP_ALLOC_CACHE_SIZE,
        gfp: Gfp = GFP_ATOMIC,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if refill < 1:
            raise ValueError(f"refill must be at least 1, got {refill}")
        self.m = m
        self.scope = scope
        self.nid = nid  # pool->p.nid: mlx5 passes the channel's CPU node
        self.strategy = strategy
        self.refill = refill  # PP_ALLOC_CACHE_REFILL
        # The array form writes straight into alloc.cache, so a refill above 128 needs a larger
        # cache; pagesim grows it for every strategy so a refill sweep compares refill sizes,
        # not the seed's list form putting the surplus straight back (put_page).
        self.cache_size = max(cache_size, refill)
        self.gfp = gfp
        self.costs = costs
        # struct page_pool is allocated on pool->p.nid (kzalloc_node); alloc.cache is inside it
        self.alloc = CallerBuffers.create(m, f"{scope}.alloc", nid, self.cache_size)
        self.count = 0  # pool->alloc.count
        self.ring: deque[int] = deque()
        self.ring_size = pool_size
        self.ring_base = m.registry.alloc(f"{scope}.ring.queue", nid, max(1, -(-pool_size * PTR_SIZE // 64)))
        self.producer_lock_line = m.registry.alloc(f"{scope}.ring.producer_lock", nid)
        self.consumer_lock_line = m.registry.alloc(f"{scope}.ring.consumer_lock", nid)
        self.producer = 0  # producer index (its slot's line is what a produce writes)
        self.consumer = 0
        self.params_line = m.registry.alloc(f"{scope}.p", nid)  # p.*, pages_state_hold_cnt
        self.release_line = m.registry.alloc(f"{scope}.pages_state_release_cnt", nid)  # own line
        self.hold_cnt = 0
        self.release_cnt = 0
        self.stats = PoolStats()

    def ring_line(self, index: int) -> int:
        return self.ring_base + (index % self.ring_size) * PTR_SIZE // 64

    def pages_held(self) -> int:
        """Pages the pool holds (alloc.cache + ptr_ring)."""
        return self.count + len(self.ring)

    def inflight(self) -> int:
        """page_pool_inflight(): pages handed out and not yet released."""
        return self.hold_cnt - self.release_cnt

    def check(self) -> None:
        """Invariant: alloc.cache holds exactly `count` pages, at the bottom of the array."""
        slots = self.alloc.array.slots
        if any(s is None for s in slots[: self.count]) or any(s is not None for s in slots[self.count :]):
            raise InvariantError(f"{self.scope}: alloc.cache does not hold exactly count={self.count} pages")


Gen = Generator[simpy.Event, None, "int | None"]


# ---------------------------------------------------------------------------------------------
# allocation
# ---------------------------------------------------------------------------------------------


def page_pool_alloc_pages(cpu: CPU, pool: PagePool, t: NetTally) -> Gen:
    """Mirrors page_pool_alloc_pages() in net/core/page_pool.c, v5.12 (page_pool_dev_alloc_pages:
    GFP_ATOMIC | __GFP_NOWARN): __page_pool_get_cached(), else __page_pool_alloc_pages_slow(). Order 0
    only."""
    cpu.spend(pool.costs.pp_alloc)
    page = yield from __page_pool_get_cached(cpu, pool, t)
    if page is not None:
        return page
    return (yield from __page_pool_alloc_pages_slow(cpu, pool, pool.gfp, t))


def _pop_cached(cpu: CPU, pool: PagePool) -> int:
    """pool->alloc.cache[--pool->alloc.count]."""
    pool.count -= 1
    slots = pool.alloc.array.slots
    page = slots[pool.count]
    if page is None:
        raise InvariantError(f"{pool.scope}: alloc.cache slot {pool.count} is empty")
    slots[pool.count] = None  # pagesim keeps popped slots NULL (the array form needs NULLs)
    cpu.touch([pool.alloc.array.line(pool.count)])
    return page


def __page_pool_get_cached(cpu: CPU, pool: PagePool, t: NetTally) -> Gen:
    """Mirrors __page_pool_get_cached() in net/core/page_pool.c, v5.12: pop alloc.cache, else refill it
    from the ptr_ring."""
    if pool.count:
        pool.stats.alloc_fast += 1
        return _pop_cached(cpu, pool)
    return (yield from page_pool_refill_alloc_cache(cpu, pool, t))


def page_pool_refill_alloc_cache(cpu: CPU, pool: PagePool, t: NetTally) -> Gen:
    """Mirrors page_pool_refill_alloc_cache() in net/core/page_pool.c, v5.12: if the ptr_ring is not empty,
    under its consumer lock move up to PP_ALLOC_CACHE_REFILL pages into alloc.cache, stopping at a page
    of another node than the pool's (given back to the page allocator), and return the last one.

    The consumer lock is only ever taken by the pool's own NAPI CPU, so it is priced as an uncontended
    spin_lock/unlock rather than simulated as a SimPy lock."""
    c = cpu.costs
    cpu.touch([pool.ring_line(pool.consumer)], write=False)  # __ptr_ring_empty()
    if not pool.ring:
        return None
    cpu.touch([pool.consumer_lock_line])
    cpu.spend(c.spin_lock_unlock)
    slots = pool.alloc.array.slots
    page: int | None = None
    moved = 0
    while pool.ring:
        pfn = pool.ring.popleft()
        lines = [pool.ring_line(pool.consumer), pfn]  # __ptr_ring_consume(); page_to_nid(page)
        pool.consumer += 1
        if cpu.machine.page_zone(pfn).node != pool.nid:
            cpu.touch(lines)
            pool.stats.numa_mismatch += 1
            yield from page_pool_return_page(cpu, pool, pfn, t)
            break
        slots[pool.count] = pfn
        lines.append(pool.alloc.array.line(pool.count) | ASYNC)  # the alloc.cache store
        cpu.touch(lines)
        cpu.spend(2 * c.list_line)  # the ring slot's load and NULLing, the alloc.cache store
        pool.count += 1
        moved += 1
        if pool.count >= pool.refill or pool.count >= pool.cache_size:
            break
    pool.stats.refill_ring += moved
    if pool.count:
        pool.stats.alloc_fast += 1
        page = _pop_cached(cpu, pool)
    return page


def __page_pool_alloc_pages_slow(cpu: CPU, pool: PagePool, gfp: Gfp, t: NetTally) -> Gen:
    """Mirrors __page_pool_alloc_pages_slow() in net/core/page_pool.c, v5.12 and the series (seed PATCH
    5/5, v5.13), in four forms:
    - `single` (5.11/5.12): one alloc_pages_node(pool->p.nid) per call, handed straight back;
    - `bulk_list` (seed PATCH 5/5): __alloc_pages_bulk_nodemask() of `refill` pages onto a list, walked
      into alloc.cache (list_del + store per page);
    - `bulk_array` (5.13): memset alloc.cache[0..refill) to NULL, alloc_pages_bulk_array() into it, then
      the loop over the returned entries (hold count per page);
    - `pagevec`: bulk calls of at most 15 pages into a pagevec, each copied into alloc.cache.

    In the bulk forms the last page is popped and returned (the seed returns the list's first entry
    and caches the rest: the same work, another page order).

    Leaves out PP_FLAG_DMA_MAP (mlx5 maps pages itself), order > 0 and the tracepoints."""
    c = cpu.costs
    code = cpu.machine.code
    bulk_calls = -(-pool.refill // 15) if pool.strategy == "pagevec" else 1
    alloc = code["alloc_pages"] if pool.strategy == "single" else code["alloc_pages_bulk"]
    t.frontend_ns += cpu.run_code(code["page_pool_slow"]) + cpu.run_code(alloc, bulk_calls)
    cpu.spend(c.call)  # noinline
    cpu.touch([pool.params_line])  # p.flags, p.nid, pages_state_hold_cnt
    pool.stats.slow_calls += 1
    if pool.count:
        raise InvariantError(f"{pool.scope}: slow path entered with {pool.count} pages cached")
    t0 = cpu.now()
    f0 = t.free_ns
    if pool.strategy == "single":
        page = yield from alloc_pages_node(cpu, gfp, pool.nid)
        t.alloc_ns += cpu.now() - t0 - (t.free_ns - f0)
        if page is None:
            pool.stats.slow_empty += 1
            return None
        pool.stats.slow_pages += 1
        pool.hold_cnt += 1
        return page
    n = pool.refill
    arr = pool.alloc.array
    if pool.strategy == "bulk_array":
        # memset(&pool->alloc.cache, 0, sizeof(void *) * bulk)
        lines = sorted({arr.line(i) for i in range(n)})
        cpu.touch([ln | ASYNC for ln in lines])  # stores: nothing waits for them
        cpu.spend(len(lines) * c.list_line)
    got = yield from alloc_attempt(cpu, pool.strategy, gfp, pool.nid, n, pool.alloc)
    t.alloc_ns += cpu.now() - t0 - (t.free_ns - f0)
    k = len(got)
    if not k:
        pool.stats.slow_empty += 1
        return None
    if pool.strategy == "bulk_array":
        # for (i = 0; i < nr_pages; i++) { page = cache[i]; cache[alloc.count++] = page; hold++ }
        cpu.touch([ln | ASYNC for ln in sorted({arr.line(i) for i in range(k)})])
        cpu.spend(k * c.list_line)
    pool.count = k
    pool.check()
    pool.stats.slow_pages += k
    pool.hold_cnt += k
    return _pop_cached(cpu, pool)


# ---------------------------------------------------------------------------------------------
# pages leaving the pool, and coming back
# ---------------------------------------------------------------------------------------------


def page_pool_release_page(cpu: CPU, pool: PagePool, pfn: int) -> None:
    """Mirrors page_pool_release_page() in net/core/page_pool.c, v5.12 for a pool without PP_FLAG_DMA_MAP:
    the page stops being the pool's (atomic_inc_return of pages_state_release_cnt). The caller still
    holds the page."""
    c = cpu.costs
    cpu.spend(c.call + c.atomic)
    cpu.touch([pool.release_line])
    pool.release_cnt += 1
    pool.stats.released += 1


def page_pool_return_page(
    cpu: CPU, pool: PagePool, pfn: int, t: NetTally
) -> Generator[simpy.Event, None, None]:
    """Mirrors page_pool_return_page() in net/core/page_pool.c, v5.12: release the page from the pool, then
    put_page() it, which frees it to the page allocator (free_unref_page)."""
    page_pool_release_page(cpu, pool, pfn)
    t0 = cpu.now()
    yield from put_page(cpu, pfn)
    t.free_ns += cpu.now() - t0


def page_pool_recycle_in_cache(cpu: CPU, pool: PagePool, pfn: int) -> bool:
    """Mirrors page_pool_recycle_in_cache() in net/core/page_pool.c, v5.12: push onto alloc.cache unless it
    is full."""
    if pool.count >= pool.cache_size:
        return False
    pool.alloc.array.slots[pool.count] = pfn
    cpu.touch([pool.alloc.array.line(pool.count) | ASYNC])  # a store
    pool.count += 1
    pool.stats.recycle_cached += 1
    return True


def page_pool_recycle_in_ring(cpu: CPU, pool: PagePool, pfn: int) -> bool:
    """Mirrors page_pool_recycle_in_ring() in net/core/page_pool.c, v5.12: ptr_ring_produce() under the
    producer lock (from softirq: plain spin_lock); fails when the ring is full."""
    c = cpu.costs
    cpu.touch([pool.producer_lock_line, pool.ring_line(pool.producer)])
    cpu.spend(c.spin_lock_unlock)
    if len(pool.ring) >= pool.ring_size:
        pool.stats.recycle_ring_full += 1
        return False
    cpu.spend(c.list_line)
    pool.ring.append(pfn)
    pool.producer += 1
    pool.stats.recycle_ring += 1
    return True


def page_pool_put_page(
    cpu: CPU, pool: PagePool, pfn: int, allow_direct: bool, t: NetTally
) -> Generator[simpy.Event, None, None]:
    """Mirrors page_pool_put_page() in net/core/page_pool.c, v5.12 / __page_pool_put_page(): a page whose
    refcount is 1 goes back to alloc.cache (allow_direct: the pool's own NAPI context) or to the
    ptr_ring; if both are full it is released to the page allocator. (Pages with elevated refcounts, and
    pfmemalloc pages, which take the release path at once, do not occur here.)"""
    cpu.touch([pfn])  # page_ref_count(page), page_is_pfmemalloc(page)
    cpu.spend(pool.costs.pp_recycle)
    if allow_direct and page_pool_recycle_in_cache(cpu, pool, pfn):
        return
    if page_pool_recycle_in_ring(cpu, pool, pfn):
        return
    yield from page_pool_return_page(cpu, pool, pfn, t)


def page_pool_recycle_direct(
    cpu: CPU, pool: PagePool, pfn: int, t: NetTally
) -> Generator[simpy.Event, None, None]:
    """Mirrors page_pool_recycle_direct() in include/net/page_pool.h, v5.12: page_pool_put_full_page(pool,
    page, true)."""
    yield from page_pool_put_page(cpu, pool, pfn, True, t)
