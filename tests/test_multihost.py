"""Items on other machines (``--tx ssh=…``): the real multi-host run of ``benchmarks/multihost.py``, and what remote
workers need from the controller (no credential check of its own environment, metrics.json per host)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_smoltrace.roles import items_run_elsewhere
from pytest_smoltrace.telemetry.metrics import build_metrics_document
from pytest_smoltrace.telemetry.samples import CpuReading, Samples

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "multihost.py"


def _cannot_make_namespaces() -> str | None:
    """Why this machine cannot run the multi-host script (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, sshd)"
    for tool in ("ip", "ssh", "ssh-keygen", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access("/usr/sbin/sshd", os.X_OK):
        return "no /usr/sbin/sshd (apt-get install -y openssh-server)"
    name = f"smtprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


@pytest.mark.slow
def test_a_run_on_two_ssh_hosts_equals_a_local_run_item_for_item() -> None:
    reason = _cannot_make_namespaces()
    if reason:
        pytest.skip(f"the multi-host run {reason}")
    done = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "3"], capture_output=True, text=True, timeout=900)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "OK: the multi-host run equals the local -n 4 run item for item" in output
    assert "item for item (8 items in both runs): outcome 8/8," in output  # 3 tasks + 1 failing, both agent types
    assert "smt-host1: processes gw0, gw1;" in output and "smt-host2: processes gw2, gw3;" in output
    # each host keeps the rate limiter's state in its own temporary directory (per-machine limits by default)
    assert "smt-host1's own TMPDIR after the runs: smoltrace-multihost.rate" in output
    # nothing outlives the script: its namespaces and sshd servers are gone
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    tag = next(line.split("(netns ")[1].split("-")[0] for line in output.splitlines() if line.startswith("hosts:"))
    assert tag not in namespaces


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_the_script_refuses_to_run_without_root() -> None:
    done = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot run: must run as root" in done.stderr


@pytest.mark.parametrize(
    ("tx", "elsewhere"),
    [
        (["2*ssh=bench@gpu-1//python=/opt/venv/bin/python//chdir=/srv/p", "ssh=gpu-2"], True),
        (["socket=10.0.0.5:8888"], True),
        (["2*ssh=gpu-1", "popen"], False),  # a local worker runs items with the controller's environment
        (["4*popen"], False),  # what -n 4 becomes
        (["popen//chdir=/tmp/x"], False),
    ],
)
def test_items_run_elsewhere_only_when_every_worker_is_remote(
    pytester: pytest.Pytester, tx: list[str], elsewhere: bool
) -> None:
    args = [a for spec in tx for a in ("--tx", spec)]
    config = pytester.parseconfigure("--dist", "load", *args)
    assert items_run_elsewhere(config) is elsewhere


def test_items_run_here_without_xdist_distribution(pytester: pytest.Pytester) -> None:
    assert items_run_elsewhere(pytester.parseconfigure()) is False


def _samples(process: str, host: str, system_cpu: float, memory: float, seconds: float) -> Samples:
    readings = tuple(
        CpuReading(
            timestamp=1000.0 + i,
            process_cpu_pct=10.0,
            system_cpu_pct=system_cpu + i,
            process_rss_mib=100.0,
            system_memory_used_mib=memory,
            system_memory_pct=memory / 100,
        )
        for i in range(3)
    )
    return Samples(
        process=process,
        pid=1,
        host=host,
        started_at=1000.0,
        ended_at=1003.0,
        interval_s=1.0,
        cpu_readings=readings,
        process_cpu_seconds=seconds,
        logical_cpus=4 if host == "a" else 16,
    )


def test_metrics_json_keeps_each_hosts_machine_figures_apart() -> None:
    doc = build_metrics_document(
        [
            _samples("gw0", "a", 10.0, 1000.0, 1.5),
            _samples("gw1", "a", 20.0, 1000.0, 2.5),
            _samples("gw2", "b", 80.0, 9000.0, 4.0),
        ],
        run_id="r",
        model_is_local=False,
    )
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert list(hosts) == ["a", "b"]
    assert hosts["a"]["processes"] == ["gw0", "gw1"] and hosts["b"]["processes"] == ["gw2"]
    assert (hosts["a"]["logical_cpus"], hosts["b"]["logical_cpus"]) == (4, 16)
    assert hosts["a"]["process_cpu_seconds"] == pytest.approx(4.0)
    assert hosts["a"]["cpu_system_percent_avg"] == pytest.approx(16.0)  # (11 + 21) / 2: host a's readings only
    assert hosts["a"]["cpu_system_percent_max"] == pytest.approx(22.0)
    assert hosts["b"]["cpu_system_percent_avg"] == pytest.approx(81.0)
    assert hosts["b"]["system_memory_used_max_mib"] == pytest.approx(9000.0)
    assert hosts["a"]["gpus"] == hosts["b"]["gpus"] == 0
    # the run-wide figure pools every host's readings
    assert doc["aggregates"]["cpu_system_percent_avg"] == pytest.approx((11 + 21 + 81) / 3)
