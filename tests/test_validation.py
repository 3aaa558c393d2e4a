"""The validation report and the calibration steps behind it (simulator/validation/, replay.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import BROADWELL, ROOT, hardware

from simulator.calibration import (
    Calibration,
    Fitted,
    derive,
    load_calibration,
    load_outside_file,
    net_costs,
    outside_path,
    write_fitted,
    write_replayed,
)
from simulator.validation import (
    ALL_OUT,
    ASSUMED,
    MECHANISMS,
    REPORT,
    bench_page_pool,
    main,
)

PACKET_NS = 1e9 / 3677958


def test_each_mechanism_variant_changes_what_it_says() -> None:
    hw = hardware(BROADWELL)
    base, _ = derive(hw)
    by = {v.name.split(".")[0]: v.change(hw) for v in MECHANISMS}
    # 1: both checks at the old price, self(__list_add_valid) / 1
    c1 = by["1"].costs
    assert c1.list_add_check == c1.list_del_check == pytest.approx(1.21 / 100 * PACKET_NS)
    assert c1.op == base.op
    # 2: free layers gone (and page_bench's list variant through the array)
    assert by["2"].costs.put_page == 0 and by["2"].costs.page_frag_free == 0
    assert MECHANISMS[1].page_bench == {"list_variant": "via_array"}
    # 3: the v1 statistics, a kernel mechanism
    assert by["3"].kernel == {"bulk_statistics": "per_call"}
    # 4: every toggle at the >= 5.12 tight-loop figure, subtracted from the 5.11 self times
    c4 = by["4"].costs
    assert c4.irq_popf == c4.irq_sti == pytest.approx(10 / 3.6)
    rp = load_calibration(hw.calibration_path()).replayed
    assert rp is not None
    rmqueue_work = (
        3.24 / 100 * PACKET_NS - rp.stalls_ns_per_packet["rmqueue"] - rp.frontend_ns_per_packet["rmqueue"]
    )
    assert c4.rmqueue_page + c4.rmqueue_call + 6 * c4.op == pytest.approx(rmqueue_work - 10 / 3.6)
    # 5a: no memory-level parallelism
    assert by["5a"].mlp is False and by["1"].mlp is True
    assert ALL_OUT.change(hw).mlp is False
    # the assumed values, halved and doubled
    assert [v.change(hw).costs.irq_sti / base.irq_sti for v in ASSUMED[:2]] == pytest.approx([0.5, 2.0])
    scales = [(v.change(hw).hot_scale, v.change(hw).assumed_scale) for v in ASSUMED[2:]]
    assert scales == [(0.5, 1.0), (2.0, 1.0), (1.0, 0.5), (1.0, 2.0)]
    assert MECHANISMS[-1].change(hw).frontend is False


def test_outside_cost_scales_by_clock_on_other_hosts() -> None:
    bw = net_costs(Calibration(hardware(BROADWELL)))
    sk = net_costs(Calibration(hardware(ROOT / "hardware" / "skylake-sp-2s.yaml")))
    assert sk.outside == pytest.approx(bw.outside * 3.6 / 2.5)
    assert sk.dma_map == pytest.approx(bw.dma_map * 3.6 / 2.5)
    assert net_costs(Calibration(hardware(BROADWELL)), 123.0).outside == 123.0


def test_write_fitted_keeps_the_inputs(tmp_path: Path) -> None:
    src = outside_path(hardware(BROADWELL))
    dst = tmp_path / src.name
    dst.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    write_fitted(dst, Fitted(outside_ns_per_packet=1.5, host="h", clock_ghz=2.0, record={"x": 1}))
    text = dst.read_text(encoding="utf-8")
    assert "# perf report self time" in text  # comments above `fitted:` survive
    f = load_outside_file(dst)
    assert f.fitted is not None and f.fitted.outside_ns_per_packet == 1.5
    assert f.inputs == load_outside_file(src).inputs


def test_write_replayed_keeps_the_inputs(tmp_path: Path) -> None:
    src = hardware(BROADWELL).calibration_path()
    dst = tmp_path / src.name
    dst.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    cal = load_calibration(src)
    assert cal.replayed is not None
    stalls = {**cal.replayed.stalls_ns_per_packet, "rmqueue": 0.25}
    write_replayed(dst, cal.replayed.model_copy(update={"stalls_ns_per_packet": stalls}))
    text = dst.read_text(encoding="utf-8")
    assert "# C-level memory operations" in text  # the hand-written inputs and comments survive
    again = load_calibration(dst)
    assert again.replayed is not None and again.replayed.stalls_ns_per_packet["rmqueue"] == 0.25
    assert again.ops == cal.ops and again.self_percent == cal.self_percent


def test_the_committed_replay_found_the_premises_of_the_counts() -> None:
    """The profiled run's steady state: no pcp refill or drain, so the allocator's list checks are
    one list_del and one list_add per packet, as the calibration file counts them."""
    cal = load_calibration(hardware(BROADWELL).calibration_path())
    assert cal.replayed is not None, "run python -m simulator.validation --calibrate"
    assert cal.replayed.record["pcp_refills_and_drains"] == 0
    assert cal.replayed.record["kernel"] == "5.11"
    counts = cal.list_checks_per_packet
    assert counts["__list_add_valid"].allocator == cal.replayed.list_ops_per_packet["__list_add_valid"] == 1
    assert (
        counts["__list_del_entry_valid"].allocator
        == cal.replayed.list_ops_per_packet["__list_del_entry_valid"]
    )


def test_page_pool_bench_fast_path_is_its_input() -> None:
    hw = hardware(BROADWELL)
    assert bench_page_pool(hw, "fast_path", 2000) == pytest.approx(19.0, rel=0.02)
    ring = bench_page_pool(hw, "ptr_ring", 2000)
    assert 19.0 + 37.0 < ring < 2 * 54.0  # at least a producer lock per page; within 2x of 6.13


def test_committed_report_matches_committed_fit() -> None:
    """docs/validation.md is regenerated with the fit it reports (else: rerun the report)."""
    fitted = load_outside_file(outside_path(hardware(BROADWELL))).fitted
    assert fitted is not None
    text = REPORT.read_text(encoding="utf-8")
    assert f"outside_ns_per_packet: {fitted.outside_ns_per_packet}" in text
    for figure in (
        "3,677,958",
        "4,368,926",
        "| 199 |",
        "## 2. What each mechanism buys",
        "## 3. Kernel versions",
    ):
        assert figure in text


def test_quick_report(tmp_path: Path) -> None:
    out = tmp_path / "validation.md"
    assert main(["--quick", "--jobs", "1", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Quick run" in text
    for section in (
        "## 1. Side by side",
        "## 2. What each mechanism buys",
        "## 3. Kernel versions",
        "## 6. Values no source gives",
        "## 7. Refill size",
        "## Calibration record",
    ):
        assert section in text
    # the calibration record in the report parses as the file's fitted section
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "fitted" in yaml.safe_load(block)
