"""Walk a composed YAML node tree, keeping key paths and line numbers.

``YNode`` wraps a PyYAML node with its key path (``routes.sales.targets[1]``)
and reads typed values from it. A wrong value is not raised but recorded in
the shared ``Issues`` list, so a loader can report every problem at once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

NULL_TAG = "tag:yaml.org,2002:null"
_ENV_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file."""

    path: str  # key path, e.g. "routes.sales.targets[1]"; "" for the whole file
    line: int | None  # 1-based
    message: str

    def format(self, filename: str) -> str:
        """``config.yaml:42: routes.sales.targets[1]: unknown receiving number 'desk-3'``."""
        where = filename if self.line is None else f"{filename}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(ValueError):
    """A config file that cannot be used; ``errors`` lists every problem found."""

    def __init__(self, errors: Iterable[ConfigIssue], filename: str = "<string>") -> None:
        self.errors: list[ConfigIssue] = list(errors)
        self.filename = filename
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(issue.format(self.filename) for issue in self.errors)


@dataclass
class Issues:
    """The problems found so far, plus what a walk needs to resolve ``${VAR}``."""

    env: Mapping[str, str]
    items: list[ConfigIssue] = field(default_factory=list)

    def add(self, path: str, line: int | None, message: str) -> None:
        self.items.append(ConfigIssue(path, line, message))

    def sorted(self) -> list[ConfigIssue]:
        """By line; issues without a line last. Stable within a line."""
        return sorted(self.items, key=lambda i: (i.line is None, i.line or 0))


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for a close match, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def quoted_list(choices: Iterable[str]) -> str:
    return ", ".join(f"'{c}'" for c in choices)


# LibYAML's parser when PyYAML has it: the pure-Python one takes seconds on a config of
# thousands of tracking numbers. Both give the same nodes and marks; an error is read
# again with the pure-Python one, whose messages (and lines) are the ones we document.
_C_LOADER = getattr(yaml, "CSafeLoader", None)


if _C_LOADER is not None:

    class _FastLoader(_C_LOADER):  # type: ignore[valid-type,misc]
        """LibYAML's loader, without the calls into Python it makes for every node to
        look for path resolvers (the safe loader has none), and remembering the implicit
        tag of each plain scalar (a large config's keys repeat thousands of times)."""

        _tags: dict[tuple[str, bool], str] = {}

        def descend_resolver(self, current_node, current_index):  # noqa: ANN001
            return None

        def ascend_resolver(self) -> None:
            return None

        def resolve(self, kind, value, implicit):  # noqa: ANN001
            if kind is not yaml.ScalarNode:
                return super().resolve(kind, value, implicit)
            key = (value, implicit[0])
            tag = self._tags.get(key)
            if tag is None:
                if len(self._tags) >= 50_000:
                    self._tags.clear()
                tag = self._tags[key] = super().resolve(kind, value, implicit)
            return tag


_FAST_LOADER = _FastLoader if _C_LOADER is not None else yaml.SafeLoader


def compose(text: str, issues: Issues) -> YNode | None:
    """Parse ``text`` into a root ``YNode`` (None for an empty document or a syntax error)."""
    try:
        try:
            node = yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "syntax error"
        issues.add("", line, f"invalid YAML: {problem}")
        return None
    except yaml.YAMLError as exc:
        issues.add("", None, f"invalid YAML: {exc}")
        return None
    return None if node is None else YNode(node, "", issues)


