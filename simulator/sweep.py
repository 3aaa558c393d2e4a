"""Sweeps: the grids of one or more scenarios run as one table, locally or on a Dask cluster.

`pagesim sweep FILE` takes a scenario file (its grid: strategies x batches x cpus x `grid:` axes x
replications) or a sweep file, which lists scenario files and what to set on them:

    name: sweep_default
    defaults:                  # set on every scenario (a workload's section: on its scenarios only)
      strategies: [single, bulk_list, bulk_array, pagevec]
      replications: 3
    grid:                      # more grid axes for every scenario (`nfs.*`: nfs scenarios only)
      kernel.prep_new_page: [irq_off, second_pass]
    scenarios:
      - file: page_bench.yaml  # relative to the sweep file
        duration: 50 us        # set on this scenario only (nested sections or dotted paths)

Every point is a pure function of (scenario, point) (simulator.run.run_point), so it runs the same
in this process, in a pool of worker processes or on a Dask cluster (simulator/executor.py). Each
finished point is kept at once in `OUT/.points/<key>.json` (written atomically), the key being a
hash of everything its row depends on: the point, the scenario's resolved configuration (without
the other points' axes), the hardware and calibration files' bytes and the model's source code. A
sweep run again skips the points whose files exist: an interrupted sweep resumes, an extended one
runs only new points. Once every point has finished, the tables are written together
(simulator.results):

    rows.csv, rows.parquet        one row per (point, replication), in grid order; deterministic
    summary.csv, summary.parquet  per point: mean and 95 % confidence half-width across replications
    timings.csv                   point identity and wall-clock seconds (the only varying numbers)
    config.yaml                   each scenario's resolved configuration, as run
    metadata.json                 versions, git revision, input files and their sha256, seeds, how run

This module never prints; the CLI shows progress through the `on_done` callback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import simulator
from simulator import results
from simulator.errors import ConfigError
from simulator.executor import Executor, LocalExecutor, Task, code_fingerprint
from simulator.run import expand
from simulator.scenario import Overrides, Scenario, Setting, load_scenario
from simulator.workloads import WORKLOADS
from simulator.workloads.api import Point
from simulator.yamlio import problems_from_validation, read_yaml_mapping

POINTS_DIR = ".points"
# metadata.json last: when it is present the directory holds a complete sweep
FILES = (
    results.ROWS_CSV,
    results.ROWS_PARQUET,
    results.SUMMARY_CSV,
    results.SUMMARY_PARQUET,
    results.TIMINGS,
    results.CONFIG,
    results.METADATA,
)
OnDone = Callable[["Task", dict[str, Any], bool], None]


# Sweep files ----------------------------------------------------------------------------------


class _Entry(BaseModel):
    """One scenario of a sweep file: its file and what to set on it."""

    model_config = ConfigDict(extra="allow", frozen=True)

    file: str = Field(min_length=1)
    grid: dict[str, Any] = Field(default_factory=dict)


class SweepFile(BaseModel):
    """A sweep file (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, Any] = Field(default_factory=dict)
    scenarios: list[_Entry] = Field(min_length=1)


def is_sweep_file(doc: Mapping[str, Any]) -> bool:
    """A sweep file lists `scenarios`; a scenario file names a `workload`."""
    return "scenarios" in doc and "workload" not in doc and "hardware" not in doc


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """{'kernel': {'thp': False}, 'duration': '5 ms'} -> [('kernel.thp', False), ('duration', '5 ms')].
    Lists and empty mappings are values."""
    out: list[tuple[str, Any]] = []
    for k, v in mapping.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += flatten(v, path + ".")
        else:
            out.append((path, v))
    return out


def _applies(path: str, workload: str) -> bool:
    """A path into a workload's section applies to that workload's scenarios only."""
    top = path.split(".")[0]
    return top not in WORKLOADS or top == workload


