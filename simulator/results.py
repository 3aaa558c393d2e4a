"""The table stage: rows -> tables and per-point summaries -> result files, written atomically,
and read back for plots and comparisons. Nothing here runs the model.

A run's rows become one pandas DataFrame at the end (not row by row), and the directory gets:

    rows.csv        one row per point; no wall-clock columns, so byte-identical for the same inputs
    rows.parquet    the same table with its dtypes (pyarrow)
    config.yaml     the complete resolved configuration (Scenario.resolved()); runs again
    hardware.yaml   the hardware file, verbatim (sources in its comments)
    metadata.json   versions, git revision, input files and their sha256, seed, command line, times
    timings.csv     point identity + wall_s (the only non-deterministic numbers)

A sweep also writes summary.csv and summary.parquet: per point, the mean and the half-width of
the 95 % confidence interval (Student's t) of every figure over its replications (summarize());
load_summary() reads them back, or computes them from a `pagesim run` directory's rows.

Every file is first written into a hidden temporary directory beside the target (same filesystem)
and only then moved into place with os.replace, so an error or a signal leaves either the previous
results or the new ones, never a mixture and never a half-written file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

import simulator
from simulator.errors import ConfigError

if TYPE_CHECKING:
    from simulator.scenario import Scenario

ROWS_CSV = "rows.csv"
ROWS_PARQUET = "rows.parquet"
CONFIG = "config.yaml"
HARDWARE_COPY = "hardware.yaml"
METADATA = "metadata.json"
TIMINGS = "timings.csv"
# metadata.json goes last: when it is present the directory holds a complete run.
FILES = (ROWS_CSV, ROWS_PARQUET, CONFIG, HARDWARE_COPY, TIMINGS, METADATA)

SUMMARY_CSV = "summary.csv"  # a sweep's: per point, mean and 95 % CI of every figure
SUMMARY_PARQUET = "summary.parquet"

IDENTITY = ("scenario", "workload", "hardware", "kernel", "strategy", "batch", "cpus", "replication", "seed")
WALL_CLOCK = ("wall_s",)
# the identity of a point besides its grid axes; a summary row aggregates over `replication`
POINT_IDENTITY = tuple(c for c in IDENTITY if c != "replication")
NOT_METRICS = {*IDENTITY, *WALL_CLOCK}


# Tables ---------------------------------------------------------------------------------------


def columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every column of `rows` in a fixed order: identity first, then first-seen order."""
    seen: dict[str, None] = {c: None for c in IDENTITY if any(c in r for r in rows)}
    for r in rows:
        for c in r:
            seen.setdefault(c, None)
    return list(seen)


def rows_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The deterministic result table: every column except the wall-clock ones."""
    cols = [c for c in columns(rows) if c not in WALL_CLOCK]
    return pd.DataFrame.from_records(list(rows), columns=cols)


def timings_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Point identity and wall-clock seconds per point."""
    cols = [c for c in columns(rows) if c in IDENTITY or c in WALL_CLOCK]
    return pd.DataFrame.from_records(list(rows), columns=cols)


# Metadata -------------------------------------------------------------------------------------


