"""Process-level behaviour of ``tracing.install`` (each case in a fresh interpreter) and cheap imports."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap


def run_python(code: str, *extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    proc = subprocess.run(
        [sys.executable, *extra, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def run_quietly(code: str) -> None:
    """``code`` runs with every warning an error, prints OK, and OpenTelemetry says nothing of overriding a provider."""
    out = run_python(code, "-W", "error")
    assert "OK" in out and "Overriding" not in out


def test_importing_telemetry_is_cheap() -> None:
    out = run_python(
        """
        import sys
        import pytest_smoltrace.telemetry
        from pytest_smoltrace.telemetry import cost, energy, metrics, nvml, sampler, samples, spans, tracing
        heavy = ("litellm", "smolagents", "genai_otel", "opentelemetry", "openinference", "psutil", "pynvml")
        loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
        print("LOADED", loaded)
        """
    )
    assert "LOADED []" in out


def test_install_adds_to_an_existing_sdk_provider_once() -> None:
    run_quietly(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        mine = TracerProvider()
        exporter = InMemorySpanExporter()
        mine.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(mine)

        from pytest_smoltrace.telemetry import tracing
        tracing.install()
        tracing.install()
        assert trace.get_tracer_provider() is mine
        processors = mine._active_span_processor._span_processors
        assert len(processors) == 2, processors  # the user's + one smoltrace hub
        with tracing.item_trace("task-a", {"test.case.name": "n::a"}) as tr:
            with trace.get_tracer("user").start_as_current_span("user work"):
                pass
        names = sorted(s["name"] for s in tr.document()["spans"])
        assert names == ["task-a", "user work"], names
        assert sorted(s.name for s in exporter.get_finished_spans()) == ["task-a", "user work"]
        assert tracing.active_items() == 0
        print("OK")
        """
    )


def test_install_creates_and_sets_a_provider_when_none_is_set() -> None:
    run_quietly(
        """
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from pytest_smoltrace.telemetry import tracing
        assert not tracing.installed()
        tracing.install()
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        assert provider.resource.attributes["service.name"] == "pytest-smoltrace"
        assert tracing.installed()
        print("OK")
        """
    )


def test_reimported_module_reuses_hub_and_instrumentation() -> None:
    """pytester's in-process runs drop modules imported during a run; a second install must not double up."""
    out = run_python(
        """
        import sys, threading
        import smolagents
        from opentelemetry import trace
        from pytest_smoltrace.testing import ScriptedModelServer
        from pytest_smoltrace.telemetry import tracing
        tracing.install()
        for name in [m for m in sys.modules if m.startswith(("pytest_smoltrace.telemetry", "openinference"))]:
            del sys.modules[name]
        from pytest_smoltrace.telemetry import tracing as fresh
        assert fresh is not tracing and not fresh.installed()
        fresh.install()
        assert len(trace.get_tracer_provider()._active_span_processor._span_processors) == 1
        with ScriptedModelServer({"hello": [{"final_answer": "hi"}]}) as srv:
            model = smolagents.OpenAIServerModel(model_id="scripted", api_base=srv.base_url, api_key="sk-x")
            agent = smolagents.ToolCallingAgent(tools=[], model=model, verbosity_level=-1)
            with fresh.item_trace("t", {"test.case.name": "n"}) as tr:
                agent.run("hello")
        names = [s["name"] for s in tr.document()["spans"]]
        assert names.count("invoke_agent ToolCallingAgent") == 1, names
        assert names.count("chat scripted") == 1, names
        print("OK")
        """
    )
    assert "OK" in out
