"""The compiled core (simulator/machine/cache_core.py) runs as plain Python under
NUMBA_DISABLE_JIT=1, and gives the same rows to the bit: a few snapshot cases run both ways, the
uncompiled one in a fresh interpreter (numba reads the variable when it is imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import snapshots
from conftest import ROOT

from simulator.machine import cache_core

# small cases that between them price page lines, metadata lines, tapes, batches, ASYNC stretches
# and IRQ windows on one and several CPUs
CASES = ["page_bench b64 c1", "page_bench b512 c6", "xdp_redirect refill 16", "nfs_256k_rw"]

_SCRIPT = """
import json, sys
from numba import config
assert config.DISABLE_JIT, "NUMBA_DISABLE_JIT is not in effect"
import snapshots
print(json.dumps(snapshots.run_case(snapshots.case(sys.argv[1]))))
"""


@pytest.mark.parametrize("label", CASES)
def test_rows_are_identical_without_the_jit(label: str) -> None:
    path = os.pathsep.join([str(ROOT / "tests"), str(ROOT)])
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1", "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, label],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    plain = json.loads(out.stdout)
    compiled = snapshots.run_case(snapshots.case(label))
    assert cache_core.price.signatures, "this process should run the compiled core"
    assert plain.keys() == compiled.keys()
    for point in compiled:
        # compared as JSON text: NaN equals NaN, and every float is written with all its digits
        diff = {f for f in compiled[point] if json.dumps(compiled[point][f]) != json.dumps(plain[point][f])}
        assert not diff, f"{label} {point}: {sorted(diff)} differ without the JIT"
