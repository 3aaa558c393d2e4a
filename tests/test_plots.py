"""Figures: every kind from a synthetic result set (tables in, figures out), measured reference
points only where the scenario reproduces the measurement's setup, captions and axis labels,
reproducible SVG, the `pagesim plot` command, and figures of a real (small) sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from matplotlib.figure import Figure

from simulator import cli, plots, results
from simulator.executor import LocalExecutor
from simulator.sweep import load_sweep, run_sweep

STRATEGIES = ("single", "bulk_list", "bulk_array", "pagevec")
BATCHES = (1, 4, 15, 16, 64, 256)
PER_CALL = {"single": 0.0, "bulk_list": 60.0, "bulk_array": 85.0, "pagevec": 80.0}


def _cost(strategy: str, batch: int) -> float:
    if strategy == "single":
        return 205.0
    n = min(batch, 15) if strategy == "pagevec" else batch
    return 205.0 - PER_CALL[strategy] * (1 - 1 / n)


def _irq(strategy: str, batch: int) -> dict[str, float]:
    n = 1 if strategy == "single" else min(batch, 15) if strategy == "pagevec" else batch
    return {
        "irq_off_p50_ns": 10.0,
        "irq_off_p90_ns": 10.0,
        "irq_off_p99_ns": 10.0 if n > 64 else 8.0 * n + 2,
        "irq_off_p999_ns": 8.0 * n + 2,
        "irq_off_max_ns": 8.0 * n + 2,
        "irq_off_windows": 4000,
    }


def synthetic(tmp: Path, hardware: str = "broadwell-e5-1650v4", queues: int = 1) -> Path:
    """A results directory as `pagesim sweep` writes it, with made-up figures for page_bench,
    xdp_redirect (batch axes), nfs (one batch) and a page_bench CPU sweep."""
    base = {"hardware": hardware, "seed": 1}
    rows: list[dict[str, Any]] = []
    for rep in (0, 1):
        for s in STRATEGIES:
            for b in BATCHES:
                c = _cost(s, b)
                common = {"strategy": s, "batch": b, "cpus": 1, "replication": rep, **base}
                rows.append(
                    {
                        "scenario": "pb",
                        "workload": "page_bench",
                        **common,
                        "cycles_per_page": c,
                        "ns_per_page": c / 3.6,
                        **_irq(s, b),
                        "cache_lines_per_page": 9.0 + (b > 64) * 0.5,
                        "cache_misses_per_page": 0.1 * (b > 64),
                        "zone_lock_wait_ns_per_page": 0.0,
                    }
                )
                rows.append(
                    {
                        "scenario": "xdp",
                        "workload": "xdp_redirect",
                        **common,
                        "pps": 1e9 / (240.0 + c / 6.6),
                        "alloc_ns_per_packet": c / 6.6,
                        "irq_latency_p50_ns": 50.0 + rep,
                        "irq_latency_p99_ns": 100.0 + b,
                        "irq_latency_max_ns": 200.0 + 8 * b,
                        "irqs": 1000,
                        **_irq(s, b),
                        "cache_misses_per_page": 1.0,
                        "cache_lines_per_page": 12.0,
                    }
                )
            rows.append(
                {
                    "scenario": "nfs",
                    "workload": "nfs",
                    "strategy": s,
                    "batch": 1,
                    "cpus": 6,
                    "replication": rep,
                    **base,
                    "ops_per_s": 150_000.0 + 100 * rep,
                    "svc_alloc_arg_us_mean": 0.6 - 0.05 * STRATEGIES.index(s) + 0.01 * rep,
                    "svc_alloc_arg_us_p50": 0.2,
                    "svc_alloc_arg_us_p99": 10.0,
                    "svc_alloc_arg_us_max": 40.0,
                    "svc_alloc_arg_calls": 3000,
                    "latency_us_p50": 8.5,
                    "latency_us_p99": 170.0,
                    "latency_us_p999": 180.0,
                    "latency_us_max": 200.0,
                    "requests": 3000,
                    **_irq(s, 64),
                }
            )
    for s in STRATEGIES:
        for b in (64, 512):
            for n in (1, 2, 4):
                rows.append(
                    {
                        "scenario": "cpus",
                        "workload": "page_bench",
                        "strategy": s,
                        "batch": b,
                        "cpus": n,
                        "replication": 0,
                        **base,
                        "cycles_per_page": _cost(s, b) * (1 + (b > 378) * (n - 1)),
                        "zone_lock_wait_ns_per_page": (b > 378) * 50.0 * (n - 1) ** 2,
                    }
                )
    rows_table = results.rows_table(rows)
    out = tmp / f"res-{hardware}-{queues}"
    out.mkdir()
    rows_table.to_parquet(out / "rows.parquet")
    results.summarize(rows_table).to_parquet(out / "summary.parquet")
    hw_path = f"/somewhere/{hardware}.yaml"
    kernel = {"debug_list": True, "prep_new_page": "irq_off", "thp": True}
    config = {
        "name": "synthetic",
        "scenarios": [
            {"name": "pb", "workload": "page_bench", "hardware": hw_path, "description": "synthetic",
             "kernel": kernel, "page_bench": {"gfp": "GFP_ATOMIC", "free": "one_by_one"}},
            {"name": "xdp", "workload": "xdp_redirect", "hardware": hw_path, "kernel": kernel,
             "xdp_redirect": {"queues_per_cpu": queues, "offered_load": "saturate", "recycle": 0.0,
                              "nic_node": 0, "pool_node": "cpu"}},
            {"name": "nfs", "workload": "nfs", "hardware": hw_path, "kernel": kernel, "nfs": {}},
            {"name": "cpus", "workload": "page_bench", "hardware": hw_path, "kernel": kernel,
             "page_bench": {"gfp": "GFP_ATOMIC", "free": "one_by_one"}},
        ],
    }  # fmt: skip
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    (out / "metadata.json").write_text(
        json.dumps({"pagesim_version": "0.1.0", "git_revision": "abc", "grid_columns": []})
    )
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> plots.ResultSet:
    return plots.load(synthetic(tmp_path_factory.mktemp("synth")))


def _labels(fig: Figure) -> list[str]:
    return [label for ax in fig.axes for label in ax.get_legend_handles_labels()[1]]


def test_kinds_are_the_commands_choices() -> None:
    assert cli.PLOT_KINDS == plots.KINDS


def test_every_kind_draws_where_it_applies(synth: plots.ResultSet, tmp_path: Path) -> None:
    made = {stem: fig for kind in plots.KINDS for stem, fig in plots.figures(synth, kind)}
    assert set(made) == {
        "overview",
        *(f"throughput-{s}" for s in ("xdp", "nfs")),
        *(f"cost-{s}" for s in ("pb", "xdp", "nfs", "cpus")),
        "latency-irq_latency-xdp",
        "latency-rpc_latency-nfs",
        "latency-svc_alloc_arg-nfs",
        *(f"irq-{s}" for s in ("pb", "xdp", "nfs")),
        "zone_lock-cpus",
        "scaling-cpus",
        *(f"cache-{s}" for s in ("pb", "xdp", "cpus")),
    }
    assert len(made["overview"].axes) == 4  # a panel per scenario
    written = plots.save(made["zone_lock-cpus"], tmp_path, "z", ["png", "svg"])
    assert [p.read_bytes()[:5] for p in written] == [b"\x89PNG\r", b"<?xml"]
    _, notes = plots.write_figures(synth, tmp_path, kinds=["zone_lock"], scenarios=["pb"], formats=["png"])
    assert notes == [
        "no zone_lock figure: no scenario has more than one CPU count (try scenarios/sweep_cpus.yaml)"
    ]


def test_captions_axes_and_legends(synth: plots.ResultSet) -> None:
    for kind in plots.KINDS:
        for stem, fig in plots.figures(synth, kind):
            caption = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
            assert "on broadwell-e5-1650v4" in caption, stem
            assert "95 % CI" in caption
            for ax in fig.axes:
                if ax.get_label() == "<colorbar>" or not ax.get_visible() or not ax.lines + ax.patches:
                    continue
                assert ax.get_xlabel() and ax.get_ylabel(), (stem, ax.get_title())
            assert any(ax.get_legend() is not None for ax in fig.axes) or "nfs" in stem, stem


def test_batch_axis_is_log2_with_the_reviews_marks(synth: plots.ResultSet) -> None:
    ((_, fig),) = plots.figures(synth, "throughput", "xdp")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "log scale" in ax.get_xlabel() and "refill" in ax.get_xlabel()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert "15" in ticks and "16" not in ticks and "256" in ticks  # 15 and 16 would overlap
    (top,) = ax.child_axes
    assert [t.get_text() for t in top.get_xticklabels()] == ["pagevec 15", "refill 64", "200+"]


def test_measured_points_only_where_the_setup_matches(synth: plots.ResultSet, tmp_path: Path) -> None:
    ((_, fig),) = plots.figures(synth, "throughput", "xdp")
    labels = _labels(fig)
    assert "measured: 3,677,958 pps (5.11 single)" in labels
    assert "measured: 4,368,926 pps (bulk list, 64)" in labels
    ((_, fig),) = plots.figures(synth, "cost", "pb")
    assert "measured: 199 cycles (single)" in _labels(fig)
    ((_, fig),) = plots.figures(synth, "cost", "xdp")  # the measurements are pps, not ns
    assert not [x for x in _labels(fig) if x.startswith("measured")]
    for other in (
        plots.load(synthetic(tmp_path, "skylake-sp-2s")),
        plots.load(synthetic(tmp_path, queues=2)),
    ):
        ((_, fig),) = plots.figures(other, "throughput", "xdp")
        assert not [x for x in _labels(fig) if x.startswith("measured")]


def test_figures_only_draw_table_values(synth: plots.ResultSet) -> None:
    ((_, fig),) = plots.figures(synth, "cost", "pb")
    left, right = fig.axes
    line = next(x for x in left.lines if x.get_label() == "bulk_array")
    part = synth.part("pb")
    want = part[part.strategy == "bulk_array"].sort_values("batch")["cycles_per_page"].tolist()
    assert list(line.get_ydata()) == want
    ratio = next(x for x in right.lines if x.get_label() == "bulk_array")
    single = part[part.strategy == "single"].sort_values("batch")["cycles_per_page"].tolist()
    assert list(ratio.get_ydata()) == pytest.approx([a / b for a, b in zip(want, single)])
    wilcox = next(x for x in right.lines if x.get_label().startswith("1/n"))
    assert list(wilcox.get_ydata()) == pytest.approx([1 / b for b in BATCHES])


def test_svg_and_png_are_reproducible(synth: plots.ResultSet, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        for stem, fig in plots.figures(synth, "irq", "xdp"):
            plots.save(fig, d, stem, ["svg", "png"])
    for f in a.iterdir():
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name


def test_plot_command(synth: plots.ResultSet, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "figs"
    rc = cli.main(
        ["plot", str(synth.path), "--kind", "cost", "--scenario", "pb", "--format", "png", "--out", str(out)]
    )
    assert rc == 0
    assert capsys.readouterr().out.splitlines() == [str(out / "cost-pb.png")]
    assert cli.main(["plot", str(tmp_path / "missing")]) == 2
    assert "RESULTS: not a results directory" in capsys.readouterr().err
    assert cli.main(["plot", str(synth.path), "--scenario", "nope", "--out", str(out)]) == 2
    assert "--scenario: no such scenario" in capsys.readouterr().err
    rc = cli.main(["plot", str(synth.path), "--kind", "zone_lock", "--scenario", "pb", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "no zone_lock figure: no scenario has more than one CPU count" in err


def test_figures_of_a_real_sweep(tmp_path: Path) -> None:
    from test_sweep import tiny

    run_sweep(load_sweep(tiny(tmp_path)), tmp_path / "out", LocalExecutor(1))
    rs = plots.load(tmp_path / "out")
    written, notes = plots.write_figures(
        rs, tmp_path / "figs", kinds=["overview", "cost", "irq", "cache"], formats=["png"]
    )
    assert {p.name for p in written} == {"overview.png", "cost-tiny.png", "irq-tiny.png", "cache-tiny.png"}
