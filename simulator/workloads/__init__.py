"""Workloads: each builds its SimPy processes on a Machine from a scenario and measures them.

A workload module in this package defines `WORKLOAD = Workload(...)` (simulator/workloads/api.py):
its parameter model (the scenario section named after it), a cross-check against the hardware,
what it derives from the calibration when a scenario is loaded, a run function returning the
workload's own figures, and the columns worth showing in the CLI's table. WORKLOADS is the
registry, by name.
"""

from __future__ import annotations

from simulator.workloads import nfs, page_bench, page_fault1, xdp_redirect
from simulator.workloads.api import Workload

WORKLOADS: dict[str, Workload] = {
    w.name: w for w in (page_bench.WORKLOAD, xdp_redirect.WORKLOAD, nfs.WORKLOAD, page_fault1.WORKLOAD)
}
