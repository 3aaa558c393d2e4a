"""`pagesim compare A B`: two result sets, point by point, as ratios B/A.

A and B are results directories (of `pagesim sweep`, or `pagesim run`); each side may be narrowed
with COLUMN=VALUE selections (`--a strategy=single --b strategy=bulk_array` compares two
strategies within one sweep). The sides are joined on the point's identity (scenario, workload,
hardware, strategy, batch, cpus, seed and the grid axes), except the identity columns that hold one
value on each side and differ between them: those are what is being compared (two hardware files,
two strategies, two seeds, two values of a grid axis), and the comparison names them.

Per joined point and figure: A's mean, B's mean, B/A, and whether B differs from A (`distinct`):
with two or more replications on each side, when the difference exceeds the two 95 % confidence
half-widths together (the intervals do not overlap); with a single replication on either side,
when it exceeds a stated relative tolerance (1 % unless --tolerance says otherwise). Either way a
difference within float noise (NOISE, relative) never counts: identical replications of a
deterministic point have zero-width intervals, and their means may differ in the last bit.

Identity columns that may differ between the sides only when asked for (--across): `workload`
(a ratio of page_bench's cycles to XDP's packets means nothing) and `hardware`. Tables in, tables
out: nothing here runs the model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.errors import ConfigError
from simulator.results import load_summary, metric_columns, point_columns
from simulator.workloads import WORKLOADS

# besides the workload's own summary figures, the allocator statistics the tables show
SHOWN_STATS = ("irq_off_max_ns", "zone_lock_wait_ns_per_page", "cache_misses_per_page")
DEFAULT_TOLERANCE = 0.01  # relative, for points with a single replication
NOISE = 1e-9  # relative: below it, two numbers are one (float rounding of sums and means)
# identity columns that differ between A and B only when the user asks (--across COLUMN)
GUARDED = {
    "workload": "results of different workloads measure different things",
    "hardware": "results on different hardware",
}


def select(df: pd.DataFrame, where: Mapping[str, str], flag: str) -> pd.DataFrame:
    """The rows whose COLUMN reads as VALUE, for every selection (values compared as text)."""
    for col, value in where.items():
        if col not in df.columns:
            raise ConfigError.one(
                "command line", flag, f"no column {col!r} in these results", f"{col}={value}"
            )
        text = df[col].astype(str)
        hit = text == value
        if not hit.any():
            # 64 and 64.0, true and True: compare as numbers or booleans when the text differs
            with_value = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
            if not pd.isna(with_value):
                hit = pd.to_numeric(df[col], errors="coerce") == with_value
            elif value.lower() in ("true", "false"):
                hit = text.str.lower() == value.lower()
        if not hit.any():
            have = ", ".join(sorted(dict.fromkeys(text))[:12])
            raise ConfigError.one(
                "command line", flag, f"selects no rows ({col} has: {have})", f"{col}={value}"
            )
        df = df[hit]
    return df


@dataclass
class Comparison:
    """B against A, point by point."""

    a: Path
    b: Path
    keys: list[str]  # the join's columns
    varied: dict[str, tuple[Any, Any]]  # identity columns compared: (A's value, B's value)
    metrics: list[str]  # every figure compared
    table: pd.DataFrame  # keys, then per metric: <m>_a, <m>_b, <m>_ratio, <m>_distinct
    only_a: int  # A's points with no match in B
    only_b: int
    tolerance: float = DEFAULT_TOLERANCE

    def rule(self) -> str:
        """What a '*' (distinct: true) means, as printed under the tables and put in the JSON."""
        return (
            "*: B differs from A by more than both 95 % confidence half-widths together (2 or more"
            f" replications on each side), or by more than {self.tolerance:.3g} of A (one replication;"
            " --tolerance); never by float noise alone"
        )

    def headline(self) -> str:
        what = (
            "; ".join(f"{c}: {a} -> {b}" for c, (a, b) in self.varied.items())
            or "same identity on both sides"
        )
        return (
            f"B/A ({what}): {len(self.table)} points in common"
            f" ({self.only_a} only in A, {self.only_b} only in B)"
        )

    def shown_keys(self) -> list[str]:
        """The join columns that vary across the joined points (a one-value column says nothing)."""
        return [c for c in self.keys if c != "seed" and self.table[c].nunique() > 1] or self.keys[:1]

    def tables(self, metrics: Sequence[str] | None = None) -> list[tuple[str, list[str], list[list[Any]]]]:
        """(title, headers, rows) per workload: the point, then B/A of each shown figure; a '*'
        marks ratios whose two 95 % confidence intervals do not overlap."""
        out = []
        groups = (
            self.table.groupby("workload", sort=False) if "workload" in self.table else [("", self.table)]
        )
        varied = ", ".join(f"{c} {a} -> {b}" for c, (a, b) in self.varied.items())
        for workload, part in groups:
            shown = list(metrics or self._default_metrics(str(workload)))
            shown = [m for m in shown if f"{m}_ratio" in part.columns and part[f"{m}_a"].notna().any()]
            keys = [k for k in self.shown_keys() if k != "workload" or len(groups) == 1]
            headers = [*keys, *shown]
            rows = []
            for rec in part.to_dict(orient="records"):
                line: list[Any] = [rec[k] for k in keys]
                for m in shown:
                    r = rec[f"{m}_ratio"]
                    text = "-" if r is None or (isinstance(r, float) and math.isnan(r)) else f"{r:.3f}"
                    line.append(text + ("*" if rec.get(f"{m}_distinct") is True else ""))
                rows.append(line)
            title = f"{workload}: B/A" + (f" ({varied})" if varied else "")
            out.append((title, headers, rows))
        return out

    def _default_metrics(self, workload: str) -> list[str]:
        figures = list(WORKLOADS[workload].summary) if workload in WORKLOADS else []
        return [m for m in dict.fromkeys([*figures, *SHOWN_STATS]) if m in self.metrics] or self.metrics[:8]

    def as_dict(self) -> dict[str, Any]:
        points = []
        for rec in self.table.to_dict(orient="records"):
            p: dict[str, Any] = {k: rec[k] for k in self.keys}
            p["figures"] = {
                m: {
                    "a": rec[f"{m}_a"],
                    "b": rec[f"{m}_b"],
                    "ratio": rec[f"{m}_ratio"],
                    "distinct": rec[f"{m}_distinct"],
                }
                for m in self.metrics
            }
            points.append(p)
        return {
            "a": str(self.a),
            "b": str(self.b),
            "distinct_means": self.rule().removeprefix("*: "),
            "tolerance": self.tolerance,
            "compared": {c: {"a": a, "b": b} for c, (a, b) in self.varied.items()},
            "keys": self.keys,
            "only_in_a": self.only_a,
            "only_in_b": self.only_b,
            "points": points,
        }


def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """B/A; NaN where A is 0 or missing (0/0 included)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = b / a
    r[~np.isfinite(r)] = np.nan
    return r


