"""A CPU's front end: what fetching, decoding and predicting a code path's instructions costs when
the code that ran in between evicted them.

Each modelled kernel function is a CodeRegion: its hot text (bytes executed per run) and its
taken branches (simulator/code_footprints.yaml, with sources). A CPU runs code paths (ordered
groups of regions); each structure of its front end holds the code that ran most recently, as an
LRU stack by reuse distance, like the data side (simulator/machine/cache.py):

- the L1 instruction cache (hardware `frontend.l1i.size`): a region's lines miss when more than
  the cache holds of other code ran since the region's last run (in proportion: the excess, up to
  the region's own lines); each missed line is fetched from the L2 (or the LLC if even the L2 no
  longer holds it) at that level's load latency, `frontend.ifetch_overlap` misses at a time;
- the decoded-uop cache (`frontend.uop_cache`): the region's 32-byte windows it no longer holds
  are decoded again by the legacy decoders, each paying `switch_penalty`;
- the branch target buffer (`frontend.btb`): taken branches it no longer holds are predicted only
  after decode, each paying `miss_penalty` (a front-end resteer).

The instruction work the profile gave each function stays as it is; what the front end adds is
the stall. The calibration replay (simulator/replay.py) charges the profiled run's stalls to the
profiled functions so that they are not counted twice (simulator/calibration.py).

Simplifications (docs/model.md): structures are fully associative LRU over whole regions; code
is never evicted from the L2 by data (the L2 is 8x the L1i and the packet path's data is mostly
hot); a loop whose body fits pays only on its first iteration (loop(); the body's steady state
is computed, not assumed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

_MEMO_MAX = 4096  # priced (path, code order) pairs kept per CPU; cleared when full
WINDOW = 32  # bytes of code per decoded-uop-cache lookup (Intel's Decoded ICache, AMD's op cache)


@dataclass(frozen=True)
class CodeRegion:
    """One kernel function (or an inlined group) as the front end sees it."""

    name: str
    text: int  # hot text: bytes of instructions executed per run
    branches: int  # taken branches per run (BTB entries it needs)


@dataclass(frozen=True)
class FrontEndSpec:
    """A core's front end, in the units the model prices: bytes, entries and ns."""

    l1i_bytes: int
    line: int
    l2_fetch_ns: float  # an L1i miss served by the L2 (the L2 load latency beyond an L1 hit)
    llc_fetch_ns: float  # served by the LLC
    l2_bytes: int
    overlap: float  # missed lines fetched at once
    uop_bytes: int  # code bytes the decoded-uop cache covers
    switch_ns: float  # decoded-uop cache miss: the legacy decode pipeline, per 32-byte window
    btb_entries: int
    resteer_ns: float  # a taken branch the BTB does not hold


@dataclass
class FrontEndStats:
    fetch_ns: float = 0.0
    decode_ns: float = 0.0
    resteer_ns: float = 0.0
    missed_lines: float = 0.0
    runs: int = 0

    @property
    def total_ns(self) -> float:
        return self.fetch_ns + self.decode_ns + self.resteer_ns


class _Priced(NamedTuple):
    """One run of a path from one code order: each region's stall, their sum (in order, from
    0.0) and the statistics' parts."""

    stalls: tuple[tuple[str, float], ...]
    total: float
    fetch: float
    decode: float
    resteer: float
    lines: float


