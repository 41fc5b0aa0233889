"""Dependencies: each one bounded to the major version it was tested with (setup.cfg), and
constraints.txt (what scripts/bootstrap, hence CI, and scripts/install install) pins an
exact version of each, within those bounds."""

from __future__ import annotations

import configparser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def requirements() -> list[Requirement]:
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    lines = cfg["options"]["install_requires"].splitlines()
    lines += cfg["options.extras_require"]["test"].splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def constraints() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[Requirement(name).name.lower().replace("_", "-")] = Version(version)
    return pins


def test_every_dependency_has_an_upper_bound() -> None:
    for req in requirements():
        assert any(spec.operator == "<" for spec in req.specifier), f"{req}: no upper bound"


def test_panoramisk_stays_below_2() -> None:  # its internals are used
    (req,) = [r for r in requirements() if r.name == "panoramisk"]
    assert not req.specifier.contains("2.0")


def test_constraints_pin_every_dependency_within_its_bounds() -> None:
    pins = constraints()
    for req in requirements():
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{req.name} is not in constraints.txt"
        assert req.specifier.contains(pins[name]), f"constraints.txt {name}=={pins[name]}: {req}"
