"""Figures of a results directory: tables in, figures out (matplotlib's object API: no pyplot,
no global backend; files are drawn by the Agg renderer, notebooks show the Figure objects).

Every number drawn comes from the directory's tables (summary: the mean and 95 % confidence
half-width per point across replications; rows for one-replication `pagesim run` results) or, for
the measured reference points, from the published measurements listed in REFERENCES. Nothing here
computes a model cost; the only arithmetic is presentation (a ratio of two table values, the 1/n
of Matthew Wilcox's argument).

Kinds (one figure per kind and scenario; `overview`: one figure for the whole result set):

    overview    the headline curve of each scenario, side by side (the README's figure)
    throughput  pps (xdp_redirect) or RPC/s (nfs) vs batch size per strategy
    cost        allocator cost per page vs batch; and relative to `single`, with 1/n
    latency     latency percentiles vs batch, and the tail (1 - CDF) from the table's percentiles
    irq         the IRQ-off window: max and p99 vs batch, and its tail per strategy
    zone_lock   zone->lock wait per page vs CPUs (scenarios with several CPU counts)
    cache       cache lines touched and L1 misses per page vs batch

Batch axes are log2 with marks at 15 (a pagevec), 64 (page_pool's refill) and 256 (sunrpc's
"200+"); a scenario with one batch value (nfs) gets bars per strategy instead of curves.
"""

from __future__ import annotations

import contextlib
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FixedLocator, FuncFormatter, NullLocator
from PIL import Image

import simulator
from simulator import results
from simulator.errors import ConfigError
from simulator.scenario import set_path

KINDS = ("overview", "throughput", "cost", "latency", "irq", "zone_lock", "cache", "scaling")

# SVG files that differ only in a random id or a date would be noise in version control
matplotlib.rcParams["svg.hashsalt"] = "pagesim"
matplotlib.rcParams["font.size"] = 9

STRATEGY_STYLE = {  # colour, marker
    "single": ("#4d4d4d", "o"),
    "bulk_list": ("#1f77b4", "s"),
    "bulk_array": ("#d62728", "^"),
    "pagevec": ("#2ca02c", "D"),
}
LINESTYLES = ("-", "--", ":", "-.")
MARKS = {15: "pagevec 15", 64: "refill 64", 256: "200+"}


# What to draw for each workload: (column, axis label with its unit)
THROUGHPUT = {
    "xdp_redirect": ("pps", "packets per second"),
    "nfs": ("ops_per_s", "RPCs completed per second"),
    "page_fault1": ("faults_per_s", "faults per second (all tasks)"),
}
THROUGHPUT_COLUMNS = {c for c, _ in THROUGHPUT.values()}
COST = {
    "page_bench": ("cycles_per_page", "cycles per page (alloc + free)"),
    "xdp_redirect": ("alloc_ns_per_packet", "allocator ns per packet (1 page per packet)"),
    "nfs": ("svc_alloc_arg_us_mean", "µs per svc_alloc_arg call (mean)"),
    "page_fault1": ("ns_per_fault", "ns per fault (one task: fault + its share of munmap)"),
}
# Cost per operation on one CPU as CPUs are added (the scaling figure)
PER_OP = {
    "page_bench": ("ns_per_page", "ns per page (alloc + free, one CPU)"),
    "xdp_redirect": ("ns_per_packet", "ns per packet (one queue)"),
    "page_fault1": ("ns_per_fault", "ns per fault (one task)"),
}
BATCH_LABEL = {
    "xdp_redirect": "page_pool refill size (pages per allocator call)",
    "nfs": "rq_pages entries refilled per call",
}


@dataclass(frozen=True)
class Distribution:
    """Quantile columns of one distribution in the table, and the column counting its samples."""

    name: str
    label: str  # axis label with unit
    quantiles: dict[float, str]  # quantile (1.0: the max) -> column
    count: str | None  # samples (for the max's position on a tail plot)


