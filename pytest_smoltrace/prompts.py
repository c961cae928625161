"""Custom prompts (``--smoltrace-prompt-yml FILE.yaml``): what a user may change in smolagents' prompts.

A prompt file is YAML (read with ``yaml.safe_load``) in one of these forms:

* **Plain text** — the whole file is a string, or a mapping with a ``system_prompt`` string that uses no Jinja
  syntax (no ``{{`` / ``{%``). The text is *prepended* to smolagents' own system prompt for the agent type, so the
  tool-calling / code protocol the agents rely on is kept. It is inserted verbatim (Jinja ``raw``).
* **Template sections** — smolagents' own keys, merged key by key over the packaged ``toolcalling_agent.yaml``
  (tool agents) or ``code_agent.yaml`` (code agents): ``system_prompt`` (a string with Jinja syntax replaces the
  default template), ``planning`` (``initial_plan``, ``update_plan_pre_messages``, ``update_plan_post_messages``),
  ``managed_agent`` (``task``, ``report``), ``final_answer`` (``pre_messages``, ``post_messages``). The same keys
  may be nested under ``prompt_templates:``; there a ``system_prompt`` always replaces the default template.
* Run settings next to them: ``max_steps`` (int ≥ 1), ``planning_interval`` (int ≥ 1 or null),
  ``additional_authorized_imports`` (list of module names, checked with :func:`check_additional_imports`).

Every error is a :class:`PromptConfigError` naming the file and the key.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "TEMPLATE_SECTIONS",
    "AdditionalImportsError",
    "PromptConfig",
    "PromptConfigError",
    "check_additional_imports",
    "load_prompt_config",
]

#: smolagents' prompt template sections and the keys each one must have.
TEMPLATE_SECTIONS: dict[str, tuple[str, ...]] = {
    "planning": ("initial_plan", "update_plan_pre_messages", "update_plan_post_messages"),
    "managed_agent": ("task", "report"),
    "final_answer": ("pre_messages", "post_messages"),
}
_SETTINGS = ("max_steps", "planning_interval", "additional_authorized_imports")
_TOP_LEVEL = frozenset({"system_prompt", "prompt_templates", *TEMPLATE_SECTIONS, *_SETTINGS})
_PACKAGED = {"tool": "toolcalling_agent.yaml", "code": "code_agent.yaml"}
_MODULE = re.compile(r"^(\*|[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(\.\*)?)$")


class PromptConfigError(ValueError):
    """A prompt file that cannot be used; the message names the file and the key."""


class AdditionalImportsError(ValueError):
    """Additional authorized imports that are malformed or not installed."""


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _check_jinja(path: Path, key: str, text: str) -> None:
    import jinja2

    try:
        jinja2.Environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptConfigError(f"{path}: key {key!r}: invalid Jinja template (line {exc.lineno}): {exc}") from None


@dataclass(frozen=True)
class PromptConfig:
    """A loaded prompt file. :meth:`templates_for` gives the complete ``prompt_templates`` for an agent type."""

    path: Path
    system_prefix: str | None = None
    system_prompt: str | None = None
    sections: dict[str, dict[str, str]] = field(default_factory=dict)
    max_steps: int | None = None
    planning_interval: int | None = None
    additional_authorized_imports: tuple[str, ...] = ()

    def templates_for(self, agent_type: str) -> dict[str, Any]:
        """smolagents' packaged templates for ``agent_type`` (``"tool"`` or ``"code"``) with this file merged in."""
        if agent_type not in _PACKAGED:
            raise ValueError(f"agent_type must be 'tool' or 'code', got {agent_type!r}")
        import importlib.resources

        text = importlib.resources.files("smolagents.prompts").joinpath(_PACKAGED[agent_type]).read_text("utf-8")
        templates: dict[str, Any] = copy.deepcopy(yaml.safe_load(text))
        if self.system_prompt is not None:
            templates["system_prompt"] = self.system_prompt
        for section, values in self.sections.items():
            templates[section] = {**templates.get(section, {}), **values}
        if self.system_prefix:
            templates["system_prompt"] = (
                "{% raw %}" + self.system_prefix.rstrip() + "{% endraw %}\n\n" + templates["system_prompt"]
            )
        return templates


