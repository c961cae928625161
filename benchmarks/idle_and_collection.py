"""Idle cost and collection speed, each measured side by side in one run.

1. Idle cost: ``pytest --co`` of an unrelated 200-test suite with the plugin installed (loaded through its entry
   points, no ``--smoltrace-*`` option) vs blocked (``-p no:…`` for each entry point: never imported). Target ≤ 30 ms.
2. The same on a real third-party suite, pytest-xdist's own tests (its sdist from the package index, or
   ``--suite-dir``): ``pytest --co`` loaded vs blocked, interleaved, medians; then its tests (``--outcome-tests``, a
   subset by default) run both ways, and every test's outcome compared. Targets: ≤ 30 ms, no outcome changed.
3. Collection of 10 000 tasks (``--smoltrace-agent-type both`` → 20 000 items): ``pytest --co`` wall time, and the
   time pytest itself reports for collection. Target ≤ 3 s.
Usage: ``python benchmarks/idle_and_collection.py [--repeat 7] [--tasks 10000] [--suite-dir DIR] [--skip-suite]``.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, scripted_args

#: Every entry point of the plugin blocked: none of its modules is imported.
BLOCKED = ("-p", "no:smoltrace", "-p", "no:smoltrace_fixtures")
#: The third-party suite: pytest-xdist's own tests, at the version installed here.
SUITE = "pytest-xdist"
#: Its tests that run in well under a minute on 2 cores (the acceptance tests start many interpreters).
OUTCOME_TESTS = (
    "testing/test_dsession.py",
    "testing/test_newhooks.py",
    "testing/test_plugin.py",
    "testing/test_remote.py",
)
OUTCOME_WORDS = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")


def timed(argv: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 5):
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def idle_cost(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for n in range(20):
            tests = "\n".join(f"def test_{n}_{i}():\n    assert {i} + 1 == {i + 1}\n" for i in range(10))
            (cwd / f"test_module_{n}.py").write_text(tests)
        base = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"]
        timed(base, cwd)  # warm the file system cache and .pyc files
        installed, blocked = [], []
        for _ in range(repeat):  # interleaved
            installed.append(timed(base, cwd)[0])
            blocked.append(timed([*base, *BLOCKED], cwd)[0])
    a, b = statistics.median(installed), statistics.median(blocked)
    print("1. idle cost: `pytest --co` of 200 generated tests (median of", repeat, "runs each, interleaved)")
    print(f"   plugin installed, inactive: {1000 * a:7.1f} ms")
    print(f"   plugin blocked (-p no:…):   {1000 * b:7.1f} ms")
    print(f"   cost of the installed plugin: {1000 * (a - b):+.1f} ms (ratio {a / b:.3f}); target ≤ 30 ms\n")


def _suite(directory: Path | None, scratch: Path) -> Path:
    """pytest-xdist's source tree with its tests: ``directory``, or its sdist downloaded from the package index."""
    if directory is not None:
        return directory
    from importlib.metadata import version

    wanted = f"{SUITE}=={version(SUITE)}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            wanted,
            "-d",
            str(scratch),
        ],
        check=True,
    )
    archive = next(scratch.glob("*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(scratch, filter="data")
    return next(p for p in scratch.iterdir() if p.is_dir() and (p / "testing").is_dir())


def _outcomes(output: str) -> dict[str, str]:
    """Each test's outcome from ``-rA``'s short summary lines (``PASSED testing/x.py::test_y``)."""
    found = {}
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word in OUTCOME_WORDS and "::" in rest:
            found[rest.split(" - ")[0].strip()] = word
    return found


def third_party(directory: Path | None, repeat: int, tests: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite = _suite(directory, Path(tmp))
        base = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        count = timed(base, suite)[1].strip().splitlines()[-1]
        timed([*base, *BLOCKED], suite)
        installed, blocked = [], []
        for _ in range(repeat):  # interleaved
            installed.append(timed(base, suite)[0])
            blocked.append(timed([*base, *BLOCKED], suite)[0])
        a, b = statistics.median(installed), statistics.median(blocked)
        print(f"2. idle cost on a real suite: `pytest --co` of {suite.name}'s tests ({count}; median of {repeat} each)")
        print(f"   plugin installed, inactive: {1000 * a:7.1f} ms")
        print(f"   plugin blocked (-p no:…):   {1000 * b:7.1f} ms")
        print(f"   cost of the installed plugin: {1000 * (a - b):+.1f} ms (ratio {a / b:.3f}); target ≤ 30 ms")
        run = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p", "no:randomly", *tests]
        with_plugin = _outcomes(subprocess.run(run, cwd=suite, capture_output=True, text=True, check=False).stdout)
        without = _outcomes(
            subprocess.run([*run, *BLOCKED], cwd=suite, capture_output=True, text=True, check=False).stdout
        )
    changed = sorted(k for k in with_plugin.keys() | without.keys() if with_plugin.get(k) != without.get(k))
    tally = ", ".join(f"{n} {w.lower()}" for w in OUTCOME_WORDS if (n := list(with_plugin.values()).count(w)))
    print(f"   outcomes of {len(with_plugin)} tests ({' '.join(tests)}): {tally}")
    print(f"   outcomes changed by the installed plugin: {len(changed)}" + (f" {changed[:10]}" if changed else ""))
    print()


def collection(tasks: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        rows = [
            {
                "id": f"task_{i}",
                "prompt": f"Question number {i}?",
                "expected_keywords": [str(i)],
                "difficulty": ("easy", "medium", "hard")[i % 3],
                "category": f"c{i % 7}",
            }
            for i in range(tasks)
        ]
        (cwd / "big.json").write_text(json.dumps(rows))
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "--co",
            "-q",
            "-p",
            "no:cacheprovider",
            *scripted_args("http://127.0.0.1:9/v1", "big.json", model="openai/x"),
        ]
        walls, reported = [], []
        for _ in range(repeat):
            wall, out = timed(argv, cwd)
            match = re.search(r"(\d+) tests? collected in ([\d.]+)s", out)
            if not match or int(match.group(1)) != 2 * tasks:
                raise SystemExit(f"unexpected collection output: {out[-500:]}")
            walls.append(wall)
            reported.append(float(match.group(2)))
    print(f"3. collection of {tasks} tasks × 2 agent types = {2 * tasks} items (median of {repeat} runs)")
    print(f"   whole `pytest --co` command: {statistics.median(walls):.2f} s")
    print(f"   collection as pytest reports it: {statistics.median(reported):.2f} s; target ≤ 3 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--suite-dir", type=Path, default=None, help="an unpacked pytest-xdist sdist (else downloaded)")
    parser.add_argument("--skip-suite", action="store_true", help="leave out the third-party suite")
    parser.add_argument("--outcome-tests", nargs="*", default=list(OUTCOME_TESTS), help="its tests to run both ways")
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    idle_cost(args.repeat)
    if not args.skip_suite:
        third_party(args.suite_dir, args.repeat, args.outcome_tests)
    collection(args.tasks, max(3, args.repeat // 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
