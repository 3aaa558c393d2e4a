"""Workloads: each builds its SimPy processes on a Machine from a scenario and measures them.

A workload is registered here with its parameter model (the scenario section of its name), a
cross-check against the hardware, and a run function returning the workload's own figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from simulator.hardware import Hardware
    from simulator.run import PointContext


def _no_check(model: Any, params: BaseModel, hw: Hardware, file: str) -> None:
    return None


@dataclass(frozen=True)
class Workload:
    name: str
    params: type[BaseModel]
    run: Callable[[PointContext], dict[str, Any]]
    check: Callable[[Any, BaseModel, Hardware, str], None] = _no_check


WORKLOADS: dict[str, Workload] = {}


def register(w: Workload) -> None:
    WORKLOADS[w.name] = w


def _register_builtin() -> None:
    from simulator.workloads import page_bench

    register(Workload("page_bench", page_bench.PageBenchParams, page_bench.run))


_register_builtin()