def compare(
    a: str | Path,
    b: str | Path,
    *,
    where_a: Mapping[str, str] | None = None,
    where_b: Mapping[str, str] | None = None,
    metrics: Sequence[str] | None = None,
    across: Sequence[str] = (),
    tolerance: float = DEFAULT_TOLERANCE,
) -> Comparison:
    """B/A of every figure (or of `metrics`) at every point the two result sets share.

    Results of different workloads or hardware are refused (ConfigError) unless that column is in
    `across`, or both selections name it (`--a hardware=X --b hardware=Y`)."""
    da, db = Path(a), Path(b)
    sa = select(load_summary(da), where_a or {}, "--a")
    sb = select(load_summary(db), where_b or {}, "--b")
    ident = [c for c in point_columns(sa) if c in point_columns(sb)]
    varied: dict[str, tuple[Any, Any]] = {}
    for c in ident:
        va, vb = list(dict.fromkeys(sa[c])), list(dict.fromkeys(sb[c]))
        if len(va) == 1 and len(vb) == 1 and str(va[0]) != str(vb[0]):
            varied[c] = (_plain(va[0]), _plain(vb[0]))
    for c in ident:
        if c not in GUARDED or c in across or (c in (where_a or {}) and c in (where_b or {})):
            continue
        sides = set(map(str, sa[c])), set(map(str, sb[c]))
        if c in varied or not (sides[0] & sides[1]):
            msg = (
                f"{GUARDED[c]} (A: {', '.join(sorted(sides[0]))}; B: {', '.join(sorted(sides[1]))});"
                f" to compare them anyway, add --across {c}"
            )
            raise ConfigError.one("command line", "B", msg, str(db))
    keys = [c for c in ident if c not in varied]
    common = [m for m in metric_columns(sa, keys) if m in set(metric_columns(sb, keys))]
    common = [m for m in common if not m.endswith("_ci95") and m != "replications"]
    if metrics:
        missing = [m for m in metrics if m not in common]
        if missing:
            raise ConfigError.one("command line", "--metric", "not a figure of both result sets", missing[0])
        common = list(metrics)
    if not common:
        raise ConfigError.one("command line", "B", "the two result sets have no figure in common", str(db))
    ja = _keyed(sa, keys)
    jb = _keyed(sb, keys)
    joined = ja.merge(jb, on="_key", suffixes=("_a", "_b"), sort=False)
    if joined.empty:
        have = "; ".join(
            f"{c}: A {sorted(map(str, set(sa[c])))[:6]}, B {sorted(map(str, set(sb[c])))[:6]}" for c in keys
        )
        raise ConfigError.one("command line", "B", f"no point in common with A ({have})", str(db))
    cols: dict[str, Any] = {k: joined[f"{k}_a"].to_numpy() for k in keys}
    for m in common:
        va = pd.to_numeric(joined[f"{m}_a"], errors="coerce").to_numpy(dtype=float)
        vb = pd.to_numeric(joined[f"{m}_b"], errors="coerce").to_numpy(dtype=float)
        cols[f"{m}_a"] = va
        cols[f"{m}_b"] = vb
        cols[f"{m}_ratio"] = ratio(va, vb)
        cols[f"{m}_distinct"] = _distinct(joined, m, va, vb, tolerance)
    out = pd.DataFrame(cols)
    only_a = len(ja) - ja["_key"].isin(jb["_key"]).sum()
    only_b = len(jb) - jb["_key"].isin(ja["_key"]).sum()
    table = out.reset_index(drop=True)
    return Comparison(da, db, keys, varied, common, table, int(only_a), int(only_b), tolerance)


