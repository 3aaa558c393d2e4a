"""SpinLock and CPU (simulator/machine/{lock,cpu}.py): FIFO hand-off, exact waits, IRQ-off windows.

Machine: tests/data/tiny-2node.yaml (CPUs 0-1 share LLC 0 on node 0, CPUs 2-3 LLC 1 on node 1).
Every expected time below is worked from the hardware file: the lock word's line costs local DRAM
on its first touch (80 ns - L1) and then one transfer per hand-off (45 ns - L1 inside an LLC,
130 ns - L1 across sockets); spin_lock+unlock is 37 cycles at 3.6 GHz, and an IRQ save+restore
(5.12's conditional sti) costs what the calibration derives in context: the popf-era toggle
left in free_unref_page's profiled self time, times the tight-loop ratio 10/37 (each half charged
on either side).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np
import pytest
import simpy
from conftest import BROADWELL, TINY_2NODE, new_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.calibration import load_calibration
from simulator.errors import InvariantError
from simulator.machine.cpu import CPU
from simulator.machine.lock import LOCK_FIELDS, ZONE_LOCK, SpinLock, lock_fields
from simulator.mm.machine import Machine

L1_NS = 4 / 3.6
DRAM = 80 - L1_NS
XFER_SAME_LLC = 45 - L1_NS
XFER_CROSS = 130 - L1_NS
_REPLAYED = load_calibration(BROADWELL.parent / "calibration" / "broadwell-xdp-baseline.yaml").replayed
assert _REPLAYED is not None
_SELF = {
    f: pct / 100 * 1e9 / 3677958 - _REPLAYED.frontend_ns_per_packet[f] - _REPLAYED.stalls_ns_per_packet[f]
    for f, pct in (("rmqueue", 3.24), ("free_unref_page", 1.11))
}
_OP = (_SELF["rmqueue"] - _SELF["free_unref_page"]) / (19 - 1)  # ops counted in the 5.11 source
HALF_IRQ = (_SELF["free_unref_page"] - _OP) * 10 / 37 / 2
HALF_LOCK = 37 / 3.6 / 2


@pytest.fixture
def ml(machine: Callable[..., Machine]) -> tuple[Machine, SpinLock]:
    """tiny-2node and a lock whose word sits on a fresh node-0 line."""
    m = machine()
    lock = SpinLock("test.lock", m.registry.alloc("test.lock", 0))
    assert m.costs.irq_save_restore / 2 == pytest.approx(HALF_IRQ)
    assert m.costs.spin_lock_unlock / 2 == pytest.approx(HALF_LOCK)
    return m, lock


def critical_section(
    cpu: CPU,
    lock: SpinLock,
    arrive: float,
    hold: float,
    order: list[int],
    irq: str | None = None,
) -> Generator[simpy.Event, None, None]:
    if arrive:
        yield cpu.env.timeout(arrive)
    if irq:
        cpu.local_irq_save(irq)
    yield from lock.spin_lock(cpu)
    order.append(cpu.id)
    cpu.spend(hold)
    lock.spin_unlock(cpu)
    if irq:
        cpu.local_irq_restore()
    yield cpu.sync()


def test_two_cpus_contending_wait_exactly_for_the_holder(ml):
    m, lock = ml
    c0, c1 = m.cpus[0], m.cpus[1]
    order: list[int] = []
    m.env.process(critical_section(c0, lock, 0, 100, order, irq="a"))
    m.env.process(critical_section(c1, lock, 30, 50, order, irq="b"))
    m.env.run()

    start0 = HALF_IRQ  # the save's first half comes before the window opens
    release0 = start0 + DRAM + HALF_LOCK + 100 + HALF_LOCK
    arrive1 = 30 + HALF_IRQ
    wait1 = release0 - arrive1
    release1 = arrive1 + wait1 + XFER_SAME_LLC + HALF_LOCK + 50 + HALF_LOCK

    assert order == [0, 1]
    assert lock.acquisitions == 2
    assert lock.contended == 1
    assert lock.wait_ns == pytest.approx(wait1)
    assert c1.spin_ns == pytest.approx(wait1) and c0.spin_ns == 0
    assert lock.free_at == pytest.approx(release1)
    assert lock.hold_hist.total == pytest.approx(100 + HALF_LOCK + 50 + HALF_LOCK)
    assert lock.wait_hist.n == 2 and lock.wait_hist.max == pytest.approx(wait1)
    # each CPU had one IRQ-off window; the waiter's includes its spin
    assert c0.irq_windows["a"].n == 1
    assert c0.irq_windows["a"].max == pytest.approx(release0 - start0)
    assert c1.irq_windows["b"].n == 1
    assert c1.irq_windows["b"].max == pytest.approx(release1 - arrive1)
    assert c1.irq_windows["b"].max > wait1
    assert m.env.now == pytest.approx(release1 + HALF_IRQ)
    lock.check_released()
    c0.check_quiescent()
    c1.check_quiescent()


def test_waiters_are_served_in_arrival_order_fifo(ml):
    m, lock = ml
    order: list[int] = []
    arrivals = {0: 0.0, 2: 10.0, 1: 20.0, 3: 25.0}
    hold = 100.0
    for cpu_id, t in arrivals.items():
        m.env.process(critical_section(m.cpus[cpu_id], lock, t, hold, order))
    m.env.run()
    assert order == [0, 2, 1, 3]
    # the lock word goes DRAM -> cpu0 -> cpu2 (other socket) -> cpu1 (other socket) -> cpu3 (idem)
    release = DRAM + 2 * HALF_LOCK + hold
    waits = []
    for cpu_id, xfer in ((2, XFER_CROSS), (1, XFER_CROSS), (3, XFER_CROSS)):
        waits.append(release - arrivals[cpu_id])
        release += xfer + 2 * HALF_LOCK + hold
    assert lock.contended == 3
    assert lock.wait_ns == pytest.approx(sum(waits))
    assert [m.cpus[c].spin_ns for c in (2, 1, 3)] == pytest.approx(waits)
    assert lock.free_at == pytest.approx(release)


def test_lock_free_again_is_not_contended(ml):
    m, lock = ml
    order: list[int] = []
    m.env.process(critical_section(m.cpus[0], lock, 0, 100, order))
    m.env.process(critical_section(m.cpus[1], lock, 1000, 100, order))
    m.env.run()
    assert (lock.acquisitions, lock.contended, lock.wait_ns) == (2, 0, 0.0)


def test_holding_a_lock_across_a_yield_is_an_invariant_error(ml):
    m, lock = ml
    c0, c1 = m.cpus[0], m.cpus[1]

    def sleeper() -> Generator[simpy.Event, None, None]:
        yield from lock.spin_lock(c0)
        yield m.env.timeout(1000)  # kernel code cannot sleep under a spinlock

    order: list[int] = []
    m.env.process(sleeper())
    m.env.process(critical_section(c1, lock, 10, 5, order))
    with pytest.raises(InvariantError, match="across a yield"):
        m.env.run()
    with pytest.raises(InvariantError, match="still held"):
        lock.check_released()


def test_unlock_by_another_cpu_is_an_invariant_error(ml):
    m, lock = ml

    def take() -> Generator[simpy.Event, None, None]:
        yield from lock.spin_lock(m.cpus[0])

    m.env.process(take())
    m.env.run()
    with pytest.raises(InvariantError, match="unlocks a lock held by 0"):
        lock.spin_unlock(m.cpus[1])


# ---- IRQ windows ------------------------------------------------------------------------------


def test_nested_irq_save_records_one_window_for_the_outermost_pair(ml):
    m, _ = ml
    cpu = m.cpus[0]
    cpu.local_irq_save("outer")
    start = cpu.now()
    cpu.spend(10)
    cpu.local_irq_save("inner")
    cpu.spend(20)
    cpu.local_irq_restore()
    assert cpu.irqs_disabled
    cpu.spend(5)
    cpu.local_irq_restore()
    assert not cpu.irqs_disabled
    assert list(cpu.irq_windows) == ["outer"]
    h = cpu.irq_windows["outer"]
    assert h.n == 1
    assert h.max == pytest.approx(10 + HALF_IRQ + 20 + HALF_IRQ + 5)
    assert cpu.irq_off_ns == pytest.approx(h.max)
    assert start == pytest.approx(HALF_IRQ)
    assert cpu.now() == pytest.approx(4 * HALF_IRQ + 35)  # two full save+restore pairs
    cpu.check_quiescent()


def test_unbalanced_restore_and_open_window_are_invariant_errors(ml):
    m, _ = ml
    cpu = m.cpus[0]
    with pytest.raises(InvariantError, match="without a matching save"):
        cpu.local_irq_restore()
    cpu.local_irq_save("leaky")
    with pytest.raises(InvariantError, match="opened by leaky"):
        cpu.check_quiescent()
    with pytest.raises(InvariantError, match="inside an open window"):
        cpu.record_irq_windows("vec", np.array([0.0]), np.array([1.0]))


def test_irq_delivery_delay(ml):
    m, _ = ml
    cpu = m.cpus[0]
    cpu.local_irq_save("w")
    start = cpu.now()
    cpu.spend(100)
    cpu.local_irq_restore()
    end = start + 100
    assert cpu.irq_delivery_delay(start + 10) == pytest.approx(90)
    assert cpu.irq_delivery_delay(start) == pytest.approx(100)
    assert cpu.irq_delivery_delay(start - 1) == 0.0
    assert cpu.irq_delivery_delay(end) == 0.0  # IRQs are back on at `end`
    assert cpu.irq_delivery_delay(end + 50) == 0.0
    # an interrupt raised inside a window that is still open waits at least until now
    cpu.spend(200)
    cpu.local_irq_save("open")
    start2 = cpu.now()
    cpu.spend(40)
    assert cpu.irq_delivery_delay(start2 + 15) == pytest.approx(25)
    assert cpu.irq_delivery_delay(start + 10) == pytest.approx(90)  # the closed one still counts
    cpu.local_irq_restore()


def test_vectorised_windows_are_recorded_like_single_ones(ml):
    m, _ = ml
    cpu = m.cpus[0]
    starts = np.array([0.0, 100.0, 200.0])
    lengths = np.array([10.0, 20.0, 30.0])
    cpu.record_irq_windows("vec", starts, starts + lengths)
    h = cpu.irq_windows["vec"]
    assert (h.n, h.max, h.total) == (3, 30.0, 60.0)
    assert cpu.irq_off_ns == 60.0
    assert cpu.irq_delivery_delay(105.0) == pytest.approx(15.0)
    assert cpu.irq_delivery_delay(150.0) == 0.0
    assert cpu.all_irq_windows().n == 3


def test_recent_windows_keep_the_last_ones_in_bounded_memory(ml):
    """The ring of recent IRQ-off windows holds exactly what a bounded deque would, across
    wrap-arounds, whether windows close one by one or come from a vectorised run."""
    from collections import deque

    from simulator.machine.cpu import RECENT_WINDOWS, WindowRing

    ring = WindowRing()
    model: deque[tuple[float, float]] = deque(maxlen=RECENT_WINDOWS)
    t = 0.0
    for chunk in (5, 1, 3000, 1, 4095, 7000, 2):
        if chunk == 1:
            ring.append(t, t + 1.5)
            model.append((t, t + 1.5))
            t += 3.0
            continue
        starts = t + 3.0 * np.arange(chunk)
        ends = starts + 1.5
        ring.extend(starts, ends)
        model.extend(zip(starts.tolist(), ends.tolist()))
        t = float(starts[-1]) + 3.0
        assert list(ring) == list(model)
    assert len(ring) == RECENT_WINDOWS
    assert ring.starts.nbytes == RECENT_WINDOWS * 8  # allocated once
    cpu = ml[0].cpus[0]
    cpu.recent_windows = ring
    s, e = model[-10]
    assert cpu.irq_delivery_delay(s + 0.5) == e - (s + 0.5)
    assert cpu.irq_delivery_delay(e + 0.5) == 0.0


# ---- FIFO order and exact waits, on random programs ----------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from([0.0, 5.0, 40.0, 150.0, 600.0]), st.floats(0, 300)),
        min_size=1,
        max_size=14,
    )
)
def test_lock_is_fifo_with_exact_waits_on_random_programs(program: list[tuple[int, float, float]]) -> None:
    """Each CPU runs its critical sections in program order, each `gap` ns after its previous
    one ends (ties at the same instant included). Then: the lock goes to the CPUs in the order
    they asked for it; each waits exactly until the previous holder's release; sections never
    overlap; and the lock word costs a DRAM miss first (local or remote), then nothing when the
    same CPU takes it again and one transfer at the CPUs' distance when it changes hands."""
    m = new_machine(TINY_2NODE)
    lock = SpinLock("test.lock", m.registry.alloc("test.lock", 0))
    log: list[tuple[int, float, float, float]] = []  # (cpu, asked, got, released)

    def runner(cpu_id: int, sections: list[tuple[float, float]]) -> Generator[simpy.Event, None, None]:
        cpu = m.cpus[cpu_id]
        for gap, hold in sections:
            yield cpu.env.timeout(gap)
            asked = cpu.now()
            yield from lock.spin_lock(cpu)
            got = cpu.now()
            cpu.spend(hold)
            lock.spin_unlock(cpu)
            log.append((cpu_id, asked, got, cpu.now()))
            yield cpu.sync()

    by_cpu: dict[int, list[tuple[float, float]]] = {}
    for cpu_id, gap, hold in program:
        by_cpu.setdefault(cpu_id, []).append((gap, hold))
    for cpu_id, sections in by_cpu.items():
        m.env.process(runner(cpu_id, sections))
    m.env.run()

    log.sort(key=lambda r: r[2])  # in the order the lock was taken
    assert len(log) == len(program) == lock.acquisitions
    asked = [r[1] for r in log]
    assert asked == sorted(asked), "the lock was not handed over in the order it was asked for"
    waits = []
    prev_cpu, prev_release = None, 0.0
    for cpu_id, t_ask, t_got, t_rel in log:
        wait = max(0.0, prev_release - t_ask)
        waits.append(wait)
        if prev_cpu is None:  # the word sits in node 0's memory
            line = DRAM if m.cpus[cpu_id].node == 0 else 130 - L1_NS
        elif prev_cpu == cpu_id:
            line = 0.0
        else:
            line = XFER_SAME_LLC if m.cpus[prev_cpu].llc == m.cpus[cpu_id].llc else XFER_CROSS
        assert t_got == pytest.approx(t_ask + wait + line + HALF_LOCK, abs=1e-6)
        assert t_got >= prev_release  # no two sections overlap
        prev_cpu, prev_release = cpu_id, t_rel
    assert lock.contended == sum(w > 0 for w in waits)
    assert lock.wait_ns == pytest.approx(sum(waits), abs=1e-6)
    assert lock.wait_hist.n == len(log) and lock.wait_hist.max == pytest.approx(max(waits), abs=1e-6)
    assert sum(c.spin_ns for c in m.cpus) == pytest.approx(sum(waits), abs=1e-6)
    # lockstat's bounces: the previous acquirer was another CPU (the first has none)
    cpus = [r[0] for r in log]
    assert lock.acq_bounces == sum(a != b for a, b in zip(cpus, cpus[1:]))
    bounced_waits = [w > 0 and a != b for a, b, w in zip(cpus, cpus[1:], waits[1:])]
    assert lock.con_bounces == sum(bounced_waits) <= lock.contended <= lock.acquisitions
    assert lock.hold_hist.n == lock.acquisitions
    lock.check_released()


