"""The cost table the kernel paths charge: every term in ns on the simulated host.

Where each number comes from is simulator/calibration.py's business (documented primitives from
the hardware file, instruction work from the reference perf profile); the model only reads the
table it is given (a CPU's `costs`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.kernels import KernelConfig


@dataclass(frozen=True)
class Costs:
    """Every cost the allocator model charges, in ns on the simulated host, for one kernel.

    calibration.derive() gives the table for every kernel (the kernel-specific fields hold 5.12's
    values); for_kernel() picks a kernel's IRQ toggle, statistics and additions."""

    # documented primitives (hardware file)
    irq_disable_enable: float
    spin_lock_unlock: float
    atomic: float
    call: float
    indirect_call: float
    # derived from the reference profile (simulator/calibration.py)
    op: float  # work per C-level memory operation of the allocator's fast path
    irq_popf: float  # local_irq_save + a push+popf local_irq_restore (<= 5.11), in context
    irq_sti: float  # local_irq_save + a conditional-sti local_irq_restore (>= 5.12), in context
    alloc_pages_nodemask: float  # per call: __alloc_pages_nodemask, prepare_alloc_pages
    get_page_from_freelist: float  # per call: zonelist walk, zone_watermark_fast
    rmqueue_call: float  # per call: rmqueue()/rmqueue_pcplist() bookkeeping besides statistics
    rmqueue_page: float  # per page: __rmqueue_pcplist's list_del and pcp->count--
    statistics_inc: float  # one __count_zid_vm_events + zone_statistics, 5.11-5.13, local zone
    statistics_inc_remote: float  # the same for a zone of another node (three __inc_numa_state)
    statistics_count: float  # 5.14: counters without threshold or calls, local zone
    statistics_count_remote: float  # 5.14, a zone of another node
    prep_new_page: float  # per page
    free_unref_page: float  # per call, besides its IRQ toggle
    free_unref_page_prepare: float  # per page
    free_pcp_prepare: float  # per page
    free_unref_page_commit: float  # per page: list_add, count++, the high check (5.11-5.13)
    reclaim_active_test: float  # 5.14: nr_pcp_high()'s test_bit(ZONE_RECLAIM_ACTIVE) per free
    pcp_free_factor: float  # 5.14: rmqueue_pcplist's free_factor >>= 1 per allocation
    put_page: float  # put_page's layers before free_unref_page (besides the atomic and calls)
    page_frag_free: float  # page_frag_free's work before free_unref_page (besides the atomic)
    list_add_check: float  # __list_add_valid, per list_add/list_add_tail with CONFIG_DEBUG_LIST=y
    list_del_check: float  # __list_del_entry_valid, per list_del with CONFIG_DEBUG_LIST=y
    list_line: float  # per line a buddy/pcp list operation touches (a load and a store)
    # the kernel's choices (for_kernel)
    irq_save_restore: float = 0.0  # the toggle the kernel runs
    statistics: float = 0.0  # the kernel's statistics per call, local zone
    statistics_remote: float = 0.0  # ... and for a zone of another node
    pcp_alloc_extra: float = 0.0  # the kernel's per-allocation additions to rmqueue_pcplist
    pcp_free_extra: float = 0.0  # the kernel's per-free additions to free_unref_page_commit

    def for_kernel(self, k: KernelConfig) -> Costs:
        """The costs `k` runs: its IRQ toggle, its statistics, its additions."""
        five14 = k.numa_statistics == "count_numa_events"
        return dataclasses.replace(
            self,
            irq_save_restore=self.irq_popf if k.irq_restore == "popf" else self.irq_sti,
            statistics=self.statistics_count if five14 else self.statistics_inc,
            statistics_remote=self.statistics_count_remote if five14 else self.statistics_inc_remote,
            pcp_alloc_extra=self.pcp_free_factor if k.pcp_free == "nr_pcp_free" else 0.0,
            pcp_free_extra=self.reclaim_active_test if k.pcp_free == "nr_pcp_free" else 0.0,
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)
