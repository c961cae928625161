"""Regular expressions with bounded cost: the only way the text and file tools match a pattern.

A model-written pattern must not hang the run, so every pattern is

* capped in length (:data:`MAX_PATTERN_LENGTH`) and in counted repetition (``{n,m}``, each bound at most
  :data:`MAX_REPEAT` and their product at most :data:`MAX_REPEAT_PRODUCT`: nested counts blow up compile time);
* compiled on a daemon thread that is abandoned after :data:`COMPILE_BUDGET_S` (a backstop; the caps above keep
  compiles fast);
* matched with the third-party ``regex`` module's ``timeout`` argument against one deadline per tool call, so
  catastrophic backtracking (``(a|aa)+$``) stops with :class:`~smoltrace_tools.errors.PatternRefused` instead
  of pinning a core. ``regex`` uses Python ``re`` syntax (its version-0 behaviour).
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import PatternRefused

__all__ = [
    "COMPILE_BUDGET_S",
    "DEFAULT_MATCH_BUDGET_S",
    "MAX_PATTERN_LENGTH",
    "MAX_REPEAT",
    "MAX_REPEAT_PRODUCT",
    "BoundedPattern",
]

MAX_PATTERN_LENGTH = 1000
MAX_REPEAT = 1000
MAX_REPEAT_PRODUCT = 1_000_000
COMPILE_BUDGET_S = 2.0
DEFAULT_MATCH_BUDGET_S = 5.0

_COUNTED = re.compile(r"(?<!\\)\{(\d*)(?:,(\d*))?\}")


def _check_shape(pattern: str, *, literal: bool) -> None:
    if "\x00" in pattern:
        raise PatternRefused("the pattern contains a NUL byte")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise PatternRefused(f"the pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_LENGTH}")
    if literal:
        return
    product = 1
    for match in _COUNTED.finditer(pattern):
        low, high = match.group(1), match.group(2)
        numbers = [int(n) for n in (low, high) if n]
        if not numbers:
            continue
        bound = max(numbers)
        if bound > MAX_REPEAT:
            raise PatternRefused(f"the repetition count {match.group(0)} is over {MAX_REPEAT}")
        product *= max(bound, 1)
        if product > MAX_REPEAT_PRODUCT:
            raise PatternRefused(
                f"the counted repetitions multiply to more than {MAX_REPEAT_PRODUCT}; use a simpler pattern"
            )


@functools.lru_cache(maxsize=256)
def _compile(pattern: str, flags: int) -> Any:
    import regex

    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["value"] = regex.compile(pattern, flags)
        except Exception as exc:  # regex.error and friends: reported below
            box["error"] = exc

    thread = threading.Thread(target=work, name="smoltrace-regex-compile", daemon=True)
    thread.start()
    thread.join(COMPILE_BUDGET_S)
    if thread.is_alive():
        raise PatternRefused(f"the pattern took longer than {COMPILE_BUDGET_S:g} s to compile; simplify it")
    if "error" in box:
        raise PatternRefused(f"invalid regular expression {pattern!r}: {box['error']}")
    return box["value"]


class BoundedPattern:
    """A compiled pattern plus a shared time budget for all matching done with it (one tool call)."""

    def __init__(
        self,
        pattern: str,
        *,
        ignore_case: bool = False,
        budget_s: float = DEFAULT_MATCH_BUDGET_S,
        literal: bool = False,
    ) -> None:
        if not isinstance(pattern, str):
            raise PatternRefused(f"the pattern must be a string, got {type(pattern).__name__}")
        if pattern == "":
            raise PatternRefused("the pattern is empty")
        import regex

        _check_shape(pattern, literal=literal)
        source = regex.escape(pattern) if literal else pattern
        flags = regex.IGNORECASE if ignore_case else 0
        self.pattern = pattern
        self.budget_s = budget_s
        self._compiled = _compile(source, flags)
        self._deadline = time.monotonic() + budget_s

    def _remaining(self) -> float:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._timeout()
        return remaining

    def _timeout(self) -> PatternRefused:
        return PatternRefused(
            f"matching {self.pattern[:80]!r} took longer than {self.budget_s:g} s (catastrophic backtracking?); "
            "use a simpler pattern, e.g. without nested quantifiers"
        )

    def _run(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, timeout=self._remaining(), **kwargs)
        except TimeoutError:
            raise self._timeout() from None

    @property
    def groups(self) -> int:
        """Number of capturing groups."""
        return int(self._compiled.groups)

    def search(self, text: str) -> Any:
        """``regex`` match object or None."""
        return self._run(self._compiled.search, text)

    def subn(self, replacement: str | Callable[[Any], str], text: str, count: int = 0) -> tuple[str, int]:
        """``(new text, number of substitutions)``."""
        try:
            result: tuple[str, int] = self._run(self._compiled.subn, replacement, text, count=count)
        except PatternRefused:
            raise
        except Exception as exc:  # a bad group reference in the replacement (regex.error / IndexError)
            raise PatternRefused(f"invalid replacement {replacement!r}: {exc}") from None
        return result
