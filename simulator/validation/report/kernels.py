"""The report's section 3: the kernel versions, as shipped."""

from __future__ import annotations

from simulator.validation.fit import REFILL
from simulator.validation.report.markdown import fmt_pps, para, pct, row
from simulator.validation.report.predictions import STRATEGIES4, KernelRows, Settings


def render_kernels(kernels: KernelRows, s: Settings) -> str:
    base = kernels[("5.11", "xdp_redirect", "single", REFILL)]["pps"]
    out = [
        "## 3. Kernel versions",
        "",
        para(
            "The presets (simulator/kernels.yaml, `--kernel`) change mechanisms, not numbers: 5.11 has",
            "no bulk allocator and the popf toggle; 5.12 (the series) and 5.13 (as merged) share the",
            "paths modelled here; 5.14 moves the counters out of the IRQ-off windows and batches the",
            "bulk allocator's (`nr_account`), keeps NUMA counters without threshold or calls, halves",
            "`free_factor` per allocation, and sizes `pcp->high` with `zone_highsize()`.",
            "XDP gains are over 5.11 `single` (the calibrated baseline).",
        ),
        "",
        row(
            "kernel",
            *(f"XDP `{st}` pps (gain)" for st in STRATEGIES4),
            *(f"page_bench `{st}` b1 / b64 cycles" for st in STRATEGIES4),
            "NFS 256K svc_alloc_arg us single / list / array / pagevec",
        ),
        "|---|" + "---:|" * 9,
    ]
    for k in s.kernels:
        cells = []
        for st in STRATEGIES4:
            r = kernels.get((k, "xdp_redirect", st, REFILL))
            cells.append("-" if r is None else f"{fmt_pps(r['pps'])} ({pct(r['pps'] / base - 1)})")
        for st in STRATEGIES4:
            r1 = kernels.get((k, "page_bench", st, 1))
            r64 = kernels.get((k, "page_bench", st, 64))
            cells.append("-" if r1 is None else f"{r1['cycles_per_page']:.1f} / {r64['cycles_per_page']:.1f}")
        nfs = [kernels.get((k, "nfs", st, 1)) for st in STRATEGIES4]
        cells.append(" / ".join("-" if r is None else f"{r['svc_alloc_arg_us_mean']:.2f}" for r in nfs))
        out.append(row(k, *cells))
    if ("5.13", "page_bench", "bulk_array", 64) in kernels and (
        "5.14",
        "page_bench",
        "bulk_array",
        64,
    ) in kernels:
        a13 = kernels[("5.13", "page_bench", "bulk_array", 64)]["cycles_per_page"]
        a14 = kernels[("5.14", "page_bench", "bulk_array", 64)]["cycles_per_page"]
        out += [
            "",
            para(
                f"The array at batch 64: {a13:.1f} cycles per page on 5.13, {a14:.1f} on 5.14",
                f"({pct(a14 / a13 - 1)}): the per-page statistics of 5.13's loop become one batched",
                "update after the window, and the NUMA counters lose their calls.",
            ),
        ]
    out.append("")
    return "\n".join(out)
