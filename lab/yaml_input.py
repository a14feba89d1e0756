"""Reading YAML that people write: duplicate keys refused, errors placed by line and
said in plain words. Shared by the scenario and case file loaders
(:mod:`lab.scenario`, :mod:`lab.cases.load`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

from lab.errors import BadInput


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a file people write must not hide one."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None or hasattr(annotation, "__metadata__"):
        for arg in get_args(annotation):
            found = model_in(arg)
            if found is not None:
                return found
    return None


def kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line of the deepest YAML node on ``loc`` that exists (1-based)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, _ in node.value if k.value == part), None)
            if match is None or key is None:
                break
            line, node = key.start_mark.line + 1, match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def show(path: Path) -> str:
    """A path as the user will look for it: relative to where they stand, if inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def plain_error(
    error: ErrorDetails, root: type[BaseModel], pattern_meaning: Mapping[str, str]
) -> str:
    """Pydantic's error about a file validated as ``root``, said the way a person writing
    YAML thinks about it (``pattern_meaning`` says what each field pattern asks for)."""
    kind_, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind_ == "missing":
        return "required field is missing"
    if kind_ == "extra_forbidden":
        allowed = allowed_fields(root, error["loc"][:-1])
        return f"unknown field (expected one of: {', '.join(allowed)})"
    if kind_ == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind_ == "string_pattern_mismatch":
        meaning = pattern_meaning.get(str(ctx.get("pattern")), f"match {ctx.get('pattern')}")
        return f"{value!r} must be {meaning}"
    if kind_ in ("literal_error", "enum"):
        return f"{kind(value)} is not allowed (expected {ctx.get('expected')})"
    if kind_ in ("string_too_short", "too_short"):
        return "must not be empty"
    if kind_ in ("greater_than", "greater_than_equal", "less_than_equal"):
        bound = ctx.get("gt", ctx.get("ge", ctx.get("le")))
        shown = f"{bound:g}" if isinstance(bound, int | float) else str(bound)
        word = {"greater_than": "more than", "greater_than_equal": "at least"}.get(kind_, "at most")
        return f"must be {word} {shown}, got {kind(value)}"
    expected = {
        "string_type": "text",
        "bool_type": "true or false",
        "float_type": "a number",
        "int_type": "a whole number",
        "list_type": "a list (lines starting with '- ')",
        "dict_type": "a mapping (key: value)",
        "model_type": "a mapping (key: value)",
    }.get(kind_)
    if expected:
        return f"expected {expected}, got {kind(value)}"
    message = error["msg"]
    return message[:1].lower() + message[1:]


def allowed_fields(root: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the model found at ``loc`` inside ``root``."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int) or part == "[key]":
            continue
        field = model.model_fields.get(part) if model is not None else None
        model = model_in(field.annotation) if field is not None else None
        if model is None:
            return []
    return list(model.model_fields) if model is not None else []


def parse_mapping(text: str, where: str, fields: str) -> dict[str, Any]:
    """A YAML file people write, read as the mapping of fields it must be; ``where`` names
    the file and ``fields`` the first fields it expects (for the error line)."""
    try:
        raw = yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "not valid YAML"
        raise BadInput(f"{where}:{at}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{where}: YAML syntax error: {exc}") from None
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: expected a mapping of fields ({fields}, ...), got {kind(raw)}")
    return raw
