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

Batches of at least VECTOR_MIN lines are priced in one vectorised numpy step (whose fixed cost,
about a hundred numpy operations, pays off only for long batches); shorter ones by the scalar
path, which computes exactly the same thing (tests/test_cache.py checks). access() returns a
batch's total as numpy's pairwise sum from PAIRWISE_MIN accesses on and as a running sum below,
whichever path priced it, so the choice of path never moves a result by a rounding.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from simulator.hardware import Hardware

META_BASE = 1 << 48  # metadata line ids start here; struct page line ids are pfns below it
# A line id with this bit set is an access the code does not wait for: a store (to a caller's
# array slot, to a list neighbour's pointer, to a split block's struct page) or a load no later
# address depends on. Its miss overlaps with the stretch's other misses (memory-level
# parallelism); unflagged accesses form the dependent chain and pay in full (combine()).
ASYNC = 1 << 60
CHUNK_SHIFT = 12
CHUNK = 1 << CHUNK_SHIFT
NO_OWNER = -1
REUSE_WINDOW = 16  # a line this recently touched by the same CPU does not age the others
VECTOR_MIN = 160  # batches at least this long take the numpy path (its fixed cost pays off)
PAIRWISE_MIN = 24  # access() sums the costs of a batch this long with numpy's pairwise sum
FAR = -(1 << 60)  # a stamp so old that every distance check fails


def sequential_or_pairwise(costs: np.ndarray) -> float:
    """A stretch's summed cost as CacheModel.access() sums it: numpy's pairwise sum from
    PAIRWISE_MIN accesses on, a running sum (left to right) below."""
    if len(costs) >= PAIRWISE_MIN:
        return float(costs.sum())
    t = 0.0
    for v in costs.tolist():
        t += v
    return t


