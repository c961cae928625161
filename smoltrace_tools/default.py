"""The three deterministic default tools: ``get_weather``, ``calculator`` and ``get_current_time``.

Names and argument names are SMOLTRACE's, so its datasets keep working. Unlike SMOLTRACE's versions these
tools never invent an answer: an unknown city, a malformed expression or an unknown time zone raises
``ValueError`` with a message that tells the model what it may use instead.
"""

from __future__ import annotations

import ast
import functools
import logging
import math
import operator
import re
import unicodedata
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from smolagents import Tool

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------
# get_weather
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _City:
    label: str  # canonical "City, Country"
    weather: str
    names: tuple[str, ...]  # accepted spellings of the city itself
    regions: tuple[str, ...]  # accepted country / state names and abbreviations after the city


_CITIES: tuple[_City, ...] = (
    # SMOLTRACE's five entries first (same labels and values).
    _City("Paris, France", "20°C, Partly Cloudy", ("paris",), ("france", "fr", "fra")),
    _City(
        "London, UK",
        "15°C, Rainy",
        ("london",),
        ("uk", "u.k.", "united kingdom", "england", "gb", "great britain", "britain"),
    ),
    _City(
        "New York, USA",
        "25°C, Sunny",
        ("new york", "new york city", "nyc"),
        ("usa", "us", "u.s.", "u.s.a.", "united states", "united states of america", "america", "ny", "new york"),
    ),
    _City("Tokyo, Japan", "18°C, Clear", ("tokyo",), ("japan", "jp", "jpn")),
    _City("Sydney, Australia", "22°C, Windy", ("sydney",), ("australia", "au", "aus", "nsw", "new south wales")),
    # Our additions.
    _City("Berlin, Germany", "17°C, Overcast", ("berlin",), ("germany", "de", "deu", "deutschland")),
    _City("Madrid, Spain", "28°C, Sunny", ("madrid",), ("spain", "es", "esp", "espana")),
    _City("Rome, Italy", "24°C, Sunny", ("rome", "roma"), ("italy", "it", "ita", "italia")),
    _City("Cairo, Egypt", "32°C, Clear", ("cairo",), ("egypt", "eg", "egy")),
    _City("Mumbai, India", "30°C, Humid", ("mumbai", "bombay"), ("india", "in", "ind", "maharashtra")),
    _City("Toronto, Canada", "12°C, Cloudy", ("toronto",), ("canada", "ca", "can", "on", "ontario")),
    _City("São Paulo, Brazil", "23°C, Light Rain", ("sao paulo",), ("brazil", "brasil", "br", "bra", "sp")),
    _City("Moscow, Russia", "5°C, Snow", ("moscow", "moskva"), ("russia", "ru", "rus", "russian federation")),
    _City("Reykjavik, Iceland", "3°C, Windy", ("reykjavik",), ("iceland", "is", "isl")),
)

KNOWN_LOCATIONS: tuple[str, ...] = tuple(c.label for c in _CITIES)


def _fold(text: str) -> str:
    """Lowercase, strip accents, turn separators into single spaces (commas kept as their own token)."""
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    ascii_text = ascii_text.replace(",", " , ")
    ascii_text = re.sub(r"[^\w.,'\s-]", " ", ascii_text)
    return " ".join(ascii_text.split())


def _strip_prefix(words: list[str], phrase: str) -> list[str] | None:
    """``words`` without the leading ``phrase`` (a space-separated sequence), or None if it does not start so."""
    parts = phrase.split()
    if words[: len(parts)] == parts:
        return words[len(parts) :]
    return None


def _only_regions(words: list[str], regions: tuple[str, ...]) -> bool:
    """True when ``words`` is a sequence of commas and region aliases (longest alias tried first)."""
    ordered = sorted(regions, key=lambda r: -len(r.split()))
    while words:
        if words[0] == ",":
            words = words[1:]
            continue
        for region in ordered:
            rest = _strip_prefix(words, region)
            if rest is not None:
                words = rest
                break
        else:
            return False
    return True


def find_city(location: str) -> str | None:
    """The canonical label of ``location`` ("paris", "PARIS France", "Paris, FR" → "Paris, France"), or None."""
    words = _fold(location).strip(" .").split()
    for city in _CITIES:
        for name in sorted(city.names, key=lambda n: -len(n.split())):
            rest = _strip_prefix(words, name)
            if rest is not None and _only_regions(rest, city.regions):
                return city.label
    return None


