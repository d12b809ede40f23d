"""The dependency audit's verdict: the environment CI tests is exactly requirements.lock, pip-audit
found no vulnerability in it (and says how many packages it could look up at all), and no locked
package is below the floor that security/advisories.toml records for it.

Exit 1 naming each problem; 0 with a summary.
"""

from __future__ import annotations

import argparse
import json
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


def pip_audit_findings(report: Path) -> tuple[list[str], str]:
    """Problems pip-audit reported, and a line saying how much it could audit."""
    try:
        dependencies = json.loads(report.read_text())["dependencies"]
    except (OSError, ValueError, KeyError):
        return [], "pip-audit did not run (no report): offline floor only"
    problems = [
        f"{dep['name']} {dep['version']}: {vuln['id']} (fixed in {', '.join(vuln['fix_versions'])})"
        for dep in dependencies
        for vuln in dep.get("vulns", [])
    ]
    skipped = [dep["name"] for dep in dependencies if "skip_reason" in dep]
    summary = f"pip-audit looked up {len(dependencies) - len(skipped)} of {len(dependencies)}"
    if skipped:
        summary += f"; not audited (no vulnerability data answered): {len(skipped)}"
    return problems, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pip-audit", type=Path, help="pip-audit's JSON report")
    args = parser.parse_args()
    pins = locked()
    problems, audited = pip_audit_findings(args.pip_audit) if args.pip_audit else ([], "")
    floors = tomllib.loads((ROOT / "security" / "advisories.toml").read_text())["floors"]
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
    if audited:
        print(f"dependency audit: {audited}")
    if not problems:
        print(
            f"dependency audit: {len(pins)} locked packages installed as locked; "
            f"{sum(canonicalize_name(n) in pins for n in floors)} tracked floors all met"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
