"""Python API: run a benchmark in-process and get its results back as records.

.. code-block:: python

    import pytest_smoltrace

    summary = pytest_smoltrace.run(model="openai/gpt-4.1-nano", agent_type="tool", dataset="tasks.jsonl")
    for agent in summary.agents:
        print(agent.agent_type, agent.success_rate)
    failed = [r.nodeid for r in summary.results if not r.verdict.passed]

Keyword names are the ``--smoltrace-*`` option names with dashes turned into underscores (``api_base=``,
``max_steps=``, ``output_dir=``…; see ``docs/options.md``). The run happens in an empty temporary rootdir, so only
benchmark items run, never the test suite of the current directory; relative paths are taken from the current
directory as on the command line. The same machinery backs the ``smoltrace-eval`` command (:mod:`.cli`).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .options import OPTIONS_BY_NAME, OptionSpec

if TYPE_CHECKING:
    from .controller import ControllerPlugin
    from .records import ItemResult
    from .summary import AgentSummary

__all__ = ["RunSummary", "isolated_args", "option_args", "run", "run_pytest"]

log = logging.getLogger(__name__)

#: Keywords of :func:`run` that are not plugin options.
RESERVED = ("pytest_args", "plugins")


@dataclass(frozen=True)
class RunSummary:
    """What one benchmark run produced.

    - ``run_id`` / ``run_dir``: the run's id and its directory (``None`` when nothing was written, e.g. with
      ``output="none"``, or when pytest stopped before the plugin started).
    - ``exit_code``: pytest's exit code (0 all passed, 1 some item failed or errored, 2 interrupted, 4 usage error,
      5 nothing collected).
    - ``agents``: one :class:`~pytest_smoltrace.summary.AgentSummary` per (model, agent type) that ran or was planned.
    - ``results``: every finished item's :class:`~pytest_smoltrace.records.ItemResult` (record + verdict), read back
      from the run directory's ``journal.jsonl`` (from memory when no directory was written).
    """

    run_id: str | None
    run_dir: Path | None
    exit_code: int
    agents: tuple[AgentSummary, ...]
    results: tuple[ItemResult, ...]

    @property
    def ok(self) -> bool:
        """Every item passed (pytest exit code 0)."""
        return self.exit_code == 0

    def agent(self, agent_type: str, model: str | None = None) -> AgentSummary | None:
        """The summary of ``"tool"`` or ``"code"`` agents (of ``model``, by its label or id: the first model's by
        default), if any ran."""
        return next((a for a in self.agents if a.agent_type == agent_type and model in (None, a.model)), None)

    def verdicts(self) -> dict[str, str]:
        """``{node id: "passed" | "failed" | "error"}`` for every finished item."""
        return {r.nodeid: r.verdict.outcome for r in self.results}


def _check_value(spec: OptionSpec, text: str, keyword: str) -> None:
    if spec.choices and text not in spec.choices:
        raise ValueError(f"{keyword}={text!r}: expected one of {', '.join(spec.choices)}")
    try:
        spec.type(text)
    except ValueError as exc:
        raise ValueError(f"{keyword}={text!r}: {exc}") from None


def _spec_for(keyword: str) -> OptionSpec:
    spec = OPTIONS_BY_NAME.get(keyword.replace("_", "-"))
    if spec is None:
        valid = ", ".join([*(s.name.replace("-", "_") for s in OPTIONS_BY_NAME.values()), *RESERVED])
        raise TypeError(f"run() got an unexpected keyword argument {keyword!r}; valid keywords: {valid}")
    return spec


def option_args(options: Mapping[str, Any]) -> list[str]:
    """``{"api_base": "http://…", "tools": ["a", "b"], "otlp": True}`` → the equivalent ``--smoltrace-*`` arguments.

    ``None`` leaves an option at its default. Unknown names raise :class:`TypeError` listing the valid ones; bad
    values raise :class:`ValueError` naming the keyword (before pytest starts).
    """
    args: list[str] = []
    for keyword, value in options.items():
        spec = _spec_for(keyword)
        if value is None:
            continue
        if spec.kind in ("flag", "toggle"):
            if not isinstance(value, bool):
                raise ValueError(f"{keyword}={value!r}: expected True or False")
            if value:
                args.append(spec.flag)
            elif spec.kind == "toggle":
                args.append(f"--smoltrace-no-{spec.name}")
            continue
        values = [value] if isinstance(value, (str, Path)) or not isinstance(value, Iterable) else list(value)
        if spec.kind != "list" and len(values) != 1:
            raise ValueError(f"{keyword}={value!r}: expected a single value")
        for item in values:
            text = str(item)
            _check_value(spec, text, keyword)
            args += [spec.flag, text]
    return args


@contextlib.contextmanager
def isolated_args(args: Sequence[str]) -> Iterator[list[str]]:
    """``args`` plus what makes pytest run only benchmark items: an empty ini file and an empty test path.

    Both live in a temporary directory, which is also the ``--confcutdir``: the current directory's tests, conftest
    files, ini settings and ``smoltrace_*.jsonl`` files are not collected. The rootdir stays the current directory,
    so node ids, the progress lines and relative paths in options read as in a plain ``pytest`` run there. The cache
    plugin is off: nothing is written into the current directory except the run directory.
    """
    with tempfile.TemporaryDirectory(prefix="smoltrace-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        empty = Path(tmp) / "no-tests"
        empty.mkdir()
        yield [
            "-p",
            "no:cacheprovider",
            "-m",
            "smoltrace",
            "-c",
            str(ini),
            "--rootdir",
            str(Path.cwd()),
            "--confcutdir",
            tmp,
            *args,
            # the empty test path is an explicit path, which alone would leave the bundled set out: name the dataset
            *(() if "--smoltrace-dataset" in args else ("--smoltrace-dataset", "default")),
            str(empty),
        ]


class _Capture:
    """A throwaway plugin that keeps a reference to the session's controller plugin."""

    def __init__(self) -> None:
        self.controller: ControllerPlugin | None = None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .controller import get_controller

        self.controller = get_controller(session.config)


