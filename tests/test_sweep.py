"""Sweeps: grid axes and their validation, sweep files, keys, the point store, summaries with
confidence intervals, byte-identical tables from serial and pooled runs, and interruption then
resumption (in process and with SIGINT to the real command)."""

from __future__ import annotations

import filecmp
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import interrupt_cli

from simulator import cli, results, sweep
from simulator.errors import ConfigError
from simulator.executor import LocalExecutor
from simulator.run import expand, run_point
from simulator.scenario import Overrides, load_scenario
from simulator.sweep import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
PAGE_BENCH = SCENARIOS / "page_bench.yaml"
BROADWELL = ROOT / "hardware" / "broadwell-e5-1650v4.yaml"
TABLES = ("rows.csv", "rows.parquet", "summary.csv", "summary.parquet")


def tiny(tmp: Path, name: str = "tiny", **changes: Any) -> Path:
    """page_bench at 2 us per point: 2 strategies x batch 1, 64 x 2 replications = 8 points."""
    doc = yaml.safe_load(PAGE_BENCH.read_text())
    doc.update(
        name=name,
        hardware=str(BROADWELL),
        strategies=["single", "bulk_array"],
        batches=[1, 64],
        replications=2,
        warmup="20 us",
        duration="2 us",
    )
    doc.update(changes)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("serial")
    run_sweep(load_sweep(tiny(tmp)), tmp / "out", LocalExecutor(1))
    return tmp / "out"


# Student's t and the summary ---------------------------------------------------------------


def _t_cdf_above_zero(t: float, df: int) -> float:
    """P(0 < T < t) by integrating Student's t density (Simpson's rule, fine grid)."""
    x = np.linspace(0.0, t, 200_001)
    logc = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(logc - (df + 1) / 2 * np.log1p(x * x / df))
    h = x[1] - x[0]
    return float(h / 3 * (pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum() + 2 * pdf[2:-1:2].sum()))


@pytest.mark.parametrize("df", [1, 2, 3, 5, 9, 17, 30, 35, 40, 50, 60, 90, 120, 500, 999])
def test_t975_is_the_0975_quantile(df: int) -> None:
    assert _t_cdf_above_zero(results.t975(df), df) == pytest.approx(0.475, abs=2e-5)


def test_ci95_halfwidth() -> None:
    assert results.ci95_halfwidth(np.array([1.0, 2.0, 3.0])) == pytest.approx(4.302652730 / math.sqrt(3))
    assert results.ci95_halfwidth(np.array([5.0, 5.0, 5.0])) == 0.0
    assert math.isnan(results.ci95_halfwidth(np.array([5.0])))


def test_summary_means_and_intervals_per_point() -> None:
    base = {"scenario": "s", "workload": "w", "hardware": "h", "cpus": 1, "seed": 1}
    rows = [
        {**base, "strategy": "a", "batch": 1, "replication": r, "kernel.thp": True, "x": v, "n": 3, "y": None}
        for r, v in enumerate([1.0, 2.0, 3.0])
    ] + [
        {**base, "strategy": "b", "batch": 1, "replication": 0, "kernel.thp": True, "x": 7.0, "n": 4, "y": 2}
    ]
    table = results.rows_table(rows)
    assert str(table["y"].dtype) == "Int64" and str(table["n"].dtype) == "int64"
    s = results.summarize(table, ["kernel.thp"])
    assert list(s["strategy"]) == ["a", "b"] and list(s["replications"]) == [3, 1]
    assert s.loc[0, "x"] == 2.0 and s.loc[0, "x_ci95"] == pytest.approx(4.302652730 / math.sqrt(3))
    assert math.isnan(s.loc[1, "x_ci95"]) and s.loc[1, "x"] == 7.0
    assert math.isnan(s.loc[0, "y"]) and s.loc[1, "y"] == 2.0
    assert "replication" not in s.columns and "kernel.thp" in s.columns


def test_a_grid_column_mixing_strings_and_numbers_holds_strings() -> None:
    rows = [{"strategy": "a", "xdp_redirect.offered_load": v, "pps": 1.0} for v in ("saturate", 3e6)]
    table = results.rows_table(rows)
    assert list(table["xdp_redirect.offered_load"]) == ["saturate", "3000000.0"]


# Grid axes ----------------------------------------------------------------------------------


