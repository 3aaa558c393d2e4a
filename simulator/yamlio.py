"""Reading YAML documents and turning schema failures into ConfigErrors that name file and field."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.errors import ConfigError, Problem, short_repr

M = TypeVar("M", bound=BaseModel)

# Limits on a document's size and shape. The shipped files are at most 7 KB, nest 5 levels and
# hold a few hundred values; these only stop documents that would otherwise exhaust the stack
# (deep nesting), or the memory and time of parsing and validation: PyYAML takes about a minute
# and a gigabyte for 500,000 keys, and an alias bomb (a few lines of anchors and aliases) expands
# to 10^9 values when anything walks it, as validation and error messages do.
MAX_DOCUMENT_BYTES = 256 << 10
MAX_DEPTH = 50
MAX_VALUES = 1_000_000


class _ShapeError(yaml.YAMLError):
    """A document too deep or too large (after aliases) to validate; `mark` is where."""

    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


class _DuplicateKeyError(yaml.YAMLError):
    """A mapping that names one key twice; `mark` is the second one."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


# YAML 1.1 (PyYAML) reads `1e15` and `2.5e+6` as strings (its floats need a dot); YAML 1.2 and
# every reader of these files reads them as numbers. Resolved as floats, not left to the schema.
_FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader, stricter:
    - nesting deeper than MAX_DEPTH is refused while composing (the composer recurses once per
      level: a document of a few thousand '[' would otherwise end in RecursionError);
    - a key given twice in one mapping is refused (PyYAML keeps the last one silently);
    - `1e15` is a float, as in YAML 1.2."""

    _depth = 0

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[type, Any], yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue  # `<<: *base` merges are overridden by explicit keys, as intended
                key = self.construct_object(key_node, deep=True)
                try:
                    ident = (type(key), key)
                    first = seen.get(ident)
                except TypeError:  # an unhashable key: SafeConstructor reports it
                    continue
                if first is not None:
                    raise _DuplicateKeyError(
                        f"duplicate key {short_repr(key)} (first at line {first.start_mark.line + 1});"
                        " a mapping holds each key once (YAML would keep only the last)",
                        key_node.start_mark,
                    )
                seen[ident] = key_node
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH and not self.check_event(yaml.AliasEvent, yaml.ScalarEvent):
            mark = self.peek_event().start_mark
            raise _ShapeError(f"values nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph that is cyclic (`&a [*a]`) or expands, through aliases, to more than
    MAX_VALUES values. Iterative and memoized: linear in the graph, not in its expansion."""
    size: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    shared = False  # a node reached twice: an alias
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            visiting.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in _children(node))
            if size[key] > MAX_VALUES:
                how = (
                    "expands to more than {:,} values through aliases"
                    if shared
                    else "holds more than {:,} values"
                )
                raise _ShapeError(how.format(MAX_VALUES), node.start_mark)
            continue
        if key in size:
            shared = True
            continue
        visiting.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in visiting:
                raise _ShapeError("an alias refers to a value that contains it", child.start_mark)
            if id(child) in size:
                shared = True
            else:
                stack.append((child, False))


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_WITHOUT_DOT, list("-+0123456789"))


def _load_yaml(text: str) -> Any:
    """yaml.safe_load with the shape checks above."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


class FieldError(ValueError):
    """Raised by a model validator to name the field (relative to that model) a check failed on.

    pydantic locates a model validator's error at the model itself ("topology"); this carries the
    rest of the path ("distances[0][1]") so the ConfigError names the field, not its parent.
    """

    def __init__(self, field: str, message: str, *value: object) -> None:
        super().__init__(message)
        self.field = field
        self.value = value[0] if value else None
        self.has_value = bool(value)


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The YAML mapping in `path`, or a ConfigError saying why there is none."""
    name = str(path)
    if not path.exists():
        if path.is_symlink():
            raise ConfigError.one(name, "", "a symbolic link that leads nowhere (broken or a loop)")
        raise ConfigError.one(name, "", "file not found")
    if path.is_dir():
        raise ConfigError.one(name, "", "is a directory, expected a YAML file")
    try:
        with open(path, "rb") as f:  # at most one byte past the limit (a FIFO has no size)
            data = f.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            size = path.stat().st_size if path.is_file() else 0
            got = f"{size:,} bytes" if size > MAX_DOCUMENT_BYTES else "more"
            raise ConfigError.one(
                name,
                "",
                f"is {got}; a scenario, sweep, hardware or calibration file may hold at most"
                f" {MAX_DOCUMENT_BYTES:,} bytes ({MAX_DOCUMENT_BYTES >> 10} KiB)",
            )
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.one(name, "", f"cannot be read as UTF-8 text: {exc}") from None
    try:
        doc = _load_yaml(text)
    except _ShapeError as exc:
        where = f"line {exc.mark.line + 1}, column {exc.mark.column + 1}" if exc.mark else ""
        raise ConfigError.one(name, where, f"YAML document too complex: {exc.message}") from None
    except _DuplicateKeyError as exc:
        where = f"line {exc.mark.line + 1}, column {exc.mark.column + 1}"
        raise ConfigError.one(name, where, exc.message) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError.one(name, where, f"YAML syntax error: {problem}") from None
    if doc is None:
        raise ConfigError.one(name, "", "is empty, expected a YAML mapping of fields")
    if not isinstance(doc, dict):
        raise ConfigError.one(
            name, "", f"expected a YAML mapping of fields at the top, got a {type(doc).__name__}"
        )
    return doc


