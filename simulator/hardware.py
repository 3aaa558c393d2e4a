"""Hardware description files (hardware/*.yaml): schema, validation and loading.

A hardware file describes one machine: sockets, NUMA nodes and their CPUs and memory, caches,
memory and cache-to-cache latencies, NUMA distances (SLIT) and the costs of kernel primitives.
Every default in the shipped files carries its public source in a comment beside it.

Conventions (also in docs/configuration.md):
- cache latencies given in cycles are core cycles (`cpu.clock`);
- kernel primitive costs given in cycles are `cycles(tsc)` as printed by the kernel's time_bench
  module (`cpu.tsc`), which is how their sources report them;
- latencies may also be given in ns.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from simulator.errors import ConfigError
from simulator.limits import MAX_NAME_CHARS, MAX_TEXT_CHARS
from simulator.units import (
    Latency,
    format_bandwidth,
    format_bytes,
    format_cpulist,
    format_ns,
    parse_bandwidth,
    parse_bytes,
    parse_cpulist,
    parse_ghz,
    parse_latency,
    parse_ns,
)
from simulator.yamlio import FieldError, read_yaml_mapping, validate

Bytes = Annotated[int, BeforeValidator(parse_bytes)]
Ns = Annotated[float, BeforeValidator(parse_ns)]
GHz = Annotated[float, BeforeValidator(parse_ghz)]
Cost = Annotated[Latency, BeforeValidator(parse_latency)]
CpuList = Annotated[list[int], BeforeValidator(parse_cpulist)]
Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth)]

LOCAL_DISTANCE = 10  # include/linux/topology.h: the SLIT distance of a node to itself
MAX_DISTANCE = 254  # ACPI SLIT entries are bytes; 255 means unreachable
MAX_SIM_CPUS = 256
MAX_NODE_MEMORY = 1 << 52  # x86-64 MAX_PHYSMEM_BITS with 5-level paging: 4 PiB

# Physical ranges (docs/configuration.md): far outside any machine, close enough that no accepted
# file makes the model compute something meaningless (a negative cost beyond L1 breaks its
# invariants; a 1e15-cycle primitive or a 1e-300 GHz clock is a typo, not a machine).
CLOCK_GHZ = (0.1, 10.0)  # no x86-64 core runs below 100 MHz; overclocking records stay below 10
CACHE_BYTES = (1 << 10, 4 << 30)  # 1 KiB to 4 GiB per cache (the largest L3s are about 1 GiB)
LATENCY_NS = (0.1, 10_000.0)  # cache, DRAM and core-to-core: an L1 hit to 10 us (CXL is < 1 us)
KERNEL_COST_NS = (0.0, 10_000.0)  # a primitive (irq save, lock, call): 10 us is a VM exit x 5
MAX_FILL_BUFFERS = 256  # line fill buffers per core: 10-24 on the shipped hosts
MAX_THREADS_PER_CORE = 2  # SMT: 2 on x86 (the model's sibling is one other thread)
BANDWIDTH_GBS = (0.1, 10_000.0)  # per node or per thread: 100 MB/s to 10 TB/s (HBM stacks: ~1 TB/s)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _bounded(v: float, bounds: tuple[float, float], expected: str) -> float:
    """`v` if it lies within `bounds`, else the error 'expected <expected>' (a field validator's)."""
    lo, hi = bounds
    if not lo <= v <= hi:
        raise ValueError(f"expected {expected}")
    return v


def _cache_size(v: int) -> int:
    lo, hi = CACHE_BYTES
    _bounded(v, CACHE_BYTES, f"a cache size from {format_bytes(lo)} to {format_bytes(hi)}")
    return v


class CpuSpec(_Strict):
    model: str = Field(max_length=MAX_NAME_CHARS)
    clock: GHz = Field(description="core clock: converts cache latencies given in cycles")
    tsc: GHz = Field(description="TSC clock: converts time_bench cycles(tsc) costs")

    @field_validator("clock", "tsc")
    @classmethod
    def _clock(cls, v: float) -> float:
        return _bounded(v, CLOCK_GHZ, f"a clock from {CLOCK_GHZ[0]:g} to {CLOCK_GHZ[1]:g} GHz")


class CacheLevel(_Strict):
    size: Bytes
    latency: Cost

    @field_validator("size")
    @classmethod
    def _size(cls, v: int) -> int:
        return _cache_size(v)


class Caches(_Strict):
    line: Bytes = 64
    l1d: CacheLevel
    l2: CacheLevel
    l3: CacheLevel = Field(description="size is per LLC domain (socket, or CCX on EPYC)")

    @model_validator(mode="after")
    def _ordered(self) -> Caches:
        if self.line not in (32, 64, 128):
            raise FieldError("line", f"must be 32, 64 or 128 bytes, got {self.line}")
        if not self.l1d.size < self.l2.size <= self.l3.size:
            field = "l2.size" if self.l1d.size >= self.l2.size else "l3.size"
            raise FieldError(field, "cache sizes must grow outward: l1d < l2 <= l3")
        return self


class NodeSpec(_Strict):
    id: int = Field(ge=0)
    socket: int = Field(ge=0)
    cpus: CpuList
    memory: Bytes = Field(gt=0, le=MAX_NODE_MEMORY, description="at most 4 PiB (52-bit physical)")


class SmtSpec(_Strict):
    """Simultaneous multithreading: logical CPUs per core and what a busy sibling costs."""

    threads_per_core: int = Field(ge=1, le=MAX_THREADS_PER_CORE)
    throughput: float = Field(
        gt=0.0, le=1.0, description="a thread's speed while its sibling is busy, relative to running alone"
    )


class Topology(_Strict):
    sockets: int = Field(ge=1)
    nodes: list[NodeSpec] = Field(min_length=1)
    llc_domains: list[CpuList] | None = Field(
        default=None, description="CPUs sharing one last-level cache; default: one per socket"
    )
    distances: list[list[int]]
    smt: SmtSpec | None = Field(
        default=None, description="SMT threads per core (default: one CPU per core, no SMT)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Topology:
        n = len(self.nodes)
        for i, node in enumerate(self.nodes):
            if node.id != i:
                raise FieldError(f"nodes[{i}].id", f"nodes must be listed in id order 0..{n - 1}", node.id)
            if node.socket >= self.sockets:
                raise FieldError(f"nodes[{i}].socket", f"there are only {self.sockets} sockets", node.socket)
        cpus = [c for node in self.nodes for c in node.cpus]
        if not cpus:
            raise FieldError("nodes", "no node lists a CPU: the machine needs at least one")
        if len(set(cpus)) != len(cpus):
            dup = sorted(c for c, k in Counter(cpus).items() if k > 1)
            raise FieldError("nodes", f"CPU(s) {dup[:8]} listed in more than one node")
        if sorted(cpus) != list(range(len(cpus))):
            missing = sorted(set(range(len(cpus))) - set(cpus))
            raise FieldError(
                "nodes",
                f"node cpus must cover 0..{len(cpus) - 1} exactly once; missing {missing[:8]}",
            )
        if len(cpus) > MAX_SIM_CPUS:
            raise FieldError("nodes", f"at most {MAX_SIM_CPUS} CPUs can be simulated", len(cpus))
        d = self.distances
        if len(d) != n or any(len(row) != n for row in d):
            raise FieldError("distances", f"must be a square {n}x{n} matrix (one row and column per node)", d)
        for i in range(n):
            if d[i][i] != LOCAL_DISTANCE:
                raise FieldError(
                    f"distances[{i}][{i}]", f"must be {LOCAL_DISTANCE} (LOCAL_DISTANCE)", d[i][i]
                )
            for j in range(n):
                if d[i][j] != d[j][i]:
                    raise FieldError(
                        f"distances[{i}][{j}]",
                        f"must be symmetric: [{i}][{j}]={d[i][j]} but [{j}][{i}]={d[j][i]}",
                    )
                if i != j and d[i][j] <= LOCAL_DISTANCE:
                    raise FieldError(
                        f"distances[{i}][{j}]",
                        f"a remote node must be farther than the local one ({LOCAL_DISTANCE})",
                        d[i][j],
                    )
                if d[i][j] > MAX_DISTANCE:
                    raise FieldError(
                        f"distances[{i}][{j}]", f"SLIT distances are at most {MAX_DISTANCE}", d[i][j]
                    )
        if self.llc_domains is not None:
            flat = [c for dom in self.llc_domains for c in dom]
            if sorted(flat) != sorted(cpus):
                raise FieldError("llc_domains", "must partition the CPUs: each CPU in exactly one domain")
            sock = {c: node.socket for node in self.nodes for c in node.cpus}
            for k, dom in enumerate(self.llc_domains):
                if len({sock[c] for c in dom}) != 1:
                    raise FieldError(f"llc_domains[{k}]", "spans more than one socket")
        self._siblings_together(len(cpus))
        return self

    def _siblings_together(self, ncpus: int) -> None:
        """With SMT, Linux numbers the first thread of every core, then the second...: CPU c and
        c + ncpus / threads_per_core are threads of one core, which one node and one LLC hold."""
        t = self.smt.threads_per_core if self.smt is not None else 1
        if t == 1:
            return
        if ncpus % t:
            raise FieldError(
                "smt.threads_per_core", f"{ncpus} CPUs do not split into cores of {t} threads", t
            )
        ncore = ncpus // t
        groups = [(f"nodes[{i}].cpus", n.cpus) for i, n in enumerate(self.nodes)]
        groups += [(f"llc_domains[{k}]", dom) for k, dom in enumerate(self.llc_domains or [])]
        for field, cpus in groups:
            have = set(cpus)
            for c in sorted(cpus):
                lost = [s for s in range(c % ncore, ncpus, ncore) if s not in have]
                if lost:
                    raise FieldError(
                        field,
                        f"with smt.threads_per_core {t}, CPU c and c + {ncore} are threads of one core"
                        f" (Linux's enumeration), which must stay together: CPU {c} is here but its"
                        f" sibling {lost[0]} is not",
                        format_cpulist(cpus),
                    )


class LoadPoint(_Strict):
    """One point of a loaded-latency curve."""

    bandwidth: Bandwidth = Field(description="the node's DRAM traffic")
    latency: Ns = Field(description="local DRAM load latency at that traffic")


class BandwidthSpec(_Strict):
    """What a node's memory controller sustains, and what one CPU streams alone
    (simulator/machine/memory.py)."""

    node: Bandwidth = Field(description="DRAM traffic of one node, reads and writes together (1:1 mix)")
    thread: Bandwidth = Field(description="stores one CPU streams alone (bytes written per second)")
    rfo: bool = Field(
        description="a streamed store first reads its line (read for ownership): N bytes written are"
        " 2N bytes of traffic"
    )
    loaded_latency: list[LoadPoint] | None = Field(
        default=None,
        description="(node traffic, local DRAM latency) points, traffic ascending: how latency rises"
        " with load (MLC loaded latency); none: latency does not depend on load",
    )
    # assumed (no source gives it): the span over which a node's traffic sets its loaded latency;
    # long enough to hold several streams (a 4 KiB store holds a 75 GB/s channel for 55-110 ns)
    load_window: Ns = Field(
        default=1000.0,
        gt=0.0,
        le=1e9,
        description="the span of recent traffic that sets the loaded latency (assumed: 1 us)",
    )

    @field_validator("node", "thread")
    @classmethod
    def _range(cls, v: float) -> float:
        lo, hi = BANDWIDTH_GBS
        return _bounded(v, BANDWIDTH_GBS, f"a bandwidth from {lo:g} to {hi:g} GB/s")

    @model_validator(mode="after")
    def _curve(self) -> BandwidthSpec:
        pts = self.loaded_latency
        if pts is None:
            return self
        if len(pts) < 2:
            raise FieldError("loaded_latency", "needs at least two (bandwidth, latency) points", len(pts))
        for k in range(1, len(pts)):
            b0, l0 = pts[k - 1].bandwidth, pts[k - 1].latency
            b1, l1 = pts[k].bandwidth, pts[k].latency
            if b1 <= b0:
                raise FieldError(
                    f"loaded_latency[{k}]",
                    f"bandwidths must ascend (the point before is at {format_bandwidth(b0)})",
                    format_bandwidth(b1),
                )
            if l1 < l0:
                raise FieldError(
                    f"loaded_latency[{k}]",
                    f"latency must not fall as the load rises (the point before is at {format_ns(l0)})",
                    format_ns(l1),
                )
            if not LATENCY_NS[0] <= l1 <= LATENCY_NS[1] or not LATENCY_NS[0] <= l0 <= LATENCY_NS[1]:
                raise FieldError(
                    f"loaded_latency[{k}]", f"expected latencies from {LATENCY_NS[0]:g} ns to 10 us"
                )
        return self


class MemorySpec(_Strict):
    latency: dict[int, Ns] = Field(description="idle DRAM load latency by SLIT distance")
    fill_buffers: int = Field(
        ge=1, le=MAX_FILL_BUFFERS, description="outstanding L1D misses per core (memory-level parallelism)"
    )
    below_4g: Bytes = Field(description="RAM below the 32-bit PCI hole on node 0 (ZONE_DMA + ZONE_DMA32)")
    reserved: Bytes = Field(
        description="memory reserved on node 0 besides the memmap (kernel image, firmware)"
    )
    bandwidth: BandwidthSpec


class Coherence(_Strict):
    same_llc: Ns = Field(description="modified line moved between two cores sharing an LLC")
    same_socket: Ns = Field(description="modified line moved between LLC domains of one socket")
    cross_socket: Ns = Field(description="modified line moved between sockets")


class KernelCosts(_Strict):
    local_irq_save_restore: Cost  # >= 5.12: restore is a conditional sti (tight-loop figure)
    local_irq_save_restore_popf: Cost  # <= 5.11: restore is push+popf (tight-loop figure)
    local_irq_disable_enable: Cost
    spin_lock_unlock: Cost
    atomic_rmw: Cost
    preempt_disable_enable: Cost
    call: Cost
    indirect_call: Cost


class UopCache(_Strict):
    uops: int = Field(ge=1, le=1 << 20, description="decoded uops it holds")
    coverage: Bytes = Field(description="code bytes it covers (its 32-byte windows)")
    switch_penalty: Cost = Field(description="a miss: the legacy decode pipeline, per 32-byte window")


class Btb(_Strict):
    entries: int = Field(ge=1, le=1 << 20, description="branch targets it holds")
    miss_penalty: Cost = Field(description="a taken branch it does not hold: the front-end resteer")


class FrontEndSpecYaml(_Strict):
    """The instruction side of a core (simulator/machine/frontend.py)."""

    l1i: Bytes = Field(description="L1 instruction cache size")
    uop_cache: UopCache
    btb: Btb
    ifetch_overlap: float = Field(
        ge=1, le=64, description="L1i misses the fetch unit has in flight at once (next-line prefetch)"
    )

    @field_validator("l1i")
    @classmethod
    def _size(cls, v: int) -> int:
        return _cache_size(v)


class Hardware(_Strict):
    """One machine, as described by a hardware/*.yaml file."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    description: str = Field(default="", max_length=MAX_TEXT_CHARS)
    cpu: CpuSpec
    caches: Caches
    topology: Topology
    memory: MemorySpec
    coherence: Coherence
    kernel_costs: KernelCosts
    frontend: FrontEndSpecYaml
    calibration: str = Field(description="calibration file, relative to this hardware file")
    # Filled in by load_hardware, not read from YAML.
    path: str = Field(default="", exclude=True)

    @field_validator("calibration")
    @classmethod
    def _a_path(cls, v: str) -> str:
        return check_relative_path(v)

    @model_validator(mode="after")
    def _cross_checks(self) -> Hardware:
        used = {d for row in self.topology.distances for d in row}
        missing = sorted(used - set(self.memory.latency))
        if missing:
            raise FieldError(
                "memory.latency",
                f"no entry for NUMA distance(s) {missing} used in topology.distances",
            )
        node0 = self.topology.nodes[0]
        if self.memory.below_4g > 4 << 30:
            raise FieldError("memory.below_4g", "cannot exceed 4 GiB")
        if self.memory.reserved >= node0.memory:
            raise FieldError("memory.reserved", "must be smaller than node 0's memory")
        self._physical_ranges()
        return self

    def _physical_ranges(self) -> None:
        """Latencies and costs, once converted to ns at their clock, in physical ranges; and
        ordered as the cache model needs them (it charges each level's latency minus L1's)."""
        lo, hi = LATENCY_NS
        clock = f"cpu.clock ({self.cpu.clock:g} GHz)"
        lat: dict[str, tuple[float, object]] = {}
        for level in ("l1d", "l2", "l3"):
            cost = getattr(self.caches, level).latency
            lat[f"caches.{level}.latency"] = (self.ns(cost, tsc=False), str(cost))
        for dist, ns in sorted(self.memory.latency.items()):
            lat[f"memory.latency[{dist}]"] = (ns, format_ns(ns))
        for name in ("same_llc", "same_socket", "cross_socket"):
            ns = getattr(self.coherence, name)
            lat[f"coherence.{name}"] = (ns, format_ns(ns))
        for field, (ns, given) in lat.items():
            if not lo <= ns <= hi:
                at = f" ({ns:g} ns at {clock})" if given.endswith("cycles") else ""
                raise FieldError(field, f"expected a latency from {lo:g} ns to {hi / 1e3:g} us{at}", given)
        l1 = lat["caches.l1d.latency"][0]
        order = ["caches.l1d.latency", "caches.l2.latency", "caches.l3.latency"]
        local = f"memory.latency[{LOCAL_DISTANCE}]"
        if local in lat:
            order.append(local)
        for a, b in zip(order, order[1:]):
            if lat[b][0] < lat[a][0]:
                raise FieldError(b, f"must not be faster than {a} ({lat[a][0]:g} ns)", lat[b][1])
        for field, (ns, given) in lat.items():
            if field.startswith(("memory.latency", "coherence")) and ns < l1:
                raise FieldError(field, f"must not be faster than an L1 hit ({l1:g} ns)", given)
        lo, hi = KERNEL_COST_NS
        for name in KernelCosts.model_fields:
            cost = getattr(self.kernel_costs, name)
            ns = self.ns(cost)
            if not lo <= ns <= hi:
                at = f" ({ns:g} ns at cpu.tsc {self.cpu.tsc:g} GHz)" if cost.unit == "cycles" else ""
                raise FieldError(
                    f"kernel_costs.{name}", f"expected a cost from 0 to {hi / 1e3:g} us{at}", str(cost)
                )

    # Derived topology -------------------------------------------------------------------------
    @property
    def ncpus(self) -> int:
        return sum(len(n.cpus) for n in self.topology.nodes)

    @property
    def nnodes(self) -> int:
        return len(self.topology.nodes)

    def cpu_node(self) -> list[int]:
        """Node id of each CPU, indexed by CPU id."""
        out = [0] * self.ncpus
        for node in self.topology.nodes:
            for c in node.cpus:
                out[c] = node.id
        return out

    @property
    def threads_per_core(self) -> int:
        smt = self.topology.smt
        return smt.threads_per_core if smt is not None else 1

    @property
    def ncores(self) -> int:
        return self.ncpus // self.threads_per_core

    @property
    def smt_throughput(self) -> float:
        """A thread's speed while its sibling is busy (1.0 without SMT)."""
        smt = self.topology.smt
        return smt.throughput if smt is not None and smt.threads_per_core > 1 else 1.0

    def cpu_core(self) -> list[int]:
        """Core of each CPU, indexed by CPU id: Linux numbers the first thread of every core, then
        the second..., so CPU c is a thread of core c mod ncores."""
        n = self.ncores
        return [c % n for c in range(self.ncpus)]

    def siblings(self, cpu: int) -> list[int]:
        """The other threads of `cpu`'s core."""
        n = self.ncores
        return [c for c in range(cpu % n, self.ncpus, n) if c != cpu]

    def cpu_socket(self) -> list[int]:
        node_socket = [n.socket for n in self.topology.nodes]
        return [node_socket[n] for n in self.cpu_node()]

    def cpu_llc(self) -> list[int]:
        """LLC domain of each CPU (default: one domain per socket)."""
        if self.topology.llc_domains is None:
            return self.cpu_socket()
        out = [0] * self.ncpus
        for k, dom in enumerate(self.topology.llc_domains):
            for c in dom:
                out[c] = k
        return out

    def ns(self, cost: Latency, *, tsc: bool = True) -> float:
        """A kernel primitive (tsc=True) or a cache latency (tsc=False) in nanoseconds."""
        return cost.ns(self.cpu.tsc if tsc else self.cpu.clock)

    def calibration_path(self) -> Path:
        return resolve_beside(Path(self.path), self.calibration)


def check_relative_path(v: str) -> str:
    """A file name field (`calibration`, a scenario's `hardware`): non-empty, no NUL character."""
    if not v.strip():
        raise ValueError("expected a file name, got an empty string")
    if "\0" in v:
        raise ValueError("a file name cannot contain a NUL character")
    return v


def resolve_beside(path: Path, name: str) -> Path:
    """`name` relative to the directory of `path`, made absolute (symlinks resolved where they
    can be: a loop or an unreadable directory leaves the path as written, `..` folded)."""
    joined = path.parent / name
    try:
        return joined.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        return Path(os.path.normpath(joined.absolute()))


def load_hardware(path: str | Path) -> Hardware:
    """Read and validate a hardware file; raises ConfigError naming the file and field."""
    p = Path(path)
    doc = read_yaml_mapping(p)
    hw = validate(Hardware, doc, str(p))
    hw = hw.model_copy(update={"path": str(p)})
    if not hw.calibration_path().is_file():
        raise ConfigError.one(str(p), "calibration", "calibration file not found", str(hw.calibration_path()))
    return hw
