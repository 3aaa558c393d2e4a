"""What a process's fault, munmap and mmap paths run, as data (simulator/fault_path.yaml: counts
read from the kernel source, and the measured exception and system-call costs), and their price
on one host: FaultCosts, worked out once when a page_fault1 scenario is loaded.

A count is priced like the allocator's own code (simulator/calibration.py): operations at the
work per operation derived from the reference profile, atomics, calls, spin-lock and IRQ pairs at
the hardware file's documented primitives. A CR3 write (a TLB flush) costs half of PTI's measured
round-trip overhead, which is two of them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from simulator.costs import Costs
from simulator.hardware import Hardware
from simulator.mm.fault_costs import FaultCosts
from simulator.yamlio import read_yaml_mapping, validate

FAULT_PATH_FILE = Path(__file__).resolve().parent / "fault_path.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Count(_Strict):
    """What one step runs."""

    ops: float = Field(default=0.0, ge=0)
    atomics: float = Field(default=0.0, ge=0)
    calls: float = Field(default=0.0, ge=0)
    indirect: float = Field(default=0.0, ge=0)
    spin: float = Field(default=0.0, ge=0)
    irq: float = Field(default=0.0, ge=0)
    cr3_writes: float = Field(default=0.0, ge=0)


class Entry(_Strict):
    exception_cycles: float = Field(gt=0)
    iret_cycles: float = Field(gt=0)


class FaultPathFile(_Strict):
    """simulator/fault_path.yaml."""

    fault: Count
    stat_flush: Count
    first_fault: Count
    pte_alloc: Count
    lru_cache_add: Count
    pagevec_drain: Count
    lru_lock_take: Count
    lru_relock_check: Count
    pagevec_lru_add_page: Count
    pagevec_release_page: Count
    lru_add_drain: Count
    mmap: Count
    munmap: Count
    zap_pte_page: Count
    zap_pte: Count
    free_pte_page: Count
    gather_batch: Count
    release_pages_call: Count
    release_page: Count
    release_lru_page: Count
    release_nonlru_page: Count
    uncharge_page: Count
    uncharge_batch: Count
    tlb_flush: Count
    entry: Entry
    syscall_ns: float = Field(gt=0)
    pti_ns: float = Field(ge=0)


@cache
def load_fault_path(path: Path = FAULT_PATH_FILE) -> FaultPathFile:
    return validate(FaultPathFile, read_yaml_mapping(path), str(path))


def fault_costs(f: FaultPathFile, costs: Costs, hw: Hardware, pti: bool, scale: float = 1.0) -> FaultCosts:
    """The fault path's costs on `hw` with the allocator's cost table `costs` (the booted
    kernel's); `pti`: the kernel runs with page-table isolation (Meltdown-affected Intel cores).
    `scale` multiplies every counted step (a prediction's sensitivity to the counts; 1 as counted)."""
    cr3 = f.pti_ns / 2

    def ns(c: Count) -> float:
        return scale * (
            c.ops * costs.op
            + c.atomics * costs.atomic
            + c.calls * costs.call
            + c.indirect * costs.indirect_call
            + c.spin * costs.spin_lock_unlock
            + c.irq * costs.irq_save_restore
            + c.cr3_writes * cr3
        )

    pti_ns = f.pti_ns if pti else 0.0
    return FaultCosts(
        entry=(f.entry.exception_cycles + f.entry.iret_cycles) / hw.cpu.clock + pti_ns,
        syscall=f.syscall_ns + pti_ns,
        fault=ns(f.fault),
        fault_stat_flush=ns(f.stat_flush),
        first_fault=ns(f.first_fault),
        pte_alloc=ns(f.pte_alloc),
        lru_cache_add=ns(f.lru_cache_add),
        pagevec_drain=ns(f.pagevec_drain),
        lru_lock_take=ns(f.lru_lock_take),
        lru_relock_check=ns(f.lru_relock_check),
        pagevec_lru_add_page=ns(f.pagevec_lru_add_page),
        pagevec_release_page=ns(f.pagevec_release_page),
        lru_add_drain=ns(f.lru_add_drain),
        mmap=ns(f.mmap),
        munmap=ns(f.munmap),
        zap_pte_page=ns(f.zap_pte_page),
        zap_pte=ns(f.zap_pte),
        free_pte_page=ns(f.free_pte_page),
        gather_batch=ns(f.gather_batch),
        release_pages_call=ns(f.release_pages_call),
        release_page=ns(f.release_page),
        release_lru_page=ns(f.release_lru_page),
        release_nonlru_page=ns(f.release_nonlru_page),
        uncharge_page=ns(f.uncharge_page),
        uncharge_batch=ns(f.uncharge_batch),
        tlb_flush=ns(f.tlb_flush),
    )
