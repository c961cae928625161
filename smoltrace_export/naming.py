"""Hub dataset names of a run, and the exact patterns cleanup recognises.

A run publishes ``{user}/smoltrace-{results,traces,metrics}-{ts}`` and adds to ``{user}/smoltrace-leaderboard``.
``ts`` is ``YYYYmmdd_HHMMSS_<8 hex>``: the run's start time in UTC to the second, then the first 8 hex digits of
the SHA-1 of the run id, so two runs started in the same second get different names and republishing a run gives
the same names. SMOLTRACE's own names (``…-YYYYmmdd_HHMMSS`` without the suffix) also match, so cleanup handles
datasets SMOLTRACE made.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Kind = Literal["results", "traces", "metrics"]
KINDS: tuple[Kind, ...] = ("results", "traces", "metrics")

LEADERBOARD_NAME = "smoltrace-leaderboard"
#: SMOLTRACE's task datasets: never deleted by cleanup; copied by copy-datasets.
PROTECTED_NAMES = ("smoltrace-benchmark-v1", "smoltrace-tasks")
TS_FORMAT = "%Y%m%d_%H%M%S"

_TS_RX = r"\d{8}_\d{6}(?:_[0-9a-f]{8})?"


def run_timestamp(started_at: float, run_id: str) -> str:
    """``YYYYmmdd_HHMMSS_<8 hex>`` for a run started at ``started_at`` (Unix seconds) with id ``run_id``."""
    stamp = datetime.fromtimestamp(started_at, tz=UTC).strftime(TS_FORMAT)
    return f"{stamp}_{hashlib.sha1(run_id.encode()).hexdigest()[:8]}"


def dataset_name(user: str, kind: Kind, ts: str) -> str:
    return f"{user}/smoltrace-{kind}-{ts}"


def leaderboard_name(user: str) -> str:
    return f"{user}/{LEADERBOARD_NAME}"


def dataset_pattern(user: str) -> re.Pattern[str]:
    """The exact pattern of a run's dataset of ``user``: groups ``kind`` and ``ts``."""
    return re.compile(rf"^{re.escape(user)}/smoltrace-(?P<kind>results|traces|metrics)-(?P<ts>{_TS_RX})$")


@dataclass(frozen=True)
class ParsedName:
    repo_id: str
    kind: Kind
    ts: str
    #: The start time encoded in the name (UTC), or None when the digits are not a valid date.
    when: datetime | None


def parse_dataset_name(repo_id: str, user: str) -> ParsedName | None:
    """The parts of ``repo_id`` if it is exactly a run dataset name of ``user``; None otherwise."""
    m = dataset_pattern(user).fullmatch(repo_id)
    if m is None:
        return None
    ts = m["ts"]
    try:
        when: datetime | None = datetime.strptime(ts[:15], TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        when = None
    kind: Kind = m["kind"]  # type: ignore[assignment]
    return ParsedName(repo_id, kind, ts, when)
