"""Calibration step 1: replay the profiled run, to learn what its self times already contain.

A perf profile's self time of a function includes the cache misses the function took in the
profiled run. The model prices every line it touches on top of the work derived from the
profile, so without care those misses would be paid twice. This step replays the profiled run
in the model (scenarios/xdp_redirect.yaml's `single` point at refill 64 on the reference host,
kernel 5.11, with every call through the per-call functions) on a CPU that attributes each
cache-line cost to the profiled function it falls in, as perf does (functions the profile does
not name are inlined into the one that calls them: rmqueue_pcplist, __rmqueue_pcplist and
rmqueue_bulk into rmqueue). simulator/calibration.py subtracts the result, per packet, from each
function's self time. The replay also checks a premise of the list-check counts: in the
profiled run's steady state the pcp list is never refilled or drained (one allocation and one
free per packet on one CPU), so the allocator's own checks are one list_del and one list_add
per packet.

`python -m simulator.validation --calibrate` runs this step, writes its result into the
`replayed:` section of the calibration file (calibration.write_replayed), then fits the XDP
outside cost. The replay does
not depend on the work terms (the cache model counts lines, not time), so it needs no iteration.
"""

from __future__ import annotations

import datetime
import sys
from collections import defaultdict
from collections.abc import Generator
from typing import Any

import simpy

from simulator.calibration import ALLOCATOR_FUNCTIONS, Replayed
from simulator.machine.cpu import CPU
from simulator.run import point_context
from simulator.scenario import Scenario
from simulator.system import build_machine
from simulator.workloads import WORKLOADS
from simulator.workloads.api import Point

# model function -> the profiled symbol its lines count against (inlined callees count against
# their caller, as in the profile)
PROFILED_OF = {
    "__alloc_pages_nodemask": "__alloc_pages_nodemask",
    "prepare_alloc_pages": "__alloc_pages_nodemask",
    "get_page_from_freelist": "get_page_from_freelist",
    "rmqueue": "rmqueue",
    "rmqueue_pcplist": "rmqueue",
    "__rmqueue_pcplist": "rmqueue",
    "_pcplist_take": "rmqueue",
    "rmqueue_bulk": "rmqueue",
    "__count_zid_vm_events_and_zone_statistics": "rmqueue",
    "prep_new_page": "prep_new_page",
    "free_unref_page": "free_unref_page",
    "free_unref_page_prepare": "free_unref_page_prepare",
    "free_pcp_prepare": "free_pcp_prepare",
    "free_unref_page_commit": "free_unref_page_commit",
}
assert set(PROFILED_OF.values()) <= set(ALLOCATOR_FUNCTIONS)


class ProfilingCPU(CPU):
    """A CPU that adds each cache-line cost it is charged to the profiled function on the call
    stack (the innermost one PROFILED_OF names): what perf's self time would show."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stalls: dict[str, float] = defaultdict(float)
        self.fetch_stalls: dict[str, float] = defaultdict(float)

    def observe_frontend(self) -> None:
        """Put each code region's front-end stall under the profiled function it is."""
        assert self.frontend is not None

        def seen(region: str, ns: float) -> None:
            name = PROFILED_OF.get(region)
            if name is not None:
                self.fetch_stalls[name] += ns

        self.frontend.observer = seen

    def _attribute(self, ns: float) -> None:
        f = sys._getframe(2)
        while f is not None:
            name = PROFILED_OF.get(f.f_code.co_name)
            if name is not None:
                self.stalls[name] += ns
                return
            f = f.f_back

    def touch(self, lines: Any, write: bool = True) -> float:
        t = super().touch(lines, write)
        self._attribute(t)
        return t

    def touch_overlapped(self, lines: list[int]) -> float:
        t = super().touch_overlapped(lines)
        self._attribute(t)
        return t


def replay(sc: Scenario, point: Point) -> tuple[Replayed, dict[str, Any]]:
    """Replay `point` of `sc` (the profiled configuration); returns the stalls per packet of each
    profiled function and the run's row figures."""
    env = simpy.Environment()
    m = build_machine(
        env, sc.hardware, sc.model.kernel.to_config(), sc.costs, sc.code, cpu_class=ProfilingCPU
    )
    m.tapes = False
    ctx = point_context(m, sc, point)
    cpu = m.cpus[0]
    assert isinstance(cpu, ProfilingCPU)
    cpu.observe_frontend()
    at_warmup: dict[str, float] = {}
    fetch_at_warmup: dict[str, float] = {}

    def snapshot() -> Generator[simpy.Event, None, None]:
        yield env.timeout(sc.model.warmup)
        at_warmup.update(cpu.stalls)
        fetch_at_warmup.update(cpu.fetch_stalls)

    env.process(snapshot())
    figures = WORKLOADS[sc.model.workload].run(ctx)
    m.check_invariants()
    packets = int(figures["packets"])
    stalls = {f: (cpu.stalls.get(f, 0.0) - at_warmup.get(f, 0.0)) / packets for f in ALLOCATOR_FUNCTIONS}
    fetch = {
        f: (cpu.fetch_stalls.get(f, 0.0) - fetch_at_warmup.get(f, 0.0)) / packets for f in ALLOCATOR_FUNCTIONS
    }
    events = _pcp_events(m)  # the workload's measurement window zeroed them at the warm-up
    record = {
        "date": datetime.date.today().isoformat(),
        "command": "python -m simulator.validation --calibrate",
        "point": {"strategy": point.strategy, "refill": point.batch, "cpus": point.cpus},
        "kernel": sc.model.kernel.version,
        "warmup_ns": sc.model.warmup,
        "duration_ns": sc.model.duration,
        "packets": packets,
        "pcp_refills_and_drains": events,
    }
    lists = {"__list_add_valid": 1.0, "__list_del_entry_valid": 1.0} if events == 0 else {}
    replayed = Replayed(
        stalls_ns_per_packet=stalls, frontend_ns_per_packet=fetch, list_ops_per_packet=lists, record=record
    )
    return replayed, figures


def _pcp_events(m: Any) -> int:
    return sum(p.refills + p.drains for z in m.zones for p in z.pcp)
