"""This tree against an older one, in one run, and the compiled core's first-run cost.

Used by `benchmarks/run.py --part speedup` (and `all`):

- `speedups()`: each case runs in a fresh interpreter on each tree in turn (A B A B ...: on a
  shared machine both trees see the same load), from its own scenario and hardware files, after a
  short warm-up point in the same process (imports, the JIT cache); the figure is the row's
  `wall_s` (run_point's own clock, bring-up included, process start-up not). The older tree is
  `git archive`d into a temporary directory, so the working tree is not touched. The rows differ
  when the model has changed since; only the wall time is compared.
- `compile_cost()`: a short point in a fresh interpreter with an empty numba cache (every compiled
  function compiled) and again with the cache it left (loaded from disk).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "712b7b6"  # the pure-Python tree issue 14's targets are measured against

# (label, scenario file, overrides, simulated duration)
CASES = (
    ("xdp_redirect single, 1 queue, 20 ms", "xdp_redirect.yaml", {"strategies": ["single"]}, "20 ms"),
    (
        "page_bench single b64, 1 cpu, 2 ms",
        "page_bench.yaml",
        {"strategies": ["single"], "batches": [64], "cpus": [1]},
        "2 ms",
    ),
)

_POINT = """
import json, sys
from simulator.run import expand, run_point
from simulator.scenario import Overrides, load_scenario
file, kw, warm, duration = json.loads(sys.argv[1])
for d in (warm, duration):
    sc = load_scenario("scenarios/" + file, Overrides(**kw, duration=d))
    row = run_point(sc, next(iter(expand(sc))))
print(json.dumps({"wall_s": row["wall_s"], "sim_ns": row.get("sim_ns")}))
"""


def checkout(ref: str, into: Path) -> Path:
    """The files of commit `ref` under `into` (git archive: no worktree, no checkout)."""
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


def _point(
    tree: Path, file: str, kw: dict[str, Any], duration: str, env: dict[str, str] | None = None
) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _POINT, json.dumps([file, kw, "200 us", duration])],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.splitlines()[-1])["wall_s"])


def speedups(ref: str = BASELINE, repeat: int = 3) -> list[dict[str, Any]]:
    """Each case's best wall_s on this tree and on `ref`, alternated `repeat` times."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pagesim-against-") as tmp:
        old = checkout(ref, Path(tmp))
        for label, file, kw, duration in CASES:
            new_t, old_t = [], []
            for _ in range(repeat):
                new_t.append(_point(ROOT, file, kw, duration))
                old_t.append(_point(old, file, kw, duration))
            rows.append(
                {
                    "case": label,
                    "against": ref,
                    "wall_s_this_tree": min(new_t),
                    f"wall_s_{ref}": min(old_t),
                    "speedup": min(old_t) / min(new_t),
                }
            )
    return rows


def compile_cost() -> dict[str, Any]:
    """Wall seconds of one short page_bench point in a fresh interpreter, with an empty numba
    cache (compiling) and with the cache it left."""
    file, kw = "page_bench.yaml", {"strategies": ["single"], "batches": [64], "cpus": [1]}
    script = [sys.executable, "-c", _POINT, json.dumps([file, kw, "20 us", "20 us"])]
    with tempfile.TemporaryDirectory(prefix="pagesim-numba-") as cache:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": cache}
        walls = []
        for _ in range(2):
            t = time.perf_counter()
            subprocess.run(script, cwd=ROOT, env=env, capture_output=True, check=True)
            walls.append(time.perf_counter() - t)
    return {
        "case": "a 20 us page_bench point in a fresh interpreter",
        "cold_cache_s": walls[0],
        "warm_cache_s": walls[1],
        "compile_s": walls[0] - walls[1],
    }
