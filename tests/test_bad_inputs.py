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
SKYLAKE_HT = "skylake-sp-2s-ht.yaml"
PAGESIM = Path(sys.executable).parent / "pagesim"
WORK_BOUND = "(a bound on simulated work: see docs/configuration.md)"
NFS_TEXT = (ROOT / "scenarios" / "nfs.yaml").read_text(encoding="utf-8")
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
            "{sc}: workload: unknown workload; expected one of ['nfs', 'page_bench', "
            "'page_fault1', 'xdp_redirect'] (got 'page_bnech')",
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
    # issue 16: bounds on simulated work (these were accepted, and `run` never ended)
    Case(
        "warmup-too-long",
        ("{sc}: warmup: warm-up longer than 60 s of simulated time (got '1e9 s')",),
        edits=(_set("warmup", value="1e9 s"),),
    ),
    Case(
        "nfs-rate-too-high",
        ("{sc}: nfs.clients.rate: at most 10,000,000 RPC/s " + WORK_BOUND + " (got 1000000000000000.0)",),
        base="nfs.yaml",
        edits=(_set("nfs", "clients", "rate", value=1e15),),
    ),
    Case(
        "nfs-rate-as-yaml-1.1-string",  # `rate: 1e15` in a file: YAML 1.2 reads a float
        ("{sc}: nfs.clients.rate: at most 10,000,000 RPC/s " + WORK_BOUND + " (got 1000000000000000.0)",),
        text=NFS_TEXT.replace("rate: 150000", "rate: 1e15"),
    ),
    Case(
        "nfs-sleep-shorter-than-a-jiffy",
        ("{sc}: nfs.sleep: from 1 ms to 60 s " + WORK_BOUND + " (got '0 ms')",),
        base="nfs.yaml",
        edits=(_set("nfs", "sleep", value="0 ms"),),
    ),
    Case(
        "nfs-threads-beyond-the-kernel",
        ("{sc}: nfs.threads_per_node: at most 8,192 threads " + WORK_BOUND + " (got 1000000)",),
        base="nfs.yaml",
        edits=(_set("nfs", "threads_per_node", value=1_000_000),),
    ),
    Case(
        "xdp-offered-load-beyond-any-nic",
        (
            "{sc}: xdp_redirect.offered_load: at most 1,000,000,000 packets/s "
            + WORK_BOUND
            + " (got 1000000000000.0)",
        ),
        base="xdp_redirect.yaml",
        edits=(_set("xdp_redirect", "offered_load", value=1e12),),
    ),
    Case(
        "too-many-points",
        (
            "{sc}: 192,000 points (4 strategies x 8 batches x 6 CPU counts x 1000 replications); at most "
            "100,000 in one scenario",
        ),
        edits=(_set("cpus", value=[1, 2, 3, 4, 5, 6]), _set("replications", value=1000)),
    ),
    # issue 16: seeds the RNG and the result files take
    Case(
        "seed-too-big",
        ("{sc}: seed: " + SEED_RANGE + " (got 18446744073709551616)",),
        edits=(_set("seed", value=2**64),),
    ),
    # issue 16: strict YAML
    Case(
        "duplicate-key",
        (
            "{sc}: line 7, column 1: duplicate key 'kernel' (first at line 5); a mapping holds each key "
            "once (YAML would keep only the last)",
        ),
        text=(
            "name: dup\nworkload: page_bench\nhardware: ../hardware/broadwell-e5-1650v4.yaml\n"
            "duration: 10 us\nkernel:\n  debug_list: true\nkernel:\n  thp: true\n"
        ),
    ),
    Case(
        "batch-boolean",
        ("{sc}: batches[0]: Input should be a valid integer (got True)",),
        edits=(_set("batches", value=[True]),),
    ),
    Case(
        "seed-boolean",
        ("{sc}: seed: Input should be a valid integer (got True)",),
        edits=(_set("seed", value=True),),
    ),
    Case(
        "batch-repeated",
        ("{sc}: batches: batch size 16 is listed twice (got [16, 16])",),
        edits=(_set("batches", value=[16, 16]),),
    ),
    Case(
        "cpus-repeated",
        ("{sc}: cpus: CPU count 1 is listed twice (got [1, 1])",),
        edits=(_set("cpus", value=[1, 1]),),
    ),
    Case(
        "document-too-large",  # 500,000 keys took 31 s and 860 MB, then blamed aliases
        (
            "{sc}: is 300,000 bytes; a scenario, sweep, hardware or calibration file may hold at most "
            "262,144 bytes (256 KiB)",
        ),
        text="k: 0\n" * 60_000,
    ),
    Case(
        "description-too-long",
        (
            "{sc}: description: String should have at most 2000 characters (got "
            + "'"
            + "x" * 159
            + "... (2,003 characters))",
        ),
        edits=(_set("description", value="x" * 2001),),
    ),
    # issue 16: physical ranges on hardware (these ran: exit 3, or nonsense figures)
    Case(
        "hardware-clock-absurd",
        ("{hw}: cpu.clock: expected a clock from 0.1 to 10 GHz (got '1e-300 GHz')",),
        hw_base=BROADWELL,
        hw_edits=(_set("cpu", "clock", value="1e-300 GHz"),),
    ),
    Case(
        "hardware-irq-cost-absurd",
        (
            "{hw}: kernel_costs.local_irq_save_restore: expected a cost from 0 to 10 us (2.77778e+14 ns at "
            "cpu.tsc 3.6 GHz) (got '1e+15 cycles')",
        ),
        hw_base=BROADWELL,
        hw_edits=(_set("kernel_costs", "local_irq_save_restore", value="1e15 cycles"),),
    ),
    Case(
        "hardware-l2-faster-than-l1",
        (
            "{hw}: caches.l2.latency: must not be faster than caches.l1d.latency (1.11111 ns)"
            " (got '2 cycles')",
        ),
        hw_base=BROADWELL,
        hw_edits=(_set("caches", "l2", "latency", value="2 cycles"),),
    ),
    Case(
        "hardware-cache-size-absurd",
        ("{hw}: caches.l3.size: expected a cache size from 1 KiB to 4 GiB (got '1 TiB')",),
        hw_base=BROADWELL,
        hw_edits=(_set("caches", "l3", "size", value="1 TiB"),),
    ),
    # issue 13: SMT siblings and memory bandwidth
    Case(
        "hardware-smt-siblings-apart",
        (
            "{hw}: topology.nodes[0].cpus: with smt.threads_per_core 2, CPU c and c + 56 are threads of"
            " one core (Linux's enumeration), which must stay together: CPU 111 is here but its sibling"
            " 55 is not (got '0-27,56-83,111')",
        ),
        hw_base=SKYLAKE_HT,
        hw_edits=(
            _set("topology", "nodes", 0, "cpus", value="0-27,56-83,111"),
            _set("topology", "nodes", 1, "cpus", value="28-55,84-110"),
        ),
    ),
    Case(
        "hardware-bandwidth-unit",
        (
            "{hw}: memory.bandwidth.node: unknown unit 'GB' in '75 GB': expected a bandwidth in one of"
            " GB/s, MB/s, GiB/s, MiB/s (got '75 GB')",
        ),
        hw_base=SKYLAKE,
        hw_edits=(_set("memory", "bandwidth", "node", value="75 GB"),),
    ),
    Case(
        "hardware-loaded-latency-falls",
        (
            "{hw}: memory.bandwidth.loaded_latency[1]: latency must not fall as the load rises (the"
            " point before is at 81.4 ns) (got '80 ns')",
        ),
        hw_base=SKYLAKE,
        hw_edits=(_set("memory", "bandwidth", "loaded_latency", 1, "latency", value="80 ns"),),
    ),
]

