"""The named calibration step: allocator instruction work from the reference perf profile.

The model prices three kinds of cost: documented primitives (IRQ toggles, spinlocks, atomics,
calls: hardware/*.yaml), cache lines (the cache model) and the instruction work of each kernel
function. That last kind has no public per-function measurement except the baseline perf profile
of the reference XDP-redirect run (hardware/calibration/*.yaml). This step turns the profile into
work terms:

    self_ns(f)  = self_percent(f) / 100 * (1e9 / reference pps)
    work(f)     = self_ns(f) - primitives the model prices separately inside f

then scales work by clock ratio to the simulated host. `pagesim calibrate HW.yaml` prints every
step. page_bench's 199 cycles per page is not an input here; it checks the result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from simulator.errors import ConfigError
from simulator.hardware import Hardware, load_hardware
from simulator.units import parse_ghz
from simulator.yamlio import read_yaml_mapping, validate

GHz = Annotated[float, BeforeValidator(parse_ghz)]

# The page allocator's own functions in the reference perf profile (KF §1: allocation side
# 9.85 %, free side 5.91 %), and with them the CONFIG_DEBUG_LIST checks the allocator's list
# operations run (profiled as their own functions, shared with the rest of the kernel).
ALLOCATOR_FUNCTIONS = (
    "__alloc_pages_nodemask",
    "get_page_from_freelist",
    "rmqueue",
    "prep_new_page",
    "free_unref_page",
    "free_unref_page_prepare",
    "free_unref_page_commit",
    "free_pcp_prepare",
)
PROFILED = (*ALLOCATOR_FUNCTIONS, "__list_add_valid", "__list_del_entry_valid")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reference(_Strict):
    host: str
    clock: GHz
    packets_per_second: float = Field(gt=0)


class Split(_Strict):
    list_add_checks_per_packet: float = Field(gt=0)
    rmqueue_per_page_ops: float = Field(ge=0)
    rmqueue_per_call_ops: float = Field(ge=0)


class CalibrationInput(_Strict):
    reference: Reference
    self_percent: dict[str, float]
    split: Split


@dataclass(frozen=True)
class Costs:
    """Every cost the allocator model charges, in ns on the simulated host."""

    # documented primitives (hardware file)
    irq_save_restore: float
    irq_disable_enable: float
    spin_lock_unlock: float
    atomic: float
    call: float
    indirect_call: float
    # instruction work derived from the reference profile (this module)
    alloc_pages_nodemask: float  # per call: __alloc_pages_nodemask, prepare_alloc_pages
    get_page_from_freelist: float  # per call: zonelist walk, zone_watermark_fast
    rmqueue_call: float  # per call: rmqueue()/rmqueue_pcplist() bookkeeping, statistics
    rmqueue_page: float  # per page: __rmqueue_pcplist's list_del and pcp->count--
    prep_new_page: float  # per page
    free_unref_page: float  # per call, without its IRQ toggle
    free_unref_page_prepare: float  # per page
    free_pcp_prepare: float  # per page
    free_unref_page_commit: float  # per page: list_add, count++, the high check
    list_debug_check: float  # per list_add/list_del with CONFIG_DEBUG_LIST=y
    list_line: float  # per line a buddy/pcp list operation touches, under zone->lock

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Step:
    """One row of the derivation, for `pagesim calibrate` and docs/model.md."""

    term: str
    formula: str
    reference_ns: float
    host_ns: float


def load_calibration(path: Path) -> CalibrationInput:
    doc = read_yaml_mapping(path)
    cal = validate(CalibrationInput, doc, str(path))
    missing = [f for f in PROFILED if f not in cal.self_percent]
    if missing:
        raise ConfigError.one(str(path), "self_percent", f"missing profiled functions {missing}")
    bad = {f: v for f, v in cal.self_percent.items() if not 0 <= v < 100}
    if bad:
        raise ConfigError.one(str(path), "self_percent", "percentages must be in [0, 100)", bad)
    return cal


def reference_hardware(cal_path: Path, cal: CalibrationInput) -> Hardware:
    """The hardware file of the host the profile was taken on (hardware/<host>.yaml)."""
    host = cal.reference.host
    path = cal_path.parent.parent / f"{host}.yaml"
    if not host or "/" in host or "\0" in host or not path.is_file():
        raise ConfigError.one(
            str(cal_path),
            "reference.host",
            f"expected the name of a hardware file beside {cal_path.parent.name}/ ({path})",
            host,
        )
    return load_hardware(path)


def derive(hw: Hardware) -> tuple[Costs, list[Step]]:
    """Costs for `hw` and the derivation steps that produced them."""
    cal_path = hw.calibration_path()
    cal = load_calibration(cal_path)
    ref_hw = hw if Path(hw.path).stem == cal.reference.host else reference_hardware(cal_path, cal)
    per_packet = 1e9 / cal.reference.packets_per_second
    self_ns = {f: cal.self_percent[f] / 100.0 * per_packet for f in PROFILED}
    ref_irq = ref_hw.ns(ref_hw.kernel_costs.local_irq_save_restore)
    scale = cal.reference.clock / hw.cpu.clock
    sp = cal.split
    ops = sp.rmqueue_per_page_ops + sp.rmqueue_per_call_ops
    rmq = self_ns["rmqueue"] - ref_irq
    fup = self_ns["free_unref_page"] - ref_irq
    # __rmqueue_pcplist's list_del touches three lines (the page, the next page, the list
    # head); buddy and pcp list work under zone->lock is priced per line at that rate.
    rmq_page = rmq * sp.rmqueue_per_page_ops / ops if ops else 0.0
    ref = {
        "alloc_pages_nodemask": (self_ns["__alloc_pages_nodemask"], "self(__alloc_pages_nodemask)"),
        "get_page_from_freelist": (
            self_ns["get_page_from_freelist"],
            "self(get_page_from_freelist)",
        ),
        "rmqueue_call": (
            rmq * sp.rmqueue_per_call_ops / ops if ops else 0.0,
            f"(self(rmqueue) - irq_save_restore) * {sp.rmqueue_per_call_ops:g}/{ops:g}",
        ),
        "rmqueue_page": (
            rmq_page,
            f"(self(rmqueue) - irq_save_restore) * {sp.rmqueue_per_page_ops:g}/{ops:g}",
        ),
        "prep_new_page": (self_ns["prep_new_page"], "self(prep_new_page)"),
        "free_unref_page": (fup, "self(free_unref_page) - irq_save_restore"),
        "free_unref_page_prepare": (
            self_ns["free_unref_page_prepare"],
            "self(free_unref_page_prepare)",
        ),
        "free_pcp_prepare": (self_ns["free_pcp_prepare"], "self(free_pcp_prepare)"),
        "free_unref_page_commit": (
            self_ns["free_unref_page_commit"],
            "self(free_unref_page_commit)",
        ),
        "list_debug_check": (
            self_ns["__list_add_valid"] / sp.list_add_checks_per_packet,
            f"self(__list_add_valid) / {sp.list_add_checks_per_packet:g} per packet",
        ),
        "list_line": (rmq_page / 3.0, "rmqueue_page / 3 lines per list_del"),
    }
    negative = [k for k, (v, _) in ref.items() if v < 0]
    if negative:
        raise ConfigError.one(
            str(cal_path),
            "self_percent",
            f"profiled self time is smaller than the primitives priced inside {negative}",
        )
    k = hw.kernel_costs
    costs = Costs(
        irq_save_restore=hw.ns(k.local_irq_save_restore),
        irq_disable_enable=hw.ns(k.local_irq_disable_enable),
        spin_lock_unlock=hw.ns(k.spin_lock_unlock),
        atomic=hw.ns(k.atomic_rmw),
        call=hw.ns(k.call),
        indirect_call=hw.ns(k.indirect_call),
        **{name: v * scale for name, (v, _) in ref.items()},
    )
    steps = [Step(name, formula, v, v * scale) for name, (v, formula) in ref.items()]
    return costs, steps


def format_derivation(hw: Hardware, steps: list[Step]) -> str:
    """The derivation as a text table (CLI output)."""
    cal = load_calibration(hw.calibration_path())
    per_packet = 1e9 / cal.reference.packets_per_second
    lines = [
        f"calibration: {hw.calibration_path()}",
        f"reference: {cal.reference.host} at {cal.reference.clock:g} GHz, "
        f"{cal.reference.packets_per_second:,.0f} pps = {per_packet:.2f} ns per packet",
        f"host: {hw.name} at {hw.cpu.clock:g} GHz (work scales by {cal.reference.clock / hw.cpu.clock:.4f})",
        "",
        f"{'term':<24} {'reference ns':>12} {'host ns':>9} {'host cycles':>11}  derivation",
    ]
    for s in steps:
        cycles = s.host_ns * hw.cpu.clock
        lines.append(f"{s.term:<24} {s.reference_ns:>12.3f} {s.host_ns:>9.3f} {cycles:>11.1f}  {s.formula}")
    return "\n".join(lines)
