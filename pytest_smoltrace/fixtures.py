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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from .plugin import MODEL_MARKER, MODEL_MARKER_LINE

if TYPE_CHECKING:
    from .records import AgentType, Check, RunRecord, Verdict
    from .runner import RunConfig
    from .tasks import Task

__all__ = [
    "MARKER",
    "MARKER_LINE",
    "AgentRun",
    "SmoltraceRunner",
    "run_config_for",
    "smoltrace_run",
    "smoltrace_run_config",
]

#: The marker and its ``markers`` ini line (registered by the plugin for ``--strict-markers``).
MARKER, MARKER_LINE = MODEL_MARKER, MODEL_MARKER_LINE
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
        from .collect import failure_text
        from .records import ItemResult

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
    from .state import get_state

    state = get_state(request.config)
    base = state.run_config if state is not None else None
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


def _as_check(value: Any) -> Check:
    from .records import Check

    if isinstance(value, Check):
        return value
    if isinstance(value, tuple) and len(value) == 4 and isinstance(value[0], str) and isinstance(value[1], bool):
        return Check(*value)
    raise TypeError(
        f"pytest_smoltrace_judge must return Check objects or (name, passed, expected, actual); got {value!r}"
    )


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
        from .judge import judge, user_judges_apply
        from .runner import run_task
        from .tasks import validate_row

        if agent_type not in ("tool", "code"):
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
        record = run_task(task, agent_type, cfg, nodeid=nodeid)
        record = dataclasses.replace(record, cost_usd=_cost(self._session_config, cfg, record))
        extra = (
            [
                _as_check(check)
                for returned in self._node.ihook.pytest_smoltrace_judge(task=task, record=record)
                for check in (returned if isinstance(returned, list) else [returned])
            ]
            if user_judges_apply(record)
            else []
        )
        verdict = judge(task, record, extra_checks=extra)
        run = AgentRun(task=task, record=record, verdict=verdict)
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


def _cost(session_config: pytest.Config, cfg: RunConfig, record: RunRecord) -> float | None:
    """The run's cost: the session's price for the session's model (custom prices included), else litellm's."""
    from .state import get_state
    from .telemetry.cost import price_for, record_cost_usd

    state = get_state(session_config)
    try:
        if state is not None and state.spec.model_id == cfg.spec.model_id:
            price = state.price
        else:
            price = price_for(cfg.spec.model_id)
    except Exception:  # pricing is best effort: a model nobody can price has no cost
        return None
    return record_cost_usd(price, record)


@pytest.fixture
def smoltrace_run(request: pytest.FixtureRequest, smoltrace_run_config: RunConfig) -> SmoltraceRunner:
    """Call it to run one agent on one prompt and judge it: ``smoltrace_run(prompt, agent_type=…, **task_fields)``."""
    return SmoltraceRunner(request, smoltrace_run_config)
