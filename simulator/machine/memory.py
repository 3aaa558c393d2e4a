"""A NUMA node's memory controller: streamed stores priced by the bandwidth the node's CPUs share,
and DRAM latency that rises with the node's load.

Model, one fluid FIFO channel per node (`machine.node0.memory`):
- a streamed store of N bytes (clear_page's `rep stosb`) is N bytes of DRAM traffic, or 2N when
  stores read their line for ownership first (`bandwidth.rfo`: the line comes in, then goes back);
- the channel serves traffic in arrival order at the node's bandwidth (`bandwidth.node`): a
  stream arriving at t starts once the streams before it are through and holds the channel for
  traffic / bandwidth;
- one CPU never streams faster than alone (`bandwidth.thread`): the store takes
  max(the channel's finish - t, N / thread) of the CPU's time, which is busy (run) time;
- loaded latency (when the hardware gives a curve): the node's traffic over the last
  `bandwidth.load_window` (1 us, assumed), as a fraction of its bandwidth, is read off the curve
  at the same fraction of the curve's peak, and every DRAM access to the node's memory costs
  curve(x) - curve(first point) more than idle. The extra is set at each streamed store (it stays
  until the next one).

Only streamed stores load the channel: the model's other DRAM accesses (a struct page, a line of
kernel metadata) are single lines, priced by latency alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING

import simpy

from simulator.hardware import BandwidthSpec

if TYPE_CHECKING:
    from simulator.machine.cache import CacheModel
    from simulator.machine.cpu import CPU

# `bandwidth.load_window`'s default (assumed; the hardware schema holds it and its reason)
LOAD_WINDOW_NS: float = BandwidthSpec.model_fields["load_window"].default


class MemoryController:
    """One node's memory: its channel's FIFO queue, its recent traffic and the latency it adds."""

    def __init__(self, node: int, spec: BandwidthSpec, line: int, cache: CacheModel) -> None:
        self.node = node
        self.scope = f"machine.node{node}.memory"
        self.bandwidth = spec.node  # bytes per ns
        self.thread = spec.thread
        self.traffic_per_byte = 2 if spec.rfo else 1
        self.line = line
        self.cache = cache
        curve = spec.loaded_latency or []
        self._curve = [(p.bandwidth, p.latency) for p in curve]
        self.load_window = spec.load_window
        self._busy_until = 0.0
        self._recent: deque[tuple[float, int]] = deque()  # (time, traffic) of recent streams
        self._recent_bytes = 0
        self.extra_ns = 0.0  # what the load adds to a DRAM access here now
        self.reset_stats()

    def reset_stats(self) -> None:
        """Zero the statistics (not the queue): the end of warm-up."""
        self.streams = 0
        self.bytes = 0  # stored
        self.queued_ns = 0.0  # time streams spent beyond one CPU's own rate (waiting for the channel)

    def stream_write(self, cpu: CPU, nbytes: int) -> Generator[simpy.Event, None, float]:
        """`cpu` streams `nbytes` of stores into this node's memory (clear_page): orders with the
        other CPUs, spends the time on the CPU, ages its caches by the lines written, and returns
        the time (ns)."""
        if cpu.pending:
            yield cpu.sync()
        t = cpu.now()
        traffic = nbytes * self.traffic_per_byte
        finish = max(t, self._busy_until) + traffic / self.bandwidth
        self._busy_until = finish
        alone = nbytes / self.thread
        ns = max(finish - t, alone)
        cpu.stall(ns)
        self.cache.advance(cpu.id, -(-nbytes // self.line))
        self.streams += 1
        self.bytes += nbytes
        self.queued_ns += ns - alone
        if self._curve:
            self._load(t, traffic)
        return ns

    def _load(self, t: float, traffic: int) -> None:
        """The node's traffic over the last `load_window` ns sets the latency its DRAM adds."""
        recent = self._recent
        recent.append((t, traffic))
        self._recent_bytes += traffic
        window = self.load_window
        while recent[0][0] <= t - window:
            self._recent_bytes -= recent.popleft()[1]
        share = min(self._recent_bytes / window / self.bandwidth, 1.0)
        extra = loaded_latency(self._curve, share) - self._curve[0][1]
        if extra != self.extra_ns:
            self.extra_ns = extra
            self.cache.set_dram_load(self.node, extra)


def loaded_latency(curve: list[tuple[float, float]], share: float) -> float:
    """The curve's latency at `share` of its peak bandwidth (linear between points; its first
    point's latency below it)."""
    x = share * curve[-1][0]
    if x <= curve[0][0]:
        return curve[0][1]
    for (b0, l0), (b1, l1) in zip(curve, curve[1:]):
        if x <= b1:
            return l0 + (l1 - l0) * (x - b0) / (b1 - b0)
    return curve[-1][1]
