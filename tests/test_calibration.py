"""The calibration step (simulator/calibration.py) against a hand computation from the profile.

Reference: 3,677,958 pps on a 3.6 GHz E5-1650 v4 running Linux 5.11, so one packet is
1e9 / 3677958 ns; every function's self time is its perf percentage of that. The replay of the
profiled run finds no cache-line stall in the allocator's functions (all lines hot) and a small
front-end stall, taken out of each self time. The operation counts (5.11 source) give two
equations: rmqueue's work is one popf-era
IRQ toggle plus 19 operations, free_unref_page's one toggle plus 1 operation. The profile's
numbers are typed in here, not read from the YAML, so a change to the file shows up; the stalls
the replay charged each function (its generated record) are read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import BROADWELL, PAGE_BENCH_SCENARIO, SKYLAKE, TINY_2NODE, hardware

from simulator.calibration import PROFILED, derive, format_derivation, load_calibration
from simulator.costs import Costs
from simulator.errors import ConfigError
from simulator.hardware import load_hardware
from simulator.kernels import KernelConfig
from simulator.scenario import Overrides, load_scenario

PACKET_NS = 1e9 / 3677958  # 271.89 ns
CALL = 4 / 3.6  # ns: a direct call on the reference host
# what the replay of the profiled run charged each function (data lines and front end): a
# generated record (tests/test_validation.py checks its premises), so read, not typed
_REPLAYED = load_calibration(BROADWELL.parent / "calibration" / "broadwell-xdp-baseline.yaml").replayed
assert _REPLAYED is not None
STALL = {
    f: _REPLAYED.stalls_ns_per_packet.get(f, 0.0) + _REPLAYED.frontend_ns_per_packet.get(f, 0.0)
    for f in _REPLAYED.stalls_ns_per_packet
}


def self_ns(percent: float) -> float:
    return percent / 100 * PACKET_NS


def work(f: str, percent: float) -> float:
    return self_ns(percent) - STALL[f]


# the two equations: rmqueue = T + 19 op, free_unref_page = T + 1 op
OP = (work("rmqueue", 3.24) - work("free_unref_page", 1.11)) / 18
POPF = work("free_unref_page", 1.11) - OP
# Reference-host ns, worked by hand from the profile (before clock scaling).
EXPECTED_REF = {
    "op": OP,
    "irq_popf": POPF,
    "irq_sti": POPF * 10 / 37,
    "alloc_pages_nodemask": work("__alloc_pages_nodemask", 2.82),
    "get_page_from_freelist": work("get_page_from_freelist", 2.89),
    "rmqueue_call": 3 * OP,
    "rmqueue_page": 10 * OP,
    "statistics_inc": 12 * OP + 2 * CALL,  # 6 in rmqueue + 2 x 3 in __inc_numa_state
    "statistics_inc_remote": 15 * OP + 3 * CALL,
    "statistics_count": 12 * OP,  # 5.14: 3 + 9, no calls
    "statistics_count_remote": 15 * OP,
    "prep_new_page": work("prep_new_page", 0.90),
    "free_unref_page": 1 * OP,
    "free_unref_page_prepare": work("free_unref_page_prepare", 1.45),
    "free_pcp_prepare": work("free_pcp_prepare", 0.81),
    "free_unref_page_commit": work("free_unref_page_commit", 2.54),
    "reclaim_active_test": 1 * OP,
    "pcp_free_factor": 2 * OP,
    "put_page": 9 * OP + 2 * CALL,
    "page_frag_free": 4 * OP,
    "list_add_check": self_ns(1.21) / (3 + 1 / 64 + 1 / 16 + 1 / 64 + 1),
    "list_del_check": self_ns(2.35) / (3 + 1 / 64 + 1 / 64 + 1),
    "list_line": 2 * OP,
}
KERNEL_CHOICES = {"irq_save_restore", "statistics", "statistics_remote", "pcp_alloc_extra", "pcp_free_extra"}
PRIMITIVES = {"irq_disable_enable", "spin_lock_unlock", "atomic", "call", "indirect_call"}


def test_hand_computed_numbers():
    # spot-check the arithmetic itself: 0.32 ns per operation, a 9.7-cycle popf-era toggle
    assert pytest.approx(0.3175, rel=1e-3) == OP
    assert pytest.approx(9.69, rel=1e-3) == POPF * 3.6
    assert EXPECTED_REF["list_add_check"] == pytest.approx(0.8036, rel=1e-3)


def test_derive_on_the_reference_host_equals_the_hand_computation():
    costs, steps = derive(hardware(BROADWELL))
    for term, ns in EXPECTED_REF.items():
        assert getattr(costs, term) == pytest.approx(ns, rel=1e-12), term
    # primitives straight from the hardware file (cycles of the 3.6 GHz TSC)
    assert costs.irq_disable_enable == pytest.approx(7 / 3.6)
    assert costs.spin_lock_unlock == pytest.approx(37 / 3.6)
    assert costs.atomic == pytest.approx(17 / 3.6)
    assert costs.call == pytest.approx(CALL)
    assert costs.indirect_call == pytest.approx(30 / 3.6)
    # derive() hands back 5.12's choices
    assert costs.irq_save_restore == costs.irq_sti
    assert costs.statistics == costs.statistics_inc
    # one derivation step per derived term, host == reference on the reference host
    assert [s.term for s in steps] == list(EXPECTED_REF)
    assert all(s.host_ns == pytest.approx(s.reference_ns, rel=1e-12) for s in steps)
    assert set(Costs.__dataclass_fields__) == set(EXPECTED_REF) | KERNEL_CHOICES | PRIMITIVES


def test_each_kernel_picks_its_toggle_statistics_and_additions():
    base, _ = derive(hardware(BROADWELL))
    k511 = base.for_kernel(KernelConfig.for_version("5.11"))
    k513 = base.for_kernel(KernelConfig.for_version("5.13"))
    k514 = base.for_kernel(KernelConfig.for_version("5.14"))
    assert k511.irq_save_restore == base.irq_popf and k513.irq_save_restore == base.irq_sti
    assert k514.irq_save_restore == base.irq_sti  # local_lock_irqsave: the same instructions
    assert k513.statistics == base.statistics_inc and k514.statistics == base.statistics_count
    assert k513.pcp_alloc_extra == 0 and k514.pcp_alloc_extra == base.pcp_free_factor
    assert k513.pcp_free_extra == 0 and k514.pcp_free_extra == base.reclaim_active_test


def test_work_scales_by_clock_ratio_on_another_host():
    sky, _ = derive(hardware(SKYLAKE))
    scale = 3.6 / 2.5
    call = 4 / 2.5  # the host's own call cost
    calls = {"statistics_inc": 2, "statistics_inc_remote": 3, "put_page": 2}
    for term, ns in EXPECTED_REF.items():
        n = calls.get(term, 0)
        assert getattr(sky, term) == pytest.approx((ns - n * CALL) * scale + n * call, rel=1e-12), term
    assert sky.spin_lock_unlock == pytest.approx(37 / 2.5)


def test_tiny_test_machine_runs_at_the_reference_clock():
    tiny, _ = derive(hardware(TINY_2NODE))
    ref, _ = derive(hardware(BROADWELL))
    assert tiny == ref


def test_derivation_table_names_every_term():
    hw = hardware(BROADWELL)
    _, steps = derive(hw)
    text = format_derivation(hw, steps)
    assert "3,677,958 pps = 271.89 ns per packet" in text
    for s in steps:
        assert s.term in text


# ---- bad calibration input ---------------------------------------------------------------------


def _reference_copy(tmp_path: Path, edit) -> Path:
    """A copy of the reference host's hardware file (so it is its own reference) whose calibration
    file is the shipped one edited by `edit`."""
    hw_dir = tmp_path / "hardware"
    (hw_dir / "calibration").mkdir(parents=True)
    shutil.copy(BROADWELL, hw_dir / BROADWELL.name)
    cal_src = BROADWELL.parent / "calibration" / "broadwell-xdp-baseline.yaml"
    doc = yaml.safe_load(cal_src.read_text())
    edit(doc)
    (hw_dir / "calibration" / cal_src.name).write_text(yaml.safe_dump(doc))
    return hw_dir / BROADWELL.name


def test_self_time_smaller_than_the_model_terms_is_a_config_error(tmp_path):
    def shrink(doc):
        doc["self_percent"]["rmqueue"] = 1.0  # less than free_unref_page: a negative operation cost

    hw = load_hardware(_reference_copy(tmp_path, shrink))
    with pytest.raises(ConfigError, match=r"leaves no room.*op"):
        derive(hw)
    # a scenario on that hardware derives its costs when it is loaded: no point ever meets it
    with pytest.raises(ConfigError, match="leaves no room"):
        load_scenario(PAGE_BENCH_SCENARIO, Overrides(hardware=hw.path))


def test_free_unref_page_smaller_than_its_operations_is_a_config_error(tmp_path):
    def shrink(doc):
        doc["ops"]["free_unref_page"] = 18  # 18 operations alone would exceed its self time

    with pytest.raises(ConfigError, match=r"leaves no room.*irq_popf"):
        derive(load_hardware(_reference_copy(tmp_path, shrink)))


def test_stalls_replayed_are_taken_out_of_the_self_time(tmp_path):
    def stall(doc):
        doc["replayed"]["stalls_ns_per_packet"]["prep_new_page"] = 1.0

    costs, _ = derive(load_hardware(_reference_copy(tmp_path, stall)))
    expected = self_ns(0.90) - 1.0 - _REPLAYED.frontend_ns_per_packet["prep_new_page"]
    assert costs.prep_new_page == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["self_percent"].pop("prep_new_page"), "missing profiled functions"),
        (lambda d: d["self_percent"].update(rmqueue=100.0), r"percentages must be in \[0, 100\)"),
        (lambda d: d["self_percent"].update(rmqueue=-1.0), r"percentages must be in \[0, 100\)"),
        (lambda d: d["reference"].update(packets_per_second=0), "packets_per_second"),
        (lambda d: d["list_checks_per_packet"].pop("__list_add_valid"), "missing counts"),
        (
            lambda d: d["list_checks_per_packet"]["__list_del_entry_valid"].update(
                receive_path=0, napi=0, allocator=0
            ),
            "no check counted",
        ),
        (lambda d: d["ops"]["rmqueue"].update(per_page=-1), "ops.rmqueue.per_page"),
    ],
)
def test_malformed_calibration_files_are_config_errors(tmp_path, edit, message):
    path = _reference_copy(tmp_path, edit)
    cal = path.parent / "calibration" / "broadwell-xdp-baseline.yaml"
    with pytest.raises(ConfigError, match=message):
        load_calibration(cal)


def test_profile_covers_every_function_the_model_prices():
    cal = load_calibration(BROADWELL.parent / "calibration" / "broadwell-xdp-baseline.yaml")
    assert set(PROFILED) <= set(cal.self_percent)
    assert cal.reference.host == BROADWELL.stem