IRQ_OFF = Distribution(
    "irq_off",
    "IRQ-off window (ns)",
    {
        0.5: "irq_off_p50_ns",
        0.9: "irq_off_p90_ns",
        0.99: "irq_off_p99_ns",
        0.999: "irq_off_p999_ns",
        1.0: "irq_off_max_ns",
    },
    "irq_off_windows",
)
LATENCY = {
    "xdp_redirect": [
        Distribution(
            "irq_latency",
            "interrupt latency (ns)",
            {0.5: "irq_latency_p50_ns", 0.99: "irq_latency_p99_ns", 1.0: "irq_latency_max_ns"},
            "irqs",
        )
    ],
    "nfs": [
        Distribution(
            "rpc_latency",
            "RPC latency (µs)",
            {
                0.5: "latency_us_p50",
                0.99: "latency_us_p99",
                0.999: "latency_us_p999",
                1.0: "latency_us_max",
            },
            "requests",
        ),
        Distribution(
            "svc_alloc_arg",
            "svc_alloc_arg time (µs)",
            {0.5: "svc_alloc_arg_us_p50", 0.99: "svc_alloc_arg_us_p99", 1.0: "svc_alloc_arg_us_max"},
            "svc_alloc_arg_calls",
        ),
    ],
}


@dataclass(frozen=True)
class Reference:
    """A published measurement, drawn where a scenario reproduces its setup."""

    workload: str
    metric: str
    strategy: str
    batch: int | None  # None: the measurement holds at every batch (single ignores it)
    value: float
    label: str


REFERENCE_HOST = "broadwell-e5-1650v4"
REFERENCES = (
    # page_bench04_bulk, March 2021 (seed thread, KF §2)
    Reference("page_bench", "cycles_per_page", "single", None, 199.0, "measured: 199 cycles (single)"),
    # the seed's cover letter and PATCH 5/5: mlx5 XDP-redirect into veth, one CPU (KF §1)
    Reference("xdp_redirect", "pps", "single", None, 3_677_958.0, "measured: 3,677,958 pps (5.11 single)"),
    Reference("xdp_redirect", "pps", "bulk_list", 64, 4_368_926.0, "measured: 4,368,926 pps (bulk list, 64)"),
)
# the measurements' setup besides host, workload and one CPU: (dotted path, value) in the config
REFERENCE_SETUP = {
    "page_bench": {
        "kernel.debug_list": True,
        "page_bench.gfp": "GFP_ATOMIC",
        "page_bench.free": "one_by_one",
    },
    "xdp_redirect": {
        "kernel.debug_list": True,
        "xdp_redirect.queues_per_cpu": 1,
        "xdp_redirect.offered_load": "saturate",
        "xdp_redirect.recycle": 0.0,
        "xdp_redirect.nic_node": 0,
        "xdp_redirect.pool_node": "cpu",
    },
}


# Loading --------------------------------------------------------------------------------------


@dataclass
class ResultSet:
    """A results directory's tables, configurations and metadata."""

    path: Path
    summary: pd.DataFrame
    configs: dict[str, dict[str, Any]]  # scenario name -> resolved configuration
    meta: dict[str, Any] = field(default_factory=dict)
    grid_columns: list[str] = field(default_factory=list)

    @property
    def scenarios(self) -> list[str]:
        return list(dict.fromkeys(self.summary["scenario"]))

    def part(self, scenario: str) -> pd.DataFrame:
        return self.summary[self.summary["scenario"] == scenario]


def load(directory: str | Path) -> ResultSet:
    """A directory written by `pagesim sweep` or `pagesim run`."""
    d = Path(directory)
    summary = results.load_summary(d)
    configs: dict[str, dict[str, Any]] = {}
    try:
        cfg = results.load_config(d)
    except OSError:
        cfg = {}
    for c in cfg.get("scenarios", [cfg] if "workload" in cfg else []):
        configs[str(c.get("name"))] = c
    meta: dict[str, Any] = {}
    with contextlib.suppress(OSError, ConfigError):
        meta = results.load_metadata(d)
    grid = list(meta.get("grid_columns", [])) or [c for c in summary.columns if "." in c]
    return ResultSet(d, summary, configs, meta, grid)


# Helpers --------------------------------------------------------------------------------------


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _has(df: pd.DataFrame, col: str) -> bool:
    """The column exists and holds a non-zero finite value somewhere."""
    if col not in df.columns:
        return False
    v = pd.to_numeric(df[col], errors="coerce")
    return bool((v.notna() & (v != 0)).any())


def _batch_axis(df: pd.DataFrame) -> bool:
    return df["batch"].nunique() > 1