def test_lockstat_fields_of_a_lock_class(ml):
    """lock_fields: sums over the class's locks, merged quantiles, spin share of the CPUs' time."""
    m, lock = ml
    other = SpinLock("test.lock2", m.registry.alloc("test.lock2", 0))
    order: list[int] = []
    m.env.process(critical_section(m.cpus[0], lock, 0, 100, order))
    m.env.process(critical_section(m.cpus[1], lock, 30, 50, order))
    m.env.process(critical_section(m.cpus[2], other, 0, 10, order))
    m.env.run()
    f = lock_fields([lock, other], "x", cpu_ns=1000.0)
    assert list(f) == [f"x_{name}" for name in LOCK_FIELDS]
    assert (f["x_acquisitions"], f["x_contentions"], f["x_con_bounces"], f["x_acq_bounces"]) == (3, 1, 1, 1)
    assert f["x_wait_ns_total"] == lock.wait_ns == m.cpus[1].spin_ns
    assert f["x_wait_max_ns"] == lock.wait_hist.max
    assert f["x_wait_p50_ns"] <= 0.01  # two of the three did not wait (bucket 0: below 0.01 ns)
    assert f["x_hold_ns_total"] == pytest.approx(100 + 50 + 10 + 3 * HALF_LOCK)
    assert f["x_hold_max_ns"] == pytest.approx(100 + HALF_LOCK)
    assert f["x_spin_share"] == lock.wait_ns / 1000.0
    assert lock.name == other.name == ZONE_LOCK