class WeatherTool(Tool):
    """Deterministic weather lookup over a fixed table of cities (SMOLTRACE's ``get_weather``)."""

    name = "get_weather"
    description = (
        "Gets the current weather for a city. Pass the city name, optionally followed by its country, "
        "e.g. 'Paris, France', 'Tokyo' or 'New York, USA'. Returns a line such as "
        "'Weather in Paris, France: 20°C, Partly Cloudy'. Raises an error listing the known cities when the "
        "location is not known."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "location": {
            "type": "string",
            "description": "City name, optionally with country, e.g. 'Paris, France' or 'London'.",
        }
    }
    output_type = "string"

    def forward(self, location: str) -> str:
        label = find_city(str(location))
        if label is None:
            raise ValueError(f"No weather data for {location!r}. Known locations: {'; '.join(KNOWN_LOCATIONS)}")
        weather = next(c.weather for c in _CITIES if c.label == label)
        return f"Weather in {label}: {weather}"


# --------------------------------------------------------------------------------------------------------------
# calculator
# --------------------------------------------------------------------------------------------------------------

MAX_EXPRESSION_LENGTH = 256
MAX_EXPONENT = 100
MAX_MAGNITUDE = 1e100

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}

_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _round(x: Number, ndigits: Number | None = None) -> Number:
    if ndigits is None:
        return round(x)
    if not isinstance(ndigits, int):
        raise CalculatorError("round(x, n): n must be an integer")
    if abs(ndigits) > MAX_EXPONENT:
        raise CalculatorError(f"round(x, n): |n| must be <= {MAX_EXPONENT}")
    return round(x, ndigits)


_FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int | None]] = {
    # name: (function, min args, max args or None for unbounded)
    "sqrt": (math.sqrt, 1, 1),
    "abs": (abs, 1, 1),
    "round": (_round, 1, 2),
    "min": (min, 1, None),
    "max": (max, 1, None),
    "floor": (math.floor, 1, 1),
    "ceil": (math.ceil, 1, 1),
}


class CalculatorError(ValueError):
    """An expression the calculator refuses or cannot evaluate."""


def _check_magnitude(value: Number) -> Number:
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise CalculatorError(f"result magnitude exceeds {MAX_MAGNITUDE:g}")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {exponent} is out of range (|exponent| <= {MAX_EXPONENT})")
    if base != 0 and abs(base) != 1 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise CalculatorError(f"result magnitude exceeds {MAX_MAGNITUDE:g}")
    if base == 0 and exponent < 0:
        raise CalculatorError("division by zero (0 raised to a negative power)")
    if base < 0 and isinstance(exponent, float) and not exponent.is_integer():
        raise CalculatorError("a negative number raised to a fractional power is not a real number")
    result: Number = base**exponent
    return result


class _Evaluator:
    """Walks a parsed expression, allowing only whitelisted nodes."""

    def evaluate(self, node: ast.AST) -> Number:
        if isinstance(node, ast.Expression):
            return self.evaluate(node.body)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise CalculatorError(f"unsupported syntax: {type(node).__name__}")

    def _constant(self, node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CalculatorError(f"unsupported literal {value!r}: only numbers are allowed")
        return _check_magnitude(value)

    def _name(self, node: ast.Name) -> Number:
        if node.id not in _CONSTANTS:
            raise CalculatorError(f"unknown name {node.id!r}; constants: {', '.join(_CONSTANTS)}")
        return _CONSTANTS[node.id]

    def _unary(self, node: ast.UnaryOp) -> Number:
        operand = self.evaluate(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.USub):
            return -operand
        raise CalculatorError(f"unsupported operator: {type(node.op).__name__}")

    def _binary(self, node: ast.BinOp) -> Number:
        if isinstance(node.op, ast.BitXor):
            raise CalculatorError("'^' is not a power operator here; use ** (e.g. 2**10)")
        left = self.evaluate(node.left)
        right = self.evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            return _check_magnitude(_power(left, right))
        func = _BINARY.get(type(node.op))
        if func is None:
            raise CalculatorError(f"unsupported operator: {type(node.op).__name__}")
        return _check_magnitude(func(left, right))

    def _call(self, node: ast.Call) -> Number:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            raise CalculatorError(f"unsupported function; allowed: {', '.join(_FUNCTIONS)}")
        if node.keywords:
            raise CalculatorError("keyword arguments are not supported")
        name = node.func.id
        func, low, high = _FUNCTIONS[name]
        if len(node.args) < low or (high is not None and len(node.args) > high):
            raise CalculatorError(
                f"{name}() takes {low}{'' if high == low else '+' if high is None else f'-{high}'} argument(s)"
            )
        args = [self.evaluate(arg) for arg in node.args]
        return _check_magnitude(func(*args))


def evaluate_expression(expression: str) -> Number:
    """Evaluate an arithmetic expression with ``ast`` (never ``eval``). Raises :class:`CalculatorError`."""
    text = expression.strip()
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise CalculatorError(f"expression too long ({len(text)} > {MAX_EXPRESSION_LENGTH} characters)")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"invalid syntax: {exc.msg}") from None
    try:
        return _Evaluator().evaluate(tree)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except (OverflowError, RecursionError):
        raise CalculatorError(f"result magnitude exceeds {MAX_MAGNITUDE:g}") from None
    except CalculatorError:
        raise
    except (ValueError, TypeError) as exc:
        raise CalculatorError(str(exc)) from None


