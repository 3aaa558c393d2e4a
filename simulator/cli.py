"""The pagesim command line: run, sweep, plot, compare, zoneinfo, calibrate, check, validate-model.

This is the only module that prints. Results go to stdout (a table, or JSON with --json); progress,
notices and errors go to stderr. Exit status: 0 success, 2 bad input (one line per problem, naming
the file or flag and the field), 3 a model invariant broke (a bug), 130 interrupted. A run writes
its files only once every point has finished, so an error or interruption leaves nothing behind.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import simulator
from simulator import run as run_module
from simulator.calibration import Calibration, derive, format_derivation, load_calibration, load_outside_file
from simulator.errors import ConfigError, InvariantError, Problem
from simulator.executor import DaskExecutor, Executor, LocalExecutor, Task
from simulator.hardware import Hardware, load_hardware
from simulator.kernels import DEFAULT_VERSION, KernelConfig
from simulator.kernels import versions as kernel_versions
from simulator.mm.zone_setup import BootNumbers, boot_numbers, check_node_memory
from simulator.run import expand
from simulator.scenario import Overrides, Scenario, Setting, load_scenario
from simulator.workloads import WORKLOADS
from simulator.workloads.api import Point
from simulator.yamlio import read_yaml_mapping

PROG = "pagesim"
EXIT_OK, EXIT_CONFIG, EXIT_INVARIANT, EXIT_INTERRUPTED = 0, 2, 3, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool killed by SIGPIPE
STAT_COLUMNS = (
    "zone_lock_contended",
    "pcp_refills",
    "pcp_drains",
    "irq_off_max_ns",
    "irq_off_p99_ns",
    "cache_misses_per_page",
)

SHORT_HEADERS = {  # two-line headers keep the terminal table narrow
    "replication": "rep",
    "cycles_per_page": "cycles\n/page",
    "ns_per_page": "ns\n/page",
    "zone_lock_contended": "lock\ncontended",
    "pcp_refills": "pcp\nrefills",
    "pcp_drains": "pcp\ndrains",
    "irq_off_max_ns": "irq-off\nmax ns",
    "irq_off_p99_ns": "irq-off\np99 ns",
    "cache_misses_per_page": "misses\n/page",
    "wall_s": "wall\ns",
}

OnDone = Callable[[int, Point, dict[str, Any]], None]
# simulator.plots.KINDS (not imported here: matplotlib is slow to import; a test keeps them equal)
PLOT_KINDS = ("overview", "throughput", "cost", "latency", "irq", "zone_lock", "cache", "scaling")


class StoppedError(Exception):
    """A command stopped by Ctrl-C or SIGTERM that says itself what it kept (exit 130)."""


class RunInterruptedError(Exception):
    """Ctrl-C or SIGTERM during a command; `done` of `total` points had finished."""

    def __init__(self, done: int = 0, total: int = 0, written: Path | None = None) -> None:
        super().__init__(done, total, written)
        self.done, self.total, self.written = done, total, written


# Output helpers -------------------------------------------------------------------------------


def say(message: str) -> None:
    """A notice or progress line on stderr (never stdout: that holds results)."""
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def _json_safe(v: Any) -> Any:
    """Numbers stay numbers; NaN/inf (not JSON) become null; numpy scalars become Python ones."""
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def to_json(data: Any) -> str:
    """Strict JSON (no NaN) of rows or nested dicts/lists of plain values."""

    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return _json_safe(x)

    return json.dumps(clean(data), indent=2, allow_nan=False)


def fmt_value(v: Any) -> str:
    """A table cell: integers as is, floats to a readable precision, "-" for no value (a figure
    that does not apply to the point, such as drops at a saturating load)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    return str(v)


def print_table(headers: Sequence[str], cells: Sequence[Sequence[str]], title: str = "") -> None:
    """A table on stdout: rich on a terminal wide enough for it, aligned plain text otherwise."""
    if sys.stdout.isatty() and _print_rich_table(headers, cells, title):
        return
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    if title:
        print(title)
    for line in [headers, *cells]:  # the first column (strategy) reads better left-aligned
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))


