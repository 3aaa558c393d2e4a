"""SMT (simulator/machine/cpu.py, simulator/hardware.py): Linux's numbering of sibling threads, and
a thread's work running 1 / throughput slower while its sibling is busy.

Machine: tests/data/tiny-smt.yaml, 2 sockets x 2 cores x 2 threads: CPU c and c + 4 share a core;
throughput 0.5 (a busy sibling doubles the time of work).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest
import simpy
from conftest import ROOT, SKYLAKE, TINY_SMT, hardware, new_machine

from simulator.errors import ConfigError
from simulator.hardware import load_hardware
from simulator.machine.lock import SpinLock

HT = ROOT / "hardware" / "skylake-sp-2s-ht.yaml"


def _loop(cpu, items: int, work: float, ends: dict[int, float]) -> Generator[simpy.Event, None, None]:
    for _ in range(items):
        cpu.spend(work)
        yield cpu.sync()
    ends[cpu.id] = cpu.env.now


def _run(m, cpus: list[int], items: int = 10, work: float = 100.0) -> dict[int, float]:
    ends: dict[int, float] = {}
    for c in cpus:
        m.env.process(_loop(m.cpus[c], items, work, ends))
    m.env.run()
    return ends


def test_linux_numbers_the_first_thread_of_every_core_first():
    hw = hardware(HT)
    assert (hw.ncpus, hw.ncores, hw.threads_per_core, hw.smt_throughput) == (112, 56, 2, 0.6)
    assert hw.siblings(3) == [59] and hw.siblings(111) == [55]
    assert hw.cpu_node()[56] == 0 and hw.cpu_node()[84] == 1 and hw.cpu_core()[100] == 44
    plain = hardware(SKYLAKE)
    assert (plain.ncores, plain.smt_throughput, plain.siblings(3)) == (56, 1.0, [])


def test_siblings_split_across_nodes_are_refused(tmp_path: Path):
    text = HT.read_text().replace("cpus: 28-55,84-111", "cpus: 28-55,84-110")
    text = text.replace("cpus: 0-27,56-83 ", "cpus: 0-27,56-83,111 ")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    (bad.parent / "calibration").symlink_to(ROOT / "hardware" / "calibration")
    with pytest.raises(ConfigError) as e:
        load_hardware(bad)
    assert str(e.value) == (
        f"{bad}: topology.nodes[0].cpus: with smt.threads_per_core 2, CPU c and c + 56 are threads"
        " of one core (Linux's enumeration), which must stay together: CPU 111 is here but its"
        " sibling 55 is not (got '0-27,56-83,111')"
    )


def test_siblings_slow_each_other_other_cores_do_not():
    """Ten items of 100 ns: alone 1000 ns; beside a busy sibling each item after the first
    (decided when a CPU resumes from a sync) takes 200 ns."""
    assert _run(new_machine(TINY_SMT), [0]) == {0: 1000.0}
    assert _run(new_machine(TINY_SMT), [0, 1]) == {0: 1000.0, 1: 1000.0}
    assert _run(new_machine(TINY_SMT), [0, 4]) == {0: 1900.0, 4: 1900.0}
    m = new_machine(TINY_SMT)
    assert _run(m, [0, 4], items=10) == {0: 1900.0, 4: 1900.0}
    assert m.cpus[0].busy_ns == 1900.0


def test_a_thread_speeds_up_when_its_sibling_stops():
    m = new_machine(TINY_SMT)
    ends: dict[int, float] = {}
    m.env.process(_loop(m.cpus[0], 10, 100.0, ends))
    m.env.process(_loop(m.cpus[4], 2, 100.0, ends))
    m.env.run()
    # cpu4: 100 + 200; cpu0: 100 + 200 (cpu4 still busy at 100) + one more at 300 (cpu4 ended
    # at 300, taken as busy) + 7 x 100 alone
    assert ends == {4: 300.0, 0: 100 + 200 + 200 + 700}


def test_a_lock_held_beside_a_busy_sibling_is_held_longer_and_a_spin_is_real_time():
    m = new_machine(TINY_SMT)
    lock = SpinLock("test.lock", m.registry.alloc("test.lock", 0))
    released: list[float] = []

    def holder() -> Generator[simpy.Event, None, None]:
        cpu = m.cpus[0]
        cpu.spend(10)
        yield cpu.sync()  # cpu4 is busy from 0 to 2000: the next item runs at half speed
        yield from lock.spin_lock(cpu)
        cpu.spend(100)
        lock.spin_unlock(cpu)
        released.append(cpu.now())
        yield cpu.sync()

    def waiter() -> Generator[simpy.Event, None, None]:
        cpu = m.cpus[1]
        cpu.spend(50)
        yield cpu.sync()
        yield from lock.spin_lock(cpu)
        lock.spin_unlock(cpu)
        yield cpu.sync()

    m.env.process(holder())
    m.env.process(waiter())
    m.env.process(_loop(m.cpus[4], 1, 2000.0, {}))
    m.env.run()
    hold = lock.hold_hist.max
    half_lock = m.costs.spin_lock_unlock / 2
    assert hold == pytest.approx(2 * (100 + half_lock))
    # the waiter (its sibling idle) spins in real time until the slowed holder lets go
    assert m.cpus[1].spin_ns == lock.wait_ns == pytest.approx(released[0] - 50)
    assert m.cpus[1].spin_end == pytest.approx(released[0])


def test_without_smt_nothing_is_slowed():
    m = new_machine()
    assert all(c.sibling is None and c.slowdown == 1.0 for c in m.cpus)
