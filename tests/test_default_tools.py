"""The three default tools: ordinary input, lenient matching, bounds and honest errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from smolagents import Tool

from smoltrace_tools import DEFAULT_TOOL_NAMES, UnknownToolError, available_tools, get_tools
from smoltrace_tools.default import CalculatorTool, TimeTool, WeatherTool, evaluate_expression, format_number

# ----------------------------------------------------------------------------------------------------- registry


def test_get_tools_defaults_are_fresh_instances() -> None:
    first = get_tools()
    second = get_tools(None, working_dir=".")
    assert [t.name for t in first] == list(DEFAULT_TOOL_NAMES)
    assert all(isinstance(t, Tool) for t in first)
    assert all(a is not b for a, b in zip(first, second, strict=True))


def test_get_tools_keeps_requested_order() -> None:
    assert [t.name for t in get_tools(["calculator", "get_weather"])] == ["calculator", "get_weather"]
    assert get_tools([]) == []


def test_unknown_tool_lists_available_names() -> None:
    with pytest.raises(UnknownToolError, match=r"'nope'.*calculator.*get_current_time.*get_weather"):
        get_tools(["calculator", "nope"])
    assert issubclass(UnknownToolError, ValueError)


def test_duplicate_tool_name_is_refused() -> None:
    with pytest.raises(UnknownToolError, match=r"more than once.*'calculator'"):
        get_tools(["calculator", "get_weather", "calculator"])


def test_available_tools_contains_defaults() -> None:
    assert set(DEFAULT_TOOL_NAMES) <= set(available_tools())
    assert available_tools() == sorted(available_tools())


# ------------------------------------------------------------------------------------------------------ weather


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("Paris, France", "Weather in Paris, France: 20°C, Partly Cloudy"),
        ("London, UK", "Weather in London, UK: 15°C, Rainy"),
        ("New York, USA", "Weather in New York, USA: 25°C, Sunny"),
        ("Tokyo, Japan", "Weather in Tokyo, Japan: 18°C, Clear"),
        ("Sydney, Australia", "Weather in Sydney, Australia: 22°C, Windy"),
        ("Berlin", "Weather in Berlin, Germany: 17°C, Overcast"),
    ],
)
def test_weather_smoltrace_table(location: str, expected: str) -> None:
    assert WeatherTool()(location) == expected


@pytest.mark.parametrize(
    "location",
    ["paris", "Paris, FR", "PARIS France", "  paris ,   france ", "Paris.", "paris, fr, france"],
)
def test_weather_matches_leniently(location: str) -> None:
    assert WeatherTool()(location) == "Weather in Paris, France: 20°C, Partly Cloudy"


@pytest.mark.parametrize("location", ["new york", "NYC", "New York, NY", "New York City, United States"])
def test_weather_city_aliases(location: str) -> None:
    assert WeatherTool()(location).startswith("Weather in New York, USA:")


def test_weather_accents_are_optional() -> None:
    assert WeatherTool()("sao paulo") == WeatherTool()("São Paulo, Brazil")


@pytest.mark.parametrize("location", ["Atlantis", "Paris, Texas", "London, Ontario", "", "Parisian cafe"])
def test_weather_unknown_location_is_an_error_not_invented_weather(location: str) -> None:
    with pytest.raises(ValueError, match=r"No weather data for .*Known locations: Paris, France; London, UK"):
        WeatherTool()(location)


def test_weather_via_agent_style_keyword_call() -> None:
    assert "Tokyo" in WeatherTool()(location="tokyo", sanitize_inputs_outputs=True)


# --------------------------------------------------------------------------------------------------- calculator


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("234 * 67", "Result: 15678"),
        ("10/2", "Result: 5"),
        ("7/2", "Result: 3.5"),
        ("0.1 + 0.2", "Result: 0.3"),
        ("2**10", "Result: 1024"),
        ("2**-1", "Result: 0.5"),
        ("10 // 3", "Result: 3"),
        ("-7 % 3", "Result: 2"),
        ("-(3 + 4) * +2", "Result: -14"),
        ("sqrt(16) + abs(-2)", "Result: 6"),
        ("round(3.14159, 2)", "Result: 3.14"),
        ("min(4, 2, 8) + max(1, 9)", "Result: 11"),
        ("floor(2.7) + ceil(2.1)", "Result: 5"),
        ("round(pi, 4)", "Result: 3.1416"),
        ("round(e, 3)", "Result: 2.718"),
        ("10**100", "Result: 1" + "0" * 100),
        ("1e20", "Result: 1e+20"),
    ],
)
def test_calculator_arithmetic(expression: str, expected: str) -> None:
    assert CalculatorTool()(expression) == expected


def test_format_number() -> None:
    assert format_number(5.0) == "5"
    assert format_number(-0.0) == "0"
    assert format_number(1 / 3) == "0.333333333333333"
    assert format_number(12) == "12"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**9**9", "exponent .* out of range"),
        ("2**101", "exponent .* out of range"),
        ("10**99 * 100", "magnitude exceeds"),
        ("1e308 * 10", "magnitude exceeds"),
        ("99**99", "magnitude exceeds"),
        ("1" * 257, "too long"),
        ("1/0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("0**-1", "division by zero"),
        ("(-8)**0.5", "not a real number"),
        ("sqrt(-1)", "domain"),
        ("2^3", "use \\*\\*"),
        ("2 +", "invalid syntax"),
        ("", "empty"),
        ("x + 1", "unknown name 'x'"),
        ("True + 1", "only numbers"),
        ("'a' * 3", "only numbers"),
        ("round(5, -10**50)", "round"),
        ("min()", "argument"),
        ("max(key=1)", "keyword"),
    ],
)
def test_calculator_refuses_bad_input(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CalculatorTool()(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "__import__('os').system('echo pwned')",
        "().__class__.__bases__[0].__subclasses__()",
        "open('/etc/passwd')",
        "eval('1+1')",
        "(lambda: 1)()",
        "[1, 2][0]",
        "math.sqrt(4)",
        "sqrt.__call__(4)",
        "x := 3",
        "1 if 1 else 2",
        "1 < 2",
    ],
)
def test_calculator_never_evaluates_code(expression: str) -> None:
    with pytest.raises(ValueError, match="Cannot evaluate"):
        CalculatorTool()(expression)


def test_huge_power_is_refused_fast() -> None:
    start = time.perf_counter()
    for expression in ("9**9**9", "(10**100)**100", "99**99**99", "round(5, -10**99)"):
        with pytest.raises(ValueError):
            evaluate_expression(expression)
    assert time.perf_counter() - start < 0.5


# --------------------------------------------------------------------------------------------------------- time


def _fixed_clock() -> datetime:
    return datetime(2026, 11, 26, 5, 12, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (None, "Current time in UTC: 2026-11-26 05:12:03 UTC (UTC+00:00)"),
        ("UTC", "Current time in UTC: 2026-11-26 05:12:03 UTC (UTC+00:00)"),
        ("Europe/Paris", "Current time in Europe/Paris: 2026-11-26 06:12:03 CET (UTC+01:00)"),
        ("europe/paris", "Current time in Europe/Paris: 2026-11-26 06:12:03 CET (UTC+01:00)"),
        ("America/New_York", "Current time in America/New_York: 2026-11-26 00:12:03 EST (UTC-05:00)"),
        ("Asia/Kolkata", "Current time in Asia/Kolkata: 2026-11-26 10:42:03 IST (UTC+05:30)"),
        ("Australia/Sydney", "Current time in Australia/Sydney: 2026-11-26 16:12:03 AEDT (UTC+11:00)"),
    ],
)
def test_time_applies_the_zone(zone: str | None, expected: str) -> None:
    assert TimeTool(clock=_fixed_clock)(zone) == expected


def test_time_daylight_saving_is_applied() -> None:
    summer = TimeTool(clock=lambda: datetime(2026, 7, 1, 12, 0, 0, tzinfo=UTC))
    assert summer("Europe/Paris") == "Current time in Europe/Paris: 2026-07-01 14:00:00 CEST (UTC+02:00)"


def test_time_default_argument_and_keyword_call() -> None:
    tool = TimeTool(clock=_fixed_clock)
    assert tool() == "Current time in UTC: 2026-11-26 05:12:03 UTC (UTC+00:00)"
    assert tool(timezone="Asia/Tokyo", sanitize_inputs_outputs=True).endswith("14:12:03 JST (UTC+09:00)")


def test_time_naive_clock_is_taken_as_utc() -> None:
    tool = TimeTool(clock=lambda: datetime(2026, 11, 26, 5, 12, 3))
    assert tool("Europe/Paris").endswith("06:12:03 CET (UTC+01:00)")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Paris", "../../etc/passwd", "CEST+99"])
def test_time_unknown_zone_is_an_error(zone: str) -> None:
    with pytest.raises(ValueError, match=r"Unknown time zone .*Europe/Paris"):
        TimeTool(clock=_fixed_clock)(zone)


def test_time_real_clock() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    text = TimeTool()("UTC")
    stamp = datetime.strptime(text.split(": ", 1)[1][:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert abs((stamp - before).total_seconds()) < 5


def test_tools_describe_their_argument_format() -> None:
    weather, calculator, clock = get_tools()
    assert "Paris, France" in weather.description
    assert "**" in calculator.description and "sqrt" in calculator.description
    assert "IANA" in clock.description and clock.inputs["timezone"]["nullable"] is True
