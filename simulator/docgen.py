"""The figures the documents quote, generated from a fresh run rather than typed.

    .venv/bin/python -m simulator.docgen                   # rewrite the quick blocks (seconds)
    .venv/bin/python -m simulator.docgen --slow --jobs 2   # and the slow ones (1-2 minutes)
    .venv/bin/python -m simulator.docgen --check [--slow]  # exit 1 if one is out of date

Each block sits between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->` in its file and is
replaced whole. A block is rendered from the rows of the scenarios it names (BLOCKS), run now in
this process (or `--jobs` worker processes) exactly as `pagesim run` runs them, and set against the
published measurements (simulator.plots.REFERENCES, CHUCK_LEVER_US). The document says beside
each block which `pagesim` command gives the same rows.

Quick blocks (tests/test_docgen.py runs them and fails when a document differs):
- README.md `xdp-reference`: the reference replay (scenarios/xdp_redirect.yaml, four strategies on
  5.12, and `single` on 5.11, the calibrated baseline): measured and modelled pps, and the gap;
- docs/xdp_redirect.md `xdp-refill-64`: the same run: pps, gain, allocator ns per packet, IRQ-off;
- docs/nfs.md `nfs-256k`: scenarios/nfs_256k_rw.yaml against Chuck Lever's svc_alloc_arg trace.
Slow blocks (`--slow`; minutes of simulation, too slow for the test suite): the XDP refill sizes,
interrupt latency, memory pressure and many-queue tables of docs/xdp_redirect.md, the default,
pressure and NUMA tables of docs/nfs.md, and the page_fault1 and page_bench tables of
docs/scaling.md.
After a change to the model's figures, regenerate with `--slow` and read the prose around each
block again: the sentences that interpret a table are typed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
XDP_DOC = ROOT / "docs" / "xdp_redirect.md"
NFS_DOC = ROOT / "docs" / "nfs.md"
SCALING_DOC = ROOT / "docs" / "scaling.md"
SCENARIOS = ROOT / "scenarios"
XDP_SCENARIO = SCENARIOS / "xdp_redirect.yaml"

BASELINE = "single@5.11"  # the calibrated baseline's row
LABELS = {
    BASELINE: "`single` (5.11)",
    "single": "`single` (5.12)",
    "bulk_list": "`bulk_list` (the series)",
    "bulk_array": "`bulk_array`",
    "pagevec": "`pagevec`",
}
BULK = ("bulk_list", "bulk_array", "pagevec")
STRATEGIES = ("single", *BULK)
# Chuck Lever's svc_alloc_arg trace, µs per call, 256 KiB READ/WRITE mix on a KASAN kernel
# (linux-nfs, 2021-03-23; scenarios/nfs_256k_rw.yaml)
CHUCK_LEVER_US = {"single": 25.007, "bulk_list": 6.258, "bulk_array": 4.590}


# Runs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """One scenario file, with some fields set as the command line or a sweep file would set
    them; its rows are every point of its grid."""

    scenario: str  # a file in scenarios/
    strategies: tuple[str, ...] | None = None
    cpus: tuple[int, ...] | None = None
    settings: tuple[tuple[str, Any], ...] = ()  # (dotted path, value): kernel.version, nfs.*
    batches: tuple[int, ...] | None = None
    # (dotted path into the hardware, value): a what-if variant of an assumed hardware value
    hardware: tuple[tuple[str, Any], ...] = ()

    def load(self) -> Any:
        import dataclasses

        from simulator.scenario import Overrides, Setting, load_scenario

        settings = tuple(Setting(p, v, "docgen", p) for p, v in self.settings)
        ov = Overrides(
            strategies=list(self.strategies) if self.strategies else None,
            cpus=list(self.cpus) if self.cpus else None,
            batches=list(self.batches) if self.batches else None,
            settings=settings,
        )
        sc = load_scenario(SCENARIOS / self.scenario, ov)
        if self.hardware:
            hw = sc.hardware
            for path, value in self.hardware:
                hw = _replace_at(hw, path.split("."), value)
            sc = dataclasses.replace(sc, hardware=hw)
        return sc


def _replace_at(model: Any, parts: list[str], value: Any) -> Any:
    """A copy of the pydantic `model` with `value` at the dotted path `parts` (("x", f): the value
    there times f)."""
    head, *rest = parts
    if rest:
        new = _replace_at(getattr(model, head), rest, value)
    elif isinstance(value, tuple) and value[0] == "x":
        new = getattr(model, head) * value[1]
    else:
        new = value
    return model.model_copy(update={head: new})


def _spec_511(scenario: str, **kw: Any) -> Spec:
    """`single` on 5.11, the kernel of the calibrated baseline."""
    return Spec(scenario, ("single",), settings=(("kernel.version", "5.11"),), **kw)


REFERENCE = Spec("xdp_redirect.yaml")
REFERENCE_511 = _spec_511("xdp_redirect.yaml")


def _run(job: tuple[Any, Any]) -> dict[str, Any]:
    from simulator.run import run_point

    return run_point(*job)


def run_specs(specs: Sequence[Spec], jobs: int = 1) -> dict[Spec, list[dict[str, Any]]]:
    """The rows of every spec (each run once), in each scenario's grid order."""
    from simulator.run import expand

    unique = list(dict.fromkeys(specs))
    work = [(i, (sc, p)) for i, spec in enumerate(unique) for sc in [spec.load()] for p in expand(sc)]
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            rows = list(pool.map(_run, [job for _, job in work]))
    else:
        rows = [_run(job) for _, job in work]
    out: dict[Spec, list[dict[str, Any]]] = {s: [] for s in unique}
    for (i, _), row in zip(work, rows):
        out[unique[i]].append(row)
    return out