def _describe(node: Node) -> str:
    """How a node looks in an "expected X, got Y" message."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == NULL_TAG:
        return "nothing (null)"
    return f"'{node.value}'"


class YNode:
    """A YAML node with its key path; typed readers record problems in ``issues``."""

    def __init__(self, node: Node, path: str, issues: Issues, key_line: int | None = None):
        self.node = node
        self.path = path
        self.issues = issues
        self.key_line = key_line

    # -- position ------------------------------------------------------------------

    @property
    def line(self) -> int:
        """The 1-based line where the value starts."""
        return self.node.start_mark.line + 1

    @property
    def entry_line(self) -> int:
        """The line of the key that holds this value (else of the value)."""
        return self.key_line if self.key_line is not None else self.line

    def child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        """Record a problem at this node (or at ``path``/``line``)."""
        self.issues.add(self.path if path is None else path, line or self.line, message)

    def expected(self, what: str) -> None:
        self.error(f"expected {what}, got {_describe(self.node)}")

    # -- shape ---------------------------------------------------------------------

    @property
    def is_null(self) -> bool:
        return isinstance(self.node, ScalarNode) and self.node.tag == NULL_TAG

    @property
    def is_scalar(self) -> bool:
        return isinstance(self.node, ScalarNode) and not self.is_null

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.node, MappingNode)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.node, SequenceNode)

    def mapping(self, allowed: Collection[str] | None = None) -> dict[str, YNode] | None:
        """The entries of a mapping (null counts as empty); None if not a mapping.

        Duplicate keys are reported (the first wins); so are keys not in ``allowed``.
        """
        if self.is_null:
            return {}
        if not isinstance(self.node, MappingNode):
            self.expected("a mapping")
            return None
        entries: dict[str, YNode] = {}
        for key_node, value_node in self.node.value:
            key = self._key(key_node, entries, allowed)
            if key is not None:
                line = key_node.start_mark.line + 1
                entries[key] = YNode(value_node, self.child_path(key), self.issues, line)
        return entries

    def _key(
        self, key_node: Node, seen: Mapping[str, YNode], allowed: Collection[str] | None
    ) -> str | None:
        """The key as text, or None (and a recorded problem) when it must be skipped."""
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, ScalarNode):
            self.error("keys must be plain text", line=line)
            return None
        key = str(key_node.value)
        if key in seen:
            first = seen[key].entry_line
            self.error(
                f"duplicate key '{key}' (first on line {first})",
                path=self.child_path(key),
                line=line,
            )
            return None
        if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
            self.error("YAML merge keys ('<<') are not supported", line=line)
            return None
        if allowed is not None and key not in allowed:
            hint = suggest(key, allowed) or f" (expected one of {quoted_list(sorted(allowed))})"
            self.error(f"unknown key '{key}'{hint}", path=self.child_path(key), line=line)
            return None
        return key

    def sequence(self) -> list[YNode] | None:
        """The items of a list (null counts as empty); None if not a list."""
        if self.is_null:
            return []
        if not isinstance(self.node, SequenceNode):
            self.expected("a list")
            return None
        return [
            YNode(item, f"{self.path}[{i}]", self.issues) for i, item in enumerate(self.node.value)
        ]

    # -- scalars -------------------------------------------------------------------

    def _construct(self) -> Any:
        """The scalar's Python value as YAML's safe schema reads it (raises on odd tags)."""
        return SafeConstructor().construct_object(self.node, deep=True)

    def text(self, *, allow_null: bool = False) -> str | None:
        """Any scalar as written, with ``${VAR}`` substituted. Null -> None."""
        if self.is_null:
            if not allow_null:
                self.expected("a string")
            return None
        if not isinstance(self.node, ScalarNode):
            self.expected("a string")
            return None
        return self.substitute(str(self.node.value))

    def substitute(self, raw: str) -> str | None:
        """``raw`` with ``${VAR}`` (or ``${VAR:-default}``) from the environment.

        ``$${`` is a literal ``${``.
        """
        if "$" not in raw:  # nearly every scalar: no closure, no regex pass
            return raw
        failed = False

        def replace(match: re.Match[str]) -> str:
            nonlocal failed
            whole, name = match.group(0), match.group(1)
            if whole == "$${":
                return "${"
            default = None
            if name is not None and ":-" in name:
                name, default = name.split(":-", 1)
            if name is None:
                self.error("unclosed '${' (write '$${' for a literal '${')")
            elif not _ENV_NAME_RE.match(name):
                self.error(f"invalid environment variable reference '{whole}'")
            elif name not in self.issues.env and default is not None:
                return default
            elif name not in self.issues.env:
                self.error(f"environment variable '{name}' is not set")
            else:
                return self.issues.env[name]
            failed = True
            return whole

        result = _ENV_RE.sub(replace, raw)
        return None if failed else result

    def integer(self, minimum: int | None = None, maximum: int | None = None) -> int | None:
        """An integer within ``[minimum, maximum]``; ``${VAR}`` allowed."""
        value = self._integer_value()
        if value is None:
            return None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.error(f"must be {_range_text(minimum, maximum)}, got {value}")
            return None
        return value

    def _integer_value(self) -> int | None:
        if not isinstance(self.node, ScalarNode) or self.is_null:
            self.expected("an integer")
            return None
        try:
            value = self._construct()
        except ConstructorError:
            value = None
        if isinstance(value, str) and "${" in value:
            value = self.substitute(value)
            if value is None:
                return None
            value = int(value) if re.fullmatch(r"[-+]?\d+", value.strip()) else value
        if isinstance(value, bool) or not isinstance(value, int):
            self.expected("an integer")
            return None
        return value

    def boolean(self) -> bool | None:
        """``true`` or ``false``."""
        try:
            value = self._construct() if self.is_scalar else None
        except ConstructorError:
            value = None
        if not isinstance(value, bool):
            self.expected("true or false")
            return None
        return value

    def choice(self, choices: Collection[str]) -> str | None:
        """One of ``choices`` (as text)."""
        value = self.text()
        if value is None:
            return None
        if value not in choices:
            hint = suggest(value, choices)
            self.error(f"expected one of {quoted_list(choices)}, got '{value}'{hint}")
            return None
        return value

    def text_list(self) -> tuple[str, ...] | None:
        """A list of strings; a single string counts as a list of one."""
        if self.is_scalar:
            value = self.text()
            return None if value is None else (value,)
        items = self.sequence()
        if items is None:
            return None
        values = [item.text() for item in items]
        if any(v is None for v in values):
            return None
        return tuple(v for v in values if v is not None)


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"between {minimum} and {maximum}"
    if minimum is not None:
        return f"at least {minimum}"
    return f"at most {maximum}"
