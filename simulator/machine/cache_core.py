"""The cache model's compiled core: pricing each access in program order, and summing a stretch's
costs exactly as numpy and Python would.

numba compiles these functions (`@njit(cache=True)`: once per machine, kept on disk beside this
file); with NUMBA_DISABLE_JIT=1 the same code runs as plain Python, slowly but to the same bit.
simulator/machine/cache.py owns the state and calls in here; it documents the model.

The state is a handful of numpy arrays, so that a call passes few arguments (numba's dispatch
costs about 0.1 us per argument):

Private caches (L1d, L2) belong to a core, which SMT siblings share: every piece of private state
(clocks, a line's owner and its stamps, the copy a core holds) is per core, and only the level
counts are per CPU. Without SMT a core is a CPU (core_of is the identity).

- `topo` (int64, read only but for MLP): l1, l2 and LLC lines, CPU count, LLC count, node count,
  fill buffers, the MLP switch, core count, then each CPU's core, each core's LLC, each core's
  node, the transfer level of each (core, owner core) pair and each node's end pfn (offsets: T_*);
- `ftopo` (float64, read only but for the loaded DRAM latency): the L2 and LLC latencies beyond
  L1, the transfer cost of each (core, owner core) pair, the DRAM cost of each (node, home) pair;
- `dyn` (int64): each core's clock, each LLC's clock, the level counts per CPU (7 each), and the
  number of struct page chunks in use;
- `slot_of` (int64, (capacity, 2)): an open-addressing hash table from a chunk (pfn >> CHUNK_SHIFT)
  to its row in `pages`: key 1 + chunk (0: empty slot), value the row; at most half full. Line
  ids are sparse (struct pages of every node, and the pageblock bitmap's lines at 1 << 44);
- `pages` (int64, one row per chunk): owner core, private stamp and LLC stamp of each of its CHUNK
  lines, then the chunk's home node (-1 if it straddles two nodes);
- `meta` (int64, one row per registered metadata line): version, last writer (core), dirty, home
  node, the version each core holds, each core's stamp, the version each LLC holds, each LLC's
  stamp.

A pricing call that meets a chunk or metadata line with no room left stops before it and returns
its index; the caller grows the arrays and calls again from there (price()), so the state is
always that of the accesses priced so far, in order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

META_BASE = 1 << 48  # metadata line ids start here; struct page line ids are pfns below it
ASYNC = 1 << 60  # flag bit: an access the code does not wait for (cache.py, combine())
CHUNK_SHIFT = 12
CHUNK = 1 << CHUNK_SHIFT
NO_OWNER = -1
REUSE_WINDOW = 16  # a line this recently touched by the same CPU does not age the others
PAIRWISE_MIN = 24  # a stretch this long is summed with numpy's pairwise sum
PW_BLOCKSIZE = 128  # numpy's pairwise-sum block (numpy/_core/src/umath/loops_utils.h.src)
FAR = -(1 << 60)  # a stamp so old that every distance check fails

# levels (statistics)
L1, L2, LLC, XFER_LOCAL, XFER_REMOTE, DRAM_LOCAL, DRAM_REMOTE = range(7)
NLEVELS = 7

# topo offsets
T_L1, T_L2, T_LLC, T_NCPU, T_NLLC, T_NNODE, T_FB, T_MLP, T_NCORE, T_HEAD = range(10)
# page row: [owner x CHUNK | stamp x CHUNK | lstamp x CHUNK | home]
P_STAMP = CHUNK
P_LSTAMP = 2 * CHUNK
P_HOME = 3 * CHUNK
P_WIDTH = 3 * CHUNK + 1
# meta row: [wver, writer, dirty, home | seen x ncore | stamp x ncore | lver x nllc | lstamp x nllc]
M_WVER, M_WRITER, M_DIRTY, M_HOME, M_HEAD = range(5)


def meta_width(ncore: int, nllc: int) -> int:
    return M_HEAD + 2 * ncore + 2 * nllc


# ---- sums ----------------------------------------------------------------------------------------
@njit(cache=True)
def _pairwise_block(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's pairwise sum of at most PW_BLOCKSIZE values: 8 running sums, then the rest."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0 = a[lo]
    r1 = a[lo + 1]
    r2 = a[lo + 2]
    r3 = a[lo + 3]
    r4 = a[lo + 4]
    r5 = a[lo + 5]
    r6 = a[lo + 6]
    r7 = a[lo + 7]
    i = 8
    end = n - (n % 8)
    while i < end:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's pairwise sum of a[lo:lo+n] (np.add.reduce on a contiguous float64 array), operation
    for operation, so the result is the same to the bit. numpy recurses (halves rounded down to
    a multiple of 8, down to blocks of PW_BLOCKSIZE); this walks the same tree with a stack
    (numba's on-disk cache does not keep recursive functions)."""
    if n <= PW_BLOCKSIZE:
        return _pairwise_block(a, lo, n)
    t_lo = np.empty(192, dtype=np.int64)  # tasks: (lo, n, 0: sum it / 1: add the two sums above)
    t_n = np.empty(192, dtype=np.int64)
    t_add = np.empty(192, dtype=np.bool_)
    vals = np.empty(96)
    sp = 1
    t_lo[0] = lo
    t_n[0] = n
    t_add[0] = False
    vp = 0
    while sp:
        sp -= 1
        lo_ = t_lo[sp]
        n_ = t_n[sp]
        if t_add[sp]:
            vals[vp - 2] = vals[vp - 2] + vals[vp - 1]
            vp -= 1
        elif n_ <= PW_BLOCKSIZE:
            vals[vp] = _pairwise_block(a, lo_, n_)
            vp += 1
        else:
            n2 = n_ // 2
            n2 -= n2 % 8
            # popped in the order: left half, right half, their sum
            t_lo[sp] = lo_
            t_n[sp] = n_
            t_add[sp] = True
            t_lo[sp + 1] = lo_ + n2
            t_n[sp + 1] = n_ - n2
            t_add[sp + 1] = False
            t_lo[sp + 2] = lo_
            t_n[sp + 2] = n2
            t_add[sp + 2] = False
            sp += 3
    return vals[0]


