"""Build a fresh smolagents agent for one item, run it under a wall-clock limit, and return a :class:`RunRecord`.

The agent runs in a worker thread so that a hung model call or tool cannot hang the session: after the
timeout the item stops waiting (``stop_reason="timeout"``), interrupts the agent and abandons the thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import astguard
from .cassettes import CURRENT_CASSETTE, Cassette, CassetteMiss, CassetteShelf
from .models import ModelSpec, get_model
from .records import CANCELLED, AgentType, RunRecord, StepInfo, StepKind, StopReason, excerpt
from .retry import CURRENT_LOG, RetryLog
from .telemetry.usage import CURRENT_USAGE, UsageLog

if TYPE_CHECKING:
    from smolagents import MultiStepAgent, Tool

    from .tasks import Task

log = logging.getLogger(__name__)

#: smolagents' LogLevel.OFF: agents print nothing (pytest's reporter owns the terminal).
_QUIET = -1

#: How long a cancelled run (Ctrl-C, ``-x``) is given to finish the step in flight before its memory is read: the
#: model call of that step is already paid for, and smolagents adds a step to the agent's memory only once the step
#: ends, so the record counts its tokens only if it ends. 5 s covers a typical agent step's model call (a few hundred
#: output tokens) and keeps one Ctrl-C's exit within seconds; a call still running after it is not counted (its
#: tokens are unknown) and the record says so. The agent is stopped at the next step boundary, so no new call starts.
CANCEL_GRACE_S = 5.0


@dataclass(frozen=True)
class RunConfig:
    """Per-session settings the runner needs."""

    spec: ModelSpec
    run_id: str
    max_steps: int = 6
    timeout_s: float = 300.0
    #: Tools given to every agent: user tools (conftest hook) and MCP tools; each item gets recorded copies.
    extra_tools: tuple[Any, ...] = ()
    #: ``--smoltrace-tools`` (besides the defaults and each task's ``required_tools``).
    tool_names: tuple[str, ...] = ()
    tool_options: dict[str, Any] = field(default_factory=dict)
    tool_timeout_s: float | None = 30.0
    #: Complete prompt templates per agent type (from ``--smoltrace-prompt-yml``), else smolagents' defaults.
    prompt_templates: dict[str, Any] = field(default_factory=dict)
    planning_interval: int | None = None
    additional_imports: tuple[str, ...] = ()
    #: ``--smoltrace-record-mode``: where each item's cassette is and how it is used; None: off.
    cassettes: CassetteShelf | None = None


@dataclass
class _Outcome:
    result: Any = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def tool_names_for(task: Task, enabled: tuple[str, ...] = ()) -> list[str]:
    """Default tools, ``--smoltrace-tools`` and the task's ``required_tools`` (each once, in order)."""
    from smoltrace_tools import DEFAULT_TOOL_NAMES

    names: list[str] = []
    for name in (*DEFAULT_TOOL_NAMES, *enabled, *task.required_tools):
        if name not in names:
            names.append(name)
    return names


_PACKAGED_TEMPLATES = {"tool": "toolcalling_agent.yaml", "code": "code_agent.yaml"}


_templates_lock = threading.Lock()


def default_templates(agent_type: AgentType) -> dict[str, Any]:
    """smolagents' packaged prompt templates, parsed once per process (smolagents re-parses the YAML per agent) —
    once, not once per agent thread of the first wave (``--smoltrace-concurrency``)."""
    with _templates_lock:
        return _parsed_templates(agent_type)


@functools.lru_cache(maxsize=2)
def _parsed_templates(agent_type: AgentType) -> dict[str, Any]:
    import importlib.resources

    import yaml

    text = importlib.resources.files("smolagents.prompts").joinpath(_PACKAGED_TEMPLATES[agent_type]).read_text()
    return dict(yaml.safe_load(text))


def build_agent(agent_type: AgentType, tools: list[Tool], model: Any, cfg: RunConfig) -> MultiStepAgent:
    """A fresh agent of ``agent_type`` around the shared model; never reused across items."""
    from smolagents import CodeAgent, ToolCallingAgent

    common: dict[str, Any] = {
        "tools": tools,
        "model": model,
        "max_steps": cfg.max_steps,
        "verbosity_level": _QUIET,
        "planning_interval": cfg.planning_interval,
    }
    common["prompt_templates"] = cfg.prompt_templates.get(agent_type) or default_templates(agent_type)
    if agent_type == "tool":
        return ToolCallingAgent(**common)
    return CodeAgent(additional_authorized_imports=list(cfg.additional_imports), **common)


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    cause = exc.__cause__
    if cause is not None and str(cause) not in text:
        text += f" (caused by {type(cause).__name__}: {cause})"
    return excerpt(text, 2000)


