"""The dependency lock: requirements.txt is requirements.in compiled (make lock), every package
pinned with its hashes, and what the tests run with is exactly what a deployment installs."""

from __future__ import annotations

import hashlib
import re
from importlib.metadata import distributions

from packaging.utils import canonicalize_name

from tests.servers import REPO_DIR

LOCK = REPO_DIR / "requirements.txt"
SOURCE = REPO_DIR / "requirements.in"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(?P<version>\S+)")


def locked() -> dict[str, tuple[str, list[str]]]:
    """Return requirements.txt as {canonical name: (version, hashes)}."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in LOCK.read_text().splitlines():
        if (match := PIN.match(line)) is not None:
            name = canonicalize_name(match["name"])
            pins[name] = (match["version"], [])
        elif line.strip().startswith("--hash=") and name is not None:
            pins[name][1].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
    return pins


def test_the_lock_is_compiled_from_requirements_in_as_it_is_now():
    stamp = LOCK.read_text().splitlines()[0]

    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    assert stamp == f"# requirements.in sha256: {digest}", "requirements.in changed since the lock: run make lock"


def test_every_package_is_pinned_with_its_hashes():
    pins = locked()

    assert len(pins) > 40
    assert {name: hashes for name, (_, hashes) in pins.items() if not hashes} == {}
    assert all(h.startswith("sha256:") for _, hashes in pins.values() for h in hashes)


def test_every_direct_dependency_is_locked_at_the_version_requirements_in_names():
    pins = locked()
    for line in SOURCE.read_text().splitlines():
        requirement = line.partition("#")[0].strip()
        if not requirement:
            continue
        match = PIN.match(requirement)
        name = canonicalize_name(match["name"] if match else re.split(r"[\[<>=~! ]", requirement)[0])
        assert name in pins, f"{requirement} is not in requirements.txt: run make lock"
        if match:
            assert pins[name][0] == match["version"], f"{requirement} is locked at {pins[name][0]}: run make lock"


def test_every_installed_package_is_the_locked_one():
    """Ensure what the tests ran with is what a deployment installs, transitive packages too."""
    pins = {name: version for name, (version, _) in locked().items()}
    installed = {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in distributions()
        if canonicalize_name(dist.metadata["Name"]) not in {"pip", "setuptools", "wheel"}
    }

    assert sorted(set(installed) - set(pins)) == [], "installed but not in requirements.txt"
    assert {name: version for name, version in installed.items() if pins.get(name, version) != version} == {}
    assert sorted(set(pins) - set(installed)) == [], "locked but not installed: make install"
