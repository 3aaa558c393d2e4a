"""xdp_redirect: the mlx5 XDP-redirect workload behind the bulk allocator's headline figure.

`xdp_redirect_map mlx5p1 veth1`, with veth's peer passing every frame as an SKB (KF §1): each
packet takes a page out of page_pool and the SKB's free gives it back to the page allocator, so
every packet costs one order-0 allocation (batched or not, by the strategy) and one free. The
reference measured 3,677,958 pps on one CPU of the E5-1650 v4 with 5.11's one-page refill, and
4,368,926 pps with the seed's bulk list API refilling 64 pages.

First the interface comes up: every queue's RX ring is filled, then warm-up and measurement
start together on every CPU. Per CPU, one SimPy process runs net_rx_action: the NAPI polls of
its RX queues (mlx5e_napi_poll: up to 64 packets, XDP redirect into veth, WQE refill through
mlx5's cache and page_pool), then its veth queue's poll (XDP_PASS -> SKB -> page freed), one
step per round. Offered load is
saturating by default (the reference was driven far above one CPU's capacity) or Poisson per
queue; below saturation NAPI completes and re-arms, and the interrupt the next packet raises is
delivered once the CPU's IRQ-off window (if any) ends: that wait is `irq_latency_*`.

The grid's `batch` is the page_pool refill size (PP_ALLOC_CACHE_REFILL, 1..256); `single`
ignores it (5.11: one page per slow-path call). `kernel.prep_new_page` places prep_new_page.
The per-packet cost outside the allocator and page_pool is the one fitted parameter
(hardware/calibration/xdp-redirect-outside.yaml, `python -m simulator.validation --calibrate`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, Literal

import simpy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulator.calibration import Calibration, net_costs
from simulator.errors import ConfigError
from simulator.machine.cpu import CPU
from simulator.mm.balloon import balloon_inflate
from simulator.mm.machine import Machine
from simulator.mm.mmzone import NR_FREE_PAGES, ZONE_NORMAL
from simulator.mm.vmstat import zone_page_state
from simulator.net.costs import NetCosts
from simulator.net.mlx5 import (
    MLX5_MPWRQ_PAGES_PER_WQE,
    NAPI_POLL_WEIGHT,
    RQ_SIZE_DEFAULT,
    Mlx5eRq,
    mlx5e_napi_poll,
    mlx5e_post_rx_mpwqes,
)
from simulator.net.page_pool import PagePool, PoolStats
from simulator.net.tally import NetTally
from simulator.net.veth import VethRq, veth_poll
from simulator.stats import Histogram
from simulator.workloads.api import PointContext, Workload
from simulator.workloads.page_bench import select_cpus

if TYPE_CHECKING:
    from simulator.hardware import Hardware

MAX_REFILL = 256


class XdpRedirectParams(BaseModel):
    """The `xdp_redirect:` section of a scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues_per_cpu: int = Field(default=1, ge=1, le=16, description="RX queues whose IRQ goes to each CPU")
    cpu_placement: Literal["pack", "spread"] = "pack"
    nic_node: int = Field(default=0, ge=0, description="NUMA node the NIC is attached to")
    pool_node: int | Literal["cpu"] = Field(
        default="cpu", description="page_pool's node: 'cpu' (mlx5: the channel CPU's node) or a node id"
    )
    offered_load: float | Literal["saturate"] = Field(
        default="saturate", description="packets per second offered to all queues together (RSS)"
    )
    ring_size: int = Field(default=RQ_SIZE_DEFAULT, description="RX ring (RQ) size in frames")
    napi_budget: int = Field(default=NAPI_POLL_WEIGHT, ge=1, le=256)
    recycle: float = Field(default=0.0, ge=0.0, le=1.0, description="share of pages recycled to the pool")
    recycle_path: Literal["ptr_ring", "mlx5_cache"] = Field(
        default="ptr_ring",
        description="ptr_ring: veth's program drops the frame (xdp_return_frame -> ptr_ring); "
        "mlx5_cache: mlx5's program drops it (XDP_DROP: mlx5's page cache, page stays mapped)",
    )
    free_pages_over_low: int | None = Field(
        default=None,
        description="memory pressure: from half-way through warm-up, each zone of the pools' nodes "
        "holds this many free pages above its low watermark (plus lowmem_reserve); None: no pressure",
    )
    outside_ns: float | None = Field(
        default=None, gt=0, description="override the fitted outside cost (ns per packet on this host)"
    )

    @field_validator("offered_load")
    @classmethod
    def _load(cls, v: float | str) -> float | str:
        if isinstance(v, float | int) and v <= 0:
            raise ValueError("offered_load must be positive packets per second, or 'saturate'")
        return v

    @field_validator("ring_size")
    @classmethod
    def _ring(cls, v: int) -> int:
        if v < MLX5_MPWRQ_PAGES_PER_WQE or v % MLX5_MPWRQ_PAGES_PER_WQE or v > 8192:
            raise ValueError(f"ring_size must be a multiple of {MLX5_MPWRQ_PAGES_PER_WQE} from 64 to 8192")
        return v


