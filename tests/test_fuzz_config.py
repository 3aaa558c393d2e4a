"""Fuzz: whatever a scenario or hardware file holds, the loaders load it or raise ConfigError.

Documents start from the shipped files (scenarios/*.yaml, hardware/*.yaml) and are mutated
structurally: keys dropped or added (known field names and garbage), values replaced by YAML
values of other types (None, booleans, huge and negative integers, NaN and infinities, unit-like
garbage such as "3 GHz" where a size is wanted, "1e400 B", "-5 ns", lists, nested mappings),
values wrapped into lists or mappings, values moved from one field to another. Raw text is fuzzed
too: random bytes, truncated files, tabs and odd indentation, anchors and aliases (alias bombs and
recursive aliases), deep nesting. The property, for `load_scenario`, `load_hardware` and the
`pagesim check` code path (check_file): the call returns, or raises simulator.errors.ConfigError
whose every problem names a file; never TypeError, KeyError, OverflowError, RecursionError, a bare
ValueError or a hang.

Files live in a copy of the repository's layout under a temporary directory, so relative
references resolve as they do in the repository: a hardware file's `calibration:` is relative to
it (hardware/calibration/...), a scenario's `hardware:` is relative to the scenario
(../hardware/...). Fuzzed hardware files are also loaded through a scenario that names them.

Hypothesis settings: `derandomize=True` (the examples are a fixed function of the test code), so
CI runs are reproducible and a failure never depends on the run's luck or on a local example
database; `database=None` for the same reason; `deadline=None` because the first examples pay
for imports and cold caches. The fixed examples are a regression suite, not an exploration: to
explore, run with PAGESIM_FUZZ_EXAMPLES=N (random examples, N per test), e.g.
`PAGESIM_FUZZ_EXAMPLES=3000 pytest tests/test_fuzz_config.py`. The crashes such campaigns found
are pinned below as plain parametrized cases (test_found_crashes_are_config_errors).
"""

from __future__ import annotations

import copy
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import cli
from simulator.errors import ConfigError
from simulator.hardware import load_hardware
from simulator.scenario import load_scenario
from simulator.units import BYTE_UNITS, FREQ_UNITS_GHZ, TIME_UNITS_NS
from simulator.yamlio import MAX_DEPTH, MAX_VALUES

ROOT = Path(__file__).resolve().parents[1]
HARDWARE_FILES = sorted((ROOT / "hardware").glob("*.yaml"))
# scenarios/ also holds sweep files (no `workload:`); `pagesim sweep` has its own loader
SCENARIO_FILES = [
    p for p in sorted((ROOT / "scenarios").glob("*.yaml")) if "workload" in yaml.safe_load(p.read_text())
]
SCENARIOS = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in SCENARIO_FILES}
HARDWARE = {p.name: yaml.safe_load(p.read_text(encoding="utf-8")) for p in HARDWARE_FILES}
TEXTS = {
    **{f"scenarios/{p.name}": p.read_text(encoding="utf-8") for p in SCENARIO_FILES},
    **{f"hardware/{p.name}": p.read_text(encoding="utf-8") for p in HARDWARE_FILES},
}

