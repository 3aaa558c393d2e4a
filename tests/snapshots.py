"""Committed result snapshots: what the model computes, pinned so that every change shows as a diff.

    python tests/snapshots.py update [-j 2] [--only SUBSTRING]   # regenerate tests/snapshots/*.json
    python tests/snapshots.py check  [-j 2] [--only SUBSTRING] [--exact]
    python tests/snapshots.py list

A fixed, small, representative set of points (every workload, every strategy, each kernel option
and preset, memory pressure, NUMA, several CPU counts and every hardware profile, SMT included), each run
briefly. Their rows are stored one file per case under tests/snapshots/ (sorted keys, one field
per line, floats as Python writes them: shortest round-trip, so a stored value is the computed
value to the last bit). `tests/test_snapshots.py` runs every case in the suite and compares.

The model is deterministic: the same code gives the same rows bit for bit on one machine (`check
--exact`, which the speed work uses: a speed change must leave every field `==`). The suite
compares integers and strings exactly and floats to a relative 1e-9, because numpy's transcendental
functions (np.log10 in the histograms) may differ in the last bit between CPUs with different SIMD
units; no modelled input moves a row by that little. `wall_s` is never compared.

A commit that changes the model on purpose runs `update` and commits the regenerated files with
it, so the diff shows every figure that moved; the commit message says why.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from simulator.run import expand, run_point  # noqa: E402
from simulator.scenario import Overrides, Setting, load_scenario  # noqa: E402

NOT_COMPARED = ("wall_s",)  # the only wall-clock figure in a row
REL_TOL = 1e-9

# (label, scenario file, overrides as keyword arguments, settings {dotted path: value})
Case = tuple[str, str, dict[str, Any], dict[str, Any]]


def cases() -> list[Case]:
    """The snapshot points. Short durations: the whole set runs in seconds."""
    out: list[Case] = []
    pb_short = {"warmup": "10 us"}
    for cpus in (1, 6):
        for batch in (1, 64, 512):
            out.append(
                (
                    f"page_bench b{batch} c{cpus}",
                    "page_bench.yaml",
                    {"batches": [batch], "cpus": [cpus], "duration": "40 us"},
                    pb_short,
                )
            )
    for free in ("free_unref_page_list", "free_pages_bulk"):
        out.append(
            (
                f"page_bench {free}",
                "page_bench.yaml",
                {"batches": [64], "cpus": [2], "duration": "40 us"},
                {**pb_short, "page_bench.free": free},
            )
        )
    out.append(
        (
            "page_bench second_pass nodebug",
            "page_bench.yaml",
            {"batches": [32], "cpus": [1], "duration": "40 us"},
            {**pb_short, "kernel.prep_new_page": "second_pass", "kernel.debug_list": False},
        )
    )
    out.append(
        (
            "page_bench skylake spread",
            "page_bench.yaml",
            {
                "hardware": str(ROOT / "hardware/skylake-sp-2s.yaml"),
                "batches": [64],
                "cpus": [4],
                "duration": "30 us",
            },
            {**pb_short, "page_bench.cpu_placement": "spread", "page_bench.gfp": "GFP_KERNEL"},
        )
    )
    out.append(
        (
            "page_bench epyc nps4",
            "page_bench.yaml",
            {
                "hardware": str(ROOT / "hardware/epyc-rome-1s-nps4.yaml"),
                "strategies": ["single", "bulk_array"],
                "batches": [16],
                "cpus": [8],
                "duration": "30 us",
            },
            {**pb_short, "page_bench.cpu_placement": "spread", "page_bench.gfp": "GFP_KERNEL"},
        )
    )
    out.append(
        (
            "page_bench skylake-ht c64",  # SMT: CPUs 56-63 share cores 0-7 with CPUs 0-7
            "page_bench.yaml",
            {
                "hardware": str(ROOT / "hardware/skylake-sp-2s-ht.yaml"),
                "strategies": ["single", "bulk_array"],
                "batches": [64],
                "cpus": [64],
                "duration": "20 us",
            },
            pb_short,
        )
    )
    for version, batches, cpus in (("5.11", [1, 64], [1]), ("5.14", [64, 512], [1, 6])):
        out.append(
            (
                f"page_bench kernel {version}",
                "page_bench.yaml",
                {
                    "strategies": ["single"] if version == "5.11" else ["single", "bulk_list", "bulk_array"],
                    "batches": batches,
                    "cpus": cpus,
                    "duration": "40 us",
                },
                {**pb_short, "kernel.version": version},
            )
        )
    xdp_short = {"warmup": "300 us"}
    out.append(("xdp_redirect", "xdp_redirect.yaml", {"duration": "1 ms"}, xdp_short))
    out.append(
        (
            "xdp_redirect refill 16",
            "xdp_redirect.yaml",
            {"batches": [16], "duration": "500 us"},
            xdp_short,
        )
    )
    for path in ("ptr_ring", "mlx5_cache"):
        out.append(
            (
                f"xdp_redirect recycle {path}",
                "xdp_redirect.yaml",
                {"duration": "500 us"},
                {**xdp_short, "xdp_redirect.recycle": 0.3, "xdp_redirect.recycle_path": path},
            )
        )
    out.append(
        ("xdp_redirect_irq", "xdp_redirect_irq.yaml", {"batches": [64], "duration": "1 ms"}, xdp_short)
    )
    out.append(
        (
            "xdp_redirect_pressure",
            "xdp_redirect_pressure.yaml",
            {"batches": [16], "duration": "1 ms"},
            xdp_short,
        )
    )
    out.append(
        (
            "xdp_redirect_remote_nic",
            "xdp_redirect_remote_nic.yaml",
            {"strategies": ["single", "bulk_array"], "duration": "500 us"},
            xdp_short,
        )
    )
    out.append(
        (
            "xdp_redirect_multiqueue c8",
            "xdp_redirect_multiqueue.yaml",
            {"strategies": ["single", "bulk_list"], "cpus": [8], "duration": "200 us"},
            {"warmup": "200 us"},
        )
    )
    for version in ("5.11", "5.14"):
        out.append(
            (
                f"xdp_redirect kernel {version}",
                "xdp_redirect.yaml",
                {"strategies": ["single"] if version == "5.11" else None, "duration": "500 us"},
                {**xdp_short, "kernel.version": version},
            )
        )
    out.append(("nfs", "nfs.yaml", {"duration": "8 ms"}, {"warmup": "2 ms"}))
    out.append(
        (
            "nfs_pressure kernel 5.14",
            "nfs_pressure.yaml",
            {"strategies": ["bulk_array"], "duration": "300 ms"},
            {"warmup": "50 ms", "kernel.version": "5.14"},
        )
    )
    out.append(
        (
            "nfs_256k_rw",
            "nfs_256k_rw.yaml",
            {"strategies": ["single", "bulk_list", "bulk_array"], "duration": "4 ms"},
            {"warmup": "2 ms"},
        )
    )
    out.append(
        (
            "nfs_pressure",
            "nfs_pressure.yaml",
            {"strategies": ["bulk_array"], "duration": "600 ms"},
            {"warmup": "50 ms"},
        )
    )
    out.append(
        (
            "nfs_pressure single",
            "nfs_pressure.yaml",
            {"strategies": ["single"], "duration": "300 ms"},
            {"warmup": "50 ms"},
        )
    )
    out.append(
        ("nfs_numa", "nfs_numa.yaml", {"strategies": ["single"], "duration": "4 ms"}, {"warmup": "2 ms"})
    )
    out.append(
        (
            "nfs_numa bulk",
            "nfs_numa.yaml",
            {"strategies": ["bulk_array"], "duration": "4 ms"},
            {"warmup": "2 ms"},
        )
    )
    out.append(
        (
            "page_fault1",
            "page_fault1.yaml",
            {"cpus": [1, 16], "duration": "100 us"},
            {"warmup": "50 us", "page_fault1.mapping": "512 KiB"},
        )
    )
    out.append(
        (
            "page_fault1 pcp fraction",
            "page_fault1.yaml",
            {"cpus": [16], "duration": "100 us"},
            {"warmup": "50 us", "page_fault1.mapping": "512 KiB", "kernel.percpu_pagelist_fraction": 8},
        )
    )
    return out


def slug(label: str) -> str:
    """The snapshot file name of a case."""
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")


def case(label: str) -> Case:
    for c in cases():
        if c[0] == label:
            return c
    raise KeyError(label)


def run_case(c: Case) -> dict[str, dict[str, Any]]:
    """Run one case; its rows keyed by point."""
    label, file, kw, settings = c
    ov = Overrides(**kw, settings=tuple(Setting(p, v, "snapshots", p) for p, v in settings.items()))
    sc = load_scenario(ROOT / "scenarios" / file, ov)
    rows = {}
    for point in expand(sc):
        row = run_point(sc, point)
        grid = "".join(f" {p}={v}" for p, v in point.grid)
        key = f"{point.strategy} b{point.batch} c{point.cpus} r{point.replication}{grid}"
        rows[key] = {f: v for f, v in row.items() if f not in NOT_COMPARED}
    return rows


def _encode(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)  # 'nan', 'inf', '-inf': JSON has no literal for them
    return v


def _decode(v: Any) -> Any:
    if v in ("nan", "inf", "-inf"):
        return float(v)
    return v


def path_of(label: str) -> Path:
    return SNAPSHOTS / f"{slug(label)}.json"


def write(label: str, rows: dict[str, dict[str, Any]]) -> None:
    doc = {"case": label, "rows": {k: {f: _encode(v) for f, v in r.items()} for k, r in rows.items()}}
    path_of(label).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def read(label: str) -> dict[str, dict[str, Any]]:
    doc = json.loads(path_of(label).read_text(encoding="utf-8"))
    return {k: {f: _decode(v) for f, v in r.items()} for k, r in doc["rows"].items()}


def same(a: Any, b: Any, exact: bool) -> bool:
    """One field equal? Integers, strings, booleans and None exactly; floats exactly or to
    REL_TOL (NaN equals NaN)."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b if exact else math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0)
    return a == b and type(a) is type(b)


