"""What crosses from where items run to the controller: a result on its TestReport, a process's report at its end.

Plain JSON only (execnet refuses anything else). Each attempt's :class:`ItemResult` rides on its ``TestReport``
(xdist ships ``report.__dict__`` to the controller); what no report carried — samples, OTLP export reports, results of
runs nobody waited for, the collection order — travels once per process as a :class:`ProcessReport`: through the
worker's ``workeroutput`` under xdist, handed over directly in a single process.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from .records import ItemResult

log = logging.getLogger(__name__)

#: Largest result payload a worker sends to the controller; bigger ones lose their bulkiest parts first.
MAX_PAYLOAD_BYTES = 4 * 2**20
#: The TestReport attribute that carries the payload.
REPORT_ATTRIBUTE = "smoltrace"

WORKER_SAMPLES = "smoltrace_samples"
WORKER_OTLP = "smoltrace_otlp_reports"
#: Results no report carried (runs started ahead for items the worker never ran, runs pytest stopped waiting for).
WORKER_UNREPORTED = "smoltrace_unreported"
#: The worker's collection order of the task items (results.json is written in it).
WORKER_ORDER = "smoltrace_order"


def _shrink(data: dict[str, Any]) -> dict[str, Any]:
    record = data["record"]
    if data.get("trace"):
        data["trace"] = {"truncated": True, "trace_id": data["trace"].get("trace_id")}
    for step in record.get("steps", ()):
        if step.get("code") and len(step["code"]) > 2000:
            step["code"] = step["code"][:2000] + "… [truncated]"
    for call in record.get("tool_calls", ()):
        call["arguments"] = {k: (v[:500] if isinstance(v, str) else v) for k, v in call["arguments"].items()}
    data["truncated"] = True
    return data


def payload(result: ItemResult) -> dict[str, Any]:
    """The result as plain JSON, size-capped: what travels to the controller."""
    text = json.dumps(result.to_dict(), default=str)
    data: dict[str, Any] = json.loads(text)
    if len(text) > MAX_PAYLOAD_BYTES:
        data = _shrink(data)
    return data


def attach_result(report: pytest.TestReport, result: ItemResult) -> None:
    """Put the result on the report."""
    report.__dict__[REPORT_ATTRIBUTE] = payload(result)


#: What a report keeps of its payload once the controller has filed the result (:func:`release_payload`): what the
#: status line of the item (shown again in pytest's short summary) reads.
KEPT_RECORD_FIELDS = ("attempt", "retries", "prompt_tokens", "completion_tokens", "cost_usd")


def release_payload(report: pytest.TestReport) -> None:
    """Once the controller has filed the result a report carried: keep only what its status line reads.

    pytest's terminal reporter holds every report to the end of the session; the full payload (answer, steps, tool
    calls, trace document) is in the journal now, and holding it on 10,000 reports would cost hundreds of MB."""
    data = report_payload(report)
    if data is not None:
        record = data.get("record") or {}
        report.__dict__[REPORT_ATTRIBUTE] = {
            "nodeid": data.get("nodeid"),
            "record": {k: record[k] for k in KEPT_RECORD_FIELDS if k in record},
            "released": True,
        }


def report_payload(report: pytest.TestReport) -> dict[str, Any] | None:
    """The payload a report carries, if any."""
    data = getattr(report, REPORT_ATTRIBUTE, None)
    return data if isinstance(data, dict) else None


def result_from_payload(nodeid: str | None, data: Any) -> ItemResult | None:
    """Validate a payload that arrived (on a report: ``nodeid`` is the report's); a malformed one is logged and
    dropped, never fatal."""
    try:
        result = ItemResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("%s: ignoring a malformed smoltrace result payload (%s)", nodeid, exc)
        return None
    if nodeid is not None and result.nodeid != nodeid:
        log.warning("%s: result payload names another item (%s); ignored", nodeid, result.nodeid)
        return None
    return result


@dataclass(frozen=True)
class ProcessReport:
    """What one process that ran items hands to the controller when it ends."""

    samples: tuple[dict[str, Any], ...] = ()
    otlp_reports: tuple[dict[str, Any], ...] = ()
    unreported: tuple[ItemResult, ...] = ()
    order: tuple[str, ...] = ()

    def to_workeroutput(self, workeroutput: dict[str, Any]) -> None:
        workeroutput[WORKER_SAMPLES] = list(self.samples)
        workeroutput[WORKER_OTLP] = list(self.otlp_reports)
        workeroutput[WORKER_UNREPORTED] = [payload(r) for r in self.unreported]
        workeroutput[WORKER_ORDER] = list(self.order)

    @classmethod
    def from_workeroutput(cls, output: dict[str, Any]) -> ProcessReport:
        results = (result_from_payload(None, data) for data in output.get(WORKER_UNREPORTED) or ())
        return cls(
            samples=tuple(output.get(WORKER_SAMPLES) or ()),
            otlp_reports=tuple(output.get(WORKER_OTLP) or ()),
            unreported=tuple(r for r in results if r is not None),
            order=tuple(output.get(WORKER_ORDER) or ()),
        )