def _summary(exit_code: int, controller: ControllerPlugin | None) -> RunSummary:
    from .aggregate import journal_attempts
    from .journal import JOURNAL
    from .summary import summarize

    if controller is None:
        return RunSummary(run_id=None, run_dir=None, exit_code=exit_code, agents=(), results=())
    run_dir = controller.aggregator.run_dir
    if run_dir is not None and (run_dir / JOURNAL).is_file():
        results = journal_attempts(run_dir)  # every attempt: reruns' spend is counted (summarize keeps each final)
    else:
        results = list(controller.aggregator.attempts)
    return RunSummary(
        run_id=controller.identity.run_id,
        run_dir=run_dir if run_dir is not None and run_dir.is_dir() else None,
        exit_code=exit_code,
        agents=tuple(summarize(results, controller.planned)),
        results=tuple(results),
    )


def run_pytest(args: Sequence[str], plugins: Sequence[object] = ()) -> RunSummary:
    """Run ``pytest.main`` in-process on benchmark items only (:func:`isolated_args`) and summarise the run."""
    capture = _Capture()
    with isolated_args(args) as argv:
        log.debug("pytest %s", " ".join(argv))
        exit_code = int(pytest.main(argv, plugins=[*plugins, capture]))
    return _summary(exit_code, capture.controller)


def run(
    model: str | Sequence[str],
    *,
    pytest_args: Sequence[str] = (),
    plugins: Sequence[object] = (),
    **options: Any,
) -> RunSummary:
    """Benchmark ``model`` in-process, exactly as ``pytest --smoltrace-model MODEL …`` would, and return the results
    (a list of models: several in one session, as a repeated ``--smoltrace-model``).

    ``options`` are the plugin's options by name (``agent_type="tool"``, ``dataset="tasks.jsonl"``,
    ``api_base=…``, ``max_steps=8``, ``tools=["read_file"]``, ``otlp=True``, ``gpu_metrics=False``, …); ``None``
    keeps the default. ``pytest_args`` are extra pytest arguments (``["-q", "-k", "weather"]``); ``plugins`` are
    objects with hook implementations (``pytest_smoltrace_tasks``, ``pytest_smoltrace_tools``,
    ``pytest_smoltrace_judge``) — the conftest of the current directory is *not* loaded.

    Raises :class:`TypeError` for an unknown keyword and :class:`ValueError` for a bad value; everything else
    (a failing item, a usage error found by pytest) is reported through :attr:`RunSummary.exit_code`.
    """
    args = option_args({"model": model, **options})
    return run_pytest([*args, *pytest_args], plugins)
