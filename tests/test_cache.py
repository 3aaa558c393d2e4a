"""The cache model (simulator/machine/cache.py): where a line is, what touching it costs, and the
compiled core agreeing exactly with the pure-Python model it replaced (tests/cache_reference.py).

The machine is tests/data/tiny-2node.yaml: CPUs 0-1 on socket/node/LLC 0, CPUs 2-3 on 1; L1 4 KiB
(64 lines), L2 32 KiB (512 lines), L3 256 KiB (4096 lines); 4/13/45 cycles at 3.6 GHz; DRAM 80 ns
local, 130 ns remote; same-LLC transfer 45 ns, cross-socket 130 ns. Costs are beyond an L1 hit.
"""

from __future__ import annotations

import numpy as np
import pytest
from cache_reference import ReferenceCache
from conftest import TINY_2NODE, TINY_SMT, hardware
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.machine.cache import (
    ASYNC,
    CHUNK,
    DRAM_LOCAL,
    DRAM_REMOTE,
    L1,
    L2,
    LLC,
    PAIRWISE_MIN,
    REUSE_WINDOW,
    XFER_LOCAL,
    XFER_REMOTE,
    CacheModel,
    LineRegistry,
    sequential_or_pairwise,
)
from simulator.machine.cache_core import pairwise_sum

CLOCK = 3.6
L1_NS = 4 / CLOCK
L2_COST = (13 - 4) / CLOCK
LLC_COST = (45 - 4) / CLOCK
DRAM_LOCAL_COST = 80 - L1_NS
DRAM_REMOTE_COST = 130 - L1_NS
XFER_SAME_LLC = 45 - L1_NS
XFER_CROSS = 130 - L1_NS
L1_LINES, L2_LINES, LLC_LINES = 64, 512, 4096

NODE0_END = (4 << 30 >> 12) + 32768  # node 0's Normal zone ends at 4 GiB + 128 MiB
NODE1_END = NODE0_END + 32768
P = 1000  # a node-0 struct page line
REMOTE_P = NODE0_END + 5  # a node-1 struct page line
FILLER = 1 << 20  # node-0 pfns used to age the caches, far from P


def new_cache(path=TINY_2NODE) -> tuple[CacheModel, LineRegistry]:
    reg = LineRegistry()
    return CacheModel(hardware(path), reg, [NODE0_END, NODE1_END]), reg


def level_of(c: CacheModel, cpu: int, lines: list[int], write: bool = True) -> tuple[float, int]:
    """Touch `lines` on `cpu`; returns (cost, the level of the last line)."""
    before = c.level_counts[cpu].copy()
    cost = c.access(cpu, lines, write)
    diff = c.level_counts[cpu] - before
    assert diff.sum() == len(lines)
    return cost, int(np.flatnonzero(diff)[-1]) if len(lines) == 1 else -1


def age(c: CacheModel, cpu: int, n: int, base: int = FILLER) -> None:
    """`cpu` touches n distinct other lines (vectorised in big steps)."""
    for start in range(0, n, 2048):
        c.access(cpu, np.arange(base + start, base + min(n, start + 2048), dtype=np.int64))


def test_latencies_from_the_hardware_file():
    c, _ = new_cache()
    assert (c.l1_lines, c.l2_lines, c.llc_lines) == (L1_LINES, L2_LINES, LLC_LINES)
    assert c.lat_l2 == pytest.approx(L2_COST)
    assert c.lat_llc == pytest.approx(LLC_COST)
    assert c.xfer[0][1] == pytest.approx(XFER_SAME_LLC)
    assert c.xfer[0][2] == pytest.approx(XFER_CROSS)
    assert c.dram[0][1] == pytest.approx(DRAM_REMOTE_COST)


def test_first_touch_is_local_dram_then_l1():
    c, _ = new_cache()
    assert level_of(c, 0, [P]) == (pytest.approx(DRAM_LOCAL_COST), DRAM_LOCAL)
    assert level_of(c, 0, [P]) == (0.0, L1)
    # a repeat inside one batch costs nothing after its first touch
    assert c.access(0, [P + 1, P + 1, P + 1]) == pytest.approx(DRAM_LOCAL_COST)


