"""Errors a user can act on: each names the file, the field and what was expected.

The CLI prints these as one line each (no traceback) and exits with status 2.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_VALUE_CHARS = 200  # a bad value longer than this is shown cut short, with its length


def short_repr(value: object) -> str:
    """repr(value), cut to MAX_VALUE_CHARS: an error line names the value, it need not hold all
    of a 10,000-entry list."""
    text = repr(value)
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[: MAX_VALUE_CHARS - 40]}... ({len(text):,} characters)"


@dataclass
class Problem:
    """One thing wrong with an input: where, what was found, what was expected."""

    file: str
    field: str
    message: str
    value: object = None
    has_value: bool = False

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        got = f" (got {short_repr(self.value)})" if self.has_value else ""
        return f"{where}: {self.message}{got}"


@dataclass
class ConfigError(Exception):
    """Bad input (a scenario, hardware file or command-line override). Exit status 2."""

    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def one(cls, file: str, field_path: str, message: str, *value: object) -> ConfigError:
        return cls([Problem(file, field_path, message, value[0] if value else None, bool(value))])

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class InvariantError(Exception):
    """A simulation invariant broke (pages lost or duplicated, a lock left held...).

    This is a bug in the model, never a property of the input; the run produces no result.
    """