def test_grid_axis_multiplies_the_points_and_reaches_the_model(tmp_path: Path) -> None:
    path = tiny(tmp_path, grid={"kernel.prep_new_page": ["irq_off", "second_pass"]}, replications=1)
    sc = load_scenario(path)
    points = expand(sc)
    assert len(points) == 8 and points[0].grid == (("kernel.prep_new_page", "irq_off"),)
    assert [p.grid[0][1] for p in points] == ["irq_off"] * 4 + ["second_pass"] * 4
    bulk = [p for p in points if p.strategy == "bulk_array" and p.batch == 64]
    rows = [run_point(sc, p) for p in bulk]
    assert [r["kernel.prep_new_page"] for r in rows] == ["irq_off", "second_pass"]
    # prep_new_page outside the IRQ-off loop shortens the window: the value reached the model
    assert rows[1]["irq_off_max_ns"] < rows[0]["irq_off_max_ns"]
    assert list(rows[0])[: list(rows[0]).index("kernel.prep_new_page") + 1][-2:] == [
        "seed",
        "kernel.prep_new_page",
    ]


def test_grid_from_the_command_line_replaces_the_files_axis(tmp_path: Path) -> None:
    path = tiny(tmp_path, grid={"kernel.thp": [True, False]})
    flag = sweep.parse_grid_flag("kernel.thp=false")
    sc = load_scenario(path, Overrides(grid=(flag,)))
    assert sc.model.grid == {"kernel.thp": [False]}
    assert sweep.parse_grid_flag("nfs.clients.rate=1000,2e5").value == [1000, 200000.0]
    assert sweep.parse_grid_flag("kernel.prep_new_page=irq_off,second_pass").value == [
        "irq_off",
        "second_pass",
    ]


@pytest.mark.parametrize(
    ("grid", "field", "message"),
    [
        ({"kernel.prep_new_page": ["irq_off", "sideways"]}, "grid.kernel.prep_new_page", "irq_off"),
        ({"kernel.prep_new_pag": [1]}, "grid.kernel.prep_new_pag", "unknown field"),
        ({"batches": [[1, 2]]}, "grid.batches", "grid axis already"),
        ({"hardware": ["x.yaml"]}, "grid.hardware", "--hardware"),
        ({"nfs.threads_per_node": [4]}, "grid.nfs.threads_per_node", "another workload"),
        ({"kernel.thp": []}, "grid.kernel.thp", "at least one value"),
        ({"kernel.thp": [{"a": 1}]}, "grid.kernel.thp[0]", "single value"),
        ({"kernel.thp": [True, True]}, "grid.kernel.thp[1]", "listed twice"),
        ({"duration": ["5 us", "-1 us"]}, "grid.duration", "non-negative"),
        ({"Kernel..thp": [True]}, "grid.Kernel..thp", "dotted parameter path"),
    ],
)
def test_bad_grid_axes_name_the_grid_field(
    tmp_path: Path, grid: dict[str, Any], field: str, message: str
) -> None:
    path = tiny(tmp_path, grid=grid)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    probs = err.value.problems
    assert any(p.file == str(path) and p.field == field and message in str(p) for p in probs), probs


