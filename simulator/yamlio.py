"""Reading YAML documents and turning schema failures into ConfigErrors that name file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from simulator.errors import ConfigError, Problem

M = TypeVar("M", bound=BaseModel)


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
        raise ConfigError.one(name, "", "file not found")
    if path.is_dir():
        raise ConfigError.one(name, "", "is a directory, expected a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.one(name, "", f"cannot be read as UTF-8 text: {exc}") from None
    try:
        doc = yaml.safe_load(text)
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
    """('topology', 'nodes', 0, 'memory') -> 'topology.nodes[0].memory'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def problems_from_validation(file: str, exc: ValidationError, prefix: str = "") -> list[Problem]:
    """One Problem per pydantic error, with the dotted field path and the offending value."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
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
        problems.append(Problem(file, path, msg, err.get("input"), "input" in err))
    return problems


def validate(model: type[M], data: Any, file: str, prefix: str = "") -> M:
    """model.model_validate(data), with failures raised as a ConfigError naming `file`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(file, exc, prefix)) from None
