"""Result files: fixed columns without wall-clock, exact round trips, byte-identical output, and
atomic writing (an exception or interrupt leaves neither partial files nor temporary ones)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from simulator import results
from simulator.run import run_point
from simulator.scenario import Overrides, Scenario, load_scenario
from simulator.workloads.api import Point

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "page_bench.yaml"
AWKWARD = [0.1, 1 / 3, 1e-20, 1.2345678901234567e22, 199.0, 2.0**0.5 * 1e5, 5e-324]


@pytest.fixture(scope="module")
def sc() -> Scenario:
    return load_scenario(SCENARIO, Overrides(duration="10 us", batches=[1, 64]))


def fake_rows() -> list[dict[str, Any]]:
    rows = []
    for i, x in enumerate(AWKWARD):
        rows.append(
            {
                "scenario": "page_bench",
                "workload": "page_bench",
                "hardware": "broadwell-e5-1650v4",
                "kernel": "5.12",
                "strategy": "single" if i % 2 else "bulk_array",
                "batch": 1 + i,
                "cpus": 1,
                "replication": 0,
                "seed": 1,
                "sim_ns": 60_000.0 + i,
                "ns_per_page": x,
                "pcp_refills": i,
                "wall_s": 0.01 * i,
            }
        )
    return rows


def meta(sc: Scenario, n: int) -> dict[str, Any]:
    now = results.utc_now()
    return results.run_metadata(
        sc, argv=["pagesim", "run", str(SCENARIO)], points=n, started=now, finished=now
    )


# Tables ---------------------------------------------------------------------------------------


def test_rows_frame_has_fixed_columns_without_wall_clock() -> None:
    rows = fake_rows()
    shuffled = [dict(reversed(list(r.items()))) for r in rows]
    df = results.rows_frame(shuffled)
    assert list(df.columns[: len(results.IDENTITY)]) == list(results.IDENTITY)
    assert "wall_s" not in df.columns
    assert list(results.timings_frame(rows).columns) == [*results.IDENTITY, "wall_s"]


def test_round_trip_is_exact_from_parquet_and_csv(tmp_path: Path, sc: Scenario) -> None:
    rows = fake_rows()
    out = results.write_results(tmp_path / "r", rows, sc, meta(sc, len(rows)))
    assert {p.name for p in out.iterdir()} == set(results.FILES)
    from_parquet = results.load_results(out)
    assert from_parquet["ns_per_page"].tolist() == AWKWARD
    (out / "rows.parquet").unlink()
    from_csv = results.load_results(out)
    assert from_csv["ns_per_page"].tolist() == AWKWARD
    assert from_csv["batch"].tolist() == [r["batch"] for r in rows]
    with_t = results.load_results(out, timings=True)
    assert with_t["wall_s"].tolist() == [r["wall_s"] for r in rows]


def test_same_rows_give_identical_bytes(tmp_path: Path, sc: Scenario) -> None:
    rows = [run_point(sc, Point("bulk_array", 64, 1)), run_point(sc, Point("single", 1, 1))]
    again = [run_point(sc, Point("bulk_array", 64, 1)), run_point(sc, Point("single", 1, 1))]
    a = results.write_results(tmp_path / "a", rows, sc, meta(sc, 2))
    b = results.write_results(tmp_path / "b", again, sc, meta(sc, 2))
    for name in ("rows.csv", "rows.parquet"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_config_and_metadata(tmp_path: Path, sc: Scenario) -> None:
    out = results.write_results(tmp_path / "r", fake_rows(), sc, meta(sc, 7))
    config = results.load_config(out)
    assert config == yaml.safe_load(yaml.safe_dump(sc.resolved()))
    m = results.load_metadata(out)
    assert m["points"] == 7 and m["seed"] == sc.model.seed
    assert set(m["versions"]) >= {"python", "numpy", "simpy", "pandas"}
    assert m["files"]["scenario"]["sha256"] == results.sha256(SCENARIO)
    assert m["files"]["hardware"]["path"] == str(Path(sc.hardware.path).resolve())
    assert m["command_line"] == f"pagesim run {SCENARIO}"
    assert m["started_utc"].endswith("Z")


def test_git_revision_outside_a_repository(tmp_path: Path) -> None:
    assert results.git_revision(tmp_path) == ("unknown", None)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_revision_is_only_for_pagesims_own_checkout(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "x")
    rev, dirty = results.git_revision(tmp_path)
    assert len(rev) == 40 and dirty is False
    (tmp_path / "site-packages").mkdir()  # pagesim installed inside another project's checkout
    assert results.git_revision(tmp_path / "site-packages") == ("unknown", None)


# Atomicity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_while_writing_leaves_nothing(
    exc: BaseException, tmp_path: Path, sc: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: Any, *args: Any, **kwargs: Any) -> None:
        raise exc

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)  # rows.csv is already written by then
    with pytest.raises(type(exc)):
        results.write_results(tmp_path / "new" / "deeper" / "r", fake_rows(), sc, meta(sc, 7))
    assert list(tmp_path.iterdir()) == []  # no temp dir, no parent directories it created


def test_failure_while_overwriting_keeps_the_old_results(
    tmp_path: Path, sc: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = results.write_results(tmp_path / "r", fake_rows(), sc, meta(sc, 7))
    (out / "plot.png").write_bytes(b"not ours")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def fail(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(results.yaml, "safe_dump", fail)
    with pytest.raises(KeyboardInterrupt):
        results.write_results(out, fake_rows()[:2], sc, meta(sc, 2))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_overwrite_replaces_our_files_and_keeps_others(tmp_path: Path, sc: Scenario) -> None:
    out = results.write_results(tmp_path / "r", fake_rows(), sc, meta(sc, 7))
    (out / "plot.png").write_bytes(b"not ours")
    results.write_results(out, fake_rows()[:2], sc, meta(sc, 2))
    assert len(results.load_results(out)) == 2
    assert results.load_metadata(out)["points"] == 2
    assert (out / "plot.png").read_bytes() == b"not ours"
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_target_that_is_a_file_is_refused(tmp_path: Path, sc: Scenario) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        results.write_results(tmp_path / "f", fake_rows(), sc, meta(sc, 7))
    assert (tmp_path / "f").read_text() == "x"


def test_load_results_without_rows(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        results.load_results(tmp_path)
