"""Offline half of the dependency audit: the environment CI tests is exactly requirements.lock,
and no locked package is below the floor that security/advisories.toml records for it.

Exit 1 naming each problem; 0 with a one-line summary.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import distributions
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
# The project itself is not a dependency; pip is the installer, upgraded by CI and never imported.
UNPINNED = ("broadcaster", "pip")


def locked() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, raw in enumerate((ROOT / "requirements.lock").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            sys.exit(f"requirements.lock line {number}: {raw!r} is not NAME==VERSION")
        pins[canonicalize_name(name)] = Version(version.split(";")[0].strip())
    return pins


def main() -> int:
    pins = locked()
    floors = tomllib.loads((ROOT / "security" / "advisories.toml").read_text())["floors"]
    problems = []
    for name, rule in floors.items():
        pinned = pins.get(canonicalize_name(name))
        if pinned is not None and pinned < Version(rule["floor"]):
            problems.append(
                f"{name} {pinned} is below {rule['floor']} ({', '.join(rule['advisories'])}: "
                f"{rule['why']}); raise it in requirements.lock"
            )
    installed = {canonicalize_name(d.metadata["Name"]): Version(d.version) for d in distributions()}
    for name in UNPINNED:
        installed.pop(name, None)
    for name, version in sorted(installed.items()):
        if pins.get(name) != version:
            want = pins.get(name, "nothing")
            problems.append(
                f"{name} {version} is installed but requirements.lock pins {want}: "
                "regenerate it with .ci/lock"
            )
    for problem in problems:
        print(f"dependency audit: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"dependency audit: {len(pins)} locked packages installed as locked; "
            f"{sum(canonicalize_name(n) in pins for n in floors)} tracked floors all met"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
