"""Hardware files: every shipped profile loads, its derived topology is right, and bad input is
rejected with a ConfigError naming the file and the field."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.errors import ConfigError
from simulator.hardware import Hardware, load_hardware

HARDWARE_DIR = Path(__file__).resolve().parent.parent / "hardware"
HARDWARE_FILES = sorted(HARDWARE_DIR.glob("*.yaml"))


# Shipped profiles ---------------------------------------------------------------------------


def test_expected_profiles_are_shipped() -> None:
    names = {p.stem for p in HARDWARE_FILES}
    assert {"broadwell-e5-1650v4", "skylake-sp-2s", "epyc-rome-1s-nps4"} <= names


@pytest.mark.parametrize("path", HARDWARE_FILES, ids=lambda p: p.name)
def test_every_hardware_file_loads(path: Path) -> None:
    hw = load_hardware(path)
    assert hw.name == path.stem
    assert hw.calibration_path().is_file()
    assert len(hw.cpu_node()) == len(hw.cpu_llc()) == len(hw.cpu_socket()) == hw.ncpus
    # every LLC domain lies inside one socket, and every node's CPUs are its own
    sockets = hw.cpu_socket()
    for llc in set(hw.cpu_llc()):
        assert len({sockets[c] for c, d in enumerate(hw.cpu_llc()) if d == llc}) == 1
    for node in hw.topology.nodes:
        assert all(hw.cpu_node()[c] == node.id for c in node.cpus)
    # costs convert to positive, finite nanoseconds
    for name in type(hw.kernel_costs).model_fields:
        assert 0 < hw.ns(getattr(hw.kernel_costs, name)) < 1000
    for level in (hw.caches.l1d, hw.caches.l2, hw.caches.l3):
        assert 0 < hw.ns(level.latency, tsc=False) < 100


def _load(stem: str) -> Hardware:
    return load_hardware(HARDWARE_DIR / f"{stem}.yaml")


def test_broadwell_topology() -> None:
    hw = _load("broadwell-e5-1650v4")
    assert (hw.ncpus, hw.nnodes) == (6, 1)
    assert hw.cpu_node() == [0] * 6
    assert hw.cpu_llc() == [0] * 6


def test_skylake_sp_2s_topology() -> None:
    hw = _load("skylake-sp-2s")
    assert (hw.ncpus, hw.nnodes, hw.topology.sockets) == (56, 2, 2)
    assert hw.cpu_node() == [0] * 28 + [1] * 28
    assert hw.cpu_socket() == [0] * 28 + [1] * 28
    assert hw.cpu_llc() == [0] * 28 + [1] * 28  # one LLC per socket (default)
    assert hw.topology.distances == [[10, 21], [21, 10]]
    assert set(hw.memory.latency) == {10, 21}
    assert hw.memory.latency[10] < hw.memory.latency[21]
    assert hw.caches.l3.size == 28 * 1408 * 1024  # 1.375 MiB per core
    assert hw.memory.fill_buffers == 12


def test_skylake_sp_2s_ht_topology() -> None:
    """Linux's numbering with HT: node 0 holds cores 0-27's two threads, CPU c and c + 56."""
    hw = _load("skylake-sp-2s-ht")
    assert (hw.ncpus, hw.ncores, hw.nnodes) == (112, 56, 2)
    assert hw.cpu_node() == ([0] * 28 + [1] * 28) * 2
    assert hw.cpu_core() == list(range(56)) * 2
    assert hw.memory.bandwidth == _load("skylake-sp-2s").memory.bandwidth
    assert hw.memory.bandwidth.node == 74.96 and hw.memory.bandwidth.thread == 12.0


def test_epyc_rome_nps4_topology() -> None:
    hw = _load("epyc-rome-1s-nps4")
    assert (hw.ncpus, hw.nnodes, hw.topology.sockets) == (64, 4, 1)
    assert hw.cpu_node() == [c // 16 for c in range(64)]
    assert hw.cpu_socket() == [0] * 64
    assert hw.cpu_llc() == [c // 4 for c in range(64)]  # 16 CCXs of 4 cores
    assert hw.topology.distances == [[10 if i == j else 12 for j in range(4)] for i in range(4)]
    assert hw.memory.latency == {10: 113.0, 12: 125.0}
    assert hw.caches.l3.size == 16 << 20
    assert hw.coherence.same_llc < hw.coherence.same_socket


# Bad input ----------------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _base(stem: str = "skylake-sp-2s") -> dict[str, Any]:
    return yaml.safe_load((HARDWARE_DIR / f"{stem}.yaml").read_text(encoding="utf-8"))


def _write(tmp_path: Path, doc: dict[str, Any], *, calibration: bool = True) -> Path:
    """Write `doc` as tmp_path/hw.yaml, with an empty calibration file where it points."""
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    if calibration and isinstance(doc.get("calibration"), str):
        cal = tmp_path / doc["calibration"]
        cal.parent.mkdir(parents=True, exist_ok=True)
        cal.touch()
    return path


def _set(*keys: str | int, value: Any) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return mutate


def _drop(*keys: str | int) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]

    return mutate


@pytest.mark.parametrize("stem", ["skylake-sp-2s", "epyc-rome-1s-nps4", "broadwell-e5-1650v4"])
def test_unmodified_copy_loads(tmp_path: Path, stem: str) -> None:
    """The bad-input tests below start from these documents: each must be valid as written."""
    hw = load_hardware(_write(tmp_path, _base(stem)))
    assert hw.name == stem


BAD_INPUTS: list[tuple[str, Mutation, str]] = [
    # (id, mutation of skylake-sp-2s, field path the error must name)
    (
        "distances-ragged",
        _set("topology", "distances", value=[[10, 21], [21]]),
        "topology.distances",
    ),
    (
        "distances-too-few-rows",
        _set("topology", "distances", value=[[10, 21]]),
        "topology.distances",
    ),
    (
        "distances-1x1-for-2-nodes",
        _set("topology", "distances", value=[[10]]),
        "topology.distances",
    ),
    (
        "distances-asymmetric",
        _set("topology", "distances", value=[[10, 21], [22, 10]]),
        "topology.distances",
    ),
    (
        "distances-diagonal-not-10",
        _set("topology", "distances", value=[[11, 21], [21, 11]]),
        "topology.distances",
    ),
    (
        "distances-remote-equals-local",
        _set("topology", "distances", value=[[10, 10], [10, 10]]),
        "topology.distances",
    ),
    (
        "distances-remote-below-local",
        _set("topology", "distances", value=[[10, 9], [9, 10]]),
        "topology.distances",
    ),
    ("distances-not-a-list", _set("topology", "distances", value="10 21"), "topology.distances"),
    ("unknown-field", _set("cpu", "turbo", value="3.8 GHz"), "cpu.turbo"),
    ("unknown-top-level-field", _set("smt", value=False), "smt"),
    (
        "unknown-node-field",
        _set("topology", "nodes", 0, "hugepages", value=0),
        "topology.nodes[0].hugepages",
    ),
    ("missing-field", _drop("memory", "fill_buffers"), "memory.fill_buffers"),
    ("missing-section", _drop("kernel_costs"), "kernel_costs"),
    ("missing-cost", _drop("kernel_costs", "spin_lock_unlock"), "kernel_costs.spin_lock_unlock"),
    ("unit-case-Ghz", _set("cpu", "clock", value="3.6 Ghz"), "cpu.clock"),
    ("unit-rate-for-size", _set("caches", "l1d", "size", value="32 KB/s"), "caches.l1d.size"),
    ("bare-number-size", _set("caches", "l1d", "size", value=64), "caches.l1d.size"),
    (
        "bare-number-memory",
        _set("topology", "nodes", 0, "memory", value=192),
        "topology.nodes[0].memory",
    ),
    ("bare-number-latency", _set("memory", "latency", 10, value=81.4), "memory.latency[10]"),
    ("bare-number-cost", _set("kernel_costs", "call", value=4), "kernel_costs.call"),
    ("size-as-duration", _set("caches", "l2", "size", value="1 ns"), "caches.l2.size"),
    ("infinite-size", _set("caches", "l1d", "size", value="1e400 B"), "caches.l1d.size"),
    ("infinite-clock", _set("cpu", "clock", value="1e400 GHz"), "cpu.clock"),
    (
        "cpulist-garbage",
        _set("topology", "nodes", 1, "cpus", value="28..55"),
        "topology.nodes[1].cpus",
    ),
    (
        "cpulist-absurd-id",
        _set("topology", "nodes", 1, "cpus", value="28-99999999999"),
        "topology.nodes[1].cpus",
    ),
    ("cpus-overlap", _set("topology", "nodes", 1, "cpus", value="27-54"), "topology.nodes"),
    ("cpus-gap", _set("topology", "nodes", 1, "cpus", value="29-56"), "topology.nodes"),
    ("cpus-start-at-1", _set("topology", "nodes", 0, "cpus", value="1-28"), "topology.nodes"),
    ("node-id-order", _set("topology", "nodes", 1, "id", value=5), "topology.nodes[1].id"),
    (
        "node-socket-out-of-range",
        _set("topology", "nodes", 1, "socket", value=2),
        "topology.nodes[1].socket",
    ),
    (
        "llc-spans-sockets",
        _set("topology", "llc_domains", value=["0-13", "14-41", "42-55"]),
        "topology.llc_domains",
    ),
    (
        "llc-not-a-partition",
        _set("topology", "llc_domains", value=["0-27", "28-54"]),
        "topology.llc_domains",
    ),
    ("latency-missing-remote", _set("memory", "latency", value={10: "81.4 ns"}), "memory.latency"),
    ("latency-missing-local", _set("memory", "latency", value={21: "131.1 ns"}), "memory.latency"),
    ("below-4g-too-big", _set("memory", "below_4g", value="5 GiB"), "memory.below_4g"),
    ("reserved-too-big", _set("memory", "reserved", value="192 GiB"), "memory.reserved"),
    ("cache-line", _set("caches", "line", value="48 B"), "caches.line"),
    ("cache-sizes-shrink", _set("caches", "l2", "size", value="16 KiB"), "caches.l2.size"),
    ("negative-latency", _set("coherence", "same_llc", value="-1 ns"), "coherence.same_llc"),
    ("calibration-not-a-string", _set("calibration", value=5), "calibration"),
    # SMT and memory bandwidth (issue 13)
    (
        "smt-three-threads",
        _set("topology", "smt", value={"threads_per_core": 3, "throughput": 0.6}),
        "topology.smt.threads_per_core",
    ),
    (
        "smt-throughput-above-one",
        _set("topology", "smt", value={"threads_per_core": 2, "throughput": 1.5}),
        "topology.smt.throughput",
    ),
    (
        "smt-siblings-on-two-nodes",  # 56 CPUs, 2 threads: CPU 0 and 28 share a core
        _set("topology", "smt", value={"threads_per_core": 2, "throughput": 0.6}),
        "topology.nodes[0].cpus",
    ),
    ("bandwidth-missing", _drop("memory", "bandwidth"), "memory.bandwidth"),
    ("bandwidth-zero", _set("memory", "bandwidth", "node", value="0 GB/s"), "memory.bandwidth.node"),
    ("bandwidth-absurd", _set("memory", "bandwidth", "thread", value="1e9 GB/s"), "memory.bandwidth.thread"),
    ("bandwidth-bare", _set("memory", "bandwidth", "node", value=75), "memory.bandwidth.node"),
    (
        "loaded-latency-one-point",
        _set("memory", "bandwidth", "loaded_latency", value=[{"bandwidth": "1 GB/s", "latency": "81 ns"}]),
        "memory.bandwidth.loaded_latency",
    ),
    (
        "loaded-latency-not-ascending",
        _set("memory", "bandwidth", "loaded_latency", 2, "bandwidth", value="1 GB/s"),
        "memory.bandwidth.loaded_latency[2]",
    ),
]


@pytest.mark.parametrize(("mutate", "field"), [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_names_file_and_field(tmp_path: Path, mutate: Mutation, field: str) -> None:
    doc = _base()
    mutate(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_hardware(path)
    text = str(info.value)
    # "<file>: <field...>: message": the field is the error's location, not only its prose
    assert f"{path}: {field}" in text, text
    assert all(p.file == str(path) for p in info.value.problems)


def test_llc_domain_spanning_sockets_names_the_domain(tmp_path: Path) -> None:
    doc = _base()
    doc["topology"]["llc_domains"] = ["0-13", "14-41", "42-55"]
    with pytest.raises(ConfigError, match=r"topology\.llc_domains\[1\]: spans more than one socket"):
        load_hardware(_write(tmp_path, doc))


def test_epyc_llc_domains_must_cover_every_cpu(tmp_path: Path) -> None:
    doc = _base("epyc-rome-1s-nps4")
    doc["topology"]["llc_domains"] = doc["topology"]["llc_domains"][:-1]  # drop CCX 60-63
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError, match=r"topology\.llc_domains: must partition the CPUs"):
        load_hardware(path)


def test_epyc_memory_latency_missing_distance_12(tmp_path: Path) -> None:
    doc = _base("epyc-rome-1s-nps4")
    del doc["memory"]["latency"][12]
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_hardware(path)
    assert f"{path}: memory.latency: no entry for NUMA distance(s) [12]" in str(info.value)


def test_missing_calibration_file(tmp_path: Path) -> None:
    doc = _base()
    path = _write(tmp_path, doc, calibration=False)
    with pytest.raises(ConfigError) as info:
        load_hardware(path)
    text = str(info.value)
    assert f"{path}: calibration: calibration file not found" in text
    assert str(tmp_path / doc["calibration"]) in text


def test_calibration_path_is_relative_to_the_hardware_file(tmp_path: Path) -> None:
    doc = _base()
    doc["calibration"] = "../cal/x.yaml"
    sub = tmp_path / "hw"
    sub.mkdir()
    (tmp_path / "cal").mkdir()
    (tmp_path / "cal" / "x.yaml").touch()
    path = sub / "hw.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert load_hardware(path).calibration_path() == (tmp_path / "cal" / "x.yaml").resolve()


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("", ""),
        ("- just\n- a list\n", ""),
        ("cpu: [unclosed\n", "line "),
    ],
    ids=["empty", "not-a-mapping", "yaml-syntax"],
)
def test_unreadable_documents(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "hw.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_hardware(path)
    assert str(info.value).startswith(f"{path}: {where}")


def test_missing_hardware_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="file not found"):
        load_hardware(path)


def test_every_problem_is_reported(tmp_path: Path) -> None:
    """Independent field errors are reported together, one line each."""
    doc = copy.deepcopy(_base())
    doc["cpu"]["clock"] = "3.6 Ghz"
    doc["caches"]["l1d"]["size"] = 64
    del doc["memory"]["fill_buffers"]
    path = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_hardware(path)
    fields = {p.field for p in info.value.problems}
    assert {"cpu.clock", "caches.l1d.size", "memory.fill_buffers"} <= fields
    assert len(str(info.value).splitlines()) == len(info.value.problems)


def test_bandwidth_and_cpulist_units() -> None:
    from simulator.units import UnitError, format_bandwidth, format_cpulist, parse_bandwidth, parse_cpulist

    assert parse_bandwidth("75 GB/s") == 75.0 and parse_bandwidth("1500 MB/s") == 1.5  # bytes per ns
    assert format_bandwidth(parse_bandwidth("74.96 GB/s")) == "74.96 GB/s"
    with pytest.raises(UnitError, match="positive"):
        parse_bandwidth("-1 GB/s")
    for text in ("0-27,56-83", "0,2,4-5", "7"):
        assert format_cpulist(parse_cpulist(text)) == text