@njit(cache=True)
def sequential_or_pairwise(a: np.ndarray) -> float:
    """A stretch's summed cost: numpy's pairwise sum from PAIRWISE_MIN accesses on, a running sum
    (left to right, from 0.0) below."""
    n = a.size
    if n >= PAIRWISE_MIN:
        return 0.0 + pairwise_sum(a, 0, n)
    t = 0.0
    for i in range(n):
        t += a[i]
    return t


@njit(cache=True)
def combine(costs: np.ndarray, flags: np.ndarray, fill_buffers: int) -> float:
    """One stretch with memory-level parallelism (cache.py, combine())."""
    n = costs.size
    nflag = 0
    for i in range(n):
        if flags[i]:
            nflag += 1
    if nflag == 0:
        return sequential_or_pairwise(costs)
    chain_c = np.empty(n - nflag)
    off = np.empty(nflag)
    a = 0
    b = 0
    for i in range(n):
        if flags[i]:
            off[b] = costs[i]
            b += 1
        else:
            chain_c[a] = costs[i]
            a += 1
    chain = sequential_or_pairwise(chain_c)
    slowest = off[0]
    for i in range(1, nflag):
        if off[i] > slowest:
            slowest = off[i]
    spread = (chain + sequential_or_pairwise(off)) / fill_buffers
    # Python's max(chain, slowest, spread): the first of the largest
    best = chain
    if slowest > best:
        best = slowest
    if spread > best:
        best = spread
    return best


