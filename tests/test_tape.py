"""simulator/machine/tape.py: pricing a stretch of touches and spends in one step leaves the CPU
exactly (==) as the one-by-one calls would: its time, its cache cost, the cache's state, its
IRQ-off windows and their statistics."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_2NODE, new_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.machine.tape import Batch, Tape, running_sum, running_sums
from simulator.mm.machine import Machine


def _cpu_state(m: Machine) -> tuple:
    cpu = m.cpus[0]
    hist = {fn: (h.n, h.total, h.max, h.counts.tolist()) for fn, h in cpu.irq_windows.items()}
    c = m.cache
    return (
        cpu.pending,
        cpu.cache_cost_ns,
        cpu.irq_off_ns,
        hist,
        list(cpu.recent_windows),
        c.state(),
    )


# a program: ("touch", n lines, write) or ("spend", ns); lines drawn from page lines and metadata
ops = st.lists(
    st.one_of(
        st.tuples(st.just("touch"), st.sampled_from([1, 2, 3, 5, 23, 24, 40, 170]), st.booleans()),
        st.tuples(st.just("spend"), st.floats(0.01, 500.0), st.just(True)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(program=ops, seed=st.integers(0, 2**16))
def test_batch_equals_the_calls_one_by_one(program, seed):
    """Touches below, at and above the sizes where CacheModel.access() changes how it sums."""
    machines = [new_machine(TINY_2NODE), new_machine(TINY_2NODE)]
    for m in machines:
        meta = m.registry.alloc("test.meta", 0, 4)
        rng = np.random.default_rng(seed)
        cpu = m.cpus[0]
        target = Batch(cpu) if m is machines[0] else cpu
        cpu.spend(1.0 / 3.0)
        for op, n, write in program:
            if op == "spend":
                target.spend(n)
                continue
            lines = [
                meta + int(rng.integers(4)) if rng.random() < 0.4 else 1000 + int(rng.integers(300))
                for _ in range(int(n))
            ]
            target.touch(lines, write)
        if isinstance(target, Batch):
            target.run()
    assert _cpu_state(machines[0]) == _cpu_state(machines[1])


def test_batch_refuses_to_tell_the_time():
    m = new_machine(TINY_2NODE)
    b = Batch(m.cpus[0])
    assert b.costs is m.cpus[0].costs
    with pytest.raises(AttributeError):
        b.now()
    with pytest.raises(AttributeError):
        b.local_irq_save("x")


@pytest.mark.parametrize("k", [1, 3, 40])
def test_tape_equals_the_calls_one_by_one(k: int) -> None:
    """k calls of: a spend, a touch of constant and per-call lines, an IRQ-off window around a
    touch and a per-call spend; marks read the local time where the calls would."""
    machines = [new_machine(TINY_2NODE), new_machine(TINY_2NODE)]
    marks = []
    for m in machines:
        cpu = m.cpus[0]
        meta = m.registry.alloc("test.meta", 0, 2)
        pages = np.arange(5000, 5000 + k, dtype=np.int64) * 3
        work = np.linspace(1.1, 9.7, k)
        cpu.spend(7.0 / 3.0)
        if m is machines[0]:
            tape = Tape(cpu, k)
            tape.mark()
            tape.spend(2.5)
            tape.touch([meta, pages], False)
            tape.irq_save("fn")
            tape.touch([pages, meta + 1, pages + 1])
            tape.spend(work)
            tape.irq_restore()
            tape.mark()
            marks.append(tape.run().tolist())
        else:
            got = []
            for i in range(k):
                t0 = cpu.now()
                cpu.spend(2.5)
                cpu.touch([meta, int(pages[i])], False)
                cpu.local_irq_save("fn")
                cpu.touch([int(pages[i]), meta + 1, int(pages[i]) + 1])
                cpu.spend(float(work[i]))
                cpu.local_irq_restore()
                got.append([t0, cpu.now()])
            marks.append(got)
    assert marks[0] == marks[1]
    assert _cpu_state(machines[0]) == _cpu_state(machines[1])


def test_running_sums_add_left_to_right():
    values = np.array([1e16, 1.0, -1e16, 3.0, 0.1, 0.2])
    x = 0.5
    seen = []
    for v in values.tolist():
        x += v
        seen.append(x)
    assert running_sums(0.5, values).tolist() == seen
    assert running_sum(0.5, values) == seen[-1]
    assert running_sum(0.5, np.array([])) == 0.5
