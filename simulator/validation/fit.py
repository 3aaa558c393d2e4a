"""The calibration steps: replay the profiled run, then fit the XDP-redirect outside cost.

The outside fit runs scenarios/xdp_redirect.yaml's `single` point on the profiled kernel (5.11)
and solves for the per-packet cost outside the page allocator and page_pool that makes it
reproduce the reference baseline, 3,677,958 pps. Everything the strategies change comes from the
model, so the bulk figures are predictions. Nothing here is tuned to 4,368,926.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.calibration import Fitted, load_calibration, outside_path, write_fitted, write_replayed
from simulator.hardware import Hardware
from simulator.scenario import Overrides
from simulator.validation.runs import NO_CHANGE, ROOT, XDP_SCENARIO, ModelChange, run_with, scenario_with
from simulator.workloads.api import Point

REFILL = 64
FIT_TOLERANCE = 1e-4
PROFILED_KERNEL = {"kernel": {"version": "5.11"}}  # KF §1: the baseline and its profile ran 5.11
BREAKDOWN = (
    "alloc_ns_per_packet",
    "free_ns_per_packet",
    "page_pool_ns_per_packet",
    "dma_ns_per_packet",
    "nic_ns_per_packet",
)


@dataclass
class Fit:
    """The outcome of fitting the outside cost for one model."""

    outside_ns: float
    target_pps: float
    pps: float
    row: dict[str, Any]
    iterations: list[dict[str, float]] = field(default_factory=list)

    @property
    def gap(self) -> float:
        return self.pps / self.target_pps - 1.0


def target_pps(hw: Hardware) -> float:
    """The reference baseline's packet rate (broadwell-xdp-baseline.yaml: 3,677,958 pps)."""
    return load_calibration(hw.calibration_path()).reference.packets_per_second


def model_ns(row: dict[str, Any]) -> float:
    """The model's own cost per packet: everything but the outside cost (saturated CPU)."""
    return float(row["ns_per_packet"] - row["outside_ns_per_packet"])


def fit_outside(
    scenario: Path = XDP_SCENARIO,
    change: ModelChange = NO_CHANGE,
    *,
    overrides: Overrides | None = None,
    top: dict[str, Any] | None = None,
    start: float | None = None,
    max_iter: int = 6,
) -> Fit:
    """Solve for the outside ns per packet that makes `single` reproduce the baseline.

    The model's own per-packet cost (allocator, page_pool, DMA, NIC lines) does not depend on
    the outside cost at saturation, so outside = 1e9 / target - model cost; the loop repeats
    until the rate is within FIT_TOLERANCE in case caches or timing shift with it. `top`
    defaults to the profiled kernel (5.11)."""
    top = PROFILED_KERNEL if top is None else top
    ov = overrides or Overrides(strategies=["single"], batches=[REFILL], cpus=[1])
    base = scenario_with(scenario, ov, top, outside_ns=start or 150.0)
    tgt = target_pps(base.hardware)
    point = Point("single", REFILL, 1)
    outside = start or 150.0
    iterations: list[dict[str, float]] = []
    row: dict[str, Any] = {}
    for _ in range(max_iter):
        sc = scenario_with(scenario, ov, top, outside_ns=outside)
        row = run_with(sc, point, change)
        iterations.append({"outside_ns": outside, "pps": float(row["pps"]), "model_ns": model_ns(row)})
        if abs(row["pps"] / tgt - 1.0) < FIT_TOLERANCE:
            break
        outside = 1e9 / tgt - model_ns(row)
        if outside <= 0:
            raise RuntimeError(
                f"the model alone costs {model_ns(row):.1f} ns per packet, more than the target"
            )
    return Fit(outside, tgt, float(row["pps"]), row, iterations)


def calibrate(scenario: Path = XDP_SCENARIO) -> Fitted:
    """The named calibration steps on the reference host: replay the profiled run (what its self
    times contain: simulator/replay.py) and write the `replayed:` section of the allocator's
    calibration file; then fit the outside cost and write the `fitted:` section."""
    from simulator.replay import replay

    ov = Overrides(strategies=["single"], batches=[REFILL], cpus=[1])
    sc = scenario_with(scenario, ov, PROFILED_KERNEL, outside_ns=150.0)
    hw = sc.hardware
    replayed, _ = replay(sc, Point("single", REFILL, 1))
    write_replayed(hw.calibration_path(), replayed)
    fit = fit_outside(scenario)
    r = fit.row
    fitted = Fitted(
        outside_ns_per_packet=round(fit.outside_ns, 4),
        host=Path(hw.path).stem,
        clock_ghz=hw.cpu.clock,
        record={
            "date": datetime.date.today().isoformat(),
            "command": "python -m simulator.validation --calibrate",
            "scenario": str(scenario.relative_to(ROOT)) if scenario.is_relative_to(ROOT) else str(scenario),
            "point": {"strategy": "single", "refill": REFILL, "cpus": 1},
            "kernel": "5.11",
            "warmup_ns": sc.model.warmup,
            "duration_ns": sc.model.duration,
            "target_pps": fit.target_pps,
            "target_ns_per_packet": round(1e9 / fit.target_pps, 4),
            "model_ns_per_packet": {
                k.removesuffix("_ns_per_packet"): round(float(r[k]), 4) for k in BREAKDOWN
            },
            "model_total_ns_per_packet": round(model_ns(r), 4),
            "reproduced_pps": round(fit.pps, 1),
            "iterations": [{k: round(v, 4) for k, v in it.items()} for it in fit.iterations],
        },
    )
    write_fitted(outside_path(hw), fitted)
    return fitted
