"""The report's XDP-redirect sections: 4. where a packet's time goes, 7. refill size, 8. the front
end per strategy and refill, and 9. what the comparison leaves out."""

from __future__ import annotations

from typing import Any

from simulator.validation.report.markdown import fmt_pps, para, pct, row
from simulator.validation.report.predictions import BULK, BULK_KERNEL, STRATEGIES4, Predictions, Settings


def render_packet(p: Predictions) -> str:
    out = [
        "## 4. Where a packet's time goes (refill 64, one CPU, ns per packet)",
        "",
        row(
            "strategy",
            "kernel",
            "pps",
            "outside (fitted)",
            "NIC lines",
            "DMA map+unmap",
            "page_pool",
            "allocator: alloc",
            "allocator: free",
            "front end",
            "total",
            "IRQ-off max ns",
            "allocator calls per packet",
        ),
        "|---|---|" + "---:|" * 11,
    ]
    rows = [("single", "5.11", p.fit.row), *((st, BULK_KERNEL, p.xdp[st]) for st in STRATEGIES4)]
    for st, k, r in rows:
        out.append(
            row(
                f"`{st}`",
                k,
                fmt_pps(r["pps"]),
                *(
                    f"{r[x]:.1f}"
                    for x in (
                        "outside_ns_per_packet",
                        "nic_ns_per_packet",
                        "dma_ns_per_packet",
                        "page_pool_ns_per_packet",
                        "alloc_ns_per_packet",
                        "free_ns_per_packet",
                        "frontend_ns_per_packet",
                        "ns_per_packet",
                    )
                ),
                f"{r['irq_off_max_ns']:.0f}",
                f"{r['allocator_calls_per_packet']:.3f}",
            )
        )
    out += [
        "",
        para(
            "The free side is one `page_frag_free` -> `free_unref_page` per packet for every strategy;",
            f"it is cheaper on {BULK_KERNEL} than on 5.11 only by the IRQ toggle. The strategies differ",
            "in the allocation side and page_pool.",
        ),
        "",
    ]
    return "\n".join(out)


def render_refill(p: Predictions, curve: list[dict[str, Any]], s: Settings) -> str:
    sp = p.fit.pps
    out = [
        f"## 7. Refill size ({BULK_KERNEL})",
        "",
        row(
            "refill",
            *(f"`{st}` pps (gain)" for st in BULK),
            *(f"`{st}` IRQ-off max ns" for st in BULK),
            *(f"`{st}` alloc ns/packet" for st in BULK),
        ),
        "|---:|" + "---:|" * (3 * len(BULK)),
    ]
    by = {(r["strategy"], r["batch"]): r for r in curve}
    for ref in s.refills:
        rs = [by[(st, ref)] for st in BULK]
        out.append(
            row(
                ref,
                *(f"{fmt_pps(r['pps'])} ({pct(r['pps'] / sp - 1)})" for r in rs),
                *(f"{r['irq_off_max_ns']:.0f}" for r in rs),
                *(f"{r['alloc_ns_per_packet']:.1f}" for r in rs),
            )
        )
    out += ["", "Gains are over 5.11 `single`. docs/xdp_redirect.md says what these curves mean and why.", ""]
    return "\n".join(out)


def _fe_share(r: dict[str, Any]) -> str:
    fe = r["frontend_ns_per_packet"]
    return f"{fe:.2f} ({fe / r['ns_per_packet'] * 100:.2f} %)"


def render_frontend(p: Predictions, curve: list[dict[str, Any]], s: Settings) -> str:
    sp = p.fit.pps
    by = {(r["strategy"], r["batch"]): r for r in curve}
    refills = [r for r in (16, 64, 256) if r in s.refills]
    out = [
        "## 8. The front end: XDP-redirect per strategy and refill",
        "",
        row(
            "strategy",
            *(f"refill {r}: pps (gain)" for r in refills),
            *(f"refill {r}: front end ns/packet (share)" for r in refills),
        ),
        "|---|" + "---:|" * (2 * len(refills)),
    ]
    single = p.xdp["single"]
    out.append(
        row(
            f"`single` ({BULK_KERNEL})",
            *(f"{fmt_pps(single['pps'])} ({pct(single['pps'] / sp - 1)})" for _ in refills),
            *(_fe_share(single) for _ in refills),
        )
    )
    for st in BULK:
        rows = [by[(st, r)] for r in refills]
        out.append(
            row(
                f"`{st}`",
                *(f"{fmt_pps(r['pps'])} ({pct(r['pps'] / sp - 1)})" for r in rows),
                *(_fe_share(r) for r in rows),
            )
        )
    out += [
        "",
        para(
            "Gains over 5.11 `single`; the share is the front end's part of each packet's whole time.",
            "`single` does not depend on the refill size (page_pool's slow path gets one page a call).",
        ),
        "",
    ]
    return "\n".join(out)


def render_left_out() -> str:
    items = [
        para(
            "Per-interrupt costs (hardirq entry, `napi_schedule`, softirq entry, the CQ arm): no public",
            "figure. They matter only below saturation, not for the reference, which ran saturated.",
        ),
        para(
            "The SKB's allocation, clearing and free, the XDP programs, devmap and veth: inside the fitted",
            "outside cost, identical for every strategy and kernel.",
        ),
        para(
            "The instruction side beyond the L1i, the uop cache and the BTB: the iTLB, the loop stream",
            "detector, code evicted from the L2 by data, and the real (not LRU-over-whole-functions)",
            "placement of code in the caches (section 8; docs/model.md, the front end).",
        ),
        para(
            "page_bench's 199 cycles is a check, not an input: the allocator's costs come from the XDP",
            "profile alone (simulator/calibration.py).",
        ),
    ]
    return "\n".join(["## 9. What the comparison leaves out", "", *(f"- {i}" for i in items), ""])