# ---- where a line is ----------------------------------------------------------------------------
@njit(cache=True)
def _home(topo: np.ndarray, pfn: int) -> int:
    nnode = topo[T_NNODE]
    ncore = topo[T_NCORE]
    base = T_HEAD + topo[T_NCPU] + 2 * ncore + ncore * ncore
    for i in range(nnode):
        if pfn < topo[base + i]:
            return i
    return nnode - 1


@njit(cache=True)
def _dram(topo: np.ndarray, ftopo: np.ndarray, core: int, home: int) -> tuple[float, int]:
    ncore = topo[T_NCORE]
    node = topo[T_HEAD + topo[T_NCPU] + ncore + core]
    cost = ftopo[2 + ncore * ncore + node * topo[T_NNODE] + home]
    return cost, DRAM_LOCAL if home == node else DRAM_REMOTE


@njit(cache=True)
def _xfer(topo: np.ndarray, ftopo: np.ndarray, core: int, owner: int) -> tuple[float, int]:
    ncore = topo[T_NCORE]
    k = core * ncore + owner
    return ftopo[2 + k], topo[T_HEAD + topo[T_NCPU] + 2 * ncore + k]


@njit(cache=True)
def _where(
    topo: np.ndarray,
    ftopo: np.ndarray,
    dyn: np.ndarray,
    core: int,
    owner: int,
    stamp: int,
    lstamp: int,
    home: int,
) -> tuple[float, int]:
    """Cost and level of a line last touched by core `owner` (at `stamp` on its private clock and
    `lstamp` on its LLC's clock), homed on node `home`, now touched by core `core`."""
    ncore = topo[T_NCORE]
    if owner >= 0:
        d = dyn[owner] - stamp
        if d < topo[T_L2]:
            if owner == core:
                if d < topo[T_L1]:
                    return 0.0, L1
                return ftopo[0], L2
            return _xfer(topo, ftopo, core, owner)
        llc = topo[T_HEAD + topo[T_NCPU] + owner]
        if dyn[ncore + llc] - lstamp < topo[T_LLC]:
            if llc == topo[T_HEAD + topo[T_NCPU] + core]:
                return ftopo[1], LLC
            return _xfer(topo, ftopo, core, owner)
    return _dram(topo, ftopo, core, home)


# ---- one access -----------------------------------------------------------------------------------
@njit(cache=True)
def chunk_row(slot_of: np.ndarray, cid: int) -> int:
    """The row of chunk `cid` in `pages`, or -1 - (the empty slot where it would go)."""
    mask = slot_of.shape[0] - 1
    h = ((cid & 0xFFFFFFF) * 0x9E3779B1) & mask  # Fibonacci hashing: consecutive chunks spread out
    key = cid + 1
    while True:
        k = slot_of[h, 0]
        if k == key:
            return slot_of[h, 1]
        if k == 0:
            return -1 - h
        h = (h + 1) & mask


@njit(cache=True)
def rehash(old: np.ndarray, new: np.ndarray) -> None:
    """Every chunk of table `old` into the empty table `new` (twice the capacity)."""
    for j in range(old.shape[0]):
        if old[j, 0] != 0:
            at = -1 - chunk_row(new, old[j, 0] - 1)
            new[at, 0] = old[j, 0]
            new[at, 1] = old[j, 1]


@njit(cache=True)
def _page_one(
    topo: np.ndarray,
    ftopo: np.ndarray,
    dyn: np.ndarray,
    slot_of: np.ndarray,
    pages: np.ndarray,
    core: int,
    pfn: int,
) -> tuple[float, int]:
    """One access to a struct page line by core `core` (its chunk has a row: _room())."""
    ncore = topo[T_NCORE]
    row = chunk_row(slot_of, pfn >> CHUNK_SHIFT)
    off = pfn & (CHUNK - 1)
    owner = pages[row, off]
    stamp = pages[row, P_STAMP + off]
    now = dyn[core]
    llc = topo[T_HEAD + topo[T_NCPU] + core]
    li = ncore + llc
    if owner == core and now - stamp < REUSE_WINDOW:
        pages[row, P_STAMP + off] = now
        pages[row, P_LSTAMP + off] = dyn[li]
        return 0.0, L1
    home = pages[row, P_HOME]
    if home < 0:
        home = _home(topo, pfn)
    cost, lvl = _where(topo, ftopo, dyn, core, owner, stamp, pages[row, P_LSTAMP + off], home)
    now += 1
    dyn[core] = now
    lnow = dyn[li] + 1
    dyn[li] = lnow
    pages[row, off] = core
    pages[row, P_STAMP + off] = now
    pages[row, P_LSTAMP + off] = lnow
    return cost, lvl