@dataclass(frozen=True)
class Sweep:
    """Scenarios, validated and resolved, whose points make one table."""

    name: str
    path: str  # the file given: a sweep file, or a scenario file for a one-scenario sweep
    scenarios: tuple[Scenario, ...]
    description: str = ""
    grid_columns: tuple[str, ...] = ()  # every grid axis of any scenario, in first-seen order

    def tasks(self) -> list[Task]:
        """Every point of every scenario, in table order, with its key."""
        tasks: list[Task] = []
        for si, sc in enumerate(self.scenarios):
            configs: dict[tuple[tuple[str, Any], ...], str] = {}
            for p in expand(sc):
                if p.grid not in configs:
                    configs[p.grid] = config_digest(sc.with_settings(p.grid) if p.grid else sc)
                tasks.append(Task(len(tasks), si, p, point_key(configs[p.grid], p)))
        return tasks


def load_sweep(path: str | Path, overrides: Overrides | None = None) -> Sweep:
    """A sweep file or a scenario file, with command-line overrides (flags and --grid axes, which
    apply to every scenario; a `nfs.*` axis to the nfs scenarios only)."""
    p = Path(path)
    doc = read_yaml_mapping(p)
    ov = overrides or Overrides()
    if not is_sweep_file(doc):
        workload = str(doc.get("workload", ""))
        if workload in WORKLOADS:
            _check_cli_grid_used(ov, {workload})
        sc = load_scenario(p, ov)
        return Sweep(sc.name, str(p), (sc,), sc.model.description, tuple(sc.model.grid))
    try:
        sf = SweepFile.model_validate(doc, strict=True)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(str(p), exc)) from None

    entries: list[tuple[Path, str, Overrides]] = []
    used: set[str] = set()
    for i, e in enumerate(sf.scenarios):
        file = (p.parent / e.file).resolve()
        if not file.is_file():
            raise ConfigError.one(str(p), f"scenarios[{i}].file", "scenario file not found", str(file))
        workload = str(read_yaml_mapping(file).get("workload", ""))
        used.add(workload)
        settings = [
            Setting(k, v, str(p), f"defaults.{k}") for k, v in flatten(sf.defaults) if _applies(k, workload)
        ]
        settings += [Setting(k, v, str(p), f"scenarios[{i}].{k}") for k, v in flatten(e.model_extra or {})]
        grid = [Setting(k, v, str(p), f"grid.{k}") for k, v in sf.grid.items() if _applies(k, workload)]
        grid += [Setting(k, v, str(p), f"scenarios[{i}].grid.{k}") for k, v in e.grid.items()]
        entry_ov = _only_for(ov, workload)
        entry_ov = Overrides(
            **{f: getattr(entry_ov, f) for f in Overrides.FLAGS},
            settings=(*settings, *entry_ov.settings),
            grid=(*grid, *entry_ov.grid),
        )
        entries.append((file, workload, entry_ov))
    for where, keys in (("defaults", [k for k, _ in flatten(sf.defaults)]), ("grid", list(sf.grid))):
        for k in keys:
            top = k.split(".")[0]
            if top in WORKLOADS and top not in used:
                raise ConfigError.one(str(p), f"{where}.{k}", f"no scenario of this sweep runs {top}")
    _check_cli_grid_used(ov, used)

    scenarios: list[Scenario] = []
    for i, (file, _, entry_ov) in enumerate(entries):
        sc = load_scenario(file, entry_ov)
        if any(o.name == sc.name for o in scenarios):
            raise ConfigError.one(
                str(p), f"scenarios[{i}]", f"a second scenario named {sc.name!r}: set another `name:`"
            )
        scenarios.append(sc)
    columns = list(dict.fromkeys(path for sc in scenarios for path in sc.model.grid))
    return Sweep(sf.name, str(p), tuple(scenarios), sf.description, tuple(columns))


