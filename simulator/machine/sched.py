"""Who runs on a CPU: one kernel context at a time, softirqs before threads.

A `CPU` keeps one `pending` time for the work it has priced but not yet yielded, so two SimPy
processes must never run kernel code on the same CPU at once. Workloads with more contexts than
CPUs (nfsd threads sharing a CPU, kswapd, a softirq freeing pages) take the CPU's run queue slot
around every stretch of kernel work and give it back, with their pending time synced, before they
sleep or wait.

Model of the scheduler: a capacity-1, non-preemptive priority queue per CPU. A softirq (priority
SOFTIRQ) goes ahead of queued threads but does not preempt the one running; threads (priority
THREAD) run in FIFO order. Left out: CFS time slices, preemption, wake-up latency, migration.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from simulator.errors import InvariantError
from simulator.machine.cpu import CPU

SOFTIRQ = 0
THREAD = 1


class RunQueues:
    """One run queue slot per CPU (`machine.cpu3.rq`)."""

    def __init__(self, env: simpy.Environment, cpus: list[CPU]) -> None:
        self.env = env
        self._slots = {c.id: simpy.PriorityResource(env, capacity=1) for c in cpus}
        self._held: dict[int, simpy.resources.resource.PriorityRequest] = {}
        self.busy_ns = {c.id: 0.0 for c in cpus}
        self._since: dict[int, float] = {}

    def acquire(self, cpu: CPU, priority: int = THREAD) -> Generator[simpy.Event, None, None]:
        """Wait for `cpu` to be free, then run on it."""
        req = self._slots[cpu.id].request(priority=priority)
        yield req
        if cpu.pending:
            raise InvariantError(f"{cpu.scope}: taken over with {cpu.pending} ns of unsynced work")
        self._held[cpu.id] = req
        self._since[cpu.id] = self.env.now

    def release(self, cpu: CPU) -> Generator[simpy.Event, None, None]:
        """Let simulated time catch up with this context's work, then give the CPU up."""
        if cpu.pending:
            yield cpu.sync()
        if cpu.irqs_disabled:
            raise InvariantError(f"{cpu.scope}: gives up the CPU with IRQs disabled")
        req = self._held.pop(cpu.id, None)
        if req is None:
            raise InvariantError(f"{cpu.scope}: released without being held")
        self.busy_ns[cpu.id] += self.env.now - self._since.pop(cpu.id)
        self._slots[cpu.id].release(req)

    def held(self, cpu: CPU) -> bool:
        return cpu.id in self._held