@njit(cache=True)
def _meta_one(
    topo: np.ndarray, ftopo: np.ndarray, dyn: np.ndarray, meta: np.ndarray, core: int, i: int, write: bool
) -> tuple[float, int]:
    """One access to a metadata line (registry index `i`) by core `core`."""
    ncore = topo[T_NCORE]
    nllc = topo[T_NLLC]
    seen0 = M_HEAD
    stamp0 = M_HEAD + ncore
    lver0 = M_HEAD + 2 * ncore
    lstamp0 = lver0 + nllc
    wv = meta[i, M_WVER]
    llc = topo[T_HEAD + topo[T_NCPU] + core]
    li = ncore + llc
    now = dyn[core]
    mine = meta[i, seen0 + core] == wv
    d = now - meta[i, stamp0 + core]
    if mine and d < REUSE_WINDOW:
        cost = 0.0
        lvl = L1
        lnow = dyn[li]
    else:
        if mine and d < topo[T_L2]:
            if d < topo[T_L1]:
                cost = 0.0
                lvl = L1
            else:
                cost = ftopo[0]
                lvl = L2
        else:
            w = meta[i, M_WRITER]
            home = meta[i, M_HOME]
            if w >= 0 and w != core:
                wllc = topo[T_HEAD + topo[T_NCPU] + w]
                lst = meta[i, lstamp0 + wllc] if meta[i, lver0 + wllc] == wv else FAR
                cost, lvl = _where(topo, ftopo, dyn, core, w, meta[i, stamp0 + w], lst, home)
            else:
                cost, lvl = _dram(topo, ftopo, core, home)
            # a shared copy in our own LLC is as good as any (a Modified line is not shared:
            # reading it is a transfer from the writer's core, coherence.same_llc)
            if (
                cost > ftopo[1]
                and meta[i, M_DIRTY] == 0
                and meta[i, lver0 + llc] == wv
                and dyn[li] - meta[i, lstamp0 + llc] < topo[T_LLC]
            ):
                cost = ftopo[1]
                lvl = LLC
        now += 1
        dyn[core] = now
        lnow = dyn[li] + 1
        dyn[li] = lnow
    if write:
        wv += 1
        meta[i, M_WVER] = wv
        meta[i, M_WRITER] = core
        meta[i, M_DIRTY] = 1
    elif meta[i, M_WRITER] != core:
        meta[i, M_DIRTY] = 0  # Modified -> Shared: written back, readable from the LLC
    meta[i, seen0 + core] = wv
    meta[i, stamp0 + core] = now
    meta[i, lver0 + llc] = wv
    meta[i, lstamp0 + llc] = lnow
    return cost, lvl


@njit(cache=True)
def _room(
    topo: np.ndarray, dyn: np.ndarray, slot_of: np.ndarray, pages: np.ndarray, meta: np.ndarray, ln: int
) -> bool:
    """Is there state for line `ln`? A struct page line of an untouched chunk gets a row here
    (its lines owned by nobody) if one is free."""
    if ln >= META_BASE:
        return ln - META_BASE < meta.shape[0]
    cid = ln >> CHUNK_SHIFT
    at = chunk_row(slot_of, cid)
    if at >= 0:
        return True
    nused = dyn[dyn.size - 1]  # dyn's last entry: chunk rows in use
    if nused >= pages.shape[0] or 2 * (nused + 1) > slot_of.shape[0]:
        return False
    row = nused
    dyn[dyn.size - 1] = nused + 1
    slot_of[-1 - at, 0] = cid + 1
    slot_of[-1 - at, 1] = row
    for k in range(CHUNK):
        pages[row, k] = NO_OWNER
        pages[row, P_STAMP + k] = 0
        pages[row, P_LSTAMP + k] = 0
    lo = _home(topo, cid << CHUNK_SHIFT)
    hi = _home(topo, ((cid + 1) << CHUNK_SHIFT) - 1)
    pages[row, P_HOME] = lo if lo == hi else -1
    return True


