"""Scenario files -> Scenario, or one ScenarioError saying file:line:col, the field and what is allowed.

YAML is composed into nodes (which carry line and column) and converted to plain data while a
SourceMap records where every value and key was written. Pydantic validates the data; its first
error in file order is translated into a plain sentence. Pydantic's own wording never reaches the
user: each error type has a sentence here, and unknown types get a neutral one.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from harness.scenario.actions import ACTIONS
from harness.errors import ScenarioError, format_path
from harness.scenario.attackers import ATTACKER_KINDS
from harness.scenario.checks import CHECKS, Check
from harness.scenario.model import Attacker, Fault, Scenario
from harness.scenario.registry import did_you_mean

Loc = tuple[str | int, ...]

# Bounds on what reading a file may cost, so a hostile file ends in one error within a second or
# two instead of a traceback or gigabytes (issue 9). Real scenarios are a few kB, nest < 10 levels
# and use a handful of anchors; each bound is far above that and far below what hurts.
MAX_FILE_BYTES = 1024 * 1024  # 1 MiB: read no further (a 10 MB file is refused unread)
MAX_DEPTH = 64  # nesting levels; PyYAML's composer recurses once per level (a RecursionError at ~1000)
MAX_ALIASES = 100  # `*name` uses; anchors reuse a few blocks, a "billion laughs" bomb needs many
MAX_VALUES = 20_000  # values composed, and after expanding aliases: ~1 s of pure-Python YAML, 25 ms of libyaml; 1,000 faults are ~5,000


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a YAML document was written, 1-based."""

    file: str
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    kinds: dict[Loc, str] = field(default_factory=dict)  # "map" | "seq" | "scalar"

    def resolve(self, loc: Loc) -> tuple[Loc, Loc]:
        """(deepest written prefix of loc, loc as the user wrote it).

        Steps the user did not write because of a shorthand (a selector given as `node-3` or as a
        list, which the model stores under `nodes`) are dropped from the displayed path.
        """
        prefix: Loc = ()
        shown: list[str | int] = []
        for index, part in enumerate(loc):
            if (*prefix, part) in self.values:
                prefix = (*prefix, part)
                shown.append(part)
                continue
            kind = self.kinds.get(prefix)
            if kind == "scalar":
                break
            if kind == "seq" and isinstance(part, str):
                continue
            shown.extend(loc[index:])
            break
        return prefix, tuple(shown)

    def position(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        if key and loc in self.keys:
            return self.keys[loc]
        return self.values.get(loc, (1, 1))


# ---------------------------------------------------------------- reading YAML


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; ScenarioError (one, located) if anything is wrong."""
    file = str(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ScenarioError("cannot read the scenario: no such file", file=file) from None
    except IsADirectoryError:
        raise ScenarioError("cannot read the scenario: it is a directory, not a file", file=file) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read the scenario: {exc.strerror or exc}", file=file) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(f"the file is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB ({MAX_FILE_BYTES} bytes), "
                            f"the most a scenario may be", file=file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                            f"save the file as UTF-8", file=file, line=line, column=column) from None
    return parse_scenario(text, file)


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    data, source = read_yaml(text, file)
    return validate_scenario(data, source)


class _Budget:
    """The bounds above, checked one parse event at a time.

    Fed by PyYAML's composer while it builds nodes, and first by libyaml's event stream alone
    (`_prescan`), so both paths share one rule and one wording.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.depth = 0
        self.aliases = 0
        self.values = 0  # composed here; _convert counts again while expanding aliases
        self.open_anchors: list[str] = []  # anchors whose node is being composed (an alias to one recurses)

    def fail(self, problem: str, mark: yaml.Mark | None) -> ScenarioError:
        return ScenarioError(problem, file=self.file, line=mark.line + 1 if mark else None,
                             column=mark.column + 1 if mark else None)

    def alias(self, event: yaml.AliasEvent) -> None:
        self.aliases += 1
        if event.anchor in self.open_anchors:
            raise self.fail(f"the alias *{event.anchor} refers to itself (its anchor &{event.anchor} "
                            f"contains it); a scenario cannot be infinite", event.start_mark)
        if self.aliases > MAX_ALIASES:
            raise self.fail(f"more than {MAX_ALIASES} aliases (*name); write the values out, "
                            f"or reuse fewer blocks", event.start_mark)

    def enter(self, event: yaml.NodeEvent) -> str | None:
        """A node starts: count it and nest; its anchor, which `leave` takes back."""
        self.values += 1
        if self.values > MAX_VALUES:
            raise self.fail(f"more than {MAX_VALUES} values; a scenario is much smaller", event.start_mark)
        if self.depth >= MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels; a scenario nests fewer than 10", event.start_mark)
        self.depth += 1
        if event.anchor is not None:
            self.open_anchors.append(event.anchor)
        return event.anchor

    def leave(self, anchor: str | None) -> None:
        self.depth -= 1
        if anchor is not None:
            self.open_anchors.pop()


def _prescan(text: str, file: str) -> None:
    """Hold the event stream to the bounds with libyaml's C parser before PyYAML composes it.

    PyYAML's pure-Python scanner needs ~1 s of CPU for MAX_VALUES values, libyaml ~25 ms, so a file
    dense up to the size cap ends within the issue's bound on a loaded machine. Only the budget is
    checked here: any problem libyaml reports is left to the PyYAML pass, which words it as before
    and enforces the same budget as it composes.
    """
    if not yaml.__with_libyaml__:
        return
    budget = _Budget(file)
    opened: list[str | None] = []
    parser = yaml.CSafeLoader(text)
    try:
        while True:
            event = parser.get_event()
            if isinstance(event, yaml.AliasEvent):
                budget.alias(event)
            elif isinstance(event, yaml.ScalarEvent):
                budget.leave(budget.enter(event))
            elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                opened.append(budget.enter(event))
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                budget.leave(opened.pop())
            elif isinstance(event, yaml.StreamEndEvent):
                return
    except yaml.YAMLError:
        return
    finally:
        parser.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the bounds above enforced while composing, event by event.

    Composing stops at the first bound crossed, so scanning stops there too: the cost of a hostile
    file is bounded by MAX_VALUES nodes, not by what its aliases expand to.
    """

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.budget = _Budget(file)
        self.fail = self.budget.fail

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Merge keys (`<<: [*a, *a, ...]`) copy pairs; PyYAML releases that keep duplicate merged keys
        # grow a nest of merges ninefold per level before _convert counts anything: check each level.
        super().flatten_mapping(node)
        if len(node.value) > MAX_VALUES:
            raise self.fail(f"more than {MAX_VALUES} values once merge keys (<<) are expanded; "
                            f"a scenario is much smaller", node.start_mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            self.budget.alias(event)
            return super().compose_node(parent, index)
        anchor = self.budget.enter(event)
        try:
            return super().compose_node(parent, index)
        finally:
            self.budget.leave(anchor)


def read_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    source = SourceMap(file)
    loader: _BoundedLoader | None = None
    try:
        _prescan(text, file)
        loader = _BoundedLoader(text, file)  # the reader checks every character here
        node = loader.get_single_node()
        if node is None:
            raise ScenarioError("the file is empty; a scenario needs at least name, duration and network", file=file)
        loader.budget.values = 0
        data = _convert(node, (), source, loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.problem, f"({exc.context})" if exc.context else None) if part)
        if "block" in what or "indent" in what:
            what += "; check the indentation here and on the line above"
        raise ScenarioError(f"YAML syntax error: {what}", file=file,
                            line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None) from None
    except yaml.reader.ReaderError as exc:  # a control character: located by its offset in the text
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ScenarioError(f"control character U+{exc.character:04X} is not allowed in a YAML file "
                            f"(only tab, line breaks and printable characters)",
                            file=file, line=line, column=column) from None
    except yaml.YAMLError as exc:  # anything else PyYAML raises, on one line
        raise ScenarioError(f"YAML error: {' '.join(str(exc).split())}", file=file) from None
    except RecursionError:  # not reachable within MAX_DEPTH; kept so no path ends in a traceback
        raise ScenarioError(f"nested too deeply (at most {MAX_DEPTH} levels)", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, source


def _convert(node: yaml.Node, loc: Loc, source: SourceMap, loader: _BoundedLoader) -> Any:
    loader.budget.values += 1  # aliases are expanded here: bound what they expand to
    if loader.budget.values > MAX_VALUES:
        raise loader.fail(f"more than {MAX_VALUES} values once aliases (*name) are expanded; "
                          f"a scenario is much smaller", node.start_mark)
    source.values[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        source.kinds[loc] = "map"
        merged = any(key.tag == "tag:yaml.org,2002:merge" for key, _ in node.value)
        loader.flatten_mapping(node)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            key = _scalar(key_node, loader) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ScenarioError("a key must be a plain word", file=source.file, line=line, column=column,
                                    path=loc)
            if key in result and not merged:
                first = source.keys[(*loc, key)][0]
                raise ScenarioError(f"duplicate key {key!r} (first written on line {first}); "
                                    f"YAML would silently keep only the last one",
                                    file=source.file, line=line, column=column, path=(*loc, key))
            source.keys[(*loc, key)] = (line, column)
            result[key] = _convert(value_node, (*loc, key), source, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        source.kinds[loc] = "seq"
        return [_convert(item, (*loc, index), source, loader) for index, item in enumerate(node.value)]
    source.kinds[loc] = "scalar"
    return _scalar(node, loader)


def _scalar(node: yaml.Node, loader: _BoundedLoader) -> Any:
    """The scalar's value; a value PyYAML recognises but cannot build is a located error, not a traceback."""
    try:
        return loader.construct_object(node, deep=True)
    except (ValueError, OverflowError) as exc:
        kind = node.tag.rsplit(":", 1)[-1]
        reason = "more digits than any field allows" if kind == "int" else " ".join(str(exc).split())
        raise loader.fail(f"cannot read this value as {'a whole number' if kind == 'int' else 'a ' + kind}: "
                          f"{reason}", node.start_mark) from None


# ---------------------------------------------------------------- validating


def validate_scenario(data: Any, source: SourceMap | None = None) -> Scenario:
    """Scenario from plain data; the first problem (in file order) as a ScenarioError."""
    if not isinstance(data, dict):
        position = source.position(()) if source else (None, None)
        raise ScenarioError(f"a scenario is a mapping of keys ({', '.join(_field_names(Scenario))}), "
                            f"not {_shown(data)}", file=source.file if source else None,
                            line=position[0], column=position[1])
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        # One message: the first problem in file order. A missing key ranks last, since an unknown
        # key elsewhere is usually the same mistake (a typo of the missing key's name).
        ranked = sorted(
            ((error["type"] == "missing", position, _translate(error, data, source))
             for position, error in enumerate(exc.errors(include_url=False))),
            key=lambda item: (item[0], (item[2].line or 0, item[2].column or 0) if source else item[1]),
        )
        raise ranked[0][2] from None


def _translate(error: dict[str, Any], data: Any, source: SourceMap | None) -> ScenarioError:
    ctx = error.get("ctx") or {}
    loc: Loc = tuple(error["loc"]) + tuple(ctx.get("path", ()) if error["type"] == "harness" else ())
    kind = error["type"]
    if kind == "missing":
        parent, missing = loc[:-1], loc[-1]
        return _located(f"is required but missing (add {missing}: under {format_path(parent) or 'the top level'})",
                        parent, loc, source, key=False)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], data)
        hint = did_you_mean(str(loc[-1]), allowed)
        return _located(f"unknown key{hint} (allowed here: {', '.join(allowed)})", loc, loc, source, key=True)
    return _located(_sentence(error, ctx, loc, data), loc, loc, source, key=False)


