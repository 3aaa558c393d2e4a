"""The pagesim command line: run (rows, files, determinism, --jobs), errors in the one-line format
with exit 2 and nothing written, interruption, zoneinfo, calibrate, check and validate-model.

The real entry point runs in subprocesses; error cases run main() in-process, which is faster and
equally strict (a traceback there would be an exception escaping main)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import interrupt_cli

from simulator import cli
from simulator.errors import InvariantError

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "page_bench.yaml"
BROADWELL = ROOT / "hardware" / "broadwell-e5-1650v4.yaml"
TINY = ["--duration", "10 us"]
STRATEGIES = {"single", "bulk_list", "bulk_array", "pagevec"}
REQUIRED = [
    *("scenario", "workload", "hardware", "strategy", "batch", "cpus", "seed", "sim_ns", "wall_s"),
    *("cycles_per_page", "ns_per_page", "zone_lock_acquisitions", "zone_lock_contended"),
    *("zone_lock_wait_ns", "pcp_refills", "pcp_drains", "irq_off_max_ns", "irq_off_p99_ns"),
    "cache_misses_per_page",
]
RESULT_FILES = {"hardware.yaml", "rows.csv", "rows.parquet", "config.yaml", "metadata.json", "timings.csv"}


def pagesim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m simulator.cli ARGS` as a user would run `pagesim ARGS`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "simulator.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = cli.main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def write_scenario(tmp_path: Path, text: str | None = None, **changes: Any) -> Path:
    """The shipped page_bench scenario with `changes`, or raw `text`, in tmp_path/scenario.yaml."""
    if text is None:
        doc = yaml.safe_load(SCENARIO.read_text())
        doc["hardware"] = str(BROADWELL)
        doc.update(changes)
        text = yaml.safe_dump(doc, sort_keys=False)
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    tmp = tmp_path_factory.mktemp("run")
    out = tmp / "x"
    proc = pagesim(
        "run", str(SCENARIO), "--json", "--batch", "1", "--batch", "64", *TINY, "--out", str(out), cwd=tmp
    )
    return proc, out


# run ------------------------------------------------------------------------------------------


def test_run_json_has_only_rows_on_stdout(json_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, _ = json_run
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)  # nothing but the array
    assert isinstance(rows, list) and len(rows) == 8
    assert {r["strategy"] for r in rows} == STRATEGIES
    assert {r["batch"] for r in rows} == {1, 64}
    for r in rows:
        assert all(c in r for c in REQUIRED), [c for c in REQUIRED if c not in r]
        assert isinstance(r["ns_per_page"], float) and r["ns_per_page"] > 0
        assert isinstance(r["wall_s"], float)
    assert "[8/8]" in proc.stderr and "Traceback" not in proc.stderr


def test_run_rows_come_in_grid_order(json_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    rows = json.loads(json_run[0].stdout)
    order = [(r["strategy"], r["batch"]) for r in rows]
    assert order == [(s, b) for s in ("single", "bulk_list", "bulk_array", "pagevec") for b in (1, 64)]


def test_run_writes_result_files(json_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = json_run
    assert {p.name for p in out.iterdir()} == RESULT_FILES
    header = (out / "rows.csv").read_text().splitlines()[0].split(",")
    assert "wall_s" not in header and "ns_per_page" in header
    assert (out / "timings.csv").read_text().splitlines()[0].endswith("wall_s")
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["points"] == 8 and meta["seed"] == 1
    assert meta["files"]["scenario"]["path"] == str(SCENARIO)
    assert len(meta["files"]["hardware"]["sha256"]) == 64
    assert "--json" in meta["argv"]
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["batches"] == [1, 64] and config["duration"] == "10000 ns"
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_run_is_byte_identical_again_and_with_two_jobs(
    json_run: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    _, first = json_run
    args = ["run", str(SCENARIO), "--batch", "1", "--batch", "64", *TINY]
    again = pagesim(*args, "--out", str(tmp_path / "again"), cwd=tmp_path)
    jobs2 = pagesim(*args, "--jobs", "2", "--out", str(tmp_path / "jobs2"), cwd=tmp_path)
    assert again.returncode == 0 and jobs2.returncode == 0, again.stderr + jobs2.stderr
    for name in ("rows.csv", "rows.parquet"):
        want = (first / name).read_bytes()
        assert (tmp_path / "again" / name).read_bytes() == want
        assert (tmp_path / "jobs2" / name).read_bytes() == want
    assert "bulk_array" in again.stdout and "cycles_per_page" in again.stdout  # the table


def test_run_default_out_dir_is_results_scenario_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_in_process(capsys, "run", str(SCENARIO), "--strategy", "single", "--batch", "8", *TINY)
    assert rc == 0, err
    assert {p.name for p in (tmp_path / "results" / "page_bench").iterdir()} == RESULT_FILES
    assert "single" in out and "[1/1]" in err and "[1/1]" not in out


# errors ---------------------------------------------------------------------------------------


def _assert_one_error(rc: int, out: str, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pagesim: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--batch", "0"], ["command line: --batch:", "(got [0])"]),
        (["--cpus", "999"], ["command line: --cpus:", "more CPUs", "999"]),
        (["--strategy", "nope"], ["command line: --strategy:", "'nope'"]),
        (["--batch", "x"], ["command line: --batch:", "expected a whole number", "(got 'x')"]),
        (["--jobs", "0"], ["command line: --jobs:"]),
        (["--duration", "5"], ["command line: --duration:", "unit"]),
        (["--hardware", "missing.yaml"], ["command line: --hardware:", "not found"]),
        (["--frobnicate"], ["command line:", "--frobnicate"]),
    ],
)
def test_bad_flags_exit_2_and_write_nothing(
    flags: list[str],
    needles: list[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_in_process(capsys, "run", str(SCENARIO), *TINY, *flags)
    _assert_one_error(rc, out, err, *needles)
    assert list(tmp_path.iterdir()) == []


BAD_FILES = {
    "yaml_syntax": ("name: x\nworkload: [page_bench\n", ["YAML syntax error", "line "]),
    "unknown_key": (None, ["scenario.yaml: batchez:", "unknown field"]),
    "wrong_type": (None, ["scenario.yaml: seed:", "(got 'abc')"]),
    "missing_hardware": (None, ["scenario.yaml: hardware:", "hardware file not found"]),
    "bad_workload_field": (None, ["scenario.yaml: page_bench.gfp:"]),
}
BAD_CHANGES: dict[str, dict[str, Any]] = {
    "unknown_key": {"batchez": [1]},
    "wrong_type": {"seed": "abc"},
    "missing_hardware": {"hardware": "no-such-machine.yaml"},
    "bad_workload_field": {"page_bench": {"gfp": "GFP_NOPE"}},
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_scenario_files_exit_2_and_write_nothing(
    case: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, needles = BAD_FILES[case]
    path = write_scenario(tmp_path, text, **BAD_CHANGES.get(case, {}))
    monkeypatch.chdir(tmp_path)
    rc, out, err = run_in_process(capsys, "run", str(path), *TINY)
    _assert_one_error(rc, out, err, str(path), *needles)
    assert [p.name for p in tmp_path.iterdir()] == ["scenario.yaml"]


def test_missing_scenario_file_in_a_subprocess(tmp_path: Path) -> None:
    proc = pagesim("run", "nope.yaml", cwd=tmp_path)
    _assert_one_error(proc.returncode, proc.stdout, proc.stderr, "nope.yaml: file not found")
    assert list(tmp_path.iterdir()) == []


def test_argparse_type_error_in_a_subprocess(tmp_path: Path) -> None:
    proc = pagesim("run", str(SCENARIO), "--batch", "x", cwd=tmp_path)
    _assert_one_error(proc.returncode, proc.stdout, proc.stderr, "--batch", "expected a whole number")
    assert "usage:" not in proc.stderr


def test_out_that_is_a_file_is_rejected_before_running(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "f").write_text("")
    rc, out, err = run_in_process(capsys, "run", str(SCENARIO), *TINY, "--out", str(tmp_path / "f" / "x"))
    _assert_one_error(rc, out, err, "command line: --out:")


def test_invariant_error_exits_3_and_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simulator.run

    def broken(sc: Any, point: Any) -> dict[str, Any]:
        raise InvariantError("zone0: pages not conserved")

    monkeypatch.setattr(simulator.run, "run_point", broken)
    rc, out, err = run_in_process(capsys, "run", str(SCENARIO), *TINY, "--out", str(tmp_path / "x"))
    assert rc == 3
    assert err.strip().splitlines()[-1] == "pagesim: model invariant broken: zone0: pages not conserved"
    assert out == "" and list(tmp_path.iterdir()) == []


def test_other_exceptions_propagate_and_write_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simulator.run

    real = simulator.run.run_point
    calls = []

    def flaky(sc: Any, point: Any) -> dict[str, Any]:
        calls.append(point)
        if len(calls) == 2:
            raise ZeroDivisionError("a bug")
        return real(sc, point)

    monkeypatch.setattr(simulator.run, "run_point", flaky)
    with pytest.raises(ZeroDivisionError):
        cli.main(["run", str(SCENARIO), *TINY, "--batch", "8", "--out", str(tmp_path / "a" / "b")])
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_in_process_reports_progress(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simulator.run

    real = simulator.run.run_point
    calls = []

    def interrupted(sc: Any, point: Any) -> dict[str, Any]:
        calls.append(point)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(sc, point)

    monkeypatch.setattr(simulator.run, "run_point", interrupted)
    rc, out, err = run_in_process(capsys, "run", str(SCENARIO), *TINY, "--batch", "8", "--out", str(tmp_path))
    assert rc == 130
    assert err.strip().splitlines()[-1] == "pagesim: interrupted after 2 of 4 points; nothing written"
    assert list(tmp_path.iterdir()) == []


def test_sigterm_with_workers_stops_quietly_and_writes_nothing(tmp_path: Path) -> None:
    args = ["run", str(SCENARIO), "--duration", "500 us", "--jobs", "2", "--out", str(tmp_path / "x")]
    rc, out, err = interrupt_cli(args, tmp_path, "[1/", signal.SIGTERM)
    assert rc == 130, err
    assert "[1/" in err  # signalled mid-run, after a point finished
    assert err.strip().splitlines()[-1].startswith("pagesim: interrupted after ")
    assert err.strip().endswith("points; nothing written")
    assert "Traceback" not in err and out == ""
    assert list(tmp_path.iterdir()) == []


# zoneinfo, calibrate, check, validate-model -----------------------------------------------------


def _zone_section(text: str, header: str) -> str:
    start = text.index(header)
    nxt = text.find("\nNode ", start + 1)
    return text[start : nxt if nxt >= 0 else len(text)]


def test_zoneinfo_shows_the_5_12_pcp_numbers(tmp_path: Path) -> None:
    proc = pagesim("zoneinfo", str(BROADWELL), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    normal = _zone_section(proc.stdout, "Node 0, zone   Normal")
    for line in ("pages free", "        min ", "        low ", "        high ", "spanned", "present"):
        assert line in normal
    assert "managed  7438336" in normal
    assert "protection: (0, 0, 0, 0)" in normal
    assert normal.count("high:  378") == 6 and normal.count("batch: 63") == 6  # one per CPU
    assert "min_free_kbytes = 67584" in proc.stdout


def test_zoneinfo_json_and_no_thp(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_in_process(capsys, "zoneinfo", str(BROADWELL), "--json")
    assert rc == 0
    doc = json.loads(out)
    normal = next(z for z in doc["zones"] if z["name"] == "Normal")
    assert (normal["pcp_high"], normal["pcp_batch"]) == (378, 63)
    assert doc["thp"] is True
    rc, out, _ = run_in_process(capsys, "zoneinfo", str(BROADWELL), "--json", "--no-thp")
    assert rc == 0 and json.loads(out)["min_free_kbytes"] < doc["min_free_kbytes"]


def test_zoneinfo_bad_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, err = run_in_process(capsys, "zoneinfo", str(tmp_path / "none.yaml"))
    _assert_one_error(rc, out, err, "none.yaml: file not found")


def test_calibrate_prints_the_derivation(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_in_process(capsys, "calibrate", str(BROADWELL))
    assert rc == 0
    assert "term" in out and "host cycles" in out and "rmqueue_page" in out and "list_line" in out
    rc, out, _ = run_in_process(capsys, "calibrate", str(BROADWELL), "--json")
    doc = json.loads(out)
    assert rc == 0 and {s["term"] for s in doc["steps"]} <= set(doc["costs_ns"])


def test_check_good_and_bad_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = [str(SCENARIO), str(BROADWELL)]
    rc, out, err = run_in_process(capsys, "check", *good)
    assert rc == 0 and err == ""
    assert out.splitlines() == [f"OK  {SCENARIO} (scenario)", f"OK  {BROADWELL} (hardware)"]

    bad_hw = tmp_path / "hw.yaml"
    doc = yaml.safe_load(BROADWELL.read_text())
    doc["calibration"] = str(BROADWELL.parent / doc["calibration"])
    doc["cpu"]["clock"] = "fast"
    bad_hw.write_text(yaml.safe_dump(doc))
    bad_sc = write_scenario(tmp_path, batches=[0])
    rc, out, err = run_in_process(capsys, "check", str(bad_hw), str(SCENARIO), str(bad_sc))
    assert rc == 2
    assert out.splitlines() == [f"OK  {SCENARIO} (scenario)"]
    lines = err.splitlines()
    assert len(lines) == 2 and all(line.startswith("pagesim: error: ") for line in lines)
    assert f"{bad_hw}: cpu.clock:" in lines[0] and f"{bad_sc}: batches:" in lines[1]


def test_validate_model_absent(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "simulator.validation", None)  # import fails as if missing
    rc, out, err = run_in_process(capsys, "validate-model", "--quick")
    _assert_one_error(rc, out, err, "validate-model")


def test_validate_model_delegates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("simulator.validation")
    fake.main = lambda argv: seen.append(argv) or 5  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "simulator.validation", fake)
    rc, _, _ = run_in_process(capsys, "validate-model", "--quick", "x")
    assert rc == 5 and seen == [["--quick", "x"]]


def test_no_command_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_in_process(capsys)
    _assert_one_error(rc, out, err, "command line:")


def test_a_failing_point_in_a_worker_propagates_and_stops_the_pool() -> None:
    import dataclasses

    from simulator.run import expand
    from simulator.scenario import Overrides, load_scenario

    sc = load_scenario(SCENARIO, Overrides(duration="10 us", batches=[1]))
    # past validation, as a model bug would be: the second point raises inside a worker
    model = sc.model.model_copy(update={"strategies": ["single", "bogus", "pagevec", "bulk_list"]})
    bad = dataclasses.replace(sc, model=model)
    with pytest.raises(ValueError, match="bogus"):
        cli.run_points(bad, expand(bad), jobs=2)
