"""docs/validation.md: the model next to the published measurements, what each mechanism buys,
the kernel versions, and the values no source gives.

generate() runs the points (predictions.py) and the page_pool bench, then joins the sections, one
module per group: measured.py (the header, 1. side by side, 5. the bulk_list gap, the calibration
record), variants.py (2. mechanisms, 6. assumed values), kernels.py (3.), xdp.py (4., 7., 8., 9.);
markdown.py holds the table and paragraph helpers they share.
"""

from __future__ import annotations

import time

from simulator.calibration import Calibration, net_costs
from simulator.validation.bench import TESTS, bench_page_pool
from simulator.validation.report.kernels import render_kernels
from simulator.validation.report.measured import render_gap, render_header, render_record, render_side_by_side
from simulator.validation.report.predictions import (
    BULK_KERNEL,
    Settings,
    predict,
    run_kernels,
    run_refill_curve,
)
from simulator.validation.report.variants import render_assumed, render_mechanisms
from simulator.validation.report.xdp import render_frontend, render_left_out, render_packet, render_refill
from simulator.validation.runs import XDP_SCENARIO, scenario_with


def generate(s: Settings) -> str:
    """Run every comparison and return the report's Markdown."""
    wall0 = time.perf_counter()
    base = scenario_with(XDP_SCENARIO, s.overrides(), s.top(BULK_KERNEL))
    hw = base.hardware
    cal = Calibration(hw)
    fitted = cal.network.fitted
    assert fitted is not None
    nc = net_costs(cal)

    variants = predict(hw, s.variants, s, fitted.outside_ns_per_packet)
    assumed = predict(hw, s.assumed, s, fitted.outside_ns_per_packet)
    main = variants[0]
    kernels = run_kernels(s)
    curve = run_refill_curve(s)
    s.progress("bench_page_pool_simple")
    bench = {k: bench_page_pool(hw, k, s.bench_loops) for k in TESTS}
    parts = [
        render_header(hw, nc.outside, s, time.perf_counter() - wall0),
        render_side_by_side(hw, main, bench, cal.network.inputs.page_pool_bench_cycles),
        render_mechanisms(variants, s),
        render_kernels(kernels, s),
        render_packet(main),
        render_gap(hw, main),
        render_assumed(main, assumed),
        render_refill(main, curve, s),
        render_frontend(main, curve, s),
        render_left_out(),
        render_record(cal.profile, fitted),
    ]
    return "\n".join(parts)
