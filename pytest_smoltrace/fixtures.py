"""``smoltrace_run``: run one agent on one prompt inside an ordinary test function, and judge it.

.. code-block:: python

    def test_weather(smoltrace_run):
        run = smoltrace_run("What is the weather in Paris?", agent_type="tool",
                            expected_tool="get_weather", expected_keywords=["20"])
        assert run.passed, run.explain()

The keyword arguments are task fields (DESIGN §3: ``expected_tool``, ``expected_keywords``, ``keyword_mode``,
``expected_answer``, ``forbidden_tools``, ``required_tools``, ``difficulty``, ``category``, ``id``, and any
metadata); the task is validated like a row of a task file. Per call you may also give ``tools=[Tool(), …]``
(extra smolagents tools), ``max_steps=`` and ``timeout=`` (seconds).

The model is the session's (``--smoltrace-model`` and its options, with the session's tools, prompts and limits).
``@pytest.mark.smoltrace_model("openai/gpt-4.1", provider="litellm", api_base=None)`` overrides it for one test,
and works without a session model too. With neither, the test is skipped with the reason. The run configuration
is itself a fixture, ``smoltrace_run_config``: override it in a conftest to choose models per marker.

Runs made this way are judged exactly like collected task items (``pytest_smoltrace_judge`` hooks included) and
recorded in the test's ``user_properties`` (so ``--junitxml`` has them); they are not part of the run directory.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .records import AgentType, RunRecord, Verdict
    from .runner import RunConfig
    from .tasks import Task
    from .telemetry.cost import Price

__all__ = [
    "MARKER",
    "MARKER_LINE",
    "AgentRun",
    "SmoltraceRunner",
    "fake_hub",
    "run_config_for",
    "smoltrace_model_server",
    "smoltrace_run",
    "smoltrace_run_config",
]

#: The marker and its ``markers`` ini line (registered for ``--strict-markers``, active or not).
MARKER = "smoltrace_model"
MARKER_LINE = (
    f"{MARKER}(model, provider='litellm', api_base=None): the model the smoltrace_run fixture uses in this test"
)
#: The ``run_id`` of runs made without an active plugin session.
FIXTURE_RUN_ID = "smoltrace-run"
SKIP_REASON = (
    "smoltrace_run needs a model: pass --smoltrace-model ID (or set SMOLTRACE_MODEL, or ini smoltrace_model), "
    f'or mark the test @pytest.mark.{MARKER}("provider/model-id", api_base=None)'
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_LINE)


@dataclass(frozen=True, repr=False)
class AgentRun:
    """One judged agent run: the task, what the agent did (``record``) and the judge's ``verdict``."""

    task: Task
    record: RunRecord
    verdict: Verdict
    #: The run's trace document (its spans, as in traces.json).
    trace: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        """Every check passed (and the agent neither errored nor timed out)."""
        return self.verdict.passed

    @property
    def answer(self) -> str | None:
        """The final answer as text (``None`` when the run ended without one)."""
        return self.record.response

    @property
    def tools_used(self) -> list[str]:
        """Executed tool calls, in order (``final_answer`` and calls that raised excluded)."""
        return self.record.executed_tools

    def explain(self) -> str:
        """The same report a failing task item shows: outcome, stop reason, the table of checks, tool calls."""
        from .records import ItemResult
        from .report import failure_text

        return failure_text(ItemResult(nodeid=self.record.nodeid, record=self.record, verdict=self.verdict))

    def __str__(self) -> str:
        return self.explain()

    def __repr__(self) -> str:
        return (
            f"AgentRun(task={self.task.id!r}, agent_type={self.record.agent_type!r}, outcome={self.verdict.outcome!r})"
        )


def _model_from_marker(marker: pytest.Mark, base: RunConfig | None, request: pytest.FixtureRequest) -> RunConfig:
    from .models import ModelSpec
    from .runner import RunConfig

    if not marker.args or not isinstance(marker.args[0], str):
        pytest.fail(f"@pytest.mark.{MARKER} needs the model id as first argument", pytrace=False)
    unknown = set(marker.kwargs) - {"provider", "api_base"}
    if unknown:
        pytest.fail(
            f"@pytest.mark.{MARKER}: unknown argument(s) {', '.join(sorted(unknown))} (expected provider=, api_base=)",
            pytrace=False,
        )
    provider = marker.kwargs.get("provider") or "litellm"
    if base is None:
        spec = ModelSpec(marker.args[0], provider, marker.kwargs.get("api_base"))
        return RunConfig(spec=spec, run_id=FIXTURE_RUN_ID)
    spec = dataclasses.replace(
        base.spec, model_id=marker.args[0], provider=provider, api_base=marker.kwargs.get("api_base")
    )
    return dataclasses.replace(base, spec=spec)


def run_config_for(request: pytest.FixtureRequest) -> RunConfig:
    """The run configuration of ``request``'s test: its ``smoltrace_model`` marker's model, else the session's.

    Skips the test when there is neither (the plugin is inactive and the test has no marker).
    """
    from .roles import get_session

    session = get_session(request.config)
    base = session.executor.run_config if session is not None and session.executor is not None else None
    marker = request.node.get_closest_marker(MARKER)
    if marker is not None:
        return _model_from_marker(marker, base, request)
    if base is None:
        pytest.skip(SKIP_REASON)
    return base


