"""page_bench: the page_bench04_bulk micro-benchmark (netoptimizer/prototype-kernel).

Each measured CPU, in a tight loop: allocate `batch` order-0 pages with the strategy, then free
them as page_bench04_bulk does (commit 49d224b1): the list variant walks its list and frees each
page with list_del + __free_pages; the array variant (and single, pagevec) put_page() each array
entry and NULL it. Other free strategies can be chosen (page_bench.free). The
figure is the time per page: one allocation plus one free. On one CPU this is the reference's
"199 cycles" (single-page strategy); on several CPUs of a node the zone lock and the lines the
allocator shares start to count.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Literal

import simpy
from pydantic import BaseModel, ConfigDict

from simulator.machine.cpu import CPU
from simulator.mm.gfp import GFP_MASKS
from simulator.mm.machine import Machine
from simulator.mm.page_alloc import PageList, __alloc_pages_bulk
from simulator.mm.strategies import CallerBuffers, alloc_attempt, free_attempt, free_list_attempt
from simulator.workloads.api import PointContext, Workload


class PageBenchParams(BaseModel):
    """The `page_bench:` section of a scenario."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gfp: Literal["GFP_ATOMIC", "GFP_KERNEL", "GFP_NOWAIT"] = "GFP_ATOMIC"
    free: Literal["one_by_one", "free_unref_page_list", "free_pages_bulk"] = "one_by_one"
    cpu_placement: Literal["pack", "spread"] = "pack"
    # "module": the list variant frees from its list as page_bench04_bulk does (list_del +
    # __free_pages); "via_array": it walks the list into an array and frees like the array
    # variant, as pagesim did before it read the module's source (kept for the validation
    # report's comparison)
    list_variant: Literal["module", "via_array"] = "module"


# Each CPU measures at least this many whole iterations after warm-up, however long they take
# (a contended batch of 512 pages on 6 CPUs can outlast the nominal window).
MIN_MEASURED_ITERATIONS = 2


@dataclass
class CpuTally:
    t0: float = -1.0
    t1: float = -1.0
    pages0: int = 0
    pages: int = 0
    iterations: int = 0


def select_cpus(m: Machine, n: int, placement: str) -> list[CPU]:
    """`pack`: CPUs 0..n-1. `spread`: round-robin over nodes (CPU ids ascending in each)."""
    if placement == "pack":
        return m.cpus[:n]
    by_node = [[c for c in m.cpus if c.node == node.node_id] for node in m.nodes]
    out: list[CPU] = []
    i = 0
    while len(out) < n:
        for cpus in by_node:
            if i < len(cpus) and len(out) < n:
                out.append(cpus[i])
        i += 1
    return out


def page_bench_loop(
    ctx: PointContext,
    cpu: CPU,
    strategy: str,
    batch: int,
    params: PageBenchParams,
    measure_from: float,
    measure_to: float,
    tally: CpuTally,
) -> Generator[simpy.Event, None, None]:
    """One CPU's benchmark loop (a SimPy process). The CPU's measurement window runs from the
    start of its first iteration after warm-up to the end of its last (every figure of the row
    covers it: simulator/workloads/windows.py)."""
    m = cpu.machine
    gfp = GFP_MASKS[params.gfp]
    buf = CallerBuffers.create(m, f"{cpu.scope}.page_bench", cpu.node, batch)
    measured = 0
    while True:
        now = cpu.now()
        if tally.t0 < 0 and now >= measure_from and ctx.warmed_up:
            tally.t0, tally.pages0 = now, tally.pages
            ctx.open_window(cpu)
        if tally.t0 >= 0 and now >= measure_to and measured >= MIN_MEASURED_ITERATIONS:
            tally.t1 = now
            ctx.close_window(cpu)
            break
        # the code this iteration runs: the timing loop, the allocation calls, then the frees
        code = m.code
        cpu.run_code(code["page_bench"])
        if strategy == "single":
            cpu.run_code(code["alloc_pages"], batch)
        elif batch == 1:
            cpu.run_code(code.of("alloc_pages_bulk", "alloc_pages"))  # the single-page fallback
        else:
            cpu.run_code(code["alloc_pages_bulk"], -(-batch // 15) if strategy == "pagevec" else 1)
        via = "__free_pages" if strategy == "bulk_list" and params.list_variant == "module" else "put_page"
        cpu.run_code(code.of(via, "free_unref_page"), batch)
        if strategy == "bulk_list" and params.list_variant == "module":
            # time_bulk_page_alloc_free_list: the pages stay on the list until they are freed
            plist = PageList([], buf.list_head_line)
            yield from __alloc_pages_bulk(cpu, gfp, cpu.node, None, batch, page_list=plist)
            got = list(plist.pages)
            yield from free_list_attempt(cpu, params.free, plist)
        else:
            # the array variant (and single, pagevec): put_page(array[j]); array[j] = NULL
            got = yield from alloc_attempt(cpu, strategy, gfp, cpu.node, batch, buf)
            buf.array.slots[: len(buf.array.slots)] = [None] * len(buf.array.slots)
            yield from free_attempt(cpu, params.free, got, buf, from_array=True)
        tally.pages += len(got)
        tally.iterations += 1
        if tally.t0 >= 0:
            measured += 1
        if not got:
            # the allocator is out of memory for this gfp: nothing more to measure
            tally.t1 = cpu.now()
            if tally.t0 >= 0:
                ctx.close_window(cpu)
            break
        yield cpu.sync()
    yield cpu.sync()


def run(ctx: PointContext) -> dict[str, float]:
    """Run page_bench for one point; returns cycles_per_page and ns_per_page."""
    m, p = ctx.machine, ctx.point
    params: PageBenchParams = ctx.params  # type: ignore[assignment]
    cpus = select_cpus(m, p.cpus, params.cpu_placement)
    warmup = ctx.warmup
    end = warmup + ctx.duration
    tallies = [CpuTally() for _ in cpus]
    for cpu, tally in zip(cpus, tallies):
        m.env.process(page_bench_loop(ctx, cpu, p.strategy, p.batch, params, warmup, end, tally))
    ctx.measure_each_cpu(warmup, cpus)
    m.env.run()
    pages = sum(t.pages - t.pages0 for t in tallies)
    busy = sum(t.t1 - t.t0 for t in tallies if t.t0 >= 0)
    if pages <= 0 or busy <= 0:
        raise RuntimeError("page_bench measured no pages: duration too short or memory exhausted")
    ns_per_page = busy / pages
    ctx.pages_measured = pages
    return {
        "ns_per_page": ns_per_page,
        "cycles_per_page": ns_per_page * m.hw.cpu.tsc,
        "pages": pages,
        "iterations": sum(t.iterations for t in tallies),
    }


WORKLOAD = Workload(
    "page_bench",
    PageBenchParams,
    run,
    summary=("cycles_per_page", "ns_per_page"),
)
