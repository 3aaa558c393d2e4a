"""Mirrors linux/net and the mlx5 driver: page_pool, the mlx5 RX queue, veth (XDP-redirect path).

- `costs.py`: the network path's cost table (derived from its calibration file by simulator/calibration.py);
- `page_pool.py`: struct page_pool, its alloc.cache and ptr_ring, the slow-path refill;
- `mlx5.py`: the mlx5e RX queue (striding RQ), its page cache, NAPI poll, WQE refill;
- `veth.py`: the redirect target: devmap bulking, veth's NAPI, XDP_PASS -> SKB -> page freed;
- `tally.py`: per-CPU counters of one run (packets, time by component, IRQ latency).
"""
