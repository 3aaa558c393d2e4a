"""Kernel versions as data: which mechanisms each modelled kernel runs on the order-0 paths.

A version is a preset (simulator/kernels.yaml, validated here): the IRQ toggle its
local_irq_restore() compiles to, whether the bulk allocator exists, where the bulk allocator does
its statistics, how the NUMA counters are kept, how the pcp lists are protected, sized and
drained. Presets change mechanisms, never fitted numbers: every cost a mechanism charges comes
from the hardware file or the calibration step, whichever kernel runs.

KernelConfig is what a booted machine runs: a version's mechanisms plus the build and boot
options a scenario may set (CONFIG_DEBUG_LIST, THP, the bulk allocator's prep_new_page placement
and its empty-loop fallback rule).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.yamlio import read_yaml_mapping, validate

PRESETS_FILE = Path(__file__).resolve().parent / "kernels.yaml"
DEFAULT_VERSION = "5.12"

IrqRestore = Literal["popf", "sti"]
BulkStatistics = Literal["per_call", "per_page", "after_irq"]
NumaStatistics = Literal["inc_numa_state", "count_numa_events"]
PcpLock = Literal["irq", "local_lock"]
PcpHigh = Literal["batch", "zone_highsize"]
PcpFree = Literal["batch", "nr_pcp_free"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mechanisms(_Strict):
    """What a kernel does differently on the modelled paths (the fields of KernelConfig a version
    sets)."""

    bulk_api: bool  # __alloc_pages_bulk exists (list and array forms)
    irq_restore: IrqRestore  # arch_local_irq_restore(): push+popf (<= 5.11) or a conditional sti
    bulk_statistics: BulkStatistics  # PGALLOC + zone_statistics in the bulk allocator
    numa_statistics: NumaStatistics  # zone_statistics(): __inc_numa_state or __count_numa_events
    pcp_lock: PcpLock  # what protects the pcp lists: local_irq_save, or local_lock_irqsave
    pcp_high: PcpHigh  # pcp->high: 6 * batch, or zone_highsize()
    pcp_free: PcpFree  # pages drained at pcp->high: pcp->batch, or nr_pcp_free()


class Commit(_Strict):
    title: str
    id: str | None = None  # abbreviated commit id, where a source in ../shared/reference names it
    note: str = ""


class Preset(_Strict):
    description: str
    mechanisms: Mechanisms
    commits: list[Commit] = Field(default_factory=list)


class PresetsFile(_Strict):
    versions: dict[str, Preset]


@cache
def presets() -> dict[str, Preset]:
    """Every modelled kernel version, from simulator/kernels.yaml."""
    doc = read_yaml_mapping(PRESETS_FILE)
    return dict(validate(PresetsFile, doc, str(PRESETS_FILE)).versions)


def versions() -> tuple[str, ...]:
    return tuple(presets())


@dataclass(frozen=True)
class KernelConfig:
    """The kernel a machine boots: a version's mechanisms and the options a scenario sets.

    KernelConfig() is 5.12 (the shipped scenarios' default) with the reference kernel's options;
    for_version() builds any other."""

    version: str = DEFAULT_VERSION
    # build and boot options
    debug_list: bool = True  # CONFIG_DEBUG_LIST: the reference kernel had it (its profile shows it)
    prep_new_page: Literal["irq_off", "second_pass"] = "irq_off"  # bulk: v6/merged vs v3
    thp: bool = True  # CONFIG_TRANSPARENT_HUGEPAGE: khugepaged raises min_free_kbytes
    # When the bulk allocator's pcp loop gets no page: 5.13 falls back to the single-page path
    # only if no array entry is populated ("nr_populated"); the later fix for the nfsd hang
    # (bugzilla 216007) falls back whenever this call allocated nothing ("nr_account").
    bulk_fallback: Literal["nr_populated", "nr_account"] = "nr_populated"
    percpu_pagelist_fraction: int = 0  # vm.percpu_pagelist_fraction (0: the boot-time pcp sizes)
    # mechanisms (the version's preset; see Mechanisms)
    bulk_api: bool = True
    irq_restore: IrqRestore = "sti"
    bulk_statistics: BulkStatistics = "per_page"
    numa_statistics: NumaStatistics = "inc_numa_state"
    pcp_lock: PcpLock = "irq"
    pcp_high: PcpHigh = "batch"
    pcp_free: PcpFree = "batch"

    @classmethod
    def for_version(cls, version: str = DEFAULT_VERSION, **options: object) -> KernelConfig:
        """The preset `version` with `options` (build/boot options, or mechanism overrides for
        what-if variants) applied."""
        table = presets()
        if version not in table:
            raise ValueError(f"unknown kernel version {version!r}; expected one of {list(table)}")
        return cls(version=version, **{**table[version].mechanisms.model_dump(), **options})  # type: ignore[arg-type]

    def replace(self, **changes: object) -> KernelConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def mechanisms(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in Mechanisms.model_fields}

    def is_preset(self) -> bool:
        """True if the mechanisms are exactly the version's (no what-if override)."""
        return self.mechanisms() == presets()[self.version].mechanisms.model_dump()