@pytest.fixture
def smoltrace_run_config(request: pytest.FixtureRequest) -> RunConfig:
    """The :class:`~pytest_smoltrace.runner.RunConfig` ``smoltrace_run`` uses: the session's, or the test's marker's.

    Override it in a conftest to pick the model per marker::

        @pytest.fixture
        def smoltrace_run_config(request, smoltrace_run_config):
            if request.node.get_closest_marker("hard"):
                spec = dataclasses.replace(smoltrace_run_config.spec, model_id="openai/gpt-4.1")
                return dataclasses.replace(smoltrace_run_config, spec=spec)
            return smoltrace_run_config
    """
    return run_config_for(request)


def _safe_id(text: str) -> str:
    """A task id from a test name: no ``::``, brackets or control characters (they are reserved in node ids)."""
    return re.sub(r"[\[\]:\s]+", "_", text).strip("_") or "run"


class SmoltraceRunner:
    """The callable ``smoltrace_run`` fixture value; ``runs`` holds every run this test made, in order."""

    def __init__(self, request: pytest.FixtureRequest, config: RunConfig) -> None:
        self._node = request.node
        self._session_config = request.config
        self.config = config
        self.runs: list[AgentRun] = []
        self._numbers = itertools.count(1)

    def __call__(
        self,
        prompt: str,
        *,
        agent_type: AgentType = "tool",
        tools: Sequence[Any] = (),
        max_steps: int | None = None,
        timeout: float | None = None,
        **fields: Any,
    ) -> AgentRun:
        """Run ``prompt`` with a fresh ``agent_type`` agent, judge it as a task with ``fields``, return the result.

        Agent, model and tool failures never raise: they become an error verdict (``run.verdict.error``). A task
        field that breaks the schema raises :class:`~pytest_smoltrace.tasks.TaskError` naming the field.
        """
        from .execution import run_and_judge
        from .identity import get_identity
        from .records import AGENT_TYPES
        from .rubric import Grader
        from .tasks import validate_row

        if agent_type not in AGENT_TYPES:
            raise ValueError(
                f"agent_type must be 'tool' or 'code'; got {agent_type!r} "
                '(for both, parametrize the test: @pytest.mark.parametrize("agent_type", ["tool", "code"]))'
            )
        number = next(self._numbers)
        default_id = _safe_id(self._node.name) + (f"-{number}" if number > 1 else "")
        row = {"id": default_id, "prompt": prompt, **fields, "agent_type": agent_type}
        task = validate_row(row, source=self._node.nodeid, row_number=number)
        cfg = self.config
        changes: dict[str, Any] = {}
        if tools:
            changes["extra_tools"] = (*cfg.extra_tools, *tools)
        if max_steps is not None:
            changes["max_steps"] = max_steps
        if timeout is not None:
            changes["timeout_s"] = timeout
        cfg = dataclasses.replace(cfg, **changes) if changes else cfg
        nodeid = self._node.nodeid + (f"#{number}" if number > 1 else "")
        identity = get_identity(self._session_config)
        result = run_and_judge(
            task,
            agent_type,
            cfg,
            nodeid=nodeid,
            price=_price(self._session_config, cfg),
            judges=self._node.ihook.pytest_smoltrace_judge,
            otlp=identity is not None and identity.settings.otlp,
            grader=Grader.from_settings(identity.settings) if identity is not None else None,
        )
        record, verdict = result.record, result.verdict
        run = AgentRun(task=task, record=record, verdict=verdict, trace=result.trace)
        self.runs.append(run)
        self._node.user_properties.append(
            (
                "smoltrace_run",
                {
                    "task_id": task.id,
                    "agent_type": agent_type,
                    "model": record.model,
                    "outcome": verdict.outcome,
                    "stop_reason": record.stop_reason,
                    "tools_used": record.executed_tools,
                    "total_tokens": record.total_tokens,
                    "duration_ms": round(record.duration_ms, 1),
                },
            )
        )
        return run


def _price(session_config: pytest.Config, cfg: RunConfig) -> Price | None:
    """The run's price: the session's for the session's model (custom prices included), else litellm's; None when
    nobody can price the model (its cost is then unknown)."""
    from .identity import get_identity
    from .telemetry.cost import price_for

    identity = get_identity(session_config)
    try:
        if identity is not None and identity.spec.model_id == cfg.spec.model_id:
            return identity.price
        return price_for(cfg.spec.model_id)
    except Exception:  # pricing is best effort
        return None


@pytest.fixture
def smoltrace_run(request: pytest.FixtureRequest, smoltrace_run_config: RunConfig) -> SmoltraceRunner:
    """Call it to run one agent on one prompt and judge it: ``smoltrace_run(prompt, agent_type=…, **task_fields)``."""
    return SmoltraceRunner(request, smoltrace_run_config)


@pytest.fixture
def smoltrace_model_server() -> Iterator[Any]:
    """A started :class:`pytest_smoltrace.testing.ScriptedModelServer` (no scripts yet: ``add_script``)."""
    from .testing import ScriptedModelServer

    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def fake_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A started local Hugging Face Hub stand-in with ``huggingface_hub``/``datasets`` pointed at it
    (see :func:`pytest_smoltrace.testing.hub.fake_hub`)."""
    from pytest_smoltrace.testing.hub import FakeHub, hub_environment

    with FakeHub() as hub, hub_environment(hub, home=tmp_path_factory.mktemp("hf_home")):
        yield hub