def combine(costs: np.ndarray, flags: np.ndarray, fill_buffers: int) -> float:
    """The cost of one stretch of accesses (memory-level parallelism): the dependent chain (the
    unflagged accesses) pays each miss in full; the ASYNC ones overlap with it and with each
    other, up to `fill_buffers` misses in flight. So the stretch takes the longest of: the
    chain, the slowest ASYNC access, and all misses spread over the fill buffers."""
    if not flags.any():
        return sequential_or_pairwise(costs)
    chain = sequential_or_pairwise(costs[~flags])
    off = costs[flags]
    return max(chain, float(off.max()), (chain + sequential_or_pairwise(off)) / fill_buffers)


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
        # memory-level parallelism (combine()); False prices every access on the chain and
        # prefetches at sum / min(misses, fill buffers), as pagesim did before (ablation only)
        self.mlp = True
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
        would). `write` matters for metadata lines: a write invalidates other CPUs' copies.
        Lines flagged ASYNC overlap with the others (combine())."""
        n = len(lines)
        if n and max(lines) >= ASYNC:
            arr = np.asarray(lines, dtype=np.int64)
            flags = arr >= ASYNC if self.mlp else np.zeros(n, dtype=bool)
            return combine(self.access_each(cpu, arr & (ASYNC - 1), write), flags, self.fill_buffers)
        if n >= VECTOR_MIN:
            return float(self._access_vector(cpu, np.asarray(lines, dtype=np.int64), write).sum())
        if n >= PAIRWISE_MIN:
            return float(self.access_each(cpu, lines, write).sum())
        if isinstance(lines, np.ndarray):
            lines = lines.tolist()
        counts = self._counts[cpu]
        total = 0.0
        meta_one = self._meta_one
        page_one = self._page_one
        for ln in lines:
            if ln >= META_BASE:
                c, lvl = meta_one(cpu, ln - META_BASE, write)
            else:
                c, lvl = page_one(cpu, ln)
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
        if n >= VECTOR_MIN:
            return self._access_vector(cpu, np.asarray(lines, dtype=np.int64), write)
        if isinstance(lines, np.ndarray):
            lines = lines.tolist()
        out = np.zeros(n)
        counts = self._counts[cpu]
        if isinstance(write, np.ndarray):
            write = write.tolist()
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
        so they take max(slowest, sum(cost) / fill_buffers) (combine() with no chain)."""
        total = 0.0
        slowest = 0.0
        misses = 0
        counts = self._counts[cpu]
        for ln in dict.fromkeys(lines):
            if ln >= META_BASE:
                c, lvl = self._meta_one(cpu, ln - META_BASE, True)
            else:
                c, lvl = self._page_one(cpu, ln)
            counts[lvl] += 1
            total += c
            misses += c > 0
            if c > slowest:
                slowest = c
        if not self.mlp:
            return total / min(misses, self.fill_buffers) if misses else 0.0
        return max(slowest, total / self.fill_buffers)

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
        """One access to a metadata line (registry index `i`)."""
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

    # ---- vectorised path --------------------------------------------------------------------
    def _meta_line(
        self,
        cpu: int,
        llc: int,
        i: int,
        pos: np.ndarray,
        priced: np.ndarray,
        w: np.ndarray,
        cpos: np.ndarray,
        lpos: np.ndarray,
        end_c: np.ndarray,
        end_l: np.ndarray,
        cost: np.ndarray,
        lvl: np.ndarray,
    ) -> tuple[float, int]:
        """The accesses `pos` (program order) of metadata line `i` within a batch, when more than
        its first one is fresh: each fresh one is priced by the scalar code, with the stamps of
        the line's previous access and the clocks where they stand; the hot writes between them
        make new versions. Returns the first access's cost and level (the caller stores them)."""
        sc = priced[pos]
        hot_w = np.cumsum(w[pos] & ~sc)
        done_w = 0
        out = (0.0, L1)
        for q in np.flatnonzero(sc).tolist():
            nw = int(hot_w[q]) - done_w
            if nw:
                self._hot_writes(cpu, llc, i, nw)
                done_w += nw
            j = int(pos[q])
            if q:
                p = int(pos[q - 1])
                self.m_stamp[i][cpu] = int(end_c[p])
                self.m_lstamp[i][llc] = int(end_l[p])
            self.clock[cpu] = int(cpos[j])
            self.llc_clock[llc] = int(lpos[j])
            c, lv = self._meta_one(cpu, i, bool(w[j]))
            if q:
                cost[j] = c
                lvl[j] = lv
            else:
                out = (c, lv)
        if int(hot_w[-1]) > done_w:
            self._hot_writes(cpu, llc, i, int(hot_w[-1]) - done_w)
        return out

    def _hot_writes(self, cpu: int, llc: int, i: int, nw: int) -> None:
        """`nw` writes to metadata line `i` by `cpu` that hit its L1 (hot): new versions, no cost."""
        wv = self.m_wver[i] + nw
        self.m_wver[i] = wv
        self.m_writer[i] = cpu
        self.m_dirty[i] = True
        self.m_seen[i][cpu] = wv
        self.m_lver[i][llc] = wv

    def _access_vector(self, cpu: int, arr: np.ndarray, writes: bool | list[bool] | np.ndarray) -> np.ndarray:
        """Price a sequence of accesses exactly as the scalar path would, one by one; returns each
        access's cost.

        Whether an access is "fresh" (ages the others) depends on how many fresh accesses came
        before it, so the fresh flags are a fixed point: start from "none fresh" and recompute
        until stable. Each round can only add fresh accesses, and the sequential answer is the
        only fixed point, so this ends at it (in two or three rounds in practice)."""
        n = arr.size
        w = np.broadcast_to(np.asarray(writes, dtype=bool), (n,))
        # group the accesses by line: a stable sort keeps each line's accesses in program order
        order = np.argsort(arr, kind="stable")
        srt = arr[order]
        same = srt[1:] == srt[:-1]
        prev = np.full(n, -1, dtype=np.int64)
        prev[order[1:][same]] = order[:-1][same]
        first = prev < 0
        pprev = np.where(first, 0, prev)
        gstart = np.flatnonzero(np.concatenate(([True], ~same)))  # each line's first, in sorted order
        gend = np.append(gstart[1:], n)
        npage = int(np.searchsorted(srt, META_BASE))  # page lines sort before metadata lines
        npg = int(np.searchsorted(gstart, npage))  # groups of page lines
        if npage < n and int(srt[-1]) - META_BASE >= len(self.m_wver):
            self._grow_meta()
        # state before the batch, at each line's first access
        own0 = np.full(n, NO_OWNER, dtype=np.int64)
        s0 = np.zeros(n, dtype=np.int64)
        ls0 = np.zeros(n, dtype=np.int64)
        home = np.zeros(n, dtype=np.int64)
        chunk_runs: list[tuple[int, int, _Chunk]] = []
        if npg:
            u = srt[gstart[:npg]]  # distinct page lines, ascending
            pf = order[gstart[:npg]]
            cids = u >> CHUNK_SHIFT
            cut = (np.flatnonzero(cids[1:] != cids[:-1]) + 1).tolist()
            bounds = [0, *cut, npg]
            for a, b in zip(bounds[:-1], bounds[1:]):
                cid = int(cids[a])
                ch = self._chunks.get(cid) or self._new_chunk(cid)
                chunk_runs.append((a, b, ch))
                off = u[a:b] & (CHUNK - 1)
                sel = pf[a:b]
                own0[sel] = ch.np_owner[off]
                s0[sel] = ch.np_stamp[off]
                ls0[sel] = ch.np_lstamp[off]
            last_node = len(self.node_end_pfn) - 1
            home[pf] = np.minimum(np.searchsorted(self._np_node_end, u, side="right"), last_node)
        meta_groups = list(zip(gstart[npg:].tolist(), gend[npg:].tolist()))
        m_seen, m_wver, m_stamp = self.m_seen, self.m_wver, self.m_stamp
        for a, _ in meta_groups:
            j = int(order[a])
            i = int(srt[a]) - META_BASE
            if m_seen[i][cpu] == m_wver[i]:
                own0[j] = cpu
            s0[j] = m_stamp[i][cpu]
        mine0 = own0 == cpu
        c0 = self.clock[cpu]
        llc = self.cpu_llc[cpu]
        l0 = self.llc_clock[llc]
        # a first access to a line another CPU holds (or nobody) is fresh whatever comes before
        # it: start the fixed point from those (a lower bound of it)
        f = (first & ~mine0).astype(np.int64)
        may_be_hot = np.where(first, mine0, True)
        first_base = c0 - s0
        for _ in range(n + 1):
            # fresh accesses since the line's last touch: before the batch (first accesses, from
            # this CPU's clock) or since the line's previous access in the batch
            incl = np.cumsum(f)
            excl = incl - f
            since = np.where(first, excl + first_base, excl - incl[pprev])
            nf = (~(may_be_hot & (since < REUSE_WINDOW))).astype(np.int64)
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
        is_meta = arr >= META_BASE
        # fresh struct page accesses: where was the line?
        pg = np.flatnonzero(fresh & ~is_meta)
        if pg.size:
            fpg = first[pg]
            o = np.where(fpg, own0[pg], cpu)
            node = self.cpu_node[cpu]
            if (o == cpu).all():
                # every line was this CPU's last: in its private caches, its LLC, or memory
                priv_d = cpos[pg] - s[pg]
                in_priv = priv_d < self.l2_lines
                in_llc = ~in_priv & (lpos[pg] - ls[pg] < self.llc_lines)
                other = None
                own = in_priv
                sl = in_llc
            else:
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
                other = (in_priv & (oc != cpu)) | (in_llc & (o_llc != llc))
                own = in_priv & (oc == cpu)
                sl = in_llc & (o_llc == llc)
            mem = ~(in_priv | in_llc)
            c = np.zeros(pg.size)
            lv = np.zeros(pg.size, dtype=np.int64)
            if mem.any():
                hm = np.where(fpg, home[pg], 0)
                if not fpg.all():
                    rep = ~fpg
                    hm[rep] = np.minimum(
                        np.searchsorted(self._np_node_end, arr[pg][rep], side="right"),
                        len(self.node_end_pfn) - 1,
                    )
                c = np.where(mem, self._np_dram[node][hm], c)
                lv = np.where(mem, np.where(hm == node, DRAM_LOCAL, DRAM_REMOTE), lv)
            if other is not None and other.any():
                c = np.where(other, self._np_xfer[cpu][oc], c)
                lv = np.where(other, self._np_xfer_level[cpu][oc], lv)
            c = np.where(sl, self.lat_llc, c)
            lv = np.where(sl, LLC, lv)
            l1 = own & (priv_d < self.l1_lines)
            c = np.where(own, np.where(l1, 0.0, self.lat_l2), c)
            lv = np.where(own, np.where(l1, L1, L2), lv)
            cost[pg] = c
            lvl[pg] = lv
        # metadata accesses, line by line (a line's state depends only on its own accesses; the
        # clocks are set to where they stand in the batch): the line's first access and its fresh
        # ones are priced by the scalar code, with the state its earlier accesses left; a hot
        # access costs nothing, and a hot write makes a new version
        end_c = cpos + f
        end_l = lpos + f
        clock, llc_clock = self.clock, self.llc_clock
        if meta_groups:
            m_lstamp = self.m_lstamp
            ms = gstart[npg:]
            me = gend[npg:]
            priced = first | fresh
            msorted = order[npage:]
            nsc = np.add.reduceat(priced[msorted].astype(np.int64), ms - npage).tolist()
            nhw = np.add.reduceat((w & ~priced)[msorted].astype(np.int64), ms - npage).tolist()
            jf = order[ms]
            jl = order[me - 1]
            jf_l = jf.tolist()
            cf = cpos[jf].tolist()
            lf = lpos[jf].tolist()
            wf = w[jf].tolist()
            ec = end_c[jl].tolist()
            el = end_l[jl].tolist()
            mc = [0.0] * len(jf_l)
            ml = [0] * len(jf_l)
            for g, (a, b) in enumerate(meta_groups):
                i = int(srt[a]) - META_BASE
                if nsc[g] == 1:
                    # only the line's first access needs the scalar code; the rest are hot
                    clock[cpu] = cf[g]
                    llc_clock[llc] = lf[g]
                    mc[g], ml[g] = self._meta_one(cpu, i, wf[g])
                    if nhw[g]:
                        self._hot_writes(cpu, llc, i, nhw[g])
                else:
                    mc[g], ml[g] = self._meta_line(
                        cpu, llc, i, order[a:b], priced, w, cpos, lpos, end_c, end_l, cost, lvl
                    )
                m_stamp[i][cpu] = ec[g]
                m_lstamp[i][llc] = el[g]
            cost[jf] = mc
            lvl[jf] = ml
        # final state: every page line was last touched by this CPU at its last access
        nfresh = int(f.sum())
        if chunk_runs:
            pl = order[gend[:npg] - 1]
            for a, b, ch in chunk_runs:
                sel = pl[a:b]
                off = u[a:b] & (CHUNK - 1)
                ch.np_owner[off] = cpu
                ch.np_stamp[off] = end_c[sel]
                ch.np_lstamp[off] = end_l[sel]
        clock[cpu] = c0 + nfresh
        llc_clock[llc] = l0 + nfresh
        counts = self._counts[cpu]
        for k, v in enumerate(np.bincount(lvl, minlength=len(LEVEL_NAMES)).tolist()):
            counts[k] += v
        return cost