def format_number(value: Number) -> str:
    """Integral values without ``.0`` (``5``), others with up to 15 significant digits (``0.3`` for 0.1+0.2)."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


class CalculatorTool(Tool):
    """Safe arithmetic (SMOLTRACE's ``calculator``), evaluated over a whitelisted ``ast`` only."""

    name = "calculator"
    description = (
        "Evaluates an arithmetic expression and returns 'Result: <value>'. Supports numbers, + - * / // % ** "
        "(use ** for powers, not ^), parentheses, the functions sqrt, abs, round, min, max, floor, ceil and the "
        "constants pi and e. Example: '(234 * 67) + sqrt(16)'. No variables, units or text."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "expression": {
            "type": "string",
            "description": "The arithmetic expression, e.g. '234 * 67' or '2**10 / 4'.",
        }
    }
    output_type = "string"

    def forward(self, expression: str) -> str:
        try:
            value = evaluate_expression(str(expression))
        except CalculatorError as exc:
            raise ValueError(f"Cannot evaluate {excerpt_expression(str(expression))}: {exc}") from None
        return f"Result: {format_number(value)}"


def excerpt_expression(expression: str, limit: int = 60) -> str:
    """The expression quoted, shortened for error messages."""
    text = expression if len(expression) <= limit else expression[:limit] + "…"
    return repr(text)


# --------------------------------------------------------------------------------------------------------------
# get_current_time
# --------------------------------------------------------------------------------------------------------------

Clock = Callable[[], datetime]

_UTC = UTC

_UTC_NAMES = frozenset({"utc", "z", "zulu", "gmt", "etc/utc", "etc/gmt", "universal", "etc/universal"})


def utc_now() -> datetime:
    """The real clock: an aware UTC datetime."""
    return datetime.now(_UTC)


@functools.cache
def _zones_by_lower_name() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def resolve_zone(name: str | None) -> tuple[str, tzinfo]:
    """``(canonical name, tzinfo)`` for an IANA name or "UTC" (case-insensitive); ValueError otherwise."""
    key = (name or "UTC").strip() or "UTC"
    if key.lower() in _UTC_NAMES:
        return "UTC", _UTC
    canonical = _zones_by_lower_name().get(key.lower().replace(" ", "_"))
    if canonical is not None:
        try:
            return canonical, zoneinfo.ZoneInfo(canonical)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            logger.debug("zone %s listed but not loadable", canonical)
    raise ValueError(
        f"Unknown time zone {key!r}. Use an IANA time zone name such as 'Europe/Paris', 'America/New_York' "
        "or 'Asia/Tokyo', or 'UTC'."
    )


def _format_offset(offset: timedelta | None) -> str:
    total = int((offset or timedelta()).total_seconds())
    sign = "+" if total >= 0 else "-"
    hours, minutes = divmod(abs(total) // 60, 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


class TimeTool(Tool):
    """Current time in a time zone (SMOLTRACE's ``get_current_time``), with the zone really applied."""

    name = "get_current_time"
    description = (
        "Gets the current date and time in a time zone. Pass an IANA time zone name such as 'Europe/Paris', "
        "'America/New_York' or 'Asia/Tokyo' (not a city alone), or 'UTC' (the default). Returns e.g. "
        "'Current time in Europe/Paris: 2026-11-26 06:12:03 CET (UTC+01:00)'."
    )
    inputs = {  # noqa: RUF012 - smolagents reads this class attribute
        "timezone": {
            "type": "string",
            "description": "IANA time zone name, e.g. 'Europe/Paris' or 'UTC'. Defaults to 'UTC'.",
            "nullable": True,
        }
    }
    output_type = "string"

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self.clock: Clock = clock if clock is not None else utc_now

    def forward(self, timezone: str | None = "UTC") -> str:
        zone_name, zone = resolve_zone(timezone)
        now = self.clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=_UTC)
        local = now.astimezone(zone)
        offset = _format_offset(local.utcoffset())
        return f"Current time in {zone_name}: {local:%Y-%m-%d %H:%M:%S} {local.tzname()} ({offset})"
