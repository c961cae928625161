"""The rubric judge: an LLM of its own (``--smoltrace-judge-model``) grades a final answer against a task's ``rubric``.

The judge is sent the task prompt, the rubric, the executed tool calls and the final answer, and must reply with a
JSON object ``{"passed": bool, "score": number 0..1, "reason": str}``; JSON mode is asked for where the provider has
one (litellm's OpenAI-compatible ``response_format``, Ollama's and the embedded local model's through litellm). The
reply is read tolerantly (the whole text, a fenced block, or the first JSON object in it). A reply that cannot be
read is answered once with what was wrong; a second unreadable reply, or a judge that cannot be reached, is a
:class:`Grade` with an ``error``: the item is then an error outcome (``error_type`` ``judge_error``), never a pass or
a fail.

The judge's tokens and cost are the grade's own (``RunRecord.judge_tokens`` / ``judge_cost_usd``), never the
agent's. The judge call is a span of the item's trace, ``judge rubric``, with the judge model, its tokens and cost,
and its own ``gen_ai.evaluation.result`` event; the judge model's own LLM call is not traced as an LLM span of the
item (that would count its tokens as the agent's). Heavy imports (smolagents, OpenTelemetry) happen on use.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .records import Check, RunRecord, excerpt
from .tasks import Task

if TYPE_CHECKING:
    from .models import ModelSpec
    from .telemetry.cost import Price

__all__ = ["JSON_MODE_PROVIDERS", "SPAN_NAME", "Grade", "Grader", "grade", "grading_messages", "parse_grade"]

logger = logging.getLogger(__name__)

#: Providers whose requests take OpenAI's ``response_format={"type": "json_object"}`` (through litellm).
JSON_MODE_PROVIDERS = frozenset({"litellm", "ollama", "local"})
#: The judge call's span in the item's trace.
SPAN_NAME = "judge rubric"
_MAX_TOOL_CALLS = 50
_RESULT_CHARS = 300
_ANSWER_CHARS = 8000
_REPLY_CHARS = 200

GRADE_FORMAT = '{"passed": true or false, "score": a number from 0 to 1, "reason": "one or two sentences"}'

SYSTEM_PROMPT = (
    "You are a strict, fair grader of an AI agent's work. You grade the agent's final answer against the rubric "
    "you are given, and nothing else. You reply with a JSON object only."
)


@dataclass(frozen=True)
class Grader:
    """The judge model (built like the agent's, from its own spec) and its price (``None``: cost unknown)."""

    spec: ModelSpec
    price: Price | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> Grader | None:
        """The session's judge (``--smoltrace-judge-model`` / ``-provider`` / ``-api-base``); ``None`` without one."""
        model_id = getattr(settings, "judge_model", None)
        if not model_id:
            return None
        from .models import ModelSpec
        from .telemetry.cost import price_for

        spec = ModelSpec(
            model_id=model_id,
            provider=getattr(settings, "judge_provider", None) or "litellm",
            api_base=getattr(settings, "judge_api_base", None),
            request_timeout=float(getattr(settings, "timeout", 300.0)),
            retries=int(getattr(settings, "retries", 3)),
        )
        try:
            price = price_for(model_id)
        except Exception:  # pricing is best effort: the judge's cost is then unknown
            logger.debug("no price for the judge model %s", model_id, exc_info=True)
            price = None
        return cls(spec=spec, price=price)


@dataclass(frozen=True)
class Grade:
    """What the judge decided: the ``rubric`` check, or the ``error`` that kept it from deciding; and what it cost."""

    check: Check | None
    error: str | None
    tokens: int | None
    cost_usd: float | None
    #: Judge model calls made (1, or 2 after a retry; 0 when the model could not even be built).
    calls: int = 0


# ----------------------------------------------------------------------------------------------------- prompt


def _call_line(index: int, name: str, arguments: Mapping[str, Any], result: str | None, error: str | None) -> str:
    inner = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    outcome = f"raised {excerpt(error, _RESULT_CHARS)}" if error is not None else f"→ {excerpt(result, _RESULT_CHARS)}"
    return f"{index}. {name}({inner}) {outcome}"


def grading_prompt(task: Task, record: RunRecord, answer: str) -> str:
    """The judge's user message: the task, the rubric, the executed tool calls, the final answer, the reply format."""
    calls = [c for c in record.tool_calls if c.name != "final_answer"]
    lines = [_call_line(i, c.name, c.arguments, c.result, c.error) for i, c in enumerate(calls[:_MAX_TOOL_CALLS], 1)]
    if len(calls) > _MAX_TOOL_CALLS:
        lines.append(f"… and {len(calls) - _MAX_TOOL_CALLS} more calls")
    tools = "\n".join(lines) if lines else "(none)"
    return (
        "Grade an AI agent's final answer to a task against a rubric.\n\n"
        f"The task given to the agent:\n<task>\n{task.prompt}\n</task>\n\n"
        f"The rubric:\n<rubric>\n{task.rubric}\n</rubric>\n\n"
        f"The tool calls the agent executed, in order:\n{tools}\n\n"
        f"The agent's final answer:\n<answer>\n{excerpt(answer, _ANSWER_CHARS)}\n</answer>\n\n"
        "Decide whether the final answer satisfies the rubric. Reply with only this JSON object and no other text:\n"
        f"{GRADE_FORMAT}"
    )


def grading_messages(task: Task, record: RunRecord, answer: str) -> list[dict[str, Any]]:
    """The first request's messages (system and user, smolagents' message form)."""
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": [{"type": "text", "text": grading_prompt(task, record, answer)}]},
    ]