def utc_now() -> str:
    """The current UTC time as ISO 8601 with a Z suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_revision(repo: Path | None = None) -> tuple[str, bool | None]:
    """(HEAD commit, working tree has changes) of pagesim's own repository; ("unknown", None)
    when it is not a git checkout or git is missing."""
    repo = (repo or Path(simulator.__file__).resolve().parent.parent).resolve()
    top = _git(repo, "rev-parse", "--show-toplevel")
    # an installed pagesim inside some other checkout (a venv in a project) is not that project
    if not top or Path(top).resolve() != repo:
        return "unknown", None
    rev = _git(repo, "rev-parse", "HEAD")
    if not rev:
        return "unknown", None
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return rev, (bool(status) if status is not None else None)


def _version(dist: str) -> str:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def _file_entry(path: str | Path) -> dict[str, str]:
    p = Path(path).resolve()
    return {"path": str(p), "sha256": sha256(p)}


def run_metadata(
    sc: Scenario, *, argv: Sequence[str], points: int, started: str, finished: str
) -> dict[str, Any]:
    """metadata.json's content for a run of `sc` (`argv` is the full command line)."""
    rev, dirty = git_revision()
    hw = sc.hardware
    return {
        "pagesim_version": simulator.__version__,
        "git_revision": rev,
        "git_dirty": dirty,
        "versions": {
            "python": platform.python_version(),
            **{d: _version(d) for d in ("numpy", "simpy", "pandas", "pyarrow", "pydantic")},
        },
        "scenario": sc.name,
        "files": {
            "scenario": _file_entry(sc.path),
            "hardware": _file_entry(hw.path),
            "calibration": _file_entry(hw.calibration_path()),
        },
        "seed": sc.model.seed,
        "replications": sc.model.replications,
        "points": points,
        "command_line": shlex.join(argv),
        "argv": list(argv),
        "cwd": os.getcwd(),
        "started_utc": started,
        "finished_utc": finished,
    }


# Atomic writing -------------------------------------------------------------------------------


def _make_parents(d: Path) -> list[Path]:
    """mkdir -p `d`; returns the directories it created, innermost first."""
    created: list[Path] = []
    p = d.absolute()
    while not p.exists():
        created.append(p)
        p = p.parent
    d.mkdir(parents=True, exist_ok=True)
    return created


