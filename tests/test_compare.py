"""`pagesim compare A B`: ratios B/A joined on the point's identity, the identity columns that
differ between the sides named as what is compared, selections within one result set, JSON, and
bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from test_plots import synthetic

from simulator import cli
from simulator.compare import compare
from simulator.errors import ConfigError


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cmp")
    a = synthetic(tmp)
    b = synthetic(tmp, "skylake-sp-2s")
    summary = pd.read_parquet(b / "summary.parquet")
    summary["cycles_per_page"] *= 1.25
    summary["pps"] *= 0.8
    summary.to_parquet(b / "summary.parquet")
    return a, b


def test_two_hardware_files(two: tuple[Path, Path]) -> None:
    a, b = two
    cmp = compare(a, b, across=["hardware"])
    assert cmp.varied == {"hardware": ("broadwell-e5-1650v4", "skylake-sp-2s")}
    assert "hardware" not in cmp.keys and "strategy" in cmp.keys
    assert len(cmp.table) == 4 * 6 * 2 + 4 + 4 * 2 * 3 and cmp.only_a == cmp.only_b == 0
    pb = cmp.table[cmp.table.scenario == "pb"]
    assert pb["cycles_per_page_ratio"].tolist() == pytest.approx([1.25] * len(pb))
    xdp = cmp.table[cmp.table.scenario == "xdp"]
    assert xdp["pps_ratio"].tolist() == pytest.approx([0.8] * len(xdp))
    assert cmp.headline().startswith(
        "B/A (hardware: broadwell-e5-1650v4 -> skylake-sp-2s): 76 points in common"
    )
    titles = [t for t, _, _ in cmp.tables()]
    assert titles[0] == "page_bench: B/A (hardware broadwell-e5-1650v4 -> skylake-sp-2s)"


def test_two_strategies_within_one_result_set(two: tuple[Path, Path]) -> None:
    a, _ = two
    cmp = compare(
        a,
        a,
        where_a={"strategy": "single", "scenario": "pb"},
        where_b={"strategy": "bulk_array", "scenario": "pb"},
    )
    assert cmp.varied == {"strategy": ("single", "bulk_array")}
    r = cmp.table.set_index("batch")["cycles_per_page_ratio"]
    assert r[1] == 1.0 and r[64] == pytest.approx((205 - 85 * (1 - 1 / 64)) / 205)
    # zero against zero is no ratio; a difference beyond both confidence intervals is marked
    assert math.isnan(cmp.table["zone_lock_wait_ns_per_page_ratio"].iloc[0])
    assert cmp.table.set_index("batch")["cycles_per_page_distinct"][64]
    title, headers, rows = cmp.tables(["cycles_per_page"])[0]
    assert headers == ["batch", "cycles_per_page"]
    assert rows[0] == [1, "1.000"] and rows[-1][1].endswith("*")


def test_json_and_metric_choice(two: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two
    assert (
        cli.main(
            [
                "compare",
                str(a),
                str(b),
                "--metric",
                "pps",
                "--a",
                "scenario=xdp",
                "--b",
                "scenario=xdp",
                "--across",
                "hardware",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["compared"] == {"hardware": {"a": "broadwell-e5-1650v4", "b": "skylake-sp-2s"}}
    assert len(doc["points"]) == 24 and set(doc["points"][0]["figures"]) == {"pps"}
    assert doc["points"][0]["figures"]["pps"]["ratio"] == pytest.approx(0.8)
    assert (
        cli.main(["compare", str(a), str(b), "--a", "batch=64.0", "--b", "batch=64", "--across", "hardware"])
        == 0
    )
    out = capsys.readouterr()
    assert "page_bench: B/A" in out.out and "points in common" in out.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "nope"], "command line: --metric: not a figure of both result sets (got 'nope')"),
        (["--a", "colour=red"], "command line: --a: no column 'colour' in these results"),
        (
            ["--a", "strategy=sideways"],
            "command line: --a: selects no rows (strategy has: bulk_array, bulk_list",
        ),
        (["--b", "strategy"], "command line: --b: expected COLUMN=VALUE"),
        (
            ["--a", "scenario=pb", "--a", "batch=1", "--b", "scenario=cpus"],
            "command line: B: no point in common",
        ),
    ],
)
def test_bad_input(
    two: tuple[Path, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    a, b = two
    assert cli.main(["compare", str(a), str(b), "--across", "hardware", *args]) == 2
    assert message in capsys.readouterr().err


def test_a_run_directory_without_summary(tmp_path: Path) -> None:
    from test_sweep import tiny

    from simulator.run import expand, run_point
    from simulator.scenario import load_scenario

    sc = load_scenario(tiny(tmp_path, replications=1))
    rows = [run_point(sc, p) for p in expand(sc)]
    from simulator import results

    results.write_results(tmp_path / "run", rows, sc, {"points": len(rows)})
    cmp = compare(
        tmp_path / "run", tmp_path / "run", where_a={"strategy": "single"}, where_b={"strategy": "bulk_array"}
    )
    assert len(cmp.table) == 2 and cmp.table["cycles_per_page_ratio"].iloc[0] == 1.0
    with pytest.raises(ConfigError):
        compare(tmp_path / "run", tmp_path / "run", metrics=["pps"])
