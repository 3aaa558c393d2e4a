"""Scenario files (scenarios/*.yaml): schema, validation, command-line overrides, loading.

A scenario names a workload and a hardware file, the strategies, batch sizes and CPU counts to
compare (a grid), the simulated time per point, the root seed and replications, kernel options,
and the workload's own section (e.g. `page_bench:`), validated by the workload's own model.

Loading a scenario also reads the hardware file's calibration and derives, once, what every point
of it charges (the allocator's costs, the workload's own costs, the kernel's code footprints): the
model reads no file.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulator.calibration import Calibration, derive
from simulator.code import CodePaths, code_paths
from simulator.costs import Costs
from simulator.errors import ConfigError, Problem
from simulator.hardware import Hardware, check_relative_path, load_hardware, resolve_beside
from simulator.kernels import DEFAULT_VERSION, KernelConfig, presets
from simulator.kernels import versions as kernel_versions
from simulator.limits import (
    MAX_NAME_CHARS,
    MAX_POINTS,
    MAX_SEED,
    MAX_SIM_NS,
    MAX_TEXT_CHARS,
    show,
    work_problems,
)
from simulator.mm.strategies import STRATEGIES
from simulator.mm.zone_setup import MIN_PERCPU_PAGELIST_FRACTION, check_node_memory
from simulator.units import Duration
from simulator.workloads import WORKLOADS
from simulator.yamlio import FieldError, problems_from_validation, read_yaml_mapping, validate

MAX_BATCH = 4096

# `grid:` (scenario files, sweep files, --grid): more grid axes than strategy x batch x cpus, each a
# dotted path into the scenario (`kernel.prep_new_page`, `nfs.threads_per_node`) and its values.
GRID_AXES = {
    "strategies": "--strategy",
    "batches": "--batch",
    "cpus": "--cpus",
    "replications": "--replications",
}
GRID_FIXED = {
    "name": "the scenario's name is its identity in the results",
    "description": "a description is not a parameter",
    "workload": "a grid varies one workload's parameters; list another workload's scenario in a sweep file",
    "hardware": "compare hardware files with --hardware and `pagesim compare`",
    "grid": "a grid cannot vary itself",
}
_GRID_PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def check_grid_axis(path: str, values: list[Any]) -> None:
    """Raise FieldError (field relative to `grid`) unless `path: values` is a usable grid axis.

    Whether each value suits the parameter is checked later, with the scenario's own schema."""
    if not _GRID_PATH.match(path):
        raise FieldError(path, "expected a dotted parameter path such as 'kernel.prep_new_page'", path)
    top = path.split(".")[0]
    if top in GRID_AXES:
        raise FieldError(
            path, f"`{top}` is a grid axis already: list its values in `{top}:` (or {GRID_AXES[top]})"
        )
    if top in GRID_FIXED:
        raise FieldError(path, f"cannot be a grid axis: {GRID_FIXED[top]}")
    if not values:
        raise FieldError(path, "expected a list of at least one value")
    seen: list[Any] = []
    for i, v in enumerate(values):
        if v is not None and not isinstance(v, (str, int, float, bool)):
            raise FieldError(
                f"{path}[{i}]",
                "expected a single value (a number, a string, true/false or null); to vary a field"
                " of a section, give the dotted path to that field",
                v,
            )
        if isinstance(v, float) and not math.isfinite(v):
            raise FieldError(f"{path}[{i}]", "expected a finite number", v)
        if any(type(v) is type(w) and v == w for w in seen):
            raise FieldError(f"{path}[{i}]", "value listed twice", v)
        seen.append(v)


