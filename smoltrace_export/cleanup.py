"""Delete old or incomplete smoltrace run datasets of the token's user on the Hub.

Only names that match exactly ``{user}/smoltrace-{results,traces,metrics}-{ts}`` (see :mod:`.naming`) are
considered; ``{user}/smoltrace-leaderboard`` is kept unless ``delete_leaderboard=True``, and
``{user}/smoltrace-benchmark-v1`` / ``{user}/smoltrace-tasks`` are never deleted. Datasets are grouped into runs by
their ``ts``; a run's date is the one in its name (UTC), and names whose digits are not a valid date are reported as
skipped, never deleted. A run is *incomplete* when its results dataset is missing or one of its datasets has no
data file (a publish that stopped half way: all of a run's datasets are created before any data is pushed).

Exactly one filter: ``older_than``, ``keep_recent``, ``incomplete_only`` or ``all_runs``. ``dry_run`` (the
default) plans and deletes nothing. ``huggingface_hub`` is imported when called.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

from .http_errors import describe
from .naming import LEADERBOARD_NAME, PROTECTED_NAMES, Kind, ParsedName, parse_dataset_name

if TYPE_CHECKING:
    from huggingface_hub import HfApi

log = logging.getLogger(__name__)

Only = Literal["results", "traces", "metrics"]


@dataclass(frozen=True)
class RunGroup:
    """The datasets of one published run (same ``ts``)."""

    ts: str
    when: datetime | None
    datasets: tuple[str, ...]
    complete: bool


@dataclass(frozen=True)
class CleanupPlan:
    """What a cleanup would delete, keep and leave alone."""

    user: str
    runs: tuple[RunGroup, ...]
    to_delete: tuple[str, ...]
    kept: tuple[str, ...]
    #: The leaderboard and task datasets present, which cleanup does not delete.
    protected: tuple[str, ...]
    #: (repo id, reason): matching names cleanup does not act on.
    skipped: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CleanupReport:
    plan: CleanupPlan
    dry_run: bool
    deleted: tuple[str, ...] = ()
    #: (repo id, error) for deletions that failed.
    failed: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failed


def _has_data(info: Any) -> bool | None:
    siblings = getattr(info, "siblings", None)
    if siblings is None:
        return None
    return any(s.rfilename.startswith("data/") or s.rfilename.endswith(".parquet") for s in siblings)


def plan_cleanup(
    *,
    older_than: timedelta | None = None,
    keep_recent: int | None = None,
    incomplete_only: bool = False,
    all_runs: bool = False,
    only: Only | None = None,
    delete_leaderboard: bool = False,
    token: str | None = None,
    api: HfApi | None = None,
    now: datetime | None = None,
) -> CleanupPlan:
    """List the user's datasets and decide what a cleanup with these filters deletes (deletes nothing)."""
    chosen = [older_than is not None, keep_recent is not None, incomplete_only, all_runs]
    if sum(chosen) != 1:
        raise ValueError("choose exactly one filter: older_than, keep_recent, incomplete_only or all_runs")
    if keep_recent is not None and keep_recent < 0:
        raise ValueError("keep_recent must be >= 0")
    if only is not None and only not in ("results", "traces", "metrics"):
        raise ValueError(f"only must be results, traces or metrics, not {only!r}")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    user = str(api.whoami(token=token)["name"])
    infos = {info.id: info for info in api.list_datasets(author=user, full=True, token=token)}

    protected = [f"{user}/{name}" for name in PROTECTED_NAMES if f"{user}/{name}" in infos]
    leaderboard = f"{user}/{LEADERBOARD_NAME}"
    if leaderboard in infos and not delete_leaderboard:
        protected.append(leaderboard)

    parsed: list[ParsedName] = []
    skipped: list[tuple[str, str]] = []
    for repo_id in sorted(infos):
        name = parse_dataset_name(repo_id, user)
        if name is None:
            continue
        if name.when is None:
            skipped.append((repo_id, "the date in the name cannot be parsed"))
            continue
        parsed.append(name)

    groups: dict[str, list[ParsedName]] = {}
    for name in parsed:
        groups.setdefault(name.ts, []).append(name)
    runs = []
    for ts, names in groups.items():
        kinds: dict[Kind, str] = {n.kind: n.repo_id for n in names}
        has_data = [_has_data(infos[n.repo_id]) for n in names]
        if any(h is None for h in has_data):  # the listing did not include files: ask per dataset
            has_data = [
                any(f.startswith("data/") for f in api.list_repo_files(n.repo_id, repo_type="dataset", token=token))
                for n in names
            ]
        complete = "results" in kinds and all(has_data)
        runs.append(RunGroup(ts, names[0].when, tuple(sorted(kinds.values())), complete))
    runs.sort(key=lambda r: (r.when or datetime.min.replace(tzinfo=UTC), r.ts), reverse=True)

    now = now or datetime.now(tz=UTC)
    doomed: list[RunGroup]
    if older_than is not None:
        doomed = [r for r in runs if r.when is not None and r.when < now - older_than]
    elif keep_recent is not None:
        doomed = runs[keep_recent:]
    elif incomplete_only:
        doomed = [r for r in runs if not r.complete]
    else:
        doomed = list(runs)

    def selected(repo_id: str) -> bool:
        return only is None or f"/smoltrace-{only}-" in repo_id

    to_delete = [d for r in doomed for d in r.datasets if selected(d)]
    if delete_leaderboard and leaderboard in infos:
        to_delete.append(leaderboard)
    kept = [d for r in runs if r not in doomed for d in r.datasets] + [
        d for r in doomed for d in r.datasets if not selected(d)
    ]
    return CleanupPlan(
        user=user,
        runs=tuple(runs),
        to_delete=tuple(to_delete),
        kept=tuple(sorted(kept)),
        protected=tuple(protected),
        skipped=tuple(skipped),
    )