# ----------------------------------------------------------------------------------------------------- reply

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class _Reply:
    passed: bool
    score: float
    reason: str


def _candidates(text: str) -> Iterator[Any]:
    """JSON values found in ``text``: the whole text, fenced blocks, then each object that starts at a ``{``."""
    stripped = text.strip()
    pieces = [stripped, *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for piece in pieces:
        try:
            value = json.loads(piece)
        except ValueError:
            continue
        yield value
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        yield value


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "pass", "fail", "yes", "no"):
        return value.strip().lower() in ("true", "pass", "yes")
    return None


def _as_score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if 0.0 <= number <= 1.0 else None


def _reply_problem(value: Any) -> tuple[_Reply | None, str]:
    if not isinstance(value, Mapping):
        return None, f"expected a JSON object, got {type(value).__name__}"
    if "passed" not in value:
        return None, 'the object has no "passed"'
    passed = _as_bool(value["passed"])
    if passed is None:
        return None, f'"passed" must be true or false; got {value["passed"]!r}'
    score: float | None = 1.0 if passed else 0.0
    if value.get("score") is not None:
        score = _as_score(value["score"])
        if score is None:
            return None, f'"score" must be a number from 0 to 1; got {value["score"]!r}'
    reason = value.get("reason")
    text = reason if isinstance(reason, str) else ("" if reason is None else json.dumps(reason, default=str))
    assert score is not None
    return _Reply(passed=passed, score=score, reason=text.strip()), ""


def parse_grade(text: str | None) -> tuple[dict[str, Any] | None, str]:
    """The grade in the judge's reply as ``{"passed", "score", "reason"}``, or ``None`` and why it cannot be read.

    Tolerant: the whole reply, a fenced code block, or the first JSON object inside the text; ``passed`` may be a
    boolean or ``"true"``/``"false"``; a missing ``score`` is 1 for a pass and 0 for a fail; ``reason`` may be absent.
    """
    if text is None or not text.strip():
        return None, "the reply was empty"
    first_problem = ""
    for value in _candidates(text):
        reply, problem = _reply_problem(value)
        if reply is not None:
            return {"passed": reply.passed, "score": reply.score, "reason": reply.reason}, ""
        first_problem = first_problem or problem
    return None, first_problem or "no JSON object in the reply"


def _reply_text(message: Any) -> str | None:
    content = getattr(message, "content", None)
    if isinstance(content, str) or content is None:
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


# ----------------------------------------------------------------------------------------------------- grading


def _tracer() -> Any:
    """The tracer whose spans reach the item's trace (the plugin's own, else the global provider's)."""
    from opentelemetry import trace

    from .telemetry import tracing

    state = getattr(tracing, "_state", None)
    return state.tracer if state is not None else trace.get_tracer("pytest_smoltrace.rubric")


def _usage(message: Any) -> tuple[int | None, int | None]:
    usage = getattr(message, "token_usage", None)
    if usage is None:
        return None, None
    return getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None)


class _Tally:
    """Tokens over the judge's calls (``None`` while no call reported any)."""

    def __init__(self) -> None:
        self.prompt: int | None = None
        self.completion: int | None = None
        self.calls = 0

    def add(self, message: Any) -> None:
        self.calls += 1
        prompt, completion = _usage(message)
        if isinstance(prompt, int):
            self.prompt = (self.prompt or 0) + prompt
        if isinstance(completion, int):
            self.completion = (self.completion or 0) + completion

    @property
    def tokens(self) -> int | None:
        if self.prompt is None and self.completion is None:
            return None
        return (self.prompt or 0) + (self.completion or 0)

    def cost(self, price: Price | None) -> float | None:
        from .telemetry.cost import cost_usd

        return cost_usd(price, self.prompt, self.completion)


