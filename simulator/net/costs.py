"""Cost terms of the network path around the page allocator (the XDP-redirect workload).

Three kinds, as for the allocator (docs/model.md):
- documented primitives (spin lock, atomic, call) come from the hardware file (machine.costs);
- documented network-path work (DMA map/unmap from the reference perf profile, page_pool's fast
  path from bench_page_pool_simple), from the `inputs:` of
  hardware/calibration/xdp-redirect-outside.yaml;
- everything else a packet costs outside the page allocator and page_pool is ONE number per
  packet, the fitted `outside` cost (the same file's `fitted:` section).

simulator/calibration.py reads that file and derives this table (net_costs()); the model only
charges it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetCosts:
    """Every network-path cost the XDP-redirect model charges, in ns on the simulated host."""

    outside: float  # per packet: the fitted work outside the allocator and page_pool
    dma_map: float  # per page: dma_map_page_attrs (mlx5e_page_alloc_pool)
    dma_unmap: float  # per page: dma_unmap_page_attrs (mlx5e_page_dma_unmap at XDP_REDIRECT)
    pp_alloc: float  # per call: page_pool_alloc_pages' fast path (call, count test, pop)
    pp_recycle: float  # per page: __page_pool_put_page's checks and the alloc.cache push
    outside_source: str  # where `outside` came from (the fit, or a scenario override)
