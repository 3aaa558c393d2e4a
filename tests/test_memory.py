"""The memory controller (simulator/machine/memory.py): streamed stores share their node's channel
in arrival order, never run faster than one CPU alone, age the caches, and load the node's DRAM
latency along the hardware's loaded-latency curve.

Machine: tests/data/tiny-2node.yaml: node bandwidth 40 GB/s (40 B/ns), one CPU 10 GB/s, stores
with RFO (a stored byte is two bytes of traffic); loaded latency 80 ns at 1 GB/s, 90 at 10, 120 at
20 GB/s (the curve's peak). CPUs 0-1 on node 0, 2-3 on node 1 (tiny-smt.yaml: the same, with two
threads per core: 0, 1, 4, 5 on node 0).
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
import simpy
from conftest import TINY_1NODE, TINY_SMT, new_machine

from simulator.machine.memory import LOAD_WINDOW_NS, loaded_latency

PAGE = 4096
ALONE = PAGE / 10.0  # 409.6 ns: one CPU's own rate
CHANNEL = 2 * PAGE / 40.0  # 204.8 ns of the node's channel per page (RFO: read, then write back)
L1_NS = 4 / 3.6


def _streams(m, cpus: list[int], at: float = 0.0) -> list[float]:
    """Each CPU streams one page at `at` (after spending `at` of work); their times, in order."""
    out: dict[int, float] = {}

    def one(c: int) -> Generator[simpy.Event, None, None]:
        cpu = m.cpus[c]
        cpu.spend(at)
        out[c] = yield from m.memory[cpu.node].stream_write(cpu, PAGE)
        yield cpu.sync()

    for c in cpus:
        m.env.process(one(c))
    m.env.run()
    return [out[c] for c in cpus]


def test_one_cpu_streams_at_its_own_rate():
    m = new_machine()
    assert _streams(m, [0]) == [ALONE]
    assert m.env.now == ALONE
    assert m.cpus[0].busy_ns == ALONE and m.cpus[0].spin_ns == 0.0
    mc = m.memory[0]
    assert (mc.streams, mc.bytes, mc.queued_ns) == (1, PAGE, 0.0)
    assert m.cpus[0].memory is mc and mc.scope == "machine.node0.memory"


def test_cpus_of_a_node_share_its_channel_in_arrival_order():
    """Two pages fit in one CPU's time (2 x 204.8 = 409.6 ns of channel); a third waits for the
    channel (tiny-smt: node 0 has CPUs 0, 1, 4, 5)."""
    m = new_machine(TINY_SMT)
    assert _streams(m, [0, 1, 4]) == [ALONE, ALONE, pytest.approx(3 * CHANNEL)]
    assert m.memory[0].queued_ns == pytest.approx(3 * CHANNEL - ALONE)
    assert m.cpus[4].busy_ns == pytest.approx(3 * CHANNEL)  # waiting for the channel is busy time


def test_nodes_have_their_own_channels():
    m = new_machine()
    assert _streams(m, [0, 1, 2, 3]) == [ALONE, ALONE, ALONE, ALONE]


def test_a_stream_ages_the_cpus_caches_by_the_lines_written():
    m = new_machine()
    before = int(m.cache.clock[0]), int(m.cache.llc_clock[0])
    _streams(m, [0])
    assert (int(m.cache.clock[0]), int(m.cache.llc_clock[0])) == (before[0] + 64, before[1] + 64)


def test_a_loaded_node_answers_slower():
    """One page in the window: 8192 bytes over 1 us at 40 B/ns is 20.5 % of the node's bandwidth,
    read off the curve at 20.5 % of its 20 GB/s peak (4.096 GB/s): 80 + 10 x 3.096 / 9 ns."""
    m = new_machine()
    idle = m.cache.dram[0][0]
    _streams(m, [0])
    extra = 10 * (2 * PAGE / LOAD_WINDOW_NS / 40 * 20 - 1) / 9
    assert m.memory[0].extra_ns == pytest.approx(extra)
    assert m.cache.dram[0][0] == pytest.approx(idle + extra) and m.cache.dram[1][0] > m.cache.dram[1][1]
    assert m.cache.dram[0][1] == 130 - L1_NS and m.memory[1].extra_ns == 0.0
    assert m.cache.access(2, [100]) == pytest.approx(130 - L1_NS + extra)  # a node-0 page, remote
    # a window later the next stream finds only itself
    _streams(m, [0], at=LOAD_WINDOW_NS)
    assert m.memory[0].extra_ns == pytest.approx(extra)


def test_the_load_window_is_the_hardwares():
    """`memory.bandwidth.load_window` (assumed, 1 us by default): the same page over half the
    window is twice the share of the node's bandwidth."""
    from conftest import TINY_2NODE, costs, hardware

    from simulator.code import code_paths
    from simulator.kernels import KernelConfig
    from simulator.system import build_machine

    hw = hardware(TINY_2NODE)
    bw = hw.memory.bandwidth.model_copy(update={"load_window": LOAD_WINDOW_NS / 2})
    hw = hw.model_copy(update={"memory": hw.memory.model_copy(update={"bandwidth": bw})})
    m = build_machine(simpy.Environment(), hw, KernelConfig(), costs(TINY_2NODE), code_paths())
    assert m.memory[0].load_window == LOAD_WINDOW_NS / 2
    _streams(m, [0])
    extra = 10 * (2 * PAGE / (LOAD_WINDOW_NS / 2) / 40 * 20 - 1) / 9
    assert m.memory[0].extra_ns == pytest.approx(extra)


def test_the_curve_is_read_at_a_share_of_its_peak():
    curve = [(1.0, 80.0), (10.0, 90.0), (20.0, 120.0)]
    assert loaded_latency(curve, 0.0) == 80.0
    assert loaded_latency(curve, 0.5) == 90.0
    assert loaded_latency(curve, 0.75) == 105.0
    assert loaded_latency(curve, 1.0) == 120.0


def test_without_a_curve_latency_stays_idle():
    m = new_machine(TINY_1NODE)
    idle = [row[:] for row in m.cache.dram]
    _streams(m, [0, 1])
    assert m.cache.dram == idle and m.memory[0].extra_ns == 0.0