# ---- stretches ------------------------------------------------------------------------------------
@njit(cache=True)
def price(
    topo: np.ndarray,
    ftopo: np.ndarray,
    dyn: np.ndarray,
    slot_of: np.ndarray,
    pages: np.ndarray,
    meta: np.ndarray,
    cpu: int,
    lines: np.ndarray,
    writes: np.ndarray,
    write_all: bool,
    start: int,
    costs: np.ndarray,
) -> int:
    """Price lines[start:] one after another on `cpu` (ASYNC flags ignored), each cost into
    `costs`, each level into the CPU's counts; `writes`: one flag per access (or a cycle of them:
    access k takes writes[k % len(writes)], a tape's flag per column), or empty (then
    `write_all`). Returns len(lines), or the index of the first line with no room (_room)."""
    n = lines.size
    core = topo[T_HEAD + cpu]
    cbase = topo[T_NCORE] + topo[T_NLLC] + cpu * NLEVELS
    nw = writes.size
    for k in range(start, n):
        ln = lines[k]
        if ln >= ASYNC:
            ln -= ASYNC
        if not _room(topo, dyn, slot_of, pages, meta, ln):
            return k
        if ln >= META_BASE:
            c, lvl = _meta_one(
                topo, ftopo, dyn, meta, core, ln - META_BASE, writes[k % nw] if nw else write_all
            )
        else:
            c, lvl = _page_one(topo, ftopo, dyn, slot_of, pages, core, ln)
        dyn[cbase + lvl] += 1
        costs[k] = c
    return n


@njit(cache=True)
def stretch_total(lines: np.ndarray, costs: np.ndarray, mlp: bool, fill_buffers: int) -> float:
    """What CacheModel.access() returns for priced `costs`: combined if any line is ASYNC, else
    a pairwise sum from PAIRWISE_MIN accesses on, a running sum below."""
    n = lines.size
    has_async = False
    for k in range(n):
        if lines[k] >= ASYNC:
            has_async = True
            break
    if has_async:
        flags = np.zeros(n, dtype=np.bool_)
        if mlp:
            for k in range(n):
                flags[k] = lines[k] >= ASYNC
        return combine(costs, flags, fill_buffers)
    return sequential_or_pairwise(costs)


@njit(cache=True)
def access_total(
    topo: np.ndarray,
    ftopo: np.ndarray,
    dyn: np.ndarray,
    slot_of: np.ndarray,
    pages: np.ndarray,
    meta: np.ndarray,
    cpu: int,
    lines: np.ndarray,
    write: bool,
    costs: np.ndarray,
) -> tuple[int, float]:
    """price() with one write flag, then stretch_total(): (lines priced, their total). The total
    is valid only when every line was priced."""
    empty = np.empty(0, dtype=np.bool_)
    done = price(topo, ftopo, dyn, slot_of, pages, meta, cpu, lines, empty, write, 0, costs)
    if done < lines.size:
        return done, 0.0
    return done, stretch_total(lines, costs, topo[T_MLP] != 0, topo[T_FB])


