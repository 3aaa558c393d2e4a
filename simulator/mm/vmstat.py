"""Zone counters with per-CPU deltas (mm/vmstat.c, Linux 5.12).

zone->vm_stat[] is an atomic shared by every CPU; each CPU keeps a small delta and folds it into
the zone counter once it passes the zone's stat_threshold. So NR_FREE_PAGES as read by the
watermark checks lags the truth by up to threshold * CPUs pages, and every fold is an atomic on a
cache line that moves between CPUs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.machine.cpu import CPU
    from simulator.mm.zone import Zone


def __mod_zone_page_state(cpu: CPU, zone: Zone, item: int, delta: int) -> None:
    """Mirrors __mod_zone_page_state(): per-CPU delta, folded past the threshold."""
    d = zone.vm_stat_diff[cpu.id][item] + delta
    # the per-cpu delta lives in the CPU's own pageset line: an L1 hit, part of the work
    if abs(d) > zone.stat_threshold:
        zone.vm_stat[item] += d
        d = 0
        cpu.touch([zone.lines.vm_stat])
        cpu.spend(cpu.costs.atomic)
        zone.stat_folds += 1
    zone.vm_stat_diff[cpu.id][item] = d


def zone_page_state(zone: Zone, item: int) -> int:
    """Mirrors zone_page_state(): the folded counter, without per-CPU deltas, clamped at 0."""
    v = zone.vm_stat[item]
    return v if v > 0 else 0


def zone_page_state_snapshot(zone: Zone, item: int) -> int:
    """Mirrors zone_page_state_snapshot(): folded counter plus every CPU's delta."""
    v = zone.vm_stat[item] + sum(d[item] for d in zone.vm_stat_diff)
    return v if v > 0 else 0