_RANDOM = int(os.environ.get("PAGESIM_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int) -> settings:
    """`examples` fixed examples in CI; PAGESIM_FUZZ_EXAMPLES random ones when it is set."""
    return settings(
        max_examples=_RANDOM or examples,
        derandomize=not _RANDOM,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# The workspace ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of hardware/ (with calibration/) and scenarios/: fuzzed files go beside them."""
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(ROOT / "hardware", root / "hardware")
    shutil.copytree(ROOT / "scenarios", root / "scenarios")
    return root


def write_doc(path: Path, doc: Any) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def assert_config_error_is_well_formed(exc: ConfigError) -> None:
    """Each problem names a file (or the command line) and prints as one line."""
    assert exc.problems, "a ConfigError without problems"
    for p in exc.problems:
        assert isinstance(p.file, str) and p.file, p
        assert isinstance(p.field, str), p
        assert p.message and "Traceback" not in p.message, p
        assert "\n" not in str(p), p
    assert len(str(exc).splitlines()) == len(exc.problems)


def loads_or_config_error(load: Callable[[Path], Any], path: Path) -> ConfigError | None:
    """Call `load(path)`; anything but success or ConfigError propagates and fails the test."""
    try:
        load(path)
    except ConfigError as exc:
        assert_config_error_is_well_formed(exc)
        return exc
    return None


# Values -------------------------------------------------------------------------------------

UNITS = [*BYTE_UNITS, *TIME_UNITS_NS, *FREQ_UNITS_GHZ, "cycles", "Ghz", "kib", "parsecs", "B/s", "nS", "µs"]
NUMBER_TEXT = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats().map(repr),
    st.sampled_from(["1e400", "-1e400", "1e-400", "1e300", "nan", "inf", "-0", "0x10", "1_000", ".5", "5."]),
    st.sampled_from(["1e", "--1", "+", "٣", "", "3.6.1", "1,5"]),
)
UNIT_LIKE = st.builds(
    lambda n, sep, u: f"{n}{sep}{u}",
    NUMBER_TEXT,
    st.sampled_from(["", " ", "  ", "\t"]),
    st.sampled_from(UNITS),
)
SPECIAL_STRINGS = [
    *("0-5", "5-0", "0-99999999999", "0-5,3", "1-", ",", "saturate", "cpu", "single", "irq_off"),
    *("GFP_ATOMIC", "open", "closed", "../hardware/nope.yaml", "", " ", "\0", "a\0b", "~", "null"),
    *("../hardware/broadwell-e5-1650v4.yaml", "calibration/broadwell-xdp-baseline.yaml", "/", "."),
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 1, 10, 2**31, 2**63, 10**40, -(10**40), 8192, 4096, 257]),
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0, 0.5]),
    st.text(max_size=12),
    UNIT_LIKE,
    st.sampled_from(SPECIAL_STRINGS),
)
# Field names of the schemas, so that added keys sometimes land on real (or almost real) fields.
KEY_NAMES = [
    *("name", "workload", "hardware", "seed", "replications", "strategies", "batches", "cpus"),
    *("duration", "warmup", "kernel", "grid", "page_bench", "xdp_redirect", "nfs", "thp", "memory"),
    *("topology", "nodes", "distances", "latency", "calibration", "clock", "size", "id", "socket"),
    *("llc_domains", "rate", "clients", "mix", "background", "offered_load", "inputs", "reference"),
    *("self_percent", "kernel.thp", "nfs.threads_per_node", "<<"),
]
KEYS = st.one_of(st.sampled_from(KEY_NAMES), st.text(max_size=8), st.integers(-3, 30), st.booleans())
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)


# Structural mutation -------------------------------------------------------------------------

Loc = tuple[Any, ...]


def all_locs(doc: Any) -> list[Loc]:
    """Every location in `doc`: () for the document, then each key and index, depth first."""
    out: list[Loc] = []
    stack: list[tuple[Loc, Any]] = [((), doc)]
    while stack:
        loc, v = stack.pop()
        out.append(loc)
        if isinstance(v, dict):
            stack.extend((loc + (k,), x) for k, x in v.items())
        elif isinstance(v, list):
            stack.extend((loc + (i,), x) for i, x in enumerate(v))
    return out


def get(doc: Any, loc: Loc) -> Any:
    for k in loc:
        doc = doc[k]
    return doc


def put(doc: Any, loc: Loc, value: Any) -> Any:
    """`doc` with `value` at `loc` (in place below the root); returns the new document."""
    if not loc:
        return value
    get(doc, loc[:-1])[loc[-1]] = value
    return doc