def test_a_cpu_that_is_not_measuring_leaves_no_lock_statistics(ml):
    """CPU.measuring gates a lock's statistics (acquisition and its hold); the lock still works
    and the spin still counts on the CPU."""
    m, lock = ml
    m.cpus[1].measuring = False
    order: list[int] = []
    m.env.process(critical_section(m.cpus[0], lock, 0, 100, order))
    m.env.process(critical_section(m.cpus[1], lock, 30, 50, order))
    m.env.run()
    assert order == [0, 1]
    assert (lock.acquisitions, lock.contended, lock.wait_ns, lock.hold_hist.n) == (1, 0, 0.0, 1)
    assert m.cpus[1].spin_ns > 0
    assert lock.last_cpu == 1  # bounces follow every acquisition, counted or not


def test_a_workload_lock_is_reset_and_checked_like_a_zone_lock(machine):
    m = machine()
    lk = m.spinlock("machine.node0.lruvec.lru_lock", "&lruvec->lru_lock", 0)
    assert m.locks_of("&lruvec->lru_lock") == [lk] and lk in m.locks
    assert len(m.locks_of(ZONE_LOCK)) == len(m.zones)
    order: list[int] = []
    m.env.process(critical_section(m.cpus[0], lk, 0, 10, order))
    m.env.run()
    assert lk.acquisitions == 1
    from simulator.workloads.api import reset_stats

    reset_stats(m)
    assert (lk.acquisitions, lk.hold_hist.n, lk.last_cpu) == (0, 0, 0)
    lk.holder = 3
    with pytest.raises(InvariantError, match="lru_lock: still held by cpu3"):
        m.check_invariants()
