"""Per-CPU counters of the XDP-redirect path, reset at the end of warm-up.

Times are split by who spends them, so a row can say where a packet's nanoseconds go:
`alloc_ns` (page allocator, allocation side, including the bulk API's list/array handling),
`free_ns` (page allocator, free side: put_page -> free_unref_page), `pool_ns` (page_pool and
mlx5's page cache, without the allocator time they call), `dma_ns`, `nic_ns` (reading the lines
the NIC wrote) and `outside_ns` (the fitted per-packet work of everything else).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.stats import Histogram


@dataclass
class NetTally:
    """One CPU's counters (`machine.cpu3` running one or more RX queues and a veth queue)."""

    t_first: float | None = None  # start of the first measured poll
    t_last: float = 0.0  # end of the last measured step
    polls: int = 0
    packets: int = 0  # packets taken off the RX completion queues
    idle_ns: float = 0.0
    alloc_ns: float = 0.0
    free_ns: float = 0.0
    pool_ns: float = 0.0
    dma_ns: float = 0.0
    nic_ns: float = 0.0
    outside_ns: float = 0.0
    frontend_ns: float = 0.0  # instruction fetch, decode and BTB stalls (simulator/machine/frontend.py)
    irqs: int = 0
    irq_latency: Histogram = field(default_factory=Histogram)

    def reset(self) -> None:
        """Zero every counter (the end of warm-up)."""
        fresh = NetTally()
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))