@pytest.mark.parametrize(
    ("others", "level", "cost"),
    [
        (REUSE_WINDOW - 1, L1, 0.0),  # still hot: does not age anything
        (L1_LINES - 1, L1, 0.0),
        (L1_LINES, L2, L2_COST),
        (L2_LINES - 1, L2, L2_COST),
        (L2_LINES, LLC, LLC_COST),
        (LLC_LINES - 1, LLC, LLC_COST),
        (LLC_LINES, DRAM_LOCAL, DRAM_LOCAL_COST),
    ],
)
def test_reuse_distance_picks_the_level(others, level, cost):
    c, _ = new_cache()
    c.access(0, [P])
    age(c, 0, others)
    got_cost, got_level = level_of(c, 0, [P])
    assert got_level == level
    assert got_cost == pytest.approx(cost)


def test_other_cpu_of_the_same_llc_pays_a_transfer():
    c, _ = new_cache()
    c.access(0, [P])
    assert level_of(c, 1, [P]) == (pytest.approx(XFER_SAME_LLC), XFER_LOCAL)
    # the line moved: cpu1 owns it now, cpu0 pays the transfer back
    assert level_of(c, 1, [P]) == (0.0, L1)
    assert level_of(c, 0, [P]) == (pytest.approx(XFER_SAME_LLC), XFER_LOCAL)


def test_other_socket_pays_cross_socket():
    c, _ = new_cache()
    c.access(0, [P])
    assert level_of(c, 2, [P]) == (pytest.approx(XFER_CROSS), XFER_REMOTE)


def test_line_aged_out_of_the_owner_but_in_the_shared_llc_is_an_llc_hit():
    c, _ = new_cache()
    c.access(0, [P])
    age(c, 0, L2_LINES)  # out of cpu0's L2, still in LLC 0
    assert level_of(c, 1, [P]) == (pytest.approx(LLC_COST), LLC)
    c2, _ = new_cache()
    c2.access(0, [P])
    age(c2, 0, L2_LINES)
    # from the other socket it is a cross-socket transfer out of LLC 0
    assert level_of(c2, 2, [P]) == (pytest.approx(XFER_CROSS), XFER_REMOTE)
    c3, _ = new_cache()
    c3.access(0, [P])
    age(c3, 1, LLC_LINES)  # cpu1 thrashes the shared LLC; cpu0's private copy stays
    age(c3, 0, L2_LINES)
    assert level_of(c3, 0, [P])[1] == DRAM_LOCAL


def test_remote_node_page_first_touch_is_remote_dram():
    c, _ = new_cache()
    assert level_of(c, 0, [REMOTE_P]) == (pytest.approx(DRAM_REMOTE_COST), DRAM_REMOTE)
    assert level_of(c, 2, [REMOTE_P + 1]) == (pytest.approx(DRAM_LOCAL_COST), DRAM_LOCAL)


def test_metadata_line_shared_by_readers_invalidated_by_a_writer():
    c, reg = new_cache()
    line = reg.alloc("machine.node0.zone_normal.read_mostly", 0)
    assert level_of(c, 0, [line], write=False) == (pytest.approx(DRAM_LOCAL_COST), DRAM_LOCAL)
    # cpu1 finds the shared copy in their common LLC
    assert level_of(c, 1, [line], write=False) == (pytest.approx(LLC_COST), LLC)
    age(c, 0, REUSE_WINDOW)
    age(c, 1, REUSE_WINDOW)
    # both hold a copy: re-reading costs neither of them anything
    assert level_of(c, 0, [line], write=False) == (0.0, L1)
    assert level_of(c, 1, [line], write=False) == (0.0, L1)
    # cpu0 writes: cpu1's copy is gone, its next read is a transfer from cpu0
    assert level_of(c, 0, [line], write=True) == (0.0, L1)
    age(c, 1, REUSE_WINDOW)
    assert level_of(c, 1, [line], write=False) == (pytest.approx(XFER_SAME_LLC), XFER_LOCAL)
    # the other socket's reader pulls it across; its LLC neighbour then shares that copy
    assert level_of(c, 2, [line], write=False) == (pytest.approx(XFER_CROSS), XFER_REMOTE)
    assert level_of(c, 3, [line], write=False) == (pytest.approx(LLC_COST), LLC)


