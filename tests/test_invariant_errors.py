"""A broken model is an error, never a result: `pagesim run` exits 3, names what broke, writes nothing.

The model is broken for real, not by replacing run_point: once mid-run (a double free slipped
into a pcp list, so a page is handed out twice), and at the end of the workload for each
invariant Machine.check_invariants() checks (a zone lock left held, an IRQ-off window left open,
a page lost from a pcp list, a negative counter, NR_FREE_PAGES out of step with the buddy).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from simulator import cli
from simulator.mm import strategies
from simulator.mm.machine import Machine
from simulator.mm.mmzone import NR_FREE_PAGES
from simulator.workloads import WORKLOADS

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "page_bench.yaml"
ONE_POINT = ["--strategy", "bulk_array", "--batch", "16", "--duration", "20 us"]


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *flags: str) -> tuple[int, str, str, Path]:
    out_dir = tmp_path / "out"
    rc = cli.main(["run", str(SCENARIO), *ONE_POINT, *flags, "--out", str(out_dir)])
    out, err = capsys.readouterr()
    return rc, out, err, out_dir


def assert_invariant_error(rc: int, out: str, err: str, out_dir: Path, cwd: Path, message: str) -> None:
    assert "Traceback" not in err
    assert rc == 3, err
    assert out == ""
    assert err.splitlines()[-1] == f"pagesim: model invariant broken: {message}"
    assert not out_dir.exists()
    assert list(cwd.iterdir()) == []


# Mid-run: a page handed out twice -------------------------------------------------------------


def test_a_page_handed_out_twice_stops_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last of page_bench's 16 one-by-one frees lands on the pcp list twice (a double free the
    model failed to catch); page_bench then bulk-allocates 16 pages from the head of the list, so
    both copies come out in the next batch."""
    real = strategies.free_unref_page_run
    doubled: list[int] = []

    def free_then_double(cpu: Any, pfns: list[int], *args: Any, **kw: Any) -> Generator[Any, None, Any]:
        times = yield from real(cpu, pfns, *args, **kw)
        pfn = pfns[-1]
        pcp = cpu.machine.page_zone(pfn).pcp[cpu.id]
        lst = next((lst for lst in pcp.lists if lst and lst[0] == pfn), None)
        if not doubled and len(pfns) == 16 and lst is not None:
            lst.appendleft(pfn)
            pcp.count += 1
            doubled.append(pfn)
        return times

    monkeypatch.setattr(strategies, "free_unref_page_run", free_then_double)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rc, out, err, out_dir = run(capsys, tmp_path)
    assert doubled, "the breakage never happened"
    message = f"page handed out twice in one batch: pfns [{doubled[0]}]"
    assert_invariant_error(rc, out, err, out_dir, cwd, message)


# End of run: each invariant -------------------------------------------------------------------


def _normal(m: Machine) -> Any:
    return next(z for z in m.zones if z.name == "Normal")


def lock_left_held(m: Machine) -> str:
    z = _normal(m)
    z.lock.holder = 0
    return f"{z.scope}.lock: still held by cpu0 at the end of the run"


def irq_window_left_open(m: Machine) -> str:
    m.cpus[0].local_irq_save("leaky_path")
    return "machine.cpu0: IRQs still disabled at the end of the run (opened by leaky_path)"


def page_lost_from_pcp(m: Machine) -> str:
    z = _normal(m)
    pcp = z.pcp[0]
    lst = next(lst for lst in pcp.lists if lst)
    lst.popleft()
    pcp.count -= 1
    free, on_pcp, held = z.free_area.nr_free_pages, z.pcp_pages(), len(m.allocated)
    total = free + on_pcp + held + z.balloon_pages
    return (
        f"{z.scope}: pages not conserved: buddy {free} + pcp {on_pcp} + allocated {held}"
        f" + balloon {z.balloon_pages} = {total}, managed {z.managed}"
    )


def negative_counter(m: Machine) -> str:
    z = _normal(m)
    z.lock.contended = -1
    return f"negative counter(s): {z.scope}.lock.contended=-1"


def negative_free_pages(m: Machine) -> str:
    z = _normal(m)
    total = z.vm_stat[NR_FREE_PAGES] + sum(d[NR_FREE_PAGES] for d in z.vm_stat_diff)
    z.vm_stat[NR_FREE_PAGES] -= total + 5
    return f"negative counter(s): {z.scope}.vm_stat[{NR_FREE_PAGES}]=-5"


def free_pages_out_of_step(m: Machine) -> str:
    z = _normal(m)
    z.vm_stat[NR_FREE_PAGES] += 1000
    free = z.free_area.nr_free_pages
    return f"{z.scope}: NR_FREE_PAGES {free + 1000} but the buddy holds {free}"


BREAKAGES: list[Callable[[Machine], str]] = [
    lock_left_held,
    irq_window_left_open,
    page_lost_from_pcp,
    negative_counter,
    negative_free_pages,
    free_pages_out_of_step,
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=[b.__name__ for b in BREAKAGES])
def test_a_broken_invariant_at_the_end_of_a_run_is_an_error(
    breakage: Callable[[Machine], str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workload = WORKLOADS["page_bench"]
    expected: list[str] = []

    def run_then_break(ctx: Any) -> dict[str, Any]:
        figures = workload.run(ctx)
        expected.append(breakage(ctx.machine))
        return figures

    monkeypatch.setitem(WORKLOADS, "page_bench", dataclasses.replace(workload, run=run_then_break))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rc, out, err, out_dir = run(capsys, tmp_path)
    assert expected, "the workload never ran"
    assert_invariant_error(rc, out, err, out_dir, cwd, expected[0])


def test_an_unbroken_run_passes_the_same_checks(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control: the same point, unbroken, exits 0 and writes its results."""
    monkeypatch.chdir(tmp_path)
    rc, out, err, out_dir = run(capsys, tmp_path)
    assert rc == 0, err
    assert (out_dir / "rows.csv").is_file()


BREAK_IN_A_FRESH_PROCESS = """
import dataclasses, sys
from simulator import cli
from simulator.workloads import WORKLOADS
w = WORKLOADS["page_bench"]
def run(ctx):
    figures = w.run(ctx)
    ctx.machine.cpus[0].local_irq_save("leaky_path")
    return figures
WORKLOADS["page_bench"] = dataclasses.replace(w, run=run)
sys.exit(cli.main(sys.argv[1:]))
"""


def test_exit_status_3_from_a_fresh_process(tmp_path: Path) -> None:
    """The real interpreter exit: status 3, the one message line, no traceback, no files."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BREAK_IN_A_FRESH_PROCESS,
            "run",
            str(SCENARIO),
            *ONE_POINT,
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    message = "machine.cpu0: IRQs still disabled at the end of the run (opened by leaky_path)"
    assert_invariant_error(proc.returncode, proc.stdout, proc.stderr, tmp_path / "out", tmp_path, message)