def _only_for(ov: Overrides, workload: str) -> Overrides:
    """The overrides without the --grid axes of another workload's section."""
    grid = tuple(s for s in ov.grid if _applies(s.path, workload))
    if len(grid) == len(ov.grid):
        return ov
    return Overrides(**{f: getattr(ov, f) for f in Overrides.FLAGS}, settings=ov.settings, grid=grid)


def _check_cli_grid_used(ov: Overrides, workloads: set[str]) -> None:
    for s in ov.grid:
        top = s.path.split(".")[0]
        if top in WORKLOADS and top not in workloads:
            raise ConfigError.one(s.file, s.field, f"no scenario of this sweep runs {top}")


# Keys -----------------------------------------------------------------------------------------


def input_files(sc: Scenario) -> list[Path]:
    """The files a point of `sc` reads besides the scenario: its hardware file and every file of
    the calibration directory beside it (allocator profile, fitted network costs)."""
    hw = Path(sc.hardware.path).resolve()
    cal_dir = sc.hardware.calibration_path().resolve().parent
    cal = sorted(f for f in cal_dir.glob("*.yaml") if f.is_file()) if cal_dir.is_dir() else []
    return [hw, *cal]


@cache
def _file_digest(path: Path, mtime_ns: int, size: int) -> str:
    return results.sha256(path)


def file_digest(path: Path) -> str:
    st = path.stat()
    return _file_digest(path, st.st_mtime_ns, st.st_size)


def config_digest(sc: Scenario) -> str:
    """Everything a row of `sc` depends on but the point: the resolved configuration without the
    axes that list other points (so extending a grid keeps the points already run), the input
    files' bytes, the model's code and pagesim's version."""
    cfg = sc.resolved()
    for k in ("strategies", "batches", "cpus", "replications", "grid", "description"):
        cfg.pop(k, None)
    doc = {
        "pagesim": simulator.__version__,
        "code": code_fingerprint(),
        "inputs": {str(f): file_digest(f) for f in input_files(sc)},
        "config": cfg,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=repr).encode()).hexdigest()


def point_key(config: str, p: Point) -> str:
    """The file name (without .json) of a point's row in OUT/.points/."""
    ident = [config, p.strategy, p.batch, p.cpus, p.replication, [list(g) for g in p.grid]]
    return hashlib.sha256(json.dumps(ident, default=repr).encode()).hexdigest()[:32]


# Rows -----------------------------------------------------------------------------------------


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"not a JSON value: {v!r}")


def normalized(row: dict[str, Any]) -> dict[str, Any]:
    """A row as it reads back from its point file: plain Python values (numpy scalars become
    int/float). Every row of a sweep goes through this, wherever it ran, so that fresh, resumed,
    pool and Dask rows make the same table."""
    return json.loads(json.dumps(row, default=_plain))


# Finished points ------------------------------------------------------------------------------


def points_dir(out: Path) -> Path:
    return out / POINTS_DIR


def load_point(workdir: Path, key: str) -> dict[str, Any] | None:
    """The row of a finished point, or None (absent, or unreadable: it runs again)."""
    try:
        with open(workdir / f"{key}.json", encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("row"), dict):
        return None
    return doc["row"]


def save_point(workdir: Path, sc: Scenario, t: Task, row: dict[str, Any]) -> None:
    """Keep a finished point's row: written beside and renamed into place, so a point file is
    whole or absent whatever interrupts it."""
    doc = {
        "key": t.key,
        "scenario": sc.name,
        "point": {
            "strategy": t.point.strategy,
            "batch": t.point.batch,
            "cpus": t.point.cpus,
            "replication": t.point.replication,
            "grid": dict(t.point.grid),
        },
        "pagesim_version": simulator.__version__,
        "finished_utc": results.utc_now(),
        "row": row,
    }
    final = workdir / f"{t.key}.json"
    tmp = workdir / f".{t.key}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _remove_stale_temporaries(workdir: Path) -> None:
    for f in workdir.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            f.unlink()


# Running a sweep ------------------------------------------------------------------------------