def test_written_metadata_line_moves_between_writers_at_the_transfer_cost():
    """A lock word taken in turn by two cores of one LLC: each hand-off is a cache-to-cache
    transfer of a Modified line (coherence.same_llc), not an LLC hit (lock.py's premise)."""
    c, reg = new_cache()
    lock = reg.alloc("machine.node0.zone_normal.lock", 0)
    c.access(0, [lock])
    for cpu in (1, 0, 1, 0):
        age(c, cpu, REUSE_WINDOW)
        assert level_of(c, cpu, [lock]) == (pytest.approx(XFER_SAME_LLC), XFER_LOCAL)
    age(c, 2, REUSE_WINDOW)
    assert level_of(c, 2, [lock]) == (pytest.approx(XFER_CROSS), XFER_REMOTE)
    # a remote node's metadata line read from DRAM is remote DRAM
    far = reg.alloc("machine.node1.zone_normal.read_mostly", 1)
    assert level_of(c, 0, [far], write=False) == (pytest.approx(DRAM_REMOTE_COST), DRAM_REMOTE)


@pytest.mark.parametrize(("misses", "hits"), [(1, 0), (3, 2), (10, 0), (25, 4)])
def test_overlapped_divides_by_min_of_misses_and_fill_buffers(misses, hits):
    c, _ = new_cache()
    hot = list(range(P, P + hits))
    c.access(0, hot)
    lines = hot + list(range(P + 100, P + 100 + misses))
    expected = misses * DRAM_LOCAL_COST / min(misses, 10)  # fill_buffers: 10
    assert c.overlapped(0, lines) == pytest.approx(expected)
    assert c.overlapped(0, []) == 0.0


# ---- the compiled core against the pure-Python oracle ------------------------------------------
# tests/cache_reference.py is the cache model as it was before numba (plain lists, access by
# access). Every cost and every piece of state must be the same, to the bit.

# Page lines around two chunk boundaries, on both nodes, and the pageblock bitmap's sparse lines.
UNIVERSE = (
    list(range(CHUNK - 40, CHUNK + 40))
    + list(range(3 * CHUNK - 10, 3 * CHUNK + 10))
    + list(range(NODE0_END - 10, NODE0_END + 30))
    + [(1 << 44) + k for k in range(3)]
)
META_LINES = 6

batches = st.lists(
    st.tuples(
        st.integers(0, 7),  # cpu (modulo the machine's CPUs)
        st.lists(
            st.tuples(
                st.one_of(
                    st.sampled_from(UNIVERSE),
                    st.integers(0, META_LINES - 1).map(lambda k: -1 - k),  # a metadata line
                ),
                st.booleans(),  # write
                st.booleans(),  # ASYNC
            ),
            min_size=0,
            max_size=170,
        ),
        st.integers(0, 40),  # other lines touched before the batch (advance)
        st.sampled_from(["access", "access_each", "overlapped"]),
    ),
    min_size=1,
    max_size=25,
)


