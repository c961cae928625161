"""``report.html`` (issue 15): one self-contained page per run directory, or several side by side, checked in a real
browser.

The run directories are real: a pytest run against the scripted model server (two models, repeats, a failing, an
erroring, a max-steps and a hostile item), or written by the records' own writers (``result_rows``,
``write_statistics``) for what a real run cannot be made to leave behind on demand (cancelled and crashed items,
missing or broken files). The page is rendered by headless Chromium (``--dump-dom`` returns the DOM after the page's
script ran; ``#item=…`` opens items since a dump cannot click), with a proxy that records every request, and the DOM is
asserted on. The browser tests are skipped only when no chromium binary exists (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from helpers import run_record

from pytest_smoltrace.report import failure_text as pytest_failure_text
from pytest_smoltrace.testing import ScriptedModelServer
from smoltrace_export import html_report, json_sink, report_cli
from smoltrace_export.records import CANCELLED, WORKER_CRASHED, Check, ItemResult, Task, ToolCall, Verdict
from smoltrace_export.rows import result_rows
from smoltrace_export.statistics import outcomes_from_rows, statistics, write_statistics

RUN_ID = "report"
HOSTILE = "</script><script>document.title='pwned'</script><img src=x onerror=alert(1)><b id=injected>x</b>"
TASKS = [
    {"id": "weather_ok", "prompt": "[k-weather] What is the weather in Paris, France?", "agent_type": "both",
     "difficulty": "easy", "category": "weather", "expected_tool": "get_weather", "expected_keywords": ["20"]},
    {"id": "calc_wrong", "prompt": "[k-calc] What is 234*67?", "agent_type": "tool", "difficulty": "medium",
     "category": "math", "expected_tool": "calculator", "expected_answer": 15678},
    {"id": "hostile", "prompt": "[k-hostile] " + HOSTILE, "agent_type": "tool", "difficulty": "hard",
     "category": "security", "expected_keywords": ["ok"]},
    {"id": "boom", "prompt": "[k-boom] Say hi", "agent_type": "tool", "difficulty": "hard", "category": "math"},
    {"id": "steps", "prompt": "[k-steps] Count to one", "agent_type": "tool", "difficulty": "medium",
     "category": "reasoning", "expected_answer": 1},
]  # fmt: skip
CALC = {"tool_calls": [{"name": "calculator", "arguments": {"expression": "234*67"}}]}
SCRIPTS: dict[str, Any] = {
    "[k-weather]": {
        "tool": [{"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris, France"}}]},
                 {"final_answer": "20°C"}],
        "code": [{"code": "w = get_weather(location='Paris, France')\nprint(w)"}, {"final_answer": "20°C"}],
    },
    "[k-calc]": [CALC, {"final_answer": "15000"}],
    "[k-hostile]": [{"final_answer": HOSTILE}],
    "[k-boom]": [{"status": 400, "body": {"error": {"message": "bad request </script><b id=injected2>x</b>"}}}],
    "[k-steps]": [{"tool_calls": [{"name": "calculator", "arguments": {"expression": "1+1"}}]}] * 10,
}  # fmt: skip
FAILING = "smoltrace/tasks.json::model-a::tool::calc_wrong[repeat-0]"
HOSTILE_ITEM = "smoltrace/tasks.json::model-a::tool::hostile[repeat-0]"
ERROR_ITEM = "smoltrace/tasks.json::model-b::tool::boom[repeat-1]"


# -- a real run ------------------------------------------------------------------------------------------------------


@dataclass
class RealRun:
    run_dir: Path
    stdout: str

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(json.loads((self.run_dir / "results.json").read_text(encoding="utf-8")))

    def row(self, nodeid: str) -> dict[str, Any]:
        (row,) = [r for r in self.rows if r["test_case_uid"] == nodeid and r["final_attempt"]]
        return row


def _clean_env() -> dict[str, str]:
    """The environment of a nested pytest run: none of this session's pytest or xdist variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SMOLTRACE_"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> RealRun:
    """Two models (model-b answers the sum right), 2 repeats, a pass, a wrong answer, a hostile prompt and answer, a
    model error and a max-steps run: 24 items, with statistics.json and comparison.json."""
    root = tmp_path_factory.mktemp("report-run")
    (root / "tasks.json").write_text(json.dumps(TASKS), encoding="utf-8")
    with ScriptedModelServer() as a, ScriptedModelServer() as b:
        for key, script in SCRIPTS.items():
            a.add_script(key, script)
            b.add_script(key, script)
        b.add_script("[k-calc]", [CALC, {"final_answer": "15678"}])
        (root / "models.yaml").write_text(
            f"- {{id: openai/model-a, label: model-a, api_base: '{a.base_url}', price_input: 0.5, price_output: 1.5}}\n"
            f"- {{id: openai/model-b, label: model-b, api_base: '{b.base_url}', price_input: 2, price_output: 8}}\n",
            encoding="utf-8",
        )
        command = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
        command += [
            "--smoltrace-models",
            "models.yaml",
            "--smoltrace-dataset",
            "tasks.json",
            "--smoltrace-repeats",
            "2",
        ]
        command += ["--smoltrace-max-steps", "3", "--smoltrace-retries", "0", "--smoltrace-run-id", RUN_ID]
        done = subprocess.run(command, cwd=root, env=_clean_env(), capture_output=True, text=True, timeout=600)
    run_dir = root / "smoltrace_results" / RUN_ID
    assert (run_dir / "metadata.json").exists(), done.stdout[-4000:] + done.stderr[-4000:]
    assert (run_dir / "comparison.json").exists() and (run_dir / "traces.json").exists()
    return RealRun(run_dir, done.stdout)