def check(model: Any, params: BaseModel, hw: Hardware, file: str) -> None:
    """Cross-checks against the hardware: refill sizes and nodes."""
    p: XdpRedirectParams = params  # type: ignore[assignment]
    bad = [b for b in model.batches if not 1 <= b <= MAX_REFILL]
    if bad:
        raise ConfigError.one(file, "batches", f"refill sizes must be from 1 to {MAX_REFILL}", bad[0])
    if p.nic_node >= hw.nnodes:
        raise ConfigError.one(file, "xdp_redirect.nic_node", f"{hw.name} has {hw.nnodes} node(s)", p.nic_node)
    if isinstance(p.pool_node, int) and not 0 <= p.pool_node < hw.nnodes:
        raise ConfigError.one(
            file, "xdp_redirect.pool_node", f"{hw.name} has {hw.nnodes} node(s)", p.pool_node
        )


def derive(params: BaseModel, cal: Calibration) -> NetCosts:
    """The network path's costs on this hardware (the fitted outside cost, or the scenario's)."""
    p: XdpRedirectParams = params  # type: ignore[assignment]
    return net_costs(cal, p.outside_ns)


# ---------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------


def _deliver_irqs(cpu: CPU, rqs: list[Mlx5eRq], t: NetTally, upto: float, measuring: bool) -> None:
    """Interrupts raised up to `upto`: each is taken when the IRQ-off window it fell into ends
    (CPU.irq_delivery_delay over the windows the CPU recorded), and schedules its NAPI."""
    for rq in rqs:
        if rq.irq_at is None or rq.irq_at > upto:
            continue
        delay = cpu.irq_delivery_delay(rq.irq_at)
        if measuring:
            t.irqs += 1
            t.irq_latency.add(delay)
        rq.irq_at = None
        rq.napi_scheduled = True


def _reset_counters(rqs: list[Mlx5eRq], vrq: VethRq) -> None:
    """Zero the queues' own counters at the end of warm-up (their state is kept)."""
    for rq in rqs:
        rq.arrived = rq.drops = rq.cache_reuse = rq.cache_full = 0
        rq.wqe_alloc_failures = rq.redirected = rq.xdp_drops = 0
        rq.pool.stats = PoolStats()
    vrq.xmit_drops = vrq.passed = vrq.xdp_drops = 0


def net_rx_action(
    cpu: CPU,
    rqs: list[Mlx5eRq],
    vrq: VethRq,
    t: NetTally,
    filled: simpy.Event,
    start: simpy.Event,
    warmup: float,
    duration: float,
) -> Generator[simpy.Event, None, None]:
    """Mirrors net_rx_action() in net/core/dev.c, v5.12, for one CPU's poll list: each round polls every
    scheduled RX queue, then the veth queue, as one step; idle until the next interrupt when no NAPI is
    scheduled. The net_rx_action budget (300) and time limit only move work to ksoftirqd on the same
    CPU, so they are left out; so is the per-interrupt cost (hardirq entry, napi_schedule, softirq
    entry), for which no public figure was found.

    Bring-up first: mlx5e_open_rq() posts every WQE of each queue (1024 pages from a cold buddy; with
    many CPUs per node they queue on zone->lock), then the CPU waits until every CPU is done (`filled`);
    the link comes up at `start`, and warm-up and measurement count from there."""
    env = cpu.env
    for rq in rqs:
        yield from mlx5e_post_rx_mpwqes(cpu, rq, t)
        rq.napi_scheduled = False
    yield cpu.sync()
    filled.succeed()
    t0 = yield start
    for rq in rqs:
        rq.t_last = t0  # the link comes up: arrivals start now
        rq.napi_scheduled = True
    warmup_end, end = t0 + warmup, t0 + warmup + duration
    measuring = False
    while True:
        now = env.now
        if now >= end:
            break
        if not measuring and now >= warmup_end:
            measuring = True
            t.reset()
            _reset_counters(rqs, vrq)
            t.t_first = now
            t.t_last = now
        ready = [rq for rq in rqs if rq.napi_scheduled]
        if not ready and not vrq.napi_scheduled:
            t_next = min(rq.irq_at for rq in rqs if rq.irq_at is not None)
            wake = min(t_next, end)
            if wake > now:
                yield env.timeout(wake - now)
            if measuring:
                t.idle_ns += wake - now
                t.t_last = wake
            _deliver_irqs(cpu, rqs, t, env.now, measuring)
            continue
        t.frontend_ns += cpu.run_code(cpu.machine.code["softirq"])  # net_rx_action, __do_softirq
        for rq in ready:
            yield from mlx5e_napi_poll(cpu, rq, vrq, t)
        if vrq.napi_scheduled:
            yield from veth_poll(cpu, vrq, t)
        yield cpu.sync()
        if measuring:
            t.polls += 1
            t.t_last = env.now
        _deliver_irqs(cpu, rqs, t, env.now, measuring)


def bring_up(
    ctx: PointContext,
    cpus: list[CPU],
    filled: list[simpy.Event],
    start: simpy.Event,
    pressure: tuple[list[int], int] | None,
) -> Generator[simpy.Event, None, None]:
    """Once every CPU has filled its rings: the link comes up (`start`), statistics count from
    the end of warm-up, and memory pressure (if any) arrives half-way through warm-up."""
    m = ctx.machine
    env = m.env
    yield simpy.AllOf(env, filled)
    t0 = env.now
    warmup = ctx.warmup
    ctx.measured_cpus = list(cpus)
    ctx.window_start = t0 + warmup
    start.succeed(t0)
    if pressure is not None:
        yield env.timeout(warmup / 2)
        memory_pressure(m, *pressure)
        yield env.timeout(warmup - warmup / 2)
    else:
        yield env.timeout(warmup)
    ctx.end_warmup()


def memory_pressure(m: Machine, nodes: list[int], over_low: int) -> None:
    """Inflate a balloon in every zone of `nodes` so that its free pages sit `over_low` above
    what a GFP_ATOMIC order-0 request needs there: the low watermark plus the zone's
    lowmem_reserve for ZONE_NORMAL requests. No reclaim runs (kswapd is only counted), so the
    pressure holds: a steady state near the watermarks."""
    for nid in nodes:
        for zone in m.nodes[nid].zones:
            target = zone.low_wmark + zone.lowmem_reserve[ZONE_NORMAL] + over_low
            free = zone_page_state(zone, NR_FREE_PAGES)
            if free > target:
                balloon_inflate(zone, free - target)


# ---------------------------------------------------------------------------------------------
# one point
# ---------------------------------------------------------------------------------------------