#: A usage count at or above this is no count: no model call reads or writes 10^12 tokens (and the Hub's int64
#: columns hold every sum of such counts).
MAX_USAGE_TOKENS = 10**12


class ModelResponseError(Exception):
    """A model response that cannot be true (a negative or absurd usage count): the item is an error outcome.

    Its name is the record's ``error_type`` for such an item; :func:`usage_problem` gives the message."""


def usage_problem(name: str, value: object) -> str | None:
    """Why ``value`` cannot be the usage count ``name`` of one model response, or None when it can.

    The one rule for every count the runner takes from a model response: a non-negative integer below 10^12.
    """
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_USAGE_TOKENS:
        return None
    return f"model response: usage.{name} = {value!r} (must be a non-negative integer below 10^12)"


@dataclass(frozen=True)
class StepUsage:
    """The tokens of one model call as the runner counts them (``None``: the response did not report them)."""

    input_tokens: int | None
    output_tokens: int | None
    #: Why the response's usage is impossible (:func:`usage_problem`); the item is then an error outcome.
    problem: str | None = None
    #: The response reported no usage (or part of it): what is missing is ``None``, never 0.
    unreported: bool = False


def _output_text(step: Any) -> str:
    message = getattr(step, "model_output_message", None)
    if message is not None:
        content = message.content
        calls = " ".join(str(tc.function.arguments) + tc.function.name for tc in (message.tool_calls or ()))
        return f"{content or ''}{calls}"
    return str(getattr(step, "model_output", None) or getattr(step, "action_output", None) or "")


def step_usage(step: Any) -> StepUsage:
    """The usage of the model call behind one memory step, validated; the one place usage counts are judged.

    - No usage (``token_usage`` None), or 0 prompt tokens: the response reported none. litellm turns a response
      without ``usage`` (or with ``usage: null``) into ``Usage(0, 0, 0)``, and no chat request has an empty prompt,
      so 0 prompt tokens is never a count: both counts are unknown (``None``).
    - 0 completion tokens for a response with text or tool calls: that count is unknown (litellm fills a missing
      ``completion_tokens`` with 0; a non-empty answer is at least one token).
    - A negative, non-integer or absurd count (:func:`usage_problem`): a model error naming the field.
    """
    usage = getattr(step, "token_usage", None)
    if usage is None:
        return StepUsage(None, None, unreported=True)
    tokens_in, tokens_out = usage.input_tokens, usage.output_tokens
    problem = usage_problem("prompt_tokens", tokens_in) or usage_problem("completion_tokens", tokens_out)
    if problem is not None:
        return StepUsage(None, None, problem=problem)
    if tokens_in == 0:
        return StepUsage(None, None, unreported=True)
    if tokens_out == 0 and _output_text(step).strip():
        return StepUsage(tokens_in, None, unreported=True)
    return StepUsage(tokens_in, tokens_out)


def _is_failed_call(step: Any) -> bool:
    """An action step whose model call raised (smolagents appends it all the same): not a step the agent took."""
    return step.model_output_message is None and step.model_output is None


@dataclass
class _Steps:
    """The memory steps as the record reports them, with the usage of each model call."""

    infos: list[StepInfo] = field(default_factory=list)
    usages: list[StepUsage] = field(default_factory=list)

    @property
    def problem(self) -> str | None:
        return next((u.problem for u in self.usages if u.problem is not None), None)

    def totals(self) -> tuple[int | None, int | None]:
        """Σ prompt and completion tokens; each ``None`` when any call's count is unknown (a partial sum is no
        count). The forced max-steps summary and planning calls are included, each counted once."""
        ins = [u.input_tokens for u in self.usages]
        outs = [u.output_tokens for u in self.usages]
        prompt = None if any(v is None for v in ins) else sum(v for v in ins if v is not None)
        completion = None if any(v is None for v in outs) else sum(v for v in outs if v is not None)
        return prompt, completion

    def unreported_steps(self) -> list[str]:
        return [
            "planning" if info.number is None else str(info.number)
            for info, usage in zip(self.infos, self.usages, strict=True)
            if usage.unreported
        ]


