"""The sunrpc server (net/sunrpc/svc.c, svc_xprt.c) and nfsd threads (fs/nfsd/nfssvc.c), 5.12/5.13.

Each nfsd thread owns a struct svc_rqst whose rq_pages[] holds (sv_max_mesg + 2 * PAGE_SIZE) >>
PAGE_SHIFT pages: 259 for the default 1 MiB maximum payload. Before every request the thread
refills the entries the previous request consumed (svc_alloc_arg, called first thing in
svc_recv), then waits for a transport with work (svc_get_next_xprt), processes the RPC
(svc_process) and sends the reply, whose pages go with it to the network stack and are freed when
it lets go of them (the TCP send path drops the last reference after the peer's ACK, in softirq,
on whichever CPU handles that: free_unref_page there).

svc_alloc_arg() refills rq_pages with one of the four allocation strategies of the bulk
allocator's review (simulator/mm/strategies.py):
- single:     the 5.12 loop, alloc_page(GFP_KERNEL) for each NULL entry;
- bulk_list:  the seed series' patch 3/5: count the NULL entries, one alloc_pages_bulk() call
              onto a list, move the pages into the NULL entries;
- bulk_array: 5.13 (commit f6e70aab9dfe): alloc_pages_bulk_array(GFP_KERNEL, pages, rq_pages),
              which fills only the NULL entries;
- pagevec:    the pagevec API Matthew Wilcox proposed: bulk calls of at most 15 pages.
Each strategy's loop sleeps 500 ms (schedule_timeout(msecs_to_jiffies(500))) whenever a refill
comes back short, as 5.12 (single page failing) and 5.13 (any short fill) do; `sleep_policy`
"no_progress" is NeilBrown's later fix (SUNRPC: don't pause on incomplete allocation, 2021-08):
sleep only when a call made no progress at all.

Left out: transports' own work (socket reads, XDR), the duplicate reply cache, thread-count
changes, svc_xprt reservation and the pool's overload heuristics, scheduler wake-up latency.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import simpy

from simulator.machine.cache import ASYNC
from simulator.machine.cpu import CPU
from simulator.machine.sched import SOFTIRQ, THREAD, RunQueues
from simulator.mm.gfp import GFP_KERNEL
from simulator.mm.machine import Machine
from simulator.mm.mmzone import PAGE_SHIFT, PAGE_SIZE
from simulator.mm.strategies import CallerBuffers, alloc_attempt, free_attempt
from simulator.stats import Histogram

RPCSVC_MAXPAYLOAD = 1 << 20  # include/linux/sunrpc/svc.h: 1 MiB
SVC_ALLOC_ARG_SLEEP_NS = 500e6  # schedule_timeout(msecs_to_jiffies(500))


def sv_max_mesg(max_payload: int) -> int:
    """__svc_create(): serv->sv_max_mesg = roundup(sv_max_payload + PAGE_SIZE, PAGE_SIZE)."""
    return -(-(max_payload + PAGE_SIZE) // PAGE_SIZE) * PAGE_SIZE


def svc_rqst_pages(max_payload: int = RPCSVC_MAXPAYLOAD) -> int:
    """svc_alloc_arg(): pages = (serv->sv_max_mesg + 2 * PAGE_SIZE) >> PAGE_SHIFT (259 for 1 MiB)."""
    return (sv_max_mesg(max_payload) + 2 * PAGE_SIZE) >> PAGE_SHIFT


@dataclass
class Request:
    """One RPC: when it reached the server, how many rq_pages entries it consumes, its cost."""

    seq: int
    kind: int  # index into the workload's request mix
    arrival: float
    pages: int  # rq_pages entries consumed (handed on with the reply)
    service_ns: float  # processing outside the page allocator
    lines: int  # cache lines that processing touches (ages this CPU's caches)
    measured: bool = True
    done: float = -1.0


@dataclass
class SvcStats:
    """What the sunrpc layer counts (for calls and requests inside the measurement window)."""

    alloc_arg: Histogram = field(default_factory=Histogram)  # svc_alloc_arg durations, sleeps included
    alloc_arg_pages: int = 0
    partial_fills: int = 0  # refills that came back short
    sleeps: int = 0  # 500 ms schedule_timeout()s
    eintr: int = 0  # refills abandoned because the thread was stopping
    asleep_ns: float = 0.0  # nfsd thread-time inside the window spent in those sleeps
    latency: Histogram = field(default_factory=Histogram)  # request arrival -> reply sent
    completed: int = 0
    completed_in_window: int = 0  # measured requests whose reply left before the window's end


class SvcServ:
    """struct svc_serv plus the run's settings: strategy, pools, the CPUs' run queues."""

    def __init__(
        self,
        m: Machine,
        rq: RunQueues,
        strategy: str,
        max_payload: int = RPCSVC_MAXPAYLOAD,
        sleep_ns: float = SVC_ALLOC_ARG_SLEEP_NS,
        sleep_policy: str = "short_fill",
        reply_free_delay_ns: float = 0.0,
        reply_freer: Callable[[CPU], CPU] | None = None,
        on_reply: Callable[[Request], None] | None = None,
    ) -> None:
        self.m = m
        self.env = m.env
        self.rq = rq
        self.strategy = strategy
        self.npages = svc_rqst_pages(max_payload)
        self.sleep_ns = sleep_ns
        self.sleep_policy = sleep_policy
        self.reply_free_delay_ns = reply_free_delay_ns
        self.reply_freer = reply_freer or (lambda cpu: cpu)
        self.on_reply = on_reply
        self.pools: list[SvcPool] = []
        self.threads: list[SvcRqst] = []
        self.stats = SvcStats()
        self.window = (0.0, float("inf"))
        self.stopping = False

    def in_window(self, t: float) -> bool:
        return self.window[0] <= t < self.window[1]

    def svc_pool(self, pool_id: int) -> SvcPool:
        while len(self.pools) <= pool_id:
            self.pools.append(SvcPool(self, len(self.pools)))
        return self.pools[pool_id]

    def svc_prepare_thread(self, cpu: CPU, pool: SvcPool) -> SvcRqst:
        """Mirrors svc_prepare_thread(): a svc_rqst with an empty rq_pages, on `pool`; then
        starts its nfsd() loop."""
        r = SvcRqst(self, len(self.threads), cpu, pool)
        self.threads.append(r)
        pool.all_threads.append(r)
        self.env.process(nfsd(r))
        return r

    def stop(self) -> None:
        """svc_stop_kthreads(): idle threads exit now, busy ones when they next look for work."""
        self.stopping = True
        for pool in self.pools:
            for r in pool.all_threads:
                if r.wake is not None:
                    ev, r.wake = r.wake, None
                    ev.succeed(None)


class SvcPool:
    """struct svc_pool: transports with work waiting, and the pool's threads."""

    def __init__(self, serv: SvcServ, pool_id: int) -> None:
        self.serv = serv
        self.id = pool_id
        self.queue: deque[Request] = deque()  # sp_sockets
        self.all_threads: list[SvcRqst] = []  # sp_all_threads, in the order they are searched
        self.threads_woken = 0
        self.queued = 0

    def svc_xprt_enqueue(self, req: Request) -> None:
        """Mirrors svc_xprt_do_enqueue(): hand the work to the first idle thread of
        sp_all_threads (test_and_set_bit(RQ_BUSY)), else queue it on sp_sockets."""
        for r in self.all_threads:
            if r.wake is not None:
                ev, r.wake = r.wake, None
                self.threads_woken += 1
                ev.succeed(req)
                return
        self.queued += 1
        self.queue.append(req)

    def svc_get_next_xprt(self, r: SvcRqst) -> Generator[simpy.Event, None, Request | None]:
        """Mirrors svc_get_next_xprt(): take queued work, else sleep idle until some arrives
        (None: the thread is being stopped)."""
        if self.queue:
            return self.queue.popleft()
        if self.serv.stopping:
            return None
        ev = self.serv.env.event()
        r.wake = ev
        req = yield ev
        return req


