"""pagesim benchmarks: one command, one run, figures as ratios (this machine is shared and noisy).

    python benchmarks/run.py [--quick] [--out benchmarks/out]

Measures, in the same process and run:
- the SimPy ceiling: raw `yield env.timeout()` events per wall-second;
- page_bench on the reference host (1 CPU and all CPUs, `single` and `bulk_array` at batch 64):
  simulated page allocations per wall-second, SimPy events per wall-second, the ratio of each to
  the ceiling, and the slowdown (wall time per simulated time);
- peak memory (tracemalloc) per case.
Writes benchmarks/out/benchmarks.csv and prints the table. Not a test: nothing asserts speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import tracemalloc
from pathlib import Path

import pandas as pd
import simpy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.run import expand, run_point  # noqa: E402
from simulator.scenario import Overrides, load_scenario  # noqa: E402


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes."""

    def __init__(self) -> None:
        super().__init__()
        self.events = 0

    def step(self) -> None:
        self.events += 1
        super().step()


def simpy_ceiling(n: int) -> float:
    """Raw SimPy event rate: one process yielding `n` timeouts."""
    env = simpy.Environment()

    def proc(env: simpy.Environment):
        for _ in range(n):
            yield env.timeout(1)

    env.process(proc(env))
    t = time.perf_counter()
    env.run()
    return n / (time.perf_counter() - t)


def _timed_point(sc, point, memory: bool) -> tuple[dict, float, int, float]:
    """(row, wall seconds, SimPy events, peak traced MiB) of one point."""
    import simulator.run as run_mod

    envs: list[CountingEnvironment] = []
    real_env = run_mod.simpy.Environment

    def factory() -> CountingEnvironment:
        env = CountingEnvironment()
        envs.append(env)
        return env

    run_mod.simpy.Environment = factory  # type: ignore[assignment]
    if memory:
        tracemalloc.start()
    try:
        t = time.perf_counter()
        row = run_point(sc, point)
        wall = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if memory else float("nan")
    finally:
        if memory:
            tracemalloc.stop()
        run_mod.simpy.Environment = real_env  # type: ignore[assignment]
    return row, wall, envs[0].events, peak


def bench_page_bench(strategy: str, cpus: int, duration: str) -> dict:
    sc = load_scenario(
        ROOT / "scenarios/page_bench.yaml",
        Overrides(strategies=[strategy], batches=[64], cpus=[cpus], duration=duration),
    )
    # no warm-up: every allocation the run makes is counted against its wall time
    sc = dataclasses.replace(sc, model=sc.model.model_copy(update={"warmup": 0.0}))
    point = expand(sc)[0]
    row, wall, events, _ = _timed_point(sc, point, memory=False)
    _, _, _, peak = _timed_point(sc, point, memory=True)
    allocs = row["pages"]
    sim_s = row["sim_ns"] / 1e9
    return {
        "case": f"page_bench {strategy} batch 64, {cpus} cpu",
        "wall_s": wall,
        "sim_ms": sim_s * 1e3,
        "slowdown": wall / sim_s,
        "pages_per_wall_s": allocs / wall,
        "events_per_wall_s": events / wall,
        "peak_mib": peak,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/out"))
    args = ap.parse_args(argv)
    duration = "100 us" if args.quick else "500 us"
    ceiling = simpy_ceiling(100_000 if args.quick else 500_000)
    rows = [{"case": "simpy raw timeouts (ceiling)", "events_per_wall_s": ceiling}]
    for strategy in ("single", "bulk_array"):
        for cpus in (1, 6):
            rows.append(bench_page_bench(strategy, cpus, duration))
    df = pd.DataFrame(rows)
    df["pages_vs_ceiling"] = df["pages_per_wall_s"] / ceiling
    df["events_vs_ceiling"] = df["events_per_wall_s"] / ceiling
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "benchmarks.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
