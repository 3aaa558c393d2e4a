"""The validation report and the calibration step behind it (simulator/validation.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import BROADWELL, ROOT, hardware

from simulator.calibration import derive
from simulator.net.costs import Fitted, load_outside_file, net_costs, outside_path, write_fitted
from simulator.validation import (
    REPORT,
    VARIANTS,
    bench_page_pool,
    costs_with_irq_cycles,
    costs_with_split,
    main,
)


def test_split_variants_keep_rmqueue_self_time() -> None:
    hw = hardware(BROADWELL)
    base, _ = derive(hw)
    per_page = costs_with_split(hw, 20.0, 0.0)
    per_call = costs_with_split(hw, 0.0, 20.0)
    total = base.rmqueue_page + base.rmqueue_call
    assert per_page.rmqueue_page == pytest.approx(total) and per_page.rmqueue_call == 0
    assert per_call.rmqueue_call == pytest.approx(total) and per_call.rmqueue_page == 0
    assert per_call.list_line == 0  # derived from the per-page part
    assert per_page.list_line == pytest.approx(total / 3)
    # everything else is untouched
    assert per_page.alloc_pages_nodemask == base.alloc_pages_nodemask


def test_irq_variant_changes_only_the_toggle() -> None:
    hw = hardware(BROADWELL)
    base, _ = derive(hw)
    c = costs_with_irq_cycles(hw, 37.0)
    assert c.irq_save_restore == pytest.approx(37.0 / 3.6)
    assert c.free_unref_page == base.free_unref_page and c.rmqueue_call == base.rmqueue_call


def test_outside_cost_scales_by_clock_on_other_hosts() -> None:
    bw = net_costs(hardware(BROADWELL))
    sk = net_costs(hardware(ROOT / "hardware" / "skylake-sp-2s.yaml"))
    assert sk.outside == pytest.approx(bw.outside * 3.6 / 2.5)
    assert sk.dma_map == pytest.approx(bw.dma_map * 3.6 / 2.5)
    assert net_costs(hardware(BROADWELL), 123.0).outside == 123.0


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
    for figure in ("3,677,958", "4,368,926", "| 199 |"):
        assert figure in text


def test_quick_report(tmp_path: Path) -> None:
    out = tmp_path / "validation.md"
    assert main(["--quick", "--jobs", "1", "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "Quick run" in text
    for section in ("## 1. Side by side", "## 4. Sensitivity", "## 5. Refill size", "## Calibration record"):
        assert section in text
    # the calibration record in the report parses as the file's fitted section
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "fitted" in yaml.safe_load(block)
    assert len(VARIANTS) >= 4