class FrontEnd:
    """One CPU's front-end state: the regions it ran, most recent last."""

    def __init__(self, spec: FrontEndSpec) -> None:
        self.spec = spec
        self._recent: OrderedDict[str, CodeRegion] = OrderedDict()
        self.stats = FrontEndStats()
        # told (region, stall ns) for each region run (the calibration replay's attribution)
        self.observer: Callable[[str, float], None] | None = None
        self._memo: dict[tuple[int, tuple[str, ...]], tuple[Sequence[CodeRegion], _Priced]] = {}

    def _distance(self, r: CodeRegion) -> tuple[int, int] | None:
        """Bytes and branches of the other code that ran since `r` last ran (None: never ran)."""
        if r.name not in self._recent:
            return None
        text = branches = 0
        for name in reversed(self._recent):
            if name == r.name:
                break
            other = self._recent[name]
            text += other.text
            branches += other.branches
        return text, branches

    def _price(self, path: Sequence[CodeRegion]) -> _Priced:
        """Run `path` from the current state (which this updates) and price each region."""
        s = self.spec
        stalls = []
        total = fetch_sum = decode_sum = resteer_sum = lines_sum = 0.0
        for r in path:
            d = self._distance(r)
            if d is None:
                # never ran on this CPU: every line and window is cold, every branch unknown
                miss_text, miss_win_bytes, miss_br, far = r.text, r.text, r.branches, True
            else:
                dt, db = d
                miss_text = min(max(dt + r.text - s.l1i_bytes, 0), r.text)
                miss_win_bytes = min(max(dt + r.text - s.uop_bytes, 0), r.text)
                miss_br = min(max(db + r.branches - s.btb_entries, 0), r.branches)
                far = dt + r.text > s.l2_bytes
            lines = miss_text / s.line
            fetch = lines * (s.llc_fetch_ns if far else s.l2_fetch_ns) / s.overlap
            decode = miss_win_bytes / WINDOW * s.switch_ns
            resteer = miss_br * s.resteer_ns
            self._recent[r.name] = r
            self._recent.move_to_end(r.name)
            stall = fetch + decode + resteer
            stalls.append((r.name, stall))
            total += stall
            fetch_sum += fetch
            decode_sum += decode
            resteer_sum += resteer
            lines_sum += lines
        return _Priced(tuple(stalls), total, fetch_sum, decode_sum, resteer_sum, lines_sum)

    def run(self, path: Sequence[CodeRegion], weight: int = 1) -> float:
        """Run the regions of `path` in order; returns their front-end stall (ns). `weight`: this
        run stands for that many identical runs in the statistics (loop())."""
        # The stall depends only on the path and the order of the code that ran before it, and
        # loops repeat both: price each (path, order) once. `path` is kept in the entry so that a
        # reused id() cannot hit.
        key = (id(path), tuple(self._recent))
        hit = self._memo.get(key)
        if hit is not None and hit[0] is path:
            p = hit[1]
            recent = self._recent
            for r in path:
                recent[r.name] = r
                recent.move_to_end(r.name)
        else:
            p = self._price(path)
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[key] = (path, p)
        st = self.stats
        st.fetch_ns += p.fetch * weight
        st.decode_ns += p.decode * weight
        st.resteer_ns += p.resteer * weight
        st.missed_lines += p.lines * weight
        st.runs += weight
        if self.observer is not None:
            for name, stall in p.stalls:
                self.observer(name, stall * weight)
        return p.total

    def loop(self, body: Sequence[CodeRegion], iterations: int) -> float:
        """`iterations` runs of `body` back to back: the first from the current state, every
        later one from the state the one before left (the same, since the body is the same:
        computed once and multiplied). Returns the total stall (ns)."""
        if iterations <= 0:
            return 0.0
        first = self.run(body)
        if iterations == 1:
            return first
        steady = self.run(body, iterations - 1)
        return first + steady * (iterations - 1)

    def occupy(self, path: Sequence[CodeRegion]) -> None:
        """`path` ran, priced elsewhere (a cost that already includes its own front end): its code
        takes its place in the structures, evicting older code, at no cost here."""
        for r in path:
            self._recent[r.name] = r
            self._recent.move_to_end(r.name)

    def footprint(self) -> int:
        """Bytes of hot text of every region this CPU has run."""
        return sum(r.text for r in self._recent.values())


def path_text(path: Iterable[CodeRegion]) -> int:
    return sum(r.text for r in path)