def _located(problem: str, where: Loc, path: Loc, source: SourceMap | None, *, key: bool) -> ScenarioError:
    if source is None:
        return ScenarioError(problem, path=path)
    written, shown = source.resolve(where)
    if where != path:  # a missing key: locate its parent, name the key
        shown = (*shown, *path[len(where):])
    # A key's own line reads better than where its block value starts (often the next line).
    on_key = (key and written == where) or source.kinds.get(written) in ("map", "seq")
    line, column = source.position(written, key=on_key)
    return ScenarioError(problem, file=source.file, line=line, column=column, path=shown)


def _sentence(error: dict[str, Any], ctx: dict[str, Any], loc: Loc, data: Any) -> str:
    kind, got = error["type"], _shown(error.get("input"))
    if kind == "harness":
        return str(ctx["problem"])
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", "is not valid"))
    if kind in ("literal_error", "enum"):
        allowed = re.findall(r"'([^']*)'|(-?\d+(?:\.\d+)?)", str(ctx.get("expected", "")))
        choices = [text or number for text, number in allowed]
        return f"must be one of: {', '.join(choices)} (got {got}){did_you_mean(str(error.get('input')), choices)}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        keys = _allowed_keys(loc, data)
        return f"must be a mapping (key: value lines) with keys from: {', '.join(keys)} (got {got})" if keys \
            else f"must be a mapping (key: value lines) (got {got})"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s) (got {ctx.get('actual_length')})"
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"must be {bounds[kind]} {limit} (got {got})"
    sentences = {
        "int_type": "must be a whole number", "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number", "float_type": "must be a number",
        "float_parsing": "must be a number", "finite_number": "must be a finite number",
        "bool_type": "must be true or false", "bool_parsing": "must be true or false",
        "string_type": "must be text", "list_type": "must be a list (lines starting with '- ')",
        "string_too_short": "must not be empty",
        "too_short": f"must have at least {ctx.get('min_length')} item(s)",
        "string_too_long": f"must be at most {ctx.get('max_length')} characters",
        "string_pattern_mismatch": f"must match the pattern {ctx.get('pattern')}",
    }
    return f"{sentences.get(kind, 'is not a valid value here')} (got {got})"