def _print_rich_table(headers: Sequence[str], cells: Sequence[Sequence[str]], title: str) -> bool:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i, h in enumerate(headers):
        table.add_column(SHORT_HEADERS.get(h, h), justify="left" if i == 0 else "right", no_wrap=True)
    for row in cells:
        table.add_row(*row)
    console = Console(file=sys.stdout)
    # a squeezed rich table truncates numbers; plain text at least wraps them whole
    if console.measure(table, options=console.options.update_width(10_000)).maximum > console.width:
        return False
    console.print(table)
    return True


# Argument parsing -----------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but its errors become ConfigErrors in the standard one-line format."""

    def error(self, message: str) -> NoReturn:
        m = re.match(r"argument ([^:]+): (.*)", message, re.S)
        field, msg = (m.group(1), m.group(2)) if m else ("", message)
        hint = "" if "(got " in msg else f" (see '{self.prog} --help')"
        raise ConfigError([Problem("command line", field, msg + hint)])


def _whole(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number (got {text!r})") from None


def _out_dir(text: str) -> Path:
    """--out: a directory path (an empty one would mean the working directory, by accident)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"expected a directory path (got {text!r})")
    return Path(text)


def _tolerance(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not 0 <= v < 1e6:
        raise argparse.ArgumentTypeError(
            f"expected a relative difference such as 0.01 for 1 % (got {text!r})"
        )
    return v


def _jobs(text: str) -> int:
    n = _whole(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 worker process (got {n})")
    return n


def _add_override_flags(p: argparse.ArgumentParser, whose: str) -> None:
    """The flags `run` and `sweep` share: each overrides what the scenario files say (_overrides)."""
    p.add_argument("--hardware", metavar="FILE", help=f"hardware file instead of the {whose}")
    p.add_argument("--strategy", action="append", metavar="S", help="strategy (repeatable)")
    p.add_argument("--batch", action="append", type=_whole, metavar="N", help="batch size (repeatable)")
    p.add_argument("--cpus", action="append", type=_whole, metavar="N", help="CPU count (repeatable)")
    p.add_argument("--seed", type=_whole, metavar="N", help="root seed")
    p.add_argument("--duration", metavar="D", help="simulated time per point, e.g. '100 us'")
    p.add_argument("--replications", type=_whole, metavar="N")
    p.add_argument(
        "--kernel",
        metavar="VERSION",
        help=f"kernel version instead of the {whose} kernel.version: one of {', '.join(kernel_versions())}",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = _Parser(prog=PROG, description="Discrete-event simulator of the Linux 5.12 page allocator.")
    p.add_argument("--version", action="version", version=f"{PROG} {simulator.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("run", help="run every point of a scenario and write its results")
    r.add_argument("scenario", metavar="SCENARIO.yaml")
    _add_override_flags(r, "scenario's")
    r.add_argument("--out", type=_out_dir, metavar="DIR", help="results directory (default results/<name>/)")
    r.add_argument("--json", action="store_true", help="print the rows as JSON on stdout")
    r.add_argument("--jobs", type=_jobs, default=1, metavar="N", help="worker processes (default 1)")

    z = sub.add_parser("zoneinfo", help="/proc/zoneinfo of a machine right after boot")
    z.add_argument("hardware", metavar="HARDWARE.yaml")
    z.add_argument("--json", action="store_true")
    z.add_argument("--no-thp", action="store_true", help="without khugepaged's min_free_kbytes")
    z.add_argument(
        "--kernel",
        metavar="VERSION",
        choices=kernel_versions(),
        default="5.12",
        help="kernel version (5.14 sizes pcp->high with zone_highsize(); default 5.12)",
    )

    c = sub.add_parser("calibrate", help="show how the instruction costs derive from the profile")
    c.add_argument("hardware", metavar="HARDWARE.yaml")
    c.add_argument("--json", action="store_true")

    k = sub.add_parser("check", help="validate scenario and hardware files without running them")
    k.add_argument("files", nargs="+", metavar="FILE")

    w = sub.add_parser("sweep", help="run a scenario's or sweep file's grid in parallel, resumably")
    w.add_argument(
        "file", metavar="SWEEP.yaml", help="a sweep file (lists scenario files) or a scenario file"
    )
    _add_override_flags(w, "scenarios'")
    w.add_argument(
        "--grid",
        action="append",
        metavar="PATH=V1,V2",
        help="another grid axis: a dotted scenario parameter and its values, e.g."
        " kernel.prep_new_page=irq_off,second_pass (repeatable; nfs.* applies to nfs scenarios only)",
    )
    w.add_argument("--out", type=_out_dir, metavar="DIR", help="results directory (default results/<name>/)")
    where = w.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=_jobs, metavar="N", help="worker processes (default: every core)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask cluster, e.g. tcp://host:8786")
    w.add_argument("--fresh", action="store_true", help="run every point again (ignore finished points)")
    w.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")

    g = sub.add_parser("plot", help="figures (PNG, SVG) of a results directory")
    g.add_argument("results", metavar="RESULTS", help="a directory written by `pagesim sweep` or `run`")
    g.add_argument(
        "--kind", action="append", choices=PLOT_KINDS, help="figure kind (repeatable; default all)"
    )
    g.add_argument("--scenario", action="append", metavar="NAME", help="only this scenario (repeatable)")
    g.add_argument("--out", type=_out_dir, metavar="DIR", help="where to write (default RESULTS/figures/)")
    g.add_argument("--format", action="append", choices=("png", "svg"), help="default: png and svg")

    m = sub.add_parser("compare", help="ratios B/A of the figures of two result sets")
    m.add_argument("a", metavar="A", help="results directory")
    m.add_argument("b", metavar="B", help="results directory (may be A, with --a/--b selecting)")
    m.add_argument("--a", dest="where_a", action="append", metavar="COLUMN=VALUE", help="select A's rows")
    m.add_argument("--b", dest="where_b", action="append", metavar="COLUMN=VALUE", help="select B's rows")
    m.add_argument("--metric", action="append", metavar="M", help="figure to compare (repeatable)")
    m.add_argument(
        "--across",
        action="append",
        choices=("workload", "hardware"),
        help="allow A and B to differ in this identity column (repeatable)",
    )
    m.add_argument(
        "--tolerance",
        type=_tolerance,
        default=0.01,
        metavar="R",
        help="relative difference marked '*' at one replication (default 0.01: 1 %%)",
    )
    m.add_argument("--json", action="store_true", help="every figure's A, B and B/A as JSON on stdout")

    sub.add_parser("validate-model", help="compare the model with published measurements", add_help=False)
    return p


# run ------------------------------------------------------------------------------------------


def _overrides(args: argparse.Namespace) -> Overrides:
    # --kernel sets one field of the kernel section, after any sweep file's settings
    kernel = (
        () if args.kernel is None else (Setting("kernel.version", args.kernel, "command line", "--kernel"),)
    )
    return Overrides(
        hardware=args.hardware,
        strategies=args.strategy,
        batches=args.batch,
        cpus=args.cpus,
        seed=args.seed,
        duration=args.duration,
        replications=args.replications,
        settings=kernel,
    )


def _node_memory_problems(hw: Hardware, thp: bool) -> None:
    msgs = check_node_memory(hw, thp=thp)
    if msgs:
        raise ConfigError([Problem(hw.path, "topology.nodes", m) for m in msgs])


def check_out_dir(out: Path) -> None:
    """Fail now, not after the run, if results cannot be written under `out`."""
    import tempfile

    if out.exists() and not out.is_dir():
        raise ConfigError.one("command line", "--out", "exists and is not a directory", str(out))
    p = out.absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        raise ConfigError.one("command line", "--out", f"{p} is not a directory", str(out))
    try:  # permissions alone do not tell (root, read-only mounts, /proc): try it
        Path(tempfile.mkdtemp(prefix=".pagesim-probe.", dir=p)).rmdir()
    except OSError as exc:
        msg = f"cannot write into {p}: {exc.strerror}"
        raise ConfigError.one("command line", "--out", msg, str(out)) from None


def run_points(
    sc: Scenario,
    points: Sequence[Point],
    jobs: int = 1,
    on_done: OnDone | None = None,
    inside: Callable[[Point], run_module.Progress] | None = None,
) -> list[dict[str, Any]]:
    """Rows of `points` in grid order, run by the executor a sweep uses (simulator/executor.py):
    in this process (jobs=1) or a pool of `jobs` processes. In this process, a point that takes
    long (LONG_POINT_S, estimated) reports its progress to `inside(point)`.

    run_point is a pure function of (scenario, point), so the rows do not depend on `jobs`."""
    rows: list[dict[str, Any]] = [{} for _ in points]

    def done(t: Task, row: dict[str, Any]) -> None:
        rows[t.index] = row
        if on_done is not None:
            on_done(t.index, t.point, row)

    def shown(t: Task) -> run_module.Progress | None:
        if inside is None or run_module.estimate_wall_s(sc, t.point) <= LONG_POINT_S:
            return None
        return inside(t.point)

    tasks = [Task(i, 0, p) for i, p in enumerate(points)]
    LocalExecutor(jobs, shown).run([sc], tasks, done)
    return rows


def _point_label(p: Point) -> str:
    grid = "".join(f" {k}={v}" for k, v in p.grid)
    return f"strategy={p.strategy} batch={p.batch} cpus={p.cpus}{grid} replication={p.replication}"


def _progress_bar() -> Any:
    """The rich progress bar of `run` and `sweep` (on stderr: stdout may hold --json)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
    )


