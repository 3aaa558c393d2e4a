"""Where each cache line is, and what touching a batch of lines costs.

Two kinds of line:
- struct page lines (id = pfn; one 64-byte struct page per 4 KiB page), kept sparsely in chunks
  so a 1 TiB node costs nothing until its pages are touched. They follow an ownership model:
  the last CPU to touch a page's line holds it (the allocator reads a struct page only to write
  it, so a read is priced as the transfer the following write needs).
- kernel metadata lines (zone->lock, free_area heads, pcp structs, vmstat counters, watermarks,
  callers' arrays...), registered by name in a LineRegistry, with a MESI-like version scheme:
  a write invalidates every other CPU's copy, reads share.

Private caches (L1d, L2) belong to a core: SMT siblings share them, so a line one thread touched
is an L1 or L2 hit for its sibling, never a transfer (without SMT a core is a CPU). The LLC is
per LLC domain (socket, or CCX).

Capacity is modelled by reuse distance: each core counts the distinct lines it touches and each
LLC domain the lines its cores touch; a line is still in a cache level if fewer lines than that
level holds were touched since (a fully associative LRU approximation). A line touched again
within REUSE_WINDOW of its last touch is already near the top of the LRU stack, so it does not
age the others. Costs are latencies beyond an L1 hit (L1 hits are part of the instruction work
that simulator/calibration.py derives from the profile).

The pricing itself is compiled (simulator/machine/cache_core.py, numba): every access is priced
one by one in program order, and a batch's total is numpy's pairwise sum from PAIRWISE_MIN accesses
on and a running sum below (so how callers group their touches never moves a result by a rounding).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.hardware import Hardware
from simulator.machine import cache_core as core
from simulator.machine.cache_core import (
    ASYNC,
    CHUNK,
    CHUNK_SHIFT,
    DRAM_LOCAL,
    DRAM_REMOTE,
    FAR,
    L1,
    L2,
    LLC,
    META_BASE,
    NO_OWNER,
    PAIRWISE_MIN,
    REUSE_WINDOW,
    XFER_LOCAL,
    XFER_REMOTE,
    combine,
    sequential_or_pairwise,
)

LEVEL_NAMES = ("l1", "l2", "llc", "xfer_socket", "xfer_remote", "dram_local", "dram_remote")
_NO_WRITES = np.empty(0, dtype=bool)

__all__ = [
    "ASYNC",
    "CHUNK",
    "CHUNK_SHIFT",
    "DRAM_LOCAL",
    "DRAM_REMOTE",
    "FAR",
    "L1",
    "L2",
    "LEVEL_NAMES",
    "LLC",
    "META_BASE",
    "NO_OWNER",
    "PAIRWISE_MIN",
    "REUSE_WINDOW",
    "XFER_LOCAL",
    "XFER_REMOTE",
    "CacheModel",
    "LineRegistry",
    "combine",
    "sequential_or_pairwise",
]


@dataclass
class LineRegistry:
    """Names and home nodes of kernel metadata cache lines (`machine.node0.zone_normal.lock`)."""

    names: list[str] = field(default_factory=list)
    homes: list[int] = field(default_factory=list)

    def alloc(self, name: str, home_node: int, count: int = 1) -> int:
        """Reserve `count` consecutive lines; returns the first line id."""
        first = META_BASE + len(self.names)
        for i in range(count):
            self.names.append(name if count == 1 else f"{name}[{i}]")
            self.homes.append(home_node)
        return first

    def name(self, line: int) -> str:
        return self.names[line - META_BASE] if line >= META_BASE else f"struct_page[pfn={line}]"

    def __len__(self) -> int:
        return len(self.names)


class CacheModel:
    """Prices line touches for every CPU of one machine (state: cache_core's arrays)."""

    def __init__(self, hw: Hardware, registry: LineRegistry, node_end_pfn: list[int]) -> None:
        self.ncpu = n = hw.ncpus
        self.cpu_node = hw.cpu_node()
        self.cpu_llc = hw.cpu_llc()
        cpu_socket = hw.cpu_socket()
        self.nllc = max(self.cpu_llc) + 1
        # private caches are per core (SMT siblings share them); core k's first thread is CPU k
        self.ncore = nc = hw.ncores
        self.cpu_core = hw.cpu_core()
        line = hw.caches.line
        self.l1_lines = hw.caches.l1d.size // line
        self.l2_lines = hw.caches.l2.size // line
        self.llc_lines = hw.caches.l3.size // line
        l1 = hw.ns(hw.caches.l1d.latency, tsc=False)
        self.lat_l2 = hw.ns(hw.caches.l2.latency, tsc=False) - l1
        self.lat_llc = hw.ns(hw.caches.l3.latency, tsc=False) - l1
        self.xfer = [[0.0] * n for _ in range(n)]
        self.xfer_level = [[XFER_LOCAL] * n for _ in range(n)]
        for a in range(n):
            for b in range(n):
                if self.cpu_llc[a] == self.cpu_llc[b]:
                    t = hw.coherence.same_llc
                elif cpu_socket[a] == cpu_socket[b]:
                    t = hw.coherence.same_socket
                else:
                    t = hw.coherence.cross_socket
                    self.xfer_level[a][b] = XFER_REMOTE
                self.xfer[a][b] = t - l1
        dist = hw.topology.distances
        self.dram = [[hw.memory.latency[d] - l1 for d in row] for row in dist]
        self._idle_dram = [row[:] for row in self.dram]
        self.fill_buffers = hw.memory.fill_buffers
        self.node_end_pfn = list(node_end_pfn)
        nnode = len(self.node_end_pfn)
        self._topo = np.array(
            [
                self.l1_lines,
                self.l2_lines,
                self.llc_lines,
                n,
                self.nllc,
                nnode,
                self.fill_buffers,
                1,  # memory-level parallelism on (the `mlp` property)
                nc,
                *self.cpu_core,
                *self.cpu_llc[:nc],  # each core's LLC and node: its first thread's
                *self.cpu_node[:nc],
                *(lv for row in self.xfer_level[:nc] for lv in row[:nc]),
                *self.node_end_pfn,
            ],
            dtype=np.int64,
        )
        self._dram_at = 2 + nc * nc  # where the DRAM costs start in ftopo
        self._ftopo = np.array(
            [
                self.lat_l2,
                self.lat_llc,
                *(x for row in self.xfer[:nc] for x in row[:nc]),
                *(d for row in self.dram for d in row),
            ],
            dtype=np.float64,
        )
        # clocks, level counts and the chunk rows in use, in one array (cache_core's `dyn`)
        self._dyn = np.zeros(nc + self.nllc + n * core.NLEVELS + 1, dtype=np.int64)
        self.clock = self._dyn[:nc]  # each core's count of distinct lines touched (its LRU clock)
        self.llc_clock = self._dyn[nc : nc + self.nllc]
        self._counts = self._dyn[nc + self.nllc : nc + self.nllc + n * core.NLEVELS].reshape(n, core.NLEVELS)
        # struct page lines: a row per touched chunk of CHUNK pfns
        self._slot_of = np.zeros((64, 2), dtype=np.int64)  # chunk -> row (cache_core.chunk_row)
        self._pages = np.zeros((0, core.P_WIDTH), dtype=np.int64)
        self.registry = registry
        self._meta = np.zeros((0, core.meta_width(nc, self.nllc)), dtype=np.int64)
        self._meta_rows = 0  # registered lines with a row (rows beyond: spare capacity)
        self._costs = np.zeros(64)  # scratch: each access's cost
        self._grow_meta()

    # ---- state ------------------------------------------------------------------------------
    @property
    def mlp(self) -> bool:
        """Memory-level parallelism (combine()); False prices every access on the dependent chain
        and prefetches at sum / min(misses, fill buffers), as pagesim did before (ablation only)."""
        return bool(self._topo[core.T_MLP])

    @mlp.setter
    def mlp(self, on: bool) -> None:
        self._topo[core.T_MLP] = int(bool(on))

    def _grow_meta(self) -> None:
        """A row (no copy anywhere, nobody wrote it) for every registered line without one."""
        want = len(self.registry)
        have = self._meta_rows
        if want <= have:
            return
        cap = self._meta.shape[0]
        if want > cap:
            n, nllc = self.ncore, self.nllc
            rows = np.zeros((max(want, 2 * cap, 64) - cap, self._meta.shape[1]), dtype=np.int64)
            rows[:, core.M_WRITER] = NO_OWNER
            rows[:, core.M_HEAD : core.M_HEAD + n] = -1  # the version each core holds: none
            rows[:, core.M_HEAD + n : core.M_HEAD + 2 * n] = FAR  # each core's stamp
            rows[:, core.M_HEAD + 2 * n : core.M_HEAD + 2 * n + nllc] = -1  # each LLC's version
            rows[:, core.M_HEAD + 2 * n + nllc :] = FAR  # each LLC's stamp
            self._meta = np.concatenate([self._meta, rows])
        self._meta[have:want, core.M_HOME] = self.registry.homes[have:want]
        self._meta_rows = want

    def _make_room(self, line: int) -> None:
        """State for `line`, which a pricing call stopped at (cache_core._room)."""
        line &= ASYNC - 1
        if line >= META_BASE:
            self._grow_meta()
            if line - META_BASE >= self._meta_rows:
                raise IndexError(f"metadata line {line - META_BASE} is not registered")
            return
        used = int(self._dyn[-1])
        if 2 * (used + 1) > self._slot_of.shape[0]:
            table = np.zeros((2 * self._slot_of.shape[0], 2), dtype=np.int64)
            core.rehash(self._slot_of, table)
            self._slot_of = table
        if used >= self._pages.shape[0]:
            more = max(8, self._pages.shape[0])
            self._pages = np.concatenate([self._pages, np.zeros((more, core.P_WIDTH), dtype=np.int64)])

    def _scratch(self, n: int) -> np.ndarray:
        if self._costs.size < n:
            self._costs = np.zeros(max(n, 2 * self._costs.size))
        return self._costs

    def _price(self, cpu: int, lines: np.ndarray, writes: np.ndarray, write: bool, costs: np.ndarray) -> None:
        done = 0
        while True:
            done = core.price(
                self._topo, self._ftopo, self._dyn, self._slot_of, self._pages, self._meta,
                cpu, lines, writes, write, done, costs,
            )  # fmt: skip
            if done == lines.size:
                return
            self._make_room(int(lines[done]))

    # ---- public -----------------------------------------------------------------------------
    @property
    def level_counts(self) -> np.ndarray:
        """Accesses per CPU and level (L1 ... DRAM_REMOTE) since the last reset_counts()."""
        return self._counts.copy()

    def reset_counts(self) -> None:
        self._counts[:] = 0

    def access(self, cpu: int, lines: list[int] | np.ndarray, write: bool = True) -> float:
        """Touch `lines` one after another on `cpu`; returns their cost in ns beyond L1 hits.

        Every access counts in program order, repeats included: how a caller groups its
        touches into calls changes nothing (a batch prices exactly what its accesses one by one
        would). `write` matters for metadata lines: a write invalidates other CPUs' copies.
        Lines flagged ASYNC overlap with the others (combine())."""
        if len(self.registry) > self._meta_rows:
            self._grow_meta()
        arr = np.asarray(lines, dtype=np.int64)
        costs = self._scratch(arr.size)[: arr.size]
        done, total = core.access_total(
            self._topo, self._ftopo, self._dyn, self._slot_of, self._pages, self._meta, cpu, arr, write, costs
        )
        if done == arr.size:
            return total
        self._make_room(int(arr[done]))
        while True:
            done = core.price(
                self._topo, self._ftopo, self._dyn, self._slot_of, self._pages, self._meta,
                cpu, arr, _NO_WRITES, write, done, costs,
            )  # fmt: skip
            if done == arr.size:
                return core.stretch_total(arr, costs, self.mlp, self.fill_buffers)
            self._make_room(int(arr[done]))

    def access_each(
        self, cpu: int, lines: list[int] | np.ndarray, write: bool | list[bool] | np.ndarray = True
    ) -> np.ndarray:
        """Like access(), but returns each access's cost, for callers that attribute costs to the
        calls of a vectorised run. `write` may be one flag per access. ASYNC flags are ignored
        here: the caller combines the costs (combine())."""
        if len(self.registry) > self._meta_rows:
            self._grow_meta()
        arr = np.asarray(lines, dtype=np.int64)
        out = np.zeros(arr.size)
        if isinstance(write, list | np.ndarray):
            self._price(cpu, arr, np.asarray(write, dtype=bool), True, out)
        else:
            self._price(cpu, arr, _NO_WRITES, bool(write), out)
        return out

    def overlapped(self, cpu: int, lines: list[int]) -> float:
        """Touch independent lines together (prefetches): up to `fill_buffers` misses overlap,
        so they take max(slowest, sum(cost) / fill_buffers) (combine() with no chain)."""
        if len(self.registry) > self._meta_rows:
            self._grow_meta()
        arr = np.asarray(list(dict.fromkeys(lines)), dtype=np.int64)
        acc = np.zeros(3)  # total, slowest, misses
        done = 0
        while True:
            done = core.overlapped(
                self._topo,
                self._ftopo,
                self._dyn,
                self._slot_of,
                self._pages,
                self._meta,
                cpu,
                arr,
                done,
                acc,
            )
            if done == arr.size:
                break
            self._make_room(int(arr[done]))
        total, slowest, misses = float(acc[0]), float(acc[1]), int(acc[2])
        if not self.mlp:
            return total / min(misses, self.fill_buffers) if misses else 0.0
        return max(slowest, total / self.fill_buffers)

    def advance(self, cpu: int, nlines: int) -> None:
        """`cpu` touched `nlines` other lines (work outside the allocator), ageing what its core
        holds."""
        self.clock[self.cpu_core[cpu]] += nlines
        self.llc_clock[self.cpu_llc[cpu]] += nlines

    def set_dram_load(self, home: int, extra_ns: float) -> None:
        """Memory on node `home` answers `extra_ns` slower than idle (its controller's load:
        simulator/machine/memory.py), for every reader."""
        nnode = len(self.dram)
        for node in range(nnode):
            v = self._idle_dram[node][home] + extra_ns
            self.dram[node][home] = v
            self._ftopo[self._dram_at + node * nnode + home] = v

    def state(self) -> tuple:
        """Every piece of line state, comparable with == (tests)."""
        chunks = {
            int(key) - 1: self._pages[int(row)].tolist() for key, row in self._slot_of.tolist() if key > 0
        }
        return self._dyn.tolist(), chunks, self._meta[: self._meta_rows].tolist()