def _shown(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------- which keys a place allows


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _allowed_keys(loc: Loc, data: Any) -> list[str]:
    model = _model_at(loc, data)
    if model is None:
        return []
    return _field_names(model)


def _model_at(loc: Loc, data: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc`, following registries where data decides."""
    current: Any = Scenario
    for part in loc:
        parent_data = data
        data = data[part] if isinstance(data, (dict, list)) and _has(data, part) else None
        if isinstance(current, type) and issubclass(current, BaseModel):
            if current in (Fault, Attacker) and part == "params":
                current = _registry_model(current, parent_data)
                continue
            info = {(i.alias or n): i for n, i in current.model_fields.items()}.get(part)
            if info is None:
                return None
            current = _unwrap(info.annotation)
        elif typing.get_origin(current) is list and isinstance(part, int):
            current = _unwrap(typing.get_args(current)[0])
            if current is Check and isinstance(data, dict) and data.get("check") in CHECKS:
                current = CHECKS.get(data["check"]).params
        else:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _registry_model(owner: type[BaseModel], parent: Any) -> type[BaseModel] | None:
    registry, key = (ACTIONS, "action") if owner is Fault else (ATTACKER_KINDS, "kind")
    name = parent.get(key) if isinstance(parent, dict) else None
    return registry.get(name).params if name in registry else None


def _has(container: dict | list, part: Any) -> bool:
    return part in container if isinstance(container, dict) else isinstance(part, int) and part < len(container)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the model (or list[...]) underneath."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation
