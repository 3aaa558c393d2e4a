"""The named calibration step: allocator instruction work from the reference perf profile.

The model prices three kinds of cost: documented primitives (spinlocks, atomics, calls:
hardware/*.yaml), cache lines (the cache model) and the instruction work of each kernel function.
That last kind has no public per-function measurement except the baseline perf profile of the
reference XDP-redirect run (hardware/calibration/*.yaml), taken on Linux 5.11. This step turns the
profile into work terms:

    self_ns(f)  = self_percent(f) / 100 * (1e9 / reference pps)
    work(f)     = self_ns(f) - stalls(f) - (the profiled kernel's IRQ toggle, if f holds one)

where stalls(f) is what the model's own cache charges f per packet when it replays the profiled
run (the `replayed:` section, written by `python -m simulator.validation --calibrate`; a
profiled self time already contains the misses the profiled run took, so they must not be
priced twice). Two functions then fix the two unknowns of the profiled kernel's fast path, the
work per C-level memory operation and the in-context cost of a push+popf IRQ toggle:

    rmqueue:          self - stalls = toggle + (per_page + per_call + statistics ops) * op
    free_unref_page:  self - stalls = toggle + free_unref_page ops * op

(the operation counts are read from the 5.11 source, hardware/calibration/*.yaml `ops:`). Code
the profile does not name (__inc_numa_state, put_page's layers, 5.14's additions) is priced per
operation at that rate. A >= 5.12 toggle (a conditional sti instead of popf) costs the popf
toggle times the ratio of the two tight-loop figures in the hardware file. CONFIG_DEBUG_LIST's
checks cost their profiled self time divided by the checks per packet counted in the profiled
path. Work scales by clock ratio to the simulated host. `pagesim calibrate HW.yaml` prints every
step. page_bench's 199 cycles per page is not an input here; it checks the result.

The XDP-redirect network path has its own calibration file beside the profile
(hardware/calibration/xdp-redirect-outside.yaml): documented inputs and the one fitted parameter,
turned into the network path's costs (simulator/net/costs.py) by net_costs().

This is the only module that reads and writes the calibration files. A Calibration holds the
files of one hardware file, read once; a scenario derives its costs from it when it is loaded
(simulator/scenario.py), and the model gets only the derived tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from simulator.costs import Costs
from simulator.errors import ConfigError
from simulator.hardware import Hardware, load_hardware
from simulator.kernels import KernelConfig
from simulator.net.costs import NetCosts
from simulator.units import parse_ghz
from simulator.yamlio import read_yaml_mapping, validate

GHz = Annotated[float, BeforeValidator(parse_ghz)]

# The page allocator's own functions in the reference perf profile (KF §1: allocation side
# 9.85 %, free side 5.91 %).
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
LIST_CHECKS = ("__list_add_valid", "__list_del_entry_valid")
PROFILED = (*ALLOCATOR_FUNCTIONS, *LIST_CHECKS)
REPLAYED_MARK = "replayed:"
OUTSIDE_FILE = "xdp-redirect-outside.yaml"
FITTED_MARK = "fitted:"
RECALIBRATE = "python -m simulator.validation --calibrate"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reference(_Strict):
    host: str
    clock: GHz
    packets_per_second: float = Field(gt=0)
    kernel: str = Field(description="the profiled kernel's version (its IRQ toggle is subtracted)")


class RmqueueOps(_Strict):
    per_page: float = Field(ge=0)
    per_call: float = Field(ge=0)
    statistics: float = Field(ge=0)


class Ops(_Strict):
    rmqueue: RmqueueOps
    free_unref_page: float = Field(ge=0)
    inc_numa_state: float = Field(ge=0, alias="__inc_numa_state")
    count_numa_events: float = Field(ge=0)
    pcp_free_factor: float = Field(ge=0)
    reclaim_active_test: float = Field(ge=0)
    put_page: float = Field(ge=0)
    page_frag_free: float = Field(ge=0)


class CheckCounts(_Strict):
    receive_path: float = Field(ge=0)
    napi: float = Field(ge=0)
    allocator: float = Field(ge=0)

    @property
    def total(self) -> float:
        return self.receive_path + self.napi + self.allocator


class Replayed(_Strict):
    """What the replay of the profiled run measured (written by the calibration step)."""

    stalls_ns_per_packet: dict[str, float] = Field(default_factory=dict)  # data-side line stalls
    frontend_ns_per_packet: dict[str, float] = Field(default_factory=dict)  # instruction-side stalls
    list_ops_per_packet: dict[str, float] = Field(default_factory=dict)
    record: dict[str, Any] = Field(default_factory=dict)


class CalibrationInput(_Strict):
    reference: Reference
    self_percent: dict[str, float]
    ops: Ops
    list_checks_per_packet: dict[str, CheckCounts]
    replayed: Replayed | None = None


# The network path's file (hardware/calibration/xdp-redirect-outside.yaml) ----------------------


class PoolBench(_Strict):
    """bench_page_pool_simple figures, cycles(tsc) per page on the reference host."""

    fast_path: float = Field(gt=0)
    ptr_ring: float = Field(gt=0)
    slow: float = Field(gt=0)


class NetInputs(_Strict):
    profile_self_percent: dict[str, float]
    page_pool_bench_cycles: PoolBench
    fast_path_alloc_share: float = Field(gt=0, lt=1)


class Fitted(_Strict):
    outside_ns_per_packet: float = Field(gt=0)
    host: str
    clock_ghz: float = Field(gt=0)
    record: dict[str, Any] = Field(default_factory=dict)


class OutsideFile(_Strict):
    inputs: NetInputs
    fitted: Fitted | None = None


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
    absent = [f for f in LIST_CHECKS if f not in cal.list_checks_per_packet]
    if absent:
        raise ConfigError.one(str(path), "list_checks_per_packet", f"missing counts for {absent}")
    zero = [f for f in LIST_CHECKS if cal.list_checks_per_packet[f].total <= 0]
    if zero:
        raise ConfigError.one(str(path), "list_checks_per_packet", f"no check counted for {zero}")
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


def outside_path(hw: Hardware) -> Path:
    """hardware/calibration/xdp-redirect-outside.yaml: next to the allocator's calibration."""
    return hw.calibration_path().parent / OUTSIDE_FILE