def set_path(doc: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `doc` with `value` at dotted `path` (sections created as needed); ValueError if a
    value that is not a section lies on the path."""
    parts = path.split(".")
    out = dict(doc)
    node = out
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = {}
        elif not isinstance(child, dict):
            raise ValueError(f"`{'.'.join(parts[: i + 1])}` is not a section (it holds {child!r})")
        node[part] = node = dict(child)
    node[parts[-1]] = copy.deepcopy(value)
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KernelOptions(_Strict):
    """The `kernel:` section: the kernel version (a preset of mechanisms, simulator/kernels.yaml)
    and the build/boot options a scenario may set (KernelConfig)."""

    version: str = DEFAULT_VERSION
    debug_list: bool = True
    prep_new_page: Literal["irq_off", "second_pass"] = "irq_off"
    thp: bool = True
    bulk_fallback: Literal["nr_populated", "nr_account"] = "nr_populated"
    # vm.percpu_pagelist_fraction (5.12 and before): pcp->high = managed / fraction, pcp->batch
    # = high / 4 capped at 96; 0 keeps the boot-time sizes (zone_batchsize, high = 6 x batch)
    percpu_pagelist_fraction: int = Field(default=0, ge=0, le=1 << 30)

    @field_validator("percpu_pagelist_fraction")
    @classmethod
    def _fraction(cls, v: int) -> int:
        if 0 < v < MIN_PERCPU_PAGELIST_FRACTION:
            raise ValueError(
                f"expected 0 or at least {MIN_PERCPU_PAGELIST_FRACTION} (the 5.12 sysctl handler "
                "returns -EINVAL below it)"
            )
        return v

    @model_validator(mode="after")
    def _fraction_of_the_kernel(self) -> KernelOptions:
        if self.percpu_pagelist_fraction and presets()[self.version].mechanisms.pcp_high != "batch":
            raise ValueError(
                f"percpu_pagelist_fraction: kernel {self.version} has no such sysctl (5.14 replaced "
                "it with percpu_pagelist_high_fraction); give 0 or kernel.version 5.13 or earlier"
            )
        return self

    @field_validator("version", mode="before")
    @classmethod
    def _known_version(cls, v: Any) -> str:
        # `version: 5.12` in YAML is a number: read it as the version it spells
        if isinstance(v, float | int) and not isinstance(v, bool):
            v = format(v, "g")
        if not isinstance(v, str) or v not in kernel_versions():
            raise ValueError(f"unknown kernel version; expected one of {list(kernel_versions())}")
        return v

    def to_config(self) -> KernelConfig:
        return KernelConfig.for_version(**self.model_dump())


class ScenarioModel(_Strict):
    """The fields common to every scenario file."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = Field(default="", max_length=MAX_TEXT_CHARS)
    workload: str
    hardware: str
    seed: int = 1
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
    page_fault1: dict[str, Any] | None = None
    # more grid axes: dotted parameter path -> values (see check_grid_axis)
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in v.items():
            check_grid_axis(path, values)
        return v

    @model_validator(mode="after")
    def _strategies_the_kernel_has(self) -> ScenarioModel:
        if not presets()[self.kernel.version].mechanisms.bulk_api:
            bulk = [s for s in self.strategies if s != "single"]
            if bulk:
                # named on the kernel's field: `--kernel 5.11` then blames the flag, not the file
                raise FieldError(
                    "kernel.version",
                    f"kernel {self.kernel.version} has no bulk allocator, which strategy"
                    f" {bulk[0]!r} needs (strategies); run only `single` on it, or a kernel from"
                    " 5.12 on",
                    self.kernel.version,
                )
        return self

    @field_validator("hardware")
    @classmethod
    def _a_path(cls, v: str) -> str:
        return check_relative_path(v)

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

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if not 0 <= v <= MAX_SEED:
            raise ValueError(
                f"seeds must be whole numbers from 0 to {MAX_SEED:,} (2^63-1: the result files'"
                " int64 seed column)"
            )
        return v

    @field_validator("batches")
    @classmethod
    def _batches(cls, v: list[int]) -> list[int]:
        bad = [b for b in v if not 1 <= b <= MAX_BATCH]
        if bad:
            raise ValueError(f"batch sizes must be whole numbers from 1 to {MAX_BATCH}, got {bad[0]}")
        _once(v, "batch size")
        return v

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v: list[int]) -> list[int]:
        bad = [c for c in v if c < 1]
        if bad:
            raise ValueError(f"CPU counts must be at least 1, got {bad[0]}")
        _once(v, "CPU count")
        return v

    @field_validator("duration")
    @classmethod
    def _duration(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("duration must be positive")
        if v > MAX_SIM_NS:
            raise ValueError(f"duration longer than {show(MAX_SIM_NS, 'ns')} of simulated time")
        return v

    @field_validator("warmup")
    @classmethod
    def _warmup(cls, v: float) -> float:
        if v > MAX_SIM_NS:
            raise ValueError(f"warm-up longer than {show(MAX_SIM_NS, 'ns')} of simulated time")
        return v

    def points(self) -> int:
        """Points of the grid, replications included."""
        n = len(self.strategies) * len(self.batches) * len(self.cpus) * self.replications
        for values in self.grid.values():
            n *= len(values)
        return n


def _once(values: list[int], what: str) -> None:
    twice = [x for i, x in enumerate(values) if x in values[:i]]
    if twice:
        raise ValueError(f"{what} {twice[0]} is listed twice")


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: common fields, the workload's params, the resolved hardware."""

    model: ScenarioModel
    params: BaseModel
    hardware: Hardware
    path: str
    # the document as validated (file, settings and flags merged): with_settings() starts from it
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # read and derived once, when the scenario is loaded: the hardware's calibration files, the
    # allocator's costs (every kernel's terms), the kernel's code footprints, and what the
    # workload derived from the calibration (Workload.derive)
    calibration: Calibration = field(kw_only=True, compare=False, repr=False)
    costs: Costs = field(kw_only=True, compare=False, repr=False)
    code: CodePaths = field(kw_only=True, compare=False, repr=False)
    derived: Any = field(kw_only=True, compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.model.name

    def with_settings(self, settings: Iterable[tuple[str, Any]]) -> Scenario:
        """This scenario with each (dotted path, value) set, validated again as a whole (a grid
        point's configuration). The hardware and its calibration stay the ones already loaded."""
        if not self.source:
            raise ValueError(f"scenario {self.name} has no source document to apply settings to")
        doc = self.source
        for path, value in settings:
            try:
                doc = set_path(doc, path, value)
            except ValueError as exc:
                raise ConfigError.one(self.path, path, str(exc)) from None
        p, ov = Path(self.path), Overrides()
        model, params = _validate_document(p, doc, ov, {})
        return _checked(p, doc, model, params, self.hardware, ov, self.calibration)

    def resolved(self) -> dict[str, Any]:
        """The complete configuration (every default filled in), as written beside results."""
        d = self.model.model_dump(mode="json")
        for w in WORKLOADS:
            d.pop(w, None)
        d[self.model.workload] = self.params.model_dump(mode="json")
        if not d.get("grid"):
            d.pop("grid", None)
        # an absolute path, so the written config.yaml runs again from anywhere on this machine
        # (results also keep a verbatim copy of the hardware file, hardware.yaml)
        d["hardware"] = str(Path(self.hardware.path).resolve())
        return d


@dataclass(frozen=True)
class Setting:
    """A value set on a scenario at a dotted path, from outside its file (a sweep file, --grid);
    `file` and `field` say where it was given, for error messages."""

    path: str
    value: Any
    file: str
    field: str


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
    # set before the flags above, in order (a sweep file's defaults and entry)
    settings: tuple[Setting, ...] = ()
    # grid axes (value: a list) that replace the file's `grid:` axis of the same path
    grid: tuple[Setting, ...] = ()

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
    doc = _apply_settings(doc, ov)
    given: dict[str, Any] = {}
    for f in Overrides.FLAGS:
        v = getattr(ov, f)
        if v is not None:
            given[f] = v
    merged = _merge_grid({**doc, **given}, ov)
    model, params = _validate_document(p, merged, ov, given)

    if ov.hardware is not None:
        hw_path = Path(ov.hardware)
        hw_where = ("command line", "--hardware")
    else:
        hw_path = resolve_beside(p, model.hardware)
        hw_where = (str(p), "hardware")
    if not hw_path.is_file():
        raise ConfigError.one(hw_where[0], hw_where[1], "hardware file not found", str(hw_path))
    hw = load_hardware(hw_path)
    sc = _checked(p, merged, model, params, hw, ov)
    _check_grid_values(sc, ov)
    return sc


# Settings, grids and where a bad value came from -----------------------------------------------


def _apply_settings(doc: dict[str, Any], ov: Overrides) -> dict[str, Any]:
    for s in ov.settings:
        try:
            doc = set_path(doc, s.path, s.value)
        except ValueError as exc:
            raise ConfigError.one(s.file, s.field, str(exc)) from None
    return doc


def _merge_grid(merged: dict[str, Any], ov: Overrides) -> dict[str, Any]:
    """The file's `grid:` with the axes of ov.grid replacing (or joining) its own."""
    if ov.grid and isinstance(merged.get("grid") or {}, dict):
        grid = dict(merged.get("grid") or {})
        for s in ov.grid:
            grid[s.path] = s.value
        merged["grid"] = grid
    return merged


def _attribute(prob: Problem, file: str, ov: Overrides) -> Problem:
    """Name the flag, the sweep file's entry or the --grid flag a bad value came from, if it came
    from one of them rather than from the scenario file."""
    if prob.file != file:
        return prob
    f = prob.field
    top = f.split(".")[0].split("[")[0]
    if top in Overrides.FLAGS and getattr(ov, top) is not None:
        return Problem("command line", Overrides.FLAGS[top], prob.message, prob.value, prob.has_value)
    for s in reversed(ov.grid):
        head = f"grid.{s.path}"
        if f == head or f.startswith(head + "["):
            return Problem(s.file, s.field + f[len(head) :], prob.message, prob.value, prob.has_value)
    for s in reversed(ov.settings):
        if f == s.path or f.startswith((s.path + ".", s.path + "[")):
            return Problem(s.file, s.field + f[len(s.path) :], prob.message, prob.value, prob.has_value)
    return prob


@contextmanager
def _attributed(p: Path, ov: Overrides) -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        if not (ov.settings or ov.grid or any(getattr(ov, f) is not None for f in Overrides.FLAGS)):
            raise
        raise ConfigError([_attribute(prob, str(p), ov) for prob in exc.problems]) from None


def _check_grid_values(sc: Scenario, ov: Overrides) -> None:
    """Every value of every grid axis, applied on its own, must make a valid scenario."""
    problems: list[Problem] = []
    for path, values in sc.model.grid.items():
        where = next(((s.file, s.field) for s in reversed(ov.grid) if s.path == path), None)
        where = where or (sc.path, f"grid.{path}")
        for v in values:
            try:
                sc.with_settings([(path, v)])
            except ConfigError as exc:
                for prob in exc.problems:
                    if prob.file == sc.path and (prob.field == path or prob.field.startswith(path + ".")):
                        problems.append(Problem(*where, prob.message, v, True))
                    else:
                        problems.append(Problem(*where, f"with {path} = {v!r}: {prob}"))
    if problems:
        raise ConfigError(problems)


# Validation -----------------------------------------------------------------------------------


def _validate_document(
    p: Path, merged: dict[str, Any], ov: Overrides, given: dict[str, Any]
) -> tuple[ScenarioModel, BaseModel]:
    """The common fields and the workload's own section of a merged scenario document."""
    with _attributed(p, ov):
        try:
            model = ScenarioModel.model_validate(merged, strict=True)
        except Exception as exc:  # pydantic.ValidationError
            from pydantic import ValidationError

            if not isinstance(exc, ValidationError):
                raise
            problems = []
            for prob in problems_from_validation(str(p), exc):
                top = prob.field.split(".")[0].split("[")[0]
                if top in given:
                    prob = Problem(
                        "command line", Overrides.FLAGS[top], prob.message, prob.value, prob.has_value
                    )
                problems.append(prob)
            raise ConfigError(problems) from None

        workload = WORKLOADS[model.workload]
        for other in WORKLOADS:
            if other != model.workload and getattr(model, other) is not None:
                raise ConfigError.one(
                    str(p), other, f"section for another workload (this scenario runs {model.workload})"
                )
        section = getattr(model, model.workload) or {}
        params = validate(workload.params, section, str(p), prefix=model.workload)
        problems = work_problems(model.workload, params, section, str(p))
        if model.points() > MAX_POINTS:
            what = " x ".join(
                [
                    f"{len(model.strategies)} strategies",
                    f"{len(model.batches)} batches",
                    f"{len(model.cpus)} CPU counts",
                    *(f"{len(v)} {k}" for k, v in model.grid.items()),
                    f"{model.replications} replications",
                ]
            )
            msg = f"{model.points():,} points ({what}); at most {MAX_POINTS:,} in one scenario"
            problems.append(Problem(str(p), "", msg))
        if problems:
            raise ConfigError(problems)
    return model, params


def _checked(
    p: Path,
    merged: dict[str, Any],
    model: ScenarioModel,
    params: BaseModel,
    hw: Hardware,
    ov: Overrides,
    calibration: Calibration | None = None,
) -> Scenario:
    """The scenario, once its values are checked against the hardware and its costs derived from
    the hardware's calibration (`calibration`: the files already read for it, if any)."""
    cal = calibration or Calibration(hw)
    workload = WORKLOADS[model.workload]
    with _attributed(p, ov):
        cpu_where = ("command line", "--cpus") if ov.cpus is not None else (str(p), "cpus")
        too_many = [c for c in model.cpus if c > hw.ncpus]
        if too_many:
            raise ConfigError.one(
                cpu_where[0], cpu_where[1], f"more CPUs than {hw.name} has ({hw.ncpus})", too_many[0]
            )
        workload.check(model, params, hw, str(p))
        derived = workload.derive(params, cal)
    # derived now, so that a point never meets these failures: the calibration derivation, and
    # nodes too small for their own watermarks (which depend on the kernel's THP setting)
    costs, _ = derive(hw, cal.profile, reference=cal.reference)
    small = check_node_memory(hw, thp=model.kernel.thp)
    if small:
        raise ConfigError([Problem(hw.path, "topology.nodes", msg) for msg in small])
    return Scenario(
        model=model,
        params=params,
        hardware=hw,
        path=str(p),
        source=merged,
        calibration=cal,
        costs=costs,
        code=code_paths(),
        derived=derived,
    )
