"""The composition root: boots a machine from its parts.

Everything a machine is made of comes in already loaded and derived: the hardware description
(simulator/hardware.py), the kernel's configuration (simulator/kernels.py), the cost table derived
from the calibration (simulator/calibration.py, simulator/costs.py) and the kernel's code
footprints (simulator/code.py). Booting reads no file: a scenario derives its costs and footprints
once, when it is loaded (simulator/scenario.py), and every point's machine is booted from them.

The parts: the hardware (simulator/machine/: CPUs, caches, locks, the front end) and the kernel's
memory on it (simulator/mm/: zones, watermarks, pcp lists, computed as 5.12 computes them at boot),
joined in a Machine (simulator/mm/machine.py).
"""

from __future__ import annotations

import numpy as np
import simpy

from simulator.code import CodePaths
from simulator.costs import Costs
from simulator.hardware import Hardware
from simulator.kernels import KernelConfig
from simulator.machine.cache import CacheModel, LineRegistry
from simulator.machine.cpu import CPU
from simulator.machine.frontend import FrontEnd, FrontEndSpec
from simulator.machine.memory import MemoryController
from simulator.mm.machine import Machine
from simulator.mm.zone import Node, Zone, build_zonelists
from simulator.mm.zone_setup import boot_numbers


def build_machine(
    env: simpy.Environment,
    hw: Hardware,
    kconfig: KernelConfig,
    costs: Costs,
    code: CodePaths,
    cpu_class: type[CPU] = CPU,
) -> Machine:
    """Boot `hw`: zones, watermarks, pcp lists, caches and CPUs, as the kernel `kconfig` would,
    charging `costs` (every kernel's terms: the kernel's own are picked here) and running `code`.
    (`cpu_class`: a CPU subclass that observes what the model charges, for the calibration replay.)"""
    costs = costs.for_kernel(kconfig)
    boot = boot_numbers(
        hw,
        thp=kconfig.thp,
        pcp_high=kconfig.pcp_high,
        percpu_pagelist_fraction=kconfig.percpu_pagelist_fraction,
    )
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
        code=code,
        _zone_starts=np.array([z.start_pfn for z in zones], dtype=np.int64),
    )
    m.memory = [MemoryController(n.id, hw.memory.bandwidth, hw.caches.line, cache) for n in hw.topology.nodes]
    spec = frontend_spec(hw)
    for c, cpu in enumerate(cpus):
        cpu.machine = m
        cpu.vm_event_line = vm_event_lines[c]
        cpu.frontend = FrontEnd(spec)
        cpu.memory = m.memory[cpu.node]
    if hw.threads_per_core > 1:
        # SMT: a busy sibling slows this CPU's work (cpu.py); at most two threads per core
        for cpu in cpus:
            cpu.sibling = cpus[hw.siblings(cpu.id)[0]]
            cpu.busy_slowdown = 1.0 / hw.smt_throughput
    return m


def frontend_spec(hw: Hardware) -> FrontEndSpec:
    """A core's front end from the hardware file, in bytes, entries and ns (core clock)."""
    f = hw.frontend
    l1 = hw.ns(hw.caches.l1d.latency, tsc=False)
    return FrontEndSpec(
        l1i_bytes=f.l1i,
        line=hw.caches.line,
        l2_fetch_ns=hw.ns(hw.caches.l2.latency, tsc=False) - l1,
        llc_fetch_ns=hw.ns(hw.caches.l3.latency, tsc=False) - l1,
        l2_bytes=hw.caches.l2.size,
        overlap=f.ifetch_overlap,
        uop_bytes=f.uop_cache.coverage,
        switch_ns=hw.ns(f.uop_cache.switch_penalty, tsc=False),
        btb_entries=f.btb.entries,
        resteer_ns=hw.ns(f.btb.miss_penalty, tsc=False),
    )