def execute_cleanup(plan: CleanupPlan, *, token: str | None = None, api: HfApi | None = None) -> CleanupReport:
    """Delete what ``plan`` says; a deletion that fails is reported and the others go on."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    deleted: list[str] = []
    failed: list[tuple[str, str]] = []
    for repo_id in plan.to_delete:
        if repo_id.split("/", 1)[1] in PROTECTED_NAMES:  # belt and braces: never, whatever the plan says
            continue
        try:
            api.delete_repo(repo_id, repo_type="dataset", token=token)
        except Exception as exc:
            log.error("could not delete %s: %s", repo_id, describe(exc))
            failed.append((repo_id, describe(exc)))
        else:
            log.info("deleted %s", repo_id)
            deleted.append(repo_id)
    return CleanupReport(plan=plan, dry_run=False, deleted=tuple(deleted), failed=tuple(failed))


class CleanupSelection(TypedDict, total=False):
    """:func:`plan_cleanup`'s keyword arguments: the filter (exactly one), what to spare or include, the Hub client."""

    older_than: timedelta | None
    keep_recent: int | None
    incomplete_only: bool
    all_runs: bool
    only: Only | None
    delete_leaderboard: bool
    token: str | None
    api: HfApi | None
    now: datetime | None


def cleanup_datasets(*, dry_run: bool = True, **selection: Unpack[CleanupSelection]) -> CleanupReport:
    """Plan a cleanup (:func:`plan_cleanup`'s filters) and, unless ``dry_run``, carry it out (no confirmation here:
    the CLI asks for one)."""
    plan = plan_cleanup(**selection)
    if dry_run:
        return CleanupReport(plan=plan, dry_run=True)
    return execute_cleanup(plan, token=selection.get("token"), api=selection.get("api"))


def parse_age(text: str) -> timedelta:
    """``7`` or ``7d`` days, ``2w`` weeks, ``1m`` months of 30 days, ``12h`` hours."""
    text = text.strip().lower()
    units = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1), "m": timedelta(days=30)}
    unit = units["d"]
    if text and text[-1] in units:
        unit, text = units[text[-1]], text[:-1]
    if not text.isdigit():
        raise ValueError(f"not an age: {text!r} (use N, Nh, Nd, Nw or Nm)")
    return int(text) * unit


def plan_lines(plan: CleanupPlan, datasets: Sequence[str]) -> list[str]:
    """Human-readable lines for a list of datasets of a plan (with their run's date)."""
    when = {d: r.when for r in plan.runs for d in r.datasets}
    lines = []
    for d in datasets:
        stamp = when.get(d)
        lines.append(f"{d}  ({stamp:%Y-%m-%d %H:%M:%S} UTC)" if stamp else d)
    return lines