def xdp_reference_rows(runs: dict[Spec, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The rows of the reference replay (about a second): the scenario's four points on its
    kernel, and `single` on 5.11 (strategy BASELINE)."""
    runs = runs or run_specs([REFERENCE_511, REFERENCE])
    return [{**runs[REFERENCE_511][0], "strategy": BASELINE}, *runs[REFERENCE]]


# Formatting -----------------------------------------------------------------------------------


def _pps(v: float) -> str:
    return f"{v:,.0f} pps"


def _gain(v: float, base: float) -> str:
    return f"{(v / base - 1) * 100:+.1f} %".replace("-", "−")


def _bold_loss(v: float, base: float) -> str:
    g = _gain(v, base)
    return f"**{g}**" if v < base else g


def _ns(v: Any) -> str:
    return f"{float(v):,.0f} ns"


def _us(v: float) -> str:
    """Microseconds at a precision that suits their size (0.747, 20.1, 500,008)."""
    if v < 10:
        return f"{v:.2f}"
    if v < 100:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def _share(v: Any) -> str:
    return f"{float(v) * 100:.0f} %"


def _pct1(v: Any) -> str:
    return f"{float(v) * 100:.1f} %"


def _by(rows: Sequence[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    """Rows by one column's value (or a tuple of several)."""
    return {(r[keys[0]] if len(keys) == 1 else tuple(r[k] for k in keys)): r for r in rows}


def _table(header: Sequence[str], align: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


# Quick blocks ---------------------------------------------------------------------------------


def xdp_reference_table(rows: Sequence[dict[str, Any]]) -> str:
    """The README's table: measured and modelled pps per strategy at refill 64, and the gap."""
    from simulator.plots import REFERENCES

    measured = {
        r.strategy: r.value for r in REFERENCES if r.workload == "xdp_redirect" and r.batch in (None, 64)
    }
    pps = {str(r["strategy"]): float(r["pps"]) for r in rows}
    measured[BASELINE] = measured.pop("single")
    base_model, base_measured = pps[BASELINE], measured[BASELINE]
    lines = ["| refill 64 | measured | pagesim | gap |", "|---|---:|---:|---:|"]
    for strategy, label in LABELS.items():
        if strategy not in pps:
            continue
        model = pps[strategy]
        if strategy == BASELINE:
            lines.append(f"| {label} | {_pps(base_measured)} | {_pps(model)} | calibrated |")
        elif strategy in measured:
            m = measured[strategy]
            was, now = f"{_pps(m)} ({_gain(m, base_measured)})", f"{_pps(model)} ({_gain(model, base_model)})"
            lines.append(f"| {label} | {was} | {now} | **{_gain(model, m)}** (prediction) |")
        else:
            lines.append(
                f"| {label} | not measured | {_pps(model)} ({_gain(model, base_model)}) | prediction |"
            )
    return "\n".join(lines)


def xdp_refill_table(rows: Sequence[dict[str, Any]]) -> str:
    """docs/xdp_redirect.md's table: what each strategy costs at refill 64."""
    labels = {**LABELS, "pagevec": "`pagevec` (15 per call)"}
    by = {str(r["strategy"]): r for r in rows}
    base = float(by[BASELINE]["pps"])
    lines = [
        "| strategy | pps | gain | allocator ns/packet (alloc) | IRQ-off max |",
        "|---|---:|---:|---:|---:|",
    ]
    for strategy, label in labels.items():
        if strategy not in by:
            continue
        r = by[strategy]
        pps = float(r["pps"])
        if strategy == BASELINE:
            gain = "calibrated"
        elif strategy == "bulk_list":
            gain = f"**{_gain(pps, base)}** (measured +18.8 %)"
        else:
            gain = _gain(pps, base)
        lines.append(
            f"| {label} | {pps:,.0f} | {gain} | {float(r['alloc_ns_per_packet']):.1f}"
            f" | {float(r['irq_off_max_ns']):,.0f} ns |"
        )
    return "\n".join(lines)


def nfs_256k_table(rows: Sequence[dict[str, Any]]) -> str:
    """docs/nfs.md: svc_alloc_arg per call on Chuck Lever's mix, model and trace, and the ratios
    to the array."""
    by = _by(rows, "strategy")
    model_array = float(by["bulk_array"]["svc_alloc_arg_us_mean"])
    trace_array = CHUCK_LEVER_US["bulk_array"]
    body = []
    for s in STRATEGIES:
        us = float(by[s]["svc_alloc_arg_us_mean"])
        trace = CHUCK_LEVER_US.get(s)
        theirs = [f"{trace:.3f}", f"{trace / trace_array:.2f}"] if trace else ["not measured", ""]
        body.append([s, f"{us:.2f}", f"{us / model_array:.2f}", *theirs])
    return _table(
        [
            "strategy",
            "model µs/call",
            "ratio to array",
            "Chuck Lever (KASAN kernel) µs/call",
            "ratio to array",
        ],
        ["---", "---:", "---:", "---:", "---:"],
        body,
    )


# Slow blocks ----------------------------------------------------------------------------------


def xdp_refill_sizes_table(base_rows: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> str:
    """docs/xdp_redirect.md: gain over 5.11 `single`, IRQ-off max and the array's L1 misses per
    page against the refill size."""
    base = float(base_rows[0]["pps"])
    by = _by(rows, "strategy", "batch")
    body = []
    for b in sorted({int(r["batch"]) for r in rows}):
        body.append(
            [
                str(b),
                *(_gain(float(by[s, b]["pps"]), base) for s in BULK),
                *(_ns(by[s, b]["irq_off_max_ns"]) for s in BULK),
                f"{float(by['bulk_array', b]['cache_misses_per_page']):.1f}",
            ]
        )
    return _table(
        [
            "refill",
            *(f"`{s}`" for s in BULK),
            *(f"`{s}` IRQ-off max" for s in BULK),
            "`bulk_array` L1 misses per page",
        ],
        ["---:"] * 8,
        body,
    )


def xdp_irq_latency_table(rows: Sequence[dict[str, Any]]) -> str:
    """docs/xdp_redirect.md: interrupt latency p99 / max per strategy and refill size."""
    by = _by(rows, "strategy", "batch")
    batches = sorted({int(r["batch"]) for r in rows})
    body = []
    for s in STRATEGIES:
        cells = []
        for b in batches:
            r = by[s, b]
            cells.append(f"{float(r['irq_latency_p99_ns']):,.0f} / {_ns(r['irq_latency_max_ns'])}")
        body.append([f"`{s}`", *cells])
    return _table(
        ["strategy", *(f"refill {b}: p99 / max" for b in batches)], ["---"] * (1 + len(batches)), body
    )


def xdp_pressure_table(base_rows: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> str:
    """docs/xdp_redirect.md: gain over 5.11 `single` (unpressured, calibrated) under pressure."""
    base = float(base_rows[0]["pps"])
    by = _by(rows, "strategy", "batch")
    body = [
        [str(b), *(_bold_loss(float(by[s, b]["pps"]), base) for s in STRATEGIES)]
        for b in sorted({int(r["batch"]) for r in rows})
    ]
    return _table(["refill", "`single` (5.12)", *(f"`{s}`" for s in BULK)], ["---:"] * 5, body)


def xdp_multiqueue_table(base_rows: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> str:
    """docs/xdp_redirect.md: per-CPU rates on each socket at the most CPUs, and totals per CPU
    count; gains over `single` on 5.11 on the same host."""
    base = _by(base_rows, "cpus")
    by = _by(rows, "strategy", "cpus")
    cpus = sorted({int(r["cpus"]) for r in rows})
    top = cpus[-1]
    columns = [("single", base), *((s, None) for s in STRATEGIES)]

    def cell(s: str, table: Any, c: int, col: str) -> str:
        r = table[c] if table is not None else by[s, c]
        v = float(r[col])
        if table is not None:
            return f"{v:,.0f}"
        return f"{v:,.0f} ({_gain(v, float(base[c][col]))})"

    body = []
    for col, where in (
        ("pps_per_cpu_nic_socket", "NIC's socket"),
        ("pps_per_cpu_other_socket", "other socket"),
    ):
        body.append([f"per CPU, {where} ({top} CPUs)", *(cell(s, t, top, col) for s, t in columns)])
    for c in cpus:
        totals = [float((t[c] if t is not None else by[s, c])["pps"]) for s, t in columns]
        body.append([f"{c} CPU{'s' if c > 1 else ''}, total", *(f"{v / 1e6:,.2f} M" for v in totals)])
    return _table(
        ["", "`single` (5.11)", "`single` (5.12)", *(f"`{s}`" for s in BULK)],
        ["---", "---:", "---:", "---:", "---:", "---:"],
        body,
    )


def nfs_default_table(rows: Sequence[dict[str, Any]]) -> str:
    """docs/nfs.md: the default mix, no pressure."""
    body = []
    for r in rows:
        mean = float(r["svc_alloc_arg_us_mean"])
        body.append(
            [
                str(r["strategy"]),
                f"{float(r['ops_per_s']):,.0f}",
                f"{mean:.3f}",
                f"{float(r['svc_alloc_arg_us_p99']):.1f}",
                f"{float(r['svc_alloc_arg_us_max']):.1f}",
                f"{mean * 1000 / float(r['pages_per_call_mean']):.0f}",
                " / ".join(
                    f"{float(r[k]):.{d}f}"
                    for k, d in (("latency_us_p50", 2), ("latency_us_p99", 1), ("latency_us_p999", 1))
                ),
                f"{float(r['irq_off_max_ns']) / 1000:.1f}",
                f"{float(r['cpu_busy_share']) * 100:.1f} %",
            ]
        )
    return _table(
        [
            "strategy",
            "ops/s",
            "svc_alloc_arg mean µs",
            "p99 µs",
            "max µs",
            "ns/page",
            "latency p50 / p99 / p999 µs",
            "IRQ-off max µs",
            "CPU busy",
        ],
        ["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"],
        body,
    )


def nfs_pressure_table(rows: Sequence[dict[str, Any]], no_progress: Sequence[dict[str, Any]]) -> str:
    """docs/nfs.md: memory between the watermarks, and the array with NeilBrown's fix."""
    body = []
    labelled = [(str(r["strategy"]), r) for r in rows]
    labelled += [(f"{r['strategy']}, `sleep_policy: no_progress`", r) for r in no_progress]
    for label, r in labelled:
        body.append(
            [
                label,
                f"{int(r['partial_fills']):,}",
                f"{int(r['sleeps']):,}",
                _share(r["nfsd_asleep_share"]),
                _us(float(r["svc_alloc_arg_us_mean"])),
                _us(float(r["svc_alloc_arg_us_max"])),
                f"{float(r['latency_us_p99']):,.0f}",
                f"{float(r['ops_per_s']):,.0f}",
                f"{int(r['bulk_fallback_single']):,}",
            ]
        )
    return _table(
        [
            "strategy",
            "short fills",
            "500 ms sleeps",
            "nfsd time asleep",
            "svc_alloc_arg mean µs",
            "max µs",
            "latency p99 µs",
            "ops/s in window",
            "bulk calls sent to the single-page path",
        ],
        ["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:"],
        body,
    )


def nfs_numa_table(rows: Sequence[dict[str, Any]]) -> str:
    """docs/nfs.md: two nodes, node 0 just above its low watermark."""
    body = []
    for r in rows:
        body.append(
            [
                str(r["strategy"]),
                f"{_us(float(r['svc_alloc_arg_us_mean']))} / {float(r['svc_alloc_arg_us_p99']):.1f}",
                f"{int(r['remote_node_allocs']):,}",
                f"{int(r['partial_fills']):,}",
                f"{int(r['sleeps']):,}",
                _share(r["nfsd_asleep_share"]),
                f"{float(r['latency_us_p50']):.2f} / {float(r['latency_us_p99']):.1f}",
                f"{float(r['irq_off_max_ns']) / 1000:.1f}",
            ]
        )
    return _table(
        [
            "strategy",
            "svc_alloc_arg mean / p99 µs",
            "remote pages",
            "short fills in window",
            "500 ms sleeps in window",
            "nfsd time asleep",
            "latency p50 / p99 µs",
            "IRQ-off max µs",
        ],
        ["---", "---:", "---:", "---:", "---:", "---:", "---:", "---:"],
        body,
    )


def page_fault1_table(rows: Sequence[dict[str, Any]]) -> str:
    """docs/scaling.md: page_fault1 on 1..112 CPUs of the HT profile."""
    body = []
    for r in sorted(rows, key=lambda r: int(r["cpus"])):
        body.append(
            [
                str(r["cpus"]),
                f"{float(r['faults_per_s']) / 1e6:.2f} M",
                f"{float(r['faults_per_s_per_task']) / 1e3:,.0f} k",
                f"{float(r['ns_per_fault']):,.0f}",
                f"{float(r['fault_ns']):,.0f} + {float(r['unmap_ns_per_page']):,.0f}",
                f"{float(r['clear_page_ns']):,.0f}",
                _pct1(r["zone_lock_spin_share"]),
                _pct1(r["lru_lock_spin_share"]),
                f"{float(r['lru_lock_hold_p50_ns']):,.0f}",
                f"{float(r['irq_off_max_ns']) / 1000:.1f}",
            ]
        )
    return _table(
        [
            "CPUs",
            "faults/s",
            "per task",
            "ns per fault",
            "fault + unmap ns",
            "clear_page ns",
            "zone->lock spin",
            "lru_lock spin",
            "lru_lock hold p50 ns",
            "IRQ-off max µs",
        ],
        ["---:"] * 10,
        body,
    )


def page_bench_scaling_table(*runs: Sequence[dict[str, Any]]) -> str:
    """docs/scaling.md: page_bench single, 1024 pages per iteration, on the 2-socket profile, with
    the boot-time pcp sizes and two percpu_pagelist_fraction settings."""
    body = []
    for fraction, rows in zip(PCP_FRACTIONS, runs):
        for r in sorted(rows, key=lambda r: int(r["cpus"])):
            body.append(
                [
                    str(r["cpus"]),
                    "boot (0)" if not fraction else f"{fraction:,}",
                    f"{float(r['ns_per_page']):,.1f}",
                    f"{float(r['zone_lock_wait_ns_per_page']):,.1f}",
                    _pct1(r["zone_lock_spin_share"]),
                    f"{float(r['zone_lock_hold_p50_ns']):,.0f}",
                    f"{int(r['pcp_refills']):,} / {int(r['pcp_drains']):,}",
                    f"{float(r['irq_off_max_ns']) / 1000:.1f}",
                ]
            )
    return _table(
        [
            "CPUs",
            "percpu_pagelist_fraction",
            "ns per page",
            "zone->lock wait ns per page",
            "zone->lock spin",
            "zone->lock hold p50 ns",
            "pcp refills / drains",
            "IRQ-off max µs",
        ],
        ["---:"] * 8,
        body,
    )


def scaling_assumed_table(*runs: Sequence[dict[str, Any]]) -> str:
    """docs/scaling.md: page_fault1 at 28 and 112 CPUs with each assumed value halved and doubled."""
    body = []
    for (label, _), rows in zip(ASSUMED, runs):
        by = {int(r["cpus"]): r for r in rows}
        a, b = by[28], by[112]
        body.append(
            [
                label,
                f"{float(a['faults_per_s']) / 1e6:.2f} M",
                f"{float(a['ns_per_fault']):,.0f}",
                _pct1(a["lru_lock_spin_share"]),
                f"{float(b['faults_per_s']) / 1e6:.2f} M",
                f"{float(b['ns_per_fault']):,.0f}",
                _pct1(b["lru_lock_spin_share"]),
            ]
        )
    return _table(
        [
            "value",
            "28 CPUs: faults/s",
            "ns per fault",
            "lru_lock spin",
            "112 CPUs: faults/s",
            "ns per fault",
            "lru_lock spin",
        ],
        ["---", "---:", "---:", "---:", "---:", "---:", "---:"],
        body,
    )


# The blocks -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A generated block: where it goes, the runs it renders (in the order `render` takes their
    rows), and whether it is too slow for the test suite."""

    path: Path
    name: str
    specs: tuple[Spec, ...]
    render: Callable[..., str]
    slow: bool = False


def _reference(render: Callable[[Sequence[dict[str, Any]]], str]) -> Callable[..., str]:
    return lambda base, rows: render(xdp_reference_rows({REFERENCE_511: base, REFERENCE: rows}))


MULTIQUEUE_511 = _spec_511("xdp_redirect_multiqueue.yaml")
NO_PROGRESS = Spec("nfs_pressure.yaml", ("bulk_array",), settings=(("nfs.sleep_policy", "no_progress"),))

PAGE_FAULT1 = Spec("page_fault1.yaml", cpus=(1, 4, 28, 56, 112))


def _pf1(settings: tuple[tuple[str, Any], ...] = (), hardware: tuple[tuple[str, Any], ...] = ()) -> Spec:
    return Spec("page_fault1.yaml", cpus=(28, 112), settings=settings, hardware=hardware)


# page_fault1's assumed values (docs/scaling.md), each halved and doubled; SMT's slowdown
# 1 / throughput - 1 (0.67 at 0.6) halved and doubled: throughput 0.75 and 3/7
ASSUMED = (
    ("as modelled", _pf1()),
    ("fault path counts x 0.5", _pf1((("page_fault1.path_scale", 0.5),))),
    ("fault path counts x 2", _pf1((("page_fault1.path_scale", 2.0),))),
    ("SMT slowdown x 0.5 (throughput 0.75)", _pf1(hardware=(("topology.smt.throughput", 0.75),))),
    ("SMT slowdown x 2 (throughput 0.43)", _pf1(hardware=(("topology.smt.throughput", 3 / 7),))),
    ("one thread's store rate x 0.5", _pf1(hardware=(("memory.bandwidth.thread", ("x", 0.5)),))),
    ("one thread's store rate x 2", _pf1(hardware=(("memory.bandwidth.thread", ("x", 2.0)),))),
    ("no RFO on clear_page's stores", _pf1(hardware=(("memory.bandwidth.rfo", False),))),
    ("load window x 0.5", _pf1(hardware=(("memory.bandwidth.load_window", ("x", 0.5)),))),
    ("load window x 2", _pf1(hardware=(("memory.bandwidth.load_window", ("x", 2.0)),))),
)
# page_bench single, 1024 pages per iteration (past pcp->high 378: every iteration drains and
# refills under zone->lock), on the 2-socket profile without HT; pcp->high 2,030 (fraction 24,000
# of the 48.7 M-page Normal zone) holds an iteration, 512 (fraction 95,000) does not
PCP_FRACTIONS = (0, 95_000, 24_000)
PAGE_BENCH_2S = tuple(
    Spec(
        "page_bench.yaml",
        ("single",),
        (1, 26),
        (("hardware", "../hardware/skylake-sp-2s.yaml"), ("kernel.percpu_pagelist_fraction", f)),
        batches=(1024,),
    )
    for f in PCP_FRACTIONS
)

BLOCKS = (
    Block(README, "xdp-reference", (REFERENCE_511, REFERENCE), _reference(xdp_reference_table)),
    Block(XDP_DOC, "xdp-refill-64", (REFERENCE_511, REFERENCE), _reference(xdp_refill_table)),
    Block(NFS_DOC, "nfs-256k", (Spec("nfs_256k_rw.yaml"),), nfs_256k_table),
    Block(
        XDP_DOC,
        "xdp-refill-sizes",
        (REFERENCE_511, Spec("xdp_redirect_refill.yaml", BULK)),
        xdp_refill_sizes_table,
        slow=True,
    ),
    Block(XDP_DOC, "xdp-irq-latency", (Spec("xdp_redirect_irq.yaml"),), xdp_irq_latency_table, slow=True),
    Block(
        XDP_DOC,
        "xdp-pressure",
        (REFERENCE_511, Spec("xdp_redirect_pressure.yaml")),
        xdp_pressure_table,
        slow=True,
    ),
    Block(
        XDP_DOC,
        "xdp-multiqueue",
        (MULTIQUEUE_511, Spec("xdp_redirect_multiqueue.yaml")),
        xdp_multiqueue_table,
        slow=True,
    ),
    Block(NFS_DOC, "nfs-default", (Spec("nfs.yaml"),), nfs_default_table, slow=True),
    Block(NFS_DOC, "nfs-pressure", (Spec("nfs_pressure.yaml"), NO_PROGRESS), nfs_pressure_table, slow=True),
    Block(NFS_DOC, "nfs-numa", (Spec("nfs_numa.yaml"),), nfs_numa_table, slow=True),
    Block(SCALING_DOC, "scaling-page-fault1", (PAGE_FAULT1,), page_fault1_table, slow=True),
    Block(SCALING_DOC, "scaling-page-bench", PAGE_BENCH_2S, page_bench_scaling_table, slow=True),
    Block(SCALING_DOC, "scaling-assumed", tuple(s for _, s in ASSUMED), scaling_assumed_table, slow=True),
)


def blocks(slow: bool = False, jobs: int = 1) -> dict[Path, dict[str, str]]:
    """Every quick generated block (and with `slow`, every slow one too), by file and name; each
    scenario they need runs once."""
    chosen = [b for b in BLOCKS if slow or not b.slow]
    runs = run_specs([s for b in chosen for s in b.specs], jobs)
    out: dict[Path, dict[str, str]] = {}
    for b in chosen:
        out.setdefault(b.path, {})[b.name] = b.render(*(runs[s] for s in b.specs))
    return out


def block_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- figures:{re.escape(name)} -->\n)(.*?)(\n<!-- /figures:{re.escape(name)} -->)", re.S
    )


def read_block(text: str, name: str) -> str | None:
    m = block_pattern(name).search(text)
    return m.group(2) if m else None


def replace_blocks(text: str, new: dict[str, str]) -> str:
    for name, body in new.items():
        pattern = block_pattern(name)
        if not pattern.search(text):
            raise KeyError(f"no block `<!-- figures:{name} -->`")
        text = pattern.sub(lambda m, body=body: m.group(1) + body + m.group(3), text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simulator.docgen", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check; exit 1 if a document is out of date")
    ap.add_argument(
        "--slow", action="store_true", help="the slow blocks too (one to two minutes on two cores)"
    )
    ap.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    args = ap.parse_args(argv)
    stale = []
    for path, new_blocks in blocks(args.slow, max(1, args.jobs)).items():
        text = path.read_text(encoding="utf-8")
        new = replace_blocks(text, new_blocks)
        if new == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(new, encoding="utf-8")
    names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
    again = "python -m simulator.docgen" + (" --slow" if args.slow else "")
    if args.check:
        if stale:
            print(f"figures differ from a fresh run in {names}: run {again}", file=sys.stderr)
            return 1
        print("the documents' figures match a fresh run", file=sys.stderr)
        return 0
    print(
        f"rewrote the generated figures in {names}" if stale else "figures already up to date",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
