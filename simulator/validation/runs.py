"""Running one point the way the validation report needs it: a scenario with some fields changed,
and optionally the model changed (another cost table, kernel mechanisms, no memory-level
parallelism) to show what one mechanism buys."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import simpy
import yaml

from simulator.code import code_paths
from simulator.costs import Costs
from simulator.run import allocator_stats, point_context
from simulator.scenario import Overrides, Scenario, load_scenario
from simulator.system import build_machine
from simulator.workloads import WORKLOADS
from simulator.workloads.api import Point

ROOT = Path(__file__).resolve().parents[2]
XDP_SCENARIO = ROOT / "scenarios" / "xdp_redirect.yaml"
PAGE_BENCH_SCENARIO = ROOT / "scenarios" / "page_bench.yaml"
NFS_256K_SCENARIO = ROOT / "scenarios" / "nfs_256k_rw.yaml"


def scenario_with(
    path: Path, overrides: Overrides | None = None, top: dict[str, Any] | None = None, **params: Any
) -> Scenario:
    """Load a scenario with some of its workload section's fields (and top-level fields, e.g.
    `kernel`) replaced, without touching the file."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["hardware"] = str((path.parent / doc["hardware"]).resolve())
    for k, v in (top or {}).items():
        doc[k] = {**doc.get(k, {}), **v} if isinstance(v, dict) else v
    if params:
        doc[doc["workload"]] = {**(doc.get(doc["workload"]) or {}), **params}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / path.name
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        sc = load_scenario(tmp, overrides)
    return dataclasses.replace(sc, path=str(path))


@dataclass(frozen=True)
class ModelChange:
    """What a variant changes in the model itself (not in the scenario): the cost table (every
    kernel's terms; each point's kernel picks its own), kernel mechanisms on top of each point's
    preset, and whether accesses overlap (memory-level parallelism)."""

    costs: Costs | None = None
    kernel: dict[str, Any] = field(default_factory=dict)
    mlp: bool = True
    frontend: bool = True  # the instruction-side model (simulator/machine/frontend.py)
    hot_scale: float = 1.0  # code footprints: the hot fraction, scaled
    assumed_scale: float = 1.0  # code footprints: the sizes no trace gives, scaled


NO_CHANGE = ModelChange()


def run_with(sc: Scenario, point: Point, change: ModelChange = NO_CHANGE) -> dict[str, Any]:
    """run_point(), with the model changed as `change` says."""
    wall0 = time.perf_counter()
    env = simpy.Environment()
    kconfig = sc.model.kernel.to_config()
    if change.kernel:
        kconfig = kconfig.replace(**change.kernel)
    costs = change.costs if change.costs is not None else sc.costs
    m = build_machine(env, sc.hardware, kconfig, costs, code_paths(change.hot_scale, change.assumed_scale))
    m.cache.mlp = change.mlp
    if not change.frontend:
        for c in m.cpus:
            c.frontend = None
    ctx = point_context(m, sc, point)
    row: dict[str, Any] = {"strategy": point.strategy, "batch": point.batch, "cpus": point.cpus}
    row["kernel"] = kconfig.version
    row.update(WORKLOADS[sc.model.workload].run(ctx))
    m.check_invariants()
    row.update(allocator_stats(m, ctx))
    row["wall_s"] = time.perf_counter() - wall0
    return row


@dataclass(frozen=True)
class Job:
    scenario: Scenario
    point: Point
    change: ModelChange = NO_CHANGE


def _run_job(job: Job) -> dict[str, Any]:
    return run_with(job.scenario, job.point, job.change)


# told (points done, points in this batch) as run_jobs goes; main() shows it on stderr
ON_PROGRESS: Callable[[int, int], None] | None = None


def run_jobs(jobs: Sequence[Job], workers: int = 1) -> list[dict[str, Any]]:
    """Run independent points, in worker processes if `workers` > 1 (results in input order)."""
    rows: list[dict[str, Any]] = []
    if workers <= 1 or len(jobs) <= 1:
        for row in map(_run_job, jobs):
            rows.append(row)
            if ON_PROGRESS is not None:
                ON_PROGRESS(len(rows), len(jobs))
        return rows
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        for row in pool.map(_run_job, jobs):
            rows.append(row)
            if ON_PROGRESS is not None:
                ON_PROGRESS(len(rows), len(jobs))
    return rows