def load_outside_file(path: Path) -> OutsideFile:
    return validate(OutsideFile, read_yaml_mapping(path), str(path))


def _replace_section(path: Path, mark: str, section: dict[str, Any]) -> None:
    """Replace the section of a calibration file that starts at the line `mark` (and runs to
    the end) with `section`, keeping the hand-written inputs (and their comments) above it."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    cut = next((i for i, ln in enumerate(lines) if ln.startswith(mark)), len(lines))
    head = "".join(lines[:cut])
    if not head.endswith("\n"):
        head += "\n"
    body = yaml.safe_dump(section, sort_keys=False, width=100)
    path.write_text(head + body, encoding="utf-8")


def write_fitted(path: Path, fitted: Fitted) -> None:
    """Replace the `fitted:` section of the outside file (the calibration step's fit)."""
    _replace_section(path, FITTED_MARK, {"fitted": fitted.model_dump(mode="json")})


def write_replayed(path: Path, replayed: Replayed) -> None:
    """Replace the `replayed:` section of the allocator's calibration file (the replay of the
    profiled run, simulator/replay.py)."""
    doc = replayed.model_dump(mode="json")
    for key in ("stalls_ns_per_packet", "frontend_ns_per_packet"):
        doc[key] = {k: round(v, 6) for k, v in doc[key].items()}
    _replace_section(path, REPLAYED_MARK, {"replayed": doc})


@dataclass(frozen=True)
class Calibration:
    """The calibration files behind one hardware file, each read and validated the first time it
    is asked for, then kept: the allocator's profile, the hardware file of the host it was taken
    on, and the network path's file. A scenario holds one (its grid points read no file again)
    and reads only the files its workload needs, in the order it needs them."""

    hw: Hardware

    @cached_property
    def profile(self) -> CalibrationInput:
        """The allocator's calibration: the reference perf profile and what the replay measured."""
        return load_calibration(self.hw.calibration_path())

    @cached_property
    def reference(self) -> Hardware:
        """The hardware of the host the profile was taken on (`hw` itself when it is that host)."""
        if Path(self.hw.path).stem == self.profile.reference.host:
            return self.hw
        return reference_hardware(self.hw.calibration_path(), self.profile)

    @cached_property
    def network(self) -> OutsideFile:
        """The XDP-redirect network path's inputs and fitted outside cost."""
        return load_outside_file(outside_path(self.hw))


def derive(
    hw: Hardware,
    cal: CalibrationInput | None = None,
    toggle: str = "in_context",
    reference: Hardware | None = None,
) -> tuple[Costs, list[Step]]:
    """Costs for `hw` (every kernel's terms; Costs.for_kernel picks one) and the derivation
    steps that produced them, from the calibration `cal` and the reference host's hardware
    (a Calibration's profile and reference; read from the files when not given, and `cal` also
    replaces the file for what-if variants). toggle="tight_loop_sti" is the derivation pagesim
    used before it modelled the popf: every kernel's toggle at the hardware file's >= 5.12
    tight-loop figure, subtracted from the 5.11 self times (the validation report's comparison)."""
    cal_path = hw.calibration_path()
    cal = cal or load_calibration(cal_path)
    ref_hw = reference
    if ref_hw is None:
        ref_hw = hw if Path(hw.path).stem == cal.reference.host else reference_hardware(cal_path, cal)
    per_packet = 1e9 / cal.reference.packets_per_second
    self_ns = {f: cal.self_percent[f] / 100.0 * per_packet for f in PROFILED}
    stalls = cal.replayed.stalls_ns_per_packet if cal.replayed else {}
    fetch = cal.replayed.frontend_ns_per_packet if cal.replayed else {}
    work_ns = {f: self_ns[f] - stalls.get(f, 0.0) - fetch.get(f, 0.0) for f in ALLOCATOR_FUNCTIONS}
    scale = cal.reference.clock / hw.cpu.clock
    o = cal.ops
    rq_ops = o.rmqueue.per_page + o.rmqueue.per_call + o.rmqueue.statistics
    op, toggle_ns, sti_share, fup_ops = _fast_path(hw, cal, ref_hw, work_ns, toggle)
    k = hw.kernel_costs
    ref_call = ref_hw.ns(ref_hw.kernel_costs.call)
    checks = cal.list_checks_per_packet
    add_n, del_n = checks["__list_add_valid"].total, checks["__list_del_entry_valid"].total
    inc = o.rmqueue.statistics + 2 * o.inc_numa_state
    ref: dict[str, tuple[float, str]] = {
        "op": (
            op,
            f"(work(rmqueue) - work(free_unref_page)) / ({rq_ops:g} - {o.free_unref_page:g} ops)",
        ),
        "irq_popf": (toggle_ns, f"work(free_unref_page) - {o.free_unref_page:g} op"),
        "irq_sti": (
            toggle_ns * sti_share,
            f"irq_popf * {k.local_irq_save_restore.value:g}/{k.local_irq_save_restore_popf.value:g}"
            " (tight-loop save+restore, sti / popf)",
        ),
        "alloc_pages_nodemask": (work_ns["__alloc_pages_nodemask"], "work(__alloc_pages_nodemask)"),
        "get_page_from_freelist": (work_ns["get_page_from_freelist"], "work(get_page_from_freelist)"),
        "rmqueue_call": (o.rmqueue.per_call * op, f"{o.rmqueue.per_call:g} op"),
        "rmqueue_page": (o.rmqueue.per_page * op, f"{o.rmqueue.per_page:g} op"),
        "statistics_inc": (
            inc * op,
            f"({o.rmqueue.statistics:g} + 2 x {o.inc_numa_state:g}) op + 2 calls of __inc_numa_state",
        ),
        "statistics_inc_remote": (
            (inc + o.inc_numa_state) * op,
            f"({o.rmqueue.statistics:g} + 3 x {o.inc_numa_state:g}) op + 3 calls",
        ),
        "statistics_count": (
            (o.rmqueue.statistics - 3 + o.count_numa_events) * op,
            f"({o.rmqueue.statistics:g} - 3 node loads + {o.count_numa_events:g}) op",
        ),
        "statistics_count_remote": (
            (o.rmqueue.statistics + o.count_numa_events) * op,
            f"({o.rmqueue.statistics:g} + {o.count_numa_events:g}) op (a third counter)",
        ),
        "prep_new_page": (work_ns["prep_new_page"], "work(prep_new_page)"),
        "free_unref_page": (fup_ops * op, f"{o.free_unref_page:g} op"),
        "free_unref_page_prepare": (work_ns["free_unref_page_prepare"], "work(free_unref_page_prepare)"),
        "free_pcp_prepare": (work_ns["free_pcp_prepare"], "work(free_pcp_prepare)"),
        "free_unref_page_commit": (work_ns["free_unref_page_commit"], "work(free_unref_page_commit)"),
        "reclaim_active_test": (o.reclaim_active_test * op, f"{o.reclaim_active_test:g} op (5.14)"),
        "pcp_free_factor": (o.pcp_free_factor * op, f"{o.pcp_free_factor:g} op (5.14)"),
        "put_page": (o.put_page * op, f"{o.put_page:g} op + calls of __put_page, mem_cgroup_uncharge"),
        "page_frag_free": (o.page_frag_free * op, f"{o.page_frag_free:g} op"),
        "list_add_check": (
            self_ns["__list_add_valid"] / add_n,
            f"self(__list_add_valid) / {add_n:g} checks per packet",
        ),
        "list_del_check": (
            self_ns["__list_del_entry_valid"] / del_n,
            f"self(__list_del_entry_valid) / {del_n:g} checks per packet",
        ),
        "list_line": (2 * op, "2 op (a load and a store)"),
    }
    negative = [name for name, (v, _) in ref.items() if v < 0]
    if negative:
        raise ConfigError.one(
            str(cal_path),
            "self_percent",
            f"the profile leaves no room for the model's own terms in {negative}",
        )
    # real calls inside a term are documented primitives: priced at each host's own call cost
    calls = {"statistics_inc": 2, "statistics_inc_remote": 3, "put_page": 2}
    call = hw.ns(k.call)
    host = {name: v * scale + calls.get(name, 0) * call for name, (v, _) in ref.items()}
    costs = Costs(
        irq_disable_enable=hw.ns(k.local_irq_disable_enable),
        spin_lock_unlock=hw.ns(k.spin_lock_unlock),
        atomic=hw.ns(k.atomic_rmw),
        call=call,
        indirect_call=hw.ns(k.indirect_call),
        **host,
    )
    steps = [
        Step(name, formula, v + calls.get(name, 0) * ref_call, host[name])
        for name, (v, formula) in ref.items()
    ]
    return costs.for_kernel(KernelConfig()), steps


def _fast_path(
    hw: Hardware, cal: CalibrationInput, ref_hw: Hardware, work_ns: dict[str, float], toggle: str
) -> tuple[float, float, float, float]:
    """The two equations of the profiled kernel's fast path (module docstring), solved: the work
    per operation, the in-context popf toggle, the >= 5.12 toggle's share of it, and
    free_unref_page's operations (all as derive()'s `toggle` asks)."""
    cal_path = hw.calibration_path()
    o = cal.ops
    rq_ops = o.rmqueue.per_page + o.rmqueue.per_call + o.rmqueue.statistics
    if rq_ops <= o.free_unref_page:
        raise ConfigError.one(
            str(cal_path), "ops", "rmqueue must count more operations than free_unref_page (two equations)"
        )
    op = (work_ns["rmqueue"] - work_ns["free_unref_page"]) / (rq_ops - o.free_unref_page)
    toggle_ns = work_ns["free_unref_page"] - o.free_unref_page * op
    if cal.reference.kernel != "5.11":
        raise ConfigError.one(
            str(cal_path), "reference.kernel", "the derivation is written for a 5.11 (popf) profile"
        )
    k = hw.kernel_costs
    sti_share = hw.ns(k.local_irq_save_restore) / hw.ns(k.local_irq_save_restore_popf)
    fup_ops = o.free_unref_page
    if toggle == "tight_loop_sti":
        toggle_ns = ref_hw.ns(ref_hw.kernel_costs.local_irq_save_restore)
        op = (work_ns["rmqueue"] - toggle_ns) / rq_ops
        sti_share = 1.0
        fup_ops = (work_ns["free_unref_page"] - toggle_ns) / op
    return op, toggle_ns, sti_share, fup_ops


def net_costs(cal: Calibration, outside_override: float | None = None) -> NetCosts:
    """The network path's costs on `cal.hw` (documented primitives come from the hardware file,
    through the allocator's Costs):
    - documented network-path work, from the `inputs:` of the network file, each with its source:
      DMA map/unmap from the reference perf profile, page_pool's fast path from
      bench_page_pool_simple;
    - everything else a packet costs outside the page allocator and page_pool (mlx5 CQE handling,
      the XDP program, devmap, veth, building and freeing the SKB...) as ONE number per packet,
      the outside cost, fitted by `python -m simulator.validation --calibrate` so that the `single`
      strategy reproduces the reference baseline (3,677,958 pps): the file's `fitted:` section.
    Work measured on the reference host scales to another host by clock ratio, as the allocator's
    does. `outside_override` (ns per packet on `hw`) replaces the fitted outside cost; the
    calibration step itself uses it."""
    hw = cal.hw
    path = outside_path(hw)
    f = cal.network
    ref = cal.profile.reference
    ref_ns_per_packet = 1e9 / ref.packets_per_second
    scale = ref.clock / hw.cpu.clock  # instruction work measured at the reference clock
    pct = f.inputs.profile_self_percent
    for name in ("dma_map_page_attrs", "dma_unmap_page_attrs"):
        if name not in pct:
            raise ConfigError.one(
                str(path), f"inputs.profile_self_percent.{name}", "required entry is missing"
            )
    # bench cycles are cycles(tsc) of the reference host: ns there, then clock-scaled
    ref_tsc = cal.reference.cpu.tsc
    fast = f.inputs.page_pool_bench_cycles.fast_path / ref_tsc * scale
    share = f.inputs.fast_path_alloc_share
    if outside_override is not None:
        outside, source = outside_override, "scenario override (xdp_redirect.outside_ns)"
    else:
        if f.fitted is None:
            raise ConfigError.one(
                str(path), "fitted", f"the outside cost has not been fitted yet: run `{RECALIBRATE}`"
            )
        outside = f.fitted.outside_ns_per_packet * f.fitted.clock_ghz / hw.cpu.clock
        source = f"fitted on {f.fitted.host} ({path.name})"
    return NetCosts(
        outside=outside,
        dma_map=pct["dma_map_page_attrs"] / 100.0 * ref_ns_per_packet * scale,
        dma_unmap=pct["dma_unmap_page_attrs"] / 100.0 * ref_ns_per_packet * scale,
        pp_alloc=fast * share,
        pp_recycle=fast * (1.0 - share),
        outside_source=source,
    )


def format_derivation(hw: Hardware, steps: list[Step], cal: CalibrationInput | None = None) -> str:
    """The derivation as a text table (CLI output); `cal`: the calibration it was derived from
    (read from the file when not given)."""
    cal = cal or load_calibration(hw.calibration_path())
    per_packet = 1e9 / cal.reference.packets_per_second
    replayed = (
        "stalls and list operations from the replay of "
        + str(cal.replayed.record.get("date", "an earlier run"))
        if cal.replayed
        else "no replay recorded: stalls taken as 0 (run `python -m simulator.validation --calibrate`)"
    )
    lines = [
        f"calibration: {hw.calibration_path()}",
        f"reference: {cal.reference.host} at {cal.reference.clock:g} GHz, Linux {cal.reference.kernel}, "
        f"{cal.reference.packets_per_second:,.0f} pps = {per_packet:.2f} ns per packet",
        f"host: {hw.name} at {hw.cpu.clock:g} GHz (work scales by {cal.reference.clock / hw.cpu.clock:.4f})",
        replayed,
        "",
        f"{'term':<24} {'reference ns':>12} {'host ns':>9} {'host cycles':>11}  derivation",
    ]
    for s in steps:
        cycles = s.host_ns * hw.cpu.clock
        lines.append(f"{s.term:<24} {s.reference_ns:>12.3f} {s.host_ns:>9.3f} {cycles:>11.1f}  {s.formula}")
    return "\n".join(lines)
