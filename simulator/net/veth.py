"""veth as the XDP-redirect target (drivers/net/veth.c, kernel/bpf/devmap.c, net/core/xdp.c,
net/core/skbuff.c, Linux 5.12).

`xdp_redirect_map mlx5p1 veth1`: mlx5's XDP program redirects every frame through a devmap,
which queues DEV_MAP_BULK_SIZE (16) frames and hands them to veth_xdp_xmit(): into the peer's
xdp_ring (256 entries; a frame finding it full is dropped and returned to its page_pool). veth's
NAPI runs on the same CPU (veth_select_rxq picks the rx queue by smp_processor_id(), and
xdp_do_flush schedules that queue's NAPI locally: KF §1). Its XDP program (`xdp_rxq_info --act
XDP_PASS`) passes each frame, so veth builds an SKB around the page (__xdp_build_skb_from_frame),
which takes the page out of its page_pool (xdp_release_frame -> page_pool_release_page); the
stack drops the SKB early (MAC mismatch) and its free returns the page to the page allocator:
kfree_skb -> skb_free_head -> page_frag_free -> put_page -> free_unref_page. The share of
frames recycled on the ptr_ring path gets XDP_DROP from veth's program instead: xdp_return_frame
-> page_pool_put_page (not the pool's NAPI: no direct recycling) -> the pool's ptr_ring.

The SKB's own work (kmem_cache_alloc_bulk, clearing it, the stack, kmem_cache_free) is part of
the fitted outside cost, charged by the mlx5 poll; here only the page's path is priced.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Generator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import simpy

from simulator.machine.tape import PAGE, Spend, Touch, running_sum
from simulator.mm import page_alloc
from simulator.mm.page_alloc_run import free_unref_page_run
from simulator.net.page_pool import (
    PagePool,
    page_pool_put_page,
    page_pool_recycle_direct,
    page_pool_release_page,
)

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU
    from simulator.net.tally import NetTally

DEV_MAP_BULK_SIZE = 16  # kernel/bpf/devmap.c (KF §5)
VETH_RING_SIZE = 256  # drivers/net/veth.c VETH_RING_SIZE (KF §5)
VETH_NAPI_WEIGHT = 64  # NAPI_POLL_WEIGHT


class Frame(NamedTuple):
    """An xdp_frame: the page it lives in and the page_pool that page came from (xdp_mem_info)."""

    pfn: int
    pool: PagePool


class VethRq:
    """`machine.cpu0.veth_rq`: the veth rx queue (and its NAPI) that this CPU's frames go to."""

    def __init__(self, cpu: CPU, recycle: float = 0.0, budget: int = VETH_NAPI_WEIGHT) -> None:
        self.scope = f"{cpu.scope}.veth_rq"
        self.cpu = cpu
        self.budget = budget
        self.ring: deque[Frame] = deque()
        self.ring_size = VETH_RING_SIZE
        self.recycle = recycle  # XDP_DROP share of veth's program (ptr_ring recycling path)
        self._acc = 0.0
        self.napi_scheduled = False
        self.xmit_drops = 0  # frames dropped at veth_xdp_xmit (ring full)
        self.passed = 0  # XDP_PASS: SKBs built, pages freed to the allocator
        self.xdp_drops = 0  # XDP_DROP: frames returned to their page_pool

    def _take_recycle(self) -> bool:
        self._acc += self.recycle
        if self._acc >= 1.0 - 1e-9:
            self._acc -= 1.0
            return True
        return False


def veth_xdp_xmit(
    cpu: CPU, vrq: VethRq, frames: list[Frame], t: NetTally
) -> Generator[simpy.Event, None, None]:
    """Mirrors veth_xdp_xmit() in drivers/net/veth.c, v5.12 (ndo_xdp_xmit, from the devmap's bq_xmit_all):
    produce each frame into the peer's xdp_ring under its producer lock; a frame that does not fit is
    dropped with xdp_return_frame_rx_napi() (the mlx5 poll is its pool's NAPI: direct recycling). The
    lock and the ring writes are part of the outside cost."""
    for fr in frames:
        if len(vrq.ring) < vrq.ring_size:
            vrq.ring.append(fr)
            continue
        vrq.xmit_drops += 1
        t0, f0 = cpu.now(), t.free_ns
        cpu.touch([fr.pfn])  # virt_to_head_page()
        yield from page_pool_recycle_direct(cpu, fr.pool, fr.pfn, t)
        t.pool_ns += cpu.now() - t0 - (t.free_ns - f0)


def __veth_xdp_flush(vrq: VethRq) -> None:
    """Mirrors __veth_xdp_flush() in drivers/net/veth.c, v5.12 (at xdp_do_flush): schedule the peer queue's
    NAPI here."""
    vrq.napi_scheduled = True


