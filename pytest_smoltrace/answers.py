"""The ``expected_answer`` scorer: GAIA's quasi-exact match, held to GAIA's leaderboard ``scorer.py``.

GAIA's ``question_scorer(model_answer, ground_truth)`` decides by the ground truth:

- a ground truth that ``float()`` parses is a number: the answer, with every ``$``, ``%`` and ``,`` removed, must
  parse to the same float (no tolerance: ``1000000001`` is not ``1000000000``);
- else a ground truth containing ``,`` or ``;`` is a list: both are split on ``,`` and ``;`` (so ``1,234`` is the
  list ``1``, ``234``), the lengths must match, and each element is compared as above when the ground truth's
  element is a number, else as text with whitespace removed and case folded (punctuation kept);
- else both are compared as text with whitespace and ASCII punctuation removed and case folded.

:func:`quasi_exact_match` gives GAIA's verdict for every pair of strings, with exactly two extensions (checked
against a reference implementation of the published scorer on thousands of generated pairs,
``tests/test_answers_gaia.py``):

1. **Float noise**: where the ground truth (or a list element of it) is a number that is not an integer, an answer
   within a relative 1e-9 of it matches (``0.30000000000000004`` is ``0.3``). Integers compare exactly, as in GAIA.
2. **A missing answer never matches**: no answer (``None``; GAIA compares the text ``"None"``), and, where a
   number is expected, an answer that is no number at all (GAIA reads it as infinity, which "equals" a ground truth
   of ``inf`` or of a number too large for a float).

Answers that are not strings are read as an agent gives them: numbers through ``str()``; a list or a tuple element
by element against the ground truth's list (``[100, 200, 300]`` matches ``"100, 200, 300"``; elements are not split
again), and against a ground truth that is not a list only when it has exactly one element. Ground truths may be
numbers (a JSON ``77``). No input raises.
"""

from __future__ import annotations

import logging
import math
import re
import string
from collections.abc import Sequence

__all__ = [
    "FLOAT_NOISE",
    "normalize_number_str",
    "normalize_str",
    "quasi_exact_match",
    "split_string",
]

logger = logging.getLogger(__name__)

#: The relative tolerance of extension 1 (non-integer numbers only).
FLOAT_NOISE = 1e-9

_UNIT_CHARS = ("$", "%", ",")
_LIST_SEPARATORS = (",", ";")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_number_str(number_str: str) -> float:
    """GAIA: remove ``$``, ``%`` and ``,`` and parse as a float; ``inf`` when that is not a number."""
    for char in _UNIT_CHARS:
        number_str = number_str.replace(char, "")
    try:
        return float(number_str)
    except ValueError:
        logger.debug("answer %r is not a number", number_str)
        return float("inf")


def split_string(text: str, char_list: Sequence[str] = _LIST_SEPARATORS) -> list[str]:
    """GAIA: split on any of ``char_list``."""
    pattern = f"[{''.join(re.escape(c) for c in char_list)}]"
    return re.split(pattern, text)


def normalize_str(input_str: str, remove_punct: bool = True) -> str:
    """GAIA: remove all whitespace, lowercase, and (by default) remove ASCII punctuation."""
    no_spaces = re.sub(r"\s", "", input_str)
    if remove_punct:
        return no_spaces.lower().translate(_PUNCTUATION)
    return no_spaces.lower()


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _text(value: object) -> str | None:
    """How a value reads as an answer or a ground truth; ``None`` when it cannot be read at all."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:  # more digits than Python prints: far beyond a float, as GAIA's float() of it would be
            return "-inf" if value < 0 else "inf"
    try:
        return str(value)
    except Exception:  # an object whose str() raises is no answer
        logger.debug("value of type %s has no text", type(value).__name__, exc_info=True)
        return None


def _number_matches(answer: str, truth: float) -> bool:
    """GAIA's numeric comparison, with the two extensions (see the module docstring)."""
    stripped = answer
    for char in _UNIT_CHARS:
        stripped = stripped.replace(char, "")
    if not _is_float(stripped):
        return False  # extension 2: no number is a missing answer (GAIA: infinity)
    value = float(stripped)
    if value == truth:
        return True
    if math.isfinite(truth) and math.isfinite(value) and not truth.is_integer():
        return math.isclose(value, truth, rel_tol=FLOAT_NOISE, abs_tol=0.0)  # extension 1
    return False


def _element_matches(answer: str, truth: str) -> bool:
    if _is_float(truth):
        return _number_matches(answer, float(truth))
    return normalize_str(answer, remove_punct=False) == normalize_str(truth, remove_punct=False)


def _elements_match(answers: Sequence[str | None], truth: str) -> bool:
    truths = split_string(truth)
    if len(truths) != len(answers):
        return False
    return all(a is not None and _element_matches(a, t) for a, t in zip(answers, truths, strict=True))


def _is_list_truth(truth: str) -> bool:
    return not _is_float(truth) and any(char in truth for char in _LIST_SEPARATORS)


def quasi_exact_match(answer: object, expected: object) -> bool:
    """Is ``answer`` quasi-exactly the ground truth ``expected``? GAIA's verdict, with the two extensions and the
    reading of non-string answers described in the module docstring."""
    truth = _text(expected)
    if answer is None or truth is None:
        return False
    if isinstance(answer, (list, tuple)):
        elements = [None if item is None else _text(item) for item in answer]
        if _is_list_truth(truth):
            return _elements_match(elements, truth)
        if len(elements) != 1 or elements[0] is None:
            return False
        return _scalar_matches(elements[0], truth)
    text = _text(answer)
    return text is not None and _scalar_matches(text, truth)


def _scalar_matches(answer: str, truth: str) -> bool:
    if _is_float(truth):
        return _number_matches(answer, float(truth))
    if _is_list_truth(truth):
        return _elements_match(split_string(answer), truth)
    return normalize_str(answer) == normalize_str(truth)
