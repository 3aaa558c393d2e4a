"""The cache model as it was before its compiled core (simulator/machine/cache_core.py), in plain
Python lists, access by access: the oracle tests/test_cache.py holds the compiled model to
(every cost ==, every piece of line state ==). With SMT, private-cache state (clocks, owners,
stamps, the copies held) is per core, shared by the core's threads; level counts stay per CPU."""

from __future__ import annotations

from array import array

import numpy as np

from simulator.hardware import Hardware
from simulator.machine.cache import (
    ASYNC,
    CHUNK,
    CHUNK_SHIFT,
    DRAM_LOCAL,
    DRAM_REMOTE,
    FAR,
    L1,
    L2,
    LEVEL_NAMES,
    LLC,
    META_BASE,
    NO_OWNER,
    PAIRWISE_MIN,
    REUSE_WINDOW,
    XFER_LOCAL,
    XFER_REMOTE,
    LineRegistry,
)


def sequential_or_pairwise(costs: np.ndarray) -> float:
    if len(costs) >= PAIRWISE_MIN:
        return float(costs.sum())
    t = 0.0
    for v in costs.tolist():
        t += v
    return t


def combine(costs: np.ndarray, flags: np.ndarray, fill_buffers: int) -> float:
    if not flags.any():
        return sequential_or_pairwise(costs)
    chain = sequential_or_pairwise(costs[~flags])
    off = costs[flags]
    return max(chain, float(off.max()), (chain + sequential_or_pairwise(off)) / fill_buffers)


class _Chunk:
    """Ownership state of CHUNK consecutive struct page lines (owner CPU, private and LLC stamps).

    Stored in array.array buffers so the scalar path reads plain ints; `np_*` are numpy views
    of the same memory for the vectorised path."""

    __slots__ = ("owner", "stamp", "lstamp", "np_owner", "np_stamp", "np_lstamp", "home")

    def __init__(self, home: int) -> None:
        self.home = home  # the NUMA node of every pfn in the chunk, or -1 if it straddles two
        self.owner = array("q", [NO_OWNER]) * CHUNK
        self.stamp = array("q", [0]) * CHUNK
        self.lstamp = array("q", [0]) * CHUNK
        self.np_owner = np.frombuffer(self.owner, dtype=np.int64)
        self.np_stamp = np.frombuffer(self.stamp, dtype=np.int64)
        self.np_lstamp = np.frombuffer(self.lstamp, dtype=np.int64)