KERNELS = "['5.11', '5.12', '5.13', '5.14']"
NO_BULK = (
    "kernel 5.11 has no bulk allocator, which strategy 'bulk_list' needs (strategies); run only"
    " `single` on it, or a kernel from 5.12 on (got '5.11')"
)
NO_BULK_ON_5_11 = "{sc}: kernel.version: " + NO_BULK

FILE_CASES += [
    # kernel versions (simulator/kernels.yaml)
    Case(
        "kernel-version-without-bulk-allocator",
        (NO_BULK_ON_5_11,),
        edits=(_set("kernel", "version", value="5.11"),),
    ),
    Case(
        "kernel-version-unknown",
        ("{sc}: kernel.version: unknown kernel version; expected one of " + KERNELS + " (got '6.1')",),
        edits=(_set("kernel", "version", value="6.1"),),
    ),
]

FLAG_CASES = [
    Case(
        "flag-refill-past-the-workload-limit",  # a workload's own check names the flag too
        ("command line: --batch: refill sizes must be from 1 to 256 (got 4000)",),
        base="xdp_redirect.yaml",
        flags=("--batch", "4000"),
        commands=("run",),
    ),
    Case(
        "flag-page-fault1-strategy",
        (
            "command line: --strategy: page_fault1 allocates one page per fault: give [single] "
            "(got ['bulk_array'])",
        ),
        base="page_fault1.yaml",
        flags=("--strategy", "bulk_array"),
        commands=("run",),
    ),
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
        "flag-seed-too-big",
        ("command line: --seed: " + SEED_RANGE + " (got 18446744073709551616)",),
        flags=("--seed", "18446744073709551616"),
        commands=("run",),
    ),
    Case(
        "flag-duration-without-unit",
        (
            "command line: --duration: expected a duration with a unit (one of ns, us, ms, s), got a "
            "number without one (got '0')",
        ),
        flags=("--duration", "0"),
        commands=("run",),
    ),
    Case(
        "flag-out-empty",  # it wrote six files into the working directory
        ("command line: --out: expected a directory path (got '')",),
        flags=("--out", ""),
        commands=("run",),
    ),
    Case(
        "flag-batch-not-a-number",
        ("command line: --batch: expected a whole number (got 'many')",),
        flags=("--batch", "many"),
        commands=("run",),
    ),
    Case(
        "flag-kernel-without-bulk-allocator",  # the flag is named, not the file
        ("command line: --kernel: " + NO_BULK,),
        flags=("--kernel", "5.11"),
        commands=("run",),
    ),
    Case(
        "flag-kernel-unknown",
        ("command line: --kernel: unknown kernel version; expected one of " + KERNELS + " (got '6.1')",),
        flags=("--kernel", "6.1"),
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
    out = [] if "--out" in case.flags else ["--out", str(s.out)]
    return ["run", str(s.scenario), *case.flags, *out]


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


# Issue 16: result files, the results directory, compare and plots ---------------------------
# Each asserts the same contract where it applies: exit 2, one line naming the file or flag, no
# traceback, nothing written and existing results untouched.


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small `pagesim run` results directory (two points of page_bench, 5 us each)."""
    out = tmp_path_factory.mktemp("run") / "pb"
    args = ["run", str(ROOT / "scenarios" / "page_bench.yaml"), "--strategy", "single"]
    args += ["--strategy", "bulk_array", "--batch", "16", "--duration", "5 us", "--out", str(out)]
    assert cli.main(args) == 0
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _one_error(rc: int, out: str, err: str, expected: str) -> None:
    assert "Traceback" not in out + err
    assert rc == 2, err
    assert out == ""
    assert err == f"pagesim: error: {expected}\n"


@pytest.mark.parametrize("command", ["plot", "compare"])
def test_truncated_parquet_is_one_line_naming_the_file(
    one_run: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _copy(one_run, tmp_path / "res")
    data = (d / "rows.parquet").read_bytes()
    (d / "rows.parquet").write_bytes(data[: len(data) // 2])
    before = snapshot(tmp_path)
    args = (
        ["plot", str(d), "--out", str(tmp_path / "figs")]
        if command == "plot"
        else ["compare", str(d), str(d)]
    )
    rc = cli.main(args)
    out, err = capsys.readouterr()
    _one_error(
        rc,
        out,
        err,
        f"{d}/rows.parquet: cannot be read as a Parquet table (Parquet magic bytes not found in footer):"
        " damaged or not written by pagesim",
    )
    assert snapshot(tmp_path) == before and not (tmp_path / "figs").exists()


def test_header_only_rows_csv_is_named_and_no_figure_folder_is_left(
    one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "res"
    d.mkdir()
    header = (one_run / "rows.csv").read_text(encoding="utf-8").splitlines()[0]
    (d / "rows.csv").write_text(header + "\n", encoding="utf-8")
    rc = cli.main(["plot", str(d)])
    out, err = capsys.readouterr()
    _one_error(rc, out, err, f"{d}/rows.csv: holds no rows (a header only): no point to show")
    assert sorted(p.name for p in d.iterdir()) == ["rows.csv"]  # no figures/


def test_empty_out_writes_nothing_into_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in ("run", "sweep"):
        rc = cli.main([command, str(ROOT / "scenarios" / "page_bench.yaml"), "--out", ""])
        out, err = capsys.readouterr()
        _one_error(rc, out, err, "command line: --out: expected a directory path (got '')")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_a_second_writer_is_refused(
    one_run: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from filelock import FileLock

    from simulator import results

    d = _copy(one_run, tmp_path / "pb")
    before = snapshot(d)
    lock = results.lock_path(d)
    with FileLock(str(lock)):  # another pagesim writing into d
        rc = cli.main(
            [command, str(ROOT / "scenarios" / "page_bench.yaml"), "--duration", "5 us", "--out", str(d)]
        )
    out, err = capsys.readouterr()
    _one_error(
        rc,
        out,
        err,
        f"command line: --out: {d}/ is being written by another pagesim (it holds {lock}): wait for it to"
        f" finish, or choose another --out (got '{d}')",
    )
    assert snapshot(d) == before


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_another_scenario_does_not_replace_results(
    one_run: Path, tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    d = _copy(one_run, tmp_path / "pb")
    before = snapshot(d)
    rc = cli.main(
        [command, str(ROOT / "scenarios" / "xdp_redirect.yaml"), "--duration", "5 us", "--out", str(d)]
    )
    out, err = capsys.readouterr()
    _one_error(
        rc,
        out,
        err,
        f"command line: --out: {d}/ holds the results of 'page_bench', not of 'xdp_redirect': choose another"
        f" --out, or remove that directory first (got '{d}')",
    )
    assert snapshot(d) == before
    assert not results_lock_left(tmp_path)


def results_lock_left(root: Path) -> bool:
    return any(p.name.endswith(".pagesim-lock") for p in root.rglob("*"))


def test_the_lock_is_released_and_removed_after_a_run(one_run: Path) -> None:
    assert not results_lock_left(one_run.parent)


def test_compare_refuses_results_of_different_workloads(
    one_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xdp = tmp_path / "xdp"
    args = ["run", str(ROOT / "scenarios" / "xdp_redirect.yaml"), "--strategy", "single"]
    assert cli.main([*args, "--batch", "16", "--duration", "5 us", "--out", str(xdp)]) == 0
    capsys.readouterr()
    rc = cli.main(["compare", str(xdp), str(one_run)])
    out, err = capsys.readouterr()
    _one_error(
        rc,
        out,
        err,
        "command line: B: results of different workloads measure different things (A: xdp_redirect;"
        f" B: page_bench); to compare them anyway, add --across workload (got '{one_run}')",
    )


def test_compare_does_not_mark_float_noise(tmp_path: Path) -> None:
    """Identical replications: a ratio of 1.0000000000000169 is no difference; a real one is."""
    import pandas as pd

    from simulator.compare import compare
    from simulator.results import summarize

    def write(d: Path, values: list[float]) -> Path:
        d.mkdir()
        ident = {"scenario": "pb", "workload": "page_bench", "hardware": "h", "strategy": "single", "cpus": 1}
        rows = [
            {**ident, "batch": 1, "replication": i, "seed": 1, "cycles_per_page": v}
            for i, v in enumerate(values)
        ]
        summarize(pd.DataFrame(rows)).to_parquet(d / "summary.parquet")
        pd.DataFrame(rows).to_csv(d / "rows.csv", index=False)
        return d

    a = write(tmp_path / "a", [205.1] * 3)
    b = write(tmp_path / "b", [205.1 * 1.0000000000000169] * 3)
    c = write(tmp_path / "c", [210.0] * 3)
    assert compare(a, b).table["cycles_per_page_distinct"].tolist() == [False]
    assert compare(a, c).table["cycles_per_page_distinct"].tolist() == [True]
    one_a, one_b = write(tmp_path / "a1", [100.0]), write(tmp_path / "b1", [100.5])
    assert compare(one_a, one_b).table["cycles_per_page_distinct"].tolist() == [False]  # within 1 %
    assert compare(one_a, one_b, tolerance=0.001).table["cycles_per_page_distinct"].tolist() == [True]


def test_compare_explains_its_star(one_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["compare", str(one_run), str(one_run), "--a", "strategy=single", "--b", "strategy=bulk_array"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("*: B differs from A by more than both 95 % confidence")


def test_identical_replications_have_an_exact_mean_and_no_interval() -> None:
    import numpy as np

    from simulator.results import ci95_halfwidth, mean

    v = np.array([0.1 + 0.2] * 3)
    assert mean(v) == 0.1 + 0.2 and ci95_halfwidth(v) == 0.0


def test_a_large_flat_document_is_not_blamed_on_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator import yamlio

    monkeypatch.setattr(yamlio, "MAX_VALUES", 10)
    with pytest.raises(yamlio._ShapeError, match=r"holds more than 10 values$"):
        yamlio._load_yaml("[" + ", ".join(["0"] * 20) + "]")
    with pytest.raises(yamlio._ShapeError, match="through aliases"):
        yamlio._load_yaml("a: &a [0, 0, 0, 0]\nb: [*a, *a, *a]\n")


def test_every_number_of_a_workload_section_has_a_work_bound_or_a_reason() -> None:
    """limits.WORK_BOUNDS covers every numeric field (durations and sizes included) of every
    workload's parameters, or limits.UNBOUNDED says why it sets no amount of work."""
    import typing

    from pydantic import BaseModel

    from simulator import limits
    from simulator.workloads import WORKLOADS

    def numeric(model: type[BaseModel], prefix: str) -> list[str]:
        out = []
        for name, f in model.model_fields.items():
            path = f"{prefix}.{name}"
            args = [a for a in typing.get_args(f.annotation) or [f.annotation] if a is not type(None)]
            for a in args:
                a = typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a
                if isinstance(a, type) and issubclass(a, BaseModel):
                    out += numeric(a, path)
                elif a in (int, float) or typing.get_origin(a) is list:
                    out.append(path)
        return sorted(set(out))

    bounded = {b.path for b in limits.WORK_BOUNDS}
    for name, w in WORKLOADS.items():
        missing = [p for p in numeric(w.params, name) if p not in bounded and p not in limits.UNBOUNDED]
        assert missing == [], missing


def test_validate_model_keeps_stdout_for_results(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from simulator import validation

    monkeypatch.setattr(validation, "generate", lambda s: "report\n")
    assert cli.main(["validate-model", "--out", str(tmp_path / "v.md")]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == f"pagesim: validate-model: wrote {tmp_path / 'v.md'}\n"


# Plots: what the issue saw drawn wrong ------------------------------------------------------


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    from test_plots import synthetic

    from simulator import plots

    rs = plots.load(synthetic(tmp_path_factory.mktemp("plots")))
    made = [f for kind in plots.KINDS for _, f in plots.figures(rs, kind)]
    assert made
    return made


def test_no_legend_hides_a_curve(figures: list[Any]) -> None:
    from simulator import plots

    for fig in figures:
        r = plots._renderer(fig)
        fig.draw_without_rendering()  # as saved: every position final
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is not None:
                assert not plots.legend_covers(ax, legend, r), ax.get_title()


def test_every_axis_label_is_inside_the_figure(figures: list[Any]) -> None:
    from simulator import plots

    for fig in figures:
        r = plots._renderer(fig)
        fig.draw_without_rendering()
        box = fig.bbox
        for ax in fig.axes:
            for label in (ax.xaxis.label, ax.yaxis.label):
                if label.get_text():
                    e = label.get_window_extent(r)
                    assert e.x0 >= box.x0 and e.x1 <= box.x1 and e.y0 >= box.y0 and e.y1 <= box.y1, label


def test_bars_without_an_interval_draw_no_error_bar(tmp_path: Path) -> None:
    import pandas as pd
    from test_plots import synthetic

    from simulator import plots

    d = synthetic(tmp_path)
    summary = pd.read_parquet(d / "summary.parquet")
    for c in [c for c in summary.columns if c.endswith("_ci95")]:
        summary[c] = float("nan")  # one replication
    summary.to_parquet(d / "summary.parquet")
    fig = plots.fig_throughput(plots.load(d), "nfs")
    assert fig is not None
    bars = fig.axes[0].containers[0]
    assert bars.errorbar is None


# A long run says so; a long point shows progress; neither changes a row ----------------------


def test_a_long_run_says_so_before_it_starts(capsys: pytest.CaptureFixture[str]) -> None:
    from simulator import run
    from simulator.scenario import Overrides, load_scenario

    sc = load_scenario(ROOT / "scenarios" / "page_bench.yaml", Overrides(duration="20 s"))
    cli.warn_if_long([run.estimate_wall_s(sc, p) for p in run.expand(sc)], 1)
    err = capsys.readouterr().err
    assert err.startswith("pagesim: note: a long run: 32 points, estimated ")
    sc = load_scenario(ROOT / "scenarios" / "page_bench.yaml")
    cli.warn_if_long([run.estimate_wall_s(sc, p) for p in run.expand(sc)], 1)
    assert capsys.readouterr().err == ""


def test_progress_inside_a_point_leaves_its_row_unchanged() -> None:
    from simulator import run
    from simulator.scenario import Overrides, load_scenario

    sc = load_scenario(ROOT / "scenarios" / "page_bench.yaml", Overrides(duration="20 us"))
    p = run.expand(sc)[0]
    seen: list[tuple[float, float]] = []
    with_progress = run.run_point(sc, p, progress=lambda now, end: seen.append((now, end)))
    plain = run.run_point(sc, p)
    for row in (with_progress, plain):
        row.pop("wall_s")
    assert with_progress == plain
    assert seen and all(0 <= now <= end for now, end in seen)
