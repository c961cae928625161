"""Per-step cost of tracing: the same agent runs with tracing off and on, side by side in one process.

Each round runs one agent with tracing OFF (smolagents not instrumented, no root span) and one with tracing ON
(``tracing.install()`` instrumentation, an ``item_trace`` root span, the agent in a worker thread joined to it
with ``run_in_context``, a verdict event) — both in a worker thread like ``runner.py``. Rounds alternate so that
drift (CPU frequency, other load) hits both modes alike. Every run makes ``--steps`` tool-calling steps against
the scripted model server on 127.0.0.1, so the model answers instantly and the figure is the agent + tracing
cost. Building the ``traces.json`` document (done once per item, after the agent) is timed separately.

    python benchmarks/tracing_overhead.py [--steps 10] [--rounds 20] [--agent tool|code|both]

Both wall time and process CPU time are reported (medians; the overhead is the median of per-round on − off
differences). The verdict uses CPU time, which other load on a shared machine disturbs far less than wall time.
Target: tracing adds at most 2 ms per agent step.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))  # agent_helpers: the tracing tests' AddTool

TARGET_MS_PER_STEP = 2.0


def _agent(kind: str, base_url: str) -> Any:
    from agent_helpers import AddTool  # the tracing tests' tool (tests/agent_helpers.py)
    from smolagents import CodeAgent, LiteLLMModel, ToolCallingAgent

    model = LiteLLMModel(model_id="openai/scripted", api_base=base_url, api_key="sk-bench", retry=False)
    cls = ToolCallingAgent if kind == "tool" else CodeAgent
    return cls(tools=[AddTool()], model=model, verbosity_level=-1, max_steps=100)


def _in_thread(fn: Callable[[], Any]) -> Any:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(result=fn()), daemon=True)
    thread.start()
    thread.join(120)
    return box["result"]


def _script(kind: str, steps: int) -> list[dict[str, Any]]:
    if kind == "tool":
        act: dict[str, Any] = {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2}}]}
    else:
        act = {"code": "x = add(1, 2)\nprint(x)"}
    return [act] * (steps - 1) + [{"final_answer": "3"}]


@dataclass(frozen=True)
class Cost:
    """Wall and process-CPU seconds of one run (CPU time is robust to other load on a shared machine)."""

    wall: float
    cpu: float


def _timed(fn: Callable[[], Any]) -> tuple[Cost, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return Cost(time.perf_counter() - wall, time.process_time() - cpu), result


def _run_off(agent: Any, prompt: str) -> Cost:
    cost, _ = _timed(lambda: _in_thread(lambda: agent.run(prompt, return_full_result=True)))
    return cost


def _run_on(agent: Any, prompt: str, kind: str) -> tuple[Cost, Cost, int]:
    from pytest_smoltrace.records import Check, Verdict
    from pytest_smoltrace.telemetry import tracing

    attrs = tracing.item_attributes(
        nodeid=f"bench::{kind}",
        task_id="bench",
        agent_type=kind,
        model="openai/scripted",
        provider="litellm",
        run_id="b",
    )

    def item() -> tracing.ItemTrace:
        with tracing.item_trace("bench", attrs) as tr:
            thread = threading.Thread(target=tr.run_in_context, args=(agent.run, prompt), daemon=True)
            thread.start()
            thread.join(120)
            tr.add_verdict(Verdict((Check("final_answer", True, True, True),)))
        return tr

    run_cost, tr = _timed(item)
    doc_cost, doc = _timed(tr.document)
    return run_cost, doc_cost, int(doc["span_count"])


def _ms_per_step(values: list[float], steps: int) -> float:
    return statistics.median(values) / steps * 1000


def _paired_ms_per_step(off: list[float], on: list[float], steps: int) -> float:
    return statistics.median(b - a for a, b in zip(off, on, strict=True)) / steps * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="agent steps per run (the last one answers)")
    parser.add_argument("--rounds", type=int, default=20, help="off/on pairs per agent type")
    parser.add_argument("--agent", choices=("tool", "code", "both"), default="both")
    args = parser.parse_args(argv)

    import litellm
    from opentelemetry import trace

    from pytest_smoltrace.telemetry import tracing
    from pytest_smoltrace.testing import ScriptedModelServer

    litellm.suppress_debug_info = True
    tracing.install()  # sets up the provider and instruments smolagents once
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor

    instrumentor = SmolagentsInstrumentor()
    provider = trace.get_tracer_provider()
    kinds = ("tool", "code") if args.agent == "both" else (args.agent,)
    failed = False
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; medians over rounds, per agent step")
    with ScriptedModelServer() as srv:
        for kind in kinds:
            prompt = f"benchmark {kind} agent"
            srv.add_script(prompt, _script(kind, args.steps))
            off: list[Cost] = []
            on: list[Cost] = []
            docs: list[Cost] = []
            spans = 0
            for round_index in range(args.rounds + 1):  # round 0 warms up both modes
                instrumentor.uninstrument()
                c_off = _run_off(_agent(kind, srv.base_url), prompt)
                instrumentor.instrument(tracer_provider=provider)
                c_on, c_doc, spans = _run_on(_agent(kind, srv.base_url), prompt, kind)
                if round_index:
                    off.append(c_off)
                    on.append(c_on)
                    docs.append(c_doc)
            n = args.steps
            print(f"{kind} agent: {n} steps × {args.rounds} rounds, {spans} spans per item")
            for label, attr in (("wall", "wall"), ("CPU ", "cpu")):
                off_v = [getattr(c, attr) for c in off]
                on_v = [getattr(c, attr) for c in on]
                doc_ms = _ms_per_step([getattr(c, attr) for c in docs], n)
                overhead = _paired_ms_per_step(off_v, on_v, n)
                total = overhead + doc_ms
                line = (
                    f"  {label}: off {_ms_per_step(off_v, n):.2f} ms, on {_ms_per_step(on_v, n):.2f} ms "
                    f"(ratio {_ms_per_step(on_v, n) / _ms_per_step(off_v, n):.3f}) → tracing +{overhead:.2f} ms "
                    f"+ traces.json document {doc_ms:.2f} ms = +{total:.2f} ms/step"
                )
                if attr == "cpu":
                    ok = total <= TARGET_MS_PER_STEP
                    failed |= not ok
                    line += f" [{'OK' if ok else 'OVER'} ≤ {TARGET_MS_PER_STEP:g} ms]"
                print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