def xdp_release_frame(cpu: CPU, fr: Frame, t: NetTally) -> None:
    """Mirrors xdp_release_frame() in include/net/xdp.h, v5.12 -> __xdp_release_frame():
    virt_to_head_page() reads the struct page, then page_pool_release_page() disconnects it from its
    pool."""
    t0 = cpu.now()
    cpu.touch([fr.pfn])
    page_pool_release_page(cpu, fr.pool, fr.pfn)
    t.pool_ns += cpu.now() - t0


def page_frag_free(cpu: CPU, pfn: int, t: NetTally) -> Generator[simpy.Event, None, None]:
    """page_frag_free() in mm/page_alloc.c, v5.12 (skb_free_head of an SKB built around a page
    fragment), with the tally of its time: the last put_page_testzero() frees the page through
    free_unref_page()."""
    t0 = cpu.now()
    yield from page_alloc.page_frag_free(cpu, pfn)
    t.free_ns += cpu.now() - t0


def xdp_return_frame(cpu: CPU, fr: Frame, t: NetTally) -> Generator[simpy.Event, None, None]:
    """Mirrors xdp_return_frame() in net/core/xdp.c, v5.12 for a page_pool frame:
    page_pool_put_full_page(pool, page, false): not the pool's NAPI, so no direct recycling."""
    t0, f0 = cpu.now(), t.free_ns
    cpu.touch([fr.pfn])  # virt_to_head_page()
    yield from page_pool_put_page(cpu, fr.pool, fr.pfn, False, t)
    t.pool_ns += cpu.now() - t0 - (t.free_ns - f0)


def veth_xdp_rcv(cpu: CPU, vrq: VethRq, budget: int, t: NetTally) -> Generator[simpy.Event, None, int]:
    """Mirrors veth_xdp_rcv() in drivers/net/veth.c, v5.12 for xdp_frames: up to `budget` frames from the
    xdp_ring, each run through veth's XDP program (veth_xdp_rcv_one): XDP_PASS builds an SKB
    (veth_xdp_rcv_bulk_skb -> __xdp_build_skb_from_frame -> xdp_release_frame), passed up and dropped,
    freeing its page; XDP_DROP (the recycled share) returns the frame to its pool.

    Consecutive XDP_PASS frames are priced together (veth_pass_frames), in the same order."""
    n = min(budget, len(vrq.ring))
    # per frame: veth's XDP, the SKB build, GRO and the list receive path up to the drop, the
    # SKB's free and its page's (page_frag_free -> free_unref_page)
    code = cpu.machine.code.of("veth_rx", "page_frag_free", "free_unref_page")
    t.frontend_ns += cpu.run_code(code, n)
    passed: list[Frame] = []
    for _ in range(n):
        fr = vrq.ring.popleft()
        if vrq.recycle and vrq._take_recycle():
            if passed:
                yield from veth_pass_frames(cpu, vrq, passed, t)
                passed = []
            vrq.xdp_drops += 1
            yield from xdp_return_frame(cpu, fr, t)
            continue
        passed.append(fr)
    if passed:
        yield from veth_pass_frames(cpu, vrq, passed, t)
    return n


def veth_pass_frames(
    cpu: CPU, vrq: VethRq, frames: list[Frame], t: NetTally
) -> Generator[simpy.Event, None, None]:
    """XDP_PASS for each frame in turn: xdp_release_frame() (virt_to_head_page() reads the struct
    page, page_pool_release_page()), then page_frag_free() (free_unref_page()). Priced as one
    free_unref_page_run() with the release as each call's prologue: exactly what calling the two
    functions frame by frame prices, tallies included."""
    c = cpu.costs
    pools = [fr.pool for fr in frames]
    first = pools[0]
    same = all(p is first for p in pools)
    rel = first.release_line if same else np.array([p.release_line for p in pools], dtype=np.int64)
    release = (Touch((PAGE,)), Spend(c.call + c.atomic), Touch((rel,)))
    times = yield from free_unref_page_run(
        cpu, [fr.pfn for fr in frames], prologue=release, via="page_frag_free"
    )
    t.pool_ns = running_sum(t.pool_ns, times[:, 1] - times[:, 0])
    t.free_ns = running_sum(t.free_ns, times[:, 2] - times[:, 1])
    for pool, k in [(first, len(frames))] if same else Counter(pools).items():
        pool.release_cnt += k
        pool.stats.released += k
    vrq.passed += len(frames)


def veth_poll(cpu: CPU, vrq: VethRq, t: NetTally) -> Generator[simpy.Event, None, int]:
    """Mirrors veth_poll() in drivers/net/veth.c, v5.12: veth_xdp_rcv() up to the budget, then NAPI
    completes if the ring is drained (it stays scheduled otherwise)."""
    done = yield from veth_xdp_rcv(cpu, vrq, vrq.budget, t)
    if done < vrq.budget and not vrq.ring:
        vrq.napi_scheduled = False
    return done