@njit(cache=True)
def overlapped(
    topo: np.ndarray,
    ftopo: np.ndarray,
    dyn: np.ndarray,
    slot_of: np.ndarray,
    pages: np.ndarray,
    meta: np.ndarray,
    cpu: int,
    lines: np.ndarray,
    start: int,
    acc: np.ndarray,
) -> int:
    """Independent lines (distinct, in order) touched together, as writes: `acc` collects
    (total, slowest, misses). Returns len(lines), or the first line with no room."""
    core = topo[T_HEAD + cpu]
    cbase = topo[T_NCORE] + topo[T_NLLC] + cpu * NLEVELS
    for k in range(start, lines.size):
        ln = lines[k]
        if not _room(topo, dyn, slot_of, pages, meta, ln):
            return k
        if ln >= META_BASE:
            c, lvl = _meta_one(topo, ftopo, dyn, meta, core, ln - META_BASE, True)
        else:
            c, lvl = _page_one(topo, ftopo, dyn, slot_of, pages, core, ln)
        dyn[cbase + lvl] += 1
        acc[0] += c
        if c > 0:
            acc[2] += 1.0
        if c > acc[1]:
            acc[1] = c
    return lines.size


@njit(cache=True)
def _touch_sum(
    costs: np.ndarray, a: int, b: int, flags: np.ndarray, combined: bool, fill_buffers: int
) -> float:
    """One call's touch (costs[a:b]) summed as CacheModel.access() sums fewer than PAIRWISE_MIN
    lines: combined when it has ASYNC lines and MLP is on, else left to right."""
    if a == b:
        return 0.0
    if combined:
        return combine(costs[a:b], flags[a:b], fill_buffers)
    s = costs[a]
    for col in range(a + 1, b):
        s = s + costs[col]
    return s


@njit(cache=True)
def tape_sums(
    costs: np.ndarray,
    k: int,
    ncol: int,
    inc_const: np.ndarray,
    inc_arr: np.ndarray,
    arr_col: np.ndarray,
    touch_a: np.ndarray,
    touch_b: np.ndarray,
    col_async: np.ndarray,
    mlp: bool,
    fill_buffers: int,
    pending: float,
    cache_ns: float,
    now: float,
    slowdown: float,
    marks: np.ndarray,
    window: np.ndarray,
) -> tuple[np.ndarray, float, float, np.ndarray, np.ndarray]:
    """A tape's k calls after their lines are priced (`costs`, call-major): each increment of
    each call in order onto the CPU's pending time (a running sum, as the calls one by one add
    them), each touch's sum onto its cache cost. Increment j is a touch of columns
    touch_a[j]..touch_b[j], or inc_arr[:, arr_col[j]] (one value per call), or inc_const[j].
    Returns the local times at each mark (k x marks), the new pending and cache cost, and the
    IRQ-off windows' starts and ends (window: increments before the save and before the restore;
    -1: none). A local time is now + pending x slowdown (CPU.now(): a busy SMT sibling)."""
    ninc = inc_const.size
    times = np.empty((k, marks.size))
    starts = np.empty(k if window[0] >= 0 else 0)
    ends = np.empty(k if window[0] >= 0 else 0)
    combined = np.zeros(ninc, dtype=np.bool_)
    if mlp:
        for j in range(ninc):
            if touch_a[j] >= 0:
                for col in range(touch_a[j], touch_b[j]):
                    if col_async[col]:
                        combined[j] = True
    for i in range(k):
        row = costs[i * ncol : (i + 1) * ncol]
        m = 0
        for j in range(ninc + 1):
            while m < marks.size and marks[m] == j:
                times[i, m] = now + pending * slowdown
                m += 1
            if window[0] == j:
                starts[i] = now + pending * slowdown
            if window[1] == j:
                ends[i] = now + pending * slowdown
            if j == ninc:
                break
            if touch_a[j] >= 0:
                v = _touch_sum(row, touch_a[j], touch_b[j], col_async, combined[j], fill_buffers)
                cache_ns = cache_ns + v
            elif arr_col[j] >= 0:
                v = inc_arr[i, arr_col[j]]
            else:
                v = inc_const[j]
            pending = pending + v
    return times, pending, cache_ns, starts, ends
