"""Where each cache line is, and what touching a batch of lines costs.

Two kinds of line:
- struct page lines (id = pfn; one 64-byte struct page per 4 KiB page), kept sparsely in chunks
  so a 1 TiB node costs nothing until its pages are touched. They follow an ownership model:
  the last CPU to touch a page's line holds it (the allocator reads a struct page only to write
  it, so a read is priced as the transfer the following write needs).
- kernel metadata lines (zone->lock, free_area heads, pcp structs, vmstat counters, watermarks,
  callers' arrays...), registered by name in a LineRegistry, with a MESI-like version scheme:
  a write invalidates every other CPU's copy, reads share.

Capacity is modelled by reuse distance: each CPU counts the distinct lines it touches and each
LLC domain the lines its CPUs touch; a line is still in a cache level if fewer lines than that
level holds were touched since (a fully associative LRU approximation). A line touched again
within REUSE_WINDOW of its last touch is already near the top of the LRU stack, so it does not
age the others. Costs are latencies beyond an L1 hit (L1 hits are part of the instruction work
that simulator/calibration.py derives from the profile).

Batches of at least VECTOR_MIN page lines are priced in one vectorised numpy step; smaller ones
by the scalar path, which computes exactly the same thing (tests/test_cache.py checks).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from simulator.hardware import Hardware

META_BASE = 1 << 48  # metadata line ids start here; struct page line ids are pfns below it
CHUNK_SHIFT = 12
CHUNK = 1 << CHUNK_SHIFT
NO_OWNER = -1
REUSE_WINDOW = 16  # a line this recently touched by the same CPU does not age the others
VECTOR_MIN = 24  # page-line batches at least this long take the numpy path
FAR = -(1 << 60)  # a stamp so old that every distance check fails

# Outcome levels, for statistics.
L1, L2, LLC, XFER_LOCAL, XFER_REMOTE, DRAM_LOCAL, DRAM_REMOTE = range(7)
LEVEL_NAMES = ("l1", "l2", "llc", "xfer_socket", "xfer_remote", "dram_local", "dram_remote")


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


class CacheModel:
    """Prices line touches for every CPU of one machine."""

    def __init__(self, hw: Hardware, registry: LineRegistry, node_end_pfn: list[int]) -> None:
        self.ncpu = hw.ncpus
        self.cpu_node = hw.cpu_node()
        self.cpu_llc = hw.cpu_llc()
        cpu_socket = hw.cpu_socket()
        self.nllc = max(self.cpu_llc) + 1
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
        self.node_end_pfn = list(node_end_pfn)
        # numpy copies for the vectorised path
        self._np_llc = np.array(self.cpu_llc, dtype=np.int64)
        self._np_xfer = np.array(self.xfer)
        self._np_xfer_level = np.array(self.xfer_level, dtype=np.int64)
        self._np_dram = np.array(self.dram)
        self._np_node_end = np.array(self.node_end_pfn, dtype=np.int64)

        self.clock = [0] * n
        self.llc_clock = [0] * self.nllc
        self._counts = [[0] * len(LEVEL_NAMES) for _ in range(n)]  # [cpu][level]
        self._chunks: dict[int, _Chunk] = {}
        self.registry = registry
        # metadata line state, one row per registered line (grown on demand)
        self.m_wver: list[int] = []
        self.m_writer: list[int] = []
        self.m_seen: list[list[int]] = []  # [line][cpu]: version this CPU holds (-1: none)
        self.m_stamp: list[list[int]] = []  # [line][cpu]
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
            self.m_seen.append([-1] * self.ncpu)
            self.m_stamp.append([FAR] * self.ncpu)
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
        would). `write` matters for metadata lines: a write invalidates other CPUs' copies."""
        n = len(lines)
        if n >= VECTOR_MIN:
            return float(self._access_vector(cpu, np.asarray(lines, dtype=np.int64), write).sum())
        if isinstance(lines, np.ndarray):
            lines = lines.tolist()
        counts = self._counts[cpu]
        total = 0.0
        for ln in lines:
            if ln >= META_BASE:
                c, lvl = self._meta_one(cpu, ln - META_BASE, write)
            else:
                c, lvl = self._page_one(cpu, ln)
            counts[lvl] += 1
            total += c
        return total

    def access_each(self, cpu: int, lines: list[int], write: bool | list[bool] = True) -> np.ndarray:
        """Like access(), but returns each access's cost, for callers that attribute costs to the
        calls of a vectorised run. `write` may be one flag per access."""
        n = len(lines)
        if n >= VECTOR_MIN:
            return self._access_vector(cpu, np.asarray(lines, dtype=np.int64), write)
        out = np.zeros(n)
        counts = self._counts[cpu]
        flags = write if isinstance(write, list) else None
        for k, ln in enumerate(lines):
            if ln >= META_BASE:
                c, lvl = self._meta_one(cpu, ln - META_BASE, flags[k] if flags is not None else bool(write))
            else:
                c, lvl = self._page_one(cpu, ln)
            counts[lvl] += 1
            out[k] = c
        return out

    def overlapped(self, cpu: int, lines: list[int]) -> float:
        """Touch independent lines together (prefetches): up to `fill_buffers` misses overlap,
        so n misses take about sum(cost) / min(n, fill_buffers)."""
        total = 0.0
        misses = 0
        counts = self._counts[cpu]
        for ln in dict.fromkeys(lines):
            if ln >= META_BASE:
                c, lvl = self._meta_one(cpu, ln - META_BASE, True)
            else:
                c, lvl = self._page_one(cpu, ln)
            counts[lvl] += 1
            if c > 0:
                misses += 1
                total += c
        return total / min(misses, self.fill_buffers) if misses else 0.0

    def advance(self, cpu: int, nlines: int) -> None:
        """`cpu` touched `nlines` other lines (work outside the allocator), ageing what it holds."""
        self.clock[cpu] += nlines
        self.llc_clock[self.cpu_llc[cpu]] += nlines

    # ---- the classification both paths share ------------------------------------------------
    def _where(self, cpu: int, owner: int, stamp: int, lstamp: int, home: int) -> tuple[float, int]:
        """Cost and level of a line last touched by `owner` (at `stamp` on its private clock and
        `lstamp` on its LLC's clock), homed on node `home`, now touched by `cpu`."""
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
        """One access to a struct page line."""
        ch = self._chunks.get(pfn >> CHUNK_SHIFT)
        if ch is None:
            ch = self._new_chunk(pfn >> CHUNK_SHIFT)
        off = pfn & (CHUNK - 1)
        owner = ch.owner[off]
        stamp = ch.stamp[off]
        if owner == cpu and self.clock[cpu] - stamp < REUSE_WINDOW:
            ch.stamp[off] = self.clock[cpu]
            ch.lstamp[off] = self.llc_clock[self.cpu_llc[cpu]]
            return 0.0, L1
        home = ch.home if ch.home >= 0 else self._home(pfn)
        cost, lvl = self._where(cpu, owner, stamp, ch.lstamp[off], home)
        llc = self.cpu_llc[cpu]
        self.clock[cpu] += 1
        self.llc_clock[llc] += 1
        ch.owner[off] = cpu
        ch.stamp[off] = self.clock[cpu]
        ch.lstamp[off] = self.llc_clock[llc]
        return cost, lvl

    def _meta_one(self, cpu: int, i: int, write: bool) -> tuple[float, int]:
        """One access to a metadata line (registry index `i`)."""
        if i >= len(self.m_wver):
            self._grow_meta()
        wv = self.m_wver[i]
        llc = self.cpu_llc[cpu]
        my_stamp = self.m_stamp[i][cpu]
        mine = self.m_seen[i][cpu] == wv
        d = self.clock[cpu] - my_stamp
        if mine and d < REUSE_WINDOW:
            cost, lvl, fresh = 0.0, L1, False
        else:
            fresh = True
            if mine and d < self.l2_lines:
                cost, lvl = (0.0, L1) if d < self.l1_lines else (self.lat_l2, L2)
            else:
                w = self.m_writer[i]
                if w >= 0 and w != cpu:
                    wllc = self.cpu_llc[w]
                    lst = self.m_lstamp[i][wllc] if self.m_lver[i][wllc] == wv else FAR
                    cost, lvl = self._where(cpu, w, self.m_stamp[i][w], lst, self.registry.homes[i])
                else:
                    cost, lvl = self.dram[self.cpu_node[cpu]][self.registry.homes[i]], DRAM_LOCAL
                    if self.registry.homes[i] != self.cpu_node[cpu]:
                        lvl = DRAM_REMOTE
                # a shared copy in our own LLC is as good as any (a Modified line is not shared:
                # reading it is a transfer from the writer's core, coherence.same_llc)
                if (
                    cost > self.lat_llc
                    and not self.m_dirty[i]
                    and self.m_lver[i][llc] == wv
                    and self.llc_clock[llc] - self.m_lstamp[i][llc] < self.llc_lines
                ):
                    cost, lvl = self.lat_llc, LLC
        if fresh:
            self.clock[cpu] += 1
            self.llc_clock[llc] += 1
        if write:
            wv += 1
            self.m_wver[i] = wv
            self.m_writer[i] = cpu
            self.m_dirty[i] = True
        elif self.m_writer[i] != cpu:
            self.m_dirty[i] = False  # Modified -> Shared: written back, readable from the LLC
        self.m_seen[i][cpu] = wv
        self.m_stamp[i][cpu] = self.clock[cpu]
        self.m_lver[i][llc] = wv
        self.m_lstamp[i][llc] = self.llc_clock[llc]
        return cost, lvl

    # ---- vectorised path --------------------------------------------------------------------
    def _access_vector(self, cpu: int, arr: np.ndarray, writes: bool | list[bool]) -> np.ndarray:
        """Price a sequence of accesses exactly as the scalar path would, one by one; returns each
        access's cost.

        Whether an access is "fresh" (ages the others) depends on how many fresh accesses came
        before it, so the fresh flags are a fixed point: start from "none fresh" and recompute
        until stable. Each round can only add fresh accesses, and the sequential answer is the
        only fixed point, so this ends at it (in two or three rounds in practice)."""
        n = arr.size
        w = np.broadcast_to(np.asarray(writes, dtype=bool), (n,))
        _, inv = np.unique(arr, return_inverse=True)
        order = np.argsort(inv, kind="stable")
        same = inv[order[1:]] == inv[order[:-1]]
        prev = np.full(n, -1, dtype=np.int64)
        prev[order[1:][same]] = order[:-1][same]
        is_last = np.ones(n, dtype=bool)
        is_last[order[:-1][same]] = False
        first = prev < 0
        pprev = np.where(first, 0, prev)
        is_meta = arr >= META_BASE
        if is_meta.any() and int(arr[is_meta].max()) - META_BASE >= len(self.m_wver):
            self._grow_meta()
        # state before the batch, at each line's first access
        own0 = np.full(n, NO_OWNER, dtype=np.int64)
        s0 = np.zeros(n, dtype=np.int64)
        ls0 = np.zeros(n, dtype=np.int64)
        home = np.zeros(n, dtype=np.int64)
        pf = np.flatnonzero(first & ~is_meta)
        if pf.size:
            pfns = arr[pf]
            cids = pfns >> CHUNK_SHIFT
            for cid in np.unique(cids).tolist():
                sel = pf[cids == cid]
                ch = self._chunks.get(cid) or self._new_chunk(cid)
                off = arr[sel] & (CHUNK - 1)
                own0[sel] = ch.np_owner[off]
                s0[sel] = ch.np_stamp[off]
                ls0[sel] = ch.np_lstamp[off]
            home[pf] = np.minimum(
                np.searchsorted(self._np_node_end, pfns, side="right"), len(self.node_end_pfn) - 1
            )
        mf = np.flatnonzero(first & is_meta)
        for j in mf.tolist():
            i = int(arr[j]) - META_BASE
            if self.m_seen[i][cpu] == self.m_wver[i]:
                own0[j] = cpu
            s0[j] = self.m_stamp[i][cpu]
        mine0 = own0 == cpu
        c0 = self.clock[cpu]
        llc = self.cpu_llc[cpu]
        l0 = self.llc_clock[llc]
        f = np.zeros(n, dtype=np.int64)
        for _ in range(n + 1):
            cpos = c0 + np.cumsum(f) - f  # this CPU's clock just before each access
            s = np.where(first, s0, cpos[pprev] + f[pprev])
            hot = np.where(first, mine0, True) & (cpos - s < REUSE_WINDOW)
            nf = (~hot).astype(np.int64)
            if np.array_equal(nf, f):
                break
            f = nf
        cpos = c0 + np.cumsum(f) - f
        lpos = l0 + (cpos - c0)  # this CPU's LLC clock advances with it within the batch
        s = np.where(first, s0, cpos[pprev] + f[pprev])
        ls = np.where(first, ls0, lpos[pprev] + f[pprev])
        fresh = f.astype(bool)
        cost = np.zeros(n)
        lvl = np.full(n, L1, dtype=np.int64)
        # fresh struct page accesses: where was the line?
        pg = np.flatnonzero(fresh & ~is_meta)
        if pg.size:
            o = np.where(first[pg], own0[pg], cpu)
            has = o >= 0
            oc = np.where(has, o, 0)
            clock = np.array(self.clock, dtype=np.int64)
            llc_clock = np.array(self.llc_clock, dtype=np.int64)
            o_llc = self._np_llc[oc]
            priv_now = np.where(oc == cpu, cpos[pg], clock[oc])
            llc_now = np.where(o_llc == llc, lpos[pg], llc_clock[o_llc])
            priv_d = priv_now - s[pg]
            in_priv = has & (priv_d < self.l2_lines)
            in_llc = has & ~in_priv & (llc_now - ls[pg] < self.llc_lines)
            hm = np.where(first[pg], home[pg], 0)
            if (~first[pg]).any():
                rep = ~first[pg]
                hm[rep] = np.minimum(
                    np.searchsorted(self._np_node_end, arr[pg][rep], side="right"), len(self.node_end_pfn) - 1
                )
            node = self.cpu_node[cpu]
            c = self._np_dram[node][hm]
            lv = np.where(hm == node, DRAM_LOCAL, DRAM_REMOTE)
            other = (in_priv & (oc != cpu)) | (in_llc & (o_llc != llc))
            c = np.where(other, self._np_xfer[cpu][oc], c)
            lv = np.where(other, self._np_xfer_level[cpu][oc], lv)
            sl = in_llc & (o_llc == llc)
            c = np.where(sl, self.lat_llc, c)
            lv = np.where(sl, LLC, lv)
            own = in_priv & (oc == cpu)
            l1 = own & (priv_d < self.l1_lines)
            c = np.where(own, np.where(l1, 0.0, self.lat_l2), c)
            lv = np.where(own, np.where(l1, L1, L2), lv)
            cost[pg] = c
            lvl[pg] = lv
        # metadata accesses: few; the scalar code prices them, with the clocks set to where they
        # stand in the batch and the line's state as its earlier accesses in the batch left it
        meta_pos = np.flatnonzero(is_meta)
        if meta_pos.size:
            for j in meta_pos.tolist():
                i = int(arr[j]) - META_BASE
                if first[j] or fresh[j]:
                    if not first[j]:
                        q = int(prev[j])
                        self.m_stamp[i][cpu] = int(cpos[q] + f[q])
                        self.m_lstamp[i][llc] = int(lpos[q] + f[q])
                    self.clock[cpu] = int(cpos[j])
                    self.llc_clock[llc] = int(lpos[j])
                    cost[j], lvl[j] = self._meta_one(cpu, i, bool(w[j]))
                elif w[j]:
                    # a hot rewrite: a new version, nothing to pay
                    wv = self.m_wver[i] + 1
                    self.m_wver[i] = wv
                    self.m_writer[i] = cpu
                    self.m_dirty[i] = True
                    self.m_seen[i][cpu] = wv
                    self.m_lver[i][llc] = wv
        # final state: every line was last touched by this CPU at its last access
        nfresh = int(f.sum())
        end_c = cpos + f
        end_l = lpos + f
        last = np.flatnonzero(is_last & ~is_meta)
        if last.size:
            pfns = arr[last]
            cids = pfns >> CHUNK_SHIFT
            for cid in np.unique(cids).tolist():
                sel = last[cids == cid]
                ch = self._chunks[cid]
                off = arr[sel] & (CHUNK - 1)
                ch.np_owner[off] = cpu
                ch.np_stamp[off] = end_c[sel]
                ch.np_lstamp[off] = end_l[sel]
        for j in np.flatnonzero(is_last & is_meta).tolist():
            i = int(arr[j]) - META_BASE
            self.m_stamp[i][cpu] = int(end_c[j])
            self.m_lstamp[i][llc] = int(end_l[j])
        self.clock[cpu] = c0 + nfresh
        self.llc_clock[llc] = l0 + nfresh
        counts = self._counts[cpu]
        for k, v in enumerate(np.bincount(lvl, minlength=len(LEVEL_NAMES)).tolist()):
            counts[k] += v
        return cost
