"""The bad-input catalogue: every kind of bad input, through `pagesim run` and `pagesim check`.

Each case asserts the whole contract of docs/errors.md: exit status 2; stderr is exactly the
expected error line(s), `pagesim: error: FILE: FIELD: what was expected (got VALUE)`; stdout is
empty; no traceback; nothing written anywhere: not under --out, no results/ in the working
directory, no file added or changed beside the inputs.

The cases run main() in-process (a traceback there would be an exception escaping main, which
fails the test just as surely) and a few through the installed `pagesim` script. The expected
lines are the catalogue in docs/errors.md; test_catalogue_matches_docs keeps the two in step.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator import cli

ROOT = Path(__file__).resolve().parents[1]
BROADWELL = "broadwell-e5-1650v4.yaml"
SKYLAKE = "skylake-sp-2s.yaml"
PAGESIM = Path(sys.executable).parent / "pagesim"
SEED_RANGE = (
    "seeds must be whole numbers from 0 to 9,223,372,036,854,775,807 (2^63-1: the result files' int64"
    " seed column)"
)


def _doc(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


Edit = Callable[[dict[str, Any]], None]


def _set(*loc: Any, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        node = doc
        for k in loc[:-1]:
            node = node[k]
        node[loc[-1]] = value

    return edit


def _drop(*loc: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        node = doc
        for k in loc[:-1]:
            node = node[k]
        del node[loc[-1]]

    return edit


@dataclass(frozen=True)
class Case:
    """A scenario (a shipped one with `edits`, or raw `text`), optionally on its own hardware
    file (a shipped one with `hw_edits`), and the error lines it must print. In `expected`,
    {sc} is the scenario's path, {hw} the hardware file's, {dir} the scenarios directory."""

    id: str
    expected: tuple[str, ...]
    base: str = "page_bench.yaml"
    edits: tuple[Edit, ...] = ()
    text: str | None = None
    hw_base: str | None = None
    hw_edits: tuple[Edit, ...] = ()
    flags: tuple[str, ...] = ()
    commands: tuple[str, ...] = ("run", "check")
    scenario_name: str = "bad.yaml"
    absent: bool = False  # the scenario file is not written at all


FILE_CASES = [
    # grid values out of range
    Case(
        "batch-zero",
        ("{sc}: batches: batch sizes must be whole numbers from 1 to 4096, got 0 (got [0])",),
        edits=(_set("batches", value=[0]),),
    ),
    Case(
        "batch-negative",
        ("{sc}: batches: batch sizes must be whole numbers from 1 to 4096, got -3 (got [64, -3])",),
        edits=(_set("batches", value=[64, -3]),),
    ),
    Case(
        "batch-too-big",
        ("{sc}: batches: batch sizes must be whole numbers from 1 to 4096, got 5000 (got [5000])",),
        edits=(_set("batches", value=[5000]),),
    ),
    Case(
        "cpus-zero",
        ("{sc}: cpus: CPU counts must be at least 1, got 0 (got [0])",),
        edits=(_set("cpus", value=[0]),),
    ),
    Case(
        "cpus-more-than-the-hardware",
        ("{sc}: cpus: more CPUs than broadwell-e5-1650v4 has (6) (got 7)",),
        edits=(_set("cpus", value=[1, 7]),),
    ),
    Case(
        "unknown-strategy",
        (
            "{sc}: strategies: unknown strategy 'nope'; expected any of "
            "['single', 'bulk_list', 'bulk_array', 'pagevec'] (got ['single', 'nope'])",
        ),
        edits=(_set("strategies", value=["single", "nope"]),),
    ),
    Case(
        "unknown-workload",
        (
            "{sc}: workload: unknown workload; expected one of ['nfs', 'page_bench', 'xdp_redirect'] "
            "(got 'page_bnech')",
        ),
        edits=(_set("workload", value="page_bnech"),),
    ),
    Case(
        "seed-negative",
        ("{sc}: seed: " + SEED_RANGE + " (got -1)",),
        edits=(_set("seed", value=-1),),
    ),
    Case(
        "duration-zero",
        ("{sc}: duration: duration must be positive (got '0 us')",),
        edits=(_set("duration", value="0 us"),),
    ),
    # units
    Case(
        "unit-unknown",
        (
            "{sc}: duration: unknown unit 'parsecs' in '100 parsecs': expected a duration in one of "
            "ns, us, ms, s (got '100 parsecs')",
        ),
        edits=(_set("duration", value="100 parsecs"),),
    ),
    Case(
        "unit-missing",
        (
            "{sc}: warmup: expected a duration with a unit (one of ns, us, ms, s), got the bare number "
            "50 (got 50)",
        ),
        edits=(_set("warmup", value=50),),
    ),
    Case(
        "unit-wrong-kind",
        (
            "{sc}: duration: unknown unit 'KiB' in '200 KiB': expected a duration in one of ns, us, ms, s "
            "(got '200 KiB')",
        ),
        edits=(_set("duration", value="200 KiB"),),
    ),
    Case(
        "unit-case-in-hardware",
        (
            "{hw}: cpu.clock: unknown unit 'Ghz' in '3.6 Ghz': expected a frequency in one of GHz, MHz "
            "(got '3.6 Ghz')",
        ),
        hw_base=BROADWELL,
        hw_edits=(_set("cpu", "clock", value="3.6 Ghz"),),
    ),
    Case(
        "unit-overflow-in-hardware",
        ("{hw}: topology.nodes[0].memory: expected a size that fits in a float (got '1e300 TiB')",),
        hw_base=BROADWELL,
        hw_edits=(_set("topology", "nodes", 0, "memory", value="1e300 TiB"),),
    ),
    # hardware referenced by the scenario
    Case(
        "hardware-file-missing",
        ("{sc}: hardware: hardware file not found (got '{dir}/no-such-machine.yaml')",),
        edits=(_set("hardware", value="no-such-machine.yaml"),),
    ),
    Case(
        "node-memory-below-watermarks",
        (
            "{hw}: topology.nodes: node 0: zone DMA has 37 managed pages (0 MiB), not more than "
            "its high watermark (48) plus pcp high (0) x 6 CPUs = 48 pages: give node 0 more memory",
        ),
        hw_base=BROADWELL,
        hw_edits=(
            _set("topology", "nodes", 0, "memory", value="160 KiB"),
            _set("memory", "reserved", value="4 KiB"),
        ),
    ),
    Case(
        "distances-not-square",
        (
            "{hw}: topology.distances: must be a square 2x2 matrix (one row and column per node) "
            "(got [[10, 21, 21], [21, 10, 21]])",
        ),
        hw_base=SKYLAKE,
        hw_edits=(_set("topology", "distances", value=[[10, 21, 21], [21, 10, 21]]),),
    ),
    Case(
        "distances-ragged",
        (
            "{hw}: topology.distances: must be a square 2x2 matrix (one row and column per node) "
            "(got [[10, 21], [21]])",
        ),
        hw_base=SKYLAKE,
        hw_edits=(_set("topology", "distances", value=[[10, 21], [21]]),),
    ),
    Case(
        "distances-asymmetric",
        ("{hw}: topology.distances[0][1]: must be symmetric: [0][1]=21 but [1][0]=31",),
        hw_base=SKYLAKE,
        hw_edits=(_set("topology", "distances", value=[[10, 21], [31, 10]]),),
    ),
    Case(
        "distances-diagonal-not-local",
        ("{hw}: topology.distances[0][0]: must be 10 (LOCAL_DISTANCE) (got 30)",),
        hw_base=SKYLAKE,
        hw_edits=(_set("topology", "distances", value=[[30, 21], [21, 30]]),),
    ),
    Case(
        "distances-diagonal-not-smallest",
        ("{hw}: topology.distances[0][1]: a remote node must be farther than the local one (10) (got 9)",),
        hw_base=SKYLAKE,
        hw_edits=(_set("topology", "distances", value=[[10, 9], [9, 10]]),),
    ),
    # unreadable documents
    Case("empty-file", ("{sc}: is empty, expected a YAML mapping of fields",), text=""),
    Case("comments-only", ("{sc}: is empty, expected a YAML mapping of fields",), text="# nothing yet\n"),
    Case(
        "not-a-mapping",
        ("{sc}: expected a YAML mapping of fields at the top, got a list",),
        text="- page_bench\n- broadwell\n",
    ),
    Case(
        "yaml-syntax-error",
        ("{sc}: line 3, column 1: YAML syntax error: expected ',' or ']', but got '<stream end>'",),
        text="name: x\nworkload: [page_bench\n",
    ),
    Case(
        "yaml-tab-indent",
        ("{sc}: line 2, column 1: YAML syntax error: found character '\\t' that cannot start any token",),
        text="name: x\n\tworkload: page_bench\n",
    ),
    Case(
        "yaml-alias-bomb",
        (
            "{sc}: line 4, column 5: YAML document too complex: expands to more than 1,000,000 values "
            "through aliases",
        ),
        text="".join(f"a{d}: &a{d} [{', '.join([f'*a{d - 1}' if d else 'lol'] * 32)}]\n" for d in range(5)),
    ),
    Case(
        "scenario-file-missing",
        ("{dir}/nope.yaml: file not found",),
        scenario_name="nope.yaml",
        text=None,
        absent=True,
    ),
    # the workload's section
    Case(
        "workload-section-unknown-key",
        (
            "{sc}: page_bench.frees: unknown field (check the spelling; see docs/configuration.md) "
            "(got 'one_by_one')",
        ),
        edits=(_set("page_bench", value={"gfp": "GFP_ATOMIC", "frees": "one_by_one"}),),
    ),
    Case(
        "workload-section-wrong-type",
        ("{sc}: xdp_redirect.ring_size: Input should be a valid integer (got 'large')",),
        base="xdp_redirect.yaml",
        edits=(_set("xdp_redirect", "ring_size", value="large"),),
    ),
    Case(
        "workload-section-not-finite",
        ("{sc}: xdp_redirect.offered_load: expected a finite number (got inf)",),
        base="xdp_redirect.yaml",
        edits=(_set("xdp_redirect", "offered_load", value=float("inf")),),
    ),
    Case(
        "workload-section-bad-literal",
        (
            "{sc}: page_bench.gfp: Input should be 'GFP_ATOMIC', 'GFP_KERNEL' or 'GFP_NOWAIT' "
            "(got 'GFP_NOPE')",
        ),
        edits=(_set("page_bench", "gfp", value="GFP_NOPE"),),
    ),
    Case(
        "another-workloads-section",
        ("{sc}: nfs: section for another workload (this scenario runs page_bench)",),
        edits=(_set("nfs", value={"threads_per_node": 4}),),
    ),
    # fields
    Case(
        "missing-required-field", ("{sc}: duration: required field is missing",), edits=(_drop("duration"),)
    ),
    # `check` tells a scenario from a hardware file by `workload` or `hardware`: one line, not
    # a hardware file's 17 complaints
    Case("missing-workload", ("{sc}: workload: required field is missing",), edits=(_drop("workload"),)),
    Case(
        "unknown-key",
        ("{sc}: batch: unknown field (check the spelling; see docs/configuration.md) (got [8])",),
        edits=(_set("batch", value=[8]),),
    ),
    Case(
        "wrong-type",
        ("{sc}: replications: Input should be a valid integer (got [3])",),
        edits=(_set("replications", value=[3]),),
    ),
    Case(
        "several-problems",
        (
            "{sc}: seed: " + SEED_RANGE + " (got -5)",
            "{sc}: batches: batch sizes must be whole numbers from 1 to 4096, got 0 (got [0])",
            "{sc}: duration: unknown unit 'sec' in '1 sec': expected a duration in one of ns, us, ms, s "
            "(got '1 sec')",
        ),
        edits=(_set("seed", value=-5), _set("batches", value=[0]), _set("duration", value="1 sec")),
    ),
]

FLAG_CASES = [
    Case(
        "flag-batch-zero",
        ("command line: --batch: batch sizes must be whole numbers from 1 to 4096, got 0 (got [0])",),
        flags=("--batch", "0"),
        commands=("run",),
    ),
    Case(
        "flag-batch-negative",
        ("command line: --batch: batch sizes must be whole numbers from 1 to 4096, got -3 (got [-3])",),
        flags=("--batch", "-3"),
        commands=("run",),
    ),
    Case(
        "flag-cpus-more-than-the-hardware",
        ("command line: --cpus: more CPUs than broadwell-e5-1650v4 has (6) (got 999)",),
        flags=("--cpus", "999"),
        commands=("run",),
    ),
    Case(
        "flag-strategy-unknown",
        (
            "command line: --strategy: unknown strategy 'nope'; expected any of "
            "['single', 'bulk_list', 'bulk_array', 'pagevec'] (got ['nope'])",
        ),
        flags=("--strategy", "nope"),
        commands=("run",),
    ),
    Case(
        "flag-seed-negative",
        ("command line: --seed: " + SEED_RANGE + " (got -1)",),
        flags=("--seed", "-1"),
        commands=("run",),
    ),
    Case(
        "flag-duration-bad-unit",
        (
            "command line: --duration: unknown unit 'parsecs' in '5 parsecs': expected a duration in one of "
            "ns, us, ms, s (got '5 parsecs')",
        ),
        flags=("--duration", "5 parsecs"),
        commands=("run",),
    ),
    Case(
        "flag-hardware-missing",
        ("command line: --hardware: hardware file not found (got 'missing.yaml')",),
        flags=("--hardware", "missing.yaml"),
        commands=("run",),
    ),
    Case(
        "flag-replications-zero",
        ("command line: --replications: Input should be greater than or equal to 1 (got 0)",),
        flags=("--replications", "0"),
        commands=("run",),
    ),
    Case(
        "flag-batch-not-a-number",
        ("command line: --batch: expected a whole number (got 'many')",),
        flags=("--batch", "many"),
        commands=("run",),
    ),
]

CASES = FILE_CASES + FLAG_CASES


# Running a case -------------------------------------------------------------------------------


@dataclass
class Setup:
    root: Path
    scenario: Path
    hardware: Path | None
    cwd: Path
    out: Path

    def expand(self, template: str) -> str:
        hw = str(self.hardware) if self.hardware else ""
        return template.format(sc=self.scenario, hw=hw, dir=self.scenario.parent)


def build(case: Case, tmp_path: Path) -> Setup:
    """tmp/hardware/ (a copy, with calibration/), tmp/scenarios/<case>, an empty tmp/cwd."""
    shutil.copytree(ROOT / "hardware", tmp_path / "hardware")
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    hw_path = None
    doc = copy.deepcopy(_doc(ROOT / "scenarios" / case.base))
    if case.hw_base is not None:
        hw_doc = _doc(ROOT / "hardware" / case.hw_base)
        for e in case.hw_edits:
            e(hw_doc)
        hw_path = tmp_path / "hardware" / "bad-hw.yaml"
        hw_path.write_text(yaml.safe_dump(hw_doc, sort_keys=False), encoding="utf-8")
        doc["hardware"] = "../hardware/bad-hw.yaml"
    for e in case.edits:
        e(doc)
    sc_path = scenarios / case.scenario_name
    if not case.absent:
        text = case.text if case.text is not None else yaml.safe_dump(doc, sort_keys=False)
        sc_path.write_text(text, encoding="utf-8")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return Setup(tmp_path, sc_path, hw_path, cwd, tmp_path / "out")


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def argv(case: Case, s: Setup, command: str) -> list[str]:
    if command == "check":
        return ["check", str(s.scenario)]
    return ["run", str(s.scenario), *case.flags, "--out", str(s.out)]


def assert_exact_error(rc: int, out: str, err: str, expected: list[str]) -> None:
    assert "Traceback" not in err + out
    assert rc == 2, err
    assert out == ""
    assert err == "".join(f"pagesim: error: {line}\n" for line in expected)


RUNS = [(case, command) for case in CASES for command in case.commands]


@pytest.mark.parametrize(("case", "command"), RUNS, ids=[f"{c.id}-{cmd}" for c, cmd in RUNS])
def test_bad_input(
    case: Case,
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = build(case, tmp_path)
    before = snapshot(tmp_path)
    monkeypatch.chdir(s.cwd)
    rc = cli.main(argv(case, s, command))
    out, err = capsys.readouterr()
    assert_exact_error(rc, out, err, [s.expand(t) for t in case.expected])
    assert not s.out.exists()
    assert list(s.cwd.iterdir()) == []  # no results/ in the working directory
    assert snapshot(tmp_path) == before  # nothing added or changed anywhere


@pytest.mark.parametrize(
    "case_id", ["yaml-syntax-error", "node-memory-below-watermarks", "flag-duration-bad-unit"]
)
def test_bad_input_through_the_installed_script(case_id: str, tmp_path: Path) -> None:
    """The same contract from the real entry point, in a fresh process."""
    case = next(c for c in CASES if c.id == case_id)
    s = build(case, tmp_path)
    before = snapshot(tmp_path)
    command = [str(PAGESIM)] if PAGESIM.exists() else [sys.executable, "-m", "simulator.cli"]
    proc = subprocess.run(
        [*command, *argv(case, s, "run")],
        cwd=s.cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert_exact_error(proc.returncode, proc.stdout, proc.stderr, [s.expand(t) for t in case.expected])
    assert snapshot(tmp_path) == before


def test_check_reports_every_file_and_fails_if_any_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pagesim check` goes on after a bad file: one line per problem, OK lines for the rest."""
    good = ROOT / "scenarios" / "page_bench.yaml"
    s1 = build(next(c for c in CASES if c.id == "batch-zero"), tmp_path / "a")
    s2 = build(next(c for c in CASES if c.id == "distances-asymmetric"), tmp_path / "b")
    rc = cli.main(["check", str(s1.scenario), str(good), str(s2.scenario)])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == f"OK  {good} (scenario)\n"
    assert err.splitlines() == [
        f"pagesim: error: {s1.scenario}: batches: "
        "batch sizes must be whole numbers from 1 to 4096, got 0 (got [0])",
        f"pagesim: error: {s2.hardware}: topology.distances[0][1]: "
        "must be symmetric: [0][1]=21 but [1][0]=31",
    ]


def test_catalogue_matches_docs() -> None:
    """docs/errors.md lists each case of this file by id."""
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    missing = [c.id for c in CASES if f"`{c.id}`" not in text]
    assert missing == []
