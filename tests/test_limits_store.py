"""Run-wide limits across hosts (``--smoltrace-limits-url``): the file and Redis stores under real concurrency, and two
independent pytest sessions ("hosts": two processes that share only the Redis URL and the run id) against one
scripted model server, holding ``--smoltrace-max-rpm`` in every 60 s window and ``--smoltrace-max-cost`` once.

A real ``redis-server`` (Debian's package) is started by the tests on 127.0.0.1, with a password (every URL carries
it, so every output is checked for it).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import scripted_args

from pytest_smoltrace.budget import Budget
from pytest_smoltrace.limits import COST, RATE, TTL_S, FileStore, LimitsLocation, LimitsStoreError, RedisStore
from pytest_smoltrace.retry import RateLimiter
from pytest_smoltrace.testing import ScriptedModelServer

#: The test server's own password, looked for in every output.
PASSWORD = "s3cret-limits-pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port of 127.0.0.1 (data in a temp dir, nothing saved), password protected."""
    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)), None
    )
    if binary is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; .ci/run installs it)")
    directory = tmp_path_factory.mktemp("redis")
    port = free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory), "--save", ""]
    argv += ["--appendonly", "no", "--requirepass", PASSWORD, "--protected-mode", "yes"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start (exit {proc.poll()})") from None
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def new_run_id() -> str:
    return f"limits-{uuid.uuid4().hex[:8]}"


@pytest.fixture(params=["file", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A shared store of each kind: ``file://DIR`` and the test Redis server."""
    if request.param == "file":
        return f"file://{tmp_path / 'limits'}"
    return str(request.getfixturevalue("redis_url"))


# -- the stores, under real concurrency ---------------------------------------------------------------------------

#: Run in several processes at once: each opens the store from its URL and uses it from several threads: ``slot``
#: sends ``n`` requests per thread through a rate limiter (a shrunken window), ``add`` adds ``value`` ``n`` times.
WORKER = """
import json, sys, threading, time
from pytest_smoltrace.limits import LimitsLocation
from pytest_smoltrace.retry import RateLimiter
url, run_id, mode = sys.argv[1:4]
n, threads, value = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
store = LimitsLocation(url, run_id).open()
limiter = RateLimiter(4, store, window_s=value, pending_s=30)
out, lock = [], threading.Lock()
def work():
    for _ in range(n):
        if mode == "slot":
            token = limiter.acquire()
            got = time.time()  # the request leaves no earlier than this
            time.sleep(0.05)
            limiter.release(token)
        else:
            got = store.add("cost", value)
        with lock:
            out.append(got)
pool = [threading.Thread(target=work) for _ in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
print(json.dumps(out))
"""


def run_workers(
    url: str, run_id: str, mode: str, value: float, processes: int = 4, threads: int = 2, n: int = 5
) -> list[float]:
    argv = [sys.executable, "-c", WORKER, url, run_id, mode, str(n), str(threads), repr(value)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    values: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        values += json.loads(out)
    return values


def test_requests_from_many_processes_and_threads_hold_the_window(store_url: str) -> None:
    window = 0.8  # 4 requests per 0.8 s, 0.2 s apart
    sent = run_workers(store_url, new_run_id(), "slot", window, processes=3, n=4)
    assert len(sent) == 24
    # one clock (this machine's) for every process, and each thread notes its time after its grant: exactly, no
    # window holds more than 4 requests
    assert max_in_any_window(sent, window) <= 4
    ordered = sorted(sent)
    # spaced 0.2 s apart (a thread notes its time a little after its grant, so the typical gap tells, not the least)
    assert statistics.median(b - a for a, b in itertools.pairwise(ordered)) >= 0.2 - 0.01
    assert ordered[-1] - ordered[0] >= (24 / 4 - 1) * (window + 0.05) - 0.05  # each request counts until it ended


def test_a_request_that_never_ends_counts_until_it_could_have_timed_out(store_url: str) -> None:
    store = LimitsLocation(store_url, new_run_id()).open()
    dead = RateLimiter(1, store, window_s=0.3, pending_s=0.5)  # one request per 0.3 s; a request lasts ≤ 0.5 s
    dead.acquire()  # its process died: never released
    start = time.monotonic()
    token = RateLimiter(1, store, window_s=0.3, pending_s=0.5).acquire()
    assert time.monotonic() - start >= 0.5 + 0.3 - 0.02
    store.end_slot(RATE, token)
    start = time.monotonic()
    dead.acquire()  # the one before ended at once: the window (0.3 s) after its end
    assert 0.3 - 0.02 <= time.monotonic() - start < 0.6


def test_totals_from_many_processes_and_threads_lose_no_addition(store_url: str) -> None:
    run_id = new_run_id()
    totals = run_workers(store_url, run_id, "add", 0.25, n=50)
    assert len(totals) == 400 and sorted(totals) == [0.25 * i for i in range(1, 401)]  # each total seen once
    assert LimitsLocation(store_url, run_id).open().total(COST) == 100.0
    assert LimitsLocation(store_url, new_run_id()).open().total(COST) == 0.0  # another run id: another namespace


def test_a_shared_store_keeps_the_total_another_session_started(store_url: str) -> None:
    run_id = new_run_id()
    first, second = LimitsLocation(store_url, run_id).open(), LimitsLocation(store_url, run_id).open()
    assert Budget(10.0, first).start(4.0) == 4.0
    assert first.add(COST, 2.0) == 6.0
    assert Budget(10.0, second).start(0.0) == 6.0  # joins: the other "host" already spent 6
    assert not Budget(10.0, second).exhausted() and second.add(COST, 4.0) == 10.0
    assert Budget(10.0, first).exhausted()


def test_the_default_store_restarts_and_a_stale_shared_file_is_forgotten(tmp_path: Path) -> None:
    alone = FileStore(tmp_path, "r", shared=False)
    alone.add(COST, 5.0)
    assert alone.start(COST, 1.0) == 1.0  # one machine, one controller: the run starts where it says
    shared = FileStore(tmp_path, "s", shared=True)
    shared.add(COST, 5.0)
    assert shared.start(COST, 1.0) == 5.0
    old = time.time() - TTL_S - 60
    os.utime(shared.path(COST), (old, old))
    assert shared.start(COST, 1.0) == 1.0


def test_redis_keys_are_namespaced_by_run_and_expire(redis_url: str) -> None:
    run_id = new_run_id()
    store = LimitsLocation(redis_url, run_id).open()
    assert isinstance(store, RedisStore)
    store.add(COST, 1.5)
    RateLimiter(60, store).acquire()
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in client.keys(f"smoltrace:{run_id}:*"))
        assert keys == [f"smoltrace:{run_id}:{name}" for name in ("cost", "rate", "rate:next")]
        assert all(0 < client.ttl(k) <= TTL_S for k in keys)
    finally:
        client.close()
        store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pw-in-url@example.com/x", "unsupported URL 'http://example.com/x'; supported: file://DIR"),
        ("redis://:pw-in-url@/0", "names no host"),
        ("file://", "names no directory"),
    ],
)
def test_a_url_that_names_no_store_is_refused_without_its_password(url: str, expected: str) -> None:
    with pytest.raises(LimitsStoreError, match=expected) as info:
        LimitsLocation(url, "r").open()
    assert "pw-in-url" not in str(info.value)


def test_an_unreachable_redis_is_an_error_naming_the_url_without_its_password() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/3"
    with pytest.raises(LimitsStoreError) as info:
        LimitsLocation(url, "r").open().check()
    assert str(info.value).startswith(f"cannot reach redis://127.0.0.1:{url.rsplit(':', 1)[1]}")
    assert PASSWORD not in str(info.value)


# -- two hosts: independent sessions sharing the Redis URL and the run id ---------------------------------------------


def start_session(
    cwd: Path, server: ScriptedModelServer, tasks: list[dict[str, Any]], *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """A fresh pytest session in ``cwd`` (its own tasks file and run directory): one "host"."""
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-rs"]
    argv += [*scripted_args(server.base_url), *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def host_tasks(server: ScriptedModelServer, host: str, n: int, **turn: Any) -> list[dict[str, Any]]:
    """``n`` tool-agent tasks answered in one model request each (``turn`` adds delay/usage to it)."""
    for i in range(n):
        server.add_script(f"[k-{host}-{i}]", {"tool": [{"final_answer": f"ok {i}", **turn}]})
    return [
        {
            "id": f"{host}_{i}",
            "prompt": f"Answer directly [k-{host}-{i}]",
            "agent_type": "tool",
            "expected_keywords": ["ok"],
        }
        for i in range(n)
    ]


def finish(procs: dict[str, subprocess.Popen[str]], timeout: float) -> dict[str, str]:
    outputs: dict[str, str] = {}
    for host, proc in procs.items():
        out, _ = proc.communicate(timeout=timeout)
        outputs[host] = out
    return outputs


def rows(run_dir: Path) -> list[dict[str, Any]]:
    return list(json.loads((run_dir / "results.json").read_text(encoding="utf-8")))


def assert_no_password(directory: Path, *outputs: str) -> None:
    for text in outputs:
        assert PASSWORD not in text
    for path in directory.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def max_in_any_window(times: list[float], window_s: float) -> int:
    """The most arrivals in any half-open window ``[t, t + window_s)`` (the busiest window starts at an arrival)."""
    ordered = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and ordered[j] < start + window_s:
            j += 1
        best = max(best, j - i)
    return best


def test_two_hosts_share_one_max_rpm_the_server_sees_at_most_rpm_in_any_60_s(
    redis_url: str, server: ScriptedModelServer, tmp_path: Path
) -> None:
    rpm, per_host = 60, 31  # 62 requests: more than a 60 s window may hold, so the run must span more than 60 s
    run_id = new_run_id()
    common = ("--smoltrace-run-id", run_id, "--smoltrace-max-rpm", str(rpm))
    procs = {  # host a names the store with the flag, host b with the environment variable
        "a": start_session(
            tmp_path / "a", server, host_tasks(server, "a", per_host), *common, "--smoltrace-limits-url", redis_url
        ),
        "b": start_session(
            tmp_path / "b", server, host_tasks(server, "b", per_host), *common, env={"SMOLTRACE_LIMITS_URL": redis_url}
        ),
    }
    outputs = finish(procs, timeout=240)
    for host, proc in procs.items():
        assert proc.returncode == 0, outputs[host]
    arrivals = [r.received_at for r in server.requests]
    by_host = {
        h: sorted(r.received_at for r in server.requests if r.key and r.key.startswith(f"[k-{h}-")) for h in "ab"
    }
    assert len(arrivals) == 2 * per_host and all(len(times) == per_host for times in by_host.values())
    busiest = max_in_any_window(arrivals, 60.0)
    span = max(arrivals) - min(arrivals)
    print(f"max-rpm {rpm}, two hosts, {len(arrivals)} requests: busiest 60 s window {busiest}, span {span:.1f} s")
    assert busiest <= rpm
    # the hosts ran at the same time and were spaced as one: each alone would have sent its 31 requests in ≈31 s
    assert by_host["a"][0] < by_host["b"][-1] and by_host["b"][0] < by_host["a"][-1]
    assert span >= 60.0
    for host in "ab":
        assert len(rows(tmp_path / host / "smoltrace_results" / run_id)) == per_host
    assert_no_password(tmp_path, *outputs.values())


def test_two_hosts_share_one_max_cost_the_total_stays_within_one_item_of_the_budget(
    redis_url: str, server: ScriptedModelServer, tmp_path: Path
) -> None:
    # $1 per token: 99 + 1 tokens make every item cost exactly $100; $1000 is ten items of the 24 the hosts have
    turn = {"delay": 0.5, "usage": {"prompt_tokens": 99, "completion_tokens": 1}}
    run_id, per_host, limit = new_run_id(), 12, 1000.0
    common = (
        *("--smoltrace-run-id", run_id, "--smoltrace-max-cost", f"{limit:g}", "--smoltrace-limits-url", redis_url),
        *("--smoltrace-price-input", "1000000", "--smoltrace-price-output", "1000000", "--smoltrace-concurrency", "1"),
    )
    procs = {
        host: start_session(tmp_path / host, server, host_tasks(server, host, per_host, **turn), *common)
        for host in ("a", "b")
    }
    outputs = finish(procs, timeout=240)
    ran = {host: rows(tmp_path / host / "smoltrace_results" / run_id) for host in procs}
    assert all(r["cost_usd"] == pytest.approx(100.0) for host_rows in ran.values() for r in host_rows)
    total = sum(r["cost_usd"] for host_rows in ran.values() for r in host_rows)
    print(f"max-cost ${limit:g}, two hosts, $100 items: spent ${total:g} ({ {h: len(v) for h, v in ran.items()} })")
    # one budget: alone, each host would have spent $1000 ($2000 together); runs in flight when it was reached finish
    assert limit <= total <= limit + 100.0
    for host, out in outputs.items():
        assert procs[host].returncode == 0, out
        assert "budget reached: the run has spent $" in out
    assert all(len(host_rows) >= 1 for host_rows in ran.values())
    metadata = json.loads((tmp_path / "a" / "smoltrace_results" / run_id / "metadata.json").read_text())
    assert metadata["options"]["limits_url"] == redis_url.replace(f":{PASSWORD}@", "")
    assert_no_password(tmp_path, *outputs.values())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"redis://:{PASSWORD}@127.0.0.1:{{port}}/0", "*--smoltrace-limits-url: cannot reach redis://127.0.0.1:*/0 (*"),
        (
            f"https://user:{PASSWORD}@example.com/x",
            "*--smoltrace-limits-url: unsupported URL 'https://example.com/x'; "
            "supported: file://DIR, redis://*, rediss://*",
        ),
    ],
)
def test_a_limits_url_that_cannot_work_is_a_usage_error_before_any_item(
    pytester: pytest.Pytester, server: ScriptedModelServer, url: str, expected: str
) -> None:
    tasks = host_tasks(server, "u", 2)
    (pytester.path / "tasks.json").write_text(json.dumps(tasks), encoding="utf-8")
    result = pytester.runpytest_subprocess(
        *scripted_args(server.base_url),
        "--smoltrace-max-rpm",
        "600",
        "--smoltrace-limits-url",
        url.format(port=free_port()),
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert PASSWORD not in result.stdout.str() + result.stderr.str()
    assert server.requests == [] and not (pytester.path / "smoltrace_results").exists()
