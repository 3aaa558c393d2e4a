"""The simulated machine: CPUs, caches, NUMA nodes and their zones, booted as Linux 5.12 boots.

`build_machine(env, hw, kconfig)` elaborates the component tree
(`machine.cpu3`, `machine.node1.zone_normal.pcp.cpu7`, `machine.node0.zone_dma32.lock`...)
from a validated Hardware description; workloads then run kernel code paths on its CPUs.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import simpy

from simulator.calibration import Costs, derive
from simulator.errors import InvariantError
from simulator.hardware import Hardware
from simulator.kernels import KernelConfig
from simulator.machine.cache import CacheModel, LineRegistry
from simulator.machine.cpu import CPU
from simulator.mm import buddy
from simulator.mm.page_alloc import check_pcp_consistent
from simulator.mm.vmstat import NR_FREE_PAGES, zone_page_state_snapshot
from simulator.mm.zone import Node, Zone, build_zonelists
from simulator.mm.zone_setup import BootNumbers, boot_numbers


@dataclass
class AllocStats:
    """Allocator event counters for one run (the pcp and lock counters live on those objects)."""

    slowpath: int = 0
    alloc_failures: int = 0
    watermark_fails: int = 0
    remote_node_allocs: int = 0
    numa_hit: int = 0
    numa_miss: int = 0
    bulk_calls: int = 0
    bulk_pages: int = 0
    bulk_fallback_single: int = 0  # bulk calls that took the single-page path (failed:)
    bulk_empty: int = 0  # bulk calls that returned without a page and without the fallback
    kswapd_wakeups: int = 0
    pages_allocated: int = 0
    pages_freed: int = 0


@dataclass
class Machine:
    """`machine`: everything a workload's processes run on."""

    env: simpy.Environment
    hw: Hardware
    kconfig: KernelConfig
    costs: Costs
    boot: BootNumbers
    registry: LineRegistry
    cache: CacheModel
    cpus: list[CPU]
    nodes: list[Node]
    zones: list[Zone]
    stats: AllocStats = field(default_factory=AllocStats)
    allocated: set[int] = field(default_factory=set)
    # Hooks a workload may set: kswapd's wake-up and direct reclaim (None: no reclaim model).
    kswapd: Callable[[Zone], None] | None = None
    direct_reclaim: Callable[[CPU, Zone], Generator[simpy.Event, None, int]] | None = None
    _zone_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # False: every run of back-to-back calls goes through the per-call functions (the calibration
    # replay attributes each line to the function that touches it; runs never change a result)
    tapes: bool = True
    # prepare_alloc_pages() results by (preferred node, highest zone, migratetype, nodemask)
    alloc_contexts: dict[tuple[int, int, int, frozenset[int] | None], object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._zone_start_list: list[int] = self._zone_starts.tolist()

    # ---- lookups ----------------------------------------------------------------------------
    def page_zone(self, pfn: int) -> Zone:
        """page_zone(): the zone a pfn belongs to."""
        i = bisect_right(self._zone_start_list, pfn) - 1
        z = self.zones[i] if i >= 0 else None
        if z is None or not z.start_pfn <= pfn < z.end_pfn:
            raise InvariantError(f"pfn {pfn} is in no zone")
        return z

    def wakeup_kswapd(self, zone: Zone) -> None:
        self.stats.kswapd_wakeups += 1
        if self.kswapd is not None:
            self.kswapd(zone)

    # ---- page tracking ----------------------------------------------------------------------
    def hand_out(self, pages: list[int]) -> None:
        """Record pages leaving the allocator; a page handed out twice is an invariant error."""
        before = len(self.allocated)
        self.allocated.update(pages)
        if len(self.allocated) != before + len(pages):
            twice = sorted(pfn for pfn, k in Counter(pages).items() if k > 1)
            if twice:
                raise InvariantError(f"page handed out twice in one batch: pfns {twice[:8]}")
            raise InvariantError(f"page handed out twice: one of pfns {sorted(pages)[:8]} was out already")
        self.stats.pages_allocated += len(pages)

    def take_back(self, pages: list[int]) -> None:
        """Record pages coming back; freeing a page not handed out is an invariant error."""
        before = len(self.allocated)
        self.allocated.difference_update(pages)
        if len(self.allocated) != before - len(pages):
            raise InvariantError(f"freeing pages that are not allocated (double free?): {pages[:8]}")
        self.stats.pages_freed += len(pages)

    # ---- invariants -------------------------------------------------------------------------
    def negative_counters(self) -> list[str]:
        """'name=value' of every counter below zero: allocator statistics, each zone's vm_stat
        items (folded counter plus per-CPU deltas, before the clamp readers apply), pcp counts
        and statistics, lock statistics, per-CPU time accounts."""
        out = [f"stats.{k}={v}" for k, v in vars(self.stats).items() if v < 0]
        for z in self.zones:
            for item, v in enumerate(z.vm_stat):
                total = v + sum(d[item] for d in z.vm_stat_diff)
                if total < 0:
                    out.append(f"{z.scope}.vm_stat[{item}]={total}")
            if z.free_area.nr_free_pages < 0:
                out.append(f"{z.scope}.free_area.nr_free_pages={z.free_area.nr_free_pages}")
            for p in z.pcp:
                for k in ("count", "refills", "drains", "refilled_pages", "drained_pages"):
                    if getattr(p, k) < 0:
                        out.append(f"{p.scope}.{k}={getattr(p, k)}")
            for k in ("acquisitions", "contended", "wait_ns"):
                if getattr(z.lock, k) < 0:
                    out.append(f"{z.lock.scope}.{k}={getattr(z.lock, k)}")
        for c in self.cpus:
            for k in ("irq_off_ns", "cache_cost_ns", "spin_ns"):
                if getattr(c, k) < 0:
                    out.append(f"{c.scope}.{k}={getattr(c, k)}")
        return out

    def check_invariants(self) -> None:
        """Pages conserved per zone, pcp counts right, locks released, IRQs on, no negatives."""
        negative = self.negative_counters()
        if negative:
            raise InvariantError(f"negative counter(s): {', '.join(negative[:8])}")
        alloc_by_zone: dict[int, int] = {}
        if self.allocated:
            arr = np.fromiter(self.allocated, dtype=np.int64, count=len(self.allocated))
            idx = np.searchsorted(self._zone_starts, arr, side="right") - 1
            counts = np.bincount(idx, minlength=len(self.zones))
            alloc_by_zone = {i: int(n) for i, n in enumerate(counts)}
        for i, z in enumerate(self.zones):
            buddy.check_invariants(z.free_area)
            for p in z.pcp:
                check_pcp_consistent(p)
                if p.count < 0 or p.count > p.high + p.batch:
                    raise InvariantError(f"{p.scope}: count {p.count} outside [0, high+batch]")
            free = z.free_area.nr_free_pages
            on_pcp = z.pcp_pages()
            held = alloc_by_zone.get(i, 0)
            if free + on_pcp + held + z.balloon_pages != z.managed:
                raise InvariantError(
                    f"{z.scope}: pages not conserved: buddy {free} + pcp {on_pcp} + allocated {held}"
                    f" + balloon {z.balloon_pages} = {free + on_pcp + held + z.balloon_pages},"
                    f" managed {z.managed}"
                )
            snap = zone_page_state_snapshot(z, NR_FREE_PAGES)
            if snap != free:
                raise InvariantError(f"{z.scope}: NR_FREE_PAGES {snap} but the buddy holds {free}")
            z.lock.check_released()
        for c in self.cpus:
            c.check_quiescent()


def build_machine(
    env: simpy.Environment, hw: Hardware, kconfig: KernelConfig | None = None, cpu_class: type[CPU] = CPU
) -> Machine:
    """Boot `hw`: zones, watermarks, pcp lists, caches and CPUs, as the kernel `kconfig` would.
    (`cpu_class`: a CPU subclass that observes what the model charges, for the calibration replay.)"""
    kconfig = kconfig or KernelConfig()
    costs = derive(hw)[0].for_kernel(kconfig)
    boot = boot_numbers(hw, thp=kconfig.thp, pcp_high=kconfig.pcp_high)
    registry = LineRegistry()
    ncpu = hw.ncpus
    nodes = [Node(n.id, f"machine.node{n.id}") for n in hw.topology.nodes]
    zones: list[Zone] = []
    for zi in boot.zones:
        z = Zone(
            node=zi.node,
            zone_idx=zi.zone_type,
            start_pfn=zi.start_pfn,
            spanned=zi.spanned_pages,
            present=zi.present_pages,
            managed=zi.managed_pages,
            watermark=zi.watermarks,
            lowmem_reserve=list(zi.lowmem_reserve),
            pcp_high=zi.pcp_high,
            pcp_batch=zi.pcp_batch,
            stat_threshold=zi.stat_threshold,
            ncpus=ncpu,
            registry=registry,
        )
        nodes[zi.node].zones.append(z)
        zones.append(z)
    zones.sort(key=lambda z: z.start_pfn)
    build_zonelists(nodes, hw.topology.distances)
    node_end = [max(z.end_pfn for z in n.zones) for n in nodes]
    cpu_node, cpu_llc, cpu_socket = hw.cpu_node(), hw.cpu_llc(), hw.cpu_socket()
    vm_event_lines = [registry.alloc(f"machine.cpu{c}.vm_event_states", cpu_node[c]) for c in range(ncpu)]
    cache = CacheModel(hw, registry, node_end)
    cpus = [cpu_class(env, c, cpu_node[c], cpu_llc[c], cpu_socket[c], cache, costs) for c in range(ncpu)]
    m = Machine(
        env=env,
        hw=hw,
        kconfig=kconfig,
        costs=costs,
        boot=boot,
        registry=registry,
        cache=cache,
        cpus=cpus,
        nodes=nodes,
        zones=zones,
        _zone_starts=np.array([z.start_pfn for z in zones], dtype=np.int64),
    )
    for c, cpu in enumerate(cpus):
        cpu.machine = m
        cpu.vm_event_line = vm_event_lines[c]
    return m