def test_bad_grid_flag_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny(tmp_path)
    out = tmp_path / "out"
    assert (
        cli.main(
            ["sweep", str(path), "--grid", "kernel.prep_new_page=irq_off,upside_down", "--out", str(out)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "pagesim: error: command line: --grid kernel.prep_new_page: Input should be 'irq_off' or"
        " 'second_pass' (got 'upside_down')"
    ]
    assert cli.main(["sweep", str(path), "--grid", "kernel.thp", "--out", str(out)]) == 2
    assert "--grid: expected PATH=VALUE" in capsys.readouterr().err
    assert cli.main(["sweep", str(path), "--grid", "nfs.threads_per_node=4,8", "--out", str(out)]) == 2
    assert "--grid nfs.threads_per_node: no scenario of this sweep runs nfs" in capsys.readouterr().err
    assert not out.exists()


# Sweep files --------------------------------------------------------------------------------


def test_default_sweep_file_expands_to_204_points() -> None:
    sw = load_sweep(SCENARIOS / "sweep_default.yaml")
    assert [sc.name for sc in sw.scenarios] == ["page_bench", "xdp_redirect", "nfs"]
    tasks = sw.tasks()
    assert len(tasks) == 4 * 8 * 3 + 4 * 8 * 3 + 4 * 1 * 3 == 204
    assert [t.index for t in tasks] == list(range(204))
    assert len({t.key for t in tasks}) == 204
    nfs = sw.scenarios[2]
    assert nfs.model.batches == [1] and nfs.model.replications == 3
    assert sw.scenarios[0].model.duration == 50_000.0
    assert load_sweep(SCENARIOS / "sweep_default.yaml").tasks() == tasks  # keys are stable


@pytest.mark.parametrize("name", ["sweep_cpus.yaml", "sweep_notebook.yaml"])
def test_other_sweep_files_load(name: str) -> None:
    assert load_sweep(SCENARIOS / name).tasks()


def _sweep_file(tmp: Path, doc: dict[str, Any]) -> Path:
    path = tmp / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_sweep_file_settings_defaults_and_workload_scoped_grid(tmp_path: Path) -> None:
    tiny(tmp_path, name="a")
    tiny(tmp_path, name="b")
    path = _sweep_file(
        tmp_path,
        {
            "name": "two",
            "defaults": {"replications": 1, "kernel": {"thp": False}},
            "grid": {"nfs.threads_per_node": [4, 8], "kernel.debug_list": [True, False]},
            "scenarios": [{"file": "a.yaml", "batches": [8]}, {"file": "b.yaml", "name": "b2"}],
        },
    )
    with pytest.raises(ConfigError) as err:  # an nfs.* axis with no nfs scenario in the sweep
        load_sweep(path)
    assert str(err.value) == f"{path}: grid.nfs.threads_per_node: no scenario of this sweep runs nfs"
    doc = yaml.safe_load(path.read_text())
    del doc["grid"]["nfs.threads_per_node"]
    path.write_text(yaml.safe_dump(doc))
    sw = load_sweep(path)
    a, b = sw.scenarios
    assert (a.name, b.name) == ("a", "b2")
    assert a.model.batches == [8] and b.model.batches == [1, 64]
    assert a.model.kernel.thp is False and a.model.replications == 1
    assert sw.grid_columns == ("kernel.debug_list",)
    assert len(sw.tasks()) == 2 * (2 * 1 * 1) + 2 * (2 * 2 * 1)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"name": "x", "scenarios": [{"file": "nope.yaml"}]}, "scenarios[0].file: scenario file not found"),
        ({"name": "x", "scenarios": [{"file": "a.yaml"}, {"file": "a.yaml"}]}, "a second scenario named 'a'"),
        ({"name": "x", "scenarios": []}, "scenarios: List should have at least 1 item"),
        ({"name": "x", "scenario": [{"file": "a.yaml"}]}, "scenario: unknown field"),
        ({"name": "x", "scenarios": [{"file": "a.yaml", "duration": "-3 us"}]}, "scenarios[0].duration:"),
        (
            {"name": "x", "defaults": {"batches": [0]}, "scenarios": [{"file": "a.yaml"}]},
            "defaults.batches: batch sizes must be whole",
        ),
    ],
)
def test_bad_sweep_files(tmp_path: Path, doc: dict[str, Any], expected: str) -> None:
    tiny(tmp_path, name="a")
    path = _sweep_file(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert expected in str(err.value) and str(path) in str(err.value)


def test_a_flag_that_a_scenario_cannot_take_names_the_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc = cli.main(
        [
            "sweep",
            str(SCENARIOS / "sweep_default.yaml"),
            "--batch",
            "1",
            "--batch",
            "64",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 2
    assert capsys.readouterr().err.strip() == (
        "pagesim: error: command line: --batch: nfs uses neither batches nor cpus: give one value of each"
    )


# Keys ---------------------------------------------------------------------------------------


def test_keys_survive_extending_the_grid_and_follow_the_inputs(tmp_path: Path) -> None:
    small = {
        (t.point.strategy, t.point.batch, t.point.replication): t.key
        for t in load_sweep(tiny(tmp_path)).tasks()
    }
    big = load_sweep(tiny(tmp_path, batches=[1, 15, 64], replications=3, description="more")).tasks()
    shared = [t for t in big if (t.point.strategy, t.point.batch, t.point.replication) in small]
    assert len(shared) == 8 and all(
        small[(t.point.strategy, t.point.batch, t.point.replication)] == t.key for t in shared
    )
    # another duration, seed or hardware file content is another point
    for changes in ({"duration": "3 us"}, {"seed": 2}):
        other = load_sweep(tiny(tmp_path, **changes)).tasks()
        assert not {t.key for t in other} & set(small.values())
    hw = tmp_path / "hw.yaml"
    hw.write_text(BROADWELL.read_text().replace("\n", "\n# an edit\n", 1))
    cal = tmp_path / "calibration"
    cal.symlink_to(BROADWELL.parent / "calibration")
    moved = load_sweep(tiny(tmp_path, hardware=str(hw))).tasks()
    assert not {t.key for t in moved} & set(small.values())


# Running, resuming, determinism -------------------------------------------------------------


def test_sweep_writes_tables_and_metadata(serial_run: Path) -> None:
    names = {p.name for p in serial_run.iterdir()}
    assert names == {*sweep.FILES, ".points"}
    rows = pd.read_parquet(serial_run / "rows.parquet")
    assert len(rows) == 8 and "wall_s" not in rows.columns
    assert list(rows["replication"]) == [0, 1] * 4
    assert pd.read_csv(serial_run / "rows.csv").shape == rows.shape
    summary = pd.read_csv(serial_run / "summary.csv")
    assert len(summary) == 4 and set(summary["replications"]) == {2}
    assert {"cycles_per_page", "cycles_per_page_ci95"} <= set(summary.columns)
    meta = json.loads((serial_run / "metadata.json").read_text())
    assert meta["pagesim_version"] and meta["git_revision"]
    assert len(meta["files"]["hardware"]["broadwell-e5-1650v4"]["sha256"]) == 64
    assert len(meta["files"]["scenarios"]["tiny"]["sha256"]) == 64
    assert meta["seeds"] == {"tiny": 1} and meta["points"] == 8 and meta["points_run"] == 8
    assert meta["execution"] == {"backend": "serial", "jobs": 1}
    assert len(list((serial_run / ".points").glob("*.json"))) == 8
    config = yaml.safe_load((serial_run / "config.yaml").read_text())
    assert config["scenarios"][0]["name"] == "tiny"


def test_pool_and_resumed_runs_give_identical_bytes(serial_run: Path, tmp_path: Path) -> None:
    path = tiny(tmp_path)
    pool = run_sweep(load_sweep(path), tmp_path / "pool", LocalExecutor(2))
    assert pool.ran == 8
    again = run_sweep(load_sweep(path), tmp_path / "pool", LocalExecutor(2))
    assert (again.ran, again.reused) == (0, 8)
    for name in TABLES:
        assert filecmp.cmp(serial_run / name, tmp_path / "pool" / name, shallow=False), name


def test_interrupt_keeps_finished_points_and_a_rerun_resumes(
    serial_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simulator.run

    real = simulator.run.run_point
    calls: list[Any] = []

    def interrupted(sc: Any, point: Any) -> dict[str, Any]:
        calls.append(point)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(sc, point)

    monkeypatch.setattr(simulator.run, "run_point", interrupted)
    path = tiny(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(sweep.SweepInterruptedError) as err:
        run_sweep(load_sweep(path), out, LocalExecutor(1))
    assert (err.value.done, err.value.total, err.value.ran) == (3, 8, 3)
    assert sorted(p.name for p in out.iterdir()) == [".points"]  # no table, no temporary file
    assert len(list((out / ".points").iterdir())) == 3
    monkeypatch.setattr(simulator.run, "run_point", real)
    res = run_sweep(load_sweep(path), out, LocalExecutor(1))
    assert (res.reused, res.ran) == (3, 5)
    for name in TABLES:
        assert filecmp.cmp(serial_run / name, out / name, shallow=False), name
    # a damaged point file is run again, not trusted
    victim = sorted((out / ".points").glob("*.json"))[0]
    victim.write_text("{")
    assert run_sweep(load_sweep(path), out, LocalExecutor(1)).ran == 1


def test_interrupt_before_any_point_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import simulator.run

    def stop(sc: Any, point: Any) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(simulator.run, "run_point", stop)
    with pytest.raises(sweep.SweepInterruptedError) as err:
        run_sweep(load_sweep(tiny(tmp_path)), tmp_path / "a" / "b", LocalExecutor(1))
    assert err.value.workdir is None and not (tmp_path / "a").exists()


def test_sigint_to_the_command_keeps_finished_points_and_the_rerun_resumes(tmp_path: Path) -> None:
    path = tiny(tmp_path, duration="50 us", warmup="20 us", batches=[1, 8, 64, 256], replications=3)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "simulator.cli", "sweep", str(path), "--jobs", "2", "--out", str(out)]
    rc, stdout, err = interrupt_cli(args[3:], tmp_path, "[2/24]", signal.SIGINT)
    assert rc == 130, err
    assert "Traceback" not in err and stdout == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("pagesim: interrupted: ") and "of 24 points finished" in last
    assert f"kept in {out / '.points'}/; run the same command again to resume (no tables written)" in last
    kept = len(list((out / ".points").glob("*.json")))
    assert kept >= 2 and f"interrupted: {kept} of 24" in last
    assert sorted(p.name for p in out.iterdir()) == [".points"]
    again = subprocess.run(
        [*args[:-2], "--out", str(out), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert f"{kept} of 24 points already finished" in again.stderr
    assert f"({24 - kept} run, {kept} already finished)" in again.stderr
    summary = json.loads(again.stdout)
    assert len(summary) == 8 and all(r["replications"] == 3 for r in summary)
    assert (out / "summary.parquet").is_file()