LONG_POINT_S = 10.0  # a point estimated to take longer shows its progress inside
LONG_RUN_S = 600.0  # a run estimated to take longer says so before it starts
INSIDE_EVERY_S = 10.0  # at most one progress line per point this often (not on a terminal)


class PointProgress:
    """Progress on stderr: per finished point (`done`), and inside a long point (`inside(p)`,
    the callback run_point calls as simulated time advances). A rich bar on a terminal, else
    lines: `[3/16] strategy=... : 2.31 s` per point, and inside a long point, every
    INSIDE_EVERY_S, `[4/16] strategy=...: simulated 1.2 of 2.5 ms (48 %) after 31 s`."""

    def __init__(self, total: int, count: int = 0, bar: Any = None, task: Any = None) -> None:
        """A new bar on a terminal (bar=None), or lines; or a view of a sweep's `bar`."""
        self.total = total
        self.count = count
        if bar is None and sys.stderr.isatty():
            bar = _progress_bar()
            task = bar.add_task("points", total=total)
        self.bar, self.task = bar, task

    def done(self, i: int, p: Point, row: dict[str, Any]) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1, description=_point_label(p))
        else:
            say(f"[{self.count}/{self.total}] {_point_label(p)}: {row.get('wall_s', 0.0):.2f} s")

    def inside(self, p: Point) -> run_module.Progress:
        import time

        start = time.monotonic()
        last = [start]
        label = f"[{self.count + 1}/{self.total}] {_point_label(p)}"

        def report(now_ns: float, end_ns: float) -> None:
            t = time.monotonic()
            every = 0.5 if self.bar is not None else INSIDE_EVERY_S
            if t - last[0] < every:
                return
            last[0] = t
            share = min(now_ns / end_ns, 1.0) if end_ns > 0 else 0.0
            text = (
                f"simulated {_sim_time(now_ns)} of {_sim_time(end_ns)} ({share:.0%}) after {t - start:.0f} s"
            )
            if now_ns > end_ns:  # page_fault1's windows stay open until an munmap is seen
                text = (
                    f"simulated {_sim_time(now_ns)}, past its {_sim_time(end_ns)}: the workload's "
                    f"windows are still open, after {t - start:.0f} s"
                )
            if self.bar is not None:
                self.bar.update(self.task, description=f"{_point_label(p)}: {text}")
            else:
                say(f"{label}: {text}")

        return report


