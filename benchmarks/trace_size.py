"""Bytes of ``traces.json`` per item for the bundled scripted run, without and with content capture, side by side.

Runs ``pytest --smoltrace-model scripted`` (24 items of the bundled set, both agent types) twice in fresh
interpreters in a scratch directory — once as is, once with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``
— and prints, for each: items, spans per item, bytes per item, and where the bytes go (document fields, span
envelopes, events, evaluations and the largest attribute keys, counted as the file writes them), plus the ratio of
the two. It also checks that every item's LLM spans sum to its recorded tokens, so a lean trace is never a wrong
one.

    python benchmarks/trace_size.py [--keep DIR]

Target (issue 10): ≤ 4 KB per item without content capture.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TARGET_BYTES = 4096


def _run(directory: Path, capture: bool) -> Path:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true" if capture else "false"
    run_id = "capture" if capture else "default"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    argv += ["--smoltrace-model", "scripted", "--smoltrace-run-id", run_id, "--smoltrace-output-dir", "out"]
    proc = subprocess.run(argv, cwd=directory, env=env, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"pytest failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return directory / "out" / run_id


#: The parts of a span dict counted apart from its envelope (ids, name, category, times, status).
_PARTS = ("attributes", "events", "evaluations")


def _size(value: Any) -> int:
    """Bytes of ``value`` as traces.json writes it (compact JSON, UTF-8)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def _report(run_dir: Path, label: str) -> float:
    path = run_dir / "traces.json"
    docs: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    rows = {r["trace_id"]: r for r in json.loads((run_dir / "results.json").read_text(encoding="utf-8"))}
    items = len(docs)
    per_item = path.stat().st_size / items
    spans = sum(len(d["spans"]) for d in docs) / items
    where: collections.Counter[str] = collections.Counter()
    for doc in docs:
        llm = [s for s in doc["spans"] if s["category"] == "llm"]
        used = sum(
            s["attributes"]["gen_ai.usage.input_tokens"] + s["attributes"]["gen_ai.usage.output_tokens"] for s in llm
        )
        if used != rows[doc["trace_id"]]["total_tokens"]:
            raise SystemExit(f"{doc['nodeid']}: LLM spans hold {used} tokens, the result {rows[doc['trace_id']]}")
        where["(document fields)"] += _size({k: v for k, v in doc.items() if k != "spans"})
        for span in doc["spans"]:
            where["(span envelopes)"] += _size({k: v for k, v in span.items() if k not in _PARTS})
            for part in ("events", "evaluations"):
                where[f"({part})"] += _size(span.get(part) or [])
            for key, value in (span.get("attributes") or {}).items():
                where[key] += _size({key: value}) - 1  # the key, its value and one separator
    print(f"{label}: {items} items, {spans:.1f} spans/item, {per_item:,.0f} bytes/item ({path.stat().st_size:,} B)")
    for key, size in where.most_common(10):
        print(f"    {size / items:8,.0f} B/item  {key}")
    return per_item


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        directory = args.keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        lean = _report(_run(directory, capture=False), "without content capture")
        full = _report(_run(directory, capture=True), "with content capture   ")
    print(
        f"ratio lean/full: {lean / full:.3f}; target ≤ {TARGET_BYTES} B/item without capture: "
        f"{'OK' if lean <= TARGET_BYTES else 'OVER'}"
    )
    return 0 if lean <= TARGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
