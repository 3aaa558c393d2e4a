"""Streaming statistics with bounded memory: a log-bucketed histogram of durations.

Model code records every IRQ-off window, lock wait and request latency here instead of keeping
lists, so memory stays flat however long the simulated run. Quantiles are read back with a
relative error below 1 % (BUCKETS_PER_DECADE = 240 gives bucket edges 0.96 % apart).
"""

from __future__ import annotations

import math

import numpy as np

BUCKETS_PER_DECADE = 240
LOW_NS = 0.01  # values below (including 0) go to bucket 0
DECADES = 13  # 0.01 ns .. 100 s
NBUCKETS = BUCKETS_PER_DECADE * DECADES + 2
_LOG_LOW = math.log10(LOW_NS)


def _bucket(value: float) -> int:
    """The bucket of one value, as _flush() buckets it: np.log10, whose result differs from
    math.log10's in the last bit for some values on bucket edges (10^-1.5 is one)."""
    if value < LOW_NS:
        return 0
    b = int((float(np.log10(value)) - _LOG_LOW) * BUCKETS_PER_DECADE) + 1
    return b if b < NBUCKETS else NBUCKETS - 1


def bucket_upper(b: np.ndarray) -> np.ndarray:
    """Upper edge (ns) of each bucket index in `b`."""
    return np.where(b == 0, LOW_NS, 10.0 ** (_LOG_LOW + b / BUCKETS_PER_DECADE))


PENDING = 512  # single values buffered before they are bucketed in one vectorised step


class Histogram:
    """Counts, sum and exact max of non-negative durations (ns), in log buckets."""

    __slots__ = ("_counts", "_pending", "n", "total", "max")

    def __init__(self) -> None:
        self._counts = np.zeros(NBUCKETS, dtype=np.int64)
        self._pending: list[float] = []
        self.n = 0
        self.total = 0.0
        self.max = 0.0

    @property
    def counts(self) -> np.ndarray:
        """Occurrences per bucket."""
        if self._pending:
            self._flush()
        return self._counts

    def _flush(self) -> None:
        v = np.asarray(self._pending, dtype=np.float64)
        self._pending.clear()
        b = ((np.log10(np.maximum(v, LOW_NS)) - _LOG_LOW) * BUCKETS_PER_DECADE).astype(np.int64) + 1
        b[v < LOW_NS] = 0
        np.clip(b, 0, NBUCKETS - 1, out=b)
        self._counts += np.bincount(b, minlength=NBUCKETS)

    def add(self, value: float, weight: int = 1) -> None:
        """Record `weight` occurrences of `value`."""
        if weight == 1:
            self._pending.append(value)
            if len(self._pending) >= PENDING:
                self._flush()
        else:
            self._counts[_bucket(value)] += weight
        self.n += weight
        self.total += value * weight
        if value > self.max:
            self.max = value

    def add_each(self, values: np.ndarray) -> None:
        """add(v) for each value in turn: the same counts, and the same total to the last bit
        (a running sum, left to right, where add_many sums pairwise)."""
        if len(values) == 0:
            return
        v = np.asarray(values, dtype=np.float64)
        self._pending.extend(v.tolist())
        if len(self._pending) >= PENDING:
            self._flush()
        self.n += len(v)
        self.total = float(np.cumsum(np.concatenate(([self.total], v)))[-1])
        m = float(v.max())
        if m > self.max:
            self.max = m

    def add_many(self, values: np.ndarray) -> None:
        """Record every value of an array in one step."""
        if len(values) == 0:
            return
        v = np.asarray(values, dtype=np.float64)
        safe = np.maximum(v, LOW_NS)
        b = ((np.log10(safe) - _LOG_LOW) * BUCKETS_PER_DECADE).astype(np.int64) + 1
        b[v < LOW_NS] = 0
        np.clip(b, 0, NBUCKETS - 1, out=b)
        self._counts += np.bincount(b, minlength=NBUCKETS)
        self.n += len(v)
        self.total += float(v.sum())
        m = float(v.max())
        if m > self.max:
            self.max = m

    def merge(self, other: Histogram) -> None:
        if self._pending:
            self._flush()
        self._counts += other.counts
        self.n += other.n
        self.total += other.total
        self.max = max(self.max, other.max)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def quantile(self, q: float) -> float:
        """The q-quantile (0 < q <= 1), to bucket resolution; exact for q=1 (the max)."""
        if self.n == 0:
            return 0.0
        if q >= 1.0:
            return self.max
        rank = q * self.n
        cum = np.cumsum(self.counts)
        b = int(np.searchsorted(cum, rank, side="left"))
        return float(min(bucket_upper(np.array([b]))[0], self.max))
