"""Shared fixtures: small test machines, a machine factory and a way to run kernel paths to the end.

Hardware files (tests/data/):
- tiny-2node.yaml: 2 sockets x 2 CPUs; node 0 has 256 MiB (DMA, DMA32 and Normal zones),
  node 1 has 128 MiB (Normal). Every zone is small, so pcp batch/high come out of
  zone_batchsize() as 7/42 (DMA: 1/0) and a balloon can put a zone at its watermarks cheaply.
- tiny-1node.yaml: 1 node, 2 CPUs, 2 GiB: DMA32 and Normal get the kernel's usual 63/378.
- tiny-smt.yaml: tiny-2node.yaml with two threads per core (8 CPUs; CPU c and c + 4 share a core).
Both use the reference profile's calibration, at the reference clock (work scales by 1).
"""

from __future__ import annotations

import os
import signal as _signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import simpy

from simulator.calibration import derive
from simulator.code import code_paths
from simulator.costs import Costs
from simulator.hardware import Hardware, load_hardware
from simulator.kernels import KernelConfig
from simulator.machine.cpu import CPU
from simulator.mm.machine import Machine
from simulator.system import build_machine

DATA = Path(__file__).resolve().parent / "data"
ROOT = Path(__file__).resolve().parent.parent
TINY_2NODE = DATA / "tiny-2node.yaml"
TINY_1NODE = DATA / "tiny-1node.yaml"
TINY_SMT = DATA / "tiny-smt.yaml"
BROADWELL = ROOT / "hardware" / "broadwell-e5-1650v4.yaml"
SKYLAKE = ROOT / "hardware" / "skylake-sp-2s.yaml"
PAGE_BENCH_SCENARIO = ROOT / "scenarios" / "page_bench.yaml"


@cache
def hardware(path: Path) -> Hardware:
    """A hardware file, loaded once per test process (Hardware is frozen)."""
    return load_hardware(path)


@cache
def costs(path: Path) -> Costs:
    """The allocator's costs on a hardware file (every kernel's terms), derived once per test
    process, as loading a scenario derives them."""
    return derive(hardware(path))[0]


def boot(path: Path, kconfig: KernelConfig | None = None, cpu_class: type[CPU] = CPU) -> Machine:
    """A machine booted on its own SimPy environment, as a scenario's point boots one."""
    k = kconfig or KernelConfig()
    return build_machine(simpy.Environment(), hardware(path), k, costs(path), code_paths(), cpu_class)


def new_machine(path: Path = TINY_2NODE, version: str | None = None, **kconfig: Any) -> Machine:
    """A freshly booted machine on its own SimPy environment (kernel `version`'s preset, or the
    default 5.12 KernelConfig, with `kconfig` options)."""
    k = KernelConfig(**kconfig) if version is None else KernelConfig.for_version(version, **kconfig)
    return boot(path, k)


def run_on(cpu: CPU, gen: Generator[simpy.Event, None, Any]) -> Any:
    """Run one kernel path on `cpu` to completion and return its value.

    The CPU's pending work is synced at the end, so the next path (on any CPU) starts after it in
    simulated time. Nothing else may be scheduled on the environment."""

    def proc() -> Generator[simpy.Event, None, Any]:
        value = yield from gen
        yield cpu.sync()
        return value

    env = cpu.env
    p = env.process(proc())
    env.run()
    assert p.triggered, "the kernel path did not finish (a process is still waiting)"
    return p.value


@pytest.fixture
def machine() -> Callable[..., Machine]:
    """Factory: machine(path=TINY_2NODE, **KernelConfig fields) -> a freshly booted Machine.

    (Hypothesis tests, which cannot take function-scoped fixtures, call new_machine directly.)"""
    return new_machine


def interrupt_cli(args: Sequence[str], cwd: Path, after: str, sig: _signal.Signals) -> tuple[int, str, str]:
    """Run `python -m simulator.cli ARGS`, send `sig` once a stderr line contains `after` (or
    stderr ends), and return (exit status, stdout, all of stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if after in line or not line:
            break
    proc.send_signal(sig)
    out, rest = proc.communicate(timeout=60)
    return proc.returncode, out, "".join(seen) + rest
