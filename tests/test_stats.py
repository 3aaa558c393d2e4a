"""simulator/stats.py: the log-bucketed Histogram behind every p50/p99 figure in a row.

- quantile() against numpy's on random data: the histogram returns the upper edge of the bucket
  holding numpy's quantile (the inverted-CDF one: the smallest recorded value with at least q of
  the values at or below it), capped at the exact max. So it is never below the true quantile and
  less than one bucket width (10^(1/240) - 1 = 0.964 %) above it: the "below 1 %" the module
  claims. Values under LOW_NS share bucket 0 and read back as LOW_NS.
- The three ways values reach the buckets (add() one at a time through the vectorised flush, add()
  with a weight through the scalar _bucket(), add_each() and add_many() in one step) bucket every
  value alike, bucket edges included, and add_each() sums exactly as add() does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.stats import BUCKETS_PER_DECADE, LOW_NS, NBUCKETS, PENDING, Histogram, _bucket

BUCKET_WIDTH = 10 ** (1 / BUCKETS_PER_DECADE)  # ratio of a bucket's upper to its lower edge
ROUNDING = 1e-12  # log10 of a value on a bucket edge may round either way

durations = st.floats(min_value=0.0, max_value=1e10, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=LOW_NS, max_value=1e10, allow_nan=False, allow_infinity=False)
quantiles = st.one_of(
    st.sampled_from([0.5, 0.9, 0.99, 0.999, 1.0]),
    st.floats(min_value=1e-6, max_value=1.0, exclude_min=False),
)


def numpy_quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q, method="inverted_cdf"))


def filled(values: np.ndarray) -> Histogram:
    h = Histogram()
    for v in values.tolist():
        h.add(v)
    return h


@settings(max_examples=150, deadline=None)
@given(
    values=st.one_of(
        st.lists(positive, min_size=1, max_size=400),
        # log-normal like the model's latencies, and many ties (a window length repeated)
        st.builds(
            lambda seed, n, sigma: np.random.default_rng(seed).lognormal(5.0, sigma, n).tolist(),
            st.integers(0, 2**32 - 1),
            st.integers(1, 3000),
            st.floats(0.01, 3.0),
        ),
        st.builds(lambda v, n: [v] * n, positive, st.integers(1, 50)),
    ),
    q=quantiles,
)
def test_quantile_is_numpys_to_within_one_bucket(values: list[float], q: float) -> None:
    v = np.asarray(values, dtype=np.float64)
    h = filled(v)
    got, want = h.quantile(q), numpy_quantile(v, q)
    if want < LOW_NS:  # bucket 0: read back as LOW_NS (or the max, if that is lower)
        assert got == min(LOW_NS, h.max)
    else:
        assert want * (1 - ROUNDING) <= got <= want * BUCKET_WIDTH * (1 + ROUNDING)
        assert got / want - 1 < 0.01  # the module's claim
    assert h.quantile(1.0) == v.max()  # exact


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.floats(0.0, LOW_NS, exclude_max=True), min_size=1, max_size=50), q=quantiles)
def test_values_below_low_ns_read_back_as_low_ns(values: list[float], q: float) -> None:
    h = filled(np.asarray(values))
    assert h.counts[0] == len(values)
    assert h.quantile(q) == (max(values) if q >= 1.0 else min(LOW_NS, max(values)))


def test_quantile_of_an_empty_histogram_is_zero() -> None:
    assert Histogram().quantile(0.99) == 0.0


def test_quantile_hand_worked() -> None:
    """100 windows: 90 of 100 ns, 9 of 1000 ns, one of 5000 ns. p50 and p90 are 100 ns, p99
    1000 ns and p999 the max, each read back as its bucket's upper edge (or the max)."""
    h = filled(np.array([100.0] * 90 + [1000.0] * 9 + [5000.0]))

    def upper(v: float) -> float:  # the upper edge of v's bucket: 10^(log10(LOW_NS) + b/240)
        return 10 ** (math.log10(LOW_NS) + _bucket(v) / BUCKETS_PER_DECADE)

    assert 100.0 < upper(100.0) < 100.0 * BUCKET_WIDTH
    assert h.quantile(0.5) == h.quantile(0.9) == pytest.approx(upper(100.0), rel=1e-12)
    assert h.quantile(0.99) == pytest.approx(upper(1000.0), rel=1e-12)
    assert h.quantile(0.999) == h.quantile(1.0) == 5000.0


def _edges() -> list[float]:
    """Values on and next to every bucket edge 10^(k/240) ns."""
    out = []
    for k in range(NBUCKETS + 2):
        e = 10 ** (math.log10(LOW_NS) + k / BUCKETS_PER_DECADE)
        out += [e, math.nextafter(e, 0.0), math.nextafter(e, math.inf)]
    return out


EDGES = _edges()


def test_every_bucket_edge_goes_to_the_same_bucket_by_either_path() -> None:
    vectorised = Histogram()
    vectorised.add_each(np.array(EDGES))
    scalar = np.bincount([_bucket(x) for x in EDGES], minlength=NBUCKETS)
    assert np.array_equal(vectorised.counts, scalar)


edge_values = st.one_of(durations, st.sampled_from(EDGES), st.just(0.0), st.just(LOW_NS))


@settings(max_examples=100, deadline=None)
@given(values=st.lists(edge_values, min_size=1, max_size=3 * PENDING))
def test_scalar_and_vectorised_bucket_paths_agree(values: list[float]) -> None:
    """add(v) buffers values and buckets them in a vectorised flush; add(v, weight) buckets one
    value with the scalar _bucket(); add_each() and add_many() bucket arrays. The counts must
    agree value for value, on bucket edges too. (They did not: _bucket() took math.log10, which
    differs from np.log10 in the last bit on some edges, 10^-1.5 among them.)"""
    v = np.asarray(values, dtype=np.float64)
    one = filled(v)
    weighted = Histogram()
    for x in values:
        weighted.add(x, 2)
    each, many = Histogram(), Histogram()
    each.add_each(v)
    many.add_many(v)
    assert np.array_equal(one.counts * 2, weighted.counts)
    assert np.array_equal(one.counts, each.counts)
    assert np.array_equal(one.counts, many.counts)
    for x in values:
        b = _bucket(x)
        lone = Histogram()
        lone.add(x)
        assert lone.counts[b] == 1, f"{x!r}: scalar bucket {b}, vectorised {np.nonzero(lone.counts)[0]}"
    assert one.n == each.n == many.n == len(values) and weighted.n == 2 * len(values)
    assert one.max == each.max == many.max == weighted.max == max(values)
    assert each.total == one.total  # add_each: the same running sum, to the last bit
    assert many.total == pytest.approx(one.total, rel=1e-12)


def test_merge_adds_counts_and_keeps_the_max() -> None:
    a, b = filled(np.array([1.0, 2.0, 3.0])), filled(np.array([10.0, 0.0078125]))
    a.merge(b)
    assert (a.n, a.max, a.total) == (5, 10.0, 16.0078125)
    assert a.counts.sum() == 5 and a.counts[0] == 1
