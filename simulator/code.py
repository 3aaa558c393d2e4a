"""Kernel code footprints as data: the hot text and taken branches of each modelled function, and
the code paths callers run (simulator/code_footprints.yaml, validated here). The front-end model
(simulator/machine/frontend.py) prices running them."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulator.machine.frontend import CodeRegion
from simulator.yamlio import FieldError, read_yaml_mapping, validate

FOOTPRINTS_FILE = Path(__file__).resolve().parent / "code_footprints.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Function(_Strict):
    size: int = Field(gt=0, le=1 << 20, description="whole text, bytes")
    build: str = ""
    source: str = ""
    assumed: bool = False


class FootprintsFile(_Strict):
    hot_fraction: float = Field(gt=0, le=1)
    bytes_per_taken_branch: float = Field(gt=0)
    functions: dict[str, Function]
    paths: dict[str, list[str]]

    @model_validator(mode="after")
    def _known(self) -> FootprintsFile:
        for name, funcs in self.paths.items():
            for i, f in enumerate(funcs):
                if f not in self.functions:
                    raise FieldError(f"paths.{name}[{i}]", "not a function of `functions:`", f)
            if not funcs:
                raise FieldError(f"paths.{name}", "a path needs at least one function")
        for name, f in self.functions.items():
            if not f.assumed and not f.source:
                raise FieldError(f"functions.{name}", "a size needs its `source` (or `assumed: true`)")
        return self


@dataclass(frozen=True)
class CodePaths:
    """Every code path, as regions: hot text = size x hot_fraction (x `assumed_scale` for the
    sizes no trace gives), taken branches = hot text / bytes per taken branch."""

    paths: dict[str, tuple[CodeRegion, ...]]
    # joined paths, built once: the front end prices a path object once per code order
    _joined: dict[tuple[str, ...], tuple[CodeRegion, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __getitem__(self, name: str) -> tuple[CodeRegion, ...]:
        return self.paths[name]

    def of(self, *names: str) -> tuple[CodeRegion, ...]:
        """The paths `names`, one after another."""
        joined = self._joined.get(names)
        if joined is None:
            joined = self._joined[names] = tuple(r for n in names for r in self.paths[n])
        return joined


def load_footprints(path: Path = FOOTPRINTS_FILE) -> FootprintsFile:
    return validate(FootprintsFile, read_yaml_mapping(path), str(path))


@cache
def code_paths(hot_scale: float = 1.0, assumed_scale: float = 1.0) -> CodePaths:
    """The code paths of simulator/code_footprints.yaml; the scales multiply the hot fraction and
    the assumed sizes (the validation report's what-ifs)."""
    f = load_footprints()
    regions: dict[str, CodeRegion] = {}
    for name, fn in f.functions.items():
        size = fn.size * (assumed_scale if fn.assumed else 1.0)
        text = max(1, round(size * f.hot_fraction * hot_scale))
        regions[name] = CodeRegion(name, text, max(1, round(text / f.bytes_per_taken_branch)))
    return CodePaths({p: tuple(regions[n] for n in funcs) for p, funcs in f.paths.items()})