def run(ctx: PointContext) -> dict[str, Any]:
    """Run the XDP-redirect replay for one point; returns the workload's figures."""
    m, p = ctx.machine, ctx.point
    params: XdpRedirectParams = ctx.params  # type: ignore[assignment]
    nc: NetCosts = ctx.derived
    cpus = select_cpus(m, p.cpus, params.cpu_placement)
    warmup = ctx.warmup
    duration = ctx.duration
    nq = len(cpus) * params.queues_per_cpu
    saturate = params.offered_load == "saturate"
    rate = None if saturate else float(params.offered_load) / nq / 1e9
    tallies: list[NetTally] = []
    vrqs: list[VethRq] = []
    all_rqs: list[Mlx5eRq] = []
    pool_nodes: set[int] = set()
    filled: list[simpy.Event] = []
    start = m.env.event()
    for cpu in cpus:
        t = NetTally()
        vrq = VethRq(cpu, params.recycle if params.recycle_path == "ptr_ring" else 0.0)
        rqs = []
        for _ in range(params.queues_per_cpu):
            i = len(all_rqs)
            nid = cpu.node if params.pool_node == "cpu" else int(params.pool_node)
            pool_nodes.add(nid)
            pool = PagePool(m, f"{cpu.scope}.rq{i}.page_pool", nid, p.strategy, p.batch, params.ring_size, nc)
            rq = Mlx5eRq(
                m,
                i,
                cpu,
                pool,
                nc,
                nic_node=params.nic_node,
                ring_size=params.ring_size,
                budget=params.napi_budget,
                rate_per_ns=rate,
                rng=None if saturate else ctx.rng(f"arrivals.q{i}"),
                recycle=params.recycle,
                recycle_in_mlx5=params.recycle_path == "mlx5_cache",
            )
            rqs.append(rq)
            all_rqs.append(rq)
        tallies.append(t)
        vrqs.append(vrq)
        filled.append(m.env.event())
        m.env.process(net_rx_action(cpu, rqs, vrq, t, filled[-1], start, warmup, duration))
    over_low = params.free_pages_over_low
    pressure = None if over_low is None else (sorted(pool_nodes), over_low)
    m.env.process(bring_up(ctx, cpus, filled, start, pressure))
    m.env.run()

    for rq in all_rqs:
        rq.pool.check()
    packets = sum(t.packets for t in tallies)
    pps_cpu = [
        t.packets * 1e9 / (t.t_last - t.t_first) if t.t_first is not None and t.t_last > t.t_first else 0.0
        for t in tallies
    ]
    busy = sum((t.t_last - t.t_first - t.idle_ns) for t in tallies if t.t_first is not None)
    span = sum((t.t_last - t.t_first) for t in tallies if t.t_first is not None)
    if packets <= 0:
        raise RuntimeError("xdp_redirect measured no packets: duration too short or no load")
    irq = Histogram()
    for t in tallies:
        irq.merge(t.irq_latency)
    stats = [rq.pool.stats for rq in all_rqs]
    slow_calls = sum(s.slow_calls for s in stats)
    allocator_calls = slow_calls if p.strategy == "single" else m.stats.bulk_calls
    ctx.pages_measured = m.stats.pages_allocated
    per_packet = 1.0 / packets
    pps = sum(pps_cpu)
    nic_socket = m.hw.topology.nodes[params.nic_node].socket
    near = [x for c, x in zip(cpus, pps_cpu) if c.socket == nic_socket]
    far = [x for c, x in zip(cpus, pps_cpu) if c.socket != nic_socket]
    return {
        "pps": pps,
        "pps_per_cpu": pps / len(cpus),
        "ns_per_packet": busy * per_packet,
        "alloc_ns_per_packet": sum(t.alloc_ns for t in tallies) * per_packet,
        # None when no device interrupt was raised (a saturated queue never re-arms NAPI): an
        # empty histogram has no latency, and 0 would read as "interrupts were never delayed"
        "irq_latency_p50_ns": irq.quantile(0.5) if irq.n else None,
        "irq_latency_p99_ns": irq.quantile(0.99) if irq.n else None,
        "irq_latency_max_ns": irq.max if irq.n else None,
        "drops": None if saturate else sum(rq.drops for rq in all_rqs),
        # where a packet's time goes (ns per packet)
        "free_ns_per_packet": sum(t.free_ns for t in tallies) * per_packet,
        "page_pool_ns_per_packet": sum(t.pool_ns for t in tallies) * per_packet,
        "dma_ns_per_packet": sum(t.dma_ns for t in tallies) * per_packet,
        "nic_ns_per_packet": sum(t.nic_ns for t in tallies) * per_packet,
        "outside_ns_per_packet": sum(t.outside_ns for t in tallies) * per_packet,
        "frontend_ns_per_packet": sum(t.frontend_ns for t in tallies) * per_packet,
        "cpu_busy_share": busy / span if span > 0 else 0.0,
        "pps_per_cpu_nic_socket": sum(near) / len(near) if near else None,
        "pps_per_cpu_other_socket": sum(far) / len(far) if far else None,
        # the configuration as run
        "refill": p.batch,
        "queues": nq,
        "offered_pps": None if saturate else float(params.offered_load),
        "outside_ns": nc.outside,
        # page flow
        "packets": packets,
        "allocator_calls_per_packet": allocator_calls * per_packet,
        "allocator_pages_per_packet": m.stats.pages_allocated * per_packet,
        "pool_alloc_fast": sum(s.alloc_fast for s in stats),
        "pool_slow_calls": slow_calls,
        "pool_refill_ring": sum(s.refill_ring for s in stats),
        "pool_recycled": sum(s.recycle_cached + s.recycle_ring for s in stats),
        "pool_released": sum(s.released for s in stats),
        "pool_numa_mismatch": sum(s.numa_mismatch for s in stats),
        "mlx5_cache_reuse": sum(rq.cache_reuse for rq in all_rqs),
        "veth_xmit_drops": sum(v.xmit_drops for v in vrqs),
        "wqe_alloc_failures": sum(rq.wqe_alloc_failures for rq in all_rqs),
        "irqs": sum(t.irqs for t in tallies),
        "watermark_fails": m.stats.watermark_fails,
        "kswapd_wakeups": m.stats.kswapd_wakeups,
    }


WORKLOAD = Workload(
    "xdp_redirect",
    XdpRedirectParams,
    run,
    check,
    derive,
    summary=("pps", "ns_per_packet", "alloc_ns_per_packet", "irq_latency_p99_ns"),
)
