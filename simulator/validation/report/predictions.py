"""The points the validation report runs, and what it keeps of their rows: every model variant's
predictions (the outside cost refitted under the variant, then the bulk kernel's points), the
kernel versions as shipped, and the XDP refill curve."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simulator.hardware import Hardware
from simulator.scenario import Overrides
from simulator.validation.fit import REFILL, Fit, fit_outside
from simulator.validation.mechanisms import ALL_OUT, AS_MODELLED, ASSUMED, MECHANISMS, Variant
from simulator.validation.runs import (
    NFS_256K_SCENARIO,
    PAGE_BENCH_SCENARIO,
    XDP_SCENARIO,
    Job,
    run_jobs,
    scenario_with,
)
from simulator.workloads.api import Point

BULK = ("bulk_list", "bulk_array", "pagevec")
STRATEGIES4 = ("single", *BULK)
REFILLS = (1, 4, 8, 15, 16, 32, 64, 128, 256)
PB_BATCHES = (1, 8, 16, 32, 64, 128)
BULK_KERNEL = "5.12"  # the series as reviewed and measured (the shipped scenarios' default)
KERNELS = ("5.11", "5.12", "5.13", "5.14")
# what the report keeps of the kernel versions' rows: (kernel, workload, strategy, batch) -> row
KernelRows = dict[tuple[str, str, str, int], dict[str, Any]]


@dataclass
class Settings:
    """What the report runs, and how (worker processes, shorter quick runs, progress notes)."""

    workers: int = 2
    refills: tuple[int, ...] = REFILLS
    pb_batches: tuple[int, ...] = PB_BATCHES
    duration: str | None = None  # override scenarios' durations (quick runs)
    warmup: str | None = None
    variants: tuple[Variant, ...] = (AS_MODELLED, *MECHANISMS, ALL_OUT)
    assumed: tuple[Variant, ...] = ASSUMED
    kernels: tuple[str, ...] = KERNELS
    bench_loops: int = 20000
    progress: Callable[[str], None] = field(default=lambda msg: None)

    def overrides(self, **kw: Any) -> Overrides:
        """Command-line overrides of a scenario the report runs (with the quick run's duration)."""
        return Overrides(duration=self.duration, **kw)

    def top(self, version: str, **extra: Any) -> dict[str, Any]:
        """Top-level fields set on a scenario the report runs: the kernel (and quick warm-up)."""
        top: dict[str, Any] = {"kernel": {"version": version}, **extra}
        if self.warmup:
            top["warmup"] = self.warmup
        return top


@dataclass
class Predictions:
    """One variant's figures: the XDP fit and rows, page_bench rows, NFS 256 KiB rows."""

    variant: Variant
    fit: Fit
    xdp: dict[str, dict[str, Any]] = field(default_factory=dict)
    page_bench: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    nfs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def saved(self, st: str) -> float:
        """ns per packet a strategy on the bulk kernel saves against `single` on 5.11 (the fit)."""
        return 1e9 / self.fit.pps - 1e9 / self.xdp[st]["pps"]

    def nfs_ratio(self, st: str) -> float:
        """A strategy's svc_alloc_arg time per call relative to `bulk_array` (NFS 256 KiB mix)."""
        return self.nfs[st]["svc_alloc_arg_us_mean"] / self.nfs["bulk_array"]["svc_alloc_arg_us_mean"]


def _variant_jobs(hw: Hardware, v: Variant, fit: Fit, s: Settings, version: str) -> list[Job]:
    change = v.change(hw)
    xdp = scenario_with(XDP_SCENARIO, s.overrides(), s.top(version), outside_ns=fit.outside_ns)
    pb = scenario_with(PAGE_BENCH_SCENARIO, s.overrides(), s.top(version), **v.page_bench)
    nfs = scenario_with(NFS_256K_SCENARIO, s.overrides(), s.top(version))
    jobs = [Job(xdp, Point(st, REFILL, 1), change) for st in STRATEGIES4]
    jobs.append(Job(pb, Point("single", 1, 1), change))
    jobs += [Job(pb, Point(st, b, 1), change) for st in BULK for b in s.pb_batches]
    jobs += [Job(nfs, Point(st, 1, 6), change) for st in STRATEGIES4]
    return jobs


def _fill(p: Predictions, rows: list[dict[str, Any]]) -> None:
    for r in rows[:4]:
        p.xdp[r["strategy"]] = r
    n_pb = len(rows) - 8
    for r in rows[4 : 4 + n_pb]:
        p.page_bench[(r["strategy"], r["batch"])] = r
    for r in rows[4 + n_pb :]:
        p.nfs[r["strategy"]] = r


def predict(hw: Hardware, variants: tuple[Variant, ...], s: Settings, start: float) -> list[Predictions]:
    """Every variant's predictions: refit the outside cost under the variant (single on 5.11),
    then run the bulk kernel's points with it."""
    fits = []
    for v in variants:
        s.progress(f"fitting the outside cost: {v.name}")
        fit = fit_outside(
            XDP_SCENARIO,
            v.change(hw),
            overrides=s.overrides(strategies=["single"], batches=[REFILL], cpus=[1]),
            top=s.top("5.11"),
            start=start,
        )
        fits.append(fit)
    jobs_by = [_variant_jobs(hw, v, fit, s, BULK_KERNEL) for v, fit in zip(variants, fits)]
    s.progress(f"running {sum(len(j) for j in jobs_by)} points of {len(variants)} variants")
    rows = run_jobs([j for jobs in jobs_by for j in jobs], s.workers)
    out = []
    i = 0
    for v, fit, jobs in zip(variants, fits, jobs_by):
        p = Predictions(v, fit)
        _fill(p, rows[i : i + len(jobs)])
        i += len(jobs)
        out.append(p)
    return out


def run_kernels(s: Settings) -> KernelRows:
    """The kernel versions as shipped (the committed fit): XDP at refill 64, page_bench at batch 1
    and 64, NFS 256 KiB on six CPUs; 5.11 runs `single` only (it has no bulk allocator)."""
    s.progress("running the kernel versions")
    kjobs: list[Job] = []
    for k in s.kernels:
        sts = ("single",) if k == "5.11" else STRATEGIES4
        ov = s.overrides(strategies=list(sts))
        xdp = scenario_with(XDP_SCENARIO, ov, s.top(k))
        pb = scenario_with(PAGE_BENCH_SCENARIO, ov, s.top(k))
        nfs = scenario_with(NFS_256K_SCENARIO, ov, s.top(k))
        kjobs += [Job(xdp, Point(st, REFILL, 1)) for st in sts]
        kjobs += [Job(pb, Point(st, b, 1)) for st in sts for b in (1, 64)]
        kjobs += [Job(nfs, Point(st, 1, 6)) for st in sts]
    krows = run_jobs(kjobs, s.workers)
    kernels: KernelRows = {}
    for job, r in zip(kjobs, krows):
        kernels[(r["kernel"], job.scenario.model.workload, r["strategy"], r["batch"])] = r
    return kernels


def run_refill_curve(s: Settings) -> list[dict[str, Any]]:
    """The XDP refill curve: every bulk strategy at every refill size (bulk kernel, committed fit)."""
    s.progress("running the refill curve")
    xdp = scenario_with(XDP_SCENARIO, s.overrides(), s.top(BULK_KERNEL))
    return run_jobs([Job(xdp, Point(st, r, 1)) for st in BULK for r in s.refills], s.workers)
