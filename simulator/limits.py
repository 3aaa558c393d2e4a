"""Bounds on everything in a scenario that sets the amount of simulated work.

A scenario's schema says what a value means; these say how much of it a run can take. Each bound
lies far beyond what a kernel performance engineer would set (the reason is beside it, and in
docs/configuration.md), and close enough that no accepted scenario hangs: `pagesim check` and
`pagesim run` refuse a value outside its bound with the bound and its unit.

The workloads' own sections are bounded here, by dotted path, rather than in each workload's
parameter model: one table to read, document and test (tests/test_bad_inputs.py checks that
every number of every workload section has a bound or is listed in UNBOUNDED with the reason).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from simulator.errors import Problem
from simulator.units import format_bytes

SECOND_NS = 1e9
MAX_SIM_NS = 60 * SECOND_NS  # duration, warm-up and every other simulated time span
MAX_POINTS = 100_000  # points (x replications) in one scenario; the default sweep has 204
MAX_SEED = 2**63 - 1  # numpy's SeedSequence takes any size; rows.parquet's seed column is int64
MAX_NAME_CHARS = 100  # a name is a directory name and a column value
MAX_TEXT_CHARS = 2000  # a description is copied into every results directory


@dataclass(frozen=True)
class Bound:
    """`path` (a dotted path into the scenario) must lie in [low, high], in `unit`:
    "ns" (a duration, shown in s/ms/us), "B" (a size) or a unit name shown as is."""

    path: str
    low: float | None
    high: float
    unit: str
    why: str

    def describe(self) -> str:
        hi = show(self.high, self.unit)
        if self.low is None:
            return f"at most {hi}"
        return f"from {show(self.low, self.unit)} to {hi}"


def show(value: float, unit: str) -> str:
    """60e9, "ns" -> "60 s"; 1 << 20, "B" -> "1 MiB"; 1e7, "RPC/s" -> "10,000,000 RPC/s"."""
    if unit == "ns":
        for name, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
            if value >= scale:
                return f"{value / scale:g} {name}"
        return f"{value:g} ns"
    if unit == "B":
        return format_bytes(int(value))
    number = f"{int(value):,}" if value == int(value) else f"{value:g}"
    return f"{number} {unit}"


# The workloads' sections. Durations are in ns, sizes in bytes (as the schemas hold them).
WORK_BOUNDS = (
    # xdp_redirect
    Bound(
        "xdp_redirect.offered_load",
        None,
        1e9,
        "packets/s",
        "above a 400 GbE line at minimum-size frames (595 Mpps); each packet is simulated",
    ),
    Bound(
        "xdp_redirect.free_pages_over_low",
        0,
        2**40,
        "pages",
        "4 PiB of 4 KiB pages, the largest node a hardware file may describe",
    ),
    Bound(
        "xdp_redirect.outside_ns",
        None,
        1e6,
        "ns",
        "1 ms per packet, about 5,800 times the fitted outside cost (172 ns)",
    ),
    # nfs
    Bound("nfs.threads_per_node", None, 8192, "threads", "NFSD_MAXSERVS, the kernel's own limit"),
    Bound("nfs.max_payload", 4096, 16 << 20, "B", "16 times 5.12's RPCSVC_MAXPAYLOAD (1 MiB)"),
    Bound(
        "nfs.clients.rate",
        None,
        1e7,
        "RPC/s",
        "ten times what the fastest published NFS servers reach; each RPC is simulated",
    ),
    Bound(
        "nfs.clients.outstanding",
        None,
        65536,
        "RPCs",
        "RPC_MAX_SLOT_TABLE_LIMIT: one client transport never has more in flight",
    ),
    Bound("nfs.clients.think", None, MAX_SIM_NS, "ns", "the longest simulated run"),
    Bound("nfs.service.rpc", None, SECOND_NS, "ns", "1 s per RPC, 125,000 times the assumed 8 us"),
    Bound("nfs.service.per_wire_packet", None, 1e6, "ns", "1 ms per TCP segment"),
    Bound("nfs.service.mss", 64, 65536, "B", "a TCP segment: 64 B to the 64 KiB an IP packet can hold"),
    Bound("nfs.service.header", None, 65536, "B", "an RPC header beyond 64 KiB is not a header"),
    Bound(
        "nfs.service.rpc_lines",
        None,
        65536,
        "cache lines",
        "4 MiB of cache lines per RPC (each is priced by the cache model)",
    ),
    Bound("nfs.reply_free.delay", None, MAX_SIM_NS, "ns", "the longest simulated run"),
    Bound(
        "nfs.background.rate",
        None,
        1e7,
        "pages/s",
        "40 GB/s of page allocations, beyond any real allocator; each page is simulated",
    ),
    Bound("nfs.background.burst", None, 65536, "pages", "256 MiB in one burst"),
    Bound("nfs.background.hold", None, MAX_SIM_NS, "ns", "the longest simulated run"),
    Bound("nfs.memory.free_wmark", None, 1000, "x the watermark scale", "far above the high watermark (2)"),
    Bound("nfs.memory.free", None, 2**52, "B", "4 PiB, the largest node a hardware file may describe"),
    Bound(
        "nfs.memory.sample",
        10e3,
        MAX_SIM_NS,
        "ns",
        "sampling the free-page level more often than every 10 us adds events, not information",
    ),
    Bound("nfs.memory.reclaim_cost", None, 1e6, "ns", "1 ms to reclaim one page"),
    # page_fault1
    Bound(
        "page_fault1.mapping",
        4096,
        1 << 30,
        "B",
        "one task's window waits for an munmap: 1 GiB is 262,144 faults (about 0.4 s simulated)",
    ),
    Bound(
        "nfs.sleep",
        1e6,
        MAX_SIM_NS,
        "ns",
        "at least one jiffy (HZ=1000), as schedule_timeout sleeps: a shorter sleep retries without end",
    ),
)

# Numbers in a workload section that set no amount of work, with the reason (the test that every
# number has a bound reads this).
UNBOUNDED = {
    "xdp_redirect.queues_per_cpu": "bounded by its schema (1 to 16)",
    "xdp_redirect.nic_node": "checked against the hardware's nodes",
    "xdp_redirect.pool_node": "checked against the hardware's nodes",
    "xdp_redirect.ring_size": "bounded by its schema (64 to 8192)",
    "xdp_redirect.napi_budget": "bounded by its schema (1 to 256)",
    "xdp_redirect.recycle": "a share, 0 to 1",
    "nfs.nodes": "checked against the hardware's nodes",
    "nfs.mix": "each entry's pages are checked against the thread's rq_pages",
    "nfs.mix.weight": "a relative share of the mix",
    "nfs.mix.payload": "checked, as rq_pages entries, against the thread's rq_pages (max_payload)",
    "nfs.mix.pages": "checked against the thread's rq_pages (max_payload)",
    "nfs.background.node": "checked against the hardware's nodes",
    "nfs.background.cpu": "checked against the hardware's CPUs",
    "nfs.memory.nodes": "checked against the hardware's nodes",
    "page_fault1.path_scale": "a multiplier of the fault path's counted costs (schema: above 0, at most 100)",
}


def _get(obj: Any, parts: list[str]) -> Any:
    for part in parts:
        if obj is None:
            return None
        obj = getattr(obj, part, None)
    return obj


def _raw(section: Mapping[str, Any], parts: list[str]) -> tuple[bool, Any]:
    node: Any = section
    for part in parts:
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def work_problems(workload: str, params: BaseModel, section: Mapping[str, Any], file: str) -> list[Problem]:
    """A Problem for every value of a workload's section outside its bound in WORK_BOUNDS."""
    problems = []
    for b in WORK_BOUNDS:
        top, *parts = b.path.split(".")
        if top != workload:
            continue
        v = _get(params, parts)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue  # not a number here ('saturate', None: the default) or refused already
        if v > b.high or (b.low is not None and v < b.low):
            given, raw = _raw(section, parts)
            msg = f"{b.describe()} (a bound on simulated work: see docs/configuration.md)"
            problems.append(Problem(file, b.path, msg, raw if given else v, True))
    return problems
