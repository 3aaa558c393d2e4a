"""The report's sections on the model's variants: 2. what each mechanism buys, and 6. the values
no source gives, halved and doubled."""

from __future__ import annotations

from simulator.validation.report.markdown import para, pct, row
from simulator.validation.report.predictions import BULK, Predictions, Settings

CHUCK_KASAN = (5.45, 1.36, 1.0)  # svc_alloc_arg single / list / array, 256 KiB mix, KASAN kernel


def render_mechanisms(variants: list[Predictions], s: Settings) -> str:
    out = [
        "## 2. What each mechanism buys",
        "",
        para(
            "Each row takes one mechanism back out of the model (pricing it as pagesim did before) and",
            "shows every prediction again; the outside cost is refitted for every row, so the XDP",
            "columns stay gains over the same calibrated baseline. The first row is the model as it",
            "is; the last takes them all out. XDP: gain over 5.11 `single` at refill 64 and the ns per",
            "packet it saves. page_bench: cycles per page (one alloc + one free). NFS: Chuck Lever's",
            "256 KiB READ/WRITE mix, `svc_alloc_arg` time per call relative to `bulk_array` (his KASAN",
            f"trace: {CHUCK_KASAN[0]} / {CHUCK_KASAN[1]} / 1 for single / list / array).",
        ),
        "",
        "### XDP-redirect and NFS",
        "",
        row(
            "model",
            *(f"XDP `{st}` gain (ns saved)" for st in BULK),
            "NFS single / list / pagevec : array",
            "what is taken out",
        ),
        "|---|" + "---:|" * 4 + "---|",
    ]
    for p in variants:
        cells = [f"{pct(p.xdp[st]['pps'] / p.fit.pps - 1)} ({p.saved(st):.1f})" for st in BULK]
        nfs = " / ".join(f"{p.nfs_ratio(st):.2f}" for st in ("single", "bulk_list", "pagevec"))
        out.append(row(p.variant.name, *cells, nfs, p.variant.note))
    out += [
        "",
        "### page_bench04_bulk, cycles per page",
        "",
        row(
            "model", "single b1", *(f"{st} b{b}" for st in ("bulk_list", "bulk_array") for b in s.pb_batches)
        ),
        "|---|" + "---:|" * (1 + 2 * len(s.pb_batches)),
    ]
    for p in variants:
        cells = [f"{p.page_bench[('single', 1)]['cycles_per_page']:.1f}"]
        cells += [
            f"{p.page_bench[(st, b)]['cycles_per_page']:.1f}"
            for st in ("bulk_list", "bulk_array")
            for b in s.pb_batches
        ]
        out.append(row(p.variant.name, *cells))
    out += [
        "",
        row("model", *(f"list - array b{b}" for b in s.pb_batches), *(f"pagevec b{b}" for b in s.pb_batches)),
        "|---|" + "---:|" * (2 * len(s.pb_batches)),
    ]
    for p in variants:
        pb = p.page_bench
        diff = [
            f"{pb[('bulk_list', b)]['cycles_per_page'] - pb[('bulk_array', b)]['cycles_per_page']:+.1f}"
            for b in s.pb_batches
        ]
        pv = [f"{pb[('pagevec', b)]['cycles_per_page']:.1f}" for b in s.pb_batches]
        out.append(row(p.variant.name, *diff, *pv))
    out += ["", _mechanism_notes(), ""]
    return "\n".join(out)


