"""Workloads: each builds its SimPy processes on a Machine from a scenario and measures them.

A workload module in this package defines `WORKLOAD = Workload(...)`: its parameter model (the
scenario section named after it), a cross-check against the hardware, a run function returning
the workload's own figures, and the columns worth showing in the CLI's table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from simulator.hardware import Hardware
    from simulator.run import PointContext

KNOWN = ("page_bench", "xdp_redirect", "nfs")


def _no_check(model: Any, params: BaseModel, hw: Hardware, file: str) -> None:
    return None


@dataclass(frozen=True)
class Workload:
    name: str
    params: type[BaseModel]
    run: Callable[[PointContext], dict[str, Any]]
    check: Callable[[Any, BaseModel, Hardware, str], None] = _no_check
    summary: tuple[str, ...] = ()  # the workload's figures the CLI table shows


WORKLOADS: dict[str, Workload] = {}


def _register_builtin() -> None:
    for name in KNOWN:
        modname = f"{__name__}.{name}"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                continue
            raise
        WORKLOADS[name] = mod.WORKLOAD


_register_builtin()
