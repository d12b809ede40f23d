"""CLI start-up benchmark: the wall time and peak memory of `broadcaster --version`, `--help`,
`templates list` and `templates show` (the installed script, stdout a pipe), beside two
baselines: `python -c pass` (the interpreter alone) and every verb module imported up front, as
the command line did before its verbs were imported lazily (broadcaster/cli/main.py).

    python benchmarks/cli_startup.py --runs 5

The commands run in turn, `--runs` times, after one run each that is not counted (it writes the
bytecode); each row gives the median and the best wall time, the median CPU time (the steadier
figure on a busy machine) and the ratio of the median wall times to the eager import. The home
is a throw-away folder (the sample district, the embedded SQLite). The last line printed is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

EAGER = (
    "import importlib; from broadcaster.cli.main import VERBS; "
    "[importlib.import_module('broadcaster.cli.' + m) for m, _ in VERBS.values()]"
)


def bench_env(home: str) -> dict[str, str]:
    """The environment the commands run in: none of the caller's BROADCASTER_* variables, and
    bytecode cached as an installed package has it (in `home`, not in the checkout), even when
    the caller turned it off with PYTHONDONTWRITEBYTECODE: else every run compiles every module
    of the checkout again, which no installed command does."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | {"BROADCASTER_HOME": home, "PYTHONPYCACHEPREFIX": os.path.join(home, "pycache")}


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """One run: its wall seconds, its CPU seconds (user and system: what the wall time is on an
    idle machine, less disturbed by other work) and its peak memory in MB."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if child.stdout:  # a pipe, as asked: read to the end
        child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{' '.join(argv)} exited {os.waitstatus_to_exitcode(status)}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    script = shutil.which("broadcaster", path=os.path.dirname(sys.executable))
    if script is None:
        sys.exit("the broadcaster script is not installed: pip install -e .")
    home = tempfile.mkdtemp(prefix="cli-startup-")
    env = bench_env(home)
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "eager import (before)": [sys.executable, "-c", EAGER],
        "broadcaster --version": [script, "--version"],
        "broadcaster --help": [script, "--help"],
        "broadcaster templates list": [script, "templates", "list"],
        "broadcaster templates show": [script, "templates", "show", "lockdown"],
    }
    for argv in cases.values():  # not counted: it writes the bytecode
        measure(argv, env)
    taken: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for _ in range(runs):  # the cases in turn, so that a busy moment touches them all
        for name, argv in cases.items():
            taken[name].append(measure(argv, env))
    results = {
        name: {
            "seconds": statistics.median(s for s, _, _ in rows),
            "best_seconds": min(s for s, _, _ in rows),
            "cpu_seconds": statistics.median(cpu for _, cpu, _ in rows),
            "peak_mb": max(mb for _, _, mb in rows),
        }
        for name, rows in taken.items()
    }
    eager = results["eager import (before)"]["seconds"]
    print(
        f"{'command':<28} {'median s':>9} {'best s':>7} {'CPU s':>6} {'peak MB':>8} {'vs eager':>9}"
    )
    for name, row in results.items():
        row["ratio_to_eager"] = row["seconds"] / eager
        print(
            f"{name:<28} {row['seconds']:>9.3f} {row['best_seconds']:>7.3f} "
            f"{row['cpu_seconds']:>6.3f} {row['peak_mb']:>8.0f} {row['ratio_to_eager']:>9.2f}"
        )
    shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({"runs": runs, "results": results}))


if __name__ == "__main__":
    main()
