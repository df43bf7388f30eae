"""Scenario files: the schema (model), reading them with located errors (loader), durations and selectors.

Names are imported lazily (PEP 562) so that `harness.scenario.actions`, which the model imports, can itself
import `harness.scenario.registry` and `.selectors` without a cycle through the loader.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_scenario": "harness.scenario.loader",
    "parse_scenario": "harness.scenario.loader",
    "validate_scenario": "harness.scenario.loader",
    "Scenario": "harness.scenario.model",
    "Member": "harness.scenario.selectors",
    "Selector": "harness.scenario.selectors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness.scenario' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