def tweak_number(v: Any, k: int) -> Any:
    """A number nearby or far off: 0, negated, scaled up, made fractional, -1, enormous."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    tweaks: list[Callable[[Any], Any]] = [
        lambda x: 0,
        lambda x: -x,
        lambda x: x * 10**k,
        lambda x: x + 0.5,
        lambda x: -1,
        lambda x: x * 10**400 if isinstance(x, int) else x * 1e300,
    ]
    try:
        return tweaks[k % len(tweaks)](v)
    except OverflowError:  # a huge int plus 0.5
        return v


@st.composite
def mutated(draw: st.DrawFn, bases: dict[str, Any]) -> tuple[str, Any]:
    """(base file name, a mutated copy of its document) after 1 to 4 structural mutations."""
    name = draw(st.sampled_from(sorted(bases)))
    doc: Any = copy.deepcopy(bases[name])
    for _ in range(draw(st.integers(1, 4))):
        locs = all_locs(doc)
        loc = draw(st.sampled_from(locs))
        op = draw(
            st.sampled_from(["drop", "replace", "replace", "add", "wrap", "swap", "number", "stringify"])
        )
        here = get(doc, loc)
        if op == "drop" and loc:
            del get(doc, loc[:-1])[loc[-1]]
        elif op == "replace":
            doc = put(doc, loc, draw(VALUES))
        elif op == "add" and isinstance(here, dict):
            here[draw(KEYS)] = draw(VALUES)
        elif op == "add" and isinstance(here, list):
            here.insert(draw(st.integers(0, len(here))), draw(VALUES))
        elif op == "wrap":
            doc = put(doc, loc, draw(st.sampled_from([[here], {"value": here}, [here, here]])))
        elif op == "swap":
            other = draw(st.sampled_from(locs))
            doc = put(doc, loc, copy.deepcopy(get(doc, other)))
        elif op == "number":
            doc = put(doc, loc, tweak_number(here, draw(st.integers(0, 5))))
        elif op == "stringify" and not isinstance(here, (dict, list)):
            doc = put(doc, loc, str(here))
    return name, doc


# Structural properties -----------------------------------------------------------------------


@fuzz_settings(120)
@given(case=mutated(SCENARIOS))
def test_mutated_scenarios_load_or_raise_config_error(work: Path, case: tuple[str, Any]) -> None:
    _, doc = case
    path = write_doc(work / "scenarios" / "fuzz.yaml", doc)
    exc = loads_or_config_error(load_scenario, path)
    if exc is None:  # it loaded: it must also pass the rest of `pagesim check`
        loads_or_config_error(lambda p: cli.check_file(str(p)), path)


@fuzz_settings(150)
@given(case=mutated(HARDWARE))
def test_mutated_hardware_loads_or_raises_config_error(work: Path, case: tuple[str, Any]) -> None:
    _, doc = case
    path = write_doc(work / "hardware" / "fuzz-hw.yaml", doc)
    if loads_or_config_error(load_hardware, path) is None:
        # check_file also derives the costs and checks every node's memory against its watermarks
        loads_or_config_error(lambda p: cli.check_file(str(p)), path)


@fuzz_settings(80)
@given(hw_case=mutated(HARDWARE), scenario=st.sampled_from(sorted(SCENARIOS)))
def test_scenarios_on_mutated_hardware_load_or_raise_config_error(
    work: Path, hw_case: tuple[str, Any], scenario: str
) -> None:
    """A valid scenario naming a mutated hardware file: the scenario's cross-checks (CPU counts,
    nodes, workload checks, calibration, node memory) meet the odd hardware."""
    _, hw_doc = hw_case
    write_doc(work / "hardware" / "fuzz-hw2.yaml", hw_doc)
    doc = dict(SCENARIOS[scenario], hardware="../hardware/fuzz-hw2.yaml")
    path = write_doc(work / "scenarios" / "fuzz2.yaml", doc)
    loads_or_config_error(load_scenario, path)


# Well-formed documents with odd numbers ------------------------------------------------------
# Structural mutation rarely gets past the schema into the code behind it (zone layout,
# watermarks, the calibration derivation, the workloads' cross-checks). These documents have the
# right shape and random quantities: nodes from one page to 4 PiB, CPU-less nodes, clocks from
# 1 kHz to 1e6 GHz, zero and huge costs, any split below 4 GiB.

SIZE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]


def size(n: int, unit: str) -> str:
    return f"{n} {unit}"


@st.composite
def plausible_hardware(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(HARDWARE[draw(st.sampled_from(sorted(HARDWARE)))])
    nnodes = draw(st.integers(1, 4))
    sockets = draw(st.integers(1, nnodes))
    per_node = [draw(st.integers(0, 6)) for _ in range(nnodes)]
    if sum(per_node) == 0 and draw(st.booleans()):
        per_node[0] = 1
    nodes, first = [], 0
    for i, k in enumerate(per_node):
        cpus = f"{first}-{first + k - 1}" if k > 1 else ([first] if k == 1 else [])
        memory = size(draw(st.integers(1, 4096)), draw(st.sampled_from(SIZE_UNITS)))
        nodes.append({"id": i, "socket": i * sockets // nnodes, "cpus": cpus, "memory": memory})
        first += k
    remote = draw(st.integers(11, 40))
    doc["topology"] = {
        "sockets": sockets,
        "nodes": nodes,
        "distances": [[10 if i == j else remote for j in range(nnodes)] for i in range(nnodes)],
    }
    doc["memory"]["latency"] = {10: f"{draw(st.integers(0, 500))} ns", remote: "150 ns"}
    doc["memory"]["below_4g"] = size(draw(st.integers(0, 4096)), "MiB")
    doc["memory"]["reserved"] = size(draw(st.integers(0, 1024)), draw(st.sampled_from(["KiB", "MiB"])))
    clock = draw(st.sampled_from(["1e-6 GHz", "0.001 GHz", "3.6 GHz", "1e6 GHz", "1 MHz", "5e-300 GHz"]))
    doc["cpu"]["clock"] = clock
    doc["cpu"]["tsc"] = draw(st.sampled_from([clock, "3.6 GHz"]))
    cost = draw(st.sampled_from(["0 cycles", "0 ns", "1e300 cycles", "1e12 s", "37 cycles"]))
    doc["kernel_costs"][draw(st.sampled_from(sorted(doc["kernel_costs"])))] = cost
    return doc


@fuzz_settings(60)
@given(hw_doc=plausible_hardware(), scenario=st.sampled_from(sorted(SCENARIOS)), cpus=st.integers(1, 30))
def test_odd_but_well_formed_hardware_loads_or_raises_config_error(
    work: Path, hw_doc: dict[str, Any], scenario: str, cpus: int
) -> None:
    path = write_doc(work / "hardware" / "odd-hw.yaml", hw_doc)
    loads_or_config_error(lambda p: cli.check_file(str(p)), path)
    doc = dict(SCENARIOS[scenario], hardware="../hardware/odd-hw.yaml")
    if doc["workload"] != "nfs":
        doc["cpus"] = [cpus]
    loads_or_config_error(load_scenario, write_doc(work / "scenarios" / "odd.yaml", doc))


# Raw text properties -------------------------------------------------------------------------

YAML_CHARS = st.sampled_from(list("abc019 :-[]{}&*!|>'\"#%@`,?\t\n.~") + ["\0", "\x85", "\ufeff", "é"])


@st.composite
def damaged_text(draw: st.DrawFn) -> str:
    """A shipped file's text, damaged: cut short, lines replaced, tabs or odd indentation."""
    text = TEXTS[draw(st.sampled_from(sorted(TEXTS)))]
    kind = draw(st.sampled_from(["truncate", "line", "tab", "indent", "splice"]))
    lines = text.splitlines(keepends=True)
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text)))]
    i = draw(st.integers(0, len(lines) - 1))
    if kind == "line":
        lines[i] = draw(st.text(YAML_CHARS, max_size=30)) + "\n"
    elif kind == "tab":
        j = draw(st.integers(0, len(lines[i])))
        lines[i] = lines[i][:j] + "\t" + lines[i][j:]
    elif kind == "indent":
        lines[i] = " " * draw(st.integers(0, 9)) + lines[i].lstrip(" ")
    else:
        lines.insert(i, draw(st.text(YAML_CHARS, max_size=40)) + "\n")
    return "".join(lines)