class SvcRqst:
    """struct svc_rqst of one nfsd thread, pinned to `cpu` (`machine.cpu3.nfsd5`)."""

    def __init__(self, serv: SvcServ, tid: int, cpu: CPU, pool: SvcPool) -> None:
        self.serv = serv
        self.id = tid
        self.cpu = cpu
        self.pool = pool
        self.scope = f"{cpu.scope}.nfsd{tid}"
        self.buf = CallerBuffers.create(serv.m, f"{self.scope}.rq_pages", cpu.node, serv.npages)
        self.wake: simpy.Event | None = None  # set while idle in svc_get_next_xprt
        self.requests = 0

    @property
    def rq_pages(self) -> list[int | None]:
        return self.buf.array.slots

    def missing(self) -> int:
        return self.rq_pages.count(None)


def svc_alloc_arg(r: SvcRqst) -> Generator[simpy.Event, None, bool]:
    """Mirrors svc_alloc_arg(): fill every NULL entry of rq_pages with the server's strategy,
    sleeping sleep_ns after a short fill. The thread holds its CPU, except while it sleeps.
    Returns False for -EINTR (the thread is being stopped: kthread_should_stop())."""
    serv = r.serv
    cpu = r.cpu
    env = serv.env
    t0 = cpu.now()
    measured = serv.in_window(t0)
    got_total = 0
    prev_missing = r.missing()
    while True:
        # the code: svc_alloc_arg and the allocator's path, per missing page for the 5.12 loop,
        # per bulk call for the others (after nfsd's request processing, mostly cold)
        code = cpu.machine.code
        missing = r.missing()
        calls = {"single": missing, "pagevec": -(-missing // 15)}.get(serv.strategy, 1)
        path = code["alloc_pages"] if serv.strategy == "single" or missing == 1 else code["alloc_pages_bulk"]
        cpu.run_code(code["svc_alloc_arg"])
        cpu.run_code(path, calls)
        # Not priced, for any strategy: the walk over rq_pages for NULL entries (259 pointers,
        # 33 lines this thread wrote last; the caller's loop, or alloc_pages_bulk_array's)
        got = yield from alloc_attempt(cpu, serv.strategy, GFP_KERNEL, cpu.node, serv.npages, r.buf)
        got_total += len(got)
        missing = r.missing()
        if missing == 0:
            break
        if measured:
            serv.stats.partial_fills += 1
        if serv.stopping:
            if measured:
                serv.stats.eintr += 1
            _record_alloc_arg(serv, measured, cpu.now() - t0, got_total)
            return False
        if serv.sleep_policy == "no_progress" and missing < prev_missing:
            prev_missing = missing
            continue
        prev_missing = missing
        # set_current_state(TASK_INTERRUPTIBLE); schedule_timeout(msecs_to_jiffies(500))
        if measured:
            serv.stats.sleeps += 1
        yield from serv.rq.release(cpu)
        t_sleep = env.now
        serv.stats.asleep_ns += max(
            0.0, min(t_sleep + serv.sleep_ns, serv.window[1]) - max(t_sleep, serv.window[0])
        )
        yield env.timeout(serv.sleep_ns)
        yield from serv.rq.acquire(cpu, THREAD)
    _record_alloc_arg(serv, measured, cpu.now() - t0, got_total)
    return True


def _record_alloc_arg(serv: SvcServ, measured: bool, ns: float, pages: int) -> None:
    if measured:
        serv.stats.alloc_arg.add(ns)
        serv.stats.alloc_arg_pages += pages


def svc_process(r: SvcRqst, req: Request) -> list[int]:
    """Mirrors svc_process() -> nfsd_dispatch() for the model's purposes: the request's own
    processing cost, the cache lines it touches, and the rq_pages entries it consumes: the
    reply head page and the payload pages after rq_pages[0] (the request's head stays).
    Returns the consumed pages, which leave with the reply."""
    cpu = r.cpu
    cpu.spend(req.service_ns)
    cpu.cache.advance(cpu.id, req.lines)
    cpu.occupy_code(cpu.machine.code["nfsd_rpc"])  # its fetch stalls are in service_ns
    slots = r.rq_pages
    n = min(req.pages, r.serv.npages - 1)
    pages = [p for p in slots[1 : 1 + n] if p is not None]
    slots[1 : 1 + n] = [None] * n
    arr = r.buf.array
    cpu.touch([ln | ASYNC for ln in range(arr.line(1), arr.line(n) + 1)])  # NULLing: stores
    r.requests += 1
    return pages


def reply_pages_free(
    serv: SvcServ, cpu: CPU, pages: list[int], buf: CallerBuffers
) -> Generator[simpy.Event, None, None]:
    """The network stack lets go of a reply's pages after reply_free_delay_ns (the peer's
    ACK): put_page on each, free_unref_page, in softirq on `cpu`."""
    if serv.reply_free_delay_ns:
        yield serv.env.timeout(serv.reply_free_delay_ns)
    yield from serv.rq.acquire(cpu, SOFTIRQ)
    cpu.run_code(cpu.machine.code.of("put_page", "free_unref_page"), len(pages))
    yield from free_attempt(cpu, "one_by_one", pages, buf)
    yield from serv.rq.release(cpu)


def nfsd(r: SvcRqst) -> Generator[simpy.Event, None, None]:
    """Mirrors nfsd() (fs/nfsd/nfssvc.c): loop over svc_recv() and svc_process() until stopped."""
    serv = r.serv
    env = serv.env
    cpu = r.cpu
    while True:
        # svc_recv(): refill rq_pages first, then wait for work
        yield from serv.rq.acquire(cpu, THREAD)
        ok = yield from svc_alloc_arg(r)
        yield from serv.rq.release(cpu)
        if not ok:
            return
        req = yield from r.pool.svc_get_next_xprt(r)
        if req is None:
            return
        yield from serv.rq.acquire(cpu, THREAD)
        pages = svc_process(r, req)
        yield from serv.rq.release(cpu)
        # svc_send(): the reply has left; its pages are the network stack's now
        req.done = env.now
        serv.stats.completed += 1
        if req.measured:
            serv.stats.latency.add(req.done - req.arrival)
            if req.done < serv.window[1]:
                serv.stats.completed_in_window += 1
        if serv.on_reply is not None:
            serv.on_reply(req)
        if pages:
            freer = serv.reply_freer(cpu)
            env.process(reply_pages_free(serv, freer, pages, r.buf))