def _series(df: pd.DataFrame, x: str, rs: ResultSet) -> list[tuple[str, str, dict[str, Any], pd.DataFrame]]:
    """The curves of a panel: one per strategy and combination of the other varying identity
    columns (cpus, grid axes); (strategy, label, those columns' values, rows sorted by x)."""
    others = [
        c for c in ("batch", "cpus", *rs.grid_columns) if c != x and c in df.columns and df[c].nunique() > 1
    ]
    out = []
    for strategy in dict.fromkeys(df["strategy"]):
        s = df[df["strategy"] == strategy]
        combos = s[others].drop_duplicates().to_dict(orient="records") if others else [{}]
        for combo in combos:
            part = s
            for c, v in combo.items():
                part = part[part[c] == v]
            label = strategy + "".join(f", {c}={v}" for c, v in combo.items())
            out.append((strategy, label, combo, part.sort_values(x)))
    return out


def _style(strategy: str, k: int) -> dict[str, Any]:
    colour, marker = STRATEGY_STYLE.get(strategy, ("#9467bd", "v"))
    return {"color": colour, "marker": marker, "linestyle": LINESTYLES[k % len(LINESTYLES)], "markersize": 4}


def _line(ax: Axes, x: np.ndarray, df: pd.DataFrame, col: str, style: dict[str, Any], label: str) -> None:
    y = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    ax.plot(x, y, label=label, **style)
    ci_col = f"{col}_ci95"
    if ci_col in df.columns:
        ci = pd.to_numeric(df[ci_col], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(ci) & (ci > 0)
        if ok.any():
            ax.fill_between(
                x, y - np.where(ok, ci, 0), y + np.where(ok, ci, 0), color=style["color"], alpha=0.15
            )


LEGEND_PLACES = ("upper right", "upper left", "lower left", "lower right", "center right", "center left")


def _renderer(fig: Figure) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    return canvas.get_renderer()


def legend_covers(ax: Axes, legend: Any, renderer: Any) -> bool:
    """Whether `legend` lies over any curve or marker of `ax` (in display space: lines are
    sampled along each segment, so a line crossing the box counts, not only its markers). Guides
    without a label (the dotted batch marks) may run under a legend."""
    box = legend.get_window_extent(renderer).padded(2)
    for line in ax.get_lines():
        if str(line.get_label()).startswith("_"):
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        xy = xy[np.isfinite(xy).all(axis=1)]
        if len(xy) == 0:
            continue
        if len(xy) > 1:  # points along each segment, 20 per segment
            t = np.linspace(0.0, 1.0, 20)[:, None, None]
            xy = (xy[:-1] * (1 - t) + xy[1:] * t).reshape(-1, 2)
        inside = (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)
        if inside.any():
            return True
    return False


def _place_legend(ax: Axes, **kw: Any) -> None:
    """A legend that hides no curve: the first corner clear of every line; failing that, room is
    made above the curves (the y axis is extended) and the legend goes there; failing that, it
    goes outside the axes, below the x label."""
    renderer = _renderer(ax.figure)
    for place in LEGEND_PLACES:
        legend = ax.legend(loc=place, **kw)
        if not legend_covers(ax, legend, renderer):
            return
    lo, hi = ax.get_ylim()
    log = ax.get_yscale() == "log"
    for grow in (1.5, 2.2):
        if log:
            ax.set_ylim(lo, hi * (hi / lo) ** (grow - 1))
        else:
            ax.set_ylim(lo, hi + (hi - lo) * (grow - 1))
        for place in ("upper right", "upper left", "upper center"):
            legend = ax.legend(loc=place, **kw)
            if not legend_covers(ax, legend, renderer):
                return
    ax.set_ylim(lo, hi)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, **kw)


def _batch_ticks(batches: Sequence[int]) -> list[int]:
    """The batch values as ticks, without neighbours too close to read on a log axis (15 and 16:
    the marked one stays)."""
    ticks: list[int] = []
    for b in sorted({int(x) for x in batches}):
        if ticks and b / ticks[-1] < 1.25:
            if b in MARKS and ticks[-1] not in MARKS:
                ticks[-1] = b
            continue
        ticks.append(b)
    return ticks


