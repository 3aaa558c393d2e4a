"""The figures the README quotes, generated from a fresh run rather than typed.

    .venv/bin/python -m simulator.docgen           # rewrite the blocks in README.md and docs/
    .venv/bin/python -m simulator.docgen --check   # exit 1 if one is out of date

Each block sits between `<!-- figures:NAME -->` and `<!-- /figures:NAME -->` in its file and is
replaced whole. Both come from one run of scenarios/xdp_redirect.yaml (four strategies on its
kernel, 5.12, and `single` on 5.11, the calibrated baseline; refill 64, one queue on the
E5-1650 v4) in this process, set against the published measurements (simulator.plots.REFERENCES):
- README.md `xdp-reference`: measured and modelled pps per strategy, and the gap;
- docs/xdp_redirect.md `xdp-refill-64`: pps, gain, allocator ns per packet, IRQ-off max.
tests/test_docgen.py runs the same and fails when the documents' figures are not what the model
computes; a change to the model's figures regenerates them with the first command above.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
XDP_DOC = ROOT / "docs" / "xdp_redirect.md"
XDP_SCENARIO = ROOT / "scenarios" / "xdp_redirect.yaml"

BASELINE = "single@5.11"  # the calibrated baseline's row
LABELS = {
    BASELINE: "`single` (5.11)",
    "single": "`single` (5.12)",
    "bulk_list": "`bulk_list` (the series)",
    "bulk_array": "`bulk_array`",
    "pagevec": "`pagevec`",
}


def xdp_reference_rows() -> list[dict[str, Any]]:
    """The rows of the reference replay, run now (about a second): the scenario's four points on
    its kernel, and `single` on 5.11 (strategy BASELINE)."""
    from simulator.run import Point, expand, run_point
    from simulator.scenario import Overrides, Setting, load_scenario

    sc = load_scenario(XDP_SCENARIO)
    rows = [run_point(sc, p) for p in expand(sc)]
    v511 = (Setting("kernel.version", "5.11", "docgen", "kernel.version"),)
    sc11 = load_scenario(XDP_SCENARIO, Overrides(strategies=["single"], settings=v511))
    base = run_point(sc11, Point("single", sc.model.batches[0], 1))
    return [{**base, "strategy": BASELINE}, *rows]


def _pps(v: float) -> str:
    return f"{v:,.0f} pps"


def _gain(v: float, base: float) -> str:
    return f"{(v / base - 1) * 100:+.1f} %".replace("-", "−")


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


def blocks() -> dict[Path, dict[str, str]]:
    """Every generated block, by file and name (one run of the reference replay)."""
    rows = xdp_reference_rows()
    return {
        README: {"xdp-reference": xdp_reference_table(rows)},
        XDP_DOC: {"xdp-refill-64": xdp_refill_table(rows)},
    }


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
    ap.add_argument("--check", action="store_true", help="only check; exit 1 if README.md is out of date")
    args = ap.parse_args(argv)
    stale = []
    for path, new_blocks in blocks().items():
        text = path.read_text(encoding="utf-8")
        new = replace_blocks(text, new_blocks)
        if new == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(new, encoding="utf-8")
    names = ", ".join(str(p.relative_to(ROOT)) for p in stale)
    if args.check:
        if stale:
            print(
                f"figures differ from a fresh run in {names}: run python -m simulator.docgen", file=sys.stderr
            )
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
