"""CLI start-up benchmark: the wall time and peak memory of `broadcaster --version`, `--help` and
`templates list` (the installed script, stdout a pipe), beside two baselines: `python -c pass`
(the interpreter alone) and every verb module imported up front, as the command line did before
its verbs were imported lazily (broadcaster/cli/main.py).

    python benchmarks/cli_startup.py --runs 5

Each row is the median of the runs; the ratio is to the eager import. The home is a throw-away
folder (the sample district, the embedded SQLite). The last line printed is one JSON object.
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


def measure(argv: list[str], env: dict[str, str], runs: int) -> dict[str, float]:
    seconds, peaks = [], []
    for _ in range(runs):
        started = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if child.stdout:  # a pipe, as asked: read to the end
            child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak memory
        seconds.append(time.perf_counter() - started)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            sys.exit(f"{' '.join(argv)} exited {child.returncode}")
        peaks.append(usage.ru_maxrss / 1024)
    return {"seconds": statistics.median(seconds), "peak_mb": max(peaks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    script = shutil.which("broadcaster", path=os.path.dirname(sys.executable))
    if script is None:
        sys.exit("the broadcaster script is not installed: pip install -e .")
    home = tempfile.mkdtemp(prefix="cli-startup-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["BROADCASTER_HOME"] = home
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "eager import (before)": [sys.executable, "-c", EAGER],
        "broadcaster --version": [script, "--version"],
        "broadcaster --help": [script, "--help"],
        "broadcaster templates list": [script, "templates", "list"],
    }
    results = {name: measure(argv, env, runs) for name, argv in cases.items()}
    eager = results["eager import (before)"]["seconds"]
    print(f"{'command':<28} {'median s':>9} {'peak MB':>8} {'vs eager':>9}")
    for name, row in results.items():
        row["ratio_to_eager"] = row["seconds"] / eager
        ratio = row["ratio_to_eager"]
        print(f"{name:<28} {row['seconds']:>9.3f} {row['peak_mb']:>8.0f} {ratio:>9.2f}")
    shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({"runs": runs, "results": results}))


if __name__ == "__main__":
    main()
