"""Test material: GAIA's published answer scorer, the leaderboard's ``scorer.py``, as a reference.

Written here from the published logic of ``question_scorer(model_answer, ground_truth)`` in the GAIA leaderboard
Space (``gaia-benchmark/leaderboard``, ``scorer.py``), with its helpers ``normalize_number_str``, ``split_string``
and ``normalize_str``: same decisions in the same order, same normalisations. Its ``print`` and ``warnings.warn``
calls (progress messages only) are left out. It is the oracle of ``tests/test_answers_gaia.py``; nothing of the
plugin imports it.
"""

from __future__ import annotations

import re
import string


def normalize_number_str(number_str: str) -> float:
    # GAIA strips these units and separators so that the rest parses as a float; anything else is infinity
    for char in ["$", "%", ","]:
        number_str = number_str.replace(char, "")
    try:
        return float(number_str)
    except ValueError:
        return float("inf")


def split_string(s: str, char_list: list[str] | None = None) -> list[str]:
    chars = char_list if char_list is not None else [",", ";"]
    pattern = f"[{''.join(chars)}]"
    return re.split(pattern, s)


def normalize_str(input_str: str, remove_punct: bool = True) -> str:
    # every whitespace character goes (GAIA: "seagull" vs "sea gull"), then case, then optionally punctuation
    no_spaces = re.sub(r"\s", "", input_str)
    if remove_punct:
        translator = str.maketrans("", "", string.punctuation)
        return no_spaces.lower().translate(translator)
    return no_spaces.lower()


def _is_float(element: object) -> bool:
    try:
        float(element)  # type: ignore[arg-type]
        return True
    except ValueError:
        return False


def question_scorer(model_answer: str | None, ground_truth: str) -> bool:
    if model_answer is None:
        model_answer = "None"

    # a ground truth that is a number
    if _is_float(ground_truth):
        return normalize_number_str(model_answer) == float(ground_truth)

    # a ground truth that is a list
    if any(char in ground_truth for char in [",", ";"]):
        gt_elems = split_string(ground_truth)
        ma_elems = split_string(model_answer)
        if len(gt_elems) != len(ma_elems):
            return False
        comparisons = []
        for ma_elem, gt_elem in zip(ma_elems, gt_elems, strict=True):
            if _is_float(gt_elem):
                comparisons.append(normalize_number_str(ma_elem) == float(gt_elem))
            else:
                # punctuation is kept inside list elements
                comparisons.append(
                    normalize_str(ma_elem, remove_punct=False) == normalize_str(gt_elem, remove_punct=False)
                )
        return all(comparisons)

    # a ground truth that is a string
    return normalize_str(model_answer) == normalize_str(ground_truth)