def _pair(path=TINY_2NODE) -> tuple[tuple[CacheModel, int], tuple[ReferenceCache, int]]:
    out = []
    for cls in (CacheModel, ReferenceCache):
        reg = LineRegistry()
        c = cls(hardware(path), reg, [NODE0_END, NODE1_END])
        first = reg.alloc("meta", 0, META_LINES // 2)
        reg.alloc("meta_remote", 1, META_LINES - META_LINES // 2)
        out.append((c, first))
    return out[0], out[1]


def _play(c, first: int, seq, mlp: bool) -> list:
    c.mlp = mlp
    out = []
    for k, accesses, adv, how in seq:
        cpu = k % c.ncpu
        c.advance(cpu, adv)
        lines = [(first - 1 - x if x < 0 else x) for x, _, _ in accesses]
        if how == "overlapped":
            out.append(c.overlapped(cpu, lines))
        elif how == "access_each":
            out.append(c.access_each(cpu, lines, [wr for _, wr, _ in accesses]).tolist())
        else:
            flagged = [ln | (ASYNC if a else 0) for ln, (_, _, a) in zip(lines, accesses)]
            write = bool(accesses[0][1]) if accesses else True
            out.append(
                c.access(cpu, np.array(flagged, dtype=np.int64) if len(flagged) % 2 else flagged, write)
            )
    return out


@settings(max_examples=200, deadline=None)
@given(seq=batches, mlp=st.booleans(), smt=st.booleans())
def test_the_compiled_core_prices_like_the_python_model(seq, mlp, smt):
    """Each access's cost and each total (==), every clock, level count, struct page and
    metadata line state: reads sharing a line, writes invalidating it, lines other CPUs wrote,
    ASYNC stretches combined, chunks created on the way (the arrays grow mid-batch); on a machine
    without SMT and on one whose sibling threads share their core's private caches."""
    (compiled, f1), (reference, f2) = _pair(TINY_SMT if smt else TINY_2NODE)
    assert _play(compiled, f1, seq, mlp) == _play(reference, f2, seq, mlp)
    assert compiled.state() == reference.state()


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 20000), scale=st.floats(-6, 6), seed=st.integers(0, 2**16))
def test_pairwise_sum_is_numpys_to_the_bit(n, scale, seed):
    a = np.random.default_rng(seed).random(n) * 10**scale
    assert pairwise_sum(a, 0, n) == float(a.sum())
    assert sequential_or_pairwise(a) == (float(a.sum()) if n >= PAIRWISE_MIN else sum(a.tolist(), 0.0))


@pytest.mark.parametrize(("between", "clock"), [(10, 11), (15, 16), (16, 18), (20, 22)])
def test_reuse_window_counts_accesses_in_program_order(between, clock):
    """A line touched again after fewer than REUSE_WINDOW fresh lines is hot (does not age the
    others), wherever the batch boundaries fall and whichever chunks the lines are in."""
    c, _ = new_cache()
    c.access(0, [P])
    c.access(0, [*range(CHUNK + 1, CHUNK + 1 + between), P])
    assert c.clock[0] == clock


def test_grouping_into_batches_changes_nothing():
    """The same accesses priced as one batch or one by one leave the same costs and state."""
    lines = [P, P + 1, P, *range(CHUNK, CHUNK + 30), P + 1, P, *range(5, 40), P]
    one, _ = new_cache()
    each, _ = new_cache()
    total_one = one.access(0, lines)
    total_each = sum(each.access(0, [ln]) for ln in lines)
    assert total_one == pytest.approx(total_each, abs=1e-9)
    assert one.state() == each.state()


# ---- SMT: siblings share their core's L1d and L2 (tests/data/tiny-smt.yaml: CPU c and c + 4) ------
def test_a_line_the_sibling_touched_is_a_private_cache_hit_not_a_transfer():
    c, _ = new_cache(TINY_SMT)
    c.access(0, [P])
    assert level_of(c, 4, [P]) == (0.0, L1)  # the sibling: the core's L1
    age(c, 4, L1_LINES)  # the sibling's other work ages the shared L1
    assert level_of(c, 0, [P]) == (pytest.approx(L2_COST), L2)
    assert level_of(c, 1, [P]) == (pytest.approx(XFER_SAME_LLC), XFER_LOCAL)  # another core


def test_a_metadata_line_the_sibling_wrote_is_a_hit():
    c, reg = new_cache(TINY_SMT)
    line = reg.alloc("m", 0)
    c.access(0, [line], write=True)
    assert level_of(c, 4, [line], write=False) == (0.0, L1)
    c.access(1, [line], write=True)  # another core takes it
    assert level_of(c, 4, [line], write=False) == (pytest.approx(XFER_SAME_LLC), XFER_LOCAL)


def test_siblings_age_one_core_clock_and_count_their_own_accesses():
    c, _ = new_cache(TINY_SMT)
    c.access(0, [P, P + 1])
    c.access(4, [P + 2])
    c.advance(4, 10)
    assert c.ncore == 4 and list(c.clock) == [13, 0, 0, 0]
    assert c.level_counts[0].sum() == 2 and c.level_counts[4].sum() == 1


def test_without_smt_the_core_is_the_cpu():
    c, _ = new_cache()
    assert c.ncore == c.ncpu == 4 and c.cpu_core == [0, 1, 2, 3]
