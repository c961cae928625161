"""Run and judge one agent run: (task, agent type, run config, judge hook) → :class:`ItemResult`.

The one place a run becomes a result — under its root span, with its cost, its verdict (built-in checks, the rubric
judge's grade and the ``pytest_smoltrace_judge`` hooks') and its trace document — used by task items (through the
executor, in a run-ahead thread) and by the ``smoltrace_run`` fixture alike.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

from .records import JUDGE_ERROR, AgentType, ItemResult

if TYPE_CHECKING:
    from .budget import Budget
    from .judge import JudgeHook
    from .rubric import Grader
    from .runner import RunConfig
    from .tasks import Task
    from .telemetry.cost import Price


def run_and_judge(
    task: Task,
    agent_type: AgentType,
    cfg: RunConfig,
    *,
    nodeid: str,
    price: Price | None,
    judges: JudgeHook | None = None,
    otlp: bool = False,
    budget: Budget | None = None,
    cancel: threading.Event | None = None,
    repeat: int = 0,
    grader: Grader | None = None,
) -> ItemResult:
    """Run ``task`` with a fresh ``agent_type`` agent and judge it; the root span covers the run and the verdict.

    ``price`` prices the run (``cost_usd``, and the LLM spans' cost attributes; None: cost unknown); ``judges`` is the
    ``pytest_smoltrace_judge`` hook caller; ``budget`` (``--smoltrace-max-cost``) is charged with the run's cost (and
    the judge's); ``cancel`` asks the agent to stop at its next step; ``repeat`` is the item's repeat index;
    ``grader`` (``--smoltrace-judge-model``, :meth:`.rubric.Grader.from_settings`) grades a task's ``rubric``: its
    tokens and cost are the record's ``judge_tokens`` / ``judge_cost_usd``, and a grade it cannot give makes the item
    an error outcome (``error_type`` ``judge_error``). Agent, model, tool and judge failures never raise: they are the
    record's error and an error verdict."""
    from .judge import NO_JUDGE, final_answer_text, judge, rubric_applies, user_checks
    from .runner import run_task
    from .telemetry import cost, tracing

    spec = cfg.spec
    tracing.install(otlp=otlp)
    attributes = tracing.item_attributes(
        nodeid=nodeid,
        task_id=task.id,
        agent_type=agent_type,
        model=spec.model_id,
        provider=spec.provider,
        run_id=cfg.run_id,
        task=task.to_dict(),
        repeat=repeat,
    )
    with tracing.item_trace(f"{agent_type} {task.id}", attributes, model=spec.model_id, price=price) as trace:
        record = run_task(task, agent_type, cfg, nodeid=nodeid, cancel=cancel)
        trace.set_output(record.response if record.response is not None else record.error)
        if record.replayed:  # its model calls and tool results came from a cassette: nothing was newly executed
            trace.set_attributes({"smoltrace.replayed": True})
        spent = cost.record_cost_usd(price, record)
        record = dataclasses.replace(
            record,
            trace_id=trace.trace_id,
            span_id=trace.span_id,
            # a replayed run cost nothing now; what its recorded calls cost is kept apart, never mixed in
            cost_usd=0.0 if record.replayed else spent,
            recorded_cost_usd=spent if record.replayed else None,
            repeat=repeat,
        )
        rubric_check, judge_error = None, None
        if rubric_applies(task, record):
            if grader is None:
                judge_error = NO_JUDGE
            else:
                from .rubric import grade

                answer = final_answer_text(record)[0] or ""
                graded = grade(task, record, answer, grader)
                rubric_check, judge_error = graded.check, graded.error
                record = dataclasses.replace(record, judge_tokens=graded.tokens, judge_cost_usd=graded.cost_usd)
            if judge_error is not None:
                record = dataclasses.replace(record, error=judge_error, error_type=JUDGE_ERROR)
        verdict = judge(
            task, record, extra_checks=user_checks(judges, task, record), rubric=rubric_check, judge_error=judge_error
        )
        trace.add_verdict(verdict)
    if budget is not None:
        budget.add(record.cost_usd)
        budget.add(record.judge_cost_usd)
    return ItemResult(nodeid=nodeid, record=record, verdict=verdict, task=task, trace=trace.document())