class ReferenceCache:
    """The cache model as pure Python, access by access (pagesim before the compiled core)."""

    def __init__(self, hw: Hardware, registry: LineRegistry, node_end_pfn: list[int]) -> None:
        self.ncpu = hw.ncpus
        self.cpu_node = hw.cpu_node()
        self.cpu_llc = hw.cpu_llc()
        cpu_socket = hw.cpu_socket()
        self.nllc = max(self.cpu_llc) + 1
        self.cpu_core = hw.cpu_core()
        nc = self.ncore = hw.ncores
        line = hw.caches.line
        self.l1_lines = hw.caches.l1d.size // line
        self.l2_lines = hw.caches.l2.size // line
        self.llc_lines = hw.caches.l3.size // line
        l1 = hw.ns(hw.caches.l1d.latency, tsc=False)
        self.lat_l2 = hw.ns(hw.caches.l2.latency, tsc=False) - l1
        self.lat_llc = hw.ns(hw.caches.l3.latency, tsc=False) - l1
        n = self.ncpu
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
        self.fill_buffers = hw.memory.fill_buffers
        # memory-level parallelism (combine()); False prices every access on the chain and
        # prefetches at sum / min(misses, fill buffers), as pagesim did before (ablation only)
        self.mlp = True
        self.node_end_pfn = list(node_end_pfn)

        self.clock = [0] * nc  # per core
        self.llc_clock = [0] * self.nllc
        self._counts = [[0] * len(LEVEL_NAMES) for _ in range(n)]  # [cpu][level]
        self._chunks: dict[int, _Chunk] = {}
        self.registry = registry
        # metadata line state, one row per registered line (grown on demand)
        self.m_wver: list[int] = []
        self.m_writer: list[int] = []
        self.m_seen: list[list[int]] = []  # [line][core]: version this core holds (-1: none)
        self.m_stamp: list[list[int]] = []  # [line][core]
        self.m_lver: list[list[int]] = []  # [line][llc]
        self.m_lstamp: list[list[int]] = []  # [line][llc]
        # written and not read by another CPU since: the only current copy is in the writer's
        # private caches (Modified), so no LLC holds a copy another core can read without a snoop
        self.m_dirty: list[bool] = []
        self._grow_meta()

    def _grow_meta(self) -> None:
        for _ in range(len(self.registry) - len(self.m_wver)):
            self.m_wver.append(0)
            self.m_writer.append(NO_OWNER)
            self.m_seen.append([-1] * self.ncore)
            self.m_stamp.append([FAR] * self.ncore)
            self.m_lver.append([-1] * self.nllc)
            self.m_lstamp.append([FAR] * self.nllc)
            self.m_dirty.append(False)

    # ---- public -----------------------------------------------------------------------------
    @property
    def level_counts(self) -> np.ndarray:
        """Accesses per CPU and level (L1 ... DRAM_REMOTE) since the last reset_counts()."""
        return np.array(self._counts, dtype=np.int64)

    def reset_counts(self) -> None:
        for row in self._counts:
            row[:] = [0] * len(LEVEL_NAMES)

    def access(self, cpu: int, lines: list[int] | np.ndarray, write: bool = True) -> float:
        """Touch `lines` one after another on `cpu`; returns their cost in ns beyond L1 hits.

        Every access counts in program order, repeats included: how a caller groups its
        touches into calls changes nothing (a batch prices exactly what its accesses one by one
        would). `write` matters for metadata lines: a write invalidates other CPUs' copies.
        Lines flagged ASYNC overlap with the others (combine())."""
        n = len(lines)
        if n and max(lines) >= ASYNC:
            arr = np.asarray(lines, dtype=np.int64)
            flags = arr >= ASYNC if self.mlp else np.zeros(n, dtype=bool)
            return combine(self.access_each(cpu, arr & (ASYNC - 1), write), flags, self.fill_buffers)
        if n >= PAIRWISE_MIN:
            return float(self.access_each(cpu, lines, write).sum())
        if isinstance(lines, np.ndarray):
            lines = lines.tolist()
        counts = self._counts[cpu]
        core = self.cpu_core[cpu]
        total = 0.0
        meta_one = self._meta_one
        page_one = self._page_one
        for ln in lines:
            if ln >= META_BASE:
                c, lvl = meta_one(core, ln - META_BASE, write)
            else:
                c, lvl = page_one(core, ln)
            counts[lvl] += 1
            total += c
        return total

    def access_each(
        self, cpu: int, lines: list[int] | np.ndarray, write: bool | list[bool] | np.ndarray = True
    ) -> np.ndarray:
        """Like access(), but returns each access's cost, for callers that attribute costs to the
        calls of a vectorised run. `write` may be one flag per access. ASYNC flags are ignored
        here: the caller combines the costs (combine())."""
        n = len(lines)
        if n and max(lines) >= ASYNC:
            lines = np.asarray(lines, dtype=np.int64) & (ASYNC - 1)
        if isinstance(lines, np.ndarray):
            lines = lines.tolist()
        out = np.zeros(n)
        counts = self._counts[cpu]
        if isinstance(write, np.ndarray):
            write = write.tolist()
        flags = write if isinstance(write, list) else None
        core = self.cpu_core[cpu]
        for k, ln in enumerate(lines):
            if ln >= META_BASE:
                c, lvl = self._meta_one(core, ln - META_BASE, flags[k] if flags is not None else bool(write))
            else:
                c, lvl = self._page_one(core, ln)
            counts[lvl] += 1
            out[k] = c
        return out

    def overlapped(self, cpu: int, lines: list[int]) -> float:
        """Touch independent lines together (prefetches): up to `fill_buffers` misses overlap,
        so they take max(slowest, sum(cost) / fill_buffers) (combine() with no chain)."""
        total = 0.0
        slowest = 0.0
        misses = 0
        counts = self._counts[cpu]
        core = self.cpu_core[cpu]
        for ln in dict.fromkeys(lines):
            if ln >= META_BASE:
                c, lvl = self._meta_one(core, ln - META_BASE, True)
            else:
                c, lvl = self._page_one(core, ln)
            counts[lvl] += 1
            total += c
            misses += c > 0
            if c > slowest:
                slowest = c
        if not self.mlp:
            return total / min(misses, self.fill_buffers) if misses else 0.0
        return max(slowest, total / self.fill_buffers)

    def advance(self, cpu: int, nlines: int) -> None:
        """`cpu` touched `nlines` other lines (work outside the allocator), ageing what its core
        holds."""
        self.clock[self.cpu_core[cpu]] += nlines
        self.llc_clock[self.cpu_llc[cpu]] += nlines

    # ---- the classification both paths share ------------------------------------------------
    def _where(self, cpu: int, owner: int, stamp: int, lstamp: int, home: int) -> tuple[float, int]:
        """Cost and level of a line last touched by core `owner` (at `stamp` on its private clock
        and `lstamp` on its LLC's clock), homed on node `home`, now touched by core `cpu` (a core
        is named by its first thread: core k is CPU k's core)."""
        if owner >= 0:
            d = self.clock[owner] - stamp
            if d < self.l2_lines:
                if owner == cpu:
                    return (0.0, L1) if d < self.l1_lines else (self.lat_l2, L2)
                return self.xfer[cpu][owner], self.xfer_level[cpu][owner]
            llc = self.cpu_llc[owner]
            if self.llc_clock[llc] - lstamp < self.llc_lines:
                if llc == self.cpu_llc[cpu]:
                    return self.lat_llc, LLC
                return self.xfer[cpu][owner], self.xfer_level[cpu][owner]
        node = self.cpu_node[cpu]
        return self.dram[node][home], (DRAM_LOCAL if home == node else DRAM_REMOTE)

    def _home(self, pfn: int) -> int:
        for i, end in enumerate(self.node_end_pfn):
            if pfn < end:
                return i
        return len(self.node_end_pfn) - 1

    def _new_chunk(self, cid: int) -> _Chunk:
        lo = self._home(cid << CHUNK_SHIFT)
        hi = self._home(((cid + 1) << CHUNK_SHIFT) - 1)
        ch = self._chunks[cid] = _Chunk(lo if lo == hi else -1)
        return ch

    # ---- scalar path ------------------------------------------------------------------------
    def _page_one(self, cpu: int, pfn: int) -> tuple[float, int]:
        """One access to a struct page line by core `cpu` (named by its first thread)."""
        ch = self._chunks.get(pfn >> CHUNK_SHIFT)
        if ch is None:
            ch = self._new_chunk(pfn >> CHUNK_SHIFT)
        off = pfn & (CHUNK - 1)
        owner = ch.owner[off]
        stamp = ch.stamp[off]
        clock = self.clock
        now = clock[cpu]
        llc = self.cpu_llc[cpu]
        llc_clock = self.llc_clock
        if owner == cpu and now - stamp < REUSE_WINDOW:
            ch.stamp[off] = now
            ch.lstamp[off] = llc_clock[llc]
            return 0.0, L1
        home = ch.home if ch.home >= 0 else self._home(pfn)
        cost, lvl = self._where(cpu, owner, stamp, ch.lstamp[off], home)
        now += 1
        clock[cpu] = now
        lnow = llc_clock[llc] + 1
        llc_clock[llc] = lnow
        ch.owner[off] = cpu
        ch.stamp[off] = now
        ch.lstamp[off] = lnow
        return cost, lvl

    def _meta_one(self, cpu: int, i: int, write: bool) -> tuple[float, int]:
        """One access to a metadata line (registry index `i`) by core `cpu`."""
        if i >= len(self.m_wver):
            self._grow_meta()
        wv = self.m_wver[i]
        llc = self.cpu_llc[cpu]
        seen = self.m_seen[i]
        stamps = self.m_stamp[i]
        clock = self.clock
        now = clock[cpu]
        mine = seen[cpu] == wv
        d = now - stamps[cpu]
        llc_clock = self.llc_clock
        if mine and d < REUSE_WINDOW:
            cost, lvl = 0.0, L1
            lnow = llc_clock[llc]
        else:
            if mine and d < self.l2_lines:
                cost, lvl = (0.0, L1) if d < self.l1_lines else (self.lat_l2, L2)
            else:
                w = self.m_writer[i]
                home = self.registry.homes[i]
                if w >= 0 and w != cpu:
                    wllc = self.cpu_llc[w]
                    lst = self.m_lstamp[i][wllc] if self.m_lver[i][wllc] == wv else FAR
                    cost, lvl = self._where(cpu, w, stamps[w], lst, home)
                else:
                    node = self.cpu_node[cpu]
                    cost, lvl = self.dram[node][home], (DRAM_LOCAL if home == node else DRAM_REMOTE)
                # a shared copy in our own LLC is as good as any (a Modified line is not shared:
                # reading it is a transfer from the writer's core, coherence.same_llc)
                if (
                    cost > self.lat_llc
                    and not self.m_dirty[i]
                    and self.m_lver[i][llc] == wv
                    and llc_clock[llc] - self.m_lstamp[i][llc] < self.llc_lines
                ):
                    cost, lvl = self.lat_llc, LLC
            now += 1
            clock[cpu] = now
            lnow = llc_clock[llc] + 1
            llc_clock[llc] = lnow
        if write:
            wv += 1
            self.m_wver[i] = wv
            self.m_writer[i] = cpu
            self.m_dirty[i] = True
        elif self.m_writer[i] != cpu:
            self.m_dirty[i] = False  # Modified -> Shared: written back, readable from the LLC
        seen[cpu] = wv
        stamps[cpu] = now
        self.m_lver[i][llc] = wv
        self.m_lstamp[i][llc] = lnow
        return cost, lvl

    def state(self) -> tuple:
        """The same shape as CacheModel.state() (which has a row for every registered line)."""
        self._grow_meta()
        counts = [v for row in self._counts for v in row]
        dyn = [*self.clock, *self.llc_clock, *counts, len(self._chunks)]
        chunks = {
            cid: [*ch.owner.tolist(), *ch.stamp.tolist(), *ch.lstamp.tolist(), ch.home]
            for cid, ch in self._chunks.items()
        }
        meta = [
            [
                self.m_wver[i],
                self.m_writer[i],
                int(self.m_dirty[i]),
                self.registry.homes[i],
                *self.m_seen[i],
                *self.m_stamp[i],
                *self.m_lver[i],
                *self.m_lstamp[i],
            ]
            for i in range(len(self.m_wver))
        ]
        return dyn, chunks, meta
