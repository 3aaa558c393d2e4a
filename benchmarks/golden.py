"""Golden rows: the speed work must not change what the model computes.

    python benchmarks/golden.py save  [--out /tmp/golden_rows.json] [-j 2]
    python benchmarks/golden.py check [--out /tmp/golden_rows.json] [-j 2] [--only SUBSTRING]

`save` runs a fixed, representative set of points (every workload, every strategy, the paths the
hot-path optimisations touch: pcp refills and drains, recycling, offered load, memory pressure,
NUMA, the other free strategies and kernel options) with short durations, and writes their rows to
a JSON file (kept out of git: it is a property of the code at one commit, not a result). `check`
runs the same points again and compares every field except `wall_s` with `==` (NaN equals NaN):
a speed change must leave every row bit-for-bit identical; one that does not is a model change.
Exit status 1 on any difference, with the fields that differ.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.run import expand, run_point  # noqa: E402
from simulator.scenario import Overrides, Setting, load_scenario  # noqa: E402

DEFAULT_OUT = "/tmp/golden_rows.json"

# (label, scenario file, overrides as keyword arguments, settings {dotted path: value})
Case = tuple[str, str, dict[str, Any], dict[str, Any]]


def cases() -> list[Case]:
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
    out.append(("nfs", "nfs.yaml", {"duration": "8 ms"}, {"warmup": "2 ms"}))
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
    return out


def _run_case(case: Case) -> list[tuple[str, dict[str, Any]]]:
    label, file, kw, settings = case
    ov = Overrides(
        **kw,
        settings=tuple(Setting(p, v, "golden.py", p) for p, v in settings.items()),
    )
    sc = load_scenario(ROOT / "scenarios" / file, ov)
    out = []
    for point in expand(sc):
        row = run_point(sc, point)
        key = f"{label} | {point.strategy} b{point.batch} c{point.cpus} r{point.replication}"
        out.append((key, row))
    return out


def run_all(only: str | None, jobs: int) -> dict[str, dict[str, Any]]:
    todo = [c for c in cases() if only is None or only in c[0]]
    rows: dict[str, dict[str, Any]] = {}
    t = time.perf_counter()
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as ex:
            results = list(ex.map(_run_case, todo))
    else:
        results = [_run_case(c) for c in todo]
    for res in results:
        for key, row in res:
            rows[key] = row
    print(f"{len(rows)} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return rows


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return v


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("save", "check", "list"))
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--only", default=None, help="only the cases whose label contains this")
    args = ap.parse_args(argv)
    if args.action == "list":
        for c in cases():
            print(c[0])
        return 0
    rows = run_all(args.only, args.jobs)
    if args.action == "save":
        doc = {k: {f: _jsonable(v) for f, v in r.items()} for k, r in rows.items()}
        Path(args.out).write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
        print(f"saved {len(rows)} rows to {args.out}")
        return 0
    gold = json.loads(Path(args.out).read_text(encoding="utf-8"))
    bad = 0
    for key, row in rows.items():
        if key not in gold:
            print(f"NEW   {key}")
            bad += 1
            continue
        g = {f: (float("nan") if v == "NaN" else v) for f, v in gold[key].items()}
        diffs = [
            f"{f}: {g.get(f)!r} -> {row.get(f)!r}"
            for f in sorted(set(g) | set(row))
            if f != "wall_s" and not _same(g.get(f), row.get(f))
        ]
        if diffs:
            bad += 1
            print(f"DIFF  {key}")
            for d in diffs:
                print(f"        {d}")
    if args.only is None:
        for key in gold:
            if key not in rows:
                print(f"GONE  {key}")
                bad += 1
    print(f"{len(rows) - bad}/{len(rows)} rows identical" + ("" if not bad else f"; {bad} differ"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