def _step_infos(memory_steps: list[Any]) -> _Steps:
    from smolagents.memory import ActionStep, PlanningStep
    from smolagents.utils import AgentMaxStepsError

    out = _Steps()
    for step in memory_steps:
        if not isinstance(step, (ActionStep, PlanningStep)):
            continue
        timing = getattr(step, "timing", None)
        duration_ms = (timing.duration or 0.0) * 1000 if timing is not None and timing.end_time else 0.0
        if isinstance(step, PlanningStep):
            usage = step_usage(step)
            out.infos.append(StepInfo("planning", None, duration_ms, usage.input_tokens, usage.output_tokens))
            out.usages.append(usage)
            continue
        kind: StepKind = "max_steps_summary" if isinstance(step.error, AgentMaxStepsError) else "action"
        if kind == "action" and _is_failed_call(step):
            continue  # the run's error says what failed; the agent took no step
        usage = step_usage(step)
        message = step.model_output_message
        requested = tuple(tc.function.name for tc in (message.tool_calls or ())) if message is not None else ()
        out.infos.append(
            StepInfo(
                kind=kind,
                number=step.step_number,
                duration_ms=duration_ms,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                error=_describe(step.error) if step.error is not None and kind == "action" else None,
                requested_tools=requested,
                code=step.code_action,
                is_final_answer=bool(step.is_final_answer),
            )
        )
        out.usages.append(usage)
    return out


class _UsageGuard:
    """Step callback: stops the agent at the first model response whose usage is impossible (no more spending on a
    run that is an error outcome already); the runner decides from the steps themselves (:func:`step_usage`)."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self, memory_step: Any, agent: Any = None) -> None:
        if self.stopped or agent is None:
            return
        if step_usage(memory_step).problem is not None:
            self.stopped = True
            agent.interrupt()


def _token_totals(result: Any, steps: _Steps) -> tuple[int | None, int | None]:
    prompt, completion = steps.totals()
    usage = getattr(result, "token_usage", None)
    if usage is not None and prompt is not None and completion is not None:
        # smolagents' RunResult.token_usage sums the same steps; it is the contract (DESIGN §6)
        return int(usage.input_tokens), int(usage.output_tokens)
    # No RunResult (the run raised or timed out): what the finished steps recorded; unknown stays unknown.
    return prompt, completion


def _make_record(
    task: Task, agent_type: AgentType, cfg: RunConfig, nodeid: str, started_at: float, **fields: Any
) -> RunRecord:
    return run_record(task.id, task.source, agent_type, cfg.spec, cfg.run_id, nodeid, started_at, **fields)


def run_record(
    task_id: str,
    source: str,
    agent_type: AgentType,
    spec: ModelSpec,
    run_id: str,
    nodeid: str,
    started_at: float,
    **fields: Any,
) -> RunRecord:
    """A record of one run of ``task_id`` by ``spec``'s model (``fields``: what the run did)."""
    return RunRecord(
        task_id=task_id,
        agent_type=agent_type,
        source=source,
        model=spec.label,
        model_label=spec.name,
        provider=spec.provider,
        run_id=run_id,
        started_at=started_at,
        nodeid=nodeid,
        **fields,
    )


def no_run_fields(
    error: str, error_type: str, *, spent: int | None = 0, duration_ms: float = 0.0, stop_reason: StopReason = "error"
) -> dict[str, Any]:
    """What a record says of a run that never took a step (no agent, an unreadable cassette, a crashed worker):
    an error (or timeout) that spent ``spent`` tokens each way (``None``: unknown)."""
    return {
        "response": None,
        "final_answer_called": False,
        "stop_reason": stop_reason,
        "steps": (),
        "tool_calls": (),
        "prompt_tokens": spent,
        "completion_tokens": spent,
        "duration_ms": duration_ms,
        "error": error,
        "error_type": error_type,
    }


