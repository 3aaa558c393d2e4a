"""nfs: an NFS server's nfsd threads refilling rq_pages (svc_alloc_arg), under memory pressure.

Builds on a machine: nfsd threads pinned round-robin to each node's CPUs (simulator/sunrpc/svc.py),
clients sending RPCs (open loop: Poisson at a rate; closed loop: N outstanding), a request mix
whose entries consume 1 (small RPC), 65 (256 KiB READ/WRITE) or 257 (1 MiB) rq_pages entries,
reply pages freed later by a CPU of the configured kind, and optionally memory pressure: zones
started near their watermarks with the rest of memory held as reclaimable page cache (balloon),
a background allocator competing for memory, and the reclaim model (simulator/mm/vmscan.py).

Costs and where they come from:
- allocator work: the allocator model (simulator/mm/page_alloc.py, calibration.py);
- request processing outside the allocator, per RPC: `service.rpc` (an assumed, named
  parameter: see NfsService) plus `service.per_wire_packet` per TCP segment of request and reply,
  derived by `derive_wire_packet_ns()` from the reference host's measured per-packet kernel cost;
- reclaim: `memory.reclaim_cost` per page, derived by vmscan.reclaim_ns_per_page();
- the 500 ms sleep: schedule_timeout(msecs_to_jiffies(500)) in svc_alloc_arg (5.12, 5.13).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from typing import Any, Literal

import numpy as np
import simpy
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.calibration import ALLOCATOR_FUNCTIONS, Calibration, CalibrationInput
from simulator.errors import ConfigError
from simulator.hardware import Hardware
from simulator.machine.cpu import CPU
from simulator.machine.sched import THREAD, RunQueues
from simulator.mm.balloon import balloon_inflate
from simulator.mm.gfp import GFP_KERNEL, Gfp
from simulator.mm.machine import Machine
from simulator.mm.mmzone import MIGRATE_MOVABLE, NR_FREE_PAGES, PAGE_SIZE, ZONE_NORMAL
from simulator.mm.page_alloc_run import alloc_pages_node_run, free_unref_page_run
from simulator.mm.vmscan import Reclaim, reclaim_ns_per_page
from simulator.mm.vmstat import zone_page_state
from simulator.sunrpc.svc import (
    RPCSVC_MAXPAYLOAD,
    SVC_ALLOC_ARG_SLEEP_NS,
    Request,
    SvcPool,
    SvcServ,
    svc_rqst_pages,
)
from simulator.units import Duration, Size
from simulator.workloads.api import PointContext, Workload

Ns = Duration
Bytes = Size

# Page cache allocations (filemap_alloc_page): __GFP_MOVABLE, may reclaim. Only ZONE_NORMAL and
# below are populated in the modelled hosts, so the highest zone index it can use is ZONE_NORMAL.
GFP_HIGHUSER_MOVABLE = Gfp(
    "GFP_HIGHUSER_MOVABLE",
    high=False,
    atomic=False,
    direct_reclaim=True,
    kswapd_reclaim=True,
    migratetype=MIGRATE_MOVABLE,
    highest_zoneidx=ZONE_NORMAL,
)
BACKGROUND_GFP = {"GFP_KERNEL": GFP_KERNEL, "GFP_HIGHUSER_MOVABLE": GFP_HIGHUSER_MOVABLE}


def derive_wire_packet_ns(hw: Hardware, cal: CalibrationInput) -> tuple[float, str]:
    """The named calibration of network work per TCP segment, from the reference profile.

    The reference host spent 1e9 / 3,677,958 = 271.9 ns per packet of XDP redirect, SKB build
    and free (KF §1); minus the page allocator's share of the profile (15.76 %) that is 229 ns
    of kernel network work per packet, scaled by clock ratio to `hw`. Assumed: a TCP segment of
    an NFS request or reply costs the server what one such packet did (no GRO/TSO batching,
    no data copy: both move this figure, in opposite directions). `cal`: the allocator's
    calibration (the reference profile)."""
    per_packet = 1e9 / cal.reference.packets_per_second
    share = sum(cal.self_percent[f] for f in ALLOCATOR_FUNCTIONS) / 100.0
    scale = cal.reference.clock / hw.cpu.clock
    ns = per_packet * (1.0 - share) * scale
    formula = (
        f"1e9 / {cal.reference.packets_per_second:,.0f} pps * (1 - {share:.4f} allocator share)"
        f" * {cal.reference.clock:g}/{hw.cpu.clock:g} GHz = {ns:.1f} ns"
    )
    return ns, formula


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestKind(_Strict):
    """One entry of the request mix."""

    name: str = Field(min_length=1)
    weight: float = Field(gt=0)
    op: Literal["small", "read", "write"]
    payload: Bytes = 0  # READ reply data or WRITE request data
    pages: int | None = Field(default=None, ge=0)  # rq_pages entries consumed; default derived

    def consumed(self) -> int:
        """rq_pages entries the request leaves NULL: the reply's head page, plus the payload
        pages (a READ's reply data spliced from the page cache replaces them; a WRITE's
        data pages go to the transport, as the issue's model has it)."""
        if self.pages is not None:
            return self.pages
        return 1 + (-(-self.payload // PAGE_SIZE) if self.op != "small" else 0)


DEFAULT_MIX = (
    RequestKind(name="metadata", weight=0.90, op="small"),
    RequestKind(name="read_256k", weight=0.04, op="read", payload="256 KiB"),
    RequestKind(name="write_256k", weight=0.04, op="write", payload="256 KiB"),
    RequestKind(name="read_1m", weight=0.01, op="read", payload="1 MiB"),
    RequestKind(name="write_1m", weight=0.01, op="write", payload="1 MiB"),
)


class Clients(_Strict):
    model: Literal["open", "closed"] = "open"
    rate: float | None = Field(default=None, gt=0, description="open loop: RPCs per second")
    outstanding: int | None = Field(default=None, ge=1, description="closed loop: RPCs in flight")
    think: Ns = 0.0  # closed loop: client delay between a reply and its next request

    @model_validator(mode="after")
    def _one(self) -> Clients:
        if self.model == "open" and self.rate is None:
            raise ValueError("an open-loop client needs `rate` (RPCs per second)")
        if self.model == "closed" and self.outstanding is None:
            raise ValueError("a closed-loop client needs `outstanding` (RPCs in flight)")
        return self


class NfsService(_Strict):
    """Request processing outside the page allocator: rpc + per_wire_packet * TCP segments.

    `rpc` is assumed (no public per-RPC knfsd CPU cost was found): sunrpc receive/decode,
    nfsd's operation on cached metadata, encode and send of one RPC, 8 us. It sets the server's
    load, not what the allocator costs; per_wire_packet (None: derive_wire_packet_ns) scales the
    cost with payload size."""

    rpc: Ns = 8000.0
    per_wire_packet: Ns | None = None
    mss: Bytes = 1448  # 1500-byte MTU minus IPv4, TCP and timestamp option headers
    header: Bytes = 200  # assumed RPC + NFS header bytes of a request or reply
    rpc_lines: int = Field(default=64, ge=0)  # assumed: lines an RPC's own processing touches


class ReplyFree(_Strict):
    delay: Ns = 50_000.0  # assumed: until the peer's ACK lets TCP drop the pages (LAN RTT order)
    cpu: Literal["same", "same_node", "remote", "any"] = "same_node"


class Background(_Strict):
    """A competing allocator (e.g. page cache growth), `rate` pages per second in bursts."""

    rate: float = Field(default=0.0, ge=0)
    burst: int = Field(default=32, ge=1)
    pattern: Literal["poisson", "steady"] = "poisson"
    node: int = Field(default=0, ge=0)
    cpu: int | None = None  # default: the node's last CPU
    hold: Ns | None = None  # None: pages are kept to the end of the run
    gfp: Literal["GFP_KERNEL", "GFP_HIGHUSER_MOVABLE"] = "GFP_HIGHUSER_MOVABLE"


class Memory(_Strict):
    """Memory pressure: start each zone of `nodes` with free pages at a point of its watermark
    scale (0 = min, 1 = low, 2 = high, linear between and beyond) or at an absolute amount per
    node (split by zone size); the rest of memory is reclaimable page cache."""

    nodes: list[int] | None = None  # default: every node
    free_wmark: float | None = Field(default=None, ge=0)
    free: Bytes | None = None
    reclaim_cost: Ns | None = None  # per page; None: vmscan.reclaim_ns_per_page()
    sample: Ns = 1e6  # how often the free-page level is sampled

    @model_validator(mode="after")
    def _one(self) -> Memory:
        if self.free_wmark is not None and self.free is not None:
            raise ValueError("give free_wmark or free, not both")
        return self

    @property
    def pressured(self) -> bool:
        return self.free_wmark is not None or self.free is not None


class NfsParams(_Strict):
    """The `nfs:` section of a scenario."""

    threads_per_node: int = Field(default=8, ge=1)
    nodes: list[int] | None = None  # nodes with nfsd threads; default every node
    pool_mode: Literal["global", "pernode"] = "global"  # sunrpc pool_mode (5.12 default: global)
    max_payload: Bytes = RPCSVC_MAXPAYLOAD
    clients: Clients = Field(default_factory=lambda: Clients(rate=150_000.0))
    mix: list[RequestKind] = Field(default_factory=lambda: list(DEFAULT_MIX), min_length=1)
    service: NfsService = Field(default_factory=NfsService)
    reply_free: ReplyFree = Field(default_factory=ReplyFree)
    background: Background = Field(default_factory=Background)
    memory: Memory = Field(default_factory=Memory)
    sleep: Ns = SVC_ALLOC_ARG_SLEEP_NS
    sleep_policy: Literal["short_fill", "no_progress"] = "short_fill"


def check(model: Any, params: BaseModel, hw: Hardware, file: str) -> None:
    """Cross-checks against the hardware; batches and cpus are not used by this workload."""
    p: NfsParams = params  # type: ignore[assignment]
    if len(model.batches) != 1 or len(model.cpus) != 1:
        raise ConfigError.one(file, "batches", "nfs uses neither batches nor cpus: give one value of each")
    n = hw.nnodes
    for where, nodes in (("nfs.nodes", p.nodes), ("nfs.memory.nodes", p.memory.nodes)):
        bad = [x for x in (nodes or []) if x >= n]
        if bad:
            raise ConfigError.one(file, where, f"{hw.name} has nodes 0..{n - 1}", bad[0])
    if p.background.node >= n:
        raise ConfigError.one(
            file, "nfs.background.node", f"{hw.name} has nodes 0..{n - 1}", p.background.node
        )
    if p.background.cpu is not None and p.background.cpu >= hw.ncpus:
        raise ConfigError.one(file, "nfs.background.cpu", f"{hw.name} has {hw.ncpus} CPUs", p.background.cpu)
    if p.reply_free.cpu == "remote" and n < 2:
        raise ConfigError.one(file, "nfs.reply_free.cpu", f"'remote' needs two nodes; {hw.name} has one")
    too_big = [k.name for k in p.mix if k.consumed() > svc_rqst_pages(p.max_payload) - 1]
    if too_big:
        raise ConfigError.one(
            file, "nfs.mix", "consumes more rq_pages entries than the thread has", too_big[0]
        )


# ---------------------------------------------------------------------------------------------


def _node_cpus(m: Machine, node: int) -> list[CPU]:
    return [c for c in m.cpus if c.node == node]


def apply_pressure(m: Machine, mem: Memory) -> dict[str, int]:
    """Inflate each zone's balloon so its free pages sit where `mem` says; returns pages held."""
    held: dict[str, int] = {}
    nodes = mem.nodes if mem.nodes is not None else [n.node_id for n in m.nodes]
    for node in nodes:
        zones = m.nodes[node].zones
        managed = sum(z.managed for z in zones)
        for z in zones:
            if mem.free_wmark is not None:
                x = mem.free_wmark
                w = [z.min_wmark, z.low_wmark, z.high_wmark]
                i = min(int(x), 1)
                target = w[i] + (x - i) * (w[i + 1] - w[i])
            else:
                assert mem.free is not None
                target = mem.free // PAGE_SIZE * z.managed / managed
            free = zone_page_state(z, NR_FREE_PAGES)
            held[z.scope] = balloon_inflate(z, max(0, free - int(target)))
    return held


def request_kind_cdf(mix: list[RequestKind]) -> np.ndarray:
    """The mix's cumulative weights, normalised as Generator.choice() normalises p."""
    weights = np.array([k.weight for k in mix], dtype=float)
    weights /= weights.sum()
    cdf = weights.cumsum()
    cdf /= cdf[-1]
    return cdf


def draw_request_kind(cdf: np.ndarray, rng: np.random.Generator) -> int:
    """A request's kind: Generator.choice(len(mix), p=weights)'s draw, one uniform through the
    cumulative weights (tests/test_nfs.py checks the two agree), without choice()'s checks of p."""
    return int(cdf.searchsorted(rng.random(), side="right"))


class Figures:
    """The run's own counters besides the sunrpc ones."""

    def __init__(self) -> None:
        self.requests = 0
        self.outstanding = 0
        self.background_pages = 0
        self.background_failures = 0
        self.free_min = math.inf
        self.samples = 0
        self.samples_below_low = 0
        self.samples_below_min = 0


def request_kinds(p: NfsParams, wire_packet_ns: float) -> list[tuple[int, float, int]]:
    """Per entry of the mix: (rq_pages entries it consumes, service ns, lines its processing
    touches). Service is `service.rpc` plus the TCP segments of request and reply, each at
    `service.per_wire_packet` (`wire_packet_ns`, derived from the profile, if it is not set)."""
    per_packet = p.service.per_wire_packet if p.service.per_wire_packet is not None else wire_packet_ns
    kinds = []
    for k in p.mix:
        req_bytes = p.service.header + (k.payload if k.op == "write" else 0)
        rep_bytes = p.service.header + (k.payload if k.op == "read" else 0)
        segs = -(-req_bytes // p.service.mss) + -(-rep_bytes // p.service.mss)
        # a WRITE copies its data into the page cache (source and destination lines); a READ
        # splices page cache pages (one struct page line each)
        lines = p.service.rpc_lines + (
            2 * k.payload // 64 if k.op == "write" else k.payload // PAGE_SIZE if k.op == "read" else 0
        )
        kinds.append((k.consumed(), p.service.rpc + segs * per_packet, lines))
    return kinds


class ReplyFreer:
    """Which CPU frees a reply's pages, as `reply_free.cpu` says: the CPU that served the request,
    another CPU of its node, one of another node, or any (drawn from the `frees` stream)."""

    def __init__(self, m: Machine, how: str, rng: np.random.Generator) -> None:
        self.m = m
        self.how = how
        self.rng = rng
        self.by_node = {n.node_id: _node_cpus(m, n.node_id) for n in m.nodes}

    def __call__(self, cpu: CPU) -> CPU:
        if self.how == "same":
            return cpu
        if self.how == "same_node":
            pool = self.by_node[cpu.node]
        elif self.how == "remote":
            pool = [c for c in self.m.cpus if c.node != cpu.node]
        else:
            pool = self.m.cpus
        return pool[int(self.rng.integers(len(pool)))]


class RpcClients:
    """The NFS clients: requests drawn from the mix (the `clients` stream), each sent to one of
    the server's pools, open loop (Poisson arrivals at `rate`) or closed loop (`outstanding`
    requests in flight, each followed by the next after a think time). Once the clients stop
    (the end of the window) and the last reply is back, the server and reclaim stop too."""

    def __init__(
        self,
        env: simpy.Environment,
        p: Clients,
        kinds: list[tuple[int, float, int]],
        cdf: np.ndarray,
        rng: np.random.Generator,
        end: float,
        fig: Figures,
    ) -> None:
        self.env = env
        self.p = p
        self.kinds = kinds
        self.cdf = cdf
        self.rng = rng
        self.end = end
        self.fig = fig
        self.done = False  # no request will be issued any more
        self.serv: SvcServ | None = None  # the server and the reclaim model they stop (serve())
        self.reclaim: Reclaim | None = None
        self.pools: list[SvcPool] = []

    def serve(self, serv: SvcServ, reclaim: Reclaim) -> None:
        """Send requests to `serv`'s pools that have threads (pernode: the nodes with threads)."""
        self.serv = serv
        self.reclaim = reclaim
        self.pools = [pool for pool in serv.pools if pool.all_threads]

    def start(self) -> None:
        self.env.process(self.open_loop() if self.p.model == "open" else self.closed_loop())

    def issue(self) -> None:
        """One request of a kind drawn from the mix, onto a pool drawn at random."""
        assert self.serv is not None
        env, fig = self.env, self.fig
        kind = draw_request_kind(self.cdf, self.rng)
        pages, service_ns, lines = self.kinds[kind]
        req = Request(fig.requests, kind, env.now, pages, service_ns, lines, self.serv.in_window(env.now))
        fig.requests += 1
        fig.outstanding += 1
        pool = self.pools[int(self.rng.integers(len(self.pools)))]
        pool.svc_xprt_enqueue(req)

    def on_reply(self, req: Request) -> None:
        """The server sent `req`'s reply (SvcServ's on_reply)."""
        self.fig.outstanding -= 1
        if self.p.model == "closed" and self.env.now < self.end:
            self.env.process(self.closed_next(self.p.think))
        self.maybe_finish()

    def maybe_finish(self) -> None:
        assert self.serv is not None and self.reclaim is not None
        if self.done and self.fig.outstanding == 0 and not self.serv.stopping:
            self.serv.stop()
            self.reclaim.stop()

    def open_loop(self) -> Generator[simpy.Event, None, None]:
        """Poisson arrivals at `rate` until the end of the window."""
        assert self.p.rate is not None
        mean_gap = 1e9 / self.p.rate
        while True:
            yield self.env.timeout(float(self.rng.exponential(mean_gap)))
            if self.env.now >= self.end:
                break
            self.issue()
        self.done = True
        self.maybe_finish()

    def closed_next(self, think: float) -> Generator[simpy.Event, None, None]:
        """A closed-loop client's next request, after its think time."""
        if think:
            yield self.env.timeout(float(self.rng.exponential(think)))
        if self.env.now < self.end:
            self.issue()

    def closed_loop(self) -> Generator[simpy.Event, None, None]:
        """`outstanding` requests at once; each reply brings the next (on_reply) until the end."""
        assert self.p.outstanding is not None
        for _ in range(self.p.outstanding):
            self.issue()
        yield self.env.timeout(self.end)
        self.done = True
        self.maybe_finish()


def start_server(
    ctx: PointContext, rq: RunQueues, clients: RpcClients, freer: ReplyFreer, window: tuple[float, float]
) -> SvcServ:
    """The nfsd threads: `threads_per_node` on each node of `nodes`, pinned round-robin to the
    node's CPUs, in the pools `pool_mode` gives (interleaved by node, so a global pool's search
    order alternates nodes)."""
    m = ctx.machine
    p: NfsParams = ctx.params  # type: ignore[assignment]
    serv = SvcServ(
        m,
        rq,
        ctx.point.strategy,
        max_payload=p.max_payload,
        sleep_ns=p.sleep,
        sleep_policy=p.sleep_policy,
        reply_free_delay_ns=p.reply_free.delay,
        reply_freer=freer,
        on_reply=clients.on_reply,
    )
    serv.window = window
    nodes = p.nodes if p.nodes is not None else [n.node_id for n in m.nodes]
    for i in range(p.threads_per_node):
        for node in nodes:
            cpus = freer.by_node[node]
            pool = serv.svc_pool(node if p.pool_mode == "pernode" else 0)
            serv.svc_prepare_thread(cpus[i % len(cpus)], pool)
    return serv


def window_start(
    env: simpy.Environment, warmup: float, reclaim: Reclaim
) -> Generator[simpy.Event, None, None]:
    """The end of warm-up, for the reclaim model's own counters."""
    yield env.timeout(warmup)
    reclaim.reset_stats()


def run(ctx: PointContext) -> dict[str, float]:
    """Run the NFS server workload for one point (one strategy)."""
    m = ctx.machine
    env = m.env
    p: NfsParams = ctx.params  # type: ignore[assignment]
    warmup = ctx.warmup
    end = warmup + ctx.duration
    rq = RunQueues(env, m.cpus)
    fig = Figures()

    # memory pressure and the reclaim model
    if p.memory.pressured:
        apply_pressure(m, p.memory)
    cost = p.memory.reclaim_cost if p.memory.reclaim_cost is not None else reclaim_ns_per_page()[0]
    reclaim = Reclaim(m, rq, {n.node_id: _node_cpus(m, n.node_id)[-1] for n in m.nodes}, cost)

    # the server and its clients
    freer = ReplyFreer(m, p.reply_free.cpu, ctx.rng("frees"))
    kinds = request_kinds(p, ctx.derived)
    clients = RpcClients(env, p.clients, kinds, request_kind_cdf(p.mix), ctx.rng("clients"), end, fig)
    serv = start_server(ctx, rq, clients, freer, (warmup, end))
    clients.serve(serv, reclaim)
    clients.start()

    # the background allocator
    if p.background.rate > 0:
        env.process(background(ctx, m, rq, p.background, end, fig))

    # free-memory samples of the pressured zones (ZONE_NORMAL of each pressured node)
    if p.memory.pressured:
        watched = [
            z
            for node in (p.memory.nodes if p.memory.nodes is not None else range(len(m.nodes)))
            for z in m.nodes[node].zones
            if z.zone_idx == ZONE_NORMAL
        ]
        env.process(sampler(env, watched, p.memory.sample, warmup, end, fig))

    if warmup > 0:
        env.process(window_start(env, warmup, reclaim))
    ctx.measure_window(warmup, m.cpus)
    env.run()
    return figures(ctx, serv, reclaim, rq, fig)


def figures(
    ctx: PointContext, serv: SvcServ, reclaim: Reclaim, rq: RunQueues, fig: Figures
) -> dict[str, float]:
    """The row's NFS figures, from the server's, reclaim's and the run's own counters."""
    m = ctx.machine
    env = m.env
    st = serv.stats
    lat = st.latency
    aa = st.alloc_arg
    ctx.pages_measured = st.alloc_arg_pages
    rs = reclaim.stats
    duration = ctx.duration
    busy = sum(rq.busy_ns.values()) / (env.now * len(m.cpus)) if env.now > 0 else 0.0
    return {
        "ops_per_s": st.completed_in_window / (duration / 1e9),
        "latency_us_p50": lat.quantile(0.5) / 1e3,
        "latency_us_p99": lat.quantile(0.99) / 1e3,
        "latency_us_p999": lat.quantile(0.999) / 1e3,
        "latency_us_max": lat.max / 1e3,
        "svc_alloc_arg_us_mean": aa.mean / 1e3,
        "svc_alloc_arg_us_p50": aa.quantile(0.5) / 1e3,
        "svc_alloc_arg_us_p99": aa.quantile(0.99) / 1e3,
        "svc_alloc_arg_us_max": aa.max / 1e3,
        "svc_alloc_arg_calls": aa.n,
        "pages_per_call_mean": st.alloc_arg_pages / aa.n if aa.n else 0.0,
        "partial_fills": st.partial_fills,
        "nfsd_asleep_share": st.asleep_ns / (len(serv.threads) * duration),
        "sleeps": st.sleeps,
        "remote_node_allocs": m.stats.remote_node_allocs,
        "requests": lat.n,
        "bulk_calls": m.stats.bulk_calls,
        "kswapd_wakeups": rs.kswapd_wakeups,
        "kswapd_reclaimed": rs.kswapd_reclaimed,
        "direct_reclaims": rs.direct_reclaims,
        "direct_reclaimed": rs.direct_reclaimed,
        "direct_reclaim_us": rs.direct_reclaim_ns / 1e3,
        "background_pages": fig.background_pages,
        "background_failures": fig.background_failures,
        "free_pages_min": fig.free_min if fig.samples else -1,
        "below_low_share": fig.samples_below_low / fig.samples if fig.samples else 0.0,
        "below_min_share": fig.samples_below_min / fig.samples if fig.samples else 0.0,
        "cpu_busy_share": busy,
    }


def background(
    ctx: PointContext,
    m: Machine,
    rq: RunQueues,
    bg: Background,
    end: float,
    fig: Figures,
) -> Generator[simpy.Event, None, None]:
    """A competing allocator on one CPU: `burst` single-page allocations (alloc_pages_node with
    bg.gfp, so it wakes kswapd and direct-reclaims like any GFP_KERNEL caller) every burst/rate
    seconds on average, until the window ends. Pages are kept, or freed after `hold`."""
    env = m.env
    rng = ctx.rng("background")
    cpu = m.cpus[bg.cpu] if bg.cpu is not None else _node_cpus(m, bg.node)[-1]
    gfp = BACKGROUND_GFP[bg.gfp]
    gap = bg.burst / bg.rate * 1e9
    held: deque[tuple[float, list[int]]] = deque()
    while True:
        yield env.timeout(float(rng.exponential(gap)) if bg.pattern == "poisson" else gap)
        if env.now >= end:
            return
        yield from rq.acquire(cpu, THREAD)
        got: list[int] = []
        left = bg.burst  # alloc_pages_node() calls, a failed one counted and skipped
        while left:
            pages, calls = yield from alloc_pages_node_run(cpu, gfp, bg.node, left)
            got += pages
            left -= len(calls)
            if len(pages) < len(calls):
                fig.background_failures += 1
        if bg.hold is not None:
            held.append((env.now + bg.hold, got))
            while held and held[0][0] <= env.now:
                yield from free_unref_page_run(cpu, held.popleft()[1])
        yield from rq.release(cpu)
        if env.now >= ctx.warmup:
            fig.background_pages += len(got)


def sampler(
    env: simpy.Environment, zones: list[Any], every: float, start: float, end: float, fig: Figures
) -> Generator[simpy.Event, None, None]:
    """Sample the watched zones' free pages (the counter the watermark checks read)."""
    yield env.timeout(start)
    while env.now < end:
        for z in zones:
            free = zone_page_state(z, NR_FREE_PAGES)
            fig.free_min = min(fig.free_min, free)
            fig.samples += 1
            fig.samples_below_low += free <= z.low_wmark
            fig.samples_below_min += free <= z.min_wmark
        yield env.timeout(every)


def derive(params: BaseModel, cal: Calibration) -> float:
    """The network work per TCP segment derived from the reference profile (derive_wire_packet_ns),
    for `service.per_wire_packet` when the scenario does not set it."""
    return derive_wire_packet_ns(cal.hw, cal.profile)[0]


WORKLOAD = Workload(
    "nfs",
    NfsParams,
    run,
    check,
    derive,
    summary=(
        "ops_per_s",
        "svc_alloc_arg_us_mean",
        "svc_alloc_arg_us_p99",
        "latency_us_p50",
        "latency_us_p99",
        "latency_us_p999",
        "partial_fills",
        "sleeps",
        "remote_node_allocs",
    ),
)