def _sim_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


@contextmanager
def progress(total: int) -> Iterator[PointProgress]:
    """Progress of `total` points on stderr (see PointProgress)."""
    shown = PointProgress(total)
    if shown.bar is None:
        yield shown
        return
    with shown.bar:
        yield shown


def warn_if_long(estimates: Sequence[float], jobs: int) -> None:
    """Say before a long run starts how long it may take (run_module.estimate_wall_s)."""
    total = sum(estimates)
    wall = total / max(1, min(jobs, len(estimates)))
    if wall <= LONG_RUN_S:
        return
    say(
        f"note: a long run: {len(estimates)} points, estimated {_duration(wall)} on"
        f" {min(jobs, len(estimates))} process(es) at the model's measured pace ({_duration(total)} of"
        " computation); points estimated over 10 s show their progress"
    )


def _duration(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


def summary_columns(sc: Scenario, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The table's columns: point identity, the workload's summary figures, key allocator stats."""
    ident = ["strategy", "batch", "cpus", *sc.model.grid]
    if sc.model.replications > 1:
        ident.append("replication")
    figures = list(WORKLOADS[sc.model.workload].summary)
    present = set(rows[0]) if rows else set()
    return [c for c in [*ident, *figures, *STAT_COLUMNS, "wall_s"] if c in present]


def cmd_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`pagesim run`: every point of the scenario, then the files, then the table or JSON."""
    from simulator import results  # pandas: only this command needs it

    sc = load_scenario(args.scenario, _overrides(args))
    out = args.out if args.out is not None else Path("results") / sc.name
    check_out_dir(out)
    with results.writer_lock(out, sc.name):
        return _run_locked(sc, out, args, argv)


def _run_locked(sc: Scenario, out: Path, args: argparse.Namespace, argv: Sequence[str]) -> int:
    from simulator import results

    points = expand(sc)
    jobs = min(args.jobs, len(points))
    say(f"{sc.name}: {len(points)} points on {sc.hardware.name}, {jobs} process(es)")
    warn_if_long([run_module.estimate_wall_s(sc, p) for p in points], jobs)
    done = 0
    written: Path | None = None
    try:
        started = results.utc_now()
        with progress(len(points)) as shown:

            def on_done(i: int, p: Point, row: dict[str, Any]) -> None:
                nonlocal done
                done += 1
                shown.done(i, p, row)

            rows = run_points(sc, points, jobs, on_done, inside=shown.inside)
        meta = results.run_metadata(
            sc, argv=[PROG, *argv], points=len(points), started=started, finished=results.utc_now()
        )
        written = _write(out, rows, sc, meta)
        say(f"wrote {len(rows)} rows to {out}/ ({', '.join(results.FILES)})")
        _show_rows(sc, rows, args.json)
    except KeyboardInterrupt:
        raise RunInterruptedError(done, len(points), written) from None
    return EXIT_OK


def _write(out: Path, rows: list[dict[str, Any]], sc: Scenario, meta: dict[str, Any]) -> Path:
    from simulator import results

    try:
        return results.write_results(out, rows, sc, meta)
    except OSError as exc:  # disk full, directory removed meanwhile...: nothing was left behind
        raise ConfigError.one("command line", "--out", f"cannot write results: {exc}", str(out)) from None


def _show_rows(sc: Scenario, rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(to_json(rows), flush=True)
        return
    cols = summary_columns(sc, rows)
    cells = [[fmt_value(r.get(c)) for c in cols] for r in rows]
    print_table(cols, cells, title=f"{sc.name} on {sc.hardware.name}")


# sweep ----------------------------------------------------------------------------------------


def default_jobs() -> int:
    """Every core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cmd_sweep(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """`pagesim sweep`: every point not finished yet, then the tables, then the summary."""
    from simulator import results, sweep

    grid = tuple(sweep.parse_grid_flag(g) for g in args.grid or ())
    ov = _overrides(args)
    ov = Overrides(**{f: getattr(ov, f) for f in Overrides.FLAGS}, settings=ov.settings, grid=grid)
    sw = sweep.load_sweep(args.file, ov)
    out = args.out if args.out is not None else Path("results") / sw.name
    check_out_dir(out)
    executor: Executor
    if args.scheduler:
        executor = DaskExecutor(args.scheduler)
        where = f"Dask scheduler {args.scheduler}"
    else:
        executor = LocalExecutor(args.jobs or default_jobs())
        where = f"{executor.jobs} process(es)"
    names = ", ".join(sc.name for sc in sw.scenarios)
    jobs = executor.jobs if isinstance(executor, LocalExecutor) else 1

    def plan(todo: Sequence[Any]) -> None:
        warn_if_long([run_module.estimate_wall_s(sw.scenarios[t.scenario], t.point) for t in todo], jobs)

    with results.writer_lock(out, sw.name), sweep_progress(out, sw.scenarios) as (start, tick, inside):
        if isinstance(executor, LocalExecutor):
            executor.inside = inside
        try:
            res = sweep.run_sweep(
                sw,
                out,
                executor,
                on_start=start,
                on_plan=plan,
                on_done=tick,
                fresh=args.fresh,
                argv=[PROG, *argv],
            )
        except sweep.SweepInterruptedError as exc:
            if exc.workdir is None:
                raise StoppedError(f"interrupted after 0 of {exc.total} points; nothing written") from None
            raise StoppedError(
                f"interrupted: {exc.done} of {exc.total} points finished ({exc.ran} in this run), kept in"
                f" {exc.workdir}/; run the same command again to resume (no tables written)"
            ) from None
    say(
        f"{sw.name} ({names}) on {where}: wrote {len(res.rows)} rows and {len(res.summary)} points to"
        f" {out}/ ({res.ran} run, {res.reused} already finished) in {res.wall_s:.1f} s"
    )
    if args.json:
        print(to_json(res.summary.to_dict(orient="records")), flush=True)
    else:
        _show_summary(sw, res.summary)
    return EXIT_OK


def _sweep_label(sw_task: Any, row: dict[str, Any]) -> str:
    p = sw_task.point
    grid = "".join(f" {k}={v}" for k, v in p.grid)
    return (
        f"{row.get('scenario', '?')} strategy={p.strategy} batch={p.batch} cpus={p.cpus}{grid}"
        f" replication={p.replication}"
    )


@contextmanager
def sweep_progress(
    out: Path, scenarios: Sequence[Scenario]
) -> Iterator[tuple[Callable[[int, int], None], Callable[..., None], Callable[[Any], Any]]]:
    """(on_start, on_done, inside) callbacks of run_sweep showing progress on stderr: a rich bar
    on a terminal, else one line per point run; `inside(task)`: the progress callback of a long
    point run in this process (see PointProgress), None for a short one."""
    state = {"total": 0, "count": 0}
    bar: Any = None
    task: Any = None

    def start(reused: int, total: int) -> None:
        nonlocal bar, task
        state["total"], state["count"] = total, reused
        if reused:
            say(f"{reused} of {total} points already finished (in {out / '.points'}/); running the others")
        if sys.stderr.isatty():
            bar = _progress_bar()
            task = bar.add_task("points", total=total, completed=reused)
            bar.start()

    def tick(t: Any, row: dict[str, Any], reused: bool) -> None:
        if reused:
            return
        state["count"] += 1
        if bar is not None:
            bar.update(task, advance=1, description=_sweep_label(t, row))
        else:
            say(f"[{state['count']}/{state['total']}] {_sweep_label(t, row)}: {row.get('wall_s', 0.0):.2f} s")

    def inside(t: Any) -> run_module.Progress | None:
        if run_module.estimate_wall_s(scenarios[t.scenario], t.point) <= LONG_POINT_S:
            return None
        return PointProgress(state["total"], state["count"], bar, task).inside(t.point)

    try:
        yield start, tick, inside
    finally:
        if bar is not None:
            bar.stop()


def _show_summary(sw: Any, summary: Any) -> None:
    """One table per scenario: the point, its replications and its key figures (mean ± 95 % CI)."""
    for sc in sw.scenarios:
        part = summary[summary["scenario"] == sc.name]
        grid = [c for c in sw.grid_columns if c in sc.model.grid]
        ident = ["strategy", "batch", "cpus", *grid]
        figures = [*WORKLOADS[sc.model.workload].summary, "irq_off_max_ns", "cache_misses_per_page"]
        figures = [c for c in dict.fromkeys(figures) if c in part.columns]
        headers = [*ident, "n", *figures]
        cells = []
        for rec in part.to_dict(orient="records"):
            line = [fmt_value(_json_safe(rec[c])) for c in ident] + [str(rec["replications"])]
            for c in figures:
                mean, ci = _json_safe(rec[c]), _json_safe(rec.get(f"{c}_ci95"))
                line.append(fmt_value(mean) + (f" ± {fmt_value(ci)}" if ci is not None else ""))
            cells.append(line)
        print_table(headers, cells, title=f"{sc.name} on {sc.hardware.name}")
        print(flush=True)


# plot -----------------------------------------------------------------------------------------


def _results_dir(path: str, flag: str) -> Path:
    d = Path(path)
    if not d.is_dir():
        raise ConfigError.one("command line", flag, "not a results directory", path)
    if not ((d / "rows.parquet").is_file() or (d / "rows.csv").is_file()):
        raise ConfigError.one(
            "command line", flag, "holds no rows.parquet or rows.csv (run `pagesim sweep` or `run`)", path
        )
    return d


def cmd_plot(args: argparse.Namespace) -> int:
    """`pagesim plot`: the figures of a results directory; prints each file written."""
    from simulator import plots

    d = _results_dir(args.results, "RESULTS")
    out = args.out if args.out is not None else d / "figures"
    rs = plots.load(d)  # a damaged or empty table fails here, before anything is written
    check_out_dir(out)
    if args.scenario:
        unknown = [n for n in args.scenario if n not in rs.scenarios]
        if unknown:
            msg = f"no such scenario in {d} (it has {', '.join(rs.scenarios)})"
            raise ConfigError.one("command line", "--scenario", msg, unknown[0])
    written, notes = plots.write_figures(
        rs,
        out,
        kinds=args.kind or list(PLOT_KINDS),
        formats=args.format or ["png", "svg"],
        scenarios=args.scenario,
    )
    for n in notes:
        say(n)
    for f in written:
        print(f, flush=True)
    if not written:
        raise ConfigError.one("command line", "--kind", "no figure of these kinds applies to these results")
    return EXIT_OK


# compare --------------------------------------------------------------------------------------


def _selection(items: Sequence[str] | None, flag: str) -> dict[str, str]:
    sel: dict[str, str] = {}
    for item in items or ():
        col, sep, value = item.partition("=")
        if not sep or not col:
            raise ConfigError.one("command line", flag, "expected COLUMN=VALUE", item)
        sel[col.strip()] = value.strip()
    return sel


def cmd_compare(args: argparse.Namespace) -> int:
    """`pagesim compare A B`: per common point, B/A of each figure."""
    from simulator import compare

    a = _results_dir(args.a, "A")
    b = _results_dir(args.b, "B")
    cmp = compare.compare(
        a,
        b,
        where_a=_selection(args.where_a, "--a"),
        where_b=_selection(args.where_b, "--b"),
        metrics=args.metric,
        across=args.across or (),
        tolerance=args.tolerance,
    )
    if args.json:
        print(to_json(cmp.as_dict()), flush=True)
        return EXIT_OK
    say(cmp.headline())
    for title, headers, rows in cmp.tables():
        print_table(headers, [[fmt_value(_json_safe(v)) for v in r] for r in rows], title=title)
        print(flush=True)
    print(cmp.rule(), flush=True)
    return EXIT_OK


# zoneinfo -------------------------------------------------------------------------------------


def zoneinfo_text(hw: Hardware, nums: BootNumbers, thp: bool, kernel: str = DEFAULT_VERSION) -> str:
    """/proc/zoneinfo of a freshly booted kernel (mm/vmstat.c zoneinfo_show_print()), for the
    populated zones; every managed page is free right after boot."""
    lines = [
        f"# {hw.name}: /proc/zoneinfo after boot (Linux {kernel}, {nums.online_cpus} online CPUs)",
        f"# vm.min_free_kbytes = {nums.min_free_kbytes}"
        f" ({'with' if thp else 'without'} khugepaged's recommended minimum)",
    ]
    for z in nums.zones:
        lines += [
            f"Node {z.node}, zone {z.name:>8}",
            f"  pages free     {z.managed_pages}",
            f"        min      {z.wmark_min}",
            f"        low      {z.wmark_low}",
            f"        high     {z.wmark_high}",
            f"        spanned  {z.spanned_pages}",
            f"        present  {z.present_pages}",
            f"        managed  {z.managed_pages}",
            "        cma      0",
            f"        protection: ({', '.join(str(r) for r in z.lowmem_reserve)})",
            "  pagesets",
        ]
        for cpu in range(nums.online_cpus):
            lines += [
                f"    cpu: {cpu}",
                "              count: 0",
                f"              high:  {z.pcp_high}",
                f"              batch: {z.pcp_batch}",
                f"  vm stats threshold: {z.stat_threshold}",
            ]
        lines += ["  node_unreclaimable:  0", f"  start_pfn:           {z.start_pfn}"]
    return "\n".join(lines)


def cmd_zoneinfo(args: argparse.Namespace) -> int:
    """`pagesim zoneinfo`: the boot-time zone numbers, as text or JSON."""
    hw = load_hardware(args.hardware)
    thp = not args.no_thp
    pcp_high = KernelConfig.for_version(args.kernel).pcp_high
    nums = boot_numbers(hw, thp=thp, pcp_high=pcp_high)
    if args.json:
        doc = {
            "hardware": hw.name,
            "file": hw.path,
            "kernel": args.kernel,
            "thp": thp,
            "min_free_kbytes": nums.min_free_kbytes,
            "lowmem_kbytes": nums.lowmem_kbytes,
            "online_cpus": nums.online_cpus,
            "zones": [asdict(z) for z in nums.zones],
        }
        print(to_json(doc))
    else:
        print(zoneinfo_text(hw, nums, thp, args.kernel))
    return EXIT_OK


# calibrate ------------------------------------------------------------------------------------


def cmd_calibrate(args: argparse.Namespace) -> int:
    """`pagesim calibrate`: the derivation table, or JSON of its steps and the costs."""
    hw = load_hardware(args.hardware)
    cal = Calibration(hw)
    costs, steps = derive(hw, cal.profile, reference=cal.reference)
    if args.json:
        doc = {
            "hardware": hw.name,
            "calibration": str(hw.calibration_path()),
            "steps": [asdict(s) for s in steps],
            "costs_ns": costs.as_dict(),
        }
        print(to_json(doc))
    else:
        print(format_derivation(hw, steps, cal.profile))
    return EXIT_OK


# check ----------------------------------------------------------------------------------------


def check_file(path: str) -> str:
    """Validate one file without running it; returns its kind or raises ConfigError.

    A mapping with `scenarios` (and neither of the next two) is a sweep file; with `workload` or
    `hardware` (a scenario's required fields; a hardware file has neither) a scenario; with
    `reference` and `self_percent`, the allocator calibration; with `inputs`, the XDP network-cost
    file; anything else is read as a hardware file."""
    p = Path(path)
    doc = read_yaml_mapping(p)
    if "scenarios" in doc and "workload" not in doc and "hardware" not in doc:
        from simulator import sweep

        sweep.load_sweep(p)  # every scenario it lists, with its settings and grid axes
        return "sweep"
    if "workload" in doc or "hardware" in doc:
        load_scenario(p)  # with what a point would otherwise only fail on: costs, node memory
        return "scenario"
    if "self_percent" in doc and "reference" in doc:
        load_calibration(p)
        return "calibration"
    if "inputs" in doc:
        load_outside_file(p)
        return "network-cost calibration"
    hw = load_hardware(p)
    derive(hw)
    _node_memory_problems(hw, thp=True)
    return "hardware"


def cmd_check(args: argparse.Namespace) -> int:
    """`pagesim check`: validate every file, report each; exit 2 if any failed."""
    failed = False
    for path in args.files:
        try:
            kind = check_file(path)
        except ConfigError as exc:
            _print_config_error(exc)
            failed = True
            continue
        print(f"OK  {path} ({kind})", flush=True)
    return EXIT_CONFIG if failed else EXIT_OK


# validate-model -------------------------------------------------------------------------------


def cmd_validate_model(argv: list[str]) -> int:
    """`pagesim validate-model`: delegate to simulator.validation.main when it exists."""
    name = "simulator.validation"
    try:
        mod = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise ConfigError.one(
            "command line", "validate-model", "not available: this pagesim has no simulator/validation.py"
        ) from None
    return int(mod.main(argv))


# main -----------------------------------------------------------------------------------------


def _print_config_error(exc: ConfigError) -> None:
    for p in exc.problems or [Problem("", "", "invalid input")]:
        print(f"{PROG}: error: {p}", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C (KeyboardInterrupt) while a command runs."""
    try:
        old = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["validate-model"]:
        return cmd_validate_model(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return cmd_run(args, argv)
    if args.command == "sweep":
        return cmd_sweep(args, argv)
    if args.command == "plot":
        return cmd_plot(args)
    if args.command == "compare":
        return cmd_compare(args)
    if args.command == "zoneinfo":
        return cmd_zoneinfo(args)
    if args.command == "calibrate":
        return cmd_calibrate(args)
    return cmd_check(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `pagesim` command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with _sigterm_interrupts():
            return _dispatch(args)
    except ConfigError as exc:
        _print_config_error(exc)
        return EXIT_CONFIG
    except InvariantError as exc:
        print(f"{PROG}: model invariant broken: {exc}", file=sys.stderr, flush=True)
        return EXIT_INVARIANT
    except StoppedError as exc:
        say(str(exc))
        return EXIT_INTERRUPTED
    except RunInterruptedError as exc:
        if exc.written is not None:
            say(f"interrupted; results were already written to {exc.written}/")
        else:
            say(f"interrupted after {exc.done} of {exc.total} points; nothing written")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        say("interrupted; nothing written")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout went away (`pagesim ... | head`): stop quietly, like other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