def _batch_xaxis(ax: Axes, batches: Sequence[int], workload: str) -> None:
    """A log2 batch axis with the review's sizes marked along the top."""
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(_batch_ticks(batches)))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(BATCH_LABEL.get(workload, "batch size (pages per allocator call)") + ", log scale")
    lo, hi = min(batches), max(batches)
    marks = [b for b in MARKS if lo <= b <= hi]
    for b in marks:
        ax.axvline(b, color="#999999", linewidth=0.8, linestyle=":", zorder=0)
    top = ax.secondary_xaxis("top")
    top.xaxis.set_major_locator(FixedLocator(marks))
    top.xaxis.set_minor_locator(NullLocator())
    top.xaxis.set_major_formatter(FuncFormatter(lambda v, _: MARKS.get(round(v), "")))
    top.tick_params(labelsize=6.5, labelcolor="#666666", length=2)


def _caption(fig: Figure, rs: ResultSet, scenarios: Sequence[str]) -> None:
    parts = []
    for name in scenarios:
        df = rs.part(name)
        cfg = rs.configs.get(name, {})
        hw = ", ".join(dict.fromkeys(str(h) for h in df["hardware"]))
        desc = cfg.get("description") or ""
        n = sorted({int(v) for v in df["replications"]}) if "replications" in df.columns else [1]
        reps = (
            f"{n[0]} replication{'s' if n[0] != 1 else ''}" if len(n) == 1 else f"{n[0]}-{n[-1]} replications"
        )
        parts.append(f"{name} on {hw} ({desc}; {reps})" if desc else f"{name} on {hw} ({reps})")
    rev = str(rs.meta.get("git_revision", "unknown"))[:10]
    text = (
        "Scenario: " + "; ".join(parts) + ". Lines: mean over replications; bands: 95 % CI where not zero."
        f" pagesim {rs.meta.get('pagesim_version', simulator.__version__)} ({rev})."
    )
    width = int(fig.get_figwidth() * 72 / (6.5 * 0.52))  # characters per line at 6.5 pt
    fig.text(0.005, 0.005, textwrap.fill(text, width), fontsize=6.5, color="#444444", ha="left", va="bottom")


def _new_figure(panels: int, height: float = 3.6) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(5.2 * panels, height))
    axes = fig.subplots(1, panels, squeeze=False)
    fig.subplots_adjust(bottom=0.24, top=0.88, wspace=0.3, left=0.07 if panels > 1 else 0.14, right=0.98)
    return fig, list(axes[0])


def _matches_reference(rs: ResultSet, scenario: str, df: pd.DataFrame, combo: dict[str, Any]) -> bool:
    """Whether the rows `df` (one series) reproduce the measurements' setup."""
    if df.empty:
        return False
    workload = str(df["workload"].iloc[0])
    cfg = rs.configs.get(scenario)
    if workload not in REFERENCE_SETUP or cfg is None:
        return False
    if set(df["hardware"]) != {REFERENCE_HOST} or set(df["cpus"]) != {1}:
        return False
    for path, value in combo.items():  # the series' grid values, over the scenario's own
        if path in rs.grid_columns:
            cfg = set_path(cfg, path, value)
    for path, want in REFERENCE_SETUP[workload].items():
        node: Any = cfg
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != want:
            return False
    return True


def _references(
    ax: Axes, rs: ResultSet, scenario: str, series: list[Any], metric: str, xs: Sequence[int]
) -> None:
    drawn = set()
    for strategy, _, combo, part in series:
        for ref in REFERENCES:
            if ref.metric != metric or ref.strategy != strategy or ref.label in drawn:
                continue
            if str(part["workload"].iloc[0]) != ref.workload or not _matches_reference(
                rs, scenario, part, combo
            ):
                continue
            colour = STRATEGY_STYLE.get(strategy, ("k", "o"))[0]
            if ref.batch is None:
                ax.axhline(
                    ref.value, color=colour, linewidth=1.0, linestyle=(0, (6, 3)), alpha=0.7, label=ref.label
                )
            elif min(xs) <= ref.batch <= max(xs):
                ax.plot(
                    [ref.batch],
                    [ref.value],
                    marker="*",
                    markersize=11,
                    color=colour,
                    markeredgecolor="black",
                    linestyle="none",
                    label=ref.label,
                )
            drawn.add(ref.label)


