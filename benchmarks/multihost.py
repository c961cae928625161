"""A real multi-host run: items on two SSH "hosts" (``--tx ssh=…``) equal a local ``-n 4`` run, item for item.

Two hosts on this machine, made with network namespaces (``ip netns``), each with its own hostname (a UTS namespace),
temporary directory and copy of the project, and Debian's OpenSSH server (``/usr/sbin/sshd``, key authentication
only, a throwaway host key and client key pair). A third namespace is the controller: it holds the scripted model
server (10.77.0.1) and runs ``pytest``; all traffic stays inside the three namespaces, nothing listens outside them::

    controller namespace                     host namespaces
    ┌────────────────────────────┐  veth  ┌──────────────────────────────────────┐
    │ lo 10.77.0.1 model server  ├────────┤ smt-host1  10.77.1.2  sshd → 2 workers │
    │ pytest (xdist controller)  ├────────┤ smt-host2  10.77.2.2  sshd → 2 workers │
    └────────────────────────────┘        └──────────────────────────────────────┘

From the controller namespace it runs the same tasks twice against the same model server:

- ``pytest --dist load --tx 2*ssh=smt-host1//ssh_config=…//python=<venv>/bin/python//chdir=<host copy>
  --tx 2*ssh=smt-host2//…`` (execnet runs the ``ssh`` client with ``-F`` our own ssh_config: no ~/.ssh, no
  /etc/ssh is read or written);
- ``pytest -n 4 --dist load`` on the controller itself,

and compares the two run directories item for item: outcomes and checks, tokens, steps, tool calls, answers, the
shape of each item's trace (span names and categories as a tree), and metrics.json's processes and series per host.
Prints a side-by-side summary; exits 1 on a difference, 2 when it cannot run (not root, no sshd, no namespaces).
Everything it made (sshd processes, the model server, namespaces with their veths, the temporary directory) is
removed at the end, on failure and on Ctrl-C too.

Usage (root; ``apt-get install -y openssh-server``): ``python benchmarks/multihost.py [--tasks 8] [--keep]``.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import task_set

SSHD = "/usr/sbin/sshd"
#: The controller's service address (on its loopback) and each host's address on its veth.
SERVER_ADDRESS = "10.77.0.1"
HOSTS = ("smt-host1", "smt-host2")
WORKERS_PER_HOST = 2
LOCAL_WORKERS = WORKERS_PER_HOST * len(HOSTS)
REPO = Path(__file__).resolve().parents[1]


class CannotRun(Exception):
    """What this machine lacks to run the multi-host check (exit status 2)."""


def host_address(index: int) -> str:
    return f"10.77.{index + 1}.2"


def gateway_address(index: int) -> str:
    return f"10.77.{index + 1}.1"


def preconditions() -> None:
    """Root, the tools, namespaces: each missing piece is a CannotRun naming it."""
    if os.geteuid() != 0:
        raise CannotRun("must run as root (it creates network namespaces and starts sshd)")
    for tool in ("ip", "ssh", "ssh-keygen", "unshare", "hostname"):
        if shutil.which(tool) is None:
            raise CannotRun(f"{tool!r} is not installed (iproute2, openssh-client, util-linux)")
    if not os.access(SSHD, os.X_OK):
        raise CannotRun(f"{SSHD} is missing: apt-get install -y openssh-server")


def _run(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done


@dataclass
class Lab:
    """The namespaces, sshd servers and model server of one run; :meth:`close` undoes everything made so far."""

    root: Path
    tag: str = field(default_factory=lambda: f"smt{os.getpid() % 100000}")
    undo: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    base_url: str = ""

    # -- names ------------------------------------------------------------------------------------------------------

    @property
    def controller_ns(self) -> str:
        return f"{self.tag}-ctl"

    def host_ns(self, index: int) -> str:
        return f"{self.tag}-h{index + 1}"

    def host_dir(self, index: int) -> Path:
        return self.root / HOSTS[index]

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh" / "ssh_config"

    def in_controller(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.controller_ns, *argv]

    # -- building ---------------------------------------------------------------------------------------------------

    def _namespace(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self.undo.append((f"namespace {name}", lambda: self._delete_namespace(name)))
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def _delete_namespace(self, name: str) -> None:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:  # only processes of our own namespace (ours, or their children)
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)  # its veth ends go with it

    def network(self) -> None:
        """Three namespaces: the controller holds 10.77.0.1 on its loopback and one veth per host (10.77.N.1/24);
        each host has 10.77.N.2/24 and a default route through the controller."""
        ctl = self.controller_ns
        self._namespace(ctl)
        _run(["ip", "-n", ctl, "addr", "add", f"{SERVER_ADDRESS}/32", "dev", "lo"])
        for i in range(len(HOSTS)):
            ns, veth = self.host_ns(i), f"v{self.tag}{i + 1}"[:15]
            self._namespace(ns)
            _run(["ip", "-n", ctl, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            _run(["ip", "-n", ctl, "addr", "add", f"{gateway_address(i)}/24", "dev", veth])
            _run(["ip", "-n", ctl, "link", "set", veth, "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{host_address(i)}/24", "dev", "eth0"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            _run(["ip", "-n", ns, "route", "add", "default", "via", gateway_address(i)])

    def keys(self) -> None:
        """A client key pair, one host key per host, the authorized_keys, known_hosts and ssh_config of this run."""
        ssh = self.root / "ssh"
        ssh.mkdir(mode=0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "smoltrace-multihost", "-f", str(ssh / "client")])
        shutil.copy(ssh / "client.pub", ssh / "authorized_keys")
        known, config = [], []
        for i, host in enumerate(HOSTS):
            key = ssh / f"{host}_host_ed25519"
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", host, "-f", str(key)])
            kind, blob = key.with_suffix(".pub").read_text().split()[:2]
            known.append(f"{host} {kind} {blob}")
            config += [f"Host {host}", f"  HostName {host_address(i)}", f"  HostKeyAlias {host}"]
        (ssh / "known_hosts").write_text("\n".join(known) + "\n")
        config += [
            "Host *",
            "  User root",
            f"  IdentityFile {ssh / 'client'}",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {ssh / 'known_hosts'}",
            "  GlobalKnownHostsFile /dev/null",
            "  StrictHostKeyChecking yes",
            "  BatchMode yes",
            "  ConnectTimeout 10",
            "  ServerAliveInterval 15",
            "  LogLevel ERROR",
        ]
        self.ssh_config.write_text("\n".join(config) + "\n")

    def sshd(self) -> None:
        """One sshd per host namespace, in a UTS namespace of its own (so the host has its own hostname), listening
        on the host's address only. Sessions get the host's own TMPDIR (SetEnv), as another machine has its own /tmp."""
        privsep = Path("/run/sshd")  # sshd refuses to start without its privilege separation directory
        if not privsep.exists():
            privsep.mkdir(mode=0o755)
            self.undo.append((str(privsep), lambda: privsep.rmdir()))
        ssh = self.root / "ssh"
        for i, host in enumerate(HOSTS):
            home = self.host_dir(i)
            (home / "tmp").mkdir(parents=True)
            config = home / "sshd_config"
            config.write_text(
                "\n".join(
                    [
                        f"ListenAddress {host_address(i)}:22",
                        f"HostKey {ssh / f'{host}_host_ed25519'}",
                        f"PidFile {home / 'sshd.pid'}",
                        f"AuthorizedKeysFile {ssh / 'authorized_keys'}",
                        "PubkeyAuthentication yes",
                        "PasswordAuthentication no",
                        "KbdInteractiveAuthentication no",
                        "PermitRootLogin prohibit-password",
                        "StrictModes no",  # the keys live under /tmp (mode 1777), not in a home directory
                        "UsePAM no",
                        "X11Forwarding no",
                        "AllowTcpForwarding no",
                        # what a user puts in the workers' environment (shell profile, SetEnv): the key is the
                        # scripted server's (any value); the controller, which runs no item, has none
                        f"SetEnv TMPDIR={home / 'tmp'} LITELLM_LOCAL_MODEL_COST_MAP=True OPENAI_API_KEY=sk-multihost",
                        "LogLevel INFO",
                    ]
                )
                + "\n"
            )
            _run([SSHD, "-t", "-f", str(config)])
            log = open(home / "sshd.log", "wb")  # noqa: SIM115 (kept open for the server's life)
            command = f"hostname {host} && exec {SSHD} -D -e -f {config}"
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.host_ns(i), "unshare", "--uts", "sh", "-c", command],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            self._started(f"sshd on {host}", proc)
        for i, host in enumerate(HOSTS):
            self._wait_for_ssh(i, host)

    def _started(self, what: str, proc: subprocess.Popen[bytes]) -> None:
        self.processes.append(proc)
        self.undo.append((what, lambda: _stop(proc)))

    def _wait_for_ssh(self, index: int, host: str) -> None:
        deadline = time.monotonic() + 20
        while True:
            done = subprocess.run(
                self.in_controller(["ssh", "-F", str(self.ssh_config), host, "hostname; echo $TMPDIR"]),
                capture_output=True,
                text=True,
            )
            if done.returncode == 0:
                name, tmpdir = done.stdout.split()
                if name != host or tmpdir != str(self.host_dir(index) / "tmp"):
                    raise RuntimeError(f"{host}: ssh reached {name!r} with TMPDIR {tmpdir!r}")
                return
            if time.monotonic() > deadline:
                log = (self.host_dir(index) / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"ssh to {host} failed: {done.stderr.strip()}\nsshd log:\n{log}")
            time.sleep(0.2)

    def model_server(self, scripts: dict[str, Any]) -> None:
        """The scripted model server on the controller's 10.77.0.1 (a free port), as ``python -m`` runs it."""
        path = self.root / "scripts.json"
        path.write_text(json.dumps(scripts), encoding="utf-8")
        log_path = self.root / "model-server.log"
        log = open(log_path, "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            self.in_controller(
                [sys.executable, "-m", "pytest_smoltrace.testing", "--scripts", str(path), "--host", SERVER_ADDRESS]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._started("model server", proc)
        deadline = time.monotonic() + 30
        while not self.base_url:
            found = re.search(r"OpenAI base URL (\S+)", log_path.read_text(errors="replace"))
            if found:
                self.base_url = found.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the model server did not start:\n{log_path.read_text(errors='replace')}")
            else:
                time.sleep(0.1)

    def close(self) -> None:
        while self.undo:
            what, action = self.undo.pop()
            try:
                action()
            except Exception as exc:  # keep undoing the rest
                print(f"teardown: {what}: {exc}", file=sys.stderr)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# -- the two runs ---------------------------------------------------------------------------------------------------


def make_project(directory: Path, tasks: list[dict[str, Any]]) -> None:
    """The user's project: a task file and a pytest.ini that makes it the rootdir."""
    directory.mkdir(parents=True)
    (directory / "tasks.json").write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")


def pytest_command(lab: Lab, run_id: str, output_dir: Path, dist: Sequence[str]) -> list[str]:
    # ``--smoltrace-dataset=tasks.json`` in one argument: xdist rewrites any argument that names an existing path
    # relative to its rsync roots for ssh workers, and refuses one outside them ("not relative to an rsync root")
    return [
        str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable,
        "-m",
        "pytest",
        "-v",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        "-p",
        "no:rerunfailures",  # its status server listens on the controller's 127.0.0.1: remote workers cannot reach it
        "--smoltrace-model",
        "openai/scripted",
        f"--smoltrace-api-base={lab.base_url}",
        "--smoltrace-dataset=tasks.json",
        f"--smoltrace-run-id={run_id}",
        f"--smoltrace-output-dir={output_dir}",
        "--smoltrace-sample-interval=0.5",
        "--smoltrace-max-rpm=6000",  # never reached: shows where each host keeps the rate limiter's state
        "--dist",
        "load",
        *dist,
    ]


def tx_specs(lab: Lab, python: str) -> list[str]:
    specs = []
    for i, host in enumerate(HOSTS):
        chdir = lab.host_dir(i) / "project"
        spec = f"{WORKERS_PER_HOST}*ssh={host}//ssh_config={lab.ssh_config}//python={python}//chdir={chdir}"
        specs += ["--tx", spec]
    return specs


@dataclass(frozen=True)
class Run:
    label: str
    command: list[str]
    returncode: int
    output: str
    wall_s: float
    run_dir: Path


def run_pytest(
    lab: Lab, label: str, command: list[str], cwd: Path, run_dir: Path, timeout_s: float, *, api_key: bool
) -> Run:
    # the controller's own temporary directory (and the local run's workers'), inside this run's directory
    tmp = cwd.parent / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "TMPDIR": str(tmp)}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("OPENAI_API_KEY", None)
    if api_key:
        env["OPENAI_API_KEY"] = "sk-multihost"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run(
        lab.in_controller(command),
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    (run_dir.parent / f"{run_dir.name}.log").write_text(output, encoding="utf-8")
    return Run(label, command, done.returncode, output, time.perf_counter() - start, run_dir)


# -- reading a run directory back -----------------------------------------------------------------------------------


def _read(run_dir: Path, name: str) -> Any:
    return json.loads((run_dir / name).read_text(encoding="utf-8"))


def trace_shape(document: dict[str, Any]) -> Any:
    """A trace as a tree of (category, name), children in start order: what must not depend on where it ran."""
    spans = document.get("spans") or []
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s.get("span_id") for s in spans}
    for span in spans:
        parent = span.get("parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(span)

    def shape(span: dict[str, Any]) -> Any:
        kids = sorted(children.get(span.get("span_id"), []), key=lambda s: (s.get("start_time", 0), s.get("name")))
        return [span.get("category", "other"), span.get("name"), [shape(k) for k in kids]]

    roots = sorted(children.get(None, []), key=lambda s: (s.get("start_time", 0), s.get("name")))
    return [shape(r) for r in roots]


def count_spans(shape: Any) -> int:
    return sum(1 + count_spans(children) for _, _, children in shape)


def items(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Per node id: what must be equal in both runs (results.json, and the trace of each item in traces.json)."""
    traces = {d.get("trace_id"): d for d in _read(run_dir, "traces.json")}
    out: dict[str, dict[str, Any]] = {}
    for row in _read(run_dir, "results.json"):
        trace = traces.get(row.get("trace_id"))
        out[row["test_case_uid"]] = {
            "outcome": row["outcome"],
            "success": row["success"],
            "checks": [(c["name"], c["passed"]) for c in row["checks"]],
            "stop_reason": row["stop_reason"],
            "steps": row["steps"],
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
            "total_tokens": row["total_tokens"],
            "tool_calls": [(c["name"], c["arguments"], c.get("result"), c.get("error")) for c in row["tool_calls"]],
            "response": row["response"],
            "error": row["error"],
            "trace": trace_shape(trace) if trace is not None else None,
        }
    return out


def metrics(run_dir: Path) -> dict[str, dict[str, Any]]:
    """metrics.json per host (its ``hosts`` entries): the processes that sampled there, with how many series rows
    each host has, and which of its processes have no CPU series."""
    document = _read(run_dir, "metrics.json")
    rows = Counter(r["host"] for r in document["series"])
    sampled = {(r["host"], r["process"]) for r in document["series"] if r["metric"] == "process.cpu.utilization"}
    hosts = {}
    for entry in document.get("hosts", ()):
        name = entry["host"]
        hosts[name] = {
            "processes": sorted(entry["processes"]),
            "series": rows[name],
            "silent": [p for p in entry["processes"] if (name, p) not in sampled],
            "cpu_system_percent_avg": entry["cpu_system_percent_avg"],
            "logical_cpus": entry["logical_cpus"],
        }
    listed = {p["host"] for p in document["processes"]}
    for name in listed - set(hosts):  # a process whose host has no entry in "hosts"
        hosts[name] = {"processes": [], "series": rows[name], "silent": [], "missing": True}
    return hosts


def workers_of_items(output: str) -> dict[str, str]:
    """xdist's verbose lines ``[gw2] [ 50%] PASSED · 3 done · … smoltrace/…::tool::b0``: which worker ran each
    item (the node id is the last word)."""
    found = {}
    for match in re.finditer(r"^\[(gw\d+)\] \[\s*\d+%\] .*?(\S+)\s*$", output, re.MULTILINE):
        found[match.group(2)] = match.group(1)
    return found


# -- comparing ------------------------------------------------------------------------------------------------------


def compare(remote: Run, local: Run) -> tuple[list[str], list[str]]:
    """(summary lines, differences)."""
    lines: list[str] = []
    differences: list[str] = []
    for run in (remote, local):
        if run.returncode not in (0, 1):  # 1: some items failed, as the task set means them to
            differences.append(f"{run.label} run: pytest exited {run.returncode}")
        if not (run.run_dir / "results.json").exists():
            differences.append(f"{run.label} run: no results.json in {run.run_dir}")
    if differences:
        return lines, differences
    a, b = items(remote.run_dir), items(local.run_dir)
    if set(a) != set(b):
        differences += [f"{n}: only in the multi-host run" for n in sorted(set(a) - set(b))]
        differences += [f"{n}: only in the local run" for n in sorted(set(b) - set(a))]
    fields = ("outcome", "checks", "stop_reason", "steps", "tokens", "tool_calls", "response", "error", "trace")
    agree = Counter[str]()
    for nodeid in sorted(set(a) & set(b)):
        x, y = a[nodeid], b[nodeid]
        x = {**x, "tokens": (x["prompt_tokens"], x["completion_tokens"], x["total_tokens"])}
        y = {**y, "tokens": (y["prompt_tokens"], y["completion_tokens"], y["total_tokens"])}
        for name in fields:
            if x[name] == y[name]:
                agree[name] += 1
            else:
                differences.append(f"{nodeid}: {name} differs: multi-host {x[name]!r} vs local {y[name]!r}")
        if x["trace"] is None:
            differences.append(f"{nodeid}: no trace in the multi-host run")
    both = len(set(a) & set(b))

    m_remote, m_local = metrics(remote.run_dir), metrics(local.run_dir)
    workers = workers_of_items(remote.output)
    host_of = {p: h for h, v in m_remote.items() for p in v["processes"]}
    per_host = Counter(host_of.get(w, f"? ({w})") for w in workers.values())

    def total(view: dict[str, dict[str, Any]], name: str) -> int:
        return sum(v[name] if isinstance(v[name], int) else len(v[name]) for v in view.values())

    width = 34
    lines.append(f"{'':<{width}} {'multi-host (--tx 2*ssh ×2)':<30} {'local (-n 4)':<30}")
    lines.append(f"{'pytest exit status':<{width}} {remote.returncode:<30} {local.returncode:<30}")
    lines.append(f"{'wall time':<{width}} {remote.wall_s:<30.1f} {local.wall_s:<30.1f}")
    lines.append(f"{'items in results.json':<{width}} {len(a):<30} {len(b):<30}")
    for outcome in sorted({v["outcome"] for v in (*a.values(), *b.values())}):
        ca = sum(v["outcome"] == outcome for v in a.values())
        cb = sum(v["outcome"] == outcome for v in b.values())
        lines.append(f"{'  ' + outcome:<{width}} {ca:<30} {cb:<30}")
    tokens_a = sum(v["total_tokens"] or 0 for v in a.values())
    tokens_b = sum(v["total_tokens"] or 0 for v in b.values())
    lines.append(f"{'total tokens':<{width}} {tokens_a:<30} {tokens_b:<30}")
    calls_a = sum(len(v["tool_calls"]) for v in a.values())
    calls_b = sum(len(v["tool_calls"]) for v in b.values())
    lines.append(f"{'tool calls':<{width}} {calls_a:<30} {calls_b:<30}")
    spans_a = sum(count_spans(v["trace"] or []) for v in a.values())
    spans_b = sum(count_spans(v["trace"] or []) for v in b.values())
    lines.append(f"{'spans in traces.json':<{width}} {spans_a:<30} {spans_b:<30}")
    for view, label in ((m_remote, "multi-host"), (m_local, "local")):
        for host, v in sorted(view.items()):
            cpu = v.get("cpu_system_percent_avg")
            lines.append(
                f"{'metrics.json ' + label + ' host':<{width}} {host}: processes {', '.join(v['processes'])}; "
                f"{v['series']} series rows; system CPU avg {cpu if cpu is None else round(cpu)}%"
            )
    lines.append(
        f"{'items run per host (multi-host)':<{width}} " + ", ".join(f"{h}: {n}" for h, n in sorted(per_host.items()))
    )
    lines.append("")
    lines.append(f"item for item ({both} items in both runs): " + ", ".join(f"{f} {agree[f]}/{both}" for f in fields))

    # metrics per host: each host of the multi-host run shows its own workers, each with CPU series; the local run
    # shows all its workers on one host; as many processes sampled in both
    expected_hosts = set(HOSTS)
    if set(m_remote) != expected_hosts:
        differences.append(f"metrics.json (multi-host): hosts {sorted(m_remote)}, expected {sorted(expected_hosts)}")
    for host, v in (*m_remote.items(), *m_local.items()):
        if v.get("missing"):
            differences.append(f"metrics.json: {host} has processes but no entry in 'hosts'")
    for host, v in m_remote.items():
        if len(v["processes"]) != WORKERS_PER_HOST:
            differences.append(f"metrics.json (multi-host): {host} has processes {v['processes']}")
        if v["silent"]:
            differences.append(f"metrics.json (multi-host): {host}: no CPU series for {v['silent']}")
    if len(m_local) != 1 or total(m_local, "processes") != LOCAL_WORKERS:
        differences.append(f"metrics.json (local): expected {LOCAL_WORKERS} processes on one host, got {m_local}")
    for host, v in m_local.items():
        if v["silent"]:
            differences.append(f"metrics.json (local): {host}: no CPU series for {v['silent']}")
    if total(m_remote, "processes") != total(m_local, "processes"):
        differences.append("metrics.json: not as many sampled processes in both runs")
    if set(per_host) != expected_hosts:
        differences.append(f"items ran on {dict(per_host)}, expected items on each of {sorted(expected_hosts)}")
    return lines, differences


# -- main -------------------------------------------------------------------------------------------------------------


def failing_task() -> tuple[dict[str, Any], dict[str, Any]]:
    """A task the scripted model gets wrong (a failing verdict must travel back too)."""
    key = "[bench-wrong]"
    task = {"id": "wrong", "prompt": f"Benchmark task {key}", "agent_type": "both", "expected_keywords": ["99"]}
    final = {"final_answer": "20°C"}
    return task, {key: {"tool": [final], "code": [final]}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=8, help="tasks (each for both agent types), plus one failing")
    parser.add_argument("--timeout", type=float, default=400.0, help="seconds allowed to each pytest run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (not the namespaces)")
    args = parser.parse_args(argv)
    try:
        preconditions()
    except CannotRun as exc:
        print(f"multihost: cannot run: {exc}", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="smoltrace-multihost-"))
    os.chmod(root, 0o755)
    lab = Lab(root)
    if not args.keep:
        lab.undo.append((str(root), lambda: shutil.rmtree(root, ignore_errors=True)))
    atexit.register(lab.close)  # also on an exception nobody caught; close() is idempotent
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        tasks, scripts, _ = task_set(args.tasks)
        wrong, wrong_script = failing_task()
        tasks.append(wrong)
        scripts.update(wrong_script)
        try:
            lab.network()
        except RuntimeError as exc:
            print(f"multihost: cannot run: network namespaces: {exc}", file=sys.stderr)
            return 2
        lab.keys()
        lab.sshd()
        lab.model_server(scripts)
        for i in range(len(HOSTS)):
            make_project(lab.host_dir(i) / "project", tasks)
        make_project(root / "controller" / "project", tasks)
        make_project(root / "local" / "project", tasks)
        out = root / "runs"
        python = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").exists() else sys.executable
        remote_cmd = pytest_command(lab, "multihost", out, tx_specs(lab, python))
        local_cmd = pytest_command(lab, "local", out, ["-n", str(LOCAL_WORKERS)])
        print(f"hosts: {', '.join(f'{h} {host_address(i)} (netns {lab.host_ns(i)})' for i, h in enumerate(HOSTS))}")
        print(f"model server: {lab.base_url} (netns {lab.controller_ns})")
        print("multi-host run:  " + " ".join(remote_cmd[1:]))
        remote = run_pytest(
            lab,
            "multi-host",
            remote_cmd,
            root / "controller" / "project",
            out / "multihost",
            args.timeout,
            api_key=False,
        )
        print(f"local run:       {' '.join(local_cmd[1:])}")
        local = run_pytest(
            lab, "local", local_cmd, root / "local" / "project", out / "local", args.timeout, api_key=True
        )
        print()
        lines, differences = compare(remote, local)
        for line in lines:
            print(line)
        for i, host in enumerate(HOSTS):
            files = sorted(p.name for p in (lab.host_dir(i) / "tmp").glob("smoltrace-*"))
            print(f"{host}'s own TMPDIR after the runs: {', '.join(files) or 'nothing'}")
        if differences:
            print(f"\nDIFFERENCES ({len(differences)}):")
            for line in differences[:50]:
                print(f"  {line}")
            for run in (remote, local):
                if run.returncode not in (0, 1):
                    print(f"\n--- {run.label} pytest output (tail) ---\n{run.output[-6000:]}")
            return 1
        print("\nOK: the multi-host run equals the local -n 4 run item for item")
        return 0
    finally:
        lab.close()
        signal.signal(signal.SIGTERM, previous)
        if args.keep:
            print(f"kept: {root}")


if __name__ == "__main__":
    sys.exit(main())