class SweepInterruptedError(Exception):
    """Ctrl-C or SIGTERM during a sweep: `done` of `total` points are kept in `workdir`."""

    def __init__(self, done: int, total: int, ran: int, workdir: Path | None) -> None:
        super().__init__(done, total, ran, workdir)
        self.done, self.total, self.ran, self.workdir = done, total, ran, workdir


@dataclass
class SweepResult:
    out: Path
    rows: pd.DataFrame
    summary: pd.DataFrame
    reused: int  # points found finished in OUT/.points
    ran: int  # points run now
    wall_s: float


def run_sweep(
    sweep: Sweep,
    out: str | Path,
    executor: Executor | None = None,
    *,
    on_done: OnDone | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_plan: Callable[[Sequence[Task]], None] | None = None,
    fresh: bool = False,
    argv: Sequence[str] = (),
) -> SweepResult:
    """Run every point of `sweep` not already finished in OUT/.points/ and write the tables.

    `on_start(reused, total)` is called once the finished points are known, `on_plan(tasks)` with
    the points still to run, `on_done(task, row, reused)` once per point (first for the reused
    ones). `fresh` runs every point again. On Ctrl-C/SIGTERM (KeyboardInterrupt) raises
    SweepInterruptedError: finished points stay in OUT/.points/, no table is written."""
    executor = executor or LocalExecutor(1)
    out = Path(out)
    wall0 = time.perf_counter()
    started = results.utc_now()
    tasks = sweep.tasks()
    workdir = points_dir(out)
    created = results._make_parents(workdir)
    _remove_stale_temporaries(workdir)
    rows: list[dict[str, Any] | None] = [None] * len(tasks)
    todo: list[Task] = []
    for t in tasks:
        row = None if fresh else load_point(workdir, t.key)
        if row is None:
            todo.append(t)
        else:
            rows[t.index] = row
    reused = len(tasks) - len(todo)
    if on_start:
        on_start(reused, len(tasks))
    if on_plan:
        on_plan(todo)
    if on_done:
        for t in tasks:
            if rows[t.index] is not None:
                on_done(t, rows[t.index], True)  # type: ignore[arg-type]
    ran = 0

    def finished(t: Task, row: dict[str, Any]) -> None:
        nonlocal ran
        row = normalized(row)
        save_point(workdir, sweep.scenarios[t.scenario], t, row)
        rows[t.index] = row
        ran += 1
        if on_done:
            on_done(t, row, False)

    try:
        executor.run(sweep.scenarios, todo, finished)
    except BaseException as exc:
        # finished points stay (a rerun resumes); an empty work directory does not
        kept: Path | None = workdir
        if not any(workdir.glob("*.json")):
            kept = None
            results._remove_if_empty([workdir, *created])
        if isinstance(exc, KeyboardInterrupt):
            raise SweepInterruptedError(reused + ran, len(tasks), ran, kept) from None
        raise
    done_rows = [r for r in rows if r is not None]
    assert len(done_rows) == len(tasks), "every point has a row"
    table = results.rows_table(done_rows)
    summary = results.summarize(table, sweep.grid_columns)
    meta = sweep_metadata(
        sweep,
        argv=argv,
        points=len(tasks),
        reused=reused,
        ran=ran,
        execution=executor.describe(),
        started=started,
        finished=results.utc_now(),
    )

    def write(tmp: Path) -> None:
        table.to_csv(tmp / results.ROWS_CSV, index=False, lineterminator="\n")
        table.to_parquet(tmp / results.ROWS_PARQUET, engine="pyarrow", index=False)
        summary.to_csv(tmp / results.SUMMARY_CSV, index=False, lineterminator="\n")
        summary.to_parquet(tmp / results.SUMMARY_PARQUET, engine="pyarrow", index=False)
        results.timings_frame(done_rows).to_csv(tmp / results.TIMINGS, index=False, lineterminator="\n")
        with open(tmp / results.CONFIG, "w", encoding="utf-8") as f:
            yaml.safe_dump(sweep_config(sweep), f, sort_keys=False, allow_unicode=True)
        with open(tmp / results.METADATA, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
            f.write("\n")

    try:
        results.write_directory(out, FILES, write)
    except KeyboardInterrupt:  # every point finished: the rerun only writes the tables
        raise SweepInterruptedError(len(tasks), len(tasks), ran, workdir) from None
    return SweepResult(out, table, summary, reused, ran, time.perf_counter() - wall0)


def sweep_config(sweep: Sweep) -> dict[str, Any]:
    """config.yaml of a sweep: its name and each scenario's resolved configuration."""
    return {
        "name": sweep.name,
        "description": sweep.description,
        "scenarios": [sc.resolved() for sc in sweep.scenarios],
    }


def sweep_metadata(
    sweep: Sweep,
    *,
    argv: Sequence[str],
    points: int,
    reused: int,
    ran: int,
    execution: dict[str, Any],
    started: str,
    finished: str,
) -> dict[str, Any]:
    """metadata.json of a sweep."""
    rev, dirty = results.git_revision()
    versions = {d: results._version(d) for d in ("numpy", "simpy", "pandas", "pyarrow", "pydantic")}
    if execution.get("backend") == "dask":
        versions.update({d: results._version(d) for d in ("dask", "distributed")})
    hardware: dict[str, Any] = {}
    calibration: dict[str, Any] = {}
    for sc in sweep.scenarios:
        files = input_files(sc)
        hardware[sc.hardware.name] = results._file_entry(files[0])
        calibration.update({str(f): results._file_entry(f)["sha256"] for f in files[1:]})
    return {
        "pagesim_version": simulator.__version__,
        "git_revision": rev,
        "git_dirty": dirty,
        "model_code_sha256": code_fingerprint(),
        "versions": {"python": platform.python_version(), **versions},
        "sweep": sweep.name,
        "files": {
            "sweep": results._file_entry(sweep.path),
            "scenarios": {sc.name: results._file_entry(sc.path) for sc in sweep.scenarios},
            "hardware": hardware,
            "calibration": calibration,
        },
        "seeds": {sc.name: sc.model.seed for sc in sweep.scenarios},
        "replications": {sc.name: sc.model.replications for sc in sweep.scenarios},
        "grid_columns": list(sweep.grid_columns),
        "points": points,
        "points_reused": reused,
        "points_run": ran,
        "execution": execution,
        "command_line": shlex.join(argv),
        "argv": list(argv),
        "cwd": os.getcwd(),
        "started_utc": started,
        "finished_utc": finished,
    }


# Command-line --grid --------------------------------------------------------------------------


def _scalar(text: str) -> Any:
    """One command-line value: a number if it reads as one (2e5 too, which YAML 1.1 leaves a
    string), else YAML (true, null, irq_off)."""
    t = text.strip()
    for kind in (int, float):
        try:
            v = kind(t)
        except ValueError:
            continue
        if not (isinstance(v, float) and not math.isfinite(v)):
            return v
    return yaml.safe_load(t) if t else t


def parse_grid_flag(text: str) -> Setting:
    """`--grid PATH=V1,V2,...` (or `PATH=[V1, V2]`, YAML flow syntax, for values with commas):
    each value is a number if it reads as one, else YAML (true -> bool, irq_off -> str)."""
    path, sep, rest = text.partition("=")
    path = path.strip()
    flag = f"--grid {path}" if path else "--grid"
    if not sep or not path:
        raise ConfigError.one("command line", "--grid", "expected PATH=VALUE[,VALUE...]", text)
    try:
        values = (
            yaml.safe_load(rest) if rest.strip().startswith("[") else [_scalar(v) for v in rest.split(",")]
        )
    except yaml.YAMLError:
        raise ConfigError.one("command line", flag, "values do not parse as YAML", rest) from None
    if not isinstance(values, list):
        raise ConfigError.one("command line", flag, "expected a list of values", rest)
    return Setting(path, values, "command line", flag)