def _keyed(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """`df` with a text join key (types differ between CSV and Parquet readings of a column)."""
    out = df.copy()
    out["_key"] = df[list(keys)].astype(str).agg("\x1f".join, axis=1) if keys else ""
    return out


def _distinct(
    joined: pd.DataFrame, m: str, va: np.ndarray, vb: np.ndarray, tolerance: float
) -> list[bool | None]:
    """Per point: B differs from A beyond the replications' confidence intervals (both sides have
    them), else beyond `tolerance` of A; never within float noise; None without two numbers."""
    ca, cb = f"{m}_ci95_a", f"{m}_ci95_b"
    nan = np.full(len(va), np.nan)
    wa = pd.to_numeric(joined[ca], errors="coerce").to_numpy(dtype=float) if ca in joined else nan
    wb = pd.to_numeric(joined[cb], errors="coerce").to_numpy(dtype=float) if cb in joined else nan
    out: list[bool | None] = []
    for x, y, u, v in zip(va, vb, wa, wb):
        if not (math.isfinite(x) and math.isfinite(y)):
            out.append(None)
            continue
        diff = abs(y - x)
        if diff <= NOISE * max(abs(x), abs(y)):
            out.append(False)
        elif math.isfinite(u) and math.isfinite(v):
            out.append(bool(diff > u + v))
        elif x == 0:
            out.append(None)  # no relative tolerance of nothing
        else:
            out.append(bool(diff > tolerance * abs(x)))
    return out


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v
