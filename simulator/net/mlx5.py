"""The mlx5e RX queue with XDP (drivers/net/ethernet/mellanox/mlx5/core/en_rx.c, en/xdp.c,
en_txrx.c, Linux 5.12), and the NIC side of it.

A queue is a striding RQ of `ring_size` frames (default 1024) in WQEs of 64 pages: with XDP one
page per packet (KF §5). The NIC fills posted descriptors with arriving packets (dropping a packet
when none is posted: rx_out_of_buffer) and writes a CQE per packet. A NAPI poll
(mlx5e_napi_poll) handles up to 64 CQEs, runs the XDP program on each (XDP_REDIRECT into the
devmap towards veth, or XDP_DROP for the recycled share when recycling through mlx5's own cache),
then reposts every fully consumed WQE, allocating its 64 pages through mlx5's page cache (256)
and page_pool, DMA-mapping each. A poll that finds fewer packets than its budget completes NAPI
and re-arms the CQ: the next packet raises the device interrupt.

Time is simulated at poll granularity: everything a poll does runs in one step on its CPU, and
the per-packet work outside the allocator and page_pool is charged in closed form (the fitted
outside cost, simulator/net/costs.py), not as an event per packet.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING

import numpy as np
import simpy

from simulator.errors import InvariantError
from simulator.machine.tape import Spend, Tape, Touch, running_sum, running_sums
from simulator.mm.page_alloc import put_page
from simulator.mm.page_alloc_run import alloc_pages_node_run
from simulator.net.page_pool import (
    PagePool,
    page_pool_alloc_pages,
    page_pool_recycle_direct,
    page_pool_release_page,
)
from simulator.net.veth import DEV_MAP_BULK_SIZE, Frame, VethRq, __veth_xdp_flush, veth_xdp_xmit

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU
    from simulator.mm.machine import Machine
    from simulator.net.costs import NetCosts
    from simulator.net.tally import NetTally

MLX5_MPWRQ_PAGES_PER_WQE = 64  # KF §5: striding RQ, 64 pages per WQE (one packet per page with XDP)
MLX5E_CACHE_SIZE = 4 * MLX5_MPWRQ_PAGES_PER_WQE  # en.h: 4 * roundup_pow_of_two(pages per WQE) = 256
MLX5E_DMA_INFO_SIZE = 16  # struct mlx5e_dma_info: dma_addr_t + struct page *
NAPI_POLL_WEIGHT = 64  # KF §5
# mlx5e_poll_rx_cq() prices a poll whose every frame is redirected and fits veth's ring in one
# step; the per-frame loop computes the same (tests/test_net_paths.py turns this off to compare).
REDIRECT_FAST_PATH = True
RQ_SIZE_DEFAULT = 1024  # KF §5: default RQ of 1024 frames

# Lines a packet touches outside the allocator that are new to its CPU's caches, so they age the
# allocator's lines (CacheModel.advance). Struct sizes on x86-64, Linux 5.12:
FOOTPRINT_LINES: dict[str, float] = {
    "struct mlx5_cqe64 (64 B, written by the NIC)": 1.0,
    "packet data: a 64-byte frame, Ethernet and IP headers (written by the NIC)": 1.0,
    "struct xdp_frame (40 B) written at the page's headroom (XDP_PACKET_HEADROOM 256 B)": 1.0,
    "struct skb_shared_info head, cleared by __build_skb_around() at the page's end": 1.0,
    "struct mlx5_wqe_data_seg (16 B per page, written at refill)": 16 / 64,
    "struct mlx5e_dma_info (16 B per page, the WQE's page array)": MLX5E_DMA_INFO_SIZE / 64,
}
# Not counted: the struct sk_buff (232 B, 4 lines) comes from the per-CPU NAPI skb cache and
# slab LIFO, a small set of hot objects reused every poll, as are the devmap bulk queue (16
# pointers), veth's ptr_ring (256 pointers) and the driver's, pool's and BPF program's own state.
PACKET_FOOTPRINT = sum(FOOTPRINT_LINES.values())


def nic_line_cost(m: Machine, cpu: CPU, nic_node: int, mem_node: int) -> float:
    """ns for `cpu` to read a line the NIC on `nic_node` wrote into memory on `mem_node`.

    Intel DDIO: a device's writes to memory of its own socket allocate in the LLC (pagesim: the
    LLC of the first CPU of the NIC's node), so a CPU sharing that LLC pays an LLC hit and any
    other CPU a cache-to-cache transfer at its distance. Writes to another socket's memory are
    assumed to go to that memory (DRAM at the reader's NUMA distance)."""
    nodes = m.hw.topology.nodes
    cache = m.cache
    if nodes[mem_node].socket != nodes[nic_node].socket:
        return cache.dram[cpu.node][mem_node]
    home = nodes[nic_node].cpus[0]
    if cache.cpu_llc[home] == cpu.llc:
        return cache.lat_llc
    return cache.xfer[cpu.id][home]


class Mlx5eRq:
    """`machine.cpu0.rq0`: struct mlx5e_rq of one channel, its CQ, page cache and page_pool,
    and the NIC's view of it (posted descriptors, arrivals, drops)."""

    def __init__(
        self,
        m: Machine,
        index: int,
        cpu: CPU,
        pool: PagePool,
        costs: NetCosts,
        *,
        nic_node: int,
        ring_size: int = RQ_SIZE_DEFAULT,
        budget: int = NAPI_POLL_WEIGHT,
        rate_per_ns: float | None = None,
        rng: np.random.Generator | None = None,
        recycle: float = 0.0,
        recycle_in_mlx5: bool = False,
    ) -> None:
        if ring_size % MLX5_MPWRQ_PAGES_PER_WQE or ring_size <= 0:
            raise ValueError(f"ring_size must be a multiple of {MLX5_MPWRQ_PAGES_PER_WQE}, got {ring_size}")
        if rate_per_ns is not None and rng is None:
            raise ValueError("a finite offered load needs a random stream")
        self.m = m
        self.index = index
        self.scope = f"{cpu.scope}.rq{index}"
        self.cpu = cpu
        self.pool = pool
        self.costs = costs
        self.ring_size = ring_size
        self.budget = budget
        self.rate = rate_per_ns  # None: saturating (every posted descriptor is filled at once)
        self.rng = rng
        self.recycle = recycle if recycle_in_mlx5 else 0.0  # XDP_DROP share (mlx5 cache path)
        self._recycle_acc = 0.0
        # NIC state
        self.posted: deque[int] = deque()  # pages on descriptors the NIC may fill
        self.cq: deque[int] = deque()  # pages of packets received and not yet polled
        self.t_last = 0.0  # arrivals are accounted up to here
        self._carry = 0  # an arrival already drawn at t_last (the one that raised the IRQ)
        self.arrived = 0
        self.drops = 0
        # mlx5e_page_cache: a ring of MLX5E_CACHE_SIZE dma_info entries, one slot kept free
        self.page_cache: deque[int] = deque()
        self.cache_head = 0
        self.cache_tail = 0
        self.cache_base = m.registry.alloc(f"{self.scope}.page_cache", cpu.node, MLX5E_CACHE_SIZE * 16 // 64)
        self.cache_reuse = 0
        self.cache_full = 0
        # NAPI / interrupt state
        self.napi_scheduled = True  # mlx5e_activate_rq() triggers a first poll to fill the ring
        self.irq_at: float | None = None  # when the armed CQ raises its interrupt
        self.wqe_alloc_failures = 0
        self.redirected = 0
        self.xdp_drops = 0
        # NIC-written lines: the CQE (on the channel's node) and the packet (on the pool's node)
        self.cqe_ns = nic_line_cost(m, cpu, nic_node, cpu.node)
        self.pkt_ns = nic_line_cost(m, cpu, nic_node, pool.nid)
        # The CQ ring is read in order, so the hardware's stream prefetcher overlaps CQE misses
        # up to the core's fill buffers; the packet header is read by the XDP program right
        # after the driver's prefetch, a dependent miss.
        self.nic_ns_per_packet = self.cqe_ns / m.hw.memory.fill_buffers + self.pkt_ns
        self._footprint_acc = 0.0

    def _take_recycle(self) -> bool:
        self._recycle_acc += self.recycle
        if self._recycle_acc >= 1.0 - 1e-9:
            self._recycle_acc -= 1.0
            return True
        return False


# ---------------------------------------------------------------------------------------------
# the NIC
# ---------------------------------------------------------------------------------------------


def mlx5_nic_receive(rq: Mlx5eRq, t: float) -> None:
    """The NIC's side up to time `t`: packets that arrived land on posted descriptors and get
    a CQE; a packet finding no posted descriptor is dropped (rx_out_of_buffer).

    Arrivals are Poisson at the offered rate (counted per interval: the process is memoryless),
    or saturating (every posted descriptor is filled at once; drops are then not counted)."""
    if rq.rate is None:
        rq.arrived += len(rq.posted)
        rq.cq.extend(rq.posted)
        rq.posted.clear()
        rq.t_last = max(rq.t_last, t)
        return
    if t < rq.t_last:
        return
    assert rq.rng is not None
    k = rq._carry + int(rq.rng.poisson(rq.rate * (t - rq.t_last)))
    rq._carry = 0
    rq.t_last = t
    if not k:
        return
    rq.arrived += k
    accepted = min(k, len(rq.posted))
    rq.drops += k - accepted
    for _ in range(accepted):
        rq.cq.append(rq.posted.popleft())


def mlx5e_cq_arm(cpu: CPU, rq: Mlx5eRq) -> None:
    """Mirrors napi_complete_done() in net/core/dev.c, v5.12 + mlx5e_cq_arm(): the CQ raises the device
    interrupt at the next CQE, at once if CQEs arrived while NAPI was finishing."""
    now = cpu.now()
    rq.napi_scheduled = False
    mlx5_nic_receive(rq, now)
    if rq.cq or rq.rate is None:
        rq.irq_at = now
        return
    assert rq.rng is not None
    rq.irq_at = now + float(rq.rng.exponential(1.0 / rq.rate))
    rq.t_last = rq.irq_at
    rq._carry = 1


# ---------------------------------------------------------------------------------------------
# mlx5's page cache and page allocation
# ---------------------------------------------------------------------------------------------


def mlx5e_rx_cache_get(cpu: CPU, rq: Mlx5eRq) -> int | None:
    """Mirrors mlx5e_rx_cache_get() in drivers/net/ethernet/mellanox/mlx5/core/en_rx.c, v5.12: the page at
    the cache's head if its refcount is 1 (pages in this model's cache always are). The empty case costs
    only the head/tail test (part of the outside work)."""
    if not rq.page_cache:
        return None
    pfn = rq.page_cache.popleft()
    cpu.touch([rq.cache_base + rq.cache_head * MLX5E_DMA_INFO_SIZE // 64, pfn])  # dma_info, page_ref_count
    cpu.spend(cpu.costs.list_line)
    rq.cache_head = (rq.cache_head + 1) % MLX5E_CACHE_SIZE
    rq.cache_reuse += 1
    return pfn


def mlx5e_rx_cache_put(cpu: CPU, rq: Mlx5eRq, pfn: int) -> bool:
    """Mirrors mlx5e_rx_cache_put() in drivers/net/ethernet/mellanox/mlx5/core/en_rx.c, v5.12: append at
    the tail unless full (one slot stays free)."""
    if len(rq.page_cache) >= MLX5E_CACHE_SIZE - 1:
        rq.cache_full += 1
        return False
    cpu.touch([rq.cache_base + rq.cache_tail * MLX5E_DMA_INFO_SIZE // 64])
    cpu.spend(cpu.costs.list_line)
    rq.page_cache.append(pfn)
    rq.cache_tail = (rq.cache_tail + 1) % MLX5E_CACHE_SIZE
    return True


def mlx5e_page_alloc_pool(cpu: CPU, rq: Mlx5eRq, t: NetTally) -> Generator[simpy.Event, None, int | None]:
    """Mirrors mlx5e_page_alloc_pool() in drivers/net/ethernet/mellanox/mlx5/core/en_rx.c, v5.12: mlx5's
    cache, else page_pool_dev_alloc_pages() and dma_map_page() (the DMA map failure path is left out)."""
    t.frontend_ns += cpu.run_code(cpu.machine.code.of("mlx5_refill", "page_pool_alloc"))
    t0, a0, f0, e0 = cpu.now(), t.alloc_ns, t.free_ns, t.frontend_ns
    page = mlx5e_rx_cache_get(cpu, rq)
    mapped = False
    if page is None:
        page = yield from page_pool_alloc_pages(cpu, rq.pool, t)
        mapped = page is not None
    # the slow path's front-end stall is the front end's, not page_pool's
    t.pool_ns += cpu.now() - t0 - (t.alloc_ns - a0) - (t.free_ns - f0) - (t.frontend_ns - e0)
    if mapped:
        cpu.spend(rq.costs.dma_map)
        t.dma_ns += rq.costs.dma_map
    return page


def mlx5e_page_alloc_pool_run(
    cpu: CPU, rq: Mlx5eRq, t: NetTally, want: int
) -> Generator[simpy.Event, None, list[int]]:
    """`want` back-to-back mlx5e_page_alloc_pool() calls, stopping at the first that fails (as
    mlx5e_alloc_rx_mpwqe's loop does); returns the pages. Priced in stretches, exactly as the
    calls one by one: pages popped from page_pool's alloc.cache (its fast path), and in 5.11's
    one-page mode, runs of slow-path calls that each go to alloc_pages_node() (the allocator run,
    with page_pool's and mlx5's own work around each call). Anything else (mlx5's page cache
    holding pages, the ptr_ring to refill from, a bulk refill) goes one call at a time."""
    pool = rq.pool
    out: list[int] = []
    while len(out) < want:
        left = want - len(out)
        if not rq.page_cache and pool.count:
            out += _pool_pop_run(cpu, rq, t, min(left, pool.count))
        elif not rq.page_cache and not pool.ring and pool.strategy == "single":
            got = yield from _single_slow_run(cpu, rq, t, left)
            out += got
            if len(got) < left:
                break
        else:
            page = yield from mlx5e_page_alloc_pool(cpu, rq, t)
            if page is None:
                break
            out.append(page)
    return out


def _pool_pop_run(cpu: CPU, rq: Mlx5eRq, t: NetTally, k: int) -> list[int]:
    """k mlx5e_page_alloc_pool() calls served by page_pool_alloc_pages()'s fast path: the pool's
    call, pool->alloc.cache[--pool->alloc.count], then dma_map_page()."""
    pool = rq.pool
    nc = rq.costs
    t.frontend_ns += cpu.run_code(cpu.machine.code.of("mlx5_refill", "page_pool_alloc"), k)
    slots = pool.alloc.array.slots
    top = pool.count
    idx = list(range(top - 1, top - 1 - k, -1))
    pages = [slots[i] for i in idx]
    if any(p is None for p in pages):
        raise InvariantError(f"{pool.scope}: alloc.cache slot below {top} is empty")
    for i in idx:
        slots[i] = None  # pagesim keeps popped slots NULL (the array form needs NULLs)
    pool.count = top - k
    pool.stats.alloc_fast += k
    line = pool.alloc.array.line
    tape = Tape(cpu, k)
    tape.mark()
    tape.spend(pool.costs.pp_alloc)
    tape.touch([np.array([line(i) for i in idx], dtype=np.int64)])
    tape.mark()
    tape.spend(nc.dma_map)
    times = tape.run()
    # t.pool_ns += now - t0 - (t.alloc_ns - a0) - (t.free_ns - f0) - (frontend), all 0.0
    t.pool_ns = running_sum(t.pool_ns, (times[:, 1] - times[:, 0] - 0.0) - 0.0)
    t.dma_ns = running_sum(t.dma_ns, np.full(k, nc.dma_map))
    return pages  # type: ignore[return-value]


def _single_slow_run(cpu: CPU, rq: Mlx5eRq, t: NetTally, n: int) -> Generator[simpy.Event, None, list[int]]:
    """n mlx5e_page_alloc_pool() calls that each reach __page_pool_alloc_pages_slow() in 5.11's
    one-page mode (mlx5's cache, alloc.cache and the ptr_ring all empty): page_pool's call and
    empty ring check, the slow path's call and params line, alloc_pages_node(), dma_map_page()."""
    pool = rq.pool
    nc = rq.costs
    c = cpu.costs
    code = cpu.machine.code.of("mlx5_refill", "page_pool_alloc", "page_pool_slow", "alloc_pages")
    t.frontend_ns += cpu.run_code(code, n)
    prologue = (
        Spend(pool.costs.pp_alloc),
        Touch((pool.ring_line(pool.consumer),), False),  # __ptr_ring_empty()
        Spend(c.call),
        Touch((pool.params_line,)),
    )
    pages, times = yield from alloc_pages_node_run(cpu, pool.gfp, pool.nid, n, prologue, (Spend(nc.dma_map),))
    calls = len(times)
    k = len(pages)
    pool.stats.slow_calls += calls
    pool.stats.slow_pages += k
    pool.stats.slow_empty += calls - k
    pool.hold_cnt += k
    # __page_pool_alloc_pages_slow: t.alloc_ns += now - t0 - (t.free_ns - f0), the latter 0.0
    alloc = running_sums(t.alloc_ns, (times[:, 2] - times[:, 1]) - 0.0)
    before = np.concatenate(([t.alloc_ns], alloc[:-1]))
    t.alloc_ns = float(alloc[-1]) if calls else t.alloc_ns
    # mlx5e_page_alloc_pool: t.pool_ns += now - t0 - (t.alloc_ns - a0) - (t.free_ns - f0) - (frontend:
    # charged before the run, 0.0 here)
    t.pool_ns = running_sum(t.pool_ns, ((times[:, 2] - times[:, 0]) - (alloc - before)) - 0.0)
    t.dma_ns = running_sum(t.dma_ns, np.full(k, nc.dma_map))
    return pages


def mlx5e_page_release(
    cpu: CPU, rq: Mlx5eRq, pfn: int, recycle: bool, t: NetTally
) -> Generator[simpy.Event, None, None]:
    """Mirrors mlx5e_page_release() in drivers/net/ethernet/mellanox/mlx5/core/en_rx.c, v5.12: with
    recycle, into mlx5's cache, else (cache full) unmap and page_pool_recycle_direct(); without, unmap,
    page_pool_release_page() and put_page()."""
    t0, f0 = cpu.now(), t.free_ns
    if recycle and mlx5e_rx_cache_put(cpu, rq, pfn):
        t.pool_ns += cpu.now() - t0
        return
    cpu.spend(rq.costs.dma_unmap)
    t.dma_ns += rq.costs.dma_unmap
    t0 = cpu.now()
    if recycle:
        yield from page_pool_recycle_direct(cpu, rq.pool, pfn, t)
        t.pool_ns += cpu.now() - t0 - (t.free_ns - f0)
        return
    page_pool_release_page(cpu, rq.pool, pfn)
    t.pool_ns += cpu.now() - t0
    t1 = cpu.now()
    yield from put_page(cpu, pfn)
    t.free_ns += cpu.now() - t1


def mlx5e_alloc_rx_mpwqe(cpu: CPU, rq: Mlx5eRq, t: NetTally) -> Generator[simpy.Event, None, bool]:
    """Mirrors mlx5e_alloc_rx_mpwqe() in drivers/net/ethernet/mellanox/mlx5/core/en_rx.c, v5.12: a page per
    stride, MLX5_MPWRQ_PAGES_PER_WQE of them; if one allocation fails, the pages already taken go back
    (recycled) and the WQE is not posted."""
    pages = yield from mlx5e_page_alloc_pool_run(cpu, rq, t, MLX5_MPWRQ_PAGES_PER_WQE)
    if len(pages) < MLX5_MPWRQ_PAGES_PER_WQE:
        for p in pages:
            yield from mlx5e_page_release(cpu, rq, p, True, t)
        return False
    rq.posted.extend(pages)
    return True


def mlx5e_post_rx_mpwqes(cpu: CPU, rq: Mlx5eRq, t: NetTally) -> Generator[simpy.Event, None, bool]:
    """Mirrors mlx5e_post_rx_mpwqes() in drivers/net/ethernet/mellanox/mlx5/core/en_rx.c, v5.12: repost
    every WQE whose strides were all received and polled. Returns True (busy) if an allocation failed
    and WQEs are still missing."""
    mlx5_nic_receive(rq, cpu.now())
    missing = (rq.ring_size - len(rq.posted) - len(rq.cq)) // MLX5_MPWRQ_PAGES_PER_WQE
    for _ in range(missing):
        ok = yield from mlx5e_alloc_rx_mpwqe(cpu, rq, t)
        if not ok:
            rq.wqe_alloc_failures += 1
            return True
    return False


# ---------------------------------------------------------------------------------------------
# RX and NAPI
# ---------------------------------------------------------------------------------------------


def mlx5e_poll_rx_cq(
    cpu: CPU, rq: Mlx5eRq, budget: int, vrq: VethRq, t: NetTally
) -> Generator[simpy.Event, None, int]:
    """Mirrors mlx5e_poll_rx_cq() in drivers/net/ethernet/mellanox/mlx5/core/en_rx.c, v5.12 with an XDP
    program: up to `budget` CQEs, each mlx5e_handle_rx_cqe_mpwrq() -> mlx5e_xdp_handle(): XDP_REDIRECT
    (mlx5e_page_dma_unmap, the frame into the devmap's bulk queue, flushed to veth every
    DEV_MAP_BULK_SIZE frames) or, for the recycled share on the mlx5-cache path, XDP_DROP (the page
    stays mapped and goes back to mlx5's cache). Then mlx5e_xdp_rx_poll_complete() -> xdp_do_flush().

    The per-packet work besides the pages (CQE parsing, the BPF program, devmap, veth, SKB build and
    free...) is the fitted outside cost, charged for the whole poll in one step, with the lines the NIC
    wrote and the packet's cache footprint."""
    mlx5_nic_receive(rq, cpu.now())
    n = min(budget, len(rq.cq))
    if n == 0:
        return 0
    nc = rq.costs
    # the RX loop's code, CQE to XDP_REDIRECT and the devmap flush, once per packet
    t.frontend_ns += cpu.run_code(cpu.machine.code["mlx5_rx"], n)
    cpu.spend(n * nc.outside)
    t.outside_ns += n * nc.outside
    nic = n * rq.nic_ns_per_packet
    cpu.spend(nic)
    t.nic_ns += nic
    rq._footprint_acc += n * PACKET_FOOTPRINT
    lines = int(rq._footprint_acc)
    rq._footprint_acc -= lines
    cpu.machine.cache.advance(cpu.id, lines)
    bq: list[Frame] = []
    redirected = 0
    if REDIRECT_FAST_PATH and not rq.recycle and len(vrq.ring) + n <= vrq.ring_size:
        # every frame is redirected and fits veth's ring: the loop below, without a drop
        pool = rq.pool
        cq = rq.cq
        frames = [Frame(cq.popleft(), pool) for _ in range(n)]
        unmap = np.full(n, nc.dma_unmap)
        cpu.spend_each(unmap)
        t.dma_ns = running_sum(t.dma_ns, unmap)
        vrq.ring.extend(frames)  # veth_xdp_xmit() of each bulk of DEV_MAP_BULK_SIZE
        __veth_xdp_flush(vrq)
        rq.redirected += n
        t.packets += n
        return n
    for _ in range(n):
        pfn = rq.cq.popleft()
        if rq.recycle and rq._take_recycle():
            rq.xdp_drops += 1
            yield from mlx5e_page_release(cpu, rq, pfn, True, t)
            continue
        cpu.spend(nc.dma_unmap)
        t.dma_ns += nc.dma_unmap
        redirected += 1
        bq.append(Frame(pfn, rq.pool))
        if len(bq) == DEV_MAP_BULK_SIZE:  # bq_enqueue(): a full bulk queue is sent at once
            yield from veth_xdp_xmit(cpu, vrq, bq, t)
            bq = []
    if bq:
        yield from veth_xdp_xmit(cpu, vrq, bq, t)
    if redirected:
        __veth_xdp_flush(vrq)
    rq.redirected += redirected
    t.packets += n
    return n


def mlx5e_napi_poll(cpu: CPU, rq: Mlx5eRq, vrq: VethRq, t: NetTally) -> Generator[simpy.Event, None, int]:
    """Mirrors mlx5e_napi_poll() in drivers/net/ethernet/mellanox/mlx5/core/en_txrx.c, v5.12 for one RQ: RX
    up to the budget, repost WQEs, and if the poll did not use its whole budget (and the refill did not
    fail), complete NAPI and re-arm the CQ. TX/XDP-SQ completions and the ICOSQ are left out (their work
    is in the outside cost)."""
    work = yield from mlx5e_poll_rx_cq(cpu, rq, rq.budget, vrq, t)
    busy = work == rq.budget
    refill_busy = yield from mlx5e_post_rx_mpwqes(cpu, rq, t)
    if not (busy or refill_busy):
        mlx5e_cq_arm(cpu, rq)
    return work
