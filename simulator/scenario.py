"""Scenario files (scenarios/*.yaml): schema, validation, command-line overrides, loading.

A scenario names a workload and a hardware file, the strategies, batch sizes and CPU counts to
compare (a grid), the simulated time per point, the root seed and replications, kernel options,
and the workload's own section (e.g. `page_bench:`), validated by the workload's own model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulator.calibration import derive
from simulator.errors import ConfigError, Problem
from simulator.hardware import Hardware, load_hardware
from simulator.machine.machine import KernelConfig
from simulator.mm.strategies import STRATEGIES
from simulator.mm.zone_setup import check_node_memory
from simulator.units import Duration
from simulator.workloads import WORKLOADS
from simulator.yamlio import problems_from_validation, read_yaml_mapping, validate

MAX_BATCH = 4096


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KernelOptions(_Strict):
    """Kernel build/boot options (KernelConfig)."""

    debug_list: bool = True
    prep_new_page: str = "irq_off"
    thp: bool = True

    @field_validator("prep_new_page")
    @classmethod
    def _where(cls, v: str) -> str:
        if v not in ("irq_off", "second_pass"):
            raise ValueError("expected 'irq_off' (inside the IRQ-off loop) or 'second_pass'")
        return v

    def to_config(self) -> KernelConfig:
        return KernelConfig(debug_list=self.debug_list, prep_new_page=self.prep_new_page, thp=self.thp)  # type: ignore[arg-type]


class ScenarioModel(_Strict):
    """The fields common to every scenario file."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    workload: str
    hardware: str
    seed: int = Field(default=1, ge=0)
    replications: int = Field(default=1, ge=1, le=1000)
    strategies: list[str] = Field(default_factory=lambda: list(STRATEGIES), min_length=1)
    batches: list[int] = Field(default_factory=lambda: [64], min_length=1)
    cpus: list[int] = Field(default_factory=lambda: [1], min_length=1)
    duration: Duration = Field(description="simulated time measured per point")
    warmup: Duration = 0.0
    kernel: KernelOptions = Field(default_factory=KernelOptions)
    # one section per workload; only the scenario's own may appear
    page_bench: dict[str, Any] | None = None
    xdp_redirect: dict[str, Any] | None = None
    nfs: dict[str, Any] | None = None

    @field_validator("workload")
    @classmethod
    def _known_workload(cls, v: str) -> str:
        if v not in WORKLOADS:
            raise ValueError(f"unknown workload; expected one of {sorted(WORKLOADS)}")
        return v

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in STRATEGIES]
        if bad:
            raise ValueError(f"unknown strategy {bad[0]!r}; expected any of {list(STRATEGIES)}")
        if len(set(v)) != len(v):
            raise ValueError("a strategy is listed twice")
        return v

    @field_validator("batches")
    @classmethod
    def _batches(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if not 1 <= b <= MAX_BATCH]
        if bad:
            raise ValueError(f"batch sizes must be whole numbers from 1 to {MAX_BATCH}, got {bad[0]}")
        return v

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: list[int]) -> list[int]:
        bad = [c for c in v if c < 1]
        if bad:
            raise ValueError(f"CPU counts must be at least 1, got {bad[0]}")
        return v

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("duration must be positive")
        if v > 60e9:
            raise ValueError("duration longer than 60 s of simulated time")
        return v


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: common fields, the workload's params, the resolved hardware."""

    model: ScenarioModel
    params: BaseModel
    hardware: Hardware
    path: str

    @property
    def name(self) -> str:
        return self.model.name

    def resolved(self) -> dict[str, Any]:
        """The complete configuration (every default filled in), as written beside results."""
        d = self.model.model_dump(mode="json")
        for w in WORKLOADS:
            d.pop(w, None)
        d[self.model.workload] = self.params.model_dump(mode="json")
        # an absolute path, so the written config.yaml runs again from anywhere on this machine
        # (results also keep a verbatim copy of the hardware file, hardware.yaml)
        d["hardware"] = str(Path(self.hardware.path).resolve())
        return d


@dataclass(frozen=True)
class Overrides:
    """Command-line overrides of a scenario's fields (None: keep the file's value)."""

    hardware: str | None = None
    strategies: list[str] | None = None
    batches: list[int] | None = None
    cpus: list[int] | None = None
    seed: int | None = None
    duration: str | None = None
    replications: int | None = None

    FLAGS = {
        "hardware": "--hardware",
        "strategies": "--strategy",
        "batches": "--batch",
        "cpus": "--cpus",
        "seed": "--seed",
        "duration": "--duration",
        "replications": "--replications",
    }


def load_scenario(path: str | Path, overrides: Overrides | None = None) -> Scenario:
    """Read, override and validate a scenario and the hardware file it names."""
    p = Path(path)
    doc = read_yaml_mapping(p)
    ov = overrides or Overrides()
    given: dict[str, Any] = {}
    for f in Overrides.FLAGS:
        v = getattr(ov, f)
        if v is not None:
            given[f] = v
    merged = {**doc, **given}
    try:
        model = ScenarioModel.model_validate(merged)
    except Exception as exc:  # pydantic.ValidationError
        from pydantic import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        problems = []
        for prob in problems_from_validation(str(p), exc):
            top = prob.field.split(".")[0].split("[")[0]
            if top in given:
                prob = Problem("command line", Overrides.FLAGS[top], prob.message, prob.value, prob.has_value)
            problems.append(prob)
        raise ConfigError(problems) from None

    workload = WORKLOADS[model.workload]
    for other in WORKLOADS:
        if other != model.workload and getattr(model, other) is not None:
            raise ConfigError.one(
                str(p), other, f"section for another workload (this scenario runs {model.workload})"
            )
    params = validate(workload.params, getattr(model, model.workload) or {}, str(p), prefix=model.workload)

    if ov.hardware is not None:
        hw_path = Path(ov.hardware)
        hw_where = ("command line", "--hardware")
    else:
        hw_path = (p.parent / model.hardware).resolve()
        hw_where = (str(p), "hardware")
    if not hw_path.is_file():
        raise ConfigError.one(hw_where[0], hw_where[1], "hardware file not found", str(hw_path))
    hw = load_hardware(hw_path)

    cpu_where = ("command line", "--cpus") if ov.cpus is not None else (str(p), "cpus")
    too_many = [c for c in model.cpus if c > hw.ncpus]
    if too_many:
        raise ConfigError.one(
            cpu_where[0], cpu_where[1], f"more CPUs than {hw.name} has ({hw.ncpus})", too_many[0]
        )
    workload.check(model, params, hw, str(p))
    # failures a point would otherwise only meet inside a run: the calibration derivation and
    # nodes too small for their own watermarks (which depend on the kernel's THP setting)
    derive(hw)
    small = check_node_memory(hw, thp=model.kernel.thp)
    if small:
        raise ConfigError([Problem(hw.path, "topology.nodes", msg) for msg in small])
    return Scenario(model=model, params=params, hardware=hw, path=str(p))