def _mechanism_notes() -> str:
    return "\n".join(
        [
            "What each mechanism is (docs/model.md has the sources):",
            "",
            "1. "
            + para(
                "**CONFIG_DEBUG_LIST checks per packet.** The profile's `__list_add_valid` and",
                "`__list_del_entry_valid` self times are divided by the checks the profiled packet",
                "path runs (5.11, a packet dropped as PACKET_OTHERHOST after veth's XDP_PASS): 3 adds",
                "and 3 deletes in GRO and the list receive path, one add and one delete of the",
                "allocator, and the NAPI/devmap ones amortised over 64-packet polls: 4.09 adds and",
                "4.03 deletes. A check now costs 0.80 ns (add) and 1.59 ns (delete), not 3.29 ns.",
            ),
            "2. "
            + para(
                "**page_bench frees as the module does.** page_bench04_bulk's list variant frees",
                "each page from its list with `list_del` + `__free_pages`; its array variant (and the",
                "single-page test) with `put_page`, which goes through `__put_page`,",
                "`__page_cache_release` and `mem_cgroup_uncharge` (9 more operations, 2 more calls).",
            ),
            "3. "
            + para(
                "**Statistics per page.** From v3 of the series to 5.13, `__count_zid_vm_events` and",
                "`zone_statistics` (two out-of-line `__inc_numa_state` calls) run per page inside the",
                "IRQ-off loop; 5.14 does them once, after the window, with `nr_account`.",
            ),
            "4. "
            + para(
                "**Each kernel's IRQ toggle.** 5.11's `local_irq_restore` is push+popf, 5.12's a",
                "conditional sti. The popf toggle's in-context cost is what the profile leaves of",
                "`free_unref_page`'s self time after its one operation (9.7 cycles); the sti toggle's",
                "is that times the tight-loop ratio 10/37 (assumed: section 6).",
            ),
            "5. "
            + para(
                "**Costs that overlap.** (a) A stretch of accesses costs the longest of its dependent",
                "chain, its slowest store-like access, and all its misses spread over the fill",
                "buffers: stores to caller arrays, split halves in `expand()` and list neighbours in",
                "`__free_one_page()` overlap; list walks do not. (b) The profile's self times already",
                "contain the misses of the profiled run: the model replays it and subtracts what it",
                "charges each function there (0 ns in every function: the profiled run's allocator",
                "lines stay in L1, pcp list LIFO reuse with no refill or drain).",
            ),
            "6. "
            + para(
                "**The front end** (issue 17). Every modelled function has a code footprint (hot",
                "text and taken branches: a quarter of its whole text from plain oops traces,",
                "simulator/code_footprints.yaml). A CPU's L1i, uop cache and BTB hold the code that",
                "ran most recently (LRU by reuse distance); a code path pays to fetch the lines, decode",
                "the 32-byte windows and resteer for the branches that the code run since its last run",
                "evicted. mlx5 refills a WQE's 64 pages in one loop and veth frees in one loop, so the",
                "allocator's code runs in loops that keep it hot for every strategy: what the front",
                "end changes between strategies is only the size of the allocation code on the path,",
                "once per poll.",
            ),
        ]
    )


def render_assumed(main: Predictions, assumed: list[Predictions]) -> str:
    out = [
        "## 6. Values no source gives, halved and doubled",
        "",
        row(
            "value",
            *(f"XDP `{st}` gain" for st in BULK),
            "page_bench single b1",
            "page_bench array b64",
            "NFS single : array",
            "note",
        ),
        "|---|" + "---:|" * 6 + "---|",
    ]
    for p in [main, *assumed]:
        out.append(
            row(
                p.variant.name,
                *(pct(p.xdp[st]["pps"] / p.fit.pps - 1) for st in BULK),
                f"{p.page_bench[('single', 1)]['cycles_per_page']:.1f}",
                f"{p.page_bench[('bulk_array', 64)]['cycles_per_page']:.1f}",
                f"{p.nfs_ratio('single'):.2f}",
                p.variant.note,
            )
        )
    out += [
        "",
        para(
            "Other assumed values in the hardware files (node memory size, the 32-bit hole) move only",
            "the watermarks, and with them nothing on these unpressured paths; NFS's per-RPC work and",
            "reply delay set the load, not the allocator's cost (docs/nfs.md). The many-core values",
            "(the fault path's counts, SMT's slowdown, one thread's store rate, RFO on clear_page's",
            "stores, the loaded-latency window) touch none of these figures: docs/scaling.md halves",
            "and doubles them for page_fault1 at 28 and 112 CPUs.",
        ),
        "",
    ]
    return "\n".join(out)
