"""Cost terms of the network path around the page allocator, and the one fitted parameter.

Three kinds, as for the allocator (docs/model.md):
- documented primitives (spin lock, atomic, call) come from the hardware file (machine.costs);
- documented network-path work, read from the `inputs:` of
  hardware/calibration/xdp-redirect-outside.yaml, each with its source: DMA map/unmap from the
  reference perf profile, page_pool's fast path from bench_page_pool_simple;
- everything else a packet costs outside the page allocator and page_pool (mlx5 CQE handling,
  the XDP program, devmap, veth, building and freeing the SKB...) is ONE number per packet,
  `outside_ns_per_packet`, fitted by `python -m simulator.validation --calibrate` so that the
  `single` strategy reproduces the reference baseline (3,677,958 pps). The fit and its record
  are the `fitted:` section of the same file.

Work measured on the reference host scales to another host by clock ratio, as
simulator/calibration.py does for the allocator's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from simulator.calibration import load_calibration, reference_hardware
from simulator.errors import ConfigError
from simulator.hardware import Hardware
from simulator.yamlio import read_yaml_mapping, validate

OUTSIDE_FILE = "xdp-redirect-outside.yaml"
FITTED_MARK = "fitted:"
RECALIBRATE = "python -m simulator.validation --calibrate"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
class NetCosts:
    """Every network-path cost the XDP-redirect model charges, in ns on the simulated host."""

    outside: float  # per packet: the fitted work outside the allocator and page_pool
    dma_map: float  # per page: dma_map_page_attrs (mlx5e_page_alloc_pool)
    dma_unmap: float  # per page: dma_unmap_page_attrs (mlx5e_page_dma_unmap at XDP_REDIRECT)
    pp_alloc: float  # per call: page_pool_alloc_pages' fast path (call, count test, pop)
    pp_recycle: float  # per page: __page_pool_put_page's checks and the alloc.cache push
    outside_source: str  # where `outside` came from (the fit, or a scenario override)


def outside_path(hw: Hardware) -> Path:
    """hardware/calibration/xdp-redirect-outside.yaml: next to the allocator's calibration."""
    return hw.calibration_path().parent / OUTSIDE_FILE


def load_outside_file(path: Path) -> OutsideFile:
    return validate(OutsideFile, read_yaml_mapping(path), str(path))


def net_costs(hw: Hardware, outside_override: float | None = None) -> NetCosts:
    """The network path's costs on `hw`. `outside_override` (ns per packet on `hw`) replaces the
    fitted outside cost; the calibration step itself uses it."""
    path = outside_path(hw)
    f = load_outside_file(path)
    cal = load_calibration(hw.calibration_path())
    ref = cal.reference
    ref_ns_per_packet = 1e9 / ref.packets_per_second
    scale = ref.clock / hw.cpu.clock  # instruction work measured at the reference clock
    pct = f.inputs.profile_self_percent
    for name in ("dma_map_page_attrs", "dma_unmap_page_attrs"):
        if name not in pct:
            raise ConfigError.one(
                str(path), f"inputs.profile_self_percent.{name}", "required entry is missing"
            )
    # bench cycles are cycles(tsc) of the reference host: ns there, then clock-scaled
    ref_hw = hw if Path(hw.path).stem == ref.host else reference_hardware(hw.calibration_path(), cal)
    ref_tsc = ref_hw.cpu.tsc
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


def write_fitted(path: Path, fitted: Fitted) -> None:
    """Replace the `fitted:` section of the outside file, keeping the hand-written inputs (and
    their comments) above it as they are."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    cut = next((i for i, ln in enumerate(lines) if ln.startswith(FITTED_MARK)), len(lines))
    head = "".join(lines[:cut])
    if not head.endswith("\n"):
        head += "\n"
    body = yaml.safe_dump({"fitted": fitted.model_dump(mode="json")}, sort_keys=False, width=100)
    path.write_text(head + body, encoding="utf-8")