Rows = dict[str, dict[str, Any]]


def differences(stored: Rows, fresh: Rows, exact: bool) -> list[str]:
    """Human-readable differences between stored and fresh rows (empty when they agree)."""
    out = []
    for key in sorted(set(stored) | set(fresh)):
        if key not in fresh:
            out.append(f"GONE  {key}")
            continue
        if key not in stored:
            out.append(f"NEW   {key}")
            continue
        g, r = stored[key], fresh[key]
        for f in sorted(set(g) | set(r)):
            if not same(g.get(f), r.get(f), exact):
                out.append(f"DIFF  {key}: {f}: {g.get(f)!r} -> {r.get(f)!r}")
    return out


def _run_labelled(c: Case) -> tuple[str, dict[str, dict[str, Any]]]:
    return c[0], run_case(c)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("update", "check", "list"))
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--only", default=None, help="only the cases whose label contains this")
    ap.add_argument("--exact", action="store_true", help="compare floats with == (same machine)")
    args = ap.parse_args(argv)
    todo = [c for c in cases() if args.only is None or args.only in c[0]]
    if args.action == "list":
        for c in todo:
            print(f"{c[0]:<40} {path_of(c[0]).relative_to(ROOT)}")
        return 0
    t = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            results = list(ex.map(_run_labelled, todo))
    else:
        results = [_run_labelled(c) for c in todo]
    nrows = sum(len(r) for _, r in results)
    print(f"{len(results)} cases, {nrows} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    if args.action == "update":
        SNAPSHOTS.mkdir(exist_ok=True)
        for label, rows in results:
            write(label, rows)
        if args.only is None:
            keep = {path_of(c[0]).name for c in cases()}
            for stale in SNAPSHOTS.glob("*.json"):
                if stale.name not in keep:
                    stale.unlink()
        print(f"wrote {len(results)} snapshot files under {SNAPSHOTS.relative_to(ROOT)}/")
        return 0
    bad = 0
    for label, rows in results:
        if not path_of(label).exists():
            print(f"MISSING {path_of(label).relative_to(ROOT)} ({label})")
            bad += 1
            continue
        diffs = differences(read(label), rows, args.exact)
        if diffs:
            bad += 1
            print(f"== {label}")
            for d in diffs:
                print(f"  {d}")
    print(f"{len(results) - bad}/{len(results)} cases identical" + ("" if not bad else f"; {bad} differ"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
