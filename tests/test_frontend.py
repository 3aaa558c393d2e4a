"""The front-end model (simulator/machine/frontend.py) and the code footprints it runs
(simulator/code.py, code_footprints.yaml): hand-worked reuse distances, and what it charges the
workloads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import BROADWELL, ROOT, TINY_1NODE, hardware, new_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.code import FOOTPRINTS_FILE, code_paths, load_footprints
from simulator.errors import ConfigError
from simulator.machine.frontend import WINDOW, CodeRegion, FrontEnd, FrontEndSpec
from simulator.run import run_point
from simulator.scenario import Overrides, load_scenario
from simulator.system import frontend_spec
from simulator.workloads.api import Point

SPEC = FrontEndSpec(
    l1i_bytes=32 * 1024,
    line=64,
    l2_fetch_ns=3.0,
    llc_fetch_ns=12.0,
    l2_bytes=256 * 1024,
    overlap=1.0,
    uop_bytes=6 * 1024,
    switch_ns=0.25,
    btb_entries=4096,
    resteer_ns=3.0,
)


def region(name: str, kib: float, branches: int = 10) -> CodeRegion:
    return CodeRegion(name, int(kib * 1024), branches)


def test_a_path_that_fits_pays_only_its_first_run() -> None:
    fe = FrontEnd(SPEC)
    path = [region("a", 2), region("b", 3)]
    cold = fe.run(path)
    # cold (never ran on this CPU): every line fetched from the LLC, every window decoded, every
    # branch resteered
    lines = 5 * 1024 / 64
    assert cold == pytest.approx(lines * 12.0 + 5 * 1024 / WINDOW * 0.25 + 20 * 3.0)
    assert fe.run(path) == 0.0  # 5 KiB fits the L1i (32 KiB) and the uop cache (6 KiB)
    assert fe.loop(path, 64) == 0.0


def test_code_beyond_the_l1i_pays_in_proportion_to_the_excess() -> None:
    fe = FrontEnd(SPEC)
    a, b = region("a", 8), region("b", 28)  # 36 KiB in all: 4 KiB more than the L1i holds
    fe.run([a, b])
    stall = fe.run([a])  # since a last ran: b's 28 KiB; 28 + 8 - 32 = 4 KiB of a's lines are gone
    missed_fetch = 4 * 1024 / 64 * 3.0
    missed_decode = 8 * 1024 / WINDOW * 0.25  # a and b both far beyond the 6 KiB uop cache
    assert stall == pytest.approx(missed_fetch + missed_decode)
    # twice the excess, twice the fetch stall
    fe2 = FrontEnd(SPEC)
    c = region("c", 32)
    fe2.run([a, c])
    assert fe2.run([a]) == pytest.approx(2 * missed_fetch + missed_decode)


def test_a_loop_whose_body_does_not_fit_pays_every_iteration() -> None:
    fe = FrontEnd(SPEC)
    body = [region("a", 20), region("b", 20)]
    first = fe.run(body)
    steady = fe.run(body)
    assert steady > 0
    fe2 = FrontEnd(SPEC)
    assert fe2.loop(body, 10) == pytest.approx(first + 9 * steady)
    assert fe2.stats.runs == 10


def test_the_btb_and_occupied_code_evict_like_the_caches() -> None:
    fe = FrontEnd(SPEC)
    a = CodeRegion("a", 64, 100)
    many = CodeRegion("many", 64, 4096)
    fe.run([a, many])
    assert fe.run([a]) == pytest.approx(100 * 3.0)  # 4096 other branches since: all of a's gone
    fe.occupy([region("nfsd", 64)])  # priced elsewhere, still evicts
    assert fe.stats.runs == 2
    assert fe.run([a]) > 0 and fe.footprint() == a.text + many.text + 64 * 1024


REGIONS = [region(n, k, b) for n, k, b in (("a", 9, 40), ("b", 14, 900), ("c", 5, 3500), ("d", 20, 100))]
PATHS = [tuple(REGIONS[i] for i in ix) for ix in ((0,), (1, 2), (3, 0, 1), (2, 3), (0, 1, 2, 3))]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(range(len(PATHS))), st.integers(1, 5), st.booleans()), max_size=40))
def test_priced_paths_are_remembered_exactly(program: list[tuple[int, int, bool]]) -> None:
    """FrontEnd.run remembers what a (path, code order) costs; every stall and statistic is what
    pricing it afresh gives."""
    memo, fresh = FrontEnd(SPEC), FrontEnd(SPEC)
    for i, weight, occupy in program:
        if occupy:
            memo.occupy(PATHS[i])
            fresh.occupy(PATHS[i])
            continue
        fresh._memo.clear()
        assert memo.run(PATHS[i], weight) == fresh.run(PATHS[i], weight)
        assert list(memo._recent) == list(fresh._recent)
    assert memo.stats == fresh.stats


def test_hardware_front_ends_come_from_the_files() -> None:
    spec = frontend_spec(hardware(BROADWELL))
    assert spec.l1i_bytes == 32 * 1024 and spec.uop_bytes == 6 * 1024
    assert spec.l2_fetch_ns == pytest.approx((13 - 4) / 3.6) and spec.resteer_ns == pytest.approx(12 / 3.6)
    epyc = frontend_spec(hardware(ROOT / "hardware" / "epyc-rome-1s-nps4.yaml"))
    assert epyc.btb_entries == 7168 and epyc.uop_bytes == 16 * 1024


def test_footprints_have_sources_and_paths_name_known_functions(tmp_path: Path) -> None:
    f = load_footprints()
    assert all(fn.source or fn.assumed for fn in f.functions.values())
    cp = code_paths()
    assert [r.name for r in cp["alloc_pages"]] == [
        "__alloc_pages_nodemask",
        "get_page_from_freelist",
        "rmqueue",
        "prep_new_page",
    ]
    assert cp["alloc_pages"][2].text == round(0x970 * f.hot_fraction)
    assert code_paths(2.0)["rmqueue_bulk"][0].text == 2 * cp["rmqueue_bulk"][0].text
    assert code_paths(1.0, 2.0)["rmqueue_bulk"][0].text == 2 * cp["rmqueue_bulk"][0].text  # assumed size
    assert code_paths(1.0, 2.0)["alloc_pages"][0].text == cp["alloc_pages"][0].text  # a traced size
    doc = yaml.safe_load(FOOTPRINTS_FILE.read_text())
    doc["functions"]["rmqueue"].pop("source")
    bad = tmp_path / "f.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"functions\.rmqueue: a size needs its `source`"):
        load_footprints(bad)
    doc = yaml.safe_load(FOOTPRINTS_FILE.read_text())
    doc["paths"]["alloc_pages"].append("no_such_function")
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"paths\.alloc_pages\[4\]: not a function"):
        load_footprints(bad)


def test_page_bench_code_fits_so_the_front_end_costs_nothing_after_warm_up() -> None:
    ov = Overrides(strategies=["single"], batches=[64], duration="20 us")
    sc = load_scenario(ROOT / "scenarios" / "page_bench.yaml", ov)
    row = run_point(sc, Point("single", 64, 1))
    assert row["frontend_ns_per_page"] == 0.0


def test_xdp_pays_for_its_code_once_per_poll_and_bulk_runs_less_allocator_code() -> None:
    ov = Overrides(batches=[64], duration="300 us")
    sc = load_scenario(ROOT / "scenarios" / "xdp_redirect.yaml", ov)
    single = run_point(sc, Point("single", 64, 1))
    bulk = run_point(sc, Point("bulk_array", 64, 1))
    assert 0 < bulk["frontend_ns_per_packet"] < single["frontend_ns_per_packet"]
    # a poll's code (~9 KiB of hot text) fits the L1i: what it pays is the uop cache, amortised
    assert single["frontend_ns_per_packet"] < 5.0


def test_a_machine_without_a_front_end_charges_none() -> None:
    m = new_machine(TINY_1NODE)
    cpu = m.cpus[0]
    assert cpu.run_code(m.code["alloc_pages"]) > 0
    cpu.frontend = None
    assert cpu.run_code(m.code["alloc_pages"]) == 0.0