@st.composite
def alias_text(draw: st.DrawFn) -> str:
    """Anchors and aliases: shared sections, merge keys, undefined and recursive aliases, and
    alias bombs (width ** depth values when expanded) in a field or at the top."""
    kind = draw(st.sampled_from(["bomb", "recursive", "undefined", "merge", "shared"]))
    base = TEXTS[draw(st.sampled_from(sorted(TEXTS)))]
    if kind == "bomb":
        width, depth = draw(st.integers(2, 10)), draw(st.integers(1, 12))
        lines = [f"b0: &b0 [{', '.join(['x'] * width)}]"]
        lines += [f"b{d}: &b{d} [{', '.join([f'*b{d - 1}'] * width)}]" for d in range(1, depth + 1)]
        return base + "\n" + "\n".join(lines) + "\n"
    if kind == "recursive":
        return base + "\nloop: &loop {self: *loop, list: [*loop]}\n"
    if kind == "undefined":
        return base + "\nx: *nowhere\n"
    if kind == "merge":
        return base + "\nextra: &e {a: 1}\nmore:\n  <<: *e\n  <<: [*e, *e]\n"
    return base.replace("\nseed:", "\nseed: &s", 1) + "\ncopy: *s\n" if "\nseed:" in base else base


@fuzz_settings(100)
@given(
    text=st.one_of(
        damaged_text(),
        alias_text(),
        st.text(YAML_CHARS, max_size=60),
        st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    ),
    kind=st.sampled_from(["scenario", "hardware"]),
)
def test_damaged_text_loads_or_raises_config_error(work: Path, text: str, kind: str) -> None:
    if kind == "scenario":
        path = work / "scenarios" / "fuzz-text.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        loads_or_config_error(load_scenario, path)
    else:
        path = work / "hardware" / "fuzz-text.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        loads_or_config_error(load_hardware, path)