def field_path(loc: tuple[Any, ...]) -> str:
    """('topology', 'nodes', 0, 'memory') -> 'topology.nodes[0].memory'.

    A key that is not a plain printable name (empty, spaces or control characters, a line break)
    is shown quoted in brackets, ['a b'], so that an error stays one line."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isprintable() and part.strip() == part and part:
            out += ("." if out else "") + part
        else:
            out += f"[{short_repr(part)}]"
    return out


# pydantic names the member of a union that failed in the error's location ("offered_load.float",
# "offered_load.literal['saturate']"); these are not fields.
_UNION_MEMBER = re.compile(
    r"^(int|float|str|bool|none|list\[.*\]|dict\[.*\]|literal\[.*\]|[a-z]+-[a-z-]+\[.*\])$"
)


def _is_field(part: Any) -> bool:
    return not (isinstance(part, str) and (part.startswith("function-") or _UNION_MEMBER.match(part)))


def problems_from_validation(file: str, exc: ValidationError, prefix: str = "") -> list[Problem]:
    """One Problem per field pydantic found wrong, with the dotted field path and the offending
    value (the members of a union that all failed make one problem: "a valid number or 'x'")."""
    problems: list[Problem] = []
    for prob in _problems(file, exc, prefix):
        last = problems[-1] if problems else None
        if last is not None and last.field == prob.field and last.value == prob.value and last.has_value:
            alternative = prob.message.removeprefix("Input should be ")
            problems[-1] = Problem(file, prob.field, f"{last.message} or {alternative}", prob.value, True)
            continue
        problems.append(prob)
    return problems


def _problems(file: str, exc: ValidationError, prefix: str) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if _is_field(p))
        bad_key = loc[-1:] == ("[key]",)  # a mapping's key, not its value, failed: (..., key, "[key]")
        if bad_key:
            loc = loc[:-2]
        path = field_path(loc)
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldError) and cause.field:
            sep = "" if not path or cause.field.startswith("[") else "."
            path = f"{path}{sep}{cause.field}"
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        if isinstance(cause, FieldError):
            problems.append(Problem(file, path, str(cause), cause.value, cause.has_value))
            continue
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see docs/configuration.md)"
        if err["type"] == "missing":
            problems.append(Problem(file, path, "required field is missing"))
            continue
        if bad_key:
            msg = f"bad key: {msg}"
        said = f", got {short_repr(err.get('input'))}"
        if "input" in err and msg.endswith(said):  # the value is shown once, as "(got ...)"
            msg = msg[: -len(said)]
        problems.append(Problem(file, path, msg, err.get("input"), "input" in err))
    return problems


def non_finite(data: Any) -> list[tuple[tuple[Any, ...], float]]:
    """(location, value) of every NaN or infinite float in `data` (dicts, lists, tuples, sets).

    pydantic's float accepts .nan, .inf and strings such as "inf"; no field of a scenario or
    hardware file means anything by them (an infinite client rate would never let a run end)."""
    out: list[tuple[tuple[Any, ...], float]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        loc, v = stack.pop()
        if isinstance(v, float) and not math.isfinite(v):
            out.append((loc, v))
        elif isinstance(v, dict):
            stack.extend((loc + (k,), x) for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            stack.extend((loc + (i,), x) for i, x in enumerate(v))
    return sorted(out, key=lambda lv: field_path(lv[0]))


def check_finite(obj: BaseModel, file: str, prefix: str = "") -> None:
    """A ConfigError naming every field of `obj` that holds NaN or an infinity."""
    problems = []
    for loc, v in non_finite(obj.model_dump()):
        path = field_path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        problems.append(Problem(file, path, "expected a finite number", v, True))
    if problems:
        raise ConfigError(problems)


def validate(model: type[M], data: Any, file: str, prefix: str = "") -> M:
    """model.model_validate(data) in pydantic's strict mode (no `true` for 1, no `"8"` for 8),
    with failures raised as a ConfigError naming `file`.

    Also refuses NaN and infinities in any float field (see non_finite)."""
    try:
        obj = model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(file, exc, prefix)) from None
    check_finite(obj, file, prefix)
    return obj