def _bars(ax: Axes, df: pd.DataFrame, col: str, rs: ResultSet) -> None:
    """A scenario without a batch axis: one bar per series."""
    series = _series(df, "strategy", rs)
    labels, values, errors, colours = [], [], [], []
    for strategy, label, _, part in series:
        labels.append(label.replace(", ", "\n"))
        values.append(float(pd.to_numeric(part[col], errors="coerce").mean()))
        ci = part.get(f"{col}_ci95")
        e = float(pd.to_numeric(ci, errors="coerce").mean()) if ci is not None else math.nan
        errors.append(e if _finite(e) and e > 0 else math.nan)  # no interval: no error bar
        colours.append(STRATEGY_STYLE.get(strategy, ("#9467bd", "v"))[0])
    x = np.arange(len(values))
    shown = [e for e in errors if not math.isnan(e)]
    ax.bar(x, values, yerr=errors if shown else None, color=colours, alpha=0.85, capsize=3)
    ax.set_xticks(x, labels)
    ax.set_xlabel("strategy")
    if col in THROUGHPUT_COLUMNS:
        ax.yaxis.set_major_formatter(EngFormatter(places=0, sep=" "))


# Figures --------------------------------------------------------------------------------------


def _metric_panel(ax: Axes, rs: ResultSet, scenario: str, col: str, label: str, refs: bool = True) -> None:
    df = rs.part(scenario)
    workload = str(df["workload"].iloc[0])
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
    if not _batch_axis(df):
        _bars(ax, df, col, rs)
        ax.set_title(f"{scenario}: {label}", fontsize=9)
        return
    series = _series(df, "batch", rs)
    for k, (strategy, name, _, part) in enumerate(series):
        _line(ax, part["batch"].to_numpy(dtype=float), part, col, _style(strategy, k // 4), name)
    xs = sorted(int(b) for b in df["batch"].unique())
    if refs:
        _references(ax, rs, scenario, series, col, xs)
    _batch_xaxis(ax, xs, workload)
    ax.set_title(f"{scenario}: {label}", fontsize=9, pad=12)
    if col in THROUGHPUT_COLUMNS:
        ax.yaxis.set_major_formatter(EngFormatter(places=2, sep=" "))
    _place_legend(ax, fontsize=7)


def fig_throughput(rs: ResultSet, scenario: str) -> Figure | None:
    df = rs.part(scenario)
    spec = THROUGHPUT.get(str(df["workload"].iloc[0]))
    if spec is None or not _has(df, spec[0]):
        return None
    fig, (ax,) = _new_figure(1, 4.0)
    _metric_panel(ax, rs, scenario, *spec)
    _caption(fig, rs, [scenario])
    return fig


def fig_cost(rs: ResultSet, scenario: str) -> Figure | None:
    df = rs.part(scenario)
    spec = COST.get(str(df["workload"].iloc[0]))
    if spec is None or not _has(df, spec[0]):
        return None
    col, label = spec
    batched = _batch_axis(df) and "single" in set(df["strategy"])
    fig, axes = _new_figure(2 if batched else 1, 4.0)
    _metric_panel(axes[0], rs, scenario, col, label)
    if batched:
        ax = axes[1]
        single = df[df["strategy"] == "single"]
        for k, (strategy, name, combo, part) in enumerate(_series(df, "batch", rs)):
            base = single
            for c, v in combo.items():
                base = base[base[c] == v]
            base = base.set_index("batch")[col]
            x = part["batch"].to_numpy(dtype=float)
            ratio = pd.to_numeric(part[col], errors="coerce").to_numpy(dtype=float) / base.reindex(
                part["batch"]
            ).to_numpy(dtype=float)
            ax.plot(x, ratio, label=name, **_style(strategy, k // 4))
        xs = sorted(int(b) for b in df["batch"].unique())
        n = np.array(xs, dtype=float)
        ax.plot(
            n, 1.0 / n, color="black", linewidth=1.0, linestyle=(0, (2, 2)), label="1/n: all cost per call"
        )
        ax.set_yscale("log")
        ax.set_ylabel("cost per page relative to single (log)")
        ax.set_title("relative to single; Wilcox's arithmetic: 1/n", fontsize=9, pad=12)
        ax.grid(True, alpha=0.3, which="both")
        _batch_xaxis(ax, xs, str(df["workload"].iloc[0]))
        _place_legend(ax, fontsize=7)
    _caption(fig, rs, [scenario])
    return fig


def _tail_panel(ax: Axes, df: pd.DataFrame, dist: Distribution, rs: ResultSet, at_batch: int | None) -> bool:
    """1 - CDF from the table's quantiles: (value at quantile q, 1 - q); the max at 1/samples."""
    part_df = df if at_batch is None else df[df["batch"] == at_batch]
    drawn = False
    for k, (strategy, name, _, part) in enumerate(_series(part_df, "batch", rs)):
        xs, ys = [], []
        for q, col in sorted(dist.quantiles.items()):
            if col not in part.columns:
                continue
            v = float(pd.to_numeric(part[col], errors="coerce").mean())
            if q >= 1.0:
                n = (
                    float(pd.to_numeric(part[dist.count], errors="coerce").mean())
                    if dist.count in part
                    else 0
                )
                if not n or not _finite(n):
                    continue
                q = 1.0 - 1.0 / n
            if _finite(v) and v > 0 and q < 1.0:
                xs.append(v)
                ys.append(1.0 - q)
        if len(xs) >= 2:
            ax.plot(xs, ys, label=name, drawstyle="steps-post", **_style(strategy, k // 4))
            drawn = True
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(dist.label + ", log scale")
    ax.set_ylabel("fraction longer (1 - CDF), log")
    where = f" at batch {at_batch}" if at_batch is not None else ""
    ax.set_title(f"tail{where}, from the percentiles in the table (steps: upper bound)", fontsize=9)
    ax.grid(True, alpha=0.3, which="both")
    if drawn:
        _place_legend(ax, fontsize=7)
    return drawn


def _pick_batch(df: pd.DataFrame) -> int | None:
    batches = sorted(int(b) for b in df["batch"].unique())
    if len(batches) <= 1:
        return None
    return 64 if 64 in batches else batches[len(batches) // 2]


def _distribution_figure(rs: ResultSet, scenario: str, dist: Distribution) -> Figure | None:
    df = rs.part(scenario)
    cols = [c for c in dist.quantiles.values() if c in df.columns]
    if not any(_has(df, c) for c in cols):
        return None
    fig, (left, right) = _new_figure(2, 4.0)
    workload = str(df["workload"].iloc[0])
    if _batch_axis(df):
        hi = dist.quantiles.get(1.0)
        p99 = dist.quantiles.get(0.99)
        for k, (strategy, name, _, part) in enumerate(_series(df, "batch", rs)):
            x = part["batch"].to_numpy(dtype=float)
            style = _style(strategy, k // 4)
            if p99 in part.columns:
                _line(left, x, part, p99, {**style, "linestyle": "--"}, f"{name} p99")
            if hi in part.columns:
                _line(left, x, part, hi, style, f"{name} max")
        left.set_yscale("log")
        _batch_xaxis(left, sorted(int(b) for b in df["batch"].unique()), workload)
        left.set_title(f"{scenario}: max (solid) and p99 (dashed)", fontsize=9, pad=12)
    else:
        qs = sorted(q for q, c in dist.quantiles.items() if c in df.columns)
        names = ["max" if q >= 1 else f"p{q * 100:g}" for q in qs]
        for k, (strategy, name, _, part) in enumerate(_series(df, "strategy", rs)):
            ys = [float(pd.to_numeric(part[dist.quantiles[q]], errors="coerce").mean()) for q in qs]
            left.plot(range(len(qs)), ys, label=name, **_style(strategy, k // 4))
        left.set_xticks(range(len(qs)), names)
        left.set_xlabel("percentile")
        left.set_yscale("log")
        left.set_title(f"{scenario}: percentiles per strategy", fontsize=9)
    left.set_ylabel(dist.label + ", log scale")
    left.grid(True, alpha=0.3, which="both")
    _place_legend(left, fontsize=6.5, ncol=2 if _batch_axis(df) else 1)
    _tail_panel(right, df, dist, rs, _pick_batch(df))
    _caption(fig, rs, [scenario])
    return fig


def fig_latency(rs: ResultSet, scenario: str) -> list[tuple[str, Figure]]:
    df = rs.part(scenario)
    out = []
    for dist in LATENCY.get(str(df["workload"].iloc[0]), []):
        fig = _distribution_figure(rs, scenario, dist)
        if fig is not None:
            out.append((dist.name, fig))
    return out


def fig_irq(rs: ResultSet, scenario: str) -> Figure | None:
    return _distribution_figure(rs, scenario, IRQ_OFF)


def fig_zone_lock(rs: ResultSet, scenario: str) -> Figure | None:
    """zone->lock wait per page vs CPUs (top) and what it does to the cost per page (bottom), one
    column per marked batch size."""
    df = rs.part(scenario)
    col = "zone_lock_wait_ns_per_page"
    if df["cpus"].nunique() < 2 or col not in df.columns:
        return None
    workload = str(df["workload"].iloc[0])
    rows = [(col, "zone->lock wait per page (ns)")]
    if workload in COST and COST[workload][0] in df.columns:
        rows.append(COST[workload])
    batches = sorted(int(b) for b in df["batch"].unique())
    shown = batches if len(batches) <= 4 else [b for b in batches if b in MARKS] or batches[-4:]
    fig = Figure(figsize=(5.2 * len(shown), 3.0 * len(rows) + 0.8))
    grid = fig.subplots(len(rows), len(shown), squeeze=False)
    fig.subplots_adjust(bottom=0.16, top=0.93, wspace=0.3, hspace=0.35, left=0.07, right=0.98)
    cpus = sorted(int(c) for c in df["cpus"].unique())
    for r, (metric, label) in enumerate(rows):
        for ax, b in zip(grid[r], shown):
            part_df = df[df["batch"] == b]
            for k, (strategy, name, _, part) in enumerate(_series(part_df, "cpus", rs)):
                _line(ax, part["cpus"].to_numpy(dtype=float), part, metric, _style(strategy, k // 4), name)
            ax.set_xlabel("CPUs allocating (one benchmark loop each)")
            ax.set_ylabel(label)
            ax.set_xticks(cpus)
            ax.set_title(f"{scenario}: batch {b}", fontsize=9)
            ax.grid(True, alpha=0.3)
            _place_legend(ax, fontsize=7)
    _caption(fig, rs, [scenario])
    return fig


def fig_scaling(rs: ResultSet, scenario: str) -> Figure | None:
    """Cost per operation on one CPU (left) and the share of all CPUs' time spent spinning on
    each lock class (right) against the number of CPUs, one curve per strategy and batch."""
    df = rs.part(scenario)
    workload = str(df["workload"].iloc[0])
    spec = PER_OP.get(workload)
    # each lock class's share (lockstat's classes: zone_lock, lru_lock); cpu_spin_share is their sum
    spins = [c for c in df.columns if c.endswith("_spin_share") and c != "cpu_spin_share" and _has(df, c)]
    if df["cpus"].nunique() < 2 or spec is None or spec[0] not in df.columns:
        return None
    fig, (left, right) = _new_figure(2, 3.8)
    cpus = sorted(int(c) for c in df["cpus"].unique())
    series = _series(df, "cpus", rs)
    for k, (strategy, name, _, part) in enumerate(series):
        x = part["cpus"].to_numpy(dtype=float)
        style = _style(strategy, k // 4)
        _line(left, x, part, spec[0], style, name)
        for j, col in enumerate(spins):
            lock = col.removesuffix("_spin_share").replace("_", " ")
            _line(
                right,
                x,
                part,
                col,
                {**style, "linestyle": LINESTYLES[j % len(LINESTYLES)]},
                f"{name}: {lock}",
            )
    for ax in (left, right):
        ax.set_xlabel("CPUs (one task or loop each)")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(cpus))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.grid(True, alpha=0.3)
    left.set_ylabel(spec[1])
    left.set_title(f"{scenario}: cost per operation", fontsize=9)
    right.set_ylabel("share of all CPUs' time spinning")
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    right.set_title("lock spinning (lockstat-like wait time / CPU time)", fontsize=9)
    _place_legend(left, fontsize=7)
    if spins:
        _place_legend(right, fontsize=6.5)
    _caption(fig, rs, [scenario])
    return fig


def fig_cache(rs: ResultSet, scenario: str) -> Figure | None:
    df = rs.part(scenario)
    cols = [
        ("cache_lines_per_page", "cache lines touched per page"),
        ("cache_misses_per_page", "L1 misses per page (lines from L2 or beyond)"),
    ]
    cols = [(c, label) for c, label in cols if c in df.columns]
    if not _batch_axis(df) or not cols:
        return None
    fig, axes = _new_figure(len(cols), 3.8)
    for ax, (c, label) in zip(axes, cols):
        _metric_panel(ax, rs, scenario, c, label, refs=False)
    _caption(fig, rs, [scenario])
    return fig


def fig_overview(rs: ResultSet, scenarios: Sequence[str] | None = None) -> Figure | None:
    """One panel per scenario: throughput where the workload has it and a batch axis, else cost."""
    panels = []
    for name in scenarios or rs.scenarios:
        df = rs.part(name)
        workload = str(df["workload"].iloc[0])
        spec = THROUGHPUT.get(workload) if _batch_axis(df) else None
        spec = spec or COST.get(workload)
        if spec and _has(df, spec[0]):
            panels.append((name, spec))
    if not panels:
        return None
    fig, axes = _new_figure(len(panels), 3.8)
    for ax, (name, (col, label)) in zip(axes, panels):
        _metric_panel(ax, rs, name, col, label)
    _caption(fig, rs, [name for name, _ in panels])
    return fig


def figures(rs: ResultSet, kind: str, scenario: str | None = None) -> list[tuple[str, Figure]]:
    """(file stem, figure) of one kind: for one scenario, or every scenario (overview: all in one)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if kind == "overview":
        fig = fig_overview(rs, [scenario] if scenario else None)
        return [("overview", fig)] if fig is not None else []
    out: list[tuple[str, Figure]] = []
    for name in [scenario] if scenario else rs.scenarios:
        if kind == "latency":
            out += [(f"latency-{d}-{name}", f) for d, f in fig_latency(rs, name)]
            continue
        make = {
            "throughput": fig_throughput,
            "cost": fig_cost,
            "irq": fig_irq,
            "zone_lock": fig_zone_lock,
            "cache": fig_cache,
            "scaling": fig_scaling,
        }[kind]
        fig = make(rs, name)
        if fig is not None:
            out.append((f"{kind}-{name}", fig))
    return out


def save(fig: Figure, out: Path, stem: str, formats: Sequence[str]) -> list[Path]:
    """The figure as out/stem.<format>, reproducibly (no dates in SVG or PNG metadata). PNGs are
    stored with a 256-colour palette: a third of the bytes of a full-colour file, no visible change
    on line plots (small enough to commit, as docs/figures/ is)."""
    written = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        if fmt == "png":
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
            buf.seek(0)
            with Image.open(buf) as im:
                im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
                    path, optimize=True
                )
        else:
            fig.savefig(path, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
        written.append(path)
    return written


def write_figures(
    rs: ResultSet,
    out: str | Path,
    kinds: Sequence[str] = KINDS,
    formats: Sequence[str] = ("png", "svg"),
    scenarios: Sequence[str] | None = None,
) -> tuple[list[Path], list[str]]:
    """Write every applicable figure; returns the files and a note per kind that did not apply."""
    d = Path(out)
    written: list[Path] = []
    notes: list[str] = []
    for kind in kinds:
        if kind == "overview":
            made = [("overview", f) for f in [fig_overview(rs, scenarios)] if f is not None]
        else:
            made = []
            for name in scenarios or rs.scenarios:
                made += figures(rs, kind, name)
        if not made:
            notes.append(f"no {kind} figure: {_why_not(kind)}")
        for stem, fig in made:
            d.mkdir(parents=True, exist_ok=True)  # only once there is a figure to put in it
            written += save(fig, d, stem, formats)
    return written, notes


def _why_not(kind: str) -> str:
    return {
        "zone_lock": "no scenario has more than one CPU count (try scenarios/sweep_cpus.yaml)",
        "latency": "no latency percentiles in these results (or all zero: a saturated NIC raises no IRQs)",
        "cache": "no scenario has a batch axis",
        "irq": "no IRQ-off window statistics in these results",
        "scaling": "no scenario has more than one CPU count and a cost per operation (try "
        "scenarios/sweep_scaling.yaml)",
    }.get(kind, "nothing to draw in these results")
