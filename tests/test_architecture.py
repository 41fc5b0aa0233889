"""The three rings hold: core imports nothing of adapters or edges, nor any I/O library;
adapters import nothing of edges. Every import is checked, also those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ctm_pbx"

# What the pure core may not import: the outer rings, and I/O, event loops, databases,
# config formats and the network.
CORE_FORBIDDEN = (
    "ctm_pbx.adapters",
    "ctm_pbx.edges",
    "asyncio",
    "aiohttp",
    "sqlite3",
    "sqlite_utils",
    "yaml",
    "socket",
    "subprocess",
    "threading",
    "click",
    "jinja2",
    "argon2",
    "panoramisk",
    "urllib.request",
    "http.client",
)
ADAPTERS_FORBIDDEN = ("ctm_pbx.edges",)


def imports_of(path: Path, top: Path) -> list[tuple[int, str]]:
    """Every module ``path`` (inside package ``top``) imports, absolute, with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(top.parent).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations(ring: str, forbidden: tuple[str, ...], top: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted((top / ring).rglob("*.py")):
        for line, module in imports_of(path, top):
            if any(module == f or module.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(top.parent)}:{line} imports {module}")
    return sorted(set(bad))


@pytest.mark.parametrize(
    ("ring", "forbidden"), [("core", CORE_FORBIDDEN), ("adapters", ADAPTERS_FORBIDDEN)]
)
def test_imports_point_inward(ring: str, forbidden: tuple[str, ...]) -> None:
    assert violations(ring, forbidden) == []


def test_the_check_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    """The checker itself: a relative import and one inside a function are both found."""
    top = tmp_path / "ctm_pbx"
    (top / "core").mkdir(parents=True)
    (top / "core" / "_ring_probe.py").write_text(
        "from ..edges import cli\n\ndef f():\n    import asyncio\n"
    )
    found = violations("core", CORE_FORBIDDEN, top)
    assert "ctm_pbx/core/_ring_probe.py:1 imports ctm_pbx.edges" in found
    assert "ctm_pbx/core/_ring_probe.py:4 imports asyncio" in found
