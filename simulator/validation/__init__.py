"""`pagesim validate-model`: the model next to the published measurements, as docs/validation.md.

    python -m simulator.validation              regenerate docs/validation.md
    python -m simulator.validation --calibrate  first replay the profiled run and refit the XDP-redirect
                                                outside cost (hardware/calibration/*.yaml)

One module per job: runs.py (running a point with the scenario or the model changed), fit.py
(the calibration steps), mechanisms.py (the model with a mechanism taken out, and the assumed
values halved and doubled), bench.py (bench_page_pool_simple), report/ (the report: its points,
then its sections).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from simulator.validation import runs
from simulator.validation.bench import bench_page_pool
from simulator.validation.fit import (
    PROFILED_KERNEL,
    REFILL,
    Fit,
    calibrate,
    fit_outside,
    model_ns,
    target_pps,
)
from simulator.validation.mechanisms import ALL_OUT, AS_MODELLED, ASSUMED, MECHANISMS, Variant
from simulator.validation.report import generate
from simulator.validation.report.predictions import Settings
from simulator.validation.runs import ROOT, XDP_SCENARIO, ModelChange, run_with, scenario_with

REPORT = ROOT / "docs" / "validation.md"

__all__ = [
    "ALL_OUT",
    "AS_MODELLED",
    "ASSUMED",
    "MECHANISMS",
    "PROFILED_KERNEL",
    "REFILL",
    "REPORT",
    "XDP_SCENARIO",
    "Fit",
    "ModelChange",
    "Settings",
    "Variant",
    "bench_page_pool",
    "calibrate",
    "fit_outside",
    "generate",
    "main",
    "model_ns",
    "run_with",
    "scenario_with",
    "target_pps",
]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pagesim validate-model", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--calibrate", action="store_true", help="replay the profile and refit the outside cost first"
    )
    ap.add_argument(
        "--out", type=Path, default=REPORT, help="where to write the report (default docs/validation.md)"
    )
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--quick", action="store_true", help="short durations and few points (for tests)")
    ap.add_argument("--no-report", action="store_true", help="with --calibrate: only recalibrate")
    args = ap.parse_args(list(argv) if argv is not None else None)
    runs.ON_PROGRESS = _say_progress
    if args.calibrate:
        fitted = calibrate()
        _say(
            f"fitted outside cost: {fitted.outside_ns_per_packet:.4f} ns per packet on {fitted.host} "
            f"(single reproduces {fitted.record['reproduced_pps']:,.0f} pps)"
        )
        if args.no_report:
            return 0
    s = Settings(workers=args.jobs, progress=_say)
    if args.quick:
        s = Settings(
            workers=args.jobs,
            refills=(16, 64),
            pb_batches=(1, 64),
            duration="300 us",
            warmup="200 us",
            variants=(AS_MODELLED, MECHANISMS[0]),
            assumed=ASSUMED[:1],
            kernels=("5.11", "5.13", "5.14"),
            bench_loops=2000,
            progress=_say,
        )
    text = generate(s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    _say(f"wrote {args.out}")
    return 0


def _say(message: str) -> None:
    """Notices and progress go to stderr, as every pagesim command's do (stdout: results only)."""
    print(f"pagesim: validate-model: {message}", file=sys.stderr, flush=True)


def _say_progress(done: int, total: int) -> None:
    if done == total or done % 10 == 0:
        _say(f"[{done}/{total}] points of this step")
