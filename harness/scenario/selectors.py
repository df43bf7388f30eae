"""Selectors: which nodes a fault, attacker, workload or check acts on (after Chaos Mesh's mode/value).

Written in a scenario as
  - a name or pattern:   `node-3`, `node-[0-9]` (numeric range, inclusive), `spam-*`
  - a list of those:     `[node-1, node-4, "node-[10-12]"]`
  - a mapping:           `{nodes: ..., role: honest|attacker|seeder|bitcoind, group: edge,
                           mode: one|all|fixed|percent|random-max-percent, value: N}`
The filters (nodes, role, group) intersect; the mode then picks among the matches, at random from
the scenario seed. Matching is static (a name that does not exist, or a selector that matches no
node, is a scenario error); picking is done by the planner.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from harness.scenario.problem import problem
from harness.scenario.registry import did_you_mean

Role = Literal["honest", "attacker", "seeder", "bitcoind"]
ROLES: tuple[str, ...] = ("honest", "attacker", "seeder", "bitcoind")
Mode = Literal["one", "all", "fixed", "percent", "random-max-percent"]
_VALUE_MODES = ("fixed", "percent", "random-max-percent")


@dataclass(frozen=True)
class Member:
    """One node a scenario defines, before any address is given to it."""

    name: str
    role: str
    group: str | None = None


class SelectorError(ValueError):
    """A selector that does not fit the scenario; `subpath` is where inside the selector."""

    def __init__(self, problem: str, subpath: tuple[str | int, ...] = ()) -> None:
        super().__init__(problem)
        self.subpath = subpath


class Selector(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    nodes: list[str] | None = None
    role: Role | None = None
    group: str | None = None
    mode: Mode = "all"
    value: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"nodes": [data]}
        if isinstance(data, list):
            return {"nodes": data}
        if isinstance(data, dict) and isinstance(data.get("nodes"), str):
            return {**data, "nodes": [data["nodes"]]}
        return data

    @model_validator(mode="after")
    def _complete(self) -> "Selector":
        if self.nodes is None and self.role is None and self.group is None:
            raise problem("a selector needs at least one of: nodes, role, group")
        if self.nodes is not None and not self.nodes:
            raise problem("the list of nodes is empty", "nodes")
        if self.mode in _VALUE_MODES and self.value is None:
            raise problem(f"mode {self.mode!r} needs a value", "value")
        if self.mode not in _VALUE_MODES and self.value is not None:
            raise problem(f"mode {self.mode!r} takes no value (value is for {', '.join(_VALUE_MODES)})", "value")
        if self.mode == "fixed" and (self.value != int(self.value) or self.value < 1):
            raise problem(f"fixed needs a whole number of nodes >= 1 (got {self.value:g})", "value")
        if self.mode in ("percent", "random-max-percent") and not 0 < self.value <= 100:
            raise problem(f"a percentage must be > 0 and <= 100 (got {self.value:g})", "value")
        return self


def is_pattern(text: str) -> bool:
    return "[" in text or "*" in text


_RANGE = re.compile(r"\[(\d+)-(\d+)\]")


def pattern_matcher(pattern: str):
    """A predicate for names matching `pattern` (`[a-b]` numeric range inclusive, `*` any text)."""
    ranges: list[tuple[int, int]] = []
    regex = ""
    pos = 0
    for found in _RANGE.finditer(pattern):
        regex += ".*".join(re.escape(piece) for piece in pattern[pos : found.start()].split("*"))
        regex += r"(\d+)"
        ranges.append((int(found.group(1)), int(found.group(2))))
        pos = found.end()
    regex += ".*".join(re.escape(piece) for piece in pattern[pos:].split("*"))
    leftover = _RANGE.sub("", pattern)
    if "[" in leftover or "]" in leftover or any(lo > hi for lo, hi in ranges):
        raise SelectorError(f"bad pattern {pattern!r}: a range is written [low-high], e.g. node-[0-9]")
    compiled = re.compile(regex + r"\Z")

    def matches(name: str) -> bool:
        found = compiled.match(name)
        return bool(found) and all(lo <= int(n) <= hi for n, (lo, hi) in zip(found.groups(), ranges))

    return matches


def _describe_names(members: list[Member]) -> str:
    names = [m.name for m in members]
    return ", ".join(names) if len(names) <= 8 else f"{', '.join(names[:6])}, … {names[-1]}"


def match(selector: Selector, members: list[Member]) -> list[Member]:
    """The members the filters select, in roster order; SelectorError if a part names nothing."""
    chosen = list(members)
    if selector.nodes is not None:
        wanted: set[str] = set()
        for index, item in enumerate(selector.nodes):
            try:
                fits = pattern_matcher(item) if is_pattern(item) else item.__eq__
            except SelectorError as exc:
                raise SelectorError(str(exc), ("nodes", index)) from None
            hits = [m.name for m in members if fits(m.name)]
            if not hits:
                if is_pattern(item):
                    raise SelectorError(f"pattern {item!r} matches no node (nodes: {_describe_names(members)})", ("nodes", index))
                hint = did_you_mean(item, [m.name for m in members])
                raise SelectorError(f"no node named {item!r}{hint} (nodes: {_describe_names(members)})", ("nodes", index))
            wanted.update(hits)
        chosen = [m for m in chosen if m.name in wanted]
    if selector.role is not None:
        chosen = [m for m in chosen if m.role == selector.role]
        if not chosen and not any(m.role == selector.role for m in members):
            why = " (seeder.enabled is false)" if selector.role == "seeder" else ""
            raise SelectorError(f"there is no {selector.role} node in this scenario{why}", ("role",))
    if selector.group is not None:
        groups = sorted({m.group for m in members if m.group})
        if selector.group not in groups:
            hint = did_you_mean(selector.group, groups)
            raise SelectorError(f"no group named {selector.group!r}{hint} (groups: {', '.join(groups) or 'none'})", ("group",))
        chosen = [m for m in chosen if m.group == selector.group]
    if not chosen:
        raise SelectorError("the selector matches no node (its filters exclude each other)")
    if selector.mode == "fixed" and selector.value > len(chosen):
        raise SelectorError(f"fixed value {selector.value:g} but the selector matches only {len(chosen)} node(s)", ("value",))
    return chosen


def pick_count(selector: Selector, matched: int, rng: random.Random) -> int:
    """How many of `matched` nodes the mode takes (at least one: a selector never selects nothing)."""
    if selector.mode == "all":
        return matched
    if selector.mode == "one":
        return 1
    if selector.mode == "fixed":
        return int(selector.value)
    most = max(1, math.floor(matched * selector.value / 100))
    return most if selector.mode == "percent" else rng.randint(1, most)


def pick(selector: Selector, members: list[Member], rng: random.Random) -> list[Member]:
    """Match, then apply the mode; the result keeps roster order so plans read naturally."""
    matched = match(selector, members)
    count = pick_count(selector, len(matched), rng)
    if count >= len(matched):
        return matched
    taken = set(rng.sample(range(len(matched)), count))
    return [m for i, m in enumerate(matched) if i in taken]


def rng_for(seed: int, *labels: object) -> random.Random:
    """An independent RNG per purpose, so adding a fault does not reshuffle every other choice."""
    material = "|".join([str(seed), *map(str, labels)]).encode()
    return random.Random(int.from_bytes(hashlib.sha256(material).digest()[:8], "big"))