def _build(task: Task, agent_type: AgentType, cfg: RunConfig, recorder: Any) -> tuple[MultiStepAgent, list[Any]]:
    from smoltrace_tools import get_tools

    model = get_model(cfg.spec)
    raw = get_tools(
        tool_names_for(task, cfg.tool_names),
        timeout_s=cfg.tool_timeout_s or 30.0,
        additional_imports=cfg.additional_imports,
        **cfg.tool_options,
    )
    tools = recorder.instrument_all([*raw, *cfg.extra_tools])
    tools.append(recorder.final_answer_tool())
    return build_agent(agent_type, tools, model, cfg), raw


_unreported_warned: set[str] = set()
_unreported_lock = threading.Lock()


def _log_unreported(model: str, item: str, steps: list[str]) -> None:
    """Say why an item's tokens are null: a warning the first time per model and process, then debug lines."""
    with _unreported_lock:
        first = model not in _unreported_warned
        _unreported_warned.add(model)
    log.log(
        logging.WARNING if first else logging.DEBUG,
        "%s: the response of model %s to step(s) %s reported no usage: the item's tokens and cost are unknown (null)%s",
        item,
        model,
        ", ".join(steps),
        "; later items with the same gap are logged at debug level" if first else "",
    )


def _guard_usage(agent: MultiStepAgent) -> None:
    from smolagents.memory import ActionStep, PlanningStep

    guard = _UsageGuard()
    for step_cls in (ActionStep, PlanningStep):
        agent.step_callbacks.register(step_cls, guard)


class _NotStarted(Exception):
    """The run was cancelled before the agent started: nothing was spent."""


def _stop_on_cancel(agent: MultiStepAgent, cancel: threading.Event | None) -> None:
    """Stop the agent at the step boundary after ``cancel`` is set: a step callback runs after every step, so no step
    starts once cancelled (``agent.interrupt()`` alone is lost when it comes before ``agent.run`` clears it). Only
    smolagents' forced max-steps summary, which follows the last step unchecked, can still call the model."""
    if cancel is None:
        return
    from smolagents.memory import ActionStep, PlanningStep

    def stop(memory_step: Any, agent: Any = None) -> None:
        if cancel.is_set() and agent is not None:
            agent.interrupt()

    for step_cls in (ActionStep, PlanningStep):
        agent.step_callbacks.register(step_cls, stop)


def _wait(done: threading.Event, timeout_s: float, cancel: threading.Event | None) -> bool:
    """Wait for ``done`` up to ``timeout_s``; give up early when ``cancel`` is set. True when done."""
    if cancel is None:
        return done.wait(timeout_s)
    deadline = time.monotonic() + timeout_s
    while not cancel.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return done.is_set()
        if done.wait(min(remaining, 0.2)):
            return True
    return done.is_set()