@fuzz_settings(30)
@given(data=st.binary(max_size=200))
def test_random_bytes_load_or_raise_config_error(work: Path, data: bytes) -> None:
    path = work / "hardware" / "fuzz-bytes.yaml"
    path.write_bytes(data)
    loads_or_config_error(load_hardware, path)


# Shapes that used to hang or overflow the stack ---------------------------------------------


def _bomb(width: int, depth: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
    lines += [f"a{d}: &a{d} [{', '.join([f'*a{d - 1}'] * width)}]" for d in range(1, depth + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_bomb(10, 9), f"expands to more than {MAX_VALUES:,} values through aliases"),  # 10^10
        ("name: &n {a: [*n]}\n", "an alias refers to a value that contains it"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", f"nested deeper than {MAX_DEPTH} levels"),
        ("a: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", f"nested deeper than {MAX_DEPTH} levels"),
        ("a:\n" + "".join(" " * i + "- \n" for i in range(0, 400, 2)), f"nested deeper than {MAX_DEPTH}"),
    ],
    ids=["billion-laughs", "recursive-alias", "deep-flow-list", "deep-flow-map", "deep-block-list"],
)
def test_document_shape_limits(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    for load in (load_hardware, load_scenario):
        with pytest.raises(ConfigError) as info:
            load(path)
        (problem,) = info.value.problems
        assert problem.file == str(path)
        assert problem.field.startswith("line ")  # where in the file
        assert message in problem.message


def test_a_moderate_alias_expansion_still_loads(tmp_path: Path) -> None:
    """Anchors and aliases are legitimate YAML: a shared section below the limit is fine."""
    doc = yaml.safe_load((ROOT / "hardware" / "skylake-sp-2s.yaml").read_text(encoding="utf-8"))
    text = yaml.safe_dump(doc, sort_keys=False)
    text = text.replace("coherence:\n", "coherence: &coh\n", 1)
    shutil.copytree(ROOT / "hardware" / "calibration", tmp_path / "calibration")
    path = tmp_path / "hw.yaml"
    path.write_text(text + "x-shared: *coh\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"x-shared: unknown field"):
        load_hardware(path)
    path.write_text(
        text.replace("same_llc:", "same_llc: &l", 1).replace("same_socket: ", "same_socket: *l #")
    )
    hw = load_hardware(path)
    assert hw.coherence.same_socket == hw.coherence.same_llc


# Crashes found by fuzzing, pinned -----------------------------------------------------------

Edit = Callable[[dict[str, Any]], None]


def _set(*loc: Any, value: Any) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        put(doc, loc, value)

    return edit


FOUND: list[tuple[str, str, Edit, str, str]] = [
    # (id, base file, edit, field the error names, words of its message)
    (
        "size-overflows-float",
        "hardware/skylake-sp-2s.yaml",
        _set("topology", "nodes", 0, "memory", value="1e300 TiB"),
        "topology.nodes[0].memory",
        "fits in a float",
    ),
    (
        "node-memory-above-4-PiB",
        "hardware/skylake-sp-2s.yaml",
        _set("topology", "nodes", 0, "memory", value="1e30 TiB"),
        "topology.nodes[0].memory",
        "less than or equal",
    ),
    (
        "duration-overflows-ns",
        "hardware/skylake-sp-2s.yaml",
        _set("memory", "latency", 10, value="1e300 s"),
        "memory.latency[10]",
        "fits in a float",
    ),
    (
        "cost-overflows-ns",
        "hardware/skylake-sp-2s.yaml",
        _set("kernel_costs", "call", value="1e301 s"),
        "kernel_costs.call",
        "fits in a float",
    ),
    (
        "calibration-nul",
        "hardware/skylake-sp-2s.yaml",
        _set("calibration", value="cal\0ibration.yaml"),
        "calibration",
        "NUL",
    ),
    (
        "calibration-empty",
        "hardware/skylake-sp-2s.yaml",
        _set("calibration", value=""),
        "calibration",
        "file name",
    ),
    (
        "cpulist-int-out-of-range",
        "hardware/skylake-sp-2s.yaml",
        _set("topology", "nodes", 1, "cpus", value=[28, 10**30]),
        "topology.nodes[1].cpus",
        "outside 0..8191",
    ),
    (
        "cpulist-int-negative",
        "hardware/broadwell-e5-1650v4.yaml",
        _set("topology", "nodes", 0, "cpus", value=-1),
        "topology.nodes[0].cpus",
        "outside 0..8191",
    ),
    (
        "latency-key-not-an-int",
        "hardware/skylake-sp-2s.yaml",
        _set("memory", "latency", value={None: "81 ns", 21: "131 ns"}),
        "memory.latency",
        "bad key",
    ),
    (
        "no-cpu-at-all",
        "hardware/broadwell-e5-1650v4.yaml",
        _set("topology", "nodes", 0, "cpus", value=[]),
        "topology.nodes",
        "at least one",
    ),
    (
        "scenario-hardware-nul",
        "scenarios/page_bench.yaml",
        _set("hardware", value="a\0b.yaml"),
        "hardware",
        "NUL",
    ),
    (
        "offered-load-infinite-string",
        "scenarios/xdp_redirect.yaml",
        _set("xdp_redirect", "offered_load", value="inf"),
        "xdp_redirect.offered_load",
        "a valid number or 'saturate'",  # strict: the string "inf" is not a number
    ),
    (
        "client-rate-infinite",
        "scenarios/nfs_pressure.yaml",
        _set("nfs", "clients", "rate", value=math.inf),
        "nfs.clients.rate",
        "finite",
    ),
    (
        "offered-load-nan",
        "scenarios/xdp_redirect.yaml",
        _set("xdp_redirect", "offered_load", value=math.nan),
        "xdp_redirect.offered_load",
        "finite",
    ),
]


@pytest.mark.parametrize(
    ("base", "edit", "field", "words"), [c[1:] for c in FOUND], ids=[c[0] for c in FOUND]
)
def test_found_crashes_are_config_errors(work: Path, base: str, edit: Edit, field: str, words: str) -> None:
    doc = yaml.safe_load(TEXTS[base])
    edit(doc)
    kind = base.split("/")[0]
    path = write_doc(work / kind / f"found-{kind}.yaml", doc)
    load = load_scenario if kind == "scenarios" else load_hardware
    with pytest.raises(ConfigError) as info:
        load(path)
    assert_config_error_is_well_formed(info.value)
    matching = [p for p in info.value.problems if p.file == str(path) and p.field == field]
    assert matching, str(info.value)
    assert words in matching[0].message, str(info.value)


def test_unmutated_documents_load(work: Path) -> None:
    """The fuzz starts from valid documents: each shipped file, written back, loads."""
    for name, doc in HARDWARE.items():
        load_hardware(write_doc(work / "hardware" / f"copy-{name}", doc))
    for name, doc in SCENARIOS.items():
        load_scenario(write_doc(work / "scenarios" / f"copy-{name}", doc))


def test_symbolic_link_loops_are_config_errors(work: Path) -> None:
    """Found by hand: Path.resolve() raises RuntimeError on a symlink loop (Python < 3.13)."""
    loop = work / "hardware" / "loop.yaml"
    if not loop.is_symlink():
        loop.symlink_to(loop.name)
    doc = dict(SCENARIOS["page_bench.yaml"], hardware="../hardware/loop.yaml")
    path = write_doc(work / "scenarios" / "loop-scenario.yaml", doc)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert str(info.value) == f"{path}: hardware: hardware file not found (got '{loop}')"
    with pytest.raises(ConfigError) as info:
        load_hardware(loop)
    assert str(info.value) == f"{loop}: a symbolic link that leads nowhere (broken or a loop)"
    hw = dict(HARDWARE["broadwell-e5-1650v4.yaml"], calibration="loop.yaml")
    with pytest.raises(ConfigError, match=r": calibration: calibration file not found"):
        load_hardware(write_doc(work / "hardware" / "loop-hw.yaml", hw))