@pytest.fixture(scope="module")
def real_report(real_run: RealRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return html_report.write_html_report([real_run.run_dir], tmp_path_factory.mktemp("report") / "report.html")


# -- run directories written by the records' writers ----------------------------------------------------------------


def _result(task_id: str, *, passed: bool = True, attempt: int = 0, **record: Any) -> ItemResult:
    nodeid = f"smoltrace/tasks.json::tool::{task_id}"
    calls = (ToolCall("calculator", {"expression": "6*7"}, "Result: 42", None, 3.0, 1.0),)
    fields: dict[str, Any] = {"task_id": task_id, "nodeid": nodeid, "run_id": "partial", "tool_calls": calls}
    fields.update(record)
    rec = run_record("42" if passed else "41", attempt=attempt, **fields)
    checks = (Check("final_answer", True, "called", "called"), Check("expected_answer", passed, 42, rec.response))
    error = f"{rec.stop_reason}: {rec.error}" if rec.stop_reason in ("error", "timeout") else None
    task = Task(id=task_id, prompt=f"What is six times seven? ({task_id})", difficulty="easy", category="math")
    return ItemResult(nodeid=nodeid, record=rec, verdict=Verdict(checks, error), task=task)


def partial_results() -> list[ItemResult]:
    """A pass, a failure, an error, a cancelled item, a crashed worker and an item that passed on its rerun."""
    return [
        _result("ok"),
        _result("wrong", passed=False),
        _result("erred", stop_reason="error", error="APIConnectionError: refused", error_type="APIConnectionError"),
        _result("cancelled", stop_reason="error", error="cancelled: never run", error_type=CANCELLED),
        _result("crashed", stop_reason="error", error="the worker process crashed", error_type=WORKER_CRASHED),
        _result("flaky", passed=False),
        _result("flaky", attempt=1),
    ]


def write_results(run_dir: Path, results: list[ItemResult]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    json_sink.write_json(run_dir / "results.json", result_rows(results))
    return run_dir


# -- the browser -----------------------------------------------------------------------------------------------------

CHROMIUM = next(
    (
        shutil.which(n)
        for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
        if shutil.which(n)
    ),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium binary on PATH (CI installs Debian's `chromium` package: .ci/run)"
)
#: Chromium's own background requests (component updater, sign-in, network time), not the page's.
BROWSER_HOSTS = frozenset({"update.googleapis.com", "accounts.google.com", "clients2.google.com"})


class Proxy:
    """A proxy that answers nothing: it records the target host of every request Chromium sends through it (the
    page's loads and Chromium's own background requests), then closes the connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.requests: list[str] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.settimeout(5)
            line = conn.recv(4096).decode("latin-1").split("\r\n", 1)[0]
            if line:  # a connection closed before it sent anything named nothing (a speculative preconnect)
                self.requests.append(line)

    @property
    def hosts(self) -> set[str]:
        hosts = set()
        for line in self.requests:
            parts = line.split()
            if len(parts) < 2:
                hosts.add(f"(unparsed: {line!r})")
            elif parts[0] == "CONNECT":
                hosts.add(parts[1].rsplit(":", 1)[0])
            else:
                hosts.add(urlsplit(parts[1]).hostname or parts[1])
        return hosts

    @property
    def page_hosts(self) -> set[str]:
        return self.hosts - BROWSER_HOSTS

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy()
    yield p
    p.close()


def chromium(page: Path, tmp_path: Path, fragment: str = "", *, proxy: Proxy | None = None, dump: bool = True) -> str:
    """The DOM of ``page`` after its scripts ran (``--dump-dom``), every request sent to ``proxy`` (else to a port
    nothing listens on)."""
    assert CHROMIUM is not None
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000", "--no-first-run",
        f"--user-data-dir={profile}", f"--proxy-server=127.0.0.1:{proxy.port if proxy else 9}",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-default-apps",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter",
    ]  # fmt: skip
    command += ["--dump-dom"] if dump else []
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=120)
    shutil.rmtree(profile, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    time.sleep(0.2)  # the proxy's last reads
    return done.stdout


def items_fragment(*nodeids: str) -> str:
    return "&".join(f"item={quote(n, safe='')}" for n in nodeids)


# -- a small DOM ---------------------------------------------------------------------------------------------------

VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"{len(found)} <{tag} class={cls} {attrs}>"
        return found[0]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(markup: str) -> Node:
    tree = _Tree()
    tree.feed(markup)
    tree.close()
    return tree.root


def detail_of(dom: Node, nodeid: str) -> Node:
    """The opened detail row of the item ``nodeid`` (its key in a page of one run)."""
    row = dom.one("tr", "item", data_key=nodeid)
    return dom.one("tr", "detail-row", id=f"detail-{row.attrs['data-i']}")


# -- the tests -------------------------------------------------------------------------------------------------------


@needs_chromium
def test_a_real_run_renders_in_chromium_with_every_item_and_the_opened_ones_in_full(
    real_run: RealRun, real_report: Path, tmp_path: Path, proxy: Proxy
) -> None:
    rows = real_run.rows
    dom = parse(chromium(real_report, tmp_path, items_fragment(FAILING, HOSTILE_ITEM, ERROR_ITEM), proxy=proxy))
    # the page's script ran, and nothing but Chromium's own background requests reached the proxy
    assert dom.one("html").attrs.get("data-ready") == "1"
    assert proxy.page_hosts == set(), proxy.requests
    # every item, once, with its outcome
    nodeids = {r["test_case_uid"] for r in rows}
    assert len(nodeids) == 24
    shown = {tr.attrs["data-key"]: tr for tr in dom.all("tr", "item")}
    assert set(shown) == nodeids
    for row in rows:
        assert shown[row["test_case_uid"]].one("span", "status").text == row["outcome"]
    assert dom.one(id="count").text == "24 items"
    # the failing item, opened: its failure message, its checks and its tool calls with arguments and results
    failing = real_run.row(FAILING)
    detail = detail_of(dom, FAILING)
    assert html_report.failure_text(failing) in detail.one("pre", "failure").text
    checks = {tr.all("td")[1].text: [td.text for td in tr.all("td")] for tr in detail.all("tr", "fail")}
    assert checks == {"expected_answer": ["FAIL", "expected_answer", "15678", "15000"]}
    assert len(detail.all("tr", "pass")) == 3
    calls = [[td.text for td in tr.all("td")] for tr in detail.all("tbody")[1].all("tr")]
    assert [c[:4] for c in calls] == [
        ["1", "calculator", '{"expression": "234*67"}', "Result: 15678"],
        ["2", "final_answer", '{"answer": "15000"}', "15000"],
    ]
    # its trace waterfall: one bar per span of its trace document, LLM and tool spans among them
    (doc,) = [
        d for d in json.loads((real_run.run_dir / "traces.json").read_text(encoding="utf-8")) if d["nodeid"] == FAILING
    ]
    waterfall = detail.one("svg", "waterfall")
    bars = waterfall.all("rect", "mark")
    assert len(bars) == len(doc["spans"]) >= 6
    assert {"cat-item", "cat-agent", "cat-step", "cat-llm", "cat-tool"} <= {c for b in bars for c in b.classes}
    labels = [t.text for t in waterfall.all("text")]
    assert "execute_tool calculator" in labels and "chat openai/model-a" in labels
    # the erroring item: its error, escaped
    error_detail = detail_of(dom, ERROR_ITEM)
    assert "bad request </script><b id=injected2>x</b>" in error_detail.text
    # the hostile prompt and answer are text, never markup: no element, no script, the title unchanged
    hostile = detail_of(dom, HOSTILE_ITEM)
    assert HOSTILE in hostile.text and ("[k-hostile] " + HOSTILE) in hostile.text
    assert dom.one("head").one("title").text == f"smoltrace report — {RUN_ID}"
    assert not dom.all("img") and not dom.all(id="injected") and not dom.all(id="injected2")
    assert len(dom.all("script")) == 2
    # the charts are drawn: bars, points and boxes
    charts = dom.all("svg", "chart")
    assert len(charts) == 5
    assert all(chart.all(cls="mark") for chart in charts)
    assert sum(len(chart.all("rect", "mark")) for chart in charts[:2]) >= 8
    assert len(charts[2].all("circle", "mark")) == 4  # one point per (model, agent type)


@needs_chromium
def test_the_network_check_sees_a_page_that_loads_something_and_the_csp_stops_the_report_from_loading(
    real_report: Path, tmp_path: Path, proxy: Proxy
) -> None:
    # the check can fail: a plain page that loads an image goes through the proxy
    plain = tmp_path / "plain.html"
    plain.write_text('<!DOCTYPE html><html><body><img src="http://192.0.2.7/x.png"><p>hi</p></body></html>')
    chromium(plain, tmp_path, proxy=proxy)
    assert "192.0.2.7" in proxy.page_hosts
    # the same loads slipped into the report are refused by its Content-Security-Policy, and the page still renders
    proxy.requests.clear()
    page = real_report.read_text(encoding="utf-8")
    tampered = tmp_path / "tampered.html"
    slipped = (
        '<img src="http://192.0.2.8/x.png"><link rel="stylesheet" href="http://192.0.2.9/x.css">'
        '<iframe src="http://192.0.2.10/"></iframe>'
    )
    tampered.write_text(page.replace("<main>", "<main>" + slipped, 1), encoding="utf-8")
    dom = parse(chromium(tampered, tmp_path, items_fragment(FAILING), proxy=proxy))
    assert proxy.page_hosts == set(), proxy.requests
    assert dom.one("html").attrs.get("data-ready") == "1"
    assert len(dom.all("tr", "item")) == 24 and detail_of(dom, FAILING).all("svg", "waterfall")


def test_the_page_names_no_external_resource_and_its_policy_forbids_every_load(real_report: Path) -> None:
    page = real_report.read_text(encoding="utf-8")
    dom = parse(page)
    (meta,) = [m for m in dom.all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    policy = dict(d.strip().split(" ", 1) for d in meta.attrs["content"].split(";"))
    assert policy["default-src"] == "'none'" and policy["img-src"] == "data:"
    assert policy["base-uri"] == "'none'" and policy["form-action"] == "'none'"
    # scripts and styles run only by hash: the page's own, nothing injected, no inline handler
    (style,) = dom.all("style")
    (script,) = [s for s in dom.all("script") if "type" not in s.attrs]
    assert [s.attrs for s in dom.all("script") if s is not script] == [
        {"type": "application/json", "id": "smoltrace-data"}
    ]

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert policy["script-src"] == digest(script.text) and policy["style-src"] == digest(style.text)
    # the policy comes before anything that could load
    assert page.index("Content-Security-Policy") < page.index("<style>") < page.index("<body")
    # no element that loads, no URL in an attribute that loads, no URL in the styles, no network API in the script
    assert not dom.all("link") and not dom.all("iframe") and not dom.all("object") and not dom.all("embed")
    assert not dom.all("img") and not dom.all("base") and not dom.all("form")
    loading = ("src", "href", "srcset", "action", "formaction", "poster", "data", "xlink:href", "background", "ping")
    for node in dom.iter():
        assert not any(k.startswith("on") for k in node.attrs), node
        for name in loading:
            value = node.attrs.get(name)
            assert value is None or value.startswith("#"), (node.tag, name, value)
    assert "url(" not in style.text and "@import" not in style.text
    for api in ("fetch(", "XMLHttpRequest", "WebSocket", "EventSource", "sendBeacon", "import(", "Worker(", ".src"):
        assert api not in script.text, api
    assert re.findall(r"https?://[^\s\"'<>]+", script.text) == ["http://www.w3.org/2000/svg"]  # a namespace name


def test_hostile_values_cannot_close_the_data_island(real_run: RealRun, real_report: Path) -> None:
    page = real_report.read_text(encoding="utf-8")
    assert page.count("<script") == 2 and page.count("</script>") == 2
    island = page[page.index('<script type="application/json"') : page.index("</script>")]
    assert "</" not in island.split(">", 1)[1] and "<!--" not in island
    data = json.loads(island.split(">", 1)[1])
    (hostile,) = [i for i in data["items"] if i["n"] == HOSTILE_ITEM]
    assert hostile["resp"] == HOSTILE and hostile["p"] == "[k-hostile] " + HOSTILE
    # in the markup, the hostile task's values are escaped text
    assert "&lt;/script&gt;&lt;script&gt;document.title" not in page  # the table shows no prompt: only the island
    assert page.count(HOSTILE) == 0


@needs_chromium
def test_hostile_names_in_every_column_stay_text_in_chromium(tmp_path: Path) -> None:
    """Task id, category, model label, check names and tool names with markup in them (written by the records'
    writers): the table, the filters, the charts and the details show them as text."""
    evil = '"><img src=x onerror=alert(1)><script>document.title="pwned"</script>'
    results = []
    for n, result in enumerate(partial_results()[:3]):
        record = replace(result.record, task_id=f"<i>t{n}</i>", model_label=f"<u>{evil}</u>")
        record = replace(record, tool_calls=(ToolCall(f"<s>{evil}</s>", {evil: evil}, evil, None, 1.0),))
        task = replace(result.task, id=record.task_id, category=evil, difficulty=None) if result.task else None
        checks = (*result.verdict.checks, Check(f"<em>{evil}</em>", False, evil, {evil: [evil]}))
        nodeid = f"smoltrace/tasks.json::tool::{record.task_id}"
        results.append(replace(result, nodeid=nodeid, record=replace(record, nodeid=nodeid), task=task,
                               verdict=Verdict(checks, result.verdict.error)))  # fmt: skip
    run_dir = write_results(tmp_path / "evil", results)
    out = html_report.write_html_report([run_dir], tmp_path / "evil.html")
    dom = parse(chromium(out, tmp_path, items_fragment(*(r.nodeid for r in results))))
    assert dom.one("head").one("title").text == "smoltrace report — partial"
    for tag in ("img", "i", "u", "s", "em"):
        assert not dom.all(tag), tag
    assert len(dom.all("script")) == 2 and dom.one("html").attrs.get("data-ready") == "1"
    assert len([tr for tr in dom.all("tr", "detail-row") if "hidden" not in tr.attrs]) == 3
    text = dom.one("main").text
    assert text.count(f"<s>{evil}</s>") >= 3 and f"<em>{evil}</em>" in text and "<i>t0</i>" in text
    assert evil in [o.text for o in dom.one("select", None, data_filter="c").all("option")]
    assert f"<u>{evil}</u>" in [o.text for o in dom.one("select", None, data_filter="m").all("option")]
    assert any(evil in t.text for t in dom.all("svg", "chart")[0].all("text"))


def test_the_failure_message_is_the_text_pytest_printed(real_run: RealRun) -> None:
    journal = [
        ItemResult.from_dict(json.loads(line))
        for line in (real_run.run_dir / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    rows = {(r["test_case_uid"], r["attempt"]): r for r in real_run.rows}
    failing = [r for r in journal if not r.verdict.passed]
    assert {r.verdict.outcome for r in failing} == {"failed", "error"} and len(failing) == 14
    for result in failing:
        row = rows[(result.nodeid, result.record.attempt)]
        assert html_report.failure_text(row) == pytest_failure_text(result), result.nodeid
        assert html_report.failure_text(row) in real_run.stdout, result.nodeid


@needs_chromium
def test_a_run_with_cancelled_crashed_and_errored_items_and_no_optional_file_still_gets_its_report(
    tmp_path: Path,
) -> None:
    run_dir = write_results(tmp_path / "partial", partial_results())
    started = time.perf_counter()
    out = html_report.write_html_report([run_dir], run_dir / "report.html")
    assert time.perf_counter() - started < 1.0
    page = out.read_text(encoding="utf-8")
    for name in ("metadata.json", "traces.json", "statistics.json", "comparison.json", "metrics.json"):
        assert f"{name}: missing" in page, name
    assert "unknown (no metadata.json)" in page and "no interval: statistics.json missing" in page
    dom = parse(
        chromium(
            out, tmp_path, items_fragment("smoltrace/tasks.json::tool::cancelled", "smoltrace/tasks.json::tool::flaky")
        )
    )
    statuses = {tr.attrs["data-key"].rsplit("::", 1)[1]: tr.one("span", "status").text for tr in dom.all("tr", "item")}
    assert statuses == {
        "ok": "passed",
        "wrong": "failed",
        "erred": "error",
        "cancelled": "cancelled",
        "crashed": "crashed",
        "flaky": "passed",  # the final attempt's verdict
    }
    cells = [td.text for td in dom.one("table", "summary").one("tbody").all("td")]
    assert cells[1:6] == ["6", "2", "1", "1", "2"]  # items, passed, failed, error, not finished
    cancelled = detail_of(dom, "smoltrace/tasks.json::tool::cancelled")
    assert "no trace for this item (traces.json: missing)" in cancelled.text
    assert "cancelled: never run" in cancelled.text
    flaky = detail_of(dom, "smoltrace/tasks.json::tool::flaky")
    attempts = [[td.text for td in tr.all("td")] for tr in flaky.all("tbody")[-1].all("tr")]
    assert attempts == [["0", "failed", ""], ["1", "passed", ""]]
    assert dom.all("svg", "chart") and dom.one("html").attrs.get("data-ready") == "1"


def test_a_journal_only_run_and_broken_files_are_shown_as_such_never_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a controller killed before the end leaves the journal: the items are read from it
    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    lines = [json.dumps(r.to_dict()) for r in partial_results()]
    (run_dir / "journal.jsonl").write_text("\n".join(lines) + '\n{"torn line', encoding="utf-8")
    page = html_report.write_html_report([run_dir], tmp_path / "killed.html").read_text(encoding="utf-8")
    assert "results.json: missing" in page and "journal.jsonl: present (1 unreadable lines skipped)" in page
    data = json.loads(page.split('id="smoltrace-data">', 1)[1].split("</script>", 1)[0])
    assert sorted(i["t"] for i in data["items"]) == sorted({"ok", "wrong", "erred", "cancelled", "crashed", "flaky"})
    # broken files: each one is named with what is wrong, and the rest of the page is there
    (run_dir / "results.json").write_text("{not json", encoding="utf-8")
    (run_dir / "traces.json").write_text("[1, 2", encoding="utf-8")
    (run_dir / "statistics.json").write_text('[{"model": "m"}]', encoding="utf-8")
    (run_dir / "comparison.json").write_text('[{"verdict": "regressed", "model": "m"}]', encoding="utf-8")
    (run_dir / "metadata.json").write_text("[]", encoding="utf-8")
    (run_dir / "metrics.json").write_text('"odd"', encoding="utf-8")
    page = html_report.write_html_report([run_dir], tmp_path / "broken.html").read_text(encoding="utf-8")
    assert "results.json: unreadable (JSONDecodeError" in page and "traces.json: unreadable (JSONDecodeError" in page
    assert "statistics.json: unreadable (" in page and "metadata.json: unreadable (not a JSON object)" in page
    assert "comparison.json: unreadable (" in page and "metrics.json: unreadable (not a JSON object)" in page
    assert page.count('class="item"') == 6  # from the journal still
    # odd values in a row are drawn as they come, or the section says it could not be drawn
    rows = result_rows(partial_results())
    rows[0]["total_tokens"] = "many"
    rows[1]["checks"] = "not a list"
    rows[2]["tool_calls"] = [{"name": "x", "arguments": None}]
    rows[3]["execution_time_ms"] = None
    odd = write_results(tmp_path / "odd", [])
    json_sink.write_json(odd / "results.json", rows)
    page = html_report.write_html_report([odd], tmp_path / "odd.html").read_text(encoding="utf-8")
    assert page.count('class="item"') == 6 and "could not be drawn" not in page

    # a section that fails to draw says so; the others are there
    def broken(*args: Any) -> str:
        raise RuntimeError("a surprise")

    monkeypatch.setattr(html_report, "pareto_chart", broken)
    page = html_report.write_html_report([odd], tmp_path / "odd.html").read_text(encoding="utf-8")
    assert "The charts could not be drawn: a surprise" in page and page.count('class="item"') == 6
    monkeypatch.undo()
    # statistics of an odd shape, and a run that had not finished a single item (only its settings.json)
    stats = statistics(outcomes_from_rows(result_rows(partial_results())))[0].to_dict()
    json_sink.write_json(odd / "statistics.json", [{**stats, "pass_at_k": [1, 2]}])
    page = html_report.write_html_report([odd], tmp_path / "odd.html").read_text(encoding="utf-8")
    assert "statistics.json: unreadable (" in page
    started = tmp_path / "started"
    started.mkdir()
    (started / "settings.json").write_text("{}", encoding="utf-8")
    page = html_report.write_html_report([started], tmp_path / "started.html").read_text(encoding="utf-8")
    assert "0 items" in page and "no finished items" in page and "could not be drawn" not in page


def test_the_command_line_writes_the_report_and_refuses_what_is_not_a_run_directory(
    real_run: RealRun, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out" / "r.html"
    assert report_cli.main([str(real_run.run_dir), "-o", str(out)]) == 0
    assert f"report written to {out}" in capsys.readouterr().out and out.stat().st_size > 10_000
    # several run directories default to ./report.html
    monkeypatch.chdir(tmp_path)
    partial = write_results(tmp_path / "partial", partial_results())
    assert report_cli.main([str(real_run.run_dir), str(partial)]) == 0
    assert (tmp_path / "report.html").exists()
    # one run directory defaults to RUN_DIR/report.html
    assert report_cli.main([str(partial)]) == 0 and (partial / "report.html").exists()
    # bad input: exit status 2 and a message naming the path
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.json").write_text("[]")
    for bad, why in (
        (tmp_path / "nowhere", "no such directory"),
        (tmp_path / "empty", "none of results.json, journal.jsonl, metadata.json, settings.json in it"),
        (tmp_path / "file.json", "not a directory"),
    ):
        assert report_cli.main([str(partial), str(bad), "-o", str(tmp_path / "x.html")]) == 2
        err = capsys.readouterr().err
        assert f"smoltrace-report: error: {bad}: not a run directory ({why})" in err, err
    assert not (tmp_path / "x.html").exists()
    assert report_cli.main([str(partial), "-o", str(tmp_path / "empty")]) == 2
    assert f"smoltrace-report: error: {tmp_path / 'empty'}: cannot write it" in capsys.readouterr().err
    # the console script is installed
    script = shutil.which("smoltrace-report")
    if script is not None:
        done = subprocess.run([script, str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "not a run directory" in done.stderr


def test_two_hundred_items_take_well_under_a_second_and_under_2_mb(real_run: RealRun, tmp_path: Path) -> None:
    """The real run's rows and traces, nine times over under other node ids: 216 items, as many traces."""
    rows, docs = real_run.rows, json.loads((real_run.run_dir / "traces.json").read_text(encoding="utf-8"))
    big = tmp_path / "big"
    big.mkdir()
    many_rows, many_docs = [], []
    for copy in range(9):
        for row in rows:
            many_rows.append({**row, "test_case_uid": row["test_case_uid"] + f"-{copy}", "repeat": copy})
        for doc in docs:
            many_docs.append({**doc, "nodeid": doc["nodeid"] + f"-{copy}"})
    json_sink.write_json(big / "results.json", many_rows)
    json_sink.write_json(big / "traces.json", many_docs)
    for name in ("metadata.json", "statistics.json", "comparison.json", "metrics.json"):
        shutil.copy(real_run.run_dir / name, big / name)
    html_report.write_html_report([big], tmp_path / "warm.html")  # imports and the assets, once per process
    started = time.perf_counter()
    out = html_report.write_html_report([big], tmp_path / "big.html")
    elapsed = time.perf_counter() - started
    size = out.stat().st_size
    print(f"216 items: {elapsed * 1000:.0f} ms, {size / 1024:.0f} KB")
    assert len({r["test_case_uid"] for r in many_rows}) == 216
    assert out.read_text(encoding="utf-8").count('class="item"') == 216
    assert elapsed < 1.0, elapsed
    assert size < 2_000_000, size


@needs_chromium
def test_several_runs_side_by_side_compare_the_later_runs_with_the_first(real_run: RealRun, tmp_path: Path) -> None:
    """The real run against a baseline where every item passed (written from its journal by the records' writers)."""
    journal = [
        ItemResult.from_dict(json.loads(line))
        for line in (real_run.run_dir / "journal.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    baseline_results = [
        replace(
            r,
            record=replace(r.record, run_id="baseline", stop_reason="final_answer", error=None, error_type=None),
            verdict=Verdict(tuple(replace(c, passed=True) for c in r.verdict.checks)),
        )
        for r in journal
    ]
    base_dir = write_results(tmp_path / "baseline", baseline_results)
    write_statistics(base_dir / "statistics.json", statistics(outcomes_from_rows(result_rows(baseline_results))))
    out = html_report.write_html_report([base_dir, real_run.run_dir], tmp_path / "compare.html")
    dom = parse(chromium(out, tmp_path, items_fragment(FAILING)))
    assert dom.one("head").one("title").text == f"smoltrace comparison — baseline vs {RUN_ID}"
    assert [h.text for h in dom.all("section", "run")[0].all("h2")] == ["Run baseline"]
    assert len(dom.all("section", "run")) == 2 and len(dom.all("tr", "item")) == 48
    # both runs' rows of the failing node id open, one per run
    opened = [tr for tr in dom.all("tr", "detail-row") if "hidden" not in tr.attrs]
    assert len(opened) == 2
    # the comparisons: the run's own (its two models) and the run against the first one given, computed here
    verdicts = {
        tuple(td.text for td in tr.all("td"))[:4]: tr.all("td")[-1].text
        for tr in dom.all("section")[3].all("table")[0].all("tr")[1:]
    }
    assert verdicts[(f"{RUN_ID} against baseline (computed)", "model-a", "model-a", "tool")] == "insufficient data"
    assert (f"{RUN_ID}: models of the run", "model-b", "model-a", "tool") in verdicts
    # the tasks side by side: one column per (run, model, agent type), a run filter
    grid = dom.one("table", "grid")
    assert [th.text.strip() for th in grid.one("thead").all("th")][1:] == [
        f"{run} · {model} · {agent}"
        for run in ("baseline", RUN_ID)
        for model, agent in (("model-a", "tool"), ("model-a", "code"), ("model-b", "tool"), ("model-b", "code"))
    ]
    weather = [td.text for td in grid.one("tbody").all("tr")[0].all("td")]
    assert weather == ["2/2"] * 8
    calc = next(tr for tr in grid.one("tbody").all("tr") if tr.one("th").text == "calc_wrong")
    assert [td.text for td in calc.all("td")] == ["2/2", "—", "2/2", "—", "0/2", "—", "2/2", "—"]
    assert [o.text for o in dom.one("select", None, data_filter="r").all("option")] == ["all", "baseline", RUN_ID]
    assert len(dom.one("svg", "chart", aria_label="Success against cost").all("circle", "mark")) == 8


PROBE = """(function () {
  const shown = () => Array.from(document.querySelectorAll("#items tr.item")).filter((tr) => !tr.hidden)
    .map((tr) => tr.dataset.key);
  const out = {};
  const sort = document.querySelector('button.sort[data-key="tok"]');
  sort.click(); out.up = shown(); out.upSort = sort.parentElement.getAttribute("aria-sort");
  sort.click(); out.down = shown(); out.downSort = sort.parentElement.getAttribute("aria-sort");
  const outcome = document.querySelector('select[data-filter="o"]');
  outcome.value = "error"; outcome.dispatchEvent(new Event("change"));
  out.errors = shown(); out.count = document.getElementById("count").textContent;
  outcome.value = ""; outcome.dispatchEvent(new Event("change"));
  const q = document.getElementById("q");
  q.value = "234*67"; q.dispatchEvent(new Event("input")); out.search = shown();
  q.value = ""; q.dispatchEvent(new Event("input")); out.all = shown().length;
  document.querySelector("#items tr.item td.c-m").click();
  out.opened = Array.from(document.querySelectorAll("tr.detail-row")).filter((tr) => !tr.hidden).length;
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();"""


@needs_chromium
def test_sorting_filtering_searching_and_opening_by_click_in_chromium(
    real_run: RealRun, real_report: Path, tmp_path: Path
) -> None:
    """The page with a probe script appended (and allowed by hash) that clicks and types as a reader would."""
    page = real_report.read_text(encoding="utf-8")
    digest = "'sha256-" + base64.b64encode(hashlib.sha256(PROBE.encode()).digest()).decode() + "'"
    page = re.sub(r"script-src ('sha256-[^']+')", rf"script-src \1 {digest}", page, count=1)
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", f"<script>{PROBE}</script></body>"), encoding="utf-8")
    probe = json.loads(parse(chromium(probed, tmp_path)).one("pre", None, id="probe").text)
    tokens = {r["test_case_uid"]: r["total_tokens"] for r in real_run.rows}
    up = [tokens[k] for k in probe["up"]]
    assert len(up) == 24 and up == sorted(up) and probe["upSort"] == "ascending"
    down = [tokens[k] for k in probe["down"]]
    assert down == sorted(down, reverse=True) and probe["downSort"] == "descending"
    errors = {r["test_case_uid"] for r in real_run.rows if r["outcome"] == "error"}
    assert set(probe["errors"]) == errors and probe["count"] == f"{len(errors)} of 24 items"
    assert set(probe["search"]) == {r["test_case_uid"] for r in real_run.rows if r["task_id"] == "calc_wrong"}
    assert probe["all"] == 24 and probe["opened"] == 1
