"""The YAML reader: LibYAML's loader, trimmed for speed, composes what PyYAML's do."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ctm_pbx.adapters import yaml_source

REPO = Path(__file__).resolve().parents[1]

# every implicit type of the safe schema, plain and quoted, repeated (the loader remembers
# the tag of a plain scalar it has seen), as keys and as values
EVERY_KIND = """\
nulls: [~, null, Null, NULL, "", '~', "null"]
bools: [yes, no, true, false, on, off, Yes, "yes", 'true', y, n]
ints: [0, 42, -17, +3, 0o17, 0x1F, 1_000, 0b101, "42", '0x1F']
floats: [1.5, -0.25, 1e3, .inf, -.Inf, .nan, "1.5"]
times: [2026-12-04, 2026-12-04T03:10:00Z, "2026-12-04"]
text:
  - plain
  - "+1 312 555 0100"
  - +13125550100
  - ${DB_PATH}
  - "yes: no"
yes: the key is a bool
42: the key is an int
base: &base {a: 1}
merged: {<<: *base, b: 2}
again: [yes, yes, 42, 42, ~, ~, plain, plain, "yes", "42"]
block: |
  kept as written
"""


def _shape(node: yaml.Node, style: bool = True) -> tuple:
    """A node as a comparable tree: its class, tag, marks and value (and scalar style:
    LibYAML and the pure-Python parser write a plain scalar's differently)."""
    marks = (node.start_mark.line, node.start_mark.column, node.end_mark.line)
    if isinstance(node, yaml.ScalarNode):
        return ("scalar", node.tag, node.value, node.style if style else None, marks)
    if isinstance(node, yaml.SequenceNode):
        return ("seq", node.tag, tuple(_shape(i, style) for i in node.value), marks)
    pairs = tuple((_shape(k, style), _shape(v, style)) for k, v in node.value)
    return ("map", node.tag, pairs, marks)


@pytest.mark.parametrize(
    "text",
    [EVERY_KIND, (REPO / "config.example.yaml").read_text(encoding="utf-8")],
    ids=["every-kind", "config.example.yaml"],
)
def test_the_fast_loader_composes_what_pyyaml_does(text: str) -> None:
    assert yaml_source._C_LOADER is not None  # PyYAML's wheels have LibYAML
    for _ in range(2):  # the second time from what the loader remembered
        fast = yaml.compose(text, Loader=yaml_source._FAST_LOADER)
        assert _shape(fast) == _shape(yaml.compose(text, Loader=yaml.CSafeLoader))
        pure = yaml.compose(text, Loader=yaml.SafeLoader)
        assert _shape(fast, style=False) == _shape(pure, style=False)


def test_a_quoted_scalar_is_text_even_after_the_same_plain_one() -> None:
    issues = yaml_source.Issues({})
    root = yaml_source.compose("a: yes\nb: 'yes'\nc: yes\n", issues)
    assert root is not None
    entries = root.mapping()
    assert entries is not None
    tags = {key: node.node.tag for key, node in entries.items()}
    assert tags == {
        "a": "tag:yaml.org,2002:bool",
        "b": "tag:yaml.org,2002:str",
        "c": "tag:yaml.org,2002:bool",
    }
