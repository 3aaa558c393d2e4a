"""The calibration step (simulator/calibration.py) against a hand computation from the profile.

Reference: 3,677,958 pps on a 3.6 GHz E5-1650 v4, so one packet is 1e9 / 3677958 ns; every
function's self time is its perf percentage of that. local_irq_save+restore is 10 cycles at
3.6 GHz on the reference host; rmqueue's work splits 6 : 14 into per-page and per-call parts.
The numbers are typed in here, not read from the YAML, so a change to the file shows up.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import simpy
import yaml
from conftest import BROADWELL, SKYLAKE, TINY_2NODE, hardware

from simulator.calibration import PROFILED, Costs, derive, format_derivation, load_calibration
from simulator.errors import ConfigError
from simulator.hardware import load_hardware
from simulator.machine.machine import build_machine

PACKET_NS = 1e9 / 3677958  # 271.89 ns
REF_IRQ = 10 / 3.6  # ns


def self_ns(percent: float) -> float:
    return percent / 100 * PACKET_NS


# Reference-host ns, worked by hand from the profile (before clock scaling).
RMQ = self_ns(3.24) - REF_IRQ
EXPECTED_REF = {
    "alloc_pages_nodemask": self_ns(2.82),
    "get_page_from_freelist": self_ns(2.89),
    "rmqueue_call": RMQ * 14 / 20,
    "rmqueue_page": RMQ * 6 / 20,
    "prep_new_page": self_ns(0.90),
    "free_unref_page": self_ns(1.11) - REF_IRQ,
    "free_unref_page_prepare": self_ns(1.45),
    "free_pcp_prepare": self_ns(0.81),
    "free_unref_page_commit": self_ns(2.54),
    "list_debug_check": self_ns(1.21) / 1,
    "list_line": RMQ * 6 / 20 / 3,
}


def test_hand_computed_numbers():
    # spot-check the arithmetic itself: rmqueue_page is about 1.81 ns, 6.5 cycles
    assert EXPECTED_REF["rmqueue_page"] == pytest.approx((0.0324 * 271.8900 - 2.7778) * 0.3, rel=1e-4)
    assert EXPECTED_REF["list_debug_check"] == pytest.approx(3.2899, rel=1e-4)


def test_derive_on_the_reference_host_equals_the_hand_computation():
    costs, steps = derive(hardware(BROADWELL))
    for term, ns in EXPECTED_REF.items():
        assert getattr(costs, term) == pytest.approx(ns, rel=1e-12), term
    # primitives straight from the hardware file (cycles of the 3.6 GHz TSC)
    assert costs.irq_save_restore == pytest.approx(10 / 3.6)
    assert costs.irq_disable_enable == pytest.approx(7 / 3.6)
    assert costs.spin_lock_unlock == pytest.approx(37 / 3.6)
    assert costs.atomic == pytest.approx(17 / 3.6)
    assert costs.call == pytest.approx(4 / 3.6)
    assert costs.indirect_call == pytest.approx(30 / 3.6)
    # one derivation step per derived term, host == reference on the reference host
    assert [s.term for s in steps] == list(EXPECTED_REF)
    assert all(s.host_ns == s.reference_ns for s in steps)
    assert set(Costs.__dataclass_fields__) == set(EXPECTED_REF) | {
        "irq_save_restore",
        "irq_disable_enable",
        "spin_lock_unlock",
        "atomic",
        "call",
        "indirect_call",
    }


def test_work_scales_by_clock_ratio_on_another_host():
    sky, _ = derive(hardware(SKYLAKE))
    scale = 3.6 / 2.5
    for term, ns in EXPECTED_REF.items():
        # the reference host's IRQ toggle is subtracted before scaling, not the host's own
        assert getattr(sky, term) == pytest.approx(ns * scale, rel=1e-12), term
    assert sky.irq_save_restore == pytest.approx(10 / 2.5)  # the host's own TSC
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


def test_self_time_smaller_than_the_primitives_is_a_config_error(tmp_path):
    def shrink(doc):
        doc["self_percent"]["rmqueue"] = 0.5  # 1.36 ns, less than the 2.78 ns IRQ toggle

    hw = load_hardware(_reference_copy(tmp_path, shrink))
    with pytest.raises(ConfigError, match=r"smaller than the primitives.*rmqueue_call.*rmqueue_page"):
        derive(hw)
    with pytest.raises(ConfigError, match="smaller than the primitives"):
        build_machine(simpy.Environment(), hw)


def test_free_unref_page_below_its_irq_toggle_is_a_config_error(tmp_path):
    def shrink(doc):
        doc["self_percent"]["free_unref_page"] = 1.0  # 2.72 ns < 2.78 ns

    with pytest.raises(ConfigError, match=r"free_unref_page"):
        derive(load_hardware(_reference_copy(tmp_path, shrink)))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["self_percent"].pop("prep_new_page"), "missing profiled functions"),
        (lambda d: d["self_percent"].update(rmqueue=100.0), r"percentages must be in \[0, 100\)"),
        (lambda d: d["self_percent"].update(rmqueue=-1.0), r"percentages must be in \[0, 100\)"),
        (lambda d: d["reference"].update(packets_per_second=0), "packets_per_second"),
        (lambda d: d["split"].update(list_add_checks_per_packet=0), "list_add_checks_per_packet"),
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