def run_task(
    task: Task, agent_type: AgentType, cfg: RunConfig, *, nodeid: str = "", cancel: threading.Event | None = None
) -> RunRecord:
    """Run ``task`` with a fresh ``agent_type`` agent; never raises for agent, model or tool failures.

    ``cancel`` (set when the session stops early) interrupts a run that has not finished: the agent stops at its next
    step boundary, and the step in flight is given :data:`CANCEL_GRACE_S` to end, so that its tokens are counted.
    """
    from smoltrace_tools import close_tools
    from smoltrace_tools.recording import ToolRecorder

    astguard.install()  # agent threads parse code while pytest's main thread may render a traceback
    cassette: Cassette | None = None
    if cfg.cassettes is not None:
        try:
            cassette = cfg.cassettes.open(nodeid or task.id)
        except CassetteMiss as exc:  # an unreadable cassette: this item's error, the session goes on
            fields = no_run_fields(str(exc), CassetteMiss.__name__)
            return _make_record(task, agent_type, cfg, nodeid, time.time(), **fields)
    recorder = ToolRecorder(timeout_s=cfg.tool_timeout_s, tape=cassette)
    with contextlib.suppress(Exception):
        get_model(cfg.spec)  # built once per process; its import/build time is not the item's (errors: below)
    started_at = time.time()
    t0 = time.perf_counter()
    try:
        agent, raw_tools = _build(task, agent_type, cfg, recorder)
    except Exception as exc:  # agent could not even be built: an error outcome, the session goes on
        log.debug("building the agent for %s failed", nodeid, exc_info=True)
        duration_ms = (time.perf_counter() - t0) * 1000
        fields = no_run_fields(_describe(exc), type(exc).__name__, duration_ms=duration_ms)
        return _make_record(task, agent_type, cfg, nodeid, started_at, **fields)

    _guard_usage(agent)
    _stop_on_cancel(agent, cancel)
    outcome = _Outcome()
    retry_log = RetryLog()
    usage_log = UsageLog()

    def _target() -> None:
        CURRENT_LOG.set(retry_log)  # this thread's context: the model wrapper logs this item's retries here
        CURRENT_USAGE.set(usage_log)  # … and the usage probe each call's cached and reasoning tokens
        CURRENT_CASSETTE.set(cassette)  # … and replays or records this item's model calls there
        try:
            if cancel is not None and cancel.is_set():
                raise _NotStarted
            outcome.result = agent.run(task.prompt, return_full_result=True)
        except BaseException as exc:  # everything the agent raises is reported, not re-raised
            outcome.error = exc
        finally:
            outcome.done.set()

    # The caller's context (the item's root span) goes with the run, so the agent's spans join the item's trace.
    context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(_target,), name=f"smoltrace:{nodeid or task.id}", daemon=True)
    thread.start()
    finished = _wait(outcome.done, cfg.timeout_s, cancel)
    cancelled = isinstance(outcome.error, _NotStarted) or (not finished and cancel is not None and cancel.is_set())
    if not finished:
        agent.interrupt()  # the thread stops at its next step boundary (a timed-out one is abandoned)
        if cancelled:  # the step in flight has been paid for: let it end so that its tokens are in memory
            finished = outcome.done.wait(CANCEL_GRACE_S)
    duration_ms = (time.perf_counter() - t0) * 1000

    if finished:
        close_tools(raw_tools)  # processes the tools started; an abandoned run keeps its tools until it ends
    steps = _step_infos(list(agent.memory.steps))
    prompt_tokens, completion_tokens = _token_totals(outcome.result if finished else None, steps)
    stop_reason: StopReason
    error: str | None = None
    error_type: str | None = None
    response: str | None = None
    if cancelled and outcome.result is None:  # a run that reached its answer in the grace time is a finished run
        error = "cancelled: the session stopped before this run finished"
        if not finished:
            error += f" (its step in flight did not end within {CANCEL_GRACE_S:g} s: that model call is not counted)"
        stop_reason, error_type = "error", CANCELLED
    elif not finished:
        stop_reason, error, error_type = "timeout", f"item exceeded its {cfg.timeout_s:g} s limit", "Timeout"
    elif steps.problem is not None:  # before the agent's own error: the guard's interrupt is a consequence of it
        stop_reason, error, error_type = "error", steps.problem, ModelResponseError.__name__
        log.warning("%s: %s; the item is an error outcome", nodeid or task.id, steps.problem)
    elif outcome.error is not None:
        stop_reason, error, error_type = "error", _describe(outcome.error), type(outcome.error).__name__
    else:
        result = outcome.result
        stop_reason = "max_steps" if getattr(result, "state", "success") == "max_steps_error" else "final_answer"
        output = getattr(result, "output", None)
        response = None if output is None else str(output)
    unreported = steps.unreported_steps()
    if unreported:
        _log_unreported(cfg.spec.label, nodeid or task.id, unreported)
    replayed = False
    if cassette is not None:
        if cassette.miss is not None:  # a request or tool call without a recording: never a pass
            stop_reason, error, error_type, response = "error", cassette.miss, CassetteMiss.__name__, None
        elif cassette.needs_saving and stop_reason in ("final_answer", "max_steps"):
            cassette.save({"model": cfg.spec.label, "agent_type": agent_type, "task_id": task.id})
        replayed = cassette.replayed
    return _make_record(
        task,
        agent_type,
        cfg,
        nodeid,
        started_at,
        response=response,
        final_answer_called=any(s.is_final_answer for s in steps.infos),
        stop_reason=stop_reason,
        steps=tuple(steps.infos),
        tool_calls=recorder.calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        duration_ms=duration_ms,
        error=error,
        error_type=error_type,
        retries=tuple(retry_log.events),
        cached_input_tokens=usage_log.total("cache_read"),
        cache_creation_input_tokens=usage_log.total("cache_creation"),
        reasoning_tokens=usage_log.total("reasoning"),
        replayed=replayed,
    )
