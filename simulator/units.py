"""Quantities with units, as hardware and scenario files write them ("3.6 GHz", "32 KiB", "81 ns").

Model code works in nanoseconds, bytes and GHz; this module is the only place that parses units.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from simulator.errors import short_repr as _r

_NUM = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_QUANTITY = re.compile(rf"^\s*{_NUM}\s*([A-Za-z/]*)\s*$")

BYTE_UNITS = {
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "TiB": 1 << 40,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
TIME_UNITS_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
FREQ_UNITS_GHZ = {"GHz": 1.0, "MHz": 1e-3}
# bandwidth in bytes per ns: 1 GB/s (10^9 B/s, as STREAM and MLC report) is 1 B/ns
BANDWIDTH_UNITS = {"GB/s": 1.0, "MB/s": 1e-3, "GiB/s": (1 << 30) / 1e9, "MiB/s": (1 << 20) / 1e9}


class UnitError(ValueError):
    """A value that does not parse as the expected kind of quantity."""


def _split(text: object, kind: str, units: dict[str, float] | list[str]) -> tuple[float, str]:
    if isinstance(text, bool):
        raise UnitError(f"expected {kind} with a unit (one of {', '.join(units)}), got {_r(text)}")
    if isinstance(text, (int, float)):
        raise UnitError(
            f"expected {kind} with a unit (one of {', '.join(units)}), got the bare number {_r(text)}"
        )
    if not isinstance(text, str):
        raise UnitError(f"expected {kind} as a string such as '64 B', got {type(text).__name__}")
    m = _QUANTITY.match(text)
    if not m:
        raise UnitError(f"expected {kind} such as '{_example(kind)}', got {_r(text)}")
    value, unit = float(m.group(1)), m.group(2)
    if not math.isfinite(value):
        raise UnitError(f"expected {kind} with a finite value, got {_r(text)}")
    if not unit:
        raise UnitError(f"expected {kind} with a unit (one of {', '.join(units)}), got a number without one")
    if unit not in units:
        raise UnitError(f"unknown unit {unit!r} in {_r(text)}: expected {kind} in one of {', '.join(units)}")
    return value, unit


def _example(kind: str) -> str:
    examples = {"a size": "32 KiB", "a duration": "81 ns", "a frequency": "3.6 GHz", "a bandwidth": "75 GB/s"}
    return examples.get(kind, "4 cycles")


def parse_bytes(text: object) -> int:
    """'32 KiB' -> 32768. Sizes must be whole, non-negative byte counts."""
    value, unit = _split(text, "a size", BYTE_UNITS)
    nbytes = value * BYTE_UNITS[unit]
    if not math.isfinite(nbytes):  # "1e300 TiB": finite as written, not as a byte count
        raise UnitError(f"expected a size that fits in a float, got {_r(text)}")
    if nbytes < 0 or nbytes != int(nbytes):
        raise UnitError(f"expected a whole, non-negative number of bytes, got {_r(text)}")
    return int(nbytes)


def parse_ns(text: object) -> float:
    """'1.2 us' -> 1200.0 (nanoseconds). Durations must be non-negative."""
    value, unit = _split(text, "a duration", TIME_UNITS_NS)
    if value < 0:
        raise UnitError(f"expected a non-negative duration, got {_r(text)}")
    ns = value * TIME_UNITS_NS[unit]
    if not math.isfinite(ns):  # "1e300 s" is finite, but not in nanoseconds
        raise UnitError(f"expected a duration that fits in a float of nanoseconds, got {_r(text)}")
    return ns


def parse_ghz(text: object) -> float:
    """'3.6 GHz' -> 3.6. Frequencies must be positive."""
    value, unit = _split(text, "a frequency", FREQ_UNITS_GHZ)
    if value <= 0:
        raise UnitError(f"expected a positive frequency, got {_r(text)}")
    return value * FREQ_UNITS_GHZ[unit]


def parse_bandwidth(text: object) -> float:
    """'75 GB/s' -> 75.0 (bytes per ns). Bandwidths must be positive."""
    value, unit = _split(text, "a bandwidth", BANDWIDTH_UNITS)
    if value <= 0:
        raise UnitError(f"expected a positive bandwidth, got {_r(text)}")
    return value * BANDWIDTH_UNITS[unit]


def format_bandwidth(value: float) -> str:
    """75.0 -> '75 GB/s' (exact: repr of the float), the inverse of parse_bandwidth."""
    return f"{value!r} GB/s" if value != int(value) else f"{int(value)} GB/s"


@dataclass(frozen=True)
class Latency:
    """A cost given either in cycles (of a stated clock) or in nanoseconds."""

    value: float
    unit: str  # "cycles" or "ns"

    def ns(self, ghz: float) -> float:
        """This cost in nanoseconds on a clock of `ghz`."""
        return self.value / ghz if self.unit == "cycles" else self.value

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


def parse_latency(text: object) -> Latency:
    """'37 cycles' or '10.4 ns' -> Latency. Non-negative."""
    value, unit = _split(text, "a cost", ["cycles", *TIME_UNITS_NS])
    if value < 0:
        raise UnitError(f"expected a non-negative cost, got {_r(text)}")
    if unit == "cycles":
        return Latency(value, "cycles")
    ns = value * TIME_UNITS_NS[unit]
    if not math.isfinite(ns):
        raise UnitError(f"expected a cost that fits in a float of nanoseconds, got {_r(text)}")
    return Latency(ns, "ns")


MAX_CPU_ID = 8191  # x86 NR_CPUS is at most 8192; a larger id is a typo, not a machine


def parse_cpulist(text: object) -> list[int]:
    """Linux cpulist syntax: '0-5,12,14-15' -> [0, 1, 2, 3, 4, 5, 12, 14, 15]."""
    if isinstance(text, int) and not isinstance(text, bool):
        return _cpu_ids([text], text)
    if isinstance(text, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in text):
        return _cpu_ids(list(text), text)
    if not isinstance(text, str) or not text.strip():
        raise UnitError(f"expected a cpulist such as '0-5,8', got {_r(text)}")
    cpus: list[int] = []
    for part in text.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UnitError(f"expected a cpulist such as '0-5,8', got {_r(text)}")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UnitError(f"cpulist range {part!r} runs backwards in {_r(text)}")
        if hi > MAX_CPU_ID:
            raise UnitError(f"cpulist {_r(text)} names CPU {hi}, above the largest id {MAX_CPU_ID}")
        cpus.extend(range(lo, hi + 1))
    if len(set(cpus)) != len(cpus):
        raise UnitError(f"cpulist {_r(text)} names a CPU twice")
    return cpus


def _cpu_ids(cpus: list[int], text: object) -> list[int]:
    """CPU ids given as YAML integers: the same range and uniqueness rules as the string form."""
    bad = [c for c in cpus if not 0 <= c <= MAX_CPU_ID]
    if bad:
        raise UnitError(f"cpulist {_r(text)} names CPU {bad[0]}, outside 0..{MAX_CPU_ID}")
    if len(set(cpus)) != len(cpus):
        raise UnitError(f"cpulist {_r(text)} names a CPU twice")
    return cpus


def format_cpulist(cpus: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8', the inverse of parse_cpulist."""
    out: list[str] = []
    ids = sorted(cpus)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(f"{ids[i]}" if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


def format_ns(value: float) -> str:
    """1200.0 -> '1200 ns' (exact: repr of the float), the inverse of parse_ns."""
    return f"{value!r} ns" if value != int(value) else f"{int(value)} ns"


# A duration field of a YAML schema: parsed from "100 us", kept in ns, written back with its unit
# (so a resolved configuration written beside results loads again).
Duration = Annotated[
    float, BeforeValidator(parse_ns), PlainSerializer(format_ns, return_type=str, when_used="json")
]


def format_bytes(value: int) -> str:
    """32768 -> '32 KiB' (exact), the inverse of parse_bytes."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        size = BYTE_UNITS[unit]
        if value and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} B"


# A size field of a YAML schema: parsed from "32 KiB", kept in bytes, written back with its unit.
Size = Annotated[
    int, BeforeValidator(parse_bytes), PlainSerializer(format_bytes, return_type=str, when_used="json")
]