def _string(path: Path, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PromptConfigError(f"{path}: key {key!r}: must be a string, got {type(value).__name__}")
    return value


def _section(path: Path, name: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise PromptConfigError(f"{path}: key {name!r}: must be a mapping of {', '.join(TEMPLATE_SECTIONS[name])}")
    allowed = TEMPLATE_SECTIONS[name]
    out: dict[str, str] = {}
    for key, text in value.items():
        full = f"{name}.{key}"
        if key not in allowed:
            raise PromptConfigError(f"{path}: unknown key {full!r}; {name} has {', '.join(allowed)}")
        out[str(key)] = _string(path, full, text)
        _check_jinja(path, full, out[str(key)])
    return out


def _positive_int(path: Path, key: str, value: Any, *, nullable: bool) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PromptConfigError(f"{path}: key {key!r}: must be an integer >= 1{' or null' if nullable else ''}")
    return value


def _prefix_text(path: Path, key: str, text: str) -> str:
    if "{% endraw %}" in text or "{%endraw%}" in text:
        raise PromptConfigError(f"{path}: key {key!r}: the text may not contain '{{% endraw %}}'")
    return text


def load_prompt_config(path: Path | str) -> PromptConfig:
    """Read and validate a prompt file (see the module docstring); :class:`PromptConfigError` on any problem."""
    file = Path(path)
    try:
        raw = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptConfigError(f"{file}: cannot read the prompt file: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PromptConfigError(f"{file}: invalid YAML: {exc}") from None
    if data is None:
        raise PromptConfigError(f"{file}: the prompt file is empty")
    if isinstance(data, str):
        if not data.strip():
            raise PromptConfigError(f"{file}: the prompt file is empty")
        return PromptConfig(path=file, system_prefix=_prefix_text(file, "(text)", data))
    if not isinstance(data, Mapping) or not data:
        raise PromptConfigError(
            f"{file}: expected a system prompt text or a mapping with keys such as {', '.join(sorted(_TOP_LEVEL))}"
        )
    unknown = sorted(str(k) for k in data if k not in _TOP_LEVEL)
    if unknown:
        raise PromptConfigError(
            f"{file}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(_TOP_LEVEL))}"
        )
    prefix: str | None = None
    system_prompt: str | None = None
    sections: dict[str, dict[str, str]] = {}
    if "system_prompt" in data:
        text = _string(file, "system_prompt", data["system_prompt"])
        if _is_template(text):
            _check_jinja(file, "system_prompt", text)
            system_prompt = text
        elif text.strip():
            prefix = _prefix_text(file, "system_prompt", text)
    nested = data.get("prompt_templates")
    if nested is not None:
        if not isinstance(nested, Mapping):
            raise PromptConfigError(f"{file}: key 'prompt_templates': must be a mapping")
        for key, value in nested.items():
            full = f"prompt_templates.{key}"
            if key == "system_prompt":
                if system_prompt is not None:
                    raise PromptConfigError(f"{file}: key {full!r}: a system_prompt template is given twice")
                system_prompt = _string(file, full, value)
                _check_jinja(file, full, system_prompt)
            elif key in TEMPLATE_SECTIONS:
                sections[str(key)] = _section(file, str(key), value)
            else:
                raise PromptConfigError(
                    f"{file}: unknown key {full!r}; allowed: system_prompt, {', '.join(TEMPLATE_SECTIONS)}"
                )
    for name in TEMPLATE_SECTIONS:
        if name in data:
            sections[name] = {**sections.get(name, {}), **_section(file, name, data[name])}
    imports_value = data.get("additional_authorized_imports") or []
    if not isinstance(imports_value, list) or not all(isinstance(m, str) for m in imports_value):
        raise PromptConfigError(f"{file}: key 'additional_authorized_imports': must be a list of module names")
    try:
        imports = tuple(check_additional_imports(imports_value))
    except AdditionalImportsError as exc:
        raise PromptConfigError(f"{file}: key 'additional_authorized_imports': {exc}") from None
    return PromptConfig(
        path=file,
        system_prefix=prefix,
        system_prompt=system_prompt,
        sections=sections,
        max_steps=_positive_int(file, "max_steps", data["max_steps"], nullable=False) if "max_steps" in data else None,
        planning_interval=_positive_int(file, "planning_interval", data.get("planning_interval"), nullable=True),
        additional_authorized_imports=imports,
    )


def check_additional_imports(modules: Sequence[str]) -> list[str]:
    """The module names, deduplicated in order, after checking that each is well formed and installed.

    ``"*"`` (any import) and ``"pkg.*"`` are accepted as smolagents accepts them; only the top-level package is
    looked up (``importlib.util.find_spec``, nothing is imported). Raises :class:`AdditionalImportsError` naming
    every bad entry — smolagents would otherwise raise ``InterpreterError`` when the CodeAgent is built.
    """
    cleaned: list[str] = []
    malformed: list[str] = []
    missing: list[str] = []
    for module in modules:
        name = module.strip() if isinstance(module, str) else ""
        if not name or not _MODULE.match(name):
            malformed.append(repr(module))
            continue
        if name not in cleaned:
            cleaned.append(name)
        if name == "*":
            continue
        top = name.split(".", 1)[0]
        try:
            found = importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            found = False
        if not found and top not in missing:
            missing.append(top)
    problems: list[str] = []
    if malformed:
        problems.append(f"malformed module name(s) {', '.join(malformed)}")
    if missing:
        problems.append(
            f"module(s) not installed: {', '.join(missing)} (install them, or remove them from the additional "
            "authorized imports)"
        )
    if problems:
        raise AdditionalImportsError("; ".join(problems))
    return cleaned