def _remove_if_empty(dirs: list[Path]) -> None:
    for d in dirs:
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Defer SIGINT/SIGTERM for the few renames that publish a run, so they cannot be split."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    except (AttributeError, ValueError, OSError):  # no pthread_sigmask on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _write_files(tmp: Path, rows: Sequence[dict[str, Any]], sc: Scenario, meta: dict[str, Any]) -> None:
    df = rows_frame(rows)
    # pandas writes floats as their shortest round-trip repr, so the CSV reads back exactly.
    df.to_csv(tmp / ROWS_CSV, index=False, lineterminator="\n")
    df.to_parquet(tmp / ROWS_PARQUET, engine="pyarrow", index=False)
    timings_frame(rows).to_csv(tmp / TIMINGS, index=False, lineterminator="\n")
    with open(tmp / CONFIG, "w", encoding="utf-8") as f:
        yaml.safe_dump(sc.resolved(), f, sort_keys=False, allow_unicode=True)
    # the hardware file as it was, comments (sources) included
    shutil.copyfile(sc.hardware.path, tmp / HARDWARE_COPY)
    with open(tmp / METADATA, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


def _publish(tmp: Path, target: Path, names: Sequence[str] = FILES) -> None:
    with _signals_held():
        if not target.exists():
            os.replace(tmp, target)  # one rename: all files appear at once
            return
        for name in names:
            os.replace(tmp / name, target / name)
        tmp.rmdir()


def write_results(
    out: str | Path, rows: Sequence[dict[str, Any]], sc: Scenario, meta: dict[str, Any]
) -> Path:
    """Write a run's files into directory `out` atomically; returns `out`.

    On any exception (or KeyboardInterrupt) nothing of this run remains: the temporary directory
    and any parent directories created for it are removed, and earlier results in `out` stay.
    """
    return write_directory(out, FILES, lambda tmp: _write_files(tmp, rows, sc, meta))


def write_directory(out: str | Path, names: Sequence[str], write: Callable[[Path], None]) -> Path:
    """Atomically publish the files `names`, which `write(tmp)` creates in a temporary directory
    beside `out`, into directory `out` (created if missing); returns `out`. Other files in `out`
    stay. The last name should be the file whose presence marks a complete set (metadata.json).

    On any exception (or KeyboardInterrupt) nothing of this write remains: the temporary
    directory and any parent directories created for it are removed, and earlier files stay."""
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise NotADirectoryError(f"{target} exists and is not a directory")
    created = _make_parents(target.parent)
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700; results are ordinary files
        write(tmp)
        _publish(tmp, target, names)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        _remove_if_empty(created)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# One writer per results directory ---------------------------------------------------------------


def lock_path(out: str | Path) -> Path:
    """The lock file of results directory `out`: beside it, so that the directory itself is only
    ever created by the rename that publishes it."""
    target = Path(out).absolute()
    return target.parent / f".{target.name or 'results'}.pagesim-lock"


@contextlib.contextmanager
def writer_lock(out: str | Path, name: str) -> Iterator[None]:
    """Hold the exclusive lock of results directory `out` (filelock: an flock'ed file beside it)
    while a run or sweep named `name` computes and writes into it. A second writer is refused at
    once (ConfigError, naming the lock file); so is a run or sweep of another name into a
    directory that holds a complete set of results (see check_same_results). The lock file, and
    any parent directories made for it, are removed again on the way out."""
    from filelock import FileLock, Timeout

    path = lock_path(out)
    created = _make_parents(path.parent)
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        _remove_if_empty(created)
        raise ConfigError.one(
            "command line",
            "--out",
            f"{out}/ is being written by another pagesim (it holds {path}): wait for it to finish,"
            " or choose another --out",
            str(out),
        ) from None
    try:
        check_same_results(out, name)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while held: a waiter that opened it finds it unlinked and is refused
        lock.release()
        _remove_if_empty(created)


def check_same_results(out: str | Path, name: str) -> None:
    """Refuse to write the results of `name` (a scenario or sweep) over those of another name."""
    meta_path = Path(out) / METADATA
    if not meta_path.exists():
        return
    try:
        meta = load_metadata(out)
        held = meta.get("sweep") or meta.get("scenario")
    except ConfigError as exc:
        reason = exc.problems[0].message if exc.problems else "unreadable"
        msg = f"{meta_path} {reason}: whose results {out}/ holds is unknown; remove it or use another --out"
        raise ConfigError.one("command line", "--out", msg, str(out)) from None
    if held is not None and str(held) != name:
        msg = (
            f"{out}/ holds the results of {held!r}, not of {name!r}: choose another --out, or remove"
            " that directory first"
        )
        raise ConfigError.one("command line", "--out", msg, str(out))


# Reading back ---------------------------------------------------------------------------------

# columns every rows table of pagesim has (a table without them was not written by pagesim)
REQUIRED_COLUMNS = ("scenario", "workload", "hardware", "strategy", "batch", "cpus")


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet or CSV table written by pagesim; a ConfigError naming the file if it is damaged,
    empty or not one of pagesim's tables (exit 2, one line, not a pyarrow traceback)."""
    try:
        df = pd.read_parquet(path, engine="pyarrow") if path.suffix == ".parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ConfigError.one(str(path), "", "is empty: it holds no table") from None
    except Exception as exc:  # pyarrow.ArrowInvalid, pandas ParserError, OSError, UnicodeDecodeError
        kind = "Parquet" if path.suffix == ".parquet" else "CSV"
        raise ConfigError.one(
            str(path),
            "",
            f"cannot be read as a {kind} table ({_reason(exc)}): damaged or not written by pagesim",
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError.one(str(path), "", f"is not a pagesim result table: no column {missing[0]!r}")
    if df.empty:
        raise ConfigError.one(str(path), "", "holds no rows (a header only): no point to show")
    return df


def _reason(exc: BaseException) -> str:
    """The gist of a reader's exception: its first sentence, without the file name it repeats."""
    text = (str(exc).strip().splitlines() or [""])[0]
    text = re.sub(r"^Could not open .*?: ", "", text)
    return text.split(". ")[0].rstrip(".") or type(exc).__name__


def load_results(directory: str | Path, *, timings: bool = False) -> pd.DataFrame:
    """The rows of a results directory (rows.parquet, else rows.csv); with timings=True, wall_s
    from timings.csv is joined on the point identity."""
    d = Path(directory)
    parquet, csv = d / ROWS_PARQUET, d / ROWS_CSV
    if parquet.is_file():
        df = read_table(parquet)
    elif csv.is_file():
        df = read_table(csv)
    else:
        raise FileNotFoundError(f"{d} holds no {ROWS_PARQUET} or {ROWS_CSV}")
    if timings:
        t = pd.read_csv(d / TIMINGS)
        keys = [c for c in IDENTITY if c in df.columns and c in t.columns]
        df = df.merge(t, on=keys, how="left", validate="one_to_one")
    return df


def load_metadata(directory: str | Path) -> dict[str, Any]:
    """metadata.json of a results directory (OSError if it is missing; ConfigError naming the
    file if it is not a JSON object)."""
    path = Path(directory) / METADATA
    with open(path, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise ConfigError.one(str(path), "", f"is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ConfigError.one(str(path), "", "is not a JSON object")
    return meta


def load_config(directory: str | Path) -> dict[str, Any]:
    """config.yaml (the resolved configuration) of a results directory (OSError if it is
    missing; ConfigError naming the file if it does not read as a YAML mapping)."""
    path = Path(directory) / CONFIG
    with open(path, encoding="utf-8") as f:
        try:
            cfg = yaml.safe_load(f)
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            first = (str(exc).strip().splitlines() or ["unreadable"])[0]
            raise ConfigError.one(str(path), "", f"is not valid YAML ({first})") from None
    if not isinstance(cfg, dict):
        raise ConfigError.one(str(path), "", "is not a YAML mapping")
    return cfg


# Summaries: per point, the mean and 95 % confidence interval over its replications ---------------

# Student's t, two-sided 95 % (0.975 quantile), by degrees of freedom; between table entries it is
# interpolated linearly in 1/df, which is exact to 4 digits here (tests check it by integration).
T975 = {
    1: 12.706204736,
    2: 4.302652730,
    3: 3.182446305,
    4: 2.776445105,
    5: 2.570581836,
    6: 2.446911851,
    7: 2.364624252,
    8: 2.306004135,
    9: 2.262157163,
    10: 2.228138852,
    11: 2.200985160,
    12: 2.178812830,
    13: 2.160368656,
    14: 2.144786688,
    15: 2.131449546,
    16: 2.119905299,
    17: 2.109815578,
    18: 2.100922040,
    19: 2.093024054,
    20: 2.085963447,
    21: 2.079613845,
    22: 2.073873068,
    23: 2.068657610,
    24: 2.063898562,
    25: 2.059538553,
    26: 2.055529439,
    27: 2.051830516,
    28: 2.048407142,
    29: 2.045229642,
    30: 2.042272456,
    40: 2.021075390,
    60: 2.000297822,
    120: 1.979930405,
}
Z975 = 1.959963985


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1)."""
    if df < 1:
        raise ValueError("at least one degree of freedom")
    if df in T975:
        return T975[df]
    known = sorted(T975)
    hi = next((k for k in known if k > df), None)
    lo = max(k for k in known if k < df)
    t_lo, x_lo = T975[lo], 1.0 / lo
    t_hi, x_hi = (T975[hi], 1.0 / hi) if hi is not None else (Z975, 0.0)
    x = 1.0 / df
    return t_hi + (t_lo - t_hi) * (x - x_hi) / (x_lo - x_hi)


def ci95_halfwidth(values: np.ndarray) -> float:
    """Half-width of the 95 % confidence interval of the mean of `values` (t-distribution);
    NaN for fewer than two values."""
    n = len(values)
    if n < 2:
        return math.nan
    if (values == values[0]).all():  # identical replications: exactly 0, not float noise
        return 0.0
    return t975(n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)


def mean(values: np.ndarray) -> float:
    """The mean of `values`: exactly the value when all are equal (np.mean of three equal floats
    may differ from them in the last bit); NaN for none."""
    if not len(values):
        return math.nan
    if (values == values[0]).all():
        return float(values[0])
    return float(np.mean(values))


def rows_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows as one table (results.rows_frame), with types a mixed table needs: a column
    of whole numbers that some workload lacks stays whole (nullable Int64), and a grid column
    mixing strings and numbers ('saturate', 3e6) holds strings."""
    df = rows_frame(rows)
    for c in df.columns:
        vals = [r[c] for r in rows if r.get(c) is not None]
        if not vals or len(vals) == len(rows):
            if vals and df[c].dtype == object and len({type(v) for v in vals}) > 1:
                df[c] = [None if v is None else str(v) for v in (r.get(c) for r in rows)]
            continue
        if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            df[c] = df[c].astype("Int64")
        elif all(isinstance(v, bool) for v in vals):
            df[c] = df[c].astype("boolean")
        elif len({type(v) for v in vals}) > 1 and not all(isinstance(v, (int, float)) for v in vals):
            df[c] = [None if v is None else str(v) for v in (r.get(c) for r in rows)]
    return df


def metric_columns(df: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """The numeric columns of a rows table that are figures (not identity, grid or wall clock)."""
    skip = {*keys, *NOT_METRICS}
    return [
        c
        for c in df.columns
        if c not in skip and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
    ]


def point_columns(df: pd.DataFrame, grid_columns: Sequence[str] = ()) -> list[str]:
    """A point's identity columns in `df`: the identity without replication, plus the grid axes
    (given, or read as the dotted column names, which only grid axes have)."""
    grid = list(grid_columns) or [c for c in df.columns if "." in c]
    return [c for c in (*POINT_IDENTITY, *grid) if c in df.columns]


def summarize(df: pd.DataFrame, grid_columns: Sequence[str] = ()) -> pd.DataFrame:
    """Per point (all replications): `replications` (n), and for every figure its mean (named as
    the figure) and the half-width of its 95 % confidence interval (`<figure>_ci95`; NaN with
    one replication). Points keep their first row's order."""
    keys = point_columns(df, grid_columns)
    metrics = metric_columns(df, keys)
    ident = df[keys].astype(object).where(df[keys].notna(), None)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, k in enumerate(ident.itertuples(index=False, name=None)):
        groups.setdefault(k, []).append(i)
    values = {m: df[m].to_numpy(dtype=np.float64, na_value=np.nan) for m in metrics}
    out: list[dict[str, Any]] = []
    for k, idx in groups.items():
        rec: dict[str, Any] = dict(zip(keys, k))
        rec["replications"] = len(idx)
        for m in metrics:
            v = values[m][idx]
            v = v[~np.isnan(v)]
            rec[m] = mean(v)
            rec[f"{m}_ci95"] = ci95_halfwidth(v)
        out.append(rec)
    summary = pd.DataFrame.from_records(out, columns=[*keys, "replications", *_with_ci(metrics)])
    for c in keys:  # identity columns keep the rows table's types
        summary[c] = summary[c].astype(df[c].dtype)
    return summary


def _with_ci(metrics: Sequence[str]) -> list[str]:
    return [c for m in metrics for c in (m, f"{m}_ci95")]


def load_summary(directory: str | Path) -> pd.DataFrame:
    """summary.parquet of a results directory; for a `pagesim run` directory (no summary), the
    summary computed from its rows."""
    d = Path(directory)
    if (d / SUMMARY_PARQUET).is_file():
        return read_table(d / SUMMARY_PARQUET)
    if (d / SUMMARY_CSV).is_file():
        return read_table(d / SUMMARY_CSV)
    rows = load_results(d)
    grid: Sequence[str] = ()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError, ConfigError):
        grid = list(load_metadata(d)["grid_columns"])
    return summarize(rows, grid)
