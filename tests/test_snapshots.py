"""Every snapshot case (tests/snapshots.py) against its committed rows.

A failure here means the model computes something different. If the change is on purpose,
regenerate with `python tests/snapshots.py update` and commit the diff with the reason; if not,
it is a bug (a refactor or a speed change must leave every row as it was).
"""

from __future__ import annotations

import pytest
import snapshots


@pytest.mark.parametrize("label", [c[0] for c in snapshots.cases()])
def test_snapshot(label: str) -> None:
    path = snapshots.path_of(label)
    assert path.exists(), f"no snapshot {path.name}: run `python tests/snapshots.py update --only '{label}'`"
    fresh = snapshots.run_case(snapshots.case(label))
    diffs = snapshots.differences(snapshots.read(label), fresh, exact=False)
    hint = "rows moved (regenerate with `python tests/snapshots.py update` if on purpose):\n"
    assert not diffs, hint + "\n".join(diffs[:40])


def test_every_case_has_a_file_and_no_file_is_stale() -> None:
    files = {p.name for p in snapshots.SNAPSHOTS.glob("*.json")}
    expected = {snapshots.path_of(c[0]).name for c in snapshots.cases()}
    assert files == expected
    assert len({snapshots.slug(c[0]) for c in snapshots.cases()}) == len(snapshots.cases())


def test_comparison_tells_floats_apart_beyond_the_tolerance() -> None:
    nan = float("nan")
    row = {"k": {"a": 1.0, "b": 3, "c": "x", "d": nan}}

    def diff(exact: bool = False, **fields: object) -> list[str]:
        return snapshots.differences(row, {"k": {**row["k"], **fields}}, exact)

    assert diff(a=1.0 + 1e-12) == []  # last-bit noise passes the suite's tolerance
    assert diff(True, a=1.0 + 1e-12)  # but not --exact
    assert diff(a=1.0 + 1e-6)
    assert diff(b=3.0)  # an int that became a float
    assert diff(d=0.0)  # NaN only equals NaN
    assert snapshots.differences(row, {}, False) == ["GONE  k"]