def grade(task: Task, record: RunRecord, answer: str, grader: Grader) -> Grade:
    """Ask the judge model for the ``rubric`` grade of ``answer`` (one retry for an unreadable reply); never raises.

    Runs inside the item's trace: the call is the span :data:`SPAN_NAME` under the current span (the item's root)."""
    from opentelemetry import context as otel_context
    from opentelemetry.trace import Status, StatusCode

    from .telemetry.tracing import EVALUATION_EVENT

    spec = grader.spec
    tally = _Tally()
    attributes = {
        "openinference.span.kind": "EVALUATOR",
        "smoltrace.judge.model": spec.model_id,
        "smoltrace.judge.provider": spec.provider,
        "gen_ai.evaluation.name": "rubric",
    }
    with _tracer().start_as_current_span(SPAN_NAME, attributes=attributes) as span:
        # the judge model's own call is not an LLM span of the item: its tokens are the judge's, not the agent's
        token = otel_context.attach(otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            result = _ask(task, record, answer, grader, tally)
        finally:
            otel_context.detach(token)
        tokens, cost = tally.tokens, tally.cost(grader.price)
        figures: dict[str, Any] = {"smoltrace.judge.calls": tally.calls}
        if tally.prompt is not None:
            figures["smoltrace.judge.input_tokens"] = tally.prompt
        if tally.completion is not None:
            figures["smoltrace.judge.output_tokens"] = tally.completion
        if tokens is not None:
            figures["smoltrace.judge.total_tokens"] = tokens
        if cost is not None:
            figures["smoltrace.judge.cost_usd"] = cost
        span.set_attributes(figures)
        if isinstance(result, str):
            span.set_status(Status(StatusCode.ERROR, result))
            return Grade(check=None, error=result, tokens=tokens, cost_usd=cost, calls=tally.calls)
        check = Check(
            name="rubric",
            passed=bool(result["passed"]),
            expected=task.rubric,
            actual={"reason": result["reason"], "score": result["score"]},
        )
        span.add_event(
            EVALUATION_EVENT,
            {
                "gen_ai.evaluation.name": "rubric",
                "gen_ai.evaluation.score.label": "pass" if check.passed else "fail",
                "gen_ai.evaluation.score.value": float(result["score"]),
                "gen_ai.evaluation.explanation": excerpt(result["reason"], 300),
            },
        )
        span.set_status(Status(StatusCode.OK))
        return Grade(check=check, error=None, tokens=tokens, cost_usd=cost, calls=tally.calls)


def _ask(task: Task, record: RunRecord, answer: str, grader: Grader, tally: _Tally) -> dict[str, Any] | str:
    """The parsed grade, or the error text (``str``) of a judge that could not give one."""
    from .models import get_model

    spec = grader.spec
    try:
        model = get_model(spec)
    except Exception as exc:  # a judge that cannot be built is the item's judge error, never a crash
        return f"the judge model {spec.model_id} ({spec.provider}) cannot be used: {type(exc).__name__}: {exc}"
    kwargs: dict[str, Any] = {}
    if spec.provider in JSON_MODE_PROVIDERS:
        kwargs["response_format"] = {"type": "json_object"}
    messages = grading_messages(task, record, answer)
    why = ""
    reply: str | None = None
    for attempt in range(2):
        try:
            message = model.generate(messages, **kwargs)
        except Exception as exc:  # transient errors were retried by the model's retry layer already
            logger.debug("the judge model call failed", exc_info=True)
            return f"the judge model {spec.model_id} call failed: {type(exc).__name__}: {excerpt(str(exc), 300)}"
        tally.add(message)
        reply = _reply_text(message)
        parsed, why = parse_grade(reply)
        if parsed is not None:
            return parsed
        then = "; asking once more" if attempt == 0 else ""
        logger.info("%s: the judge's reply could not be read (%s)%s", record.nodeid or record.task_id, why, then)
        messages = [
            *messages,
            {"role": "assistant", "content": [{"type": "text", "text": reply or ""}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": f"Your reply could not be read as the grade ({why}). Reply with only this JSON object "
                        f"and no other text: {GRADE_FORMAT}",
                    }
                ],
            },
        ]
    shown = excerpt(reply or "", _REPLY_CHARS)
    return f"the judge's reply could not be read as a grade after one retry ({why}): {shown!r}"
